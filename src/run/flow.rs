//! One source through the front half: lines → JSON → format detection → decoder → mapper
//! → sampling → encoder → the sender's channel; plus the counters of the exit summary.
//!
//! Bad input is reported as `source:line: reason` (never with line content), counted, and
//! skipped; the run goes on.

use std::collections::{BTreeSet, HashMap};
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
use crate::input::{Lines, Next, Source, is_blank};
use crate::map::{MapConfig, Mapper};
use crate::messages::{human_bytes, plural};
use crate::model::{ObsKind, Record, sample_point};
use crate::sanitize::{MAX_EVENT_BYTES, SanitizeStats, Sanitizer};

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
    pub off_branch: u64,
    /// Lines for a session after its end marker (dropped; its root was already sent).
    pub after_end: u64,
    pub observations: [u64; ObsKind::ALL.len()],
    /// Redactions per kind, truncations, replaced blobs, shrunk records.
    pub sanitize: SanitizeStats,
}

impl Summary {
    /// Did anything get lost on the way in? (Exit status 1.)
    pub fn lost_input(&self) -> bool {
        self.skipped > 0
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
        let formats: Vec<&str> = s.formats.iter().copied().collect();
        write!(
            f,
            "{} ({}), {}, {}",
            plural(s.sources, "source"),
            if formats.is_empty() {
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
            write!(f, ", {} off-branch", plural(s.off_branch, "entry"))?;
        }
        if s.unterminated > 0 {
            write!(f, ", {} unfinished", plural(s.unterminated, "session"))?;
        }
        write!(f, ", {}", s.sanitize.summary())?;
        write!(
            f,
            ", {}, {}",
            plural(r.batches, "batch"),
            human_bytes(r.bytes)
        )?;
        if how == Delivered::Sent {
            write!(f, ", {} delivered", plural(r.delivered, "event"))?;
            for (n, what) in [
                (r.rejected, "rejected"),
                (r.spooled, "spooled for the next run"),
                (r.skipped, "already delivered earlier"),
                (r.replayed, "replayed from the spool"),
            ] {
                if n > 0 {
                    write!(f, ", {n} {what}")?;
                }
            }
        }
        Ok(())
    }
}

/// Where records go after the mapper: sampling (and the summary's counts) here, then
/// sanitizing, encoding and the sender's channel. Made with [`Downstream::staged`], that
/// second part runs on a thread of its own (the stage), so that reading, parsing and mapping
/// (the caller's thread) overlap with it on a second core; records cross over one line's
/// worth at a time, through a short queue, in order.
pub struct Downstream<'a> {
    pub encoder: &'a dyn Encoder,
    pub outlet: &'a dyn Outlet,
    /// Redaction, truncation and the per-event size guarantee: every record passes here
    /// before it is encoded, so nothing unsanitized is printed or sent.
    pub sanitizer: &'a Sanitizer,
    pub sample_rate: f64,
    /// Sampling decision per session id.
    kept: HashMap<Arc<str>, bool>,
    stage: Option<Stage<'a>>,
}

/// What the stage thread is handed.
enum ToStage {
    /// The kept records of one line.
    Records(Vec<Record>),
    /// Answer once everything handed over before is in the outlet.
    Sync(crossbeam_channel::Sender<()>),
}

/// The stage thread of a staged [`Downstream`].
struct Stage<'a> {
    tx: Option<crossbeam_channel::Sender<ToStage>>,
    handle: Option<std::thread::ScopedJoinHandle<'a, (SanitizeStats, Result<()>)>>,
    /// Its sanitizer counters and outcome once it has stopped.
    ended: Option<(SanitizeStats, Result<()>)>,
}

/// Lines' worth of records queued for the stage (each holds the records of one input line).
const STAGE_QUEUE: usize = 4;

impl<'a> Downstream<'a> {
    /// Sanitize, encode and hand over on the caller's thread.
    pub fn new(
        encoder: &'a dyn Encoder,
        outlet: &'a dyn Outlet,
        sanitizer: &'a Sanitizer,
        sample_rate: f64,
    ) -> Self {
        Downstream {
            encoder,
            outlet,
            sanitizer,
            sample_rate,
            kept: HashMap::new(),
            stage: None,
        }
    }

