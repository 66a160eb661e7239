//! Parsing one input line into the JSON the decoders read. Fields that no decoder reads for
//! a line's type are checked for JSON syntax and skipped, never built: most of omp's bytes
//! are copies of messages in lines whose payload nobody reads (`message_start`, `turn_end`,
//! `agent_end`, the bridge's `context` …), and skipping is several times cheaper than
//! building a tree.
//!
//! A skipped field is checked for JSON syntax only: nesting deeper than serde_json's limit,
//! a number out of range, a lone surrogate escape or invalid UTF-8 inside one of its strings
//! no longer costs the whole line. Built fields are checked as fully as ever.
//! Errors are always reported exactly as a full parse reports them.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
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
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = LineVisitor(rules)
        .deserialize(&mut de)
        .and_then(|p| de.end().map(|()| p));
    match parsed {
        Ok(Parsed::Value(v)) => Ok(v),
        // Two different `type` keys (the last wins in a full parse), or an error: let the
        // full parse decide and word the error.
        Ok(Parsed::Again) | Err(_) => serde_json::from_slice(bytes),
    }
}

enum Parsed {
    Value(Value),
    Again,
}

impl<'de> DeserializeSeed<'de> for LineVisitor {
    type Value = Parsed;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Parsed, D::Error> {
        d.deserialize_any(self)
    }
}

struct LineVisitor(Rules);

impl<'de> Visitor<'de> for LineVisitor {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut out = Map::new();
        let mut keep = Keep::All;
        let mut ty: Option<String> = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "type" {
                let v: Value = map.next_value()?;
                let name = v.as_str().unwrap_or("");
                match &ty {
                    None => {
                        keep = (self.0)(name);
                        ty = Some(name.to_string());
                    }
                    Some(first) if first != name || !v.is_string() => return drain(map),
                    Some(_) => {}
                }
                out.insert(key, v);
                continue;
            }
            let wanted = match keep {
                Keep::All => true,
                Keep::Only(fields) => fields.contains(&key.as_str()),
            };
            if wanted {
                let v: Value = map.next_value()?;
                out.insert(key, v);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Parsed::Value(Value::Object(out)))
    }

    // Anything but an object is built whole, as a full parse would (the caller rejects it).
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parsed, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            out.push(v);
        }
        Ok(Parsed::Value(Value::Array(out)))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Parsed, E> {
        Ok(Parsed::Value(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Parsed, E> {
        Ok(Parsed::Value(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Parsed, E> {
        Ok(Parsed::Value(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Parsed, E> {
        Ok(Parsed::Value(
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_str<E>(self, v: &str) -> Result<Parsed, E> {
        Ok(Parsed::Value(Value::String(v.to_string())))
    }

    fn visit_unit<E>(self) -> Result<Parsed, E> {
        Ok(Parsed::Value(Value::Null))
    }
}

/// Consume the rest of an object without building it, then ask for a full parse.
fn drain<'de, A: MapAccess<'de>>(mut map: A) -> Result<Parsed, A::Error> {
    while map.next_key::<IgnoredAny>()?.is_some() {
        map.next_value::<IgnoredAny>()?;
    }
    Ok(Parsed::Again)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
