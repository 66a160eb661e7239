//! The sanitizer stage: every string a record carries is redacted, then blobs are replaced
//! and payloads truncated to their budgets; a size guarantee shrinks oversize events; the
//! counters feed the exit summary (counts only, never values).

pub mod assign;
mod blocks;
pub mod redact;
#[cfg(test)]
pub mod secret_corpus;
#[cfg(test)]
mod syntax_corpus;
pub mod truncate;

use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};

use regex::Regex;
use serde_json::{Map, Value};

use crate::model::{ObsKind, Record, TraceCtx};
use crate::sanitize::redact::{RedactCounts, Redactor};
use crate::sanitize::truncate::Cuts;

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
    /// Entries of `--secrets-file` (see [`crate::sanitize::redact::read_secrets_file`]).
    pub secrets_file: Vec<(String, String)>,
    /// `--max-tool-io CHARS`.
    pub max_tool_io_chars: usize,
    /// `--max-llm-io CHARS`.
    pub max_llm_io_chars: usize,
    /// Cap on each metadata value (no flag; [`DEFAULT_MAX_METADATA_VALUE_CHARS`]).
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
        let redacted = match self.redactions.len() {
            0 => "redacted 0".to_string(),
            1 => format!("redacted {total} ({})", self.kinds()),
            k => format!("redacted {total} ({k} kinds)"),
        };
        // Zero counts other than redactions say nothing; leave them out of the line.
        let mut parts = vec![redacted];
        for (n, one, many, verb) in [
            (self.truncated_fields, "field", "fields", "truncated"),
            (self.blobs_replaced, "blob", "blobs", "replaced"),
            (self.shrunk_records, "record", "records", "shrank"),
        ] {
            if n > 0 {
                parts.push(format!("{verb} {n} {}", plural(n, one, many)));
            }
        }
        parts.join(", ")
    }
}

