//! One source through the front half: lines → JSON → format detection → decoder → mapper
//! → sampling → encoder → the sender's channel; plus the counters of the exit summary.
//!
//! Bad input is reported as `source:line: reason` (never with line content), counted, and
//! skipped; the run goes on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::config::RunConfig;
use crate::decode::jsonline;
use crate::decode::omp::{self, BridgeFilter, Detector, Ev, Event, Format, decode_stream};
use crate::decode::session_log::{self, LogDecoder};
use crate::deliver::Outlet;
use crate::deliver::sender::Report;
use crate::encode::Encoder;
use crate::input::signals::{Blocking, Stop};
use crate::input::{Line, Lines, Next, Source, is_blank};
use crate::map::{MapConfig, Mapper};
use crate::messages::{human_bytes, plural};
use crate::model::{ObsKind, Record, sample_point};
use crate::run::stage::{self, Out, Stage, ToStage};
use crate::sanitize::{SanitizeStats, Sanitizer};

/// Lines the mapper ignores whatever they hold, recognised without parsing them: streaming
/// deltas are most of a live stream's lines and, before omp 16.5 and in RPC mode, each one
/// repeats the whole message so far. omp writes `type` first.
const UNPARSED_PREFIXES: &[&[u8]] = &[br#"{"type":"message_update""#];

/// Counters over the whole run.
#[derive(Debug, Default)]
pub struct Summary {
    pub sources: u64,
    pub formats: BTreeSet<&'static str>,
    pub lines: u64,
    /// Lines that could not be used: not JSON, not an object, too long, unknown type.
    pub skipped: u64,
    /// A last line cut off without a newline (a crashed writer): reported, tolerated.
    pub truncated: u64,
    pub sessions: u64,
    pub sampled_out: u64,
    pub unterminated: u64,
    /// Session-file entries on branches the user left with `/tree` (traced, marked).
    pub off_branch: u64,
    /// Lines for a session after its end marker (dropped; its root was already sent).
    pub after_end: u64,
    /// Sources whose first lines were all unusable (not omp output at all).
    pub not_omp: u64,
    /// `--session` ids that matched nothing (the run read less than was asked).
    pub unmatched: u64,
    /// Sessions skipped because another process was delivering them.
    pub busy_sessions: u64,
    /// Lines of types this version does not know, by type (names that are safe to print;
    /// others under one placeholder).
    pub unknown: BTreeMap<String, u64>,
    pub observations: [u64; ObsKind::ALL.len()],
    /// Redactions per kind, truncations, replaced blobs, shrunk records.
    pub sanitize: SanitizeStats,
}

/// Unknown type names listed in the summary; the rest are counted in "… more".
const UNKNOWN_NAMES_SHOWN: usize = 5;

impl Summary {
    /// Did anything get lost on the way in? (Exit status 1.) Unknown types count only
    /// when `strict`.
    pub fn lost_input(&self, strict: bool) -> bool {
        self.skipped > 0
            || self.unmatched > 0
            || self.busy_sessions > 0
            || (strict && !self.unknown.is_empty())
    }

    /// Count a line of a type this version does not know.
    pub fn unknown_type(&mut self, ty: &str) {
        // A type name is an identifier, but it is still input: keep only a safe one.
        let safe = !ty.is_empty()
            && ty.len() <= 40
            && ty
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
        let name = if safe { ty } else { "(no usable type)" };
        *self.unknown.entry(name.to_string()).or_default() += 1;
    }

    fn count(&mut self, rec: &Record) {
        if let Record::Observation(o) = rec {
            let i = ObsKind::ALL.iter().position(|k| *k == o.kind).unwrap_or(0);
            self.observations[i] += 1;
        }
    }
}

/// What happened to the request bodies, for the summary's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    Printed,
    Sent,
}

/// The exit summary line (counts only, never content).
pub struct SummaryLine<'a>(pub &'a Summary, pub &'a Report, pub Delivered);

