//! Generation input and output in the chat shape Langfuse reads: OpenAI chat-completions
//! messages. Built to Langfuse's own parsers (langfuse/langfuse):
//!
//! - `packages/shared/src/utils/IORepresentation/chatML/types.ts` `BaseChatMlMessageSchema`:
//!   a message is `role`, `name`, `content` (string), `tool_calls`, `tool_call_id`,
//!   `thinking: [{type: "thinking", content}]`, `redacted_thinking: [{type, data}]`; any
//!   other key lands in the "passthrough JSON" toggle, so none is sent.
//! - `packages/shared/src/utils/chatml/adapters/openai.ts`: `{messages, tools}` attaches the
//!   tools to the messages; nested tool calls `{id, type: "function", function: {name,
//!   arguments}}` (arguments a JSON string) are flattened to the schema's `ToolCallSchema`.
//! - `packages/shared/src/server/ingestion/extractToolsBackend.ts`: tool definitions from a
//!   top-level `tools` array (`function.parameters`, the JSON schema) and tool calls from the
//!   output message's `tool_calls`: the "Tool Calls" column and its filters.
//! - `web/src/features/traces/components/IOPreview/components/ChatMessage.tsx`: `content`
//!   is drawn as text, `thinking` as the thinking block, tool calls as cards.
//!
//! omp's (and pi's) own messages, and the provider requests the `--events` bridge records
//! (OpenAI chat completions and Responses, Anthropic messages, Google generateContent), all
//! become this one shape. Images become a placeholder text (the same one the sanitizer uses
//! for inline base64), so no message part is of a kind the UI cannot draw.

use std::borrow::Cow;

use serde_json::{Map, Value, json};

