//! Secrets found by their context: a secret-named name, a separator, a value, in whatever
//! syntax the text is written in.
//!
//! The redactor's automaton reports every occurrence of a secret word (`key`, `token`,
//! `secret`, `pass`, …). From there [`at_keyword`] reads the whole name around it (`apiToken`,
//! `DB_PASSWORD`, `spring.datasource.password`, `--slack-token`), judges it by its words
//! ([`judge_name`]), and parses what follows as an assignment: `=`, `:`, `:=`, `::=`, `?=`,
//! `.=`, `=>`, typed declarations (`api_key: str = "…"`, Go's `apiToken string = "…"`), call
//! arguments (`setProperty("X_TOKEN", "…")`), XML elements (`<apiToken>…</apiToken>`),
//! command-line flags (`--db-password …`), `ENV NAME value`, and prose (`the token - '…'`).
//! The value is then checked: placeholders, variable references, code, booleans and paths are
//! not secrets; a name that is only weakly secret (`key`, `signature`) needs a value that looks
//! generated.
//!
//! Nothing here depends on where the text starts: a `grep` prefix, an `export` or a sentence
//! before the name changes nothing.

use std::ops::Range;

/// The secret words whose occurrences start a parse (matched ASCII-case-insensitively by
/// the redactor's automaton).
pub const KEYWORDS: &[&str] = &[
    "key",
    "secret",
    "token",
    "pass",
    "pwd",
    "cred",
    "auth",
    "cookie",
    "dsn",
    "private",
    "signature",
    "_pat",
];

/// How strongly a name says that its value is a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Strength {
    /// Not a secret name (`max_tokens`, `token_url`, `publicKey`, `keyboard`).
    None,
    /// A secret only when the value looks generated (`key`, `cacheKey`, `signature`).
    Weak,
    /// Any real value is a secret (`password`, `apiToken`, `stripe_key`, `creds`).
    Strong,
}

/// Names longer than this are not names (a base64 blob that happens to contain `Key`).
const MAX_NAME_BYTES: usize = 96;
/// Words of a name looked at, at most.
const MAX_WORDS: usize = 24;
/// Values longer than this are not single secrets (a document under `"content"`).
const MAX_VALUE_BYTES: usize = 4096;
/// A quoted value must have at least this many characters.
const MIN_QUOTED_CHARS: usize = 4;
/// A bare value must have at least this many characters.
const MIN_BARE_CHARS: usize = 6;

/// Words that make a name secret on their own.
const STRONG_WORDS: &[&str] = &[
    "secret",
    "secrets",
    "password",
    "passwords",
    "passwd",
    "pwd",
    "pass",
    "passphrase",
    "token",
    "tokens",
    "credential",
    "credentials",
    "creds",
    "cred",
    "apikey",
    "apikeys",
    "auth",
    "authorization",
    "cookie",
    "cookies",
    "dsn",
    "privatekey",
    "secretkey",
    "accesskey",
    "clientsecret",
];

/// Words that make a name secret only together with a generated-looking value.
const WEAK_WORDS: &[&str] = &[
    "key",
    "keys",
    "private",
    "signature",
    "sig",
    "session",
    "sas",
    "bearer",
    "salt",
    "seed",
    "hmac",
];

/// Words before `key` that make it a credential rather than an index or a lookup key.
const SECRET_KEY_QUALIFIERS: &[&str] = &[
    "api",
    "access",
    "secret",
    "private",
    "priv",
    "auth",
    "master",
    "signing",
    "sign",
    "encryption",
    "encrypt",
    "enc",
    "crypt",
    "crypto",
    "cipher",
    "client",
    "app",
    "application",
    "service",
    "account",
    "shared",
    "admin",
    "root",
    "license",
    "licence",
    "subscription",
    "webhook",
    "hmac",
    "jwt",
    "session",
    "write",
    "deploy",
    "server",
    "consumer",
    "integration",
    "management",
    "ingest",
    "ingestion",
    "live",
    "prod",
    "production",
    "dev",
    "test",
    "sandbox",
    "stripe",
    "openai",
    "anthropic",
    "aws",
    "gcp",
    "azure",
];

/// Words after which `token` counts tokens or names tokenizer vocabulary.
const TOKEN_SAFE_QUALIFIERS: &[&str] = &[
    "max",
    "min",
    "input",
    "output",
    "prompt",
    "completion",
    "total",
    "cache",
    "cached",
    "reasoning",
    "thinking",
    "context",
    "remaining",
    "used",
    "num",
    "per",
    "budget",
    "eos",
    "bos",
    "pad",
    "unk",
    "sep",
    "cls",
    "mask",
    "stop",
    "start",
    "end",
    "special",
    "image",
    "audio",
    "text",
    "word",
    "design",
    "color",
    "theme",
    "css",
    "lexer",
    "parser",
    "syntax",
    "next",
    "page",
    "continuation",
    "cancellation",
    "cancel",
    "sync",
    "ast",
];

/// A name whose first word is one of these describes a secret, it does not hold one
/// (`is_token_valid`, `show_password`, `max_tokens`).
const SAFE_FIRST_WORDS: &[&str] = &[
    "is", "has", "use", "uses", "enable", "enabled", "disable", "disabled", "require", "required",
    "requires", "show", "hide", "reset", "forgot", "toggle", "allow", "allowed", "no", "skip",
    "should", "can", "needs", "num", "max", "min", "total", "count", "validate", "invalid",
    "missing", "get", "fetch", "load", "read", "write", "parse", "check", "verify", "generate",
    "gen", "create", "delete", "remove", "revoke", "rotate", "refresh_", "on", "handle", "with",
    "without",
];

