//! Session files (`<ts>_<id>.jsonl`): the title slot, the header and the entry tree, decoded
//! into the mapper's vocabulary along the active branch (the path from the last leaf back to
//! the root; entries abandoned by `/tree` navigation are skipped).
//!
//! A finished file's entries are held until its session ends (next header or end of input),
//! because only the last leaf says which branch is active. They are held as raw line bytes
//! with their ids, not parsed (`light_fields` parses only the ids), and parsed when emitted;
//! past [`MEMORY_BYTES`] a session's bytes go to an unnamed temporary file, so memory stays
//! flat however long a session is. Reading a file, not a pipe, they are not copied at all:
//! only their offsets are kept, and the entries are read again from the file itself (see
//! [`LogDecoder::reread_from`]), while the next session is read, whenever the stage after
//! the mapper has room for them (see [`LogDecoder::due`]). A file still being written
//! (`watch`) cannot wait for that: there every entry is handed on as it is appended. While
//! the history is linear, which is by far the common case, both give the same result. After
//! a `/tree` jump the entries of the abandoned branch were already sent and stay in the
//! trace (the jump shows as a branch-summary event when omp wrote one), and the
//! conversation goes on from the new leaf. No I/O besides the temporary file.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde_json::Value;

use crate::decode::jsonline::{self, Keep};
use crate::decode::omp::{Ev, Event, Header, as_millis, rule_names, str_field, take};

/// Raw entry bytes a session keeps in memory before the rest goes to a temporary file.
pub const MEMORY_BYTES: usize = 4 << 20;

/// What to parse of a session-file line while its session is read: headers whole, entries
/// only their ids (the rest is parsed when the entry is emitted), and what the bridge
/// filter looks at (`omp::BridgeFilter`).
pub fn light_fields(ty: &str) -> Keep {
    match ty {
        "title" | "session" => Keep::All,
        _ => Keep::Only(&["id", "parentId", "seq", "ts", "sessionId"]),
    }
}

/// One entry of the session being read.
#[derive(Debug)]
struct Entry {
    id: Option<String>,
    parent: Option<String>,
    /// Recorded beside the branch, not on it (omp's `model_usage`: "record usage on its
    /// initiating branch without moving a successor branch", session-manager.ts): always
    /// emitted, and never the leaf the active branch is traced back from.
    side: bool,
    /// What this entry says about the trace's name.
    name: Option<NameHint>,
    /// On a branch the user left with `/tree` (set when the session is complete).
    abandoned: bool,
    body: Body,
}

/// An entry's say in the trace's final name (the mapper's rule for one trace per session:
/// the last goal's objective, else the last title, else the first prompt).
#[derive(Debug, Clone)]
enum NameHint {
    Goal(String),
    Title(String),
    Prompt(String),
}

/// The name hint of an entry whose type can carry one; `parsed` is the whole entry (a
/// light parse keeps too little, so a candidate is parsed from its raw bytes).
fn name_hint(ty: &str, parsed: &Value) -> Option<NameHint> {
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
    };
    match ty {
        "title_change" => text(parsed.get("title")).map(NameHint::Title),
        "session_info" => text(parsed.get("name")).map(NameHint::Title),
        "mode_change" => text(parsed.pointer("/data/goal/objective")).map(NameHint::Goal),
        "message" => {
            let m = parsed.get("message")?;
            let steering = m.get("steering").and_then(Value::as_bool) == Some(true)
                || m.get("synthetic").and_then(Value::as_bool) == Some(true)
                || m.get("attribution").and_then(Value::as_str) == Some("agent");
            if m.get("role").and_then(Value::as_str) != Some("user") || steering {
                return None;
            }
            let t = crate::decode::record::message_text(m);
            (!t.is_empty()).then_some(NameHint::Prompt(t))
        }
        _ => None,
    }
}

/// Entry types that can carry a name hint (the rest are never parsed for one).
fn may_name(ty: &str) -> bool {
    matches!(
        ty,
        "title_change" | "session_info" | "mode_change" | "message"
    )
}

impl Entry {
    /// An entry of type `ty` whose (light or full) parse is `v`.
    fn new(ty: &str, v: &Value, name: Option<NameHint>, body: Body) -> Entry {
        Entry {
            id: str_field(v, "id"),
            parent: str_field(v, "parentId"),
            side: is_side(ty),
            name,
            abandoned: false,
            body,
        }
    }
}

/// Entry types recorded beside the conversation rather than on it.
fn is_side(ty: &str) -> bool {
    ty == "model_usage"
}

#[derive(Debug)]
enum Body {
    /// Parsed already (lines read before the format was known).
    Parsed(Value),
    /// `len` bytes at `at` in the store; `line` for error messages.
    Raw { line: u64, at: u64, len: usize },
    /// `len` bytes at `at` in the source file itself (see [`LogDecoder::reread_from`]).
    InSource { line: u64, at: u64, len: usize },
}

