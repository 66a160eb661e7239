//! The sanitizer stage: every string a record carries is redacted, then blobs are replaced
//! and payloads truncated to their budgets; a size guarantee shrinks oversize events; the
//! counters feed the exit summary (counts only, never values).
#![allow(dead_code)] // wired into the pipeline by the lead

use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};

use regex::Regex;
use serde_json::{Map, Value};

use crate::model::{ObsKind, Record, TraceCtx};
use crate::redact::{RedactCounts, Redactor};
use crate::truncate::{self, Cuts};

/// `--max-tool-io CHARS` default: budget for a tool call's input and for its output.
pub const DEFAULT_MAX_TOOL_IO_CHARS: usize = 65_536;
/// `--max-llm-io CHARS` default: budget for an LLM call's (or a span's) input and output.
pub const DEFAULT_MAX_LLM_IO_CHARS: usize = 250_000;
/// Each metadata value (observation, trace, model parameters) is capped small: metadata is
/// for filtering, not for payloads.
pub const DEFAULT_MAX_METADATA_VALUE_CHARS: usize = 2_000;
/// No single serialized event may exceed this (Langfuse rejects bodies over 1 MB; stay under
/// both the decimal and the binary reading).
pub const MAX_EVENT_BYTES: usize = 1_000_000;

/// Observation and trace names.
const MAX_NAME_CHARS: usize = 1_000;
/// Status messages (error text).
const MAX_STATUS_MESSAGE_CHARS: usize = 4_000;
/// Each tag, the user id, environment and release.
const MAX_LABEL_CHARS: usize = 200;
/// The model name of a generation.
const MAX_MODEL_CHARS: usize = 200;
/// Shrinking halves the I/O budget while it stays above this, then omits whole parts.
const MIN_SHRINK_IO_CHARS: usize = 256;
/// Shrinking never cuts metadata values below this.
const MIN_SHRINK_METADATA_CHARS: usize = 64;
/// Parts smaller than this are not worth omitting.
const MIN_OMIT_BYTES: usize = 128;
/// Key of the single entry left in a metadata map that was omitted.
const OMITTED_KEY: &str = "omitted";

/// What the sanitizer is built from; the lead fills it from the CLI flags.
#[derive(Debug, Clone)]
pub struct SanitizeConfig {
    /// `--redact REGEX`, already compiled.
    pub user_patterns: Vec<Regex>,
    /// This process's environment (see [`process_env`]); values of secret-named variables are
    /// redacted wherever they appear.
    pub env: Vec<(String, String)>,
    /// Entries of `--secrets-file` (see [`crate::redact::read_secrets_file`]).
    pub secrets_file: Vec<(String, String)>,
    /// `--max-tool-io CHARS`.
    pub max_tool_io_chars: usize,
    /// `--max-llm-io CHARS`.
    pub max_llm_io_chars: usize,
    pub max_metadata_value_chars: usize,
}

impl Default for SanitizeConfig {
    fn default() -> Self {
        SanitizeConfig {
            user_patterns: Vec::new(),
            env: Vec::new(),
            secrets_file: Vec::new(),
            max_tool_io_chars: DEFAULT_MAX_TOOL_IO_CHARS,
            max_llm_io_chars: DEFAULT_MAX_LLM_IO_CHARS,
            max_metadata_value_chars: DEFAULT_MAX_METADATA_VALUE_CHARS,
        }
    }
}

/// This process's environment as UTF-8 pairs (non-UTF-8 entries cannot match UTF-8 text and
/// are skipped; `std::env::vars` would panic on them).
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Counters for the exit summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SanitizeStats {
    /// Redactions per kind.
    pub redactions: RedactCounts,
    /// Fields (input, output, one metadata value, a name…) that lost text to a budget.
    pub truncated_fields: u64,
    /// Images, data URIs and base64 blobs replaced by placeholders.
    pub blobs_replaced: u64,
    /// Records shrunk further to fit the per-event byte cap.
    pub shrunk_records: u64,
}

impl SanitizeStats {
    pub fn total_redactions(&self) -> u64 {
        self.redactions.values().sum()
    }

    /// Add another stage's counters (e.g. a worker thread's).
    pub fn merge(&mut self, other: &SanitizeStats) {
        for (kind, n) in &other.redactions {
            *self.redactions.entry(kind).or_default() += n;
        }
        self.truncated_fields += other.truncated_fields;
        self.blobs_replaced += other.blobs_replaced;
        self.shrunk_records += other.shrunk_records;
    }

