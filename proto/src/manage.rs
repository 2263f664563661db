//! The bodies of the atomic and management requests (SET_IF, INCR, TOUCH, SCAN,
//! DELETE_MATCHING) and of their replies' items (SCAN_PAGE, NAMESPACE_LIST).

use crate::error::{EncodeError, Field, ProtoError};
use crate::limits::{Limits, MAX_NAMESPACE_LIST, MAX_PATTERN_BYTES, MAX_SCAN_PAGE};
use crate::request::{self, Set};
use crate::wire::{self, Cursor, WIRE_MAX_LEN};

/// When a SET_IF stores its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// 0, add: only when the key has no fresh entry.
    Absent,
    /// 1, replace: only when the key has a fresh entry.
    Present,
    /// 2, cas: only when the key's fresh entry still has this version (the `version` of a hit).
    Version(u64),
}

impl Condition {
    fn code(self) -> u8 {
        match self {
            Condition::Absent => 0,
            Condition::Present => 1,
            Condition::Version(_) => 2,
        }
    }

    fn version(self) -> u64 {
        match self {
            Condition::Version(v) => v,
            Condition::Absent | Condition::Present => 0,
        }
    }
}

/// The body of SET_IF: a SET's fields, then the condition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SetIf {
    /// What to store, as in SET.
    pub set: Set,
    /// When to store it.
    pub condition: Condition,
}

/// The body of INCR.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Incr {
    /// The key's namespace.
    pub namespace: String,
    /// The key.
    pub key: Vec<u8>,
    /// What to add (negative to subtract).
    pub delta: i64,
    /// When the key has no fresh entry: the value before the delta (the counter is created with
    /// `initial + delta`); `None`: answer COUNTER with `present` false and store nothing.
    pub initial: Option<i64>,
    /// Time to live of a counter this request creates (an existing one keeps its own);
    /// `None` = never expires.
    pub ttl_ms: Option<u64>,
}

/// Which entries of a namespace a SCAN or DELETE_MATCHING selects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Selection {
    /// A glob over the key bytes (`*`, `?`, `[a-z]`, `[^a]`, `\` escapes, as Redis's `SCAN
    /// MATCH`); empty selects every key.
    pub pattern: Vec<u8>,
    /// Only entries carrying this tag (or, unless `exact`, a tag below it); empty = any.
    pub tag: String,
    /// With a tag: exactly that tag path, not the paths below it.
    pub exact: bool,
}

/// The body of SCAN and DELETE_MATCHING.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScanRequest {
    /// The namespace.
    pub namespace: String,
    /// Where to go on: 0 to start, then the cursor of the previous page's reply.
    pub cursor: u64,
    /// What to select.
    pub selection: Selection,
    /// At most this many items per page, 1 to [`MAX_SCAN_PAGE`] (DELETE_MATCHING: ignored, 0).
    pub count: u32,
}

/// One entry of a SCAN_PAGE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScanItem {
    /// The key.
    pub key: Vec<u8>,
    /// Bytes of the stored value (the envelope, as the daemon holds it).
    pub value_len: u32,
    /// When the entry was written, Unix ms.
    pub created_ms: u64,
    /// When it stops being fresh, Unix ms; `None` = never.
    pub expires_ms: Option<u64>,
    /// When it stops being servable stale, Unix ms; `None` = no grace.
    pub grace_until_ms: Option<u64>,
    /// The entry's version (as in a hit).
    pub version: u64,
}

/// One line of a NAMESPACE_LIST.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamespaceInfo {
    /// The namespace.
    pub namespace: String,
    /// Entries the table holds for it (fresh or within grace).
    pub entries: u64,
    /// Bytes of those entries in the table (headers, keys, tag references and values).
    pub bytes: u64,
}

pub(crate) fn set_if_len(s: &SetIf) -> u64 {
    request::set_len(&s.set) + 1 + 8
}

pub(crate) fn put_set_if(out: &mut Vec<u8>, s: &SetIf) -> Result<(), EncodeError> {
    request::put_set(out, &s.set)?;
    wire::put_u8(out, s.condition.code());
    wire::put_u64(out, s.condition.version());
    Ok(())
}