/// The first `len` bytes of `scratch`, to read into. Its length only grows (to the longest
/// entry read back), so the bytes are zeroed once, not for every entry; and it grows to
/// exactly that length, not to twice the last one (a 2 MB entry would leave 4 MB).
fn room(scratch: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if scratch.len() < len {
        *scratch = vec![0; len];
    }
    &mut scratch[..len]
}

/// A session's raw entry bytes: memory first, then an unnamed temporary file.
#[derive(Debug, Default)]
struct Store {
    mem: Vec<u8>,
    /// Bytes before `mem` (in `file`).
    spilled: u64,
    file: Option<File>,
    /// Could not make the temporary file: keep everything in memory.
    no_file: bool,
    /// The source file, when entries are read again from it instead of being copied.
    source: Option<File>,
}

impl Store {
    fn push(&mut self, bytes: &[u8]) -> u64 {
        if self.mem.len() + bytes.len() > MEMORY_BYTES && !self.mem.is_empty() && !self.no_file {
            self.spill();
        }
        let at = self.spilled + self.mem.len() as u64;
        self.mem.extend_from_slice(bytes);
        at
    }

    fn spill(&mut self) {
        if self.file.is_none() {
            match tempfile::tempfile() {
                Ok(f) => self.file = Some(f),
                Err(_) => {
                    self.no_file = true;
                    return;
                }
            }
        }
        let Some(f) = &mut self.file else { return };
        if f.seek(SeekFrom::Start(self.spilled)).is_ok() && f.write_all(&self.mem).is_ok() {
            self.spilled += self.mem.len() as u64;
            self.mem.clear();
        } else {
            self.no_file = true;
        }
    }

    /// The bytes of one entry (read back into `scratch` when spilled).
    fn get<'a>(&'a mut self, at: u64, len: usize, scratch: &'a mut Vec<u8>) -> Option<&'a [u8]> {
        if at >= self.spilled {
            let start = (at - self.spilled) as usize;
            return self.mem.get(start..start + len);
        }
        let f = self.file.as_mut()?;
        let buf = room(scratch, len);
        f.seek(SeekFrom::Start(at)).ok()?;
        f.read_exact(buf).ok()?;
        Some(buf)
    }

    /// The bytes of one entry in the source file, read again into `scratch`.
    fn get_in_source<'a>(&self, at: u64, len: usize, scratch: &'a mut Vec<u8>) -> Option<&'a [u8]> {
        let f = self.source.as_ref()?;
        let buf = room(scratch, len);
        read_exact_at(f, buf, at).ok()?;
        Some(buf)
    }

    /// Forget the session (the file is reused, the memory given back).
    fn clear(&mut self) {
        self.mem.clear();
        if self.mem.capacity() > MEMORY_BYTES * 2 {
            self.mem.shrink_to(MEMORY_BYTES);
        }
        self.spilled = 0;
        if let Some(f) = &self.file {
            let _ = f.set_len(0);
        }
    }
}

/// What waits to be handed on.
#[derive(Debug)]
enum Waiting {
    Entry(Entry),
    /// A session's header, title and name events, in order before its entries.
    Head(Vec<Event>),
}

/// When entries are handed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Emit {
    /// At the session's end, along the active branch only (a finished file).
    #[default]
    AtEnd,
    /// As they arrive, in file order (a file still being written).
    AsAppended,
}

/// Buffers one session's entries at a time (or none, with `Emit::AsAppended`).
#[derive(Debug, Default)]
pub struct LogDecoder {
    emit: Emit,
    /// `AsAppended`: the current session's header went out.
    started: bool,
    /// Title slot and header lines of the current session, in order.
    head: Vec<Value>,
    /// Entries (lines with an `id`), in file order.
    entries: Vec<Entry>,
    store: Store,
    /// Finished sessions' entries, waiting to be decoded one at a time by
    /// [`LogDecoder::drain`] (so a long session is never all parsed at once), with the
    /// header events of a session that ended while the one before was still waiting.
    emitting: std::collections::VecDeque<Waiting>,
    /// Entries on branches the user left with `/tree` (traced, marked), over all sessions.
    pub off_branch: u64,
    /// Entries that passed the light parse but not the full one: (line, error).
    pub bad: Vec<(u64, serde_json::Error)>,
    /// The current session's first prompt was found (later user messages are not parsed
    /// for the name).
    prompt_seen: bool,
    /// Reused for entries read back (a fresh buffer per entry would map and unmap the
    /// pages of every large one).
    scratch: Vec<u8>,
    /// Entries read (of the sessions after) while entries read back from the source wait
    /// (see [`LogDecoder::due`]).
    ahead: usize,
    /// The input ended: everything waiting is due.
    ended: bool,
}

/// Entries read ahead at most while entries of a finished session wait to be read back
/// (see [`LogDecoder::due`]): what they hold until then is their ids, a few hundred bytes
/// each.
pub const READ_AHEAD_ENTRIES: usize = 8192;

impl LogDecoder {
    /// A decoder for a file still being written (see the module documentation).
    pub fn as_appended() -> LogDecoder {
        LogDecoder {
            emit: Emit::AsAppended,
            ..LogDecoder::default()
        }
    }

