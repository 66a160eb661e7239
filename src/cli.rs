//! Command-line syntax (clap) and its one validated product, [`Config`]. No other module
//! sees a raw flag: durations, sizes and rates are checked and converted here.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::decode::omp::Format;
use crate::deliver::batch::{Caps, DEFAULT_MAX_ITEMS, INGESTION_MAX_BODY_BYTES};
use crate::deliver::http::{TransportChoice, parse_otlp_headers};
use crate::deliver::ledger::ResendPolicy;
use crate::deliver::spool::Replay;
use crate::deliver::status::{DebugLog, Indicator};
use crate::deliver::{DEFAULT_BASE_URL, DeliveryConfig};
use crate::encode::Wire;
use crate::input::Source;
use crate::map::{MapConfig, TracePer};
use crate::model::Millis;
use crate::sanitize::redact::read_secrets_file;
use crate::sanitize::{
    DEFAULT_MAX_LLM_IO_CHARS, DEFAULT_MAX_TOOL_IO_CHARS, SanitizeConfig, process_env,
};

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
  omp-langfuse --dry-run --trace-per prompt < session.jsonl | jq .
  omp-langfuse backfill --since 2026-11-01
  omp-langfuse watch";

/// Turn Oh My Pi (omp) event streams and session logs into Langfuse traces.
#[derive(Debug, Parser)]
#[command(name = "omp-langfuse", version, about, after_help = AFTER_HELP)]
#[command(max_term_width = 100)]
pub struct Cli {
    /// `backfill` or `watch`; without one, the FILE arguments (or stdin) are read.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Inputs: omp JSON lines files; `-` or none reads stdin.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Input format (detected per source from its first lines unless given).
    #[arg(long, value_name = "FORMAT", default_value = "auto")]
    pub input_format: InputFormat,

    /// Print the request bodies (one JSON document per line) instead of sending them:
    /// legacy ingestion batches (`--dry-run`) or OTLP bodies (`--dry-run=otlp`).
    #[arg(
        long,
        value_name = "WIRE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "ingestion"
    )]
    pub dry_run: Option<DryRunWire>,

    /// Langfuse base URL [default: https://cloud.langfuse.com].
    #[arg(long, env = "LANGFUSE_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,

    /// Older name of the base URL, used when LANGFUSE_BASE_URL is not set.
    #[arg(long, env = "LANGFUSE_HOST", value_name = "URL")]
    pub host: Option<String>,

    /// How to send: ask the server's health endpoint (`auto`), OTLP, or legacy ingestion.
    #[arg(long, value_name = "WIRE", default_value = "auto")]
    pub transport: TransportChoice,

    /// Send OTLP to this full URL instead (e.g. an OpenTelemetry Collector).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// Extra headers for the OTLP endpoint, `key=value,key2=value2`.
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_HEADERS",
        value_name = "HEADERS",
        hide_env_values = true
    )]
    pub otlp_headers: Option<String>,

    /// Seconds allowed for one request.
    #[arg(
        long,
        env = "LANGFUSE_TIMEOUT",
        value_name = "SECS",
        default_value_t = 10.0
    )]
    pub timeout: f64,

    /// Seconds allowed, after the input ends or a signal, to deliver what is queued; the
    /// rest is spooled for the next run.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub shutdown_timeout: f64,

    /// Where the spool and the delivery ledger live [default: $XDG_STATE_HOME/omp-langfuse].
    #[arg(long, env = "OMP_LANGFUSE_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Do not send what earlier runs left in the spool.
    #[arg(long)]
    pub no_replay: bool,

    /// Send again what the delivery ledger says was already delivered.
    #[arg(long)]
    pub resend: bool,

    /// Log every request (items, bytes, status, latency, attempt) to stderr; never payloads.
    #[arg(
        long,
        env = "LANGFUSE_DEBUG",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub debug: Option<String>,

    /// A one-line live status on stderr [default: on when stderr is a terminal].
    #[arg(
        long,
        env = "LANGFUSE_UI_INDICATOR",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub ui_indicator: Option<String>,

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

    /// Also redact whatever matches this regular expression (repeatable).
    #[arg(long = "redact", value_name = "REGEX")]
    pub redact: Vec<String>,

    /// Also redact the values of this dotenv file wherever they appear (for logs recorded
    /// on another machine, whose environment this run cannot see).
    #[arg(long, value_name = "FILE")]
    pub secrets_file: Option<PathBuf>,

    /// Longest tool input or output kept, in characters; the rest is cut with a marker.
    #[arg(long, value_name = "CHARS", default_value_t = DEFAULT_MAX_TOOL_IO_CHARS)]
    pub max_tool_io: usize,

    /// Longest LLM input or output kept, in characters; the rest is cut with a marker.
    #[arg(long, value_name = "CHARS", default_value_t = DEFAULT_MAX_LLM_IO_CHARS)]
    pub max_llm_io: usize,

    /// No exit summary on stderr (warnings and errors still print).
    #[arg(short, long, action = ArgAction::SetTrue, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Details in the exit summary (redactions per kind, causes in full).
    #[arg(short, long, action = ArgAction::SetTrue)]
    pub verbose: bool,
}

