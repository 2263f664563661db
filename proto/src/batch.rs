//! SET_MANY, DELETE_MANY and their reply BATCH_RESULTS: many keys of one namespace in one
//! request, applied by the daemon under one acquisition of the table's writer lock.

use crate::error::{EncodeError, Field, ProtoError};
use crate::limits::Limits;
use crate::reply::ErrorCode;
use crate::request::{self, check_namespace, check_tags, put_str, put_tags};
use crate::wire::{self, Cursor, WIRE_MAX_LEN};

/// Most items (keys) in one SET_MANY or DELETE_MANY, and results in one BATCH_RESULTS. Fixed by
/// the protocol: it bounds how long one request holds the daemon's writer (about 1 µs an item)
/// and keeps the largest BATCH_RESULTS (262,014 bytes) under the STATS_REPLY bound, so
/// [`Limits::largest_frame`] is unchanged. Clients split a longer batch into several requests.
pub const MAX_BATCH_ITEMS: usize = 1000;
/// Longest `message` of one BATCH_RESULTS item, in bytes. Fixed by the protocol; the daemon
/// cuts longer messages at a character boundary.
pub const MAX_BATCH_MESSAGE_BYTES: usize = 255;

/// The body of SET_MANY: values for many keys of one namespace, with the same time to live,
/// grace period and tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SetMany {
    /// The keys' namespace.
    pub namespace: String,
    /// Time to live in milliseconds of every item; `None` = never expires.
    pub ttl_ms: Option<u64>,
    /// How long after expiry the items may still be served stale, in milliseconds.
    pub grace_ms: u64,
    /// Tag paths every item belongs to (the grammar of [`cachekit_shm::validate_tag`]).
    pub tags: Vec<String>,
    /// `(key, value)` pairs, at most [`MAX_BATCH_ITEMS`]; values are opaque (encoded envelopes).
    pub items: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The body of DELETE_MANY: keys of one namespace to remove.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeleteMany {
    /// The keys' namespace.
    pub namespace: String,
    /// The keys, at most [`MAX_BATCH_ITEMS`].
    pub keys: Vec<Vec<u8>>,
}

/// What happened to one item of a SET_MANY or DELETE_MANY (BATCH_RESULTS).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItemResult {
    /// `None`: applied. Otherwise why not, as an ERROR reply would say it.
    pub error: Option<ErrorCode>,
    /// DELETE_MANY: whether the key was present; SET_MANY: `false`.
    pub existed: bool,
    /// With an error: what is wrong and what to do, at most [`MAX_BATCH_MESSAGE_BYTES`]; else
    /// empty.
    pub message: String,
}

impl ItemResult {
    /// An applied item.
    pub const fn done(existed: bool) -> ItemResult {
        ItemResult {
            error: None,
            existed,
            message: String::new(),
        }
    }

