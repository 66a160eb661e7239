//! A loopback mock of the Langfuse HTTP API for tests: health, the OTLP and legacy ingestion
//! endpoints, Basic auth, 207 per-event errors, 413 over 4.5 MiB, 429 with Retry-After,
//! scripted and seeded-random failures, hangs and dropped connections. It records every
//! request and counts what it accepted, so tests can prove "exactly once".
//!
//! Plain std: a TcpListener on 127.0.0.1:0, one thread per connection, `Connection: close`.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use super::otlp_strict;

/// Next.js' body limit on the legacy route (and our stand-in for a proxy's on OTLP).
pub const BODY_LIMIT: usize = 4_718_592;
/// No hang lasts longer than this, whatever a test asks (tests must end).
const MAX_HANG: Duration = Duration::from_secs(10);
/// Longest header block accepted.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// How the legacy endpoint treats trace/observation events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestionMode {
    /// v2/v3 and v4 `legacy`: everything accepted.
    Legacy,
    /// v4 default `events_only`: every trace/observation event → per-event 400.
    EventsOnly,
}

/// A scripted answer for the next POST (taken in order, before random failures).
#[derive(Debug, Clone)]
pub enum Scripted {
    /// Answer with this status and a small JSON error body.
    Status(u16),
    /// 429 with this `Retry-After`.
    RateLimit(String),
    /// Wait this long, then drop the connection without answering.
    Hang(Duration),
    /// Drop the connection at once.
    Close,
    /// Legacy only: a 207 where the first `n` events get `status` (the rest succeed).
    EventErrors { status: u16, n: usize },
    /// 200 with an HTML login page (a proxy in front of Langfuse), nothing stored.
    Html,
    /// 200 whose body is cut off (fewer bytes than its Content-Length), nothing stored.
    CutOff,
    /// OTLP only: store the batch, then wait this long and drop the connection without an
    /// answer (a server slower than the client's timeout: the answer is lost, the data not).
    StoreThenHang(Duration),
    /// Answer as if nothing were scripted (to script a later request).
    Pass,
}

/// What the mock does.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// `/api/public/health` version; `None` → the health route answers 404.
    pub version: Option<String>,
    pub public_key: String,
    pub secret_key: String,
    pub ingestion: IngestionMode,
    /// Raw (on-the-wire) bodies larger than this get 413.
    pub body_limit: usize,
    /// Share of POSTs answered with a random 500/502/503 (after auth), seeded.
    pub fail_rate: f64,
    /// Every n-th POST gets 429 with `Retry-After: 0`.
    pub rate_limit_every: Option<u32>,
    pub seed: u64,
    /// Benchmark mode (`examples/mock_langfuse.rs`): accepted bodies are neither inflated,
    /// checked nor kept, only counted, so the mock costs the machine as little as possible.
    pub lean: bool,
    /// Every POST is answered this much later (a WAN round trip plus server time).
    pub delay: Duration,
    /// Serve Langfuse's read API `GET /api/public/v2/observations?traceId=…` (off: 404, as
    /// an older server or a collector answers).
    pub observations_api: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            version: Some("4.16.0".into()),
            public_key: "pk-lf-test".into(),
            secret_key: "sk-lf-test".into(),
            ingestion: IngestionMode::Legacy,
            body_limit: BODY_LIMIT,
            fail_rate: 0.0,
            rate_limit_every: None,
            seed: 1,
            lean: false,
            delay: Duration::ZERO,
            observations_api: true,
        }
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Lowercased names.
    pub headers: Vec<(String, String)>,
    /// Size on the wire.
    pub raw_len: usize,
    /// Inflated body.
    pub body: Vec<u8>,
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<Scripted>,
    received: Vec<Received>,
    /// Accepted OTLP spans by span id.
    spans: HashMap<String, usize>,
    /// Accepted legacy events by envelope id.
    events: HashMap<String, usize>,
    /// Strict-check failures of received OTLP bodies.
    invalid: Vec<String>,
    posts: u32,
    rng: u64,
    /// Lean mode: bytes of accepted bodies as received (compressed).
    lean_bytes: u64,
    /// POSTs being answered now, and the most at once.
    in_flight: u32,
    max_in_flight: u32,
}

