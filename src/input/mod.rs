//! Input sources and the streaming line reader: stdin or files, one reused buffer, line
//! numbers, BOM/CRLF handling, overlong lines skipped, and a missing final newline noticed.
//!
//! Nothing here interprets JSON, and no error message ever contains line content.

pub mod sessions;
pub mod signals;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Longest line kept, in bytes. OMP caps persisted strings at 500,000 chars, but pre-16.5
/// json mode repeats the whole message snapshot on every delta, so real lines reach several
/// megabytes; anything past this is not an OMP event we could use.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;
/// Read buffer per source.
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// Where lines come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Stdin,
    File(PathBuf),
}

impl Source {
    /// `-` is stdin; anything else a file path.
    pub fn from_arg(arg: &Path) -> Source {
        if arg.as_os_str() == "-" {
            Source::Stdin
        } else {
            Source::File(arg.to_path_buf())
        }
    }

    /// How messages name this source.
    pub fn display(&self) -> String {
        match self {
            Source::Stdin => "<stdin>".to_string(),
            Source::File(p) => p.display().to_string(),
        }
    }

    /// Open for reading, with a second handle on the same open file for a file, or for
    /// stdin redirected from a file and read from its start: for positioned reads of lines
    /// already read (a shared position is fine then, and a file replaced meanwhile is
    /// still the one being read).
    pub fn open_with_handle(&self) -> io::Result<(Box<dyn Read + Send>, Option<File>)> {
        Ok(match self {
            Source::Stdin => (Box::new(io::stdin()), stdin_file_at_start()),
            Source::File(p) => {
                let f = File::open(p)?;
                let again = f.try_clone().ok();
                (Box::new(f), again)
            }
        })
    }

    /// Whether lines may arrive slowly over a long time (a pipe or terminal on stdin),
    /// so batches must also be flushed by time. Files, and stdin redirected from a file,
    /// are read at full speed and batched deterministically.
    pub fn is_live(&self) -> bool {
        match self {
            Source::File(_) => false,
            Source::Stdin => !stdin_is_regular_file(),
        }
    }
}

/// Whether stdin is a terminal (nobody piped anything in).
pub fn stdin_is_terminal() -> bool {
    use std::io::IsTerminal;
    io::stdin().is_terminal()
}

/// Stdin as a file of its own (a second handle on it), when it is a regular file.
#[cfg(unix)]
fn stdin_regular_file() -> Option<File> {
    use std::os::fd::AsFd;
    let file = File::from(io::stdin().as_fd().try_clone_to_owned().ok()?);
    file.metadata().ok()?.is_file().then_some(file)
}

/// [`stdin_regular_file`], when it has not been read from yet (so line offsets are offsets
/// in the file).
#[cfg(unix)]
fn stdin_file_at_start() -> Option<File> {
    use std::io::Seek;
    let mut file = stdin_regular_file()?;
    (file.stream_position().ok()? == 0).then_some(file)
}

#[cfg(not(unix))]
fn stdin_file_at_start() -> Option<File> {
    None
}

#[cfg(unix)]
fn stdin_is_regular_file() -> bool {
    stdin_regular_file().is_some()
}

#[cfg(not(unix))]
fn stdin_is_regular_file() -> bool {
    false
}

/// One line, borrowed from the reader's buffer.
#[derive(Debug)]
pub struct Line<'a> {
    /// 1-based.
    pub number: u64,
    /// Without the line terminator (`\n` or `\r\n`) and without a leading UTF-8 BOM.
    pub bytes: &'a [u8],
    /// False for a last line with no newline: possibly cut off by a crashed writer.
    pub terminated: bool,
    /// Where `bytes` starts, counted from where this reader started.
    pub offset: u64,
}

/// What the reader yields.
#[derive(Debug)]
pub enum Next<'a> {
    Line(Line<'a>),
    /// A line over [`MAX_LINE_BYTES`] was skipped.
    TooLong {
        number: u64,
    },
    Eof,
}

/// A streaming line reader with constant memory: one buffer, reused. A line that lies in the
/// buffer is handed out as a slice of it (no copy); the buffer only grows to hold a line
/// longer than itself, and shrinks back after.
pub struct Lines<R> {
    inner: R,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
    number: u64,
    /// [`MAX_LINE_BYTES`] (smaller in tests).
    max: usize,
    /// Bytes handed out so far, terminators included.
    consumed: u64,
}

impl<R: Read> Lines<R> {
    pub fn new(inner: R) -> Self {
        Self::with_limit(inner, MAX_LINE_BYTES)
    }

