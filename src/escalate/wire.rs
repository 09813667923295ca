//! The escalation socket wire (docs/protocol.md "Exec escalation"): the handshake datagram that
//! carries one stream end, and length-prefixed JSON frames with `SCM_RIGHTS` on
//! that stream. Blocking calls serve the wrapper; [`AsyncStream`] serves the
//! server. Both use the same non-blocking-safe `sendmsg`/`recvmsg` helpers
//! ([`crate::sys::socket`]).

use crate::sys::fd::set_nonblocking;
use crate::sys::reactor::register;
use crate::sys::socket::{recv_raw, send_raw, RecvError};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use tokio::io::unix::AsyncFd;

/// Largest frame payload accepted (docs/protocol.md "Exec escalation", "Transport").
pub const MAX_FRAME: usize = 16 * 1024 * 1024;
/// Most descriptors in one message (docs/protocol.md "Exec escalation", "Transport"): what the `SCM_RIGHTS`
/// helpers of [`crate::sys::socket`] carry.
pub use crate::sys::socket::MAX_FDS;

/// Message 1, wrapper → server: the exec bash asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub file: String,
    pub argv: Vec<String>,
    pub workdir: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// Message 2, server → wrapper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResponse {
    pub action: Action,
}

/// What the wrapper is told to do. Written as `"Run"`, `"Escalate"` and
/// `{"Deny":{"reason":...}}`; also read as `{"Run":null}`, `{"Escalate":null}`
/// and `{"Deny":{}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Action {
    Run,
    Escalate,
    Deny { reason: Option<String> },
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        #[derive(Deserialize)]
        struct DenyBody {
            #[serde(default)]
            reason: Option<String>,
        }
        fn unit(name: &str) -> Option<Action> {
            match name {
                "Run" => Some(Action::Run),
                "Escalate" => Some(Action::Escalate),
                _ => None,
            }
        }
        const NAMES: &[&str] = &["Run", "Escalate", "Deny"];
        impl<'de> Visitor<'de> for V {
            type Value = Action;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"Run\", \"Escalate\" or {\"Deny\":{\"reason\":...}}")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Action, E> {
                unit(s).ok_or_else(|| E::unknown_variant(s, NAMES))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Action, A::Error> {
                let Some(name) = m.next_key::<String>()? else {
                    return Err(de::Error::invalid_length(0, &self));
                };
                let action = if name == "Deny" {
                    let body: Option<DenyBody> = m.next_value()?;
                    Action::Deny {
                        reason: body.and_then(|b| b.reason),
                    }
                } else {
                    let action =
                        unit(&name).ok_or_else(|| de::Error::unknown_variant(&name, NAMES))?;
                    m.next_value::<de::IgnoredAny>()?;
                    action
                };
                if m.next_key::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("an action has exactly one member"));
                }
                Ok(action)
            }
        }
        d.deserialize_any(V)
    }
}

/// Message 3, wrapper → server after `Escalate`: the descriptor numbers the
/// escalated command gets, in the order the descriptors travel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdsMessage {
    pub fds: Vec<i32>,
}

/// Message 4, server → wrapper: the escalated command's exit status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitMessage {
    pub exit_code: i32,
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("end of stream")]
    Eof,
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME} bytes")]
    TooLarge(usize),
    #[error("descriptors were truncated")]
    FdsTruncated,
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl From<RecvError> for FrameError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::FdsTruncated => FrameError::FdsTruncated,
            RecvError::Io(e) => FrameError::Io(e),
        }
    }
}

/// A frame: 4-byte little-endian length, then the compact JSON.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let body = serde_json::to_vec(msg).expect("wire messages always serialize");
    let mut v = Vec::with_capacity(body.len() + 4);
    v.extend_from_slice(&(body.len() as u32).to_le_bytes());
    v.extend_from_slice(&body);
    v
}

/// A whole frame: its JSON bytes and the descriptors that came with it.
pub type Frame = (Vec<u8>, Vec<OwnedFd>);

/// Incremental frame reader: descriptors are taken from the first `recvmsg` of
/// the frame (as the reference reads them), the rest is plain bytes.
pub struct FrameReader {
    header: [u8; 4],
    got_header: usize,
    body: Vec<u8>,
    fds: Vec<OwnedFd>,
    /// Descriptors kept for this frame; any beyond are closed on arrival.
    max_fds: usize,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader::with_max_fds(MAX_FDS)
    }
}

impl FrameReader {
    /// A reader that keeps at most `max_fds` descriptors of the frame.
    pub fn with_max_fds(max_fds: usize) -> Self {
        FrameReader {
            header: [0; 4],
            got_header: 0,
            body: Vec::new(),
            fds: Vec::new(),
            max_fds: max_fds.min(MAX_FDS),
        }
    }

