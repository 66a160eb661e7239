//! Generates large, realistic, seeded omp inputs for the benchmark (`bench/run.sh`), in any of
//! the three formats omp-langfuse reads.
//!
//! ```sh
//! cargo run --release --example gen_omp -- --bytes 1G --format live --seed 1 --out big.jsonl
//! ```
//!
//! The same seed gives the same bytes. Sessions are concatenated until the size is reached:
//! many sessions and turns, parallel tools finishing out of order, tool outputs from 1 KB to
//! 2 MB, base64 images, planted fake secrets (format-valid, assembled from parts at run time
//! so no secret-looking literal sits in the source), auto retries, compactions, `/tree`
//! branches (session files), crashed sessions, and a few marathon sessions of 100 MB and more
//! (a session file's whole session is one unit for the decoder). All content is fake.
//!
//! Std and serde_json only.

use std::fmt::Write as _;
use std::io::{self, BufWriter, Write};

use serde_json::{Value, json};

fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gen_omp: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let sink: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(std::fs::File::create(p).unwrap_or_else(|e| {
            eprintln!("gen_omp: cannot create {p}: {e}");
            std::process::exit(2)
        })),
        None => Box::new(io::stdout().lock()),
    };
    let mut g = Gen {
        fmt: args.format,
        rng: Rng::new(args.seed),
        out: Out {
            w: BufWriter::with_capacity(1 << 20, sink),
            written: 0,
        },
        pool: LinePool::new(args.seed),
        now: 1_767_225_600_000, // 2026-01-01T00:00:00Z
        sessions: 0,
        largest: 0,
    };
    while g.out.written < args.bytes {
        let left = args.bytes - g.out.written;
        let before = g.out.written;
        g.session(left);
        g.largest = g.largest.max(g.out.written - before);
    }
    if let Err(e) = g.out.w.flush() {
        eprintln!("gen_omp: writing: {e}");
        std::process::exit(1);
    }
    eprintln!(
        "gen_omp: {} sessions (largest {} MB), {} bytes ({})",
        g.sessions,
        g.largest >> 20,
        g.out.written,
        args.format.name()
    );
}

const USAGE: &str = "usage: gen_omp --bytes SIZE[K|M|G] [--format live|extension|session-log] \
                     [--seed N] [--out FILE]";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Live,
    Extension,
    SessionLog,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Live => "live",
            Format::Extension => "extension",
            Format::SessionLog => "session-log",
        }
    }
}

struct Args {
    bytes: u64,
    format: Format,
    seed: u64,
    out: Option<String>,
}

impl Args {
    fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut a = Args {
            bytes: 0,
            format: Format::Live,
            seed: 1,
            out: None,
        };
        while let Some(flag) = it.next() {
            let (flag, inline) = match flag.split_once('=') {
                Some((f, v)) => (f.to_string(), Some(v.to_string())),
                None => (flag, None),
            };
            let mut value = || inline.clone().or_else(|| it.next()).ok_or("missing value");
            match flag.as_str() {
                "--bytes" => a.bytes = parse_size(&value()?)?,
                "--format" => {
                    a.format = match value()?.as_str() {
                        "live" => Format::Live,
                        "extension" => Format::Extension,
                        "session-log" => Format::SessionLog,
                        other => return Err(format!("unknown format {other:?}")),
                    }
                }
                "--seed" => a.seed = value()?.parse().map_err(|_| "bad --seed")?,
                "--out" => a.out = Some(value()?),
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if a.bytes == 0 {
            return Err("--bytes is required".into());
        }
        Ok(a)
    }
}

/// `100M`, `1G`, `512K`, `12345` (binary multiples).
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&s[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    let n: f64 = num.parse().map_err(|_| format!("bad size {s:?}"))?;
    Ok((n * mult as f64) as u64)
}

/// splitmix64: tiny, seedable, good enough for test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6f6d_705f_6c61_6e67)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.next() as usize % items.len()]
    }
    /// Log-uniform in `lo..=hi`.
    fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
        (l + (h - l) * self.f64()).exp() as u64
    }
    fn chars(&mut self, n: usize, alphabet: &[u8]) -> String {
        (0..n)
            .map(|_| alphabet[self.next() as usize % alphabet.len()] as char)
            .collect()
    }
    fn hex(&mut self, n: usize) -> String {
        self.chars(n, b"0123456789abcdef")
    }
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Lines of fake program output (code, logs, listings), with the characters JSON must escape
/// (quotes, backslashes, tabs) and some non-ASCII text.
struct LinePool {
    lines: Vec<String>,
}

