//! Several requests in flight. Over a WAN one request at a time caps delivery at batch size
//! ÷ round trip; here the worker's batches are sent by up to `max` threads, each with its own
//! [`HttpSink`] (so retries, 413 splits, the spool and the ledger work per request exactly as
//! with one), sharing the destination's state (breaker, fatal error, counts).
//!
//! The number allowed to send at once adapts like TCP's window: it starts at one (so a
//! server that refuses the keys, or is down, sees one request, as before). A clean answer
//! widens it (up to `max`) when a batch had to wait for a free request since the last
//! growth (the window was the limit, not the input): until the first trouble it opens all
//! the way when that answer took a WAN round trip ([`SLOW_ROUND_TRIP`] or more; the server
//! is up, takes the keys, and the link is the limit), else it doubles (TCP's slow start);
//! after trouble it grows by one. A request that had to be retried or was given up halves
//! it (down to one). Memory stays bounded: a batch is handed over only to a thread allowed
//! to send it, so at most `max` batches are held besides the one the worker is filling,
//! and no more than [`IN_FLIGHT_BODY_BYTES`] of bodies the size of the last one. Over OTLP
//! the worker compresses a batch before handing it over ([`HttpSink::prepare`]).
//!
//! Order: batches may be answered out of order, which Langfuse does not mind, except for a
//! renamed trace: the worker calls [`Sink::barrier`] before the batch with the new name, so
//! it goes out only once every earlier batch is answered and the final name still wins.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::deliver::http::{HttpSink, Prepared};
use crate::deliver::sender::{Report, Sink};
use crate::encode::{Encoder, Item};

/// `--max-in-flight` default. Measured with `bench/run.sh` (100 MB of session log, OTLP,
/// bodies held compressed while out) against a mock answering late: 4 in flight deliver
/// about 2.3x the observations per second of 1 at 150 ms (3.25 -> 1.38-1.47 s, peak RSS 45
/// -> 52-56 MB) and 2.7x at 400 ms (7.7 -> 2.8 s, 49 -> 56-65 MB). With a window growing
/// by one, 8 gained little more (it took six round trips to reach 4 and the 18 requests
/// were over); doubling reaches 8 in four: 8 then deliver 1.17 -> 0.97-1.00 s at 150 ms
/// (53 -> 56-58 MB) and 2.67-2.68 -> 2.19-2.24 s at 400 ms (51-55 -> 56-57 MB). The window
/// starts at one and opens only while batches wait for a free request, so on a fast link
/// it stays at one.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 8;

/// The `--max-in-flight` default on the legacy route, whose bodies are held uncompressed
/// while out: eight of its 1 MB requests at 400 ms peaked at 66 MB (3.7 s for 100 MB of
/// session log), four at 53 MB (6.2-6.4 s).
pub const DEFAULT_MAX_IN_FLIGHT_LEGACY: usize = 4;

/// The number of requests in flight: `--max-in-flight` when given, else the route's default.
pub fn max_in_flight(given: Option<usize>, wire: crate::deliver::Wire) -> usize {
    given.unwrap_or(match wire {
        crate::deliver::Wire::Otlp => DEFAULT_MAX_IN_FLIGHT,
        crate::deliver::Wire::Ingestion => DEFAULT_MAX_IN_FLIGHT_LEGACY,
    })
}

/// An answer this late comes over a slow link (a WAN), not from a busy machine: on
/// loopback, where a batch waits now and then only because the cores are busy, opening the
/// window all the way at once peaked at 68-71 MB sending 1 GiB (53-58 doubling); at 150 ms
/// it delivered 100 MB of session log in 0.71-0.80 s against doubling's 0.92-1.02 s.
pub const SLOW_ROUND_TRIP: std::time::Duration = std::time::Duration::from_millis(100);

/// Bytes of request bodies (as sent: compressed over OTLP) out at once at most, besides
/// the first: the window allows no more requests than this many bodies the size of the
/// last one. Whatever the latency and however badly the input compresses, the requests out
/// then hold a bounded number of bytes. The benchmark's 3.5 MB OTLP batches gzip to about
/// 0.8 MB, so eight fit; bodies that do not compress (4 MB each) go two at a time.
pub const IN_FLIGHT_BODY_BYTES: usize = 8 << 20;

