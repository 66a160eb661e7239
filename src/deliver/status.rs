//! What delivery tells the user while it runs: a debug line per request (`LANGFUSE_DEBUG`)
//! and a one-line live status (`LANGFUSE_UI_INDICATOR`) on stderr, and the same state as
//! JSON lines in the status file (`--status-file`, read by the omp extension for its footer).
//!
//! None of them ever carries a payload, a key or a header value: only counts, sizes,
//! statuses and timings, plus the server's own error text (with our keys scrubbed out).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::encode::Wire;

/// The live status line is redrawn at most this often.
const REDRAW_EVERY: Duration = Duration::from_millis(200);
/// Rejection messages printed in full; further ones are only counted.
pub const MAX_REJECTION_MESSAGES: u64 = 5;

/// `LANGFUSE_DEBUG`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DebugLog {
    #[default]
    Off,
    On,
}

/// `LANGFUSE_UI_INDICATOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Indicator {
    #[default]
    Off,
    On,
}

impl Indicator {
    /// On when stderr is a terminal (the default when neither flag nor variable says).
    pub fn auto() -> Indicator {
        if crate::messages::is_terminal() {
            Indicator::On
        } else {
            Indicator::Off
        }
    }
}

/// One request, as the debug log shows it.
pub struct Attempt<'a> {
    pub wire: Wire,
    pub items: usize,
    pub bytes: usize,
    /// On-the-wire size when compressed.
    pub sent_bytes: usize,
    /// `200`, `207`, … or a short network error description.
    pub outcome: &'a str,
    pub latency: Duration,
    pub attempt: u32,
    pub max_attempts: u32,
}

/// Counts shown on the status line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub delivered: u64,
    pub rejected: u64,
    pub spooled: u64,
}

