//! The stage: sanitizing, encoding and handing records to the outlet on threads of their
//! own, so that reading, parsing and mapping (the caller's thread) overlap with them.
//!
//! Two threads, in a line: the first redacts records in the order they come (a secret
//! learned from one is redacted in every later one), the second truncates them, encodes them
//! and hands them to the outlet. Records cross over one input line's worth at a time, in
//! order.
//!
//! What waits between the threads is bounded in bytes ([`STAGE_BYTES`] of records, counted
//! by [`weight`]), not in messages: lines vary from a few hundred bytes to megabytes, and a
//! count small enough for the megabytes leaves too little slack for the rest (with four
//! lines of it, the threads waited on each other for a fifth of the time).

use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};

use anyhow::Result;
use crossbeam_channel::{Receiver, Sender};
use serde_json::{Map, Value};

use crate::deliver::Outlet;
use crate::deliver::sender::Gauge;
use crate::encode::Encoder;
use crate::model::Record;
use crate::sanitize::{MAX_EVENT_BYTES, SanitizeStats, Sanitizer};

/// Bytes of records (see [`weight`]) handed to the stage and not yet through it. Sending
/// 1 GiB of session log took 12.4 s at 58 MB peak RSS with four lines of queue; with 2 MB
/// of records 10.0 s at 65 MB, with 4 MB 9.4 s at 72 MB (the memory is a little over the
/// bytes held: records' trees and the allocator's per-thread arenas).
pub const STAGE_BYTES: usize = 2 << 20;

/// Messages waiting for each thread at most, whatever their weight (a backstop: the bytes
/// bind first unless lines are tiny).
const STAGE_QUEUE: usize = 4096;

/// What the stage threads are handed.
pub enum ToStage {
    /// The kept records of one line, and their weight.
    Records(Vec<Record>, usize),
    /// Answer once everything handed over before is in the outlet.
    Sync(Sender<()>),
}

/// Roughly the bytes a record holds: its strings' lengths and a little per JSON node, over
/// the parts that can be large (input, output, metadata). A walk over the tree, never over
/// the bytes.
pub fn weight(rec: &Record) -> usize {
    const NODE: usize = 32;
    fn map(m: &Map<String, Value>) -> usize {
        m.iter().map(|(k, v)| k.len() + value(v)).sum()
    }
    fn value(v: &Value) -> usize {
        NODE + match v {
            Value::String(s) => s.len(),
            Value::Array(a) => a.iter().map(value).sum(),
            Value::Object(m) => map(m),
            _ => 0,
        }
    }
    let (input, output, meta) = match rec {
        Record::Trace(t) => (&t.input, &t.output, None),
        Record::Observation(o) => (&o.input, &o.output, Some(&o.metadata)),
    };
    let io: usize = [input, output].into_iter().flatten().map(value).sum();
    NODE * 8 + meta.map_or(0, map) + io
}

/// What a record passes through after the mapper: the sanitizer, the encoder, the outlet.
#[derive(Clone, Copy)]
pub struct Out<'a> {
    pub encoder: &'a dyn Encoder,
    pub outlet: &'a dyn Outlet,
    pub sanitizer: &'a Sanitizer,
}

impl Out<'_> {
    /// Sanitize one record, encode it (shrinking it if it is still too large) and hand it
    /// to the outlet, all on the caller's thread.
    pub fn deliver(&self, mut rec: Record, stats: &mut SanitizeStats) -> Result<()> {
        self.sanitizer.record(&mut rec, stats);
        self.emit(rec, stats)
    }

    /// The rest of [`Out::deliver`] for a record that is only redacted so far.
    fn put(&self, mut rec: Record, stats: &mut SanitizeStats) -> Result<()> {
        self.sanitizer.limit_record(&mut rec, stats);
        self.emit(rec, stats)
    }

    /// Encode a sanitized record (shrinking it if it is still too large) and hand it to the
    /// outlet.
    fn emit(&self, mut rec: Record, stats: &mut SanitizeStats) -> Result<()> {
        let Some(mut item) = self.encoder.encode(&rec) else {
            return Ok(());
        };
        if item.json.len() > MAX_EVENT_BYTES {
            // Rare: shrink further (never drop) until the event fits, then re-encode.
            let size = |r: &Record| self.encoder.encode(r).map_or(0, |i| i.json.len());
            self.sanitizer.fit(&mut rec, MAX_EVENT_BYTES, size, stats);
            match self.encoder.encode(&rec) {
                Some(shrunk) => item = shrunk,
                None => return Ok(()),
            }
        }
        self.outlet.put(item)
    }
}