/// A message of omp's (pi-ai's `Message`: user, assistant, toolResult, and omp's own
/// roles) as one chat message.
pub fn omp_message(m: &Value) -> Value {
    let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
    match role {
        "assistant" => assistant(m.get("content")),
        "toolResult" => tool_message(
            m.get("toolCallId").and_then(Value::as_str),
            text(m.get("content")),
        ),
        "system" | "developer" => plain("system", text(m.get("content"))),
        "bashExecution" | "pythonExecution" => {
            let code = m
                .get("command")
                .or_else(|| m.get("code"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let output = m.get("output").and_then(Value::as_str).unwrap_or_default();
            plain("user", format!("$ {code}\n{output}"))
        }
        "branchSummary" | "compactionSummary" => {
            let s = m.get("summary").and_then(Value::as_str).unwrap_or_default();
            plain("user", s.to_string())
        }
        // user, custom (an injected reminder), and roles of newer versions: what the model
        // was sent as the user's turn.
        _ => {
            let content = match m.get("content") {
                Some(c) => text(Some(c)),
                None => compact(m),
            };
            plain("user", content)
        }
    }
}

/// A provider-native request body (the bridge's `before_provider_request`) as
/// `{messages, tools}`; an unknown shape is returned as it is.
pub fn provider_request(req: &Value) -> Value {
    let Some(o) = req.as_object() else {
        return req.clone();
    };
    let (messages, tools) = if o.contains_key("contents") {
        google(o)
    } else if o.contains_key("input") && !o.contains_key("messages") {
        responses(o)
    } else if o.get("messages").is_some_and(Value::is_array) {
        if is_anthropic(o) {
            anthropic(o)
        } else {
            openai_chat(o)
        }
    } else {
        return req.clone();
    };
    let mut out = Map::new();
    out.insert("messages".into(), Value::Array(messages));
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }
    Value::Object(out)
}

/// A JSON object of these fields, the values moved in (`json!` would serialize a copy of
/// each, and message texts are often large).
pub fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn plain(role: &str, content: String) -> Value {
    object([("role", role.into()), ("content", content.into())])
}

fn tool_message(id: Option<&str>, content: String) -> Value {
    object([
        ("role", "tool".into()),
        ("tool_call_id", id.unwrap_or_default().into()),
        ("content", content.into()),
    ])
}

/// A JSON value as compact text (for parts and results that are not text).
fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The placeholder of an image (the sanitizer's, for inline base64).
fn image_placeholder(mime: Option<&str>, data: Option<&str>) -> String {
    let mime = mime.unwrap_or("image");
    match data {
        Some(d) if !d.starts_with("http") => format!("[omitted {mime}, {} bytes]", d.len() * 3 / 4),
        Some(url) => format!("[image {url}]"),
        None => format!("[omitted {mime}]"),
    }
}

/// Message content (a string, or parts of any provider's kinds) as one text.
fn text(content: Option<&Value>) -> String {
    match content {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(part_text)
            .collect::<Vec<_>>()
            .join("\n"),
        Some(other) => compact(other),
    }
}

/// One content part as text; `None` for parts that are not the message's text (thinking).
fn part_text(p: &Value) -> Option<Cow<'_, str>> {
    let s = |k: &str| p.get(k).and_then(Value::as_str);
    match s("type").unwrap_or_default() {
        "text" | "input_text" | "output_text" => s("text").map(Cow::Borrowed),
        "thinking" | "redacted_thinking" | "reasoning" => None,
        // pi-ai / omp
        "image" if p.get("source").is_none() => {
            Some(image_placeholder(s("mimeType"), s("data")).into())
        }
        // Anthropic
        "image" => Some(Cow::Owned(image_placeholder(
            p.pointer("/source/media_type").and_then(Value::as_str),
            p.pointer("/source/data")
                .or_else(|| p.pointer("/source/url"))
                .and_then(Value::as_str),
        ))),
        // OpenAI
        "image_url" | "input_image" => {
            let url = p
                .pointer("/image_url/url")
                .or_else(|| p.get("image_url"))
                .or_else(|| p.get("url"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let mime = url.strip_prefix("data:").and_then(|r| r.split(';').next());
            let data = url.split_once(";base64,").map_or(url, |(_, d)| d);
            Some(image_placeholder(mime, Some(data)).into())
        }
        _ if p.is_string() => p.as_str().map(Cow::Borrowed),
        _ => match s("text") {
            Some(t) => Some(Cow::Borrowed(t)),
            None => Some(compact(p).into()),
        },
    }
}

/// Tool arguments without omp's intent key `i` (metadata, not an argument), as JSON text.
fn arguments(args: Option<&Value>) -> String {
    match args {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) if o.contains_key("i") => {
            let mut c = o.clone();
            c.remove("i");
            Value::Object(c).to_string()
        }
        Some(v) if !v.is_null() => v.to_string(),
        _ => "{}".to_string(),
    }
}

fn tool_call(id: Option<&str>, name: &str, args: String) -> Value {
    object([
        ("id", id.unwrap_or_default().into()),
        ("type", "function".into()),
        (
            "function",
            object([("name", name.into()), ("arguments", args.into())]),
        ),
    ])
}

/// An assistant message from content parts of any provider (omp's `toolCall`/`thinking`,
/// Anthropic's `tool_use`/`thinking`/`redacted_thinking`, plain text).
fn assistant(content: Option<&Value>) -> Value {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    let mut thinking = Vec::new();
    let mut redacted = Vec::new();
    let whole;
    let parts: &[Value] = match content {
        Some(Value::Array(a)) => a,
        Some(Value::String(s)) => {
            whole = [object([
                ("type", "text".into()),
                ("text", s.as_str().into()),
            ])];
            &whole
        }
        _ => &[],
    };
    for p in parts {
        let s = |k: &str| p.get(k).and_then(Value::as_str);
        match s("type").unwrap_or_default() {
            "toolCall" => calls.push(tool_call(
                s("id"),
                s("name").unwrap_or_default(),
                arguments(p.get("arguments")),
            )),
            "tool_use" => calls.push(tool_call(
                s("id"),
                s("name").unwrap_or_default(),
                arguments(p.get("input")),
            )),
            // omp marks a redacted thinking block; Anthropic has a type of its own.
            t @ ("thinking" | "redacted_thinking")
                if t == "redacted_thinking"
                    || p.get("redacted").and_then(Value::as_bool) == Some(true) =>
            {
                redacted.push(
                    json!({"type": "redacted_thinking", "data": "[redacted by the provider]"}),
                );
            }
            "thinking" => {
                let t = s("thinking").or_else(|| s("text")).unwrap_or_default();
                if !t.is_empty() {
                    thinking.push(json!({"type": "thinking", "content": t}));
                }
            }
            _ => texts.extend(part_text(p)),
        }
    }
    let mut m = Map::new();
    m.insert("role".into(), "assistant".into());
    m.insert("content".into(), texts.join("\n").into());
    if !calls.is_empty() {
        m.insert("tool_calls".into(), Value::Array(calls));
    }
    if !thinking.is_empty() {
        m.insert("thinking".into(), Value::Array(thinking));
    }
    if !redacted.is_empty() {
        m.insert("redacted_thinking".into(), Value::Array(redacted));
    }
    Value::Object(m)
}

/// A tool definition in OpenAI's nested form, its JSON schema under `parameters`.
fn tool_definition(
    name: Option<&Value>,
    description: Option<&Value>,
    schema: Option<&Value>,
) -> Option<Value> {
    let name = name?.as_str()?;
    let mut f = Map::new();
    f.insert("name".into(), name.into());
    if let Some(d) = description.filter(|d| d.is_string()) {
        f.insert("description".into(), d.clone());
    }
    if let Some(p) = schema.filter(|p| p.is_object()) {
        f.insert("parameters".into(), p.clone());
    }
    Some(object([
        ("type", "function".into()),
        ("function", Value::Object(f)),
    ]))
}

fn openai_chat(o: &Map<String, Value>) -> (Vec<Value>, Vec<Value>) {
    let messages = o
        .get("messages")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(openai_message).collect())
        .unwrap_or_default();
    // Chat completions nest each tool under `function`.
    let tools = tools_of(o, |t| t.get("function").unwrap_or(t), "parameters");
    (messages, tools)
}

/// A request's `tools` in OpenAI's nested form: `inner` finds a tool's own object, whose
/// JSON schema is under `schema_key`.
fn tools_of(
    o: &Map<String, Value>,
    inner: impl Fn(&Value) -> &Value,
    schema_key: &str,
) -> Vec<Value> {
    let tools = o.get("tools").and_then(Value::as_array);
    tools
        .into_iter()
        .flatten()
        .map(inner)
        .filter_map(|t| tool_definition(t.get("name"), t.get("description"), t.get(schema_key)))
        .collect()
}

fn openai_message(m: &Value) -> Value {
    let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
    let role = if role == "developer" { "system" } else { role };
    let mut out = Map::new();
    out.insert("role".into(), role.into());
    out.insert("content".into(), text(m.get("content")).into());
    if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
        let calls: Vec<Value> = calls
            .iter()
            .map(|c| {
                let f = c.get("function").unwrap_or(c);
                tool_call(
                    c.get("id").and_then(Value::as_str),
                    f.get("name").and_then(Value::as_str).unwrap_or_default(),
                    arguments(f.get("arguments")),
                )
            })
            .collect();
        if !calls.is_empty() {
            out.insert("tool_calls".into(), Value::Array(calls));
        }
    }
    if let Some(id) = m.get("tool_call_id").and_then(Value::as_str) {
        out.insert("tool_call_id".into(), id.into());
    }
    // Reasoning some OpenAI-compatible servers return with the message.
    let reasoning = m
        .get("reasoning_content")
        .or_else(|| m.get("reasoning"))
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty());
    if let Some(r) = reasoning {
        out.insert(
            "thinking".into(),
            json!([{"type": "thinking", "content": r}]),
        );
    }
    Value::Object(out)
}

