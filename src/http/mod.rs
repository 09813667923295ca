//! `http/request` (docs/protocol.md "http/request"): the server performs an HTTP request for the
//! client, over `reqwest` (rustls, the system's root certificates).
//!
//! Buffered bodies come back in the result (at most 64 MiB); streamed bodies follow
//! the result as `http/request/bodyDelta` notifications. The proxy variables of the
//! server's environment are honoured. Headers are sent in order with repeats kept,
//! except that the HTTP library groups repeats of one name together.

pub mod stream;
pub mod validate;

use crate::protocol::bytes::ByteChunk;
use crate::protocol::http::{RedirectPolicy, RequestParams, Response};
use crate::rpc::outbound::Outbound;
use std::sync::OnceLock;
use std::time::Duration;
use stream::ActiveStreams;

/// Largest buffered response body.
pub const MAX_BUFFERED: usize = 64 * 1024 * 1024;
/// Redirects followed with `redirectPolicy: "follow"`.
pub const MAX_REDIRECTS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("http/request method is invalid: {0}")]
    Method(String),
    #[error("http/request url is invalid: {0}")]
    Url(String),
    #[error("http/request only supports http and https URLs, got {0}")]
    Scheme(String),
    #[error("http/request header name is invalid: {0}")]
    HeaderName(String),
    #[error("http/request header value is invalid for {name}: {detail}")]
    HeaderValue { name: String, detail: String },
    #[error("http/request header {name} cannot use executor environment variable {var}")]
    EnvVarDenied { name: String, var: String },
    #[error("http/request header {name} requires executor environment variable {var}")]
    EnvVarMissing { name: String, var: String },
    #[error("http/request header {name} requires a non-empty executor environment variable {var}")]
    EnvVarEmpty { name: String, var: String },
    #[error("http/request streamResponse requestId `{0}` is already active")]
    StreamActive(String),
    /// Connection, TLS, timeout, redirect loop.
    #[error("http/request failed: {0}")]
    Failed(String),
    #[error("failed to read http/request response body: {0}")]
    BodyRead(String),
    #[error("http/request response body exceeds {MAX_BUFFERED} bytes; use streamResponse")]
    BodyTooLarge,
}

/// Work that must follow the response on the wire (the body frames).
pub type After = Box<dyn FnOnce() + Send>;

/// An error's text with its sources, so that "error sending request" says why.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        src = s.source();
    }
    text
}

/// `http/request` for one connection: one client per redirect policy, built on
/// first use (so that a server that never makes a request never loads the
/// certificate store).
pub struct HttpService {
    out: Outbound,
    follow: OnceLock<Result<reqwest::Client, String>>,
    stop: OnceLock<Result<reqwest::Client, String>>,
    active: ActiveStreams,
}

impl HttpService {
    pub fn new(out: Outbound) -> Self {
        HttpService {
            out,
            follow: OnceLock::new(),
            stop: OnceLock::new(),
            active: ActiveStreams::default(),
        }
    }

    fn client(&self, policy: RedirectPolicy) -> Result<reqwest::Client, HttpError> {
        let (cell, redirect) = match policy {
            RedirectPolicy::Follow => (
                &self.follow,
                reqwest::redirect::Policy::limited(MAX_REDIRECTS),
            ),
            RedirectPolicy::Stop => (&self.stop, reqwest::redirect::Policy::none()),
        };
        cell.get_or_init(|| {
            reqwest::Client::builder()
                .redirect(redirect)
                .build()
                .map_err(|e| error_chain(&e))
        })
        .clone()
        .map_err(HttpError::Failed)
    }

    /// Perform the request. With `streamResponse` the returned [`After`] starts the
    /// body frames; it must run once the response is queued.
    pub async fn request(&self, p: RequestParams) -> Result<(Response, Option<After>), HttpError> {
        let method = validate::method(&p.method)?;
        let url = validate::url(&p.url)?;
        let headers = validate::headers(p.headers.as_deref().unwrap_or(&[]))?;
        let streamed = p.stream_response.unwrap_or(false);
        let stream_id = if streamed {
            let id = self
                .active
                .claim(&p.request_id)
                .ok_or_else(|| HttpError::StreamActive(p.request_id.clone()))?;
            Some(id)
        } else {
            None
        };
        let client = self.client(p.redirect_policy.unwrap_or_default())?;
        let mut req = client.request(method, url);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        if let Some(body) = p.body_base64 {
            req = req.body(body.0);
        }
        if let Some(ms) = p.timeout_ms {
            // reqwest's total timeout covers the body too, streamed or not.
            req = req.timeout(Duration::from_millis(ms));
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| HttpError::Failed(error_chain(&e)))?;
        let status = resp.status().as_u16();
        let headers = validate::response_headers(resp.headers());
        if let Some(id) = stream_id {
            let out = self.out.clone();
            let after: After = Box::new(move || {
                tokio::spawn(stream::send_body(out, resp, id));
            });
            let r = Response {
                status,
                headers,
                body_base64: ByteChunk::default(),
            };
            return Ok((r, Some(after)));
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(b)) => {
                    if body.len() + b.len() > MAX_BUFFERED {
                        return Err(HttpError::BodyTooLarge);
                    }
                    body.extend_from_slice(&b);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(HttpError::Failed(error_chain(&e))),
                Err(e) => return Err(HttpError::BodyRead(error_chain(&e))),
            }
        }
        let r = Response {
            status,
            headers,
            body_base64: ByteChunk(body),
        };
        Ok((r, None))
    }
}
