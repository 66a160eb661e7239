//! HTTP delivery to Langfuse: picking the transport (health check), the request itself
//! (auth, headers, gzip, timeouts) and `HttpSink`, which applies the retry policy to each
//! batch and routes every item to exactly one fate: delivered (ledger), rejected, or spooled.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::deliver::inflight::{InFlight, Ticket};
use crate::deliver::ledger::Ledger;
use crate::deliver::reconcile::Api;
use crate::deliver::retry::{self, Answer, Backoff, RetryPolicy, Verdict};
use crate::deliver::sender::{Report, ShutdownClock, Sink};
use crate::deliver::spool::Spool;
use crate::deliver::status::{Attempt, Counts, Phase, Status};
use crate::encode::otlp::{SERVICE_NAME, TOOL_VERSION};
use crate::encode::{Encoder, Item, Wire};

/// Path of the OTLP traces endpoint under the Langfuse base URL.
pub const OTLP_PATH: &str = "/api/public/otel/v1/traces";
/// Path of the legacy batch endpoint.
pub const INGESTION_PATH: &str = "/api/public/ingestion";
/// Path of the unauthenticated health endpoint.
pub const HEALTH_PATH: &str = "/api/public/health";
/// The health check runs before input is read, so it must be short: a live omp writing
/// into our pipe waits on it (the pipe buffer absorbs a few seconds of events).
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
/// The first server version whose OTLP endpoint understands everything we send
/// (`langfuse.*` attributes, JSON, gzip) and that the Langfuse SDKs support.
pub const MIN_OTLP_VERSION: (u64, u64) = (3, 63);
/// A request with less time than this left before the shutdown deadline is not started:
/// it could not finish, and the items go to the spool anyway.
const MIN_REQUEST_TIME: Duration = Duration::from_millis(100);
/// Largest response body read (a 207 for a full batch is tens of kB).
const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// `--transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportChoice {
    /// Ask `/api/public/health`: ≥ 3.63 or no answer → OTLP, older → legacy ingestion.
    #[default]
    Auto,
    Otlp,
    Ingestion,
}

/// Why a transport was chosen (shown by the debug log and the dry-run header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// `--transport otlp|ingestion`.
    Forced,
    /// `--otlp-endpoint` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: a collector speaks OTLP.
    CustomEndpoint,
    /// The health endpoint reported this version.
    ServerVersion(String),
    /// The health endpoint gave no usable answer; OTLP is the safe default.
    NoAnswer(String),
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Forced => write!(f, "chosen by --transport"),
            Reason::CustomEndpoint => write!(f, "a custom OTLP endpoint"),
            Reason::ServerVersion(v) => write!(f, "server version {v}"),
            Reason::NoAnswer(why) => write!(f, "no health answer: {why}"),
        }
    }
}

/// Where and how requests go.
#[derive(Debug, Clone)]
pub struct Destination {
    pub wire: Wire,
    pub url: String,
    pub reason: Reason,
    /// Extra headers from `OTEL_EXPORTER_OTLP_HEADERS` (OTLP only).
    pub extra_headers: Vec<(String, String)>,
}

impl Destination {
    /// A stable, readable directory name for this destination's ledger and spool: the host
    /// plus a digest of the URL and public key (so two projects never share a ledger, and
    /// the key itself never appears).
    pub fn state_name(&self, public_key: Option<&str>) -> String {
        let host: String = host_of(&self.url)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        let digest =
            crate::model::envelope_id(&["destination", &self.url, public_key.unwrap_or_default()]);
        format!("{host}-{}", &digest[..8])
    }
}

/// Strip a trailing slash so paths join cleanly.
pub fn normalize_base_url(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

/// Pick the transport. `Auto` asks the health endpoint once (no auth).
pub fn resolve(
    base_url: &str,
    choice: TransportChoice,
    otlp_endpoint: Option<&str>,
    otlp_headers: &[(String, String)],
    timeout: Duration,
) -> Destination {
    let base = normalize_base_url(base_url);
    let otlp = |reason| Destination {
        wire: Wire::Otlp,
        url: otlp_endpoint
            .map(str::to_string)
            .unwrap_or_else(|| format!("{base}{OTLP_PATH}")),
        reason,
        extra_headers: otlp_headers.to_vec(),
    };
    let ingestion = |reason| Destination {
        wire: Wire::Ingestion,
        url: format!("{base}{INGESTION_PATH}"),
        reason,
        extra_headers: Vec::new(),
    };
    match choice {
        TransportChoice::Otlp if otlp_endpoint.is_some() => otlp(Reason::CustomEndpoint),
        TransportChoice::Otlp => otlp(Reason::Forced),
        TransportChoice::Ingestion => ingestion(Reason::Forced),
        TransportChoice::Auto if otlp_endpoint.is_some() => otlp(Reason::CustomEndpoint),
        TransportChoice::Auto => match server_version(&base, timeout.min(HEALTH_TIMEOUT)) {
            Ok(v) if supports_otlp(&v) => otlp(Reason::ServerVersion(v)),
            Ok(v) if parse_version(&v).is_some() => ingestion(Reason::ServerVersion(v)),
            Ok(v) => otlp(Reason::NoAnswer(format!("unreadable version {v:?}"))),
            Err(e) => otlp(Reason::NoAnswer(e)),
        },
    }
}

/// `GET /api/public/health` → `{"status":"OK","version":"4.16.0"}` (also on a 503).
fn server_version(base: &str, timeout: Duration) -> Result<String, String> {
    let agent = agent_for(base);
    let mut resp = agent
        .get(format!("{base}{HEALTH_PATH}"))
        .config()
        .timeout_global(Some(timeout))
        .build()
        .call()
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| format!("HTTP {status} without JSON"))?;
    v.get("version")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("HTTP {status} without a version"))
}

