//! The record stored at `ck:{ns}:v:<key>`: a fixed header, the tags, then the value (the
//! client's envelope, opaque here). All integers little-endian.
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 2 | magic `"CR"` |
//! | 2 | 1 | version, 1 |
//! | 3 | 1 | flags, 0 (others refused) |
//! | 4 | 8 | stamp: the namespace clock when written (filled in by the set script) |
//! | 12 | 8 | created_ms |
//! | 20 | 8 | expires_ms (0 = never) |
//! | 28 | 8 | grace_until_ms (0 = never) |
//! | 36 | 2 | tag count n (≤ [`MAX_RECORD_TAGS`]) |
//! | 38 | … | n × (u16 length, tag bytes) |
//! | … | … | value |

use crate::error::StoreError;

/// `"CR"`.
pub const RECORD_MAGIC: [u8; 2] = *b"CR";
/// Version of the record layout.
pub const RECORD_VERSION: u8 = 1;
/// Bytes before the tags.
pub const RECORD_HEADER_BYTES: usize = 38;
/// Offset of the stamp (the set script writes it there).
pub const STAMP_OFFSET: usize = 4;
/// Most tags a record may carry (the table's own limit).
pub const MAX_RECORD_TAGS: usize = 8;

/// A value as stored in Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The namespace clock when it was written; 0 before the set script fills it in.
    pub stamp: u64,
    /// Unix ms when it was written.
    pub created_ms: u64,
    /// Unix ms when it stops being fresh; `None` = never.
    pub expires_ms: Option<u64>,
    /// Unix ms when it stops being servable; `None` = never.
    pub grace_until_ms: Option<u64>,
    /// Its tags.
    pub tags: Vec<String>,
    /// The value bytes (an envelope).
    pub value: Vec<u8>,
}

impl Record {
    /// A record written at `now` with a TTL (ms; `None` = never expires) and a grace period.
    pub fn new(
        now: u64,
        ttl_ms: Option<u64>,
        grace_ms: u64,
        tags: Vec<String>,
        value: Vec<u8>,
    ) -> Record {
        let expires_ms = ttl_ms.map(|t| now.saturating_add(t));
        Record {
            stamp: 0,
            created_ms: now,
            expires_ms,
            grace_until_ms: expires_ms.map(|e| e.saturating_add(grace_ms)),
            tags,
            value,
        }
    }

    /// The encoded record (the stamp as it is: the set script overwrites it).
    pub fn encode(&self) -> Vec<u8> {
        let tag_bytes: usize = self.tags.iter().map(|t| 2 + t.len()).sum();
        let mut out = Vec::with_capacity(RECORD_HEADER_BYTES + tag_bytes + self.value.len());
        out.extend_from_slice(&RECORD_MAGIC);
        out.push(RECORD_VERSION);
        out.push(0);
        out.extend_from_slice(&self.stamp.to_le_bytes());
        out.extend_from_slice(&self.created_ms.to_le_bytes());
        out.extend_from_slice(&self.expires_ms.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.grace_until_ms.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&(self.tags.len() as u16).to_le_bytes());
        for t in &self.tags {
            out.extend_from_slice(&(t.len() as u16).to_le_bytes());
            out.extend_from_slice(t.as_bytes());
        }
        out.extend_from_slice(&self.value);
        out
    }

    /// Decodes a record; every length is checked before use.
    pub fn decode(b: &[u8]) -> Result<Record, StoreError> {
        let bad = |why: &str| {
            StoreError::BadRecord {
            message: format!("{why}; the key was not written by cachekit (or by a newer one): delete it or use another namespace"),
        }
        };
        if b.len() < RECORD_HEADER_BYTES {
            return Err(bad(&format!(
                "record of {} bytes is shorter than its header",
                b.len()
            )));
        }
        if b[0..2] != RECORD_MAGIC {
            return Err(bad("record does not start with \"CR\""));
        }
        if b[2] != RECORD_VERSION || b[3] != 0 {
            return Err(bad(&format!(
                "record version {} flags {} unknown",
                b[2], b[3]
            )));
        }
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let opt = |v: u64| (v != 0).then_some(v);
        let n = u16::from_le_bytes([b[36], b[37]]) as usize;
        if n > MAX_RECORD_TAGS {
            return Err(bad(&format!(
                "record claims {n} tags, over {MAX_RECORD_TAGS}"
            )));
        }
        let mut pos = RECORD_HEADER_BYTES;
        let mut tags = Vec::with_capacity(n);
        for _ in 0..n {
            let len = b
                .get(pos..pos + 2)
                .map(|l| u16::from_le_bytes([l[0], l[1]]) as usize)
                .ok_or_else(|| bad("record truncated inside its tags"))?;
            let t = b
                .get(pos + 2..pos + 2 + len)
                .ok_or_else(|| bad("record truncated inside its tags"))?;
            let t = std::str::from_utf8(t).map_err(|_| bad("record tag is not UTF-8"))?;
            tags.push(t.to_owned());
            pos += 2 + len;
        }
        Ok(Record {
            stamp: u64_at(4),
            created_ms: u64_at(12),
            expires_ms: opt(u64_at(20)),
            grace_until_ms: opt(u64_at(28)),
            tags,
            value: b[pos..].to_vec(),
        })
    }

