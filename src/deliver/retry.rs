//! Retry policy (pure): what one HTTP answer means for a batch, and how long to wait before
//! the next attempt. No I/O and no clock of its own, so every rule is unit-tested.
//!
//! The rules follow what Langfuse documents and what its SDKs do: network errors, 408, 429
//! and 5xx are transient; 400 is a bad payload and never retried; 413 means "split"; 401/403
//! are the operator's problem and stop delivery; a legacy 207 is read event by event.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::encode::Wire;

/// Attempts per batch before it goes to the spool (the first try included). With 30 % of
/// requests failing at random, 8 attempts lose a batch to the spool with odds 0.3^8 ≈ 7e-5.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// First backoff step; doubles per attempt.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Largest backoff step.
pub const DEFAULT_BACKOFF_CAP: Duration = Duration::from_secs(30);
/// The longest `Retry-After` we honour. The JS SDK caps at 60 s too; a server asking for
/// longer gets the batch spooled after the remaining attempts instead of stalling the worker.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(60);
/// Server-provided text is cut to this many characters before it reaches a message.
pub const MAX_SERVER_TEXT: usize = 300;

/// The exact per-event message self-hosted Langfuse v4 (`events_only` write mode) returns for
/// every trace/observation event sent to the legacy endpoint.
pub const EVENT_TYPE_NOT_ACCEPTED: &str = "Event type not accepted";

/// How hard to try one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per batch, the first one included (≥ 1).
    pub max_attempts: u32,
    /// First backoff step.
    pub base: Duration,
    /// Largest backoff step.
    pub cap: Duration,
    /// Largest `Retry-After` honoured.
    pub retry_after_cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base: DEFAULT_BACKOFF_BASE,
            cap: DEFAULT_BACKOFF_CAP,
            retry_after_cap: RETRY_AFTER_CAP,
        }
    }
}

/// What came back for one request.
#[derive(Debug, Clone, Copy)]
pub enum Answer<'a> {
    /// No HTTP answer at all: refused, reset, DNS failure, timeout.
    Network(&'a str),
    /// An HTTP status with its `Retry-After` header (if any) and body.
    Status {
        code: u16,
        retry_after: Option<&'a str>,
        body: &'a [u8],
    },
}

/// What to do with the batch after one answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Everything was accepted.
    Delivered,
    /// A legacy 207 that lists per-event errors (events it does not list were accepted).
    Partial(EventErrors),
    /// Transient: try again, after `after` if the server said so.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// The body was too large (413): send each half on its own.
    Split,
    /// Permanent for this payload (400 and other 4xx): count as rejected, never retry.
    Reject { reason: String },
    /// Permanent for every payload (bad keys, wrong URL): stop sending, spool everything.
    Fatal { reason: String },
}

/// The per-event errors of a legacy 207, by envelope id.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventErrors {
    /// Per-event 4xx: rejected for good, with the server's message.
    pub rejected: Vec<(String, String)>,
    /// Per-event 5xx: only these are sent again.
    pub retry: Vec<String>,
    /// At least one rejection was v4's "Event type not accepted": the server wants OTLP.
    pub wants_otlp: bool,
}

/// The message shown when a v4 server refuses legacy events.
pub const WANTS_OTLP_MESSAGE: &str = "this Langfuse server (v4) no longer accepts traces on the legacy ingestion API \
     (\"Event type not accepted\"); use OTLP instead: --transport otlp (or --transport auto)";

