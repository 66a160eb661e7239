//! The spool: encoded items not delivered yet, kept on disk in the state directory and sent
//! first by the next run. It is also the overflow of a live run: when the in-memory queue is
//! full or the server is down, items go here and the worker pulls them back when it can.
//!
//! Layout: `<spool dir>/<wire>-<run id>.jsonl` segments, one item a line
//! (`{"s":session,"k":key,"i":<item json>}`). Each run appends to its own segment and holds
//! an exclusive lock on it; at start-up a run claims the segments nobody holds a lock on
//! (so two runs sharing a state directory never replay the same segment) and deletes them
//! only after it has durably written whatever of them it did not deliver. A crash at any
//! point leaves at worst items spooled twice; the ledger filters those on replay.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::encode::{Item, Wire};

/// Segment file extension.
const SEGMENT_EXT: &str = "jsonl";
/// Bytes copied per read when moving leftovers between segments.
const COPY_CHUNK: usize = 64 * 1024;
/// Where damaged spool segments are moved, inside the spool directory.
const QUARANTINE: &str = "quarantine";

/// Whether to send what earlier runs left (`--no-replay` turns this off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Replay {
    #[default]
    Yes,
    No,
}

/// Where a pulled item comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A segment left by an earlier run: check the ledger before sending it.
    EarlierRun,
    /// Spilled by this run: it was claimed when it was first offered.
    ThisRun,
}

/// Items on disk for one wire format.
pub struct Spool {
    dir: PathBuf,
    wire: Wire,
    run_id: String,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Claimed segments of earlier runs, oldest first, not yet read to the end.
    old: VecDeque<OldSegment>,
    /// Claimed segments read to the end: deleted at `finish`.
    done: Vec<OldSegment>,
    /// This run's segment, created on first write.
    own: Option<Own>,
    /// Lines that could not be read back (torn by a crash).
    bad_lines: u64,
    finished: bool,
}

struct OldSegment {
    path: PathBuf,
    /// Holds the lock for as long as this run owns the segment.
    reader: BufReader<File>,
    /// Whether any line was read (an untouched segment is left as it is).
    touched: bool,
    /// Lines of it that could not be read back: a damaged segment goes to `quarantine/`
    /// once read, instead of being deleted.
    bad: u64,
}

struct Own {
    path: PathBuf,
    /// Append handle; holds the lock.
    writer: File,
    /// Separate read handle (its own file offset).
    reader: BufReader<File>,
    written: u64,
    read: u64,
    /// Lines written and not read back yet.
    pending: u64,
}

#[derive(Deserialize)]
struct Line<'a> {
    s: &'a str,
    k: &'a str,
    #[serde(borrow)]
    i: &'a RawValue,
}

impl Spool {
    /// Open the spool directory; with `Replay::Yes`, claim the unlocked segments earlier
    /// runs left for this wire format.
    pub fn open(dir: &Path, wire: Wire, replay: Replay) -> io::Result<Spool> {
        crate::deliver::private_dir(dir)?;
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        // Time (for replay order), process, and a per-process counter: two spools opened in
        // the same millisecond by one process must never share file names.
        static OPENED: AtomicU64 = AtomicU64::new(0);
        let run_id = format!(
            "{millis:016}-{:010}-{}",
            std::process::id(),
            OPENED.fetch_add(1, Ordering::Relaxed)
        );
        let mut inner = Inner::default();
        if replay == Replay::Yes {
            for path in segments(dir, wire)? {
                let Ok(file) = File::open(&path) else {
                    continue;
                };
                // Held by a live run (or ours from a previous spool in this process): skip.
                if file.try_lock().is_err() {
                    continue;
                }
                // It may have been deleted between listing and locking by its owner.
                if !path.exists() {
                    continue;
                }
                inner.old.push_back(OldSegment {
                    path,
                    reader: BufReader::new(file),
                    touched: false,
                    bad: 0,
                });
            }
        }
        Ok(Spool {
            dir: dir.to_path_buf(),
            wire,
            run_id,
            inner: Mutex::new(inner),
        })
    }

