//! The drivers: pipe, `backfill` and `watch`, all feeding one front half.

pub mod backfill;
pub mod flow;
pub mod progress;
pub mod watch;
