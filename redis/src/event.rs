//! Events of a namespace's stream (`ck:{ns}:inv`), one per write. Fields:
//!
//! | field | value | present |
//! |---|---|---|
//! | `s` | the namespace clock after the write (consecutive: 1, 2, 3, …) | always |
//! | `o` | origin: who wrote it (a daemon's or a direct client's random id) | always |
//! | `k` | the key (binary) | set, delete |
//! | `t` | a tag, repeated once per tag | invalidate |
//! | `e` | `1` exact, `0` hierarchical | invalidate |
//! | `c` | `1` | clear |
//!
//! Because every write increments the clock and appends exactly one event in the same
//! script, a follower that sees `s` jump by more than one knows entries were trimmed (or
//! Redis lost data) and that it cannot know what it missed.

use crate::error::StoreError;
use redis::Value;

/// What a stream entry asks other hosts to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `key` was set or deleted: drop the local copy.
    Key(Vec<u8>),
    /// Tags were invalidated.
    Tags {
        /// The tag paths.
        tags: Vec<String>,
        /// Exact (only these paths) or hierarchical (and everything below).
        exact: bool,
    },
    /// The namespace was cleared.
    Clear,
}

/// One stream entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Its stream ID (`ms-seq`).
    pub id: String,
    /// The namespace clock value it carries.
    pub seq: u64,
    /// Who wrote it.
    pub origin: Vec<u8>,
    /// What to do.
    pub kind: EventKind,
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    bytes(v).and_then(|b| String::from_utf8(b.to_vec()).ok())
}

fn bad(message: String) -> StoreError {
    StoreError::BadReply { message }
}

/// Parses one entry `[id, [field, value, ...]]`.
pub fn parse_entry(v: &Value) -> Result<Event, StoreError> {
    let Value::Array(parts) = v else {
        return Err(bad(format!("stream entry is not an array: {v:?}")));
    };
    let [id, fields] = parts.as_slice() else {
        return Err(bad("stream entry is not [id, fields]".into()));
    };
    let id = text(id).ok_or_else(|| bad("stream entry id is not text".into()))?;
    let fields: Vec<&Value> = match fields {
        Value::Array(f) => f.iter().collect(),
        Value::Map(m) => m.iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => return Err(bad(format!("stream entry {id} has no field list"))),
    };
    let (mut seq, mut origin, mut key, mut tags, mut exact, mut clear) =
        (None, Vec::new(), None, Vec::new(), false, false);
    for pair in fields.chunks(2) {
        let [f, val] = pair else {
            return Err(bad(format!("stream entry {id} has an odd field list")));
        };
        let val_bytes = bytes(val).ok_or_else(|| bad(format!("stream entry {id}: bad value")))?;
        match bytes(f) {
            Some(b"s") => {
                seq = std::str::from_utf8(val_bytes)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
            }
            Some(b"o") => origin = val_bytes.to_vec(),
            Some(b"k") => key = Some(val_bytes.to_vec()),
            Some(b"t") => tags.push(
                String::from_utf8(val_bytes.to_vec())
                    .map_err(|_| bad(format!("stream entry {id}: tag is not UTF-8")))?,
            ),
            Some(b"e") => exact = val_bytes == b"1",
            Some(b"c") => clear = true,
            _ => {} // fields of a newer writer: ignored
        }
    }
    let seq = seq.ok_or_else(|| bad(format!("stream entry {id} has no clock field 's'")))?;
    let kind = match (key, tags.is_empty(), clear) {
        (Some(k), true, false) => EventKind::Key(k),
        (None, false, false) => EventKind::Tags { tags, exact },
        (None, true, true) => EventKind::Clear,
        // Unknown shape: treat as a clear, the one action that is always safe.
        _ => EventKind::Clear,
    };
    Ok(Event {
        id,
        seq,
        origin,
        kind,
    })
}

/// Parses an XRANGE reply (an array of entries).
pub fn parse_entries(v: &Value) -> Result<Vec<Event>, StoreError> {
    match v {
        Value::Array(entries) => entries.iter().map(parse_entry).collect(),
        Value::Nil => Ok(Vec::new()),
        other => Err(bad(format!("XRANGE answered {other:?}"))),
    }
}

/// Where a follower stands in a namespace's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The last entry ID applied (`0-0` = before the first).
    pub id: String,
    /// The clock value of that entry (0 = none yet).
    pub seq: u64,
}

/// What a follower must do with the next event of a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Continuity {
    /// The next one in sequence: apply it.
    Next,
    /// Entries between were trimmed, or Redis lost its data (the clock went back): what was
    /// missed is unknown, so clear the namespace locally, then go on from this event.
    Gap,
}

impl Cursor {
    /// How `seq` relates to this cursor.
    pub fn continuity(&self, seq: u64) -> Continuity {
        // Entries are read strictly after the cursor's ID, so anything but the next number
        // is a gap: a jump forward means trimmed entries, a jump back means Redis restarted
        // empty (or the clock was reset) and numbers from scratch.
        if seq == self.seq + 1 {
            Continuity::Next
        } else {
            Continuity::Gap
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &[u8]) -> Value {
        Value::BulkString(s.to_vec())
    }

    #[test]
    fn parses_the_three_kinds() {
        let entry = |fields: &[&[u8]]| {
            Value::Array(vec![
                bulk(b"1-0"),
                Value::Array(fields.iter().map(|f| bulk(f)).collect()),
            ])
        };
        let k = parse_entry(&entry(&[b"s", b"7", b"o", b"A", b"k", b"\x00key"])).unwrap();
        assert_eq!(k.seq, 7);
        assert_eq!(k.origin, b"A");
        assert_eq!(k.kind, EventKind::Key(b"\x00key".to_vec()));
        let t = parse_entry(&entry(&[
            b"s", b"8", b"o", b"A", b"t", b"a/b", b"t", b"c", b"e", b"0",
        ]))
        .unwrap();
        assert_eq!(
            t.kind,
            EventKind::Tags {
                tags: vec!["a/b".into(), "c".into()],
                exact: false
            }
        );
        let c = parse_entry(&entry(&[b"s", b"9", b"o", b"A", b"c", b"1"])).unwrap();
        assert_eq!(c.kind, EventKind::Clear);
        assert!(parse_entry(&entry(&[b"o", b"A", b"c", b"1"])).is_err());
        assert!(parse_entry(&bulk(b"x")).is_err());
    }

    #[test]
    fn continuity() {
        let c = Cursor {
            id: "5-0".into(),
            seq: 5,
        };
        assert_eq!(c.continuity(6), Continuity::Next);
        assert_eq!(c.continuity(8), Continuity::Gap);
        assert_eq!(c.continuity(1), Continuity::Gap, "clock went back");
    }
}