    fn with_limit(inner: R, max: usize) -> Self {
        Lines {
            inner,
            buf: vec![0; READ_BUFFER_BYTES],
            start: 0,
            end: 0,
            eof: false,
            number: 0,
            max,
            consumed: 0,
        }
    }

    /// Go on reading a source after its first `lines` lines (`watch` reads a file from
    /// where it stopped): numbering continues, and no BOM is looked for.
    pub fn resume(inner: R, lines: u64) -> Self {
        Lines {
            number: lines,
            ..Self::new(inner)
        }
    }

    /// Bytes of the lines handed out so far, terminators included (a reader that stopped
    /// before a line's end resumes at this offset).
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Read more input after `buf[..end]`, making room first (moving the unconsumed tail to
    /// the front, or growing the buffer when the tail fills it). Returns false at the end.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // By half again, and to exactly that: a 2 MB line leaves a buffer of 3 MB, not 4.
            let grown = (self.buf.len() + self.buf.len() / 2)
                .min(self.max + 2 + READ_BUFFER_BYTES)
                .max(self.end + READ_BUFFER_BYTES);
            self.buf.reserve_exact(grown - self.buf.len());
            self.buf.resize(grown, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Give memory back after an unusually long line.
    fn shrink(&mut self) {
        if self.buf.len() > 4 * READ_BUFFER_BYTES && self.end - self.start <= READ_BUFFER_BYTES {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            self.buf.truncate(READ_BUFFER_BYTES);
            self.buf.shrink_to_fit();
        }
    }

    /// The next line. I/O errors are returned as is; the caller reports them with the source.
    pub fn next_line(&mut self) -> io::Result<Next<'_>> {
        self.shrink();
        // Bytes of the current line already known not to hold a newline.
        let mut scanned = 0;
        let (len, terminated) = loop {
            let pending = &self.buf[self.start + scanned..self.end];
            if let Some(i) = memchr::memchr(b'\n', pending) {
                break (scanned + i + 1, true);
            }
            scanned = self.end - self.start;
            if scanned > self.max + 2 {
                return self.skip_long_line();
            }
            if !self.fill()? {
                if scanned == 0 {
                    return Ok(Next::Eof);
                }
                break (scanned, false);
            }
        };
        self.number += 1;
        let mut offset = self.consumed;
        self.consumed += len as u64;
        if len > self.max + 2 {
            self.start += len;
            return Ok(Next::TooLong {
                number: self.number,
            });
        }
        let mut line: &[u8] = &self.buf[self.start..self.start + len];
        self.start += len;
        if let Some(rest) = line.strip_suffix(b"\n") {
            line = rest;
        }
        if let Some(rest) = line.strip_suffix(b"\r") {
            line = rest;
        }
        if self.number == 1
            && let Some(rest) = line.strip_prefix(b"\xEF\xBB\xBF")
        {
            line = rest;
            offset += 3;
        }
        Ok(Next::Line(Line {
            number: self.number,
            bytes: line,
            terminated,
            offset,
        }))
    }

    /// Discard the rest of a line over [`MAX_LINE_BYTES`] unseen, in buffer-sized steps.
    fn skip_long_line(&mut self) -> io::Result<Next<'_>> {
        self.number += 1;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                self.start += i + 1;
                self.consumed += (i + 1) as u64;
                break;
            }
            self.consumed += (self.end - self.start) as u64;
            self.start = 0;
            self.end = 0;
            self.buf.truncate(READ_BUFFER_BYTES);
            self.buf.shrink_to_fit();
            if !self.fill()? {
                break;
            }
        }
        Ok(Next::TooLong {
            number: self.number,
        })
    }
}