/// `"4.16.0"`, `"v3.63.1"`, `"3.100.0-rc.1"` → (major, minor).
pub fn parse_version(v: &str) -> Option<(u64, u64)> {
    let v = v.trim().trim_start_matches(['v', 'V']);
    let mut parts = v.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Whether a server version takes our OTLP spans.
pub fn supports_otlp(version: &str) -> bool {
    parse_version(version).is_some_and(|v| v >= MIN_OTLP_VERSION)
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `k1=v1,k2=v2`, values percent-decoded (OTel spec).
pub fn parse_otlp_headers(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        // Never echo the entry: without '=' it may be a whole token.
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            "OTEL_EXPORTER_OTLP_HEADERS: an entry is not key=value (values are hidden)".to_string()
        })?;
        let k = percent_decode(k.trim());
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(format!("OTEL_EXPORTER_OTLP_HEADERS: bad header name {k:?}"));
        }
        out.push((k, percent_decode(v.trim())));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority.rsplit_once('@').map_or(authority, |(_, h)| h)
}

/// The certificates HTTPS trusts, set once at start (see [`trust`]).
static ROOTS: std::sync::OnceLock<ureq::tls::RootCerts> = std::sync::OnceLock::new();

/// Trust the platform's certificate store (with `SSL_CERT_FILE` / `SSL_CERT_DIR`, which
/// `rustls-native-certs` honours) plus the PEM bundle `ca_cert` (`--ca-cert`,
/// `LANGFUSE_CA_CERT`: a private CA in front of a self-hosted Langfuse). Without any of
/// them (a bare container), the bundled Mozilla roots. Returns how many certificates are
/// trusted (0: the bundled roots).
pub fn trust(ca_cert: Option<&std::path::Path>) -> anyhow::Result<usize> {
    use anyhow::Context;
    use ureq::tls::{Certificate, PemItem, RootCerts};
    let mut certs: Vec<Certificate<'static>> = rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path)
            .with_context(|| format!("--ca-cert / LANGFUSE_CA_CERT {}", path.display()))?;
        let before = certs.len();
        certs.extend(ureq::tls::parse_pem(&pem).filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c.to_owned()),
            _ => None,
        }));
        anyhow::ensure!(
            certs.len() > before,
            "--ca-cert / LANGFUSE_CA_CERT {}: no PEM certificate in it",
            path.display()
        );
    }
    let n = certs.len();
    let roots = if certs.is_empty() {
        RootCerts::WebPki
    } else {
        RootCerts::new_with_certs(&certs)
    };
    let _ = ROOTS.set(roots);
    Ok(n)
}

/// Loopback destinations (local servers, tests) never go through a proxy from the
/// environment; everything else honours `HTTPS_PROXY` & co.
fn agent_for(url: &str) -> ureq::Agent {
    let host = host_of(url);
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let loopback = matches!(host, "localhost" | "[::1]") || host.starts_with("127.");
    let mut cfg = ureq::Agent::config_builder()
        .http_status_as_error(false)
        // A redirected POST could silently become a GET; a redirect is a config error.
        .max_redirects(0)
        .user_agent(format!("{SERVICE_NAME}/{TOOL_VERSION}"));
    if let Some(roots) = ROOTS.get() {
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(roots.clone())
            .build();
        cfg = cfg.tls_config(tls);
    }
    if loopback {
        cfg = cfg.proxy(None);
    }
    cfg.build().new_agent()
}

/// `Authorization: Basic base64(public:secret)`.
pub fn basic_auth(public_key: &str, secret_key: &str) -> String {
    let token =
        base64::engine::general_purpose::STANDARD.encode(format!("{public_key}:{secret_key}"));
    format!("Basic {token}")
}

/// gzip level of request bodies, chosen by measurement (`bench/run.sh` bodies, 4 MB each):
/// level 1 compresses about 160 MB/s to 47 % of the size, level 6 (the default) 29 MB/s to
/// 41 %. Six times the CPU for 13 % fewer bytes would make compression, not the network or
/// the input, the limit of every backfill. The deflate is zlib-rs: on the session-log OTLP
/// bodies, level 1 runs at 283 MB/s against miniz_oxide's 204 (27.0 % against 26.6 %).
const GZIP_LEVEL: u32 = 1;

/// gzip a request body.
#[cfg(test)]
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(body.len() / 2),
        Compression::new(GZIP_LEVEL),
    );
    enc.write_all(body).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

/// gzip the request body of `items` without assembling it uncompressed first.
fn gzip_body(encoder: &dyn Encoder, items: &[Item]) -> Vec<u8> {
    let len = encoder.body_len(items);
    let mut enc = GzEncoder::new(Vec::with_capacity(len / 2), Compression::new(GZIP_LEVEL));
    let write = |enc: &mut GzEncoder<Vec<u8>>| -> std::io::Result<()> {
        enc.write_all(encoder.prefix())?;
        for (n, item) in items.iter().enumerate() {
            if n > 0 {
                enc.write_all(b",")?;
            }
            enc.write_all(&item.json)?;
        }
        enc.write_all(encoder.suffix())
    };
    write(&mut enc).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

/// Inflate a gzip body, appending to `out`.
fn gunzip_into(gz: &[u8], out: &mut Vec<u8>) -> std::io::Result<usize> {
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), out)
}

/// A batch's items while their OTLP request is out. The gzip body is what goes on the
/// wire, so the items' JSON is dropped and read back from the body only when something
/// other than delivery becomes of them (a retry, a split, the spool): each request in
/// flight holds its batch compressed (`bench/run.sh` session-log bodies at gzip level 1:
/// 3.5 MB to 0.8 MB), which is what lets several be out at once within the memory goal.
pub struct Packed {
    body: Vec<u8>,
    /// Each item's JSON length, in order.
    lens: Vec<usize>,
}

impl Packed {
    /// Compress `items` into a request body and drop their JSON.
    pub fn pack(encoder: &dyn Encoder, items: &mut [Item]) -> Packed {
        let body = gzip_body(encoder, items);
        let lens = items
            .iter_mut()
            .map(|i| std::mem::take(&mut i.json).len())
            .collect();
        Packed { body, lens }
    }

    /// The items' JSON bytes with a comma between each two (the body's length less its
    /// prefix and suffix, uncompressed).
    fn plain_len(&self) -> usize {
        self.lens.iter().sum::<usize>() + self.lens.len().saturating_sub(1)
    }

    /// Give `items` (the ones packed, in order) their JSON back from the body.
    pub fn unpack(self, encoder: &dyn Encoder, items: &mut [Item]) {
        let framing = encoder.prefix().len() + encoder.suffix().len() + self.lens.len();
        let mut raw = Vec::with_capacity(self.lens.iter().sum::<usize>() + framing);
        // Inflating bytes this process deflated in memory cannot fail.
        gunzip_into(&self.body, &mut raw).expect("inflating our own request body");
        let mut at = encoder.prefix().len();
        for (item, len) in items.iter_mut().zip(self.lens) {
            item.json = raw[at..at + len].to_vec();
            // The comma between items.
            at += len + 1;
        }
    }
}

