//! The wire protocol between cachekit clients and the daemon `cachekitd`, spoken over a Unix
//! stream socket: a pure, I/O-free frame codec ([`encode_request`], [`encode_reply`],
//! [`decode_frame`]) plus small blocking helpers ([`read_frame`], [`write_request`], ...).
//!
//! <!-- protocol:begin: copied into docs/ARCHITECTURE.md, see proto/tests/architecture_doc.rs -->
//!
//! # Conversation
//!
//! The client opens the socket and sends HELLO; the daemon checks the peer's credentials
//! (SO_PEERCRED) and answers HELLO_OK, with the segment file descriptors attached to that frame
//! as SCM_RIGHTS ancillary data, or ERROR. After that the client sends requests, each with a
//! request id of its choosing, and the daemon answers every request with exactly one reply
//! carrying the same id. Clients number requests from 1: **request id 0** is reserved for
//! connection-level ERRORs that answer no particular request (for example a frame whose header
//! could not be read), after which the daemon closes the connection.
//!
//! | request | replies |
//! |---|---|
//! | HELLO | HELLO_OK, ERROR |
//! | SET, INVALIDATE, CLEAR, LEASE_RELEASE | OK, ERROR |
//! | DELETE | DELETED, ERROR |
//! | FETCH, TAKE | FETCH_HIT, FETCH_MISS, ERROR |
//! | STATS | STATS_REPLY, ERROR |
//! | PING | PONG, ERROR |
//! | SET_IF, LEASE_FILL | STORED, ERROR |
//! | LEASE | FETCH_HIT, LEASE_GRANTED, LEASE_BUSY, ERROR |
//! | INCR | COUNTER, ERROR |
//! | TOUCH | FOUND, ERROR |
//! | SCAN | SCAN_PAGE, ERROR |
//! | DELETE_MATCHING | DELETED_MANY, ERROR |
//! | NAMESPACES | NAMESPACE_LIST, ERROR |
//! | VERIFY | VERIFY_REPORT, ERROR |
//! | METRICS | METRICS_TEXT, ERROR |
//! | SET_MANY, DELETE_MANY | BATCH_RESULTS, ERROR |
//!
//! SET, DELETE, INVALIDATE, CLEAR, SET_IF, INCR, TAKE, TOUCH, DELETE_MATCHING, SET_MANY,
//! DELETE_MANY and the three LEASE requests change the cache: they need the writer permission, and so does VERIFY with
//! `repair`. Each is applied atomically by the daemon's single
//! writer, so SET_IF and INCR from any number of processes never lose an update.
//!
//! **Errors and framing.** An invalid header (bad magic, unsupported version, unknown kind,
//! length over `max_frame_bytes`) leaves the receiver unable to find the next frame: it closes the
//! connection (a daemon first sends ERROR with request id 0). An invalid body inside a valid
//! header (a field over its limit, bad UTF-8, a truncated or over-long body) leaves the stream at
//! a frame boundary: the daemon answers ERROR with the frame's request id and goes on.
//!
//! **Versions.** The header layout, and the HELLO, HELLO_OK and ERROR bodies, are frozen for all
//! versions (HELLO_OK grew one trailing byte, `flags`, before any release: bit 0 says the daemon
//! has a second tier). A client sends HELLO in a version-1 header, offering `min_version..=max_version`;
//! the daemon picks the highest version both speak and answers HELLO_OK in a version-1 header
//! (or ERROR `UNSUPPORTED_VERSION` if there is none). Every later frame carries the negotiated
//! version. This build speaks only version [`PROTOCOL_VERSION`] = 1.
//!
//! # Frame
//!
//! Every frame is a 12-byte header followed by `body_len` bytes of body. All integers are
//! little-endian.
//!
//! | offset | size | field | value |
//! |---:|---:|---|---|
//! | 0 | 4 | `body_len` | u32: length of the body after the header (the frame is `12 + body_len` bytes, at most `max_frame_bytes`) |
//! | 4 | 2 | `magic` | `"CK"`: bytes 0x43 0x4B ([`MAGIC`] = 0x4B43 as a u16) |
//! | 6 | 1 | `version` | u8: protocol version of the body layout, [`PROTOCOL_VERSION`] = 1 |
//! | 7 | 1 | `kind` | u8: message kind, requests `0x01..=0x7F`, replies `0x80..=0xFF` (table below) |
//! | 8 | 4 | `request_id` | u32: chosen by the client, echoed by the reply; 0 = connection-level |
//! | 12 | `body_len` | body | per kind (tables below) |
//!
//! The decoder checks, as soon as the 12 header bytes are there and before reading the body:
//! magic, then version, then kind, then `12 + body_len <= max_frame_bytes`.
//!
//! # Message kinds
//!
//! | kind | name | direction | body |
//! |---:|---|---|---|
//! | 0x01 | HELLO | client → daemon | see below |
//! | 0x02 | SET | client → daemon | see below |
//! | 0x03 | DELETE | client → daemon | see below |
//! | 0x04 | INVALIDATE | client → daemon | see below |
//! | 0x05 | CLEAR | client → daemon | see below |
//! | 0x06 | FETCH | client → daemon | see below |
//! | 0x07 | STATS | client → daemon | empty |
//! | 0x08 | PING | client → daemon | empty |
//! | 0x09 | SET_IF | client → daemon | see below |
//! | 0x0A | INCR | client → daemon | see below |
//! | 0x0B | TAKE | client → daemon | see below |
//! | 0x0C | TOUCH | client → daemon | see below |
//! | 0x0D | SCAN | client → daemon | see below |
//! | 0x0E | DELETE_MATCHING | client → daemon | see below |
//! | 0x0F | NAMESPACES | client → daemon | empty |
//! | 0x10 | LEASE | client → daemon | see below |
//! | 0x11 | LEASE_FILL | client → daemon | see below |
//! | 0x12 | LEASE_RELEASE | client → daemon | see below |
//! | 0x13 | VERIFY | client → daemon | see below |
//! | 0x14 | SET_MANY | client → daemon | see below |
//! | 0x15 | DELETE_MANY | client → daemon | see below |
//! | 0x20 | METRICS | client → daemon | empty |
//! | 0x81 | HELLO_OK | daemon → client | see below (+ SCM_RIGHTS fds) |
//! | 0x82 | OK | daemon → client | empty |
//! | 0x83 | DELETED | daemon → client | see below |
//! | 0x84 | FETCH_HIT | daemon → client | see below |
//! | 0x85 | FETCH_MISS | daemon → client | empty |
//! | 0x86 | STATS_REPLY | daemon → client | see below |
//! | 0x87 | PONG | daemon → client | see below |
//! | 0x88 | STORED | daemon → client | see below |
//! | 0x89 | COUNTER | daemon → client | see below |
//! | 0x8A | FOUND | daemon → client | see below |
//! | 0x8B | SCAN_PAGE | daemon → client | see below |
//! | 0x8C | DELETED_MANY | daemon → client | see below |
//! | 0x8D | NAMESPACE_LIST | daemon → client | see below |
//! | 0x8E | LEASE_GRANTED | daemon → client | see below |
//! | 0x8F | LEASE_BUSY | daemon → client | empty |
//! | 0x90 | VERIFY_REPORT | daemon → client | see below |
//! | 0x91 | BATCH_RESULTS | daemon → client | see below |
//! | 0xA0 | METRICS_TEXT | daemon → client | see below |
//! | 0xFF | ERROR | daemon → client | see below |
//!
//! Any other kind byte is an error ([`ProtoError::UnknownKind`]).
//!
//! # Field encodings
//!
//! A body is its fields in the order listed, with no padding and no alignment; it must be used
//! up exactly (leftover bytes are [`ProtoError::TrailingBytes`]).
//!
//! | type | encoding | size |
//! |---|---|---|
//! | `u8`, `u16`, `u32`, `u64` | little-endian | 1, 2, 4, 8 |
//! | `bool` | u8, 0 = false, 1 = true; anything else is an error | 1 |
//! | `opt_u64` | u8 presence (0 = none, 1 = some; anything else is an error), then the u64 only if 1 | 1 or 9 |
//! | `bytes` | u32 length, then that many bytes | 4 + len |
//! | `str` | like `bytes`, and the bytes must be valid UTF-8 | 4 + len |
//! | `list<T>` | u16 count, then that many `T` | 2 + items |
//!
//! Every length and count is checked against its limit right after it is read, before the
//! decoder looks further or allocates. Keys and values are `bytes`; namespaces, tags and names are
//! `str`.
//!
//! # Request bodies
//!
//! **HELLO** (0x01) — 10 + name bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `min_version` | u8 | oldest version the client speaks |
//! | `max_version` | u8 | newest version the client speaks |
//! | `client_pid` | u32 | informational; the daemon trusts SO_PEERCRED |
//! | `client_name` | str | informational, ≤ [`MAX_CLIENT_NAME_BYTES`] = 255 |
//!
//! **SET** (0x02) — 23 (31 with a TTL) + namespace + key + value + Σ(4 + tag) bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `namespace` | str | ≤ `max_namespace_bytes` |
//! | `key` | bytes | ≤ `max_key_bytes` |
//! | `ttl_ms` | opt_u64 | time to live; none = never expires |
//! | `grace_ms` | u64 | stale-while-revalidate window after expiry |
//! | `tags` | `list<str>` | ≤ `max_tags` tag paths of ≤ `max_tag_bytes` each (see Tags below) |
//! | `value` | bytes | ≤ `max_value_bytes`; opaque (an encoded envelope) |
//!
//! **DELETE** (0x03), **FETCH** (0x06), **TAKE** (0x0B) — 8 + namespace + key bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `namespace` | str | ≤ `max_namespace_bytes` |
//! | `key` | bytes | ≤ `max_key_bytes` |
//!
//! **INVALIDATE** (0x04) — 7 + namespace + Σ(4 + tag) bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `namespace` | str | ≤ `max_namespace_bytes` |
//! | `tags` | `list<str>` | ≤ `max_tags` tag paths of ≤ `max_tag_bytes` each (see Tags below) |
//! | `exact` | bool | 0: each tag and every tag below it; 1: exactly these paths |
//!
//! **CLEAR** (0x05) — 4 + namespace bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `namespace` | str | ≤ `max_namespace_bytes` |
//!
//! **STATS** (0x07), **PING** (0x08), **NAMESPACES** (0x0F), **METRICS** (0x20) — empty body.
//! (METRICS and METRICS_TEXT are numbered apart from the others, 0x20 and 0xA0, so that
//! requests added meanwhile in sequence do not collide with them.)
//!
//! **SET_IF** (0x09) — 32 (40 with a TTL) + namespace + key + value + Σ(4 + tag) bytes
//!
//! The fields of SET, then:
//!
//! | field | type | notes |
//! |---|---|---|
//! | `condition` | u8 | 0 add: store only if the key has no fresh entry; 1 replace: only if it has one; 2 cas: only if its fresh entry's version is `version` |
//! | `version` | u64 | with condition 2: the `version` of a hit (FETCH_HIT, or the segment's entry); else 0 (anything else is refused) |
//!
//! An entry past its expiry (stale, within grace) or invalidated counts as absent.
//!
//! **INCR** (0x0A) — 18 to 34 + namespace + key bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `namespace` | str | ≤ `max_namespace_bytes` |
//! | `key` | bytes | ≤ `max_key_bytes` |
//! | `delta` | u64 | an i64 (two's complement) to add; negative subtracts |
//! | `initial` | opt_u64 | an i64: with no fresh entry, the counter is created as `initial + delta`; none = answer COUNTER with `present` 0 and store nothing |
//! | `ttl_ms` | opt_u64 | time to live of a counter this request creates; an existing one keeps its expiry and tags |
//!
//! A counter is an envelope whose payload is the ASCII decimal of an i64 (flag
//! `INTEGER`, see the envelope). A value that is not one is refused with INVALID_ARGUMENT, and
//! so is a result that overflows an i64; neither changes the value.
//!
//! **TOUCH** (0x0C) — 9 (17 with a TTL) + namespace + key bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `namespace` | str | ≤ `max_namespace_bytes` |
//! | `key` | bytes | ≤ `max_key_bytes` |
//! | `ttl_ms` | opt_u64 | the new time to live, from now; none = never expires (persist). The grace period keeps its length |
//!
//! **SCAN** (0x0D), **DELETE_MATCHING** (0x0E) — 25 + namespace + pattern + tag bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `namespace` | str | ≤ `max_namespace_bytes` |
//! | `cursor` | u64 | 0 to start; then the `cursor` of the previous reply |
//! | `pattern` | bytes | a glob over key bytes (Redis `SCAN MATCH` syntax: `*`, `?`, `[a-z]`, `[^a]`, `\` escapes), ≤ [`MAX_PATTERN_BYTES`] = 8192; empty = every key |
//! | `tag` | str | empty = any; else only entries with this tag or (unless `exact`) a tag below it |
//! | `exact` | bool | with a tag: exactly that tag path |
//! | `count` | u32 | SCAN: at most this many items per page, 1 to [`MAX_SCAN_PAGE`] = 1000 (0 = 100); DELETE_MATCHING: 0 |
//!
//! Both list and delete what this host's table holds. A page walks a bounded slice of the
//! table's index, so one request never holds the writer for long; a page may come back with
//! fewer items than `count`, even none, before the cursor reaches 0. An entry that stays in the
//! table for the whole scan is returned exactly once; one written or deleted during it may or
//! may not be. The tag filter works on the table's tag counters: an entry whose tag shares a
//! counter with the filter's (1 chance in the counter count per tag) is selected too.
//!
//! **LEASE** (0x10) — 17 + namespace + key bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `namespace` | str | ≤ `max_namespace_bytes` |
//! | `key` | bytes | ≤ `max_key_bytes` |
//! | `wait_ms` | u32 | how long to wait for another holder's fill; 0 = do not wait |
//! | `lease_ms` | u32 | how long the lease may be held before it passes to a waiter |
//! | `flags` | u8 | bit 0 `LEASE_GLOBAL`: also take the lease in Redis (one host of all computes); bit 1 `LEASE_REFRESH`: a refresh of a stale value (grant even though a stale value is there; never wait); others refused |
//!
//! Compute-once. A fresh value in the table (or, with Redis, in Redis) is answered as
//! FETCH_HIT. Otherwise the first caller gets LEASE_GRANTED with a token: it computes the value
//! and sends LEASE_FILL (or LEASE_RELEASE when its computation failed). Every other caller, from
//! any process, waits up to `wait_ms` and gets FETCH_HIT as soon as the fill lands, or
//! LEASE_BUSY. A lease is released when its holder's connection closes (the process died) or
//! after `lease_ms`; a waiter then gets LEASE_GRANTED in its turn.
//!
//! **LEASE_FILL** (0x11) — 31 (39 with a TTL) + namespace + key + value + Σ(4 + tag) bytes
//!
//! `token` u64, then the fields of SET. The value is stored only if the token still holds
//! the lease and nothing changed the key since the lease was granted; it is written with the
//! lease's grant time as its creation time, so an invalidation of one of its tags made while
//! it was being computed makes it invalid at once. STORED says whether it was stored; the
//! waiters get it either way or, when it was not stored, compete for a new lease.
//!
//! **LEASE_RELEASE** (0x12) — 16 + namespace + key bytes
//!
//! `namespace` str, `key` bytes, `token` u64. Nothing is stored; one waiter gets the lease.
//!
//! **SET_MANY** (0x14) — 17 (25 with a TTL) + namespace + Σ(4 + tag) + Σ(8 + key + value) bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `namespace` | str | ≤ `max_namespace_bytes` |
//! | `ttl_ms` | opt_u64 | time to live of every item; none = never expires |
//! | `grace_ms` | u64 | stale-while-revalidate window after expiry |
//! | `tags` | `list<str>` | tags of every item, as SET's |
//! | `items` | `list<(bytes, bytes)>` | ≤ [`MAX_BATCH_ITEMS`] = 1000 pairs of key (≤ `max_key_bytes`) and value (≤ `max_value_bytes`) |
//!
//! **DELETE_MANY** (0x15) — 6 + namespace + Σ(4 + key) bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `namespace` | str | ≤ `max_namespace_bytes` |
//! | `keys` | `list<bytes>` | ≤ [`MAX_BATCH_ITEMS`] = 1000 keys of ≤ `max_key_bytes` |
//!
//! Many keys in one request: one round trip, and the daemon applies every item within one
//! acquisition of its table writer, so no other write lands between two items of the batch
//! (a reader still looks keys up one at a time: it may see some items of a batch being
//! applied and not yet others). With a Redis tier each item goes through the write path of
//! SET or DELETE first (write-through or queued, one item after the other). BATCH_RESULTS
//! answers with one result per item, in order, so an item the table or Redis refuses does
//! not lose the others. The whole request is refused (ERROR) only when it cannot be decoded:
//! more than 1000 items, a frame over `max_frame_bytes`, or one field over its limit
//! (the client libraries check each item first and send only those that pass, answering
//! the others themselves). A longer batch, or one whose frame would pass `max_frame_bytes`,
//! is split by the client libraries into several requests, each applied within one writer
//! turn of its own, in order.
//!
//! # Reply bodies
//!
//! **HELLO_OK** (0x81) — 61 bytes, fixed
//!
//! | body offset | field | type | notes |
//! |---:|---|---|---|
//! | 0 | `version` | u8 | negotiated protocol version |
//! | 1 | `daemon_epoch` | u64 | bumped on every daemon start |
//! | 9 | `layout_version` | u32 | layout version of the shared segment |
//! | 13 | `segment_size` | u64 | bytes of the read-only table segment |
//! | 21 | `client_area_size` | u64 | bytes of the client-writable area |
//! | 29 | `client_slot` | u32 | the number of this client process's counters file, shared by its connections and kept until it exits (`u32::MAX`: none sent, all taken) |
//! | 33 | `heartbeat_timeout_ms` | u32 | heartbeat age after which the segment must not be trusted |
//! | 37 | `fd_count` | u8 | file descriptors attached by SCM_RIGHTS: table segment, client area, then (3 when `client_slot` names one) the counters file made for this client process alone: it counts its hits and misses there for the host-wide figures |
//! | 38 | `max_frame_bytes` | u32 | the daemon's [`Limits`] |
//! | 42 | `max_key_bytes` | u32 | |
//! | 46 | `max_namespace_bytes` | u32 | |
//! | 50 | `max_value_bytes` | u32 | |
//! | 54 | `max_tags` | u16 | |
//! | 56 | `max_tag_bytes` | u32 | |
//! | 60 | `flags` | u8 | bit 0 ([`HELLO_FLAG_SECOND_TIER`]): the daemon has a second tier (Redis), so a key missing from the segment may be there; without it a client answers such a miss from the segment alone. Bit 1 ([`HELLO_FLAG_BATCH_WRITES`]): the daemon takes SET_MANY and DELETE_MANY; without it a client sends single SETs and DELETEs. Other bits reserved (0) |
//!
//! The codec only describes the frame; the descriptors travel as SCM_RIGHTS ancillary data sent
//! with the frame's bytes (`sendmsg`). A client must receive this frame with `recvmsg`, not with
//! [`read_frame`] (plain `read` discards the descriptors), and then decode the bytes with
//! [`decode_frame`].
//!
//! **OK** (0x82), **FETCH_MISS** (0x85) — empty body.
//!
//! **DELETED** (0x83) — 1 byte
//!
//! | field | type | notes |
//! |---|---|---|
//! | `existed` | bool | whether the key was present |
//!
//! **FETCH_HIT** (0x84) — 23 to 39 + value bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `created_ms` | u64 | Unix ms when the entry was written |
//! | `version` | u64 | the table entry's version, for SET_IF's cas; 0 when the value is not in the table (a fill that raced a write) |
//! | `expires_ms` | opt_u64 | Unix ms when it stops being fresh; none = never |
//! | `grace_until_ms` | opt_u64 | Unix ms when it stops being servable stale; none = no grace |
//! | `stale` | bool | past expiry, within grace: serve it and refresh it |
//! | `value` | bytes | ≤ `max_value_bytes` |
//!
//! **STATS_REPLY** (0x86) — 2 + Σ(12 + name) bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `counters` | `list<(str, u64)>` | ≤ [`MAX_STATS`] = 1024 pairs of name (≤ [`MAX_STAT_NAME_BYTES`] = 255) and value |
//!
//! **PONG** (0x87) — 16 bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `epoch` | u64 | the daemon epoch |
//! | `heartbeat_ms` | u64 | Unix ms of the heartbeat the daemon last published |
//!
//! **STORED** (0x88) — 9 bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `stored` | bool | whether the condition held and the value was stored |
//! | `version` | u64 | the new entry's version when stored; else 0 |
//!
//! **COUNTER** (0x89) — 17 bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `present` | bool | 0: no fresh entry and no `initial`; nothing stored |
//! | `value` | u64 | the i64 counter after the delta; 0 when not present |
//! | `version` | u64 | the new entry's version; 0 when not present |
//!
//! **FOUND** (0x8A) — 1 byte
//!
//! | field | type | notes |
//! |---|---|---|
//! | `found` | bool | whether the key had a fresh entry (which now has the new time to live) |
//!
//! **SCAN_PAGE** (0x8B) — 10 + Σ item bytes (each 26 + key, and 8 more per time present)
//!
//! | field | type | notes |
//! |---|---|---|
//! | `cursor` | u64 | where the next page starts; 0 = the scan is complete |
//! | `items` | `list<item>` | ≤ [`MAX_SCAN_PAGE`] = 1000 items (fewer when the frame would pass `max_frame_bytes`) |
//!
//! An item: `key` bytes, `value_len` u32 (bytes stored), `created_ms` u64, `expires_ms`
//! opt_u64, `grace_until_ms` opt_u64, `version` u64.
//!
//! **DELETED_MANY** (0x8C) — 16 bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `cursor` | u64 | where the next page starts; 0 = done |
//! | `deleted` | u64 | entries this page deleted |
//!
//! **NAMESPACE_LIST** (0x8D) — 2 + Σ(20 + namespace) bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `namespaces` | `list<(str, u64, u64)>` | ≤ [`MAX_NAMESPACE_LIST`] = 10000 lines of namespace, entries and bytes (headers, keys, tag references, values) held by the table, largest first |
//!
//! **LEASE_GRANTED** (0x8E) — 8 bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `token` | u64 | names the lease in LEASE_FILL and LEASE_RELEASE |
//!
//! **LEASE_BUSY** (0x8F) — empty body.
//!
//! **VERIFY** (0x13) — 17 bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `cursor` | u64 | where the walk starts: 0, then the previous page's `next` |
//! | `max_slots` | u64 | about how many index slots to visit, in whole buckets (0 = the daemon's default) |
//! | `repair` | u8 | 1: drop the damaged entries found (needs the writer permission) |
//!
//! **VERIFY_REPORT** (0x90) — 28 + Σ(12 + name) + Σ(20 + reason + namespace + key) bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `next` | u64 | where the next page starts; 0 = the walk is done |
//! | `examined` | u64 | index slots in use visited |
//! | `repaired` | u64 | damaged entries dropped (with `repair`) |
//! | `counts` | `list<(str, u64)>` | ≤ [`MAX_STATS`] entries that failed, by reason: damage (`bad_location`, `unwritten`, `misplaced`, `check_failed`, `duplicate`) and, apart, `expired` and `invalidated` |
//! | `sample` | `list<(u64, str, str, bytes)>` | ≤ [`MAX_VERIFY_SAMPLE`] = 16 damaged entries: slot, reason, namespace and key (empty when unreadable) |
//!
//! **BATCH_RESULTS** (0x91) — 2 + Σ(7 + message) bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `results` | `list<(u16, bool, str)>` | one per item of the request, in order: `code` (0 = applied, else an ERROR code below), `existed` (DELETE_MANY: the key was present; else 0) and `message` (empty when applied; what is wrong and what to do, ≤ [`MAX_BATCH_MESSAGE_BYTES`] = 255) |
//!
//! **METRICS_TEXT** (0xA0) — 4 + text bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `text` | str | the daemon's metrics in the OpenMetrics text format, ending with `# EOF`; ≤ `max_frame_bytes` |
//!
//! **ERROR** (0xFF) — 6 + message bytes
//!
//! | field | type | notes |
//! |---|---|---|
//! | `code` | u16 | [`ErrorCode`], table below |
//! | `message` | str | for people: what is wrong and what to do; ≤ [`MAX_ERROR_MESSAGE_BYTES`] = 4096 |
//!
//! | code | name | meaning |
//! |---:|---|---|
//! | 1 | BAD_FRAME | the frame could not be decoded |
//! | 2 | UNSUPPORTED_VERSION | no common protocol version |
//! | 3 | TOO_LARGE | a frame, field or list is over a limit; the message names it |
//! | 4 | NOT_PERMITTED | the peer's credentials do not allow the request |
//! | 5 | UNAVAILABLE | cannot serve now (Redis down for a write, shutting down); retry later |
//! | 6 | INVALID_ARGUMENT | well-formed, but an argument is refused |
//! | 7 | INTERNAL | unexpected failure inside the daemon |
//! | 8 | UNEXPECTED_MESSAGE | a request before HELLO, a second HELLO, or a reply sent to the daemon |
//!
//! Codes this build does not know decode as [`ErrorCode::Unknown`]; 0 is never assigned.
//!
//! # Tags
//!
//! A tag is a path of 1 to [`cachekit_shm::MAX_TAG_DEPTH`] = 8 non-empty segments joined by `/`
//! (`posts/123/comments`), at most [`cachekit_shm::MAX_TAG_BYTES`] = 1024 bytes: the table's
//! grammar, [`cachekit_shm::validate_tag`]. The decoder refuses a SET or INVALIDATE with a tag
//! that breaks it ([`ProtoError::InvalidTag`], answered with INVALID_ARGUMENT; too long is
//! TOO_LARGE), so the daemon never starts a write the table would refuse.
//!
//! # Limits
//!
//! The decoder enforces a [`Limits`] (defaults: key 4096 bytes, namespace 127, value 1 MiB,
//! 8 tags of 1024 bytes, frame 1 MiB + 64 KiB) plus the fixed protocol limits above. A length
//! prefix over `max_frame_bytes` is rejected from the header alone; every field length and count
//! is checked before anything is allocated, so no input makes the decoder allocate more than a
//! small multiple of the bytes it actually received. [`Request::validate`] and [`Reply::validate`] run the same checks on the
//! sending side, so a sender learns "value is 3145728 bytes, over max_value_bytes = 1048576"
//! before the bytes leave.
//!
//! <!-- protocol:end -->
//!
//! # Example
//!
//! ```
//! use cachekit_proto::{decode_frame, encode_request, Limits, Message, Request};
//!
//! let limits = Limits::DEFAULT;
//! let fetch = Request::Fetch { namespace: "app".into(), key: b"user:1".to_vec() };
//! fetch.validate(&limits)?; // the error names the limit, before anything is sent
//! let mut wire = Vec::new();
//! encode_request(&fetch, 1, &mut wire)?;
//!
//! // The receiver decodes incrementally: `None` until the whole frame is there.
//! assert_eq!(decode_frame(&wire[..5], &limits)?, None);
//! let (frame, consumed) = decode_frame(&wire, &limits)?.expect("complete");
//! assert_eq!((frame.request_id, consumed), (1, wire.len()));
//! assert_eq!(frame.message, Message::Request(fetch));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod batch;
pub mod duration;
mod error;
pub mod fdpass;
mod frame;
pub mod glob;
mod header;
mod io;
pub mod journal;
mod limits;
mod manage;
pub mod paths;
mod reply;
mod request;
mod verify;
mod wire;

