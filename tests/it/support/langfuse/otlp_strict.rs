//! An independent, strict reader of OTLP/HTTP JSON trace bodies as Langfuse v4 wants them,
//! written from the OTLP JSON encoding rules and Langfuse's exporter checklist (not from our
//! encoder), plus a check against the `OtelResourceSpan` schema of the official Langfuse
//! OpenAPI spec (copied into `langfuse-otel-schema.json`).

use std::collections::HashSet;

use serde_json::{Map, Value};

/// The official schema excerpt (components of `POST /api/public/otel/v1/traces`).
const SCHEMA: &str = include_str!("langfuse-otel-schema.json");

const OBSERVATION_TYPES: [&str; 10] = [
    "span",
    "generation",
    "event",
    "agent",
    "tool",
    "chain",
    "retriever",
    "evaluator",
    "embedding",
    "guardrail",
];
const LEVELS: [&str; 4] = ["DEBUG", "DEFAULT", "WARNING", "ERROR"];

/// Check a whole export request; returns the span ids it carries.
pub fn check_body(body: &Value) -> Result<Vec<String>, String> {
    let top = obj(body, "body")?;
    only_keys(top, &["resourceSpans"], "body")?;
    let rss = arr(top.get("resourceSpans"), "resourceSpans")?;
    if rss.is_empty() {
        return Err("resourceSpans is empty".into());
    }
    let mut ids = Vec::new();
    for (i, rs) in rss.iter().enumerate() {
        let at = format!("resourceSpans[{i}]");
        let rs = obj(rs, &at)?;
        only_keys(rs, &["resource", "scopeSpans", "schemaUrl"], &at)?;
        let resource = obj(rs.get("resource").ok_or(format!("{at}: no resource"))?, &at)?;
        only_keys(resource, &["attributes", "droppedAttributesCount"], &at)?;
        let rattrs = attributes(resource.get("attributes"), &format!("{at}.resource"))?;
        match rattrs.iter().find(|(k, _)| k == "service.name") {
            Some((_, v)) if v.get("stringValue").is_some() => {}
            _ => return Err(format!("{at}: resource without service.name")),
        }
        if rattrs.iter().any(|(k, _)| k == "service.version") {
            return Err(format!(
                "{at}: service.version would become every observation's version"
            ));
        }
        let sss = arr(rs.get("scopeSpans"), &format!("{at}.scopeSpans"))?;
        if sss.is_empty() {
            return Err(format!("{at}: scopeSpans is empty"));
        }
        for (j, ss) in sss.iter().enumerate() {
            let at = format!("{at}.scopeSpans[{j}]");
            let ss = obj(ss, &at)?;
            only_keys(ss, &["scope", "spans", "schemaUrl"], &at)?;
            let scope = obj(ss.get("scope").ok_or(format!("{at}: no scope"))?, &at)?;
            only_keys(
                scope,
                &["name", "version", "attributes", "droppedAttributesCount"],
                &at,
            )?;
            let name = scope
                .get("name")
                .and_then(Value::as_str)
                .ok_or(format!("{at}: scope without a name"))?;
            // Only the SDKs' scope prefix keeps Langfuse from copying every span attribute
            // into the metadata; ours says whose it is after the dot. No bare SDK name.
            if name.is_empty() || (name.starts_with("langfuse-sdk") && !name.contains('.')) {
                return Err(format!("{at}: scope name {name:?} not allowed"));
            }
            for (k, span) in arr(ss.get("spans"), &format!("{at}.spans"))?
                .iter()
                .enumerate()
            {
                ids.push(check_span(span, &format!("{at}.spans[{k}]"))?);
            }
        }
    }
    Ok(ids)
}