/// With several requests in flight on the legacy route a request's byte cap is the
/// transport's ÷ N, but not below this.
pub const MIN_BATCH_BYTES: usize = 1 << 20;

#[derive(Debug)]
struct Window {
    /// Batches handed over and not yet answered (queued or being sent).
    outstanding: usize,
    /// Being sent now (or holding a slot to).
    sending: usize,
    /// How many may be sent at once now (1..=max).
    limit: usize,
    /// No trouble yet: the window doubles when it grows (TCP's slow start), else it grows
    /// by one.
    slow_start: bool,
    /// A batch found every allowed request busy since the window last grew: the window,
    /// not the input, was the limit. Only then does a clean answer widen it (as TCP grows
    /// its window only when it is the limit): on a fast link one request at a time keeps
    /// up, and more would only hold more batches in memory at once.
    limited: bool,
    /// No more batches: every request thread goes to the closed channel and ends.
    closed: bool,
    /// The largest body of the last request answered (0: none yet), for
    /// [`IN_FLIGHT_BODY_BYTES`].
    body: usize,
}

impl Window {
    /// One request at a time, none out.
    fn new() -> Window {
        Window {
            outstanding: 0,
            sending: 0,
            limit: 1,
            slow_start: true,
            limited: false,
            closed: false,
            body: 0,
        }
    }

    /// How many may be sent at once now: the window, and no more bodies the size of the
    /// last one than [`IN_FLIGHT_BODY_BYTES`] holds (at least one).
    fn allowed(&self) -> usize {
        let by_bytes = IN_FLIGHT_BODY_BYTES
            .checked_div(self.body)
            .map_or(usize::MAX, |n| n.max(1));
        self.limit.min(by_bytes)
    }

    /// A batch is handed over: if every allowed request is busy, it waits for one.
    fn hand_over(&mut self) {
        self.limited |= self.outstanding >= self.allowed();
        self.outstanding += 1;
    }

    /// May request thread `n` send now?
    fn may_send(&self, n: usize) -> bool {
        let allowed = self.allowed();
        self.closed || (self.sending < allowed && n < allowed)
    }

    /// A request is over (its largest body `body` bytes): halve the window after trouble
    /// (and leave slow start); after a clean answer, widen it if it was the limit since it
    /// last grew: in slow start to `max` over a slow link, else double it; after it by one.
    fn answered(&mut self, trouble: bool, slow_link: bool, body: usize, max: usize) {
        self.sending -= 1;
        self.outstanding -= 1;
        if body > 0 {
            self.body = body;
        }
        if trouble {
            self.limit = (self.limit / 2).max(1);
            self.slow_start = false;
        } else if self.limited {
            let wider = match (self.slow_start, slow_link) {
                (true, true) => max,
                (true, false) => self.limit * 2,
                (false, _) => self.limit + 1,
            };
            self.limit = wider.min(max);
            self.limited = false;
        }
    }
}

struct Shared {
    window: Mutex<Window>,
    changed: Condvar,
    max: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, Window>) -> MutexGuard<'a, Window> {
        self.changed.wait(guard).unwrap_or_else(|e| e.into_inner())
    }
}

/// A batch for a request thread, [prepared](HttpSink::prepare) by the worker.
type Batch = (Vec<Item>, Option<Prepared>);

/// A [`Sink`] that keeps up to `max` requests in flight.
pub struct PoolSink {
    tx: Option<Sender<Batch>>,
    /// Sends nothing: asked whether the destination is up (the state is shared).
    probe: HttpSink,
    threads: Vec<JoinHandle<(Report, HttpSink)>>,
    shared: Arc<Shared>,
}

impl PoolSink {
    pub fn new(first: HttpSink, encoder: Arc<dyn Encoder>, max: usize) -> PoolSink {
        let max = max.max(1);
        let shared = Arc::new(Shared {
            window: Mutex::new(Window::new()),
            changed: Condvar::new(),
            max,
        });
        // A rendezvous: a batch is handed over only to a thread allowed to send it now, so
        // no batch waits in memory besides the ones in flight.
        let (tx, rx) = crossbeam_channel::bounded::<Batch>(0);
        let probe = first.sibling();
        let mut sinks = Vec::with_capacity(max);
        for _ in 1..max {
            sinks.push(first.sibling());
        }
        sinks.push(first);
        let threads = sinks
            .into_iter()
            .enumerate()
            .map(|(n, sink)| {
                let (rx, shared, encoder) = (rx.clone(), shared.clone(), encoder.clone());
                std::thread::Builder::new()
                    .name(format!("omp-langfuse-request-{n}"))
                    .spawn(move || request_thread(n, sink, &*encoder, &rx, &shared))
                    .expect("spawning a request thread")
            })
            .collect();
        PoolSink {
            tx: Some(tx),
            probe,
            threads,
            shared,
        }
    }
}

