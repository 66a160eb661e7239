//! Parsing one input line into the JSON the decoders read. Fields that no decoder reads for
//! a line's type are checked for JSON syntax and skipped, never built: most of omp's bytes
//! are copies of messages in lines whose payload nobody reads (`message_start`, `turn_end`,
//! `agent_end`, the bridge's `context` …), and skipping is several times cheaper than
//! building a tree.
//!
//! A skipped field is checked for JSON syntax only, by the rules of `serde_json`'s own
//! skipping (`IgnoredAny`): nesting deeper than serde_json's limit, a number out of range,
//! a lone surrogate escape or invalid UTF-8 inside one of its strings no longer costs the
//! whole line. Built fields are parsed by `serde_json`, as fully as ever. The line's object
//! is walked here rather than through `serde_json`'s `MapAccess`, so a skipped string is
//! scanned eight bytes at a time to its next quote, backslash or control byte (the
//! session logs' strings hold an escape every 19 bytes, and `serde_json`'s skipping
//! stopped at each one for a call or two). Anything unusual (not an object, a second
//! `type`, a syntax error) goes to a full parse, so errors are always reported exactly as
//! a full parse reports them.

use serde_json::{Map, Value};

/// Which top-level fields of an object line to build, by the line's `type`.
pub type Rules = fn(&str) -> Keep;

/// What to build of a line of one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Every field.
    All,
    /// Only these top-level fields (and `type`); the rest is skipped.
    Only(&'static [&'static str]),
}

/// Parse one line like `serde_json::from_slice::<Value>`, building only what `rules` keep.
/// Fields that come before `type` are always built.
pub fn parse(bytes: &[u8], rules: Rules) -> Result<Value, serde_json::Error> {
    match object_line(bytes, rules) {
        Some(v) => Ok(v),
        // Not an object, a type whose fields are all built, two different `type` keys
        // (the last wins in a full parse), or an error: the full parse decides and words
        // the error.
        None => whole(bytes),
    }
}

/// Parse a whole line as `serde_json::from_slice::<Value>` does (the same value, the same
/// error): built by [`full`] where it can, else by `serde_json`.
pub fn whole(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    full(bytes).map_or_else(|| serde_json::from_slice(bytes), Ok)
}

/// An object line with only the kept fields built; `None` for anything a full parse
/// should decide.
fn object_line(b: &[u8], rules: Rules) -> Option<Value> {
    let mut i = ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(b, i + 1);
    let mut out = Map::new();
    let mut keep = Keep::All;
    let mut ty: Option<String> = None;
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            let (key, at) = key_at(b, i)?;
            i = at;
            let wanted = key == "type"
                || match keep {
                    Keep::All => true,
                    Keep::Only(fields) => fields.contains(&key.as_str()),
                };
            if wanted {
                let (v, end) = value_at(b, i)?;
                i = end;
                if key == "type" {
                    let name = v.as_str().unwrap_or("");
                    match &ty {
                        None => {
                            keep = rules(name);
                            if keep == Keep::All {
                                return None;
                            }
                            ty = Some(name.to_string());
                        }
                        Some(first) if first != name || !v.is_string() => return None,
                        Some(_) => {}
                    }
                }
                out.insert(key, v);
            } else {
                i = skip_value(b, i)?;
            }
            i = ws(b, i);
            match b.get(i) {
                Some(b',') => i = ws(b, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (ws(b, i) == b.len()).then_some(Value::Object(out))
}

/// Past JSON whitespace from `i`.
fn ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\n' | b'\t' | b'\r')) {
        i += 1;
    }
    i
}

/// An object key at `i` (its opening quote) and where its value starts (past the colon).
fn key_at(b: &[u8], i: usize) -> Option<(String, usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let (key, end) = Build(b).string(i + 1)?;
    Some((key, past_colon(b, end)?))
}