fn check_span(span: &Value, at: &str) -> Result<String, String> {
    let s = obj(span, at)?;
    only_keys(
        s,
        &[
            "traceId",
            "spanId",
            "parentSpanId",
            "name",
            "kind",
            "startTimeUnixNano",
            "endTimeUnixNano",
            "attributes",
            "status",
            "events",
            "links",
            "traceState",
            "flags",
            "droppedAttributesCount",
            "droppedEventsCount",
            "droppedLinksCount",
        ],
        at,
    )?;
    let trace_id = hex_id(s.get("traceId"), 32, &format!("{at}.traceId"))?;
    let span_id = hex_id(s.get("spanId"), 16, &format!("{at}.spanId"))?;
    let _ = trace_id;
    if let Some(p) = s.get("parentSpanId") {
        let p = hex_id(Some(p), 16, &format!("{at}.parentSpanId"))?;
        if p == span_id {
            return Err(format!("{at}: span is its own parent"));
        }
    }
    match s.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => {}
        _ => return Err(format!("{at}: missing or empty name")),
    }
    match s.get("kind").and_then(Value::as_u64) {
        Some(k) if k <= 5 => {}
        _ => return Err(format!("{at}: kind must be an integer 0..=5")),
    }
    let start = nanos(
        s.get("startTimeUnixNano"),
        &format!("{at}.startTimeUnixNano"),
    )?;
    let end = nanos(s.get("endTimeUnixNano"), &format!("{at}.endTimeUnixNano"))?;
    if end < start {
        return Err(format!("{at}: ends before it starts"));
    }
    let attrs = attributes(s.get("attributes"), at)?;
    let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    let string = |k: &str| {
        get(k)
            .and_then(|v| v.get("stringValue"))
            .and_then(Value::as_str)
    };

    // Trace context on every span.
    for k in ["langfuse.trace.name", "langfuse.session.id"] {
        if string(k).is_none_or(str::is_empty) {
            return Err(format!(
                "{at}: {k} missing (trace context must be on every span)"
            ));
        }
    }
    match string("langfuse.observation.type") {
        Some(t) if OBSERVATION_TYPES.contains(&t) => {}
        other => return Err(format!("{at}: bad langfuse.observation.type {other:?}")),
    }
    if let Some(tags) = get("langfuse.trace.tags") {
        let values = tags
            .get("arrayValue")
            .and_then(|a| a.get("values"))
            .and_then(Value::as_array)
            .ok_or(format!("{at}: langfuse.trace.tags must be an arrayValue"))?;
        if !values
            .iter()
            .all(|v| v.get("stringValue").is_some_and(Value::is_string))
        {
            return Err(format!("{at}: langfuse.trace.tags must hold strings"));
        }
    }
    let level = string("langfuse.observation.level");
    if let Some(l) = level
        && !LEVELS.contains(&l)
    {
        return Err(format!("{at}: bad level {l:?}"));
    }
    let status = s.get("status").map(|v| obj(v, at)).transpose()?;
    if let Some(st) = status {
        only_keys(st, &["code", "message"], &format!("{at}.status"))?;
        if let Some(c) = st.get("code")
            && c.as_u64().is_none_or(|c| c > 2)
        {
            return Err(format!("{at}: status.code must be an integer 0..=2"));
        }
        if st.get("code").is_none() && st.get("message").is_some() {
            return Err(format!("{at}: status message without a code"));
        }
        if st.get("code").and_then(Value::as_u64) == Some(2) && level != Some("ERROR") {
            return Err(format!("{at}: error status without level ERROR"));
        }
    }
    for (k, v) in &attrs {
        let text = v.get("stringValue").and_then(Value::as_str);
        match k.as_str() {
            "langfuse.observation.usage_details" => {
                let m = json_object(text, &format!("{at}: {k}"))?;
                if !m.values().all(|n| n.as_u64().is_some()) {
                    return Err(format!("{at}: usage buckets must be non-negative integers"));
                }
            }
            "langfuse.observation.cost_details" => {
                let m = json_object(text, &format!("{at}: {k}"))?;
                if !m.values().all(|n| n.as_f64().is_some_and(|f| f >= 0.0)) {
                    return Err(format!("{at}: cost buckets must be non-negative numbers"));
                }
                let total = m
                    .get("total")
                    .and_then(Value::as_f64)
                    .ok_or(format!("{at}: cost without total"))?;
                let parts: f64 = m
                    .iter()
                    .filter(|(k, _)| *k != "total")
                    .filter_map(|(_, v)| v.as_f64())
                    .sum();
                if m.len() > 1 && (total - parts).abs() > 1e-9 * total.max(1.0) {
                    return Err(format!("{at}: cost total {total} is not the sum {parts}"));
                }
            }
            "langfuse.observation.model.parameters" => {
                json_object(text, &format!("{at}: {k}"))?;
            }
            "langfuse.observation.completion_start_time" if !text.is_some_and(is_iso_millis) => {
                return Err(format!("{at}: completion_start_time must be an ISO string"));
            }
            "langfuse.observation.input"
            | "langfuse.observation.output"
            | "langfuse.observation.status_message"
            | "langfuse.observation.model.name"
            | "langfuse.user.id"
            | "langfuse.environment"
            | "langfuse.release"
                if text.is_none() =>
            {
                return Err(format!("{at}: {k} must be a stringValue"));
            }
            "gen_ai.operation.name" => {
                return Err(format!(
                    "{at}: gen_ai.operation.name can drop usage and cost"
                ));
            }
            _ if (k.starts_with("langfuse.trace.metadata.")
                || k.starts_with("langfuse.observation.metadata."))
                && v.get("arrayValue").is_some() =>
            {
                return Err(format!("{at}: metadata {k} must be a scalar"));
            }
            _ => {}
        }
    }
    Ok(span_id)
}

fn obj<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object().ok_or(format!("{at}: not an object"))
}