pub(crate) fn decode_set_if(c: &mut Cursor<'_>, limits: &Limits) -> Result<SetIf, ProtoError> {
    let set = request::decode_set_body(c, limits)?;
    let code = c.u8("condition")?;
    let version = c.u64("version")?;
    let condition = match code {
        // One encoding per request: only a cas carries a version.
        0 | 1 if version != 0 => {
            return Err(ProtoError::InvalidValue {
                field: "version",
                value: version,
            })
        }
        0 => Condition::Absent,
        1 => Condition::Present,
        2 => Condition::Version(version),
        other => {
            return Err(ProtoError::InvalidValue {
                field: "condition",
                value: u64::from(other),
            })
        }
    };
    Ok(SetIf { set, condition })
}

pub(crate) fn incr_len(i: &Incr) -> u64 {
    wire::bytes_len(i.namespace.len())
        + wire::bytes_len(i.key.len())
        + 8
        + wire::opt_u64_len(i.initial.map(|v| v as u64))
        + wire::opt_u64_len(i.ttl_ms)
}

pub(crate) fn put_incr(out: &mut Vec<u8>, i: &Incr) -> Result<(), EncodeError> {
    wire::put_bytes(out, Field::Namespace, i.namespace.as_bytes(), WIRE_MAX_LEN)?;
    wire::put_bytes(out, Field::Key, &i.key, WIRE_MAX_LEN)?;
    wire::put_u64(out, i.delta as u64);
    wire::put_opt_u64(out, i.initial.map(|v| v as u64));
    wire::put_opt_u64(out, i.ttl_ms);
    Ok(())
}

pub(crate) fn decode_incr(c: &mut Cursor<'_>, limits: &Limits) -> Result<Incr, ProtoError> {
    let (namespace, key) = request::namespace_and_key(c, limits)?;
    Ok(Incr {
        namespace,
        key,
        delta: c.u64("delta")? as i64,
        initial: c.opt_u64("initial")?.map(|v| v as i64),
        ttl_ms: c.opt_u64("ttl_ms")?,
    })
}

pub(crate) fn check_scan(s: &ScanRequest, limits: &Limits) -> Result<(), ProtoError> {
    request::validate_namespace(&s.namespace, limits)?;
    wire::check_len(Field::Pattern, s.selection.pattern.len(), MAX_PATTERN_BYTES)?;
    check_filter_tag(&s.selection.tag, limits)?;
    if s.count as usize > MAX_SCAN_PAGE {
        return Err(ProtoError::InvalidValue {
            field: "count",
            value: u64::from(s.count),
        });
    }
    Ok(())
}

/// The tag of a selection: empty (no filter), or a tag path of the table's grammar.
fn check_filter_tag(tag: &str, limits: &Limits) -> Result<(), ProtoError> {
    if tag.is_empty() {
        return Ok(());
    }
    wire::check_len(Field::Tag, tag.len(), limits.max_tag_bytes)?;
    request::check_tag_grammar(tag)
}

pub(crate) fn scan_len(s: &ScanRequest) -> u64 {
    wire::bytes_len(s.namespace.len())
        + 8
        + wire::bytes_len(s.selection.pattern.len())
        + wire::bytes_len(s.selection.tag.len())
        + 1
        + 4
}

pub(crate) fn put_scan(out: &mut Vec<u8>, s: &ScanRequest) -> Result<(), EncodeError> {
    wire::put_bytes(out, Field::Namespace, s.namespace.as_bytes(), WIRE_MAX_LEN)?;
    wire::put_u64(out, s.cursor);
    wire::put_bytes(out, Field::Pattern, &s.selection.pattern, MAX_PATTERN_BYTES)?;
    wire::put_bytes(out, Field::Tag, s.selection.tag.as_bytes(), WIRE_MAX_LEN)?;
    wire::put_flag(out, s.selection.exact);
    wire::put_u32(out, s.count);
    Ok(())
}

