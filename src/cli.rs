//! Command-line syntax (clap) only: the flags, their help and their environment variables.
//! Every check, default and lookup is in [`crate::config`]; no other file names clap.

use std::path::PathBuf;

use crate::deliver::batch::DEFAULT_MAX_ITEMS;
use crate::sanitize::{DEFAULT_MAX_LLM_IO_CHARS, DEFAULT_MAX_TOOL_IO_CHARS};
use clap::parser::ValueSource;
use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Reads omp's (or pi's) `--mode json` output, extension event streams and recorded session \
logs (the format is detected per source), maps sessions, turns, LLM calls and tool calls to \
Langfuse traces, and sends them (or prints them with --dry-run).

Keys: LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY, from the environment only.
Durations take units (`500ms`, `10s`, `5m`, `1h`); a plain number is in the flag's unit.
A flag given on the command line wins over its environment variable.

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

    /// Print instead of sending: the request bodies, one JSON document per line (legacy
    /// ingestion batches with `--dry-run`, OTLP bodies with `--dry-run=otlp`), or the traces
    /// as Langfuse will show them (`--dry-run=tree`).
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
    pub transport: TransportArg,

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

    /// Time allowed for one request (plain number: seconds).
    #[arg(
        long,
        env = "LANGFUSE_TIMEOUT",
        value_name = "DURATION",
        default_value = "10s"
    )]
    pub timeout: String,

    /// Requests sent at once at most (fewer while the server answers 429, 5xx or times
    /// out); 1 sends one request at a time [default: 8 over OTLP, 4 on the legacy route]
    #[arg(
        long,
        env = "OMP_LANGFUSE_MAX_IN_FLIGHT",
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..=64)
    )]
    pub max_in_flight: Option<u64>,

    /// Time allowed, after the input ends or a signal, to deliver what is queued; the rest
    /// is spooled for the next run (plain number: seconds).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub shutdown_timeout: String,

    /// Also trust the certificates of this PEM bundle (a private CA in front of a
    /// self-hosted Langfuse), besides the platform's store (and SSL_CERT_FILE / SSL_CERT_DIR).
    #[arg(long, env = "LANGFUSE_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

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
    /// A switch: `--debug=false` turns it off, a following word is never its value.
    #[arg(
        long,
        env = "LANGFUSE_DEBUG",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = switch_value
    )]
    pub debug: Option<bool>,

    /// A one-line live status on stderr [default: on when stderr is a terminal]. A switch:
    /// `--ui-indicator=false` turns it off.
    #[arg(
        long,
        env = "LANGFUSE_UI_INDICATOR",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = switch_value
    )]
    pub ui_indicator: Option<bool>,

    /// Append delivery's state to FILE as JSON lines (started, ok, retrying, spooled,
    /// failed, done; with counts and the cause): the channel the omp extension reads for
    /// its footer item. Never payloads or keys.
    #[arg(long, env = "OMP_LANGFUSE_STATUS_FILE", value_name = "FILE")]
    pub status_file: Option<PathBuf>,

    /// One trace per omp session, or one per user prompt (all in the session).
    #[arg(long, value_name = "UNIT", default_value = "session")]
    pub trace_per: TracePerArg,

    /// Most events in one request body.
    #[arg(long, env = "LANGFUSE_MAX_QUEUE", value_name = "N", default_value_t = DEFAULT_MAX_ITEMS)]
    pub max_queue: usize,

    /// Longest a live stream's events wait before they are flushed (plain number:
    /// milliseconds).
    #[arg(
        long,
        env = "LANGFUSE_FLUSH_MS",
        value_name = "DURATION",
        default_value = "2000"
    )]
    pub flush_ms: String,

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

    /// Exit 1 when the input holds event or entry types this version does not know
    /// (by default they are counted and named in the summary, and the run still exits 0).
    #[arg(long)]
    pub strict: bool,

    /// Details in the exit summary (redactions per kind, causes in full).
    #[arg(short, long, action = ArgAction::SetTrue)]
    pub verbose: bool,

    /// Options given on the command line itself (they win over the environment).
    #[arg(skip)]
    pub explicit: Vec<String>,
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
    /// Session files or directories [default: every sessions directory that exists: omp's
    /// (PI_CODING_AGENT_DIR / PI_CONFIG_DIR, else ~/.omp/agent/sessions; or a profile's)
    /// and pi's (PI_CODING_AGENT_SESSION_DIR, settings sessionDir, else ~/.pi/agent/sessions)].
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Only sessions started on or after DATE (`2026-11-01` or an RFC 3339 time).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,

    /// Only this session (its id, or the start of it); may be repeated.
    #[arg(long = "session", value_name = "ID")]
    pub sessions: Vec<String>,

    /// Without PATHs: read this omp profile's sessions (`all`: the default and every
    /// profile) besides pi's.
    #[arg(long, env = "OMP_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
}