/// The running stage (see the module documentation).
pub struct Stage<'a> {
    tx: Option<Sender<ToStage>>,
    /// The bytes of records handed over and not yet through: the caller adds a message's
    /// weight before handing it over, the second thread subtracts it once it is through.
    gauge: Arc<Gauge>,
    redact: Option<ScopedJoinHandle<'a, SanitizeStats>>,
    last: Option<ScopedJoinHandle<'a, (SanitizeStats, Result<()>)>>,
    /// Their sanitizer counters and outcome once they have stopped.
    ended: Option<(SanitizeStats, Result<()>)>,
}

impl<'a> Stage<'a> {
    /// Start both threads on `scope`.
    pub fn spawn<'env>(scope: &'a Scope<'a, 'env>, out: Out<'a>) -> Stage<'a> {
        let gauge = Arc::new(Gauge::default());
        let (tx, rx) = crossbeam_channel::bounded::<ToStage>(STAGE_QUEUE);
        let (tx_redacted, rx_redacted) = crossbeam_channel::bounded::<ToStage>(STAGE_QUEUE);
        let redact = std::thread::Builder::new()
            .name("omp-langfuse-redact".into())
            .spawn_scoped(scope, move || redact_all(out.sanitizer, &rx, &tx_redacted))
            .expect("spawning the redaction thread");
        let last_gauge = gauge.clone();
        let last = std::thread::Builder::new()
            .name("omp-langfuse-stage".into())
            .spawn_scoped(scope, move || put_all(out, &last_gauge, &rx_redacted))
            .expect("spawning the stage thread");
        Stage {
            tx: Some(tx),
            gauge,
            redact: Some(redact),
            last: Some(last),
            ended: None,
        }
    }