/// One response, owned.
#[derive(Debug)]
enum Reply {
    Network(String),
    Status {
        code: u16,
        retry_after: Option<String>,
        body: Vec<u8>,
    },
}

impl Reply {
    fn answer(&self) -> Answer<'_> {
        match self {
            Reply::Network(e) => Answer::Network(e),
            Reply::Status {
                code,
                retry_after,
                body,
            } => Answer::Status {
                code: *code,
                retry_after: retry_after.as_deref(),
                body,
            },
        }
    }

    fn outcome(&self) -> String {
        match self {
            Reply::Network(e) => format!("error ({e})"),
            Reply::Status { code, .. } => code.to_string(),
        }
    }
}

/// Settings `HttpSink` needs besides the destination.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    pub public_key: Option<String>,
    pub secret_key: Option<String>,
    /// Per request (`LANGFUSE_TIMEOUT`).
    pub timeout: Duration,
    /// Each request is also capped by this, so one started just before shutdown still ends
    /// within the shutdown timeout.
    pub shutdown_budget: Duration,
    pub policy: RetryPolicy,
    /// Backoff jitter seed (tests); `None` → from the clock.
    pub seed: Option<u64>,
}

/// A circuit breaker: after a batch exhausts its retries the destination counts as down;
/// later batches go straight to the spool, except one single-attempt probe per interval.
#[derive(Debug, Default)]
struct Breaker {
    /// Set while the destination counts as down: when the next probe may go.
    next_probe: Option<Instant>,
}

impl Breaker {
    fn closed(&self) -> bool {
        self.next_probe.is_none()
    }
    fn probe_due(&self) -> bool {
        self.next_probe.is_none_or(|t| Instant::now() >= t)
    }
    fn trip(&mut self, interval: Duration) {
        self.next_probe = Some(Instant::now() + interval);
    }
    fn reset(&mut self) {
        self.next_probe = None;
    }
}

/// The wire to one destination: its URL, connection pool and request headers (auth
/// included, never logged). It sends a body and reads the answer; what becomes of the items
/// (retries, spool, ledger, counts) is [`HttpSink`]'s.
#[derive(Clone)]
struct Transport {
    agent: ureq::Agent,
    dest: Destination,
    headers: Vec<(String, String)>,
}

impl Transport {
    fn new(dest: Destination, settings: &SinkSettings) -> Transport {
        let mut headers = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("x-langfuse-sdk-name".to_string(), SERVICE_NAME.to_string()),
            (
                "x-langfuse-sdk-version".to_string(),
                TOOL_VERSION.to_string(),
            ),
        ];
        if let (Some(pk), Some(sk)) = (&settings.public_key, &settings.secret_key) {
            headers.push(("Authorization".to_string(), basic_auth(pk, sk)));
            headers.push(("x-langfuse-public-key".to_string(), pk.clone()));
        }
        if dest.wire == Wire::Otlp {
            // Selects the v4 real-time write path; harmless on v3.
            headers.push(("x-langfuse-ingestion-version".to_string(), "4".to_string()));
            headers.push(("Content-Encoding".to_string(), "gzip".to_string()));
            // Collector headers override ours by name (e.g. their own Authorization).
            for (k, v) in &dest.extra_headers {
                headers.retain(|(h, _)| !h.eq_ignore_ascii_case(k));
                headers.push((k.clone(), v.clone()));
            }
        }
        Transport {
            agent: agent_for(&dest.url),
            dest,
            headers,
        }
    }

    /// Langfuse's read API beside this destination, on the same connections and keys
    /// (`None` for legacy ingestion, whose events are upserted by id, and a collector).
    fn read_api(&self) -> Option<Api> {
        if self.dest.wire != Wire::Otlp {
            return None;
        }
        Api::beside(&self.dest.url).map(|url| Api {
            agent: self.agent.clone(),
            url,
            // Auth and the SDK's names; not the POST's body headers.
            headers: self
                .headers
                .iter()
                .filter(|(k, _)| k.starts_with("x-langfuse-sdk") || k == "Authorization")
                .cloned()
                .collect(),
        })
    }

    fn post(&self, body: &[u8], timeout: Duration) -> Reply {
        let mut req = self.agent.post(&self.dest.url);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let result = req
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send(body);
        match result {
            Err(e) => Reply::Network(e.to_string()),
            Ok(mut resp) => {
                let code = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let content_type = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                match resp
                    .body_mut()
                    .with_config()
                    .limit(MAX_RESPONSE_BYTES)
                    .read_to_vec()
                {
                    Ok(body) if (200..300).contains(&code) => {
                        match not_langfuse(code, &content_type, &body, self.dest.wire) {
                            // Not Langfuse's answer (a login proxy, a captive portal): an
                            // error, so the items are retried and spooled, never marked.
                            Some(why) => Reply::Network(why),
                            None => Reply::Status {
                                code,
                                retry_after,
                                body,
                            },
                        }
                    }
                    Ok(body) => Reply::Status {
                        code,
                        retry_after,
                        body,
                    },
                    // A success whose answer was cut off is no proof of delivery.
                    Err(e) => Reply::Network(format!("reading the response: {e}")),
                }
            }
        }
    }
}

/// Delivers request bodies to Langfuse over a [`Transport`] and decides what becomes of
/// their items: retries, splits, the spool, the ledger, in-flight records, the counts; see
/// the module docs.
pub struct HttpSink {
    transport: Transport,
    settings: SinkSettings,
    spool: Arc<Spool>,
    ledger: Arc<Mutex<Ledger>>,
    clock: Arc<ShutdownClock>,
    status: Arc<Status>,
    seed: u64,
    /// What all senders to this destination know of it (several may be in flight).
    shared: Arc<Mutex<DestState>>,
    /// A request of this sink failed and was retried or given up since the last look (see
    /// [`HttpSink::take_trouble`]).
    trouble: bool,
    /// The longest a request of this sink waited for its answer since the last look (see
    /// [`HttpSink::take_round_trip`]).
    round_trip: std::cell::Cell<Duration>,
    /// The largest request body sent since the pool last asked (see
    /// [`HttpSink::take_body_bytes`]).
    body_bytes: std::cell::Cell<usize>,
    /// Where requests are recorded while on their way (`None`: not recorded).
    inflight: Option<Arc<InFlight>>,
    /// Langfuse's read API, to ask what the server has after a lost answer.
    api: Option<Api>,
}