/// True when a line holds nothing but whitespace.
pub fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8]) -> Vec<(u64, Vec<u8>, bool)> {
        collect_with(input, MAX_LINE_BYTES)
    }

    fn collect_with(input: &[u8], max: usize) -> Vec<(u64, Vec<u8>, bool)> {
        let mut r = Lines::with_limit(input, max);
        let mut out = Vec::new();
        loop {
            match r.next_line().unwrap() {
                Next::Line(l) => out.push((l.number, l.bytes.to_vec(), l.terminated)),
                Next::TooLong { number } => out.push((number, b"<too long>".to_vec(), true)),
                Next::Eof => return out,
            }
        }
    }

    #[test]
    fn splits_lines_and_strips_crlf_and_bom() {
        let got = collect(b"\xEF\xBB\xBF{\"a\":1}\r\n\n{\"b\":2}\n{\"c\"");
        assert_eq!(
            got,
            vec![
                (1, b"{\"a\":1}".to_vec(), true),
                (2, b"".to_vec(), true),
                (3, b"{\"b\":2}".to_vec(), true),
                (4, b"{\"c\"".to_vec(), false),
            ]
        );
    }

    #[test]
    fn resumes_where_a_reader_stopped_before_a_cut_off_line() {
        let text = b"{\"a\":1}\r\n{\"b\":2}\n{\"c\"";
        let mut r = Lines::new(&text[..]);
        let offset;
        let mut lines = 0;
        loop {
            let before = r.consumed();
            match r.next_line().unwrap() {
                Next::Line(l) if !l.terminated => {
                    offset = before;
                    break;
                }
                Next::Line(l) => lines = l.number,
                Next::TooLong { .. } | Next::Eof => {
                    offset = r.consumed();
                    break;
                }
            }
        }
        assert_eq!((offset, lines), (17, 2));
        // The rest of the cut-off line arrives; reading on from the offset numbers it 3.
        let more = b"{\"c\":3}\n";
        let mut r = Lines::resume(&more[..], lines);
        match r.next_line().unwrap() {
            Next::Line(l) => assert_eq!((l.number, l.bytes, l.terminated), (3, &more[..7], true)),
            _ => panic!("a line"),
        }
        assert_eq!(r.consumed(), 8);
    }

    #[test]
    fn empty_input_has_no_lines() {
        assert!(collect(b"").is_empty());
    }

    #[test]
    fn lines_longer_than_the_buffer_are_whole() {
        let long = vec![b'x'; READ_BUFFER_BYTES * 3 + 17];
        let mut input = long.clone();
        input.extend_from_slice(b"\nend\n");
        let got = collect(&input);
        assert_eq!(got[0].1.len(), long.len());
        assert_eq!(got[1], (2, b"end".to_vec(), true));
    }

    #[test]
    fn a_long_line_grows_the_buffer_by_half_at_a_time() {
        let line = vec![b'x'; 8 * READ_BUFFER_BYTES];
        let mut input = line.clone();
        input.extend_from_slice(b"\nend\n");
        let mut r = Lines::new(&input[..]);
        match r.next_line().unwrap() {
            Next::Line(l) => assert_eq!(l.bytes.len(), line.len()),
            _ => panic!("no line"),
        }
        // Doubling would have left 16 read buffers' worth.
        assert!(
            r.buf.capacity() < 12 * READ_BUFFER_BYTES,
            "{}",
            r.buf.capacity()
        );
        match r.next_line().unwrap() {
            Next::Line(l) => assert_eq!(l.bytes, b"end"),
            _ => panic!("no second line"),
        }
    }

    #[test]
    fn overlong_lines_are_skipped_whole_and_counted() {
        let max = READ_BUFFER_BYTES * 2;
        let mut input = b"a\n".to_vec();
        input.extend(vec![b'x'; max + 3]); // one byte over the limit (newline excluded)
        input.extend_from_slice(b"\nb\n");
        input.extend(vec![b'y'; max + 1]); // just fits: `max` bytes, then \r\n
        input.extend_from_slice(b"\n");
        input.extend(vec![b'z'; max * 3]); // overlong and unterminated
        let got = collect_with(&input, max);
        assert_eq!(got.len(), 5);
        assert_eq!(got[0], (1, b"a".to_vec(), true));
        assert_eq!(got[1], (2, b"<too long>".to_vec(), true));
        assert_eq!(got[2], (3, b"b".to_vec(), true));
        assert_eq!((got[3].0, got[3].1.len()), (4, max + 1));
        assert_eq!(got[4], (5, b"<too long>".to_vec(), true));
    }

    #[test]
    fn reads_from_a_trickling_source() {
        // A pipe hands out a few bytes at a time: lines must still come out whole.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(3);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut r = Lines::new(Trickle(b"{\"a\":1}\n\n{\"bb\":22}\r\nlast"));
        let mut got = Vec::new();
        while let Next::Line(l) = r.next_line().unwrap() {
            got.push((String::from_utf8(l.bytes.to_vec()).unwrap(), l.terminated));
        }
        assert_eq!(
            got,
            vec![
                ("{\"a\":1}".to_string(), true),
                (String::new(), true),
                ("{\"bb\":22}".to_string(), true),
                ("last".to_string(), false),
            ]
        );
    }

    #[test]
    fn blank_detection() {
        assert!(is_blank(b" \t"));
        assert!(!is_blank(b" x"));
    }
}