    /// Append items to this run's segment.
    pub fn push(&self, items: &[Item]) -> io::Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(items.iter().map(|i| i.json.len() + 64).sum());
        for item in items {
            encode_line(item, &mut buf);
        }
        let mut inner = self.lock();
        if inner.own.is_none() {
            inner.own = Some(self.create_own()?);
        }
        let own = inner.own.as_mut().expect("own segment");
        own.writer.write_all(&buf)?;
        own.written += buf.len() as u64;
        own.pending += items.len() as u64;
        Ok(())
    }

    /// Whether anything is left to pull.
    pub fn has_pending(&self) -> bool {
        let inner = self.lock();
        !inner.old.is_empty() || inner.own.as_ref().is_some_and(|o| o.pending > 0)
    }

    /// Take up to `max_items` items (and about `max_bytes` of item JSON), earlier runs first.
    pub fn pull(&self, max_items: usize, max_bytes: usize) -> io::Result<Vec<(Item, Origin)>> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut inner = self.lock();
        // Bytes, not text: a line torn inside a character or random bytes are one bad
        // line, never an error that would block the destination for every later run.
        let mut line = Vec::new();
        while out.len() < max_items && bytes < max_bytes {
            let Some(seg) = inner.old.front_mut() else {
                break;
            };
            line.clear();
            let n = seg.reader.read_until(b'\n', &mut line)?;
            seg.touched = true;
            if n == 0 {
                let done = inner.old.pop_front().expect("front");
                inner.done.push(done);
                continue;
            }
            match decode_bytes(&line) {
                Some(item) => {
                    bytes += item.json.len();
                    out.push((item, Origin::EarlierRun));
                }
                None => {
                    seg.bad += 1;
                    inner.bad_lines += 1;
                }
            }
        }
        let mut bad = 0;
        if let Some(own) = inner.own.as_mut() {
            while out.len() < max_items && bytes < max_bytes && own.read < own.written {
                line.clear();
                let n = own.reader.read_until(b'\n', &mut line)?;
                if n == 0 {
                    break;
                }
                own.read += n as u64;
                own.pending = own.pending.saturating_sub(1);
                match decode_bytes(&line) {
                    Some(item) => {
                        bytes += item.json.len();
                        out.push((item, Origin::ThisRun));
                    }
                    None => bad += 1,
                }
            }
        }
        inner.bad_lines += bad;
        Ok(out)
    }

    /// Visit the (session, key) of every item in the claimed segments of earlier runs,
    /// without consuming them (so the caller can claim them before new input arrives).
    pub fn scan_earlier(&self, mut f: impl FnMut(&str, &str)) -> io::Result<()> {
        let paths: Vec<PathBuf> = self.lock().old.iter().map(|s| s.path.clone()).collect();
        let mut line = Vec::new();
        for path in paths {
            let mut r = BufReader::new(File::open(&path)?);
            loop {
                line.clear();
                if r.read_until(b'\n', &mut line)? == 0 {
                    break;
                }
                if !line.ends_with(b"\n") {
                    continue;
                }
                if let Ok(l) = serde_json::from_slice::<Line<'_>>(line.trim_ascii_end()) {
                    f(l.s, l.k);
                }
            }
        }
        Ok(())
    }

    /// Lines that could not be read back.
    pub fn bad_lines(&self) -> u64 {
        self.lock().bad_lines
    }

    /// Make the spool durable for the next run and release claimed segments. Returns how
    /// many items are left spooled (this run's and untouched earlier ones). Idempotent.
    pub fn finish(&self) -> io::Result<u64> {
        let mut inner = self.lock();
        if inner.finished {
            return Ok(0);
        }
        inner.finished = true;
        let mut left = 0u64;
        // Leftovers of partly read earlier segments move into ours, so those can go.
        let mut partly = Vec::new();
        let mut untouched = Vec::new();
        for seg in std::mem::take(&mut inner.old) {
            if seg.touched {
                partly.push(seg);
            } else {
                untouched.push(seg);
            }
        }
        for seg in &mut partly {
            if inner.own.is_none() {
                inner.own = Some(self.create_own()?);
            }
            let own = inner.own.as_mut().expect("own segment");
            let (bytes, lines) = copy_rest(&mut seg.reader, &mut own.writer)?;
            own.written += bytes;
            own.pending += lines;
        }
        if let Some(mut own) = inner.own.take() {
            left += own.pending;
            if own.pending == 0 {
                fs::remove_file(&own.path)?;
            } else if own.read > 0 {
                // Drop the consumed head: copy the rest to a locked temp file, then rename
                // it over the segment (atomic), so the next run replays only what is left.
                let (tmp_path, mut tmp) = self.locked_temp("compact")?;
                own.reader.seek(SeekFrom::Start(own.read))?;
                copy_rest(&mut own.reader, &mut tmp)?;
                tmp.sync_all()?;
                fs::rename(&tmp_path, &own.path)?;
            } else {
                own.writer.sync_all()?;
            }
        }
        for seg in partly.into_iter().chain(std::mem::take(&mut inner.done)) {
            if seg.bad == 0 {
                fs::remove_file(&seg.path)?;
                continue;
            }
            // Damaged: its good items were delivered (or moved into ours); keep the file
            // aside for inspection, out of every later run's way.
            let aside = self.dir.join(QUARANTINE);
            crate::deliver::private_dir(&aside)?;
            let name = seg.path.file_name().unwrap_or_default();
            fs::rename(&seg.path, aside.join(name))?;
            crate::messages::warn(&format!(
                "{}: {} that could not be read back; moved to {}",
                seg.path.display(),
                crate::messages::plural(seg.bad, "spool line"),
                aside.display()
            ));
        }
        for mut seg in untouched {
            left += count_lines(&mut seg.reader)?;
        }
        sync_dir(&self.dir);
        Ok(left)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every write is whole).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Create this run's segment: locked under a temp name first, so no other run can claim
    /// it in between, then renamed into place.
    fn create_own(&self) -> io::Result<Own> {
        let (tmp_path, writer) = self.locked_temp("new")?;
        let path = self.dir.join(format!(
            "{}-{}.{SEGMENT_EXT}",
            wire_name(self.wire),
            self.run_id
        ));
        fs::rename(&tmp_path, &path)?;
        let reader = BufReader::new(File::open(&path)?);
        Ok(Own {
            path,
            writer,
            reader,
            written: 0,
            read: 0,
            pending: 0,
        })
    }

    fn locked_temp(&self, what: &str) -> io::Result<(PathBuf, File)> {
        let path = self.dir.join(format!(
            ".{}-{}.{what}.tmp",
            wire_name(self.wire),
            self.run_id
        ));
        let file = crate::deliver::private_file(&mut OpenOptions::new())
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        file.try_lock().map_err(|e| match e {
            fs::TryLockError::Error(e) => e,
            fs::TryLockError::WouldBlock => io::Error::other("spool segment is locked"),
        })?;
        Ok((path, file))
    }
}