    /// Sanitize, encode and hand over on a thread of `scope` (see the type's docs). Call
    /// [`Downstream::finish`] at the end for the sanitizer's counters.
    pub fn staged<'env>(
        scope: &'a std::thread::Scope<'a, 'env>,
        encoder: &'a dyn Encoder,
        outlet: &'a dyn Outlet,
        sanitizer: &'a Sanitizer,
        sample_rate: f64,
    ) -> Self {
        let (tx, rx) = crossbeam_channel::bounded::<ToStage>(STAGE_QUEUE);
        let handle = std::thread::Builder::new()
            .name("omp-langfuse-stage".into())
            .spawn_scoped(scope, move || {
                let mut stats = SanitizeStats::default();
                for msg in rx {
                    match msg {
                        ToStage::Records(batch) => {
                            for rec in batch {
                                if let Err(e) = deliver(encoder, outlet, sanitizer, rec, &mut stats)
                                {
                                    return (stats, Err(e));
                                }
                            }
                        }
                        ToStage::Sync(done) => {
                            let _ = done.send(());
                        }
                    }
                }
                (stats, Ok(()))
            })
            .expect("spawning the stage thread");
        Downstream {
            stage: Some(Stage {
                tx: Some(tx),
                handle: Some(handle),
                ended: None,
            }),
            ..Downstream::new(encoder, outlet, sanitizer, sample_rate)
        }
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
                deliver(
                    self.encoder,
                    self.outlet,
                    self.sanitizer,
                    rec,
                    &mut summary.sanitize,
                )?;
            }
            return Ok(());
        };
        if kept.is_empty() {
            return Ok(());
        }
        stage.send(ToStage::Records(kept))
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
        let Some(stage) = &mut self.stage else {
            return Ok(());
        };
        stage.stop();
        let Some((stats, outcome)) = stage.ended.take() else {
            return Ok(());
        };
        summary.sanitize.merge(&stats);
        outcome
    }
}

impl Stage<'_> {
    fn send(&mut self, msg: ToStage) -> Result<()> {
        if let Some(tx) = &self.tx
            && tx.send(msg).is_ok()
        {
            return Ok(());
        }
        self.failed()
    }

    /// The stage stopped early: its error says why.
    fn failed(&mut self) -> Result<()> {
        self.stop();
        match &self.ended {
            Some((_, Err(e))) => Err(anyhow::anyhow!("{e:#}")),
            _ => Err(anyhow::anyhow!("the delivery worker stopped unexpectedly")),
        }
    }

    fn stop(&mut self) {
        self.tx = None;
        if let Some(handle) = self.handle.take() {
            self.ended = Some(handle.join().unwrap_or_else(|_| {
                (
                    SanitizeStats::default(),
                    Err(anyhow::anyhow!("the sanitizing thread panicked")),
                )
            }));
        }
    }
}

/// Sanitize one kept record, encode it (shrinking it if it is still too large) and hand it
/// to the outlet.
fn deliver(
    encoder: &dyn Encoder,
    outlet: &dyn Outlet,
    sanitizer: &Sanitizer,
    mut rec: Record,
    stats: &mut SanitizeStats,
) -> Result<()> {
    sanitizer.record(&mut rec, stats);
    let Some(mut item) = encoder.encode(&rec) else {
        return Ok(());
    };
    if item.json.len() > MAX_EVENT_BYTES {
        // Rare: shrink further (never drop) until the event fits, then re-encode.
        let size = |r: &Record| encoder.encode(r).map_or(0, |i| i.json.len());
        sanitizer.fit(&mut rec, MAX_EVENT_BYTES, size, stats);
        match encoder.encode(&rec) {
            Some(shrunk) => item = shrunk,
            None => return Ok(()),
        }
    }
    outlet.put(item)
}

/// The decoder chosen for a source.
enum Decoder {
    Stream,
    Log(LogDecoder),
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
    read_into(
        source,
        stop,
        cfg,
        &mut Mapper::new(map_cfg.clone()),
        down,
        summary,
    )
}

