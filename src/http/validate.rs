//! Checking an `http/request` before anything is sent (docs/protocol.md "http/request"): method,
//! URL and headers, each with its exact message.

use super::HttpError;
use crate::protocol::http::Header;
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

pub fn headers(list: &[Header]) -> Result<Vec<(HeaderName, HeaderValue)>, HttpError> {
    list.iter()
        .map(|h| {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|e| HttpError::HeaderName(e.to_string()))?;
            let value = HeaderValue::from_str(&h.value).map_err(|e| HttpError::HeaderValue {
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
        let h = |n: &str, v: &str| Header {
            name: n.into(),
            value: v.into(),
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
}
