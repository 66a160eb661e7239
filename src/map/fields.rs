//! Reading what omp recorded into what Langfuse shows: generation metadata, model
//! parameters, tool outputs and errors, content blocks.

use super::*;

/// A generation's metadata: what omp records beside usage and cost (provider, response id,
/// stop reason, timings, context size, the provider's request id and HTTP status).
pub(super) fn generation_metadata(
    call: &LlmCall,
    context_tokens: u64,
    response: Option<&Value>,
) -> Map<String, Value> {
    let mut meta = call.meta.clone();
    meta.insert("stop_reason".into(), call.stop_reason.clone().into());
    if let Some(d) = call.duration {
        meta.insert("duration_ms".into(), d.into());
    }
    if let Some(t) = call.ttft {
        meta.insert("ttft_ms".into(), t.into());
    }
    if let Some(r) = call.reasoning_tokens() {
        meta.insert("reasoning_tokens".into(), r.clone());
    }
    meta.insert("context_tokens".into(), context_tokens.into());
    if let Some(p) = call.prompt_tokens {
        meta.insert("prompt_tokens".into(), p.clone());
    }
    if let Some(r) = response.map(ProviderResponse::read) {
        meta.extend(r.meta);
        if let Some(s) = r.status {
            meta.insert("http_status".into(), s.clone());
        }
    }
    if let Some(credits) = call.credits() {
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

/// A tool's output: its text (joined) when the result is text only, else the blocks; plus
/// `details` (exit code, wall time, diff, …) when present.
pub(super) fn tool_output(content: Option<Value>, details: Option<Value>) -> Option<Value> {
    let body = match content? {
        Value::Array(mut blocks) => {
            let texts = text_only(&blocks);
            match texts {
                Some(texts) if texts.len() != 1 => Value::String(texts.join("\n")),
                // One text block (the common case) gives its text up.
                Some(_) => Value::String(
                    blocks
                        .iter_mut()
                        .find_map(|b| match b.get_mut("text") {
                            Some(Value::String(s)) => Some(std::mem::take(s)),
                            _ => None,
                        })
                        .unwrap_or_default(),
                ),
                None => Value::Array(blocks.into_iter().map(clean_block).collect()),
            }
        }
        other => other,
    };
    match details.filter(|d| d.as_object().is_some_and(|o| !o.is_empty())) {
        Some(d) => Some(crate::decode::chat::object([
            ("content", body),
            ("details", d),
        ])),
        None => Some(body),
    }
}

/// Status message of a failed tool: its exit code when it has one, else its first line.
pub(super) fn tool_error_message(output: Option<&Value>) -> String {
    // The output built by `tool_output`: `{content, details}` or the text alone.
    let details = output.and_then(|o| o.get("details"));
    if let Some(code) = details.and_then(exit_code) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_tool_output_is_its_text_when_the_result_is_text_only() {
        let out = |content: Value, details: Value| tool_output(Some(content), Some(details));
        let text = |t: &str| json!({"type": "text", "text": t});
        // One block gives its text; several are joined by newlines; a text block without
        // text adds nothing.
        assert_eq!(out(json!([text("a")]), json!({})), Some(json!("a")));
        assert_eq!(
            out(json!([text("a"), {"type": "text"}, text("b")]), json!({})),
            Some(json!("a\nb"))
        );
        assert_eq!(
            out(json!([{"type": "text"}, text("only")]), json!(null)),
            Some(json!("only"))
        );
        assert_eq!(out(json!([]), json!({})), Some(json!("")));
        // Anything else keeps its blocks; details that say something come along.
        let image = json!({"type": "image", "data": "AAAA", "mimeType": "image/png"});
        assert_eq!(
            out(json!([text("a"), image.clone()]), json!({"exitCode": 2})),
            Some(json!({"content": [text("a"), image], "details": {"exitCode": 2}}))
        );
        // Blocks lose their plumbing, and a tool call's arguments their intent.
        let call = json!({"type": "toolCall", "name": "read", "textSignature": "sig",
            "arguments": {"path": "a", "i": "to see"}});
        assert_eq!(
            out(
                json!([image.clone(), call, {"type": "toolCall", "arguments": "raw"}]),
                json!({})
            ),
            Some(
                json!([image, {"type": "toolCall", "name": "read", "arguments": {"path": "a"}},
                {"type": "toolCall", "arguments": "raw"}])
            )
        );
        assert_eq!(out(json!("plain"), json!({})), Some(json!("plain")));
        assert_eq!(tool_output(None, Some(json!({"exitCode": 1}))), None);
    }
}
