//! Secret redaction: known token formats, secret-looking environment and secrets-file values,
//! secret-named JSON keys and user patterns, each replaced by `[REDACTED:<kind>]`.
//!
//! Cost model: one Aho-Corasick pass over every string finds the literal keywords of the
//! built-in rules (and the literal secret values) at once; only the rules whose keywords occur
//! run their regex. `NAME=value`-style rules, whose keywords are common words, are matched
//! anchored right after each keyword instead of over the string; in large strings the other
//! rules search only windows around their keywords. Clean text therefore costs about one
//! automaton scan and comes back borrowed.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError, RwLock};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use anyhow::Context as _;
use regex::Regex;
use regex_automata::util::captures::Captures;
use regex_automata::{Anchored, Input, PatternID, Span as MatchSpan, meta};
use serde_json::{Map, Value};

use super::assign::{self, Strength};
use super::blocks::Blocks;

/// Redactions per kind. Kinds are static names; values are never kept.
pub type RedactCounts = BTreeMap<&'static str, u64>;

/// Every replacement starts with this, so a second pass can recognise its own work.
pub const MARKER_PREFIX: &str = "[REDACTED:";

/// Kind of a literal value taken from this process's environment.
pub const KIND_ENV_VALUE: &str = "env-value";
/// Kind of a literal value taken from `--secrets-file`.
pub const KIND_SECRETS_FILE_VALUE: &str = "secrets-file-value";
/// Kind of a string stored under a secret-named JSON key (`api_key`, `password`, …).
pub const KIND_SECRET_FIELD: &str = "secret-field";
/// Kind of a match of a user pattern (`--redact REGEX`).
pub const KIND_CUSTOM: &str = "custom";

/// Literal values shorter than this are ignored: a short value (`1`, `true`, `admin`) would wipe
/// ordinary text everywhere it occurs.
pub const MIN_LITERAL_SECRET_CHARS: usize = 8;
/// No built-in format fits in fewer bytes (`pwd=abcd`, the shortest URL credential), so shorter
/// strings skip the scan unless user patterns exist.
const MIN_SCAN_BYTES: usize = 8;
/// A secrets-file value under a name that does not look secret still counts when it looks
/// like a credential (mixed letters and digits, no spaces) and is at least this long.
const MIN_UNNAMED_FILE_SECRET_CHARS: usize = 16;
/// How many levels of JSON string escaping of a literal value are matched too.
const LITERAL_ESCAPE_LEVELS: usize = 2;
/// Strings longer than this are searched in windows around keyword occurrences.
const WINDOWED_MIN_BYTES: usize = 64 * 1024;
/// A match may start this far before its keyword (`scheme://user:` before `://`, the 76
/// characters before `AZDO`, the 86 before `==`).
const WINDOW_BEFORE_BYTES: usize = 256;
/// Matches are searched for this far after the keyword; a longer match is followed to its end.
const WINDOW_AFTER_BYTES: usize = 256;
/// Windows pay off while there is at most one per this many bytes of text.
const SPARSE_WINDOW_BYTES: usize = 4 * 1024;
/// A token glued to the word before it (`secondspplx-…`) counts when that word is at most
/// this long; a longer run is a blob the prefix happens to occur in.
const GLUED_WORD_MAX_BYTES: usize = 24;
/// Fixed-size bitset of fired rules (no allocation per string); the rule table must fit.
const RULE_BITSET_WORDS: usize = 4;
const MAX_RULES: usize = RULE_BITSET_WORDS * 64;
/// Overlap ties between a rule and a literal or user pattern go to the rule (better label).
const PRIORITY_LITERAL: usize = MAX_RULES;
const PRIORITY_CUSTOM: usize = MAX_RULES + 1;

/// What a candidate match must also satisfy. The regex finds the shape; the check rejects
/// shapes that are ordinary text (variable references, prose, code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// The format is distinctive on its own.
    Always,
    /// A value found by context (header, flag, connection string): skip `$VAR`, `${VAR}`,
    /// `{{var}}`, `<placeholder>`, `***`.
    NotPlaceholder,
    /// Context value that must also look random (digits and letters, or long mixed case).
    Random,
    /// Bearer token: random-looking or long.
    RandomOrLong,
    /// A loosely shaped prefix token (`re_…`, `fw_…`): digits and letters, or mixed case, as
    /// generated tokens have and `snake_case` identifiers do not.
    MixedChars,
    /// `Basic <base64>` that decodes to `user:password`.
    BasicCredentials,
    /// `Password=…` in a `;`-separated connection string.
    ConnectionString,
    /// `user:password` from a CLI flag, where the password is not just digits (`-u 1000:1000`).
    NotNumeric,
    /// A cookie header value (has `name=value`).
    Cookie,
    /// A Discord bot token: its first segment must be base64 of a decimal user id.
    DiscordBotToken,
}

/// One built-in rule. Groups named `s…` (unquoted) or `q…` (quoted) mark the part to redact;
/// without them the whole match goes. A group `n` captures the variable or key name.
struct RuleDef {
    kind: &'static str,
    /// Literals (matched ASCII-case-insensitively) of which one must occur for the rule to
    /// run. Empty: it runs on every string.
    keywords: &'static [&'static str],
    form: Form,
    pattern: &'static str,
    check: Check,
}

/// How a rule looks for its matches.
#[derive(Clone, Copy)]
enum Form {
    /// The regex is searched over the whole string once a keyword occurs in it. Right for
    /// patterns that start with a literal, which the regex engine finds at memchr speed.
    Scan,
    /// The regex is matched anchored right after each occurrence of a keyword, and the name
    /// is the keyword extended backwards. For `NAME=value`-style rules, whose keywords
    /// (`key`, `token`) are frequent and whose patterns start with a character class: a
    /// whole-string search would cost a full pass per string; this costs a few bytes per
    /// keyword occurrence. `next` rejects most occurrences on the byte after the keyword.
    Tail {
        name: NameRule,
        next: fn(u8) -> bool,
    },
    /// A hand-written finder, for a shape with no literal at all to search for.
    Custom(fn(&str, &mut Vec<(usize, usize)>)),
}

/// How the name of a `Tail` rule extends backwards from its keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameRule {
    /// The keyword is the whole name (it must not follow an identifier character).
    Keyword,
}

const fn rule(
    kind: &'static str,
    keywords: &'static [&'static str],
    pattern: &'static str,
    check: Check,
) -> RuleDef {
    RuleDef {
        kind,
        keywords,
        form: Form::Scan,
        pattern,
        check,
    }
}