impl LinePool {
    fn new(seed: u64) -> LinePool {
        let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(7));
        let idents = [
            "invoice",
            "ledger",
            "parse_line",
            "Config",
            "retry_after",
            "user_id",
            "batch",
            "session",
            "observation",
            "trace_id",
            "flush",
            "worker",
            "handler",
            "router",
        ];
        let words = [
            "error",
            "warning",
            "ok",
            "passed",
            "failed",
            "compiling",
            "running",
            "fetched",
            "résumé",
            "naïve",
            "日本語",
            "données",
            "→",
            "✓",
        ];
        let mut lines = Vec::with_capacity(4096);
        for n in 0..4096 {
            let a = rng.pick(&idents);
            let b = rng.pick(&idents);
            let w = rng.pick(&words);
            let line = match n % 8 {
                0 => format!(
                    "src/{a}/{b}.rs:{}:{}: {w}: unused variable `{b}`",
                    n,
                    n % 80
                ),
                1 => format!("    let {a} = {b}.get(\"{w}\").unwrap_or_default();"),
                2 => format!("test {a}::{b}_{n} ... {w}"),
                3 => format!(
                    "2026-01-0{}T12:{:02}:{:02}Z INFO {a}: request {} took {} ms",
                    1 + n % 9,
                    n % 60,
                    (n * 7) % 60,
                    rng.hex(12),
                    rng.range(1, 900)
                ),
                4 => format!(
                    "-rw-r--r--  1 dev dev {:>8} Jan  3 10:{:02} {a}_{b}.json",
                    rng.range(10, 999_999),
                    n % 60
                ),
                5 => format!("\t{{\"{a}\": \"{b}\", \"n\": {n}, \"path\": \"C:\\\\work\\\\{w}\"}}"),
                6 => format!("+    if {a}.is_empty() {{ return Err(\"{w} {b}\".into()); }}"),
                _ => format!("// {w} {a} {b} — {}", rng.chars(24, ALNUM)),
            };
            lines.push(line);
        }
        LinePool { lines }
    }

    /// About `bytes` of output text.
    fn text(&self, rng: &mut Rng, bytes: usize) -> String {
        let mut s = String::with_capacity(bytes + 128);
        while s.len() < bytes {
            s.push_str(&self.lines[rng.next() as usize % self.lines.len()]);
            s.push('\n');
        }
        s
    }
}

