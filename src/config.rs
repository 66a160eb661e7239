//! The validated configuration: [`Config::from_cli`] makes every check, default and
//! environment lookup in one place, and hands each stage its own sub-config ([`RunConfig`]
//! for the drivers, [`MapConfig`], [`SanitizeConfig`], [`DeliverConfig`]); nothing is
//! patched afterwards.
//!
//! Precedence: a flag given on the command line, then its environment variable, then the
//! default. An empty environment variable counts as unset.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cli::{Cli, Command, DryRunWire, InputFormat, TracePerArg, TransportArg};
use crate::decode::omp::Format;
use crate::deliver::batch::{Caps, INGESTION_MAX_BODY_BYTES};
use crate::deliver::http::{TransportChoice, parse_otlp_headers};
use crate::deliver::ledger::ResendPolicy;
use crate::deliver::spool::Replay;
use crate::deliver::status::{DebugLog, Indicator};
use crate::deliver::{DEFAULT_BASE_URL, DeliverConfig, DeliveryConfig, Output};
use crate::encode::Wire;
use crate::input::Source;
use crate::map::{MapConfig, TracePer};
use crate::messages::Verbosity;
use crate::model::Millis;
use crate::sanitize::redact::read_secrets_file;
use crate::sanitize::{SanitizeConfig, process_env};

/// Langfuse normalises environments to at most 40 chars of `[a-z0-9_-]`.
const ENVIRONMENT_MAX_CHARS: usize = 40;
/// Longest duration accepted (a day): beyond that it is a typo, not a wish.
const MAX_DURATION: Duration = Duration::from_secs(86_400);
/// Smallest I/O budget accepted: below this a truncation marker would not fit.
const MIN_IO_CHARS: usize = 64;
/// The subcommands, for "did you mean" when one is mistyped as a file name.
const SUBCOMMANDS: &[&str] = &["backfill", "watch"];

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub run: RunConfig,
    pub map: MapConfig,
    pub sanitize: SanitizeConfig,
    pub deliver: DeliverConfig,
}

/// What the drivers (pipe, backfill, watch) need.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub mode: Mode,
    pub sources: Vec<Source>,
    /// `None`: detect per source.
    pub format: Option<Format>,
    /// Keep a session when its sample point is below this.
    pub sample_rate: f64,
    pub verbosity: Verbosity,
    /// Unknown event types fail the run (`--strict`).
    pub strict: bool,
}

impl RunConfig {
    /// Whether a session is kept by `--sample-rate`.
    pub fn sampled_in(&self, session: &str) -> bool {
        self.sample_rate >= 1.0 || crate::model::sample_point(session) < self.sample_rate
    }

    pub fn quiet(&self) -> bool {
        self.verbosity == Verbosity::Quiet
    }
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
    /// The sessions directories followed (one given, or every producer's that exists).
    pub dirs: Vec<PathBuf>,
    pub idle_close: Duration,
    pub since: Option<Millis>,
}

impl Config {
    /// Validate and resolve the command line and the environment.
    pub fn from_cli(cli: Cli) -> Result<Config> {
        let run = run_config(&cli)?;
        // Read in every mode (a dry run does not use them), so a typo is said the same way.
        let times = send_times(&cli)?;
        let output = match cli.dry_run {
            Some(DryRunWire::Ingestion) => Output::DryRun(Wire::Ingestion),
            Some(DryRunWire::Otlp) => Output::DryRun(Wire::Otlp),
            Some(DryRunWire::Tree) => Output::Tree,
            None => Output::Send(Box::new(delivery_config(&cli, &run.mode, times)?)),
        };
        if cli.max_queue == 0 {
            bail!("--max-queue / LANGFUSE_MAX_QUEUE must be at least 1");
        }
        Ok(Config {
            map: map_config(&cli)?,
            sanitize: sanitize_config(&cli)?,
            deliver: DeliverConfig {
                output,
                caps: Caps {
                    max_items: cli.max_queue,
                    max_bytes: INGESTION_MAX_BODY_BYTES,
                },
                flush_every: duration("--flush-ms / LANGFUSE_FLUSH_MS", &cli.flush_ms, Unit::Ms)?,
            },
            run,
        })
    }
}

