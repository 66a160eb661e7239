//! The OTLP/HTTP JSON encoder: one complete span per observation, shaped the way Langfuse v4
//! reads it (`POST /api/public/otel/v1/traces`, `x-langfuse-ingestion-version: 4`).
//!
//! Rules (Langfuse v4 exporter checklist): lowercase hex ids, decimal-string Unix nanos,
//! attributes as a list, trace context copied onto every span (v4 stores one row per span and
//! reads trace fields from that row only), structured values as JSON strings, cost with a
//! `total`, errors as status code 2 plus level ERROR. Trace records have no OTLP form.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::encode::OTLP_MAX_BODY_BYTES;
use crate::encode::{Encoder, Item, Wire, json};
use crate::model::{Level, Millis, ObsKind, Observation, Record, TraceCtx, rfc3339};

/// `service.name` on the resource.
pub const SERVICE_NAME: &str = "omp-langfuse";
/// The instrumentation scope. Langfuse copies every span attribute into an observation's
/// metadata unless the scope name starts with `langfuse-sdk` (langfuse/langfuse,
/// `OtelIngestionProcessor.ts`: `isLangfuseSDKSpans`), which would repeat the trace name,
/// session id, usage and cost in every metadata panel. Every attribute this encoder writes
/// is a `langfuse.*` one that Langfuse maps to a field or to `metadata.*`, as its SDKs' are,
/// so the scope says it speaks the SDKs' conventions, and names this tool after the dot.
pub const SCOPE_NAME: &str = "langfuse-sdk.omp-langfuse";
/// This tool's version, for the scope and the SDK headers.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// OTLP `SpanKind` values (integers in OTLP/JSON).
const SPAN_KIND_INTERNAL: u8 = 1;
const SPAN_KIND_CLIENT: u8 = 3;
/// OTLP `StatusCode.ERROR`.
const STATUS_CODE_ERROR: u8 = 2;
/// Computed cost totals are rounded to 1e-12 USD.
const COST_ROUNDING: f64 = 1e12;
/// JSON numbers are exact up to 2^53; larger integers go out as their decimal text.
const MAX_SAFE_INT: i64 = (1 << 53) - 1;

/// Builds OTLP span items and frames them into `ExportTraceServiceRequest` bodies.
#[derive(Debug, Clone)]
pub struct OtlpEncoder {
    prefix: Vec<u8>,
    suffix: Vec<u8>,
}

impl OtlpEncoder {
    /// The resource holds `service.name` only: environment and release ride on every span
    /// (from the trace context), and a resource copy would only be repeated in every
    /// observation's metadata (`resourceAttributes`). `service.version` is left out on
    /// purpose: Langfuse would take it as every observation's `version`.
    pub fn new() -> OtlpEncoder {
        let attributes = vec![kv("service.name", string(SERVICE_NAME))];
        let resource = serde_json::to_string(&Resource { attributes }).expect("resource json");
        let scope = serde_json::to_string(&Scope {
            name: SCOPE_NAME,
            version: TOOL_VERSION,
        })
        .expect("scope json");
        let prefix = format!(
            r#"{{"resourceSpans":[{{"resource":{resource},"scopeSpans":[{{"scope":{scope},"spans":["#
        );
        OtlpEncoder {
            prefix: prefix.into_bytes(),
            suffix: b"]}]}]}".to_vec(),
        }
    }
}

impl Encoder for OtlpEncoder {
    fn wire(&self) -> Wire {
        Wire::Otlp
    }

    fn encode(&self, rec: &Record) -> Option<Item> {
        match rec {
            // No trace entity in OTLP: the trace is the set of spans sharing a trace id, and
            // its context travels on each of them.
            Record::Trace(_) => None,
            Record::Observation(obs) => Some(Item {
                session_id: obs.trace.session_id.as_str().into(),
                key: obs.id.clone(),
                json: span(obs).to_json(),
                trace_tag: Item::tag_of(&obs.trace),
            }),
        }
    }

    fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    fn suffix(&self) -> &[u8] {
        &self.suffix
    }