    /// A refused item; `message` is cut at a character boundary to fit
    /// [`MAX_BATCH_MESSAGE_BYTES`].
    pub fn failed(code: ErrorCode, message: impl Into<String>) -> ItemResult {
        let mut message = message.into();
        if message.len() > MAX_BATCH_MESSAGE_BYTES {
            let mut end = MAX_BATCH_MESSAGE_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        ItemResult {
            error: Some(code),
            existed: false,
            message,
        }
    }
}

pub(crate) fn check_set_many(s: &SetMany, limits: &Limits) -> Result<(), ProtoError> {
    check_namespace(&s.namespace, limits)?;
    check_tags(&s.tags, limits)?;
    wire::check_count(Field::BatchItems, s.items.len(), MAX_BATCH_ITEMS)?;
    s.items.iter().try_for_each(|(key, value)| {
        wire::check_len(Field::Key, key.len(), limits.max_key_bytes)?;
        wire::check_len(Field::Value, value.len(), limits.max_value_bytes)
    })
}

pub(crate) fn check_delete_many(d: &DeleteMany, limits: &Limits) -> Result<(), ProtoError> {
    check_namespace(&d.namespace, limits)?;
    wire::check_count(Field::BatchItems, d.keys.len(), MAX_BATCH_ITEMS)?;
    d.keys
        .iter()
        .try_for_each(|key| wire::check_len(Field::Key, key.len(), limits.max_key_bytes))
}

pub(crate) fn check_results(results: &[ItemResult]) -> Result<(), ProtoError> {
    wire::check_count(Field::BatchItems, results.len(), MAX_BATCH_ITEMS)?;
    results.iter().try_for_each(|r| {
        wire::check_len(Field::ItemMessage, r.message.len(), MAX_BATCH_MESSAGE_BYTES)
    })
}

/// Bytes one SET_MANY item adds to the body: its key and value with their length prefixes.
pub fn set_many_item_len(key: usize, value: usize) -> u64 {
    wire::bytes_len(key) + wire::bytes_len(value)
}

pub(crate) fn set_many_len(s: &SetMany) -> u64 {
    use wire::{bytes_len, opt_u64_len, str_list_len};
    bytes_len(s.namespace.len())
        + opt_u64_len(s.ttl_ms)
        + 8
        + str_list_len(&s.tags)
        + 2
        + s.items
            .iter()
            .map(|(k, v)| set_many_item_len(k.len(), v.len()))
            .sum::<u64>()
}

pub(crate) fn delete_many_len(d: &DeleteMany) -> u64 {
    wire::bytes_len(d.namespace.len())
        + 2
        + d.keys.iter().map(|k| wire::bytes_len(k.len())).sum::<u64>()
}

pub(crate) fn results_len(results: &[ItemResult]) -> u64 {
    2 + results
        .iter()
        .map(|r| 2 + 1 + wire::bytes_len(r.message.len()))
        .sum::<u64>()
}

pub(crate) fn put_set_many(out: &mut Vec<u8>, s: &SetMany) -> Result<(), EncodeError> {
    put_str(out, Field::Namespace, &s.namespace, WIRE_MAX_LEN)?;
    wire::put_opt_u64(out, s.ttl_ms);
    wire::put_u64(out, s.grace_ms);
    put_tags(out, &s.tags)?;
    wire::put_count(out, Field::BatchItems, s.items.len(), MAX_BATCH_ITEMS)?;
    s.items.iter().try_for_each(|(key, value)| {
        wire::put_bytes(out, Field::Key, key, WIRE_MAX_LEN)?;
        wire::put_bytes(out, Field::Value, value, WIRE_MAX_LEN)
    })
}

pub(crate) fn put_delete_many(out: &mut Vec<u8>, d: &DeleteMany) -> Result<(), EncodeError> {
    put_str(out, Field::Namespace, &d.namespace, WIRE_MAX_LEN)?;
    wire::put_count(out, Field::BatchItems, d.keys.len(), MAX_BATCH_ITEMS)?;
    d.keys
        .iter()
        .try_for_each(|key| wire::put_bytes(out, Field::Key, key, WIRE_MAX_LEN))
}

pub(crate) fn put_results(out: &mut Vec<u8>, results: &[ItemResult]) -> Result<(), EncodeError> {
    wire::put_count(out, Field::BatchItems, results.len(), MAX_BATCH_ITEMS)?;
    results.iter().try_for_each(|r| {
        wire::put_u16(out, r.error.map_or(0, ErrorCode::as_u16));
        wire::put_flag(out, r.existed);
        put_str(out, Field::ItemMessage, &r.message, MAX_BATCH_MESSAGE_BYTES)
    })
}

pub(crate) fn decode_set_many(c: &mut Cursor<'_>, limits: &Limits) -> Result<SetMany, ProtoError> {
    let namespace = request::namespace(c, limits)?;
    let ttl_ms = c.opt_u64("ttl_ms")?;
    let grace_ms = c.u64("grace_ms")?;
    let tags = request::tags(c, limits)?;
    // Each item takes at least its two 4-byte length prefixes.
    let (count, capacity) = c.count(Field::BatchItems, MAX_BATCH_ITEMS, 8)?;
    let mut items = Vec::with_capacity(capacity);
    for _ in 0..count {
        let key = c.bytes(Field::Key, limits.max_key_bytes)?.to_vec();
        let value = c.bytes(Field::Value, limits.max_value_bytes)?.to_vec();
        items.push((key, value));
    }
    Ok(SetMany {
        namespace,
        ttl_ms,
        grace_ms,
        tags,
        items,
    })
}

pub(crate) fn decode_delete_many(
    c: &mut Cursor<'_>,
    limits: &Limits,
) -> Result<DeleteMany, ProtoError> {
    let namespace = request::namespace(c, limits)?;
    let (count, capacity) = c.count(Field::BatchItems, MAX_BATCH_ITEMS, 4)?;
    let mut keys = Vec::with_capacity(capacity);
    for _ in 0..count {
        keys.push(c.bytes(Field::Key, limits.max_key_bytes)?.to_vec());
    }
    Ok(DeleteMany { namespace, keys })
}

pub(crate) fn decode_results(c: &mut Cursor<'_>) -> Result<Vec<ItemResult>, ProtoError> {
    // Each result takes at least its code, flag and message length.
    let (count, capacity) = c.count(Field::BatchItems, MAX_BATCH_ITEMS, 7)?;
    let mut results = Vec::with_capacity(capacity);
    for _ in 0..count {
        let code = c.u16("code")?;
        let existed = c.flag("existed")?;
        let message = c
            .str(Field::ItemMessage, MAX_BATCH_MESSAGE_BYTES)?
            .to_owned();
        results.push(ItemResult {
            error: (code != 0).then(|| ErrorCode::from_u16(code)),
            existed,
            message,
        });
    }
    Ok(results)
}