    /// Take one parsed line. Completed sessions' events are appended to `out` as far as their
    /// headers; call [`LogDecoder::drain`] until it returns false for the rest, before the
    /// next line.
    pub fn push(&mut self, v: Value, out: &mut Vec<Event>) {
        if self.emit == Emit::AsAppended {
            self.push_now(v, out);
            return;
        }
        let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
        if self.starts_session(ty) {
            self.flush(out);
        }
        if ty == "title" || ty == "session" {
            self.head.push(v);
        } else {
            let name = self.hint_of(ty, || Some(v.clone()));
            let entry = Entry::new(ty, &v, name, Body::Parsed(Value::Null));
            self.entries.push(Entry {
                body: Body::Parsed(v),
                ..entry
            });
        }
    }

    /// Whether entries wait for their session's end (then lines can be handed over raw,
    /// with [`LogDecoder::push_raw`]).
    pub fn buffers(&self) -> bool {
        self.emit == Emit::AtEnd
    }

    /// Take one line parsed with [`light_fields`], with its raw bytes (see `push`). Only for
    /// a decoder that [buffers](LogDecoder::buffers).
    /// Read held entries again from `file` (the source being read, a regular file; on
    /// Unix) instead of copying their bytes: [`LogDecoder::push_raw`] then keeps only each
    /// line's offset in it. The file is read with positioned reads, so a handle that shares
    /// its position with the line reader is fine.
    pub fn reread_from(&mut self, file: File) {
        if cfg!(unix) {
            self.store.source = Some(file);
        }
    }

    /// Take one line held as raw bytes (`offset`: where it starts in the source file).
    pub fn push_raw(
        &mut self,
        line: u64,
        (raw, offset): (&[u8], u64),
        v: Value,
        out: &mut Vec<Event>,
    ) {
        if !self.buffers() {
            match serde_json::from_slice(raw) {
                Ok(full) => self.push_now(full, out),
                Err(e) => self.bad.push((line, e)),
            }
            return;
        }
        let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
        if self.starts_session(ty) {
            self.flush(out);
        }
        if ty == "title" || ty == "session" {
            self.head.push(v);
        } else {
            let name = self.hint_of(ty, || serde_json::from_slice(raw).ok());
            let len = raw.len();
            let body = if self.store.source.is_some() {
                if !self.emitting.is_empty() {
                    self.ahead += 1;
                }
                Body::InSource {
                    line,
                    at: offset,
                    len,
                }
            } else {
                let at = self.store.push(raw);
                Body::Raw { line, at, len }
            };
            self.entries.push(Entry::new(ty, &v, name, body));
        }
    }

    /// The name hint of an entry of type `ty`, parsing it (`full`) only when the type can
    /// carry one; user messages only until the session's first prompt is found.
    fn hint_of(&mut self, ty: &str, full: impl FnOnce() -> Option<Value>) -> Option<NameHint> {
        if !may_name(ty) || (ty == "message" && self.prompt_seen) {
            return None;
        }
        let hint = name_hint(ty, &full()?);
        if matches!(hint, Some(NameHint::Prompt(_))) {
            self.prompt_seen = true;
        }
        hint
    }

    fn starts_session(&self, ty: &str) -> bool {
        match ty {
            "title" => true,
            // A header right after a title slot belongs to the same session.
            "session" => !self
                .head
                .iter()
                .all(|h| h.get("type") == Some(&"title".into())),
            _ => false,
        }
    }