/// The destination as its senders see it, shared by every request in flight.
#[derive(Debug, Default)]
struct DestState {
    breaker: Breaker,
    /// The cause of the last give-up, for batches spooled while the destination is down.
    last_cause: Option<String>,
    /// Set by 401/403/404/3xx: nothing more is sent.
    fatal: Option<String>,
    /// Set when a v4 server refused legacy events: the rest is rejected unsent.
    wants_otlp: bool,
    counts: Counts,
}

/// An OTLP batch made ready for its request where it was batched (see
/// [`HttpSink::prepare`]): its in-flight record written and its body compressed.
pub struct Prepared {
    ticket: Option<Ticket>,
    packed: Packed,
}

/// A batch's in-flight record, and whether its last answer was lost.
struct Flight {
    ticket: Option<Ticket>,
    lost: bool,
}

/// Why a batch is given up when the shutdown timeout leaves no time for a request.
fn no_time_left(last_failure: Option<&str>) -> String {
    match last_failure {
        Some(r) => format!("{r}; then no time left before shutdown"),
        None => "no time left before shutdown".to_string(),
    }
}

/// Whether a failed request may have been stored all the same: the body went out and the
/// answer never came (a timeout, a dropped connection, an answer cut off).
fn answer_lost(reason: &str) -> bool {
    let phrase = cause_phrase(reason);
    phrase == "timeout"
        || phrase == "connection closed by the server"
        || reason.starts_with("reading the response")
}

/// What became of one sub-batch (413 splits it).
enum Step {
    Done,
    Split(Vec<Item>, Vec<Item>),
}

impl HttpSink {
    pub fn new(
        dest: Destination,
        settings: SinkSettings,
        spool: Arc<Spool>,
        ledger: Arc<Mutex<Ledger>>,
        clock: Arc<ShutdownClock>,
        status: Arc<Status>,
    ) -> HttpSink {
        let seed = settings.seed.unwrap_or_else(retry::entropy);
        let transport = Transport::new(dest, &settings);
        let api = transport.read_api();
        HttpSink {
            transport,
            settings,
            spool,
            ledger,
            clock,
            status,
            seed,
            shared: Arc::default(),
            trouble: false,
            round_trip: std::cell::Cell::default(),
            body_bytes: std::cell::Cell::default(),
            inflight: None,
            api,
        }
    }

    /// Record every request in `inflight` while it is on its way.
    pub fn with_inflight(mut self, inflight: Arc<InFlight>) -> HttpSink {
        self.inflight = Some(inflight);
        self
    }

    /// Langfuse's read API beside this destination (`None`: a collector, legacy ingestion).
    pub fn api(&self) -> Option<&Api> {
        self.api.as_ref()
    }

    /// Another sender to the same destination (one more request in flight): the same
    /// connection pool, spool, ledger, clock and destination state, its own jitter.
    pub fn sibling(&self) -> HttpSink {
        HttpSink {
            transport: self.transport.clone(),
            settings: self.settings.clone(),
            spool: self.spool.clone(),
            ledger: self.ledger.clone(),
            clock: self.clock.clone(),
            status: self.status.clone(),
            seed: retry::entropy() ^ self.seed.rotate_left(17),
            shared: self.shared.clone(),
            trouble: false,
            round_trip: std::cell::Cell::default(),
            body_bytes: std::cell::Cell::default(),
            inflight: self.inflight.clone(),
            api: self.api.clone(),
        }
    }

    /// The largest request body (as sent: compressed over OTLP) since the last call.
    pub fn take_body_bytes(&mut self) -> usize {
        self.body_bytes.take()
    }

    /// Whether a request failed (and was retried or given up) since the last call.
    pub fn take_trouble(&mut self) -> bool {
        std::mem::take(&mut self.trouble)
    }