/// Classify one answer. `policy` caps `Retry-After`; `now` resolves an HTTP-date `Retry-After`.
pub fn classify(wire: Wire, answer: Answer<'_>, policy: &RetryPolicy, now: SystemTime) -> Verdict {
    let (code, retry_after, body) = match answer {
        Answer::Network(e) => {
            return Verdict::Retry {
                after: None,
                reason: format!("network error: {}", clip(e)),
            };
        }
        Answer::Status {
            code,
            retry_after,
            body,
        } => (code, retry_after, body),
    };
    let server = server_text(body);
    match code {
        200..=299 => match wire {
            // OTLP never reports per-span results (no partialSuccess): a 2xx is "queued".
            Wire::Otlp => Verdict::Delivered,
            Wire::Ingestion => match parse_multi_status(body) {
                Some(errors) if errors.rejected.is_empty() && errors.retry.is_empty() => {
                    Verdict::Delivered
                }
                Some(errors) => Verdict::Partial(errors),
                // A 2xx without a readable 207 body (a v2 server, a proxy): nothing says
                // any event failed, and re-sending would duplicate on v4, so take it.
                None => Verdict::Delivered,
            },
        },
        401 => Verdict::Fatal {
            reason: format!(
                "Langfuse rejected the API keys (HTTP 401){server}: check LANGFUSE_PUBLIC_KEY and \
                 LANGFUSE_SECRET_KEY, and that LANGFUSE_BASE_URL is the host of their project"
            ),
        },
        403 => Verdict::Fatal {
            reason: format!(
                "Langfuse refused ingestion (HTTP 403){server}: the key may be an organization key \
                 without project scope, or ingestion is suspended for this project"
            ),
        },
        404 => Verdict::Fatal {
            reason: match wire {
                Wire::Otlp => format!(
                    "the OTLP endpoint was not found (HTTP 404){server}: check LANGFUSE_BASE_URL or \
                     --otlp-endpoint; Langfuse servers older than 3.22 have no OTLP endpoint \
                     (use --transport ingestion)"
                ),
                Wire::Ingestion => format!(
                    "the legacy ingestion endpoint was not found (HTTP 404){server}: check \
                     LANGFUSE_BASE_URL; current Langfuse servers take traces over OTLP \
                     (use --transport otlp)"
                ),
            },
        },
        300..=399 => Verdict::Fatal {
            reason: format!(
                "Langfuse answered with a redirect (HTTP {code}): set LANGFUSE_BASE_URL to the \
                 final address (https, no trailing path)"
            ),
        },
        408 => Verdict::Retry {
            after: None,
            reason: "request timeout (HTTP 408)".into(),
        },
        413 => Verdict::Split,
        429 => Verdict::Retry {
            after: retry_after
                .and_then(|v| parse_retry_after(v, now))
                .map(|d| d.min(policy.retry_after_cap)),
            reason: "rate limited (HTTP 429)".into(),
        },
        500..=599 => Verdict::Retry {
            after: retry_after
                .and_then(|v| parse_retry_after(v, now))
                .map(|d| d.min(policy.retry_after_cap)),
            reason: format!("server error (HTTP {code}){server}"),
        },
        400 => Verdict::Reject {
            reason: format!("Langfuse rejected the batch as invalid (HTTP 400){server}"),
        },
        _ => Verdict::Reject {
            reason: format!("Langfuse refused the batch (HTTP {code}){server}"),
        },
    }
}

/// A legacy 207 body: `{successes: [{id, status}], errors: [{id, status, message?, error?}]}`.
#[derive(Deserialize)]
struct MultiStatus {
    #[serde(default)]
    errors: Vec<EventError>,
}