/// `watch` options.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The sessions directory to follow [default: every one that exists, as for backfill].
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Close a session that has no `session_exit` after this long without writes (plain
    /// number: seconds).
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub idle_close: String,

    /// Ignore sessions started before DATE (`2026-11-01` or an RFC 3339 time).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,

    /// Without DIR: follow this omp profile's sessions (`all`: the default and every
    /// profile) besides pi's.
    #[arg(long, env = "OMP_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
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

/// `--dry-run` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRunWire {
    /// Legacy ingestion batches `{"batch":[…]}`.
    Ingestion,
    /// OTLP/HTTP JSON `ExportTraceServiceRequest` bodies.
    Otlp,
    /// The traces as Langfuse will show them: observation trees with durations, tokens,
    /// cost and levels (for people, not scripts).
    Tree,
}

/// A switch's value (`--debug=off`, `LANGFUSE_DEBUG=1`): the words the Langfuse SDKs
/// accept, strictly; an empty variable is off.
fn switch_value(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" | "y" | "t" => Ok(true),
        "0" | "false" | "no" | "off" | "n" | "f" | "" => Ok(false),
        _ => Err("expected true or false (also 1/0, yes/no, on/off)".to_string()),
    }
}

/// `--trace-per` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TracePerArg {
    /// One trace per omp session (default).
    Session,
    /// One trace per user prompt, all in the session's Langfuse session.
    Prompt,
}

/// `--transport` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportArg {
    /// Ask `/api/public/health`: 3.63 or newer, or no answer, means OTLP.
    Auto,
    /// OTLP/HTTP JSON (Langfuse 3.63 and newer, Langfuse Cloud).
    Otlp,
    /// The legacy `/api/public/ingestion` batch API (older self-hosted servers).
    Ingestion,
}

/// The clap command with every option made global, so the options work before and after
/// a subcommand alike (`omp-langfuse --dry-run backfill` = `omp-langfuse backfill --dry-run`).
pub fn command() -> clap::Command {
    Cli::command().mut_args(|a| if a.is_positional() { a } else { a.global(true) })
}

/// Parse the process arguments (exits with clap's usage message and status 2 on error).
pub fn parse() -> Cli {
    let matches = command().get_matches();
    from_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Parse a given argument list (tests).
#[cfg(test)]
pub fn parse_from(args: &[&str]) -> Result<Cli, clap::Error> {
    from_matches(&command().try_get_matches_from(args)?)
}

fn from_matches(matches: &clap::ArgMatches) -> Result<Cli, clap::Error> {
    let mut cli = Cli::from_arg_matches(matches)?;
    // A global option given after the subcommand is recorded in the subcommand's matches.
    let levels = std::iter::once(matches).chain(matches.subcommand().map(|(_, m)| m));
    for m in levels {
        for id in m.ids() {
            if m.value_source(id.as_str()) == Some(ValueSource::CommandLine) {
                cli.explicit.push(id.to_string());
            }
        }
    }
    Ok(cli)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn switches_never_take_the_next_word() {
        let c = parse_from(&["omp-langfuse", "--debug", "f.jsonl"]).unwrap();
        assert_eq!(c.debug, Some(true));
        assert_eq!(c.files, vec![PathBuf::from("f.jsonl")]);
        let c = parse_from(&["omp-langfuse", "--ui-indicator", "f.jsonl"]).unwrap();
        assert_eq!(c.ui_indicator, Some(true));
        assert_eq!(c.files, vec![PathBuf::from("f.jsonl")]);
        let c = parse_from(&["omp-langfuse", "--debug=off"]).unwrap();
        assert_eq!(c.debug, Some(false));
        assert!(parse_from(&["omp-langfuse", "--debug=maybe"]).is_err());
    }

    #[test]
    fn explicit_options_are_recorded_before_and_after_a_subcommand() {
        let c = parse_from(&[
            "omp-langfuse",
            "--host",
            "http://a",
            "backfill",
            "--base-url",
            "http://b",
        ])
        .unwrap();
        assert!(c.explicit.iter().any(|e| e == "host"));
        assert!(c.explicit.iter().any(|e| e == "base_url"));
    }
}
