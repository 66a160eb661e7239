//! `watch`: follow omp's sessions directory as omp writes it. New files, appended entries,
//! files replaced by an atomic rewrite (a new inode: read again from the start, and the
//! delivery ledger lets through only what was not delivered yet), and a last line still
//! being written (read once its newline is there). A session ends at its `session_exit`
//! entry, or after `--idle-close` without writes; its observations are sent as they
//! complete, batched by the flush interval.
//!
//! Polling, not file notifications: every `POLL_EVERY` one `stat` per followed file and per
//! directory that can receive new files, and a full walk every `FULL_SCAN_EVERY` (for old
//! sessions that grow again). That behaves the same on every platform, on network file
//! systems and in containers where inotify watches run out, and its latency is hidden by
//! the flush interval anyway; a notification crate would bring platform backends and be
//! the tool's largest dependency for no visible gain.
//!
//! Bounded over days: only sessions being written are held (their mapper and the keys of
//! their items); finished ones are reduced to a file length in `known`, and the ledger
//! forgets their keys once delivered. On SIGINT/SIGTERM nothing is closed by force: what is
//! complete is flushed, and a session still being written is picked up again, without
//! duplicates, by the next `watch`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Result, anyhow};

use crate::config::{RunConfig, WatchConfig};
use crate::deliver::{Delivery, Tracked};
use crate::input::sessions::{self, SessionFile};
use crate::input::signals::Stop;
use crate::input::{Lines, Next};
use crate::map::{MapConfig, Mapper};
use crate::run::Ctx;
use crate::run::backfill;
use crate::run::flow::{Downstream, Front, Summary, warn};
use crate::run::progress::{Progress, Style};

/// How often followed files are looked at.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// How often the whole tree is walked (new directories, old sessions that grow again).
const FULL_SCAN_EVERY: Duration = Duration::from_secs(10);
/// A directory modified this recently is read again even if its time looks unchanged
/// (two changes within one timestamp tick).
const DIR_SETTLE: Duration = Duration::from_secs(2);

/// What is known about a file that is not being followed: enough to notice a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    len: u64,
    inode: (u64, u64),
}

/// A session file being followed.
struct Tail {
    file: SessionFile,
    inode: (u64, u64),
    /// Bytes read, up to the end of the last complete line.
    offset: u64,
    lines: u64,
    /// The same front half as pipe and backfill: same warnings, same observations.
    front: Front,
    /// It had ended when following began: read whole, ended once read.
    complete: bool,
    nest: Option<crate::map::Nest>,
    /// Keys of everything it offered (for its completion mark).
    tracked: Tracked,
    /// The file's last modification time, as last seen.
    written: SystemTime,
}

/// Why a followed file stops being followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Its sessions ended (`session_exit`).
    Ended,
    /// No writes for `--idle-close`: open observations are closed with WARNING.
    Idle,
    /// It disappeared.
    Gone,
}

struct Watcher<'a, 'b> {
    w: &'a WatchConfig,
    cfg: &'a RunConfig,
    map_cfg: &'a Arc<MapConfig>,
    down: &'a mut Downstream<'b>,
    summary: &'a mut Summary,
    delivery: Option<&'a Delivery>,
    inert: Stop,
    /// Followed files.
    tails: BTreeMap<PathBuf, Tail>,
    /// Files not followed (finished, idle, or before `--since`).
    known: HashMap<PathBuf, Seen>,
    /// Directories and their last seen modification times.
    dirs: HashMap<PathBuf, SystemTime>,
    /// Paths reported as unreadable (once each).
    unreadable: HashSet<PathBuf>,
    /// When the first poll (the backlog) was done.
    caught_up: Option<Instant>,
}

