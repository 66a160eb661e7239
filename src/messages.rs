//! The one stderr voice. Every message the tool prints goes through here: one prefix, one
//! scrubber (keys and anything the redactor knows is secret never reach stderr, whatever the
//! call site), one set of number words, and one live line (backfill's progress bar or the
//! delivery status) that messages never overwrite: a message clears the live line, prints,
//! and redraws it below.
//!
//! The live line never wraps: it is cut to the terminal's width, so a redraw (`\r` + clear
//! line) always replaces exactly one row.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};

/// Every line starts with this.
pub const PREFIX: &str = "omp-langfuse: ";

/// How much the run says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Verbosity {
    /// Warnings and errors only (`--quiet`).
    Quiet,
    /// Also the start line and the exit summary.
    #[default]
    Normal,
    /// Also details (`-v`): redactions per kind, causes in full.
    Verbose,
}

type Scrubber = Box<dyn Fn(&str) -> String + Send + Sync>;

struct Voice {
    verbosity: Verbosity,
    /// Strings that must never be printed (our keys), replaced before anything else.
    secrets: Vec<String>,
    /// The redactor, once the sanitizer is built.
    scrub: Option<Scrubber>,
    /// The live line's text, if one is shown, and whether it is on the screen now.
    live: Option<String>,
    drawn: bool,
    terminal: bool,
}

fn voice() -> std::sync::MutexGuard<'static, Voice> {
    static VOICE: OnceLock<Mutex<Voice>> = OnceLock::new();
    VOICE
        .get_or_init(|| {
            Mutex::new(Voice {
                verbosity: Verbosity::Normal,
                secrets: Vec::new(),
                scrub: None,
                live: None,
                drawn: false,
                terminal: std::io::stderr().is_terminal(),
            })
        })
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Set how much is said (once, at start).
pub fn set_verbosity(v: Verbosity) {
    voice().verbosity = v;
}

/// Strings never to print (the Langfuse keys); short ones are ignored (they would match
/// ordinary text).
pub fn add_secrets(secrets: impl IntoIterator<Item = String>) {
    let mut v = voice();
    v.secrets
        .extend(secrets.into_iter().filter(|s| s.trim().len() >= 4));
}

/// Run every message through `scrub` (the sanitizer's redactor) from now on.
pub fn set_scrubber(scrub: impl Fn(&str) -> String + Send + Sync + 'static) {
    voice().scrub = Some(Box::new(scrub));
}

/// `text` as it may be printed: keys replaced, then the redactor.
pub fn scrub(text: &str) -> String {
    scrub_with(&voice(), text)
}

fn scrub_with(v: &Voice, text: &str) -> String {
    let mut out = text.to_string();
    for s in &v.secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "[redacted]");
        }
    }
    match &v.scrub {
        Some(f) => f(&out),
        None => out,
    }
}

/// An error: the run cannot do what was asked (always shown).
pub fn error(msg: &str) {
    say(msg, Verbosity::Quiet);
}

/// A warning: something was skipped or is at risk (always shown).
pub fn warn(msg: &str) {
    say(&format!("warning: {msg}"), Verbosity::Quiet);
}

/// A problem with one line of one source: `warning: source:line: reason` (line 0: the
/// source as a whole). Never the line's content.
pub fn warn_at(source: &str, line: u64, reason: &str) {
    if line == 0 {
        warn(&format!("{source}: {reason}"));
    } else {
        warn(&format!("{source}:{line}: {reason}"));
    }
}

/// What the run is doing, and its summary (not with `--quiet`).
pub fn info(msg: &str) {
    say(msg, Verbosity::Normal);
}

/// Details for `-v`.
pub fn detail(msg: &str) {
    say(msg, Verbosity::Verbose);
}

/// Print `msg` when the verbosity is at least `level`.
fn say(msg: &str, level: Verbosity) {
    let mut v = voice();
    if v.verbosity < level {
        return;
    }
    let text = scrub_with(&v, msg);
    let mut err = std::io::stderr().lock();
    if v.drawn {
        let _ = write!(err, "\r\x1b[2K");
        v.drawn = false;
    }
    let _ = writeln!(err, "{PREFIX}{text}");
    if let Some(line) = &v.live {
        let _ = write!(err, "{}", fit_width(line, width()));
        v.drawn = true;
    }
    let _ = err.flush();
}

