//! Progress of a long run on stderr: a redrawn bar on a terminal, a plain line every
//! `PLAIN_EVERY` otherwise (a log file or CI gets a few readable lines, not a flood of
//! carriage returns). Counts, sizes and rates only, never content.
//!
//! Hand-written rather than a progress crate: it is one line, drawn as the live line of
//! [`crate::messages`], which keeps it and every other message from overwriting each other.

use std::time::{Duration, Instant};

use crate::messages::{self, human_bytes};

/// The bar is redrawn at most this often.
const REDRAW_EVERY: Duration = Duration::from_millis(150);
/// A plain progress line is printed at most this often.
const PLAIN_EVERY: Duration = Duration::from_secs(10);
/// Width of the bar itself, in cells.
const BAR_CELLS: usize = 24;
/// No rate or ETA before this much time has passed (the first files say little).
const RATE_AFTER: Duration = Duration::from_millis(500);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A bar redrawn in place (stderr is a terminal).
    Bar,
    /// A plain line now and then.
    Lines,
    /// Nothing (`--quiet`).
    Off,
}

impl Style {
    /// A bar on a terminal, plain lines elsewhere, nothing when quiet.
    pub fn auto(quiet: bool) -> Style {
        if quiet {
            Style::Off
        } else if messages::is_terminal() {
            Style::Bar
        } else {
            Style::Lines
        }
    }
}

/// Work done so far against the total known at the start.
pub struct Progress {
    style: Style,
    what: &'static str,
    total_sessions: u64,
    total_bytes: u64,
    sessions: u64,
    bytes: u64,
    observations: u64,
    started: Instant,
    last: Option<Instant>,
}

impl Progress {
    pub fn new(style: Style, what: &'static str, total_sessions: u64, total_bytes: u64) -> Self {
        Progress {
            style,
            what,
            total_sessions,
            total_bytes,
            sessions: 0,
            bytes: 0,
            observations: 0,
            started: Instant::now(),
            // Plain lines: the first after PLAIN_EVERY (a short run gets only the last line).
            last: (style == Style::Lines).then(Instant::now),
        }
    }

    /// One more session file read (`bytes` of it) and the run's observation count so far.
    pub fn advance(&mut self, bytes: u64, observations: u64) {
        self.sessions += 1;
        self.bytes += bytes;
        self.observations = observations;
        let now = Instant::now();
        let every = match self.style {
            Style::Bar => REDRAW_EVERY,
            Style::Lines => PLAIN_EVERY,
            Style::Off => return,
        };
        if self.last.is_none_or(|t| now - t >= every) {
            self.last = Some(now);
            self.draw();
        }
    }

    /// The last word: the bar is replaced by a plain line.
    pub fn finish(&mut self) {
        if self.style == Style::Off {
            return;
        }
        messages::clear_live();
        messages::info(&self.line(", "));
    }

    fn draw(&self) {
        match self.style {
            Style::Bar => {
                let frac = if self.total_bytes > 0 {
                    self.bytes as f64 / self.total_bytes as f64
                } else if self.total_sessions > 0 {
                    self.sessions as f64 / self.total_sessions as f64
                } else {
                    1.0
                };
                let filled = ((frac.clamp(0.0, 1.0) * BAR_CELLS as f64) as usize).min(BAR_CELLS);
                let bar: String = (0..BAR_CELLS)
                    .map(|i| match i.cmp(&filled) {
                        std::cmp::Ordering::Less => '=',
                        std::cmp::Ordering::Equal => '>',
                        std::cmp::Ordering::Greater => ' ',
                    })
                    .collect();
                messages::live(&format!("[{bar}] {}", self.line(" · ")));
            }
            Style::Lines => messages::info(&self.line(", ")),
            Style::Off => {}
        }
    }

    fn line(&self, sep: &str) -> String {
        let mut parts = vec![
            format!(
                "{}: {}/{} sessions",
                self.what, self.sessions, self.total_sessions
            ),
            format!("{} observations", self.observations),
            format!(
                "{}/{}",
                human_bytes(self.bytes),
                human_bytes(self.total_bytes)
            ),
        ];
        let elapsed = self.started.elapsed();
        if elapsed >= RATE_AFTER && self.bytes > 0 {
            let secs = elapsed.as_secs_f64();
            let rate = self.bytes as f64 / secs;
            parts.push(format!(
                "{}/s, {:.0} sessions/s",
                human_bytes(rate as u64),
                self.sessions as f64 / secs
            ));
            let left = self.total_bytes.saturating_sub(self.bytes);
            if left > 0 && rate > 0.0 {
                parts.push(format!("ETA {}", clock(left as f64 / rate)));
            }
        }
        parts.join(sep)
    }
}

/// `1:05` or `1:02:05`.
fn clock(secs: f64) -> String {
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_counts_sizes_and_clock() {
        let p = Progress {
            sessions: 3,
            bytes: 1_500_000,
            observations: 42,
            ..Progress::new(Style::Off, "backfill", 10, 3_000_000)
        };
        assert_eq!(
            p.line(", "),
            "backfill: 3/10 sessions, 42 observations, 1.5 MB/3.0 MB"
        );
        assert_eq!(clock(65.0), "1:05");
        assert_eq!(clock(3725.0), "1:02:05");
    }
}