/// A name whose last word is one of these names something about a secret, not the secret
/// (`token_url`, `password_file`, `key_id`, `secret_name`, `tokenizer`).
const SAFE_LAST_WORDS: &[&str] = &[
    "id",
    "ids",
    "name",
    "names",
    "file",
    "files",
    "path",
    "paths",
    "dir",
    "folder",
    "url",
    "urls",
    "uri",
    "uris",
    "host",
    "hostname",
    "port",
    "type",
    "types",
    "length",
    "len",
    "size",
    "count",
    "counts",
    "limit",
    "limits",
    "max",
    "min",
    "version",
    "timeout",
    "ttl",
    "expiry",
    "expires",
    "expiration",
    "exp",
    "at",
    "prefix",
    "suffix",
    "field",
    "fields",
    "env",
    "var",
    "vars",
    "ref",
    "refs",
    "arn",
    "hint",
    "policy",
    "policies",
    "rotation",
    "endpoint",
    "endpoints",
    "region",
    "mode",
    "enabled",
    "disabled",
    "method",
    "methods",
    "provider",
    "providers",
    "format",
    "label",
    "labels",
    "description",
    "desc",
    "help",
    "hash",
    "hashes",
    "hashed",
    "algorithm",
    "alg",
    "algo",
    "kind",
    "location",
    "store",
    "manager",
    "required",
    "stdin",
    "through",
    "thru",
    "usage",
    "used",
    "budget",
    "index",
    "idx",
    "pattern",
    "regex",
    "validator",
    "validation",
    "error",
    "errors",
    "message",
    "msg",
    "status",
    "state",
    "strength",
    "expired",
    "valid",
    "invalid",
    "source",
    "src",
    "command",
    "cmd",
    "config",
    "cfg",
    "option",
    "options",
    "helper",
    "handler",
    "callback",
    "fn",
    "func",
    "function",
    "class",
    "module",
    "schema",
    "generator",
    "factory",
    "builder",
    "user",
    "username",
    "login",
    "email",
    "owner",
    "server",
    "service",
    "scope",
    "scopes",
    "audience",
    "issuer",
    "header",
    "headers",
    "param",
    "params",
    "input",
    "placeholder",
    "prompt",
    "text",
    "title",
    "link",
    "page",
    "form",
    "button",
    "view",
    "screen",
    "dialog",
    "modal",
    "route",
    "router",
    "count",
    "lifetime",
    "duration",
    "interval",
    "delay",
    "age",
    "created",
    "updated",
    "date",
    "time",
    "timestamp",
    "fingerprint",
    "digest",
    "checksum",
    "policy",
    "rules",
    "rule",
    "strategy",
    "manager",
    "cache",
    "reset",
    "change",
    "confirmation",
    "sent",
    "flow",
    "grant",
    "response",
    "request",
    "endpoint",
    "exchange",
    "introspection",
    "revocation",
    "client",
    "ok",
    "set",
    "missing",
    "test",
    "tests",
    "spec",
    "mock",
    "fixture",
    "example",
    "sample",
    "len",
    "bytes_len",
    "hasher",
    "hashing",
    "sock",
    "socket",
    "exists",
    "present",
    "seconds",
    "secs",
    "ms",
    "minutes",
    "hours",
    "days",
    "type_",
    "enc",
    "encoding",
    "store_",
    "backend",
    "engine",
    "chars",
    "length_",
    "bits",
];

/// English words ending in `key` (not a credential).
const KEY_WORDS: &[&str] = &[
    "monkey", "donkey", "turkey", "hockey", "jockey", "whiskey", "lackey", "hotkey", "passkey",
    "latchkey", "turnkey", "pokey", "hokey", "smokey", "flunkey", "malarkey", "keykey",
];

/// English words ending in `pass` (not a password).
const PASS_WORDS: &[&str] = &[
    "bypass",
    "compass",
    "overpass",
    "underpass",
    "trespass",
    "encompass",
    "surpass",
    "firstpass",
    "multipass",
    "onepass",
];

fn is_one_of(word: &str, list: &[&str]) -> bool {
    list.iter().any(|w| w.eq_ignore_ascii_case(word))
}

fn ends_with_ci(word: &str, suffix: &str) -> bool {
    word.len() > suffix.len()
        && word.as_bytes()[word.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// Split a name into words: at separators, at camelCase humps (`apiKey`, `APIKey`), and
/// between letters and digits (`token2`). At most 24 words; the rest is ignored.
fn split_words(name: &str) -> ([(u16, u16); MAX_WORDS], usize) {
    let b = name.as_bytes();
    let mut words = [(0u16, 0u16); MAX_WORDS];
    let mut n = 0;
    let mut start: Option<usize> = None;
    let mut push = |s: usize, e: usize, n: &mut usize| {
        if *n < words.len() && e > s {
            words[*n] = (s as u16, e as u16);
            *n += 1;
        }
    };
    for i in 0..b.len().min(u16::MAX as usize) {
        let c = b[i];
        if !c.is_ascii_alphanumeric() {
            if let Some(s) = start.take() {
                push(s, i, &mut n);
            }
            continue;
        }
        match start {
            None => start = Some(i),
            Some(s) => {
                let p = b[i - 1];
                let hump = p.is_ascii_lowercase() && c.is_ascii_uppercase();
                let acronym_end = p.is_ascii_uppercase()
                    && c.is_ascii_uppercase()
                    && b.get(i + 1).is_some_and(u8::is_ascii_lowercase);
                let digits = p.is_ascii_digit() != c.is_ascii_digit();
                if hump || acronym_end || digits {
                    push(s, i, &mut n);
                    start = Some(i);
                }
            }
        }
    }
    if let Some(s) = start {
        push(s, b.len(), &mut n);
    }
    (words, n)
}

/// Judge a name by its words: `apiToken`, `some_api_token_123`, `mySecretString`, `creds`,
/// `stripe_key` are secret; `max_tokens`, `token_count`, `keyboard`, `public_key_id` are not.
pub fn judge_name(name: &str) -> Strength {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Strength::None;
    }
    let (spans, n) = split_words(name);
    // On the stack: every object key of every record is judged.
    let mut all = [""; MAX_WORDS];
    for (w, &(s, e)) in all.iter_mut().zip(&spans[..n]) {
        *w = &name[s as usize..e as usize];
    }
    // Trailing numbers (`token_123`, `KEY2`) say nothing.
    let mut words: &[&str] = &all[..n];
    while let Some((last, rest)) = words.split_last() {
        if last.bytes().all(|b| b.is_ascii_digit()) {
            words = rest;
        } else {
            break;
        }
    }
    let Some(&last) = words.last() else {
        return Strength::None;
    };
    if words
        .iter()
        .any(|w| is_one_of(w, &["public", "pub", "publishable"]))
        || (words.len() > 1 && is_one_of(words[0], SAFE_FIRST_WORDS))
        || (words.len() > 1 && is_one_of(last, SAFE_LAST_WORDS))
    {
        return Strength::None;
    }
    let mut best = Strength::None;
    for (i, &w) in words.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| words[p]);
        let strength = word_strength(w, prev);
        best = best.max(strength);
        if best == Strength::Strong {
            break;
        }
    }
    best
}