/// The end of the key string at `i` (past its closing quote).
fn key_end(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    skip_str(b, i + 1)
}

/// Past the colon after a key that ends at `end`, and the whitespace after it.
fn past_colon(b: &[u8], end: usize) -> Option<usize> {
    let colon = ws(b, end);
    (b.get(colon) == Some(&b':')).then(|| ws(b, colon + 1))
}

/// One value at `i` and where it ends: built as [`full`] builds, else by `serde_json`.
fn value_at(b: &[u8], i: usize) -> Option<(Value, usize)> {
    if let Some(built) = Build(b).value(i, 0) {
        return Some(built);
    }
    let mut values = serde_json::Deserializer::from_slice(&b[i..]).into_iter::<Value>();
    let v = values.next()?.ok()?;
    Some((v, i + values.byte_offset()))
}

/// Past the value at `i` (whitespace skipped), checked as `serde_json` checks a value it
/// ignores: strings for their escapes and control bytes, numbers and literals for their
/// grammar, containers for their commas, colons and closing brackets, at any depth.
fn skip_value(b: &[u8], mut i: usize) -> Option<usize> {
    // The containers open around the current value (`[` or `{`).
    let mut open: Vec<u8> = Vec::new();
    loop {
        i = ws(b, i);
        match *b.get(i)? {
            b'"' => i = skip_str(b, i + 1)?,
            c @ (b'[' | b'{') => {
                let close = if c == b'[' { b']' } else { b'}' };
                i = ws(b, i + 1);
                if b.get(i) == Some(&close) {
                    i += 1;
                } else {
                    open.push(c);
                    if c == b'{' {
                        i = key_at_end(b, i)?;
                    }
                    continue;
                }
            }
            b't' => i = literal(b, i, b"true")?,
            b'f' => i = literal(b, i, b"false")?,
            b'n' => i = literal(b, i, b"null")?,
            b'-' => i = number(b, i + 1)?,
            b'0'..=b'9' => i = number(b, i)?,
            _ => return None,
        }
        // After a value: close what it ends, or go on to the next element.
        loop {
            let Some(&c) = open.last() else {
                return Some(i);
            };
            i = ws(b, i);
            match (*b.get(i)?, c) {
                (b',', _) => {
                    i = ws(b, i + 1);
                    if c == b'{' {
                        i = key_at_end(b, i)?;
                    }
                    break;
                }
                (b']', b'[') | (b'}', b'{') => {
                    open.pop();
                    i += 1;
                }
                _ => return None,
            }
        }
    }
}

/// Past a skipped object's key at `i` and its colon.
fn key_at_end(b: &[u8], i: usize) -> Option<usize> {
    past_colon(b, key_end(b, i)?)
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    b[i..].starts_with(word).then_some(i + word.len())
}

/// Past the digits of a number at `i` (after its sign): `0` or a digit run not starting
/// with 0, then an optional fraction and exponent, each with at least one digit.
fn number(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    match *b.get(i)? {
        b'0' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => return None,
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(i + 1),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        let end = digits(i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let end = digits(i);
        if end == i {
            return None;
        }
        i = end;
    }
    Some(i)
}

/// Past the rest of a string whose opening quote is before `i`: its closing quote. Every
/// escape must be one JSON has (`\u` with four hex digits, any code point), and no byte
/// may be a control byte; UTF-8 is not checked (as `serde_json` does not when skipping).
fn skip_str(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = next_special(b, i)?;
        match b[i] {
            b'"' => return Some(i + 1),
            b'\\' => match *b.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' if b.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => i += 6,
                _ => return None,
            },
            _ => return None,
        }
    }
}

