//! The delivery worker: one thread fed by a bounded channel that batches items and hands
//! request bodies to a sink, flushing on the count cap, the byte cap and the time cap.
//!
//! The reader thread never touches the network; only this worker (and its sink) does.

use std::io::Write;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::batch::{Batch, Caps, Push};
use crate::encode::{Encoder, Item};

/// Items buffered between the reader and the worker.
pub const QUEUE_CAPACITY: usize = 8192;

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
    /// Items written to the spool for a later run.
    pub spooled: u64,
    /// A fatal delivery error (e.g. bad credentials): exit status 2.
    pub fatal: Option<String>,
}

/// Where request bodies go.
pub trait Sink: Send {
    /// Deliver one request body built from `items`. Outcomes are counted in `report`.
    fn send(&mut self, encoder: &dyn Encoder, items: Vec<Item>, report: &mut Report);
    /// Called once after the last `send`: finish outstanding work.
    fn finish(&mut self, _report: &mut Report) {}
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
    mut sink: Box<dyn Sink>,
    caps: Caps,
    time_cap: TimeCap,
) -> (Sender<Item>, JoinHandle<Report>) {
    let (tx, rx) = crossbeam_channel::bounded(QUEUE_CAPACITY);
    let handle = std::thread::Builder::new()
        .name("omp-langfuse-sender".into())
        .spawn(move || run(&*encoder, &mut *sink, caps, time_cap, rx))
        .expect("spawning the sender thread");
    (tx, handle)
}

fn run(
    encoder: &dyn Encoder,
    sink: &mut dyn Sink,
    caps: Caps,
    time_cap: TimeCap,
    rx: Receiver<Item>,
) -> Report {
    let mut report = Report::default();
    let framing = encoder.prefix().len() + encoder.suffix().len();
    let mut batch = Batch::new(caps, framing);
    let mut opened_at: Option<Instant> = None;
    loop {
        let received = match (time_cap, opened_at) {
            (TimeCap::After(wait), Some(t0)) => rx.recv_deadline(t0 + wait),
            _ => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(item) => {
                opened_at.get_or_insert_with(Instant::now);
                let mut next = Some(item);
                while let Some(item) = next.take() {
                    match batch.push(item) {
                        Push::Added { full } => {
                            if full {
                                flush(encoder, sink, &mut batch, &mut report);
                                opened_at = None;
                            }
                        }
                        Push::Overflow(item) => {
                            flush(encoder, sink, &mut batch, &mut report);
                            opened_at = Some(Instant::now());
                            next = Some(item);
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                flush(encoder, sink, &mut batch, &mut report);
                opened_at = None;
            }
            Err(RecvTimeoutError::Disconnected) => {
                flush(encoder, sink, &mut batch, &mut report);
                sink.finish(&mut report);
                return report;
            }
        }
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
        match self.out.write_all(&body) {
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