/// A message that may follow the terminal's own `^C` echo: on a terminal it starts on a
/// cleared line, so the two never run together.
pub fn after_interrupt(msg: &str) {
    let mut v = voice();
    let mut err = std::io::stderr().lock();
    if v.terminal || v.drawn {
        let _ = write!(err, "\r\x1b[2K");
        v.drawn = false;
    }
    let _ = writeln!(err, "{PREFIX}{}", scrub_with(&v, msg));
    let _ = err.flush();
}

/// Whether a live line can be drawn (stderr is a terminal).
pub fn is_terminal() -> bool {
    voice().terminal
}

/// Show (or replace) the live line. Only on a terminal; cut to its width.
pub fn live(text: &str) {
    let mut v = voice();
    if !v.terminal {
        return;
    }
    let line = fit_width(&format!("{PREFIX}{text}"), width());
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K{line}");
    let _ = err.flush();
    v.live = Some(line);
    v.drawn = true;
}

/// Remove the live line for good (before the summary).
pub fn clear_live() {
    let mut v = voice();
    v.live = None;
    if v.drawn {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
        v.drawn = false;
    }
}

/// Columns of the terminal on stderr (80 when unknown).
fn width() -> usize {
    terminal_size::terminal_size_of(std::io::stderr())
        .map_or(80, |(w, _)| usize::from(w.0))
        .max(20)
}

/// `line` cut to fewer than `width` characters (the last column is left free: a line that
/// fills it wraps on some terminals), with `…` where it was cut.
pub fn fit_width(line: &str, width: usize) -> String {
    let max = width.saturating_sub(1).max(1);
    if line.chars().count() <= max {
        return line.to_string();
    }
    let mut out: String = line.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// `1 session`, `2 sessions`, `2 batches`, `2 entries`.
pub fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        return format!("1 {word}");
    }
    let many = if word.ends_with("ch") || word.ends_with('s') || word.ends_with("sh") {
        format!("{word}es")
    } else if let Some(stem) = word.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'o', 'u'])
    {
        format!("{stem}ies")
    } else {
        format!("{word}s")
    };
    format!("{n} {many}")
}

/// Sizes in decimal units: `999 B`, `1.5 kB`, `2.0 MB`, `2.50 GB`.
pub fn human_bytes(b: u64) -> String {
    match b {
        0..1_000 => format!("{b} B"),
        1_000..1_000_000 => format!("{:.1} kB", b as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        _ => format!("{:.2} GB", b as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "batch"), "1 batch");
        assert_eq!(plural(2, "batch"), "2 batches");
        assert_eq!(plural(0, "entry"), "0 entries");
        assert_eq!(plural(3, "session"), "3 sessions");
        assert_eq!(plural(2, "key"), "2 keys");
        assert_eq!(plural(2, "line"), "2 lines");
    }

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500), "1.5 kB");
        assert_eq!(human_bytes(2_500_000_000), "2.50 GB");
    }

    #[test]
    fn live_line_never_fills_the_row() {
        let long = "x".repeat(300);
        for w in [20, 80, 120, 200] {
            let f = fit_width(&long, w);
            assert_eq!(f.chars().count(), w - 1);
            assert!(f.ends_with('…'));
        }
        assert_eq!(fit_width("short", 80), "short");
        // Multibyte text is cut at characters, not bytes.
        assert_eq!(fit_width("ééééé", 4), "éé…");
    }

    #[test]
    fn keys_are_scrubbed_before_anything_else() {
        let v = Voice {
            verbosity: Verbosity::Normal,
            secrets: vec!["sk-lf-abcdef".into()],
            scrub: Some(Box::new(|s: &str| s.replace("hunter2", "[REDACTED]"))),
            live: None,
            drawn: false,
            terminal: false,
        };
        assert_eq!(
            scrub_with(&v, "401 for sk-lf-abcdef, password hunter2"),
            "401 for [redacted], password [REDACTED]"
        );
    }
}