/// The subcommands. Every option above applies to them too (`omp-langfuse backfill --dry-run`).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send recorded session files once: PATHs (default: omp's sessions directory) are
    /// walked recursively, oldest session first, subagent sessions nested under their
    /// parent's trace; what the delivery ledger marks delivered is skipped.
    Backfill(BackfillArgs),
    /// Follow omp's sessions directory (or DIR) as omp writes it and send observations as
    /// they complete, until SIGINT/SIGTERM.
    Watch(WatchArgs),
}

/// `backfill` options.
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Session files or directories [default: omp's sessions directory, from
    /// PI_CODING_AGENT_DIR / PI_CONFIG_DIR, else ~/.omp/agent/sessions].
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Only sessions started on or after DATE (`2026-11-01` or an RFC 3339 time).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,

    /// Only this session (its id, or the start of it); may be repeated.
    #[arg(long = "session", value_name = "ID")]
    pub sessions: Vec<String>,
}

/// `watch` options.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The sessions directory to follow [default: as for backfill].
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Close a session that has no `session_exit` after this many seconds without writes.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_IDLE_CLOSE_SECS)]
    pub idle_close: f64,

    /// Ignore sessions started before DATE (`2026-11-01` or an RFC 3339 time).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
}

/// Default `watch --idle-close`: long enough for a person to read an answer and type the
/// next prompt, short enough that a crashed session shows up closed the same hour.
pub const DEFAULT_IDLE_CLOSE_SECS: f64 = 600.0;

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

/// `--dry-run` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRunWire {
    /// Legacy ingestion batches `{"batch":[…]}`.
    Ingestion,
    /// OTLP/HTTP JSON `ExportTraceServiceRequest` bodies.
    Otlp,
}

/// What to do with the request bodies.
#[derive(Debug, Clone)]
pub enum Output {
    /// Print them on stdout in this wire format.
    DryRun(Wire),
    /// Send them to Langfuse.
    Send(Box<DeliveryConfig>),
}

/// What the run does with its inputs.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Read `sources` (files or stdin) once.
    Pipe,
    /// Walk session files and directories (`backfill`).
    Backfill(BackfillConfig),
    /// Follow a sessions directory (`watch`).
    Watch(WatchConfig),
}

/// `backfill`, validated.
#[derive(Debug, Clone)]
pub struct BackfillConfig {
    /// Files and directories; never empty (the default is resolved here).
    pub paths: Vec<PathBuf>,
    pub since: Option<Millis>,
    /// Session ids or prefixes; empty = all.
    pub sessions: Vec<String>,
}

/// `watch`, validated.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub dir: PathBuf,
    pub idle_close: Duration,
    pub since: Option<Millis>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
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
    pub sanitize: SanitizeConfig,
    pub quiet: bool,
    pub verbose: bool,
}

/// The clap command with every option made global, so the options work before and after
/// a subcommand alike (`omp-langfuse --dry-run backfill` = `omp-langfuse backfill --dry-run`).
pub fn command() -> clap::Command {
    Cli::command().mut_args(|a| if a.is_positional() { a } else { a.global(true) })
}

/// Parse the process arguments (exits with clap's usage message and status 2 on error).
pub fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Parse a given argument list (tests).
#[cfg(test)]
pub fn parse_from(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::from_arg_matches(&command().try_get_matches_from(args)?)
}