fn word_strength(w: &str, prev: Option<&str>) -> Strength {
    let token_like = is_one_of(w, &["token", "tokens"]);
    if token_like {
        return match prev {
            Some(p) if is_one_of(p, TOKEN_SAFE_QUALIFIERS) => Strength::None,
            _ => Strength::Strong,
        };
    }
    if is_one_of(w, STRONG_WORDS) {
        return Strength::Strong;
    }
    // `PAT` only as an upper-case word (`GITHUB_PAT`), never in code (`pat`, a pattern).
    if w == "PAT" {
        return Strength::Strong;
    }
    if is_one_of(w, &["key", "keys"]) {
        return match prev {
            Some(p) if is_one_of(p, SECRET_KEY_QUALIFIERS) => Strength::Strong,
            _ => Strength::Weak,
        };
    }
    if is_one_of(w, WEAK_WORDS) {
        return Strength::Weak;
    }
    // Compounds written as one word: `ghtoken`, `dbpassword`, `APIKEY`, `stripekey`.
    for suffix in [
        "token",
        "secret",
        "password",
        "passwd",
        "passphrase",
        "credentials",
        "creds",
    ] {
        if ends_with_ci(w, suffix) {
            return Strength::Strong;
        }
    }
    if (ends_with_ci(w, "key") || ends_with_ci(w, "keys")) && !is_one_of(w, KEY_WORDS) {
        let stem = w.trim_end_matches(['s', 'S']);
        let stem = &stem[..stem.len().saturating_sub(3)];
        return if is_one_of(stem, SECRET_KEY_QUALIFIERS) {
            Strength::Strong
        } else {
            Strength::Weak
        };
    }
    if (ends_with_ci(w, "pass") && !is_one_of(w, PASS_WORDS))
        || (ends_with_ci(w, "pwd") && !w.eq_ignore_ascii_case("oldpwd"))
        || ends_with_ci(w, "auth")
    {
        return Strength::Strong;
    }
    Strength::None
}

/// What [`at_keyword`] found around one keyword occurrence.
#[derive(Debug, Clone)]
pub struct Found {
    /// End of the name the keyword belongs to: later keywords before it are the same name.
    pub name_end: usize,
    /// The secret value, when the name is secret and is assigned a real value.
    pub value: Option<Range<usize>>,
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// How the value was introduced; decides how much evidence the value itself must add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sep {
    /// `=`, `:`, `:=`, `=>`, …
    Assign,
    /// `("NAME", "value")`: the value must be quoted.
    Argument,
    /// `<name>value</name>`.
    Element,
    /// `--name value`, `ENV NAME value`.
    Flag,
    /// `the token - '…'`, `password is …`: the value must be quoted or look generated.
    Prose,
}

/// Parse the name around the keyword at `kw_start..kw_end` and what follows it.
pub fn at_keyword(text: &str, kw_start: usize, kw_end: usize) -> Found {
    let b = text.as_bytes();
    let mut start = kw_start;
    while start > 0 && is_name_byte(b[start - 1]) && kw_start - start <= MAX_NAME_BYTES {
        start -= 1;
    }
    let mut end = kw_end;
    while end < b.len() && is_name_byte(b[end]) && end - kw_end <= MAX_NAME_BYTES {
        end += 1;
    }
    let found = |value| Found {
        name_end: end,
        value,
    };
    // Flags (`--token`) and trailing punctuation (`password.` ending a sentence) are not
    // part of the name.
    while start < end && matches!(b[start], b'-' | b'.') {
        start += 1;
    }
    let mut name_end = end;
    while name_end > start && matches!(b[name_end - 1], b'-' | b'.') {
        name_end -= 1;
    }
    if name_end - start > MAX_NAME_BYTES || name_end <= kw_start {
        return found(None);
    }
    let name = &text[start..name_end];
    let value = parse_assignment(text, start, name_end, name);
    found(value)
}

