//! The delivery worker: one thread fed by a bounded channel that batches items and hands
//! request bodies to a sink, flushing on the count cap, the byte cap and the time cap.
//!
//! The reader thread never touches the network; only this worker (and its sink) does.
//! Besides the channel, the worker can drain a backlog (the on-disk spool): first, before any
//! new input (replay of earlier runs), whenever a live stream is idle, and at the end. A
//! shared shutdown clock bounds how long it may keep using the network after input ends.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::deliver::batch::{Batch, Caps, Push};
use crate::encode::{Encoder, Item};

/// Items buffered between the reader and the worker.
pub const QUEUE_CAPACITY: usize = 8192;
/// Bytes of items buffered between the reader and the worker: items can be megabytes each,
/// so a count alone does not bound memory. An item larger than this still goes through when
/// the queue is empty. Measured (`bench/run.sh 100M`, session log): 4 MB instead of 8 MB cut
/// the peak RSS of a backfill to a server answering 150 ms late from 62 to 53 MB, with the
/// same observations per second and no loss on loopback (the batch being filled and the
/// request in flight buffer as much again).
pub const QUEUE_BYTES: usize = 4 << 20;
/// How often an idle live worker looks at its backlog (spilled or given-up items).
pub const BACKLOG_POLL: Duration = Duration::from_secs(1);

/// What the worker and its sink did, for the exit summary and the exit status.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Request bodies produced.
    pub batches: u64,
    /// Their total size, uncompressed.
    pub bytes: u64,
    /// Items handed to the sink.
    pub items: u64,
    /// Items the destination accepted (dry-run: printed).
    pub delivered: u64,
    /// Items the destination refused for good.
    pub rejected: u64,
    /// Items left in the spool for a later run at exit.
    pub spooled: u64,
    /// Items not sent because an earlier run delivered them (the ledger).
    pub skipped: u64,
    /// Items an earlier run spooled and this run sent again.
    pub replayed: u64,
    /// Items of sessions another process was delivering (not sent here).
    pub busy: u64,
    /// Items delivered that the ledger could not record (a later run may send them again).
    pub unrecorded: u64,
    /// Items whose request's answer was lost but which the server turned out to have (not
    /// sent again; counted as delivered too).
    pub reconciled: u64,
    /// Items sent again after a lost answer although the server could not say whether it
    /// had them (no read API): they may be stored twice.
    pub maybe_duplicated: u64,
    /// A fatal delivery error (e.g. bad credentials): exit status 2.
    pub fatal: Option<String>,
    /// Why items were spooled or rejected: a short phrase per cause, with its item count.
    pub causes: std::collections::BTreeMap<String, u64>,
}

impl Report {
    /// Add another report's counts (a request thread's) to this one.
    pub fn merge(&mut self, other: Report) {
        self.batches += other.batches;
        self.bytes += other.bytes;
        self.items += other.items;
        self.delivered += other.delivered;
        self.rejected += other.rejected;
        self.spooled += other.spooled;
        self.skipped += other.skipped;
        self.replayed += other.replayed;
        self.busy += other.busy;
        self.unrecorded += other.unrecorded;
        self.reconciled += other.reconciled;
        self.maybe_duplicated += other.maybe_duplicated;
        if self.fatal.is_none() {
            self.fatal = other.fatal;
        }
        for (cause, n) in other.causes {
            *self.causes.entry(cause).or_default() += n;
        }
    }

    /// Count `n` items under `cause`.
    pub fn because(&mut self, cause: String, n: usize) {
        if n > 0 {
            *self.causes.entry(cause).or_default() += n as u64;
        }
    }
}

/// Where request bodies go.
pub trait Sink: Send {
    /// Deliver one request body built from `items`. Outcomes are counted in `report`.
    fn send(&mut self, encoder: &dyn Encoder, items: Vec<Item>, report: &mut Report);
    /// Called once after the last `send`: finish outstanding work.
    fn finish(&mut self, _report: &mut Report) {}
    /// Return once everything sent so far is answered (a sink with several requests in
    /// flight; the others are done when `send` returns).
    fn barrier(&mut self) {}
    /// Whether sending now is worthwhile (false while the destination is known to be down
    /// and no probe is due). The worker pulls its backlog only when this holds.
    fn healthy(&self) -> bool {
        true
    }
}