impl Cli {
    /// Validate and resolve.
    pub fn into_config(self) -> Result<Config> {
        let sanitize = sanitize_config(&self)?;
        let mode = match &self.command {
            None => Mode::Pipe,
            Some(Command::Backfill(b)) => Mode::Backfill(BackfillConfig {
                paths: if b.paths.is_empty() {
                    vec![crate::input::sessions::default_dir()?]
                } else {
                    b.paths.clone()
                },
                since: b.since.as_deref().map(parse_date).transpose()?,
                sessions: b.sessions.iter().map(|s| s.trim().to_string()).collect(),
            }),
            Some(Command::Watch(w)) => Mode::Watch(WatchConfig {
                dir: match &w.dir {
                    Some(d) => d.clone(),
                    None => crate::input::sessions::default_dir()?,
                },
                idle_close: seconds("--idle-close", w.idle_close)?,
                since: w.since.as_deref().map(parse_date).transpose()?,
            }),
        };
        let mut output = match self.dry_run {
            Some(DryRunWire::Ingestion) => Output::DryRun(Wire::Ingestion),
            Some(DryRunWire::Otlp) => Output::DryRun(Wire::Otlp),
            None => Output::Send(Box::new(delivery_config(&self)?)),
        };
        // backfill draws its own progress line; two lines redrawn in place would fight.
        if let (Output::Send(d), Mode::Backfill(_), None) = (&mut output, &mode, &self.ui_indicator)
        {
            d.indicator = crate::deliver::status::Indicator::Off;
        }
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
        Ok(Config {
            mode,
            sources,
            format,
            output,
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
            sanitize,
            quiet: self.quiet,
            verbose: self.verbose,
        })
    }
}

/// Keys come from the environment only: a flag would show them in `ps`.
fn env_key(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Longest timeout accepted (a day): beyond that it is a typo, not a wish.
const MAX_SECONDS: f64 = 86_400.0;

fn seconds(flag: &str, v: f64) -> Result<Duration> {
    if v.is_finite() && v > 0.0 && v <= MAX_SECONDS {
        Ok(Duration::from_secs_f64(v))
    } else {
        bail!("{flag} must be a number of seconds between 0 and {MAX_SECONDS}, got {v}")
    }
}

fn delivery_config(cli: &Cli) -> Result<DeliveryConfig> {
    let base = cli
        .base_url
        .as_deref()
        .or(cli.host.as_deref())
        .filter(|b| !b.trim().is_empty())
        .unwrap_or(DEFAULT_BASE_URL);
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        bail!("the Langfuse base URL must start with http:// or https://");
    }
    let (public_key, secret_key) = (
        env_key("LANGFUSE_PUBLIC_KEY"),
        env_key("LANGFUSE_SECRET_KEY"),
    );
    if public_key.is_none() || secret_key.is_none() {
        bail!(
            "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY must be set in the environment to send \
             to Langfuse (or use --dry-run to print what would be sent)"
        );
    }
    let mut d = DeliveryConfig::new(base);
    d.public_key = public_key;
    d.secret_key = secret_key;
    d.timeout = seconds("--timeout / LANGFUSE_TIMEOUT", cli.timeout)?;
    d.shutdown_timeout = seconds("--shutdown-timeout", cli.shutdown_timeout)?;
    d.transport = cli.transport;
    d.otlp_endpoint = cli.otlp_endpoint.clone().filter(|e| !e.trim().is_empty());
    if let Some(h) = cli.otlp_headers.as_deref().filter(|h| !h.trim().is_empty()) {
        d.otlp_headers = parse_otlp_headers(h)
            .map_err(|e| anyhow::anyhow!("OTEL_EXPORTER_OTLP_HEADERS / --otlp-headers: {e}"))?;
    }
    d.state_dir = cli.state_dir.clone();
    if cli.no_replay {
        d.replay = Replay::No;
    }
    if cli.resend {
        d.resend = ResendPolicy::SendAgain;
    }
    d.debug = DebugLog::from_env_value(cli.debug.as_deref());
    d.indicator = Indicator::from_env_value(cli.ui_indicator.as_deref());
    Ok(d)
}

/// Smallest I/O budget accepted: below this a truncation marker would not fit.
const MIN_IO_CHARS: usize = 64;