fn parse_assignment(text: &str, start: usize, name_end: usize, name: &str) -> Option<Range<usize>> {
    let b = text.as_bytes();
    // What precedes the name: a quote (`"api_key"`, `\"api_key\"`), `<` (an XML element),
    // a dash (a flag), a sigil (`$token`, `@token`, `:token`).
    let mut before = start;
    while before > 0 && matches!(b[before - 1], b'$' | b'@') {
        before -= 1;
    }
    let prev = before.checked_sub(1).map(|i| b[i]);
    let flag = start > 0 && b[start - 1] == b'-';
    let closed = match prev {
        Some(q @ (b'"' | b'\'' | b'`')) => closing_quote(b, before, name_end, q),
        _ => None,
    };
    let name = Name {
        text: name,
        before,
        flag,
        quoted: closed.is_some(),
    };
    // Without its closing quote, a quote opens a sentence (`"my token is …"`): prose.
    let at = closed.unwrap_or(name_end);
    if let Some(decided) = structured_value(text, prev, at, &name) {
        return decided;
    }
    separated_value(text, at, &name)
}

/// A name and what surrounds it.
struct Name<'t> {
    text: &'t str,
    /// Where the name starts, sigils (`$`, `@`) included.
    before: usize,
    /// After a dash: a command-line flag.
    flag: bool,
    /// In quotes, closed the way they were opened (`"k"`, `\"k\"`).
    quoted: bool,
}

/// Past the quote that closes a quoted name (escaped the same way as the opening one, and
/// a `]` after it: `ENV["TOKEN"] = …`); `None` when there is none.
fn closing_quote(b: &[u8], before: usize, name_end: usize, q: u8) -> Option<usize> {
    let mut open_escapes = 0;
    while before >= 2 + open_escapes && b[before - 2 - open_escapes] == b'\\' {
        open_escapes += 1;
    }
    let mut i = name_end;
    let mut close_escapes = 0;
    while i < b.len() && b[i] == b'\\' {
        i += 1;
        close_escapes += 1;
    }
    if i >= b.len() || b[i] != q || close_escapes != open_escapes {
        return None;
    }
    let at = i + 1;
    Some(if b.get(at) == Some(&b']') { at + 1 } else { at })
}

/// The forms where the value sits in a structure around the name rather than after a
/// separator: an XML element, a name/value pair, a labelled block. `Some` when one applies.
fn structured_value(
    text: &str,
    prev: Option<u8>,
    at: usize,
    name: &Name<'_>,
) -> Option<Option<Range<usize>>> {
    if prev == Some(b'<') {
        return Some(
            element_value(text, at).filter(|v| accept(text, v, Sep::Element, name.text, true)),
        );
    }
    // The fields holding the value, and whether it may be unquoted there.
    let (fields, bare_ok) = if labelled_name(text, name.before) {
        // `- name: DB_PASSWORD\n  value: "…"` (Kubernetes env), `{"name": "X_TOKEN",
        // "value": "…"}` (ECS, GitHub API): the value is in the pair's `value` field.
        (&["value"][..], true)
    } else if name.quoted && text[at..].trim_start_matches([' ', '\t']).starts_with('{') {
        // A block labelled with the name (Terraform/HCL `variable "db_password" {
        // default = "…" }`): the value is its `default` or `value`.
        (&["default", "value"][..], false)
    } else {
        return None;
    };
    let Some(value_at) = paired_value(text, at, fields) else {
        return Some(None);
    };
    if let Some((v, _)) = quoted_value(text, value_at) {
        return Some(accept(text, &v, Sep::Element, name.text, true).then_some(v));
    }
    Some(
        bare_value(text, value_at)
            .filter(|v| bare_ok && accept(text, v, Sep::Assign, name.text, false)),
    )
}

/// The value after a separator (`=`, `:`, `:=`, …, a flag's space, prose).
fn separated_value(text: &str, mut at: usize, name: &Name<'_>) -> Option<Range<usize>> {
    let b = text.as_bytes();
    // Most keyword occurrences are code or prose (`Key(key.into())`, `the token.`): nothing
    // that can start an assignment follows them.
    if !matches!(
        b.get(at),
        Some(b' ' | b'\t' | b'=' | b':' | b',' | b'?' | b'+' | b'.' | b'|' | b'<')
    ) {
        return None;
    }
    let spaces_from = at;
    while at < b.len() && is_space(b[at]) {
        at += 1;
    }
    let spaced = at > spaces_from;
    let rest = &b[at..];
    let (sep, len) = if let Some(len) = assign_operator(rest) {
        (Sep::Assign, len)
    } else if rest.first() == Some(&b':') && rest.get(1) != Some(&b':') {
        // `name: value`, or a typed declaration `name: Type = "value"`.
        if let Some((v, _)) = typed_declaration(b, at + 1).and_then(|at| quoted_value(text, at)) {
            return accept(text, &v, Sep::Assign, name.text, true).then_some(v);
        }
        (Sep::Assign, 1)
    } else if name.quoted && rest.first() == Some(&b',') {
        (Sep::Argument, 1)
    } else if spaced && (name.flag || env_keyword_before(text, name.before)) {
        (Sep::Flag, 0)
    } else if spaced {
        if let Some(decided) = spaced_value(text, at, name) {
            return decided;
        }
        (Sep::Prose, prose_separator(rest)?)
    } else {
        return None;
    };
    at += len;
    while at < b.len() && is_space(b[at]) {
        at += 1;
    }
    if let Some((v, _)) = quoted_value(text, at) {
        return accept(text, &v, sep, name.text, true).then_some(v);
    }
    if sep == Sep::Argument {
        return None;
    }
    let v = bare_value(text, at)?;
    accept(text, &v, sep, name.text, false).then_some(v)
}