/// Request thread `n` sends only while the window allows more than `n` at once, so with a
/// window of one the same thread sends every batch (its allocator arena is reused instead
/// of each thread's holding memory of its own).
fn request_thread(
    n: usize,
    mut sink: HttpSink,
    encoder: &dyn Encoder,
    rx: &Receiver<Batch>,
    shared: &Shared,
) -> (Report, HttpSink) {
    let mut report = Report::default();
    loop {
        {
            let mut w = shared.lock();
            while !w.may_send(n) {
                w = shared.wait(w);
            }
            w.sending += 1;
        }
        let Ok((items, prepared)) = rx.recv() else {
            shared.lock().sending -= 1;
            shared.changed.notify_all();
            break;
        };
        sink.send_prepared(encoder, items, prepared, &mut report);
        let trouble = sink.take_trouble();
        let slow_link = sink.take_round_trip() >= SLOW_ROUND_TRIP;
        let body = sink.take_body_bytes();
        shared.lock().answered(trouble, slow_link, body, shared.max);
        shared.changed.notify_all();
    }
    (report, sink)
}

impl Sink for PoolSink {
    fn send(&mut self, encoder: &dyn Encoder, mut items: Vec<Item>, _report: &mut Report) {
        // Compressed here, not by the request thread: the bodies out are then all made on
        // this thread (each thread's allocator keeps memory of its own, and eight request
        // threads each keeping a body's worth held 20 MB of 72 sending 1 GiB at 150 ms),
        // and the batch that waits for a free request waits compressed.
        let prepared = self.probe.prepare(encoder, &mut items);
        // Outcomes are counted by the request threads and merged in `finish`.
        self.shared.lock().hand_over();
        if let Some(tx) = &self.tx
            && tx.send((items, prepared)).is_err()
        {
            // Every request thread is gone (a panic): nothing can be sent any more.
            self.shared.lock().outstanding -= 1;
        }
    }

    fn barrier(&mut self) {
        let mut w = self.shared.lock();
        while w.outstanding > 0 {
            w = self.shared.wait(w);
        }
    }

    fn finish(&mut self, report: &mut Report) {
        self.tx = None;
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
        let mut last: Option<HttpSink> = None;
        for t in self.threads.drain(..) {
            if let Ok((r, sink)) = t.join() {
                report.merge(r);
                last = Some(sink);
            }
        }
        // The spool and the ledger are shared: finishing them once is enough.
        if let Some(mut sink) = last {
            sink.finish(report);
        }
    }

