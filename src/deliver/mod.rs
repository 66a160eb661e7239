//! The delivery pipeline as the reader sees it: configuration, `Delivery::start`, a
//! non-blocking `offer` per encoded item, and `finish` with a bounded shutdown.
//!
//! Every item ends in exactly one place: delivered (and in the ledger), rejected (counted,
//! with the server's reason), or in the spool for the next run. `offer` never waits on the
//! network: with `Backpressure::Spill` a full queue spills to the spool on disk.

pub mod batch;
pub mod http;
pub mod inflight;
pub mod ledger;
pub mod pool;
pub mod reconcile;
pub mod retry;
pub mod sender;
pub mod spool;
pub mod status;
pub mod tree;

#[cfg(test)]
mod tests_worker;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::Receiver;

use crate::deliver::batch::Caps;
use crate::deliver::http::{Destination, HttpSink, SinkSettings, TransportChoice};
use crate::deliver::inflight::InFlight;
use crate::deliver::ledger::{Claim, Ledger, ResendPolicy};
use crate::deliver::retry::RetryPolicy;
use crate::deliver::sender::{
    Backlog, Extras, Gauge, QUEUE_CAPACITY, Queue, Report, ShutdownClock, TimeCap,
};
use crate::deliver::spool::{Origin, Replay, Spool};
use crate::deliver::status::{Counts, DebugLog, Indicator, Status, StatusFile};
use crate::encode::{Encoder, Item, Wire};

/// `LANGFUSE_BASE_URL` / `LANGFUSE_HOST` default.
pub const DEFAULT_BASE_URL: &str = "https://cloud.langfuse.com";
/// `LANGFUSE_TIMEOUT` default, per request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// `--shutdown-timeout` default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// The part of the shutdown timeout kept for writing the spool after the network stops.
const SPOOL_RESERVE_MAX: Duration = Duration::from_millis(500);
/// Name of this tool's directory under the XDG state directory.
const STATE_DIR_NAME: &str = "omp-langfuse";