    /// One line for the exit summary, e.g.
    /// `redacted 3 (github-pat 2, env-value 1), truncated 2 fields, replaced 1 blob, shrank 0 records`.
    pub fn summary(&self) -> String {
        let total = self.total_redactions();
        let redacted = if total == 0 {
            "redacted 0".to_string()
        } else {
            let kinds: Vec<String> = self
                .redactions
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            format!("redacted {total} ({})", kinds.join(", "))
        };
        format!(
            "{redacted}, truncated {} {}, replaced {} {}, shrank {} {}",
            self.truncated_fields,
            plural(self.truncated_fields, "field", "fields"),
            self.blobs_replaced,
            plural(self.blobs_replaced, "blob", "blobs"),
            self.shrunk_records,
            plural(self.shrunk_records, "record", "records"),
        )
    }
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// How a record relates to the per-event byte cap after [`Sanitizer::fit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// It was already under the cap.
    Fits,
    /// It was shrunk and now fits.
    Shrunk,
    /// Everything that can go went and it is still this many bytes (only ids, names and
    /// timestamps are left; the record is kept anyway).
    StillOver(usize),
}

#[derive(Debug, Clone, Copy)]
struct Budgets {
    tool_io: usize,
    llm_io: usize,
    metadata_value: usize,
}

/// The last trace context sanitized. `original` is kept alive so its address cannot be
/// reused by a different context while it is cached.
struct CtxCache {
    original: Arc<TraceCtx>,
    clean: Arc<TraceCtx>,
}

/// The sanitizer: build once from the config; `Send + Sync`.
pub struct Sanitizer {
    redactor: Redactor,
    budgets: Budgets,
    ctx_cache: Mutex<Option<CtxCache>>,
}

impl std::fmt::Debug for Sanitizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sanitizer")
            .field("redactor", &self.redactor)
            .field("budgets", &self.budgets)
            .finish_non_exhaustive()
    }
}

/// The parts of a record that can be omitted whole, biggest first, when nothing else helps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Input,
    Output,
    Metadata,
    ModelParameters,
    TraceMetadata,
}