    /// Whether the stage holds at most half its bound of bytes, so that a line's records
    /// handed over now go straight in (or the second thread stopped, and nothing waits).
    pub fn has_room(&self) -> bool {
        self.gauge.held() <= STAGE_BYTES / 2 || self.last.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Hand over one message, waiting while the stage holds its bound of bytes.
    pub fn send(&mut self, msg: ToStage) -> Result<()> {
        if let ToStage::Records(_, n) = &msg {
            // A second thread that stopped (an error, a panic) will not let anything
            // through: never wait for it then.
            let busy = || self.last.as_ref().is_some_and(|h| !h.is_finished());
            self.gauge.acquire(*n, STAGE_BYTES, busy);
        }
        if let Some(tx) = &self.tx
            && tx.send(msg).is_ok()
        {
            return Ok(());
        }
        self.failed()
    }

    /// The stage stopped early: its error says why.
    pub fn failed(&mut self) -> Result<()> {
        self.stop();
        match &self.ended {
            Some((_, Err(e))) => Err(anyhow::anyhow!("{e:#}")),
            _ => Err(anyhow::anyhow!("the delivery worker stopped unexpectedly")),
        }
    }

    /// Let both threads finish what they have: their counters and outcome (once).
    pub fn finish(&mut self) -> Option<(SanitizeStats, Result<()>)> {
        self.stop();
        self.ended.take()
    }

    fn stop(&mut self) {
        self.tx = None;
        let redacted = self.redact.take().map(ScopedJoinHandle::join);
        let Some(last) = self.last.take() else {
            return;
        };
        let (mut stats, outcome) = last.join().unwrap_or_else(|_| {
            (
                SanitizeStats::default(),
                Err(anyhow::anyhow!("the sanitizing thread panicked")),
            )
        });
        let outcome = match redacted {
            Some(Ok(first)) => {
                stats.merge(&first);
                outcome
            }
            Some(Err(_)) => Err(anyhow::anyhow!("the redaction thread panicked")),
            None => outcome,
        };
        self.ended = Some((stats, outcome));
    }
}

/// The first thread: redact every record in order and pass it on.
fn redact_all(
    sanitizer: &Sanitizer,
    rx: &Receiver<ToStage>,
    tx: &Sender<ToStage>,
) -> SanitizeStats {
    let mut stats = SanitizeStats::default();
    for mut msg in rx {
        if let ToStage::Records(batch, _) = &mut msg {
            for rec in batch {
                sanitizer.redact_record(rec, &mut stats);
            }
        }
        // The second thread stopped: its outcome says why.
        if tx.send(msg).is_err() {
            break;
        }
    }
    stats
}

/// The second thread: truncate and encode every redacted record, hand it to the outlet,
/// then take its bytes off the gauge.
fn put_all(out: Out<'_>, gauge: &Gauge, rx: &Receiver<ToStage>) -> (SanitizeStats, Result<()>) {
    let mut stats = SanitizeStats::default();
    for msg in rx {
        match msg {
            ToStage::Records(batch, n) => {
                for rec in batch {
                    if let Err(e) = out.put(rec, &mut stats) {
                        return (stats, Err(e));
                    }
                }
                gauge.release(n);
            }
            ToStage::Sync(done) => {
                let _ = done.send(());
            }
        }
    }
    (stats, Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::ingestion::IngestionEncoder;
    use crate::model::{TraceCtx, TraceRecord};
    use crate::sanitize::SanitizeConfig;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn record(input: Value) -> Record {
        Record::Trace(TraceRecord {
            ctx: Arc::new(TraceCtx {
                id: "0".repeat(32),
                name: "t".into(),
                session_id: "s".into(),
                user_id: None,
                tags: Vec::new(),
                environment: None,
                release: None,
                timestamp: 1,
                metadata: serde_json::Map::new(),
            }),
            input: Some(input),
            output: None,
            at: 1,
            seq: 0,
        })
    }

    /// Takes `ok` items, then fails.
    struct Outlet1 {
        ok: usize,
        taken: AtomicUsize,
    }

    impl Outlet for Outlet1 {
        fn put(&self, _item: crate::encode::Item) -> Result<()> {
            if self.taken.fetch_add(1, Ordering::SeqCst) < self.ok {
                Ok(())
            } else {
                Err(anyhow::anyhow!("scripted failure"))
            }
        }
    }

    #[test]
    fn weight_counts_every_string_and_node() {
        let small = weight(&record(json!("x")));
        let big = weight(&record(json!({"k": ["y".repeat(1000), "z".repeat(500)]})));
        assert!(big > small + 1500, "{small} {big}");
    }

    /// Sends `n` records of `bytes` each through a stage whose outlet takes `ok` items.
    fn run(n: usize, bytes: usize, ok: usize) -> (Result<()>, Option<Result<()>>, usize) {
        let sanitizer = Sanitizer::new(SanitizeConfig::default()).unwrap();
        let encoder = IngestionEncoder;
        let outlet = Outlet1 {
            ok,
            taken: AtomicUsize::new(0),
        };
        let out = Out {
            encoder: &encoder,
            outlet: &outlet,
            sanitizer: &sanitizer,
        };
        let (sent, ended) = std::thread::scope(|scope| {
            let mut stage = Stage::spawn(scope, out);
            let mut sent = Ok(());
            for _ in 0..n {
                let rec = record(json!("a".repeat(bytes)));
                let w = weight(&rec);
                sent = stage.send(ToStage::Records(vec![rec], w));
                if sent.is_err() {
                    break;
                }
            }
            (sent, stage.finish().map(|(_, outcome)| outcome))
        });
        (sent, ended, outlet.taken.load(Ordering::SeqCst))
    }

    #[test]
    fn every_record_comes_through_however_heavy() {
        // Each record alone is over the byte bound: they go one at a time, all of them.
        let (sent, ended, taken) = run(3, STAGE_BYTES + 1, usize::MAX);
        assert!(sent.is_ok() && matches!(ended, Some(Ok(()))));
        assert_eq!(taken, 3);
        let (sent, ended, taken) = run(100, 50_000, usize::MAX);
        assert!(sent.is_ok() && matches!(ended, Some(Ok(()))));
        assert_eq!(taken, 100);
    }

    /// Takes an item each time it is let through.
    struct Gate(Receiver<()>);

    impl Outlet for Gate {
        fn put(&self, _item: crate::encode::Item) -> Result<()> {
            self.0.recv().map_err(|_| anyhow::anyhow!("gate dropped"))
        }
    }

    #[test]
    fn room_is_reported_until_half_the_bound_is_held() {
        let sanitizer = Sanitizer::new(SanitizeConfig::default()).unwrap();
        let (open, gate) = crossbeam_channel::unbounded();
        let outlet = Gate(gate);
        let out = Out {
            encoder: &IngestionEncoder,
            outlet: &outlet,
            sanitizer: &sanitizer,
        };
        std::thread::scope(|scope| {
            let mut stage = Stage::spawn(scope, out);
            assert!(stage.has_room());
            let rec = record(json!("a".repeat(STAGE_BYTES / 2)));
            let w = weight(&rec);
            stage.send(ToStage::Records(vec![rec], w)).unwrap();
            // Held until the outlet takes it.
            assert!(!stage.has_room());
            open.send(()).unwrap();
            let (done, wait) = crossbeam_channel::bounded(1);
            stage.send(ToStage::Sync(done)).unwrap();
            wait.recv().unwrap();
            assert!(stage.has_room());
            assert!(matches!(stage.finish(), Some((_, Ok(())))));
        });
    }

    #[test]
    fn a_stage_that_fails_never_leaves_the_caller_waiting_for_room() {
        // The outlet fails on the first record, which then never leaves the gate; the next
        // ones do not fit beside it. The caller must get the error, not wait forever.
        let (sent, ended, taken) = run(50, STAGE_BYTES / 2, 0);
        let e = match (sent, ended) {
            (Err(e), _) | (Ok(()), Some(Err(e))) => e,
            other => panic!("no error: {other:?}"),
        };
        assert!(format!("{e:#}").contains("scripted failure"), "{e:#}");
        assert_eq!(taken, 1);
    }
}
