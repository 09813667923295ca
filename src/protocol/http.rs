//! `http/request` params, result and the `http/request/bodyDelta` notification
//! (docs/protocol.md "http/request").

use super::bytes::ByteChunk;
use serde::{Deserialize, Serialize};

/// One header, in a list that keeps order and repeats.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// One request header. With `valueEnvVar`, the value sent is `value` (a
/// prefix, possibly empty) followed by that variable of the server's own
/// environment, so that a secret never crosses the connection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestHeader {
    pub name: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_env_var: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RedirectPolicy {
    #[default]
    Follow,
    Stop,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestParams {
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: Option<Vec<RequestHeader>>,
    #[serde(default)]
    pub body_base64: Option<ByteChunk>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    pub request_id: String,
    #[serde(default)]
    pub stream_response: Option<bool>,
    #[serde(default)]
    pub redirect_policy: Option<RedirectPolicy>,
}

/// The `http/request` result. With `streamResponse` the body is empty here and
/// follows as notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub status: u16,
    pub headers: Vec<Header>,
    pub body_base64: ByteChunk,
}

/// `http/request/bodyDelta` params. `error` is always written (null on success).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BodyDeltaParams {
    pub request_id: String,
    pub seq: u64,
    pub delta_base64: ByteChunk,
    pub done: bool,
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn minimal_request_decodes() {
        let p: RequestParams = serde_json::from_value(
            json!({"method": "GET", "url": "http://x/", "requestId": "r", "other": 1}),
        )
        .unwrap();
        assert!(p.headers.is_none() && p.body_base64.is_none() && p.timeout_ms.is_none());
        assert!(p.stream_response.is_none() && p.redirect_policy.is_none());
        assert!(
            serde_json::from_value::<RequestParams>(json!({"method": "GET", "url": "u"})).is_err()
        );
        let e = serde_json::from_value::<RequestParams>(
            json!({"method": "GET", "url": "u", "requestId": "r", "redirectPolicy": "maybe"}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown variant"), "{e}");
    }

    #[test]
    fn request_header_value_env_var_is_optional() {
        let p: RequestParams =
            serde_json::from_value(json!({"method": "GET", "url": "u", "requestId": "r",
            "headers": [{"name": "a", "value": "b"},
                        {"name": "authorization", "value": "Bearer ", "valueEnvVar": "TOK"},
                        {"name": "c", "value": "", "valueEnvVar": null}]}))
            .unwrap();
        let h = p.headers.unwrap();
        assert_eq!(h[0].value_env_var, None);
        assert_eq!(h[1].value_env_var.as_deref(), Some("TOK"));
        assert_eq!(h[2].value_env_var, None);
        assert_eq!(
            serde_json::to_string(&h[0]).unwrap(),
            r#"{"name":"a","value":"b"}"#
        );
    }

    #[test]
    fn body_delta_shape() {
        let d = BodyDeltaParams {
            request_id: "r".into(),
            seq: 1,
            delta_base64: ByteChunk(b"hi".to_vec()),
            done: false,
            error: None,
        };
        let s = serde_json::to_string(&d).unwrap();
        assert_eq!(
            s,
            r#"{"requestId":"r","seq":1,"deltaBase64":"aGk=","done":false,"error":null}"#
        );
        assert_eq!(serde_json::from_str::<BodyDeltaParams>(&s).unwrap(), d);
    }

    #[test]
    fn response_shape() {
        let r = Response {
            status: 200,
            headers: vec![Header {
                name: "a".into(),
                value: "b".into(),
            }],
            body_base64: ByteChunk::default(),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"status":200,"headers":[{"name":"a","value":"b"}],"bodyBase64":""}"#
        );
    }
}
