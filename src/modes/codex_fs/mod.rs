//! The `codex-fs` mode (docs/protocol.md "Sandboxed filesystem requests"): one sandboxed filesystem operation.
//!
//! Order: (1) read stdin to end of file and decode the request and its effective
//! policy, touching no path ([`request`]); (2–4) lock down with no_new_privs,
//! Landlock and seccomp ([`lockdown`]); (5) perform the operation with the checks of
//! docs/protocol.md "Sandboxed filesystem requests" ([`guard`], [`ops`], [`tree`]); (6) write one response line and exit 0.

pub mod guard;
pub mod lockdown;
pub mod ops;
pub mod request;
pub mod tree;

use crate::fs::FsError;
use crate::protocol::fs::{CanonicalizeResult, ReadDirectoryResult, ReadFileResult};
use crate::protocol::paths::to_uri;
use crate::protocol::EmptyResult;
use crate::rpc::error::RpcError;
use guard::Guard;
use request::Op;
use serde::Serialize;
use serde_json::value::RawValue;
use crate::protocol::fs::OpenMode;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;

/// Where `fs/open` passes the opened descriptor (a socket from the server).
const PASS_FD: std::os::fd::RawFd = 3;

/// Largest request read from stdin.
pub const MAX_REQUEST: u64 = 64 * 1024 * 1024;

#[derive(Serialize)]
struct OkPayload<'a> {
    operation: &'a str,
    response: Box<RawValue>,
}

#[derive(Serialize)]
struct ErrPayload {
    code: i64,
    message: String,
}

#[derive(Serialize)]
#[serde(tag = "status", content = "payload", rename_all = "lowercase")]
enum Response<'a> {
    Ok(OkPayload<'a>),
    Error(ErrPayload),
}

fn raw<T: Serialize>(v: T) -> Result<Box<RawValue>, FsError> {
    serde_json::value::to_raw_value(&v).map_err(|e| {
        FsError::Io(std::io::Error::other(format!(
            "cannot encode the result: {e}"
        )))
    })
}

/// Perform a decoded operation (after the lock-down).
fn perform(g: &Guard, op: Op) -> Result<Box<RawValue>, FsError> {
    match op {
        Op::ReadFile(p) => {
            let data = ops::read_file(g, &p.path.to_path()?, p.follow_symlinks.unwrap_or(true))?;
            raw(ReadFileResult {
                data_base64: crate::protocol::bytes::encode(&data),
            })
        }
        Op::WriteFile(p) => {
            let path = p.path.to_path()?;
            let data = crate::protocol::bytes::decode(&p.data_base64)
                .map_err(|e| FsError::BadBase64(e.to_string()))?;
            ops::write_file(g, &path, &data, p.follow_symlinks.unwrap_or(true))?;
            raw(EmptyResult {})
        }
        Op::CreateDirectory(p) => {
            ops::create_directory(
                g,
                &p.path.to_path()?,
                p.recursive.unwrap_or(true),
                p.follow_symlinks.unwrap_or(true),
            )?;
            raw(EmptyResult {})
        }
        Op::GetMetadata(p) => raw(ops::get_metadata(
            g,
            &p.path.to_path()?,
            p.follow_symlinks.unwrap_or(true),
        )?),
        Op::ReadDirectory(p) => raw(ReadDirectoryResult {
            entries: ops::read_directory(g, &p.path.to_path()?)?,
        }),
        Op::Remove(p) => {
            ops::remove(
                g,
                &p.path.to_path()?,
                p.recursive.unwrap_or(true),
                p.force.unwrap_or(true),
                p.follow_symlinks.unwrap_or(true),
            )?;
            raw(EmptyResult {})
        }
        Op::Copy(p) => {
            let (src, dst) = (p.source_path.to_path()?, p.destination_path.to_path()?);
            ops::copy(g, &src, &dst, p.recursive)?;
            raw(EmptyResult {})
        }
        Op::Canonicalize(p) => raw(CanonicalizeResult {
            path: to_uri(&ops::canonicalize(g, &p.path.to_path()?)?),
        }),
        Op::Walk(p) => raw(tree::walk(g, &p.path.to_path()?, &p.options)?),
        Op::Open(p) => {
            let path = p.path.to_path()?;
            let file = match p.mode.unwrap_or_default() {
                OpenMode::Read => ops::open_read(g, &path)?,
                OpenMode::Replace => ops::open_replace(g, &path)?,
            };
            // The server's end of the socket it gave us as fd 3.
            crate::sys::socket::send_raw(PASS_FD, b"f", &[file.as_raw_fd()])?;
            raw(EmptyResult {})
        }
    }
}

fn fail(code: u8, detail: &str) -> i32 {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "codex-fs: {detail}");
    let _ = e.flush();
    code as i32
}

/// Run the helper; returns the exit status.
pub fn main() -> i32 {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin()
        .lock()
        .take(MAX_REQUEST + 1)
        .read_to_end(&mut input)
    {
        return fail(1, &format!("cannot read the request: {e}"));
    }
    if input.len() as u64 > MAX_REQUEST {
        return fail(1, &format!("request exceeds {MAX_REQUEST} bytes"));
    }
    let req = match request::parse(&input) {
        Ok(r) => r,
        Err(detail) => return fail(1, &detail),
    };
    drop(input);
    if let Err(reason) = lockdown::lock_down(&req.policy) {
        return fail(2, &format!("sandbox cannot be enforced: {reason}"));
    }
    let guard = Guard { policy: req.policy };
    let response = match perform(&guard, req.op) {
        Ok(response) => Response::Ok(OkPayload {
            operation: &req.operation,
            response,
        }),
        Err(e) => {
            let e = RpcError::from(e);
            Response::Error(ErrPayload {
                code: e.code,
                message: e.message,
            })
        }
    };
    let mut line = match serde_json::to_vec(&response) {
        Ok(l) => l,
        Err(e) => return fail(1, &format!("cannot encode the response: {e}")),
    };
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(&line).and_then(|()| out.flush()) {
        return fail(1, &format!("cannot write the response: {e}"));
    }
    0
}
