//! The delivery ledger: which item keys each session has already delivered, so re-reading the
//! same input (a re-run, a resumed session, a spool replay) sends nothing twice.
//!
//! Langfuse v4 stores a re-sent span id as a second row, so "at least once" is not enough.
//! Layout: one append-only file per session (`<ledger dir>/<session>.keys`, one key a line).
//! A session's file is read only when that session first shows up, so memory grows with the
//! sessions in this input, not with history; each key is written once, so a file grows with
//! the observations of its session (≈17 bytes each) and files untouched for
//! `RETENTION` are pruned. Appends are flushed per batch and fsynced at the end; a torn last
//! line after a crash can only fail to match, never match the wrong key.
//!
//! Beside the keys, `<session>.done` lists the input files of the session that were read to
//! their end and delivered in full (`<length>\t<name>` a line), so `backfill` and `watch`
//! skip such a file without opening it until it grows. A file's mark is written once every
//! item read from it is delivered; sessions can be released from memory after that, which
//! keeps memory and open files constant over thousands of sessions.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::encode::Item;

/// File name extension of a session's key list.
const KEYS_EXT: &str = "keys";
/// File name extension of a session's list of completely delivered input files.
const DONE_EXT: &str = "done";
/// File name extension of a session's lock: held (an OS file lock) by the one process
/// delivering the session, so two runs on one state directory never both send it.
const LOCK_EXT: &str = "lock";
/// Session files not written for this long are deleted at start-up. Re-sending a session
/// this old re-delivers it; keeping every session forever would grow without bound.
pub const RETENTION: Duration = Duration::from_secs(180 * 24 * 3600);
/// Longest session id used verbatim as a file name; longer or unusual ids are hashed.
const MAX_PLAIN_NAME: usize = 120;

/// Whether earlier deliveries are honoured (`--resend` turns this off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResendPolicy {
    /// Skip what an earlier run delivered.
    #[default]
    SkipDelivered,
    /// Send everything again (within this run, still once).
    SendAgain,
}

/// The answer to "may I send this item?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Not seen before: it is now claimed by the caller.
    Fresh,
    /// An earlier run delivered it.
    Delivered,
    /// This run already has it (queued, in flight, delivered or spooled).
    Duplicate,
    /// Another process is delivering this session (it holds the session's lock).
    Busy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// Delivered by an earlier run (read from the file).
    Earlier,
    /// Claimed by this run, not delivered yet.
    Now,
    /// Delivered by this run.
    Sent,
}

/// An input file whose completion mark waits for its items to be delivered.
struct Pending {
    /// The session whose `.done` list gets the mark.
    session: Arc<str>,
    name: String,
    len: u64,
    /// (session, key) of its items not delivered yet.
    outstanding: HashSet<(Arc<str>, Box<str>)>,
}

#[derive(Default)]
struct Session {
    keys: HashMap<Box<str>, Mark>,
    /// Append handle, opened on first delivery.
    file: Option<File>,
    /// Whether a write since the last sync needs an fsync.
    dirty: bool,
}

/// Per-session delivered keys, backed by files under one directory.
pub struct Ledger {
    dir: PathBuf,
    policy: ResendPolicy,
    sessions: HashMap<Arc<str>, Session>,
    pending: Vec<Pending>,
    /// Sessions to drop from memory once nothing of theirs is pending.
    release_later: HashSet<Arc<str>>,
    /// The locks of the sessions this process delivers.
    locks: HashMap<Arc<str>, File>,
}

impl Ledger {
    /// Open (and create) the ledger directory; prune session files past `RETENTION`.
    pub fn open(dir: &Path, policy: ResendPolicy) -> io::Result<Ledger> {
        crate::deliver::private_dir(dir)?;
        prune(dir, SystemTime::now());
        Ok(Ledger {
            dir: dir.to_path_buf(),
            policy,
            sessions: HashMap::new(),
            pending: Vec::new(),
            release_later: HashSet::new(),
            locks: HashMap::new(),
        })
    }