pub(crate) fn decode_scan(c: &mut Cursor<'_>, limits: &Limits) -> Result<ScanRequest, ProtoError> {
    let namespace = request::namespace(c, limits)?;
    let cursor = c.u64("cursor")?;
    let pattern = c.bytes(Field::Pattern, MAX_PATTERN_BYTES)?.to_vec();
    let tag = c.str(Field::Tag, limits.max_tag_bytes)?.to_owned();
    let exact = c.flag("exact")?;
    let count = c.u32("count")?;
    let s = ScanRequest {
        namespace,
        cursor,
        selection: Selection {
            pattern,
            tag,
            exact,
        },
        count,
    };
    check_scan(&s, limits)?;
    Ok(s)
}

/// Bytes of one SCAN_PAGE item on the wire.
pub fn scan_item_len(i: &ScanItem) -> u64 {
    wire::bytes_len(i.key.len())
        + 4
        + 8
        + wire::opt_u64_len(i.expires_ms)
        + wire::opt_u64_len(i.grace_until_ms)
        + 8
}

pub(crate) fn check_scan_page(items: &[ScanItem], limits: &Limits) -> Result<(), ProtoError> {
    wire::check_count(Field::Items, items.len(), MAX_SCAN_PAGE)?;
    items
        .iter()
        .try_for_each(|i| wire::check_len(Field::Key, i.key.len(), limits.max_key_bytes))
}

pub(crate) fn put_scan_page(
    out: &mut Vec<u8>,
    cursor: u64,
    items: &[ScanItem],
) -> Result<(), EncodeError> {
    wire::put_u64(out, cursor);
    wire::put_count(out, Field::Items, items.len(), MAX_SCAN_PAGE)?;
    for i in items {
        wire::put_bytes(out, Field::Key, &i.key, WIRE_MAX_LEN)?;
        wire::put_u32(out, i.value_len);
        wire::put_u64(out, i.created_ms);
        wire::put_opt_u64(out, i.expires_ms);
        wire::put_opt_u64(out, i.grace_until_ms);
        wire::put_u64(out, i.version);
    }
    Ok(())
}

pub(crate) fn decode_scan_page(
    c: &mut Cursor<'_>,
    limits: &Limits,
) -> Result<(u64, Vec<ScanItem>), ProtoError> {
    let cursor = c.u64("cursor")?;
    // Each item takes at least 4 + 4 + 8 + 1 + 1 + 8 bytes.
    let (count, capacity) = c.count(Field::Items, MAX_SCAN_PAGE, 26)?;
    let mut items = Vec::with_capacity(capacity);
    for _ in 0..count {
        items.push(ScanItem {
            key: c.bytes(Field::Key, limits.max_key_bytes)?.to_vec(),
            value_len: c.u32("value_len")?,
            created_ms: c.u64("created_ms")?,
            expires_ms: c.opt_u64("expires_ms")?,
            grace_until_ms: c.opt_u64("grace_until_ms")?,
            version: c.u64("version")?,
        });
    }
    Ok((cursor, items))
}

pub(crate) fn check_namespace_list(
    list: &[NamespaceInfo],
    limits: &Limits,
) -> Result<(), ProtoError> {
    wire::check_count(Field::Namespaces, list.len(), MAX_NAMESPACE_LIST)?;
    list.iter().try_for_each(|n| {
        wire::check_len(
            Field::Namespace,
            n.namespace.len(),
            limits.max_namespace_bytes,
        )
    })
}

pub(crate) fn namespace_list_len(list: &[NamespaceInfo]) -> u64 {
    2 + list
        .iter()
        .map(|n| wire::bytes_len(n.namespace.len()) + 16)
        .sum::<u64>()
}

pub(crate) fn put_namespace_list(
    out: &mut Vec<u8>,
    list: &[NamespaceInfo],
) -> Result<(), EncodeError> {
    wire::put_count(out, Field::Namespaces, list.len(), MAX_NAMESPACE_LIST)?;
    for n in list {
        wire::put_bytes(out, Field::Namespace, n.namespace.as_bytes(), WIRE_MAX_LEN)?;
        wire::put_u64(out, n.entries);
        wire::put_u64(out, n.bytes);
    }
    Ok(())
}