impl fmt::Display for SummaryLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, r, how) = (self.0, self.1, self.2);
        write_input(f, s)?;
        write!(f, ", {}", s.sanitize.summary())?;
        write!(
            f,
            ", {}, {}",
            plural(r.batches, "batch"),
            human_bytes(r.bytes)
        )?;
        if how == Delivered::Sent {
            write_delivery(f, r)?;
        }
        Ok(())
    }
}

/// The input half of the summary: sources, lines, sessions, observations, what was skipped.
fn write_input(f: &mut fmt::Formatter<'_>, s: &Summary) -> fmt::Result {
    let formats: Vec<&str> = s.formats.iter().copied().collect();
    write!(
        f,
        "{} ({}), {}, {}",
        plural(s.sources, "source"),
        if formats.is_empty() && s.not_omp > 0 {
            "not omp output".to_string()
        } else if formats.is_empty() {
            "empty".to_string()
        } else {
            formats.join(", ")
        },
        plural(s.lines, "line"),
        plural(s.sessions, "session"),
    )?;
    if s.sampled_out > 0 {
        write!(f, " ({} sampled out)", s.sampled_out)?;
    }
    let total: u64 = s.observations.iter().sum();
    let by_kind: Vec<String> = ObsKind::ALL
        .iter()
        .zip(s.observations)
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{n} {}", k.as_str()))
        .collect();
    write!(f, ", {}", plural(total, "observation"))?;
    if !by_kind.is_empty() {
        write!(f, " ({})", by_kind.join(", "))?;
    }
    write!(f, ", {} skipped", s.skipped)?;
    if s.truncated > 0 {
        write!(f, ", {}", plural(s.truncated, "cut-off last line"))?;
    }
    if s.after_end > 0 {
        write!(f, ", {} after session end", plural(s.after_end, "line"))?;
    }
    if s.off_branch > 0 {
        write!(
            f,
            ", {} on abandoned /tree branches (traced, marked)",
            plural(s.off_branch, "entry")
        )?;
    }
    if s.unterminated > 0 {
        write!(f, ", {} unfinished", plural(s.unterminated, "session"))?;
    }
    if !s.unknown.is_empty() {
        let total: u64 = s.unknown.values().sum();
        let mut names: Vec<String> = s
            .unknown
            .iter()
            .take(UNKNOWN_NAMES_SHOWN)
            .map(|(k, n)| format!("{k} ({n})"))
            .collect();
        if s.unknown.len() > UNKNOWN_NAMES_SHOWN {
            names.push(format!("{} more", s.unknown.len() - UNKNOWN_NAMES_SHOWN));
        }
        let lines = if total == 1 {
            "1 line of a type".to_string()
        } else {
            format!("{total} lines of types")
        };
        write!(
            f,
            ", {lines} this version does not know: {}",
            names.join(", ")
        )?;
    }
    Ok(())
}

/// The delivery half: delivered, rejected, spooled, … and why.
fn write_delivery(f: &mut fmt::Formatter<'_>, r: &Report) -> fmt::Result {
    write!(f, ", {} delivered", plural(r.delivered, "event"))?;
    for (n, what) in [
        (r.rejected, "rejected"),
        (r.spooled, "spooled for the next run"),
        (r.skipped, "already delivered earlier"),
        (r.replayed, "replayed from the spool"),
        (r.busy, "left to another process delivering their session"),
        (
            r.unrecorded,
            "not recorded in the ledger (may be sent again)",
        ),
        (
            r.reconciled,
            "found on the server after a lost answer (not sent again)",
        ),
        (
            r.maybe_duplicated,
            "sent again after a lost answer (the server cannot say what it has: may be duplicated)",
        ),
    ] {
        if n > 0 {
            write!(f, ", {n} {what}")?;
        }
    }
    // Why, in a phrase per cause (the details: --debug).
    if !r.causes.is_empty() {
        let causes: Vec<String> = r.causes.iter().map(|(c, n)| format!("{n}: {c}")).collect();
        write!(f, " ({})", causes.join("; "))?;
    }
    Ok(())
}