/// Everything delivery needs, resolved from flags and environment by the CLI.
#[derive(Clone)]
pub struct DeliveryConfig {
    /// `--base-url` / `LANGFUSE_BASE_URL`, then `LANGFUSE_HOST`; default `DEFAULT_BASE_URL`.
    pub base_url: String,
    /// `--public-key` / `LANGFUSE_PUBLIC_KEY`.
    pub public_key: Option<String>,
    /// `--secret-key` / `LANGFUSE_SECRET_KEY`. Never printed (see the `Debug` impl).
    pub secret_key: Option<String>,
    /// `--timeout` / `LANGFUSE_TIMEOUT` (seconds), per request.
    pub timeout: Duration,
    /// `--transport auto|otlp|ingestion`.
    pub transport: TransportChoice,
    /// `--otlp-endpoint` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: full URL of a collector.
    pub otlp_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_HEADERS` (parse with `http::parse_otlp_headers`).
    pub otlp_headers: Vec<(String, String)>,
    /// `--state-dir`; `None` → `default_state_dir()`.
    pub state_dir: Option<PathBuf>,
    /// `--no-replay` → `Replay::No`.
    pub replay: Replay,
    /// `--resend` → `ResendPolicy::SendAgain`.
    pub resend: ResendPolicy,
    /// `--shutdown-timeout` (seconds).
    pub shutdown_timeout: Duration,
    /// `LANGFUSE_DEBUG`.
    pub debug: DebugLog,
    /// `LANGFUSE_UI_INDICATOR` (default: on when stderr is a terminal).
    pub indicator: Indicator,
    /// `--status-file` / `OMP_LANGFUSE_STATUS_FILE`: delivery's state as JSON lines.
    pub status_file: Option<PathBuf>,
    /// Retry schedule (no flag; tests shorten it).
    pub retry: RetryPolicy,
    /// Backoff jitter seed (tests); `None` → from the clock.
    pub seed: Option<u64>,
    /// `--max-in-flight` / `OMP_LANGFUSE_MAX_IN_FLIGHT`: requests outstanding at most
    /// (`None`: the route's default, see [`pool::max_in_flight`]).
    pub max_in_flight: Option<usize>,
}

impl DeliveryConfig {
    /// Defaults for everything but the base URL.
    pub fn new(base_url: &str) -> DeliveryConfig {
        DeliveryConfig {
            base_url: http::normalize_base_url(base_url),
            public_key: None,
            secret_key: None,
            timeout: DEFAULT_TIMEOUT,
            transport: TransportChoice::Auto,
            otlp_endpoint: None,
            otlp_headers: Vec::new(),
            state_dir: None,
            replay: Replay::Yes,
            resend: ResendPolicy::SkipDelivered,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            debug: DebugLog::Off,
            indicator: Indicator::Off,
            status_file: None,
            retry: RetryPolicy::default(),
            seed: None,
            max_in_flight: None,
        }
    }

    /// Pick the transport (asks the server's health endpoint once for `--transport auto`).
    pub fn resolve(&self) -> Destination {
        http::resolve(
            &self.base_url,
            self.transport,
            self.otlp_endpoint.as_deref(),
            &self.otlp_headers,
            self.timeout,
        )
    }

    /// The part of the shutdown timeout the network may use; the rest writes the spool.
    fn network_budget(&self) -> Duration {
        self.shutdown_timeout - (self.shutdown_timeout / 5).min(SPOOL_RESERVE_MAX)
    }
}

impl std::fmt::Debug for DeliveryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryConfig")
            .field("base_url", &self.base_url)
            .field("public_key", &self.public_key)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "[redacted]"),
            )
            .field("timeout", &self.timeout)
            .field("transport", &self.transport)
            .field("otlp_endpoint", &self.otlp_endpoint)
            .field(
                "otlp_headers",
                &self.otlp_headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("state_dir", &self.state_dir)
            .field("replay", &self.replay)
            .field("resend", &self.resend)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

/// `$XDG_STATE_HOME/omp-langfuse`, else `~/.local/state/omp-langfuse` (the XDG default,
/// used on every Unix). Without a home directory: `None`, and the CLI asks for
/// `--state-dir`. No crate needed for two environment variables.
pub fn default_state_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.or_else(|| {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .map(|h| h.join(".local").join("state"))
    })?;
    Some(base.join(STATE_DIR_NAME))
}

/// What `offer` should do when the in-memory queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backpressure {
    /// Live input: never wait; spill to the spool on disk.
    Spill,
    /// File input: wait for the worker (nobody upstream is blocked by us).
    Wait,
}

/// What happened to an offered item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    Queued,
    /// The queue was full (or the worker gone): it is in the spool.
    Spilled,
    /// An earlier run delivered it (`--resend` sends it anyway).
    AlreadyDelivered,
    /// This run already has it.
    Duplicate,
    /// Neither queue nor spool could take it (disk error; reported at the end).
    Lost,
    /// Another process is delivering its session: not sent here.
    Busy,
}

#[derive(Default)]
struct Counters {
    skipped: AtomicU64,
    busy: AtomicU64,
    replayed: AtomicU64,
    lost: AtomicU64,
    /// Items an earlier run left in flight that the server cannot say about.
    maybe_duplicated: AtomicU64,
}

/// Where the request bodies go and how they are cut into requests.
#[derive(Debug, Clone)]
pub struct DeliverConfig {
    pub output: Output,
    pub caps: Caps,
    /// Time cap for live sources and `watch`.
    pub flush_every: Duration,
}

/// What to do with the request bodies.
#[derive(Debug, Clone)]
pub enum Output {
    /// Print them on stdout in this wire format.
    DryRun(Wire),
    /// Print the traces as trees on stdout (`--dry-run=tree`).
    Tree,
    /// Send them to Langfuse.
    Send(Box<DeliveryConfig>),
}

/// Where request bodies go: printed (dry run) or delivered.
pub enum Outbound {
    DryRun {
        encoder: Arc<dyn Encoder>,
        tx: sender::Queue,
        worker: std::thread::JoinHandle<Report>,
    },
    Send {
        encoder: Arc<dyn Encoder>,
        delivery: Delivery,
    },
}

/// Start where request bodies go: the print worker of a dry run, or the delivery
/// pipeline. One door for both; the front half only sees an encoder and an outlet.
pub fn start(cfg: &DeliverConfig, time_cap: TimeCap, live: bool) -> anyhow::Result<Outbound> {
    let encoder_for = |wire: Wire| -> Arc<dyn Encoder> {
        match wire {
            Wire::Ingestion => Arc::new(crate::encode::ingestion::IngestionEncoder),
            Wire::Otlp => Arc::new(crate::encode::otlp::OtlpEncoder::new()),
        }
    };
    // The configured caps, never above what the chosen transport accepts per request.
    let caps_for = |encoder: &dyn Encoder| batch::Caps {
        max_bytes: cfg.caps.max_bytes.min(encoder.max_body_bytes()),
        ..cfg.caps
    };
    Ok(match &cfg.output {
        Output::DryRun(wire) => {
            let encoder = encoder_for(*wire);
            let sink = Box::new(sender::DryRun::new(std::io::BufWriter::new(
                std::io::stdout(),
            )));
            let (tx, worker) = sender::spawn(encoder.clone(), sink, caps_for(&*encoder), time_cap);
            Outbound::DryRun {
                encoder,
                tx,
                worker,
            }
        }
        Output::Tree => {
            let encoder: Arc<dyn Encoder> = Arc::new(crate::encode::tree::TreeEncoder);
            let colour = std::io::IsTerminal::is_terminal(&std::io::stdout());
            let sink = Box::new(tree::TreeSink::new(std::io::stdout(), colour));
            let (tx, worker) = sender::spawn(encoder.clone(), sink, caps_for(&*encoder), time_cap);
            Outbound::DryRun {
                encoder,
                tx,
                worker,
            }
        }
        Output::Send(d) => {
            let dest = d.resolve();
            let encoder = encoder_for(dest.wire);
            // A live omp must never wait on the network: overflow goes to disk.
            let backpressure = if live {
                Backpressure::Spill
            } else {
                Backpressure::Wait
            };
            let mut caps = caps_for(&*encoder);
            let in_flight = pool::max_in_flight(d.max_in_flight, dest.wire);
            if in_flight > 1 && dest.wire == Wire::Ingestion {
                // Each request in flight holds its batch. OTLP bodies are held compressed
                // while out (the benchmark's 3.5 MB batches as 0.8 MB), so full-size
                // requests fit; the legacy route's cannot be, so its requests share one
                // request's bytes.
                caps.max_bytes = (caps.max_bytes / in_flight)
                    .max(pool::MIN_BATCH_BYTES)
                    .min(caps.max_bytes);
            }
            let delivery = Delivery::start(d, dest, encoder.clone(), caps, time_cap, backpressure)?;
            Outbound::Send { encoder, delivery }
        }
    })
}

impl Outbound {
    pub fn encoder(&self) -> &dyn Encoder {
        match self {
            Outbound::DryRun { encoder, .. } | Outbound::Send { encoder, .. } => &**encoder,
        }
    }

    /// The delivery front, when sending (its ledger knows what was delivered).
    pub fn delivery(&self) -> Option<&Delivery> {
        match self {
            Outbound::DryRun { .. } => None,
            Outbound::Send { delivery, .. } => Some(delivery),
        }
    }

    pub fn outlet(&self) -> &dyn Outlet {
        match self {
            Outbound::DryRun { tx, .. } => tx,
            Outbound::Send { delivery, .. } => delivery,
        }
    }

    /// Flush, drain within the shutdown timeout, and report.
    pub fn finish(self) -> anyhow::Result<Report> {
        match self {
            Outbound::DryRun { tx, worker, .. } => {
                drop(tx);
                worker
                    .join()
                    .map_err(|_| anyhow::anyhow!("the delivery worker panicked"))
            }
            Outbound::Send { delivery, .. } => Ok(delivery.finish()),
        }
    }
}

/// Sessions with items on their way at once, in `backfill` (see `Delivery::wait_for_room`).
const MAX_HELD_SESSIONS: usize = 12;
/// Longest `backfill` waits for room before it goes on anyway (a stuck destination must not
/// stop the reading: its items are spooled at the end).
const HOLD_WAIT: Duration = Duration::from_secs(2);

/// The running delivery pipeline.
pub struct Delivery {
    tx: Option<Queue>,
    /// A spare receiver: if the worker ever fails to stop in time, what is still queued
    /// goes to the spool from here.
    rx: Receiver<Item>,
    worker: Option<JoinHandle<Report>>,
    ledger: Arc<Mutex<Ledger>>,
    spool: Arc<Spool>,
    clock: Arc<ShutdownClock>,
    status: Arc<Status>,
    backpressure: Backpressure,
    shutdown_timeout: Duration,
    network_budget: Duration,
    counters: Arc<Counters>,
    /// Keys offered since `start_tracking` (for marking input files complete).
    tracked: Mutex<Option<Tracked>>,
}

/// What was offered while tracking: (session, key) of every item that is (or will be)
/// delivered by this run, and whether any was lost.
#[derive(Debug, Default)]
pub struct Tracked {
    pub keys: Vec<(Arc<str>, String)>,
    pub lost: bool,
}

/// The spool as the worker's backlog. Items of earlier runs were claimed in the ledger at
/// start (before any new input), so replay wins over the same item read again; the first
/// copy pulled of each claimed key is sent, further copies are dropped.
struct Replayer {
    spool: Arc<Spool>,
    /// (session, key) of earlier-run items this run claimed and has not pulled yet.
    claimed: Mutex<HashSet<(Arc<str>, String)>>,
    counters: Arc<Counters>,
    status: Arc<Status>,
}

impl Backlog for Replayer {
    fn has_pending(&self) -> bool {
        self.spool.has_pending()
    }

    fn pull(&self, max_items: usize, max_bytes: usize) -> Vec<Item> {
        loop {
            let pulled = match self.spool.pull(max_items, max_bytes) {
                Ok(p) => p,
                Err(e) => {
                    self.status.warn(&format!("could not read the spool: {e}"));
                    return Vec::new();
                }
            };
            if pulled.is_empty() {
                return Vec::new();
            }
            let mut claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
            let fresh: Vec<Item> = pulled
                .into_iter()
                .filter_map(|(item, origin)| match origin {
                    Origin::ThisRun => Some(item),
                    Origin::EarlierRun => {
                        // Cloning the key for the lookup is cheap next to the HTTP request.
                        let id = (item.session_id.clone(), item.key.clone());
                        claimed.remove(&id).then(|| {
                            self.counters.replayed.fetch_add(1, Ordering::Relaxed);
                            item
                        })
                    }
                })
                .collect();
            // A chunk that was all delivered already is no reason to stop.
            if !fresh.is_empty() {
                return fresh;
            }
        }
    }
}

impl Delivery {
    /// Open the state directory (ledger, spool), claim what earlier runs left, and start the
    /// worker. `dest` comes from `DeliveryConfig::resolve`; `encoder` must match its wire.
    pub fn start(
        cfg: &DeliveryConfig,
        dest: Destination,
        encoder: Arc<dyn Encoder>,
        caps: Caps,
        time_cap: TimeCap,
        backpressure: Backpressure,
    ) -> anyhow::Result<Delivery> {
        anyhow::ensure!(
            encoder.wire() == dest.wire,
            "internal error: encoder and destination disagree on the wire format"
        );
        if let Some(host) = plaintext_host(&dest.url) {
            crate::messages::warn(&format!(
                "the Langfuse keys go to {host} over plain http://: anyone on the network \
                 between can read them (use https://)"
            ));
        }
        let (state_dir, ledger, spool) = open_state(cfg, &dest)?;
        let ledger = Arc::new(Mutex::new(ledger));
        let spool = Arc::new(spool);
        let clock = ShutdownClock::new();
        let status = Arc::new(status_for(cfg, &dest, &state_dir));
        let network_budget = cfg.network_budget();
        let mut sink = HttpSink::new(
            dest,
            SinkSettings {
                public_key: cfg.public_key.clone(),
                secret_key: cfg.secret_key.clone(),
                timeout: cfg.timeout,
                shutdown_budget: network_budget,
                policy: cfg.retry,
                seed: cfg.seed,
            },
            spool.clone(),
            ledger.clone(),
            clock.clone(),
            status.clone(),
        );
        let counters = Arc::new(Counters::default());
        // What an earlier run left in flight is settled before the spool is claimed: what
        // the server has is marked delivered, so neither the input nor the spool sends it.
        if let Some(inflight) = settle_inflight(&state_dir, &sink, &ledger, &status, &counters) {
            sink = sink.with_inflight(inflight);
        }
        let claimed = claim_spool(
            &spool,
            &mut ledger.lock().unwrap_or_else(|e| e.into_inner()),
        )
        .with_context(|| format!("reading the spool in {}", state_dir.display()))?;
        let backlog = Arc::new(Replayer {
            spool: spool.clone(),
            claimed: Mutex::new(claimed),
            counters: counters.clone(),
            status: status.clone(),
        });
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_CAPACITY);
        let gauge = Arc::new(Gauge::default());
        let tx = Queue::new(tx, gauge.clone());
        // One request at a time needs no threads of its own.
        let in_flight = pool::max_in_flight(cfg.max_in_flight, encoder.wire());
        let sink: Box<dyn sender::Sink> = if in_flight > 1 {
            Box::new(pool::PoolSink::new(sink, encoder.clone(), in_flight))
        } else {
            Box::new(sink)
        };
        let worker = sender::spawn_with(
            encoder,
            sink,
            caps,
            time_cap,
            rx.clone(),
            Extras {
                backlog: Some(backlog),
                clock: clock.clone(),
                gauge,
            },
        );
        Ok(Delivery {
            tx: Some(tx),
            rx,
            worker: Some(worker),
            ledger,
            spool,
            clock,
            status,
            backpressure,
            shutdown_timeout: cfg.shutdown_timeout,
            network_budget,
            counters,
            tracked: Mutex::new(None),
        })
    }

    /// Start collecting the keys of offered items (replaces what was collected).
    pub fn start_tracking(&self) {
        *self.tracked.lock().unwrap_or_else(|e| e.into_inner()) = Some(Tracked::default());
    }

    /// What was offered since `start_tracking` or the last take; tracking goes on.
    pub fn take_tracked(&self) -> Tracked {
        let mut t = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        match t.as_mut() {
            Some(t) => std::mem::take(t),
            None => Tracked::default(),
        }
    }

    /// Whether this process delivers `session` (see `Ledger::own`): false while another
    /// process on the same state directory does.
    pub fn own(&self, session: &str) -> bool {
        self.ledger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .own(session)
    }

    /// The length at which an input file was marked completely delivered (see the ledger).
    pub fn done_len(&self, session: &str, name: &str) -> Option<u64> {
        self.ledger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .done_len(session, name)
    }

    /// Mark an input file complete once the tracked items are all delivered.
    pub fn complete_when_delivered(&self, session: &str, name: &str, len: u64, t: Tracked) {
        if t.lost {
            return;
        }
        self.ledger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .complete_when_delivered(&session.into(), name, len, t.keys);
    }

    /// Wait (a bounded while) until fewer than `MAX_HELD_SESSIONS` sessions still have
    /// items on their way: each holds its session lock, an open file, until they are
    /// delivered. Keeps `backfill`'s open files flat over thousands of sessions while
    /// leaving plenty in flight.
    pub fn wait_for_room(&self) {
        let until = Instant::now() + HOLD_WAIT;
        let mut asked = false;
        while Instant::now() < until {
            let held = self.ledger.lock().unwrap_or_else(|e| e.into_inner()).held();
            if held < MAX_HELD_SESSIONS {
                return;
            }
            // Their items may sit in a batch that is not full yet: send it now.
            if !asked && let Some(tx) = &self.tx {
                let _ = tx.send(sender::flush_marker());
                asked = true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Let the ledger forget a session once its deliveries settle (memory, open files).
    pub fn release(&self, session: &str) {
        self.ledger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .release(&session.into());
    }

    /// Hand over one encoded item. Never waits on the network.
    pub fn offer(&self, item: Item) -> Offered {
        let claim = self
            .ledger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .claim(&item.session_id, &item.key);
        if claim != Claim::Delivered
            && let Some(t) = self
                .tracked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
        {
            t.keys.push((item.session_id.clone(), item.key.clone()));
        }
        match claim {
            Claim::Delivered => {
                self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                return Offered::AlreadyDelivered;
            }
            Claim::Busy => {
                self.counters.busy.fetch_add(1, Ordering::Relaxed);
                // Not ours to deliver: the file read is not complete on our account.
                self.tracked_incomplete();
                return Offered::Busy;
            }
            Claim::Duplicate => return Offered::Duplicate,
            Claim::Fresh => {}
        }
        let Some(tx) = &self.tx else {
            return self.spill(item);
        };
        let refused = match self.backpressure {
            Backpressure::Spill => match tx.try_send(item) {
                Ok(()) => return Offered::Queued,
                Err(item) => item,
            },
            Backpressure::Wait => match tx.send(item) {
                Ok(()) => return Offered::Queued,
                Err(item) => item,
            },
        };
        self.spill(refused)
    }

    /// The input file being tracked will not be delivered in full on this run's account:
    /// it must not be marked complete.
    fn tracked_incomplete(&self) {
        if let Some(t) = self
            .tracked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            t.lost = true;
        }
    }

    fn spill(&self, item: Item) -> Offered {
        match self.spool.push(std::slice::from_ref(&item)) {
            Ok(()) => Offered::Spilled,
            Err(e) => {
                self.counters.lost.fetch_add(1, Ordering::Relaxed);
                self.tracked_incomplete();
                self.status
                    .warn(&format!("could not spill an item to the spool: {e}"));
                Offered::Lost
            }
        }
    }

    /// Start the shutdown clock now (e.g. on SIGINT/SIGTERM) without closing the queue:
    /// the network phase ends within the shutdown timeout from this moment.
    pub fn begin_shutdown(&self) {
        self.clock.begin(Instant::now() + self.network_budget);
    }

    /// Close the queue, let the worker drain within the shutdown timeout, spool the rest,
    /// and return the report. Never takes much longer than the shutdown timeout.
    pub fn finish(mut self) -> Report {
        let started = Instant::now();
        self.begin_shutdown();
        drop(self.tx.take());
        let worker = self.worker.take().expect("worker");
        // The worker stops using the network at the budget's end and then only writes the
        // spool; the rest of the shutdown timeout is for that.
        let give_up = started + self.shutdown_timeout;
        while !worker.is_finished() && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut report = if worker.is_finished() {
            worker.join().unwrap_or_else(|_| Report {
                fatal: Some("the delivery worker crashed".into()),
                ..Report::default()
            })
        } else {
            // Should not happen (every request has a timeout); keep what is still queued.
            let rest: Vec<Item> = self.rx.try_iter().collect();
            let _ = self.spool.push(&rest);
            let left = self.spool.finish().unwrap_or(0);
            Report {
                spooled: left,
                fatal: Some(format!(
                    "delivery did not stop within the shutdown timeout ({} s); items in flight may be sent again by the next run",
                    self.shutdown_timeout.as_secs_f64()
                )),
                ..Report::default()
            }
        };
        report.skipped += self.counters.skipped.load(Ordering::Relaxed);
        report.busy += self.counters.busy.load(Ordering::Relaxed);
        report.replayed += self.counters.replayed.load(Ordering::Relaxed);
        report.maybe_duplicated += self.counters.maybe_duplicated.load(Ordering::Relaxed);
        let lost = self.counters.lost.load(Ordering::Relaxed);
        if lost > 0 {
            report.rejected += lost;
            report
                .fatal
                .get_or_insert_with(|| format!("{lost} items could not be spooled and are lost"));
        }
        let counts = Counts {
            delivered: report.delivered,
            rejected: report.rejected,
            spooled: report.spooled,
        };
        self.status.done(counts, report.fatal.as_deref());
        report
    }
}

/// Where the front half puts encoded items: the dry-run worker's channel or the delivery
/// front. Lets the reader code stay the same for both.
pub trait Outlet: Sync {
    fn put(&self, item: Item) -> anyhow::Result<()>;
}

impl Outlet for Queue {
    fn put(&self, item: Item) -> anyhow::Result<()> {
        self.send(item)
            .map_err(|_| anyhow::anyhow!("the delivery worker stopped unexpectedly"))
    }
}

impl Outlet for Delivery {
    /// Never fails: whatever cannot be queued is spilled, skipped or counted as lost (the
    /// report says so at the end).
    fn put(&self, item: Item) -> anyhow::Result<()> {
        self.offer(item);
        Ok(())
    }
}

/// `https://user:pw@host/…` → `https://host/…` for messages.
fn redact_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/') {
            Some((auth, path)) => {
                let host = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
                format!("{scheme}://{host}/{path}")
            }
            None => {
                let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
                format!("{scheme}://{host}")
            }
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod plaintext_tests {
    use super::plaintext_host;

    #[test]
    fn plain_http_to_another_host_is_named() {
        assert_eq!(
            plaintext_host("http://langfuse.corp:3000/api"),
            Some("langfuse.corp".into())
        );
        assert_eq!(plaintext_host("http://10.0.0.5"), Some("10.0.0.5".into()));
        for local in [
            "http://localhost:3000",
            "http://127.0.0.1:3000/x",
            "http://[::1]:8080",
            "http://user:pw@127.0.0.1",
            "https://cloud.langfuse.com",
        ] {
            assert_eq!(plaintext_host(local), None, "{local}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dir_follows_xdg() {
        // Only the pure part: the env-dependent function is exercised by the CLI tests.
        assert_eq!(
            redact_userinfo("https://u:p@h.example/x"),
            "https://h.example/x"
        );
        assert_eq!(redact_userinfo("http://h:3000"), "http://h:3000");
        let cfg = DeliveryConfig::new("https://cloud.langfuse.com/");
        assert_eq!(cfg.base_url, "https://cloud.langfuse.com");
        assert_eq!(cfg.network_budget(), Duration::from_millis(9500));
        let short = DeliveryConfig {
            shutdown_timeout: Duration::from_secs(1),
            ..cfg.clone()
        };
        assert_eq!(short.network_budget(), Duration::from_millis(800));
        assert!(
            !format!(
                "{:?}",
                DeliveryConfig {
                    secret_key: Some("sk-lf-123".into()),
                    ..cfg
                }
            )
            .contains("sk-lf-123")
        );
    }
}

/// Open this destination's state directory (private), its ledger and its spool, and
/// claim what earlier runs spooled before any new input can: replay goes first, and the
/// same item read again from the input is then a duplicate.
#[allow(clippy::type_complexity)]
fn open_state(
    cfg: &DeliveryConfig,
    dest: &Destination,
) -> anyhow::Result<(PathBuf, Ledger, Spool)> {
    let root = match &cfg.state_dir {
        Some(d) => d.clone(),
        None => default_state_dir()
            .context("no state directory: set --state-dir (or HOME / XDG_STATE_HOME)")?,
    };
    let name = dest.state_name(cfg.public_key.as_deref());
    let state_dir = root.join(&name);
    mention_other_spools(&root, &name);
    private_dir(&state_dir)
        .with_context(|| format!("creating the state directory {}", state_dir.display()))?;
    let ledger = Ledger::open(&state_dir.join("ledger"), cfg.resend)
        .with_context(|| format!("opening the delivery ledger in {}", state_dir.display()))?;
    let spool = Spool::open(&state_dir.join("spool"), dest.wire, cfg.replay)
        .with_context(|| format!("opening the spool in {}", state_dir.display()))?;
    Ok((state_dir, ledger, spool))
}

/// Claim in the ledger what earlier runs left in the spool. Spooled copies of delivered
/// items (left by a crash) are dropped silently: the `skipped` count is about input the
/// user gave, not about our own leftovers.
fn claim_spool(spool: &Spool, ledger: &mut Ledger) -> std::io::Result<HashSet<(Arc<str>, String)>> {
    let mut claimed = HashSet::new();
    spool.scan_earlier(|session, key| {
        let session: Arc<str> = session.into();
        if ledger.claim(&session, key) == Claim::Fresh {
            claimed.insert((session, key.to_string()));
        }
    })?;
    Ok(claimed)
}

/// The delivery worker's voice (which scrubs the keys), with the status file when one is
/// asked for (a file that cannot be opened is said and left out: it is for a footer, not
/// for the data); its first debug line names the transport.
fn status_for(cfg: &DeliveryConfig, dest: &Destination, state_dir: &Path) -> Status {
    let secrets = [&cfg.secret_key, &cfg.public_key]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let mut status = Status::new(cfg.debug, cfg.indicator, secrets);
    if let Some(path) = &cfg.status_file {
        match StatusFile::create(path) {
            Ok(file) => status = status.with_file(file),
            Err(e) => crate::messages::warn(&format!(
                "could not open the status file {}: {e}",
                path.display()
            )),
        }
    }
    status.debug(&format!(
        "transport {} to {} ({}); state in {}",
        dest.wire.as_str(),
        redact_userinfo(&dest.url),
        dest.reason,
        state_dir.display()
    ));
    status
}

/// Open the in-flight records and settle what an earlier run left there (the server is
/// asked; what it has goes into the ledger). `None` when they cannot be kept (said).
fn settle_inflight(
    state_dir: &Path,
    sink: &HttpSink,
    ledger: &Mutex<Ledger>,
    status: &Status,
    counters: &Counters,
) -> Option<Arc<InFlight>> {
    let inflight = match InFlight::open(&state_dir.join("inflight")) {
        Ok(f) => f,
        Err(e) => {
            status.warn(&format!(
                "could not open the in-flight records in {}: {e} (a crash mid-request may \
                 then send a batch twice)",
                state_dir.display()
            ));
            return None;
        }
    };
    let r = {
        let mut l = ledger.lock().unwrap_or_else(|e| e.into_inner());
        reconcile::reconcile(&inflight, sink.api(), &mut l)
    };
    tell_reconciled(status, r);
    counters
        .maybe_duplicated
        .fetch_add(r.unknown, Ordering::Relaxed);
    Some(Arc::new(inflight))
}

/// Say what start-up learned about an earlier run's batches in flight.
fn tell_reconciled(status: &Status, r: reconcile::Reconciled) {
    if r.found > 0 {
        status.debug(&format!(
            "{} that an earlier run was sending when it stopped are on the server: not sent again",
            crate::messages::plural(r.found, "observation")
        ));
    }
    if r.unknown > 0 {
        status.warn(&format!(
            "{} were on their way when an earlier run stopped, and this server cannot say \
             whether it stored them: they may be sent twice",
            crate::messages::plural(r.unknown, "observation")
        ));
    }
}

/// Spool items waiting under another key for the same host (the name's host part): a
/// mistyped public key spools where the right one never replays. Said once at start.
fn mention_other_spools(root: &Path, name: &str) {
    let Some((host, _)) = name.rsplit_once('-') else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let other = e.file_name().to_string_lossy().into_owned();
        if other == name || other.rsplit_once('-').map(|(h, _)| h) != Some(host) {
            continue;
        }
        let spool = e.path().join("spool");
        let waiting = std::fs::read_dir(&spool)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|f| f.path().extension().is_some_and(|x| x == "jsonl"))
            .filter(|f| f.metadata().is_ok_and(|m| m.len() > 0))
            .count();
        if waiting > 0 {
            crate::messages::warn(&format!(
                "{} spooled for {host} under another public key wait in {}: is \
                 LANGFUSE_PUBLIC_KEY the same as when they were spooled?",
                crate::messages::plural(waiting as u64, "segment"),
                spool.display()
            ));
        }
    }
}

/// The host of a plain `http://` URL that is not this machine (`None` for https and for
/// loopback: a local Langfuse or collector is fine in clear text).
fn plaintext_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback).then(|| host.to_string())
}

/// The state directory and everything in it are the user's alone: the spool holds prompts
/// and tool output. Directories are created 0700 (existing ones of this tool are narrowed
/// to it); see [`private_file`] for files.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode != 0o700 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Open options for a state file: created 0600.
pub fn private_file(opts: &mut std::fs::OpenOptions) -> &mut std::fs::OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
}