/// Fake but format-valid credentials, assembled from parts.
fn secret(rng: &mut Rng) -> String {
    let dash = "-";
    match rng.range(0, 8) {
        0 => format!(
            "{}{dash}{}{dash}{}{dash}{}AA",
            "sk",
            "ant",
            "api03",
            rng.chars(93, B64URL)
        ),
        1 => format!("{}{}_{}", "gh", "p", rng.chars(36, ALNUM)),
        2 => format!(
            "{}{} {}",
            ["AK", "IA"].concat(),
            rng.chars(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
            rng.chars(40, ALNUM)
        ),
        3 => format!("{}{dash}{}{dash}{}", "sk", "proj", rng.chars(64, B64URL)),
        4 => format!(
            "{}{}-{}-{}-{}",
            "xo",
            "xb",
            rng.range(100_000_000, 999_999_999),
            rng.range(100_000_000, 999_999_999),
            rng.chars(24, ALNUM)
        ),
        5 => format!(
            "{}J{}.{}J{}.{}",
            "ey",
            rng.chars(30, B64URL),
            "ey",
            rng.chars(60, B64URL),
            rng.chars(43, B64URL)
        ),
        6 => format!(
            "{}{dash}{}{dash}{}-{}-{}-{}-{}",
            "sk",
            "lf",
            rng.hex(8),
            rng.hex(4),
            rng.hex(4),
            rng.hex(4),
            rng.hex(12)
        ),
        7 => format!(
            "{}://admin:{}@db.internal:5432/app",
            ["post", "gres"].concat(),
            rng.chars(20, ALNUM)
        ),
        _ => format!("{}{}_{}", "sk_", "live", rng.chars(24, ALNUM)),
    }
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn image_block(rng: &mut Rng) -> Value {
    let n = rng.log_range(8 << 10, 400 << 10) as usize;
    let mut bytes = Vec::with_capacity(n);
    bytes.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    while bytes.len() < n {
        bytes.extend_from_slice(&rng.next().to_le_bytes());
    }
    json!({"type": "image", "data": base64(&bytes), "mimeType": "image/png"})
}

/// Epoch milliseconds → `2026-01-01T00:00:00.000Z`.
fn iso(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// Counts what it writes.
struct Out<W: Write> {
    w: BufWriter<W>,
    written: u64,
}

impl<W: Write> Out<W> {
    /// One line: `{"type":ty,` then the fields in order (omp writes `type` first).
    fn line(&mut self, ty: &str, fields: &[(&str, &Value)]) {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(b"{\"type\":");
        serde_json::to_writer(&mut buf, ty).expect("json");
        for (k, v) in fields {
            buf.push(b',');
            serde_json::to_writer(&mut buf, k).expect("json");
            buf.push(b':');
            serde_json::to_writer(&mut buf, v).expect("json");
        }
        buf.extend_from_slice(b"}\n");
        self.raw(&buf);
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap_or_else(|e| {
            eprintln!("gen_omp: writing: {e}");
            std::process::exit(1)
        });
        self.written += bytes.len() as u64;
    }
}

/// One tool call of a turn, with its (future) result.
struct Call {
    id: String,
    name: &'static str,
    args: Value,
    intent: String,
    output: Vec<Value>,
    details: Value,
    is_error: bool,
    start: i64,
    end: i64,
}

/// Per-session state shared by the three renderings.
struct Sess {
    id: String,
    cwd: String,
    model: &'static str,
    provider: &'static str,
    /// Session file: last entry id (the leaf).
    leaf: Option<String>,
    /// Session file: ids of the entries so far (for `/tree` branches).
    entry_ids: Vec<String>,
    /// Extension: line counter.
    seq: u64,
    /// Messages since the last compaction (the LLM context).
    context: Vec<Value>,
    context_bytes: usize,
    /// Messages of the current agent run (live `agent_end`).
    run: Vec<Value>,
    turn_index: u64,
    tokens: u64,
    system_prompt: String,
}

struct Gen<W: Write> {
    fmt: Format,
    rng: Rng,
    out: Out<W>,
    pool: LinePool,
    now: i64,
    sessions: u64,
    /// Bytes of the largest session so far.
    largest: u64,
}

/// Compaction once the context holds this much.
const COMPACT_AT_BYTES: usize = 768 << 10;

impl<W: Write> Gen<W> {
    fn tick(&mut self, lo: u64, hi: u64) -> i64 {
        self.now += self.rng.range(lo, hi) as i64;
        self.now
    }

    /// One whole session of at most about `budget` bytes.
    fn session(&mut self, budget: u64) {
        self.sessions += 1;
        let rng = &mut self.rng;
        // Most sessions are short; one in 200 (starting with the third) is a marathon of
        // 100 MB or more: days of work in one session.
        let marathon = self.sessions % 200 == 3;
        let target = if marathon {
            rng.range(100 << 20, 200 << 20)
        } else {
            rng.log_range(50 << 10, 8 << 20)
        }
        .min(budget);
        let crash = rng.chance(0.06);
        let id = format!(
            "{}-{}-7{}-{}-{}",
            rng.hex(8),
            rng.hex(4),
            rng.hex(3),
            rng.hex(4),
            rng.hex(12)
        );
        let project = ["api", "billing", "web", "infra", "cli", "ml-pipeline"];
        let mut s = Sess {
            id,
            cwd: format!("/home/dev/src/{}", rng.pick(&project)),
            model: ["claude-sonnet-4-5", "gpt-5.1-codex", "gemini-3-pro"][rng.range(0, 2) as usize],
            provider: "anthropic",
            leaf: None,
            entry_ids: Vec::new(),
            seq: 0,
            context: Vec::new(),
            context_bytes: 0,
            run: Vec::new(),
            turn_index: 0,
            tokens: 12_000,
            system_prompt: String::new(),
        };
        s.provider = match s.model {
            "gpt-5.1-codex" => "openai",
            "gemini-3-pro" => "google",
            _ => "anthropic",
        };
        s.system_prompt = self.pool.text(&mut self.rng, 16 << 10);
        self.tick(60_000, 3_600_000);
        let start = self.now;
        self.begin(&mut s, start);
        let start_bytes = self.out.written;
        loop {
            let done = self.out.written - start_bytes >= target;
            let crashed = crash && (done || self.rng.chance(0.2));
            if done && !crashed {
                break;
            }
            self.prompt(&mut s, crashed);
            if crashed {
                return;
            }
        }
        self.finish(&mut s);
    }

    fn begin(&mut self, s: &mut Sess, start: i64) {
        let header = |s: &Sess| {
            vec![
                ("version", json!(3)),
                ("id", json!(s.id)),
                ("timestamp", json!(iso(start))),
                ("cwd", json!(s.cwd)),
            ]
        };
        match self.fmt {
            Format::Live => {
                let h = header(s);
                self.out.line("session", &refs(&h));
                self.out.line("advisor_cost_changed", &[]);
            }
            Format::Extension => {
                self.ext(s, "session_start", vec![], true);
            }
            Format::SessionLog => {
                let title = if self.rng.chance(0.5) {
                    format!(
                        "Fix the {} tests",
                        self.rng.pick(&["invoice", "ledger", "auth"])
                    )
                } else {
                    String::new()
                };
                let mut slot = format!(
                    "{{\"type\":\"title\",\"v\":1,\"title\":{},\"updatedAt\":\"{}\",\"pad\":\"",
                    json!(title),
                    iso(start)
                );
                while slot.len() < 253 {
                    slot.push(' ');
                }
                slot.push_str("\"}\n");
                self.out.raw(slot.as_bytes());
                let h = header(s);
                self.out.line("session", &refs(&h));
                let model = json!(format!("{}/{}", s.provider, s.model));
                self.entry(s, "model_change", vec![("model", model)]);
                self.entry(
                    s,
                    "thinking_level_change",
                    vec![
                        ("thinkingLevel", json!("medium")),
                        ("configured", json!("auto")),
                    ],
                );
            }
        }
    }

    /// An extension line: the event's fields, then `ts`, `sessionId`, `seq` (and context
    /// usage on lifecycle events), as the bridge writes them.
    fn ext(&mut self, s: &mut Sess, ty: &str, mut fields: Vec<(&str, Value)>, lifecycle: bool) {
        fields.push(("ts", json!(self.now)));
        fields.push(("sessionId", json!(s.id)));
        fields.push(("seq", json!(s.seq)));
        s.seq += 1;
        if lifecycle {
            fields.push((
                "contextUsage",
                json!({"tokens": s.tokens, "contextWindow": 200_000, "percent": s.tokens as f64 / 2000.0}),
            ));
        }
        self.out.line(ty, &refs(&fields));
    }

    /// A session-file entry on the current leaf.
    fn entry(&mut self, s: &mut Sess, ty: &str, mut fields: Vec<(&str, Value)>) {
        let id = self.rng.hex(8);
        let mut all = vec![("id", json!(id)), ("parentId", json!(s.leaf))];
        all.push(("timestamp", json!(iso(self.now))));
        // `custom` entries put their payload first, as omp does.
        if ty == "custom" {
            fields.extend(all);
            all = fields;
        } else {
            all.extend(fields);
        }
        self.out.line(ty, &refs(&all));
        s.entry_ids.push(id.clone());
        s.leaf = Some(id);
    }

    fn push_context(&mut self, s: &mut Sess, m: Value) {
        s.context_bytes += approx_len(&m);
        s.context.push(m.clone());
        s.run.push(m);
    }

    fn prompt(&mut self, s: &mut Sess, crash: bool) {
        let rng = &mut self.rng;
        let mut text = format!(
            "{} the {} module so that {} works again.",
            rng.pick(&["Fix", "Refactor", "Review", "Speed up", "Document"]),
            rng.pick(&["invoice", "ledger", "auth", "export"]),
            rng.pick(&["retry", "batching", "the parser", "login"])
        );
        if rng.chance(0.15) {
            let key = secret(rng);
            let _ = write!(text, " Use this key for the staging API: {key}");
        }
        let mut content = vec![json!({"type": "text", "text": text})];
        if rng.chance(0.05) {
            content.push(image_block(rng));
        }
        let at = self.tick(5_000, 600_000);
        let user =
            json!({"role": "user", "content": content, "attribution": "user", "timestamp": at});
        s.run.clear();
        self.run_start(s, &text);
        self.turn_start(s);
        self.message(s, &user, true);
        self.push_context(s, user);
        // The turns of this prompt: tool turns, then a final answer.
        let turns = self.rng.log_range(1, 14);
        let crash_turn = if crash {
            self.rng.range(0, turns - 1)
        } else {
            u64::MAX
        };
        for t in 0..turns {
            if t > 0 {
                self.turn_start(s);
            }
            if self.rng.chance(0.03) {
                self.failed_call_and_retry(s);
            }
            let last = t + 1 == turns;
            let crashed = t == crash_turn;
            self.turn(s, last, crashed);
            if crashed {
                return;
            }
            if s.context_bytes > COMPACT_AT_BYTES {
                self.compaction(s);
            }
        }
        self.run_end(s, true);
    }

    fn run_start(&mut self, s: &mut Sess, prompt: &str) {
        s.turn_index = 0;
        match self.fmt {
            Format::Live => self.out.line("agent_start", &[]),
            Format::Extension => {
                let sp = json!([s.system_prompt]);
                self.ext(
                    s,
                    "before_agent_start",
                    vec![("prompt", json!(prompt)), ("systemPrompt", sp)],
                    false,
                );
                self.ext(s, "agent_start", vec![], true);
            }
            Format::SessionLog => {}
        }
    }

    fn run_end(&mut self, s: &mut Sess, terminal: bool) {
        match self.fmt {
            Format::Live if terminal => {
                let msgs = json!(s.run);
                self.out.line(
                    "agent_end",
                    &[("messages", &msgs), ("isTerminal", &json!(true))],
                );
            }
            Format::Live => {}
            Format::Extension => {
                let msgs = json!(s.context);
                if terminal {
                    self.ext(s, "session_stop", vec![("messages", msgs.clone())], false);
                }
                let mut f = vec![("messages", msgs)];
                if !terminal {
                    f.push(("willContinue", json!(true)));
                }
                self.ext(s, "agent_end", f, true);
            }
            Format::SessionLog => {}
        }
    }

    fn turn_start(&mut self, s: &mut Sess) {
        self.tick(5, 50);
        match self.fmt {
            Format::Live => self.out.line("turn_start", &[]),
            Format::Extension => {
                let ctx = json!(s.context);
                self.ext(s, "context", vec![("messages", ctx)], false);
                let f = vec![
                    ("turnIndex", json!(s.turn_index)),
                    ("timestamp", json!(self.now)),
                ];
                self.ext(s, "turn_start", f, true);
            }
            Format::SessionLog => {}
        }
    }

    fn turn_end(&mut self, s: &mut Sess, assistant: &Value, results: &[Value]) {
        let res = json!(results);
        match self.fmt {
            Format::Live => self
                .out
                .line("turn_end", &[("message", assistant), ("toolResults", &res)]),
            Format::Extension => {
                let f = vec![
                    ("turnIndex", json!(s.turn_index)),
                    ("message", assistant.clone()),
                    ("toolResults", res),
                ];
                self.ext(s, "turn_end", f, true);
            }
            Format::SessionLog => {}
        }
        s.turn_index += 1;
    }

    /// `message_start` + `message_end` (stream formats) or a `message` entry (session file).
    fn message(&mut self, s: &mut Sess, m: &Value, with_start: bool) {
        match self.fmt {
            Format::Live => {
                if with_start {
                    self.out.line("message_start", &[("message", m)]);
                }
                self.out.line("message_end", &[("message", m)]);
            }
            Format::Extension => {
                if with_start {
                    self.ext(s, "message_start", vec![("message", m.clone())], false);
                }
                self.ext(s, "message_end", vec![("message", m.clone())], false);
            }
            Format::SessionLog => self.entry(s, "message", vec![("message", m.clone())]),
        }
    }

    fn usage(&mut self, s: &mut Sess, failed: bool) -> Value {
        if failed {
            return json!({"input":0,"output":0,"cacheRead":0,"cacheWrite":0,"totalTokens":0,
                "cost":{"input":0,"output":0,"cacheRead":0,"cacheWrite":0,"total":0}});
        }
        let input = self.rng.range(200, 9_000);
        let output = self.rng.range(20, 2_500);
        let cache_read = s.tokens;
        let cache_write = self.rng.range(0, 3_000);
        s.tokens += input + output / 2;
        let c = |n: u64, per_m: f64| n as f64 * per_m / 1e6;
        let cost = json!({
            "input": c(input, 3.0), "output": c(output, 15.0), "cacheRead": c(cache_read, 0.3),
            "cacheWrite": c(cache_write, 3.75),
            "total": c(input, 3.0) + c(output, 15.0) + c(cache_read, 0.3) + c(cache_write, 3.75)
        });
        json!({"input": input, "output": output, "cacheRead": cache_read, "cacheWrite": cache_write,
            "totalTokens": input + output + cache_read + cache_write, "cost": cost})
    }

    fn provider_request(&mut self, s: &mut Sess) {
        if self.fmt != Format::Extension {
            return;
        }
        let mut messages = vec![json!({"role": "system", "content": s.system_prompt})];
        messages.extend(s.context.iter().cloned());
        let payload = json!({
            "model": s.model, "messages": messages, "max_completion_tokens": 32_000,
            "temperature": 1, "stream": true, "store": false,
            "tools": [{"type":"function","function":{"name":"bash","description":"Run a shell command",
                "parameters":{"type":"object","properties":{"command":{"type":"string"}}}}}]
        });
        self.ext(
            s,
            "before_provider_request",
            vec![("payload", payload)],
            false,
        );
    }

    /// An LLM call that fails (HTTP 529) and the automatic retry that follows.
    fn failed_call_and_retry(&mut self, s: &mut Sess) {
        let attempts = self.rng.range(1, 2);
        for attempt in 1..=attempts {
            self.provider_request(s);
            let at = self.tick(100, 2_000);
            let usage = self.usage(s, true);
            let mut m = json!({
                "role": "assistant", "content": [], "api": "anthropic-messages",
                "provider": s.provider, "model": s.model, "usage": usage, "stopReason": "error",
                "timestamp": at, "duration": self.rng.range(50, 900),
                "errorMessage": "529 Overloaded retry-after-ms=200\nOverloaded (type=overloaded_error)",
                "errorStatus": 529, "errorId": 135_168
            });
            if self.fmt == Format::SessionLog {
                m["retryRecovery"] = json!({"kind":"auto-retry","status":"recovered","attempt":attempt,
                    "recoveredAt": iso(at + 900),"recovery":"wait","note":"recovered after waiting"});
            }
            self.tick(10, 100);
            self.message(s, &m, true);
            s.run.push(m.clone());
            self.turn_end(s, &m, &[]);
            let retry = vec![
                ("attempt", json!(attempt)),
                ("maxAttempts", json!(10)),
                ("delayMs", json!(330.33)),
                ("errorMessage", json!("529 Overloaded")),
            ];
            match self.fmt {
                Format::Live => {
                    self.out.line("auto_retry_start", &refs(&retry));
                    self.out.line("agent_start", &[]);
                }
                Format::Extension => {
                    self.ext(s, "auto_retry_start", retry, false);
                    self.run_end(s, false);
                    self.ext(s, "agent_start", vec![], true);
                }
                Format::SessionLog => {}
            }
            self.turn_start(s);
        }
        let end = vec![("success", json!(true)), ("attempt", json!(attempts))];
        match self.fmt {
            Format::Live => self.out.line("auto_retry_end", &refs(&end)),
            Format::Extension => self.ext(s, "auto_retry_end", end, false),
            Format::SessionLog => {}
        }
    }

    /// One turn: an LLM call, then its tool calls (in parallel), unless it is the last.
    fn turn(&mut self, s: &mut Sess, last: bool, crash: bool) {
        self.provider_request(s);
        let start = self.tick(200, 3_000);
        let n_calls = if last {
            0
        } else {
            *self.rng.pick(&[1, 1, 1, 1, 2, 2, 3, 4])
        };
        let mut calls: Vec<Call> = (0..n_calls).map(|n| self.make_call(n)).collect();
        let n = self.rng.range(100, 3_000) as usize;
        let thinking = self.pool.text(&mut self.rng, n);
        let n = self.rng.range(80, 4_000) as usize;
        let answer = self.pool.text(&mut self.rng, n);
        let mut content = vec![
            json!({"type":"thinking","thinking":thinking,"thinkingSignature":self.rng.chars(200, B64URL)}),
            json!({"type":"text","text":answer}),
        ];
        for c in &calls {
            let mut args = c.args.clone();
            args["i"] = json!(c.intent);
            content.push(
                json!({"type":"toolCall","id":c.id,"name":c.name,"arguments":args,
                "intent":c.intent}),
            );
        }
        let duration = self.rng.range(800, 40_000);
        let ttft = self.rng.range(200, 800.min(duration));
        self.now = start + duration as i64;
        let usage = self.usage(s, false);
        let msg = json!({
            "role": "assistant", "content": content, "api": "anthropic-messages",
            "provider": s.provider, "model": s.model, "usage": usage,
            "stopReason": if n_calls > 0 { "toolUse" } else { "stop" },
            "timestamp": start, "responseId": format!("msg_{}", self.rng.chars(24, ALNUM)),
            "duration": duration, "ttft": ttft, "completedAt": self.now
        });
        // Streaming: the deltas (delta-only in json mode, full snapshots for extensions).
        match self.fmt {
            Format::Live | Format::Extension => {
                if self.fmt == Format::Extension {
                    let resp = vec![
                        ("status", json!(200)),
                        (
                            "headers",
                            json!({"content-type":"text/event-stream","x-request-id":"req_1"}),
                        ),
                        ("requestId", json!(format!("req_{}", self.rng.hex(12)))),
                    ];
                    self.ext(s, "after_provider_response", resp, false);
                }
                let mut partial = msg.clone();
                partial["content"] = json!([{"type":"text","text":"Let me"}]);
                partial["stopReason"] = json!("stop");
                self.stream_line(s, "message_start", vec![("message", partial.clone())]);
                let deltas = match self.fmt {
                    Format::Live => self.rng.range(20, 200),
                    _ => self.rng.range(5, 40),
                };
                for d in 0..deltas {
                    let ev =
                        json!({"type":"text_delta","contentIndex":1,"delta":format!(" chunk {d}")});
                    let mut f = vec![("assistantMessageEvent", ev)];
                    if self.fmt == Format::Extension {
                        // The bridge writes the whole snapshot twice per delta.
                        let mut ev = f.pop().expect("pushed").1;
                        ev["partial"] = partial.clone();
                        f.push(("assistantMessageEvent", ev));
                        f.push(("message", partial.clone()));
                    }
                    self.stream_line(s, "message_update", f);
                }
                if self.fmt == Format::Extension {
                    for c in &calls {
                        let f = vec![
                            ("toolName", json!(c.name)),
                            ("toolCallId", json!(c.id)),
                            ("input", c.args.clone()),
                        ];
                        self.ext(s, "tool_call", f, false);
                    }
                }
                self.stream_line(s, "message_end", vec![("message", msg.clone())]);
            }
            Format::SessionLog => {
                // With an extension loaded, tool starts come before their assistant entry.
                let before = self.rng.chance(0.5);
                if before {
                    self.log_tool_starts(s, &mut calls, start + duration as i64);
                }
                self.message(s, &msg, false);
                if !before {
                    self.log_tool_starts(s, &mut calls, start + duration as i64);
                }
            }
        }
        self.push_context(s, msg.clone());
        if calls.is_empty() {
            self.turn_end(s, &msg, &[]);
            return;
        }
        // Tools run in parallel and finish out of order.
        for c in calls.iter_mut() {
            c.start = self.tick(1, 20);
            if self.fmt != Format::SessionLog {
                let mut f = vec![
                    ("toolCallId", json!(c.id)),
                    ("toolName", json!(c.name)),
                    ("args", c.args.clone()),
                    ("intent", json!(c.intent)),
                ];
                if self.fmt == Format::Live {
                    f.truncate(4);
                }
                self.stream_line(s, "tool_execution_start", f);
            }
        }
        if crash {
            // Killed while the tools run: the session just stops here.
            return;
        }
        let mut order: Vec<usize> = (0..calls.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, self.rng.range(0, i as u64) as usize);
        }
        let mut results = Vec::new();
        for &i in &order {
            let c = &mut calls[i];
            c.end = self.now + self.rng.range(5, 30_000) as i64;
            self.now = self.now.max(c.end);
            let c = &calls[i];
            let result = json!({"content": c.output, "details": c.details, "isError": c.is_error});
            if self.fmt != Format::SessionLog {
                // One update with the head of the output (a tail window, as bash sends).
                let head = match c
                    .output
                    .first()
                    .and_then(|b| b.get("text"))
                    .and_then(Value::as_str)
                {
                    Some(t) => t[..floor_char(t, 4096)].to_string(),
                    None => String::new(),
                };
                let partial = json!({"content":[{"type":"text","text":head}],"details":{}});
                let f = vec![
                    ("toolCallId", json!(c.id)),
                    ("toolName", json!(c.name)),
                    ("args", c.args.clone()),
                    ("partialResult", partial),
                ];
                self.stream_line(s, "tool_execution_update", f);
                if self.fmt == Format::Extension {
                    let f = vec![
                        ("toolName", json!(c.name)),
                        ("toolCallId", json!(c.id)),
                        ("input", c.args.clone()),
                        ("content", json!(c.output)),
                        ("details", c.details.clone()),
                        ("isError", json!(c.is_error)),
                    ];
                    self.ext(s, "tool_result", f, false);
                }
                let f = vec![
                    ("toolCallId", json!(c.id)),
                    ("toolName", json!(c.name)),
                    ("result", result),
                    ("isError", json!(c.is_error)),
                ];
                self.stream_line(s, "tool_execution_end", f);
            }
            let tr = json!({
                "role": "toolResult", "toolCallId": c.id, "toolName": c.name, "content": c.output,
                "details": c.details, "isError": c.is_error, "timestamp": c.end
            });
            self.message(s, &tr, true);
            self.push_context(s, tr.clone());
            results.push(tr);
        }
        self.turn_end(s, &msg, &results);
        // Session files only: now and then the user goes back with `/tree` and abandons
        // the last few entries (they stay in the file, off the active branch).
        if self.fmt == Format::SessionLog && self.rng.chance(0.02) && s.entry_ids.len() > 6 {
            let back = s.entry_ids.len() - self.rng.range(3, 6) as usize;
            let target = s.entry_ids[back].clone();
            s.leaf = Some(target);
            let summary = self.pool.text(&mut self.rng, 600);
            let from = json!(s.entry_ids.last());
            self.entry(
                s,
                "branch_summary",
                vec![("fromId", from), ("summary", json!(summary))],
            );
        }
    }

    fn log_tool_starts(&mut self, s: &mut Sess, calls: &mut [Call], at: i64) {
        for c in calls.iter() {
            let data = json!({"toolCallId": c.id, "toolName": c.name, "startedAt": iso(at),
                "args": c.args, "intent": c.intent});
            self.entry(
                s,
                "custom",
                vec![
                    ("customType", json!("tool_execution_start")),
                    ("data", data),
                ],
            );
        }
    }

    /// A line of one of the two stream formats.
    fn stream_line(&mut self, s: &mut Sess, ty: &str, fields: Vec<(&str, Value)>) {
        match self.fmt {
            Format::Live => self.out.line(ty, &refs(&fields)),
            Format::Extension => {
                let lifecycle = ty == "message_end";
                self.ext(s, ty, fields, lifecycle)
            }
            Format::SessionLog => {}
        }
    }

    fn make_call(&mut self, n: u64) -> Call {
        let rng = &mut self.rng;
        let id = format!("toolu_{}{n}", rng.chars(22, ALNUM));
        // Output size: mostly small, with a long tail up to 2 MB.
        let size = match rng.f64() {
            p if p < 0.80 => rng.log_range(1 << 10, 8 << 10),
            p if p < 0.97 => rng.log_range(8 << 10, 128 << 10),
            _ => rng.log_range(128 << 10, 2 << 20),
        } as usize;
        let (name, args, intent) = match rng.range(0, 4) {
            0 => {
                let cmd = if rng.chance(0.1) {
                    format!("API_TOKEN={} ./deploy.sh --env staging", secret(rng))
                } else {
                    format!("cargo test -p {}", rng.pick(&["api", "core", "cli"]))
                };
                (
                    "bash",
                    json!({"command": cmd, "timeout": 300}),
                    "run the tests",
                )
            }
            1 => (
                "read",
                json!({"path": "src/invoice/parse.rs", "offset": 1, "limit": 2000}),
                "read the parser",
            ),
            2 => (
                "grep",
                json!({"pattern": "retry_after", "path": "src"}),
                "find the callers",
            ),
            3 => (
                "edit",
                json!({"path": "src/lib.rs", "oldText": "let x = 1;", "newText": "let x = 2;"}),
                "apply the fix",
            ),
            _ => (
                "read",
                json!({"path": "docs/screenshot.png"}),
                "look at the screenshot",
            ),
        };
        let mut text = self.pool.text(rng, size);
        if rng.chance(0.08) {
            // An env dump or a .env file in a tool's output.
            let _ = write!(
                text,
                "\nDATABASE_URL={}\nGITHUB_TOKEN={}\nOPENAI_API_KEY={}\n",
                secret(rng),
                secret(rng),
                secret(rng)
            );
        }
        let mut output = vec![json!({"type": "text", "text": text})];
        if intent == "look at the screenshot" || rng.chance(0.02) {
            output.push(image_block(rng));
        }
        let is_error = rng.chance(0.08);
        let mut details =
            json!({"timeoutSeconds": 300, "wallTimeMs": rng.range(3, 90_000) as f64 + 0.25});
        if is_error {
            details["exitCode"] = json!(1);
        }
        Call {
            id,
            name,
            args,
            intent: intent.to_string(),
            output,
            details,
            is_error,
            start: 0,
            end: 0,
        }
    }

    fn compaction(&mut self, s: &mut Sess) {
        let before = s.tokens;
        let after = self.rng.range(3_000, 12_000);
        let n = self.rng.range(1_000, 6_000) as usize;
        let summary = self.pool.text(&mut self.rng, n);
        let start = self.tick(10, 100);
        let end = self.tick(3_000, 40_000);
        let result = json!({"summary": summary, "firstKeptEntryId": self.rng.hex(8),
            "tokensBefore": before, "tokensAfter": after,
            "details": {"readFiles": ["src/lib.rs"], "modifiedFiles": ["src/lib.rs"]}});
        match self.fmt {
            Format::Live => {
                self.now = start;
                let f = [
                    ("reason", json!("threshold")),
                    ("action", json!("context-full")),
                ];
                self.out.line("auto_compaction_start", &refs(&f));
                self.now = end;
                let f = [
                    ("action", json!("context-full")),
                    ("result", result),
                    ("aborted", json!(false)),
                    ("willRetry", json!(false)),
                ];
                self.out.line("auto_compaction_end", &refs(&f));
            }
            Format::Extension => {
                self.now = start;
                let f = vec![
                    ("reason", json!("threshold")),
                    ("action", json!("context-full")),
                ];
                self.ext(s, "auto_compaction_start", f, false);
                self.now = end;
                let mut entry = result.clone();
                entry["type"] = json!("compaction");
                entry["id"] = json!(self.rng.hex(8));
                entry["parentId"] = json!(self.rng.hex(8));
                entry["timestamp"] = json!(iso(end));
                let f = vec![("compactionEntry", entry), ("fromExtension", json!(false))];
                self.ext(s, "session_compact", f, false);
                let f = vec![
                    ("action", json!("context-full")),
                    ("result", result),
                    ("aborted", json!(false)),
                    ("willRetry", json!(false)),
                ];
                self.ext(s, "auto_compaction_end", f, false);
            }
            Format::SessionLog => {
                self.now = end;
                let mut f: Vec<(&str, Value)> = Vec::new();
                for k in [
                    "summary",
                    "firstKeptEntryId",
                    "tokensBefore",
                    "tokensAfter",
                    "details",
                ] {
                    f.push((k, result[k].clone()));
                }
                f.push(("method", json!("handoff")));
                self.entry(s, "compaction", f);
            }
        }
        s.context.clear();
        s.context_bytes = 0;
        s.tokens = after;
    }

    fn finish(&mut self, s: &mut Sess) {
        self.tick(100, 2_000);
        match self.fmt {
            Format::Live => {}
            Format::Extension => self.ext(s, "session_shutdown", vec![], true),
            Format::SessionLog => {
                let data =
                    json!({"reason": "dispose", "kind": "normal", "recordedAt": iso(self.now)});
                self.entry(
                    s,
                    "custom",
                    vec![("customType", json!("session_exit")), ("data", data)],
                );
            }
        }
    }
}

fn refs<'a>(fields: &'a [(&'a str, Value)]) -> Vec<(&'a str, &'a Value)> {
    fields.iter().map(|(k, v)| (*k, v)).collect()
}

/// The largest char boundary at or below `n`.
fn floor_char(s: &str, n: usize) -> usize {
    let mut n = n.min(s.len());
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    n
}

/// Roughly how much JSON a message takes (strings dominate).
fn approx_len(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len() + 2,
        Value::Array(a) => a.iter().map(approx_len).sum::<usize>() + 2,
        Value::Object(o) => o.iter().map(|(k, v)| k.len() + 4 + approx_len(v)).sum(),
        _ => 8,
    }
}
