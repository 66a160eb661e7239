//! SIGINT and SIGTERM: the first ends the input as if it had reached its end (open
//! observations are closed, queued items delivered or spooled within the shutdown timeout);
//! a second one exits at once.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender, select};

/// Exit status when a second signal cuts the shutdown short (usage/fatal).
const EXIT_ON_SECOND_SIGNAL: i32 = 2;
/// Bytes a background stdin reader hands over at a time.
const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks buffered between the stdin thread and the reader (bounded memory).
const CHUNKS_IN_FLIGHT: usize = 16;

/// Whether a stop was asked for, observable from the reading side.
#[derive(Clone)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    /// Disconnected when a stop is asked for, to wake a blocked `select`.
    woken: Receiver<()>,
}

impl Stop {
    /// Install the handlers.
    pub fn install() -> io::Result<Stop> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let flag = Arc::new(AtomicBool::new(false));
        let (wake, woken) = crossbeam_channel::bounded::<()>(0);
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
        let seen = flag.clone();
        std::thread::Builder::new()
            .name("omp-langfuse-signals".into())
            .spawn(move || {
                let mut wake = Some(wake);
                for _ in signals.forever() {
                    if wake.is_none() {
                        crate::messages::after_interrupt(
                            "interrupted again, exiting without flushing",
                        );
                        std::process::exit(EXIT_ON_SECOND_SIGNAL);
                    }
                    crate::messages::after_interrupt(
                        "interrupted: closing open observations and flushing (interrupt again \
                         to quit at once)",
                    );
                    seen.store(true, Ordering::SeqCst);
                    drop(wake.take());
                }
            })?;
        Ok(Stop { flag, woken })
    }

    /// A stop that never fires: for reading a file whole even while a real stop is pending
    /// (`backfill` checks the real one between files, so no session is cut in half).
    pub fn inert() -> Stop {
        let (tx, woken) = crossbeam_channel::bounded(0);
        // Keep the sender alive forever: a disconnected channel would mean "stop".
        std::mem::forget(tx);
        Stop {
            flag: Arc::new(AtomicBool::new(false)),
            woken,
        }
    }

    /// A stop that never fires (tests).
    #[cfg(test)]
    pub fn never() -> (Stop, Sender<()>) {
        let (tx, woken) = crossbeam_channel::bounded(0);
        (
            Stop {
                flag: Arc::new(AtomicBool::new(false)),
                woken,
            },
            tx,
        )
    }

    /// Sleep up to `d`, waking at once when a stop is asked for; true when one was.
    pub fn wait(&self, d: std::time::Duration) -> bool {
        if self.requested() {
            return true;
        }
        match self.woken.recv_timeout(d) {
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => true,
            _ => self.requested(),
        }
    }

    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
            || matches!(
                self.woken.try_recv(),
                Err(crossbeam_channel::TryRecvError::Disconnected)
            )
    }

    /// Wrap a reader so that it reports end of input once a stop is asked for.
    ///
    /// A blocking reader (stdin from a pipe that stays open) is read on a background thread,
    /// so a signal ends the input even while no line arrives; a file is checked per read.
    pub fn guard(&self, inner: Box<dyn Read + Send>, blocking: Blocking) -> Box<dyn Read + Send> {
        match blocking {
            Blocking::No => Box::new(Checked {
                inner,
                stop: self.clone(),
            }),
            Blocking::Yes => {
                let (tx, rx) = crossbeam_channel::bounded(CHUNKS_IN_FLIGHT);
                // The thread may stay blocked in read() after a stop; the process exits
                // without waiting for it.
                let _ = std::thread::Builder::new()
                    .name("omp-langfuse-stdin".into())
                    .spawn(move || pump(inner, tx));
                Box::new(Pumped {
                    rx,
                    stop: self.clone(),
                    chunk: Vec::new(),
                    pos: 0,
                })
            }
        }
    }
}

/// Whether a reader can block for a long time waiting for data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocking {
    Yes,
    No,
}

struct Checked {
    inner: Box<dyn Read + Send>,
    stop: Stop,
}

impl Read for Checked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stop.requested() {
            return Ok(0);
        }
        self.inner.read(buf)
    }
}

fn pump(mut inner: Box<dyn Read + Send>, tx: Sender<io::Result<Vec<u8>>>) {
    loop {
        let mut chunk = vec![0u8; CHUNK_BYTES];
        match inner.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                chunk.truncate(n);
                if tx.send(Ok(chunk)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

struct Pumped {
    rx: Receiver<io::Result<Vec<u8>>>,
    stop: Stop,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for Pumped {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.chunk.len() {
            if self.stop.requested() {
                return Ok(0);
            }
            let next = select! {
                recv(self.rx) -> msg => msg,
                recv(self.stop.woken) -> _ => return Ok(0),
            };
            match next {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The pump ended: end of input.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A reader that never returns, like a pipe whose writer stays open.
    struct Hang;
    impl Read for Hang {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(Duration::from_secs(3600));
            Ok(0)
        }
    }

    #[test]
    fn a_stop_ends_a_blocked_read() {
        let (stop, trigger) = Stop::never();
        let mut r = stop.guard(Box::new(Hang), Blocking::Yes);
        let t0 = Instant::now();
        let h = std::thread::spawn(move || {
            let mut buf = [0u8; 8];
            r.read(&mut buf).unwrap()
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(trigger);
        assert_eq!(h.join().unwrap(), 0);
        assert!(t0.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn pumped_data_arrives_intact() {
        let (stop, _trigger) = Stop::never();
        let data: Vec<u8> = (0..CHUNK_BYTES * 2 + 7).map(|i| (i % 251) as u8).collect();
        let mut r = stop.guard(Box::new(io::Cursor::new(data.clone())), Blocking::Yes);
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, data);
        let mut f = stop.guard(Box::new(io::Cursor::new(data.clone())), Blocking::No);
        let mut got = Vec::new();
        f.read_to_end(&mut got).unwrap();
        assert_eq!(got, data);
    }
}