    /// The longest a request waited for its answer (sending the body included) since the
    /// last call.
    pub fn take_round_trip(&mut self) -> Duration {
        self.round_trip.take()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, DestState> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn counts(&self) -> Counts {
        self.state().counts
    }

    /// The timeout for a request starting now (zero: no time left).
    fn request_timeout(&self) -> Duration {
        let mut t = self.settings.timeout.min(self.settings.shutdown_budget);
        if let Some(left) = self.clock.remaining() {
            t = t.min(left);
        }
        t
    }

    /// Count what became of `n` items, once: in the run's report (delivered, rejected; what
    /// is left in the spool is the spool's own count at the end) and in the destination's
    /// live counts (the status line and file).
    fn tally(&self, report: &mut Report, fate: Fate, n: usize) {
        let n = n as u64;
        let mut st = self.state();
        match fate {
            Fate::Delivered => {
                report.delivered += n;
                st.counts.delivered += n;
            }
            Fate::Rejected => {
                report.rejected += n;
                st.counts.rejected += n;
            }
            Fate::Spooled => st.counts.spooled += n,
            Fate::Retry => {}
        }
    }

    fn spool_items(&mut self, items: &[Item], report: &mut Report) {
        match self.spool.push(items) {
            Ok(()) => self.tally(report, Fate::Spooled, items.len()),
            Err(e) => {
                // Nowhere left to keep them: say so loudly, and fail the run.
                let msg = format!(
                    "could not write {} undelivered items to the spool: {e}",
                    items.len()
                );
                self.status.warn(&msg);
                self.tally(report, Fate::Rejected, items.len());
                report.fatal.get_or_insert(msg);
            }
        }
    }

    fn delivered(&mut self, items: &[Item], report: &mut Report) {
        self.tally(report, Fate::Delivered, items.len());
        let result = self
            .ledger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(items);
        if let Err(e) = result {
            // Delivered but not remembered: a later run may send these again. Said, and
            // the run exits 1.
            report.unrecorded += items.len() as u64;
            self.status.warn(&format!(
                "could not update the delivery ledger ({e}): these {} observations may be \
                 sent again by a later run",
                items.len()
            ));
        }
    }

    fn rejected(&mut self, count: usize, reason: &str, report: &mut Report) {
        report.because(format!("rejected: {}", cause_phrase(reason)), count);
        self.tally(report, Fate::Rejected, count);
        self.status.rejection(count, reason);
    }

    /// Retries are exhausted (or time is up): spool the items and count the destination as
    /// down, so the worker stops pulling its backlog and later batches skip straight to the
    /// spool until a probe is due.
    fn give_up(&mut self, items: &[Item], attempts: u32, reason: &str, report: &mut Report) {
        self.status.debug(&format!(
            "giving up after {attempts} attempts ({reason}); spooling {} items",
            items.len()
        ));
        self.trouble = true;
        let cap = self.settings.policy.cap;
        {
            let mut st = self.state();
            st.breaker.trip(cap);
            st.last_cause = Some(cause_phrase(reason));
        }
        let cause = format!("{} after {attempts} attempts", cause_phrase(reason));
        report.because(cause, items.len());
        self.spool_items(items, report);
    }

    /// Record `items` as on their way (a failure to is said once in the debug log: the
    /// request goes out anyway).
    fn begin_flight(&self, items: &[Item]) -> Option<Ticket> {
        let inflight = self.inflight.as_ref()?;
        match inflight.begin(items) {
            Ok(t) => Some(t),
            Err(e) => {
                self.status
                    .debug(&format!("could not record a request in flight: {e}"));
                None
            }
        }
    }

    /// Give up on a batch; when its last answer was lost, its in-flight record stays for
    /// the next run to ask the server about (it may have the items that are now spooled).
    fn give_up_flight(
        &mut self,
        items: &[Item],
        attempts: u32,
        reason: &str,
        report: &mut Report,
        flight: Flight,
    ) {
        self.give_up(items, attempts, reason, report);
        if flight.lost
            && let Some(t) = flight.ticket
        {
            t.keep();
        }
    }

    /// After a lost answer: mark what the server has as delivered and return the rest.
    /// Without a read API (or when it cannot be asked now) everything is sent again and
    /// counted as possibly duplicated.
    fn take_known(&mut self, items: Vec<Item>, report: &mut Report) -> Vec<Item> {
        let answer = match &self.api {
            Some(api) => api.which_known(&items).map_err(|e| format!("{e:?}")),
            None => Err("no read API".to_string()),
        };
        let known = match answer {
            Ok(known) => known,
            Err(why) => {
                self.status.debug(&format!(
                    "cannot ask the server which of {} items it has ({why}): sending them again",
                    items.len()
                ));
                report.maybe_duplicated += items.len() as u64;
                return items;
            }
        };
        let (mut have, mut rest) = (Vec::new(), Vec::new());
        for (item, k) in items.into_iter().zip(known) {
            if k {
                have.push(item);
            } else {
                rest.push(item);
            }
        }
        if !have.is_empty() {
            self.status.debug(&format!(
                "the server already has {} of the items whose answer was lost",
                have.len()
            ));
            report.reconciled += have.len() as u64;
            self.delivered(&have, report);
        }
        rest
    }

    /// A fatal answer (keys rejected, wrong URL): nothing more is sent; `items` and what
    /// follows are spooled for a run that can deliver them.
    fn stop_sending(&mut self, items: &[Item], reason: &str, report: &mut Report) {
        let reason = self.status.scrub(reason);
        report.because(cause_phrase(&reason), items.len());
        self.state().fatal = Some(reason.clone());
        report.fatal.get_or_insert(reason);
        self.spool_items(items, report);
    }

    /// Make an OTLP batch ready for its request on the thread that batched it: write its
    /// in-flight record and compress it (see [`Packed`]). A pool then hands its request
    /// threads bodies made in one place, and the batch that waits for a free request waits
    /// compressed. `None` on the legacy route, whose bodies go uncompressed.
    pub fn prepare(&self, encoder: &dyn Encoder, items: &mut [Item]) -> Option<Prepared> {
        if self.transport.dest.wire != Wire::Otlp || items.is_empty() {
            return None;
        }
        let ticket = self.begin_flight(items);
        let packed = Packed::pack(encoder, items);
        Some(Prepared { ticket, packed })
    }

    /// [`Sink::send`] for a batch that may have been [prepared](HttpSink::prepare).
    pub fn send_prepared(
        &mut self,
        encoder: &dyn Encoder,
        mut items: Vec<Item>,
        prepared: Option<Prepared>,
        report: &mut Report,
    ) {
        let spooled_before = self.counts().spooled;
        let (fatal, wants_otlp, probe_due, closed, last_cause) = {
            let st = self.state();
            (
                st.fatal.clone(),
                st.wants_otlp,
                st.breaker.probe_due(),
                st.breaker.closed(),
                st.last_cause.clone(),
            )
        };
        // Spooled after all: the items get their JSON back first (the in-flight record goes
        // with the ticket).
        let mut prepared = prepared;
        let mut restore = |items: &mut Vec<Item>| {
            if let Some(p) = prepared.take() {
                p.packed.unpack(encoder, items);
            }
        };
        if fatal.is_some() || self.clock.over() {
            let cause = match &fatal {
                Some(f) => cause_phrase(f),
                None => "the shutdown timeout ran out".to_string(),
            };
            report.because(cause, items.len());
            restore(&mut items);
            self.spool_items(&items, report);
        } else if wants_otlp {
            self.rejected(items.len(), retry::WANTS_OTLP_MESSAGE, report);
        } else if !probe_due {
            // Known down and no probe due: straight to the spool, the worker stays free.
            let cause = last_cause.unwrap_or_else(|| "server down".into());
            report.because(cause, items.len());
            restore(&mut items);
            self.spool_items(&items, report);
        } else {
            let single_attempt = !closed;
            let mut first = prepared;
            let mut work = vec![items];
            while let Some(batch) = work.pop() {
                let step = self.try_batch(encoder, batch, first.take(), single_attempt, report);
                if let Step::Split(a, b) = step {
                    work.push(b);
                    work.push(a);
                }
            }
        }
        self.tell_phase(spooled_before);
    }

    /// Attempts allowed for a batch: one while the breaker is not closed (a probe).
    fn max_attempts(&self, single_attempt: bool) -> u32 {
        if single_attempt {
            1
        } else {
            self.settings.policy.max_attempts.max(1)
        }
    }

    /// A batch's flight (its in-flight record written now unless it was prepared) and its
    /// body if it was prepared.
    fn flight(&self, items: &[Item], prepared: Option<Prepared>) -> (Flight, Option<Packed>) {
        let (ticket, packed) = match prepared {
            Some(p) => (p.ticket, Some(p.packed)),
            None => (self.begin_flight(items), None),
        };
        let flight = Flight {
            ticket,
            lost: false,
        };
        (flight, packed)
    }

    /// Try one (sub-)batch until it is delivered, rejected, split or spooled.
    fn try_batch(
        &mut self,
        encoder: &dyn Encoder,
        mut items: Vec<Item>,
        prepared: Option<Prepared>,
        single_attempt: bool,
        report: &mut Report,
    ) -> Step {
        let max_attempts = self.max_attempts(single_attempt);
        self.seed = self.seed.wrapping_add(1);
        let mut backoff = Backoff::new(&self.settings.policy, self.seed);
        let mut attempt = 0;
        // The last failure, so running out of time still names what went wrong.
        let mut last_failure: Option<String> = None;
        let (mut flight, mut packed) = self.flight(&items, prepared);
        loop {
            attempt += 1;
            if flight.lost {
                // The last answer was lost: send only what the server does not have.
                items = self.take_known(items, report);
                flight.lost = false;
                if items.is_empty() {
                    return Step::Done;
                }
            }
            let timeout = self.request_timeout();
            if timeout < MIN_REQUEST_TIME.min(self.settings.timeout) {
                if let Some(p) = packed.take() {
                    p.unpack(encoder, &mut items);
                }
                let why = no_time_left(last_failure.as_deref());
                self.give_up_flight(&items, attempt - 1, &why, report, flight);
                return Step::Done;
            }
            let verdict = self.attempt(
                encoder,
                &mut items,
                packed.take(),
                timeout,
                (attempt, max_attempts),
            );
            let (after, reason) = match verdict {
                Verdict::Delivered => {
                    self.state().breaker.reset();
                    self.delivered(&items, report);
                    return Step::Done;
                }
                Verdict::Partial(errors) => {
                    self.state().breaker.reset();
                    items = self.settle_partial(items, &errors, report);
                    if items.is_empty() {
                        return Step::Done;
                    }
                    (None, "per-event server errors in a 207".to_string())
                }
                Verdict::Retry { after, reason } => {
                    flight.lost = answer_lost(&reason);
                    (after, reason)
                }
                Verdict::Split => return self.split_too_large(items, report),
                // A 400 refuses the whole batch for what may be one bad item (a bogus one
                // read back from the spool): halve it until only the bad ones are left.
                Verdict::Reject { reason } if reason.contains("(HTTP 400)") && items.len() > 1 => {
                    self.status
                        .debug(&format!("HTTP 400 for {} items: halving", items.len()));
                    let back = items.split_off(items.len() / 2);
                    return Step::Split(items, back);
                }
                Verdict::Reject { reason } => {
                    self.rejected(items.len(), &reason, report);
                    return Step::Done;
                }
                Verdict::Fatal { reason } => {
                    self.stop_sending(&items, &reason, report);
                    return Step::Done;
                }
            };
            if attempt >= max_attempts {
                self.give_up_flight(&items, attempt, &reason, report, flight);
                return Step::Done;
            }
            last_failure = Some(reason.clone());
            self.trouble = true;
            let wait = after.unwrap_or_else(|| backoff.next().unwrap_or_default());
            self.status
                .progress(self.counts(), Phase::Retrying(&reason));
            if !self.clock.sleep(wait) {
                self.give_up_flight(&items, attempt, &reason, report, flight);
                return Step::Done;
            }
        }
    }
}

impl HttpSink {
    /// After a batch: the status line and file learn whether it went through, to the
    /// spool (and why), or whether nothing more is sent.
    fn tell_phase(&self, spooled_before: u64) {
        let (counts, fatal, cause) = {
            let st = self.state();
            (st.counts, st.fatal.clone(), st.last_cause.clone())
        };
        let failed;
        let spooled;
        let phase = if let Some(f) = fatal {
            let phrase = cause_phrase(&f);
            failed = if f.contains("HTTP 401") || f.contains("HTTP 403") {
                format!("keys rejected ({phrase})")
            } else {
                phrase
            };
            Phase::Failed(&failed)
        } else if counts.spooled > spooled_before {
            spooled = if self.clock.over() {
                "the shutdown timeout ran out".to_string()
            } else {
                cause.unwrap_or_else(|| "server down".into())
            };
            Phase::Spooled(&spooled)
        } else {
            Phase::Ok
        };
        self.status.progress(counts, phase);
    }