    /// Whether this process delivers `session`: it holds the session's lock, or takes it
    /// now (without waiting). Held until the session is released or the process ends.
    pub fn own(&mut self, session: &str) -> bool {
        if self.locks.contains_key(session) {
            return true;
        }
        let path = self.dir.join(file_name_ext(session, LOCK_EXT));
        let file = crate::deliver::private_file(&mut OpenOptions::new())
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path);
        match file {
            Ok(f) => match f.try_lock() {
                Ok(()) => {
                    // Keys another process wrote before letting go are read afresh.
                    self.sessions.remove(session);
                    self.locks.insert(session.into(), f);
                    true
                }
                Err(fs::TryLockError::WouldBlock) => false,
                // A file system without locks: deliver as before.
                Err(fs::TryLockError::Error(_)) => true,
            },
            Err(_) => true,
        }
    }

    /// How many session locks this process holds (one open file each).
    pub fn held(&self) -> usize {
        self.locks.len()
    }

    /// Claim `key` for sending, unless it was delivered before, is already claimed, or its
    /// session is another process's.
    pub fn claim(&mut self, session: &Arc<str>, key: &str) -> Claim {
        if !self.own(session) {
            return Claim::Busy;
        }
        let s = self.session(session);
        match s.keys.get(key) {
            Some(Mark::Earlier) => Claim::Delivered,
            Some(Mark::Now | Mark::Sent) => Claim::Duplicate,
            None => {
                s.keys.insert(key.into(), Mark::Now);
                Claim::Fresh
            }
        }
    }

    /// Record items as delivered (appends their keys to their sessions' files).
    pub fn record(&mut self, items: &[Item]) -> io::Result<()> {
        let mut by_session: HashMap<&Arc<str>, String> = HashMap::new();
        for item in items {
            // A key with a line break cannot be stored one-per-line; it just won't dedupe.
            if item.key.contains(['\n', '\r']) {
                continue;
            }
            let lines = by_session.entry(&item.session_id).or_default();
            lines.push_str(&item.key);
            lines.push('\n');
        }
        let mut result = Ok(());
        for (session, lines) in by_session {
            let path = self.dir.join(file_name(session));
            // A session its reader is done with keeps no file open between batches: a
            // backfill reads far ahead of delivery, and one open file per session in flight
            // would grow with the sessions (not fsynced at the end; see `release`).
            let transient = self.release_later.contains(session);
            let s = self.session(session);
            for key in lines.lines() {
                s.keys.insert(key.into(), Mark::Sent);
            }
            if s.file.is_none() {
                let mut opts = OpenOptions::new();
                crate::deliver::private_file(&mut opts);
                match opts.create(true).append(true).open(&path) {
                    Ok(f) => s.file = Some(f),
                    Err(e) => {
                        result = Err(e);
                        continue;
                    }
                }
            }
            if let Some(f) = s.file.as_mut() {
                // One write per session per batch: appends of whole lines stay whole.
                if let Err(e) = f.write_all(lines.as_bytes()) {
                    result = Err(e);
                }
                s.dirty = true;
            }
            if transient {
                s.file = None;
                s.dirty = false;
            }
        }
        if !self.pending.is_empty() {
            for item in items {
                let id = (item.session_id.clone(), Box::<str>::from(item.key.as_str()));
                for p in &mut self.pending {
                    p.outstanding.remove(&id);
                }
            }
            self.settle();
        }
        result
    }

    /// The length at which `name` was marked completely delivered in `session`'s list, if
    /// it was (always `None` with `--resend`). Reads only that small list.
    pub fn done_len(&self, session: &str, name: &str) -> Option<u64> {
        if self.policy == ResendPolicy::SendAgain {
            return None;
        }
        let text = fs::read_to_string(self.dir.join(file_name_ext(session, DONE_EXT))).ok()?;
        text.lines()
            .filter_map(|l| l.split_once('\t'))
            .filter(|(_, n)| *n == name)
            .filter_map(|(len, _)| len.parse().ok())
            .next_back()
    }

    /// Mark input file `name` (of `len` bytes) of `session` complete once every item in
    /// `keys` (session, key) is delivered: now if they all are, else when the last one is.
    pub fn complete_when_delivered(
        &mut self,
        session: &Arc<str>,
        name: &str,
        len: u64,
        keys: Vec<(Arc<str>, String)>,
    ) {
        if name.contains(['\n', '\r']) {
            return;
        }
        let mut outstanding = HashSet::new();
        for (sid, key) in keys {
            let delivered = matches!(
                self.session(&sid).keys.get(key.as_str()),
                Some(Mark::Earlier | Mark::Sent)
            );
            if !delivered {
                outstanding.insert((sid, key.into_boxed_str()));
            }
        }
        self.pending.push(Pending {
            session: session.clone(),
            name: name.to_string(),
            len,
            outstanding,
        });
        self.settle();
    }

    /// Forget a session's keys (and close its file) once nothing of it is pending: the next
    /// use reads them again. Bounds memory and open files over many sessions.
    pub fn release(&mut self, session: &Arc<str>) {
        let busy = self
            .pending
            .iter()
            .any(|p| p.outstanding.iter().any(|(s, _)| s == session));
        if busy {
            self.release_later.insert(session.clone());
        } else {
            // Written already; the end-of-run fsync covers only sessions still held, and a
            // lost append can only make a later run send an item again.
            self.sessions.remove(session);
            self.release_later.remove(session);
            // Unlocked: another process may deliver it now.
            self.locks.remove(&**session);
        }
    }

    /// Write the marks of pending files that have nothing outstanding any more.
    fn settle(&mut self) {
        let (done, waiting): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.outstanding.is_empty());
        self.pending = waiting;
        for p in done {
            let path = self.dir.join(file_name_ext(&p.session, DONE_EXT));
            // Best effort: without the mark the file is read again, and the keys skip it all.
            let _ = crate::deliver::private_file(&mut OpenOptions::new())
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(format!("{}\t{}\n", p.len, p.name).as_bytes()));
        }
        if !self.release_later.is_empty() {
            let later: Vec<Arc<str>> = self.release_later.iter().cloned().collect();
            for s in later {
                self.release(&s);
            }
        }
    }

    /// Make every record so far durable.
    pub fn sync(&mut self) -> io::Result<()> {
        let mut result = Ok(());
        for s in self.sessions.values_mut() {
            if let (Some(f), true) = (s.file.as_ref(), s.dirty) {
                if let Err(e) = f.sync_data() {
                    result = Err(e);
                }
                s.dirty = false;
            }
        }
        result
    }

    /// The session's entry, loading its file on first use.
    fn session(&mut self, session: &Arc<str>) -> &mut Session {
        match self.sessions.entry(session.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let mut s = Session::default();
                if self.policy == ResendPolicy::SkipDelivered {
                    load(&self.dir.join(file_name(session)), &mut s);
                }
                e.insert(s)
            }
        }
    }
}