pub use batch::{
    set_many_item_len, DeleteMany, ItemResult, SetMany, MAX_BATCH_ITEMS, MAX_BATCH_MESSAGE_BYTES,
};
pub use error::{EncodeError, Field, ProtoError};
pub use frame::{
    decode_body, decode_frame, encode_frame, encode_reply, encode_request, Frame, Message,
};
pub use header::{
    decode_header, Header, Kind, HEADER_LEN, MAGIC, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
pub use io::{
    read_frame, read_reply, read_request, write_frame, write_reply, write_request, RecvError,
    SendError,
};
pub use limits::{
    Limits, ENVELOPE_HEADROOM, MAX_CLIENT_NAME_BYTES, MAX_ERROR_MESSAGE_BYTES, MAX_NAMESPACE_LIST,
    MAX_PATTERN_BYTES, MAX_SCAN_PAGE, MAX_STATS, MAX_STAT_NAME_BYTES,
};
pub use manage::{
    scan_item_len, Condition, Incr, Lease, LeaseFill, NamespaceInfo, ScanItem, ScanRequest,
    Selection, SetIf, LEASE_GLOBAL, LEASE_REFRESH,
};
pub use reply::{
    ErrorCode, FetchHit, HelloOk, Reply, HELLO_FLAG_BATCH_WRITES, HELLO_FLAG_SECOND_TIER,
};
pub use request::{validate_namespace, Hello, Request, Set};
pub use verify::{VerifyBad, VerifyReport, VerifyRequest, MAX_VERIFY_SAMPLE};