    /// One attempt at sending `items`: the body built (for OTLP, the items held only in
    /// it while the request is out, see [`Packed`]), posted, and the answer judged; the
    /// items are whole again afterwards unless they were delivered.
    fn attempt(
        &self,
        encoder: &dyn Encoder,
        items: &mut [Item],
        packed: Option<Packed>,
        timeout: Duration,
        attempts: (u32, u32),
    ) -> Verdict {
        let body_len = match &packed {
            Some(p) => encoder.prefix().len() + encoder.suffix().len() + p.plain_len(),
            None => encoder.body_len(items),
        };
        let (packed, plain) = match (packed, self.transport.dest.wire) {
            (Some(p), _) => (Some(p), Vec::new()),
            (None, Wire::Otlp) => (Some(Packed::pack(encoder, items)), Vec::new()),
            // The legacy route cannot inflate request bodies.
            (None, Wire::Ingestion) => (None, encoder.body(items)),
        };
        let payload = packed.as_ref().map_or(&plain[..], |p| &p.body[..]);
        self.body_bytes
            .set(self.body_bytes.get().max(payload.len()));
        let verdict = self.request(items.len(), payload, body_len, timeout, attempts);
        drop(plain);
        if let Some(p) = packed.filter(|_| !matches!(verdict, Verdict::Delivered)) {
            p.unpack(encoder, items);
        }
        verdict
    }