/// Items waiting outside the channel (the spool), pulled by the worker when it has time.
pub trait Backlog: Send + Sync {
    fn has_pending(&self) -> bool;
    /// Up to `max_items` items and about `max_bytes`; empty when nothing is left.
    fn pull(&self, max_items: usize, max_bytes: usize) -> Vec<Item>;
}

/// When the network phase of shutdown ends. Set once input ends (or on a signal); the
/// earliest deadline wins. Sleepers wake when it is set so they can re-plan.
#[derive(Debug, Default)]
pub struct ShutdownClock {
    deadline: Mutex<Option<Instant>>,
    changed: Condvar,
}

impl ShutdownClock {
    pub fn new() -> Arc<ShutdownClock> {
        Arc::new(ShutdownClock::default())
    }

    /// Start the shutdown: no network use after `deadline`.
    pub fn begin(&self, deadline: Instant) {
        let mut d = self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        if d.is_none_or(|old| deadline < old) {
            *d = Some(deadline);
        }
        self.changed.notify_all();
    }

    pub fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the network phase is over.
    pub fn over(&self) -> bool {
        self.deadline().is_some_and(|d| Instant::now() >= d)
    }

    /// Time left before the deadline (`None`: no shutdown yet).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Wait `d` before a retry. Returns false, at once or as soon as it is known, when the
    /// wait would end past the deadline: the caller should give up instead.
    pub fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        let mut guard = self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if guard.is_some_and(|dl| until >= dl) {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            guard = self
                .changed
                .wait_timeout(guard, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Bytes of what waits in a queue: the producer adds, the consumer subtracts (the items in
/// the channel to the worker; the records in the stage's threads, `run::stage`).
#[derive(Debug, Default)]
pub struct Gauge {
    bytes: Mutex<usize>,
    freed: Condvar,
}

impl Gauge {
    /// Count `n` more bytes, first waiting while they would pass `limit` and `busy()` says
    /// the consumer still has work queued (asked again every 50 ms, so a consumer that
    /// stopped never leaves the producer waiting). Something counted always goes through.
    pub fn acquire(&self, n: usize, limit: usize, busy: impl Fn() -> bool) {
        let mut b = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        while full(*b, n, limit) && busy() {
            b = self
                .freed
                .wait_timeout(b, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *b += n;
    }

    /// Count `n` more bytes if they fit now (see [`Gauge::acquire`]).
    fn try_acquire(&self, n: usize, limit: usize, busy: impl Fn() -> bool) -> bool {
        let mut b = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        if full(*b, n, limit) && busy() {
            return false;
        }
        *b += n;
        true
    }

    /// The bytes counted now.
    pub fn held(&self) -> usize {
        *self.bytes.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn release(&self, n: usize) {
        let mut b = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        *b = b.saturating_sub(n);
        self.freed.notify_all();
    }
}

/// Whether `n` more bytes on top of `held` would pass `limit` (anything goes into an empty
/// queue, however large).
fn full(held: usize, n: usize, limit: usize) -> bool {
    held > 0 && held + n > limit
}

/// The reader's end of the queue to the worker, bounded by item count and by bytes.
#[derive(Clone)]
pub struct Queue {
    tx: Sender<Item>,
    gauge: Arc<Gauge>,
}

impl Queue {
    /// A queue over a channel the caller made; give the same gauge to the worker.
    pub fn new(tx: Sender<Item>, gauge: Arc<Gauge>) -> Queue {
        Queue { tx, gauge }
    }

    /// Queue an item, waiting for room. `Err` gives it back when the worker is gone.
    pub fn send(&self, item: Item) -> Result<(), Item> {
        let n = item.json.len();
        // Once the channel is empty the worker holds everything counted: never wait then.
        self.gauge.acquire(n, QUEUE_BYTES, || !self.tx.is_empty());
        self.tx.send(item).map_err(|e| {
            self.gauge.release(n);
            e.into_inner()
        })
    }

    /// Queue an item only if there is room now. `Err` gives it back.
    pub fn try_send(&self, item: Item) -> Result<(), Item> {
        let n = item.json.len();
        if !self
            .gauge
            .try_acquire(n, QUEUE_BYTES, || !self.tx.is_empty())
        {
            return Err(item);
        }
        self.tx.try_send(item).map_err(|e| {
            self.gauge.release(n);
            e.into_inner()
        })
    }
}

/// What the worker has besides its channel.
#[derive(Clone)]
pub struct Extras {
    pub backlog: Option<Arc<dyn Backlog>>,
    pub clock: Arc<ShutdownClock>,
    /// The byte count of the channel's queue (see [`Queue`]).
    pub gauge: Arc<Gauge>,
}

impl Default for Extras {
    fn default() -> Self {
        Extras {
            backlog: None,
            clock: ShutdownClock::new(),
            gauge: Arc::default(),
        }
    }
}

/// When the worker flushes a partly filled batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeCap {
    /// Flush once the oldest buffered item has waited this long (live input).
    After(Duration),
    /// Only count and byte caps, and end of input (files: deterministic batches).
    None,
}

/// Start the worker. Drop the returned sender to make it flush and stop; join for the report.
pub fn spawn(
    encoder: Arc<dyn Encoder>,
    sink: Box<dyn Sink>,
    caps: Caps,
    time_cap: TimeCap,
) -> (Queue, JoinHandle<Report>) {
    let (tx, rx) = crossbeam_channel::bounded(QUEUE_CAPACITY);
    let extras = Extras::default();
    let queue = Queue::new(tx, extras.gauge.clone());
    let handle = spawn_with(encoder, sink, caps, time_cap, rx, extras);
    (queue, handle)
}

/// Start the worker on a channel the caller made, with a backlog and a shutdown clock.
pub fn spawn_with(
    encoder: Arc<dyn Encoder>,
    mut sink: Box<dyn Sink>,
    caps: Caps,
    time_cap: TimeCap,
    rx: Receiver<Item>,
    extras: Extras,
) -> JoinHandle<Report> {
    std::thread::Builder::new()
        .name("omp-langfuse-sender".into())
        .spawn(move || {
            let mut w = Worker {
                encoder: &*encoder,
                sink: &mut *sink,
                batch: Batch::new(caps, encoder.prefix().len() + encoder.suffix().len()),
                names: std::collections::HashMap::new(),
                sent: std::collections::HashMap::new(),
                caps,
                report: Report::default(),
                opened_at: None,
            };
            w.run(time_cap, rx, &extras);
            w.report
        })
        .expect("spawning the sender thread")
}

/// An item that asks the worker to send its partial batch now (no key, no body): `backfill`
/// waiting for its sessions' items to be delivered must not wait for a batch to fill.
pub fn flush_marker() -> Item {
    Item {
        session_id: "".into(),
        key: String::new(),
        json: Vec::new(),
        trace_tag: None,
    }
}

fn is_flush_marker(item: &Item) -> bool {
    item.key.is_empty() && item.json.is_empty()
}

struct Worker<'a> {
    encoder: &'a dyn Encoder,
    sink: &'a mut dyn Sink,
    batch: Batch,
    /// Trace name per trace of the items in `batch` (hashes, see `Item::trace_tag`).
    names: std::collections::HashMap<u64, u64>,
    /// Trace name per trace as last sent (one entry per trace of the run).
    sent: std::collections::HashMap<u64, u64>,
    caps: Caps,
    report: Report,
    /// When the oldest item of the current batch arrived.
    opened_at: Option<Instant>,
}

impl Worker<'_> {
    fn run(&mut self, time_cap: TimeCap, rx: Receiver<Item>, extras: &Extras) {
        // Replay first: what earlier runs left goes out before new input.
        self.drain_backlog(extras, usize::MAX);
        loop {
            let batch_due = match (time_cap, self.opened_at) {
                (TimeCap::After(wait), Some(t0)) => Some(t0 + wait),
                _ => None,
            };
            // A live stream also wakes up now and then for its backlog; file input leaves
            // the backlog for the end so its batches stay deterministic.
            let backlog_due = match (&extras.backlog, time_cap) {
                (Some(b), TimeCap::After(_)) if b.has_pending() => {
                    Some(Instant::now() + BACKLOG_POLL)
                }
                _ => None,
            };
            let wake = match (batch_due, backlog_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let received = match wake {
                Some(at) => rx.recv_deadline(at),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match received {
                Ok(item) if is_flush_marker(&item) => self.flush(),
                Ok(item) => {
                    extras.gauge.release(item.json.len());
                    self.push(item);
                }
                Err(RecvTimeoutError::Timeout) => {
                    if batch_due.is_some_and(|d| Instant::now() >= d) {
                        self.flush();
                    }
                    if backlog_due.is_some() && rx.is_empty() {
                        self.flush();
                        self.drain_backlog(extras, 1);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.flush();
                    self.drain_backlog(extras, usize::MAX);
                    self.sink.finish(&mut self.report);
                    return;
                }
            }
        }
    }

    fn push(&mut self, item: Item) {
        // A trace renamed while its items wait: the new name goes in a request after the
        // stale one, never beside it, so the name Langfuse ends with is the new one.
        if let Some((trace, name)) = item.trace_tag {
            // (`names` holds the current batch's traces, `sent` the name each trace last
            // went out with.) With several requests in flight, the stale name must also be
            // answered before the new one goes out.
            let last = self.names.get(&trace).or_else(|| self.sent.get(&trace));
            if last.is_some_and(|n| *n != name) {
                self.flush();
                self.sink.barrier();
                self.sent.insert(trace, name);
            }
            self.names.insert(trace, name);
        }
        self.opened_at.get_or_insert_with(Instant::now);
        let mut next = Some(item);
        while let Some(item) = next.take() {
            match self.batch.push(item) {
                Push::Added { full } => {
                    if full {
                        self.flush();
                    }
                }
                Push::Overflow(item) => {
                    self.flush();
                    self.opened_at = Some(Instant::now());
                    next = Some(item);
                }
            }
        }
    }

    /// Send up to `rounds` batches from the backlog while the sink is healthy and the
    /// network phase lasts.
    fn drain_backlog(&mut self, extras: &Extras, rounds: usize) {
        let Some(backlog) = &extras.backlog else {
            return;
        };
        for _ in 0..rounds {
            if extras.clock.over() || !self.sink.healthy() || !backlog.has_pending() {
                break;
            }
            let items = backlog.pull(self.caps.max_items, self.caps.max_bytes);
            if items.is_empty() {
                break;
            }
            for item in items {
                self.push(item);
            }
            self.flush();
        }
    }

    fn flush(&mut self) {
        flush(self.encoder, self.sink, &mut self.batch, &mut self.report);
        self.opened_at = None;
        self.sent.extend(self.names.drain());
    }
}

fn flush(encoder: &dyn Encoder, sink: &mut dyn Sink, batch: &mut Batch, report: &mut Report) {
    if batch.is_empty() {
        return;
    }
    report.batches += 1;
    report.bytes += batch.bytes() as u64;
    report.items += batch.len() as u64;
    sink.send(encoder, batch.take(), report);
}

/// `--dry-run`: print each request body as one line on stdout instead of sending it.
pub struct DryRun<W: Write + Send> {
    out: W,
    /// Set once stdout is gone (e.g. `| head`): stop writing, keep counting.
    closed: bool,
}

impl<W: Write + Send> DryRun<W> {
    pub fn new(out: W) -> Self {
        DryRun { out, closed: false }
    }
}

impl<W: Write + Send> Sink for DryRun<W> {
    fn send(&mut self, encoder: &dyn Encoder, items: Vec<Item>, report: &mut Report) {
        if self.closed {
            return;
        }
        let mut body = encoder.body(&items);
        body.push(b'\n');
        // Flushed per body: a followed directory or a live stream prints each batch as it
        // is made, not at exit (one write per batch of up to 500 items costs nothing).
        match self.out.write_all(&body).and_then(|()| self.out.flush()) {
            Ok(()) => report.delivered += items.len() as u64,
            // A reader that went away is a clean stop, not an error (like `rg … | head`).
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => self.closed = true,
            Err(e) => {
                report.fatal = Some(format!("writing to stdout: {e}"));
                self.closed = true;
            }
        }
    }

    fn finish(&mut self, report: &mut Report) {
        if !self.closed
            && let Err(e) = self.out.flush()
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            report.fatal = Some(format!("writing to stdout: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::Wire;
    use std::sync::Mutex;

    struct Framed;
    impl Encoder for Framed {
        fn wire(&self) -> Wire {
            Wire::Ingestion
        }
        fn encode(&self, _: &crate::model::Record) -> Option<Item> {
            None
        }
        fn prefix(&self) -> &[u8] {
            b"["
        }
        fn suffix(&self) -> &[u8] {
            b"]"
        }
        fn max_body_bytes(&self) -> usize {
            1000
        }
    }

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn item(k: &str) -> Item {
        Item {
            session_id: "s".into(),
            key: k.into(),
            json: format!("\"{k}\"").into_bytes(),
            trace_tag: None,
        }
    }

    #[test]
    fn flushes_on_count_cap_and_at_end() {
        let out = Shared::default();
        let caps = Caps {
            max_items: 2,
            max_bytes: 1000,
        };
        let (tx, h) = spawn(
            Arc::new(Framed),
            Box::new(DryRun::new(out.clone())),
            caps,
            TimeCap::None,
        );
        for k in ["a", "b", "c"] {
            tx.send(item(k)).unwrap();
        }
        drop(tx);
        let report = h.join().unwrap();
        assert_eq!(
            String::from_utf8(out.0.lock().unwrap().clone()).unwrap(),
            "[\"a\",\"b\"]\n[\"c\"]\n"
        );
        assert_eq!((report.batches, report.items, report.delivered), (2, 3, 3));
    }

    #[test]
    fn a_renamed_trace_never_shares_a_request_with_its_stale_name() {
        let out = Shared::default();
        let caps = Caps {
            max_items: 100,
            max_bytes: 1000,
        };
        let (tx, h) = spawn(
            Arc::new(Framed),
            Box::new(DryRun::new(out.clone())),
            caps,
            TimeCap::None,
        );
        let tagged = |k: &str, trace: u64, name: u64| Item {
            trace_tag: Some((trace, name)),
            ..item(k)
        };
        // Trace 1 is renamed (name 10 → 11) after two items; trace 2 is not.
        for it in [
            tagged("a", 1, 10),
            tagged("x", 2, 20),
            tagged("b", 1, 10),
            tagged("c", 1, 11),
            tagged("y", 2, 20),
        ] {
            tx.send(it).unwrap();
        }
        drop(tx);
        h.join().unwrap();
        assert_eq!(
            String::from_utf8(out.0.lock().unwrap().clone()).unwrap(),
            "[\"a\",\"x\",\"b\"]\n[\"c\",\"y\"]\n"
        );
    }

    #[test]
    fn the_queue_is_bounded_by_bytes_too() {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_CAPACITY);
        let gauge = Arc::new(Gauge::default());
        let q = Queue::new(tx, gauge.clone());
        let big = |k: &str, n: usize| Item {
            session_id: "s".into(),
            key: k.into(),
            json: vec![b'x'; n],
            trace_tag: None,
        };
        // An empty queue takes an item of any size; then it is full.
        assert!(q.try_send(big("a", QUEUE_BYTES + 1)).is_ok());
        assert!(q.try_send(big("b", 10)).is_err());
        // Once the worker took it, there is room again.
        let got = rx.recv().unwrap();
        gauge.release(got.json.len());
        assert!(q.try_send(big("c", QUEUE_BYTES / 2)).is_ok());
        assert!(q.try_send(big("d", QUEUE_BYTES / 2)).is_ok());
        assert!(q.try_send(big("e", 1)).is_err());
    }

    #[test]
    fn time_cap_flushes_an_open_stream() {
        let out = Shared::default();
        let caps = Caps {
            max_items: 100,
            max_bytes: 1000,
        };
        let (tx, h) = spawn(
            Arc::new(Framed),
            Box::new(DryRun::new(out.clone())),
            caps,
            TimeCap::After(Duration::from_millis(50)),
        );
        tx.send(item("a")).unwrap();
        // The sender stays open; the worker must flush by itself.
        let t0 = Instant::now();
        while out.0.lock().unwrap().is_empty() {
            assert!(t0.elapsed() < Duration::from_secs(5), "no time-cap flush");
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(tx);
        assert_eq!(h.join().unwrap().batches, 1);
    }
}