/// Where records go after the mapper: sampling (and the summary's counts) here, then
/// sanitizing, encoding and the sender's channel. Made with [`Downstream::staged`], that
/// second part runs on threads of their own (the [`stage`]), so that
/// reading, parsing and mapping (the caller's thread) overlap with it.
pub struct Downstream<'a> {
    /// Redaction, truncation and the per-event size guarantee (every record passes there
    /// before it is encoded, so nothing unsanitized is printed or sent), the encoder and
    /// the outlet.
    pub out: Out<'a>,
    pub sample_rate: f64,
    /// Sampling decision per session id.
    kept: HashMap<Arc<str>, bool>,
    stage: Option<Stage<'a>>,
}

impl<'a> Downstream<'a> {
    /// Sanitize, encode and hand over on the caller's thread.
    pub fn new(
        encoder: &'a dyn Encoder,
        outlet: &'a dyn Outlet,
        sanitizer: &'a Sanitizer,
        sample_rate: f64,
    ) -> Self {
        Downstream {
            out: Out {
                encoder,
                outlet,
                sanitizer,
            },
            sample_rate,
            kept: HashMap::new(),
            stage: None,
        }
    }

    /// Sanitize, encode and hand over on threads of `scope` (see the type's docs). Call
    /// [`Downstream::finish`] at the end for the sanitizer's counters.
    pub fn staged<'env>(
        scope: &'a std::thread::Scope<'a, 'env>,
        encoder: &'a dyn Encoder,
        outlet: &'a dyn Outlet,
        sanitizer: &'a Sanitizer,
        sample_rate: f64,
    ) -> Self {
        let mut down = Downstream::new(encoder, outlet, sanitizer, sample_rate);
        down.stage = Some(Stage::spawn(scope, down.out));
        down
    }

    pub fn take(&mut self, records: &mut Vec<Record>, summary: &mut Summary) -> Result<()> {
        let mut kept = Vec::with_capacity(records.len());
        for rec in records.drain(..) {
            let sid = rec.trace().session_id.as_str();
            let keep = match self.kept.get(sid) {
                Some(k) => *k,
                None => {
                    let k = self.sample_rate >= 1.0 || sample_point(sid) < self.sample_rate;
                    self.kept.insert(sid.into(), k);
                    if !k {
                        summary.sampled_out += 1;
                    }
                    k
                }
            };
            if !keep {
                continue;
            }
            summary.count(&rec);
            kept.push(rec);
        }
        let Some(stage) = &mut self.stage else {
            for rec in kept {
                self.out.deliver(rec, &mut summary.sanitize)?;
            }
            return Ok(());
        };
        if kept.is_empty() {
            return Ok(());
        }
        let weight = kept.iter().map(stage::weight).sum();
        stage.send(ToStage::Records(kept, weight))
    }

    /// Whether records taken now would go straight through (see [`Stage::has_room`]);
    /// always without a stage.
    pub fn has_room(&self) -> bool {
        self.stage.as_ref().is_none_or(Stage::has_room)
    }

    /// Wait until everything taken so far is in the outlet (at once without a stage).
    pub fn sync(&mut self) -> Result<()> {
        let Some(stage) = &mut self.stage else {
            return Ok(());
        };
        let (done, wait) = crossbeam_channel::bounded(1);
        stage.send(ToStage::Sync(done))?;
        if wait.recv().is_ok() {
            return Ok(());
        }
        stage.failed()
    }

    /// Let the stage finish what it has and add its counters to `summary` (nothing to do
    /// without a stage).
    pub fn finish(mut self, summary: &mut Summary) -> Result<()> {
        let Some((stats, outcome)) = self.stage.as_mut().and_then(Stage::finish) else {
            return Ok(());
        };
        summary.sanitize.merge(&stats);
        outcome
    }
}

/// The decoder chosen for a source.
enum Decoder {
    Stream,
    Log(LogDecoder),
}