    fn healthy(&self) -> bool {
        self.probe.healthy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand a batch over; it is taken at once if thread `n` may send.
    fn offer(w: &mut Window, n: usize) -> bool {
        w.hand_over();
        let go = w.may_send(n);
        w.sending += usize::from(go);
        go
    }

    #[test]
    fn the_window_grows_only_while_it_is_the_limit() {
        let mut w = Window::new();
        // A fast link: each batch is answered before the next is ready. One request at a
        // time, always thread 0's, however many clean answers.
        for _ in 0..10 {
            assert!(offer(&mut w, 0));
            assert!(!w.may_send(1));
            w.answered(false, false, 0, 4);
        }
        assert_eq!(w.limit, 1);
        // A slow link: a second batch is ready while the first is out.
        assert!(offer(&mut w, 0));
        assert!(!offer(&mut w, 1), "waits: the window is the limit");
        assert!(w.limited);
        w.answered(false, false, 0, 4);
        assert_eq!(w.limit, 2);
        assert!(w.may_send(0) && w.may_send(1) && !w.may_send(2));
        w.sending += 1; // the waiting batch goes
        assert!(offer(&mut w, 1), "two at once now");
        assert!(!w.limited, "a free slot took it");
        w.answered(false, false, 0, 4);
        w.answered(false, false, 0, 4);
        assert_eq!((w.limit, w.outstanding, w.sending), (2, 0, 0), "no growth");
        // Trouble halves it, down to one; it never grows past max.
        w.limit = 4;
        for expected in [2, 1, 1] {
            assert!(offer(&mut w, 0));
            w.answered(true, false, 0, 4);
            assert_eq!(w.limit, expected);
        }
        w.limit = 4;
        w.limited = true;
        assert!(offer(&mut w, 0));
        w.answered(false, false, 0, 4);
        assert_eq!(w.limit, 4);
        // Closed: every thread may go (to find the channel closed).
        w.closed = true;
        assert!((0..8).all(|n| w.may_send(n)));
    }

    #[test]
    fn the_default_depends_on_the_route_and_a_given_number_wins() {
        use crate::deliver::Wire;
        assert_eq!(max_in_flight(None, Wire::Otlp), 8);
        assert_eq!(max_in_flight(None, Wire::Ingestion), 4);
        assert_eq!(max_in_flight(Some(16), Wire::Ingestion), 16);
        assert_eq!(max_in_flight(Some(1), Wire::Otlp), 1);
    }

    /// Fill the window and have one more batch wait, then answer one request cleanly
    /// (`slow_link`: after a WAN round trip).
    fn round_trip(w: &mut Window, slow_link: bool, max: usize) {
        for n in 0..w.limit {
            assert!(offer(w, n));
        }
        assert!(!offer(w, w.limit), "waits: the window is the limit");
        w.answered(false, slow_link, 0, max);
        // The waiting batch goes; then every request is answered.
        w.sending += 1;
        while w.outstanding > 0 {
            w.answered(false, slow_link, 0, max);
        }
    }

    /// The window after each of `n` round trips.
    fn windows(w: &mut Window, n: usize, slow_link: bool) -> Vec<usize> {
        (0..n)
            .map(|_| {
                round_trip(w, slow_link, 8);
                w.limit
            })
            .collect()
    }

    #[test]
    fn the_window_doubles_until_the_first_trouble_then_grows_by_one() {
        let mut w = Window::new();
        assert_eq!(
            windows(&mut w, 5, false),
            [2, 4, 8, 8, 8],
            "slow start, never past max"
        );
        assert!(offer(&mut w, 0));
        w.answered(true, false, 0, 8);
        assert_eq!(w.limit, 4, "trouble halves it");
        assert_eq!(
            windows(&mut w, 5, false),
            [5, 6, 7, 8, 8],
            "after trouble, by one"
        );
    }

    #[test]
    fn over_a_slow_link_the_first_wait_opens_the_window_all_the_way() {
        let mut w = Window::new();
        assert_eq!(windows(&mut w, 2, true), [8, 8]);
        // After trouble, by one however slow the link.
        assert!(offer(&mut w, 0));
        w.answered(true, true, 0, 8);
        assert_eq!(windows(&mut w, 2, true), [5, 6]);
    }

    #[test]
    fn bodies_out_are_bounded_in_bytes_whatever_the_window() {
        // A window of eight whose last request's body was `body` bytes.
        let after = |body: usize| {
            let mut w = Window::new();
            w.limit = 8;
            w.sending = 1;
            w.outstanding = 1;
            w.answered(false, false, body, 8);
            w
        };
        // No body seen yet: the window alone.
        assert_eq!(after(0).allowed(), 8);
        // Bodies of a quarter of the budget: four at once, whatever the window.
        let mut w = after(IN_FLIGHT_BODY_BYTES / 4);
        assert_eq!(w.allowed(), 4);
        assert!(offer(&mut w, 0) && offer(&mut w, 1) && offer(&mut w, 2) && offer(&mut w, 3));
        assert!(!offer(&mut w, 4));
        // Well-compressed bodies: the window's full width.
        assert_eq!(after(IN_FLIGHT_BODY_BYTES / 100).allowed(), 8);
        // A body over the budget alone still goes, one at a time.
        let mut w = after(IN_FLIGHT_BODY_BYTES * 2);
        assert!(offer(&mut w, 0));
        assert!(!offer(&mut w, 1));
    }
}