/// Anthropic Messages: a top-level `system`, content blocks `tool_use` / `tool_result`,
/// tools with `input_schema`.
fn is_anthropic(o: &Map<String, Value>) -> bool {
    let block_kinds = ["tool_use", "tool_result", "thinking", "redacted_thinking"];
    o.contains_key("system")
        || o.get("tools")
            .and_then(Value::as_array)
            .is_some_and(|t| t.iter().any(|t| t.get("input_schema").is_some()))
        || o.get("messages")
            .and_then(Value::as_array)
            .is_some_and(|ms| {
                ms.iter().any(|m| {
                    m.get("content").and_then(Value::as_array).is_some_and(|c| {
                        c.iter().any(|b| {
                            b.get("type")
                                .and_then(Value::as_str)
                                .is_some_and(|t| block_kinds.contains(&t))
                        })
                    })
                })
            })
}

fn anthropic(o: &Map<String, Value>) -> (Vec<Value>, Vec<Value>) {
    let mut messages = Vec::new();
    if let Some(system) = o.get("system").filter(|s| !s.is_null()) {
        messages.push(plain("system", text(Some(system))));
    }
    for m in o
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        if role == "assistant" {
            messages.push(assistant(m.get("content")));
            continue;
        }
        match m.get("content") {
            Some(Value::Array(blocks)) => {
                // Tool results are messages of their own, before the user's text.
                let mut rest = Vec::new();
                for b in blocks {
                    if b.get("type").and_then(Value::as_str) == Some("tool_result") {
                        messages.push(tool_message(
                            b.get("tool_use_id").and_then(Value::as_str),
                            text(b.get("content")),
                        ));
                    } else {
                        rest.push(b.clone());
                    }
                }
                if !rest.is_empty() {
                    messages.push(plain("user", text(Some(&Value::Array(rest)))));
                }
            }
            other => messages.push(plain("user", text(other))),
        }
    }
    (messages, tools_of(o, |t| t, "input_schema"))
}

