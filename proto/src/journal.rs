//! The failed-write journal: what a client records of a write it could not deliver because
//! its daemon was gone, so that the next daemon, which carries the old table over (warm
//! restart), does not serve what that write meant to remove or replace.
//!
//! Every record only ever *drops* something (a key, the entries under tags, a namespace,
//! everything): applying one is always safe, applying one twice or in any order gives the
//! same table, and a record the daemon cannot read is lost at worst, never misapplied.
//!
//! # Files
//!
//! `<runtime dir>/<instance>.journal/` (made by the daemon, mode 1733: anyone who reaches the
//! runtime directory may create a file there, nobody but the daemon may list, rename or remove
//! another's), one append-only file per client process, created with `O_EXCL`. A file is
//! [`FILE_MAGIC`] then records:
//!
//! ```text
//! u32 LE body length | u64 LE xxh3-64 of the body | body
//! body: u8 kind, then
//!   1 drop key:        u16 namespace length, namespace, u32 key length, key
//!   2 invalidate:      u16 namespace length, namespace, u8 exact (0/1), u16 tag count,
//!                      per tag: u16 length, tag
//!   3 clear namespace: u16 namespace length, namespace
//!   4 clear all:       nothing
//! ```
//!
//! A short last record (a write torn by a crash) ends the file quietly; a record whose length
//! is over [`MAX_RECORD_BODY`], whose checksum fails or whose body does not parse ends the
//! file too (counted as bad): nothing after a damaged record is trusted.
//!
//! The lock `<runtime dir>/<instance>.journal.lock` closes the race between a client that
//! journals and a daemon that starts: see [`JOURNAL_LOCK_SUFFIX`].

use xxhash_rust::xxh3::xxh3_64;

/// First bytes of every journal file (format 1).
pub const FILE_MAGIC: &[u8; 8] = b"CKJRNL01";
/// Largest body a record may have: a key at the protocol's ceiling and its namespace fit many
/// times over; a larger length is damage.
pub const MAX_RECORD_BODY: usize = 1 << 20;
/// Bytes before a record's body: its length and its checksum.
pub const RECORD_HEADER: usize = 12;
/// The directory of journal files of an instance: `<instance>` + this, in its runtime dir.
pub const JOURNAL_DIR_SUFFIX: &str = ".journal";
/// The lock file of an instance's journal, in its runtime dir. The daemon holds it exclusively
/// while it binds its socket and applies the journal; a client holds it shared while it checks
/// once more whether a daemon answers and, if none does, appends its record. So a record is
/// either appended before the daemon reads the journal, or the client finds that daemon
/// answering and sends the write to it. Each daemon start makes a new lock file, 0660 with a
/// writer group (0600 without one): a client that cannot open or take it appends first and
/// then looks for a daemon (one that does not answer yet reads the record; one that answers
/// gets the write as well).
pub const JOURNAL_LOCK_SUFFIX: &str = ".journal.lock";

/// One failed write, as the table must see it after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalRecord {
    /// A set, delete or atomic operation of one key: the key goes.
    DropKey {
        /// The key's namespace.
        namespace: String,
        /// The key (as sent: hashed when the client hashes keys).
        key: Vec<u8>,
    },
    /// An invalidation of tags in a namespace.
    Invalidate {
        /// The namespace.
        namespace: String,
        /// The tags.
        tags: Vec<String>,
        /// Exactly these tags (`true`) or each with everything below it.
        exact: bool,
    },
    /// A clear of a namespace (also what a delete by pattern stands for, and what a full file
    /// writes instead of more keys of a namespace).
    ClearNamespace {
        /// The namespace.
        namespace: String,
    },
    /// Everything goes (what a file past its hard cap writes, once).
    ClearAll,
}

const DROP_KEY: u8 = 1;
const INVALIDATE: u8 = 2;
const CLEAR_NAMESPACE: u8 = 3;
const CLEAR_ALL: u8 = 4;

fn put_str16(out: &mut Vec<u8>, s: &[u8]) -> bool {
    let Ok(n) = u16::try_from(s.len()) else {
        return false;
    };
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(s);
    true
}

impl JournalRecord {
    /// The record's namespace (`None` for [`JournalRecord::ClearAll`]).
    pub fn namespace(&self) -> Option<&str> {
        match self {
            JournalRecord::DropKey { namespace, .. }
            | JournalRecord::Invalidate { namespace, .. }
            | JournalRecord::ClearNamespace { namespace } => Some(namespace),
            JournalRecord::ClearAll => None,
        }
    }

