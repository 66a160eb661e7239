//! Payload limits on JSON values: deep truncation at UTF-8 character boundaries with a marker
//! saying how much was cut, placeholders for images and base64 blobs, a nesting bound, and
//! serialized-size measurement. Every walk is iterative, so adversarial depth cannot overflow
//! the stack.

use serde_json::{Map, Value};

/// Containers nested deeper than this are replaced by a marker. Real payloads nest a dozen
/// levels; the encoders downstream serialize recursively, so the bound keeps them safe.
pub const MAX_DEPTH: usize = 64;
/// A run of base64 characters at least this long is a blob, not text. Well above package
/// integrity hashes (88 chars), SHA-512 hex (128) and JWT segments.
pub const LONG_BASE64_RUN_CHARS: usize = 1_024;
/// A `data:…;base64,` URI with a payload at least this long is replaced.
pub const MIN_DATA_URI_PAYLOAD_CHARS: usize = 16;
/// `data` of an image block shorter than this is left alone (a `blob:sha256:` reference, say).
const MIN_IMAGE_DATA_CHARS: usize = 16;
/// Strings only this much over the water level stay whole: the marker would cost about as
/// much as the cut saves.
const TRUNCATION_SLACK_CHARS: usize = 32;

const TRUNCATION_MARKER_HEAD: &str = "…[truncated ";
const TRUNCATION_MARKER_TAIL: &str = " chars]";
const DEPTH_MARKER: &str = "…[truncated: nested deeper than the depth limit]";

/// Keys that name the media type next to base64 data (pi/omp, Anthropic, OpenAI, Gemini).
const MEDIA_TYPE_KEYS: [&str; 6] = [
    "mimeType",
    "mime_type",
    "media_type",
    "mediaType",
    "contentType",
    "content_type",
];
/// Keys that hold base64 payloads in image/file blocks.
const BLOB_KEYS: [&str; 4] = ["data", "b64_json", "base64", "bytes"];

/// What one `limit` call did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cuts {
    /// Strings shortened.
    pub strings: u64,
    /// Containers replaced for being too deep.
    pub deep: u64,
    /// Base64 runs and data URIs replaced by placeholders.
    pub blobs: u64,
}

impl Cuts {
    /// Whether any text was lost to a budget (blobs are counted separately).
    pub fn truncated(&self) -> bool {
        self.strings > 0 || self.deep > 0
    }
}

