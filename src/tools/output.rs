//! Turning collected output into a tool result's text (docs/protocol.md "Unified-exec tools"): a byte
//! budget of `max_output_tokens × 4`, head and tail kept, and a marker that says how
//! many bytes were left out.

use crate::process::retention::Retention;

/// Bytes per token for the budget and for `originalTokenCount`.
pub const BYTES_PER_TOKEN: u64 = 4;
/// `max_output_tokens` when absent.
pub const DEFAULT_MAX_TOKENS: i64 = 10_000;

/// Output collected since the previous call: bytes that are contiguous with each
/// other, except that `gap` bytes were dropped between `head` and `tail` when more
/// than the retention limit was produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Collected {
    pub head: Vec<u8>,
    pub gap: u64,
    pub tail: Vec<u8>,
}

impl Collected {
    /// The bytes of a collection window, in arrival order (streams merged).
    pub fn from_window(w: &Retention) -> Self {
        let mut c = Collected {
            gap: w.dropped_bytes,
            ..Collected::default()
        };
        for chunk in w.iter() {
            let bytes = crate::protocol::bytes::decode(&chunk.b64).unwrap_or_default();
            // Without loss everything is one run; with loss, the chunks kept below
            // `first_retained_seq` are the head and the rest the tail.
            if c.gap > 0 && chunk.seq < w.first_retained_seq {
                c.head.extend_from_slice(&bytes);
            } else {
                c.tail.extend_from_slice(&bytes);
            }
        }
        c
    }

    /// Every byte produced, including those dropped.
    pub fn total(&self) -> u64 {
        self.head.len() as u64 + self.gap + self.tail.len() as u64
    }

    /// `originalTokenCount`: ⌈total ÷ 4⌉.
    pub fn token_count(&self) -> u64 {
        self.total().div_ceil(BYTES_PER_TOKEN)
    }
}

/// The byte budget for `max_output_tokens` (default 10,000; at least 1 token).
pub fn budget(max_output_tokens: Option<i64>) -> u64 {
    let tokens = max_output_tokens.unwrap_or(DEFAULT_MAX_TOKENS).max(1) as u64;
    tokens.saturating_mul(BYTES_PER_TOKEN)
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// The largest `n' ≤ n` that does not split a UTF-8 sequence at the end of `b[..n']`.
fn prefix_boundary(b: &[u8], mut n: usize) -> usize {
    let floor = n.saturating_sub(3);
    while n > floor && n < b.len() && is_continuation(b[n]) {
        n -= 1;
    }
    n
}

/// The smallest start `s ≥ start` that does not begin inside a UTF-8 sequence.
fn suffix_boundary(b: &[u8], mut start: usize) -> usize {
    let ceil = (start + 3).min(b.len());
    while start < ceil && is_continuation(b[start]) {
        start += 1;
    }
    start
}

/// Render collected output within `budget` bytes: everything when it fits,
/// otherwise the first and last halves of the budget (cut points moved to UTF-8
/// boundaries) around `\n[... <N> bytes truncated ...]\n`. Decoded with replacement.
pub fn render(c: &Collected, budget: u64) -> String {
    if c.gap == 0 && c.total() <= budget {
        let mut all = c.head.clone();
        all.extend_from_slice(&c.tail);
        return String::from_utf8_lossy(&all).into_owned();
    }
    let half = (budget / 2) as usize;
    let rest = budget.saturating_sub(half as u64) as usize;
    let (prefix, suffix): (&[u8], &[u8]) = if c.gap == 0 {
        // One run: the head part is empty (see `from_window`), all bytes are in tail.
        let all = &c.tail;
        let p = prefix_boundary(all, half.min(all.len()));
        let s_start = all.len().saturating_sub(rest).max(p);
        let s = suffix_boundary(all, s_start);
        (&all[..p], &all[s..])
    } else {
        let p = prefix_boundary(&c.head, half.min(c.head.len()));
        let s = suffix_boundary(&c.tail, c.tail.len().saturating_sub(rest));
        (&c.head[..p], &c.tail[s..])
    };
    let cut = c.total() - prefix.len() as u64 - suffix.len() as u64;
    let mut out = String::from_utf8_lossy(prefix).into_owned();
    out.push_str(&format!("\n[... {cut} bytes truncated ...]\n"));
    out.push_str(&String::from_utf8_lossy(suffix));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Collected {
        Collected {
            head: Vec::new(),
            gap: 0,
            tail: bytes.to_vec(),
        }
    }

    #[test]
    fn fits_whole() {
        assert_eq!(render(&run(b"hello"), 5), "hello");
        assert_eq!(run(b"hello").token_count(), 2);
        assert_eq!(run(b"").token_count(), 0);
    }

    #[test]
    fn head_and_tail_with_marker() {
        let c = run(b"0123456789abcdefghij");
        assert_eq!(render(&c, 8), "0123\n[... 12 bytes truncated ...]\nghij");
        // An odd budget gives the tail the extra byte.
        assert_eq!(render(&c, 5), "01\n[... 15 bytes truncated ...]\nhij");
    }

    #[test]
    fn cuts_never_split_a_character() {
        // "é" is two bytes; a cut inside it moves back (head) or forward (tail).
        let c = run("aéééb".as_bytes()); // 1 + 6 + 1 = 8 bytes
        let s = render(&c, 4); // head 2 bytes: "a" + half an é -> "a"
        assert_eq!(s, "a\n[... 6 bytes truncated ...]\nb");
        assert!(!s.contains('\u{FFFD}'), "{s}");
    }

    #[test]
    fn a_gap_counts_in_the_marker() {
        let c = Collected {
            head: b"HEAD".to_vec(),
            gap: 100,
            tail: b"TAIL".to_vec(),
        };
        assert_eq!(c.total(), 108);
        // A budget larger than what is kept still reports the gap.
        assert_eq!(
            render(&c, 1_000),
            "HEAD\n[... 100 bytes truncated ...]\nTAIL"
        );
        assert_eq!(render(&c, 4), "HE\n[... 104 bytes truncated ...]\nIL");
    }

    #[test]
    fn budget_defaults_and_floor() {
        assert_eq!(budget(None), 40_000);
        assert_eq!(budget(Some(0)), 4);
        assert_eq!(budget(Some(-5)), 4);
        assert_eq!(budget(Some(i64::MAX)), u64::MAX);
    }
}
