//! The helper's request (docs/protocol.md "Sandboxed filesystem requests"): `{"operation", "params"}` where
//! `params.sandbox` is the effective context. Decoding touches no path: the
//! context's entries are already concrete (`path` and `glob_pattern` only), so they
//! are taken as they are instead of being resolved again.

use crate::protocol::fs::{
    CopyParams, CreateDirectoryParams, OpenParams, PathParams, ReadFileParams, RemoveParams, WalkParams,
    WriteFileParams,
};
use crate::protocol::paths::parse_path;
use crate::sandbox::policy::{Access, Entry, Network, Resolved, PROTECTED};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// One decoded request.
pub enum Op {
    ReadFile(ReadFileParams),
    WriteFile(WriteFileParams),
    CreateDirectory(CreateDirectoryParams),
    GetMetadata(PathParams),
    ReadDirectory(PathParams),
    Remove(RemoveParams),
    Copy(CopyParams),
    Canonicalize(PathParams),
    Walk(WalkParams),
    /// Open a file and pass its descriptor back on fd 3.
    Open(OpenParams),
}

pub struct Request {
    pub operation: String,
    pub op: Op,
    pub policy: Resolved,
}

fn params<T: DeserializeOwned>(v: Value, op: &str) -> Result<T, String> {
    serde_json::from_value(v).map_err(|e| format!("invalid params for {op}: {e}"))
}

/// Decode the request bytes.
pub fn parse(input: &[u8]) -> Result<Request, String> {
    let v: Value =
        serde_json::from_slice(input).map_err(|e| format!("request is not JSON: {e}"))?;
    let obj = v.as_object().ok_or("request must be a JSON object")?;
    let operation = obj
        .get("operation")
        .and_then(Value::as_str)
        .ok_or("missing field `operation`")?
        .to_string();
    let p = obj.get("params").cloned().ok_or("missing field `params`")?;
    let sandbox = p
        .get("sandbox")
        .filter(|s| !s.is_null())
        .ok_or("missing field `sandbox` in params")?;
    let policy = effective_policy(sandbox)?;
    let o = operation.as_str();
    let op = match o {
        "fs/readFile" => Op::ReadFile(params(p, o)?),
        "fs/writeFile" => Op::WriteFile(params(p, o)?),
        "fs/createDirectory" => Op::CreateDirectory(params(p, o)?),
        "fs/getMetadata" => Op::GetMetadata(params(p, o)?),
        "fs/readDirectory" => Op::ReadDirectory(params(p, o)?),
        "fs/remove" => Op::Remove(params(p, o)?),
        "fs/copy" => Op::Copy(params(p, o)?),
        "fs/canonicalize" => Op::Canonicalize(params(p, o)?),
        "fs/walk" => Op::Walk(params(p, o)?),
        "fs/open" => Op::Open(params(p, o)?),
        other => return Err(format!("unknown operation `{other}`")),
    };
    Ok(Request {
        operation,
        op,
        policy,
    })
}

/// The protected names of docs/protocol.md "Sandbox" step 2 at the top of every writable root but `/`,
/// as the server adds them, here on the spelling the helper checks: the roots of
/// the effective context are real paths, while the server joined the names to the
/// roots as they were given (a root reached through a link, or a name that was
/// missing, would otherwise be protected under the given spelling only).
fn protect_names(entries: &mut Vec<Entry>) {
    let roots: Vec<_> = entries
        .iter()
        .filter(|e| e.access == Access::Write && e.path != std::path::Path::new("/"))
        .map(|e| e.path.clone())
        .collect();
    for root in roots {
        for name in PROTECTED {
            entries.push(Entry {
                path: root.join(name),
                access: Access::Read,
            });
        }
    }
}

/// The effective context: a `managed` profile, `restricted` file system, entries
/// with `path` or `glob_pattern` paths only.
pub fn effective_policy(sandbox: &Value) -> Result<Resolved, String> {
    let perms = sandbox
        .get("permissions")
        .ok_or("missing field `permissions` in sandbox")?;
    if perms.get("type").and_then(Value::as_str) != Some("managed") {
        return Err("the effective sandbox must be a `managed` profile".into());
    }
    let fs = perms
        .get("file_system")
        .ok_or("missing field `file_system`")?;
    if fs.get("type").and_then(Value::as_str) != Some("restricted") {
        return Err("the effective file system must be `restricted`".into());
    }
    let glob_depth = match fs.get("glob_scan_max_depth") {
        None | Some(Value::Null) => 8,
        Some(d) => d
            .as_u64()
            .filter(|d| *d >= 1)
            .ok_or("glob_scan_max_depth must be an integer >= 1")?
            .min(u32::MAX as u64) as u32,
    };
    let entries = fs
        .get("entries")
        .and_then(Value::as_array)
        .ok_or("missing field `entries`")?;
    let mut out = Vec::new();
    let mut globs = Vec::new();
    for e in entries {
        let access = match e.get("access").and_then(Value::as_str) {
            Some("read") => Access::Read,
            Some("write") => Access::Write,
            Some("deny") | Some("none") => Access::Deny,
            other => return Err(format!("invalid entry access {other:?}")),
        };
        let path = e.get("path").ok_or("missing field `path` in entry")?;
        match path.get("type").and_then(Value::as_str) {
            Some("path") => {
                let s = path
                    .get("path")
                    .and_then(Value::as_str)
                    .ok_or("entry path must be a string")?;
                let p = parse_path(s).map_err(|e| format!("entry path: {e}"))?;
                out.push(Entry { path: p, access });
            }
            Some("glob_pattern") => {
                let pat = path
                    .get("pattern")
                    .and_then(Value::as_str)
                    .ok_or("missing field `pattern`")?;
                if access != Access::Deny || !pat.starts_with('/') {
                    return Err(format!("glob pattern `{pat}` must be absolute and deny"));
                }
                globs.push(pat.to_string());
            }
            other => {
                return Err(format!(
                    "effective entries use only `path` and `glob_pattern`, not {other:?}"
                ))
            }
        }
    }
    protect_names(&mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path).then(a.access.cmp(&b.access)));
    out.dedup();
    Ok(Resolved {
        entries: out,
        globs,
        glob_depth,
        // The helper never needs the network (docs/protocol.md "Sandboxed filesystem requests").
        network: Network::Restricted,
    })
}