    /// End of input: emit the session in progress (see `push`).
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        self.flush(out);
        self.ended = true;
    }

    /// Whether to decode another waiting entry now ([`LogDecoder::drain`]); `room`: the
    /// threads its records go to next can take them without waiting. Entries read back
    /// from the source file are decoded while there is room, and while there is none the
    /// caller reads the next session's lines (their ids) instead of waiting, so neither
    /// side waits out the other: sessions end in bursts, and a pace fixed per byte read
    /// left the sanitizing threads idle for half of each session's first pass and the
    /// reader blocked for the other half. At most [`READ_AHEAD_ENTRIES`] are read ahead
    /// (then everything waiting goes, room or not), and everything goes at the end of
    /// input. Entries held in memory or in the temporary file go all at once (their store
    /// is reused for the next session).
    pub fn due(&self, room: bool) -> bool {
        match self.emitting.front() {
            None => false,
            Some(Waiting::Entry(Entry {
                body: Body::InSource { .. },
                ..
            })) => room || self.ended || self.ahead >= READ_AHEAD_ENTRIES,
            Some(_) => true,
        }
    }

    /// Keep the read-back buffer for the next entry, unless an unusually long one grew it.
    fn give_back(&mut self, mut scratch: Vec<u8>) {
        if scratch.capacity() > MEMORY_BYTES {
            scratch = Vec::new();
        }
        self.scratch = scratch;
    }

    /// Decode the next waiting entry into `out`; false once none is left.
    pub fn drain(&mut self, out: &mut Vec<Event>) -> bool {
        let entry = match self.emitting.pop_front() {
            None => return false,
            Some(Waiting::Head(events)) => {
                out.extend(events);
                return true;
            }
            Some(Waiting::Entry(entry)) => entry,
        };
        let value = match entry.body {
            Body::Parsed(v) => Ok(v),
            Body::Raw { line, at, len } => {
                let mut scratch = std::mem::take(&mut self.scratch);
                let v = match self.store.get(at, len, &mut scratch) {
                    Some(bytes) => jsonline::whole(bytes),
                    None => Err(serde_json::Error::io(std::io::Error::other(
                        "the session's temporary file could not be read",
                    ))),
                };
                self.give_back(scratch);
                v.map_err(|e| (line, e))
            }
            Body::InSource { line, at, len } => {
                let mut scratch = std::mem::take(&mut self.scratch);
                let v = match self.store.get_in_source(at, len, &mut scratch) {
                    Some(bytes) => jsonline::whole(bytes),
                    None => Err(serde_json::Error::io(std::io::Error::other(
                        "the file could not be read again (changed while it was read?)",
                    ))),
                };
                self.give_back(scratch);
                v.map_err(|e| (line, e))
            }
        };
        if self.emitting.is_empty() {
            self.store.clear();
            self.ahead = 0;
        }
        match value {
            Ok(v) => {
                let from = out.len();
                decode_entry(v, out);
                if entry.abandoned {
                    for e in &mut out[from..] {
                        e.abandoned = true;
                    }
                }
            }
            Err(bad) => self.bad.push(bad),
        }
        true
    }

    /// `AsAppended`: only the title slot waits, for the header it precedes.
    fn push_now(&mut self, v: Value, out: &mut Vec<Event>) {
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "title" => {
                // A title slot opens the next session (its header follows).
                self.started = false;
                self.head.push(v);
            }
            "session" => {
                self.head.push(v);
                self.flush(out);
                self.started = true;
            }
            _ => {
                if !self.started {
                    self.flush(out);
                    self.started = true;
                }
                decode_entry(v, out);
            }
        }
    }

    /// The session read so far is complete: its header events go out (or wait behind
    /// the previous session's entries, when those are still waiting), and its entries wait.
    fn flush(&mut self, out: &mut Vec<Event>) {
        let mut head_events = Vec::new();
        let entries = self.complete(&mut head_events);
        if self.emitting.is_empty() {
            out.append(&mut head_events);
        } else if !head_events.is_empty() {
            self.emitting.push_back(Waiting::Head(head_events));
        }
        self.emitting
            .extend(entries.into_iter().map(Waiting::Entry));
        if self.emitting.is_empty() {
            self.store.clear();
        }
    }

    /// The session read so far: its header events into `out`, and its entries, those on
    /// a branch the user left marked.
    fn complete(&mut self, out: &mut Vec<Event>) -> Vec<Entry> {
        let head = std::mem::take(&mut self.head);
        let mut entries = std::mem::take(&mut self.entries);
        if head.is_empty() && entries.is_empty() {
            return entries;
        }
        // The header comes first even when a title slot precedes it, so the mapper knows
        // the session before anything else.
        let (headers, titles): (Vec<Value>, Vec<Value>) = head
            .into_iter()
            .partition(|h| h.get("type") == Some(&"session".into()));
        for h in &headers {
            out.push(event(None, Ev::Session(Header::from_value(h))));
        }
        let slot_title = titles
            .iter()
            .filter_map(|t| str_field(t, "title"))
            .rfind(|t| !t.trim().is_empty());
        for t in &titles {
            // Only omp writes a title slot.
            let ev = match str_field(t, "title").filter(|t| !t.is_empty()) {
                Some(title) => Ev::Title(title),
                None => Ev::Ignored,
            };
            out.push(Event {
                producer: Some("omp"),
                ..event(None, ev)
            });
        }
        let on_path: Vec<bool> = {
            let path = active_path(&entries);
            entries
                .iter()
                .map(|e| match &e.id {
                    _ if e.side => true,
                    Some(id) => path.contains(id.as_str()),
                    None => true,
                })
                .collect()
        };
        // The whole session is here: name its trace now, so every row of it carries the
        // name it ends with.
        if let Some(name) = final_name(&entries, slot_title) {
            out.push(event(None, Ev::TraceName(name)));
        }
        self.prompt_seen = false;
        // Every entry is traced, in file order (as `watch` sees them appended), so a
        // session's totals are omp's own; those on a branch the user left are marked.
        for (entry, on_path) in entries.iter_mut().zip(on_path) {
            if !on_path {
                entry.abandoned = true;
                self.off_branch += 1;
            }
        }
        entries
    }
}

/// Fill `buf` from `file` at `at`, without moving its position.
#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, at)
}

#[cfg(not(unix))]
fn read_exact_at(_file: &File, _buf: &mut [u8], _at: u64) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "positioned reads are used on Unix only",
    ))
}

