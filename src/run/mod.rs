//! The drivers: pipe, `backfill` and `watch`, all feeding one front half.

pub mod backfill;
pub mod flow;
pub mod progress;
pub mod stage;
pub mod watch;

use std::sync::Arc;

use crate::config::RunConfig;
use crate::deliver::Delivery;
use crate::input::signals::Stop;
use crate::map::MapConfig;

/// What every driver reads (and never changes) while it runs.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub stop: &'a Stop,
    pub cfg: &'a RunConfig,
    pub map_cfg: &'a Arc<MapConfig>,
    /// The delivery front, when sending (its ledger knows what was delivered).
    pub delivery: Option<&'a Delivery>,
}