    fn max_body_bytes(&self) -> usize {
        OTLP_MAX_BODY_BYTES
    }
}

#[derive(Serialize)]
struct Resource<'a> {
    attributes: Vec<KeyValue<'a>>,
}

#[derive(Serialize)]
struct Scope<'a> {
    name: &'a str,
    version: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Span<'a> {
    trace_id: &'a str,
    span_id: &'a str,
    /// Absent on the root: that is how Langfuse finds the root observation.
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<&'a str>,
    name: &'a str,
    kind: u8,
    start_time_unix_nano: String,
    end_time_unix_nano: String,
    attributes: Vec<KeyValue<'a>>,
    status: Status<'a>,
}

#[derive(Serialize)]
struct Status<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

#[derive(Serialize)]
struct KeyValue<'a> {
    key: Cow<'a, str>,
    value: AnyValue<'a>,
}

/// OTLP `AnyValue`; serde's external tagging gives exactly `{"stringValue": "…"}` etc.
#[derive(Serialize)]
enum AnyValue<'a> {
    #[serde(rename = "stringValue")]
    String(Cow<'a, str>),
    /// A JSON number: the Langfuse API schema types `intValue` as an integer, and OTLP/JSON
    /// readers take int64 as a number or a string alike. Only |n| ≤ 2^53 is sent this way.
    #[serde(rename = "intValue")]
    Int(i64),
    #[serde(rename = "doubleValue")]
    Double(f64),
    #[serde(rename = "boolValue")]
    Bool(bool),
    #[serde(rename = "arrayValue")]
    Array { values: Vec<AnyValue<'a>> },
    /// A string: this value's JSON text (written straight into the body, see
    /// [`json::write_value_as_str`]).
    #[serde(rename = "stringValue", serialize_with = "json_text")]
    Json(&'a Value),
}

fn json_text<S: serde::Serializer>(v: &Value, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&json::to_string(v))
}

impl Span<'_> {
    /// The span as `serde_json` would write it (its fields in declaration order), with the
    /// faster string escaper: the input and output attributes are JSON text escaped again.
    fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        let field = |out: &mut Vec<u8>, name: &str| json::write_key(out, out.is_empty(), name);
        field(&mut out, "traceId");
        json::write_str(&mut out, self.trace_id);
        field(&mut out, "spanId");
        json::write_str(&mut out, self.span_id);
        if let Some(parent) = self.parent_span_id {
            field(&mut out, "parentSpanId");
            json::write_str(&mut out, parent);
        }
        field(&mut out, "name");
        json::write_str(&mut out, self.name);
        field(&mut out, "kind");
        out.extend_from_slice(self.kind.to_string().as_bytes());
        field(&mut out, "startTimeUnixNano");
        json::write_str(&mut out, &self.start_time_unix_nano);
        field(&mut out, "endTimeUnixNano");
        json::write_str(&mut out, &self.end_time_unix_nano);
        field(&mut out, "attributes");
        out.push(b'[');
        for (i, a) in self.attributes.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"key\":");
            json::write_str(&mut out, &a.key);
            out.extend_from_slice(b",\"value\":");
            a.value.write(&mut out);
            out.push(b'}');
        }
        out.push(b']');
        field(&mut out, "status");
        out.push(b'{');
        if let Some(code) = self.status.code {
            out.extend_from_slice(format!("\"code\":{code}").as_bytes());
        }
        if let Some(message) = self.status.message {
            if self.status.code.is_some() {
                out.push(b',');
            }
            out.extend_from_slice(b"\"message\":");
            json::write_str(&mut out, message);
        }
        out.extend_from_slice(b"}}");
        out
    }
}