/// A running mock server. Stops when dropped.
pub struct MockLangfuse {
    pub addr: std::net::SocketAddr,
    cfg: Arc<Mutex<MockConfig>>,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl MockLangfuse {
    pub fn start(cfg: MockConfig) -> MockLangfuse {
        MockLangfuse::start_on("127.0.0.1:0", cfg).expect("bind loopback")
    }

    /// Start on a given address (e.g. a port that refused connections a moment ago).
    pub fn start_on(addr: &str, cfg: MockConfig) -> Option<MockLangfuse> {
        let listener = TcpListener::bind(addr).ok()?;
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            rng: cfg.seed,
            ..State::default()
        }));
        let cfg = Arc::new(Mutex::new(cfg));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (state, cfg, stop) = (state.clone(), cfg.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (state, cfg, stop) = (state.clone(), cfg.clone(), stop.clone());
                    std::thread::spawn(move || handle(conn, &cfg, &state, &stop));
                }
            })
        };
        Some(MockLangfuse {
            addr,
            cfg,
            state,
            stop,
            accept: Some(accept),
        })
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn script(&self, steps: impl IntoIterator<Item = Scripted>) {
        self.state.lock().unwrap().script.extend(steps);
    }

    pub fn clear_script(&self) {
        self.state.lock().unwrap().script.clear();
    }

    pub fn configure(&self, f: impl FnOnce(&mut MockConfig)) {
        f(&mut self.cfg.lock().unwrap());
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// POSTs received (any answer).
    pub fn posts(&self) -> usize {
        self.received()
            .iter()
            .filter(|r| r.method == "POST")
            .count()
    }

    /// Accepted OTLP span ids with how often each was accepted.
    pub fn spans(&self) -> HashMap<String, usize> {
        self.state.lock().unwrap().spans.clone()
    }

    /// Accepted legacy envelope ids with counts.
    pub fn events(&self) -> HashMap<String, usize> {
        self.state.lock().unwrap().events.clone()
    }

    /// Lean mode: POSTs accepted and their bytes on the wire.
    pub fn lean_totals(&self) -> (u32, u64) {
        let s = self.state.lock().unwrap();
        (s.posts, s.lean_bytes)
    }

    /// The most POSTs that were being answered at once.
    pub fn max_in_flight(&self) -> u32 {
        self.state.lock().unwrap().max_in_flight
    }

    /// POSTs received in full and not yet answered, now.
    pub fn in_flight(&self) -> u32 {
        self.state.lock().unwrap().in_flight
    }

    /// Every span of every OTLP body the mock accepted, in arrival order (a span sent twice
    /// shows twice).
    pub fn accepted(&self) -> Vec<SpanView> {
        let bodies: Vec<Value> = self
            .received()
            .into_iter()
            .filter(|r| r.status == 200 && r.path == "/api/public/otel/v1/traces")
            .filter_map(|r| serde_json::from_slice(&r.body).ok())
            .collect();
        spans_of(&bodies)
    }

    /// Strict-check failures of OTLP bodies (must stay empty).
    pub fn invalid(&self) -> Vec<String> {
        self.state.lock().unwrap().invalid.clone()
    }

    /// Wait until `f` holds (bounded), for tests of live streams.
    pub fn wait_for(&self, limit: Duration, f: impl Fn(&MockLangfuse) -> bool) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if f(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        f(self)
    }
}

impl Drop for MockLangfuse {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Unblock accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// One OTLP span, flattened for assertions: ids, name and attribute values.
#[derive(Debug, Clone)]
pub struct SpanView {
    pub trace_id: String,
    pub span_id: String,
    pub parent_id: Option<String>,
    pub name: String,
    /// Start and end, Unix nanoseconds.
    pub start: u128,
    pub end: u128,
    /// Attribute values without their OTLP type wrapper (`stringValue`, `intValue`, …).
    pub attrs: HashMap<String, Value>,
}

impl SpanView {
    /// Whether this span lies within `parent`'s time.
    pub fn within(&self, parent: &SpanView) -> bool {
        parent.start <= self.start && self.end <= parent.end
    }

    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).and_then(Value::as_str)
    }

    /// `langfuse.observation.type`: agent, span, generation, tool, event.
    pub fn kind(&self) -> &str {
        self.attr("langfuse.observation.type").unwrap_or("")
    }

    /// `langfuse.observation.level`, DEFAULT when absent.
    pub fn level(&self) -> &str {
        self.attr("langfuse.observation.level").unwrap_or("DEFAULT")
    }

    pub fn session(&self) -> &str {
        self.attr("langfuse.session.id").unwrap_or("")
    }
}