/// After the name and a space: a directive's quoted value, a Go declaration, a Markdown
/// table cell. `Some` when one applies (prose is tried next otherwise).
fn spaced_value(text: &str, at: usize, name: &Name<'_>) -> Option<Option<Range<usize>>> {
    let b = text.as_bytes();
    // A directive with its value after a space: nginx `proxy_set_header X-Api-Key "…";`,
    // SQL `… WITH PASSWORD '…'`. Prose quotes words too (`the password "field"`): unless
    // the name is an upper-case keyword or variable, the value must look random.
    if let Some((v, _)) = quoted_value(text, at) {
        let upper = !name.text.bytes().any(|c| c.is_ascii_lowercase());
        let ok = accept(text, &v, Sep::Assign, name.text, true)
            && (upper || looks_random(&text[v.clone()]));
        return Some(ok.then_some(v));
    }
    if let Some(value_at) = go_declaration(b, at) {
        return Some(
            quoted_value(text, value_at)
                .filter(|(v, _)| accept(text, v, Sep::Assign, name.text, true))
                .map(|(v, _)| v),
        );
    }
    if b.get(at) == Some(&b'|') && table_cell_before(text, name.before) {
        // A Markdown table row: `| DB_PASSWORD | … |`.
        let Some(cell_end) = text[at + 1..].find(['|', '\n']).map(|i| at + 1 + i) else {
            return Some(None);
        };
        let raw = &text[at + 1..cell_end];
        let lead = raw.len() - raw.trim_start().len();
        let v = at + 1 + lead..at + 1 + lead + raw.trim().len();
        return Some(accept(text, &v, Sep::Assign, name.text, false).then_some(v));
    }
    None
}

/// Whether the name at `name_start` starts a Markdown table cell (`| NAME |`).
fn table_cell_before(text: &str, name_start: usize) -> bool {
    text[..name_start]
        .trim_end_matches([' ', '\t', '`'])
        .ends_with('|')
}

