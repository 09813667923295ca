//! Classify one input line (docs/protocol.md "Transport"): request, notification, response, or
//! malformed with the exact detail. Duplicate keys are found while parsing.

use crate::protocol::RequestId;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::fmt;

/// What one line is.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    Request {
        id: RequestId,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    Response {
        id: RequestId,
        outcome: Result<Value, Value>,
    },
    /// The `<detail>` of the malformed-message error.
    Malformed(String),
}

pub const DETAIL_NOT_UTF8: &str = "line is not valid UTF-8";
pub const DETAIL_NOT_OBJECT: &str = "expected a JSON-RPC object";
pub const DETAIL_METHOD_TYPE: &str = "\"method\" must be a string";
pub const DETAIL_BAD_ID: &str = "id must be a string or a 64-bit signed integer";
pub const DETAIL_NEITHER: &str = "message has neither \"method\" nor \"result\"/\"error\"";

/// Deepest nesting of arrays and objects accepted (docs/protocol.md "Transport" rule 3).
pub const MAX_DEPTH: usize = 128;

/// Parse JSON strictly: at most [`MAX_DEPTH`] levels, and no duplicate keys.
pub fn parse_strict(text: &str) -> Result<Value, String> {
    let dup = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    // Our own depth count replaces serde_json's (which stops at 127 levels); it
    // also bounds the recursion.
    de.disable_recursion_limit();
    let parsed = StrictSeed {
        dup: &dup,
        depth: 0,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(v) => Ok(v),
        Err(e) => match dup.into_inner() {
            Some(key) => Err(format!("duplicate JSON object key `{key}`")),
            None => Err(e.to_string()),
        },
    }
}

/// Classify a line (already stripped of its terminator and `\r`).
pub fn classify(line: &[u8]) -> Incoming {
    let Ok(text) = std::str::from_utf8(line) else {
        return Incoming::Malformed(DETAIL_NOT_UTF8.into());
    };
    let value = match parse_strict(text) {
        Ok(v) => v,
        Err(detail) => return Incoming::Malformed(detail),
    };
    let Value::Object(mut obj) = value else {
        return Incoming::Malformed(DETAIL_NOT_OBJECT.into());
    };
    let method = match obj.remove("method") {
        None => None,
        Some(Value::String(m)) => Some(m),
        Some(_) => return Incoming::Malformed(DETAIL_METHOD_TYPE.into()),
    };
    let id = obj.remove("id").map(parse_id);
    let params = obj.remove("params").unwrap_or(Value::Null);
    match (method, id) {
        (Some(method), Some(Some(id))) => Incoming::Request { id, method, params },
        (Some(_), Some(None)) => Incoming::Malformed(DETAIL_BAD_ID.into()),
        (Some(method), None) => Incoming::Notification { method, params },
        (None, Some(Some(id))) => match (obj.remove("result"), obj.remove("error")) {
            (Some(r), None) => Incoming::Response { id, outcome: Ok(r) },
            (None, Some(e)) => Incoming::Response {
                id,
                outcome: Err(e),
            },
            _ => Incoming::Malformed(DETAIL_NEITHER.into()),
        },
        (None, _) => Incoming::Malformed(DETAIL_NEITHER.into()),
    }
}

fn parse_id(v: Value) -> Option<RequestId> {
    match v {
        Value::String(s) => Some(RequestId::Str(s)),
        Value::Number(n) => n.as_i64().filter(|_| !n.is_f64()).map(RequestId::Int),
        _ => None,
    }
}

/// Builds a `serde_json::Value`, refusing an object that repeats a key. The key is
/// recorded so that the caller can report it without the decoder's position text.
struct StrictSeed<'a> {
    dup: &'a RefCell<Option<String>>,
    /// Containers this value is nested in.
    depth: usize,
}

impl StrictSeed<'_> {
    fn enter<E: de::Error>(&self) -> Result<usize, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format_args!(
                "JSON nesting is deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(self.depth + 1)
    }
}