    /// Appends the framed record (length, checksum, body) to `out`. A field too long for its
    /// length prefix (never from a request the protocol accepts) becomes a clear of the
    /// namespace, or of everything: wider, so still safe.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut body = Vec::with_capacity(64);
        let ok = match self {
            JournalRecord::DropKey { namespace, key } => {
                body.push(DROP_KEY);
                let ok = put_str16(&mut body, namespace.as_bytes());
                match u32::try_from(key.len()) {
                    Ok(n) if ok && key.len() <= MAX_RECORD_BODY / 2 => {
                        body.extend_from_slice(&n.to_le_bytes());
                        body.extend_from_slice(key);
                        true
                    }
                    _ => false,
                }
            }
            JournalRecord::Invalidate {
                namespace,
                tags,
                exact,
            } => {
                body.push(INVALIDATE);
                let mut ok = put_str16(&mut body, namespace.as_bytes());
                body.push(u8::from(*exact));
                match u16::try_from(tags.len()) {
                    Ok(n) => body.extend_from_slice(&n.to_le_bytes()),
                    Err(_) => ok = false,
                }
                for t in tags {
                    ok &= put_str16(&mut body, t.as_bytes());
                }
                ok && body.len() <= MAX_RECORD_BODY
            }
            JournalRecord::ClearNamespace { namespace } => {
                body.push(CLEAR_NAMESPACE);
                put_str16(&mut body, namespace.as_bytes())
            }
            JournalRecord::ClearAll => {
                body.push(CLEAR_ALL);
                true
            }
        };
        if !ok {
            let wider = match self.namespace() {
                Some(ns) if ns.len() <= u16::MAX as usize => JournalRecord::ClearNamespace {
                    namespace: ns.to_string(),
                },
                _ => JournalRecord::ClearAll,
            };
            return wider.encode(out);
        }
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&xxh3_64(&body).to_le_bytes());
        out.extend_from_slice(&body);
    }

    /// The record of `body` (checksum already verified), `None` when it does not parse.
    fn decode_body(body: &[u8]) -> Option<JournalRecord> {
        let mut r = Cursor { b: body };
        let rec = match r.u8()? {
            DROP_KEY => {
                let namespace = r.string16()?;
                let n = r.u32()? as usize;
                let key = r.take(n)?.to_vec();
                JournalRecord::DropKey { namespace, key }
            }
            INVALIDATE => {
                let namespace = r.string16()?;
                let exact = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return None,
                };
                let n = r.u16()?;
                let tags = (0..n).map(|_| r.string16()).collect::<Option<Vec<_>>>()?;
                JournalRecord::Invalidate {
                    namespace,
                    tags,
                    exact,
                }
            }
            CLEAR_NAMESPACE => JournalRecord::ClearNamespace {
                namespace: r.string16()?,
            },
            CLEAR_ALL => JournalRecord::ClearAll,
            _ => return None,
        };
        r.b.is_empty().then_some(rec)
    }
}

struct Cursor<'a> {
    b: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    fn string16(&mut self) -> Option<String> {
        let n = self.u16()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// How a journal file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalEnd {
    /// Every byte was a whole record that verified.
    Clean,
    /// The last record is short: a write torn by a crash (its client never returned from it).
    Torn,
    /// A record failed its checks (length, checksum, body): it and everything after are
    /// ignored.
    Bad,
    /// The file does not start with [`FILE_MAGIC`] (another format, or torn before the magic
    /// was written).
    NotAJournal,
}

/// The records of a journal file's bytes that verify, in order, and how the file ended.
pub fn decode_file(bytes: &[u8]) -> (Vec<JournalRecord>, JournalEnd) {
    let mut records = Vec::new();
    let Some(mut rest) = bytes.strip_prefix(&FILE_MAGIC[..]) else {
        let end = if FILE_MAGIC.starts_with(bytes) {
            JournalEnd::Torn
        } else {
            JournalEnd::NotAJournal
        };
        return (records, end);
    };
    while !rest.is_empty() {
        if rest.len() < RECORD_HEADER {
            return (records, JournalEnd::Torn);
        }
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let sum = u64::from_le_bytes(rest[4..12].try_into().expect("8 bytes"));
        if len == 0 || len > MAX_RECORD_BODY {
            return (records, JournalEnd::Bad);
        }
        if rest.len() < RECORD_HEADER + len {
            return (records, JournalEnd::Torn);
        }
        let body = &rest[RECORD_HEADER..RECORD_HEADER + len];
        if xxh3_64(body) != sum {
            return (records, JournalEnd::Bad);
        }
        match JournalRecord::decode_body(body) {
            Some(r) => records.push(r),
            None => return (records, JournalEnd::Bad),
        }
        rest = &rest[RECORD_HEADER + len..];
    }
    (records, JournalEnd::Clean)
}

