//! Uncertain batches: asking the server which observations it already has.
//!
//! When a request's answer is lost (a timeout or a dropped connection after the body went
//! out) or a run died mid-request, the server may have stored the batch. Langfuse v4 keeps
//! every copy of a re-sent span, so blindly sending again duplicates it. Langfuse's v2
//! observations API (`GET /api/public/v2/observations?traceId=…`, the read path of OTLP v4
//! ingestion, same keys) says which observations of a trace it has; only the rest is sent.
//! A server without that API (an older self-hosted Langfuse, the legacy ingestion route, an
//! OpenTelemetry Collector) cannot say: those items are sent again and counted as possibly
//! duplicated.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::Deserialize;

use crate::deliver::http::OTLP_PATH;
use crate::deliver::inflight::{Entry, InFlight};
use crate::deliver::ledger::Ledger;
use crate::encode::Item;

/// Longest one question may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Observations per page (the API's maximum).
const PAGE: usize = 1000;
/// Pages read per trace at most (a trace with more is answered in part: what is not found
/// is sent again).
const MAX_PAGES: usize = 100;
/// Largest page answer read.
const MAX_ANSWER_BYTES: u64 = 16 * 1024 * 1024;

/// Why the server could not say what it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unknown {
    /// It has no such API (for good): send again, count as possibly duplicated.
    NoApi(String),
    /// Not now (unreachable, an error): ask again later.
    Unreachable(String),
}

/// Langfuse's read API for one destination.
#[derive(Clone)]
pub struct Api {
    pub agent: ureq::Agent,
    /// `…/api/public/v2/observations`.
    pub url: String,
    /// Authorization and the SDK headers.
    pub headers: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct Page {
    data: Vec<Observation>,
    #[serde(default)]
    meta: Meta,
}

#[derive(Deserialize)]
struct Observation {
    id: String,
}

#[derive(Deserialize, Default)]
struct Meta {
    cursor: Option<String>,
}

impl Api {
    /// The read API beside an OTLP endpoint of Langfuse's (`None` for a collector URL).
    pub fn beside(otlp_url: &str) -> Option<String> {
        let base = otlp_url.strip_suffix(OTLP_PATH)?;
        Some(format!("{base}/api/public/v2/observations"))
    }

    /// The ids of the observations of `trace` the server has.
    pub fn known(&self, trace: &str) -> Result<HashSet<String>, Unknown> {
        let mut ids = HashSet::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut req = self
                .agent
                .get(&self.url)
                .query("traceId", trace)
                .query("fields", "core")
                .query("limit", PAGE.to_string());
            if let Some(c) = &cursor {
                req = req.query("cursor", c);
            }
            for (k, v) in &self.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            let resp = req
                .config()
                .timeout_global(Some(QUERY_TIMEOUT))
                .http_status_as_error(false)
                .build()
                .call()
                .map_err(|e| Unknown::Unreachable(e.to_string()))?;
            let code = resp.status().as_u16();
            match code {
                200 => {}
                // No such route here (older server, a proxy that only forwards ingestion).
                404 | 405 | 501 => return Err(Unknown::NoApi(format!("HTTP {code}"))),
                _ => return Err(Unknown::Unreachable(format!("HTTP {code}"))),
            }
            let body = resp
                .into_body()
                .with_config()
                .limit(MAX_ANSWER_BYTES)
                .read_to_vec()
                .map_err(|e| Unknown::Unreachable(format!("reading the answer: {e}")))?;
            let page: Page = serde_json::from_slice(&body)
                .map_err(|_| Unknown::NoApi("an answer that is not Langfuse's".into()))?;
            let full = page.data.len() >= PAGE;
            ids.extend(page.data.into_iter().map(|o| o.id));
            match page.meta.cursor.filter(|c| !c.is_empty()) {
                Some(next) if full && cursor.as_ref() != Some(&next) => cursor = Some(next),
                _ => break,
            }
        }
        Ok(ids)
    }

    /// Which of `items` the server has, asking once per trace. `Err` when it cannot say
    /// for some trace.
    pub fn which_known(&self, items: &[Item]) -> Result<Vec<bool>, Unknown> {
        let mut by_trace: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            match crate::deliver::inflight::trace_id_of(&item.json) {
                Some(t) => by_trace.entry(t).or_default().push(i),
                None => return Err(Unknown::NoApi("an item without a trace id".into())),
            }
        }
        let mut known = vec![false; items.len()];
        for (trace, at) in &by_trace {
            let ids = self.known(trace)?;
            for &i in at {
                known[i] = ids.contains(&items[i].key);
            }
        }
        Ok(known)
    }
}

/// What start-up learned about the batches an earlier run left in flight.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    /// Observations the server has: marked delivered, not sent again.
    pub found: u64,
    /// Observations it cannot say about (no API): they may be sent twice.
    pub unknown: u64,
    /// Records kept for a later run (the server could not be asked now).
    pub kept: u64,
}

/// Ask about every record an earlier run left in flight; mark what the server has as
/// delivered in the ledger. A record is removed once answered for good, kept while the
/// server cannot be reached.
pub fn reconcile(inflight: &InFlight, api: Option<&Api>, ledger: &mut Ledger) -> Reconciled {
    let mut out = Reconciled::default();
    for stale in inflight.stale() {
        let mut by_trace: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
        for e in &stale.entries {
            by_trace.entry(e.trace.as_str()).or_default().push(e);
        }
        let mut found: Vec<Item> = Vec::new();
        let mut unknown = 0u64;
        let mut keep = false;
        for (trace, entries) in by_trace {
            let answer = match api {
                Some(api) => api.known(trace),
                None => Err(Unknown::NoApi("no read API".into())),
            };
            match answer {
                Ok(ids) => found.extend(entries.into_iter().filter(|e| ids.contains(&e.key)).map(
                    |e| Item {
                        session_id: e.session.as_str().into(),
                        key: e.key.clone(),
                        json: Vec::new(),
                        trace_tag: None,
                    },
                )),
                Err(Unknown::NoApi(_)) => unknown += entries.len() as u64,
                Err(Unknown::Unreachable(_)) => keep = true,
            }
        }
        if keep {
            out.kept += 1;
            continue;
        }
        if ledger.record(&found).is_err() {
            continue; // try again next time rather than lose what was learned
        }
        out.found += found.len() as u64;
        out.unknown += unknown;
        let _ = std::fs::remove_file(&stale.path);
    }
    out
}