/// Whether the name at `name_start` is the value of a `name` field (`name: X`, `"name": "X"`,
/// `Name=X`, `<name>X`).
fn labelled_name(text: &str, name_start: usize) -> bool {
    let head = text[..name_start].trim_end_matches(['"', '\'', '\\', ' ', '\t', '>']);
    let Some(head) = head.strip_suffix([':', '=']).or_else(|| {
        text[..name_start]
            .trim_end_matches(['"', '\'', '\\', ' ', '\t'])
            .strip_suffix('>')
    }) else {
        return false;
    };
    let head = head.trim_end_matches(['"', '\'', '\\', ' ', '\t']);
    let head = head.strip_suffix("<name").unwrap_or(head);
    head.len() >= 4
        && head.as_bytes()[head.len() - 4..].eq_ignore_ascii_case(b"name")
        && !head[..head.len() - 4]
            .bytes()
            .next_back()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Where the value of the first of `fields` after a labelled name starts (within a few
/// lines; not past another `name`).
fn paired_value(text: &str, from: usize, fields: &[&str]) -> Option<usize> {
    const PAIR_WINDOW_BYTES: usize = 200;
    let mut end = (from + PAIR_WINDOW_BYTES).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let window = &text[from..end];
    let lower = window.to_ascii_lowercase();
    let mut search = 0;
    while let Some((i, field)) = fields
        .iter()
        .filter_map(|f| lower[search..].find(f).map(|i| (i, *f)))
        .min()
    {
        let at = search + i;
        search = at + field.len();
        if lower[..at].contains("name") {
            return None;
        }
        let before_ok = at == 0
            || !window.as_bytes()[at - 1].is_ascii_alphanumeric()
                && window.as_bytes()[at - 1] != b'_';
        if !before_ok {
            continue;
        }
        let rest = window[search..].trim_start_matches(['"', '\'', '\\', ' ', '\t']);
        if let Some(r) = rest.strip_prefix([':', '=']) {
            let r = r.trim_start_matches([' ', '\t']);
            return Some(from + window.len() - r.len());
        }
        if let Some(r) = rest.strip_prefix('>') {
            return Some(from + window.len() - r.len());
        }
    }
    None
}

/// `=`, `:=`, `::=`, `:::=`, `?=`, `+=`, `.=`, `||=`, `=>`, `<-` (not `==`, `=~`).
fn assign_operator(rest: &[u8]) -> Option<usize> {
    let ops: [&[u8]; 9] = [
        b":::=", b"::=", b":=", b"?=", b"+=", b".=", b"||=", b"=>", b"<-",
    ];
    if let Some(len) = starts_with_any(rest, &ops) {
        return Some(len);
    }
    match rest {
        [b'=', b'=' | b'~', ..] => None,
        [b'=', ..] => Some(1),
        _ => None,
    }
}

/// After `name:`: a type and `=` (`api_key: str = "…"`, `val token: String = "…"`,
/// `let key: &'static str = "…"`); returns where the value starts.
fn typed_declaration(b: &[u8], mut at: usize) -> Option<usize> {
    while at < b.len() && is_space(b[at]) {
        at += 1;
    }
    let type_start = at;
    while at < b.len()
        && (b[at].is_ascii_alphanumeric()
            || matches!(
                b[at],
                b'_' | b'&' | b'\'' | b'<' | b'>' | b'[' | b']' | b'.' | b'?' | b'|' | b' ' | b':'
            ))
        && at - type_start < 48
    {
        at += 1;
    }
    let ty = &b[type_start..at];
    if ty.is_empty() || !ty[0].is_ascii_alphabetic() && ty[0] != b'&' {
        return None;
    }
    after_equals(b, at)
}

/// Past an `=` (not `==` or `=>`) at `at` and the spaces after it: where a value starts.
fn after_equals(b: &[u8], mut at: usize) -> Option<usize> {
    if at >= b.len() || b[at] != b'=' || matches!(b.get(at + 1), Some(b'=' | b'>')) {
        return None;
    }
    at += 1;
    while at < b.len() && is_space(b[at]) {
        at += 1;
    }
    Some(at)
}

/// Go: `apiToken string = "…"`, `token []byte = []byte("…")` is code; returns the value start.
fn go_declaration(b: &[u8], mut at: usize) -> Option<usize> {
    let type_start = at;
    while at < b.len()
        && (b[at].is_ascii_alphanumeric() || matches!(b[at], b'_' | b'*' | b'[' | b']' | b'.'))
    {
        at += 1;
    }
    if at == type_start || at - type_start > 32 {
        return None;
    }
    while at < b.len() && is_space(b[at]) {
        at += 1;
    }
    after_equals(b, at)
}

/// `ENV NAME value` (Dockerfile), `SetEnv NAME value` (Apache), `setenv NAME value` (csh).
fn env_keyword_before(text: &str, name_start: usize) -> bool {
    let head = text[..name_start].trim_end_matches([' ', '\t']);
    if head.len() == text[..name_start].len() {
        return false;
    }
    let word_start = head
        .char_indices()
        .rfind(|&(_, c)| !c.is_ascii_alphabetic())
        .map_or(0, |(i, c)| i + c.len_utf8());
    matches!(&head[word_start..], "ENV" | "SetEnv" | "setenv" | "PassEnv")
}

/// Between a name and its value in prose: `-`, `–`, `—`, `is`, `was`, `are`.
fn prose_separator(rest: &[u8]) -> Option<usize> {
    let seps: [&[u8]; 8] = [
        b"- ",
        "– ".as_bytes(),
        "— ".as_bytes(),
        b"is: ",
        b"is ",
        b"was ",
        b"are ",
        b"of ",
    ];
    starts_with_any(rest, &seps)
}

/// The length of the first of `prefixes` that `rest` starts with.
fn starts_with_any(rest: &[u8], prefixes: &[&[u8]]) -> Option<usize> {
    prefixes
        .iter()
        .find(|p| rest.starts_with(p))
        .map(|p| p.len())
}

/// A quoted value at `at`: `"…"`, `'…'`, `` `…` ``, JSON-escaped `\"…\"`, with an optional
/// string prefix (`b"…"`, `r'…'`, `@"…"`). Returns the value inside the quotes.
fn quoted_value(text: &str, mut at: usize) -> Option<(Range<usize>, u8)> {
    let b = text.as_bytes();
    if at + 1 < b.len()
        && matches!(
            b[at],
            b'b' | b'r' | b'u' | b'f' | b'B' | b'R' | b'U' | b'F' | b'@' | b'$'
        )
        && matches!(b[at + 1], b'"' | b'\'' | b'\\')
    {
        at += 1;
    }
    let mut escapes = 0;
    while at < b.len() && b[at] == b'\\' {
        at += 1;
        escapes += 1;
    }
    let q = *b.get(at)?;
    if !matches!(q, b'"' | b'\'' | b'`') {
        return None;
    }
    let start = at + 1;
    let mut i = start;
    while i < b.len() && i - start <= MAX_VALUE_BYTES {
        let c = b[i];
        if c == b'\n' || c == b'\r' {
            return None;
        }
        if c == q {
            // Closed by the same quote with the same escaping; an unescaped quote inside an
            // escaped string ends nothing.
            let mut k = 0;
            while k < i - start && b[i - 1 - k] == b'\\' {
                k += 1;
            }
            if k == escapes {
                return Some((start..i - escapes, q));
            }
        }
        if escapes > 0 && c == b'\\' && b.get(i + 1) == Some(&b'n') {
            // A JSON-escaped line break ends the line.
            return None;
        }
        i += 1;
    }
    None
}

/// A bare value: up to whitespace, a quote or punctuation that ends a value in code and
/// shells; a trailing sentence stop is dropped.
fn bare_value(text: &str, at: usize) -> Option<Range<usize>> {
    let b = text.as_bytes();
    let mut end = at;
    while end < b.len()
        && !b[end].is_ascii_whitespace()
        && !matches!(
            b[end],
            b'"' | b'\''
                | b'`'
                | b','
                | b';'
                | b'&'
                | b'|'
                | b'('
                | b')'
                | b'{'
                | b'}'
                | b'['
                | b']'
                | b'<'
                | b'>'
                | b'\\'
        )
        && end - at <= MAX_VALUE_BYTES
    {
        end += 1;
    }
    // Code: a call or an index (`getToken()`, `os.environ["X"]`).
    if matches!(b.get(end), Some(b'(' | b'[')) {
        return None;
    }
    while end > at && matches!(b[end - 1], b'.' | b':' | b',') {
        end -= 1;
    }
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (end > at).then_some(at..end)
}

/// The value inside `<name …>value</…>`.
fn element_value(text: &str, at: usize) -> Option<Range<usize>> {
    let b = text.as_bytes();
    let mut i = at;
    // Attributes, then `>`.
    while i < b.len() && b[i] != b'>' && b[i] != b'<' && b[i] != b'\n' && i - at < 256 {
        i += 1;
    }
    if i >= b.len() || b[i] != b'>' || (i > 0 && b[i - 1] == b'/') {
        return None;
    }
    let start = i + 1;
    let close = text[start..].find('<')? + start;
    if close - start > MAX_VALUE_BYTES || !text[close..].starts_with("</") {
        return None;
    }
    let raw = &text[start..close];
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.contains('\n') {
        return None;
    }
    let lead = raw.len() - raw.trim_start().len();
    Some(start + lead..start + lead + trimmed.len())
}

/// Whether a value found after a secret name is a real secret.
fn accept(text: &str, v: &Range<usize>, sep: Sep, name: &str, quoted: bool) -> bool {
    let value = &text[v.clone()];
    let chars = value.chars().count();
    if value.is_empty()
        || value.starts_with(super::redact::MARKER_PREFIX)
        || chars
            < if quoted {
                MIN_QUOTED_CHARS
            } else {
                MIN_BARE_CHARS
            }
        || value.eq_ignore_ascii_case(name)
        || is_placeholder(value)
        || is_filler(value)
        || is_trivial(value)
        || is_path(value)
        || value.starts_with("http://")
        || value.starts_with("https://")
    {
        return false;
    }
    if value.contains(' ') && (!quoted || is_prose(value)) {
        return false;
    }
    // The name is judged last: most candidates fail on their value first.
    let strength = judge_name(name);
    if strength == Strength::None {
        return false;
    }
    if strength == Strength::Weak || sep == Sep::Prose && !quoted {
        return looks_generated(value);
    }
    if sep == Sep::Prose {
        return looks_random(value);
    }
    if quoted || sep == Sep::Element {
        return true;
    }
    if sep == Sep::Flag {
        // `--token wisely` is prose; a flag's value has more than letters.
        return !value.bytes().all(|b| b.is_ascii_alphabetic()) || looks_random(value);
    }
    // A bare value under a code-style (lower-case) name may be a variable or an expression
    // (`token=getToken`, `password = config.password`): it must look random. Upper-case
    // names are environment variables, whose values are data.
    let code_like = name.bytes().any(|b| b.is_ascii_lowercase());
    !code_like || looks_random(value)
}

/// Quoted prose, not a secret: `"Enter your API token"`, `"the token is missing"`.
fn is_prose(v: &str) -> bool {
    let words: Vec<&str> = v.split_whitespace().collect();
    words.len() >= 2
        && words.iter().any(|w| {
            is_one_of(
                w.trim_matches(|c: char| !c.is_ascii_alphanumeric()),
                &[
                    "your", "enter", "the", "here", "please", "example", "insert", "replace",
                    "provide", "set", "a", "an", "to", "is", "not", "of", "for", "and", "or",
                    "with", "from", "this", "that", "must", "will", "be", "in", "on",
                ],
            )
        })
}

/// A token-shaped placeholder: `sk-xxxxxxxxxxxxxxxx`, `ghp_XXXXXXXXXXXX`, `AKIA0000000000000000`
/// (long, but made of five characters or fewer; a generated token never is).
pub fn is_filler(v: &str) -> bool {
    if v.len() < 16 {
        return false;
    }
    let mut seen = [false; 256];
    let mut distinct = 0;
    for &b in v.as_bytes() {
        if !seen[b as usize] {
            seen[b as usize] = true;
            distinct += 1;
            if distinct > 5 {
                return false;
            }
        }
    }
    true
}

/// A variable reference or a placeholder rather than a value: `$TOKEN`, `${TOKEN}`,
/// `{{ token }}`, `<your-key>`, `%TOKEN%`, `***`, `xxxx`, `your_api_key_here`, `changeme`.
pub fn is_placeholder(v: &str) -> bool {
    let v = v.trim_matches(|c| c == '"' || c == '\'');
    let lower = v.to_ascii_lowercase();
    v.is_empty()
        || v.starts_with('$')
        || v.starts_with("{{")
        || v.starts_with("#{")
        || v.starts_with("%(")
        || v.starts_with('<')
        || v.starts_with('%') && v.ends_with('%')
        || v.contains("...")
        || v.contains('…')
        || v.chars()
            .all(|c| matches!(c, '*' | 'x' | 'X' | '.' | '•' | '-' | '_' | '0'))
        || lower.starts_with("your")
        || lower.starts_with("my-")
        || lower.starts_with("my_")
        || lower.contains("placeholder")
        || lower.contains("replace_me")
        || lower.contains("replace-me")
        || lower.contains("changeme")
        || lower.contains("change_me")
        || lower.contains("example")
        || lower.contains("redacted")
        || lower.starts_with("xxx")
        || lower.starts_with("todo")
        || lower.starts_with("dummy")
        || lower.starts_with("fake")
        || lower.starts_with("test-")
        || lower.starts_with("env(")
        || lower.starts_with("env:")
        || lower.starts_with("secret:")
        || lower.starts_with("vault:")
        || lower.starts_with("ref+")
        || lower.starts_with("arn:")
}

pub fn is_path(v: &str) -> bool {
    let b = v.as_bytes();
    v.starts_with('/')
        || v.starts_with("./")
        || v.starts_with("../")
        || v.starts_with("~/")
        || (b.len() > 2
            && b[0].is_ascii_alphabetic()
            && b[1] == b':'
            && (b[2] == b'\\' || b[2] == b'/'))
}

/// Values that configure rather than authenticate: booleans, `none`, numbers, identifiers
/// of the code around (`null`, `undefined`, `None`), types.
pub fn is_trivial(v: &str) -> bool {
    const WORDS: &[&str] = &[
        "true",
        "false",
        "yes",
        "no",
        "on",
        "off",
        "none",
        "null",
        "nil",
        "undefined",
        "enabled",
        "disabled",
        "required",
        "optional",
        "string",
        "str",
        "bytes",
        "secret",
        "password",
        "token",
        "hidden",
        "masked",
        "omitted",
        "unset",
        "empty",
        "default",
        "bearer",
        "basic",
        "oauth",
        "oauth2",
        "apikey",
        "api_key",
        "session",
        "cookie",
        "header",
        "inherit",
        "auto",
        "self",
        "this",
        "new",
    ];
    is_one_of(v, WORDS)
        || (v.len() < 12
            && v.bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b',' | b'_' | b'-' | b'+')))
}