/// An item as one spool line.
fn encode_line(item: &Item, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"s\":");
    serde_json::to_writer(&mut *out, &*item.session_id).expect("string json");
    out.extend_from_slice(b",\"k\":");
    serde_json::to_writer(&mut *out, &item.key).expect("string json");
    out.extend_from_slice(b",\"i\":");
    // Raw line breaks in JSON can only be whitespace between tokens (strings escape them),
    // so replacing them keeps the item's meaning and the one-item-per-line format.
    out.extend(
        item.json
            .iter()
            .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
    );
    out.extend_from_slice(b"}\n");
}

/// A spool line's item; `None` for bytes that are not one (not UTF-8, torn, bogus).
fn decode_bytes(line: &[u8]) -> Option<Item> {
    decode_line(std::str::from_utf8(line).ok()?)
}

/// A spool line back to an item; `None` for a torn or foreign line.
fn decode_line(line: &str) -> Option<Item> {
    if !line.ends_with('\n') {
        return None;
    }
    let l: Line<'_> = serde_json::from_str(line.trim_end()).ok()?;
    Some(Item {
        session_id: l.s.into(),
        key: l.k.to_owned(),
        json: l.i.get().as_bytes().to_vec(),
        trace_tag: None,
    })
}

fn wire_name(wire: Wire) -> &'static str {
    match wire {
        Wire::Otlp => "otlp",
        Wire::Ingestion => "ingestion",
    }
}

/// Segments of `wire` in `dir`, oldest first (names start with a zero-padded time).
fn segments(dir: &Path, wire: Wire) -> io::Result<Vec<PathBuf>> {
    let prefix = format!("{}-", wire_name(wire));
    let mut out: Vec<PathBuf> = fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()) == Some(SEGMENT_EXT)
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Copy the rest of `from` to `to`; returns (bytes, complete lines).
fn copy_rest(from: &mut BufReader<File>, to: &mut File) -> io::Result<(u64, u64)> {
    let mut buf = vec![0u8; COPY_CHUNK];
    let (mut bytes, mut lines) = (0u64, 0u64);
    let mut last = b'\n';
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n])?;
        bytes += n as u64;
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    if last != b'\n' {
        // A torn tail: end it so the next line starts clean (it will be skipped as bad).
        to.write_all(b"\n")?;
        bytes += 1;
    }
    Ok((bytes, lines))
}