pub(crate) fn decode_namespace_list(
    c: &mut Cursor<'_>,
    limits: &Limits,
) -> Result<Vec<NamespaceInfo>, ProtoError> {
    // Each line takes at least 4 + 8 + 8 bytes.
    let (count, capacity) = c.count(Field::Namespaces, MAX_NAMESPACE_LIST, 20)?;
    let mut list = Vec::with_capacity(capacity);
    for _ in 0..count {
        list.push(NamespaceInfo {
            namespace: c
                .str(Field::Namespace, limits.max_namespace_bytes)?
                .to_owned(),
            entries: c.u64("entries")?,
            bytes: c.u64("bytes")?,
        });
    }
    Ok(list)
}

/// The body of LEASE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The key's namespace.
    pub namespace: String,
    /// The key.
    pub key: Vec<u8>,
    /// How long to wait, in milliseconds, for another holder's fill before answering
    /// LEASE_BUSY; 0 = do not wait.
    pub wait_ms: u32,
    /// How long the lease may be held, in milliseconds, before it passes to a waiter (the
    /// holder's fill is then refused). Released at once when the holder's connection closes.
    pub lease_ms: u32,
    /// [`LEASE_GLOBAL`], [`LEASE_REFRESH`].
    pub flags: u8,
}

/// LEASE flag: take the lease in Redis too, so one host of all computes (when the daemon has a
/// Redis tier; without one, or with Redis unreachable, the host's lease alone).
pub const LEASE_GLOBAL: u8 = 1 << 0;
/// LEASE flag: a refresh of a stale value: grant the lease even though a value (stale, within
/// grace) is in the table; never wait.
pub const LEASE_REFRESH: u8 = 1 << 1;
const LEASE_FLAGS: u8 = LEASE_GLOBAL | LEASE_REFRESH;

/// The body of LEASE_FILL: the lease's token, then a SET's fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseFill {
    /// The token of LEASE_GRANTED.
    pub token: u64,
    /// What to store, as in SET (its namespace and key are the lease's).
    pub set: Set,
}

pub(crate) fn lease_len(l: &Lease) -> u64 {
    wire::bytes_len(l.namespace.len()) + wire::bytes_len(l.key.len()) + 4 + 4 + 1
}

pub(crate) fn put_lease(out: &mut Vec<u8>, l: &Lease) -> Result<(), EncodeError> {
    wire::put_bytes(out, Field::Namespace, l.namespace.as_bytes(), WIRE_MAX_LEN)?;
    wire::put_bytes(out, Field::Key, &l.key, WIRE_MAX_LEN)?;
    wire::put_u32(out, l.wait_ms);
    wire::put_u32(out, l.lease_ms);
    wire::put_u8(out, l.flags);
    Ok(())
}

pub(crate) fn decode_lease(c: &mut Cursor<'_>, limits: &Limits) -> Result<Lease, ProtoError> {
    let (namespace, key) = request::namespace_and_key(c, limits)?;
    let wait_ms = c.u32("wait_ms")?;
    let lease_ms = c.u32("lease_ms")?;
    let flags = c.u8("flags")?;
    if flags & !LEASE_FLAGS != 0 {
        return Err(ProtoError::InvalidValue {
            field: "flags",
            value: u64::from(flags),
        });
    }
    Ok(Lease {
        namespace,
        key,
        wait_ms,
        lease_ms,
        flags,
    })
}

pub(crate) fn lease_fill_len(f: &LeaseFill) -> u64 {
    8 + request::set_len(&f.set)
}

pub(crate) fn put_lease_fill(out: &mut Vec<u8>, f: &LeaseFill) -> Result<(), EncodeError> {
    wire::put_u64(out, f.token);
    request::put_set(out, &f.set)
}

pub(crate) fn decode_lease_fill(
    c: &mut Cursor<'_>,
    limits: &Limits,
) -> Result<LeaseFill, ProtoError> {
    let token = c.u64("token")?;
    let set = request::decode_set_body(c, limits)?;
    Ok(LeaseFill { token, set })
}