/// The trace name a whole session ends with: its last goal's objective, else its last
/// title, else its first prompt (in file order, as the mapper sees the entries).
fn final_name(entries: &[Entry], slot_title: Option<String>) -> Option<String> {
    let hints = entries.iter().filter_map(|e| e.name.as_ref());
    let (mut goal, mut title, mut prompt) = (None, slot_title, None);
    for h in hints {
        match h {
            NameHint::Goal(g) => goal = Some(g),
            NameHint::Title(t) => title = Some(t.clone()),
            NameHint::Prompt(p) => {
                prompt.get_or_insert(p);
            }
        }
    }
    goal.cloned().or(title).or(prompt.cloned())
}

/// Ids on the path from the last entry back to the root.
fn active_path(entries: &[Entry]) -> HashSet<&str> {
    let parents: std::collections::HashMap<&str, Option<&str>> = entries
        .iter()
        .filter_map(|e| Some((e.id.as_deref()?, e.parent.as_deref())))
        .collect();
    let mut path = HashSet::new();
    let mut cur = entries
        .iter()
        .rev()
        .filter(|e| !e.side)
        .find_map(|e| e.id.as_deref());
    // A malformed file could hold a parent cycle: stop at the first repeat.
    while let Some(id) = cur {
        if !path.insert(id) {
            break;
        }
        cur = parents.get(id).copied().flatten();
    }
    path
}

fn event(at: Option<i64>, ev: Ev) -> Event {
    Event {
        at,
        session: None,
        context: None,
        ev,
        producer: None,
        abandoned: false,
    }
}

/// A `message` entry. Turn boundaries are not stored: each assistant message is one turn,
/// which starts when its LLM call does.
fn message_entry(msg: Value, at: Option<i64>, out: &mut Vec<Event>) {
    match msg.get("role").and_then(Value::as_str) {
        Some("assistant") => {
            let call_at = msg.get("timestamp").and_then(as_millis).or(at);
            out.push(event(call_at, Ev::TurnStart));
            let recovery = msg.get("retryRecovery").cloned();
            out.push(event(at, Ev::Message(msg)));
            if let Some(r) = recovery {
                out.push(event(at, Ev::RetryRecovery(r)));
            }
        }
        Some(_) => out.push(event(at, Ev::Message(msg))),
        None => out.push(event(at, Ev::Ignored)),
    }
}

/// A `custom` entry: omp's tool starts and its session end marker.
fn custom_entry(e: &mut Value, at: Option<i64>, out: &mut Vec<Event>) {
    let custom_type = str_field(e, "customType").unwrap_or_default();
    let mut data = take(e, "data");
    match custom_type.as_str() {
        "tool_execution_start" => {
            let started = data.get("startedAt").and_then(as_millis).or(at);
            out.push(event(
                started,
                Ev::ToolStart {
                    id: str_field(&data, "toolCallId").unwrap_or_default(),
                    name: str_field(&data, "toolName").unwrap_or_default(),
                    args: Some(take(&mut data, "args")).filter(|a| !a.is_null()),
                    intent: str_field(&data, "intent"),
                },
            ));
        }
        "session_exit" => {
            let recorded = data.get("recordedAt").and_then(as_millis).or(at);
            out.push(event(recorded, Ev::SessionEnd(data)));
        }
        _ => out.push(event(at, Ev::Ignored)),
    }
}

/// One entry on the active branch → zero or more events.
fn decode_entry(mut e: Value, out: &mut Vec<Event>) {
    let at = e.get("timestamp").and_then(as_millis);
    let ty = e
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match ty.as_str() {
        "message" => message_entry(take(&mut e, "message"), at, out),
        "custom" => custom_entry(&mut e, at, out),
        "custom_message" => {
            // Injected into the LLM context (e.g. a TTSR reminder): part of the next call's input.
            let mut msg = serde_json::Map::new();
            msg.insert("role".into(), "custom".into());
            for k in ["customType", "content", "display", "details", "attribution"] {
                if let Some(v) = e.as_object_mut().and_then(|o| o.remove(k)) {
                    msg.insert(k.into(), v);
                }
            }
            out.push(event(at, Ev::Message(Value::Object(msg))));
        }
        "model_change" => match str_field(&e, "model") {
            Some(m) => out.push(event(at, Ev::ModelChange(m))),
            None => out.push(event(at, Ev::Ignored)),
        },
        "title_change" => match str_field(&e, "title").filter(|t| !t.is_empty()) {
            Some(t) => out.push(event(at, Ev::Title(t))),
            None => out.push(event(at, Ev::Ignored)),
        },
        "compaction" => out.push(event(at, Ev::Compaction(e))),
        "branch_summary" => out.push(event(at, Ev::BranchSummary(e))),
        "ttsr_injection" => out.push(event(at, Ev::Ttsr(rule_names(e.get("injectedRules"))))),
        "mode_change" => {
            let mode = str_field(&e, "mode").unwrap_or_default();
            let goal = e.pointer_mut("/data/goal").map(Value::take);
            match (mode.as_str(), goal) {
                (_, Some(g)) if g.is_object() => out.push(event(at, Ev::Goal(g))),
                // Leaving goal mode without a goal object: the goal was dropped.
                ("none", _) => out.push(event(at, Ev::Goal(Value::Null))),
                _ => out.push(event(at, Ev::Ignored)),
            }
        }
        // omp 18.3: usage of a side model call (session/session-entries.ts ModelUsageEntry:
        // purpose, role, api, provider, model, usage, stopReason, errorMessage).
        "model_usage" => out.push(Event {
            producer: Some("omp"),
            ..event(at, Ev::ModelUsage(e))
        }),
        // pi's session name (session-manager.js `appendSessionInfo`): its title.
        "session_info" => {
            let ev = match str_field(&e, "name").filter(|n| !n.trim().is_empty()) {
                Some(n) => Ev::Title(n),
                None => Ev::Ignored,
            };
            out.push(Event {
                producer: Some("pi"),
                ..event(at, ev)
            });
        }
        "thinking_level_change"
        | "service_tier_change"
        | "label"
        | "credential_pin"
        | "reset_boundary"
        | "session_init" => out.push(event(at, Ev::Ignored)),
        other => out.push(event(at, Ev::Unknown(other.to_string()))),
    }
}