fn run_config(cli: &Cli) -> Result<RunConfig> {
    let mode = match &cli.command {
        None => Mode::Pipe,
        Some(Command::Backfill(b)) => Mode::Backfill(BackfillConfig {
            paths: if b.paths.is_empty() {
                crate::input::sessions::default_dirs(b.profile.as_deref())?
            } else {
                b.paths.clone()
            },
            since: b.since.as_deref().map(parse_date).transpose()?,
            sessions: b.sessions.iter().map(|s| s.trim().to_string()).collect(),
        }),
        Some(Command::Watch(w)) => Mode::Watch(WatchConfig {
            dirs: match &w.dir {
                Some(d) => vec![d.clone()],
                None => crate::input::sessions::default_dirs(w.profile.as_deref())?,
            },
            idle_close: duration("--idle-close", &w.idle_close, Unit::Secs)?,
            since: w.since.as_deref().map(parse_date).transpose()?,
        }),
    };
    let sources: Vec<Source> = if cli.files.is_empty() {
        vec![Source::Stdin]
    } else {
        cli.files.iter().map(|f| Source::from_arg(f)).collect()
    };
    if sources.iter().filter(|s| **s == Source::Stdin).count() > 1 {
        bail!("stdin (`-`) can be read only once");
    }
    if let Some(first) = cli.files.first()
        && !first.exists()
        && let Some(sub) = mistyped_subcommand(&first.to_string_lossy())
    {
        bail!(
            "{}: no such file; did you mean the subcommand `{sub}`?",
            first.display()
        );
    }
    if !(0.0..=1.0).contains(&cli.sample_rate) {
        bail!(
            "--sample-rate / LANGFUSE_SAMPLE_RATE must be between 0 and 1, got {}",
            cli.sample_rate
        );
    }
    Ok(RunConfig {
        mode,
        sources,
        format: match cli.input_format {
            InputFormat::Auto => None,
            InputFormat::Live => Some(Format::Live),
            InputFormat::Extension => Some(Format::Extension),
            InputFormat::SessionLog => Some(Format::SessionLog),
        },
        sample_rate: cli.sample_rate,
        strict: cli.strict,
        verbosity: match (cli.quiet, cli.verbose) {
            (true, _) => Verbosity::Quiet,
            (_, true) => Verbosity::Verbose,
            _ => Verbosity::Normal,
        },
    })
}

/// The subcommand a word looks like a typo of (`backfil`, `wacth`).
fn mistyped_subcommand(word: &str) -> Option<&'static str> {
    SUBCOMMANDS
        .iter()
        .copied()
        .find(|s| word != *s && strsim::damerau_levenshtein(word, s) <= 2)
}

fn map_config(cli: &Cli) -> Result<MapConfig> {
    let environment = cli
        .environment
        .clone()
        .filter(|e| !e.is_empty())
        .map(|e| validate_environment(&e).map(|()| e))
        .transpose()?;
    Ok(MapConfig {
        trace_per: match cli.trace_per {
            TracePerArg::Session => TracePer::Session,
            TracePerArg::Prompt => TracePer::Prompt,
        },
        tags: cli
            .tags
            .iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect(),
        environment,
        release: cli.release.clone().filter(|r| !r.is_empty()),
        user_id: cli.user_id.clone().filter(|u| !u.is_empty()),
    })
}

