//! Command-line syntax (clap) and its one validated product, [`Config`]. No other module
//! sees a raw flag: durations, sizes and rates are checked and converted here.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{ArgAction, Parser, ValueEnum};

use crate::batch::{Caps, DEFAULT_MAX_ITEMS, INGESTION_MAX_BODY_BYTES};
use crate::input::Source;
use crate::mapper::{MapConfig, TracePer};
use crate::omp::Format;

/// Default `LANGFUSE_FLUSH_MS`: how long a live stream's items may wait before a flush.
pub const DEFAULT_FLUSH_MS: u64 = 2000;
/// Langfuse normalises environments to at most 40 chars of `[a-z0-9_-]`.
const ENVIRONMENT_MAX_CHARS: usize = 40;

const AFTER_HELP: &str = "\
Reads omp's `--mode json` output, extension event streams and recorded session logs \
(the format is detected per source), maps sessions, turns, LLM calls and tool calls to \
Langfuse traces, and prints (--dry-run) the request bodies Langfuse would receive.

Exit status: 0 all delivered; 1 finished, but something was skipped, rejected or spooled; \
2 usage or fatal error.

Examples:
  omp --mode json \"fix the tests\" | omp-langfuse
  omp-langfuse --dry-run ~/.omp/agent/sessions/-src-app/*.jsonl
  omp-langfuse --dry-run --trace-per prompt < session.jsonl | jq .";

/// Turn Oh My Pi (omp) event streams and session logs into Langfuse traces.
#[derive(Debug, Parser)]
#[command(name = "omp-langfuse", version, about, after_help = AFTER_HELP)]
#[command(max_term_width = 100)]
pub struct Cli {
    /// Inputs: omp JSON lines files; `-` or none reads stdin.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Input format (detected per source from its first lines unless given).
    #[arg(long, value_name = "FORMAT", default_value = "auto")]
    pub input_format: InputFormat,

    /// Print the Langfuse request bodies (one JSON document per line) instead of sending.
    #[arg(long)]
    pub dry_run: bool,

    /// One trace per omp session, or one per user prompt (all in the session).
    #[arg(long, value_name = "UNIT", default_value = "session")]
    pub trace_per: TracePer,

    /// Most events in one request body.
    #[arg(long, env = "LANGFUSE_MAX_QUEUE", value_name = "N", default_value_t = DEFAULT_MAX_ITEMS)]
    pub max_queue: usize,

    /// Longest a live stream's events wait before they are flushed, in milliseconds.
    #[arg(long, env = "LANGFUSE_FLUSH_MS", value_name = "MS", default_value_t = DEFAULT_FLUSH_MS)]
    pub flush_ms: u64,

    /// Fraction of sessions to keep (0 to 1), chosen by a stable hash of the session id.
    #[arg(
        long,
        env = "LANGFUSE_SAMPLE_RATE",
        value_name = "RATE",
        default_value_t = 1.0
    )]
    pub sample_rate: f64,

    /// Comma-separated tags for every trace.
    #[arg(
        long,
        env = "LANGFUSE_TAGS",
        value_name = "TAGS",
        value_delimiter = ','
    )]
    pub tags: Vec<String>,

    /// Langfuse environment of every trace (lowercase letters, digits, `-`, `_`).
    #[arg(long, env = "LANGFUSE_TRACING_ENVIRONMENT", value_name = "ENV")]
    pub environment: Option<String>,

    /// Release of every trace (e.g. a git SHA).
    #[arg(long, env = "LANGFUSE_RELEASE", value_name = "RELEASE")]
    pub release: Option<String>,

    /// Langfuse user id of every trace.
    #[arg(long, env = "LANGFUSE_USER_ID", value_name = "ID")]
    pub user_id: Option<String>,

    /// No exit summary on stderr (warnings and errors still print).
    #[arg(short, long, action = ArgAction::SetTrue)]
    pub quiet: bool,
}

/// `--input-format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// Detect per source.
    Auto,
    /// `omp --mode json` stdout.
    Live,
    /// Extension hook events, one per line.
    Extension,
    /// A recorded session file.
    SessionLog,
}

/// What to do with the request bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Print them on stdout.
    DryRun,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub sources: Vec<Source>,
    /// `None`: detect per source.
    pub format: Option<Format>,
    pub output: Output,
    pub map: MapConfig,
    pub caps: Caps,
    /// Time cap for live sources.
    pub flush_every: Duration,
    /// Keep a session when its sample point is below this.
    pub sample_rate: f64,
    pub quiet: bool,
}

impl Cli {
    /// Validate and resolve.
    pub fn into_config(self) -> Result<Config> {
        let sources = if self.files.is_empty() {
            vec![Source::Stdin]
        } else {
            self.files.iter().map(|f| Source::from_arg(f)).collect()
        };
        if sources.iter().filter(|s| **s == Source::Stdin).count() > 1 {
            bail!("stdin (`-`) can be read only once");
        }
        if self.max_queue == 0 {
            bail!("--max-queue / LANGFUSE_MAX_QUEUE must be at least 1");
        }
        if self.flush_ms == 0 {
            bail!("--flush-ms / LANGFUSE_FLUSH_MS must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.sample_rate) {
            bail!(
                "--sample-rate / LANGFUSE_SAMPLE_RATE must be between 0 and 1, got {}",
                self.sample_rate
            );
        }
        let environment = self
            .environment
            .filter(|e| !e.is_empty())
            .map(|e| validate_environment(&e).map(|()| e))
            .transpose()?;
        let tags: Vec<String> = self
            .tags
            .iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        let format = match self.input_format {
            InputFormat::Auto => None,
            InputFormat::Live => Some(Format::Live),
            InputFormat::Extension => Some(Format::Extension),
            InputFormat::SessionLog => Some(Format::SessionLog),
        };
        if !self.dry_run {
            bail!(
                "sending to Langfuse is not available in this build; use --dry-run to print \
                 the request bodies"
            );
        }
        Ok(Config {
            sources,
            format,
            output: Output::DryRun,
            map: MapConfig {
                trace_per: self.trace_per,
                tags,
                environment,
                release: self.release.filter(|r| !r.is_empty()),
                user_id: self.user_id.filter(|u| !u.is_empty()),
            },
            caps: Caps {
                max_items: self.max_queue,
                max_bytes: INGESTION_MAX_BODY_BYTES,
            },
            flush_every: Duration::from_millis(self.flush_ms),
            sample_rate: self.sample_rate,
            quiet: self.quiet,
        })
    }
}

fn validate_environment(e: &str) -> Result<()> {
    let ok = e.len() <= ENVIRONMENT_MAX_CHARS
        && !e.starts_with("langfuse")
        && e.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "LANGFUSE_TRACING_ENVIRONMENT / --environment must be at most {ENVIRONMENT_MAX_CHARS} \
             lowercase letters, digits, `-` or `_`, and must not start with \"langfuse\""
        ))
        .context("invalid environment")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Config> {
        let mut full = vec!["omp-langfuse"];
        full.extend_from_slice(args);
        Cli::try_parse_from(full)?.into_config()
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let c = parse(&["--dry-run"]).unwrap();
        assert_eq!(c.sources, vec![Source::Stdin]);
        assert_eq!(c.caps.max_items, 500);
        assert_eq!(c.flush_every, Duration::from_millis(2000));
        assert_eq!(c.map.trace_per, TracePer::Session);
        assert!(c.format.is_none());
    }

    #[test]
    fn rejects_bad_values() {
        assert!(parse(&["--dry-run", "--sample-rate", "1.5"]).is_err());
        assert!(parse(&["--dry-run", "--max-queue", "0"]).is_err());
        assert!(parse(&["--dry-run", "--environment", "Prod"]).is_err());
        assert!(parse(&["--dry-run", "--environment", "langfuse-x"]).is_err());
        assert!(parse(&["--dry-run", "-", "-"]).is_err());
        assert!(parse(&["--dry-run", "--input-format", "xml"]).is_err());
    }

    /// The hand-written man page must name every flag and every environment variable.
    #[test]
    fn man_page_documents_every_flag() {
        let man = include_str!("../man/omp-langfuse.1").replace("\\-", "-");
        for arg in Cli::command().get_arguments() {
            if let Some(long) = arg.get_long() {
                assert!(
                    man.contains(&format!("--{long}")),
                    "man page lacks --{long}"
                );
            }
            if let Some(env) = arg.get_env() {
                let env = env.to_string_lossy();
                assert!(man.contains(&*env), "man page lacks {env}");
            }
        }
        for section in ["EXIT STATUS", "ENVIRONMENT", "EXAMPLES"] {
            assert!(
                man.contains(&format!(".SH {section}")),
                "man page lacks {section}"
            );
        }
    }

    #[test]
    fn tags_split_and_trim() {
        let c = parse(&["--dry-run", "--tags", "a, b,,c"]).unwrap();
        assert_eq!(c.map.tags, vec!["a", "b", "c"]);
    }
}