/// Random-looking: letters with digits, or long mixed case, or very long without spaces.
pub fn looks_random(v: &str) -> bool {
    let n = v.chars().count();
    if n < 8 {
        return false;
    }
    let lower = v.bytes().any(|b| b.is_ascii_lowercase());
    let upper = v.bytes().any(|b| b.is_ascii_uppercase());
    let digit = v.bytes().any(|b| b.is_ascii_digit());
    // A dotted path of words (`process.env.API_KEY`) is code, not a credential.
    let dotted_words = v.contains('.') && !digit;
    ((lower || upper) && digit)
        || (lower && upper && n >= 12 && !dotted_words)
        || (n >= 32 && !v.contains(' '))
}

/// Generated by a machine, not written by a person: a long run of letters mixed with digits
/// (or of mixed case) with no word structure. The tie-breaker for weakly secret names.
pub fn looks_generated(v: &str) -> bool {
    if v.len() < 16 || v.contains(char::is_whitespace) || is_path(v) {
        return false;
    }
    // The longest run without separators.
    let run = v
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '+' && c != '/' && c != '=')
        .max_by_key(|s| s.len())
        .unwrap_or("");
    if run.len() < 12 {
        return false;
    }
    let count = |f: fn(&u8) -> bool| run.as_bytes().iter().filter(|b| f(b)).count();
    let digits = count(u8::is_ascii_digit);
    let lower = count(u8::is_ascii_lowercase);
    let upper = count(u8::is_ascii_uppercase);
    (digits >= 2 && lower + upper >= 2) || (lower >= 3 && upper >= 3 && run.len() >= 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first value found from any keyword occurrence, as the redactor reports them.
    fn value(text: &str) -> Option<String> {
        let lower = text.to_ascii_lowercase();
        let mut hits: Vec<(usize, usize)> = KEYWORDS
            .iter()
            .flat_map(|kw| lower.match_indices(kw).map(|(at, m)| (at, at + m.len())))
            .collect();
        hits.sort_unstable();
        let mut parsed_until = 0;
        for (start, end) in hits {
            if start < parsed_until {
                continue;
            }
            let found = at_keyword(text, start, end);
            parsed_until = found.name_end;
            if let Some(v) = found.value {
                return Some(text[v].to_string());
            }
        }
        None
    }

    #[test]
    fn names_are_judged_by_their_words() {
        for n in [
            "apiToken",
            "some_api_token_123",
            "mySecretString",
            "creds",
            "stripe_key",
            "stripeKey",
            "STRIPE_KEY",
            "credentials",
            "DB_PASSWORD",
            "GHTOKEN",
            "APIKey",
            "x-api-key",
            "spring.datasource.password",
            "npm_config__auth",
            "Authorization",
            "client_secret",
            "SecretAccessKey",
            "GITHUB_PAT",
            "dbpass",
        ] {
            assert_eq!(judge_name(n), Strength::Strong, "{n}");
        }
        for n in ["key", "cacheKey", "persistenceKey", "signature", "private"] {
            assert_eq!(judge_name(n), Strength::Weak, "{n}");
        }
        for n in [
            "max_tokens",
            "token_count",
            "keyboard",
            "public_key_id",
            "publicKey",
            "tokenizer",
            "totalTokens",
            "tokenBudget",
            "pad_token",
            "keyId",
            "password_file",
            "GOOGLE_APPLICATION_CREDENTIALS_FILE",
            "SSH_AUTH_SOCK",
            "token_url",
            "is_secret",
            "monkey",
            "bypass",
            "author",
            "passthrough",
            "TOKEN_LIMIT",
        ] {
            assert_eq!(judge_name(n), Strength::None, "{n}");
        }
    }

    #[test]
    fn assignments_in_many_syntaxes() {
        let v = "Zq8vR2mK4pX9wL7nT3cY";
        for text in [
            format!("var apiToken string = \"{v}\""),
            format!("apiToken := `{v}`"),
            format!("API_TOKEN := {v}"),
            format!("API_TOKEN ::= {v}"),
            format!("API_TOKEN :::= {v}"),
            format!("API_TOKEN ?= {v}"),
            format!("$apiToken .= \"{v}\";"),
            format!("System.setProperty(\"X_TOKEN\", \"{v}\");"),
            format!("<apiToken>{v}</apiToken>"),
            format!("<password>{v}</password>"),
            format!("the token - '{v}'"),
            format!("src/app.py:12:api_token = {v}"),
            format!("export API_TOKEN={v}"),
            format!("run --slack-token {v} now"),
            format!("let api_key: &str = \"{v}\";"),
            format!("val secret: String = \"{v}\""),
            format!("ENV API_TOKEN {v}"),
            format!("ENV[\"API_TOKEN\"] = \"{v}\""),
            format!("{{\\\"creds\\\": \\\"{v}\\\"}}"),
            format!("define('DB_PASSWORD', '{v}');"),
            format!("stripe_key: {v}"),
            format!("some_api_token_123={v}"),
            format!("mySecretString = '{v}'"),
            format!("client_secret => \"{v}\""),
            format!("password is {v}"),
            format!("variable \"db_password\" {{\n  default = \"{v}\"\n}}"),
        ] {
            assert_eq!(value(&text).as_deref(), Some(v), "{text}");
        }
    }

    #[test]
    fn non_values_are_left() {
        for text in [
            "api_key = os.environ[\"OPENAI_API_KEY\"]",
            "token=getToken()",
            "f(password=password)",
            "password=\"${DB_PASSWORD}\"",
            "api_key: YOUR_API_KEY",
            "auth: required",
            "max_tokens: 4096",
            "apiKey: process.env.API_KEY",
            "let token = get_token(&config)?;",
            "const apiKey = process.env.OPENAI_API_KEY;",
            "function(e){return e.token=t.key,e}",
            "The token budget is 4096 tokens; keep the secret sauce secret.",
            "secretName: tls-cert",
            "key: user_profile_cache",
            "\"token\": \"Enter your API token\"",
            "if password == \"\" {",
            "password: <enter your password>",
            "cache key - a_b_c_d_e_f",
            "variable \"db_password_length\" {\n  default = \"sixteen\"\n}",
        ] {
            assert_eq!(value(text), None, "{text}");
        }
    }
}