    /// One read step; `Some` when the frame is complete.
    pub fn step(&mut self, fd: RawFd) -> Result<Option<Frame>, FrameError> {
        if self.got_header < 4 {
            let (n, fds) = recv_raw(fd, &mut self.header[self.got_header..])?;
            // At most max_fds per frame: the rest are closed right here.
            let room = self.max_fds.saturating_sub(self.fds.len());
            self.fds.extend(fds.into_iter().take(room));
            if n == 0 {
                return Err(FrameError::Eof);
            }
            self.got_header += n;
            if self.got_header == 4 {
                let len = u32::from_le_bytes(self.header) as usize;
                if len > MAX_FRAME {
                    return Err(FrameError::TooLarge(len));
                }
                self.body = Vec::with_capacity(len.min(64 * 1024));
                if len == 0 {
                    return Ok(Some((Vec::new(), std::mem::take(&mut self.fds))));
                }
            }
            return Ok(None);
        }
        let len = u32::from_le_bytes(self.header) as usize;
        let mut chunk = vec![0u8; (len - self.body.len()).min(64 * 1024)];
        let (n, fds) = recv_raw(fd, &mut chunk)?;
        // Descriptors after the first read of a frame are not part of it.
        drop(fds);
        if n == 0 {
            return Err(FrameError::Eof);
        }
        self.body.extend_from_slice(&chunk[..n]);
        if self.body.len() == len {
            return Ok(Some((
                std::mem::take(&mut self.body),
                std::mem::take(&mut self.fds),
            )));
        }
        Ok(None)
    }
}

/// Send a whole frame on a blocking stream, `fds` with its first byte.
pub fn send_frame<T: Serialize>(fd: RawFd, msg: &T, fds: &[RawFd]) -> io::Result<()> {
    let frame = encode(msg);
    let mut off = 0;
    while off < frame.len() {
        let n = send_raw(fd, &frame[off..], if off == 0 { fds } else { &[] })?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        off += n;
    }
    Ok(())
}

/// Read a whole frame from a blocking stream.
pub fn recv_frame(fd: RawFd) -> Result<Frame, FrameError> {
    let mut st = FrameReader::default();
    loop {
        if let Some(f) = st.step(fd)? {
            return Ok(f);
        }
    }
}

/// A stream end registered with the tokio reactor (server side).
pub struct AsyncStream {
    fd: AsyncFd<OwnedFd>,
}

impl AsyncStream {
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        set_nonblocking(fd.as_raw_fd())?;
        Ok(AsyncStream { fd: register(fd)? })
    }

    /// The next frame, keeping at most `max_fds` of the descriptors that come
    /// with it (the others are closed as they arrive).
    pub async fn recv_frame(&self, max_fds: usize) -> Result<Frame, FrameError> {
        let mut st = FrameReader::with_max_fds(max_fds);
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| match st.step(fd.as_raw_fd()) {
                Err(FrameError::Io(e)) => Err(e),
                other => Ok(other),
            }) {
                Ok(Ok(Ok(Some(f)))) => return Ok(f),
                Ok(Ok(Ok(None))) => continue,
                Ok(Ok(Err(e))) => return Err(e),
                Ok(Err(e)) => return Err(e.into()),
                Err(_would_block) => continue,
            }
        }
    }

    pub async fn send_frame<T: Serialize>(&self, msg: &T) -> io::Result<()> {
        let frame = encode(msg);
        let mut off = 0;
        while off < frame.len() {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| send_raw(fd.as_raw_fd(), &frame[off..], &[])) {
                Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => off += n,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// Wait until the peer closes its end (or sends something, which is read and
    /// discarded: nothing is expected while a command runs).
    pub async fn closed(&self) {
        let mut buf = [0u8; 256];
        loop {
            let Ok(mut guard) = self.fd.readable().await else {
                return;
            };
            match guard.try_io(|fd| match recv_raw(fd.as_raw_fd(), &mut buf) {
                Ok((n, _)) => Ok(n),
                Err(RecvError::Io(e)) => Err(e),
                Err(_) => Ok(0),
            }) {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) | Err(_) => continue,
            }
        }
    }
}

/// A message socket (seqpacket; datagram works too) registered with the
/// reactor: the server's end of the shell's escalation socket.
pub struct AsyncDatagram {
    fd: AsyncFd<OwnedFd>,
}