/// OpenAI Responses: `instructions`, and `input` items (messages, function calls and
/// their outputs, reasoning).
fn responses(o: &Map<String, Value>) -> (Vec<Value>, Vec<Value>) {
    let mut messages = Vec::new();
    if let Some(i) = o.get("instructions").and_then(Value::as_str) {
        messages.push(plain("system", i.to_string()));
    }
    match o.get("input") {
        Some(Value::String(s)) => messages.push(plain("user", s.clone())),
        Some(Value::Array(items)) => {
            for item in items {
                let s = |k: &str| item.get(k).and_then(Value::as_str);
                match s("type").unwrap_or("message") {
                    "function_call" => messages.push(object([
                        ("role", "assistant".into()),
                        ("content", "".into()),
                        (
                            "tool_calls",
                            Value::Array(vec![tool_call(
                                s("call_id").or(s("id")),
                                s("name").unwrap_or_default(),
                                arguments(item.get("arguments")),
                            )]),
                        ),
                    ])),
                    "function_call_output" => {
                        messages.push(tool_message(s("call_id"), text(item.get("output"))))
                    }
                    "reasoning" => {
                        let t = text(item.get("summary"));
                        if !t.is_empty() {
                            let thought =
                                object([("type", "thinking".into()), ("content", t.into())]);
                            messages.push(object([
                                ("role", "assistant".into()),
                                ("content", "".into()),
                                ("thinking", Value::Array(vec![thought])),
                            ]));
                        }
                    }
                    _ => {
                        let role = match s("role").unwrap_or("user") {
                            "developer" => "system",
                            r => r,
                        };
                        messages.push(plain(role, text(item.get("content"))));
                    }
                }
            }
        }
        _ => {}
    }
    (messages, tools_of(o, |t| t, "parameters"))
}