/// Replace image blocks and `data:` URIs, wherever they sit, by placeholders naming the media
/// type and size. Returns how many were replaced.
///
/// Runs before redaction: the payload is dropped whole, so no fragment of anything it might
/// contain survives, and the redactor does not spend time scanning megabytes of pixels.
pub fn strip_media(value: &mut Value) -> u64 {
    let mut replaced = 0;
    let mut stack: Vec<&mut Value> = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => {
                if let Some((clean, n)) = replace_data_uris(s) {
                    *s = clean;
                    replaced += n;
                }
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            Value::Object(map) => {
                replaced += replace_block_payload(map);
                stack.extend(map.values_mut());
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    replaced
}

/// An image/file block (`{"type":"image","data":…,"mimeType":…}`, Anthropic's
/// `{"type":"base64","media_type":…,"data":…}`, OpenAI's `b64_json`): replace its payload.
fn replace_block_payload(map: &mut Map<String, Value>) -> u64 {
    let media_type = MEDIA_TYPE_KEYS
        .iter()
        .find_map(|k| map.get(*k).and_then(Value::as_str))
        .map(str::to_string);
    let typed = map
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.contains("image") || t == "base64" || t == "file" || t == "document");
    let mut replaced = 0;
    for key in BLOB_KEYS {
        let blob_key = key != "data" || media_type.is_some() || typed;
        let Some(Value::String(s)) = map.get_mut(key) else {
            continue;
        };
        if !blob_key || s.len() < MIN_IMAGE_DATA_CHARS {
            continue;
        }
        if let Some(len) = base64_payload_len(s) {
            let mime = media_type
                .clone()
                .unwrap_or_else(|| sniff_media_type(s).to_string());
            *s = placeholder(&mime, len);
            replaced += 1;
        }
    }
    replaced
}

/// Deep-limit a value to `budget_chars` characters of string content: bound the nesting,
/// replace long base64 runs and data URIs, then cut the longest strings down to a common
/// length (water-filling) so short strings — names, ids, small arguments — stay whole.
pub fn limit(value: &mut Value, budget_chars: usize) -> Cuts {
    let mut cuts = Cuts {
        deep: bound_depth(value, MAX_DEPTH),
        ..Cuts::default()
    };
    let mut lens: Vec<usize> = Vec::new();
    for_each_string(value, |s| {
        if let Some((clean, n)) = replace_inline_blobs(s) {
            *s = clean;
            cuts.blobs += n;
        }
        lens.push(s.len());
    });
    // Bytes first: no fewer than characters, so when they fit, the characters do, and
    // nothing needs counting.
    if lens.iter().sum::<usize>() <= budget_chars {
        return cuts;
    }
    let mut i = 0;
    for_each_string(value, |s| {
        lens[i] = s.chars().count();
        i += 1;
    });
    let Some(level) = water_level(&lens, budget_chars) else {
        return cuts;
    };
    let mut i = 0;
    for_each_string(value, |s| {
        let len = lens[i];
        i += 1;
        if len > level + TRUNCATION_SLACK_CHARS && cut_to(s, level, len) {
            cuts.strings += 1;
        }
    });
    cuts
}

/// Cut one string to at most `max_chars` characters (plus the marker). Returns whether it cut.
pub fn limit_str(s: &mut String, max_chars: usize) -> bool {
    if s.len() <= max_chars {
        return false; // bytes ≥ chars, so it fits
    }
    let len = s.chars().count();
    len > max_chars && cut_to(s, max_chars, len)
}

/// The common length strings are cut to so that the total fits `budget`, or None if it
/// already fits.
fn water_level(lens: &[usize], budget: usize) -> Option<usize> {
    let total: usize = lens.iter().sum();
    if total <= budget {
        return None;
    }
    let mut sorted = lens.to_vec();
    sorted.sort_unstable();
    let mut remaining = budget;
    for (i, &l) in sorted.iter().enumerate() {
        let left = sorted.len() - i;
        if l.saturating_mul(left) <= remaining {
            remaining -= l;
        } else {
            return Some(remaining / left);
        }
    }
    Some(remaining)
}

/// Keep the first `keep` characters of `s` (whose length is `len` characters) and append a
/// marker. A marker left by an earlier cut is folded in, so the count stays the total.
fn cut_to(s: &mut String, keep: usize, len: usize) -> bool {
    let (body_end, earlier) = match trailing_marker(s) {
        Some((at, n)) => (at, n),
        None => (s.len(), 0),
    };
    let marker_chars = s[body_end..].chars().count();
    let body_chars = len - marker_chars;
    if body_chars <= keep {
        return false;
    }
    let cut_at = char_offset(&s[..body_end], keep);
    let cut = body_chars - keep + earlier;
    s.truncate(cut_at);
    s.push_str(TRUNCATION_MARKER_HEAD);
    s.push_str(&cut.to_string());
    s.push_str(TRUNCATION_MARKER_TAIL);
    true
}

/// The byte offset of character `n` of `s` (counted from 0), or `s.len()` when it has no
/// more: `char_indices().nth(n)`, without stepping through the characters one at a time.
/// The characters before it are counted a stretch of bytes at a time: a stretch as long as
/// the characters still to pass holds at most that many, so it never passes the target.
fn char_offset(s: &str, n: usize) -> usize {
    let b = s.as_bytes();
    let is_start = |c: u8| (c as i8) >= -0x40; // not a UTF-8 continuation byte
    let (mut at, mut left) = (0, n);
    while left >= 64 && at < b.len() {
        let step = left.min(b.len() - at);
        left -= b[at..at + step].iter().filter(|&&c| is_start(c)).count();
        at += step;
    }
    for (i, &c) in b[at..].iter().enumerate() {
        if is_start(c) {
            if left == 0 {
                return at + i;
            }
            left -= 1;
        }
    }
    b.len()
}

/// `(byte offset, chars cut)` of a truncation marker ending `s`.
fn trailing_marker(s: &str) -> Option<(usize, usize)> {
    let head = s.strip_suffix(TRUNCATION_MARKER_TAIL)?;
    let at = head.rfind(TRUNCATION_MARKER_HEAD)?;
    let digits = &head[at + TRUNCATION_MARKER_HEAD.len()..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((at, digits.parse().ok()?))
}

/// Replace containers deeper than `max_depth` by a marker; return how many.
fn bound_depth(value: &mut Value, max_depth: usize) -> u64 {
    let mut cut = 0;
    let mut stack: Vec<(&mut Value, usize)> = vec![(value, 0)];
    while let Some((v, depth)) = stack.pop() {
        let nonempty = match &*v {
            Value::Array(a) => !a.is_empty(),
            Value::Object(m) => !m.is_empty(),
            _ => false,
        };
        if depth >= max_depth && nonempty {
            let deep = std::mem::replace(v, Value::String(DEPTH_MARKER.to_string()));
            dismantle(deep);
            cut += 1;
            continue;
        }
        match v {
            Value::Array(items) => stack.extend(items.iter_mut().map(|x| (x, depth + 1))),
            Value::Object(map) => stack.extend(map.values_mut().map(|x| (x, depth + 1))),
            _ => {}
        }
    }
    cut
}

/// Drop a value without recursion (serde_json's own drop recurses once per level).
pub fn dismantle(value: Value) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.into_iter().map(|(_, x)| x)),
            _ => {}
        }
    }
}