impl Sanitizer {
    pub fn new(cfg: SanitizeConfig) -> anyhow::Result<Self> {
        let redactor = Redactor::new(cfg.user_patterns, cfg.env, &cfg.secrets_file)?;
        Ok(Sanitizer {
            redactor,
            budgets: Budgets {
                tool_io: cfg.max_tool_io_chars,
                llm_io: cfg.max_llm_io_chars,
                metadata_value: cfg.max_metadata_value_chars,
            },
            ctx_cache: Mutex::new(None),
        })
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Redact any text before it is printed: error messages, debug logs, dry-run notes.
    pub fn text<'a>(&self, s: &'a str) -> Cow<'a, str> {
        self.redactor.redact(s, &mut RedactCounts::new())
    }

    /// Sanitize a record in place: redaction first, then blobs and truncation.
    pub fn record(&self, rec: &mut Record, stats: &mut SanitizeStats) {
        match rec {
            Record::Trace(t) => {
                t.ctx = self.ctx(&t.ctx, stats);
                self.io(&mut t.input, self.budgets.llm_io, stats);
                self.io(&mut t.output, self.budgets.llm_io, stats);
            }
            Record::Observation(o) => {
                o.trace = self.ctx(&o.trace, stats);
                let budget = self.io_budget(o.kind);
                self.io(&mut o.input, budget, stats);
                self.io(&mut o.output, budget, stats);
                self.map(&mut o.metadata, self.budgets.metadata_value, stats);
                self.label(&mut o.name, MAX_NAME_CHARS, stats);
                if let Some(msg) = &mut o.status_message {
                    self.label(msg, MAX_STATUS_MESSAGE_CHARS, stats);
                }
                if let Some(g) = &mut o.generation {
                    if let Some(model) = &mut g.model {
                        self.label(model, MAX_MODEL_CHARS, stats);
                    }
                    self.map(&mut g.model_parameters, self.budgets.metadata_value, stats);
                }
            }
        }
    }

    /// Tool calls get the tool budget; LLM calls and everything else (spans, the agent root,
    /// events) the LLM budget, since their I/O is prompts and answers.
    fn io_budget(&self, kind: ObsKind) -> usize {
        match kind {
            ObsKind::Tool => self.budgets.tool_io,
            ObsKind::Generation | ObsKind::Agent | ObsKind::Span | ObsKind::Event => {
                self.budgets.llm_io
            }
        }
    }

    fn io(&self, field: &mut Option<Value>, budget: usize, stats: &mut SanitizeStats) {
        let Some(v) = field else { return };
        stats.blobs_replaced += truncate::strip_media(v);
        self.redactor.redact_value(v, &mut stats.redactions);
        let cuts = truncate::limit(v, budget);
        count_cuts(cuts, stats);
    }

    /// Metadata-like maps: redact keys and values, then cap each value.
    fn map(&self, map: &mut Map<String, Value>, cap: usize, stats: &mut SanitizeStats) {
        if map.is_empty() {
            return;
        }
        let mut v = Value::Object(std::mem::take(map));
        stats.blobs_replaced += truncate::strip_media(&mut v);
        self.redactor.redact_value(&mut v, &mut stats.redactions);
        if let Value::Object(m) = v {
            *map = m;
        }
        for x in map.values_mut() {
            count_cuts(truncate::limit(x, cap), stats);
        }
    }

    /// A plain string field: redact, then cap.
    fn label(&self, s: &mut String, max_chars: usize, stats: &mut SanitizeStats) {
        if let Cow::Owned(clean) = self.redactor.redact(s, &mut stats.redactions) {
            *s = clean;
        }
        if truncate::limit_str(s, max_chars) {
            stats.truncated_fields += 1;
        }
    }

    /// The sanitized copy of a trace context, from the cache when it is the same snapshot.
    fn ctx(&self, ctx: &Arc<TraceCtx>, stats: &mut SanitizeStats) -> Arc<TraceCtx> {
        let mut cache = self
            .ctx_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = cache.as_ref() {
            if Arc::ptr_eq(&c.original, ctx) || Arc::ptr_eq(&c.clean, ctx) {
                return c.clean.clone();
            }
        }
        let clean = Arc::new(self.sanitize_ctx(ctx, stats));
        *cache = Some(CtxCache {
            original: ctx.clone(),
            clean: clean.clone(),
        });
        clean
    }

    fn sanitize_ctx(&self, ctx: &TraceCtx, stats: &mut SanitizeStats) -> TraceCtx {
        // The mapper fills trace metadata with small scalars, so a plain clone is cheap and
        // shallow; the copy is bounded and truncated below like any other metadata.
        let mut clean = ctx.clone();
        // `id` and `session_id` are identifiers the mapper derived (hex, UUIDs); changing them
        // would break grouping, and no rule can match them.
        self.label(&mut clean.name, MAX_NAME_CHARS, stats);
        for s in clean
            .user_id
            .iter_mut()
            .chain(clean.environment.iter_mut())
            .chain(clean.release.iter_mut())
            .chain(clean.tags.iter_mut())
        {
            self.label(s, MAX_LABEL_CHARS, stats);
        }
        self.map(&mut clean.metadata, self.budgets.metadata_value, stats);
        clean
    }

    /// Shrink a sanitized record until `size(rec)` (its serialized size on the wire) is at
    /// most `max_bytes`: halve the I/O and metadata budgets repeatedly, then replace the
    /// biggest of input, output and metadata by a marker, one at a time. Never drops the
    /// record.
    pub fn fit<F: FnMut(&Record) -> usize>(
        &self,
        rec: &mut Record,
        max_bytes: usize,
        mut size: F,
        stats: &mut SanitizeStats,
    ) -> Fit {
        let mut n = size(rec);
        if n <= max_bytes {
            return Fit::Fits;
        }
        stats.shrunk_records += 1;
        let mut io = match rec {
            Record::Trace(_) => self.budgets.llm_io,
            Record::Observation(o) => self.io_budget(o.kind),
        };
        let mut meta = self.budgets.metadata_value;
        while io > MIN_SHRINK_IO_CHARS {
            io /= 2;
            meta = (meta / 2).max(MIN_SHRINK_METADATA_CHARS);
            retruncate(rec, io, meta);
            n = size(rec);
            if n <= max_bytes {
                return Fit::Shrunk;
            }
        }
        while let Some(part) = biggest_part(rec) {
            omit(rec, part, max_bytes);
            n = size(rec);
            if n <= max_bytes {
                return Fit::Shrunk;
            }
        }
        Fit::StillOver(n)
    }
}

fn count_cuts(cuts: Cuts, stats: &mut SanitizeStats) {
    stats.blobs_replaced += cuts.blobs;
    if cuts.truncated() {
        stats.truncated_fields += 1;
    }
}