/// Read a session's delivered keys. A missing or unreadable file means "nothing delivered":
/// the worst case is a duplicate, never a loss.
fn load(path: &Path, s: &mut Session) {
    let Ok(f) = File::open(path) else { return };
    for line in BufReader::new(f).lines() {
        let Ok(line) = line else { break };
        let key = line.trim_end_matches('\r');
        if !key.is_empty() {
            s.keys.insert(key.into(), Mark::Earlier);
        }
    }
}

/// A file name for a session id: the id itself when it is plain, else a stable digest.
fn file_name(session: &str) -> String {
    file_name_ext(session, KEYS_EXT)
}

fn file_name_ext(session: &str, ext: &str) -> String {
    let plain = !session.is_empty()
        && session.len() <= MAX_PLAIN_NAME
        && !session.starts_with('.')
        && session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if plain {
        format!("{session}.{ext}")
    } else {
        format!(
            "x-{}.{ext}",
            crate::model::envelope_id(&["ledger-session", session])
        )
    }
}

/// Delete session files not modified within `RETENTION` of `now`. Best effort.
fn prune(dir: &Path, now: SystemTime) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some(KEYS_EXT | DONE_EXT)
        ) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > RETENTION);
        if old {
            let _ = fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(session: &str, key: &str) -> Item {
        Item {
            session_id: session.into(),
            key: key.into(),
            json: b"{}".to_vec(),
            trace_tag: None,
        }
    }

    #[test]
    fn claims_are_once_per_run_and_records_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<str> = "sess-1".into();
        let mut l = Ledger::open(dir.path(), ResendPolicy::SkipDelivered).unwrap();
        assert_eq!(l.claim(&s, "a"), Claim::Fresh);
        assert_eq!(l.claim(&s, "a"), Claim::Duplicate);
        assert_eq!(l.claim(&s, "b"), Claim::Fresh);
        l.record(&[item("sess-1", "a")]).unwrap();
        l.sync().unwrap();
        drop(l);

        let mut l = Ledger::open(dir.path(), ResendPolicy::SkipDelivered).unwrap();
        assert_eq!(l.claim(&s, "a"), Claim::Delivered);
        // "b" was claimed but never delivered: the next run may send it.
        assert_eq!(l.claim(&s, "b"), Claim::Fresh);
        assert_eq!(l.claim(&"other".into(), "a"), Claim::Fresh);
        // Another ledger on the same directory (another process) finds the session taken.
        let mut busy = Ledger::open(dir.path(), ResendPolicy::SendAgain).unwrap();
        assert_eq!(busy.claim(&s, "a"), Claim::Busy);
        drop(l);

        assert_eq!(busy.claim(&s, "a"), Claim::Fresh);
        assert_eq!(busy.claim(&s, "a"), Claim::Duplicate);
    }

    #[test]
    fn files_are_marked_done_once_their_items_are_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<str> = "sess-1".into();
        let mut l = Ledger::open(dir.path(), ResendPolicy::SkipDelivered).unwrap();
        assert_eq!(l.claim(&s, "a"), Claim::Fresh);
        assert_eq!(l.claim(&s, "b"), Claim::Fresh);
        l.record(&[item("sess-1", "a")]).unwrap();
        let keys = vec![(s.clone(), "a".to_string()), (s.clone(), "b".to_string())];
        l.complete_when_delivered(&s, "f.jsonl", 42, keys);
        l.release(&s);
        assert_eq!(
            l.done_len("sess-1", "f.jsonl"),
            None,
            "b is still in flight"
        );
        assert!(l.sessions.contains_key(&s), "not released while pending");
        l.record(&[item("sess-1", "b")]).unwrap();
        assert_eq!(l.done_len("sess-1", "f.jsonl"), Some(42));
        assert!(!l.sessions.contains_key(&s), "released once settled");
        assert_eq!(l.claim(&s, "a"), Claim::Delivered, "reloaded from its file");
        // Nothing to deliver: marked at once; a later mark of the same name wins.
        l.complete_when_delivered(&s, "f.jsonl", 50, Vec::new());
        assert_eq!(l.done_len("sess-1", "f.jsonl"), Some(50));
        assert_eq!(l.done_len("sess-1", "other.jsonl"), None);
        let again = Ledger::open(dir.path(), ResendPolicy::SendAgain).unwrap();
        assert_eq!(
            again.done_len("sess-1", "f.jsonl"),
            None,
            "--resend ignores marks"
        );
    }

    #[test]
    fn odd_session_ids_get_safe_file_names() {
        assert_eq!(file_name("01a02de5-fc05"), "01a02de5-fc05.keys");
        for odd in ["../../etc/passwd", "a/b", "", ".hidden", &"x".repeat(500)] {
            let n = file_name(odd);
            assert!(n.starts_with("x-") && !n.contains('/'), "{n}");
        }
        assert_ne!(file_name("a/b"), file_name("a/c"));
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path(), ResendPolicy::SkipDelivered).unwrap();
        l.record(&[item("a/b", "k1")]).unwrap();
        drop(l);
        let mut l = Ledger::open(dir.path(), ResendPolicy::SkipDelivered).unwrap();
        assert_eq!(l.claim(&"a/b".into(), "k1"), Claim::Delivered);
    }

    #[test]
    fn a_torn_last_line_only_fails_to_match() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("s.keys"), "aaaa\nbbbb\ncc").unwrap();
        let mut l = Ledger::open(dir.path(), ResendPolicy::SkipDelivered).unwrap();
        let s: Arc<str> = "s".into();
        assert_eq!(l.claim(&s, "aaaa"), Claim::Delivered);
        assert_eq!(l.claim(&s, "cccc"), Claim::Fresh);
    }

    #[test]
    fn stale_session_files_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("old.keys"), "k\n").unwrap();
        fs::write(dir.path().join("keep.txt"), "k\n").unwrap();
        prune(
            dir.path(),
            SystemTime::now() + RETENTION + Duration::from_secs(60),
        );
        assert!(!dir.path().join("old.keys").exists());
        assert!(dir.path().join("keep.txt").exists());
        fs::write(dir.path().join("new.keys"), "k\n").unwrap();
        prune(dir.path(), SystemTime::now());
        assert!(dir.path().join("new.keys").exists());
    }
}
