//! `backfill`: every session file under the given paths, oldest session first, each read to
//! its end once and delivered once, subagent sessions nested in their parent's trace.
//!
//! One file at a time: one open file, one mapper, and the delivery ledger told to forget a
//! session once its items are delivered, so thousands of files cost no more handles or
//! memory than one. A file the ledger marks complete at its current length is not opened.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, anyhow};

use crate::config::{BackfillConfig, RunConfig};
use crate::deliver::{Delivery, Outlet};
use crate::encode::{Encoder, Item};
use crate::input::Source;
use crate::input::sessions::{self, Filter, SessionFile};
use crate::input::signals::Stop;
use crate::map::nesting::{self, ParentInfo};
use crate::map::{MapConfig, Mapper, Nest};
use crate::messages;
use crate::run::Ctx;
use crate::run::flow::{self, Downstream, Front, Summary};
use crate::run::progress::{Progress, Style};
use crate::sanitize::Sanitizer;

/// How the run is going (for the exit status).
#[derive(Debug, Default)]
pub struct Outcome {
    /// Files that could not be read (reported as they happened).
    pub unreadable: u64,
    /// `--session` ids that matched no session file (reported).
    pub unmatched: u64,
    /// Sessions skipped because another process was delivering them (reported).
    pub busy: u64,
}

/// Run a backfill into `down`; `delivery` is `None` for a dry run (no ledger: all is read).
pub fn run(
    b: &BackfillConfig,
    ctx: &Ctx<'_>,
    down: &mut Downstream<'_>,
    summary: &mut Summary,
) -> Result<Outcome> {
    let Ctx {
        stop,
        cfg,
        delivery,
        ..
    } = *ctx;
    let mut outcome = Outcome::default();
    let files = plan(b, ctx, &mut outcome)?;
    let total_bytes: u64 = files.iter().map(|f| f.len).sum();
    let style = Style::auto(cfg.quiet());
    let mut progress = Progress::new(style, "backfill", files.len() as u64, total_bytes);
    let mut group = Group::default();
    // Files are read whole: a stop between files leaves no session half-closed.
    let inert = Stop::inert();
    for f in &files {
        if stop.requested() {
            break;
        }
        if group.root_session.as_deref() != Some(f.root_session.as_str()) {
            group.end(delivery);
            if let Some(d) = delivery {
                d.wait_for_room();
            }
            group.root_session = Some(f.root_session.clone());
            // Another process (a watch, a second backfill) delivering this session has it;
            // sending it here too would store every observation twice.
            group.busy = delivery.is_some_and(|d| !d.own(&f.root_session));
            outcome.busy += u64::from(group.busy);
        }
        if group.busy {
            progress.advance(f.len, summary.observations.iter().sum());
            continue;
        }
        let whole = Ctx {
            stop: &inert,
            ..*ctx
        };
        if let Err(e) = read_file(f, &whole, &mut group, down, summary) {
            messages::error(&format!("{e:#}"));
            outcome.unreadable += 1;
        }
        progress.advance(f.len, summary.observations.iter().sum());
    }
    group.end(delivery);
    progress.finish();
    if outcome.busy > 0 {
        flow::warn(
            "backfill",
            0,
            &format!(
                "{} being delivered by another process on the same state directory; skipped \
                 (a later backfill sends what it did not)",
                messages::plural(outcome.busy, "session")
            ),
        );
    }
    Ok(outcome)
}

/// The session files to read: discovered under the paths, narrowed by `--since` and
/// `--session` (ids matching nothing are reported), less those the ledger marks complete;
/// says how many there are.
fn plan(b: &BackfillConfig, ctx: &Ctx<'_>, outcome: &mut Outcome) -> Result<Vec<SessionFile>> {
    let Ctx { cfg, delivery, .. } = *ctx;
    for p in &b.paths {
        if !p.exists() {
            return Err(anyhow!("{}: no such file or directory", p.display()));
        }
    }
    let filter = Filter {
        since: b.since,
        sessions: b.sessions.clone(),
    };
    let mut files = sessions::discover(&b.paths, &filter, &mut |p, e| {
        flow::warn(&p.display().to_string(), 0, &format!("cannot read: {e}"));
        outcome.unreadable += 1;
    });
    for wanted in &b.sessions {
        if !files
            .iter()
            .any(|f| f.root_session.starts_with(wanted.as_str()))
        {
            flow::warn(
                "--session",
                0,
                &format!("no session file under the given paths matches {wanted:?}"),
            );
            outcome.unmatched += 1;
        }
    }
    let found = files.len();
    if let Some(d) = delivery {
        files.retain(|f| d.done_len(&f.root_session, &f.mark) != Some(f.len));
    }
    let skipped = found - files.len();
    let total_bytes: u64 = files.iter().map(|f| f.len).sum();
    let style = Style::auto(cfg.quiet());
    if style != Style::Off {
        messages::info(&format!(
            "backfill: {} to read ({}){}",
            messages::plural(files.len() as u64, "session file"),
            messages::human_bytes(total_bytes),
            if skipped > 0 {
                format!(
                    ", {} already delivered",
                    messages::plural(skipped as u64, "file")
                )
            } else {
                String::new()
            }
        ));
    }
    Ok(files)
}