/// Keys come from the environment only: a flag would show them in `ps`.
fn env_key(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The Langfuse base URL: `--base-url`, `--host` (given on the command line), then
/// `LANGFUSE_BASE_URL`, `LANGFUSE_HOST` (empty counts as unset), then Langfuse Cloud.
fn base_url(cli: &Cli) -> String {
    let given = |id: &str| cli.explicit.iter().any(|e| e == id);
    let flags = [
        (given("base_url"), cli.base_url.as_deref()),
        (given("host"), cli.host.as_deref()),
    ];
    let from_flags = flags
        .iter()
        .filter(|(g, _)| *g)
        .filter_map(|(_, v)| *v)
        .find(|v| !v.trim().is_empty());
    let from_env = ["LANGFUSE_BASE_URL", "LANGFUSE_HOST"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.trim().is_empty());
    from_flags
        .map(str::to_string)
        .or(from_env)
        .unwrap_or_else(|| DEFAULT_BASE_URL.to_string())
        .trim()
        .to_string()
}

/// `--timeout` and `--shutdown-timeout`.
fn send_times(cli: &Cli) -> Result<(Duration, Duration)> {
    Ok((
        duration("--timeout / LANGFUSE_TIMEOUT", &cli.timeout, Unit::Secs)?,
        duration("--shutdown-timeout", &cli.shutdown_timeout, Unit::Secs)?,
    ))
}

fn delivery_config(
    cli: &Cli,
    mode: &Mode,
    (timeout, shutdown_timeout): (Duration, Duration),
) -> Result<DeliveryConfig> {
    let base = base_url(cli);
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
    crate::deliver::http::trust(cli.ca_cert.as_deref().filter(|p| !p.as_os_str().is_empty()))?;
    let otlp_headers = match cli.otlp_headers.as_deref().filter(|h| !h.trim().is_empty()) {
        Some(h) => parse_otlp_headers(h)
            .map_err(|e| anyhow::anyhow!("OTEL_EXPORTER_OTLP_HEADERS / --otlp-headers: {e}"))?,
        None => Vec::new(),
    };
    // backfill draws its own progress line; two lines redrawn in place would fight.
    let indicator = match (cli.ui_indicator, mode) {
        (None, Mode::Backfill(_)) => Indicator::Off,
        (None, _) => Indicator::auto(),
        (Some(true), _) => Indicator::On,
        (Some(false), _) => Indicator::Off,
    };
    Ok(DeliveryConfig {
        public_key,
        secret_key,
        timeout,
        shutdown_timeout,
        max_in_flight: cli.max_in_flight.map(|n| usize::try_from(n).unwrap_or(1)),
        transport: match cli.transport {
            TransportArg::Auto => TransportChoice::Auto,
            TransportArg::Otlp => TransportChoice::Otlp,
            TransportArg::Ingestion => TransportChoice::Ingestion,
        },
        otlp_endpoint: cli.otlp_endpoint.clone().filter(|e| !e.trim().is_empty()),
        otlp_headers,
        state_dir: cli.state_dir.clone(),
        replay: if cli.no_replay {
            Replay::No
        } else {
            Replay::Yes
        },
        resend: if cli.resend {
            ResendPolicy::SendAgain
        } else {
            ResendPolicy::default()
        },
        debug: if cli.debug == Some(true) {
            DebugLog::On
        } else {
            DebugLog::Off
        },
        indicator,
        status_file: cli
            .status_file
            .clone()
            .filter(|p| !p.as_os_str().is_empty()),
        ..DeliveryConfig::new(&base)
    })
}

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

/// The unit of a plain number given for a duration.
#[derive(Debug, Clone, Copy)]
enum Unit {
    Secs,
    Ms,
}

/// A duration: `500ms`, `10s`, `5m`, `1h 30m` (humantime's syntax), or a plain number in
/// the flag's own unit (`--timeout 10` is ten seconds, `--flush-ms 2000` two).
fn duration(flag: &str, text: &str, plain: Unit) -> Result<Duration> {
    let text = text.trim();
    let d = match text.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Some(match plain {
            Unit::Secs => Duration::from_secs_f64(n.min(1e9)),
            Unit::Ms => Duration::from_secs_f64((n / 1000.0).min(1e9)),
        }),
        Ok(_) => None,
        Err(_) => humantime::parse_duration(text).ok(),
    };
    match d {
        Some(d) if !d.is_zero() && d <= MAX_DURATION => Ok(d),
        _ => bail!(
            "{flag} must be a duration between 0 and a day, like `500ms`, `10s` or `5m` (a plain \
             number is in {}), got {text:?}",
            match plain {
                Unit::Secs => "seconds",
                Unit::Ms => "milliseconds",
            }
        ),
    }
}