/// The spans of OTLP/HTTP JSON request bodies (as the mock receives them, or as
/// `--dry-run=otlp` prints them).
pub fn spans_of(bodies: &[Value]) -> Vec<SpanView> {
    let mut out = Vec::new();
    let list = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for body in bodies {
        for rs in list(body, "resourceSpans") {
            for ss in list(&rs, "scopeSpans") {
                for sp in list(&ss, "spans") {
                    let s = |k: &str| sp.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    let attrs = list(&sp, "attributes")
                        .into_iter()
                        .filter_map(|a| {
                            let key = a.get("key")?.as_str()?.to_string();
                            let v = a.get("value")?.as_object()?.values().next()?.clone();
                            Some((key, v))
                        })
                        .collect();
                    out.push(SpanView {
                        trace_id: s("traceId"),
                        span_id: s("spanId"),
                        parent_id: Some(s("parentSpanId")).filter(|p| !p.is_empty()),
                        name: s("name"),
                        start: s("startTimeUnixNano").parse().unwrap_or(0),
                        end: s("endTimeUnixNano").parse().unwrap_or(0),
                        attrs,
                    });
                }
            }
        }
    }
    out
}

/// A closed loopback port: connections are refused.
pub fn refused_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

fn next_rand(state: &mut State) -> f64 {
    state.rng = state.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = state.rng;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// One page of `GET /api/public/v2/observations?traceId=…&limit=…&cursor=…` over the
/// stored spans (ids sorted; the cursor is the next offset, base64 as Langfuse's is opaque).
fn observations_page(state: &Mutex<State>, path: &str) -> Vec<u8> {
    let query = path.split_once('?').map_or("", |(_, q)| q);
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map(|v| {
                v.replace("%3D", "=")
                    .replace("%2B", "+")
                    .replace("%2F", "/")
            })
    };
    let trace = param("traceId").unwrap_or_default();
    let limit: usize = param("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(50)
        .clamp(1, 1000);
    let offset: usize = param("cursor")
        .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let bodies: Vec<Value> = state
        .lock()
        .unwrap()
        .received
        .iter()
        .filter(|r| r.status == 200 && r.path == "/api/public/otel/v1/traces")
        .filter_map(|r| serde_json::from_slice(&r.body).ok())
        .collect();
    let mut ids: Vec<String> = spans_of(&bodies)
        .into_iter()
        .filter(|s| s.trace_id == trace)
        .map(|s| s.span_id)
        .collect();
    ids.sort();
    ids.dedup();
    let page: Vec<Value> = ids
        .iter()
        .skip(offset)
        .take(limit)
        .map(|id| json!({"id": id, "traceId": trace, "type": "SPAN"}))
        .collect();
    let next = offset + page.len();
    let cursor = (next < ids.len())
        .then(|| base64::engine::general_purpose::STANDARD.encode(next.to_string()));
    json!({"data": page, "meta": {"cursor": cursor}})
        .to_string()
        .into_bytes()
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(conn: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    conn.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    let mut total = 0;
    loop {
        let mut h = String::new();
        let n = conn.read_line(&mut h).ok()?;
        total += n;
        if n == 0 || total > MAX_HEADER_BYTES {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let get = |k: &str| headers.iter().find(|(h, _)| h == k).map(|(_, v)| v.clone());
    let body = if let Some(len) = get("content-length") {
        let len: usize = len.parse().ok()?;
        let mut body = vec![0u8; len];
        conn.read_exact(&mut body).ok()?;
        body
    } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let mut size = String::new();
            conn.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0u8; size + 2];
            conn.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
        body
    } else {
        Vec::new()
    };
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// The connection a request is answered on. A POST stops counting as in flight when its
/// answer starts: the client can send its next request only after reading this one's, so
/// counting until the handler returns would see more in flight than the client ever had.
struct Answer<'a> {
    conn: TcpStream,
    in_flight: Option<InFlight<'a>>,
}

impl Answer<'_> {
    fn shutdown(&mut self, how: Shutdown) -> std::io::Result<()> {
        self.conn.shutdown(how)
    }
}

impl Write for Answer<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.in_flight = None;
        self.conn.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.conn.flush()
    }
}

fn respond(conn: &mut Answer<'_>, status: u16, extra: &[(&str, String)], body: &[u8]) {
    let reason = match status {
        200 => "OK",
        207 => "Multi-Status",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\nContent-Type: application/json\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body);
    let _ = conn.flush();
    let _ = conn.shutdown(Shutdown::Write);
}

/// Counts a POST as being answered until dropped.
struct InFlight<'a>(&'a Mutex<State>);