const fn tail_rule(
    kind: &'static str,
    keywords: &'static [&'static str],
    name: NameRule,
    next: fn(u8) -> bool,
    pattern: &'static str,
    check: Check,
) -> RuleDef {
    RuleDef {
        kind,
        keywords,
        form: Form::Tail { name, next },
        pattern,
        check,
    }
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Mailgun's newer private keys: 32 hex, dash, 8 hex, dash, 8 hex, as a whole word. No
/// literal to search for, so scan the dashes (memchr) and check the shape around each.
fn find_hex_32_8_8(text: &str, out: &mut Vec<(usize, usize)>) {
    let b = text.as_bytes();
    for i in memchr::memchr_iter(b'-', b) {
        if i < 32 || i + 18 > b.len() || !is_lower_hex(b[i - 1]) {
            continue;
        }
        let start = i - 32;
        let end = i + 18;
        if b[start..i].iter().all(|&c| is_lower_hex(c))
            && (start == 0 || !is_word_byte(b[start - 1]))
            && b[i + 1..i + 9].iter().all(|&c| is_lower_hex(c))
            && b[i + 9] == b'-'
            && b[i + 10..end].iter().all(|&c| is_lower_hex(c))
            && (end == b.len() || !is_word_byte(b[end]))
        {
            out.push((start, end));
        }
    }
}

/// A Kubernetes `Secret`'s `data:` is searched this far before and after its `kind: Secret`.
const K8S_WINDOW_BEFORE_BYTES: usize = 4 << 10;
const K8S_WINDOW_AFTER_BYTES: usize = 32 << 10;

/// One line of YAML: byte range of its content, and its indentation (a list item's `- `
/// counts as indentation, so `- kind: Secret` is a sibling of the `data:` below it).
struct YamlLine {
    start: usize,
    end: usize,
    indent: usize,
    item: bool,
}

/// The lines of `text` split at `newline` (`"\n"`, or `"\\n"` for YAML inside a JSON string,
/// where a line also ends at the next backslash: `\"`).
fn yaml_lines(text: &str, newline: &str) -> Vec<YamlLine> {
    let escaped = newline != "\n";
    let mut lines = Vec::new();
    let mut at = 0;
    for raw in text.split(newline) {
        let line = raw.trim_end_matches('\r');
        let line = if escaped {
            line.trim_end_matches('\\')
        } else {
            line
        };
        let body = line.trim_start_matches(' ');
        let mut content = body;
        let item = body.starts_with("- ");
        if item {
            content = body[2..].trim_start_matches(' ');
        }
        let offset = line.len() - content.len();
        lines.push(YamlLine {
            start: at + offset,
            end: at + offset + content.trim_end().len(),
            indent: offset,
            item,
        });
        at += raw.len() + newline.len();
    }
    lines
}

/// The values under `data:` / `stringData:` of every Kubernetes `Secret` in `text`: YAML
/// (`kubectl get secret -o yaml`, manifests, lists of items), also inside a JSON string, and
/// JSON (`-o json`), also escaped.
fn find_kubernetes_secret_data(text: &str, out: &mut Vec<(usize, usize)>) {
    use memchr::memmem;
    // The keyword is loose (`"secret"`); look closer, and only around each `kind: Secret`
    // (a manifest is a few kilobytes; a tool output may be megabytes).
    let mut windows: Vec<Range<usize>> = Vec::new();
    for at in memmem::find_iter(text.as_bytes(), b"kind: Secret") {
        let mut start = at.saturating_sub(K8S_WINDOW_BEFORE_BYTES);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        let mut end = (at + K8S_WINDOW_AFTER_BYTES).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        match windows.last_mut() {
            Some(last) if start <= last.end => last.end = end,
            _ => windows.push(start..end),
        }
    }
    for w in windows {
        let window = &text[w.clone()];
        let mut found = Vec::new();
        find_kubernetes_secret_yaml(window, &yaml_lines(window, "\n"), &mut found);
        if memmem::find(window.as_bytes(), b"\\n").is_some() {
            find_kubernetes_secret_yaml(window, &yaml_lines(window, "\\n"), &mut found);
        }
        out.extend(found.into_iter().map(|(a, b)| (w.start + a, w.start + b)));
    }
    if memmem::find(text.as_bytes(), b"Secret\"").is_some()
        || memmem::find(text.as_bytes(), b"Secret\\").is_some()
    {
        find_kubernetes_secret_json(text, out);
    }
}

fn find_kubernetes_secret_yaml(text: &str, lines: &[YamlLine], out: &mut Vec<(usize, usize)>) {
    let content = |l: &YamlLine| &text[l.start..l.end];
    // `kind: Secret` as the line's last word: a line may carry a prefix (a prompt, a log).
    let is_kind_secret = |l: &YamlLine| {
        let c = content(l).trim_end_matches(['"', '\'']);
        c.strip_suffix("Secret").is_some_and(|h| {
            h.trim_end_matches(['"', '\'', ' '])
                .strip_suffix("kind:")
                .is_some()
        })
    };
    for (i, l) in lines.iter().enumerate() {
        let c = content(l);
        if !(c.ends_with("data:") || c.ends_with("stringData:")) || c.ends_with("_data:") {
            continue;
        }
        let d = l.indent;
        // Siblings: same indentation, within this mapping (not past a shallower line, not
        // into the next list item).
        let mut secret = false;
        let mut j = i;
        while !secret && j > 0 && !lines[j].item {
            j -= 1;
            let s = &lines[j];
            if content(s).is_empty() {
                continue;
            }
            if s.indent < d {
                break;
            }
            secret = s.indent == d && is_kind_secret(s);
        }
        for s in lines[i + 1..].iter().filter(|s| !content(s).is_empty()) {
            if secret || s.indent < d || (s.indent == d && s.item) {
                break;
            }
            secret = s.indent == d && is_kind_secret(s);
        }
        if !secret {
            continue;
        }
        // The entries below `data:`; a block scalar (`key: |`) takes its deeper lines.
        let mut block_indent: Option<usize> = None;
        for s in lines[i + 1..].iter() {
            let c = content(s);
            if c.is_empty() {
                continue;
            }
            if s.indent <= d {
                break;
            }
            if let Some(b) = block_indent {
                if s.indent > b {
                    out.push((s.start, s.end));
                    continue;
                }
                block_indent = None;
            }
            let Some(colon) = c
                .find(": ")
                .or_else(|| c.ends_with(':').then(|| c.len() - 1))
            else {
                continue;
            };
            let value = c[colon + 1..].trim_start();
            if matches!(value.chars().next(), Some('|' | '>')) || value.is_empty() {
                block_indent = Some(s.indent);
            } else {
                out.push((s.end - value.len(), s.end));
            }
        }
    }
}

fn find_kubernetes_secret_json(text: &str, out: &mut Vec<(usize, usize)>) {
    static DATA: OnceLock<Regex> = OnceLock::new();
    static ENTRY: OnceLock<Regex> = OnceLock::new();
    static KIND: OnceLock<Regex> = OnceLock::new();
    // Quotes may be escaped (`\"kind\"`: JSON inside a JSON string). Quotes and braces are
    // written `\x22`, `\x7B`, `\x7D` in the patterns.
    let kind = KIND.get_or_init(|| {
        Regex::new(r"\\*\x22kind\\*\x22\s*:\s*\\*\x22Secret\\*\x22").expect("valid")
    });
    if !kind.is_match(text) {
        return;
    }
    let data = DATA.get_or_init(|| {
        Regex::new(r"\\*\x22(?:data|stringData)\\*\x22\s*:\s*\x7B(?P<body>[^\x7B\x7D]*)\x7D")
            .expect("valid")
    });
    let entry = ENTRY.get_or_init(|| {
        Regex::new(r"\\*\x22[^\x22\\\r\n]*\\*\x22\s*:\s*\\*\x22(?P<v>[^\x22\\\r\n]*)\\*\x22")
            .expect("valid")
    });
    for caps in data.captures_iter(text) {
        let Some(body) = caps.name("body") else {
            continue;
        };
        for e in entry.captures_iter(body.as_str()) {
            if let Some(v) = e.name("v").filter(|v| !v.is_empty()) {
                out.push((body.start() + v.start(), body.start() + v.end()));
            }
        }
    }
}

use Check::*;

/// The built-in rules. Order is priority: where two rules cover the same text, the earlier
/// one names it, so specific formats come before generic context rules.
///
/// Lengths are the documented lengths used as lower bounds (upper bounds open, since providers
/// lengthen tokens); `\b` is turned into an ASCII word boundary at compile time.
static RULES: &[RuleDef] = &[
    // --- LLM providers -------------------------------------------------------------------
    rule(
        "anthropic-api-key",
        &["sk-ant-api"],
        r"sk-ant-api[0-9]{2}-[A-Za-z0-9_-]{20,}",
        Always,
    ),
    rule(
        "anthropic-admin-key",
        &["sk-ant-admin"],
        r"sk-ant-admin[0-9]{2}-[A-Za-z0-9_-]{20,}",
        Always,
    ),
    rule(
        "anthropic-oauth-token",
        &["sk-ant-oat", "sk-ant-ort"],
        r"sk-ant-o[ar]t[0-9]{2}-[A-Za-z0-9_-]{20,}",
        Always,
    ),
    rule(
        "anthropic-key",
        &["sk-ant-"],
        r"sk-ant-[A-Za-z0-9_-]{20,}",
        Always,
    ),
    rule(
        "openai-project-key",
        &["sk-proj-"],
        r"sk-proj-[A-Za-z0-9_-]{20,}",
        Always,
    ),
    rule(
        "openai-service-account-key",
        &["sk-svcacct-"],
        r"sk-svcacct-[A-Za-z0-9_-]{20,}",
        Always,
    ),
    rule(
        "openai-admin-key",
        &["sk-admin-"],
        r"sk-admin-[A-Za-z0-9_-]{20,}",
        Always,
    ),
    rule(
        "openrouter-key",
        &["sk-or-"],
        r"sk-or-v[0-9]+-[A-Za-z0-9]{32,}",
        Always,
    ),
    rule(
        "langfuse-secret-key",
        &["sk-lf-"],
        r"sk-lf-[A-Za-z0-9-]{8,}",
        Always,
    ),
    rule(
        "langfuse-public-key",
        &["pk-lf-"],
        r"pk-lf-[A-Za-z0-9-]{8,}",
        Always,
    ),
    rule("deepseek-key", &["sk-"], r"\bsk-[0-9a-f]{32}\b", Always),
    rule("openai-key", &["sk-"], r"\bsk-[A-Za-z0-9]{48}\b", Always),
    rule(
        "openai-key",
        &["t3blbkfj"],
        r"\bsk-[A-Za-z0-9_-]*T3BlbkFJ[A-Za-z0-9_-]+",
        Always,
    ),
    // Moonshot, DashScope, Kimi and other `sk-` keys; the digit/mixed-case check keeps CSS
    // class names such as `sk-folding-cube-…` out.
    rule("sk-api-key", &["sk-"], r"\bsk-[A-Za-z0-9_-]{32,}", Random),
    rule("groq-key", &["gsk_"], r"\bgsk_[A-Za-z0-9]{40,}", Always),
    rule("xai-key", &["xai-"], r"\bxai-[A-Za-z0-9_-]{40,}", Always),
    rule(
        "perplexity-key",
        &["pplx-"],
        r"\bpplx-[A-Za-z0-9]{40,}",
        Always,
    ),
    rule(
        "replicate-token",
        &["r8_"],
        r"\br8_[A-Za-z0-9]{30,}",
        Always,
    ),
    rule(
        "huggingface-token",
        &["hf_"],
        r"\bhf_[A-Za-z0-9]{30,}",
        Always,
    ),
    rule(
        "huggingface-org-token",
        &["api_org_"],
        r"\bapi_org_[A-Za-z0-9]{30,}",
        Always,
    ),
    rule("cerebras-key", &["csk-"], r"\bcsk-[a-z0-9]{40,}", Always),
    rule(
        "fireworks-key",
        &["fw_"],
        r"\bfw_[A-Za-z0-9]{24,}",
        MixedChars,
    ),
    rule(
        "tavily-key",
        &["tvly-"],
        r"\btvly-(?:dev-|prod-)?[A-Za-z0-9]{30,}",
        Always,
    ),
    rule("firecrawl-key", &["fc-"], r"\bfc-[0-9a-f]{32}\b", Always),
    rule(
        "langsmith-key",
        &["lsv2_"],
        r"\blsv2_(?:pt|sk)_[0-9a-f]{32}_[0-9a-f]{10}\b",
        Always,
    ),
    rule(
        "pinecone-key",
        &["pcsk_"],
        r"\bpcsk_[A-Za-z0-9_]{40,}",
        Always,
    ),
    // --- Cloud providers ------------------------------------------------------------------
    rule(
        "aws-access-key-id",
        &["akia", "abia", "acca", "a3t"],
        r"\b(?:A3T[A-Z0-9]|AKIA|ABIA|ACCA)[A-Z0-9]{16}\b",
        Always,
    ),
    rule(
        "aws-session-key-id",
        &["asia"],
        r"\bASIA[A-Z0-9]{16}\b",
        Always,
    ),
    rule(
        "aws-secret-access-key",
        &[
            "secret_access_key",
            "secretaccesskey",
            "secret-access-key",
            "secret access key",
            "aws_secret",
            "aws-secret",
            "aws secret",
            "secret_key",
            "secretkey",
            "secret-key",
        ],
        r"(?i)(?:secret[_ .-]?access[_ .-]?key|aws[_ .-]?secret(?:[_ .-]?key)?|secret[_-]?key)[^A-Za-z0-9/+\r\n]{1,12}(?P<s>[A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)",
        Always,
    ),
    rule(
        "aws-session-token",
        &["fwogzxivyxdz", "iqojb3jpz2lu"],
        r"(?:FwoGZXIvYXdz|IQoJb3JpZ2lu)[A-Za-z0-9/+=]{50,}",
        Always,
    ),
    rule(
        "aws-session-token",
        &[
            "session_token",
            "sessiontoken",
            "session-token",
            "security_token",
            "securitytoken",
            "security-token",
        ],
        r"(?i)(?:session|security)[_ .-]?token[^A-Za-z0-9/+\r\n]{1,12}(?P<s>[A-Za-z0-9/+=]{100,})",
        Always,
    ),
    rule(
        "aws-bedrock-api-key",
        &["absk"],
        r"\bABSK[A-Za-z0-9+/]{100,}={0,2}",
        Always,
    ),
    rule(
        "aws-bedrock-api-key",
        &["bedrock-api-key-"],
        r"bedrock-api-key-[A-Za-z0-9+/=]{50,}",
        Always,
    ),
    rule("gcp-api-key", &["aiza"], r"AIza[0-9A-Za-z_-]{33,}", Always),
    rule(
        "gcp-oauth-token",
        &["ya29."],
        r"\bya29\.[0-9A-Za-z_-]{20,}",
        Always,
    ),
    rule(
        "gcp-oauth-refresh-token",
        &["1//0"],
        r"\b1//0[0-9A-Za-z_-]{40,}",
        Always,
    ),
    rule(
        "gcp-oauth-client-secret",
        &["gocspx-"],
        r"GOCSPX-[0-9A-Za-z_-]{24,}",
        Always,
    ),
    rule(
        "gcp-service-account-key",
        &["\"private_key\""],
        r#""private_key"\s*:\s*"(?P<q>[^"]{20,})""#,
        Always,
    ),
    rule(
        "firebase-messaging-key",
        &[":apa91b"],
        r"\bAAAA[A-Za-z0-9_-]{7}:APA91b[A-Za-z0-9_-]{100,}",
        Always,
    ),
    rule(
        "azure-storage-account-key",
        &["accountkey"],
        r"(?i)AccountKey\s*=\s*(?P<s>[A-Za-z0-9+/=]{20,})",
        Always,
    ),
    rule(
        "azure-connection-string-key",
        &["sharedaccesskey", "sharedaccesssignature"],
        r#"(?i)SharedAccess(?:Key|Signature)\s*=\s*(?P<s>[^;"'\s]{20,})"#,
        Always,
    ),
    rule(
        "azure-sas-signature",
        &["sig="],
        r"[?&;]sig=(?P<s>[A-Za-z0-9%+/=]{20,})",
        Always,
    ),
    rule(
        "azure-ad-client-secret",
        &["q~"],
        r"(?:^|[^A-Za-z0-9_~.-])(?P<s>[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34})(?:$|[^A-Za-z0-9_~.-])",
        Always,
    ),
    rule(
        "azure-devops-pat",
        &["azdo"],
        r"\b[A-Za-z0-9]{76}AZDO[A-Za-z0-9]{4}\b",
        Always,
    ),
    rule(
        "alibaba-access-key-id",
        &["ltai"],
        r"\bLTAI[A-Za-z0-9]{12,20}\b",
        Always,
    ),
    rule(
        "tencent-secret-id",
        &["akid"],
        r"\bAKID[A-Za-z0-9]{32}\b",
        Always,
    ),
    rule(
        "yandex-api-key",
        &["aqvn"],
        r"\bAQVN[A-Za-z0-9_-]{35,38}",
        Always,
    ),
    rule(
        "digitalocean-token",
        &["dop_v1_", "doo_v1_", "dor_v1_"],
        r"\bdo[opr]_v1_[a-f0-9]{64}\b",
        Always,
    ),
    rule(
        "heroku-api-key",
        &["hrku-"],
        r"\bHRKU-[A-Za-z0-9_-]{40,}",
        Always,
    ),
    rule(
        "vercel-token",
        &["vcp_", "vci_", "vca_", "vcr_", "vck_"],
        r"\bvc[aikpr]_[A-Za-z0-9]{24,}",
        Always,
    ),
    rule(
        "netlify-token",
        &["nfp_"],
        r"\bnfp_[A-Za-z0-9]{36,}",
        Always,
    ),
    rule(
        "render-api-key",
        &["rnd_"],
        r"\brnd_[A-Za-z0-9]{30,}",
        Always,
    ),
    rule(
        "flyio-token",
        &["fm1", "fm2"],
        r"\bfm[12][ar]?_[A-Za-z0-9+/=_-]{100,}",
        Always,
    ),
    rule("supabase-token", &["sbp_"], r"\bsbp_[a-f0-9]{40}\b", Always),
    rule(
        "supabase-secret-key",
        &["sb_secret_"],
        r"\bsb_secret_[A-Za-z0-9_-]{20,}",
        Always,
    ),
    rule(
        "planetscale-token",
        &["pscale_"],
        r"\bpscale_(?:tkn|pw|oauth)_[A-Za-z0-9_.-]{30,}",
        Always,
    ),
    rule("pulumi-token", &["pul-"], r"\bpul-[a-f0-9]{40}\b", Always),
    rule(
        "terraform-cloud-token",
        &["atlasv1"],
        r"\b[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,}",
        Always,
    ),
    rule(
        "vault-token",
        &["hvs.", "hvb."],
        r"\bhv[sb]\.[A-Za-z0-9_-]{24,}",
        Always,
    ),
    rule(
        "doppler-token",
        &["dp."],
        // Service tokens carry the environment: `dp.st.dev.…`.
        r"\bdp\.(?:pt|st|sa|ct|scim|audit)\.(?:[a-z0-9_-]{2,35}\.)?[A-Za-z0-9]{40,}",
        Always,
    ),
    rule(
        "onepassword-service-account-token",
        &["ops_eyj"],
        r"\bops_eyJ[A-Za-z0-9+/=_-]{100,}",
        Always,
    ),
    rule(
        "infracost-key",
        &["ico-"],
        r"\bico-[A-Za-z0-9]{32}\b",
        Always,
    ),
    // --- Code hosting and CI --------------------------------------------------------------
    rule("github-pat", &["ghp_"], r"\bghp_[A-Za-z0-9]{30,}", Always),
    rule(
        "github-oauth-token",
        &["gho_"],
        r"\bgho_[A-Za-z0-9]{30,}",
        Always,
    ),
    rule(
        "github-user-token",
        &["ghu_"],
        r"\bghu_[A-Za-z0-9]{30,}",
        Always,
    ),
    rule(
        "github-app-token",
        &["ghs_"],
        r"\bghs_[A-Za-z0-9]{30,}",
        Always,
    ),
    rule(
        "github-refresh-token",
        &["ghr_"],
        r"\bghr_[A-Za-z0-9]{30,}",
        Always,
    ),
    rule(
        "github-fine-grained-pat",
        &["github_pat_"],
        r"github_pat_[A-Za-z0-9_]{50,}",
        Always,
    ),
    rule(
        "gitlab-pat",
        &["glpat-"],
        r"glpat-[A-Za-z0-9_.-]{20,}",
        Always,
    ),
    rule(
        "gitlab-deploy-token",
        &["gldt-"],
        r"gldt-[A-Za-z0-9_-]{20,}",
        Always,
    ),
    rule(
        "gitlab-runner-token",
        &["glrt-"],
        r"glrt-[A-Za-z0-9_.-]{20,}",
        Always,
    ),
    rule(
        "gitlab-runner-registration-token",
        &["gr1348941"],
        r"GR1348941[A-Za-z0-9_-]{20,}",
        Always,
    ),
    rule(
        "gitlab-pipeline-trigger-token",
        &["glptt-"],
        r"glptt-[A-Za-z0-9_-]{20,}",
        Always,
    ),
    rule(
        "gitlab-ci-job-token",
        &["glcbt-"],
        r"glcbt-[A-Za-z0-9_-]{20,}",
        Always,
    ),
    rule(
        "gitlab-feed-token",
        &["glft-"],
        r"glft-[A-Za-z0-9_-]{20,}",
        Always,
    ),
    rule(
        "gitlab-incoming-mail-token",
        &["glimt-"],
        r"glimt-[A-Za-z0-9_-]{20,}",
        Always,
    ),
    rule(
        "gitlab-scim-token",
        &["glsoat-"],
        r"glsoat-[A-Za-z0-9_-]{20,}",
        Always,
    ),
    rule(
        "gitlab-feature-flag-token",
        &["glffct-"],
        r"glffct-[A-Za-z0-9_-]{20,}",
        Always,
    ),
    rule(
        "gitlab-agent-token",
        &["glagent-"],
        r"glagent-[A-Za-z0-9_-]{20,}",
        Always,
    ),
    rule(
        "gitlab-oauth-secret",
        &["gloas-"],
        r"gloas-[A-Za-z0-9_-]{20,}",
        Always,
    ),
    rule(
        "gitlab-session-cookie",
        &["_gitlab_session="],
        r"_gitlab_session=(?P<s>[A-Za-z0-9]{20,})",
        Always,
    ),
    rule(
        "buildkite-token",
        &["bkua_"],
        r"\bbkua_[a-f0-9]{40}\b",
        Always,
    ),
    rule(
        "circleci-token",
        &["ccipat_"],
        r"\bCCIPAT_[A-Za-z0-9_]{40,}",
        Always,
    ),
    rule(
        "sourcegraph-token",
        &["sgp_"],
        r"\bsgp_(?:[a-f0-9]{16}_|local_)?[a-f0-9]{40}\b",
        Always,
    ),
    rule(
        "atlassian-api-token",
        &["atatt3"],
        r"\bATATT3[A-Za-z0-9_=-]{100,}",
        Always,
    ),
    rule(
        "postman-api-key",
        &["pmak-"],
        r"\bPMAK-[a-f0-9]{24}-[a-f0-9]{34}\b",
        Always,
    ),
    rule(
        "harness-token",
        &["pat."],
        r"\bpat\.[A-Za-z0-9_-]{22}\.[0-9a-f]{24}\.[A-Za-z0-9]{20}\b",
        Always,
    ),
    // --- Package registries ---------------------------------------------------------------
    rule("npm-token", &["npm_"], r"\bnpm_[A-Za-z0-9]{36,}", Always),
    rule(
        "npmrc-auth",
        &["_authtoken", "_auth", "_password"],
        r#"(?m)(?:^|:)(?:_authToken|_auth|_password)[ \t]*=[ \t]*(?P<s>[^\s"']{8,})"#,
        NotPlaceholder,
    ),
    rule(
        "pypi-token",
        &["pypi-age"],
        r"pypi-AgE[A-Za-z0-9_-]{50,}",
        Always,
    ),
    rule(
        "dockerhub-token",
        &["dckr_pat_", "dckr_oat_"],
        r"\bdckr_(?:pat|oat)_[A-Za-z0-9_-]{20,}",
        Always,
    ),
    rule(
        "cratesio-token",
        &["cio"],
        r"\bcio[A-Za-z0-9]{32}\b",
        Always,
    ),
    rule(
        "rubygems-token",
        &["rubygems_"],
        r"\brubygems_[a-f0-9]{48}\b",
        Always,
    ),
    rule("nuget-key", &["oy2"], r"\boy2[a-z0-9]{43}\b", Always),
    rule(
        "clojars-token",
        &["clojars_"],
        r"\bCLOJARS_[a-z0-9]{60}\b",
        Always,
    ),
    rule("prefect-key", &["pnu_"], r"\bpnu_[A-Za-z0-9]{36}\b", Always),
    // --- SaaS -----------------------------------------------------------------------------
    rule(
        "slack-bot-token",
        &["xoxb-"],
        r"xoxb-[0-9A-Za-z-]{20,}",
        Always,
    ),
    rule(
        "slack-user-token",
        &["xoxp-", "xoxe-"],
        r"xox[pe]-[0-9A-Za-z-]{20,}",
        Always,
    ),
    rule(
        "slack-legacy-token",
        &["xoxa-", "xoxo-", "xoxr-", "xoxs-"],
        r"xox[aors]-[0-9A-Za-z-]{20,}",
        Always,
    ),
    rule(
        "slack-config-token",
        &["xoxe."],
        r"xoxe\.xox[bp]-[0-9]-[A-Za-z0-9]{100,}",
        Always,
    ),
    rule(
        "slack-app-token",
        &["xapp-"],
        r"xapp-[0-9A-Za-z-]{20,}",
        Always,
    ),
    rule(
        "slack-webhook",
        &["hooks.slack.com"],
        r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_+-]{20,}",
        Always,
    ),
    rule(
        "discord-webhook",
        &["/api/webhooks/"],
        r"(?:https?://)?(?:[a-z]+\.)?discord(?:app)?\.com/api/webhooks/[0-9]+/[A-Za-z0-9_-]{20,}",
        Always,
    ),
    rule(
        "discord-bot-token",
        &[],
        r"\b[MNO][A-Za-z0-9_-]{22,27}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,40}",
        DiscordBotToken,
    ),
    rule(
        "telegram-bot-token",
        &[":a"],
        r"[0-9]{5,16}:A[A-Za-z0-9_-]{30,}",
        Always,
    ),
    rule(
        "stripe-secret-key",
        &["sk_live_", "sk_test_", "sk_prod_"],
        r"\bsk_(?:live|test|prod)_[A-Za-z0-9]{10,}",
        Always,
    ),
    rule(
        "stripe-restricted-key",
        &["rk_live_", "rk_test_", "rk_prod_"],
        r"\brk_(?:live|test|prod)_[A-Za-z0-9]{10,}",
        Always,
    ),
    rule(
        "stripe-publishable-key",
        &["pk_live_", "pk_test_"],
        r"\bpk_(?:live|test)_[A-Za-z0-9]{10,}",
        Always,
    ),
    rule(
        "stripe-webhook-secret",
        &["whsec_"],
        r"\bwhsec_[A-Za-z0-9+/=]{20,}",
        Always,
    ),
    rule("elevenlabs-key", &["sk_"], r"\bsk_[a-f0-9]{48}\b", Always),
    rule("twilio-api-key", &["sk"], r"\bSK[0-9a-fA-F]{32}\b", Always),
    rule(
        "twilio-account-sid",
        &["ac"],
        r"\bAC[0-9a-fA-F]{32}\b",
        Always,
    ),
    rule(
        "twilio-auth-token",
        &["twilio"],
        r"(?i)twilio[A-Za-z_ .-]{0,20}(?:auth|token|secret)[A-Za-z_]*[^A-Za-z0-9\r\n]{1,12}(?P<s>[0-9a-f]{32})\b",
        Always,
    ),
    rule(
        "sendgrid-api-key",
        &["sg."],
        r"\bSG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}",
        Always,
    ),
    rule(
        "mailgun-api-key",
        &["key-"],
        r"\bkey-[0-9a-zA-Z]{32}\b",
        Always,
    ),
    rule(
        "mailgun-public-key",
        &["pubkey-"],
        r"\bpubkey-[0-9a-f]{32}\b",
        Always,
    ),
    RuleDef {
        kind: "mailgun-private-key",
        keywords: &[],
        form: Form::Custom(find_hex_32_8_8),
        pattern: "",
        check: Always,
    },
    rule(
        "mailchimp-api-key",
        &["-us"],
        r"\b[0-9a-f]{32}-us[0-9]{1,2}\b",
        Always,
    ),
    rule(
        "databricks-token",
        &["dapi"],
        r"\bdapi[a-f0-9]{32}(?:-[0-9]+)?\b",
        Always,
    ),
    rule(
        "shopify-access-token",
        &["shpat_"],
        r"\bshpat_[a-fA-F0-9]{32,}",
        Always,
    ),
    rule(
        "shopify-custom-app-token",
        &["shpca_"],
        r"\bshpca_[a-fA-F0-9]{32,}",
        Always,
    ),
    rule(
        "shopify-private-app-token",
        &["shppa_"],
        r"\bshppa_[a-fA-F0-9]{32,}",
        Always,
    ),
    rule(
        "shopify-shared-secret",
        &["shpss_"],
        r"\bshpss_[a-fA-F0-9]{32,}",
        Always,
    ),
    rule(
        "linear-api-key",
        &["lin_api_"],
        r"\blin_api_[A-Za-z0-9]{30,}",
        Always,
    ),
    rule("notion-token", &["ntn_"], r"\bntn_[A-Za-z0-9]{40,}", Always),
    rule(
        "notion-token",
        &["secret_"],
        r"\bsecret_[A-Za-z0-9]{43}\b",
        Always,
    ),
    rule(
        "sentry-user-token",
        &["sntryu_"],
        r"\bsntryu_[a-f0-9]{64}\b",
        Always,
    ),
    rule(
        "sentry-org-token",
        &["sntrys_"],
        r"\bsntrys_[A-Za-z0-9+/=_]{50,}",
        Always,
    ),
    rule(
        "grafana-cloud-token",
        &["glc_"],
        r"\bglc_[A-Za-z0-9+/]{32,}={0,2}",
        Always,
    ),
    rule(
        "grafana-service-account-token",
        &["glsa_"],
        r"\bglsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}\b",
        Always,
    ),
    rule(
        "newrelic-user-key",
        &["nrak-"],
        r"\bNRAK-[A-Z0-9]{27}\b",
        Always,
    ),
    rule(
        "mapbox-secret-token",
        &["sk.eyj"],
        r"\bsk\.eyJ[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}",
        Always,
    ),
    rule(
        "square-token",
        &["sq0atp-", "sq0csp-"],
        r"\bsq0(?:atp|csp)-[A-Za-z0-9_-]{22,}",
        Always,
    ),
    rule(
        "square-token",
        &["eaaa"],
        r"\bEAAA[A-Za-z0-9_-]{60,}",
        Always,
    ),
    rule(
        "facebook-access-token",
        &["eaa"],
        r"\bEAA[A-Za-z0-9]{100,}",
        Always,
    ),
    rule(
        "dropbox-token",
        &["sl."],
        r"\bsl\.[A-Za-z0-9_-]{130,}",
        Always,
    ),
    rule(
        "contentful-token",
        &["cfpat-"],
        r"\bCFPAT-[A-Za-z0-9_-]{43,}",
        Always,
    ),
    rule(
        "figma-token",
        &["figd_"],
        r"\bfigd_[A-Za-z0-9_-]{30,}",
        Always,
    ),
    rule(
        "resend-key",
        &["re_"],
        r"\bre_[A-Za-z0-9]{8}_[A-Za-z0-9]{20,}",
        MixedChars,
    ),
    rule(
        "airtable-token",
        &["pat"],
        r"\bpat[A-Za-z0-9]{14}\.[a-f0-9]{64}\b",
        Always,
    ),
    rule(
        "adafruit-key",
        &["aio_"],
        r"\baio_[A-Za-z0-9]{28}\b",
        Always,
    ),
    rule(
        "typeform-token",
        &["tfp_"],
        r"\btfp_[A-Za-z0-9_.=-]{40,}",
        Always,
    ),
    rule(
        "shippo-token",
        &["shippo_"],
        r"\bshippo_(?:live|test)_[a-f0-9]{40}\b",
        Always,
    ),
    rule(
        "adobe-client-secret",
        &["p8e-"],
        r"\bp8e-[A-Za-z0-9]{32}\b",
        Always,
    ),
    rule(
        "duffel-token",
        &["duffel_"],
        r"\bduffel_(?:test|live)_[A-Za-z0-9_=-]{40,}",
        Always,
    ),
    rule(
        "dynatrace-token",
        &["dt0c01."],
        r"\bdt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}\b",
        Always,
    ),
    rule(
        "easypost-key",
        &["ezak", "eztk"],
        r"\bEZ[AT]K[A-Za-z0-9]{54}\b",
        Always,
    ),
    rule(
        "flutterwave-secret-key",
        &["flwseck"],
        r"\bFLWSECK(?:_TEST)?-[a-h0-9]{32}-X\b",
        Always,
    ),
    rule(
        "frameio-token",
        &["fio-u-"],
        r"\bfio-u-[A-Za-z0-9_=-]{64,}",
        Always,
    ),
    rule(
        "teams-webhook",
        &["webhook.office.com"],
        r"https://[A-Za-z0-9.-]+\.webhook\.office\.com/webhookb2/[A-Za-z0-9@/_-]{40,}",
        Always,
    ),
    rule(
        "newrelic-browser-key",
        &["nrjs-"],
        r"\bNRJS-[a-f0-9]{19}\b",
        Always,
    ),
    rule(
        "newrelic-insert-key",
        &["nrii-"],
        r"\bNRII-[A-Za-z0-9_-]{32}",
        Always,
    ),
    rule(
        "openshift-token",
        &["sha256~"],
        r"\bsha256~[A-Za-z0-9_-]{43}",
        Always,
    ),
    rule("readme-key", &["rdme_"], r"\brdme_[a-z0-9]{70}\b", Always),
    rule(
        "scalingo-token",
        &["tk-us-"],
        r"\btk-us-[A-Za-z0-9_-]{48}",
        Always,
    ),
    rule(
        "brevo-key",
        &["xkeysib-"],
        r"\bxkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}\b",
        Always,
    ),
    rule(
        "twitter-bearer-token",
        &["aaaaaaaaaaaaaaaaaaaaa"],
        r"\bA{21}[A-Za-z0-9%]{30,}",
        Always,
    ),
    rule(
        "age-secret-key",
        &["age-secret-key-1"],
        r"AGE-SECRET-KEY-1[0-9A-Z]{50,}",
        Always,
    ),
    // --- Structural formats ---------------------------------------------------------------
    // A bare Azure storage key: 64 random bytes in base64. A SHA-512 digest has the same
    // shape but comes as `sha512-…` (integrity) or after another label, so a dash before it
    // rules it out.
    rule(
        "azure-storage-account-key",
        &["=="],
        r"(?:^|[^A-Za-z0-9+/=-])(?P<s>[A-Za-z0-9+/]{86}==)(?:$|[^A-Za-z0-9+/=])",
        Random,
    ),
    rule(
        "putty-private-key",
        &["private-lines:"],
        r"Private-Lines:[ \t]*[0-9]+\r?\n(?P<s>(?:[A-Za-z0-9+/=]+\r?\n?)+)",
        Always,
    ),
    rule(
        "jwt",
        &["eyj"],
        r"\beyJ[A-Za-z0-9_-]{8,}\.ey[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
        Always,
    ),
    // A private key block, multi-line or with JSON-escaped `\n`. When the END line is missing
    // (the text was cut), everything that can belong to the block goes.
    rule(
        "private-key",
        &["-----begin"],
        r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----(?:(?s:.*?)-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s\\:,.-]*)",
        Always,
    ),
    // Every value of a Kubernetes `Secret`'s `data:` / `stringData:` (base64 or plain),
    // whatever its key is called (`config.json`, `username`, `tls.key`).
    RuleDef {
        kind: KIND_KUBERNETES_SECRET,
        keywords: &[
            "kind: secret",
            // `"Secret"` in JSON, `\"Secret\"` in JSON inside a string, …
            "\"secret\"",
            "\"secret\\",
        ],
        form: Form::Custom(find_kubernetes_secret_data),
        pattern: "",
        check: NotPlaceholder,
    },
    rule(
        "kubeconfig-client-key",
        &["client-key-data"],
        r"(?i)client-key-data\s*:\s*(?P<s>[A-Za-z0-9+/=]{40,})",
        Always,
    ),
    // --- HTTP authentication ---------------------------------------------------------------
    rule(
        "authorization-header",
        &["authorization"],
        r#"(?i)\b(?:proxy-)?authorization\\*["']?[ \t]*[:=][ \t]*\\*["']?[ \t]*(?:bearer|basic|token|digest|apikey|api-key|bot|key|sso-key|ntlm|negotiate|aws4-hmac-sha256|gcp|dsn)[ \t]+(?P<s>[^\r\n"'\\]{4,})"#,
        NotPlaceholder,
    ),
    rule(
        "authorization-header",
        &["authorization"],
        r#"(?i)\b(?:proxy-)?authorization\\*["']?[ \t]*[:=][ \t]*\\*["']?(?P<s>[^\s"'\\,;]{8,})"#,
        Random,
    ),
    rule(
        "bearer-token",
        &["bearer"],
        r"(?i)\bbearer[ \t]+(?P<s>[A-Za-z0-9._~+/=-]{16,})",
        RandomOrLong,
    ),
    rule(
        "basic-auth",
        &["basic"],
        r"(?i)\bbasic[ \t]+(?P<s>[A-Za-z0-9+/]{6,}={0,2})",
        BasicCredentials,
    ),
    rule(
        "api-key-header",
        &[
            "api-key",
            "x-auth-token",
            "x-auth-key",
            "x-api-token",
            "private-token",
            "x-vault-token",
            "x-access-token",
            "subscription-key",
            "x-functions-key",
        ],
        // Random: in code the value is often an identifier (`"x-api-key": apiKey`).
        r#"(?i)\b(?:x-api-key|api-key|x-goog-api-key|x-auth-token|x-auth-key|x-api-token|private-token|x-vault-token|x-access-token|ocp-apim-subscription-key|x-functions-key)\\*["']?[ \t]*:[ \t]*\\*["']?(?P<s>[^\s"'\\,;]{8,})"#,
        Random,
    ),
    rule(
        "cookie-header",
        &["cookie"],
        r#"(?i)\b(?:set-)?cookie\\*["']?[ \t]*:[ \t]*\\*["']?(?P<s>[^\r\n"'\\]{8,})"#,
        Cookie,
    ),
    // --- Credentials in URLs, connection strings and command lines -------------------------
    rule(
        "url-credentials",
        &["://"],
        r#"\b[A-Za-z][A-Za-z0-9+.-]{1,30}://[^\s/:@"'<>\\]*:(?P<s>[^\s/@"'<>\\]+)@[^\s/@"'<>\\]"#,
        NotPlaceholder,
    ),
    // A token as the whole user part: `https://<token>@github.com/org/repo.git`.
    rule(
        "url-credentials",
        &["://"],
        r#"\b[A-Za-z][A-Za-z0-9+.-]{1,30}://(?P<s>[A-Za-z0-9_-]{20,})@[^\s/@"'<>\\]"#,
        Random,
    ),
    // Connection strings are `;`-separated: a `;` before the pair, or after its value.
    tail_rule(
        "connection-string-password",
        &["password", "pwd", "passwd"],
        NameRule::Keyword,
        |b| b == b'=' || b == b' ' || b == b'\t',
        r#"[ \t]*=[ \t]*(?P<s>\{[^}\r\n]*\}|[^;\r\n"'\\]+)(?P<semi>;)?"#,
        ConnectionString,
    ),
    rule(
        "url-query-secret",
        &[
            "password=",
            "passwd=",
            "pwd=",
            "pass=",
            "secret=",
            "token=",
            "auth=",
            "key=",
            "signature=",
            "credential=",
        ],
        r#"(?i)[?&](?:password|passwd|pwd|pass|secret|client_secret|token|access_token|refresh_token|id_token|auth|auth_token|api_key|apikey|key|signature|x-amz-signature|x-amz-credential|x-amz-security-token)=(?P<s>[^&\s#"'<>\\]{6,})"#,
        NotPlaceholder,
    ),
    rule(
        "cli-secret-flag",
        &[
            "--password",
            "--passwd",
            "--token",
            "--api-key",
            "--api_key",
            "--apikey",
            "--secret",
            "--client-secret",
            "--client_secret",
            "--access-token",
            "--access_token",
            "--auth-token",
            "--auth_token",
            "--private-key",
            "--github-token",
            "--npm-token",
            "--registry-password",
        ],
        r#"(?i)--(?:password|passwd|token|api[-_]?key|secret|client[-_]secret|access[-_]token|auth[-_]token|private[-_]key|github[-_]token|npm[-_]token|registry[-_]password)(?:=|[ \t]+)(?:"(?P<q>[^"\r\n]+)"|'(?P<q2>[^'\r\n]+)'|(?P<s>[^\s"'-][^\s"']*))"#,
        NotPlaceholder,
    ),
    rule(
        "cli-user-password",
        &["-u", "--user"],
        r#"(?:^|\s)(?:-u|--user)[ \t]*["']?[^\s:"'@/-][^\s:"'@/]*:(?P<s>[^\s"'@]+)"#,
        NotNumeric,
    ),
    rule(
        "mysql-password",
        &["mysql", "mariadb"],
        r#"(?i)\b(?:mysql|mysqldump|mysqladmin|mariadb)\b[^\r\n|;&]*?[ \t](?-i:-p)(?P<s>[^\s"'-][^\s"']*)"#,
        NotPlaceholder,
    ),
    rule(
        "cli-password",
        &["docker", "podman", "helm", "redis-cli", "htpasswd"],
        r#"(?i)\b(?:(?:docker|podman|helm(?:\s+registry)?)\s+login\b[^\r\n|;&]*?[ \t](?-i:-p)|redis-cli\b[^\r\n|;&]*?[ \t](?-i:-a)|htpasswd\s+(?:-[A-Za-z]+\s+)*[^\s]+\s+[^\s]+)[ \t]+(?:"(?P<q>[^"\r\n]+)"|'(?P<q2>[^'\r\n]+)'|(?P<s>[^\s"'-][^\s"']*))"#,
        NotPlaceholder,
    ),
    rule(
        "sshpass-password",
        &["sshpass"],
        r#"\bsshpass[ \t]+-p[ \t]*(?:"(?P<q>[^"\r\n]+)"|'(?P<q2>[^'\r\n]+)'|(?P<s>[^\s"']+))"#,
        NotPlaceholder,
    ),
    rule(
        "netrc-password",
        &["machine"],
        r#"(?i)\bmachine\s+[^\s"'\\]+\s+(?:login\s+[^\s"'\\]+\s+)?password\s+(?P<s>[^\s"'\\]+)"#,
        NotPlaceholder,
    ),
];