/// Lines of a subagent file searched for its `session_init` entry (title slot, header,
/// model and thinking changes come first).
const INIT_SCAN_LINES: usize = 16;
/// Bytes read at most while looking for it (the entry holds the whole system prompt).
const INIT_SCAN_BYTES: u64 = 8 * 1024 * 1024;

/// The assignment in a subagent file's `session_init` entry, from its first lines.
pub fn read_init_task(path: &Path) -> Option<String> {
    let file = File::open(path).ok()?;
    let mut reader = BufReader::new(file.take(INIT_SCAN_BYTES));
    let mut line = Vec::new();
    for _ in 0..INIT_SCAN_LINES {
        line.clear();
        if reader.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        // Cheap test first: only one line is worth parsing.
        if !contains(&line, br#""session_init""#) {
            continue;
        }
        let v: Value = serde_json::from_slice(&line).ok()?;
        if v.get("type").and_then(Value::as_str) == Some("session_init") {
            return v.get("task").and_then(Value::as_str).map(String::from);
        }
    }
    None
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn init_task_is_read_from_the_first_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("A.jsonl");
        std::fs::write(
            &p,
            concat!(
                r#"{"type":"title","v":1,"title":""}"#,
                "\n",
                r#"{"type":"session","version":3,"id":"s"}"#,
                "\n",
                r#"{"type":"session_init","id":"1","parentId":null,"task":"Do it.","systemPrompt":"x"}"#,
                "\n"
            ),
        )
        .unwrap();
        assert_eq!(read_init_task(&p).as_deref(), Some("Do it."));
        assert_eq!(read_init_task(&dir.path().join("missing.jsonl")), None);
    }

    fn decode(lines: Vec<Value>) -> (Vec<Event>, u64) {
        let mut d = LogDecoder::default();
        let mut out = Vec::new();
        for l in lines {
            d.push(l, &mut out);
            while d.drain(&mut out) {}
        }
        d.finish(&mut out);
        while d.drain(&mut out) {}
        (out, d.off_branch)
    }

    fn msg(id: &str, parent: Option<&str>, role: &str, ts: i64) -> Value {
        json!({"type":"message","id":id,"parentId":parent,"timestamp":"2026-08-23T09:14:03.750Z",
               "message":{"role":role,"content":[],"timestamp":ts}})
    }

    #[test]
    fn traces_every_branch_and_marks_the_abandoned_one() {
        // a → b → c (abandoned), a → d (active leaf).
        let (events, off) = decode(vec![
            json!({"type":"session","id":"s1","timestamp":"2026-08-23T09:14:02.117Z"}),
            msg("a", None, "user", 1),
            msg("b", Some("a"), "assistant", 2),
            msg("c", Some("b"), "user", 3),
            msg("d", Some("a"), "user", 4),
        ]);
        assert_eq!(off, 2);
        let ts: Vec<(i64, bool)> = events
            .iter()
            .filter_map(|e| match &e.ev {
                Ev::Message(m) => Some((m.get("timestamp").and_then(Value::as_i64)?, e.abandoned)),
                _ => None,
            })
            .collect();
        assert_eq!(ts, vec![(1, false), (2, true), (3, true), (4, false)]);
    }

    #[test]
    fn title_slot_then_header_is_one_session_and_header_comes_first() {
        let (events, _) = decode(vec![
            json!({"type":"title","v":1,"title":"Fix it","pad":"  "}),
            json!({"type":"session","id":"s1","timestamp":"2026-08-23T09:14:02.117Z"}),
            msg("a", None, "user", 1),
            json!({"type":"title","v":1,"title":"","pad":"  "}),
            json!({"type":"session","id":"s2","timestamp":"2026-08-23T09:14:02.117Z"}),
        ]);
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| match &e.ev {
                Ev::Session(h) => h.id.as_deref().unwrap(),
                Ev::Title(_) => "title",
                Ev::Message(_) => "msg",
                _ => "other",
            })
            .collect();
        // An empty title slot still says omp wrote the file.
        assert_eq!(kinds, vec!["s1", "title", "other", "msg", "s2", "other"]);
        // The whole first session was read: its trace is named up front.
        assert!(matches!(&events[2].ev, Ev::TraceName(n) if n == "Fix it"));
        assert!(
            events.iter().all(|e| {
                !matches!(e.ev, Ev::Title(_) | Ev::Ignored) || e.producer == Some("omp")
            })
        );
    }

    #[test]
    fn as_appended_hands_on_every_entry_at_once() {
        let mut d = LogDecoder::as_appended();
        let mut out = Vec::new();
        d.push(
            json!({"type":"title","v":1,"title":"T","pad":" "}),
            &mut out,
        );
        assert!(out.is_empty(), "the title waits for its header");
        d.push(
            json!({"type":"session","id":"s1","timestamp":"2026-08-23T09:14:02.117Z"}),
            &mut out,
        );
        assert!(matches!(&out[0].ev, Ev::Session(h) if h.id.as_deref() == Some("s1")));
        assert!(matches!(&out[1].ev, Ev::Title(t) if t == "T"));
        out.clear();
        // a → b, then a /tree jump back to a: every entry goes out as it comes.
        for (id, parent) in [("a", None), ("b", Some("a")), ("c", Some("a"))] {
            d.push(msg(id, parent, "user", 1), &mut out);
            assert_eq!(out.len(), 1, "{id} at once");
            out.clear();
        }
        d.finish(&mut out);
        assert!(out.is_empty());
        assert_eq!(d.off_branch, 0);
    }

    #[test]
    fn parent_cycles_terminate() {
        let (events, _) = decode(vec![
            json!({"type":"message","id":"a","parentId":"b","timestamp":"2026-08-23T09:14:03.750Z","message":{"role":"user"}}),
            json!({"type":"message","id":"b","parentId":"a","timestamp":"2026-08-23T09:14:03.750Z","message":{"role":"user"}}),
        ]);
        assert_eq!(events.len(), 2);
    }

    /// Decode a file's lines as `flow` does (light parse, raw bytes with their offsets,
    /// waiting entries decoded while they are due), reading held entries back from the file
    /// or from a copy; `room`: how many waiting entries the stage takes per line read
    /// (`usize::MAX`: all of them). Also says after how many lines each event came out.
    fn decode_file_timed(
        path: &std::path::Path,
        reread: bool,
        room: usize,
    ) -> (Vec<String>, Vec<u64>, Vec<u64>) {
        let mut d = LogDecoder::default();
        if reread {
            d.reread_from(File::open(path).unwrap());
        }
        let mut lines = crate::input::Lines::new(File::open(path).unwrap());
        let mut out = Vec::new();
        let mut when = Vec::new();
        while let crate::input::Next::Line(l) = lines.next_line().unwrap() {
            // A line that is not JSON is skipped before the decoder (as `flow` does).
            if let Ok(v) = crate::decode::jsonline::parse(l.bytes, light_fields) {
                d.push_raw(l.number, (l.bytes, l.offset), v, &mut out);
                let mut left = room;
                while d.due(left > 0) && d.drain(&mut out) {
                    left = left.saturating_sub(1);
                }
            }
            when.resize(out.len(), l.number);
        }
        d.finish(&mut out);
        while d.due(false) && d.drain(&mut out) {}
        when.resize(out.len(), u64::MAX);
        let bad = d.bad.iter().map(|(n, _)| *n).collect();
        (out.iter().map(|e| format!("{e:?}")).collect(), bad, when)
    }

    fn decode_file(path: &std::path::Path, reread: bool) -> (Vec<String>, Vec<u64>) {
        let (events, bad, _) = decode_file_timed(path, reread, usize::MAX);
        (events, bad)
    }

    /// A session file of `sessions` (id, entries), each a chain of user messages.
    fn sessions_file(dir: &std::path::Path, sessions: &[(&str, usize)]) -> std::path::PathBuf {
        let path = dir.join("s.jsonl");
        let mut text = String::new();
        for &(session, n) in sessions {
            let head =
                json!({"type":"session","id":session,"timestamp":"2026-08-23T09:14:02.117Z"});
            text.push_str(&format!("{head}\n"));
            let mut parent = None;
            for i in 0..n {
                let id = format!("{session}-{i}");
                text.push_str(&format!("{}\n", msg(&id, parent.as_deref(), "user", 1)));
                parent = Some(id);
            }
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_finished_session_is_decoded_while_the_next_is_read_from_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        // A long session, then two short ones: the first is still waiting when the second
        // ends.
        let path = sessions_file(dir.path(), &[("s1", 30), ("s2", 2), ("s3", 2)]);
        let (copied, _, copied_when) = decode_file_timed(&path, false, 0);
        let s2 = copied.iter().position(|e| e.contains("\"s2\"")).unwrap();
        // From a copy, the first session comes out whole when the second's header arrives
        // (line 32), room or not.
        assert!(
            copied_when[..s2].iter().all(|&n| n <= 32),
            "{copied_when:?}"
        );
        // Read back from the file: the same events in the same order, however much room
        // the stage has.
        let trickled = decode_file_timed(&path, true, 1);
        let waited = decode_file_timed(&path, true, 0);
        let at_once = decode_file_timed(&path, true, usize::MAX);
        for (events, _, _) in [&trickled, &waited, &at_once] {
            assert_eq!(events, &copied);
        }
        // With room for everything, as from a copy.
        assert_eq!(at_once.2, copied_when);
        // With room for one entry per line read, they trickle out with the next lines, a
        // few events per line, even when the session after ends first.
        let when = &trickled.2;
        assert!(when[..s2].iter().any(|&n| n > 32), "{when:?}");
        let mut per_line = std::collections::HashMap::new();
        for n in when.iter().filter(|&&n| n != u64::MAX) {
            *per_line.entry(n).or_insert(0) += 1;
        }
        assert!(per_line.values().all(|&k| k <= 4), "{when:?}");
        // With no room they wait (the next sessions' lines are read meanwhile) until the
        // input ends.
        assert_eq!(waited.2[s2 - 1], u64::MAX, "{:?}", waited.2);
    }

    #[test]
    fn entries_read_ahead_are_bounded_even_without_room() {
        let dir = tempfile::tempdir().unwrap();
        let path = sessions_file(dir.path(), &[("s1", 3), ("s2", READ_AHEAD_ENTRIES + 10)]);
        let (events, _, when) = decode_file_timed(&path, true, 0);
        let s2 = events.iter().position(|e| e.contains("\"s2\"")).unwrap();
        // s1 ends at line 5 (its header and three entries, then s2's header): its header
        // goes then, its entries once READ_AHEAD_ENTRIES more lines are read, before the
        // input ends.
        let limit = (5 + READ_AHEAD_ENTRIES) as u64;
        assert_eq!(when[s2 - 1], limit, "{:?}", &when[..s2]);
        assert!(
            when[..s2].iter().all(|&n| n == 5 || n == limit),
            "{:?}",
            &when[..s2]
        );
    }

    #[test]
    fn an_entry_read_back_parses_as_from_slice_does() {
        for raw in [
            &b"{\"type\":\"message\",\"id\":\"a\",\"message\":{\"content\":\"h\\u00e9 \\\"x\\\" \xc3\xa9\"}}"[..],
            b"{\"type\":\"message\",\"id\":\"\xff\"}",
            br#"{"type":"message","id":"a",}"#,
            b"{\"a\":\"\xc3\"}",
        ] {
            match (jsonline::whole(raw), serde_json::from_slice::<Value>(raw)) {
                (Ok(ours), Ok(theirs)) => assert_eq!(ours, theirs),
                (Err(ours), Err(theirs)) => assert_eq!(
                    (ours.classify(), ours.line(), ours.column()),
                    (theirs.classify(), theirs.line(), theirs.column())
                ),
                (ours, theirs) => panic!("{ours:?} vs {theirs:?}"),
            }
        }
    }

    #[test]
    fn the_read_back_buffer_is_zeroed_only_when_it_grows() {
        let mut scratch = Vec::new();
        room(&mut scratch, 8).copy_from_slice(b"abcdefgh");
        assert_eq!(room(&mut scratch, 3), b"abc");
        assert_eq!(scratch.len(), 8, "kept at its longest");
        assert_eq!(room(&mut scratch, 10), &[0; 10]);
        assert_eq!(scratch.capacity(), 10, "no more than asked for");
    }

    #[test]
    fn entries_read_back_from_the_file_are_those_a_copy_gives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        // A BOM, CRLF line ends, a /tree jump, a line that is not JSON and a long entry.
        // The first line is an entry, so its BOM is where a read-back offset could slip.
        let mut text = String::from("\u{feff}");
        for (id, parent) in [
            ("a", None),
            ("b", Some("a")),
            ("c", Some("b")),
            ("d", Some("a")),
        ] {
            text.push_str(&msg(id, parent, "user", 1).to_string());
            text.push_str("\r\n");
        }
        text.push_str("{\"type\":\"message\",\"id\":\"e\",\"parentId\":\"d\",\"x\":tru}\n");
        let mut long = msg("f", Some("d"), "assistant", 2);
        long["message"]["content"] = json!([{"type": "text", "text": "ä".repeat(300_000)}]);
        text.push_str(&long.to_string());
        text.push('\n');
        std::fs::write(&path, text).unwrap();
        let (copied, bad_copied) = decode_file(&path, false);
        let (reread, bad_reread) = decode_file(&path, true);
        assert!(copied.len() >= 5, "{copied:?}");
        assert_eq!(reread, copied);
        assert!(bad_copied.is_empty() && bad_reread.is_empty());
        assert!(
            reread.iter().any(|e| e.contains(&"ä".repeat(1000))),
            "the long one whole"
        );
    }
}
