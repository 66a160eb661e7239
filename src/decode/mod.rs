//! Lines → typed events: every field name of omp's (and pi's) formats lives here.

pub mod chat;
pub mod jsonline;
pub mod omp;
pub mod record;
pub mod session_log;
pub mod usage;