/// Read one source to its end through a given mapper (`backfill` nests subagent files and
/// reads what their parents spawned from it afterwards).
pub fn read_into(
    source: &Source,
    stop: &Stop,
    cfg: &RunConfig,
    mapper: &mut Mapper,
    down: &mut Downstream<'_>,
    summary: &mut Summary,
) -> Result<()> {
    let name = source.display();
    let reader = source
        .open()
        .with_context(|| format!("cannot open {name}"))?;
    let blocking = if source.is_live() {
        Blocking::Yes
    } else {
        Blocking::No
    };
    let reader = stop.guard(reader, blocking);
    summary.sources += 1;
    let mut lines = Lines::new(reader);
    let mut detector = Detector::default();
    // Lines held back until the format is known.
    let mut pending: Vec<(u64, Value)> = Vec::new();
    let mut decoder: Option<Decoder> = cfg.format.map(|f| new_decoder(f, summary));
    let mut flow = Flow::new(&name);
    let mut bridge = BridgeFilter::default();

    loop {
        let next = lines
            .next_line()
            .with_context(|| format!("reading {name}"))?;
        let (number, value) = match next {
            Next::Eof => break,
            Next::TooLong { number } => {
                summary.lines += 1;
                summary.skipped += 1;
                warn(&name, number, "line longer than 64 MiB, skipped");
                continue;
            }
            Next::Line(line) => {
                summary.lines += 1;
                if is_blank(line.bytes)
                    || UNPARSED_PREFIXES.iter().any(|p| line.bytes.starts_with(p))
                {
                    continue;
                }
                // Only what the decoders read is built (see `jsonline`).
                let rules = match &decoder {
                    Some(Decoder::Log(log)) if log.buffers() => session_log::light_fields,
                    _ => omp::stream_fields,
                };
                match jsonline::parse(line.bytes, rules) {
                    Ok(v) if v.is_object() => {
                        if let Some(Decoder::Log(log)) = &mut decoder
                            && log.buffers()
                        {
                            if !bridge.keep(&v) {
                                continue;
                            }
                            // Held as raw bytes until its session ends; parsed then.
                            log.push_raw(line.number, line.bytes, v, &mut flow.events);
                            flow.emit(Some(log), line.number, mapper, summary, down)?;
                            continue;
                        }
                        (line.number, v)
                    }
                    Ok(_) => {
                        summary.skipped += 1;
                        warn(&name, line.number, "not a JSON object, skipped");
                        continue;
                    }
                    Err(_) if !line.terminated => {
                        summary.truncated += 1;
                        warn(
                            &name,
                            line.number,
                            "last line is cut off (no newline at the end; omp crashed or is still \
                             writing?), ignored",
                        );
                        continue;
                    }
                    Err(e) => {
                        summary.skipped += 1;
                        warn(
                            &name,
                            line.number,
                            &format!(
                                "not JSON ({:?} error at column {}), skipped",
                                e.classify(),
                                e.column()
                            ),
                        );
                        continue;
                    }
                }
            }
        };
        if !bridge.keep(&value) {
            continue;
        }
        match &mut decoder {
            Some(d) => flow.step(d, number, value, mapper, summary, down)?,
            None => {
                let decided = detector.push(&value);
                pending.push((number, value));
                if let Some(f) = decided {
                    let mut d = new_decoder(f, summary);
                    for (n, v) in pending.drain(..) {
                        flow.step(&mut d, n, v, mapper, summary, down)?;
                    }
                    decoder = Some(d);
                }
            }
        }
        down.take(&mut flow.records, summary)?;
    }

    // End of input: decide with what we have, then drain everything.
    let mut d = match decoder {
        Some(d) => d,
        None if pending.is_empty() => {
            summary.sessions += mapper.stats.sessions;
            return down.sync();
        }
        None => new_decoder(detector.finish(), summary),
    };
    for (n, v) in pending.drain(..) {
        flow.step(&mut d, n, v, mapper, summary, down)?;
    }
    if let Decoder::Log(log) = &mut d {
        log.finish(&mut flow.events);
        flow.emit(Some(log), 0, mapper, summary, down)?;
        summary.off_branch += log.off_branch;
    }
    mapper.finish(&mut flow.records);
    down.take(&mut flow.records, summary)?;
    summary.sessions += mapper.stats.sessions;
    summary.unterminated += mapper.stats.unterminated;
    summary.after_end += mapper.stats.after_end;
    // Everything this source produced is in the outlet when it has been read (backfill
    // tracks what each file delivered).
    down.sync()
}