impl AnyValue<'_> {
    /// `{"stringValue":…}` and the rest, as serde's external tagging writes them.
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            AnyValue::String(s) => {
                out.extend_from_slice(b"{\"stringValue\":");
                json::write_str(out, s);
            }
            AnyValue::Json(v) => {
                out.extend_from_slice(b"{\"stringValue\":");
                json::write_value_as_str(out, v);
            }
            AnyValue::Int(i) => {
                out.extend_from_slice(b"{\"intValue\":");
                serde_json::to_writer(&mut *out, i).expect("writing to memory");
            }
            AnyValue::Double(f) => {
                out.extend_from_slice(b"{\"doubleValue\":");
                // serde_json's form (a non-finite double is `null`).
                serde_json::to_writer(&mut *out, f).expect("writing to memory");
            }
            AnyValue::Bool(b) => {
                out.extend_from_slice(b"{\"boolValue\":");
                out.extend_from_slice(if *b { b"true" } else { b"false" });
            }
            AnyValue::Array { values } => {
                out.extend_from_slice(b"{\"arrayValue\":{\"values\":[");
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    v.write(out);
                }
                out.extend_from_slice(b"]}");
            }
        }
        out.push(b'}');
    }
}

fn kv<'a>(key: impl Into<Cow<'a, str>>, value: AnyValue<'a>) -> KeyValue<'a> {
    KeyValue {
        key: key.into(),
        value,
    }
}

fn string<'a>(s: impl Into<Cow<'a, str>>) -> AnyValue<'a> {
    AnyValue::String(s.into())
}

/// A metadata value as an attribute: scalars keep their type, structures become JSON text.
/// `null` has no OTLP form and is dropped.
fn scalar(v: &Value) -> Option<AnyValue<'_>> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => AnyValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) if (-MAX_SAFE_INT..=MAX_SAFE_INT).contains(&i) => AnyValue::Int(i),
            Some(_) => string(n.to_string()),
            None => match n.as_f64() {
                Some(f) if n.is_f64() => AnyValue::Double(f),
                _ => string(n.to_string()),
            },
        },
        Value::String(s) => string(s.as_str()),
        Value::Array(_) | Value::Object(_) => AnyValue::Json(v),
    })
}

/// Input/output as Langfuse expects it: a string as itself, anything else as JSON text.
/// Input and output as the attribute string Langfuse parses: JSON text for structured
/// values, the text itself for a string, except a string that is itself valid JSON (`42`,
/// `null`, `{"a":1}`): Langfuse would show it parsed, so it goes as a JSON string literal.
fn io_value(v: &Value) -> AnyValue<'_> {
    match v {
        Value::String(s) if looks_like_json(s) => AnyValue::Json(v),
        Value::String(s) => string(s.as_str()),
        other => AnyValue::Json(other),
    }
}

/// Whether Langfuse's `JSON.parse` of this text would succeed (and so change what it shows).
fn looks_like_json(s: &str) -> bool {
    let t = s.trim_start();
    let first = t.as_bytes().first().copied();
    let candidate = matches!(
        first,
        Some(b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n')
    );
    candidate && serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok()
}

/// Unix nanoseconds as a decimal string (JSON numbers lose precision past 2^53).
fn nanos(ms: Millis) -> String {
    (i128::from(ms.max(0)) * 1_000_000).to_string()
}

/// Trace-wide context, put on every span.
fn trace_attributes<'a>(ctx: &'a TraceCtx, out: &mut Vec<KeyValue<'a>>) {
    out.push(kv("langfuse.trace.name", string(ctx.name.as_str())));
    out.push(kv("langfuse.session.id", string(ctx.session_id.as_str())));
    if let Some(user) = &ctx.user_id {
        out.push(kv("langfuse.user.id", string(user.as_str())));
    }
    if !ctx.tags.is_empty() {
        let values = ctx.tags.iter().map(|t| string(t.as_str())).collect();
        out.push(kv("langfuse.trace.tags", AnyValue::Array { values }));
    }
    push_metadata("langfuse.trace.metadata.", &ctx.metadata, out);
    if let Some(env) = &ctx.environment {
        out.push(kv("langfuse.environment", string(env.as_str())));
    }
    if let Some(rel) = &ctx.release {
        out.push(kv("langfuse.release", string(rel.as_str())));
    }
}

