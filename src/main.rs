//! omp-langfuse: turn Oh My Pi event streams and session logs into Langfuse traces.
//!
//! `main` only maps the outcome to an exit status; `run` is the pipeline's table of contents.

mod cli;
mod config;
mod decode;
mod deliver;
mod encode;
mod input;
mod map;
mod messages;
mod model;
mod run;
mod sanitize;

#[cfg(test)]
#[path = "../tests/it/support/langfuse/mod.rs"]
mod test_support;

use std::process::ExitCode;
use std::sync::Arc;

use crate::config::{Config, Mode};
use crate::deliver::Output;
use crate::deliver::sender::{Report, TimeCap};
use crate::run::flow::{Delivered, Downstream, Summary, SummaryLine};
use anyhow::{Result, anyhow};

/// The exit status contract (see the man page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Everything read was delivered.
    Delivered = 0,
    /// Finished, but something was skipped, rejected or spooled.
    Partial = 1,
    /// Usage or fatal error.
    Fatal = 2,
}

fn main() -> ExitCode {
    let config = match Config::from_cli(cli::parse()) {
        Ok(c) => c,
        Err(e) => {
            messages::error(&format!("{e:#}"));
            return ExitCode::from(Status::Fatal as u8);
        }
    };
    messages::set_verbosity(config.run.verbosity);
    match run(&config) {
        Ok(status) => ExitCode::from(status as u8),
        Err(e) => {
            messages::error(&format!("{e:#}"));
            ExitCode::from(Status::Fatal as u8)
        }
    }
}

fn run(cfg: &Config) -> Result<Status> {
    let live = matches!(cfg.run.mode, Mode::Pipe) && cfg.run.sources.iter().any(|s| s.is_live());
    // A followed directory is read as it is written: batches must also go out by time.
    let time_cap = if live || matches!(cfg.run.mode, Mode::Watch(_)) {
        TimeCap::After(cfg.deliver.flush_every)
    } else {
        TimeCap::None
    };
    let sanitizer = Arc::new(sanitize::Sanitizer::new(cfg.sanitize.clone())?);
    {
        // Every message from here on is scrubbed by the redactor as well.
        let s = sanitizer.clone();
        messages::set_scrubber(move |t| s.text(t).into_owned());
    }
    let stop = input::signals::Stop::install()?;
    let out = deliver::start(&cfg.deliver, time_cap, live)?;

    let map_cfg = Arc::new(cfg.map.clone());
    let mut summary = Summary::default();
    let mut read_error = None;
    // Sanitizing and encoding run on a second thread (see `Downstream::staged`), except when
    // following a directory: there each write is small and goes out at once.
    std::thread::scope(|scope| -> Result<()> {
        let mut down = match cfg.run.mode {
            Mode::Watch(_) => {
                Downstream::new(out.encoder(), out.outlet(), &sanitizer, cfg.run.sample_rate)
            }
            _ => Downstream::staged(
                scope,
                out.encoder(),
                out.outlet(),
                &sanitizer,
                cfg.run.sample_rate,
            ),
        };
        let ctx = run::Ctx {
            stop: &stop,
            cfg: &cfg.run,
            map_cfg: &map_cfg,
            delivery: out.delivery(),
        };
        match &cfg.run.mode {
            Mode::Pipe => {
                if let Some(e) = read_pipe(&ctx, &mut down, &mut summary) {
                    read_error = Some(e);
                }
            }
            Mode::Backfill(b) => {
                let outcome = run::backfill::run(b, &ctx, &mut down, &mut summary)?;
                if outcome.unreadable > 0 {
                    read_error = Some(anyhow!("{} files could not be read", outcome.unreadable));
                }
                summary.unmatched += outcome.unmatched;
                summary.busy_sessions += outcome.busy;
            }
            Mode::Watch(w) => {
                run::watch::run(w, &ctx, &mut down, &mut summary)?;
            }
        }
        if let Err(e) = down.finish(&mut summary) {
            messages::error(&format!("{e:#}"));
            read_error = Some(e);
        }
        Ok(())
    })?;
    let report = out.finish()?;

    let how = match cfg.deliver.output {
        Output::DryRun(_) | Output::Tree => Delivered::Printed,
        Output::Send(_) => Delivered::Sent,
    };
    messages::info(&SummaryLine(&summary, &report, how).to_string());
    if !summary.sanitize.redactions.is_empty() {
        messages::detail(&format!("redacted: {}", summary.sanitize.kinds()));
    }
    Ok(exit_status(cfg, &summary, &report, read_error.is_some()))
}

/// The pipe mode: every source in turn (stdin unless files were named). One unreadable
/// file does not stop the others; it still fails the run (the last such error).
fn read_pipe(
    ctx: &run::Ctx<'_>,
    down: &mut Downstream<'_>,
    summary: &mut Summary,
) -> Option<anyhow::Error> {
    let cfg = ctx.cfg;
    if cfg.sources == [input::Source::Stdin] && input::stdin_is_terminal() {
        messages::info(
            "reading omp's output from the terminal: pipe it in instead \
             (omp --mode json \"…\" | omp-langfuse), or name session files; \
             Ctrl-D ends, --help for more",
        );
    }
    let mut failed = None;
    for source in &cfg.sources {
        if ctx.stop.requested() {
            break;
        }
        if let Err(e) = run::flow::read_source(source, ctx.stop, cfg, ctx.map_cfg, down, summary) {
            messages::error(&format!("{e:#}"));
            failed = Some(e);
        }
    }
    failed
}

/// The exit status contract (man page EXIT STATUS) from what the run saw and delivered.
fn exit_status(cfg: &Config, summary: &Summary, report: &Report, read_failed: bool) -> Status {
    if let Some(fatal) = &report.fatal {
        // Server answers can quote what they were sent: the voice scrubs every message.
        messages::error(fatal);
        return Status::Fatal;
    }
    if read_failed {
        return Status::Fatal;
    }
    let partial = summary.lost_input(cfg.run.strict)
        || report.rejected > 0
        || report.spooled > 0
        || report.busy > 0
        || report.unrecorded > 0;
    if partial {
        Status::Partial
    } else {
        Status::Delivered
    }
}