impl SanitizeStats {
    /// Redactions per kind: `env-value 1, github-pat 3` (counts only).
    pub fn kinds(&self) -> String {
        let kinds: Vec<String> = self
            .redactions
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        kinds.join(", ")
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

    /// Redact any text before it is printed: error messages, debug logs, dry-run notes.
    pub fn text<'a>(&self, s: &'a str) -> Cow<'a, str> {
        self.redactor.redact(s, &mut RedactCounts::new())
    }

    /// Sanitize a record in place: [`Sanitizer::redact_record`], then
    /// [`Sanitizer::limit_record`]. Every record goes through here (or through both halves,
    /// in order) before it is encoded, printed or sent; then [`Sanitizer::fit`] with the
    /// encoder's item size.
    pub fn record(&self, rec: &mut Record, stats: &mut SanitizeStats) {
        self.redact_record(rec, stats);
        self.limit_record(rec, stats);
    }

    /// The first half of [`Sanitizer::record`]: blobs replaced and secrets redacted in every
    /// field (short labels and the trace context are capped here too). Records must pass
    /// here in order: a secret identified in one is redacted wherever it recurs later.
    pub fn redact_record(&self, rec: &mut Record, stats: &mut SanitizeStats) {
        let generation = self.redactor.generation();
        self.redact_once(rec, stats);
        if self.redactor.generation() != generation {
            // A secret identified in one field (a tool's arguments) may be echoed in another
            // field of the same record that was already redacted (its output): the learned
            // values once more, now that they are known.
            self.learned_pass(rec, stats);
        }
    }

    /// The second half of [`Sanitizer::record`], on a redacted record: input, output,
    /// metadata and model parameters cut to their budgets. It learns nothing, so it can
    /// run on another thread than the first half.
    pub fn limit_record(&self, rec: &mut Record, stats: &mut SanitizeStats) {
        let (budget, input, output) = match rec {
            Record::Trace(t) => (self.budgets.llm_io, &mut t.input, &mut t.output),
            Record::Observation(o) => {
                let cap = self.budgets.metadata_value;
                let params = o.generation.as_mut().map(|g| &mut g.model_parameters);
                for map in std::iter::once(&mut o.metadata).chain(params) {
                    for x in map.values_mut() {
                        count_cuts(truncate::limit(x, cap), stats);
                    }
                }
                (self.io_budget(o.kind), &mut o.input, &mut o.output)
            }
        };
        for v in [input, output].into_iter().flatten() {
            count_cuts(truncate::limit(v, budget), stats);
        }
    }

    fn learned_pass(&self, rec: &mut Record, stats: &mut SanitizeStats) {
        let r = &self.redactor;
        let counts = &mut stats.redactions;
        let (input, output) = match rec {
            Record::Trace(t) => (&mut t.input, &mut t.output),
            Record::Observation(o) => {
                let mut meta = Value::Object(std::mem::take(&mut o.metadata));
                r.redact_learned_value(&mut meta, counts);
                if let Value::Object(m) = meta {
                    o.metadata = m;
                }
                r.redact_learned_str(&mut o.name, counts);
                if let Some(msg) = &mut o.status_message {
                    r.redact_learned_str(msg, counts);
                }
                (&mut o.input, &mut o.output)
            }
        };
        for v in [input, output].into_iter().flatten() {
            r.redact_learned_value(v, counts);
        }
    }

    fn redact_once(&self, rec: &mut Record, stats: &mut SanitizeStats) {
        match rec {
            Record::Trace(t) => {
                t.ctx = self.ctx(&t.ctx, stats);
                self.io(&mut t.input, stats);
                self.io(&mut t.output, stats);
            }
            Record::Observation(o) => {
                o.trace = self.ctx(&o.trace, stats);
                self.io(&mut o.input, stats);
                self.io(&mut o.output, stats);
                self.redact_map(&mut o.metadata, stats);
                self.label(&mut o.name, MAX_NAME_CHARS, stats);
                if let Some(msg) = &mut o.status_message {
                    self.label(msg, MAX_STATUS_MESSAGE_CHARS, stats);
                }
                if let Some(g) = &mut o.generation {
                    if let Some(model) = &mut g.model {
                        self.label(model, MAX_MODEL_CHARS, stats);
                    }
                    self.redact_map(&mut g.model_parameters, stats);
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

    fn io(&self, field: &mut Option<Value>, stats: &mut SanitizeStats) {
        let Some(v) = field else { return };
        stats.blobs_replaced += truncate::strip_media(v);
        self.redactor.redact_value(v, &mut stats.redactions);
    }

    /// Metadata-like maps: blobs replaced, keys and values redacted.
    fn redact_map(&self, map: &mut Map<String, Value>, stats: &mut SanitizeStats) {
        if map.is_empty() {
            return;
        }
        let mut v = Value::Object(std::mem::take(map));
        stats.blobs_replaced += truncate::strip_media(&mut v);
        self.redactor.redact_value(&mut v, &mut stats.redactions);
        if let Value::Object(m) = v {
            *map = m;
        }
    }

    /// Metadata-like maps: redact keys and values, then cap each value.
    fn map(&self, map: &mut Map<String, Value>, cap: usize, stats: &mut SanitizeStats) {
        self.redact_map(map, stats);
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
        if let Some(c) = cache.as_ref()
            && (Arc::ptr_eq(&c.original, ctx) || Arc::ptr_eq(&c.clean, ctx))
        {
            return c.clean.clone();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GenerationInfo, Level, Observation, TraceRecord};
    use crate::sanitize::secret_corpus::{self, Sample};
    use serde_json::json;

    fn ctx_with(name: &str, tags: Vec<String>, metadata: Map<String, Value>) -> Arc<TraceCtx> {
        Arc::new(TraceCtx {
            id: "0af7651916cd43dd8448eb211c80319c".to_string(),
            name: name.to_string(),
            session_id: "01a02de5-fc05-7c3a-9b2e-5d4c3b2a1f00".to_string(),
            user_id: Some("dev".to_string()),
            tags,
            environment: Some("default".to_string()),
            release: None,
            timestamp: 1_787_476_442_117,
            metadata,
        })
    }

    fn ctx() -> Arc<TraceCtx> {
        let mut m = Map::new();
        m.insert("cwd".to_string(), json!("/home/dev/project"));
        ctx_with("omp session", vec!["omp".to_string()], m)
    }

    fn obs(
        kind: ObsKind,
        trace: Arc<TraceCtx>,
        input: Option<Value>,
        output: Option<Value>,
    ) -> Observation {
        Observation {
            id: "b7ad6b7169203331".to_string(),
            trace,
            parent_id: None,
            kind,
            name: kind.as_str().to_string(),
            start: 1,
            end: 2,
            input,
            output,
            metadata: Map::new(),
            level: Level::Default,
            status_message: None,
            generation: (kind == ObsKind::Generation).then(GenerationInfo::default),
        }
    }

    fn sanitizer() -> Sanitizer {
        Sanitizer::new(SanitizeConfig::default()).unwrap()
    }

    /// Every string a record carries, keys included.
    fn strings(rec: &Record) -> Vec<String> {
        let mut out = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        let ctx = match rec {
            Record::Trace(t) => {
                values.extend(t.input.clone());
                values.extend(t.output.clone());
                &t.ctx
            }
            Record::Observation(o) => {
                values.extend(o.input.clone());
                values.extend(o.output.clone());
                values.push(Value::Object(o.metadata.clone()));
                out.push(o.name.clone());
                out.extend(o.status_message.clone());
                if let Some(g) = &o.generation {
                    out.extend(g.model.clone());
                    values.push(Value::Object(g.model_parameters.clone()));
                }
                &o.trace
            }
        };
        out.extend([ctx.name.clone()]);
        out.extend(ctx.tags.iter().cloned());
        out.extend(ctx.user_id.clone());
        values.push(Value::Object(ctx.metadata.clone()));
        while let Some(v) = values.pop() {
            match v {
                Value::String(s) => out.push(s),
                Value::Array(a) => values.extend(a),
                Value::Object(m) => {
                    for (k, x) in m {
                        out.push(k);
                        values.push(x);
                    }
                }
                _ => {}
            }
        }
        out
    }

    fn assert_clean(rec: &Record, s: &Sample, place: &str) {
        for text in strings(rec) {
            assert!(
                !text.contains(&s.secret),
                "{} leaked via {place}: {text}",
                s.kind
            );
        }
        // The serialized form too (what dry-run prints and what is sent).
        let wire = format!("{rec:?}");
        if !s.secret.contains(['\n', '"', '\\']) {
            assert!(
                !wire.contains(&s.secret),
                "{} leaked via {place} in Debug output",
                s.kind
            );
        }
    }

    /// The places a secret shows up in an omp session, as records.
    fn planted(s: &Sample) -> Vec<(&'static str, Record)> {
        let t = s.text.clone();
        let mut meta = Map::new();
        meta.insert("note".to_string(), json!(t));
        let traced = ctx_with(&format!("fix {t}"), vec![t.clone()], meta.clone());
        let mut gen_obs = obs(
            ObsKind::Generation,
            ctx(),
            Some(json!([
                {"role": "system", "content": "You are a coding agent."},
                {"role": "user", "content": [{"type": "text", "text": format!("please use {t}")}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": format!("the user gave {t}, so")},
                    {"type": "toolCall", "id": "toolu_1", "name": "bash", "arguments": {"command": t}}
                ]},
                {"role": "toolResult", "toolCallId": "toolu_1", "content": [{"type": "text", "text": t}]}
            ])),
            Some(
                json!({"role": "assistant", "content": [{"type": "text", "text": format!("done with {t}")}]}),
            ),
        );
        gen_obs.metadata = meta.clone();
        if let Some(g) = &mut gen_obs.generation {
            g.model = Some("claude-sonnet-4".to_string());
            g.model_parameters.insert("extra".to_string(), json!(t));
        }
        let provider_body = json!({
            "model": "claude-sonnet-4",
            "headers": {"x-trace": t},
            "messages": [{"role": "user", "content": t}],
        });
        let mut tool_obs = obs(
            ObsKind::Tool,
            ctx(),
            Some(json!({"command": t})),
            Some(json!(format!("$ run\n{t}\nexit 0"))),
        );
        tool_obs.status_message = Some(format!("command failed: {t}"));
        let mut named = obs(ObsKind::Span, ctx(), None, None);
        named.name = format!("turn: {t}");
        vec![
            ("generation", Record::Observation(gen_obs)),
            ("tool", Record::Observation(tool_obs)),
            ("name", Record::Observation(named)),
            (
                "provider request object",
                Record::Observation(obs(
                    ObsKind::Generation,
                    ctx(),
                    Some(provider_body.clone()),
                    None,
                )),
            ),
            (
                "provider request as a JSON string",
                Record::Observation(obs(
                    ObsKind::Event,
                    ctx(),
                    Some(json!(provider_body.to_string())),
                    None,
                )),
            ),
            (
                "trace context",
                Record::Observation(obs(ObsKind::Agent, traced.clone(), None, None)),
            ),
            (
                "trace record",
                Record::Trace(TraceRecord {
                    ctx: traced,
                    input: Some(json!(t)),
                    output: Some(json!({"text": t})),
                    at: 1,
                    seq: 0,
                }),
            ),
        ]
    }

    #[test]
    fn no_secret_of_any_kind_survives_anywhere() {
        let san = sanitizer();
        let mut stats = SanitizeStats::default();
        let samples = secret_corpus::samples();
        for s in &samples {
            for (place, mut rec) in planted(s) {
                san.record(&mut rec, &mut stats);
                assert_clean(&rec, s, place);
            }
        }
        // Counted per kind, and the summary holds counts only.
        let summary = stats.summary();
        for s in &samples {
            assert!(!summary.contains(&s.secret));
        }
        assert!(stats.redactions.len() >= 60, "{summary}");
    }

    #[test]
    fn env_and_secrets_file_values_are_redacted_everywhere() {
        let cfg = SanitizeConfig {
            env: vec![
                (
                    "LANGFUSE_SECRET_KEY".to_string(),
                    "lf-self-hosted-init-9c1e".to_string(),
                ),
                (
                    "JUPYTERHUB_API_TOKEN".to_string(),
                    "0123abcd4567ef89".to_string(),
                ),
                ("HOME".to_string(), "/home/dev".to_string()),
            ],
            secrets_file: crate::sanitize::redact::parse_dotenv(
                "KBASE_AUTH_TOKEN=KB7QX2ZP9M4N\nOTHER=plainvalue1234567\n",
            ),
            ..SanitizeConfig::default()
        };
        let san = Sanitizer::new(cfg).unwrap();
        let mut o = obs(
            ObsKind::Tool,
            ctx(),
            Some(json!({"command": "env"})),
            Some(json!(
                "LANGFUSE_SECRET_KEY=lf-self-hosted-init-9c1e\nX=0123abcd4567ef89\nuse KB7QX2ZP9M4N and plainvalue1234567 in /home/dev"
            )),
        );
        o.status_message = Some("token 0123abcd4567ef89 rejected".to_string());
        let mut rec = Record::Observation(o);
        let mut stats = SanitizeStats::default();
        san.record(&mut rec, &mut stats);
        let all = strings(&rec).join("\n");
        for v in [
            "lf-self-hosted-init-9c1e",
            "0123abcd4567ef89",
            "KB7QX2ZP9M4N",
            "plainvalue1234567",
        ] {
            assert!(!all.contains(v), "{v} leaked: {all}");
        }
        assert!(all.contains("/home/dev"));
        assert!(stats.redactions.contains_key("env-value"));
        assert!(stats.redactions.contains_key("secrets-file-value"));
        // Text printed to stderr goes through the same redactor.
        assert_eq!(
            san.text("auth failed for 0123abcd4567ef89"),
            "auth failed for [REDACTED:env-value]"
        );
        assert!(matches!(san.text("all good"), Cow::Borrowed(_)));
    }

    #[test]
    fn benign_records_stay_identical() {
        let san = sanitizer();
        let benign = secret_corpus::benign_corpus();
        let input = json!({"command": benign.join("\n"), "parts": benign});
        let mut o = obs(
            ObsKind::Tool,
            ctx(),
            Some(input.clone()),
            Some(json!(benign.join("\n"))),
        );
        o.metadata.insert(
            "toolCallId".to_string(),
            json!("toolu_01A09q90qw90lq917835lq9"),
        );
        let before = o.clone();
        let mut rec = Record::Observation(o);
        let mut stats = SanitizeStats::default();
        san.record(&mut rec, &mut stats);
        assert!(rec == Record::Observation(before), "{}", stats.summary());
        assert_eq!(stats, SanitizeStats::default());
    }

    #[test]
    fn budgets_follow_the_observation_kind() {
        let san = Sanitizer::new(SanitizeConfig {
            max_tool_io_chars: 1_000,
            max_llm_io_chars: 5_000,
            ..SanitizeConfig::default()
        })
        .unwrap();
        let big = json!("x".repeat(3_000));
        let mut stats = SanitizeStats::default();
        let mut tool = Record::Observation(obs(
            ObsKind::Tool,
            ctx(),
            Some(big.clone()),
            Some(big.clone()),
        ));
        san.record(&mut tool, &mut stats);
        let mut generation = Record::Observation(obs(
            ObsKind::Generation,
            ctx(),
            Some(big.clone()),
            Some(big.clone()),
        ));
        san.record(&mut generation, &mut stats);
        let (Record::Observation(tool), Record::Observation(generation)) = (tool, generation)
        else {
            unreachable!()
        };
        assert_eq!(
            tool.output.unwrap(),
            json!(format!("{}…[truncated 2000 chars]", "x".repeat(1_000)))
        );
        assert_eq!(generation.output.unwrap(), big);
        assert_eq!(stats.truncated_fields, 2);
        assert_eq!(DEFAULT_MAX_TOOL_IO_CHARS, 65_536);
        assert_eq!(DEFAULT_MAX_LLM_IO_CHARS, 250_000);
    }

    #[test]
    fn metadata_values_and_names_are_capped_small() {
        let san = sanitizer();
        let mut o = obs(ObsKind::Span, ctx(), None, None);
        o.metadata
            .insert("huge".to_string(), json!("m".repeat(50_000)));
        o.metadata.insert("small".to_string(), json!("ok"));
        o.name = "n".repeat(5_000);
        let mut rec = Record::Observation(o);
        let mut stats = SanitizeStats::default();
        san.record(&mut rec, &mut stats);
        let Record::Observation(o) = rec else {
            unreachable!()
        };
        let huge = o.metadata["huge"].as_str().unwrap();
        assert!(huge.starts_with(&"m".repeat(DEFAULT_MAX_METADATA_VALUE_CHARS)));
        assert!(huge.ends_with(&format!(
            "[truncated {} chars]",
            50_000 - DEFAULT_MAX_METADATA_VALUE_CHARS
        )));
        assert_eq!(o.metadata["small"], "ok");
        assert_eq!(
            o.name.chars().count(),
            MAX_NAME_CHARS + "…[truncated 4000 chars]".chars().count()
        );
        assert_eq!(stats.truncated_fields, 2);
    }

    #[test]
    fn images_are_replaced_and_counted() {
        let san = sanitizer();
        let data = format!("iVBORw0KGgo{}", "QUJD".repeat(10_000));
        let mut rec = Record::Observation(obs(
            ObsKind::Tool,
            ctx(),
            None,
            Some(
                json!([{"type": "text", "text": "screenshot"}, {"type": "image", "data": data, "mimeType": "image/png"}]),
            ),
        ));
        let mut stats = SanitizeStats::default();
        san.record(&mut rec, &mut stats);
        let Record::Observation(o) = rec else {
            unreachable!()
        };
        assert_eq!(
            o.output.unwrap()[1]["data"],
            "[omitted image/png, 30008 bytes]"
        );
        assert_eq!(stats.blobs_replaced, 1);
    }

    #[test]
    fn a_shared_context_is_sanitized_once() {
        let san = sanitizer();
        let tok = secret_corpus::github_pat();
        let mut m = Map::new();
        m.insert("title".to_string(), json!(format!("rotate {tok}")));
        let shared = ctx_with("session", vec![], m);
        let mut stats = SanitizeStats::default();
        let mut clean_ctxs = Vec::new();
        for _ in 0..3 {
            let mut rec = Record::Observation(obs(ObsKind::Span, shared.clone(), None, None));
            san.record(&mut rec, &mut stats);
            let Record::Observation(o) = rec else {
                unreachable!()
            };
            assert_eq!(o.trace.metadata["title"], "rotate [REDACTED:github-pat]");
            clean_ctxs.push(o.trace);
        }
        assert!(Arc::ptr_eq(&clean_ctxs[0], &clean_ctxs[2]));
        assert_eq!(stats.redactions.get("github-pat"), Some(&1));
        // A new snapshot is sanitized afresh.
        let next = ctx_with("session 2", vec![], Map::new());
        let mut rec = Record::Observation(obs(ObsKind::Span, next, None, None));
        san.record(&mut rec, &mut stats);
        assert_eq!(rec.trace().name, "session 2");
    }

    /// A stand-in for the encoder: the serialized size of everything the record carries.
    fn wire_size(rec: &Record) -> usize {
        strings(rec)
            .iter()
            .map(|s| truncate::escaped_len(s) + 1)
            .sum::<usize>()
            + 200
    }

    #[test]
    fn a_fifty_megabyte_output_fits_the_event_cap() {
        let san = sanitizer();
        let line = "2026-08-23T09:14:02Z INFO building crate 中文 ✓ with token budget 4096\n";
        let huge = line.repeat(50 * 1024 * 1024 / line.len());
        assert!(huge.len() >= 50 * 1024 * 1024 - line.len());
        let mut rec = Record::Observation(obs(
            ObsKind::Tool,
            ctx(),
            Some(json!({"command": "cat build.log"})),
            Some(json!(huge)),
        ));
        let mut stats = SanitizeStats::default();
        san.record(&mut rec, &mut stats);
        assert_eq!(
            san.fit(&mut rec, MAX_EVENT_BYTES, wire_size, &mut stats),
            Fit::Fits
        );
        let Record::Observation(o) = &rec else {
            unreachable!()
        };
        let out = o.output.as_ref().unwrap().as_str().unwrap();
        assert!(out.chars().count() < DEFAULT_MAX_TOOL_IO_CHARS + 40);
        assert!(out.ends_with(" chars]"));
    }

    #[test]
    fn ten_thousand_tiny_values_and_records() {
        let san = sanitizer();
        let mut stats = SanitizeStats::default();
        let tiny: Vec<Value> = (0..10_000)
            .map(|i| json!({"i": i, "s": format!("v{i}")}))
            .collect();
        let mut rec = Record::Observation(obs(
            ObsKind::Generation,
            ctx(),
            Some(Value::Array(tiny)),
            None,
        ));
        san.record(&mut rec, &mut stats);
        assert!(san.fit(&mut rec, MAX_EVENT_BYTES, wire_size, &mut stats) != Fit::StillOver(0));
        assert!(wire_size(&rec) <= MAX_EVENT_BYTES);
        let shared = ctx();
        for i in 0..10_000 {
            let mut rec = Record::Observation(obs(
                ObsKind::Event,
                shared.clone(),
                Some(json!(format!("e{i}"))),
                None,
            ));
            san.record(&mut rec, &mut stats);
            assert!(san.fit(&mut rec, MAX_EVENT_BYTES, wire_size, &mut stats) == Fit::Fits);
        }
    }

    #[test]
    fn deeply_nested_input_is_bounded_without_overflow() {
        let san = sanitizer();
        let mut v = json!("leaf");
        for _ in 0..100_000 {
            v = Value::Array(vec![v]);
        }
        let mut rec = Record::Observation(obs(ObsKind::Tool, ctx(), Some(v), None));
        let mut stats = SanitizeStats::default();
        san.record(&mut rec, &mut stats);
        assert_eq!(stats.truncated_fields, 1);
        let Record::Observation(o) = &rec else {
            unreachable!()
        };
        // Shallow enough now for serde_json's recursive serializer.
        assert!(
            serde_json::to_string(o.input.as_ref().unwrap())
                .unwrap()
                .contains("nested deeper")
        );
    }

    #[test]
    fn oversize_records_shrink_by_halving_then_by_omission() {
        let san = sanitizer();
        let mut stats = SanitizeStats::default();
        // 250k emoji fit the LLM budget but are ~1 MB of UTF-8 on each side.
        let wide = json!("🎉".repeat(DEFAULT_MAX_LLM_IO_CHARS));
        let mut rec = Record::Observation(obs(
            ObsKind::Generation,
            ctx(),
            Some(wide.clone()),
            Some(wide),
        ));
        san.record(&mut rec, &mut stats);
        assert!(wire_size(&rec) > MAX_EVENT_BYTES);
        assert_eq!(
            san.fit(&mut rec, MAX_EVENT_BYTES, wire_size, &mut stats),
            Fit::Shrunk
        );
        assert!(wire_size(&rec) <= MAX_EVENT_BYTES);
        let Record::Observation(o) = &rec else {
            unreachable!()
        };
        assert!(
            o.output
                .as_ref()
                .unwrap()
                .as_str()
                .unwrap()
                .ends_with(" chars]")
        );
        assert_eq!(stats.shrunk_records, 1);

        // Metadata made of many small values cannot be truncated: it is omitted whole.
        let mut o = obs(ObsKind::Span, ctx(), Some(json!("keep me")), None);
        for i in 0..100_000 {
            o.metadata.insert(format!("k{i}"), json!(i));
        }
        let mut rec = Record::Observation(o);
        san.record(&mut rec, &mut stats);
        assert_eq!(
            san.fit(&mut rec, 100_000, wire_size, &mut stats),
            Fit::Shrunk
        );
        let Record::Observation(o) = &rec else {
            unreachable!()
        };
        assert_eq!(o.input, Some(json!("keep me")));
        assert!(
            o.metadata["omitted"]
                .as_str()
                .unwrap()
                .starts_with("[omitted: ")
        );

        // An impossible cap keeps the record anyway.
        let mut rec = Record::Observation(obs(
            ObsKind::Span,
            ctx(),
            Some(json!("x".repeat(1_000))),
            None,
        ));
        assert!(matches!(
            san.fit(&mut rec, 10, wire_size, &mut stats),
            Fit::StillOver(_)
        ));
        assert_eq!(rec.trace().name, "omp session");
    }

    #[test]
    fn the_sanitizer_can_be_shared_across_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Sanitizer>();
        shared::<Redactor>();
    }

    #[test]
    fn summary_has_counts_only() {
        let mut stats = SanitizeStats::default();
        assert_eq!(stats.summary(), "redacted 0");
        stats.redactions.insert("github-pat", 2);
        stats.redactions.insert("env-value", 1);
        stats.truncated_fields = 1;
        stats.blobs_replaced = 3;
        let mut other = SanitizeStats::default();
        other.redactions.insert("github-pat", 1);
        other.shrunk_records = 1;
        stats.merge(&other);
        assert_eq!(
            stats.summary(),
            "redacted 4 (2 kinds), truncated 1 field, replaced 3 blobs, shrank 1 record"
        );
        assert_eq!(stats.kinds(), "env-value 1, github-pat 3");
    }
}