/// `--since`: a calendar date (midnight UTC) or an RFC 3339 time, as epoch milliseconds.
fn parse_date(s: &str) -> Result<Millis> {
    let s = s.trim();
    if let Some(ms) = crate::model::parse_iso(s) {
        return Ok(ms);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(s, &format) {
        Ok(d) => Ok(d.midnight().assume_utc().unix_timestamp() * 1000),
        Err(_) => bail!("--since must be a date like 2026-11-01 or an RFC 3339 time, got {s:?}"),
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
    use crate::cli::parse_from;

    fn parse(args: &[&str]) -> Result<Config> {
        let mut full = vec!["omp-langfuse"];
        full.extend_from_slice(args);
        Config::from_cli(parse_from(&full)?)
    }

    #[test]
    fn subcommands_take_the_global_options_before_or_after() {
        for args in [
            &["--dry-run", "backfill", "/x"][..],
            &["backfill", "--dry-run", "/x"],
        ] {
            let c = parse(args).unwrap();
            assert!(matches!(c.deliver.output, Output::DryRun(_)), "{args:?}");
            match c.run.mode {
                Mode::Backfill(b) => assert_eq!(b.paths, vec![PathBuf::from("/x")]),
                other => panic!("{other:?}"),
            }
        }
        let c = parse(&["watch", "--dry-run", "--idle-close", "5", "/d"]).unwrap();
        match c.run.mode {
            Mode::Watch(w) => {
                assert_eq!(w.dirs, vec![PathBuf::from("/d")]);
                assert_eq!(w.idle_close, Duration::from_secs(5));
            }
            other => panic!("{other:?}"),
        }
        // The plain invocation is unchanged.
        let c = parse(&["--dry-run", "a.jsonl"]).unwrap();
        assert!(matches!(c.run.mode, Mode::Pipe));
        assert_eq!(c.run.sources, vec![Source::File("a.jsonl".into())]);
        assert!(parse(&["--dry-run", "watch", "--idle-close", "0", "/d"]).is_err());
        // After a FILE, a subcommand's name is just another file (as before subcommands).
        let c = parse(&["--dry-run", "a.jsonl", "backfill"]).unwrap();
        assert_eq!(c.run.sources.len(), 2);
    }

    #[test]
    fn a_mistyped_subcommand_is_suggested() {
        let e = parse(&["--dry-run", "backfil"]).unwrap_err().to_string();
        assert!(e.contains("did you mean the subcommand `backfill`"), "{e}");
        let e = parse(&["--dry-run", "wacth"]).unwrap_err().to_string();
        assert!(e.contains("`watch`"), "{e}");
        // A real file of that name is read.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("watc");
        std::fs::write(&f, "").unwrap();
        assert!(parse(&["--dry-run", f.to_str().unwrap()]).is_ok());
    }

    #[test]
    fn durations_take_units_and_plain_numbers_keep_theirs() {
        assert_eq!(
            duration("t", "10", Unit::Secs).unwrap(),
            Duration::from_secs(10)
        );
        assert_eq!(
            duration("t", "2.5", Unit::Secs).unwrap(),
            Duration::from_millis(2500)
        );
        assert_eq!(
            duration("t", "5m", Unit::Secs).unwrap(),
            Duration::from_secs(300)
        );
        assert_eq!(
            duration("t", "1h 30m", Unit::Secs).unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            duration("t", "2000", Unit::Ms).unwrap(),
            Duration::from_secs(2)
        );
        assert_eq!(
            duration("t", "2s", Unit::Ms).unwrap(),
            Duration::from_secs(2)
        );
        for bad in ["0", "-1", "soon", "", "2d", "NaN", "inf"] {
            assert!(duration("t", bad, Unit::Secs).is_err(), "{bad}");
        }
        let c = parse(&["watch", "--dry-run", "--idle-close", "5m", "/d"]).unwrap();
        assert!(matches!(c.run.mode, Mode::Watch(w) if w.idle_close == Duration::from_secs(300)));
        let c = parse(&["--dry-run", "--flush-ms", "1s"]).unwrap();
        assert_eq!(c.deliver.flush_every, Duration::from_secs(1));
        // A typo in a sending setting is an error in a dry run too.
        for flag in ["--timeout", "--shutdown-timeout"] {
            let e = parse(&["--dry-run", flag, "10x"]).unwrap_err().to_string();
            assert!(e.contains(flag) && e.contains("must be a duration"), "{e}");
        }
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
        assert_eq!(c.run.sources, vec![Source::Stdin]);
        assert_eq!(c.deliver.caps.max_items, 500);
        assert_eq!(c.deliver.flush_every, Duration::from_millis(2000));
        assert_eq!(c.map.trace_per, TracePer::Session);
        assert!(c.run.format.is_none());
    }

    #[test]
    fn rejects_bad_values() {
        assert!(parse(&["--dry-run", "--sample-rate", "1.5"]).is_err());
        assert!(parse(&["--dry-run", "--max-queue", "0"]).is_err());
        assert!(parse(&["--dry-run", "--environment", "Prod"]).is_err());
        assert!(parse(&["--dry-run", "--environment", "langfuse-x"]).is_err());
        assert!(parse(&["--dry-run", "-", "-"]).is_err());
        assert!(parse(&["--dry-run", "--input-format", "xml"]).is_err());
        assert!(parse(&["--dry-run", "--flush-ms", "10 parsecs"]).is_err());
    }

    /// The hand-written man page must name every flag and every environment variable.
    #[test]
    fn man_page_documents_every_flag() {
        let man = include_str!("../man/omp-langfuse.1").replace("\\-", "-");
        let cmd = crate::cli::command();
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