impl<'de> DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.enter()?;
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element_seed(StrictSeed {
            dup: self.dup,
            depth,
        })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.enter()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                let err = format!("duplicate JSON object key `{key}`");
                *self.dup.borrow_mut() = Some(key);
                return Err(de::Error::custom(err));
            }
            let v = map.next_value_seed(StrictSeed {
                dup: self.dup,
                depth,
            })?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn malformed(line: &str) -> String {
        match classify(line.as_bytes()) {
            Incoming::Malformed(d) => d,
            other => panic!("not malformed: {other:?}"),
        }
    }

    #[test]
    fn requests_and_ids() {
        assert_eq!(
            classify(br#"{"id":7,"method":"m","params":{"a":1}}"#),
            Incoming::Request {
                id: RequestId::Int(7),
                method: "m".into(),
                params: json!({"a":1})
            }
        );
        assert_eq!(
            classify(br#"{"id":"","method":"m","jsonrpc":"2.0"}"#),
            Incoming::Request {
                id: RequestId::Str("".into()),
                method: "m".into(),
                params: Value::Null
            }
        );
        assert!(matches!(
            classify(br#"{"id":-9223372036854775808,"method":"m"}"#),
            Incoming::Request {
                id: RequestId::Int(i64::MIN),
                ..
            }
        ));
        for bad in [
            "null",
            "1.5",
            "1e3",
            "true",
            "{}",
            "[]",
            "9223372036854775808",
            "1.0",
        ] {
            assert_eq!(
                malformed(&format!(r#"{{"id":{bad},"method":"m"}}"#)),
                DETAIL_BAD_ID,
                "{bad}"
            );
        }
    }

    #[test]
    fn notifications_responses_and_neither() {
        assert_eq!(
            classify(br#"{"method":"initialized"}"#),
            Incoming::Notification {
                method: "initialized".into(),
                params: Value::Null
            }
        );
        assert_eq!(
            classify(br#"{"id":"s-1","result":{"decision":"approve"}}"#),
            Incoming::Response {
                id: RequestId::Str("s-1".into()),
                outcome: Ok(json!({"decision":"approve"}))
            }
        );
        assert!(matches!(
            classify(br#"{"id":1,"error":{}}"#),
            Incoming::Response {
                outcome: Err(_),
                ..
            }
        ));
        assert_eq!(
            malformed(r#"{"id":1,"result":1,"error":2}"#),
            DETAIL_NEITHER
        );
        assert_eq!(malformed(r#"{"id":1}"#), DETAIL_NEITHER);
        assert_eq!(malformed(r#"{}"#), DETAIL_NEITHER);
        assert_eq!(malformed(r#"{"id":null,"result":1}"#), DETAIL_NEITHER);
    }

    #[test]
    fn malformed_details() {
        assert_eq!(malformed("[1]"), DETAIL_NOT_OBJECT);
        assert_eq!(malformed("3"), DETAIL_NOT_OBJECT);
        assert_eq!(malformed(r#"{"method":3}"#), DETAIL_METHOD_TYPE);
        assert_eq!(
            malformed(r#"{"a":1,"b":{"c":1,"c":2}}"#),
            "duplicate JSON object key `c`"
        );
        assert_eq!(
            malformed("{not json"),
            "key must be a string at line 1 column 2"
        );
        assert!(matches!(classify(b"\xff{}"), Incoming::Malformed(d) if d == DETAIL_NOT_UTF8));
    }

    #[test]
    fn nesting_limit_is_128() {
        let ok = format!("{}{}", "[".repeat(127), "]".repeat(127));
        let ok = format!(r#"{{"id":1,"method":"m","params":{ok}}}"#);
        assert!(matches!(classify(ok.as_bytes()), Incoming::Request { .. }));
        let deep = format!("{}{}", "[".repeat(128), "]".repeat(128));
        let deep = format!(r#"{{"id":1,"method":"m","params":{deep}}}"#);
        assert!(malformed(&deep).starts_with("JSON nesting is deeper than 128 levels"));
        let hostile = "[".repeat(100_000);
        assert!(malformed(&hostile).starts_with("JSON nesting is deeper than 128 levels"));
    }
}
