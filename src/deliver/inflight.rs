//! Batches on their way. Before a request, its items (session, observation id, trace id) are
//! written to `<state>/inflight/<pid>-<n>.jsonl`, fsynced, and the file is held with an OS
//! lock; once the answer is in, the file is removed. A file found unlocked at start-up was
//! left by a run that died mid-request (`kill -9`, a power cut), or by one whose last answer
//! was lost (a timeout after the body went out): the server may or may not have stored
//! those observations. Start-up asks the server which it has (`reconcile` in `deliver`)
//! and marks those delivered in the ledger, so nothing is sent twice.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::encode::Item;

/// A record of a request on its way.
const RECORD_EXT: &str = "jsonl";
/// A record still being written (renamed to [`RECORD_EXT`] before the request goes out).
const PART_EXT: &str = "part";

/// The directory of in-flight records, inside a destination's state directory.
pub struct InFlight {
    dir: PathBuf,
    next: AtomicU64,
}

/// One item of a request on its way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The omp session (the ledger's unit).
    #[serde(rename = "s")]
    pub session: String,
    /// The item's key: the observation id.
    #[serde(rename = "k")]
    pub key: String,
    /// The trace the observation belongs to (what the server is asked by).
    #[serde(rename = "t")]
    pub trace: String,
}

/// A request's record: removed when dropped (the answer is in), unless kept.
pub struct Ticket {
    path: PathBuf,
    /// Open and locked while the request runs.
    file: Option<File>,
}

impl Ticket {
    /// Leave the record for the next run: the answer was lost, so the server may have the
    /// items although they were spooled (the lock is released; the file stays).
    pub fn keep(mut self) {
        self.file = None;
        self.path = PathBuf::new();
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A record a dead run left: where it is and what it held.
pub struct Stale {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

impl InFlight {
    pub fn open(dir: &Path) -> io::Result<InFlight> {
        super::private_dir(dir)?;
        Ok(InFlight {
            dir: dir.to_path_buf(),
            next: AtomicU64::new(0),
        })
    }

    /// Record `items` as being sent (durably: written and fsynced before this returns).
    /// Items whose trace id cannot be read are left out (they cannot be asked about).
    pub fn begin(&self, items: &[Item]) -> io::Result<Ticket> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{n}", std::process::id());
        // Written and locked under a name `stale` ignores, then renamed (the lock stays with
        // the file): another run never finds the record unlocked before it is whole.
        let part = self.dir.join(format!("{name}.{PART_EXT}"));
        let path = self.dir.join(format!("{name}.{RECORD_EXT}"));
        let mut text = String::new();
        for item in items {
            let Some(trace) = trace_id_of(&item.json) else {
                continue;
            };
            let entry = Entry {
                session: item.session_id.to_string(),
                key: item.key.clone(),
                trace: trace.to_string(),
            };
            text.push_str(&serde_json::to_string(&entry).map_err(io::Error::other)?);
            text.push('\n');
        }
        let mut opts = OpenOptions::new();
        super::private_file(&mut opts);
        let mut file = opts.create(true).write(true).truncate(true).open(&part)?;
        // From here on a failure removes the file again (the ticket's drop).
        let mut ticket = Ticket {
            path: part,
            file: None,
        };
        file.lock()?;
        file.write_all(text.as_bytes())?;
        file.sync_data()?;
        fs::rename(&ticket.path, &path)?;
        ticket.path = path;
        ticket.file = Some(file);
        Ok(ticket)
    }

    /// Records no live process holds: left by a run that stopped mid-request. A torn last
    /// line (a crash while writing) is skipped: that request never went out.
    pub fn stale(&self) -> Vec<Stale> {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in dir.flatten() {
            let path = e.path();
            let ext = path.extension().and_then(|x| x.to_str()).unwrap_or("");
            if ext != RECORD_EXT && ext != PART_EXT {
                continue;
            }
            let Ok(file) = File::open(&path) else {
                continue;
            };
            if file.try_lock().is_err() {
                continue; // its run is still sending
            }
            if ext == PART_EXT {
                // Its run died before the request went out: nothing to ask about.
                let _ = fs::remove_file(&path);
                continue;
            }
            let text = fs::read(&path).unwrap_or_default();
            let entries = text
                .split(|&b| b == b'\n')
                .filter_map(|line| serde_json::from_slice::<Entry>(line).ok())
                .collect();
            out.push(Stale { path, entries });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

/// The trace id a serialized item carries: an OTLP span's `traceId`, a legacy event's
/// `body.traceId` (the first `"traceId":"…"` either way).
pub(crate) fn trace_id_of(json: &[u8]) -> Option<&str> {
    const FIELD: &[u8] = br#""traceId":""#;
    let at = memchr::memmem::find(json, FIELD)? + FIELD.len();
    let len = json[at..].iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&json[at..at + len])
        .ok()
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn item(session: &str, key: &str, trace: &str) -> Item {
        Item {
            session_id: Arc::from(session),
            key: key.into(),
            json: format!(r#"{{"traceId":"{trace}","spanId":"{key}","name":"x"}}"#).into_bytes(),
            trace_tag: None,
        }
    }

    #[test]
    fn a_record_lives_while_its_request_runs_and_is_stale_only_when_left() {
        let dir = tempfile::tempdir().unwrap();
        let f = InFlight::open(&dir.path().join("inflight")).unwrap();
        let items = [item("s1", "aa01", "t1"), item("s1", "aa02", "t2")];
        let ticket = f.begin(&items).unwrap();
        // Held by this (live) request: not stale.
        assert!(f.stale().is_empty());
        drop(ticket);
        assert!(f.stale().is_empty(), "answered: removed");
        // The answer was lost: kept, and stale for the next run.
        f.begin(&items).unwrap().keep();
        let stale = f.stale();
        assert_eq!(stale.len(), 1);
        assert_eq!(
            stale[0].entries,
            vec![
                Entry {
                    session: "s1".into(),
                    key: "aa01".into(),
                    trace: "t1".into()
                },
                Entry {
                    session: "s1".into(),
                    key: "aa02".into(),
                    trace: "t2".into()
                },
            ]
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&stale[0].path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_torn_line_is_skipped_and_trace_ids_are_read_from_either_wire() {
        let dir = tempfile::tempdir().unwrap();
        let f = InFlight::open(dir.path()).unwrap();
        fs::write(
            dir.path().join("1-0.jsonl"),
            "{\"s\":\"a\",\"k\":\"b\",\"t\":\"c\"}\n{\"s\":\"a\",\"k\"",
        )
        .unwrap();
        assert_eq!(f.stale()[0].entries.len(), 1);
        // A record its run never finished writing: no request went out; removed.
        fs::write(
            dir.path().join("2-0.part"),
            "{\"s\":\"a\",\"k\":\"b\",\"t\":\"c\"}\n",
        )
        .unwrap();
        assert_eq!(f.stale().len(), 1);
        assert!(!dir.path().join("2-0.part").exists());
        let legacy = br#"{"id":"e1","type":"span-create","body":{"id":"o1","traceId":"abc-1"}}"#;
        assert_eq!(trace_id_of(legacy), Some("abc-1"));
        assert_eq!(trace_id_of(br#"{"traceId":""}"#), None);
        assert_eq!(trace_id_of(br#"{"traceId":"a\"b"}"#), None);
    }
}