impl AsyncDatagram {
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        set_nonblocking(fd.as_raw_fd())?;
        Ok(AsyncDatagram { fd: register(fd)? })
    }

    /// The next message's length and descriptors (at most [`MAX_FDS`]: a message
    /// with more is dropped whole, and the kernel closes what did not fit).
    /// `(0, [])` from a seqpacket socket is its end.
    pub async fn recv(&self) -> io::Result<(usize, Vec<OwnedFd>)> {
        let mut buf = [0u8; 64];
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| match recv_raw(fd.as_raw_fd(), &mut buf) {
                Ok(r) => Ok(Ok(r)),
                Err(RecvError::Io(e)) => Err(e),
                Err(e) => Ok(Err(e)),
            }) {
                Ok(Ok(Ok(r))) => return Ok(r),
                // Truncated descriptors: the datagram is dropped, go on.
                // (debug: a sandboxed child could flood the log otherwise)
                Ok(Ok(Err(e))) => tracing::debug!("escalation message: {e}"),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::socket::socketpair;
    use serde_json::json;

    #[test]
    fn actions_are_written_in_the_documented_forms() {
        let w = |a: Action| serde_json::to_string(&ExecResponse { action: a }).unwrap();
        assert_eq!(w(Action::Run), r#"{"action":"Run"}"#);
        assert_eq!(w(Action::Escalate), r#"{"action":"Escalate"}"#);
        assert_eq!(
            w(Action::Deny {
                reason: Some("no".into())
            }),
            r#"{"action":{"Deny":{"reason":"no"}}}"#
        );
    }

    #[test]
    fn actions_are_read_in_every_accepted_form() {
        let r = |v: serde_json::Value| serde_json::from_value::<ExecResponse>(v).map(|r| r.action);
        assert_eq!(r(json!({"action":"Run"})).unwrap(), Action::Run);
        assert_eq!(r(json!({"action":{"Run":null}})).unwrap(), Action::Run);
        assert_eq!(
            r(json!({"action":{"Escalate":null}})).unwrap(),
            Action::Escalate
        );
        assert_eq!(
            r(json!({"action":{"Deny":{}}})).unwrap(),
            Action::Deny { reason: None }
        );
        assert_eq!(
            r(json!({"action":{"Deny":{"reason":null}}})).unwrap(),
            Action::Deny { reason: None }
        );
        assert_eq!(
            r(json!({"action":{"Deny":{"reason":"x"}},"extra":1})).unwrap(),
            Action::Deny {
                reason: Some("x".into())
            }
        );
        assert!(r(json!({"action":"Fly"})).is_err());
        assert!(r(json!({"action":{}})).is_err());
        assert!(r(json!({"action":{"Run":null,"Deny":{}}})).is_err());
        assert!(r(json!({"action":7})).is_err());
        assert!(r(json!({})).is_err());
    }

    #[test]
    fn request_round_trip_and_optional_env() {
        let q: ExecRequest =
            serde_json::from_value(json!({"file":"/bin/ls","argv":["ls"],"workdir":"/"})).unwrap();
        assert!(q.env.is_empty());
        let f = encode(&q);
        assert_eq!(
            u32::from_le_bytes(f[..4].try_into().unwrap()) as usize,
            f.len() - 4
        );
        assert_eq!(serde_json::from_slice::<ExecRequest>(&f[4..]).unwrap(), q);
        assert_eq!(
            serde_json::to_string(&ExitMessage { exit_code: 3 }).unwrap(),
            r#"{"exit_code":3}"#
        );
    }

    #[test]
    fn frames_and_descriptors_cross_a_stream() {
        let (a, b) = socketpair(libc::SOCK_STREAM).unwrap();
        let (x, _y) = socketpair(libc::SOCK_STREAM).unwrap();
        send_frame(
            a.as_raw_fd(),
            &FdsMessage { fds: vec![0] },
            &[x.as_raw_fd()],
        )
        .unwrap();
        send_frame(a.as_raw_fd(), &ExitMessage { exit_code: 1 }, &[]).unwrap();
        let (body, fds) = recv_frame(b.as_raw_fd()).unwrap();
        assert_eq!(
            serde_json::from_slice::<FdsMessage>(&body).unwrap().fds,
            [0]
        );
        assert_eq!(fds.len(), 1);
        let (body, fds) = recv_frame(b.as_raw_fd()).unwrap();
        assert_eq!(body, br#"{"exit_code":1}"#);
        assert!(fds.is_empty());
        drop(a);
        assert!(matches!(recv_frame(b.as_raw_fd()), Err(FrameError::Eof)));
    }

    #[test]
    fn oversized_and_cut_frames_are_errors() {
        let (a, b) = socketpair(libc::SOCK_STREAM).unwrap();
        send_raw(a.as_raw_fd(), &(MAX_FRAME as u32 + 1).to_le_bytes(), &[]).unwrap();
        assert!(matches!(
            recv_frame(b.as_raw_fd()),
            Err(FrameError::TooLarge(_))
        ));
        let (a, b) = socketpair(libc::SOCK_STREAM).unwrap();
        send_raw(a.as_raw_fd(), &[10, 0, 0, 0, b'{'], &[]).unwrap();
        drop(a);
        assert!(matches!(recv_frame(b.as_raw_fd()), Err(FrameError::Eof)));
    }
}