fn push_metadata<'a>(prefix: &str, map: &'a Map<String, Value>, out: &mut Vec<KeyValue<'a>>) {
    for (k, v) in map {
        if let Some(value) = scalar(v) {
            out.push(kv(format!("{prefix}{k}"), value));
        }
    }
}

/// A `{bucket: number}` JSON object string.
fn buckets_json<T: Serialize>(buckets: &[(&str, T)]) -> String {
    let mut m = Map::new();
    for (k, v) in buckets {
        m.insert(
            (*k).to_string(),
            serde_json::to_value(v).unwrap_or(Value::Null),
        );
    }
    Value::Object(m).to_string()
}

fn span(obs: &Observation) -> Span<'_> {
    let mut attributes = Vec::with_capacity(16);
    trace_attributes(&obs.trace, &mut attributes);
    attributes.push(kv("langfuse.observation.type", string(obs.kind.as_str())));
    if obs.level != Level::Default {
        attributes.push(kv("langfuse.observation.level", string(obs.level.as_str())));
    }
    if let Some(msg) = &obs.status_message {
        attributes.push(kv(
            "langfuse.observation.status_message",
            string(msg.as_str()),
        ));
    }
    if let Some(generation) = &obs.generation {
        if let Some(model) = &generation.model {
            attributes.push(kv(
                "langfuse.observation.model.name",
                string(model.as_str()),
            ));
        }
        if !generation.model_parameters.is_empty() {
            let params = Value::Object(generation.model_parameters.clone()).to_string();
            attributes.push(kv("langfuse.observation.model.parameters", string(params)));
        }
        if !generation.usage.is_empty() {
            attributes.push(kv(
                "langfuse.observation.usage_details",
                string(buckets_json(&generation.usage)),
            ));
        }
        if !generation.cost.is_empty() {
            // With buckets beyond input/output and no `total`, Langfuse stores no total cost.
            let mut cost = generation.cost.clone();
            if !cost.iter().any(|(k, _)| *k == "total") {
                let total: f64 = cost.iter().map(|(_, v)| v).sum();
                // Summing binary fractions leaves noise like 0.01533; a
                // trillionth of a dollar is far below any price.
                cost.push(("total", (total * COST_ROUNDING).round() / COST_ROUNDING));
            }
            attributes.push(kv(
                "langfuse.observation.cost_details",
                string(buckets_json(&cost)),
            ));
        }
        if let Some(at) = generation.completion_start {
            attributes.push(kv(
                "langfuse.observation.completion_start_time",
                string(rfc3339(at)),
            ));
        }
    }
    if let Some(input) = &obs.input {
        attributes.push(kv("langfuse.observation.input", io_value(input)));
    }
    if let Some(output) = &obs.output {
        attributes.push(kv("langfuse.observation.output", io_value(output)));
    }
    push_metadata(
        "langfuse.observation.metadata.",
        &obs.metadata,
        &mut attributes,
    );

    let error = obs.level == Level::Error;
    Span {
        trace_id: &obs.trace.id,
        span_id: &obs.id,
        parent_span_id: obs.parent_id.as_deref(),
        name: &obs.name,
        kind: match obs.kind {
            ObsKind::Generation => SPAN_KIND_CLIENT,
            _ => SPAN_KIND_INTERNAL,
        },
        start_time_unix_nano: nanos(obs.start),
        end_time_unix_nano: nanos(obs.end.max(obs.start)),
        attributes,
        status: Status {
            code: error.then_some(STATUS_CODE_ERROR),
            message: if error {
                obs.status_message.as_deref()
            } else {
                None
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GenerationInfo, TraceRecord};
    use serde_json::json;
    use std::sync::Arc;

    fn ctx() -> Arc<TraceCtx> {
        let mut metadata = Map::new();
        metadata.insert("cwd".into(), json!("/home/dev/api"));
        metadata.insert("turns".into(), json!(3));
        metadata.insert("nothing".into(), Value::Null);
        Arc::new(TraceCtx {
            id: "9b79f6be055e95a197add88feb488270".into(),
            name: "fix the test".into(),
            session_id: "01a02de5-fc05-7c3a-9b2e-5d4c3b2a1f00".into(),
            user_id: Some("dev".into()),
            tags: vec!["omp".into(), "cli".into()],
            environment: Some("dev".into()),
            release: Some("a1b2c3d".into()),
            timestamp: 1_787_220_000_000,
            metadata,
        })
    }

    fn root() -> Observation {
        Observation {
            id: "dcbdfbce3acd469f".into(),
            trace: ctx(),
            parent_id: None,
            kind: ObsKind::Agent,
            name: "omp session".into(),
            start: 1_787_220_000_000,
            end: 1_787_220_012_000,
            input: Some(json!("Fix the failing test")),
            output: Some(json!({"result": "done"})),
            metadata: Map::new(),
            level: Level::Default,
            status_message: None,
            generation: None,
        }
    }

    fn body_of(enc: &OtlpEncoder, obs: Vec<Observation>) -> Value {
        let items: Vec<Item> = obs
            .into_iter()
            .map(|o| enc.encode(&Record::Observation(o)).unwrap())
            .collect();
        serde_json::from_slice(&enc.body(&items)).unwrap()
    }

    #[test]
    fn root_span_exact_json() {
        let enc = OtlpEncoder::new();
        let item = enc.encode(&Record::Observation(root())).unwrap();
        assert_eq!(item.key, "dcbdfbce3acd469f");
        assert_eq!(&*item.session_id, "01a02de5-fc05-7c3a-9b2e-5d4c3b2a1f00");
        let expected = concat!(
            r#"{"traceId":"9b79f6be055e95a197add88feb488270","spanId":"dcbdfbce3acd469f","#,
            r#""name":"omp session","kind":1,"#,
            r#""startTimeUnixNano":"1787220000000000000","endTimeUnixNano":"1787220012000000000","#,
            r#""attributes":["#,
            r#"{"key":"langfuse.trace.name","value":{"stringValue":"fix the test"}},"#,
            r#"{"key":"langfuse.session.id","value":{"stringValue":"01a02de5-fc05-7c3a-9b2e-5d4c3b2a1f00"}},"#,
            r#"{"key":"langfuse.user.id","value":{"stringValue":"dev"}},"#,
            r#"{"key":"langfuse.trace.tags","value":{"arrayValue":{"values":[{"stringValue":"omp"},{"stringValue":"cli"}]}}},"#,
            r#"{"key":"langfuse.trace.metadata.cwd","value":{"stringValue":"/home/dev/api"}},"#,
            r#"{"key":"langfuse.trace.metadata.turns","value":{"intValue":3}},"#,
            r#"{"key":"langfuse.environment","value":{"stringValue":"dev"}},"#,
            r#"{"key":"langfuse.release","value":{"stringValue":"a1b2c3d"}},"#,
            r#"{"key":"langfuse.observation.type","value":{"stringValue":"agent"}},"#,
            r#"{"key":"langfuse.observation.input","value":{"stringValue":"Fix the failing test"}},"#,
            r#"{"key":"langfuse.observation.output","value":{"stringValue":"{\"result\":\"done\"}"}}"#,
            r#"],"status":{}}"#
        );
        assert_eq!(String::from_utf8(item.json).unwrap(), expected);
    }

    #[test]
    fn spans_are_written_as_serde_json_writes_them() {
        let mut metadata = Map::new();
        metadata.insert("ratio".into(), json!(0.25));
        metadata.insert("flag".into(), json!(false));
        metadata.insert("huge".into(), json!(u64::MAX));
        metadata.insert("list".into(), json!([1, "two\n", {"three": null}]));
        metadata.insert("ctl \u{1}\"\\".into(), json!("tab\there é 🦀"));
        let failed = Observation {
            parent_id: Some("dcbdfbce3acd469f".into()),
            level: Level::Error,
            status_message: Some("exit 1: \"boom\"\n".into()),
            input: Some(json!({"cmd": "printf '\\x00'", "env": ["A=\u{7}"]})),
            output: Some(json!("42")),
            metadata,
            ..root()
        };
        let warned = Observation {
            level: Level::Warning,
            status_message: Some("slow".into()),
            input: Some(json!([null, true, -1.5e-7])),
            output: None,
            ..root()
        };
        for obs in [root(), failed, warned] {
            let s = span(&obs);
            assert_eq!(
                String::from_utf8(s.to_json()).unwrap(),
                serde_json::to_string(&s).unwrap()
            );
        }
    }

    #[test]
    fn generation_span_exact_json() {
        let mut params = Map::new();
        params.insert("max_tokens".into(), json!(8192));
        let obs = Observation {
            id: "170bce9cc2dba77b".into(),
            parent_id: Some("dcbdfbce3acd469f".into()),
            kind: ObsKind::Generation,
            name: "claude-sonnet-4-5".into(),
            start: 1_787_220_000_350,
            end: 1_787_220_004_200,
            input: None,
            output: None,
            generation: Some(GenerationInfo {
                model: Some("claude-sonnet-4-5-20250929".into()),
                model_parameters: params,
                usage: vec![
                    ("input", 1250),
                    ("input_cache_read", 18000),
                    ("output", 412),
                ],
                // No total: the encoder adds it.
                cost: vec![
                    ("input", 0.00375),
                    ("input_cache_read", 0.0054),
                    ("output", 0.00618),
                ],
                completion_start: Some(1_787_220_001_250),
            }),
            ..root()
        };
        let json =
            String::from_utf8(enc().encode(&Record::Observation(obs)).unwrap().json).unwrap();
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["parentSpanId"], "dcbdfbce3acd469f");
        assert_eq!(v["kind"], 3);
        let attrs = v["attributes"].as_array().unwrap();
        let tail: Vec<String> = attrs[8..].iter().map(|a| a.to_string()).collect();
        assert_eq!(
            tail,
            [
                r#"{"key":"langfuse.observation.type","value":{"stringValue":"generation"}}"#,
                r#"{"key":"langfuse.observation.model.name","value":{"stringValue":"claude-sonnet-4-5-20250929"}}"#,
                r#"{"key":"langfuse.observation.model.parameters","value":{"stringValue":"{\"max_tokens\":8192}"}}"#,
                r#"{"key":"langfuse.observation.usage_details","value":{"stringValue":"{\"input\":1250,\"input_cache_read\":18000,\"output\":412}"}}"#,
                r#"{"key":"langfuse.observation.cost_details","value":{"stringValue":"{\"input\":0.00375,\"input_cache_read\":0.0054,\"output\":0.00618,\"total\":0.01533}"}}"#,
                r#"{"key":"langfuse.observation.completion_start_time","value":{"stringValue":"2026-08-20T10:00:01.250Z"}}"#,
            ]
        );
        assert_eq!(v["status"], json!({}));
    }

    fn enc() -> OtlpEncoder {
        OtlpEncoder::new()
    }

    #[test]
    fn error_tool_span_sets_status_and_level() {
        let mut metadata = Map::new();
        metadata.insert("tool_use_id".into(), json!("toolu_01"));
        metadata.insert("args".into(), json!({"command": "pytest"}));
        metadata.insert("ratio".into(), json!(0.5));
        metadata.insert("ok".into(), json!(false));
        let obs = Observation {
            id: "4fc3e237aea21cd9".into(),
            parent_id: Some("dcbdfbce3acd469f".into()),
            kind: ObsKind::Tool,
            name: "bash".into(),
            level: Level::Error,
            status_message: Some("exit code 1".into()),
            metadata,
            ..root()
        };
        let v: Value =
            serde_json::from_slice(&enc().encode(&Record::Observation(obs)).unwrap().json).unwrap();
        assert_eq!(v["status"], json!({"code": 2, "message": "exit code 1"}));
        let attrs: Vec<String> = v["attributes"].as_array().unwrap()[8..]
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            attrs,
            [
                r#"{"key":"langfuse.observation.type","value":{"stringValue":"tool"}}"#,
                r#"{"key":"langfuse.observation.level","value":{"stringValue":"ERROR"}}"#,
                r#"{"key":"langfuse.observation.status_message","value":{"stringValue":"exit code 1"}}"#,
                r#"{"key":"langfuse.observation.input","value":{"stringValue":"Fix the failing test"}}"#,
                r#"{"key":"langfuse.observation.output","value":{"stringValue":"{\"result\":\"done\"}"}}"#,
                r#"{"key":"langfuse.observation.metadata.args","value":{"stringValue":"{\"command\":\"pytest\"}"}}"#,
                r#"{"key":"langfuse.observation.metadata.ok","value":{"boolValue":false}}"#,
                r#"{"key":"langfuse.observation.metadata.ratio","value":{"doubleValue":0.5}}"#,
                r#"{"key":"langfuse.observation.metadata.tool_use_id","value":{"stringValue":"toolu_01"}}"#,
            ]
        );
    }

    #[test]
    fn a_string_that_is_valid_json_stays_a_string() {
        let text = |v: Value| match io_value(&v) {
            AnyValue::String(s) => s.to_string(),
            AnyValue::Json(v) => json::to_string(v),
            _ => panic!("not a string value"),
        };
        assert_eq!(text(json!("Fix the failing test")), "Fix the failing test");
        assert_eq!(text(json!("42")), "\"42\"");
        assert_eq!(text(json!("null")), "\"null\"");
        assert_eq!(text(json!("{\"a\":1}")), "\"{\\\"a\\\":1}\"");
        assert_eq!(text(json!("not json {")), "not json {");
        assert_eq!(text(json!({"a": 1})), "{\"a\":1}");
    }

    #[test]
    fn body_frames_resource_scope_and_spans() {
        let enc = OtlpEncoder::new();
        let v = body_of(&enc, vec![root(), root()]);
        assert_eq!(
            v["resourceSpans"][0]["resource"],
            json!({"attributes": [
                {"key": "service.name", "value": {"stringValue": "omp-langfuse"}},
            ]})
        );
        // The SDKs' scope prefix: Langfuse copies no span attribute into the metadata.
        assert_eq!(
            v["resourceSpans"][0]["scopeSpans"][0]["scope"],
            json!({"name": "langfuse-sdk.omp-langfuse", "version": TOOL_VERSION})
        );
        assert_eq!(
            v["resourceSpans"][0]["scopeSpans"][0]["spans"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        // An empty request body is still a valid export request.
        let empty: Value = serde_json::from_slice(&enc.body(&[])).unwrap();
        assert_eq!(
            empty["resourceSpans"][0]["scopeSpans"][0]["spans"],
            json!([])
        );
    }

    #[test]
    fn trace_records_have_no_otlp_form() {
        let rec = Record::Trace(TraceRecord {
            ctx: ctx(),
            input: None,
            output: None,
            at: 0,
            seq: 0,
        });
        assert!(enc().encode(&rec).is_none());
        assert_eq!(enc().wire(), Wire::Otlp);
        assert_eq!(enc().max_body_bytes(), OTLP_MAX_BODY_BYTES);
    }

    #[test]
    fn large_integers_and_clamped_times() {
        assert!(
            matches!(scalar(&json!(1_i64 << 60)), Some(AnyValue::String(s)) if s == "1152921504606846976")
        );
        assert!(matches!(
            scalar(&json!(u64::MAX)),
            Some(AnyValue::String(_))
        ));
        assert!(matches!(scalar(&json!(-5)), Some(AnyValue::Int(-5))));
        assert_eq!(nanos(-1), "0");
        // An end before the start is clamped (zero duration), never negative.
        let obs = Observation { end: 1, ..root() };
        let v: Value =
            serde_json::from_slice(&enc().encode(&Record::Observation(obs)).unwrap().json).unwrap();
        assert_eq!(v["endTimeUnixNano"], v["startTimeUnixNano"]);
    }
}