/// Visit every string value (not keys) in a fixed order.
fn for_each_string(value: &mut Value, mut f: impl FnMut(&mut String)) {
    let mut stack: Vec<&mut Value> = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => f(s),
            // Reversed so that strings are visited in document order (stable, and the order
            // two walks over the same value agree on).
            Value::Array(items) => stack.extend(items.iter_mut().rev()),
            Value::Object(map) => stack.extend(map.values_mut().rev()),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// Serialized (compact JSON) length in bytes, computed without serializing or recursing.
pub fn json_len(value: &Value) -> usize {
    let mut n = 0;
    let mut stack: Vec<&Value> = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Null => n += 4,
            Value::Bool(b) => n += if *b { 4 } else { 5 },
            Value::Number(x) => n += x.to_string().len(),
            Value::String(s) => n += escaped_len(s),
            Value::Array(items) => {
                n += 2 + items.len().saturating_sub(1);
                stack.extend(items.iter());
            }
            Value::Object(map) => {
                // Braces, commas, and a colon per entry.
                n += 2 + map.len().saturating_sub(1) + map.len();
                for (k, x) in map {
                    n += escaped_len(k);
                    stack.push(x);
                }
            }
        }
    }
    n
}

/// Length of a JSON string literal, quotes included, as serde_json escapes it.
pub fn escaped_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// Bytes of the standard and URL-safe base64 alphabets (`[A-Za-z0-9+/_-]`), as a table:
/// these scans run over every string a record carries.
const BASE64_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_');
        i += 1;
    }
    t
};

fn is_base64_byte(b: u8) -> bool {
    BASE64_BYTES[b as usize]
}

/// [`is_base64_byte`] in arithmetic the compiler can vectorize (image payloads are long).
fn base64_byte_wide(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    letter | digit | (b == b'+') | (b == b'/') | (b == b'-') | (b == b'_')
}

/// Whole-string base64 (standard or URL-safe, optional padding and line breaks): the bytes
/// it decodes to, checked and counted in one pass (image payloads run to megabytes).
fn base64_payload_len(s: &str) -> Option<usize> {
    let mut chars = 0;
    for chunk in s.trim_end_matches('=').as_bytes().chunks(BASE64_CHUNK) {
        let (n, bad) = base64_chunk(chunk);
        if bad {
            return None;
        }
        chars += n;
    }
    Some(chars * 3 / 4)
}

/// Bytes a base64 payload of this text decodes to.
fn decoded_len(payload: &str) -> usize {
    let chars: usize = payload
        .as_bytes()
        .chunks(BASE64_CHUNK)
        .map(|chunk| base64_chunk(chunk).0)
        .sum();
    chars * 3 / 4
}

/// Bytes per step of [`base64_chunk`]: its counts are bytes, so at most 255.
const BASE64_CHUNK: usize = 64;

/// The base64 characters in `chunk`, and whether it holds anything besides them and line
/// breaks. Counted in bytes, not `usize`: byte lanes, so the loop runs 16 bytes a step
/// where a `usize` count ran 2 (image payloads run to megabytes).
#[inline]
fn base64_chunk(chunk: &[u8]) -> (usize, bool) {
    let (n, bad) = chunk.iter().fold((0u8, 0u8), |(n, bad), &b| {
        let c = base64_byte_wide(b);
        (
            n + u8::from(c),
            bad | u8::from(!(c | (b == b'\n') | (b == b'\r'))),
        )
    });
    (usize::from(n), bad != 0)
}