impl Decoder {
    fn for_format(f: Format) -> Decoder {
        match f {
            Format::Live | Format::Extension => Decoder::Stream,
            Format::SessionLog => Decoder::Log(LogDecoder::default()),
        }
    }
}

/// Read one source to its end.
pub fn read_source(
    source: &Source,
    stop: &Stop,
    cfg: &RunConfig,
    map_cfg: &Arc<MapConfig>,
    down: &mut Downstream<'_>,
    summary: &mut Summary,
) -> Result<()> {
    let front = Front::new(source.display(), cfg.format, Mapper::new(map_cfg.clone()));
    read_into(source, stop, front, down, summary).map(drop)
}

/// Read one source to its end through `front`, and hand the front back (`backfill` reads
/// what a parent file's mapper learned for its subagents).
pub fn read_into(
    source: &Source,
    stop: &Stop,
    mut front: Front,
    down: &mut Downstream<'_>,
    summary: &mut Summary,
) -> Result<Front> {
    let name = source.display();
    let (reader, again) = source
        .open_with_handle()
        .with_context(|| format!("cannot open {name}"))?;
    if let Some(again) = again {
        front.reread_from(again);
    }
    let blocking = if source.is_live() {
        Blocking::Yes
    } else {
        Blocking::No
    };
    let reader = stop.guard(reader, blocking);
    summary.sources += 1;
    let mut lines = Lines::new(reader);
    loop {
        match lines
            .next_line()
            .with_context(|| format!("reading {name}"))?
        {
            Next::Eof => break,
            Next::TooLong { number } => front.too_long(number, summary),
            Next::Line(line) => front.line(&line, down, summary)?,
        }
    }
    front.finish(down, summary)?;
    // Everything this source produced is in the outlet when it has been read (backfill
    // tracks what each file delivered).
    down.sync()?;
    Ok(front)
}

/// Lines of a source held back, with what was wrong with them, until the source shows
/// whether it is omp output at all.
const PROBE_LINES: usize = 10;

/// The front half of the pipeline for one source: raw lines → JSON → format detection →
/// decoder → mapper → downstream. Pipe, `backfill` and `watch` all feed lines through one
/// of these, so the same input gives the same warnings, counts and observations whichever
/// way it is read.
pub struct Front {
    name: String,
    mapper: Mapper,
    detector: Detector,
    /// Lines held back until the format is known.
    pending: Vec<Value>,
    decoder: Option<Decoder>,
    bridge: BridgeFilter,
    events: Vec<Event>,
    records: Vec<Record>,
    /// Problems with the first lines, reported once the source is known to be omp output
    /// (or folded into one message when it is not).
    probe: Probe,
    /// The format, when given rather than detected (named in the summary at the end).
    given: Option<Format>,
    /// The source file again, for a session-file decoder to read held entries back from.
    reread: Option<std::fs::File>,
}

/// Whether a source has shown a JSON object yet.
enum Probe {
    /// Not yet: the first lines' problems (line, reason) are held.
    Open(Vec<(u64, String)>),
    /// It has: problems are reported as they come.
    Omp,
    /// Its first lines were all unusable: further bad lines are counted, not reported (its
    /// lines are still read: omp output that starts late is still used).
    NotOmp,
}

impl Front {
    /// A source whose format is detected from its first lines (or given).
    pub fn new(name: String, format: Option<Format>, mapper: Mapper) -> Front {
        Front {
            name,
            mapper,
            detector: Detector::default(),
            pending: Vec::new(),
            decoder: format.map(Decoder::for_format),
            bridge: BridgeFilter::default(),
            events: Vec::new(),
            records: Vec::new(),
            probe: Probe::Open(Vec::new()),
            given: format,
            reread: None,
        }
    }

    /// A session file still being written (`watch`): entries are emitted as they come.
    pub fn appended_log(name: String, mapper: Mapper) -> Front {
        Front {
            decoder: Some(Decoder::Log(LogDecoder::as_appended())),
            ..Front::new(name, Some(Format::SessionLog), mapper)
        }
    }