    /// One request of `items` items (their body `payload`, `body_len` bytes uncompressed):
    /// the POST, the attempt shown, the answer judged.
    fn request(
        &self,
        items: usize,
        payload: &[u8],
        body_len: usize,
        timeout: Duration,
        (attempt, max_attempts): (u32, u32),
    ) -> Verdict {
        let started = Instant::now();
        let reply = self.transport.post(payload, timeout);
        let latency = started.elapsed();
        self.round_trip.set(self.round_trip.get().max(latency));
        self.status.attempt(&Attempt {
            wire: self.transport.dest.wire,
            items,
            bytes: body_len,
            sent_bytes: payload.len(),
            outcome: &reply.outcome(),
            latency,
            attempt,
            max_attempts,
        });
        retry::classify(
            self.transport.dest.wire,
            reply.answer(),
            &self.settings.policy,
            SystemTime::now(),
        )
    }

    /// A legacy 207: the events it does not list were delivered, its 4xx ones are rejected
    /// (all of them, with the OTLP hint, when the server wants OTLP); returns the 5xx ones,
    /// to send again.
    fn settle_partial(
        &mut self,
        items: Vec<Item>,
        errors: &retry::EventErrors,
        report: &mut Report,
    ) -> Vec<Item> {
        let by_id: HashMap<String, usize> = items
            .iter()
            .enumerate()
            .filter_map(|(n, it)| envelope_id(&it.json).map(|id| (id, n)))
            .collect();
        let mut fate = vec![Fate::Delivered; items.len()];
        for (id, msg) in &errors.rejected {
            if let Some(&n) = by_id.get(id) {
                fate[n] = Fate::Rejected;
                if !errors.wants_otlp {
                    self.rejected(1, msg, report);
                }
            }
        }
        for id in &errors.retry {
            if let Some(&n) = by_id.get(id) {
                fate[n] = Fate::Retry;
            }
        }
        if errors.wants_otlp {
            let n = fate.iter().filter(|f| **f == Fate::Rejected).count();
            self.state().wants_otlp = true;
            self.rejected(n, retry::WANTS_OTLP_MESSAGE, report);
        }
        let mut retry_items = Vec::new();
        let mut ok = Vec::new();
        for (item, f) in items.into_iter().zip(fate) {
            match f {
                Fate::Delivered => ok.push(item),
                Fate::Retry => retry_items.push(item),
                Fate::Rejected | Fate::Spooled => {}
            }
        }
        self.delivered(&ok, report);
        retry_items
    }

    /// A 413: halve the batch; a single item that is still too large is rejected.
    fn split_too_large(&mut self, mut items: Vec<Item>, report: &mut Report) -> Step {
        if items.len() == 1 {
            let reason = format!(
                "an item of {} bytes is larger than the server accepts (HTTP 413); lower the \
                 size limits for inputs and outputs",
                items[0].json.len()
            );
            self.rejected(1, &reason, report);
            return Step::Done;
        }
        let back = items.split_off(items.len() / 2);
        Step::Split(items, back)
    }
}

/// What became of items (of one event, in a 207), for [`HttpSink::tally`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Delivered,
    Rejected,
    /// Kept for a later run.
    Spooled,
    /// Sent again (a 207's retryable event): nothing to count yet.
    Retry,
}

/// A failure reason in one short phrase for the summary: the kind of network failure
/// (connection refused, DNS, TLS with its cause, timeout, connection closed) or the HTTP
/// status with its meaning; anything else cut short.
pub(crate) fn cause_phrase(reason: &str) -> String {
    let r = reason.to_ascii_lowercase();
    let has = |k: &[&str]| k.iter().any(|k| r.contains(k));
    let tls = |what: &str| format!("TLS: {what}");
    if has(&["unknownissuer", "unknown issuer"]) {
        tls("certificate of an unknown issuer (a private CA? see --ca-cert)")
    } else if has(&["expired", "notvalidyet"]) {
        tls("certificate expired or not yet valid")
    } else if has(&["notvalidforname", "name mismatch"]) {
        tls("certificate not valid for this host name")
    } else if has(&["certificate", "handshake", "tls", "alert"]) {
        tls("handshake failed")
    } else if has(&["refused"]) {
        "connection refused".to_string()
    } else if has(&[
        "dns",
        "resolve",
        "lookup",
        "name or service not known",
        "no such host",
    ]) {
        "DNS lookup failed".to_string()
    } else if has(&["timed out", "timeout"]) && !r.contains("http 408") {
        "timeout".to_string()
    } else if has(&[
        "reset",
        "broken pipe",
        "connection closed",
        "unexpected eof",
    ]) {
        "connection closed by the server".to_string()
    } else if has(&["html page"]) {
        "an HTML page instead of Langfuse's answer (login proxy?)".to_string()
    } else if has(&["not langfuse's json", "empty body"]) {
        "an answer that is not Langfuse's".to_string()
    } else if has(&["http 429"]) {
        "rate limited (429)".to_string()
    } else if let Some(code) = r.split("http ").nth(1).and_then(|t| t.get(..3)) {
        format!("HTTP {code}")
    } else {
        reason.chars().take(60).collect()
    }
}

/// Why a 2xx answer is not Langfuse's (or an OTLP collector's): `None` when it is. Langfuse
/// answers JSON: `{}` or an export response for OTLP, `{successes, errors}` for ingestion.
/// An HTML page, a body that is not JSON, or (ingestion) no body at all is something else.
fn not_langfuse(code: u16, content_type: &str, body: &[u8], wire: Wire) -> Option<String> {
    let text = body.trim_ascii_start();
    if content_type.contains("html") || text.starts_with(b"<") {
        return Some(format!(
            "the server answered {code} with an HTML page, not Langfuse's JSON: is the URL \
             behind a login proxy or captive portal?"
        ));
    }
    if text.is_empty() {
        return match wire {
            // OTLP collectors may answer an empty 200.
            Wire::Otlp => None,
            Wire::Ingestion => Some(format!(
                "the server answered {code} with an empty body, not Langfuse's JSON"
            )),
        };
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) if v.is_object() => None,
        _ => Some(format!(
            "the server answered {code} with something that is not Langfuse's JSON answer"
        )),
    }
}

/// The envelope `id` of a legacy event (what a 207 refers to).
fn envelope_id(json: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        id: String,
    }
    serde_json::from_slice::<Envelope>(json).ok().map(|e| e.id)
}