/// Guess the media type from the first base64 characters (the file's magic bytes).
fn sniff_media_type(b64: &str) -> &'static str {
    const MAGIC: [(&str, &str); 10] = [
        ("iVBORw0KGgo", "image/png"),
        ("/9j/", "image/jpeg"),
        ("R0lGOD", "image/gif"),
        ("UklGR", "image/webp"),
        ("PHN2Zy", "image/svg+xml"),
        ("SUkq", "image/tiff"),
        ("AAABAA", "image/x-icon"),
        ("JVBERi0", "application/pdf"),
        ("UEsDB", "application/zip"),
        ("H4sI", "application/gzip"),
    ];
    MAGIC
        .iter()
        .find(|(m, _)| b64.starts_with(m))
        .map_or("application/octet-stream", |(_, t)| t)
}

/// The text that stands in for a blob.
fn placeholder(media_type: &str, bytes: usize) -> String {
    // The media type came from the payload's own block; keep it short and printable.
    let mt: String = media_type
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "/+.-".contains(*c))
        .take(64)
        .collect();
    format!("[omitted {mt}, {bytes} bytes]")
}

/// Replace every `data:<type>;base64,<payload>` URI in `s`. None when there is none.
fn replace_data_uris(s: &str) -> Option<(String, u64)> {
    memchr::memmem::find(s.as_bytes(), b"data:")?;
    let mut out = String::new();
    let mut last = 0;
    let mut n = 0;
    for (at, _) in s.match_indices("data:") {
        if at < last {
            continue;
        }
        if let Some((len, mime, payload)) = parse_data_uri(&s[at..]) {
            out.push_str(&s[last..at]);
            out.push_str(&placeholder(
                if mime.is_empty() { "text/plain" } else { mime },
                decoded_len(payload),
            ));
            last = at + len;
            n += 1;
        }
    }
    if n == 0 {
        return None;
    }
    out.push_str(&s[last..]);
    Some((out, n))
}

/// `(length, media type, payload)` of a base64 data URI at the start of `s`.
fn parse_data_uri(s: &str) -> Option<(usize, &str, &str)> {
    let rest = s.strip_prefix("data:")?;
    let mime_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'+' | b'.' | b'-'))
        .count();
    let mime = &rest[..mime_len];
    let mut i = mime_len;
    let bytes = rest.as_bytes();
    let mut base64 = false;
    while i < bytes.len() && bytes[i] == b';' {
        let param_len = bytes[i + 1..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'.' | b'_' | b'-'))
            .count();
        base64 = &rest[i + 1..i + 1 + param_len] == "base64";
        i += 1 + param_len;
    }
    if !base64 || bytes.get(i) != Some(&b',') {
        return None;
    }
    let start = i + 1;
    let payload_len = bytes[start..]
        .iter()
        .take_while(|&&b| is_base64_byte(b) || b == b'=' || b == b'%')
        .count();
    if payload_len < MIN_DATA_URI_PAYLOAD_CHARS {
        return None;
    }
    Some((
        "data:".len() + start + payload_len,
        mime,
        &rest[start..start + payload_len],
    ))
}