/// The distinct kinds of the built-in rules, sorted.
#[cfg(test)]
pub fn builtin_kinds() -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = RULES.iter().map(|r| r.kind).collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds
}

/// A rule with its regex, compiled on first use: most runs fire a handful of rules, so the
/// startup cost of compiling all of them would be wasted.
struct Rule {
    def: &'static RuleDef,
    compiled: OnceLock<Compiled>,
}

struct Compiled {
    regex: meta::Regex,
    /// Capture groups holding the secret (`s…` unquoted, `q…` quoted).
    secret_groups: Vec<usize>,
    /// `semi`: a `;` after the value (connection strings).
    semicolon: Option<usize>,
    /// Matches may follow a word character directly.
    glued: bool,
}

impl Rule {
    fn compiled(&self) -> &Compiled {
        self.compiled.get_or_init(|| {
            // Unicode `\b` forces the regex engine off its fast DFA on non-ASCII text; every
            // boundary here is about ASCII token characters anyway.
            // A distinctive prefix (four characters or more) needs no boundary before it: a
            // token glued to the word before (`…secondspplx-…`) is still a token, and such
            // matches must look generated (see `scan`).
            // Only prefixes with a `-` or `_` (`pplx-`, `ghp_`): all-letter ones (`EAAA`,
            // `AKIA`) turn up inside base64 blobs.
            let glued = self.def.pattern.starts_with(r"\b")
                && literal_prefix(self.def.pattern)
                    .is_some_and(|p| p.len() >= 4 && p.contains(['-', '_']));
            let pattern = if glued {
                &self.def.pattern[2..]
            } else {
                self.def.pattern
            };
            let pattern = pattern.replace(r"\b", r"(?-u:\b)");
            let regex = meta::Regex::new(&pattern).unwrap_or_else(|e| {
                // A built-in pattern that fails to compile is a bug caught by the unit tests.
                panic!("built-in rule {} does not compile: {e}", self.def.kind)
            });
            let mut secret_groups = Vec::new();
            let mut semicolon = None;
            for (i, name) in regex
                .group_info()
                .pattern_names(PatternID::ZERO)
                .enumerate()
            {
                match name {
                    Some("semi") => semicolon = Some(i),
                    Some(n) if n.starts_with('s') || n.starts_with('q') => secret_groups.push(i),
                    _ => {}
                }
            }
            Compiled {
                regex,
                secret_groups,
                semicolon,
                glued,
            }
        })
    }

