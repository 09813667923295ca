//! A JSON skimmer for the bench client: finds members of an object as raw byte
//! slices without building values. Strings are skipped with `memchr`, so a 358 MB
//! `dataBase64` costs one fast scan instead of a byte-by-byte parse; the client must
//! not be what limits a figure. It assumes well-formed input (the servers under
//! test write compact, valid JSON) and reads only what the bench needs.

/// Index just past the string that starts at `i` (which must be `"`).
fn skip_string(b: &[u8], mut i: usize) -> usize {
    i += 1;
    loop {
        match memchr::memchr2(b'"', b'\\', &b[i..]) {
            Some(k) if b[i + k] == b'\\' => i += k + 2,
            Some(k) => return i + k + 1,
            None => return b.len(),
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Index just past the value that starts at `i`.
fn skip_value(b: &[u8], i: usize) -> usize {
    let i = skip_ws(b, i);
    match b.get(i) {
        Some(b'"') => skip_string(b, i),
        Some(b'{') | Some(b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            b.len()
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']') && !b[j].is_ascii_whitespace()
            {
                j += 1;
            }
            j
        }
    }
}
/// Where the value of member `key` starts, without skimming that value (only the
/// members before it): for a member that is hundreds of megabytes, one scan less.
pub fn find(b: &[u8], key: &str) -> Option<usize> {
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(b, i);
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let kend = skip_string(b, i);
        let k = &b[i + 1..kend - 1];
        i = skip_ws(b, kend);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let vstart = skip_ws(b, i + 1);
        if k == key.as_bytes() {
            return Some(vstart);
        }
        i = skip_ws(b, skip_value(b, vstart));
        match b.get(i) {
            Some(b',') => i += 1,
            _ => return None,
        }
    }
}

/// The contents of the string member at `path` (object keys, outermost first),
/// `None` if absent, not a string, or escaped: one scan of the string itself.
pub fn str_at<'a>(b: &'a [u8], path: &[&str]) -> Option<&'a [u8]> {
    let mut at = 0;
    for key in path {
        at += find(&b[at..], key)?;
    }
    let s = b.get(at + 1..)?;
    if b[at] != b'"' {
        return None;
    }
    match memchr::memchr2(b'"', b'\\', s) {
        Some(k) if s[k] == b'"' => Some(&s[..k]),
        _ => None,
    }
}

/// Where the content of a response's big string starts: the line begins
/// `{"id":N,"result":{"KEY":"` (as both servers write `fs/readFile` and
/// `fs/readBlock` results).
pub fn big_string_start(b: &[u8]) -> Option<usize> {
    response_id(b)?;
    let r = find(b, "result")?;
    let mut i = skip_ws(b, r);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let kend = i + 1 + memchr::memchr(b'"', &b[i + 1..])? + 1;
    i = skip_ws(b, kend);
    if b.get(i) != Some(&b':') {
        return None;
    }
    i = skip_ws(b, i + 1);
    (b.get(i) == Some(&b'"')).then_some(i + 1)
}

/// The id of a response that starts `{"id":N,"result"` or `{"id":N,"error"`,
/// found without skimming its result; `None` for anything else.
pub fn response_id(b: &[u8]) -> Option<i64> {
    let mut v = skip_ws(b, 0);
    if b.get(v) != Some(&b'{') {
        return None;
    }
    v = skip_ws(b, v + 1);
    if !b[v..].starts_with(b"\"id\"") {
        return None;
    }
    v = skip_ws(b, v + 4);
    if b.get(v) != Some(&b':') {
        return None;
    }
    v = skip_ws(b, v + 1);
    let end = v + b[v..]
        .iter()
        .position(|c| !c.is_ascii_digit() && *c != b'-')?;
    let id = int(&b[v..end])?;
    let next = skip_ws(b, end);
    if b.get(next) != Some(&b',') {
        return None;
    }
    let k = skip_ws(b, next + 1);
    let rest = &b[k..];
    (rest.starts_with(b"\"result\"") || rest.starts_with(b"\"error\"")).then_some(id)
}

/// Call `f(key, raw_value)` for each member of the object in `b`.
pub fn members<'a>(b: &'a [u8], mut f: impl FnMut(&'a [u8], &'a [u8])) {
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return;
    }
    i += 1;
    loop {
        i = skip_ws(b, i);
        match b.get(i) {
            Some(b'"') => {}
            _ => return,
        }
        let kend = skip_string(b, i);
        let key = &b[i + 1..kend - 1];
        i = skip_ws(b, kend);
        if b.get(i) != Some(&b':') {
            return;
        }
        let vstart = skip_ws(b, i + 1);
        let vend = skip_value(b, vstart);
        f(key, &b[vstart..vend]);
        i = skip_ws(b, vend);
        match b.get(i) {
            Some(b',') => i += 1,
            _ => return,
        }
    }
}

/// The raw value of member `key`, if present.
pub fn get<'a>(b: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let mut found = None;
    members(b, |k, v| {
        if found.is_none() && k == key.as_bytes() {
            found = Some(v);
        }
    });
    found
}

/// The contents of a string value without escapes (ids, method names, base64).
/// `None` for a value that is not a string or that contains escapes.
pub fn plain_str(v: &[u8]) -> Option<&[u8]> {
    if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' {
        let s = &v[1..v.len() - 1];
        if memchr::memchr(b'\\', s).is_none() {
            return Some(s);
        }
    }
    None
}

/// An integer value.
pub fn int(v: &[u8]) -> Option<i64> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// The integer at the start of `b` (followed by anything).
pub fn int_at(b: &[u8]) -> Option<i64> {
    let end = b
        .iter()
        .position(|c| !c.is_ascii_digit() && *c != b'-')
        .unwrap_or(b.len());
    int(&b[..end])
}