/// Google generateContent: `systemInstruction`, `contents` of `user`/`model` parts
/// (`functionCall`, `functionResponse`), tools' `functionDeclarations`; the @google/genai
/// SDK puts the first and last under `config`.
fn google(o: &Map<String, Value>) -> (Vec<Value>, Vec<Value>) {
    let config = o.get("config");
    let field = |k: &str| o.get(k).or_else(|| config.and_then(|c| c.get(k)));
    let mut messages = Vec::new();
    if let Some(si) = field("systemInstruction") {
        let t = match si.get("parts") {
            Some(parts) => google_text(parts),
            None => text(Some(si)),
        };
        messages.push(plain("system", t));
    }
    for c in o
        .get("contents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let parts = c.get("parts").cloned().unwrap_or(Value::Array(Vec::new()));
        let parts = parts.as_array().cloned().unwrap_or_default();
        let model = c.get("role").and_then(Value::as_str) == Some("model");
        let mut calls = Vec::new();
        let mut texts = Vec::new();
        let mut thinking = Vec::new();
        for p in &parts {
            if let Some(fc) = p.get("functionCall") {
                let name = fc.get("name").and_then(Value::as_str).unwrap_or_default();
                let id = fc.get("id").and_then(Value::as_str).unwrap_or(name);
                calls.push(tool_call(Some(id), name, arguments(fc.get("args"))));
            } else if let Some(fr) = p.get("functionResponse") {
                let name = fr.get("name").and_then(Value::as_str).unwrap_or_default();
                let id = fr.get("id").and_then(Value::as_str).unwrap_or(name);
                messages.push(tool_message(Some(id), text(fr.get("response"))));
            } else if p.get("thought").and_then(Value::as_bool) == Some(true) {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    thinking.push(json!({"type": "thinking", "content": t}));
                }
            } else {
                texts.push(google_part(p));
            }
        }
        if !model && texts.is_empty() {
            continue;
        }
        let mut m = Map::new();
        m.insert(
            "role".into(),
            (if model { "assistant" } else { "user" }).into(),
        );
        m.insert("content".into(), texts.join("\n").into());
        if !calls.is_empty() {
            m.insert("tool_calls".into(), Value::Array(calls));
        }
        if !thinking.is_empty() {
            m.insert("thinking".into(), Value::Array(thinking));
        }
        messages.push(Value::Object(m));
    }
    let mut tools = Vec::new();
    for t in field("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for d in t
            .get("functionDeclarations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let schema = d
                .get("parameters")
                .or_else(|| d.get("parametersJsonSchema"));
            tools.extend(tool_definition(d.get("name"), d.get("description"), schema));
        }
    }
    (messages, tools)
}

fn google_part(p: &Value) -> String {
    if let Some(t) = p.get("text").and_then(Value::as_str) {
        return t.to_string();
    }
    if let Some(d) = p.get("inlineData") {
        return image_placeholder(
            d.get("mimeType").and_then(Value::as_str),
            d.get("data").and_then(Value::as_str),
        );
    }
    compact(p)
}

fn google_text(parts: &Value) -> String {
    parts
        .as_array()
        .map(|a| a.iter().map(google_part).collect::<Vec<_>>().join("\n"))
        .unwrap_or_else(|| compact(parts))
}