fn arr<'a>(v: Option<&'a Value>, at: &str) -> Result<&'a Vec<Value>, String> {
    v.and_then(Value::as_array)
        .ok_or(format!("{at}: missing or not a list"))
}

fn only_keys(m: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), String> {
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("{at}: unexpected field {k:?}")),
        None => Ok(()),
    }
}

fn hex_id(v: Option<&Value>, len: usize, at: &str) -> Result<String, String> {
    let s = v
        .and_then(Value::as_str)
        .ok_or(format!("{at}: missing or not a string"))?;
    if s.len() != len
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!("{at}: {s:?} is not {len} lowercase hex chars"));
    }
    if s.bytes().all(|b| b == b'0') {
        return Err(format!("{at}: all-zero id"));
    }
    Ok(s.to_string())
}

fn nanos(v: Option<&Value>, at: &str) -> Result<u128, String> {
    let s = v
        .and_then(Value::as_str)
        .ok_or(format!("{at}: must be a decimal string"))?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return Err(format!("{at}: {s:?} is not a plain decimal"));
    }
    s.parse().map_err(|_| format!("{at}: out of range"))
}

/// A list of `{key, value}` with unique keys and exactly one well-formed value each.
fn attributes(v: Option<&Value>, at: &str) -> Result<Vec<(String, Value)>, String> {
    let list = arr(v, &format!("{at}.attributes"))?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, kv) in list.iter().enumerate() {
        let at = format!("{at}.attributes[{i}]");
        let m = obj(kv, &at)?;
        only_keys(m, &["key", "value"], &at)?;
        let key = m
            .get("key")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .ok_or(format!("{at}: key missing"))?;
        if !seen.insert(key.to_string()) {
            return Err(format!("{at}: duplicate key {key}"));
        }
        let value = m.get("value").ok_or(format!("{at}: value missing"))?;
        any_value(value, &format!("{at} ({key})"))?;
        out.push((key.to_string(), value.clone()));
    }
    Ok(out)
}

fn any_value(v: &Value, at: &str) -> Result<(), String> {
    let m = obj(v, at)?;
    if m.len() != 1 {
        return Err(format!("{at}: AnyValue must have exactly one field"));
    }
    let (k, inner) = m.iter().next().expect("one field");
    let ok = match k.as_str() {
        "stringValue" => inner.is_string(),
        "boolValue" => inner.is_boolean(),
        "doubleValue" => inner.is_number(),
        "intValue" => {
            inner.is_i64()
                || inner.is_u64()
                || inner.as_str().is_some_and(|s| {
                    s.trim_start_matches('-')
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
        }
        "arrayValue" => {
            let values = inner
                .get("values")
                .and_then(Value::as_array)
                .ok_or(format!("{at}: arrayValue without values"))?;
            for x in values {
                any_value(x, at)?;
            }
            true
        }
        // Langfuse stringifies these raw: never send them.
        _ => return Err(format!("{at}: {k} is not allowed")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{at}: {k} has the wrong JSON type"))
    }
}

fn json_object(text: Option<&str>, at: &str) -> Result<Map<String, Value>, String> {
    let text = text.ok_or(format!("{at}: must be a stringValue"))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(format!("{at}: must be a JSON object string")),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.sssZ`
fn is_iso_millis(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// Validate against the official OpenAPI request schema (a small JSON-Schema subset:
/// type, properties, items, required, nullable, $ref).
pub fn check_schema(body: &Value) -> Result<(), String> {
    let schema: Value = serde_json::from_str(SCHEMA).expect("schema json");
    let root = schema.get("request").expect("request schema");
    validate(root, body, &schema, "body")
}

fn validate(schema: &Value, v: &Value, all: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or_default();
        let target = all
            .get("components")
            .and_then(|c| c.get(name))
            .ok_or(format!("schema: unknown $ref {r}"))?;
        return validate(target, v, all, at);
    }
    if v.is_null() {
        return if schema.get("nullable").and_then(Value::as_bool) == Some(true)
            || schema.get("type").is_none()
        {
            Ok(())
        } else {
            Err(format!("{at}: null not allowed"))
        };
    }
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            _ => true,
        };
        if !ok {
            return Err(format!("{at}: expected {t}, got {v}"));
        }
    }
    if let (Some(props), Some(m)) = (
        schema.get("properties").and_then(Value::as_object),
        v.as_object(),
    ) {
        for (k, sub) in props {
            if let Some(x) = m.get(k) {
                validate(sub, x, all, &format!("{at}.{k}"))?;
            }
        }
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap_or_default();
            if !m.contains_key(r) {
                return Err(format!("{at}: required {r} missing"));
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), v.as_array()) {
        for (i, x) in list.iter().enumerate() {
            validate(items, x, all, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}