/// The journal directory and lock file that go with a daemon socket path
/// (`<dir>/<instance>.sock` → `<dir>/<instance>.journal`, `<dir>/<instance>.journal.lock`).
pub fn paths_for_socket(socket: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let name = socket
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".sock").unwrap_or(&name);
    let parent = socket.parent().unwrap_or(std::path::Path::new("."));
    (
        parent.join(format!("{stem}{JOURNAL_DIR_SUFFIX}")),
        parent.join(format!("{stem}{JOURNAL_LOCK_SUFFIX}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<JournalRecord> {
        vec![
            JournalRecord::DropKey {
                namespace: "app".into(),
                key: b"user:1".to_vec(),
            },
            JournalRecord::Invalidate {
                namespace: "app".into(),
                tags: vec!["posts/1".into(), "users".into()],
                exact: true,
            },
            JournalRecord::ClearNamespace {
                namespace: "other".into(),
            },
            JournalRecord::ClearAll,
        ]
    }

    fn file(records: &[JournalRecord]) -> Vec<u8> {
        let mut out = FILE_MAGIC.to_vec();
        for r in records {
            r.encode(&mut out);
        }
        out
    }

    #[test]
    fn records_round_trip() {
        let recs = sample();
        assert_eq!(decode_file(&file(&recs)), (recs, JournalEnd::Clean));
        assert_eq!(decode_file(b""), (vec![], JournalEnd::Torn));
        assert_eq!(decode_file(b"CKJR"), (vec![], JournalEnd::Torn));
        assert_eq!(
            decode_file(b"not a journal"),
            (vec![], JournalEnd::NotAJournal)
        );
    }

    #[test]
    fn every_truncation_keeps_exactly_the_whole_records_before_it() {
        let recs = sample();
        let bytes = file(&recs);
        // Where each record ends.
        let mut ends = vec![FILE_MAGIC.len()];
        for r in &recs {
            let mut one = Vec::new();
            r.encode(&mut one);
            ends.push(ends.last().unwrap() + one.len());
        }
        for cut in 0..=bytes.len() {
            let (got, end) = decode_file(&bytes[..cut]);
            let whole = ends.iter().filter(|&&e| e <= cut).count().saturating_sub(1);
            assert_eq!(got, recs[..whole], "cut at {cut}");
            let expect = if ends.contains(&cut) {
                JournalEnd::Clean
            } else {
                JournalEnd::Torn
            };
            assert_eq!(end, expect, "cut at {cut}");
        }
    }

    #[test]
    fn a_flipped_byte_ends_the_file_at_the_damaged_record_and_never_alters_one() {
        let recs = sample();
        let bytes = file(&recs);
        for i in FILE_MAGIC.len()..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut b = bytes.clone();
                b[i] ^= bit;
                let (got, end) = decode_file(&b);
                // Whatever came back is a prefix of what was written, byte for byte.
                assert_eq!(got[..], recs[..got.len()], "flip at {i}");
                assert!(got.len() < recs.len(), "flip at {i} went unnoticed");
                assert_ne!(end, JournalEnd::Clean, "flip at {i}");
            }
        }
    }

    #[test]
    fn fields_too_long_for_their_prefix_widen_to_a_clear() {
        let mut out = Vec::new();
        JournalRecord::Invalidate {
            namespace: "app".into(),
            tags: vec!["t".repeat(70_000)],
            exact: false,
        }
        .encode(&mut out);
        let mut f = FILE_MAGIC.to_vec();
        f.extend_from_slice(&out);
        assert_eq!(
            decode_file(&f).0,
            vec![JournalRecord::ClearNamespace {
                namespace: "app".into()
            }]
        );
    }

    #[test]
    fn journal_paths_follow_the_socket_name() {
        let (d, l) = paths_for_socket(std::path::Path::new("/run/cachekit/default.sock"));
        assert_eq!(d, std::path::Path::new("/run/cachekit/default.journal"));
        assert_eq!(
            l,
            std::path::Path::new("/run/cachekit/default.journal.lock")
        );
    }
}