/// Follow `w.dirs` until a stop is asked for.
pub fn run(
    w: &WatchConfig,
    ctx: &Ctx<'_>,
    down: &mut Downstream<'_>,
    summary: &mut Summary,
) -> Result<()> {
    let Ctx {
        stop,
        cfg,
        map_cfg,
        delivery,
    } = *ctx;
    for dir in &w.dirs {
        if dir.exists() && !dir.is_dir() {
            return Err(anyhow!("{}: not a directory", dir.display()));
        }
        if !dir.exists() {
            // A service may start before omp ever ran: wait for omp to create it.
            crate::messages::info(&format!(
                "{} does not exist yet; waiting for it to be created",
                dir.display()
            ));
        }
    }
    if let Some(d) = delivery {
        d.start_tracking();
    }
    let shown: Vec<String> = w.dirs.iter().map(|d| d.display().to_string()).collect();
    crate::messages::info(&format!(
        "watching {} (sessions close after {} without writes; interrupt to stop)",
        shown.join(", "),
        humantime::format_duration(w.idle_close)
    ));
    let mut watcher = Watcher {
        w,
        cfg,
        map_cfg,
        down,
        summary,
        delivery,
        inert: Stop::inert(),
        tails: BTreeMap::new(),
        known: HashMap::new(),
        dirs: HashMap::new(),
        unreadable: HashSet::new(),
        caught_up: None,
    };
    let mut last_full = None::<Instant>;
    loop {
        let full = last_full.is_none_or(|t| t.elapsed() >= FULL_SCAN_EVERY);
        if full {
            last_full = Some(Instant::now());
        }
        watcher.poll(full, stop)?;
        if stop.wait(POLL_EVERY) {
            break;
        }
    }
    // Sessions still being written are left open (not closed as crashed): the next watch
    // reads them again and the ledger skips what this one delivered.
    let open = watcher.tails.len();
    if open > 0 && !cfg.quiet() {
        crate::messages::info(&format!(
            "watch stopped; {open} session(s) still being written will be picked up by the next watch"
        ));
    }
    Ok(())
}

impl Watcher<'_, '_> {
    fn poll(&mut self, full: bool, stop: &Stop) -> Result<()> {
        let mut candidates = BTreeSet::new();
        if full {
            let mut errors = Vec::new();
            for root in &self.w.dirs {
                for p in sessions::walk(root, &mut |p, e| errors.push((p.to_path_buf(), e))) {
                    candidates.insert(p);
                }
            }
            for (p, e) in errors {
                // Once per path: the walk repeats every few seconds for days.
                if e.kind() != io::ErrorKind::NotFound && self.unreadable.insert(p.clone()) {
                    warn(&p.display().to_string(), 0, &format!("cannot read: {e}"));
                }
            }
        } else {
            self.changed_dirs(&mut candidates);
        }
        candidates.extend(self.tails.keys().cloned());
        // A parent file (`X.jsonl`) before its subagents (`X/…`), so a spawning `task` call
        // is read before the subagent it spawned. (Plain path order puts `X/` first.)
        let mut ordered: Vec<PathBuf> = candidates.into_iter().collect();
        ordered.sort_by_cached_key(|p| p.with_extension(""));
        // The first poll reads the backlog (sessions not completely delivered yet): show
        // its progress as backfill does.
        let mut progress = (self.caught_up.is_none() && !ordered.is_empty()).then(|| {
            let sizes = ordered.iter().filter_map(|p| std::fs::metadata(p).ok());
            let bytes = sizes.map(|m| m.len()).sum();
            let style = Style::auto(self.cfg.quiet());
            Progress::new(style, "catch-up", ordered.len() as u64, bytes)
        });
        for path in ordered {
            // The first poll may read a long backlog: a stop must not wait for all of it.
            if stop.requested() {
                break;
            }
            self.look_at(&path)?;
            if let Some(p) = &mut progress {
                let len = std::fs::metadata(&path).map_or(0, |m| m.len());
                p.advance(len, self.summary.observations.iter().sum());
            }
        }
        if let Some(mut p) = progress {
            p.finish();
        }
        self.caught_up.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// New files in directories that changed since the last look: the top directory, its
    /// project directories, and the subagent directories of followed sessions.
    fn changed_dirs(&mut self, out: &mut BTreeSet<PathBuf>) {
        let mut dirs = self.w.dirs.clone();
        for root in &self.w.dirs {
            if let Ok(entries) = std::fs::read_dir(root) {
                dirs.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
        dirs.extend(self.tails.keys().map(|p| p.with_extension("")));
        for dir in dirs {
            let Ok(mtime) = std::fs::metadata(&dir).and_then(|m| m.modified()) else {
                continue;
            };
            let recent = SystemTime::now()
                .duration_since(mtime)
                .is_ok_and(|age| age < DIR_SETTLE);
            if self.dirs.get(&dir) == Some(&mtime) && !recent {
                continue;
            }
            self.dirs.insert(dir.clone(), mtime);
            if let Ok(entries) = std::fs::read_dir(&dir) {
                out.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|e| e == "jsonl")),
                );
            }
        }
    }