    pub fn mapper(&self) -> &Mapper {
        &self.mapper
    }

    /// A line over the length limit.
    pub fn too_long(&mut self, number: u64, summary: &mut Summary) {
        summary.lines += 1;
        self.skip(number, "line longer than 64 MiB, skipped".into(), summary);
    }

    /// A line that cannot be used: counted, and reported unless the source turned out not
    /// to be omp output.
    fn skip(&mut self, number: u64, reason: String, summary: &mut Summary) {
        summary.skipped += 1;
        match &mut self.probe {
            Probe::Open(held) => {
                held.push((number, reason));
                if held.len() >= PROBE_LINES {
                    self.not_omp(summary);
                }
            }
            Probe::Omp => warn(&self.name, number, &reason),
            Probe::NotOmp => {}
        }
    }

    /// Every line so far was unusable: one message instead of one per line.
    fn not_omp(&mut self, summary: &mut Summary) {
        if let Probe::Open(held) = &self.probe {
            warn(
                &self.name,
                0,
                &format!(
                    "does not look like omp output ({} of the first {} lines are not JSON \
                     objects); skipped",
                    held.len(),
                    held.len()
                ),
            );
            summary.not_omp += 1;
        }
        self.probe = Probe::NotOmp;
    }

    /// A JSON object arrived: the held problems are reported after all.
    fn seen_object(&mut self) {
        if let Probe::Open(held) = std::mem::replace(&mut self.probe, Probe::Omp) {
            for (number, reason) in held {
                warn(&self.name, number, &reason);
            }
        }
    }

    /// One raw line of the source.
    pub fn line(
        &mut self,
        line: &Line<'_>,
        down: &mut Downstream<'_>,
        summary: &mut Summary,
    ) -> Result<()> {
        summary.lines += 1;
        if is_blank(line.bytes) || UNPARSED_PREFIXES.iter().any(|p| line.bytes.starts_with(p)) {
            return Ok(());
        }
        // Only what the decoders read is built (see `jsonline`).
        let buffering = matches!(&self.decoder, Some(Decoder::Log(log)) if log.buffers());
        let rules = if buffering {
            session_log::light_fields
        } else {
            omp::stream_fields
        };
        let value = match jsonline::parse(line.bytes, rules) {
            Ok(v) if v.is_object() => v,
            Ok(_) => {
                self.skip(line.number, "not a JSON object, skipped".into(), summary);
                return Ok(());
            }
            // A source already found not to be omp output ends as it went: skipped, quietly.
            Err(_) if !line.terminated && matches!(self.probe, Probe::NotOmp) => {
                summary.skipped += 1;
                return Ok(());
            }
            Err(_) if !line.terminated => {
                summary.truncated += 1;
                warn(
                    &self.name,
                    line.number,
                    "last line is cut off (no newline at the end; omp crashed or is still \
                     writing?), ignored",
                );
                return Ok(());
            }
            Err(e) => {
                let reason = format!(
                    "not JSON ({:?} error at column {}), skipped",
                    e.classify(),
                    e.column()
                );
                self.skip(line.number, reason, summary);
                return Ok(());
            }
        };
        self.seen_object();
        if !self.bridge.keep(&value) {
            return Ok(());
        }
        if buffering && let Some(Decoder::Log(log)) = &mut self.decoder {
            // Held as raw bytes until its session ends; parsed then.
            log.push_raw(
                line.number,
                (line.bytes, line.offset),
                value,
                &mut self.events,
            );
            return self.emit(summary, down);
        }
        if self.decoder.is_some() {
            self.step(value, summary, down)?;
        } else {
            let decided = self.detector.push(&value);
            self.pending.push(value);
            if let Some(f) = decided {
                self.decide(f, summary);
                for v in std::mem::take(&mut self.pending) {
                    self.step(v, summary, down)?;
                }
            }
        }
        down.take(&mut self.records, summary)
    }

