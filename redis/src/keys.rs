//! Key names. Every key of a namespace starts with `ck:{<ns>}:`, so the whole namespace lives
//! in one Redis Cluster slot (the braces are the hash tag) and one Lua script may touch any of
//! its keys.

/// The channel every write script publishes the namespace name on (a doorbell: followers
/// then read the namespace's stream). Classic pub/sub reaches every node of a cluster.
pub const DOORBELL_CHANNEL: &str = "ck:doorbell";

/// Key names of one namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsKeys {
    prefix: Vec<u8>,
}

impl NsKeys {
    /// The keys of namespace `ns`. `{`, `}` and `%` in the name are percent-encoded (`%7B`,
    /// `%7D`, `%25`) so the hash tag is always exactly the namespace.
    pub fn new(ns: &str) -> NsKeys {
        let mut prefix = Vec::with_capacity(ns.len() + 6);
        prefix.extend_from_slice(b"ck:{");
        for b in ns.bytes() {
            match b {
                b'{' => prefix.extend_from_slice(b"%7B"),
                b'}' => prefix.extend_from_slice(b"%7D"),
                b'%' => prefix.extend_from_slice(b"%25"),
                _ => prefix.push(b),
            }
        }
        prefix.extend_from_slice(b"}:");
        NsKeys { prefix }
    }

    /// `ck:{ns}:` — what every key of the namespace starts with.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    fn with(&self, kind: &[u8], rest: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + kind.len() + rest.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(kind);
        k.extend_from_slice(rest);
        k
    }

    /// `ck:{ns}:v:<key>`: the record of `key`.
    pub fn value(&self, key: &[u8]) -> Vec<u8> {
        self.with(b"v:", key)
    }

    /// The `SCAN … MATCH` pattern of the records of this namespace whose keys match `glob`
    /// (Redis glob syntax, passed through; empty = every key): `ck:{ns}:v:` with its
    /// glob-special bytes (`*?[]\`) escaped by `\`, then `glob`.
    pub fn value_pattern(&self, glob: &[u8]) -> Vec<u8> {
        let mut p = Vec::with_capacity(self.prefix.len() + 4 + glob.len());
        for &b in self.prefix.iter().chain(b"v:") {
            if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
                p.push(b'\\');
            }
            p.push(b);
        }
        p.extend_from_slice(if glob.is_empty() { b"*" } else { glob });
        p
    }

    /// The `SCAN … MATCH` pattern of every key of this namespace: `ck:{ns}:*`, the
    /// namespace's glob-special bytes escaped.
    pub fn key_pattern(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(self.prefix.len() + 4);
        for &b in &self.prefix {
            if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
                p.push(b'\\');
            }
            p.push(b);
        }
        p.push(b'*');
        p
    }

    /// `ck:{ns}:sweep`: where the namespace's sweep pass stands (`<cursor> <horizon>`).
    pub fn sweep(&self) -> Vec<u8> {
        self.with(b"sweep", b"")
    }

    /// `ck:{ns}:seq:<origin>`: a hash, per lane of writer `origin`, of the highest sequence
    /// number its writes applied in this namespace (see [`crate::Sequence`]); it expires
    /// [`crate::SEQUENCE_KEEP_MS`] after the writer's last sequenced write here.
    pub fn sequence(&self, origin: &[u8]) -> Vec<u8> {
        self.with(b"seq:", origin)
    }

    /// `ck:{ns}:lease:<key>`: the cross-host fill lease of `key` (a token, with an expiry).
    pub fn lease(&self, key: &[u8]) -> Vec<u8> {
        self.with(b"lease:", key)
    }

    /// `ck:{ns}:clock`: the namespace's counter, incremented by every write.
    pub fn clock(&self) -> Vec<u8> {
        self.with(b"clock", b"")
    }

    /// `ck:{ns}:inv`: the namespace's event stream.
    pub fn stream(&self) -> Vec<u8> {
        self.with(b"inv", b"")
    }

    /// `ck:{ns}:clear`: the namespace's floor: every record stamped at or below it is
    /// invalid. Set by a clear (to its clock) and raised by the sweep ([`crate::sweep`]).
    pub fn clear(&self) -> Vec<u8> {
        self.with(b"clear", b"")
    }

    /// `ck:{ns}:x:<tag>`: clock value of the last invalidation (exact or hierarchical) of `tag`.
    pub fn exact(&self, tag: &str) -> Vec<u8> {
        self.with(b"x:", tag.as_bytes())
    }

    /// `ck:{ns}:p:<tag>`: clock value of the last hierarchical invalidation of `tag`, which
    /// also covers every tag below it.
    pub fn below(&self, tag: &str) -> Vec<u8> {
        self.with(b"p:", tag.as_bytes())
    }
}

/// The counters a record tagged with `tags` depends on, as (kind, path) pairs: `("p", a)` and
/// `("p", a/b)` for the proper prefixes of `a/b/c`, `("x", a/b/c)` for the tag itself. This
/// is what the fetch script computes in Lua; kept here for tests and for the docs.
pub fn dependencies(tags: &[String]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for t in tags {
        for (i, b) in t.bytes().enumerate() {
            if b == b'/' {
                out.push(("p", t[..i].to_string()));
            }
        }
        out.push(("x", t.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let k = NsKeys::new("app");
        assert_eq!(k.value(b"user:1"), b"ck:{app}:v:user:1");
        assert_eq!(k.clock(), b"ck:{app}:clock");
        assert_eq!(k.lease(b"user:1"), b"ck:{app}:lease:user:1");
        assert_eq!(k.stream(), b"ck:{app}:inv");
        assert_eq!(k.exact("a/b"), b"ck:{app}:x:a/b");
        assert_eq!(k.below("a/b"), b"ck:{app}:p:a/b");
    }

    #[test]
    fn braces_never_break_the_hash_tag() {
        assert_eq!(NsKeys::new("}a{%").prefix(), b"ck:{%7Da%7B%25}:");
        assert_ne!(NsKeys::new("%7D").prefix(), NsKeys::new("}").prefix());
    }

    #[test]
    fn value_patterns_escape_the_namespace() {
        assert_eq!(
            NsKeys::new("app").value_pattern(b"user:*"),
            b"ck:{app}:v:user:*"
        );
        assert_eq!(NsKeys::new("app").value_pattern(b""), b"ck:{app}:v:*");
        assert_eq!(NsKeys::new("a*p").key_pattern(), b"ck:{a\\*p}:*");
        assert_eq!(
            NsKeys::new("a*b?[c]\\{").value_pattern(b"k?"),
            b"ck:{a\\*b\\?\\[c\\]\\\\%7B}:v:k?"
        );
    }

    #[test]
    fn dependencies_mirror_the_table() {
        let d = dependencies(&["a/b/c".into()]);
        assert_eq!(
            d,
            [
                ("p", "a".to_string()),
                ("p", "a/b".to_string()),
                ("x", "a/b/c".to_string())
            ]
        );
    }
}
