//! Black-box tests of the higher-level services through the built binary:
//! unified-exec tools (docs/protocol.md "Unified-exec tools") and
//! `http/request` (docs/protocol.md "http/request"). Every HTTP exchange goes to
//! a test server on 127.0.0.1 that the tests start themselves. The server comes
//! from `support::services`.

mod header_env;
mod http;
mod httpd;
mod tools;