fn new_decoder(f: Format, summary: &mut Summary) -> Decoder {
    summary.formats.insert(f.as_str());
    match f {
        Format::Live | Format::Extension => Decoder::Stream,
        Format::SessionLog => Decoder::Log(LogDecoder::default()),
    }
}

/// One source's events and records between the decoder, the mapper and downstream, and
/// the unknown event types already reported.
struct Flow<'n> {
    name: &'n str,
    events: Vec<Event>,
    records: Vec<Record>,
    warned: BTreeSet<String>,
}

impl<'n> Flow<'n> {
    fn new(name: &'n str) -> Self {
        Flow {
            name,
            events: Vec::new(),
            records: Vec::new(),
            warned: BTreeSet::new(),
        }
    }

    /// Decode one parsed line and pass what it yields on.
    fn step(
        &mut self,
        d: &mut Decoder,
        line: u64,
        v: Value,
        mapper: &mut Mapper,
        summary: &mut Summary,
        down: &mut Downstream<'_>,
    ) -> Result<()> {
        decode(d, v, &mut self.events);
        let log = match d {
            Decoder::Log(log) => Some(log),
            Decoder::Stream => None,
        };
        self.emit(log, line, mapper, summary, down)
    }

    /// Hand decoded events to the mapper, reporting unknown types once per type.
    fn feed(&mut self, line: u64, mapper: &mut Mapper, summary: &mut Summary) {
        feed(
            self.name,
            line,
            &mut self.events,
            mapper,
            &mut self.records,
            summary,
            &mut self.warned,
        );
    }

    /// Feed decoded events to the mapper; for a session file, also decode its finished
    /// session's entries one at a time, each straight through the mapper and downstream, so
    /// a long session is never held parsed (see `LogDecoder::drain`).
    fn emit(
        &mut self,
        log: Option<&mut LogDecoder>,
        line: u64,
        mapper: &mut Mapper,
        summary: &mut Summary,
        down: &mut Downstream<'_>,
    ) -> Result<()> {
        self.feed(line, mapper, summary);
        if let Some(log) = log {
            down.take(&mut self.records, summary)?;
            while log.drain(&mut self.events) {
                report_bad(self.name, log, summary);
                self.feed(line, mapper, summary);
                down.take(&mut self.records, summary)?;
            }
        }
        Ok(())
    }
}

/// Session-file entries that failed their full parse when emitted.
fn report_bad(name: &str, log: &mut LogDecoder, summary: &mut Summary) {
    for (line, e) in log.bad.drain(..) {
        summary.skipped += 1;
        warn(
            name,
            line,
            &format!(
                "not JSON ({:?} error at column {}), skipped",
                e.classify(),
                e.column()
            ),
        );
    }
}

fn decode(d: &mut Decoder, v: Value, events: &mut Vec<Event>) {
    match d {
        Decoder::Stream => events.push(decode_stream(v)),
        Decoder::Log(log) => log.push(v, events),
    }
}

/// Hand decoded events to the mapper, reporting unknown types once per type.
fn feed(
    name: &str,
    line: u64,
    events: &mut Vec<Event>,
    mapper: &mut Mapper,
    records: &mut Vec<Record>,
    summary: &mut Summary,
    warned: &mut BTreeSet<String>,
) {
    for ev in events.drain(..) {
        if let Ev::Unknown(ty) = &ev.ev {
            summary.skipped += 1;
            if warned.insert(ty.clone()) {
                // A type name is an identifier, but it is still input: print only a safe one.
                let shown = if !ty.is_empty()
                    && ty.len() <= 40
                    && ty
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
                {
                    format!("unknown event type \"{ty}\"")
                } else {
                    "line without a recognised event type".to_string()
                };
                warn(
                    name,
                    line,
                    &format!("{shown}, skipped (further ones counted only)"),
                );
            }
        }
        mapper.push(ev, records);
    }
}

/// A non-fatal input problem on stderr: `omp-langfuse: warning: source:line: reason`.
pub fn warn(source: &str, line: u64, reason: &str) {
    crate::messages::warn_at(source, line, reason);
}