    /// Search `text` within `span` (`Scan` and `Custom` rules). A match may run past the end
    /// of the span; its start may not.
    fn scan(&self, priority: usize, text: &str, span: Range<usize>, spans: &mut Vec<Span>) {
        let check = self.def.check;
        if let Form::Custom(finder) = self.def.form {
            let mut found = Vec::new();
            finder(&text[..span.end], &mut found);
            for (start, end) in found.into_iter().filter(|&(start, _)| start >= span.start) {
                if check.accepts(&Candidate::whole(text, start, &text[start..end])) {
                    spans.push(self.span(start, end, priority));
                }
            }
            return;
        }
        let c = self.compiled();
        let mut caps = c.regex.create_captures();
        let mut at = span.start;
        while at < span.end {
            c.regex
                .search_captures(&Input::new(text).span(at..span.end), &mut caps);
            let Some(mut whole) = caps.get_match().map(|m| m.span()) else {
                break;
            };
            if whole.end == span.end && span.end < text.len() {
                // Cut by the window: match again from the same start with the whole rest of
                // the text, so a long token is redacted in full.
                let input = Input::new(text)
                    .span(whole.start..text.len())
                    .anchored(Anchored::Yes);
                c.regex.search_captures(&input, &mut caps);
                whole = caps.get_match().map_or(whole, |m| m.span());
            }
            let secret = secret_of(&caps, &c.secret_groups).unwrap_or(whole);
            let glued_to_word =
                c.glued && whole.start > 0 && is_word_byte(text.as_bytes()[whole.start - 1]);
            // Glued to a word, not inside a longer token or blob.
            let glued_ok = !glued_to_word
                || text.as_bytes()[..whole.start]
                    .iter()
                    .rev()
                    .take_while(|&&b| is_word_byte(b) || matches!(b, b'+' | b'/' | b'-'))
                    .count()
                    <= GLUED_WORD_MAX_BYTES;
            let cand = Candidate {
                text,
                name_start: whole.start,
                secret: &text[secret.range()],
                semicolon_after: false,
            };
            if check.accepts(&cand)
                && glued_ok
                && (!glued_to_word
                    || MixedChars.accepts(&cand) && assign::looks_random(cand.secret))
            {
                spans.push(self.span(secret.start, secret.end, priority));
            }
            at = if whole.end > whole.start {
                whole.end
            } else {
                whole.end + 1
            };
            while at < text.len() && !text.is_char_boundary(at) {
                at += 1;
            }
        }
    }

    /// Match a `Tail` rule after the keyword occurrence `kw_start..kw_end`.
    fn tail(
        &self,
        priority: usize,
        text: &str,
        kw_start: usize,
        kw_end: usize,
        spans: &mut Vec<Span>,
    ) {
        let Form::Tail {
            name: name_rule,
            next,
        } = self.def.form
        else {
            return;
        };
        if !text.as_bytes().get(kw_end).is_some_and(|&b| next(b)) {
            return;
        }
        let c = self.compiled();
        let input = Input::new(text)
            .span(kw_end..text.len())
            .anchored(Anchored::Yes);
        if !c.regex.is_match(input.clone()) {
            return;
        }
        let mut caps = c.regex.create_captures();
        c.regex.search_captures(&input, &mut caps);
        let bytes = text.as_bytes();
        let name_start = match name_rule {
            NameRule::Keyword => {
                if kw_start > 0 && is_word_byte(bytes[kw_start - 1]) {
                    return;
                }
                kw_start
            }
        };
        let Some(secret) = secret_of(&caps, &c.secret_groups) else {
            return;
        };
        let cand = Candidate {
            text,
            name_start,
            secret: &text[secret.range()],
            semicolon_after: c.semicolon.and_then(|g| caps.get_group(g)).is_some(),
        };
        if self.def.check.accepts(&cand) {
            spans.push(self.span(secret.start, secret.end, priority));
        }
    }

    fn is_tail(&self) -> bool {
        matches!(self.def.form, Form::Tail { .. })
    }

    fn is_custom(&self) -> bool {
        matches!(self.def.form, Form::Custom(_))
    }

    /// A span of this rule, remembered when the rule finds values by their context.
    fn span(&self, start: usize, end: usize, priority: usize) -> Span {
        let span = Span::new(start, end, self.def.kind, priority);
        match self.def.check {
            Always | MixedChars | DiscordBotToken => span,
            _ => span.learned(),
        }
    }
}

/// The literal a rule's matches start with, as written in its pattern (`ghp_`, `eyJ`,
/// `AKIA`), when it is at least three characters long.
fn literal_prefix(pattern: &str) -> Option<&str> {
    let p = pattern.strip_prefix(r"\b").unwrap_or(pattern);
    let end = p
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '/')))
        .unwrap_or(p.len());
    (end >= 3).then(|| &p[..end])
}

/// The base64 characters fully determined by a rule's literal prefix at the start of an
/// encoded text (`Z2hwX` for `ghp_`, `ZXlK` for `eyJ`), searched by [`Redactor::base64`].
fn base64_prefix(def: &RuleDef) -> Option<String> {
    if !matches!(def.form, Form::Scan) || !matches!(def.check, Always | MixedChars) {
        return None;
    }
    let prefix = literal_prefix(def.pattern)?;
    // Token families (`ghp_`, `glpat-`, `sk-ant-`, `pk-lf-`) and JWTs: what gets encoded in
    // practice. Every other prefix would make the keyword scan slower for nothing.
    let family = prefix.len() >= 4
        && prefix.contains(['-', '_'])
        && prefix.starts_with(|c: char| c.is_ascii_lowercase());
    if !(family || def.kind == "jwt" || def.kind == "private-key") {
        return None;
    }
    // Four characters (three bytes) say enough; the decoded run is checked anyway. Few, so
    // the search stays a SIMD one (at most 64 patterns).
    let encoded = encode_base64(prefix.as_bytes());
    Some(encoded[..4].to_string())
}

fn encode_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn secret_of(caps: &Captures, groups: &[usize]) -> Option<MatchSpan> {
    groups.iter().find_map(|&g| caps.get_group(g))
}

/// A candidate match, with what the checks look at.
struct Candidate<'t> {
    text: &'t str,
    /// Where the match (or the variable name) starts.
    name_start: usize,
    secret: &'t str,
    /// A `;` follows the value (connection strings).
    semicolon_after: bool,
}

impl<'t> Candidate<'t> {
    fn whole(text: &'t str, start: usize, secret: &'t str) -> Self {
        Candidate {
            text,
            name_start: start,
            secret,
            semicolon_after: false,
        }
    }

    /// The character before the name, skipping spaces and tabs.
    fn before_name(&self) -> Option<char> {
        self.text[..self.name_start]
            .trim_end_matches([' ', '\t'])
            .chars()
            .next_back()
    }

    /// Whether the name starts a line (also after a JSON-escaped `\n`, and after a YAML
    /// list dash).
    fn name_starts_line(&self) -> bool {
        let head = self.text[..self.name_start].trim_end_matches([' ', '\t']);
        let head = head
            .strip_suffix('-')
            .unwrap_or(head)
            .trim_end_matches([' ', '\t']);
        head.is_empty() || head.ends_with('\n') || head.ends_with('\r') || head.ends_with("\\n")
    }
}