/// Request parameters worth filtering on, from a provider request body.
pub fn model_parameters(request: Option<&Value>) -> Map<String, Value> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omp_assistant_with_thinking_text_and_tool_calls() {
        let m = json!({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Let me look.", "thinkingSignature": "sig"},
            {"type": "text", "text": "Listing."},
            {"type": "toolCall", "id": "c1", "name": "bash", "arguments": {"i": "list", "command": "ls"}}
        ], "usage": {}, "stopReason": "toolUse"});
        assert_eq!(
            omp_message(&m),
            json!({
                "role": "assistant",
                "content": "Listing.",
                "tool_calls": [{"id": "c1", "type": "function",
                                "function": {"name": "bash", "arguments": "{\"command\":\"ls\"}"}}],
                "thinking": [{"type": "thinking", "content": "Let me look."}],
            })
        );
    }

    #[test]
    fn omp_tool_results_users_and_images() {
        let r = json!({"role": "toolResult", "toolCallId": "c1", "toolName": "bash", "isError": true,
                       "content": [{"type": "text", "text": "no such file"}]});
        assert_eq!(
            omp_message(&r),
            json!({"role": "tool", "tool_call_id": "c1", "content": "no such file"})
        );
        let u = json!({"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image", "data": "AAAA", "mimeType": "image/png"}
        ], "timestamp": 1});
        assert_eq!(
            omp_message(&u),
            json!({"role": "user", "content": "what is this?\n[omitted image/png, 3 bytes]"})
        );
        let c = json!({"role": "custom", "customType": "ttsr", "content": "Remember the rule."});
        assert_eq!(
            omp_message(&c),
            json!({"role": "user", "content": "Remember the rule."})
        );
    }

    #[test]
    fn anthropic_requests_become_chat_messages_with_parameters() {
        let req = json!({
            "model": "claude", "max_tokens": 100,
            "system": [{"type": "text", "text": "Be brief."}],
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "tool_use", "id": "t1", "name": "read", "input": {"path": "a"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "A"}]},
                    {"type": "text", "text": "go on"}
                ]}
            ],
            "tools": [{"name": "read", "description": "Read a file", "input_schema": {"type": "object"}}]
        });
        assert_eq!(
            provider_request(&req),
            json!({
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "",
                     "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "read", "arguments": "{\"path\":\"a\"}"}}],
                     "thinking": [{"type": "thinking", "content": "hmm"}]},
                    {"role": "tool", "tool_call_id": "t1", "content": "A"},
                    {"role": "user", "content": "go on"}
                ],
                "tools": [{"type": "function", "function": {"name": "read", "description": "Read a file", "parameters": {"type": "object"}}}]
            })
        );
    }

    #[test]
    fn openai_chat_responses_and_google_requests() {
        let chat = json!({"model": "m", "messages": [
            {"role": "developer", "content": "sys"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "a", "content": "ok"}
        ], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]});
        let out = provider_request(&chat);
        assert_eq!(
            out["messages"][0],
            json!({"role": "system", "content": "sys"})
        );
        assert_eq!(out["messages"][1]["tool_calls"][0]["function"]["name"], "f");
        assert_eq!(
            out["messages"][2],
            json!({"role": "tool", "content": "ok", "tool_call_id": "a"})
        );
        assert_eq!(
            out["tools"][0]["function"]["parameters"],
            json!({"type": "object"})
        );

        let resp = json!({"model": "m", "instructions": "sys", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{\"x\":1}"},
            {"type": "function_call_output", "call_id": "c", "output": "done"}
        ], "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}]});
        let out = provider_request(&resp);
        assert_eq!(out["messages"].as_array().unwrap().len(), 4);
        assert_eq!(out["messages"][2]["tool_calls"][0]["id"], "c");
        assert_eq!(
            out["messages"][3],
            json!({"role": "tool", "tool_call_id": "c", "content": "done"})
        );
        assert_eq!(out["tools"][0]["function"]["name"], "f");

        let google = json!({"model": "g", "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"x": 1}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"ok": true}}}]}
        ], "config": {"systemInstruction": {"parts": [{"text": "sys"}]},
                      "tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": {"type": "object"}}]}]}});
        let out = provider_request(&google);
        assert_eq!(
            out["messages"][0],
            json!({"role": "system", "content": "sys"})
        );
        assert_eq!(
            out["messages"][2]["tool_calls"][0]["function"]["arguments"],
            "{\"x\":1}"
        );
        assert_eq!(
            out["messages"][3],
            json!({"role": "tool", "tool_call_id": "f", "content": "{\"ok\":true}"})
        );
        assert_eq!(
            out["tools"][0]["function"]["parameters"],
            json!({"type": "object"})
        );
        // Anything else is left alone.
        assert_eq!(
            provider_request(&json!({"prompt": "x"})),
            json!({"prompt": "x"})
        );
    }
}
