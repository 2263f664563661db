//! Glob patterns over key bytes, with the syntax of Redis's `KEYS` and `SCAN MATCH`, so one
//! pattern selects the same keys in the table and in Redis:
//!
//! | pattern | matches |
//! |---|---|
//! | `*` | any run of bytes, the empty one too |
//! | `?` | exactly one byte |
//! | `[abc]`, `[a-z]` | one byte of the set or range |
//! | `[^a]`, `[!a]` | one byte not in the set |
//! | `\x` | the byte `x` itself (`\*`, `\?`, `\[`, `\\`) |
//!
//! Everything else matches itself. Matching is over bytes (keys are bytes), case-sensitive,
//! and takes time O(pattern × key) at worst: no pattern backtracks exponentially.

/// Whether `key` matches `pattern`. An empty pattern matches only the empty key; callers that
/// mean "every key" skip the match.
pub fn matches(pattern: &[u8], key: &[u8]) -> bool {
    // Iterative matching with one backtrack point (the last `*`): linear memory, and a `*`
    // never makes the matcher revisit more than key.len() positions per star.
    let (mut p, mut k) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while k < key.len() {
        match pattern.get(p) {
            Some(b'*') => {
                while pattern.get(p) == Some(&b'*') {
                    p += 1;
                }
                if p == pattern.len() {
                    return true;
                }
                star = Some((p, k));
                continue;
            }
            Some(_) => {
                if let Some((len, ok)) = one(&pattern[p..], key[k]) {
                    if ok {
                        p += len;
                        k += 1;
                        continue;
                    }
                }
            }
            None => {}
        }
        // Mismatch: let the last `*` swallow one more byte, or fail.
        match star {
            Some((sp, sk)) => {
                p = sp;
                k = sk + 1;
                star = Some((sp, sk + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// Matches one pattern element (a byte, `?`, `\x` or a `[...]` class) at the start of
/// `pattern` against `byte`: `(pattern bytes used, matched)`. `None` at a `*`.
fn one(pattern: &[u8], byte: u8) -> Option<(usize, bool)> {
    match pattern[0] {
        b'*' => None,
        b'?' => Some((1, true)),
        b'\\' if pattern.len() > 1 => Some((2, pattern[1] == byte)),
        b'[' => Some(class(pattern, byte)),
        c => Some((1, c == byte)),
    }
}

/// A `[...]` class at the start of `pattern`. Like Redis, an unterminated class runs to the end
/// of the pattern.
fn class(pattern: &[u8], byte: u8) -> (usize, bool) {
    let mut i = 1;
    let negate = matches!(pattern.get(i), Some(b'^' | b'!'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while i < pattern.len() && (pattern[i] != b']' || first) {
        first = false;
        let mut lo = pattern[i];
        if lo == b'\\' && i + 1 < pattern.len() {
            i += 1;
            lo = pattern[i];
        }
        if pattern.get(i + 1) == Some(&b'-') && i + 2 < pattern.len() && pattern[i + 2] != b']' {
            let mut hi = pattern[i + 2];
            i += 2;
            if hi == b'\\' && i + 1 < pattern.len() {
                i += 1;
                hi = pattern[i];
            }
            let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
            hit |= (lo..=hi).contains(&byte);
        } else {
            hit |= lo == byte;
        }
        i += 1;
    }
    let used = (i + 1).min(pattern.len());
    (used, hit != negate)
}

/// `bytes` escaped so that, as a pattern, it matches exactly itself.
pub fn escape(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for &b in bytes {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_examples() {
        assert!(matches(b"h?llo", b"hello"));
        assert!(matches(b"h?llo", b"hallo"));
        assert!(matches(b"h*llo", b"hllo"));
        assert!(matches(b"h*llo", b"heeeello"));
        assert!(matches(b"h[ae]llo", b"hello"));
        assert!(!matches(b"h[ae]llo", b"hillo"));
        assert!(matches(b"h[^e]llo", b"hallo"));
        assert!(!matches(b"h[^e]llo", b"hello"));
        assert!(matches(b"h[a-b]llo", b"hbllo"));
        assert!(!matches(b"h[a-b]llo", b"hcllo"));
        assert!(matches(b"user:*", b"user:1"));
        assert!(matches(b"user:*", b"user:"));
        assert!(!matches(b"user:*", b"users:1"));
        assert!(matches(b"*", b""));
        assert!(matches(b"", b""));
        assert!(!matches(b"", b"a"));
        assert!(matches(b"a\\*b", b"a*b"));
        assert!(!matches(b"a\\*b", b"axb"));
        assert!(matches(b"*a*b*c*", b"xxaxxbxxcxx"));
        assert!(!matches(b"*a*b*c*", b"xxaxxcxxbxx"));
    }

    #[test]
    fn escape_matches_itself_only() {
        for key in [&b"a*b?c[d]e\\f"[..], b"plain", b"", b"[", b"\\"] {
            let p = escape(key);
            assert!(matches(&p, key), "{key:?}");
            assert!(!matches(&p, b"other"), "{key:?}");
        }
    }

    #[test]
    fn long_stars_stay_fast() {
        let key = vec![b'a'; 4096];
        let mut pattern = b"*a".repeat(100);
        pattern.push(b'b');
        assert!(!matches(&pattern, &key));
    }
}
