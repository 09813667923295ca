//! The error answer of a request: a JSON-RPC code and a message. Which typed
//! error gets which code is decided in one place, the `From` conversions of
//! `errors.rs`; the codes are wire constants (`protocol::codes`, shared
//! with the client).

use crate::protocol::codes;
use crate::protocol::ErrorObject;
use std::fmt;

/// An error answer: a code and a message, ready for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    /// The error object's `data` member, when it has one.
    pub data: Option<serde_json::Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }
    /// The same error with `data: {"kind": kind}`.
    pub fn with_kind(mut self, kind: &str) -> Self {
        self.data = Some(serde_json::json!({ "kind": kind }));
        self
    }
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_REQUEST, message)
    }
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_PARAMS, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(codes::INTERNAL, message)
    }
    pub fn method_not_found(method: &str) -> Self {
        Self::new(
            codes::METHOD_NOT_FOUND,
            format!("exec-server stub does not implement `{method}` yet"),
        )
    }
    /// The malformed-message error (docs/protocol.md "Transport"), always sent
    /// with id -1.
    pub fn malformed(detail: impl fmt::Display) -> Self {
        Self::invalid_request(format!(
            "failed to parse JSON-RPC message from exec-server stdio: {detail}"
        ))
    }
    pub fn to_object(&self) -> ErrorObject {
        ErrorObject {
            code: self.code,
            data: self.data.clone(),
            message: self.message.clone(),
        }
    }
}