#[derive(Deserialize)]
struct EventError {
    id: String,
    status: u16,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// Read a legacy 207 body. `None` when it is not one.
pub fn parse_multi_status(body: &[u8]) -> Option<EventErrors> {
    let parsed: MultiStatus = serde_json::from_slice(body).ok()?;
    let mut out = EventErrors::default();
    for e in parsed.errors {
        if e.status >= 500 || e.status == 429 || e.status == 408 {
            out.retry.push(e.id);
            continue;
        }
        let message = e.message.unwrap_or_default();
        if message == EVENT_TYPE_NOT_ACCEPTED {
            out.wants_otlp = true;
        }
        let detail = match &e.error {
            Some(serde_json::Value::String(s)) if !s.is_empty() => format!(": {s}"),
            Some(v @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) => {
                format!(": {v}")
            }
            _ => String::new(),
        };
        let text = if message.is_empty() {
            format!("HTTP {}", e.status)
        } else {
            format!("HTTP {} {message}", e.status)
        };
        out.rejected.push((e.id, clip(&format!("{text}{detail}"))));
    }
    Some(out)
}

/// `Retry-After`: delta seconds (`"120"`, also `"1.5"`) or an HTTP-date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    // IMF-fixdate, e.g. "Wed, 21 Oct 2026 07:28:00 GMT" (RFC 9110 §10.2.3).
    let at = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let at = SystemTime::from(at);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The server's own words, cut short, in the form `: "…"` (or nothing).
fn server_text(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => ["message", "error"]
            .iter()
            .filter_map(|k| v.get(*k).and_then(|m| m.as_str()).map(str::to_owned))
            .find(|m| !m.is_empty())
            .unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
    };
    if text.is_empty() {
        String::new()
    } else {
        format!(": \"{}\"", clip(&text))
    }
}

/// Cut to `MAX_SERVER_TEXT` characters on one line.
fn clip(s: &str) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match one_line.char_indices().nth(MAX_SERVER_TEXT) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}

/// Exponential backoff with "equal jitter": step n waits a uniformly random time in
/// `[d/2, d]` where `d = min(cap, base·2ⁿ)`. Half fixed keeps the wait meaningful; half random
/// keeps many clients from retrying in lockstep. Endless: bound it with `take`.
#[derive(Debug, Clone)]
pub struct Backoff {
    step: Duration,
    cap: Duration,
    rng: SplitMix64,
}

impl Backoff {
    /// A seeded schedule: the same seed gives the same waits (tests).
    pub fn new(policy: &RetryPolicy, seed: u64) -> Backoff {
        Backoff {
            step: policy.base.min(policy.cap),
            cap: policy.cap,
            rng: SplitMix64(seed),
        }
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let d = self.step;
        self.step = (self.step * 2).min(self.cap);
        let half = d / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if nanos == 0 {
            0
        } else {
            self.rng.next_u64() % (nanos + 1)
        };
        Some(half + Duration::from_nanos(jitter))
    }
}