/// Truncate again with smaller budgets (the record is already redacted).
fn retruncate(rec: &mut Record, io: usize, meta: usize) {
    let (input, output) = match rec {
        Record::Trace(t) => (&mut t.input, &mut t.output),
        Record::Observation(o) => {
            for v in o.metadata.values_mut() {
                truncate::limit(v, meta);
            }
            if let Some(g) = &mut o.generation {
                for v in g.model_parameters.values_mut() {
                    truncate::limit(v, meta);
                }
            }
            (&mut o.input, &mut o.output)
        }
    };
    for v in [input, output].into_iter().flatten() {
        truncate::limit(v, io);
    }
}

fn map_len(map: &Map<String, Value>) -> usize {
    // Measure as an object without cloning it.
    2 + map.len().saturating_sub(1)
        + map
            .iter()
            .map(|(k, v)| truncate::escaped_len(k) + 1 + truncate::json_len(v))
            .sum::<usize>()
}

fn is_omitted_map(map: &Map<String, Value>) -> bool {
    map.len() == 1 && map.contains_key(OMITTED_KEY)
}

/// The biggest part still worth omitting.
fn biggest_part(rec: &Record) -> Option<Part> {
    let value_len = |v: &Option<Value>| match v {
        Some(Value::String(s)) if s.starts_with(OMITTED_PREFIX) => 0,
        Some(v) => truncate::json_len(v),
        None => 0,
    };
    let map_size = |m: &Map<String, Value>| if is_omitted_map(m) { 0 } else { map_len(m) };
    let mut parts: Vec<(Part, usize)> = Vec::new();
    match rec {
        Record::Trace(t) => {
            parts.push((Part::Input, value_len(&t.input)));
            parts.push((Part::Output, value_len(&t.output)));
            parts.push((Part::TraceMetadata, map_size(&t.ctx.metadata)));
        }
        Record::Observation(o) => {
            parts.push((Part::Input, value_len(&o.input)));
            parts.push((Part::Output, value_len(&o.output)));
            parts.push((Part::Metadata, map_size(&o.metadata)));
            if let Some(g) = &o.generation {
                parts.push((Part::ModelParameters, map_size(&g.model_parameters)));
            }
            parts.push((Part::TraceMetadata, map_size(&o.trace.metadata)));
        }
    }
    parts
        .into_iter()
        .filter(|&(_, len)| len >= MIN_OMIT_BYTES)
        .max_by_key(|&(_, len)| len)
        .map(|(p, _)| p)
}

const OMITTED_PREFIX: &str = "[omitted: ";

fn omission(bytes: usize, max_bytes: usize) -> String {
    format!("{OMITTED_PREFIX}{bytes} bytes, over the {max_bytes}-byte event limit]")
}

fn omitted_map(bytes: usize, max_bytes: usize) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        OMITTED_KEY.to_string(),
        Value::String(omission(bytes, max_bytes)),
    );
    m
}

fn omit(rec: &mut Record, part: Part, max_bytes: usize) {
    let replace_value = |v: &mut Option<Value>| {
        if let Some(old) = v.take() {
            let text = omission(truncate::json_len(&old), max_bytes);
            truncate::dismantle(old);
            *v = Some(Value::String(text));
        }
    };
    let replace_map = |m: &mut Map<String, Value>| {
        let len = map_len(m);
        for (_, old) in std::mem::take(m) {
            truncate::dismantle(old);
        }
        *m = omitted_map(len, max_bytes);
    };
    let ctx_metadata = |ctx: &mut Arc<TraceCtx>| {
        // This record gets its own copy; other records keep sharing the full context.
        let mut own = TraceCtx::clone(ctx);
        own.metadata = omitted_map(map_len(&ctx.metadata), max_bytes);
        *ctx = Arc::new(own);
    };
    match (rec, part) {
        (Record::Trace(t), Part::Input) => replace_value(&mut t.input),
        (Record::Trace(t), Part::Output) => replace_value(&mut t.output),
        (Record::Trace(t), Part::TraceMetadata) => ctx_metadata(&mut t.ctx),
        (Record::Observation(o), Part::Input) => replace_value(&mut o.input),
        (Record::Observation(o), Part::Output) => replace_value(&mut o.output),
        (Record::Observation(o), Part::Metadata) => replace_map(&mut o.metadata),
        (Record::Observation(o), Part::ModelParameters) => {
            if let Some(g) = &mut o.generation {
                replace_map(&mut g.model_parameters);
            }
        }
        (Record::Observation(o), Part::TraceMetadata) => ctx_metadata(&mut o.trace),
        (Record::Trace(_), Part::Metadata | Part::ModelParameters) => {}
    }
}
