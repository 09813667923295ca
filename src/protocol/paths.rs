//! Paths on the wire (docs/protocol.md "Transport"): `file:` URIs or plain absolute paths in,
//! `file://` URIs out. File names are bytes; nothing here touches the filesystem.

use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// A path member exactly as the client sent it. Decoding it into a native path is a
/// separate step ([`PathArg::to_path`]) because its failures carry their own codes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PathArg(pub String);

/// Why a path member was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("invalid URI: {0}")]
    InvalidUri(String),
    #[error("unsupported path URI scheme `{0}`")]
    UnsupportedScheme(String),
    #[error("query parameters are not allowed in path URIs")]
    Query,
    #[error("fragments are not allowed in path URIs")]
    Fragment,
    /// A host other than empty or `localhost`; the reference's wording.
    #[error("'{0}' is invalid on 'linux'")]
    Host(String),
    #[error("path must not contain NUL bytes")]
    Nul,
}

impl PathArg {
    /// Decode into an absolute, lexically normalised native path.
    pub fn to_path(&self) -> Result<PathBuf, PathError> {
        parse_path(&self.0)
    }
}

/// Parse a path member (a `file:` URI or a plain absolute path).
pub fn parse_path(input: &str) -> Result<PathBuf, PathError> {
    let raw: Vec<u8> = if input.starts_with('/') {
        input.as_bytes().to_vec()
    } else {
        let url = url::Url::parse(input).map_err(|e| PathError::InvalidUri(e.to_string()))?;
        if url.scheme() != "file" {
            return Err(PathError::UnsupportedScheme(url.scheme().to_string()));
        }
        if url.query().is_some() {
            return Err(PathError::Query);
        }
        if url.fragment().is_some() {
            return Err(PathError::Fragment);
        }
        match url.host_str() {
            None | Some("") => {}
            Some(h) if h.eq_ignore_ascii_case("localhost") => {}
            Some(_) => return Err(PathError::Host(input.to_string())),
        }
        percent_encoding::percent_decode_str(url.path()).collect()
    };
    if raw.contains(&0) {
        return Err(PathError::Nul);
    }
    Ok(normalize(&raw))
}

/// Lexical normalisation: drop empty and `.` segments, `..` removes the previous
/// segment and never climbs above `/`.
pub fn normalize(raw: &[u8]) -> PathBuf {
    let mut parts: Vec<&[u8]> = Vec::new();
    for seg in raw.split(|b| *b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = Vec::with_capacity(raw.len());
    for p in &parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    PathBuf::from(OsString::from_vec(out))
}

/// Render an absolute path as a `file://` URI, encoded as `Url::from_file_path` does.
pub fn to_uri(path: &Path) -> String {
    match url::Url::from_file_path(path) {
        Ok(u) => u.to_string(),
        // Only relative paths fail; every path we produce is absolute.
        Err(()) => format!(
            "file://{}",
            percent_encoding::percent_encode(
                path.as_os_str().as_bytes(),
                percent_encoding::NON_ALPHANUMERIC
            )
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<String, PathError> {
        parse_path(s).map(|p| p.to_string_lossy().into_owned())
    }

    #[test]
    fn accepts_uris_and_plain_paths() {
        assert_eq!(p("file:///tmp/a%20b").unwrap(), "/tmp/a b");
        assert_eq!(p("file://localhost/tmp/x").unwrap(), "/tmp/x");
        assert_eq!(p("file://LocalHost/tmp/x").unwrap(), "/tmp/x");
        assert_eq!(p("/tmp/a%20b").unwrap(), "/tmp/a%20b");
        assert_eq!(p("file:/tmp/x").unwrap(), "/tmp/x");
        assert_eq!(p("file:tmp").unwrap(), "/tmp");
    }

    #[test]
    fn normalises_lexically() {
        assert_eq!(p("/w/link/../x").unwrap(), "/w/x");
        assert_eq!(p("/../../x/./y//z/").unwrap(), "/x/y/z");
        assert_eq!(p("/").unwrap(), "/");
        assert_eq!(p("file:///a/..").unwrap(), "/");
    }

    #[test]
    fn rejections_have_exact_messages() {
        for s in ["tmp", ".", "./x", "~/x", ""] {
            assert_eq!(
                p(s).unwrap_err().to_string(),
                "invalid URI: relative URL without a base",
                "{s}"
            );
        }
        assert_eq!(
            p("http://x/y").unwrap_err().to_string(),
            "unsupported path URI scheme `http`"
        );
        assert_eq!(p("file:///x?a").unwrap_err(), PathError::Query);
        assert_eq!(p("file:///x#a").unwrap_err(), PathError::Fragment);
        assert_eq!(
            p("file://other/tmp/x").unwrap_err().to_string(),
            "'file://other/tmp/x' is invalid on 'linux'"
        );
        assert_eq!(p("file:///a%00b").unwrap_err(), PathError::Nul);
        assert_eq!(p("/a\0b").unwrap_err(), PathError::Nul);
    }

    #[test]
    fn non_utf8_names_round_trip() {
        let path = parse_path("file:///tmp/%FF%FEx").unwrap();
        assert_eq!(path.as_os_str().as_bytes(), b"/tmp/\xff\xfex");
        assert_eq!(to_uri(&path), "file:///tmp/%FF%FEx");
        assert_eq!(parse_path(&to_uri(&path)).unwrap(), path);
    }

    #[test]
    fn uris_encode_specials() {
        assert_eq!(
            to_uri(Path::new("/tmp/a b#?%")),
            "file:///tmp/a%20b%23%3F%25"
        );
    }
}