/// The first quote, backslash or control byte at or after `i` in a string's text: eight
/// bytes at a time, then byte by byte near the end.
fn next_special(b: &[u8], mut i: usize) -> Option<usize> {
    while let Some(word) = b.get(i..i + 8) {
        let found = json_escapes_in(u64::from_le_bytes(word.try_into().ok()?));
        if found != 0 {
            return Some(i + found.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    while !matches!(*b.get(i)?, b'"' | b'\\' | ..0x20) {
        i += 1;
    }
    Some(i)
}

/// Parse a whole JSON text as `serde_json::from_slice::<Value>` does, or `None` wherever
/// that parse might say something else: an error (invalid UTF-8 in a string among them), a
/// lone surrogate escape, nesting near its limit, a number it reads as a float or too
/// large for 64 bits (the caller then asks `serde_json`, which decides and words any
/// error). Strings are scanned eight bytes at a time to their next quote, backslash or
/// control byte, and copied a stretch at a time: session logs' strings hold an escape
/// every 19 bytes, where `serde_json` stops for several calls.
pub fn full(b: &[u8]) -> Option<Value> {
    let (v, end) = Build(b).value(ws(b, 0), 0)?;
    (ws(b, end) == b.len()).then_some(v)
}

/// Nesting past which [`full`] leaves a text to `serde_json` (whose limit is 128).
const FULL_MAX_DEPTH: usize = 100;

/// The text [`full`] builds from.
struct Build<'t>(&'t [u8]);

impl Build<'_> {
    /// The value at `i` (no whitespace before it) and where it ends.
    fn value(&self, i: usize, depth: usize) -> Option<(Value, usize)> {
        let b = self.0;
        Some(match *b.get(i)? {
            b'"' => {
                let (s, end) = self.string(i + 1)?;
                (Value::String(s), end)
            }
            b'{' => self.object(ws(b, i + 1), depth + 1)?,
            b'[' => self.array(ws(b, i + 1), depth + 1)?,
            b't' => (Value::Bool(true), literal(b, i, b"true")?),
            b'f' => (Value::Bool(false), literal(b, i, b"false")?),
            b'n' => (Value::Null, literal(b, i, b"null")?),
            b'-' | b'0'..=b'9' => self.number(i)?,
            _ => return None,
        })
    }

    /// An object's members from `i` (past its brace and whitespace). Of two equal keys the
    /// last wins, as in `serde_json`.
    fn object(&self, i: usize, depth: usize) -> Option<(Value, usize)> {
        let mut map = Map::new();
        let end = self.members(i, depth, b'}', |i| {
            if self.0.get(i) != Some(&b'"') {
                return None;
            }
            let (key, end) = self.string(i + 1)?;
            let (v, end) = self.value(past_colon(self.0, end)?, depth)?;
            map.insert(key, v);
            Some(end)
        })?;
        Some((Value::Object(map), end))
    }

    /// An array's elements from `i` (past its bracket and whitespace).
    fn array(&self, i: usize, depth: usize) -> Option<(Value, usize)> {
        let mut items = Vec::new();
        let end = self.members(i, depth, b']', |i| {
            let (v, end) = self.value(i, depth)?;
            items.push(v);
            Some(end)
        })?;
        Some((Value::Array(items), end))
    }

    /// A container's members from `i` to its `close`, comma-separated: `member` reads one
    /// at where it starts and says where it ends.
    fn members(
        &self,
        mut i: usize,
        depth: usize,
        close: u8,
        mut member: impl FnMut(usize) -> Option<usize>,
    ) -> Option<usize> {
        let b = self.0;
        if depth > FULL_MAX_DEPTH {
            return None;
        }
        if b.get(i) == Some(&close) {
            return Some(i + 1);
        }
        loop {
            i = ws(b, member(i)?);
            match *b.get(i)? {
                b',' => i = ws(b, i + 1),
                c if c == close => return Some(i + 1),
                _ => return None,
            }
        }
    }

    /// The rest of a string whose opening quote is before `i`, unescaped, and where it
    /// ends (past its closing quote).
    fn string(&self, from: usize) -> Option<(String, usize)> {
        let b = self.0;
        // To the first quote, backslash or control byte: a string without escapes is
        // copied once, whole.
        let mut i = next_special(b, from)?;
        match b[i] {
            b'"' => {
                let s = std::str::from_utf8(&b[from..i]).ok()?.to_owned();
                return Some((s, i + 1));
            }
            b'\\' => {}
            _ => return None,
        }
        let mut s = Vec::with_capacity(2 * (i - from) + 16);
        s.extend_from_slice(&b[from..i]);
        // At an escape's backslash.
        loop {
            let (c, len) = unescape(b, i + 1)?;
            if c.is_ascii() {
                s.push(c as u8);
            } else {
                s.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            }
            i += 1 + len;
            // Copied a word at a time (each written whole, the last cut back), so the
            // stretches between escapes cost no call each.
            loop {
                if let Some(word) = b.get(i..i + 8) {
                    let word: [u8; 8] = word.try_into().ok()?;
                    s.extend_from_slice(&word);
                    let found = json_escapes_in(u64::from_le_bytes(word));
                    if found == 0 {
                        i += 8;
                        continue;
                    }
                    let k = found.trailing_zeros() as usize / 8;
                    s.truncate(s.len() - 8 + k);
                    i += k;
                }
                match *b.get(i)? {
                    b'"' => return Some((String::from_utf8(s).ok()?, i + 1)),
                    b'\\' => break,
                    ..0x20 => return None,
                    c => {
                        s.push(c);
                        i += 1;
                    }
                }
            }
        }
    }

    /// The number at `i`. Integers of up to 18 digits are built here, as `serde_json`
    /// builds them (`u64`, or `i64` when negative); the rest are read by `serde_json`.
    fn number(&self, i: usize) -> Option<(Value, usize)> {
        let b = self.0;
        let negative = b[i] == b'-';
        let digits = i + usize::from(negative);
        let end = number(b, digits)?;
        let int = &b[digits..end];
        if int.len() <= 18 && int.iter().all(u8::is_ascii_digit) {
            let n = int.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            match (negative, i64::try_from(n)) {
                (false, _) => return Some((Value::from(n), end)),
                // `-0` is a float to `serde_json`.
                (true, Ok(n)) if n != 0 => return Some((Value::from(-n), end)),
                _ => {}
            }
        }
        Some((serde_json::from_slice(&b[i..end]).ok()?, end))
    }
}

/// The escape whose letter is at `i` (past the backslash): its character and its length
/// after the backslash. `None` for what JSON has no escape for and for a surrogate that
/// is not half of a pair.
fn unescape(b: &[u8], i: usize) -> Option<(char, usize)> {
    let c = match *b.get(i)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let unit = hex4(b, i + 1)?;
            if !(0xD800..0xDC00).contains(&unit) {
                return Some((char::from_u32(unit)?, 5));
            }
            if b.get(i + 5..i + 7)? != b"\\u" {
                return None;
            }
            let low = hex4(b, i + 7)?;
            if !(0xDC00..0xE000).contains(&low) {
                return None;
            }
            let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
            return Some((char::from_u32(c)?, 11));
        }
        _ => return None,
    };
    Some((c, 1))
}