    /// The end of the source: decide with what there is, then close everything.
    pub fn finish(&mut self, down: &mut Downstream<'_>, summary: &mut Summary) -> Result<()> {
        if let Probe::Open(held) = &self.probe
            && held.len() > 1
        {
            self.not_omp(summary);
        }
        self.seen_object();
        if self.decoder.is_none() && !self.pending.is_empty() {
            let f = self.detector.finish();
            self.decide(f, summary);
        }
        for v in std::mem::take(&mut self.pending) {
            self.step(v, summary, down)?;
        }
        if let Some(Decoder::Log(log)) = &mut self.decoder {
            log.finish(&mut self.events);
            summary.off_branch += log.off_branch;
            log.off_branch = 0;
        }
        self.emit(summary, down)?;
        if let Some(f) = self.given {
            summary.formats.insert(f.as_str());
        }
        self.mapper.finish(&mut self.records);
        down.take(&mut self.records, summary)?;
        summary.sessions += self.mapper.stats.sessions;
        summary.unterminated += self.mapper.stats.unterminated;
        summary.after_end += self.mapper.stats.after_end;
        Ok(())
    }

    fn decide(&mut self, f: Format, summary: &mut Summary) {
        summary.formats.insert(f.as_str());
        self.decoder = Some(Decoder::for_format(f));
        if let Some(file) = self.reread.take() {
            self.reread_from(file);
        }
    }

    /// The source is this regular file: a session-file decoder reads its held entries back
    /// from it rather than keeping a copy (see `LogDecoder::reread_from`).
    pub fn reread_from(&mut self, file: std::fs::File) {
        match &mut self.decoder {
            Some(Decoder::Log(log)) => log.reread_from(file),
            Some(_) => {}
            None => self.reread = Some(file),
        }
    }

    /// Decode one parsed line and pass what it yields on.
    fn step(&mut self, v: Value, summary: &mut Summary, down: &mut Downstream<'_>) -> Result<()> {
        match &mut self.decoder {
            Some(Decoder::Log(log)) => log.push(v, &mut self.events),
            _ => self.events.push(decode_stream(v)),
        }
        self.emit(summary, down)
    }

    /// Feed decoded events to the mapper; for a session file, also decode its finished
    /// session's entries one at a time, each straight through the mapper and downstream, so
    /// a long session is never held parsed (see `LogDecoder::drain`).
    fn emit(&mut self, summary: &mut Summary, down: &mut Downstream<'_>) -> Result<()> {
        self.feed(summary);
        if !matches!(self.decoder, Some(Decoder::Log(_))) {
            return Ok(());
        }
        down.take(&mut self.records, summary)?;
        while let Some(Decoder::Log(log)) = &mut self.decoder {
            if !log.due(down.has_room()) || !log.drain(&mut self.events) {
                break;
            }
            for (n, e) in std::mem::take(&mut log.bad) {
                let reason = format!(
                    "not JSON ({:?} error at column {}), skipped",
                    e.classify(),
                    e.column()
                );
                summary.skipped += 1;
                warn(&self.name, n, &reason);
            }
            self.feed(summary);
            down.take(&mut self.records, summary)?;
        }
        Ok(())
    }

    /// Hand decoded events to the mapper. Unknown types (a newer omp or pi) are counted by
    /// name for the summary, never warned about line by line: everything known is still
    /// delivered, so they do not fail the run (unless `--strict`).
    fn feed(&mut self, summary: &mut Summary) {
        for ev in self.events.drain(..) {
            if let Ev::Unknown(ty) = &ev.ev {
                summary.unknown_type(ty);
            }
            self.mapper.push(ev, &mut self.records);
        }
    }
}

/// A non-fatal input problem on stderr: `omp-langfuse: warning: source:line: reason`.
pub fn warn(source: &str, line: u64, reason: &str) {
    crate::messages::warn_at(source, line, reason);
}
