//! Reading what omp recorded into what Langfuse shows: generation metadata, model
//! parameters, tool outputs and errors, content blocks.

use super::*;

/// A generation's metadata: what omp records beside usage and cost (provider, response id,
/// stop reason, timings, context size, the provider's request id and HTTP status).
pub(super) fn generation_metadata(
    m: &Value,
    usage: &Value,
    context_tokens: u64,
    response: Option<&Value>,
) -> Map<String, Value> {
    let mut meta = Map::new();
    copy_fields(
        m,
        &mut meta,
        &[
            "provider",
            "api",
            "responseId",
            "errorStatus",
            "upstreamProvider",
        ],
    );
    let stop = str_field(m, "stopReason").unwrap_or_default();
    meta.insert("stop_reason".into(), stop.into());
    if let Some(d) = m.get("duration").and_then(as_millis) {
        meta.insert("duration_ms".into(), d.into());
    }
    if let Some(t) = m.get("ttft").and_then(as_millis) {
        meta.insert("ttft_ms".into(), t.into());
    }
    if let Some(r) = usage.get("reasoningTokens").filter(|r| r.is_number()) {
        meta.insert("reasoning_tokens".into(), r.clone());
    }
    meta.insert("context_tokens".into(), context_tokens.into());
    if let Some(snap) = m.get("contextSnapshot").and_then(|s| s.get("promptTokens")) {
        meta.insert("prompt_tokens".into(), snap.clone());
    }
    if let Some(r) = response {
        copy_fields(r, &mut meta, &["requestId"]);
        if let Some(s) = r.get("status") {
            meta.insert("http_status".into(), s.clone());
        }
    }
    if let Some(credits) = usage.get("credits").filter(|c| !c.is_null()) {
        meta.insert("credits".into(), credits.clone());
    }
    meta
}

/// Cost sums of floats pick up noise in the 17th digit; a millionth of a cent is plenty.
pub(super) fn round_usd(v: f64) -> f64 {
    (v * 1e8).round() / 1e8
}

/// First line of `s`, at most `max` chars, with an ellipsis when cut.
pub(super) fn short_line(s: &str, max: usize) -> String {
    let line = s.trim().lines().next().unwrap_or("").trim();
    if line.chars().count() <= max {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

pub(super) fn copy_fields(from: &Value, to: &mut Map<String, Value>, keys: &[&str]) {
    for k in keys {
        if let Some(v) = from.get(*k).filter(|v| !v.is_null()) {
            to.insert((*k).to_string(), v.clone());
        }
    }
}

/// Keys that only carry provider plumbing (signatures, raw blocks): noise in a trace.
pub(super) const PLUMBING_KEYS: &[&str] = &[
    "textSignature",
    "thinkingSignature",
    "thoughtSignature",
    "partialArgs",
    "streamIndex",
    "rawBlock",
    "providerMetadata",
    "providerPayload",
    "customWireName",
];

pub(super) fn clean_block(b: &Value) -> Value {
    match b {
        Value::Object(o) => {
            let mut c: Map<String, Value> = o
                .iter()
                .filter(|(k, _)| !PLUMBING_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if c.get("type").and_then(Value::as_str) == Some("toolCall")
                && let Some(args) = c.get("arguments")
            {
                let stripped = strip_intent(args);
                c.insert("arguments".into(), stripped);
            }
            Value::Object(c)
        }
        other => other.clone(),
    }
}

/// Tool arguments without omp's intent key `i` (it is metadata, not an argument).
pub(super) fn strip_intent(args: &Value) -> Value {
    match args {
        Value::Object(o) if o.contains_key("i") => {
            let mut c = o.clone();
            c.remove("i");
            Value::Object(c)
        }
        other => other.clone(),
    }
}

/// A tool's output: its text (joined) when the result is text only, else the blocks; plus
/// `details` (exit code, wall time, diff, …) when present.
pub(super) fn tool_output(content: Option<&Value>, details: Option<&Value>) -> Option<Value> {
    let content = content?;
    let body = match content {
        Value::Array(blocks)
            if blocks
                .iter()
                .all(|b| b.get("type").and_then(Value::as_str) == Some("text")) =>
        {
            Value::String(
                blocks
                    .iter()
                    .filter_map(|b| b.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        }
        Value::Array(blocks) => Value::Array(blocks.iter().map(clean_block).collect()),
        other => other.clone(),
    };
    match details.filter(|d| d.as_object().is_some_and(|o| !o.is_empty())) {
        Some(d) => Some(json!({ "content": body, "details": d })),
        None => Some(body),
    }
}

/// Status message of a failed tool: its exit code when it has one, else its first line.
pub(super) fn tool_error_message(output: Option<&Value>) -> String {
    let details = output.and_then(|o| o.get("details"));
    if let Some(code) = details
        .and_then(|d| d.get("exitCode"))
        .and_then(Value::as_i64)
    {
        return format!("exit code {code}");
    }
    let text = match output {
        Some(Value::String(s)) => s.as_str(),
        Some(o) => o.get("content").and_then(Value::as_str).unwrap_or(""),
        None => "",
    };
    let line = short_line(text, 200);
    if line.is_empty() {
        "tool returned an error".into()
    } else {
        line
    }
}

/// Request parameters worth filtering on, from a provider request body.
pub(super) fn model_parameters(request: Option<&Value>) -> Map<String, Value> {
    const KEYS: &[&str] = &[
        "max_tokens",
        "max_completion_tokens",
        "max_output_tokens",
        "temperature",
        "top_p",
        "top_k",
        "reasoning_effort",
        "tool_choice",
        "service_tier",
        "stream",
    ];
    let mut params = Map::new();
    let Some(Value::Object(req)) = request else {
        return params;
    };
    for k in KEYS {
        match req.get(*k) {
            Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => {
                params.insert((*k).into(), v.clone());
            }
            Some(v @ Value::Object(_)) => {
                params.insert((*k).into(), v.to_string().into());
            }
            _ => {}
        }
    }
    for k in ["thinking", "reasoning"] {
        if let Some(v) = req.get(k).filter(|v| !v.is_null()) {
            params.insert(k.into(), v.to_string().into());
        }
    }
    params
}
