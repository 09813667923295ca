//! Checking an `http/request` before anything is sent (docs/protocol.md "http/request"): method,
//! URL and headers, each with its exact message.

use super::HttpError;
use crate::protocol::http::{Header, RequestHeader};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Method;

pub fn method(m: &str) -> Result<Method, HttpError> {
    Method::from_bytes(m.as_bytes()).map_err(|e| HttpError::Method(e.to_string()))
}

/// An absolute `http` or `https` URL, its fragment dropped.
pub fn url(u: &str) -> Result<url::Url, HttpError> {
    let mut url = url::Url::parse(u).map_err(|e| HttpError::Url(e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(HttpError::Scheme(url.scheme().to_string()));
    }
    url.set_fragment(None);
    Ok(url)
}

/// Variables a header may never take its value from: the executor's own
/// credentials (docs/protocol.md "http/request"). Compared ignoring case.
pub const ENV_DENYLIST: &[&str] = &[
    "CODEX_EXEC_SERVER_NOISE_AUTH_TOKEN",
    "OPENAI_FEDERATION_RULE_ID",
    "OPENAI_IDENTITY_TOKEN_FILE",
    "OPENAI_WORKLOAD_IDENTITY_CONTEXT",
    "OPENAI_API_KEY",
    "CODEX_API_KEY",
    "CODEX_ACCESS_TOKEN",
    "CODEX_CONNECTORS_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_CLIENT_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "GOOGLE_APPLICATION_CREDENTIALS",
];

/// The value of a header: `value`, or with `valueEnvVar` the prefix `value`
/// followed by that variable of the server's environment (denylisted, unset
/// or empty: refused, in that order).
fn header_value(h: &RequestHeader, env: &impl Fn(&str) -> Option<String>) -> Result<String, HttpError> {
    let Some(var) = &h.value_env_var else {
        return Ok(h.value.clone());
    };
    let (name, var) = (h.name.clone(), var.clone());
    if ENV_DENYLIST.iter().any(|d| d.eq_ignore_ascii_case(&var)) {
        return Err(HttpError::EnvVarDenied { name, var });
    }
    match env(&var) {
        None => Err(HttpError::EnvVarMissing { name, var }),
        Some(v) if v.is_empty() => Err(HttpError::EnvVarEmpty { name, var }),
        Some(v) => Ok(format!("{}{v}", h.value)),
    }
}

/// The headers to send, in order, each checked: name, then the value's
/// variable, then the value.
pub fn headers(list: &[RequestHeader]) -> Result<Vec<(HeaderName, HeaderValue)>, HttpError> {
    headers_with(list, &|var| std::env::var(var).ok())
}

fn headers_with(
    list: &[RequestHeader],
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, HttpError> {
    list.iter()
        .map(|h| {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|e| HttpError::HeaderName(e.to_string()))?;
            let value = header_value(h, env)?;
            let value = HeaderValue::from_str(&value).map_err(|e| HttpError::HeaderValue {
                name: h.name.clone(),
                detail: e.to_string(),
            })?;
            Ok((name, value))
        })
        .collect()
}

/// Response headers as the wire list: names lowercase (as the HTTP library keeps
/// them), values that are not UTF-8 left out.
pub fn response_headers(map: &reqwest::header::HeaderMap) -> Vec<Header> {
    map.iter()
        .filter_map(|(n, v)| {
            std::str::from_utf8(v.as_bytes()).ok().map(|v| Header {
                name: n.as_str().to_string(),
                value: v.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods() {
        assert_eq!(method("PATCH").unwrap(), Method::PATCH);
        assert_eq!(method("PURGE").unwrap().as_str(), "PURGE");
        let e = method("GE T").unwrap_err().to_string();
        assert!(e.starts_with("http/request method is invalid: "), "{e}");
        assert!(method("").is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(url("http://h/p#frag").unwrap().as_str(), "http://h/p");
        let e = url("not a url").unwrap_err().to_string();
        assert_eq!(
            e,
            "http/request url is invalid: relative URL without a base"
        );
        let e = url("ftp://h/").unwrap_err().to_string();
        assert_eq!(e, "http/request only supports http and https URLs, got ftp");
        let e = url("file:///etc/passwd").unwrap_err().to_string();
        assert_eq!(
            e,
            "http/request only supports http and https URLs, got file"
        );
    }

    #[test]
    fn bad_headers() {
        let h = |n: &str, v: &str| RequestHeader {
            name: n.into(),
            value: v.into(),
            value_env_var: None,
        };
        assert_eq!(headers(&[h("X-A", "1"), h("x-a", "2")]).unwrap().len(), 2);
        let e = headers(&[h("bad name", "1")]).unwrap_err().to_string();
        assert!(
            e.starts_with("http/request header name is invalid: "),
            "{e}"
        );
        let e = headers(&[h("x-b", "a\nb")]).unwrap_err().to_string();
        assert!(
            e.starts_with("http/request header value is invalid for x-b: "),
            "{e}"
        );
    }

    #[test]
    fn env_var_headers() {
        let env = |var: &str| match var {
            "TOK" => Some("tok-xyz".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let h = |var: &str| RequestHeader {
            name: "authorization".into(),
            value: "Bearer ".into(),
            value_env_var: Some(var.into()),
        };
        let one = |var: &str| headers_with(&[h(var)], &env).map(|v| v[0].1.clone());
        assert_eq!(one("TOK").unwrap(), "Bearer tok-xyz");
        let msg = |var: &str| one(var).unwrap_err().to_string();
        assert_eq!(
            msg("NOPE"),
            "http/request header authorization requires executor environment variable NOPE"
        );
        assert_eq!(
            msg("EMPTY"),
            "http/request header authorization requires a non-empty executor environment variable EMPTY"
        );
        assert_eq!(
            msg("openai_api_key"),
            "http/request header authorization cannot use executor environment variable openai_api_key"
        );
        // The denylist comes before the lookup: a set denied variable is refused too.
        let set = |_: &str| Some("x".to_string());
        for d in ENV_DENYLIST {
            let e = headers_with(&[h(d)], &set).unwrap_err().to_string();
            assert!(e.contains("cannot use executor environment variable"), "{e}");
        }
        // A bad name is reported before the variable.
        let bad = RequestHeader {
            name: "bad name".into(),
            ..h("NOPE")
        };
        let e = headers_with(&[bad], &env).unwrap_err().to_string();
        assert!(e.starts_with("http/request header name is invalid: "), "{e}");
    }
}
