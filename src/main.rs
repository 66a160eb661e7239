//! omp-langfuse: turn Oh My Pi event streams and session logs into Langfuse traces.
//!
//! `main` only maps the outcome to an exit status; `run` is the pipeline's table of contents.

mod batch;
mod cli;
mod delivery;
mod encode;
mod http;
mod ingestion;
mod input;
mod ledger;
mod mapper;
mod model;
mod omp;
mod otlp;
mod pipeline;
mod redact;
mod retry;
mod sanitize;
#[cfg(test)]
mod secret_corpus;
mod sender;
mod session_log;
mod spool;
mod status;
mod truncate;

#[cfg(test)]
mod delivery_tests;
#[cfg(test)]
#[path = "../tests/support/mod.rs"]
mod test_support;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use clap::Parser;

use crate::cli::{Cli, Config, Output};
use crate::encode::Encoder;
use crate::pipeline::{Downstream, Summary, SummaryLine};
use crate::sender::{Sink, TimeCap};

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
    let config = match Cli::parse().into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("omp-langfuse: {e:#}");
            return ExitCode::from(Status::Fatal as u8);
        }
    };
    match run(&config) {
        Ok(status) => ExitCode::from(status as u8),
        Err(e) => {
            eprintln!("omp-langfuse: {e:#}");
            ExitCode::from(Status::Fatal as u8)
        }
    }
}

fn run(cfg: &Config) -> Result<Status> {
    let encoder: Arc<dyn Encoder> = Arc::new(ingestion::IngestionEncoder);
    let sink: Box<dyn Sink> = match cfg.output {
        Output::DryRun => Box::new(sender::DryRun::new(std::io::BufWriter::new(
            std::io::stdout(),
        ))),
    };
    let time_cap = if cfg.sources.iter().any(|s| s.is_live()) {
        TimeCap::After(cfg.flush_every)
    } else {
        TimeCap::None
    };
    let caps = batch::Caps {
        max_bytes: cfg.caps.max_bytes.min(encoder.max_body_bytes()),
        ..cfg.caps
    };
    let (tx, worker) = sender::spawn(encoder.clone(), sink, caps, time_cap);

    let map_cfg = Arc::new(cfg.map.clone());
    let mut summary = Summary::default();
    let mut down = Downstream::new(&*encoder, &tx, cfg.sample_rate);
    let mut read_error = None;
    for source in &cfg.sources {
        if let Err(e) = pipeline::read_source(source, cfg, &map_cfg, &mut down, &mut summary) {
            // One unreadable file does not stop the others; it still fails the run.
            eprintln!("omp-langfuse: {e:#}");
            read_error = Some(e);
        }
    }
    drop(down);
    drop(tx);
    let report = worker
        .join()
        .map_err(|_| anyhow!("the delivery worker panicked"))?;

    if !cfg.quiet {
        eprintln!("omp-langfuse: {}", SummaryLine(&summary, &report));
    }
    if let Some(fatal) = &report.fatal {
        eprintln!("omp-langfuse: {fatal}");
        return Ok(Status::Fatal);
    }
    if read_error.is_some() {
        return Ok(Status::Fatal);
    }
    let partial = summary.lost_input() || report.rejected > 0 || report.spooled > 0;
    Ok(if partial {
        Status::Partial
    } else {
        Status::Delivered
    })
}