/// Where delivery stands, for the live line and the status file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase<'a> {
    /// Everything sent so far was answered (or nothing was sent yet).
    Ok,
    /// A request failed and is tried again; the reason as the server or network gave it.
    Retrying(&'a str),
    /// The last batch went to the spool; the cause in one phrase.
    Spooled(&'a str),
    /// Nothing more is sent (keys rejected, wrong URL); the cause in one phrase.
    Failed(&'a str),
}

/// The stderr voice of the delivery worker.
pub struct Status {
    debug: DebugLog,
    indicator: Indicator,
    line: Mutex<Line>,
    file: Option<StatusFile>,
}

/// `--status-file`: one JSON object per line, appended when the state changes (at most
/// every `REDRAW_EVERY` for counts alone), and a last `done` line. The interface is
/// documented in the man page (STATUS FILE); fields are only ever added.
pub struct StatusFile {
    inner: Mutex<FileState>,
}

struct FileState {
    file: File,
    /// State and cause of the last line written.
    last: Option<(String, Option<String>)>,
    counts: Counts,
    at: Option<Instant>,
    /// A write failed (disk full, file gone): stop trying.
    broken: bool,
}

impl StatusFile {
    /// Open (create, 0600, append) the status file.
    pub fn create(path: &Path) -> std::io::Result<StatusFile> {
        let file = super::private_file(File::options().create(true).append(true)).open(path)?;
        Ok(StatusFile {
            inner: Mutex::new(FileState {
                file,
                last: None,
                counts: Counts::default(),
                at: None,
                broken: false,
            }),
        })
    }

    /// Append a line for `state` unless it says nothing new (`force`: always).
    fn write(&self, c: Counts, state: &str, cause: Option<&str>, force: bool) {
        let mut f = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let changed = f
            .last
            .as_ref()
            .is_none_or(|(s, k)| s != state || k.as_deref() != cause);
        let due = f.counts != c && f.at.is_none_or(|t| now - t >= REDRAW_EVERY);
        if f.broken || !(force || changed || due) {
            return;
        }
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut line = serde_json::json!({
            "state": state,
            "delivered": c.delivered,
            "rejected": c.rejected,
            "spooled": c.spooled,
            "ts": ts,
        });
        if let Some(cause) = cause {
            line["cause"] = crate::messages::scrub(cause).into();
        }
        let mut text = line.to_string();
        text.push('\n');
        if f.file.write_all(text.as_bytes()).is_err() {
            f.broken = true;
        }
        f.last = Some((state.to_string(), cause.map(str::to_string)));
        f.counts = c;
        f.at = Some(now);
    }
}

#[derive(Default)]
struct Line {
    drawn: bool,
    last: Option<Instant>,
    rejections_shown: u64,
}

impl Status {
    pub fn new(debug: DebugLog, indicator: Indicator, secrets: Vec<String>) -> Status {
        crate::messages::add_secrets(secrets);
        Status {
            debug,
            indicator,
            line: Mutex::new(Line::default()),
            file: None,
        }
    }

    /// Also report to the status file (and say there that delivery started).
    pub fn with_file(mut self, file: StatusFile) -> Status {
        file.write(Counts::default(), "started", None, true);
        self.file = Some(file);
        self
    }

    /// The last status-file line: delivery is over, with its final counts.
    pub fn done(&self, c: Counts, cause: Option<&str>) {
        if let Some(f) = &self.file {
            f.write(c, "done", cause, true);
        }
    }

    /// Remove our keys (and anything secret) from text that came from elsewhere.
    pub fn scrub(&self, text: &str) -> String {
        crate::messages::scrub(text)
    }

    /// `LANGFUSE_DEBUG`: one line per request.
    pub fn attempt(&self, a: &Attempt<'_>) {
        if self.debug == DebugLog::Off {
            return;
        }
        let wire = match a.wire {
            Wire::Otlp => "otlp",
            Wire::Ingestion => "ingestion",
        };
        let gz = if a.sent_bytes != a.bytes {
            format!(" sent={}", a.sent_bytes)
        } else {
            String::new()
        };
        self.say(&format!(
            "flush {wire} items={} bytes={}{gz} status={} latency={}ms attempt={}/{}",
            a.items,
            a.bytes,
            self.scrub(a.outcome),
            a.latency.as_millis(),
            a.attempt,
            a.max_attempts
        ));
    }

    /// A debug-only note.
    pub fn debug(&self, msg: &str) {
        if self.debug == DebugLog::On {
            self.say(&self.scrub(msg));
        }
    }

    /// Always shown: a warning the user must see.
    pub fn warn(&self, msg: &str) {
        self.say(&self.scrub(msg));
    }

    /// A rejected item's reason: the first few are printed, the rest only counted.
    pub fn rejection(&self, count: usize, reason: &str) {
        let show = {
            let mut l = self.lock();
            l.rejections_shown += 1;
            l.rejections_shown <= MAX_REJECTION_MESSAGES
        };
        if show {
            let items = if count == 1 { "item" } else { "items" };
            self.say(&format!("rejected {count} {items}: {}", self.scrub(reason)));
        }
    }

    /// Redraw the live status line (rate-limited) and tell the status file.
    pub fn progress(&self, c: Counts, phase: Phase<'_>) {
        if let Some(f) = &self.file {
            let (state, cause) = match phase {
                Phase::Ok => ("ok", None),
                Phase::Retrying(reason) => ("retrying", Some(super::http::cause_phrase(reason))),
                Phase::Spooled(cause) => ("spooled", Some(cause.to_string())),
                Phase::Failed(cause) => ("failed", Some(cause.to_string())),
            };
            f.write(c, state, cause.as_deref(), false);
        }
        if self.indicator == Indicator::Off {
            return;
        }
        let state = match phase {
            Phase::Retrying(reason) => format!("retrying: {reason}"),
            _ => String::new(),
        };
        let mut l = self.lock();
        let now = Instant::now();
        if l.last.is_some_and(|t| now - t < REDRAW_EVERY) {
            return;
        }
        l.last = Some(now);
        l.drawn = true;
        crate::messages::live(&format!(
            "{} delivered, {} rejected, {} spooled{}{}",
            c.delivered,
            c.rejected,
            c.spooled,
            if state.is_empty() { "" } else { " · " },
            state
        ));
    }

    /// Remove the status line (before the exit summary).
    pub fn clear(&self) {
        let mut l = self.lock();
        if l.drawn {
            crate::messages::clear_live();
            l.drawn = false;
        }
    }

    fn say(&self, msg: &str) {
        crate::messages::error(msg);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Line> {
        self.line.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_scrubbed() {
        let s = Status::new(
            DebugLog::On,
            Indicator::Off,
            vec!["sk-lf-secret".into(), "".into()],
        );
        assert_eq!(
            s.scrub("bad key sk-lf-secret here"),
            "bad key [redacted] here"
        );
        assert_eq!(s.scrub("nothing"), "nothing");
    }
}
