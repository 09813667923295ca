//! Requests the server sends to the client (docs/protocol.md "Exec escalation"), and the handler
//! trait through which a caller answers them.

use crate::protocol::{ErrorObject, RequestId};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;

pub use crate::protocol::escalation::{
    ApproveExecParams, ApproveExecResult, ExecDecision, APPROVE_EXEC,
};

/// A request from the server, with its id (integers 1, 2, …: an id space apart
/// from the client's own requests; told apart from a response by its `method`).
#[derive(Debug, Clone)]
pub struct ServerRequest {
    pub id: RequestId,
    pub method: String,
    pub params: Value,
}

impl ServerRequest {
    /// The params of a `process/approveExec` request, if this is one and they decode.
    pub fn approve_exec(&self) -> Option<ApproveExecParams> {
        (self.method == APPROVE_EXEC)
            .then(|| serde_json::from_value(self.params.clone()).ok())
            .flatten()
    }
}

/// What a handler returns: the `result` to send, or the `error` to send.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, ErrorObject>> + Send>>;

/// Answers server→client requests. The answer is sent as the response to the
/// request's id. Requests are handled concurrently, each in its own task on the
/// Tokio runtime the client was created in; a handler may take as long as it
/// likes (a person may be deciding).
///
/// Any `Fn(ServerRequest) -> impl Future<Output = Result<Value, ErrorObject>>`
/// is a handler:
///
/// ```
/// use tether::client::{ApproveExecResult, ExecDecision, ServerRequest};
/// let handler = |req: ServerRequest| async move {
///     let _ = req.approve_exec();
///     Ok(ApproveExecResult { decision: ExecDecision::Deny }.to_value())
/// };
/// # let _: std::sync::Arc<dyn tether::client::RequestHandler> = std::sync::Arc::new(handler);
/// ```
pub trait RequestHandler: Send + Sync + 'static {
    fn handle(&self, request: ServerRequest) -> HandlerFuture;
}

impl<F, Fut> RequestHandler for F
where
    F: Fn(ServerRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, ErrorObject>> + Send + 'static,
{
    fn handle(&self, request: ServerRequest) -> HandlerFuture {
        Box::pin(self(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approve_exec_round_trip() {
        let r = ServerRequest {
            id: RequestId::Int(1),
            method: APPROVE_EXEC.into(),
            params: serde_json::json!({"processId":"sh-1","file":"file:///usr/bin/git",
                "argv":["git","push"],"workdir":"file:///home/u/proj","extra":1}),
        };
        let p = r.approve_exec().unwrap();
        assert_eq!(p.argv, vec!["git", "push"]);
        assert_eq!(
            ApproveExecResult {
                decision: ExecDecision::Approve
            }
            .to_value(),
            serde_json::json!({"decision":"approve"})
        );
        let other = ServerRequest {
            method: "x/y".into(),
            ..r
        };
        assert!(other.approve_exec().is_none());
    }
}