/// Read one session file whole (nested under its parent when it is a subagent's) and have
/// it marked complete once its items are delivered. `ctx.stop` is the inert stop.
fn read_file(
    f: &SessionFile,
    ctx: &Ctx<'_>,
    group: &mut Group,
    down: &mut Downstream<'_>,
    summary: &mut Summary,
) -> Result<()> {
    let Ctx {
        stop,
        cfg,
        map_cfg,
        delivery,
    } = *ctx;
    let nest = match &f.parent {
        Some(p) => group.nest(p, f, ctx, (down.out.encoder, down.out.sanitizer)),
        None => None,
    };
    let mapper = Mapper::with_nest(map_cfg.clone(), nest.clone());
    if let Some(d) = delivery {
        d.start_tracking();
    }
    let source = Source::File(f.path.clone());
    let front = Front::new(source.display(), cfg.format, mapper);
    let front = flow::read_into(&source, stop, front, down, summary)?;
    if let Some(d) = delivery {
        let tracked = d.take_tracked();
        if cfg.sampled_in(&f.root_session) {
            d.complete_when_delivered(&f.root_session, &f.mark, f.len, tracked);
        }
    }
    group.remember(&f.path, front.mapper(), nest.as_ref());
    Ok(())
}

/// What the files of one top-level session left for their subagents. Dropped when the next
/// top-level session begins, so it never grows past one session's family.
#[derive(Default)]
struct Group {
    root_session: Option<String>,
    /// Another process delivers this session: its files are skipped.
    busy: bool,
    parents: HashMap<PathBuf, ParentInfo>,
}

impl Group {
    /// The session is done: let the ledger forget it once it is delivered.
    fn end(&mut self, delivery: Option<&Delivery>) {
        if let (Some(d), Some(s)) = (delivery, self.root_session.take()) {
            d.release(&s);
        }
        self.parents.clear();
    }

    fn remember(&mut self, path: &Path, mapper: &Mapper, nest: Option<&Nest>) {
        if let Some(info) = parent_info(mapper, nest) {
            self.parents.insert(path.to_path_buf(), info);
        }
    }

    /// Where subagent file `f` (whose parent file is `parent`) goes.
    /// `ctx.stop` is the inert stop: a parent is read whole.
    fn nest(
        &mut self,
        parent: &Path,
        f: &SessionFile,
        ctx: &Ctx<'_>,
        stages: (&dyn Encoder, &Sanitizer),
    ) -> Option<Nest> {
        if !self.parents.contains_key(parent) {
            // Not read in this run (already delivered, or not selected).
            let info = read_parent(parent, ctx.stop, ctx.cfg, ctx.map_cfg, stages)?;
            self.parents.insert(parent.to_path_buf(), info);
        }
        nest_under(self.parents.get(parent)?, f)
    }
}

/// What a mapped parent file leaves for its subagents.
pub fn parent_info(mapper: &Mapper, nest: Option<&Nest>) -> Option<ParentInfo> {
    Some(ParentInfo {
        anchor: mapper.anchor()?,
        spawns: mapper.spawns().cloned().collect(),
        key_prefix: nest.map(|n| n.key_prefix.clone()).unwrap_or_default(),
    })
}

/// The nest of subagent file `f` under its parent.
pub fn nest_under(parent: &ParentInfo, f: &SessionFile) -> Option<Nest> {
    let agent_id = f.agent_id()?;
    let task = crate::decode::session_log::read_init_task(&f.path);
    Some(nesting::nest_for(parent, &agent_id, task.as_deref()))
}

/// Read a parent session file again without sending anything, for its trace and its `task`
/// calls (and its own parent's, up to the top-level session).
pub fn read_parent(
    path: &Path,
    stop: &Stop,
    cfg: &RunConfig,
    map_cfg: &Arc<MapConfig>,
    (encoder, sanitizer): (&dyn Encoder, &Sanitizer),
) -> Option<ParentInfo> {
    let f = SessionFile::at(path).ok()??;
    let nest = match &f.parent {
        Some(p) => nest_under(
            &read_parent(p, stop, cfg, map_cfg, (encoder, sanitizer))?,
            &f,
        ),
        None => None,
    };
    let mapper = Mapper::with_nest(map_cfg.clone(), nest.clone());
    let mut down = Downstream::new(encoder, &Discard, sanitizer, 1.0);
    let mut quiet = Summary::default();
    let source = Source::File(path.to_path_buf());
    let front = Front::new(source.display(), cfg.format, mapper);
    let front = flow::read_into(&source, stop, front, &mut down, &mut quiet).ok()?;
    parent_info(front.mapper(), nest.as_ref())
}

/// An outlet that drops everything (a parent read only for its structure).
struct Discard;

impl Outlet for Discard {
    fn put(&self, _item: Item) -> Result<()> {
        Ok(())
    }
}
