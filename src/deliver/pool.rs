//! Several requests in flight. Over a WAN one request at a time caps delivery at batch size
//! ÷ round trip; here the worker's batches are sent by up to `max` threads, each with its own
//! [`HttpSink`] (so retries, 413 splits, the spool and the ledger work per request exactly as
//! with one), sharing the destination's state (breaker, fatal error, counts).
//!
//! The number allowed to send at once adapts like TCP's window: it starts at one (so a
//! server that refuses the keys, or is down, sees one request, as before), a clean answer
//! adds one (up to `max`), a request that had to be retried or was given up halves it (down
//! to one). Memory stays bounded: a batch is handed over only to a thread allowed to send
//! it, so at most `max` batches are held besides the one the worker is filling.
//!
//! Order: batches may be answered out of order, which Langfuse does not mind, except for a
//! renamed trace: the worker calls [`Sink::barrier`] before the batch with the new name, so
//! it goes out only once every earlier batch is answered and the final name still wins.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::deliver::http::HttpSink;
use crate::deliver::sender::{Report, Sink};
use crate::encode::{Encoder, Item};

/// `--max-in-flight` default. Measured with `bench/run.sh` (100 MB of session log, OTLP,
/// bodies held compressed while out) against a mock answering late: 4 in flight deliver
/// 2.5x the observations per second of 1 at 150 ms (3.25 -> 1.30 s, peak RSS 45 -> 53 MB)
/// and 2.8x at 400 ms (7.7 -> 2.7 s, 49 -> 56 MB); 8 gain little more at 150 ms (1.32 s) for
/// more memory. The window starts at one and opens only on clean answers.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4;

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

/// A [`Sink`] that keeps up to `max` requests in flight.
pub struct PoolSink {
    tx: Option<Sender<Vec<Item>>>,
    /// Sends nothing: asked whether the destination is up (the state is shared).
    probe: HttpSink,
    threads: Vec<JoinHandle<(Report, HttpSink)>>,
    shared: Arc<Shared>,
}

impl PoolSink {
    pub fn new(first: HttpSink, encoder: Arc<dyn Encoder>, max: usize) -> PoolSink {
        let max = max.max(1);
        let shared = Arc::new(Shared {
            window: Mutex::new(Window {
                outstanding: 0,
                sending: 0,
                limit: 1,
            }),
            changed: Condvar::new(),
            max,
        });
        // A rendezvous: a batch is handed over only to a thread allowed to send it now, so
        // no batch waits in memory besides the ones in flight.
        let (tx, rx) = crossbeam_channel::bounded::<Vec<Item>>(0);
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
                    .spawn(move || request_thread(sink, &*encoder, &rx, &shared))
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

fn request_thread(
    mut sink: HttpSink,
    encoder: &dyn Encoder,
    rx: &Receiver<Vec<Item>>,
    shared: &Shared,
) -> (Report, HttpSink) {
    let mut report = Report::default();
    loop {
        {
            let mut w = shared.lock();
            while w.sending >= w.limit {
                w = shared.wait(w);
            }
            w.sending += 1;
        }
        let Ok(items) = rx.recv() else {
            shared.lock().sending -= 1;
            shared.changed.notify_all();
            break;
        };
        sink.send(encoder, items, &mut report);
        let trouble = sink.take_trouble();
        let mut w = shared.lock();
        w.sending -= 1;
        w.outstanding -= 1;
        w.limit = if trouble {
            (w.limit / 2).max(1)
        } else {
            (w.limit + 1).min(shared.max)
        };
        shared.changed.notify_all();
    }
    (report, sink)
}

impl Sink for PoolSink {
    fn send(&mut self, _encoder: &dyn Encoder, items: Vec<Item>, _report: &mut Report) {
        // Outcomes are counted by the request threads and merged in `finish`.
        self.shared.lock().outstanding += 1;
        if let Some(tx) = &self.tx
            && tx.send(items).is_err()
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