impl Sink for HttpSink {
    fn send(&mut self, encoder: &dyn Encoder, items: Vec<Item>, report: &mut Report) {
        self.send_prepared(encoder, items, None, report);
    }

    fn finish(&mut self, report: &mut Report) {
        match self.spool.finish() {
            Ok(left) => report.spooled = left,
            Err(e) => {
                let msg = format!("could not finish the spool: {e}");
                self.status.warn(&msg);
                report.fatal.get_or_insert(msg);
            }
        }
        let bad = self.spool.bad_lines();
        if bad > 0 {
            self.status.warn(&format!(
                "skipped {bad} unreadable spool lines (torn by a crash?)"
            ));
        }
        if let Err(e) = self.ledger.lock().unwrap_or_else(|e| e.into_inner()).sync() {
            self.status
                .warn(&format!("could not sync the delivery ledger: {e}"));
        }
        self.status.clear();
    }

    fn healthy(&self) -> bool {
        let st = self.state();
        st.fatal.is_none() && !st.wants_otlp && st.breaker.probe_due()
    }
}

#[cfg(test)]
mod cause_tests {
    use super::cause_phrase;

    #[test]
    fn causes_in_one_phrase() {
        for (reason, phrase) in [
            (
                "network error: io: Connection refused (os error 111)",
                "connection refused",
            ),
            (
                "network error: dns failed: failed to lookup address",
                "DNS lookup failed",
            ),
            (
                "network error: rustls: invalid peer certificate: UnknownIssuer",
                "TLS: certificate of an unknown issuer (a private CA? see --ca-cert)",
            ),
            ("network error: timeout: global", "timeout"),
            ("rate limited (HTTP 429)", "rate limited (429)"),
            ("server error (HTTP 503): busy", "HTTP 503"),
            (
                "network error: the server answered 200 with an HTML page, not Langfuse's JSON",
                "an HTML page instead of Langfuse's answer (login proxy?)",
            ),
        ] {
            assert_eq!(cause_phrase(reason), phrase, "{reason}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_pick_the_transport() {
        assert_eq!(parse_version("4.16.0"), Some((4, 16)));
        assert_eq!(parse_version("v3.63.1"), Some((3, 63)));
        assert_eq!(parse_version("3.100.0-rc.1"), Some((3, 100)));
        assert_eq!(parse_version("latest"), None);
        assert!(supports_otlp("3.63.0"));
        assert!(supports_otlp("3.100.2"));
        assert!(supports_otlp("4.0.0"));
        assert!(!supports_otlp("3.62.9"));
        assert!(!supports_otlp("2.95.12"));
    }

    #[test]
    fn otlp_headers_follow_the_otel_format() {
        assert_eq!(
            parse_otlp_headers("api-key=abc%3D%3D, x-tenant = acme ,").unwrap(),
            vec![
                ("api-key".to_string(), "abc==".to_string()),
                ("x-tenant".to_string(), "acme".to_string())
            ]
        );
        let err = parse_otlp_headers("Authorization Bearer secret-token").unwrap_err();
        assert!(!err.contains("secret-token"), "{err}");
        assert!(parse_otlp_headers("").unwrap().is_empty());
    }

    #[test]
    fn state_names_are_readable_and_distinct() {
        let d = |url: &str| Destination {
            wire: Wire::Otlp,
            url: url.into(),
            reason: Reason::Forced,
            extra_headers: vec![],
        };
        let a = d("https://cloud.langfuse.com/api/public/otel/v1/traces").state_name(Some("pk-1"));
        assert!(a.starts_with("cloud.langfuse.com-"), "{a}");
        assert_ne!(
            a,
            d("https://cloud.langfuse.com/api/public/otel/v1/traces").state_name(Some("pk-2"))
        );
        let b = d("http://user:pw@127.0.0.1:3000/x").state_name(None);
        assert!(b.starts_with("127.0.0.1_3000-"), "{b}");
        assert!(!b.contains("pw"));
    }

    #[test]
    fn auth_and_gzip() {
        assert_eq!(basic_auth("pk", "sk"), "Basic cGs6c2s=");
        let body = br#"{"resourceSpans":[]}"#.repeat(100);
        let gz = gzip(&body);
        assert!(gz.len() < body.len() / 5);
        let mut out = Vec::new();
        gunzip_into(&gz, &mut out).unwrap();
        assert_eq!(out, body);
    }

    #[test]
    fn gzipped_bodies_inflate_to_the_framed_body() {
        let enc = crate::encode::otlp::OtlpEncoder::new();
        let items: Vec<Item> = (0..3)
            .map(|n| Item {
                session_id: "s".into(),
                key: format!("k{n}"),
                json: format!(r#"{{"n":{n}}}"#).into_bytes(),
                trace_tag: None,
            })
            .collect();
        let gz = gzip_body(&enc, &items);
        let mut out = Vec::new();
        gunzip_into(&gz, &mut out).unwrap();
        assert_eq!(out, enc.body(&items));
        assert_eq!(enc.body_len(&items), out.len());
        assert_eq!(enc.body_len(&[]), enc.body(&[]).len());
    }

    #[test]
    fn a_packed_batch_gets_its_items_back_whole() {
        let enc = crate::encode::otlp::OtlpEncoder::new();
        let original: Vec<Item> = ["", "{}", "{\"t\":\"ü, €, 😀\"}", &"x,".repeat(70_000)]
            .iter()
            .enumerate()
            .map(|(n, json)| Item {
                session_id: "s".into(),
                key: format!("k{n}"),
                json: json.as_bytes().to_vec(),
                trace_tag: Some((n as u64, 1)),
            })
            .collect();
        let mut items = original.clone();
        let packed = Packed::pack(&enc, &mut items);
        assert!(
            items.iter().all(|i| i.json.is_empty()),
            "held compressed only"
        );
        let mut body = Vec::new();
        gunzip_into(&packed.body, &mut body).unwrap();
        assert_eq!(body, enc.body(&original), "the body sent is the batch's");
        packed.unpack(&enc, &mut items);
        assert_eq!(items, original);
    }

    #[test]
    fn envelope_ids_are_read_from_items() {
        assert_eq!(
            envelope_id(br#"{"id":"e-1","timestamp":"t","type":"span-create","body":{"id":"x"}}"#),
            Some("e-1".to_string())
        );
        assert_eq!(envelope_id(b"[]"), None);
    }
}