    fn look_at(&mut self, path: &Path) -> Result<()> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(_) => {
                self.known.remove(path);
                if self.tails.contains_key(path) {
                    self.end(path, Ending::Gone)?;
                }
                return Ok(());
            }
        };
        let seen = Seen {
            len: meta.len(),
            inode: inode(&meta),
        };
        if let Some(t) = self.tails.get(path) {
            if t.inode != seen.inode || seen.len < t.offset {
                // Replaced (atomic rewrite) or truncated: read it again from the start;
                // what was delivered already is skipped by the ledger.
                let tracked = self.tails.remove(path).map(|t| t.tracked);
                self.start(path, tracked)?;
            }
        } else {
            if self.known.get(path) == Some(&seen) {
                return Ok(());
            }
            self.known.insert(path.to_path_buf(), seen);
            let Ok(Some(f)) = SessionFile::at(path) else {
                return Ok(());
            };
            if self.w.since.is_some_and(|s| f.started < s) {
                return Ok(());
            }
            if let Some(d) = self.delivery
                && d.done_len(&f.root_session, &f.mark) == Some(f.len)
            {
                return Ok(());
            }
            // Another process delivers this session now: look again at the next poll.
            if self.delivery.is_some_and(|d| !d.own(&f.root_session)) {
                self.known.remove(path);
                return Ok(());
            }
            self.start(path, None)?;
        }
        if !self.tails.contains_key(path) {
            return Ok(());
        }
        if self.tails.get(path).is_some_and(|t| seen.len > t.offset) {
            self.read(path)?;
        }
        let written = meta.modified().unwrap_or(SystemTime::now());
        if let Some(t) = self.tails.get_mut(path) {
            t.written = written;
        }
        // A session waiting for its subagent (a blocking `task` call can take long) writes
        // nothing meanwhile: it is as recent as its most recent subagent.
        let children = path.with_extension("");
        let latest = self
            .tails
            .iter()
            .filter(|(p, _)| p.starts_with(&children))
            .map(|(_, t)| t.written)
            .fold(written, SystemTime::max);
        let idle = SystemTime::now()
            .duration_since(latest)
            .is_ok_and(|age| age >= self.w.idle_close);
        let ended = self.tails.get(path).is_some_and(|t| {
            let m = t.front.mapper();
            t.offset == seen.len && (t.complete || (m.stats.sessions > 0 && m.idle()))
        });
        if ended {
            self.end(path, Ending::Ended)?;
        } else if idle {
            self.end(path, Ending::Idle)?;
        }
        Ok(())
    }

    /// Begin following `path` from its start.
    fn start(&mut self, path: &Path, tracked: Option<Tracked>) -> Result<()> {
        let Ok(Some(file)) = SessionFile::at(path) else {
            return Ok(());
        };
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(());
        };
        let nest = match &file.parent {
            Some(p) => {
                let info = match self.tails.get(p) {
                    Some(t) => backfill::parent_info(t.front.mapper(), t.nest.as_ref()),
                    None => backfill::read_parent(
                        p,
                        &self.inert,
                        self.cfg,
                        self.map_cfg,
                        (self.down.out.encoder, self.down.out.sanitizer),
                    ),
                };
                info.and_then(|i| backfill::nest_under(&i, &file))
            }
            None => None,
        };
        self.summary.sources += 1;
        self.known.remove(path);
        // A session that has ended already (its last line is `session_exit`) is read whole,
        // as pipe and backfill read it: the same observations, and one trace name on all
        // of them. One still being written is read entry by entry as it grows.
        let complete = ends_with_exit(path);
        let mapper = Mapper::with_nest(self.map_cfg.clone(), nest.clone());
        let name = path.display().to_string();
        let front = if complete {
            Front::new(name, Some(crate::decode::omp::Format::SessionLog), mapper)
        } else {
            Front::appended_log(name, mapper)
        };
        self.tails.insert(
            path.to_path_buf(),
            Tail {
                file,
                inode: inode(&meta),
                offset: 0,
                lines: 0,
                front,
                complete,
                nest,
                tracked: tracked.unwrap_or_default(),
                written: meta.modified().unwrap_or(SystemTime::now()),
            },
        );
        Ok(())
    }

    /// Read the complete lines appended since the last read, through the front half (a
    /// last line still being written waits for its newline).
    fn read(&mut self, path: &Path) -> Result<()> {
        let Some(t) = self.tails.get_mut(path) else {
            return Ok(());
        };
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(_) => return Ok(()),
        };
        if file.seek(SeekFrom::Start(t.offset)).is_err() {
            return Ok(());
        }
        let start = t.offset;
        let mut lines = Lines::resume(file, t.lines);
        loop {
            let before = lines.consumed();
            match lines.next_line()? {
                Next::Eof => break,
                // Not complete yet: read again from its start once its newline is there.
                Next::Line(line) if !line.terminated => {
                    t.offset = start + before;
                    break;
                }
                Next::Line(line) => {
                    t.lines = line.number;
                    t.front.line(&line, self.down, self.summary)?;
                }
                Next::TooLong { number } => {
                    t.lines = number;
                    t.front.too_long(number, self.summary);
                }
            }
            t.offset = start + lines.consumed();
        }
        if let Some(d) = self.delivery {
            let more = d.take_tracked();
            t.tracked.keys.extend(more.keys);
            t.tracked.lost |= more.lost;
        }
        Ok(())
    }

    /// Stop following `path`: close what is open, mark it complete once delivered.
    fn end(&mut self, path: &Path, how: Ending) -> Result<()> {
        let Some(mut t) = self.tails.remove(path) else {
            return Ok(());
        };
        t.front.finish(self.down, self.summary)?;
        if let Some(d) = self.delivery {
            let more = d.take_tracked();
            t.tracked.keys.extend(more.keys);
            t.tracked.lost |= more.lost;
            if how != Ending::Gone && self.cfg.sampled_in(&t.file.root_session) {
                d.complete_when_delivered(&t.file.root_session, &t.file.mark, t.offset, t.tracked);
            }
            // Forget its keys once delivered, unless another file of the session is followed.
            let root = &t.file.root_session;
            if !self.tails.values().any(|o| &o.file.root_session == root) {
                d.release(root);
            }
        }
        if how != Ending::Gone
            && let Ok(meta) = std::fs::metadata(path)
        {
            self.known.insert(
                path.to_path_buf(),
                Seen {
                    len: meta.len(),
                    inode: inode(&meta),
                },
            );
        }
        Ok(())
    }
}

/// Bytes read from a file's end to find its last line.
const TAIL_PROBE_BYTES: u64 = 64 * 1024;

/// Whether a session file's last complete line is omp's `session_exit` entry.
fn ends_with_exit(path: &Path) -> bool {
    use std::io::Read;
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let from = len.saturating_sub(TAIL_PROBE_BYTES);
    let mut tail = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.read_to_end(&mut tail).is_err() {
        return false;
    }
    let Some(body) = tail.strip_suffix(b"\n") else {
        return false;
    };
    let last = body.rsplit(|b| *b == b'\n').next().unwrap_or_default();
    memchr::memmem::find(last, br#""customType":"session_exit""#).is_some()
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

/// Without inodes, a rewrite shows as a change of creation time.
#[cfg(not(unix))]
fn inode(meta: &std::fs::Metadata) -> (u64, u64) {
    let created = meta
        .created()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    (0, created)
}