/// A tiny, well-known PRNG (Steele et al.). Backoff jitter needs no cryptographic quality,
/// and this avoids a dependency.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A seed that differs between runs and processes.
pub fn entropy() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    fn status(code: u16, body: &[u8]) -> Verdict {
        classify(
            Wire::Otlp,
            Answer::Status {
                code,
                retry_after: None,
                body,
            },
            &policy(),
            SystemTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn transient_answers_are_retried() {
        assert!(matches!(
            classify(
                Wire::Otlp,
                Answer::Network("connection refused"),
                &policy(),
                SystemTime::now()
            ),
            Verdict::Retry { after: None, .. }
        ));
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(matches!(status(code, b""), Verdict::Retry { .. }), "{code}");
        }
    }

    #[test]
    fn permanent_answers_are_not_retried() {
        assert!(
            matches!(status(400, br#"{"error":"bad id"}"#), Verdict::Reject { reason } if reason.contains("bad id"))
        );
        assert!(matches!(status(422, b""), Verdict::Reject { .. }));
        assert_eq!(status(413, b"Body exceeded 4.5mb limit"), Verdict::Split);
        for code in [401, 403, 404, 301, 308] {
            assert!(matches!(status(code, b""), Verdict::Fatal { .. }), "{code}");
        }
        let Verdict::Fatal { reason } = status(
            401,
            br#"{"error":"UnauthorizedError","message":"Invalid credentials."}"#,
        ) else {
            panic!()
        };
        assert!(reason.contains("HTTP 401") && reason.contains("Invalid credentials."));
        assert!(reason.contains("LANGFUSE_SECRET_KEY"));
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let v = |h: &str| {
            classify(
                Wire::Ingestion,
                Answer::Status {
                    code: 429,
                    retry_after: Some(h),
                    body: b"{}",
                },
                &policy(),
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            )
        };
        assert!(
            matches!(v("2"), Verdict::Retry { after: Some(d), .. } if d == Duration::from_secs(2))
        );
        assert!(matches!(v("3600"), Verdict::Retry { after: Some(d), .. } if d == RETRY_AFTER_CAP));
        assert!(matches!(v("soon"), Verdict::Retry { after: None, .. }));
        // 1_700_000_000 = Tue, 14 Nov 2023 22:13:20 GMT
        assert!(
            matches!(v("Tue, 14 Nov 2023 22:13:25 GMT"), Verdict::Retry { after: Some(d), .. } if d == Duration::from_secs(5))
        );
        assert!(
            matches!(v("Tue, 14 Nov 2023 22:00:00 GMT"), Verdict::Retry { after: Some(d), .. } if d == Duration::ZERO)
        );
    }

    #[test]
    fn legacy_207_is_read_event_by_event() {
        let body = br#"{"successes":[{"id":"a","status":201}],
            "errors":[{"id":"b","status":400,"message":"Invalid request data","error":"name: expected string"},
                      {"id":"c","status":500,"error":"Internal Server Error"},
                      {"id":"d","status":404,"message":"Resource not found"}]}"#;
        let v = classify(
            Wire::Ingestion,
            Answer::Status {
                code: 207,
                retry_after: None,
                body,
            },
            &policy(),
            SystemTime::now(),
        );
        let Verdict::Partial(e) = v else {
            panic!("{v:?}")
        };
        assert_eq!(e.retry, vec!["c".to_string()]);
        assert_eq!(
            e.rejected,
            vec![
                (
                    "b".to_string(),
                    "HTTP 400 Invalid request data: name: expected string".to_string()
                ),
                ("d".to_string(), "HTTP 404 Resource not found".to_string()),
            ]
        );
        assert!(!e.wants_otlp);
        // A clean 207 and an OTLP 200 are plain deliveries.
        let clean = br#"{"successes":[{"id":"a","status":201}],"errors":[]}"#;
        assert_eq!(
            classify(
                Wire::Ingestion,
                Answer::Status {
                    code: 207,
                    retry_after: None,
                    body: clean
                },
                &policy(),
                SystemTime::now()
            ),
            Verdict::Delivered
        );
        assert_eq!(status(200, b"{}"), Verdict::Delivered);
    }

    #[test]
    fn v4_event_type_not_accepted_is_flagged() {
        let body = br#"{"successes":[],"errors":[{"id":"a","status":400,"message":"Event type not accepted","error":"events_only"}]}"#;
        let e = parse_multi_status(body).unwrap();
        assert!(e.wants_otlp);
        assert_eq!(e.rejected.len(), 1);
        assert!(WANTS_OTLP_MESSAGE.contains("--transport otlp"));
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter_and_is_seeded() {
        let p = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
            retry_after_cap: RETRY_AFTER_CAP,
        };
        let waits: Vec<Duration> = Backoff::new(&p, 7).take(8).collect();
        let steps = [100u64, 200, 400, 800, 1000, 1000, 1000, 1000];
        for (w, s) in waits.iter().zip(steps) {
            let s = Duration::from_millis(s);
            assert!(*w >= s / 2 && *w <= s, "{w:?} not in [{:?}, {s:?}]", s / 2);
        }
        assert_eq!(waits, Backoff::new(&p, 7).take(8).collect::<Vec<_>>());
        assert_ne!(waits, Backoff::new(&p, 8).take(8).collect::<Vec<_>>());
    }

    #[test]
    fn server_text_is_clipped_to_one_line() {
        let long = "x".repeat(1000);
        let Verdict::Reject { reason } = status(400, long.as_bytes()) else {
            panic!()
        };
        assert!(reason.len() < MAX_SERVER_TEXT + 200);
        let Verdict::Reject { reason } = status(400, b"line one\nline two") else {
            panic!()
        };
        assert!(!reason.contains('\n'));
    }
}
