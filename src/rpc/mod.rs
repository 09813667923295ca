//! What a service needs to answer the client, without knowing the transport:
//! the outbound queue ([`outbound::Outbound`], the reply sink), requests the
//! server sends to the client ([`requests::ServerRequests`]), and the error
//! answer ([`error::RpcError`]). The JSON-RPC codes themselves are wire
//! constants in `protocol::codes`, which the client shares.
//!
//! Above `protocol/` and `sys/`, below every service: `process/`, `fs/`,
//! `escalate/`, `tools/` and `http/` import this, never the exec-server mode
//! (`modes/exec_server/`) that drains the queue to stdout.

pub mod error;
pub mod outbound;
pub mod requests;