fn sanitize_config(cli: &Cli) -> Result<SanitizeConfig> {
    let user_patterns = cli
        .redact
        .iter()
        .map(|p| {
            regex::Regex::new(p).map_err(|e| {
                // The pattern may itself be secret-ish: name the flag, not the text.
                anyhow::anyhow!(
                    "--redact: not a valid regular expression: {}",
                    short_regex_error(&e)
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let secrets_file = match &cli.secrets_file {
        Some(f) => {
            read_secrets_file(f).with_context(|| format!("--secrets-file {}", f.display()))?
        }
        None => Vec::new(),
    };
    for (flag, v) in [
        ("--max-tool-io", cli.max_tool_io),
        ("--max-llm-io", cli.max_llm_io),
    ] {
        if v < MIN_IO_CHARS {
            bail!("{flag} must be at least {MIN_IO_CHARS} characters");
        }
    }
    Ok(SanitizeConfig {
        user_patterns,
        env: process_env(),
        secrets_file,
        max_tool_io_chars: cli.max_tool_io,
        max_llm_io_chars: cli.max_llm_io,
        ..SanitizeConfig::default()
    })
}

/// The kind of a regex error without the pattern text it quotes.
fn short_regex_error(e: &regex::Error) -> &'static str {
    match e {
        regex::Error::Syntax(_) => "syntax error",
        regex::Error::CompiledTooBig(_) => "pattern too big",
        _ => "invalid pattern",
    }
}

/// `--since`: a calendar date (midnight UTC) or an RFC 3339 time, as epoch milliseconds.
fn parse_date(s: &str) -> Result<Millis> {
    let s = s.trim();
    if let Some(ms) = crate::model::parse_iso(s) {
        return Ok(ms);
    }
    let parts: Vec<&str> = s.split('-').collect();
    let date = match parts.as_slice() {
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => {
            let num = |p: &str| p.parse::<i32>().ok();
            match (num(y), num(m).and_then(|m| u8::try_from(m).ok()), num(d)) {
                (Some(y), Some(m), Some(d)) => time::Month::try_from(m)
                    .ok()
                    .and_then(|m| time::Date::from_calendar_date(y, m, u8::try_from(d).ok()?).ok()),
                _ => None,
            }
        }
        _ => None,
    };
    match date {
        Some(d) => Ok(d.midnight().assume_utc().unix_timestamp() * 1000),
        None => bail!("--since must be a date like 2026-11-01 or an RFC 3339 time, got {s:?}"),
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

    fn parse(args: &[&str]) -> Result<Config> {
        let mut full = vec!["omp-langfuse"];
        full.extend_from_slice(args);
        parse_from(&full)?.into_config()
    }

    #[test]
    fn clap_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn subcommands_take_the_global_options_before_or_after() {
        for args in [
            &["--dry-run", "backfill", "/x"][..],
            &["backfill", "--dry-run", "/x"],
        ] {
            let c = parse(args).unwrap();
            assert!(matches!(c.output, Output::DryRun(_)), "{args:?}");
            match c.mode {
                Mode::Backfill(b) => assert_eq!(b.paths, vec![PathBuf::from("/x")]),
                other => panic!("{other:?}"),
            }
        }
        let c = parse(&["watch", "--dry-run", "--idle-close", "5", "/d"]).unwrap();
        match c.mode {
            Mode::Watch(w) => {
                assert_eq!(w.dir, PathBuf::from("/d"));
                assert_eq!(w.idle_close, Duration::from_secs(5));
            }
            other => panic!("{other:?}"),
        }
        // The plain invocation is unchanged.
        let c = parse(&["--dry-run", "a.jsonl"]).unwrap();
        assert!(matches!(c.mode, Mode::Pipe));
        assert_eq!(c.sources, vec![Source::File("a.jsonl".into())]);
        assert!(parse(&["--dry-run", "watch", "--idle-close", "0", "/d"]).is_err());
        // After a FILE, a subcommand's name is just another file (as before subcommands).
        let c = parse(&["--dry-run", "a.jsonl", "backfill"]).unwrap();
        assert_eq!(c.sources.len(), 2);
    }

    #[test]
    fn since_takes_dates_and_times() {
        assert_eq!(parse_date("2026-08-23").unwrap(), 1_787_443_200_000);
        assert_eq!(
            parse_date("2026-08-23T09:14:02.117Z").unwrap(),
            1_787_476_442_117
        );
        for bad in ["yesterday", "2026-13-01", "2026-8-1", ""] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
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
        let cmd = command();
        let subcommand_args = cmd.get_subcommands().flat_map(|s| s.get_arguments());
        for arg in cmd.get_arguments().chain(subcommand_args) {
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