impl Check {
    fn accepts(self, c: &Candidate<'_>) -> bool {
        let secret = c.secret;
        if secret.is_empty() || secret.starts_with(MARKER_PREFIX) || assign::is_filler(secret) {
            return false;
        }
        match self {
            Always => true,
            NotPlaceholder => !is_placeholder(secret),
            Random => !is_placeholder(secret) && assign::looks_random(secret),
            RandomOrLong => {
                !is_placeholder(secret) && (assign::looks_random(secret) || secret.len() >= 32)
            }
            BasicCredentials => decodes_to_credentials(secret),
            NotNumeric => !is_placeholder(secret) && !secret.bytes().all(|b| b.is_ascii_digit()),
            Cookie => !is_placeholder(secret) && secret.contains('='),
            MixedChars => {
                let has = |f: fn(&u8) -> bool| secret.as_bytes().iter().any(f);
                (has(u8::is_ascii_digit) && has(u8::is_ascii_alphabetic))
                    || (has(u8::is_ascii_uppercase) && has(u8::is_ascii_lowercase))
            }
            DiscordBotToken => secret.split('.').next().is_some_and(is_base64_of_digits),
            ConnectionString => {
                (c.before_name() == Some(';') || c.name_starts_line() && c.semicolon_after)
                    && !is_placeholder(secret.trim())
            }
        }
    }
}

/// A variable reference or a mask rather than a value: `$TOKEN`, `${TOKEN}`, `{{ token }}`,
/// `<your-key>`, `%TOKEN%`, `***`, `xxxx`. Narrower than [`assign::is_placeholder`] on
/// purpose: a value a format or a header already marks (`Bearer …`, `user:pass@`) is not
/// second-guessed by the words in it.
fn is_placeholder(v: &str) -> bool {
    let v = v.trim_matches(|c| c == '"' || c == '\'');
    v.is_empty()
        || v.starts_with('$')
        || v.starts_with("{{")
        || v.starts_with("#{")
        || v.starts_with('<')
        || v.starts_with('%') && v.ends_with('%')
        || v.chars()
            .all(|c| matches!(c, '*' | 'x' | 'X' | '.' | '•' | '-' | '_'))
}

/// Base64 of ASCII digits (a Discord user id): every full group of four characters encodes
/// three bytes 0x30-0x39, which pins down each position to a few characters.
fn is_base64_of_digits(seg: &str) -> bool {
    const POSITIONS: [&[u8]; 4] = [b"MNO", b"DTjz", b"AEIMQUYcgk", b"wxyz012345"];
    // Without padding, a last group of two characters encodes one byte, zero-filled.
    const ONE_BYTE_SECOND: &[u8] = b"AQgw";
    let b = seg.as_bytes();
    b.len() >= 16
        && b.chunks(4).all(|g| {
            g.iter().enumerate().all(|(i, c)| {
                POSITIONS[i].contains(c) || (g.len() == 2 && i == 1 && ONE_BYTE_SECOND.contains(c))
            })
        })
}

/// `Basic <base64>` whose payload is `user:password` in printable text.
fn decodes_to_credentials(b64: &str) -> bool {
    match decode_base64(b64) {
        Some(bytes) => {
            bytes.len() >= 3
                && bytes.contains(&b':')
                && std::str::from_utf8(&bytes).is_ok_and(|s| s.chars().all(|c| !c.is_control()))
        }
        None => false,
    }
}

/// Base64, standard or URL-safe alphabet, padding optional (tokens drop it).
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, CONFIG);
    let engine = if s.contains(['-', '_']) {
        &URL_SAFE
    } else {
        &STANDARD
    };
    engine.decode(s).ok()
}

/// Whether an environment variable (or `.env` name) looks like it holds a secret:
/// `OPENAI_API_KEY`, `DB_PASSWORD`, `GITHUB_TOKEN`, but not `GIT_AUTHOR_NAME`, `SSH_AUTH_SOCK`
/// or `KEYBOARD_LAYOUT`. Judged by the name's words (see [`assign::judge_name`]).
pub fn is_secret_env_name(name: &str) -> bool {
    assign::judge_name(name) != Strength::None
}

/// Whether a JSON object key names a secret: `api_key`, `apiKey`, `Authorization`,
/// `client_secret`, `password`, `x-api-key`, `access_token`, `creds`, `stripeKey`; not
/// `max_tokens`, `tokenizer`, `publicKey` or `key` (those are [`Strength::Weak`] at most).
#[cfg(test)]
pub fn is_secret_key(key: &str) -> bool {
    assign::judge_name(key) == Strength::Strong
}

/// Where a literal secret value came from; decides how strict the name filter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// This process's environment: full of benign values, so only secret-named variables count.
    Environment,
    /// A file the user named as holding secrets: secret-named entries, and any entry whose
    /// value looks like a credential.
    SecretsFile,
}

impl SecretSource {
    fn kind(self) -> &'static str {
        match self {
            SecretSource::Environment => KIND_ENV_VALUE,
            SecretSource::SecretsFile => KIND_SECRETS_FILE_VALUE,
        }
    }
}

/// Whether `(name, value)` from `source` should be redacted wherever the value appears.
pub fn is_secret_literal(source: SecretSource, name: &str, value: &str) -> bool {
    let v = value.trim();
    if v.chars().count() < MIN_LITERAL_SECRET_CHARS
        || is_placeholder(v)
        || assign::is_path(v)
        || assign::is_trivial(v)
    {
        return false;
    }
    if is_secret_env_name(name) {
        return true;
    }
    match source {
        SecretSource::Environment => false,
        SecretSource::SecretsFile => {
            v.chars().count() >= MIN_UNNAMED_FILE_SECRET_CHARS
                && !v.contains(char::is_whitespace)
                && v.bytes().any(|b| b.is_ascii_digit())
                && v.bytes().any(|b| b.is_ascii_alphabetic())
        }
    }
}

/// Parse dotenv text: `NAME=value`, `export NAME=value`, `#` comments, single quotes
/// (literal), double quotes (with `\n`, `\"`, `\\` escapes, may span lines), and unquoted
/// values with trailing ` # comment`s.
pub fn parse_dotenv(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((name, rest)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            continue;
        }
        let rest = rest.trim_start();
        let value = if let Some(body) = rest.strip_prefix('"') {
            let mut raw = body.to_string();
            // A double-quoted value may continue on the following lines.
            while !has_closing_quote(&raw) {
                match lines.next() {
                    Some(next) => {
                        raw.push('\n');
                        raw.push_str(next);
                    }
                    None => break,
                }
            }
            unescape_double_quoted(&raw)
        } else if let Some(body) = rest.strip_prefix('\'') {
            body.split_once('\'').map_or(body, |(v, _)| v).to_string()
        } else {
            let v = match rest.find(" #") {
                Some(i) => &rest[..i],
                None => rest,
            };
            v.trim_end().to_string()
        };
        out.push((name.to_string(), value));
    }
    out
}

fn has_closing_quote(raw: &str) -> bool {
    let mut escaped = false;
    for c in raw.chars() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return true,
            _ => escaped = false,
        }
    }
    false
}

fn unescape_double_quoted(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            _ => out.push(c),
        }
    }
    out
}

/// Read a dotenv-format secrets file.
pub fn read_secrets_file(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read secrets file {}", path.display()))?;
    Ok(parse_dotenv(&text))
}

/// What a pattern of the literal automaton stands for.
#[derive(Debug, Clone, Copy)]
enum Role {
    /// A keyword: the rule with this index may match.
    Trigger(usize),
    /// A literal secret value of this kind.
    Literal(&'static str),
    /// A secret word: the name around it may be assigned a secret (see [`assign`]).
    Assign,
}

/// A stretch of text to replace.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    kind: &'static str,
    priority: usize,
    /// Found by its context rather than its format: the same value elsewhere in the session
    /// has no context to give it away, so it is remembered (see [`Learned`]).
    learn: bool,
}

impl Span {
    fn new(start: usize, end: usize, kind: &'static str, priority: usize) -> Self {
        Span {
            start,
            end,
            kind,
            priority,
            learn: false,
        }
    }

    fn learned(mut self) -> Self {
        self.learn = true;
        self
    }
}

/// The compiled redactor: build once, share freely (it is `Send + Sync`).
pub struct Redactor {
    rules: Vec<Rule>,
    /// Rules without keywords: they run on every string.
    always: Vec<usize>,
    /// Keywords of all rules plus literal secret values, matched in one pass
    /// ([`keyword_hits`]).
    automaton: aho_corasick::dfa::DFA,
    roles: Vec<Vec<Role>>,
    /// The base64 forms of token prefixes: a run one starts may decode to a secret. Kept out
    /// of the keyword automaton (their bytes would widen its tables and slow every scan);
    /// a few patterns make this one a SIMD search.
    base64: AhoCorasick,
    user: Vec<Regex>,
    literal_count: usize,
    /// Recently redacted large strings (see [`Memo`]).
    memo: Mutex<Memo>,
    /// Values identified as secrets by their context, redacted wherever they appear again.
    learned: RwLock<Learned>,
}