/// Four hex digits at `i`.
fn hex4(b: &[u8], i: usize) -> Option<u32> {
    b.get(i..i + 4)?
        .iter()
        .try_fold(0, |n, &d| Some(n << 4 | char::from(d).to_digit(16)?))
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The bytes of `w` (little-endian) that end a run of plain string text in JSON, a
/// control byte, `"` or `\`, as their high bits. Bytes above a flagged one may be flagged
/// falsely (a borrow), never below: the lowest flag is exact.
pub fn json_escapes_in(w: u64) -> u64 {
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    control | zero_in(w ^ (ONES * u64::from(b'"'))) | zero_in(w ^ (ONES * u64::from(b'\\')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The line parse as it was built before this walk: `serde_json`'s own `MapAccess`,
    /// skipped fields read as `IgnoredAny`. The walk must agree with it on every line.
    mod reference {
        use super::super::{Keep, Rules};
        use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
        use serde_json::{Map, Value};
        use std::fmt;

        pub fn parse(bytes: &[u8], rules: Rules) -> Result<Value, serde_json::Error> {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            match Line(rules)
                .deserialize(&mut de)
                .and_then(|p| de.end().map(|()| p))
            {
                Ok(Some(v)) => Ok(v),
                Ok(None) | Err(_) => serde_json::from_slice(bytes),
            }
        }

        struct Line(Rules);

        impl<'de> DeserializeSeed<'de> for Line {
            type Value = Option<Value>;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
                d.deserialize_any(self)
            }
        }

        impl<'de> Visitor<'de> for Line {
            type Value = Option<Value>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Value>, A::Error> {
                let (mut out, mut keep, mut ty) = (Map::new(), Keep::All, None::<String>);
                while let Some(key) = map.next_key::<String>()? {
                    let wanted = key == "type"
                        || match keep {
                            Keep::All => true,
                            Keep::Only(fields) => fields.contains(&key.as_str()),
                        };
                    if !wanted {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                    let v: Value = map.next_value()?;
                    if key == "type" {
                        let name = v.as_str().unwrap_or("");
                        match &ty {
                            None => (keep, ty) = ((self.0)(name), Some(name.to_string())),
                            Some(first) if first != name || !v.is_string() => {
                                while map.next_key::<IgnoredAny>()?.is_some() {
                                    map.next_value::<IgnoredAny>()?;
                                }
                                return Ok(None);
                            }
                            Some(_) => {}
                        }
                    }
                    out.insert(key, v);
                }
                Ok(Some(Value::Object(out)))
            }
            // Anything else: the full parse decides.
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> Result<Option<Value>, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(None)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Option<Value>, E> {
                Ok(None)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Option<Value>, E> {
                Ok(None)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Option<Value>, E> {
                Ok(None)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Option<Value>, E> {
                Ok(None)
            }
            fn visit_str<E>(self, _: &str) -> Result<Option<Value>, E> {
                Ok(None)
            }
            fn visit_unit<E>(self) -> Result<Option<Value>, E> {
                Ok(None)
            }
        }
    }

    /// Both parses of one line: the same value, or the same error at the same place.
    fn agree(line: &[u8]) {
        match (parse(line, only_a), reference::parse(line, only_a)) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{}", String::from_utf8_lossy(line)),
            (Err(a), Err(b)) => assert_eq!(
                (a.classify(), a.line(), a.column()),
                (b.classify(), b.line(), b.column()),
                "{}",
                String::from_utf8_lossy(line)
            ),
            (a, b) => panic!("{}: {a:?} against {b:?}", String::from_utf8_lossy(line)),
        }
    }

    #[test]
    fn the_walk_agrees_with_serde_json_on_lines_and_their_mutations() {
        let lines: Vec<&[u8]> = vec![
            br#"{"type":"x","a":1,"b":{"k":[1,-2.5e+3,0.25,true,false,null,"s\"q\\\/\b\f\n\r\t\u00e9"],"e":{},"f":[]}}"#,
            br#" { "b" : [ 1 , { "c" : "d" } ] , "type" : "x" , "a" : "\ud800" , "z" : -0 } "#,
            br#"{"type":"y","a":{"deep":[[[]]]},"b":"text with \"quotes\" and \\ and \u00e9 \ud83d\ude00"}"#,
            br#"{"type":7,"a":1,"b":2}"#,
            br#"{"type":"x","type":"x","b":[1E5,2e-3,-0.0,0,10,0.5]}"#,
            br#"{"type":"x","b":"a\u12ab\u00FFz","a":[],"\u0061":3}"#,
            br#"{}"#,
            br#"{"a":1}"#,
            b"{\"type\":\"x\",\"b\":\"\xff\xfe \xc3\xa9 ok\",\"a\":2}",
        ];
        let replacements = b"\"\\,:{}[] 0-.eExun\x01\xff\t";
        let mut tried = 0;
        for line in &lines {
            agree(line);
            for at in 0..line.len() {
                agree(&line[..at]);
                let mut removed = line.to_vec();
                removed.remove(at);
                agree(&removed);
                for &r in replacements {
                    let mut changed = line.to_vec();
                    changed[at] = r;
                    agree(&changed);
                    let mut inserted = line.to_vec();
                    inserted.insert(at, r);
                    agree(&inserted);
                }
                tried += 2 + 2 * replacements.len();
            }
        }
        assert!(tried > 10_000, "{tried} lines");
    }

    /// The full parse where it builds a value: the value `serde_json` builds, written the
    /// same (`-0.0` and `0.0` are equal values but not the same text).
    fn full_agrees(line: &[u8]) -> bool {
        let Some(ours) = full(line) else {
            return false;
        };
        let text = String::from_utf8_lossy(line);
        let theirs = serde_json::from_slice::<Value>(line)
            .unwrap_or_else(|e| panic!("{text}: built {ours}, serde_json says {e}"));
        assert_eq!(ours, theirs, "{text}");
        assert_eq!(ours.to_string(), theirs.to_string(), "{text}");
        true
    }

    #[test]
    fn the_full_parse_agrees_with_serde_json_on_texts_and_their_mutations() {
        let texts: Vec<&[u8]> = vec![
            br#"{"type":"x","a":1,"b":{"k":[1,-2.5e+3,0.25,true,false,null,"s\"q\\\/\b\f\n\r\t\u00e9"],"e":{},"f":[]}}"#,
            br#" { "b" : [ 1 , { "c" : "d" } ] , "a" : "\ud83d\ude00" , "z" : -0 , "n" : -7 } "#,
            br#"{"a":{"deep":[[[]]]},"b":"text with \"quotes\" and \\ and \u00e9 \uD83D\uDE00 and \u0000"}"#,
            br#"{"a":1,"a":2,"b":[1E5,2e-3,-0.0,0,10,0.5,123456789012345678,18446744073709551615,-9223372036854775808]}"#,
            b"{\"b\":\"a\\u12ab\\u00FFz\\ud800\\udfff\",\"a\":[],\"\\u0061\":3,\"\xc3\xa9\":\"\xc3\xbc\\n\"}",
            b"[\"long plain text that runs past eight bytes \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 and \\n one escape\"]",
            br#"{}"#,
            br#""#,
        ];
        let replacements = b"\"\\,:{}[] 0-.eExun\x01\t\xff\xa9";
        let mut built = 0;
        for text in &texts {
            full_agrees(text);
            for at in 0..text.len() {
                let mut variants = vec![text[..at].to_vec()];
                let mut removed = text.to_vec();
                removed.remove(at);
                variants.push(removed);
                for &r in replacements {
                    let mut changed = text.to_vec();
                    changed[at] = r;
                    variants.push(changed);
                    let mut inserted = text.to_vec();
                    inserted.insert(at, r);
                    variants.push(inserted);
                }
                built += variants.iter().filter(|v| full_agrees(v)).count();
            }
        }
        // Most mutations break the text; enough of them still parse to test the builder.
        assert!(built > 500, "{built} texts built");
        // The texts themselves are built, not left to serde_json.
        for text in &texts[..6] {
            assert!(full_agrees(text), "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn the_full_parse_leaves_surrogates_deep_nests_and_errors_to_serde_json() {
        for text in [
            r#""\ud800""#,
            r#""\udc00\ud800""#,
            r#""\ud800\u0041""#,
            "\"\u{1}\"",
            r#"{"a":1,}"#,
            r#"[1,2"#,
            r#"01"#,
            "[1e400]",
            r#"{"a":1} x"#,
        ] {
            assert_eq!(full(text.as_bytes()), None, "{text}");
        }
        let deep = format!(
            "{}1{}",
            "[".repeat(FULL_MAX_DEPTH + 1),
            "]".repeat(FULL_MAX_DEPTH + 1)
        );
        assert_eq!(full(deep.as_bytes()), None);
        let shallow = format!(
            "{}1{}",
            "[".repeat(FULL_MAX_DEPTH),
            "]".repeat(FULL_MAX_DEPTH)
        );
        assert!(full_agrees(shallow.as_bytes()));
    }

    fn only_a(ty: &str) -> Keep {
        match ty {
            "x" => Keep::Only(&["a"]),
            _ => Keep::All,
        }
    }

    fn p(s: &str) -> Result<Value, serde_json::Error> {
        parse(s.as_bytes(), only_a)
    }

    #[test]
    fn skips_unwanted_fields_of_listed_types_only() {
        assert_eq!(
            p(r#"{"type":"x","a":1,"b":{"big":[1,2,3]}}"#).unwrap(),
            json!({"type":"x","a":1})
        );
        assert_eq!(
            p(r#"{"type":"y","a":1,"b":[2]}"#).unwrap(),
            json!({"type":"y","a":1,"b":[2]})
        );
        // Fields before `type` are built (the type is not known yet).
        assert_eq!(
            p(r#"{"b":2,"type":"x","c":3}"#).unwrap(),
            json!({"b":2,"type":"x"})
        );
    }

    #[test]
    fn a_second_type_key_gets_a_full_parse() {
        assert_eq!(
            p(r#"{"type":"x","b":1,"type":"y"}"#).unwrap(),
            json!({"type":"y","b":1})
        );
    }

    #[test]
    fn errors_and_non_objects_are_as_a_full_parse_says() {
        for bad in [
            r#"{"type":"x","b":"#,
            r#"{"type":"x","b":[1,}"#,
            r#"{"type":"x","a":"\q"}"#,
            "[1,2",
            "",
            r#"{"type":"x"} trailing"#,
        ] {
            let full = serde_json::from_str::<Value>(bad).unwrap_err();
            let ours = p(bad).unwrap_err();
            assert_eq!(
                (ours.classify(), ours.column()),
                (full.classify(), full.column()),
                "{bad}"
            );
        }
        assert_eq!(p("[1,{}]").unwrap(), json!([1, {}]));
        assert_eq!(p("null").unwrap(), Value::Null);
        assert_eq!(p("-2.5").unwrap(), json!(-2.5));
        // Invalid UTF-8 in a built field is reported like the full parse does.
        let raw = b"{\"type\":\"x\",\"a\":\"\xff\"}";
        let full = serde_json::from_slice::<Value>(raw).unwrap_err();
        let ours = parse(raw, only_a).unwrap_err();
        assert_eq!(ours.column(), full.column());
        // In a skipped one it goes unnoticed.
        let raw = b"{\"type\":\"x\",\"a\":1,\"b\":\"\xff\"}";
        assert_eq!(parse(raw, only_a).unwrap(), json!({"type":"x","a":1}));
    }

    #[test]
    fn skipped_fields_are_only_syntax_checked() {
        // Past the recursion limit, inside a field nobody reads: the line is kept.
        let deep = format!(
            r#"{{"type":"x","a":1,"b":{}1{}}}"#,
            "[".repeat(500),
            "]".repeat(500)
        );
        assert_eq!(p(&deep).unwrap(), json!({"type":"x","a":1}));
        assert!(serde_json::from_str::<Value>(&deep).is_err());
        // In a field that is built, the full parse's limits hold.
        let deep_a = format!(
            r#"{{"type":"x","a":{}1{}}}"#,
            "[".repeat(500),
            "]".repeat(500)
        );
        assert!(p(&deep_a).is_err());
    }
}