    /// Milliseconds Redis should keep the key for, at `now`: `None` = forever, `Some(0)` =
    /// already gone (write a delete instead).
    pub fn keep_ms(&self, now: u64) -> Option<u64> {
        self.grace_until_ms.map(|g| g.saturating_sub(now))
    }

    /// Whether it may still be served at `now` (fresh or within grace).
    pub fn alive_at(&self, now: u64) -> bool {
        self.grace_until_ms.is_none_or(|g| now < g)
    }

    /// Whether it is past `expires_ms` at `now` (serve it stale, refresh it).
    pub fn stale_at(&self, now: u64) -> bool {
        self.expires_ms.is_some_and(|e| now >= e)
    }
}

/// What the fetch script returned: the record, the highest clock value among the counters
/// it depends on (its tags' `p:`/`x:` keys and the namespace's `clear`), and the record's
/// bytes exactly as stored (what a commit compares, whether the record is valid or not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The record.
    pub record: Record,
    /// The latest invalidation that could cover it (0 = none).
    pub newest_invalidation: u64,
    /// The bytes of the key in Redis, as read (the stamp included).
    pub raw: Vec<u8>,
}

/// Why a fetched record was not served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// One of its tags (or its namespace) was invalidated after it was written.
    Invalidated,
    /// Past its grace deadline (Redis had not expired it yet).
    Expired,
}

impl Fetched {
    /// The record if it may be served at `now`: written after every invalidation that
    /// covers it, and not past its grace deadline.
    pub fn validate(self, now: u64) -> Result<Record, Rejected> {
        self.check(now)?;
        Ok(self.record)
    }

    /// [`validate`](Self::validate) without giving the record up.
    pub fn check(&self, now: u64) -> Result<(), Rejected> {
        if self.newest_invalidation >= self.record.stamp {
            return Err(Rejected::Invalidated);
        }
        if !self.record.alive_at(now) {
            return Err(Rejected::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            stamp: 42,
            ..Record::new(
                1_000,
                Some(500),
                100,
                vec!["a/b".into(), "c".into()],
                b"value".to_vec(),
            )
        }
    }

    #[test]
    fn round_trip() {
        let r = sample();
        let enc = r.encode();
        assert_eq!(&enc[..4], b"CR\x01\x00");
        assert_eq!(u64::from_le_bytes(enc[4..12].try_into().unwrap()), 42);
        assert_eq!(Record::decode(&enc).unwrap(), r);
        assert_eq!(r.expires_ms, Some(1_500));
        assert_eq!(r.grace_until_ms, Some(1_600));
    }

    #[test]
    fn hostile_records_are_errors() {
        let enc = sample().encode();
        for cut in 0..RECORD_HEADER_BYTES + 6 {
            assert!(Record::decode(&enc[..cut]).is_err(), "cut at {cut}");
        }
        let mut many = enc.clone();
        many[36] = 200;
        assert!(Record::decode(&many).is_err());
        let mut magic = enc;
        magic[0] = b'X';
        assert!(Record::decode(&magic).is_err());
    }

    #[test]
    fn validation() {
        let f = |inv| Fetched {
            record: sample(),
            newest_invalidation: inv,
            raw: sample().encode(),
        };
        assert!(f(41).validate(1_200).is_ok());
        assert_eq!(f(42).validate(1_200), Err(Rejected::Invalidated));
        assert_eq!(f(0).validate(1_600), Err(Rejected::Expired));
        assert_eq!(f(42).check(1_200), Err(Rejected::Invalidated));
        assert_eq!(f(0).check(1_600), Err(Rejected::Expired));
        let r = f(0).validate(1_550).unwrap();
        assert!(r.stale_at(1_550));
        assert_eq!(r.keep_ms(1_550), Some(50));
    }
}