/// Replace data URIs and long base64 runs inside text. None when there is none.
fn replace_inline_blobs(s: &str) -> Option<(String, u64)> {
    let (with_uris, mut n) = match replace_data_uris(s) {
        Some((t, n)) => (Some(t), n),
        None => (None, 0),
    };
    let text = with_uris.as_deref().unwrap_or(s);
    if text.len() < LONG_BASE64_RUN_CHARS {
        return with_uris.map(|t| (t, n));
    }
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut last = 0;
    let mut i = 0;
    // `i` is always at the start of a base64 run or at a byte outside the alphabet. Only runs
    // of LONG_BASE64_RUN_CHARS or more matter, so look at the last byte of the window a
    // long run starting here would cover, then back from it: ordinary text rules the window
    // out after a byte or two and the scan jumps ahead by a whole window.
    while i + LONG_BASE64_RUN_CHARS <= bytes.len() {
        let probe = i + LONG_BASE64_RUN_CHARS - 1;
        if !is_base64_byte(bytes[probe]) {
            i = probe + 1;
            continue;
        }
        if let Some(q) = bytes[i..probe].iter().rposition(|&b| !is_base64_byte(b)) {
            i += q + 1;
            continue;
        }
        let start = i;
        let (mut lower, mut upper, mut digit) = (false, false, false);
        while i < bytes.len() && is_base64_byte(bytes[i]) {
            let b = bytes[i];
            lower |= b.is_ascii_lowercase();
            upper |= b.is_ascii_uppercase();
            digit |= b.is_ascii_digit();
            i += 1;
        }
        let mut padding = 0;
        while i < bytes.len() && bytes[i] == b'=' && padding < 2 {
            i += 1;
            padding += 1;
        }
        // Mixed classes: long hex digests and letter-only runs are not base64 blobs.
        if i - start >= LONG_BASE64_RUN_CHARS && lower && upper && digit {
            let run = &text[start..i];
            out.push_str(&text[last..start]);
            out.push_str(&placeholder(sniff_media_type(run), decoded_len(run)));
            last = i;
            n += 1;
        }
    }
    if last == 0 {
        return with_uris.map(|t| (t, n));
    }
    out.push_str(&text[last..]);
    Some((out, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_offset_is_char_indices_nth() {
        let texts = [
            String::new(),
            "plain ascii text ".repeat(40),
            "é".repeat(300),
            "añb€c😀".repeat(120),
            format!(
                "{}{}{}",
                "x".repeat(100),
                "漢字".repeat(100),
                "y".repeat(100)
            ),
            "😀".repeat(200) + "end",
        ];
        for t in &texts {
            for n in (0..t.chars().count() + 70)
                .step_by(7)
                .chain([63, 64, 65, 127, 128])
            {
                let want = t.char_indices().nth(n).map_or(t.len(), |(i, _)| i);
                assert_eq!(char_offset(t, n), want, "n={n} len={}", t.len());
            }
        }
    }
    use serde_json::json;

    #[test]
    fn base64_payloads_are_checked_and_measured_across_chunks() {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::STANDARD;
        for len in [0, 1, 47, 48, 49, 96, 1000, 70_000] {
            let raw: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let text = engine.encode(&raw);
            // Within a byte of the decoded size (padding is not counted).
            let got = base64_payload_len(&text).unwrap();
            assert!(got <= len && len - got <= 2, "{len}: {got}");
            assert_eq!(decoded_len(&text), got, "{len}");
            // Line breaks every 76 characters change nothing.
            let wrapped: Vec<&str> = text
                .as_bytes()
                .chunks(76)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            assert_eq!(
                base64_payload_len(&wrapped.join("\r\n")),
                Some(got),
                "{len}"
            );
            // One byte outside the alphabet anywhere, in any 64-byte chunk, is not base64.
            if text.len() > 130 {
                for at in [0, 63, 64, 129, text.len() - 1] {
                    let mut bad = text.clone().into_bytes();
                    bad[at] = b' ';
                    let bad = String::from_utf8(bad).unwrap();
                    assert_eq!(base64_payload_len(&bad), None, "{len} at {at}");
                }
            }
        }
    }

    fn b64_blob(n: usize) -> String {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[(x % 64) as usize] as char
            })
            .collect()
    }

    /// The straightforward scan `replace_inline_blobs` must agree with.
    fn inline_blobs_reference(text: &str) -> Option<(String, u64)> {
        let bytes = text.as_bytes();
        let (mut out, mut last, mut i, mut n) = (String::new(), 0, 0, 0);
        while i < bytes.len() {
            if !is_base64_byte(bytes[i]) {
                i += 1;
                continue;
            }
            let start = i;
            let (mut lower, mut upper, mut digit) = (false, false, false);
            while i < bytes.len() && is_base64_byte(bytes[i]) {
                let b = bytes[i];
                lower |= b.is_ascii_lowercase();
                upper |= b.is_ascii_uppercase();
                digit |= b.is_ascii_digit();
                i += 1;
            }
            let mut padding = 0;
            while i < bytes.len() && bytes[i] == b'=' && padding < 2 {
                i += 1;
                padding += 1;
            }
            if i - start >= LONG_BASE64_RUN_CHARS && lower && upper && digit {
                let run = &text[start..i];
                out.push_str(&text[last..start]);
                out.push_str(&placeholder(sniff_media_type(run), decoded_len(run)));
                last = i;
                n += 1;
            }
        }
        if last == 0 {
            return None;
        }
        out.push_str(&text[last..]);
        Some((out, n))
    }

    #[test]
    fn the_wide_base64_test_is_the_table() {
        for b in 0..=255u8 {
            assert_eq!(base64_byte_wide(b), is_base64_byte(b), "{b}");
        }
    }

    #[test]
    fn inline_blob_scan_agrees_with_the_plain_scan() {
        let blob = b64_blob(3000);
        let cases = [
            String::new(),
            "plain text, nothing to see".repeat(200),
            format!("before {blob} after"),
            format!("{blob}=="),
            format!("{}x{}", &blob[..1023], &blob[..1023]),
            blob[..1024].to_string(),
            format!("a {}", &blob[..1023]),
            "abcdefghij".repeat(300), // long but one class only
            format!("{blob}==={blob}\n{}", "é".repeat(700)),
            format!("{}{}", "x y ".repeat(400), &blob[..2000]),
            format!("{}=={}", &blob[..600], &blob[..600]),
        ];
        for text in cases {
            assert_eq!(
                replace_inline_blobs(&text),
                inline_blobs_reference(&text),
                "{}",
                &text[..text.len().min(80)]
            );
        }
    }

    #[test]
    fn short_values_are_untouched() {
        let mut v = json!({"a": "short", "b": [1, 2, {"c": "x"}]});
        let before = v.clone();
        assert_eq!(limit(&mut v, 1000), Cuts::default());
        assert_eq!(v, before);
    }

    #[test]
    fn the_budget_counts_characters_not_bytes() {
        // 1,000 characters in 2,000 bytes fit a budget of 1,000; 3,100 do not, and the
        // longest string is cut down to what the others leave.
        let mut v = json!({"a": "é".repeat(900), "b": "ü".repeat(100)});
        let before = v.clone();
        assert_eq!(limit(&mut v, 1_000), Cuts::default());
        assert_eq!(v, before);
        let mut v = json!({"a": "é".repeat(3_000), "b": "ü".repeat(100)});
        assert_eq!(limit(&mut v, 1_000).strings, 1);
        let a = v["a"].as_str().unwrap();
        assert!(a.starts_with(&"é".repeat(900)) && !a.starts_with(&"é".repeat(901)));
        assert_eq!(v["b"], json!("ü".repeat(100)));
    }

    #[test]
    fn long_string_is_cut_with_a_marker_counting_what_went() {
        let mut v = json!("a".repeat(10_000));
        let cuts = limit(&mut v, 1_000);
        assert_eq!(cuts.strings, 1);
        let s = v.as_str().unwrap();
        assert_eq!(s, format!("{}…[truncated 9000 chars]", "a".repeat(1_000)));
    }

    #[test]
    fn multibyte_text_is_cut_on_char_boundaries() {
        for unit in ["é", "中", "🎉", "a\u{301}", "ü€"] {
            let mut v = json!({"x": unit.repeat(5_000)});
            limit(&mut v, 777);
            let s = v["x"].as_str().unwrap();
            // Valid UTF-8 by construction of `String`; check the counts add up.
            let body = s.split(TRUNCATION_MARKER_HEAD).next().unwrap();
            assert_eq!(body.chars().count(), 777, "{unit}");
            let total = unit.chars().count() * 5_000;
            assert!(
                s.ends_with(&format!("{}{}", total - 777, TRUNCATION_MARKER_TAIL)),
                "{unit}"
            );
            assert!(serde_json::to_string(&v).is_ok());
        }
    }

    #[test]
    fn water_filling_keeps_short_strings_whole() {
        let mut v = json!({"name": "bash", "cmd": "ls -la", "out": "x".repeat(100_000), "err": "y".repeat(50_000)});
        let cuts = limit(&mut v, 10_000);
        assert_eq!(cuts.strings, 2);
        assert_eq!(v["name"], "bash");
        assert_eq!(v["cmd"], "ls -la");
        let out = v["out"].as_str().unwrap();
        let err = v["err"].as_str().unwrap();
        assert!(out.starts_with(&"x".repeat(4_995)) && !out.starts_with(&"x".repeat(4_996)));
        assert!(err.starts_with(&"y".repeat(4_995)) && !err.starts_with(&"y".repeat(4_996)));
    }

    #[test]
    fn truncating_again_folds_the_earlier_count_in() {
        let mut s = "z".repeat(1_000);
        assert!(limit_str(&mut s, 500));
        assert!(s.ends_with("…[truncated 500 chars]"));
        assert!(limit_str(&mut s, 100));
        assert_eq!(s, format!("{}…[truncated 900 chars]", "z".repeat(100)));
        // Already within the limit (the marker is not counted against the body).
        let before = s.clone();
        let mut v = json!(s);
        limit(&mut v, 10_000);
        assert_eq!(v, json!(before));
    }

    #[test]
    fn image_blocks_and_data_uris_become_placeholders() {
        let png = format!("iVBORw0KGgo{}", b64_blob(4_000));
        let mut v = json!([
            {"type": "image", "data": png.clone(), "mimeType": "image/png"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": b64_blob(2_000)}},
            {"type": "image_url", "image_url": {"url": format!("data:image/webp;base64,{}", b64_blob(800))}},
            {"type": "text", "text": format!("see ![x](data:image/gif;base64,{}) here", b64_blob(100))},
            {"type": "image", "data": "blob:sha256:abc", "mimeType": "image/png"},
            {"data": "plain words here, not base64 at all"}
        ]);
        assert_eq!(strip_media(&mut v), 4);
        assert_eq!(
            v[0]["data"],
            format!("[omitted image/png, {} bytes]", png.len() * 3 / 4)
        );
        assert_eq!(v[0]["mimeType"], "image/png");
        assert_eq!(v[1]["source"]["data"], "[omitted image/jpeg, 1500 bytes]");
        assert_eq!(v[2]["image_url"]["url"], "[omitted image/webp, 600 bytes]");
        assert_eq!(v[3]["text"], "see ![x]([omitted image/gif, 75 bytes]) here");
        assert_eq!(v[4]["data"], "blob:sha256:abc");
        assert_eq!(v[5]["data"], "plain words here, not base64 at all");
    }

    #[test]
    fn long_base64_runs_in_text_are_replaced_but_digests_stay() {
        let digest = "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==";
        let hex = "ab".repeat(1_000);
        let blob = format!("JVBERi0{}", b64_blob(3_000));
        let text = format!("integrity {digest}\nhex {hex}\npdf {blob}==\nend");
        let mut v = json!(text);
        let cuts = limit(&mut v, 1_000_000);
        assert_eq!(cuts.blobs, 1);
        assert_eq!(cuts.strings, 0);
        let expected = format!(
            "integrity {digest}\nhex {hex}\npdf [omitted application/pdf, {} bytes]\nend",
            blob.len() * 3 / 4
        );
        assert_eq!(v, json!(expected));
    }

    #[test]
    fn deep_nesting_is_bounded_without_recursion() {
        // Built iteratively, far deeper than any recursive walk could go.
        let mut v = json!("leaf");
        for i in 0..100_000 {
            // Not `json!([v])`: the macro serializes its arguments, recursively.
            v = if i % 2 == 0 {
                Value::Array(vec![v])
            } else {
                Value::Object(Map::from_iter([("k".to_string(), v)]))
            };
        }
        let cuts = limit(&mut v, 1_000);
        assert_eq!(cuts.deep, 1);
        // Now shallow enough for serde_json (recursive) to serialize and parse back.
        let text = serde_json::to_string(&v).unwrap();
        assert!(text.contains("nested deeper"));
        assert_eq!(json_len(&v), text.len());
        let mut depth = 0;
        let mut cur = &v;
        loop {
            cur = match cur {
                Value::Array(a) => &a[0],
                Value::Object(m) => &m["k"],
                _ => break,
            };
            depth += 1;
        }
        assert_eq!(depth, MAX_DEPTH);
    }

    #[test]
    fn json_len_matches_serde() {
        let v = json!({
            "s": "quote \" backslash \\ newline \n tab \t ctrl \u{1} del \u{7f} é 中 🎉",
            "n": [1, -2, 3.5, 1e300, 0],
            "b": [true, false, null],
            "o": {"": {}, "a": []},
        });
        assert_eq!(json_len(&v), serde_json::to_string(&v).unwrap().len());
    }

    #[test]
    fn water_level_is_exact() {
        assert_eq!(water_level(&[1, 2, 3], 10), None);
        assert_eq!(water_level(&[10, 100, 1000], 310), Some(200));
        assert_eq!(water_level(&[0, 0, 5000], 100), Some(100));
    }
}
