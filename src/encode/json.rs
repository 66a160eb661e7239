//! Compact JSON writing, byte for byte what `serde_json` writes, with a faster string
//! escaper: text is tested eight bytes at a time, a clean word is skipped and a word with
//! an escape goes straight to its first one, where `serde_json` looks up every byte.
//! Strings are most of what the encoders write (in the benchmark's session logs, with an
//! escape every 19 bytes: JSON quoted in JSON), and their escaping was a tenth of the
//! sanitizing thread's time. A value's JSON text can also be written as a string literal
//! in one pass ([`write_value_as_str`]): OTLP carries input and output that way. The word
//! test is `decode::jsonline`'s, which skips strings by the same bytes.

use serde_json::{Map, Value};

use crate::decode::jsonline::json_escapes_in;

/// `serde_json`'s escapes: 0 for none, `u` for `\u00XX`, otherwise the letter after `\`.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Append the escape of byte `c` (one that needs it); `NESTED`: that escape itself escaped
/// as string content (its backslash doubled, and a quote or backslash it names escaped).
fn escape<const NESTED: bool>(out: &mut Vec<u8>, c: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let esc = ESCAPE[usize::from(c)];
    if NESTED {
        out.extend_from_slice(b"\\\\");
        match esc {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            e => out.push(e),
        }
    } else {
        out.push(b'\\');
        out.push(esc);
    }
    if esc == b'u' {
        out.extend_from_slice(&[
            b'0',
            b'0',
            HEX[usize::from(c >> 4)],
            HEX[usize::from(c & 0xf)],
        ]);
    }
}

/// `s` as a JSON string literal.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    str_as::<false>(out, s);
}

/// `s` as a JSON string literal; `NESTED`: that literal written as the content of another
/// string (its quotes and escapes escaped once more).
fn str_as<const NESTED: bool>(out: &mut Vec<u8>, s: &str) {
    let quote: &[u8] = if NESTED { b"\\\"" } else { b"\"" };
    let b = s.as_bytes();
    out.reserve(b.len() + 2 * quote.len());
    out.extend_from_slice(quote);
    let mut run = 0; // start of the bytes not yet copied
    let mut i = 0;
    // Eight bytes at a time: skip a clean word, or go straight to its first escape.
    while let Some(word) = b.get(i..i + 8) {
        let found = json_escapes_in(u64::from_le_bytes(word.try_into().expect("eight bytes")));
        if found == 0 {
            i += 8;
            continue;
        }
        let at = i + found.trailing_zeros() as usize / 8;
        out.extend_from_slice(&b[run..at]);
        escape::<NESTED>(out, b[at]);
        run = at + 1;
        i = at + 1;
    }
    for (at, &c) in b.iter().enumerate().skip(i) {
        if ESCAPE[usize::from(c)] != 0 {
            out.extend_from_slice(&b[run..at]);
            escape::<NESTED>(out, c);
            run = at + 1;
        }
    }
    out.extend_from_slice(&b[run..]);
    out.extend_from_slice(quote);
}

/// A JSON value, compact, object keys in the map's order.
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    value_as::<false>(out, v);
}

/// The JSON text of `v` as a JSON string literal: what `write_str` writes of `to_string(v)`,
/// without the text in between (the OTLP encoder's input and output attributes, JSON
/// carried as a string).
pub fn write_value_as_str(out: &mut Vec<u8>, v: &Value) {
    out.push(b'"');
    value_as::<true>(out, v);
    out.push(b'"');
}

/// `NESTED`: the value's JSON text as string content. Only quotes and what strings escape
/// change; brackets, colons, commas, numbers and literals need no escape.
fn value_as<const NESTED: bool>(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => serde_json::to_writer(&mut *out, n).expect("writing to memory"),
        Value::String(s) => str_as::<NESTED>(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                value_as::<NESTED>(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => map_as::<NESTED>(out, map),
    }
}

/// A JSON object.
pub fn write_map(out: &mut Vec<u8>, map: &Map<String, Value>) {
    map_as::<false>(out, map);
}

fn map_as<const NESTED: bool>(out: &mut Vec<u8>, map: &Map<String, Value>) {
    if map.is_empty() {
        out.extend_from_slice(b"{}");
        return;
    }
    for (i, (k, v)) in map.iter().enumerate() {
        key_as::<NESTED>(out, i == 0, k);
        value_as::<NESTED>(out, v);
    }
    out.push(b'}');
}

/// The start of an object member: `{` before the first, `,` before the others, then the
/// quoted name and `:`. The caller writes the value, and `}` after the last.
pub fn write_key(out: &mut Vec<u8>, first: bool, name: &str) {
    key_as::<false>(out, first, name);
}

fn key_as<const NESTED: bool>(out: &mut Vec<u8>, first: bool, name: &str) {
    out.push(if first { b'{' } else { b',' });
    str_as::<NESTED>(out, name);
    out.push(b':');
}

/// A JSON value as text.
pub fn to_string(v: &Value) -> String {
    let mut out = Vec::new();
    write_value(&mut out, v);
    String::from_utf8(out).expect("JSON written from strings is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_bytes_are_those_serde_json_writes() {
        let every_byte: String = (0u8..128).map(char::from).collect();
        let mut strings = vec![
            String::new(),
            every_byte.clone(),
            "plain text longer than eight bytes, no escapes at all".into(),
            "é ü 漢字 🦀 \u{7f} \u{2028}".into(),
            "\"\\\"\\\\".into(),
        ];
        // Every escaped byte at every offset of a word, and at the end; also followed by the
        // next byte up (` ` after 0x1f, `#` after `"`), which the word test may flag falsely.
        for c in (0u8..0x20).chain([b'"', b'\\']) {
            for at in 0..17 {
                let mut s = "abcdefghijklmnopq".to_string();
                s.insert(at, char::from(c));
                strings.push(s.clone());
                s.insert(at + 1, char::from(c + 1));
                strings.push(s);
            }
        }
        for s in &strings {
            let mut out = Vec::new();
            write_str(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
        let value = json!({
            "z": [null, true, false, 0, -1, u64::MAX, i64::MIN, 1.5, -0.0, 1e21, 2.5e-8],
            "a": {"nested": {"deep": [every_byte, {}, []]}},
            "": "",
            "key \"quoted\"\n": strings,
        });
        assert_eq!(to_string(&value), serde_json::to_string(&value).unwrap());
        // The same text as string content, for every string above as a value too.
        for v in strings.iter().map(|s| json!(s)).chain([value]) {
            let mut nested = Vec::new();
            write_value_as_str(&mut nested, &v);
            let text = serde_json::to_string(&v).unwrap();
            assert_eq!(nested, serde_json::to_vec(&text).unwrap(), "{text}");
        }
    }
}