impl<'a> InFlight<'a> {
    fn enter(state: &'a Mutex<State>) -> Self {
        let mut s = state.lock().unwrap();
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        InFlight(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.lock() {
            s.in_flight -= 1;
        }
    }
}

fn handle(conn: TcpStream, cfg: &Mutex<MockConfig>, state: &Mutex<State>, stop: &AtomicBool) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let write = match conn.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(conn);
    let Some(req) = read_request(&mut reader) else {
        return;
    };
    let cfg = cfg.lock().unwrap().clone();
    let mut write = Answer {
        conn: write,
        in_flight: (req.method == "POST").then(|| InFlight::enter(state)),
    };
    if req.method == "POST" && !cfg.delay.is_zero() {
        std::thread::sleep(cfg.delay);
    }
    let raw_len = req.body.len();
    let header = |k: &str| {
        req.headers
            .iter()
            .find(|(h, _)| h == k)
            .map(|(_, v)| v.as_str())
    };
    let gzipped = header("content-encoding").is_some_and(|v| v.contains("gzip"));
    if cfg.lean && req.method == "POST" {
        let mut s = state.lock().unwrap();
        s.posts += 1;
        s.lean_bytes += raw_len as u64;
        drop(s);
        let body: &[u8] = if req.path == "/api/public/ingestion" {
            br#"{"successes":[],"errors":[]}"#
        } else {
            b"{}"
        };
        let status = if body.len() > 2 { 207 } else { 200 };
        respond(&mut write, status, &[], body);
        return;
    }
    let body = if gzipped {
        let mut out = Vec::new();
        match flate2::read::GzDecoder::new(&req.body[..]).read_to_end(&mut out) {
            Ok(_) => out,
            Err(_) => Vec::new(),
        }
    } else {
        req.body.clone()
    };
    let record = |status: u16| {
        state.lock().unwrap().received.push(Received {
            method: req.method.clone(),
            path: req.path.clone(),
            headers: req.headers.clone(),
            raw_len,
            body: body.clone(),
            status,
        });
    };
    let json_err = |msg: &str| {
        json!({"error": msg, "message": msg})
            .to_string()
            .into_bytes()
    };