fn count_lines(from: &mut BufReader<File>) -> io::Result<u64> {
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut lines = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(lines);
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

/// fsync a directory so renames and deletions in it are durable. Best effort (not every
/// platform can open a directory).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: usize) -> Item {
        Item {
            session_id: "s/1".into(),
            key: format!("k{n}"),
            json: format!("{{\"n\":{n},\"text\":\"line\\nbreak\"}}").into_bytes(),
            trace_tag: None,
        }
    }

    fn keys(pulled: &[(Item, Origin)]) -> Vec<String> {
        pulled.iter().map(|(i, _)| i.key.clone()).collect()
    }

    #[test]
    fn lines_round_trip_byte_exact() {
        let mut buf = Vec::new();
        let it = item(7);
        encode_line(&it, &mut buf);
        let back = decode_line(std::str::from_utf8(&buf).unwrap()).unwrap();
        assert_eq!(back, it);
        // Pretty-printed JSON stays one line.
        let pretty = Item {
            json: b"{\n  \"a\": 1\n}".to_vec(),
            ..item(1)
        };
        buf.clear();
        encode_line(&pretty, &mut buf);
        assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(
            &decode_line(std::str::from_utf8(&buf).unwrap())
                .unwrap()
                .json,
        )
        .unwrap();
        assert_eq!(v["a"], 1);
        assert!(decode_line("{\"s\":\"a\",\"k\":\"b\",\"i\":{").is_none());
    }

    #[test]
    fn overflow_is_pulled_back_in_order_within_a_run() {
        let dir = tempfile::tempdir().unwrap();
        let sp = Spool::open(dir.path(), Wire::Otlp, Replay::Yes).unwrap();
        assert!(!sp.has_pending());
        sp.push(&[item(1), item(2), item(3)]).unwrap();
        assert!(sp.has_pending());
        let got = sp.pull(2, usize::MAX).unwrap();
        assert_eq!(keys(&got), ["k1", "k2"]);
        assert!(got.iter().all(|(_, o)| *o == Origin::ThisRun));
        sp.push(&[item(4)]).unwrap();
        assert_eq!(keys(&sp.pull(10, usize::MAX).unwrap()), ["k3", "k4"]);
        assert!(!sp.has_pending());
        // Nothing left: the segment is removed.
        assert_eq!(sp.finish().unwrap(), 0);
        assert_eq!(segments(dir.path(), Wire::Otlp).unwrap().len(), 0);
    }

    #[test]
    fn leftovers_are_replayed_by_the_next_run_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = Spool::open(dir.path(), Wire::Otlp, Replay::Yes).unwrap();
        a.push(&[item(1), item(2), item(3)]).unwrap();
        assert_eq!(keys(&a.pull(1, usize::MAX).unwrap()), ["k1"]);
        assert_eq!(a.finish().unwrap(), 2);
        drop(a);

        // Another wire format does not see them.
        let other = Spool::open(dir.path(), Wire::Ingestion, Replay::Yes).unwrap();
        assert!(!other.has_pending());

        // --no-replay leaves them alone.
        let skip = Spool::open(dir.path(), Wire::Otlp, Replay::No).unwrap();
        assert!(!skip.has_pending());
        assert_eq!(skip.finish().unwrap(), 0);
        drop(skip);

        let b = Spool::open(dir.path(), Wire::Otlp, Replay::Yes).unwrap();
        let got = b.pull(1, usize::MAX).unwrap();
        assert_eq!(keys(&got), ["k2"]);
        assert_eq!(got[0].1, Origin::EarlierRun);
        // The unread rest of a touched segment moves into this run's segment.
        assert_eq!(b.finish().unwrap(), 1);
        drop(b);
        let c = Spool::open(dir.path(), Wire::Otlp, Replay::Yes).unwrap();
        assert_eq!(keys(&c.pull(10, usize::MAX).unwrap()), ["k3"]);
        assert_eq!(c.finish().unwrap(), 0);
        assert!(segments(dir.path(), Wire::Otlp).unwrap().is_empty());
    }

    #[test]
    fn a_segment_locked_by_a_live_run_is_not_claimed() {
        let dir = tempfile::tempdir().unwrap();
        let live = Spool::open(dir.path(), Wire::Otlp, Replay::Yes).unwrap();
        live.push(&[item(1)]).unwrap();
        let other = Spool::open(dir.path(), Wire::Otlp, Replay::Yes).unwrap();
        assert!(!other.has_pending());
        assert_eq!(live.finish().unwrap(), 1);
        drop(live);
        let later = Spool::open(dir.path(), Wire::Otlp, Replay::Yes).unwrap();
        assert!(later.has_pending());
    }

    #[test]
    fn untouched_and_torn_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut good = Vec::new();
        encode_line(&item(1), &mut good);
        let mut torn = good.clone();
        torn.extend_from_slice(b"{\"s\":\"x\",\"k\":\"y\",\"i\":{\"tr");
        fs::write(
            dir.path().join("otlp-0000000000000001-0000000001.jsonl"),
            &torn,
        )
        .unwrap();
        fs::write(
            dir.path().join("otlp-0000000000000002-0000000001.jsonl"),
            &good,
        )
        .unwrap();
        // Not ours: ignored.
        fs::write(dir.path().join("notes.txt"), "x").unwrap();

        let sp = Spool::open(dir.path(), Wire::Otlp, Replay::Yes).unwrap();
        let got = sp.pull(1, usize::MAX).unwrap();
        assert_eq!(keys(&got), ["k1"]);
        // Finish before reading on: the first (touched) segment's rest is only a torn line,
        // so nothing moves over and it is deleted; the second (untouched) stays as it is.
        assert_eq!(sp.finish().unwrap(), 1);
        drop(sp);
        let sp = Spool::open(dir.path(), Wire::Otlp, Replay::Yes).unwrap();
        let got = sp.pull(10, usize::MAX).unwrap();
        assert_eq!(keys(&got), ["k1"]);
        assert_eq!(sp.bad_lines(), 0);
        drop(sp);
        // Read to the end, a torn line is counted and skipped.
        fs::write(
            dir.path().join("otlp-0000000000000003-0000000001.jsonl"),
            &torn,
        )
        .unwrap();
        let sp = Spool::open(dir.path(), Wire::Otlp, Replay::Yes).unwrap();
        assert_eq!(sp.pull(10, usize::MAX).unwrap().len(), 2);
        assert_eq!(sp.bad_lines(), 1);
        assert_eq!(sp.finish().unwrap(), 0);
        assert!(dir.path().join("notes.txt").exists());
    }

    /// Bad bytes never block the destination: invalid UTF-8, a line torn inside a
    /// character and random bytes are skipped and counted, the good items around them are
    /// delivered, and the damaged segment is moved into `quarantine/` (reported once).
    #[test]
    fn a_damaged_segment_delivers_the_rest_and_goes_to_quarantine() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        encode_line(&item(1), &mut bytes);
        bytes.extend_from_slice(b"{\"s\":\"s\",\"k\":\"x\",\"i\":\"caf\xC3");
        bytes.extend_from_slice(b"\n\xFF\xFE garbage \x00\x01\n");
        encode_line(&item(2), &mut bytes);
        let seg = dir.path().join("otlp-0000000000000009-0000000001.jsonl");
        fs::write(&seg, &bytes).unwrap();
        let sp = Spool::open(dir.path(), Wire::Otlp, Replay::Yes).unwrap();
        let got = sp.pull(10, usize::MAX).unwrap();
        assert_eq!(keys(&got), ["k1", "k2"]);
        assert_eq!(sp.bad_lines(), 2);
        assert_eq!(sp.pull(10, usize::MAX).unwrap().len(), 0);
        assert_eq!(sp.finish().unwrap(), 0);
        assert!(!seg.exists());
        assert!(
            dir.path()
                .join("quarantine")
                .join(seg.file_name().unwrap())
                .exists()
        );
        // The next run has nothing to replay and no error.
        let sp = Spool::open(dir.path(), Wire::Otlp, Replay::Yes).unwrap();
        assert!(!sp.has_pending());
        assert_eq!(sp.finish().unwrap(), 0);
    }

    #[test]
    fn pull_respects_the_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        let sp = Spool::open(dir.path(), Wire::Otlp, Replay::Yes).unwrap();
        sp.push(&[item(1), item(2), item(3)]).unwrap();
        // The first item always comes; the budget stops after the one that crosses it.
        assert_eq!(sp.pull(10, 1).unwrap().len(), 1);
        assert_eq!(sp.pull(10, usize::MAX).unwrap().len(), 2);
    }
}