/// Secret values identified by their context (`API_TOKEN=…`, `"password": "…"`, a
/// `--token` flag): a tool that echoes the value, or an answer that quotes it, gives no
/// context, so every later string is searched for the values themselves. Shared by every
/// session of the run, bounded, in memory only.
///
/// Values arrive one by one across a long run, so they are kept in two tiers: an automaton
/// over most of them, rebuilt only when the recent ones (in a small automaton of their own,
/// rebuilt on each) pass [`LEARNED_RECENT_MAX`]: rebuilding the large one on every value
/// would cost quadratic time in a backfill. Both find leftmost-longest matches.
#[derive(Default)]
struct Learned {
    /// Value → kind it was first found as.
    kinds: HashMap<String, &'static str>,
    /// The older values and their JSON-escaped forms, with the kind of each pattern, and
    /// where in a text they may be (too many for the automaton's own prefilter).
    automaton: Option<(AhoCorasick, Vec<&'static str>, Option<Blocks>)>,
    /// The newer ones (and their escaped forms), not yet in the automaton, with their kinds.
    recent_forms: Vec<(String, &'static str)>,
    /// An automaton over just the recent forms, rebuilt whenever one is added: a few dozen
    /// patterns build in microseconds and are found in one SIMD pass (one search per form
    /// cost more than the rest of the search on short strings).
    recent: Option<(AhoCorasick, Vec<&'static str>)>,
    /// Bumped on every change, so remembered results of older scans are not reused.
    generation: u64,
}

/// Values remembered at most; later ones are still redacted where their context shows.
const MAX_LEARNED_VALUES: usize = 4096;
/// Recent learned patterns kept in their own small automaton before the large one is rebuilt
/// with them.
const LEARNED_RECENT_MAX: usize = 32;

/// The keywords ending at `end` in match state `sid`, if `end` is after `keep`.
#[inline(never)]
fn keyword_match(
    dfa: &aho_corasick::dfa::DFA,
    sid: aho_corasick::automaton::StateID,
    end: usize,
    keep: usize,
    hits: &mut Vec<(usize, usize, usize)>,
) {
    use aho_corasick::automaton::Automaton;
    if end > keep && dfa.is_match(sid) {
        for i in 0..dfa.match_len(sid) {
            let p = dfa.match_pattern(sid, i);
            hits.push((p.as_usize(), end - dfa.pattern_len(p), end));
        }
    }
}

/// Lanes of [`keyword_hits`], and the least text worth cutting into them.
const KEYWORD_LANES: usize = 4; // the lockstep loop names its four states
const KEYWORD_LANE_MIN_BYTES: usize = 256;

/// Every occurrence of every keyword in `text` as (pattern, start, end): overlapping, in the
/// order `find_overlapping_iter` gives (by end, and at one end longest first).
///
/// A DFA step waits for the previous step's table load, so one scan runs at that load's
/// latency, not at the processor's throughput. Long text is cut into [`KEYWORD_LANES`] pieces walked in
/// one loop, each by its own state, and the processor overlaps their loads. A piece starts
/// the longest keyword's length early, so a keyword across a cut is found, and keeps only
/// the matches that end inside it: each occurrence is reported once, in the same order.
fn keyword_hits(dfa: &aho_corasick::dfa::DFA, text: &[u8], out: &mut Vec<(usize, usize, usize)>) {
    use aho_corasick::Anchored;
    use aho_corasick::automaton::Automaton;
    let Ok(start) = dfa.start_state(Anchored::No) else {
        return;
    };
    let n = text.len();
    let back = dfa.max_pattern_len().saturating_sub(1);
    // A piece walks `back` bytes twice: worth it only when that is a small part of it.
    let min_piece = KEYWORD_LANE_MIN_BYTES.max(4 * back);
    let lanes = if n >= KEYWORD_LANES * min_piece {
        KEYWORD_LANES
    } else {
        1
    };
    let piece = n / lanes;
    // Lane k walks text[from[k]..to[k]] and keeps the matches that end after keep[k].
    let mut keep = [0; KEYWORD_LANES];
    let mut from = [0; KEYWORD_LANES];
    let mut to = [0; KEYWORD_LANES];
    for k in 0..lanes {
        keep[k] = k * piece;
        from[k] = keep[k].saturating_sub(back);
        to[k] = if k + 1 == lanes { n } else { (k + 1) * piece };
    }
    let mut lane_hits: [Vec<(usize, usize, usize)>; KEYWORD_LANES] = Default::default();
    let mut sid = [start; KEYWORD_LANES];
    // Lockstep over the length every lane has (the first is the shortest), then the rest.
    // Four named states and zipped slices keep the states in registers and the loop free
    // of bounds checks on the text.
    let common = to[0] - from[0];
    if lanes == KEYWORD_LANES {
        let lane = |k: usize| &text[from[k]..from[k] + common];
        let [mut s0, mut s1, mut s2, mut s3] = sid;
        let bytes = lane(0).iter().zip(lane(1)).zip(lane(2)).zip(lane(3));
        for (i, (((&b0, &b1), &b2), &b3)) in bytes.enumerate() {
            s0 = dfa.next_state(Anchored::No, s0, b0);
            s1 = dfa.next_state(Anchored::No, s1, b1);
            s2 = dfa.next_state(Anchored::No, s2, b2);
            s3 = dfa.next_state(Anchored::No, s3, b3);
            if dfa.is_special(s0) | dfa.is_special(s1) | dfa.is_special(s2) | dfa.is_special(s3) {
                for (k, s) in [s0, s1, s2, s3].into_iter().enumerate() {
                    if dfa.is_special(s) {
                        keyword_match(dfa, s, from[k] + i + 1, keep[k], &mut lane_hits[k]);
                    }
                }
            }
        }
        sid = [s0, s1, s2, s3];
    }
    let done = if lanes == KEYWORD_LANES { common } else { 0 };
    for k in 0..lanes {
        let at = from[k] + done;
        walk_keywords(
            dfa,
            sid[k],
            &text[at..to[k]],
            at,
            keep[k],
            &mut lane_hits[k],
        );
        out.append(&mut lane_hits[k]);
    }
}

/// One lane of [`keyword_hits`]: `bytes` start at `offset` in the text; matches ending after
/// `keep` are pushed.
fn walk_keywords(
    dfa: &aho_corasick::dfa::DFA,
    mut s: aho_corasick::automaton::StateID,
    bytes: &[u8],
    offset: usize,
    keep: usize,
    hits: &mut Vec<(usize, usize, usize)>,
) {
    use aho_corasick::Anchored;
    use aho_corasick::automaton::Automaton;
    for (i, &b) in bytes.iter().enumerate() {
        s = dfa.next_state(Anchored::No, s, b);
        if dfa.is_special(s) {
            keyword_match(dfa, s, offset + i + 1, keep, hits);
        }
    }
}

/// An automaton finding learned values (leftmost-longest), with the kind of each pattern.
/// A contiguous NFA: quick to build and small (a DFA over thousands of values costs tens of
/// megabytes, and even over the few recent ones its build, on every learned value, cost
/// more than its searches saved); a SIMD prefilter finds the candidates either way.
fn value_automaton(
    forms: impl Iterator<Item = (String, &'static str)>,
) -> Option<(AhoCorasick, Vec<&'static str>)> {
    let (patterns, kinds): (Vec<String>, Vec<&'static str>) = forms.unzip();
    AhoCorasick::builder()
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .match_kind(MatchKind::LeftmostLongest)
        .build(&patterns)
        .ok()
        .map(|ac| (ac, kinds))
}
/// The kind of a Kubernetes `Secret`'s `data:` / `stringData:` value.
pub const KIND_KUBERNETES_SECRET: &str = "kubernetes-secret";
/// The kind of a value under a secret-named name in any syntax (see [`assign`]).
pub const KIND_SECRET_ASSIGNMENT: &str = "secret-assignment";
/// Priority of assignments: after every rule (a format names a value better).
const PRIORITY_ASSIGN: usize = MAX_RULES - 1;
/// Base64 runs shorter than this are not decoded; longer than the maximum neither (blobs).
const MIN_BASE64_RUN: usize = 16;
const MAX_BASE64_RUN: usize = 16 << 10;

/// Large strings redacted lately, with what redaction made of them. A tool's output reaches
/// two records, its own observation and the next LLM call's input, and redaction is by far
/// the costliest step for megabytes of text: the second time, equal text gets the remembered
/// result (and adds the same counts) instead of a second scan. Bounded in entries and bytes.
#[derive(Default)]
struct Memo {
    entries: std::collections::VecDeque<MemoEntry>,
    /// Bytes of the originals kept.
    bytes: usize,
}

struct MemoEntry {
    text: String,
    /// `None`: nothing matched (the text stays as it is).
    redacted: Option<String>,
    counts: Vec<(&'static str, u64)>,
    /// The learned values' generation the result was computed with.
    generation: u64,
}

/// Strings at least this long are remembered (shorter ones are cheap to scan again).
const MEMO_MIN_BYTES: usize = 16 << 10;
/// Bytes of original text remembered at most (the oldest entries go first).
const MEMO_MAX_BYTES: usize = 4 << 20;
/// Strings remembered at most.
const MEMO_MAX_ENTRIES: usize = 16;

impl Memo {
    /// The remembered result for `text`, its counts added to `counts`.
    fn get<'a>(
        &self,
        text: &'a str,
        generation: u64,
        counts: &mut RedactCounts,
    ) -> Option<Cow<'a, str>> {
        let e = self
            .entries
            .iter()
            .find(|e| e.generation == generation && e.text.len() == text.len() && e.text == text)?;
        for (kind, n) in &e.counts {
            *counts.entry(kind).or_default() += n;
        }
        Some(match &e.redacted {
            Some(r) => Cow::Owned(r.clone()),
            None => Cow::Borrowed(text),
        })
    }

    /// Remember `text`; `redacted` is `None` when nothing matched.
    fn put(&mut self, text: &str, redacted: Option<&str>, counts: &RedactCounts, generation: u64) {
        if text.len() > MEMO_MAX_BYTES {
            return;
        }
        while self.entries.len() >= MEMO_MAX_ENTRIES || self.bytes + text.len() > MEMO_MAX_BYTES {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= old.text.len();
        }
        self.bytes += text.len();
        self.entries.push_back(MemoEntry {
            text: text.to_string(),
            redacted: redacted.map(str::to_string),
            counts: counts.iter().map(|(k, n)| (*k, *n)).collect(),
            generation,
        });
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the literal values.
        f.debug_struct("Redactor")
            .field("rules", &self.rules.len())
            .field("literals", &self.literal_count)
            .field("user_patterns", &self.user.len())
            .finish()
    }
}

impl Redactor {
    /// Build from user patterns (`--redact`), this process's environment (passed in so tests
    /// stay hermetic) and the entries of a secrets file.
    pub fn new(
        user_patterns: Vec<Regex>,
        env: impl IntoIterator<Item = (String, String)>,
        secrets_file: &[(String, String)],
    ) -> anyhow::Result<Self> {
        assert!(RULES.len() <= MAX_RULES, "rule bitset too small");
        let mut patterns: Vec<String> = Vec::new();
        let mut roles: Vec<Vec<Role>> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut add = |pattern: String, role: Role| {
            // Keywords are matched case-insensitively, so dedupe on the lowercase form.
            match index.entry(pattern.to_ascii_lowercase()) {
                Entry::Occupied(e) => roles[*e.get()].push(role),
                Entry::Vacant(e) => {
                    e.insert(patterns.len());
                    patterns.push(pattern);
                    roles.push(vec![role]);
                }
            }
        };
        let mut always = Vec::new();
        for (i, def) in RULES.iter().enumerate() {
            if def.keywords.is_empty() {
                always.push(i);
            }
            for kw in def.keywords {
                add((*kw).to_string(), Role::Trigger(i));
            }
        }
        for kw in assign::KEYWORDS {
            add((*kw).to_string(), Role::Assign);
        }
        let mut literal_count = 0;
        let env_literals = env
            .into_iter()
            .filter(|(k, v)| is_secret_literal(SecretSource::Environment, k, v))
            .map(|(_, v)| (v, SecretSource::Environment));
        let file_literals = secrets_file
            .iter()
            .filter(|(k, v)| is_secret_literal(SecretSource::SecretsFile, k, v))
            .map(|(_, v)| (v.clone(), SecretSource::SecretsFile));
        for (value, source) in file_literals.chain(env_literals) {
            for form in literal_forms(value.trim()) {
                add(form, Role::Literal(source.kind()));
                literal_count += 1;
            }
        }
        // A DFA: a few hundred short patterns make a small one, and it is the fastest scan.
        // No prefilter: no literal search can skip ahead for hundreds of case-insensitive
        // keywords, and without one the start state needs no check on every byte.
        let automaton = aho_corasick::dfa::Builder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(&patterns)
            .context("cannot build the redaction automaton")?;
        let mut base64_prefixes: Vec<String> = RULES.iter().filter_map(base64_prefix).collect();
        base64_prefixes.sort_unstable();
        base64_prefixes.dedup();
        let base64 = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&base64_prefixes)
            .context("cannot build the base64 prefix automaton")?;
        let rules = RULES
            .iter()
            .map(|def| Rule {
                def,
                compiled: OnceLock::new(),
            })
            .collect();
        Ok(Redactor {
            rules,
            always,
            automaton,
            roles,
            base64,
            user: user_patterns,
            literal_count,
            memo: Mutex::default(),
            learned: RwLock::default(),
        })
    }

    /// Built-in rules only (no environment, no secrets file, no user patterns).
    #[cfg(test)]
    pub fn builtin() -> Self {
        Self::new(Vec::new(), std::iter::empty(), &[]).expect("built-in automaton builds")
    }

    /// Compile every built-in rule now (tests).
    #[cfg(test)]
    pub fn compile_all(&self) {
        for r in &self.rules {
            if !matches!(r.def.form, Form::Custom(_)) {
                r.compiled();
            }
        }
    }

    /// Redact one string. Returns it borrowed when nothing matched.
    pub fn redact<'a>(&self, text: &'a str, counts: &mut RedactCounts) -> Cow<'a, str> {
        if text.len() < MEMO_MIN_BYTES {
            return self.redact_now(text, counts);
        }
        let memo = || self.memo.lock().unwrap_or_else(PoisonError::into_inner);
        let generation = self.generation();
        if let Some(known) = memo().get(text, generation, counts) {
            return known;
        }
        let mut found = RedactCounts::new();
        let out = self.redact_now(text, &mut found);
        let redacted = match &out {
            Cow::Owned(r) => Some(r.as_str()),
            Cow::Borrowed(_) => None,
        };
        // A scan that learned a value is remembered under the new generation: the value is
        // redacted in its result either way.
        memo().put(text, redacted, &found, self.generation());
        for (kind, n) in found {
            *counts.entry(kind).or_default() += n;
        }
        out
    }

    fn redact_now<'a>(&self, text: &'a str, counts: &mut RedactCounts) -> Cow<'a, str> {
        let mut spans = Vec::new();
        self.find(text, &mut spans);
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        Cow::Owned(replace_spans(text, spans, counts))
    }

    fn find(&self, text: &str, spans: &mut Vec<Span>) {
        self.find_by_rules(text, spans, false);
        for re in &self.user {
            for m in re.find_iter(text) {
                if !m.is_empty() && !m.as_str().starts_with(MARKER_PREFIX) {
                    spans.push(Span::new(m.start(), m.end(), KIND_CUSTOM, PRIORITY_CUSTOM));
                }
            }
        }
        if spans.iter().any(|s| s.learn) {
            self.learn(
                spans
                    .iter()
                    .filter(|s| s.learn)
                    .map(|s| (&text[s.start..s.end], s.kind)),
            );
        }
        self.find_learned(text, spans);
        drop_spans_inside_markers(text, spans);
    }

    /// The built-in rules, the assignment parser, literal values and base64 runs. `nested`:
    /// `text` was decoded from base64 (not decoded again).
    fn find_by_rules(&self, text: &str, spans: &mut Vec<Span>, nested: bool) {
        if text.len() < MIN_SCAN_BYTES {
            return;
        }
        // Large strings are searched only around keyword occurrences, so a rule that
        // fired once does not cost a pass over megabytes.
        let windowed = text.len() > WINDOWED_MIN_BYTES;
        let mut hits: Vec<(usize, usize, usize)> = Vec::new();
        let mut fired = [0u64; RULE_BITSET_WORDS];
        // The end of the last name parsed: more keywords inside it (`secret` and `key` of
        // `secret_key`) are the same name.
        let mut parsed_until = 0;
        let mut keywords = Vec::new();
        keyword_hits(&self.automaton, text.as_bytes(), &mut keywords);
        for &(pattern, start, end) in &keywords {
            for role in &self.roles[pattern] {
                match *role {
                    Role::Trigger(r) if self.rules[r].is_tail() => {
                        self.rules[r].tail(r, text, start, end, spans)
                    }
                    Role::Trigger(r) if windowed && !self.rules[r].is_custom() => {
                        hits.push((r, start, end))
                    }
                    Role::Trigger(r) => fired[r / 64] |= 1 << (r % 64),
                    Role::Literal(kind) => {
                        spans.push(Span::new(start, end, kind, PRIORITY_LITERAL))
                    }
                    Role::Assign if start >= parsed_until => {
                        let found = assign::at_keyword(text, start, end);
                        parsed_until = found.name_end;
                        if let Some(v) = found.value {
                            spans.push(
                                Span::new(v.start, v.end, KIND_SECRET_ASSIGNMENT, PRIORITY_ASSIGN)
                                    .learned(),
                            );
                        }
                    }
                    Role::Assign => {}
                }
            }
        }
        if !nested {
            for m in self.base64.find_iter(text) {
                self.base64_run(text, m.start(), spans);
            }
        }
        for &r in &self.always {
            fired[r / 64] |= 1 << (r % 64);
        }
        for (w, word) in fired.iter().enumerate() {
            let mut bits = *word;
            while bits != 0 {
                let r = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                self.rules[r].scan(r, text, 0..text.len(), spans);
            }
        }
        hits.sort_unstable();
        for group in hits.chunk_by(|a, b| a.0 == b.0) {
            let r = group[0].0;
            let windows = windows(text, group.iter().map(|&(_, s, e)| (s, e)));
            if windows.len() * SPARSE_WINDOW_BYTES > text.len() {
                // Keywords everywhere (`://` on every line): one pass, at the regex
                // engine's literal-search speed, beats a search per window.
                self.rules[r].scan(r, text, 0..text.len(), spans);
            } else {
                for window in windows {
                    self.rules[r].scan(r, text, window, spans);
                }
            }
        }
    }

    /// A base64 run starting at `start` with the encoding of a token prefix: decoded, and
    /// redacted whole when the decoded text holds a secret (a JWT or a token in base64, the
    /// `public:secret` pair of an API's Basic credentials).
    fn base64_run(&self, text: &str, start: usize, spans: &mut Vec<Span>) {
        let b = text.as_bytes();
        let is_b64 = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'-' | b'_');
        if start > 0 && is_b64(b[start - 1]) {
            return;
        }
        let mut end = start;
        while end < b.len() && is_b64(b[end]) && end - start <= MAX_BASE64_RUN {
            end += 1;
        }
        while end < b.len() && b[end] == b'=' {
            end += 1;
        }
        if !(MIN_BASE64_RUN..=MAX_BASE64_RUN).contains(&(end - start)) {
            return;
        }
        let Some(decoded) = decode_base64(&text[start..end]) else {
            return;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return;
        };
        let mut inner = Vec::new();
        self.find_by_rules(&decoded, &mut inner, true);
        if let Some(first) = inner.iter().min_by_key(|s| s.priority) {
            spans.push(Span::new(start, end, first.kind, first.priority));
        }
    }

    /// Remember values found by their context (see [`Learned`]).
    fn learn<'t>(&self, found: impl Iterator<Item = (&'t str, &'static str)>) {
        let fresh: Vec<(&str, &'static str)> = {
            let learned = self.learned.read().unwrap_or_else(PoisonError::into_inner);
            found
                .filter(|(v, _)| {
                    // Only values that cannot be ordinary words: `PASSWORD=postgres` must not
                    // wipe every later `postgres`.
                    v.chars().count() >= MIN_LITERAL_SECRET_CHARS
                        && assign::looks_random(v)
                        && !v.starts_with(MARKER_PREFIX)
                        && !assign::is_placeholder(v)
                        && !learned.kinds.contains_key(*v)
                })
                .collect()
        };
        // A value its format gives away (`sk-proj-…` found as `OPENAI_API_KEY=sk-proj-…`) is
        // caught wherever it recurs anyway: not worth a pattern.
        let fresh: Vec<(&str, &'static str)> = fresh
            .into_iter()
            .filter(|(v, _)| {
                let mut alone = Vec::new();
                self.find_by_rules(v, &mut alone, false);
                !alone.iter().any(|s| s.start == 0 && s.end == v.len())
            })
            .collect();
        if fresh.is_empty() {
            return;
        }
        let mut learned = self.learned.write().unwrap_or_else(PoisonError::into_inner);
        let before = learned.kinds.len();
        for (v, kind) in fresh {
            if learned.kinds.len() >= MAX_LEARNED_VALUES || learned.kinds.contains_key(v) {
                continue;
            }
            learned.kinds.insert(v.to_string(), kind);
            for form in literal_forms(v) {
                learned.recent_forms.push((form, kind));
            }
        }
        if learned.kinds.len() == before {
            return;
        }
        if learned.recent_forms.len() > LEARNED_RECENT_MAX {
            let forms = learned
                .kinds
                .iter()
                .flat_map(|(v, kind)| literal_forms(v).into_iter().map(|f| (f, *kind)));
            let forms: Vec<(String, &'static str)> = forms.collect();
            let patterns: Vec<&[u8]> = forms.iter().map(|(f, _)| f.as_bytes()).collect();
            let blocks = Blocks::new(&patterns);
            learned.automaton =
                value_automaton(forms.into_iter()).map(|(ac, kinds)| (ac, kinds, blocks));
            learned.recent_forms.clear();
            learned.recent = None;
        } else {
            let forms = learned.recent_forms.iter().map(|(f, k)| (f.clone(), *k));
            learned.recent = value_automaton(forms);
        }
        learned.generation += 1;
    }

    /// Every occurrence of a learned value.
    fn find_learned(&self, text: &str, spans: &mut Vec<Span>) {
        let learned = self.learned.read().unwrap_or_else(PoisonError::into_inner);
        let mut search = |ac: &AhoCorasick, kinds: &[&'static str], region: Range<usize>| {
            for m in ac.find_iter(aho_corasick::Input::new(text).range(region)) {
                let kind = kinds[m.pattern().as_usize()];
                spans.push(Span::new(m.start(), m.end(), kind, PRIORITY_LITERAL));
            }
        };
        match &learned.automaton {
            Some((ac, kinds, Some(blocks))) => {
                for region in blocks.regions(text.as_bytes()) {
                    search(ac, kinds, region);
                }
            }
            Some((ac, kinds, None)) => search(ac, kinds, 0..text.len()),
            None => {}
        }
        if let Some((ac, kinds)) = &learned.recent {
            search(ac, kinds, 0..text.len());
        }
    }

    /// Redact only the learned values in every string of `value` (a second pass over a
    /// record after a value was learned in it).
    pub fn redact_learned_value(&self, value: &mut Value, counts: &mut RedactCounts) {
        let mut stack: Vec<&mut Value> = vec![value];
        while let Some(v) = stack.pop() {
            match v {
                Value::String(s) => self.redact_learned_str(s, counts),
                Value::Array(items) => stack.extend(items.iter_mut()),
                Value::Object(map) => stack.extend(map.values_mut()),
                Value::Null | Value::Bool(_) | Value::Number(_) => {}
            }
        }
    }

    /// Redact only the learned values in `s`.
    pub fn redact_learned_str(&self, s: &mut String, counts: &mut RedactCounts) {
        let mut spans = Vec::new();
        self.find_learned(s, &mut spans);
        drop_spans_inside_markers(s, &mut spans);
        if !spans.is_empty() {
            *s = replace_spans(s, spans, counts);
        }
    }

    /// Forget the learned values (tests: a case must not profit from an earlier one).
    #[cfg(test)]
    pub fn forget(&self) {
        let mut learned = self.learned.write().unwrap_or_else(PoisonError::into_inner);
        let generation = learned.generation + 1;
        *learned = Learned::default();
        learned.generation = generation;
    }

    /// Changes whenever a value is learned: redaction done before may have missed it.
    pub fn generation(&self) -> u64 {
        self.learned
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .generation
    }

    /// Redact every string of a JSON value in place: object keys, string values, and whole
    /// strings stored under secret-named keys. Iterative, so any depth is safe.
    /// A value learned late in the walk may sit in a string walked earlier (a tool's output
    /// before the arguments that named it): callers check [`Redactor::generation`] and make
    /// a [`Redactor::redact_learned_value`] pass.
    pub fn redact_value(&self, value: &mut Value, counts: &mut RedactCounts) {
        let mut stack: Vec<(&mut Value, Under)> = vec![(value, Under::Plain)];
        while let Some((v, under)) = stack.pop() {
            match v {
                Value::String(s) => {
                    let secret = match under {
                        Under::SecretKey => !s.is_empty() && !is_marker(s),
                        Under::WeakKey => assign::looks_generated(s),
                        Under::Plain => false,
                    };
                    if secret {
                        self.learn(std::iter::once((s.as_str(), KIND_SECRET_FIELD)));
                        *s = marker(KIND_SECRET_FIELD);
                        *counts.entry(KIND_SECRET_FIELD).or_default() += 1;
                    } else if let Cow::Owned(clean) = self.redact(s, counts) {
                        *s = clean;
                    }
                }
                Value::Array(items) => stack.extend(items.iter_mut().map(|x| (x, under))),
                Value::Object(map) => {
                    self.redact_keys(map, counts);
                    // A Kubernetes Secret (`kubectl get secret -o json` parsed): every value
                    // of its data is secret, whatever the key.
                    let k8s_secret = map.get("kind").and_then(Value::as_str) == Some("Secret")
                        && map.contains_key("apiVersion");
                    for (k, x) in map.iter_mut() {
                        let child = if under == Under::SecretKey
                            || k8s_secret && (k == "data" || k == "stringData")
                        {
                            Under::SecretKey
                        } else {
                            match assign::judge_name(k) {
                                Strength::Strong => Under::SecretKey,
                                Strength::Weak => Under::WeakKey,
                                Strength::None => Under::Plain,
                            }
                        };
                        stack.push((x, child));
                    }
                }
                Value::Null | Value::Bool(_) | Value::Number(_) => {}
            }
        }
    }

    /// Object keys can hold secrets too (`{"sk-…": …}` from a dumped map).
    fn redact_keys(&self, map: &mut Map<String, Value>, counts: &mut RedactCounts) {
        let renames: Vec<(String, String)> = map
            .keys()
            .filter_map(|k| match self.redact(k, counts) {
                Cow::Owned(clean) => Some((k.clone(), clean)),
                Cow::Borrowed(_) => None,
            })
            .collect();
        for (old, new) in renames {
            if let Some(v) = map.remove(&old) {
                // Two keys may redact to the same text; keep both values.
                let mut key = new.clone();
                let mut n = 2;
                while map.contains_key(&key) {
                    key = format!("{new}#{n}");
                    n += 1;
                }
                map.insert(key, v);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Under {
    Plain,
    /// Under a secret-named key: any value is a secret.
    SecretKey,
    /// Under a key that may name a secret (`key`, `signature`): generated-looking values are.
    WeakKey,
}

/// The replacement text for a kind.
pub fn marker(kind: &str) -> String {
    format!("{MARKER_PREFIX}{kind}]")
}

/// Whether a whole string is one of our markers.
pub fn is_marker(s: &str) -> bool {
    s.starts_with(MARKER_PREFIX)
        && s.ends_with(']')
        && !s[MARKER_PREFIX.len()..s.len() - 1].contains([']', ' '])
}

/// The forms a literal value may take in text: as is, and JSON-escaped (a provider request
/// body logged as a string keeps its quotes and backslashes escaped).
fn literal_forms(value: &str) -> Vec<String> {
    let mut forms = vec![value.to_string()];
    // Two levels: a JSON document quoted inside another one is common in request logs.
    for _ in 0..LITERAL_ESCAPE_LEVELS {
        let last = forms.last().map(String::as_str).unwrap_or_default();
        let quoted = serde_json::to_string(last).unwrap_or_default();
        let escaped = &quoted[1..quoted.len().saturating_sub(1).max(1)];
        if escaped == last {
            break;
        }
        forms.push(escaped.to_string());
    }
    forms
}

/// Merged search windows around keyword occurrences (sorted by start), on char boundaries.
fn windows(text: &str, hits: impl Iterator<Item = (usize, usize)>) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for (start, end) in hits {
        let mut a = start.saturating_sub(WINDOW_BEFORE_BYTES);
        while !text.is_char_boundary(a) {
            a -= 1;
        }
        let mut b = (end + WINDOW_AFTER_BYTES).min(text.len());
        while !text.is_char_boundary(b) {
            b += 1;
        }
        match out.last_mut() {
            Some(last) if a <= last.end => last.end = last.end.max(b),
            _ => out.push(a..b),
        }
    }
    out
}

/// A second pass over redacted text must not redact parts of its own markers
/// (`https://[REDACTED:x]@host` looks like `user:password@host`).
fn drop_spans_inside_markers(text: &str, spans: &mut Vec<Span>) {
    if spans.is_empty() {
        return;
    }
    let markers: Vec<(usize, usize)> = memchr::memmem::find_iter(text.as_bytes(), MARKER_PREFIX)
        .filter_map(|at| text[at..].find(']').map(|len| (at, at + len + 1)))
        .collect();
    if markers.is_empty() {
        return;
    }
    spans.retain(|s| !markers.iter().any(|&(a, b)| a <= s.start && s.end <= b));
}

/// Replace the spans (merged where they overlap, so no fragment of a secret survives between
/// two matches) with markers, counting each replacement under the first span's kind.
fn replace_spans(text: &str, mut spans: Vec<Span>, counts: &mut RedactCounts) -> String {
    spans.sort_unstable_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then(b.end.cmp(&a.end))
            .then(a.priority.cmp(&b.priority))
    });
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        match merged.last_mut() {
            Some(last) if s.start < last.end => last.end = last.end.max(s.end),
            _ => merged.push(s),
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for s in merged {
        out.push_str(&text[at..s.start]);
        out.push_str(MARKER_PREFIX);
        out.push_str(s.kind);
        out.push(']');
        *counts.entry(s.kind).or_default() += 1;
        at = s.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_string_redacted_again_gives_the_same_text_and_counts() {
        let r = Redactor::builtin();
        let key = format!("{}{}_{}", "gh", "p", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8");
        let big = format!("{}{key}\n{}", "x = 1\n".repeat(4000), "y\n".repeat(9000));
        let clean = "no secret here\n".repeat(3000);
        let mut first = RedactCounts::new();
        let a = r.redact(&big, &mut first).into_owned();
        let b = r.redact(&clean, &mut first);
        assert!(matches!(b, Cow::Borrowed(_)));
        let mut again = RedactCounts::new();
        let a2 = r.redact(&big, &mut again).into_owned();
        assert!(matches!(r.redact(&clean, &mut again), Cow::Borrowed(_)));
        assert_eq!(a, a2);
        assert!(!a.contains(&key));
        assert_eq!(first, again);
        assert_eq!(again.values().sum::<u64>(), 1);
        // A different string of the same length is not mistaken for a remembered one.
        let other = big.replacen("x = 1", "x = 2", 1);
        let mut c = RedactCounts::new();
        assert!(r.redact(&other, &mut c).contains("x = 2"));
    }
    use crate::sanitize::secret_corpus::{self, benign_corpus};

    #[test]
    fn keyword_lanes_find_what_one_scan_finds_in_the_same_order() {
        // The real keywords plus a long literal; texts of every size around the lane cuts,
        // made of keyword pieces, so matches overlap, touch and cross the cuts.
        let mut patterns: Vec<String> = RULES
            .iter()
            .flat_map(|d| d.keywords.iter().map(|k| k.to_string()))
            .chain(assign::KEYWORDS.iter().map(|k| k.to_string()))
            .collect();
        patterns.push("Zq8-literal-secret-value-of-forty-bytes-x".into());
        patterns.sort_by_key(|p| p.to_ascii_lowercase());
        patterns.dedup_by_key(|p| p.to_ascii_lowercase());
        let dfa = aho_corasick::dfa::Builder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(&patterns)
            .unwrap();
        let one = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .unwrap();
        let pieces = [
            "sk",
            "KEY",
            "_token",
            " ",
            "\n",
            "passWord",
            "Zq8-literal-secret-value-of-forty-bytes-x",
            "é",
            "ghp_",
            "x",
            "://",
            "==",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut checked_lanes = 0;
        for size in (0..3000).step_by(7).chain([4095, 4096, 4097, 65_537]) {
            let mut text = String::new();
            while text.len() < size {
                text.push_str(pieces[next() as usize % pieces.len()]);
            }
            let want: Vec<(usize, usize, usize)> = one
                .find_overlapping_iter(&text)
                .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
                .collect();
            let mut got = Vec::new();
            keyword_hits(&dfa, text.as_bytes(), &mut got);
            assert_eq!(got, want, "size {size}");
            if text.len() >= KEYWORD_LANES * KEYWORD_LANE_MIN_BYTES.max(4 * 40) {
                checked_lanes += 1;
            }
        }
        assert!(checked_lanes > 100);
    }

    #[test]
    fn values_learned_in_both_tiers_are_redacted_wherever_they_recur() {
        // Forty values make 80 forms (raw and JSON-escaped): the first ones are merged into
        // the large automaton when the recent tier passes its limit, the last ones are still
        // recent. Each must be found without its context, alone and side by side.
        let r = Redactor::builtin();
        let values: Vec<String> = (0..40)
            .map(|i| format!("q{i}Zx7Kp2Lm9Vb4Nc8Rt{}Wy3Hd6", 97 * i + 13))
            .collect();
        for v in &values {
            let mut counts = RedactCounts::new();
            let out = r
                .redact(&format!("export DEPLOY_TOKEN={v}"), &mut counts)
                .into_owned();
            assert!(!out.contains(v.as_str()), "{out}");
        }
        let learned = r.learned.read().unwrap();
        assert!(learned.automaton.is_some() && learned.recent.is_some());
        drop(learned);
        let all = values.join(" and ");
        let mut counts = RedactCounts::new();
        let out = r
            .redact(&format!("echoed: {all}"), &mut counts)
            .into_owned();
        for v in &values {
            assert!(!out.contains(v.as_str()), "{v} survived in {out}");
        }
        assert_eq!(counts.values().sum::<u64>(), 40);
        let mut counts = RedactCounts::new();
        assert!(matches!(
            r.redact("q1Zx7Kp2 is not one", &mut counts),
            Cow::Borrowed(_)
        ));
    }

    fn red(text: &str) -> (String, RedactCounts) {
        let mut counts = RedactCounts::new();
        let out = Redactor::builtin().redact(text, &mut counts).into_owned();
        (out, counts)
    }

    #[test]
    fn base64_prefixes_stay_few_enough_for_a_simd_search() {
        // aho-corasick's packed (Teddy) search takes at most 64 patterns; past that the
        // base64 search falls back to a byte-at-a-time automaton and costs a fifth of the
        // redaction time.
        let mut prefixes: Vec<String> = RULES.iter().filter_map(base64_prefix).collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        assert!(prefixes.len() <= 64, "{} base64 prefixes", prefixes.len());
        assert!(prefixes.contains(&"ZXlK".to_string())); // a JWT
    }

    #[test]
    fn every_builtin_rule_compiles_and_fits_the_bitset() {
        assert!(RULES.len() <= MAX_RULES);
        Redactor::builtin().compile_all();
    }

    #[test]
    fn there_are_at_least_sixty_kinds() {
        let kinds = builtin_kinds();
        assert!(kinds.len() >= 60, "{} kinds", kinds.len());
    }

    #[test]
    fn every_kind_is_caught_with_its_own_label() {
        let r = Redactor::builtin();
        let samples = secret_corpus::samples();
        for s in &samples {
            let mut counts = RedactCounts::new();
            let out = r.redact(&s.text, &mut counts);
            assert!(!out.contains(&s.secret), "{} leaked: {out}", s.kind);
            assert!(
                counts.contains_key(s.kind),
                "{} labelled as {:?}: {out}",
                s.kind,
                counts.keys().collect::<Vec<_>>()
            );
        }
        // The corpus covers every built-in kind.
        let covered: std::collections::BTreeSet<&str> = samples.iter().map(|s| s.kind).collect();
        for kind in builtin_kinds() {
            assert!(covered.contains(kind), "no corpus sample for {kind}");
        }
    }

    #[test]
    fn secrets_are_caught_in_every_surrounding() {
        let r = Redactor::builtin();
        for s in secret_corpus::samples() {
            for wrapped in secret_corpus::surroundings(&s.text) {
                let mut counts = RedactCounts::new();
                let out = r.redact(&wrapped, &mut counts);
                assert!(
                    !out.contains(&s.secret),
                    "{} leaked in {wrapped:?}: {out}",
                    s.kind
                );
            }
        }
    }

    #[test]
    fn windowed_search_of_large_text_finds_what_small_strings_do() {
        let r = Redactor::builtin();
        let filler = secret_corpus::clean_tool_output(3_000);
        let samples = secret_corpus::samples();
        let mut big = secret_corpus::clean_tool_output(WINDOWED_MIN_BYTES);
        let mut expected = 0;
        for s in &samples {
            let mut counts = RedactCounts::new();
            r.redact(&s.text, &mut counts);
            expected += counts.values().sum::<u64>();
            big.push_str(&s.text);
            big.push('\n');
            big.push_str(&filler);
        }
        assert!(big.len() > WINDOWED_MIN_BYTES * 4);
        let mut counts = RedactCounts::new();
        let out = r.redact(&big, &mut counts);
        for s in &samples {
            assert!(
                !out.contains(&s.secret),
                "{} leaked in a large text",
                s.kind
            );
        }
        assert_eq!(counts.values().sum::<u64>(), expected);
    }

    #[test]
    fn benign_text_is_untouched_and_borrowed() {
        let r = Redactor::builtin();
        for text in benign_corpus() {
            let mut counts = RedactCounts::new();
            let out = r.redact(text, &mut counts);
            assert!(
                matches!(out, Cow::Borrowed(_)),
                "changed {text:?} to {out:?} ({counts:?})"
            );
        }
    }

    #[test]
    fn marker_names_the_kind_and_counts_never_hold_values() {
        let tok = secret_corpus::github_pat();
        let (out, counts) = red(&format!("push with {tok} now"));
        assert_eq!(out, "push with [REDACTED:github-pat] now");
        assert_eq!(counts.get("github-pat"), Some(&1));
        assert!(!format!("{counts:?}").contains(&tok));
    }

    #[test]
    fn redaction_is_idempotent() {
        let r = Redactor::builtin();
        for s in secret_corpus::samples() {
            let mut counts = RedactCounts::new();
            let once = r.redact(&s.text, &mut counts).into_owned();
            let mut again = RedactCounts::new();
            let twice = r.redact(&once, &mut again);
            assert_eq!(twice, once, "{}", s.kind);
        }
    }

    #[test]
    fn context_rules_redact_only_the_value() {
        let (out, _) = red("Authorization: Bearer abcDEF0123456789xyzXYZ\nnext line");
        assert_eq!(
            out,
            "Authorization: Bearer [REDACTED:authorization-header]\nnext line"
        );
        let (out, _) = red("psql postgres://admin:s3cr3tPass@db.internal:5432/app");
        assert_eq!(
            out,
            "psql postgres://admin:[REDACTED:url-credentials]@db.internal:5432/app"
        );
        let (out, _) =
            red("Server=tcp:x.example.net;Database=app;User ID=sa;Password=Hunter2!x;Encrypt=true");
        assert_eq!(
            out,
            "Server=tcp:x.example.net;Database=app;User ID=sa;Password=[REDACTED:connection-string-password];Encrypt=true"
        );
    }

    #[test]
    fn variable_references_and_prose_are_not_values() {
        for text in [
            "curl -H \"Authorization: Bearer $OPENAI_API_KEY\" https://api.example.com",
            "curl -H 'Authorization: Bearer ${TOKEN}' https://api.example.com",
            "export OPENAI_API_KEY=$(cat ~/.keys/openai)",
            "password = os.environ[\"DB_PASSWORD\"]",
            "Authorization: required for every endpoint",
            "the bearer of bad news carried a basic idea",
            "token=getToken()",
            "f(password=password)",
            "DB_PASSWORD=${DB_PASSWORD}",
            "git clone https://user@github.com/org/repo.git",
            "docker run -u 1000:1000 image",
            "GIT_AUTHOR_NAME=Jane_Doe_Smith",
            "SSH_AUTH_SOCK=/run/user/1000/keyring/ssh",
            "api_key: YOUR_API_KEY",
            "eos_token: </s>",
        ] {
            let (out, counts) = red(text);
            assert_eq!(out, text, "{counts:?}");
        }
    }

    #[test]
    fn env_values_are_redacted_by_name_and_length() {
        let env = vec![
            (
                "MY_SERVICE_TOKEN".to_string(),
                "opaque-value-7788".to_string(),
            ),
            (
                "DB_PASSWORD".to_string(),
                "correct horse battery".to_string(),
            ),
            ("SHORT_SECRET".to_string(), "abc".to_string()),
            ("HOME".to_string(), "/home/someone".to_string()),
            ("EDITOR_THEME".to_string(), "solarized-dark".to_string()),
            (
                "SSH_AUTH_SOCK".to_string(),
                "/tmp/ssh-agent.sock".to_string(),
            ),
        ];
        let r = Redactor::new(Vec::new(), env, &[]).unwrap();
        let mut counts = RedactCounts::new();
        let text = "got opaque-value-7788 and correct horse battery; abc stays; solarized-dark stays; /home/someone";
        let out = r.redact(text, &mut counts);
        assert_eq!(
            out,
            "got [REDACTED:env-value] and [REDACTED:env-value]; abc stays; solarized-dark stays; /home/someone"
        );
        assert_eq!(counts.get(KIND_ENV_VALUE), Some(&2));
        // The JSON-escaped form of a value with quotes is caught too.
        let r = Redactor::new(
            Vec::new(),
            vec![("API_KEY".to_string(), "pa\"ss\\word99".to_string())],
            &[],
        )
        .unwrap();
        let mut counts = RedactCounts::new();
        let out = r.redact(r#"{"body":"{\"k\":\"pa\\\"ss\\\\word99\"}"}"#, &mut counts);
        assert!(!out.contains("word99"), "{out}");
    }

    #[test]
    fn secrets_file_values_are_redacted() {
        let file = parse_dotenv(
            "# deploy secrets\nexport DEPLOY_TOKEN=\"tok-9f8e7d6c5b4a\"\nHOST_ID=node1a2b3c4d5e6f7g8h\nNODE_ENV=production\nMULTI=\"line1\\nline2\"\n",
        );
        assert_eq!(
            file[0],
            ("DEPLOY_TOKEN".to_string(), "tok-9f8e7d6c5b4a".to_string())
        );
        assert_eq!(file[3].1, "line1\nline2");
        let r = Redactor::new(Vec::new(), std::iter::empty(), &file).unwrap();
        let mut counts = RedactCounts::new();
        let out = r.redact(
            "use tok-9f8e7d6c5b4a on node1a2b3c4d5e6f7g8h in production",
            &mut counts,
        );
        assert_eq!(
            out,
            "use [REDACTED:secrets-file-value] on [REDACTED:secrets-file-value] in production"
        );
    }

    #[test]
    fn dotenv_parser_handles_quotes_comments_and_multiline() {
        let parsed = parse_dotenv(
            "A=1\n  # note\nB='x # y'\nC=plain # trailing\nD=\"-----BEGIN X-----\nabc\n-----END X-----\"\nnot a line\nE=\n",
        );
        let map: BTreeMap<_, _> = parsed.into_iter().collect();
        assert_eq!(map["A"], "1");
        assert_eq!(map["B"], "x # y");
        assert_eq!(map["C"], "plain");
        assert_eq!(map["D"], "-----BEGIN X-----\nabc\n-----END X-----");
        assert_eq!(map["E"], "");
        assert_eq!(map.len(), 5);
    }

    #[test]
    fn user_patterns_are_applied() {
        let r = Redactor::new(
            vec![
                Regex::new(r"ACME-[0-9]{6}").unwrap(),
                Regex::new("x*").unwrap(),
            ],
            std::iter::empty(),
            &[],
        )
        .unwrap();
        let mut counts = RedactCounts::new();
        assert_eq!(
            r.redact("ticket ACME-123456", &mut counts),
            "ticket [REDACTED:custom]"
        );
        assert_eq!(counts.get(KIND_CUSTOM), Some(&1));
    }

    #[test]
    fn secret_named_keys_hide_their_values() {
        let r = Redactor::builtin();
        let mut v = serde_json::json!({
            "api_key": "abc",
            "headers": {"Authorization": "Bearer zzz", "Accept": "application/json"},
            "auth": {"user": "me", "pass": "hunter2"},
            "max_tokens": 4096,
            "tokenizer": "cl100k",
            "eos_token": "</s>",
            "password": "",
            "items": [{"clientSecret": "s1"}, {"key": "enter"}]
        });
        let mut counts = RedactCounts::new();
        r.redact_value(&mut v, &mut counts);
        assert_eq!(v["api_key"], "[REDACTED:secret-field]");
        assert_eq!(v["headers"]["Authorization"], "[REDACTED:secret-field]");
        assert_eq!(v["headers"]["Accept"], "application/json");
        assert_eq!(v["auth"]["pass"], "[REDACTED:secret-field]");
        assert_eq!(v["max_tokens"], 4096);
        assert_eq!(v["tokenizer"], "cl100k");
        assert_eq!(v["eos_token"], "</s>");
        assert_eq!(v["password"], "");
        assert_eq!(v["items"][0]["clientSecret"], "[REDACTED:secret-field]");
        assert_eq!(v["items"][1]["key"], "enter");
        assert_eq!(counts.get(KIND_SECRET_FIELD), Some(&5));
    }

    #[test]
    fn secrets_in_object_keys_are_redacted() {
        let tok = secret_corpus::github_pat();
        let mut v = serde_json::json!({ tok.clone(): 1, "other": 2 });
        let mut counts = RedactCounts::new();
        Redactor::builtin().redact_value(&mut v, &mut counts);
        assert!(!v.to_string().contains(&tok));
        assert_eq!(v["[REDACTED:github-pat]"], 1);
    }

    #[test]
    fn secret_names_are_classified() {
        for n in [
            "OPENAI_API_KEY",
            "DB_PASSWORD",
            "GITHUB_TOKEN",
            "GHTOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "SENTRY_DSN",
            "npm_config__auth",
        ] {
            assert!(is_secret_env_name(n), "{n}");
        }
        for n in [
            "GIT_AUTHOR_NAME",
            "SSH_AUTH_SOCK",
            "KEYBOARD_LAYOUT",
            "PATH",
            "HOME",
            "TOKEN_LIMIT",
            "GOOGLE_APPLICATION_CREDENTIALS_FILE",
        ] {
            assert!(!is_secret_env_name(n), "{n}");
        }
        for k in [
            "api_key",
            "apiKey",
            "x-api-key",
            "Authorization",
            "client_secret",
            "access_token",
            "password",
            "SecretAccessKey",
            "Set-Cookie",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "max_tokens",
            "tokenizer",
            "publicKey",
            "key",
            "totalTokens",
            "tokenBudget",
            "persistenceKey",
            "pad_token",
            "keyId",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn pem_blocks_go_whole_even_when_cut_or_escaped() {
        let body = secret_corpus::pem_body();
        let cut = format!("key:\n-----BEGIN RSA PRIVATE KEY-----\n{body}");
        let (out, _) = red(&cut);
        assert_eq!(out, "key:\n[REDACTED:private-key]");
        let escaped = format!(
            "\"-----BEGIN PRIVATE KEY-----\\n{}\\n-----END PRIVATE KEY-----\\n\" rest",
            body.replace('\n', "\\n")
        );
        let (out, _) = red(&escaped);
        assert_eq!(out, "\"[REDACTED:private-key]\\n\" rest");
    }

    #[test]
    fn basic_auth_needs_decodable_credentials() {
        assert!(decodes_to_credentials("dXNlcjpwYXNz")); // user:pass
        assert!(!decodes_to_credentials("authentication"));
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
    }

    #[test]
    fn debug_output_hides_literals() {
        let r = Redactor::new(
            Vec::new(),
            vec![("API_TOKEN".to_string(), "very-secret-value-1".to_string())],
            &[],
        )
        .unwrap();
        assert!(!format!("{r:?}").contains("very-secret"));
    }

    #[test]
    fn clean_long_text_is_borrowed() {
        let text = secret_corpus::clean_tool_output(200_000);
        let mut counts = RedactCounts::new();
        assert!(
            matches!(
                Redactor::builtin().redact(&text, &mut counts),
                Cow::Borrowed(_)
            ),
            "{counts:?}"
        );
    }

    /// Throughput figure for the closing note:
    /// `cargo test --release -- --ignored --nocapture redaction_throughput`.
    #[test]
    #[ignore = "benchmark; run in release"]
    fn redaction_throughput() {
        let r = Redactor::new(
            Vec::new(),
            vec![(
                "SOME_API_TOKEN".to_string(),
                "literal-secret-value-1234".to_string(),
            )],
            &[],
        )
        .unwrap();
        r.compile_all();
        let clean = secret_corpus::clean_tool_output(32 << 20);
        let dirty = secret_corpus::dirty_tool_output(32 << 20);
        for (name, text) in [("clean", &clean), ("dirty", &dirty)] {
            let mut counts = RedactCounts::new();
            let _ = r.redact(text, &mut counts); // warm up
            let runs = 3;
            let start = std::time::Instant::now();
            let mut total = 0;
            for _ in 0..runs {
                let mut counts = RedactCounts::new();
                total += r.redact(text, &mut counts).len();
            }
            let secs = start.elapsed().as_secs_f64();
            let mb = (text.len() * runs) as f64 / 1e6;
            let mut counts = RedactCounts::new();
            let _ = r.redact(text, &mut counts);
            let n: u64 = counts.values().sum();
            println!(
                "{name}: {:.0} MB/s ({:.1} MB x{runs}, {n} redactions, out {total} bytes)",
                mb / secs,
                text.len() as f64 / 1e6
            );
        }
    }
}