    // Health: no auth.
    if req.method == "GET" && req.path.starts_with("/api/public/health") {
        match &cfg.version {
            Some(v) => {
                record(200);
                respond(
                    &mut write,
                    200,
                    &[],
                    json!({"status":"OK","version":v}).to_string().as_bytes(),
                );
            }
            None => {
                record(404);
                respond(&mut write, 404, &[], b"{}");
            }
        }
        return;
    }
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", cfg.public_key, cfg.secret_key))
    );
    if req.method == "GET"
        && cfg.observations_api
        && req.path.split('?').next() == Some("/api/public/v2/observations")
    {
        let (status, answer) = if header("authorization") != Some(expected.as_str()) {
            (401, json_err("Invalid credentials"))
        } else {
            (200, observations_page(state, &req.path))
        };
        record(status);
        respond(&mut write, status, &[], &answer);
        return;
    }
    let otlp = req.path == "/api/public/otel/v1/traces";
    let ingestion = req.path == "/api/public/ingestion";
    if req.method != "POST" || !(otlp || ingestion) {
        record(404);
        respond(&mut write, 404, &[], &json_err("not found"));
        return;
    }
    // Size before auth, as Next.js does.
    if raw_len > cfg.body_limit {
        record(413);
        respond(&mut write, 413, &[], b"Body exceeded 4.5mb limit");
        return;
    }
    if header("authorization") != Some(expected.as_str()) {
        record(401);
        respond(
            &mut write,
            401,
            &[],
            json!({"error":"UnauthorizedError","message":"Invalid credentials. Confirm that you've configured the correct host."}).to_string().as_bytes(),
        );
        return;
    }
    // Scripted answers, then rate limiting and random failures.
    let scripted = {
        let mut s = state.lock().unwrap();
        s.posts += 1;
        let posts = s.posts;
        s.script.pop_front().or_else(|| {
            if cfg
                .rate_limit_every
                .is_some_and(|n| posts.is_multiple_of(n))
            {
                return Some(Scripted::RateLimit("0".into()));
            }
            if cfg.fail_rate > 0.0 && next_rand(&mut s) < cfg.fail_rate {
                let codes = [500, 502, 503];
                let pick = (next_rand(&mut s) * 3.0) as usize;
                return Some(Scripted::Status(codes[pick.min(2)]));
            }
            None
        })
    };
    let mut event_errors = None;
    let mut lose_answer = None;
    match scripted {
        Some(Scripted::Status(code)) => {
            record(code);
            respond(&mut write, code, &[], &json_err("scripted failure"));
            return;
        }
        Some(Scripted::RateLimit(after)) => {
            record(429);
            respond(
                &mut write,
                429,
                &[("Retry-After", after)],
                json!({"message":"Rate limit exceeded","code":"rate_limited"})
                    .to_string()
                    .as_bytes(),
            );
            return;
        }
        Some(Scripted::Hang(d)) => {
            record(0);
            let until = Instant::now() + d.min(MAX_HANG);
            while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            return;
        }
        Some(Scripted::Close) => {
            record(0);
            return;
        }
        Some(Scripted::Html) => {
            record(200);
            respond(
                &mut write,
                200,
                &[],
                b"<!doctype html><html><body>Sign in</body></html>",
            );
            return;
        }
        Some(Scripted::CutOff) => {
            record(200);
            let head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\nContent-Type: application/json\r\n\r\n{\"part";
            let _ = write.write_all(head.as_bytes());
            let _ = write.flush();
            let _ = write.shutdown(Shutdown::Write);
            return;
        }
        Some(Scripted::EventErrors { status, n }) => event_errors = Some((status, n)),
        Some(Scripted::StoreThenHang(d)) => lose_answer = Some(d),
        Some(Scripted::Pass) | None => {}
    }

    if otlp {
        if !header("content-type").is_some_and(|v| v.contains("application/json")) {
            record(400);
            respond(&mut write, 400, &[], &json_err("Invalid content type"));
            return;
        }
        let parsed: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                record(400);
                respond(
                    &mut write,
                    400,
                    &[],
                    &json_err(&format!("invalid JSON: {e}")),
                );
                return;
            }
        };
        let checked = otlp_strict::check_body(&parsed).and_then(|spans| {
            otlp_strict::check_schema(&parsed)?;
            Ok(spans)
        });
        match checked {
            Ok(spans) => {
                let mut s = state.lock().unwrap();
                for id in spans {
                    *s.spans.entry(id).or_default() += 1;
                }
                drop(s);
                record(200);
                if let Some(d) = lose_answer {
                    let until = Instant::now() + d.min(MAX_HANG);
                    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    return;
                }
                respond(&mut write, 200, &[], b"{}");
            }
            Err(e) => {
                state.lock().unwrap().invalid.push(e.clone());
                record(400);
                respond(&mut write, 400, &[], &json_err(&e));
            }
        }
        return;
    }

    // Legacy ingestion: never compressed.
    if gzipped {
        record(400);
        respond(&mut write, 400, &[], b"Invalid JSON");
        return;
    }
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            record(400);
            respond(&mut write, 400, &[], b"Invalid JSON");
            return;
        }
    };
    let Some(batch) = parsed.get("batch").and_then(Value::as_array) else {
        record(400);
        respond(
            &mut write,
            400,
            &[],
            json!({"message":"Invalid request data","errors":["batch: expected array"]})
                .to_string()
                .as_bytes(),
        );
        return;
    };
    let mut successes = Vec::new();
    let mut errors = Vec::new();
    let mut s = state.lock().unwrap();
    for (n, ev) in batch.iter().enumerate() {
        let id = ev
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let ty = ev.get("type").and_then(Value::as_str).unwrap_or_default();
        if let Some((status, count)) = event_errors
            && n < count
        {
            errors.push(json!({"id": id, "status": status, "message": if status >= 500 { "Internal Server Error" } else { "Invalid request data" }, "error": "scripted"}));
            continue;
        }
        if cfg.ingestion == IngestionMode::EventsOnly && ty != "score-create" && ty != "sdk-log" {
            errors.push(json!({"id": id, "status": 400, "message": "Event type not accepted", "error": "Event type not accepted in events_only mode. Send trace and observation data via the OTel endpoint"}));
            continue;
        }
        if id.is_empty() || ev.get("body").is_none() {
            errors.push(json!({"id": id, "status": 400, "message": "Invalid request data", "error": "missing id or body"}));
            continue;
        }
        *s.events.entry(id.clone()).or_default() += 1;
        successes.push(json!({"id": id, "status": 201}));
    }
    drop(s);
    record(207);
    respond(
        &mut write,
        207,
        &[],
        json!({"successes": successes, "errors": errors})
            .to_string()
            .as_bytes(),
    );
}
