//! Input sources and the streaming line reader: stdin or files, one reused buffer, line
//! numbers, BOM/CRLF handling, overlong lines skipped, and a missing final newline noticed.
//!
//! Nothing here interprets JSON, and no error message ever contains line content.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
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

    /// Open for reading.
    pub fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        Ok(match self {
            Source::Stdin => Box::new(io::stdin()),
            Source::File(p) => Box::new(File::open(p)?),
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

#[cfg(unix)]
fn stdin_is_regular_file() -> bool {
    use std::os::fd::AsFd;
    let fd = io::stdin().as_fd().try_clone_to_owned();
    match fd {
        Ok(fd) => File::from(fd)
            .metadata()
            .map(|m| m.is_file())
            .unwrap_or(false),
        Err(_) => false,
    }
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

/// A streaming line reader with constant memory (one buffer, reused).
pub struct Lines<R> {
    inner: BufReader<R>,
    buf: Vec<u8>,
    number: u64,
}

impl<R: Read> Lines<R> {
    pub fn new(inner: R) -> Self {
        Lines {
            inner: BufReader::with_capacity(READ_BUFFER_BYTES, inner),
            buf: Vec::new(),
            number: 0,
        }
    }

    /// The next line. I/O errors are returned as is; the caller reports them with the source.
    pub fn next_line(&mut self) -> io::Result<Next<'_>> {
        self.buf.clear();
        let mut too_long = false;
        let mut terminated = false;
        let mut read_any = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                break;
            }
            read_any = true;
            let (take, found) = match memchr(b'\n', chunk) {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            if !too_long {
                if self.buf.len() + take > MAX_LINE_BYTES + 2 {
                    too_long = true;
                    // Free the memory now: the rest of this line is discarded unseen.
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(&chunk[..take]);
                }
            }
            self.inner.consume(take);
            if found {
                terminated = true;
                break;
            }
        }
        if !read_any {
            return Ok(Next::Eof);
        }
        self.number += 1;
        if too_long {
            return Ok(Next::TooLong {
                number: self.number,
            });
        }
        let mut line: &[u8] = &self.buf;
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
        }
        Ok(Next::Line(Line {
            number: self.number,
            bytes: line,
            terminated,
        }))
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|b| *b == needle)
}

/// True when a line holds nothing but whitespace.
pub fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8]) -> Vec<(u64, Vec<u8>, bool)> {
        let mut r = Lines::new(input);
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
    fn blank_detection() {
        assert!(is_blank(b" \t"));
        assert!(!is_blank(b" x"));
    }
}
