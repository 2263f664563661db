/*
 * cachekit.h - the C API of cachekit, a per-host cache shared by every process on a machine.
 *
 * A daemon, cachekitd, owns a hash table in shared memory. A cachekit_client maps it read-only
 * and serves hits from it with no syscall and no lock; misses and writes go to the daemon over
 * a Unix socket. Link with `pkg-config --cflags --libs cachekit` (add --static for
 * libcachekit.a).
 *
 * CONVENTIONS (they hold for every function below unless its comment says otherwise)
 *
 * Results. Functions that can fail return a cachekit_result: CACHEKIT_OK (0) on success.
 *   CACHEKIT_MISS is an answer, not an error ("no such key"), and so are the lease answers
 *   CACHEKIT_LEASE_GRANTED ("you compute") and CACHEKIT_LEASE_BUSY. Every other code is an
 *   error.
 *   cachekit_result_describe(code) gives a static sentence for a code (no allocation).
 *   A fresh hit and a stale hit (past its TTL, within its grace period) both return
 *   CACHEKIT_OK; cachekit_value_info.stale tells them apart: serve a stale value and refresh
 *   it. No string comparison is ever needed.
 *
 * Last error. A call that returns an error code also records a message for people, e.g.
 *   "cachekitd is not running at /run/cachekit/default.sock; start it with `cachekitd`".
 *   cachekit_last_error_message(buf, len, &needed) copies it. It is per thread and stays until
 *   the next failing call on that thread (successful calls do not clear it).
 *
 * Outputs. Out-parameters are written only on success (CACHEKIT_OK, or as stated for
 *   CACHEKIT_MISS). The one exception: on CACHEKIT_BUFFER_TOO_SMALL the size output receives
 *   the size needed, and nothing else is written.
 *
 * Arguments. A required pointer that is NULL gives CACHEKIT_NULL_ARGUMENT. Parameters
 *   documented as optional may be NULL. A (pointer, length) pair may have a NULL pointer when
 *   its length is 0. Keys and values are bytes (any content); namespaces, tags and names are
 *   NUL-terminated UTF-8 (anything else gives CACHEKIT_INVALID_ARGUMENT). The library reads
 *   arguments only during the call and keeps no pointer to them.
 *
 * Buffers and ownership.
 *   - Caller-owned buffers (cachekit_get, cachekit_get_local, cachekit_get_and_delete,
 *     cachekit_scan_next, cachekit_namespaces_next, cachekit_last_error_message)
 *     follow (buf, len, &needed): when len is too small the function returns
 *     CACHEKIT_BUFFER_TOO_SMALL and writes the size needed; buf = NULL with len = 0 is a pure
 *     size query.
 *   - Library-owned memory is freed by the matching function: cachekit_get_alloc ->
 *     cachekit_buf_free, cachekit_get_many -> cachekit_batch_free, cachekit_stats_fetch ->
 *     cachekit_stats_free, cachekit_scan_open -> cachekit_scan_free, cachekit_namespaces_open
 *     -> cachekit_namespaces_free, cachekit_client_open -> cachekit_client_close,
 *     cachekit_query -> cachekit_buf_free. A cachekit_lease (cachekit_lease_acquire,
 *     cachekit_refresh_lease) is consumed by cachekit_lease_fill or cachekit_lease_release,
 *     whatever they return. Every free/close
 *     function accepts NULL as a no-op. Never pass these pointers to free().
 *   - Pointers into a batch or a stats snapshot stay valid until that object is freed.
 *   - Strings returned as `const char *` by cachekit_version and cachekit_result_describe are
 *     static: never free them.
 *
 * Threads. A cachekit_client is thread-safe: any number of threads may call any function that
 *   takes a `const cachekit_client *` on the same handle at once (open one per process and
 *   share it). A batch or stats snapshot may be read from many threads; a scan or namespace
 *   list is used by one thread at a time. cachekit_client_close
 *   must not race with other uses of the handle. A handle does not survive fork(): the child
 *   opens its own.
 *
 * Panics. Every function catches internal panics (bugs) at the boundary: they return
 *   CACHEKIT_PANIC (free/close functions return normally), never unwind into C.
 *
 * Never blocking. cachekit_get_local reads the shared segment only (no socket, no Redis, no
 *   reconnect, no lock): an event loop calls it inline and sends only its misses to
 *   cachekit_get on a thread that may wait.
 *
 * Value sizes. Values may be as large as the daemon's --max-value-bytes: a client adopts the
 *   limit the daemon announces when it connects (before that, 1 MiB).
 *
 * Daemon down. Gets never fail because cachekitd is unreachable: they return CACHEKIT_MISS.
 *   Writes return CACHEKIT_UNAVAILABLE (not running) or CACHEKIT_TIMEOUT (stuck), unless
 *   cachekit_options.redis_url is set: then both go to Redis directly until the daemon is
 *   back. A client reconnects, and re-attaches a restarted daemon's segment, by itself.
 *
 * Times to live. In cachekit_set, cachekit_set_options and cachekit_incr a ttl_ms of 0 means
 *   "never expires"; cachekit_touch takes a signed ttl_ms where a negative one means "never
 *   expires" and 0 "expires at once".
 *
 * Versions. CACHEKIT_VERSION_MAJOR/MINOR/PATCH are the header's version; cachekit_version()
 *   is the loaded library's. The shared library's SONAME is libcachekit.so.0.
 */


#ifndef CACHEKIT_H
#define CACHEKIT_H

/* Generated with cbindgen:0.29.4 */

/* Generated by cbindgen from ffi/src (config ffi/cbindgen.toml). Do not edit: change the Rust
 * source and run scripts/test-c --update-header. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/**
 * `cachekit_invalidate` flag: invalidate only entries tagged with exactly these paths, not the
 * ones below them.
 */
#define CACHEKIT_INVALIDATE_EXACT 1

/**
 * `cachekit_options.flags`: connect on first use instead of in `cachekit_client_open`. Open
 * then succeeds while the daemon is down; until it comes up, gets miss and writes return
 * `CACHEKIT_UNAVAILABLE`.
 */
#define CACHEKIT_OPEN_LAZY 1

/**
 * `cachekit_options.flags`: `redis_url` lists the seed nodes of a Redis Cluster.
 */
#define CACHEKIT_OPEN_REDIS_CLUSTER 2

/**
 * `cachekit_options.flags`: do not fall back to Redis directly while the daemon is down, even
 * with a `redis_url` (gets then miss and writes fail, as without one).
 */
#define CACHEKIT_OPEN_NO_REDIS_FALLBACK 4

/**
 * `cachekit_options.encryption_flags`: send a keyed hash (HMAC-SHA256, 64 hex digits) of
 * each key instead of the key, so neither the daemon nor Redis sees key names.
 */
#define CACHEKIT_ENCRYPT_HASH_KEYS 1

/**
 * `cachekit_options.encryption_flags`: refuse plaintext values on read
 * (`CACHEKIT_PLAINTEXT`) instead of returning them; counters excepted.
 */
#define CACHEKIT_ENCRYPT_REQUIRE 2

/**
 * `cachekit_options.encryption_flags`: no memo of opened values: every encrypted hit is
 * authenticated and decrypted, and no plaintext is kept in this process after a get returns
 * (see `encryption_memo_bytes`).
 */
#define CACHEKIT_ENCRYPT_NO_MEMO 4

/**
 * Major version of the header (the `libcachekit.so.0` ABI while it is 0).
 */
#define CACHEKIT_VERSION_MAJOR 0

/**
 * Minor version of the header.
 */
#define CACHEKIT_VERSION_MINOR 1

/**
 * Patch version of the header.
 */
#define CACHEKIT_VERSION_PATCH 0

/**
 * `cachekit_set_options.flags`: the entry is written already expired (a time to live of 0;
 * `ttl_ms` must then be 0). With `cachekit_cas` this is a compare-and-delete: the entry goes
 * only if it is still the version the caller read (how a lock is released).
 */
#define CACHEKIT_SET_EXPIRE_NOW 1

/**
 * `cachekit_set_options.flags`: the value is an int64 in ASCII decimal (`-42`, `0`; no `+`,
 * no spaces, no leading zeros), stored as a counter as `cachekit_set_i64` stores it: readers
 * see `cachekit_value_info.integer`, and `cachekit_incr` adds to it. Anything else is
 * `CACHEKIT_INVALID_ARGUMENT`.
 */
#define CACHEKIT_SET_INTEGER 2

/**
 * `cachekit_lease_options.flags`: also take the lease in Redis, so that one host of all those
 * sharing the daemon's Redis computes (the daemon falls back to the host's lease when Redis
 * is unreachable).
 */
#define CACHEKIT_LEASE_GLOBAL 1

/**
 * `cachekit_lease_options.flags`, `cachekit_query` only: when the wait for another caller's
 * value times out, return `CACHEKIT_LEASE_BUSY` instead of computing the value anyway (the
 * default: the wait only bounds the delay).
 */
#define CACHEKIT_LEASE_ERROR_ON_TIMEOUT 2

/**
 * What a cachekit function returned. `CACHEKIT_OK` is 0; `CACHEKIT_MISS`,
 * `CACHEKIT_LEASE_GRANTED` and `CACHEKIT_LEASE_BUSY` are answers, not errors; every other code
 * is an error and leaves a message for `cachekit_last_error_message`.
 *
 * Codes 4 to 12 and 15 to 17 are the Rust client's `Error` variants, one code per variant. New codes are
 * only ever added at the end; treat an unknown code as an error.
 */
enum cachekit_result
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  /**
   * Success. A get returned a value (fresh, or stale within grace: see
   * `cachekit_value_info.stale`).
   */
  CACHEKIT_OK = 0,
  /**
   * The key is not in the cache (get, batch entry), was not there (delete), or no such
   * counter (stats lookup). Nothing was written to the outputs.
   */
  CACHEKIT_MISS = 1,
  /**
   * The caller's buffer is too small; the needed size was written to the size output (and
   * nothing else was).
   */
  CACHEKIT_BUFFER_TOO_SMALL = 2,
  /**
   * A required pointer argument was NULL.
   */
  CACHEKIT_NULL_ARGUMENT = 3,
  /**
   * An argument is refused: bad UTF-8, an empty or malformed namespace or tag, unknown flags,
   * a wrong `struct_size`, an index out of range, an unknown instance name.
   */
  CACHEKIT_INVALID_ARGUMENT = 4,
  /**
   * A key, namespace, value, tag or tag list is over a limit; the message names the limit
   * and the setting that raises it.
   */
  CACHEKIT_TOO_LARGE = 5,
  /**
   * cachekitd cannot be reached (not running, socket missing, connection lost) or cannot
   * serve now. Gets never return it: they miss instead.
   */
  CACHEKIT_UNAVAILABLE = 6,
  /**
   * cachekitd did not answer in time (stuck or overloaded).
   */
  CACHEKIT_TIMEOUT = 7,
  /**
   * The socket's permissions or the daemon refuse this process.
   */
  CACHEKIT_NOT_PERMITTED = 8,
  /**
   * cachekitd answered something this library does not understand (version mismatch).
   */
  CACHEKIT_PROTOCOL = 9,
  /**
   * cachekitd reported an internal failure.
   */
  CACHEKIT_DAEMON = 10,
  /**
   * An operating-system error that is none of the above.
   */
  CACHEKIT_IO = 11,
  /**
   * A stored value is not a valid envelope (damaged, or written by something else).
   */
  CACHEKIT_CORRUPT_VALUE = 12,
  /**
   * A bug: a Rust panic was caught at the library boundary. The handle may still be used.
   */
  CACHEKIT_PANIC = 13,
  /**
   * An error this build of the library has no code for (a newer client error kind).
   */
  CACHEKIT_OTHER_ERROR = 14,
  /**
   * An encrypted value did not decrypt: a wrong master key or tenant, a tampered byte, or a
   * value copied from another key or namespace. Never garbage, never a miss.
   */
  CACHEKIT_DECRYPT = 15,
  /**
   * The value is encrypted and this handle has no key: set `cachekit_options.encryption_key`
   * (or `CACHEKIT_MASTER_KEY` / `CACHEKIT_MASTER_KEY_FILE`).
   */
  CACHEKIT_ENCRYPTED = 16,
  /**
   * The value is plaintext and this handle requires encryption
   * (`CACHEKIT_ENCRYPT_REQUIRE`).
   */
  CACHEKIT_PLAINTEXT = 17,
  /**
   * An answer, not an error (no message): the caller now holds the key's fill lease
   * (`cachekit_lease_acquire`, `cachekit_refresh_lease` wrote it to `*out`): compute the
   * value, then `cachekit_lease_fill` it, or `cachekit_lease_release` it.
   */
  CACHEKIT_LEASE_GRANTED = 18,
  /**
   * An answer, not an error (no message): another caller holds the key's lease and no value
   * came within the wait (`cachekit_lease_acquire`, `cachekit_query` with
   * `CACHEKIT_LEASE_ERROR_ON_TIMEOUT`), or someone else is refreshing it
   * (`cachekit_refresh_lease`). Nothing was written.
   */
  CACHEKIT_LEASE_BUSY = 19,
  /**
   * The compute callback of `cachekit_query` returned non-zero; nothing was cached (the
   * callback keeps its own details in its `user_data`).
   */
  CACHEKIT_COMPUTE_FAILED = 20,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum cachekit_result cachekit_result;
#else
typedef uint32_t cachekit_result;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Where a hit came from.
 */
enum cachekit_source
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  /**
   * Read straight from the shared segment: no syscall, no socket.
   */
  CACHEKIT_SOURCE_SEGMENT = 0,
  /**
   * Answered by the daemon over the socket (the segment did not have it, or its heartbeat
   * was stale).
   */
  CACHEKIT_SOURCE_DAEMON = 1,
  /**
   * Computed by this very call (a query that held the key's fill lease).
   */
  CACHEKIT_SOURCE_COMPUTED = 2,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum cachekit_source cachekit_source;
#else
typedef uint32_t cachekit_source;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * The values of several keys, in the order asked. Opaque; read with `cachekit_batch_len` and
 * `cachekit_batch_get`, free with `cachekit_batch_free`. Immutable: any number of threads may
 * read one batch at once.
 */
typedef struct cachekit_batch cachekit_batch;

/**
 * A connection to a cachekitd: an attached shared segment, a small socket pool and a
 * namespace. Opaque. Thread-safe: every function that takes a `const cachekit_client *` may
 * be called from any number of threads at once on the same handle.
 */
typedef struct cachekit_client cachekit_client;

/**
 * Where the compute callback of `cachekit_query` puts its value
 * (`cachekit_compute_out_set`). Opaque; valid only during the callback.
 */
typedef struct cachekit_compute_out cachekit_compute_out;

/**
 * A key's fill lease, held by this process: compute the value, then end it with
 * `cachekit_lease_fill` (the value reaches every waiter) or `cachekit_lease_release` (the
 * computation failed; one waiter takes the lease over). Opaque.
 *
 * It holds a daemon connection of its own, so a process that dies (even by `kill -9`)
 * releases its leases at once. Used by one thread at a time; it may move between threads.
 * It does not survive `fork()`, and does not depend on its client handle staying open.
 */
typedef struct cachekit_lease cachekit_lease;

/**
 * The namespaces of the host's table, largest first, as one request answered them. Opaque;
 * made by `cachekit_namespaces_open`, read with `cachekit_namespaces_next`, freed with
 * `cachekit_namespaces_free`. One thread at a time.
 */
typedef struct cachekit_namespaces cachekit_namespaces;

/**
 * A scan in progress. Opaque; made by `cachekit_scan_open`, read with `cachekit_scan_next`,
 * freed with `cachekit_scan_free`. It holds its own reference to the client's connections:
 * the handle it was opened on may be closed first. One thread at a time.
 */
typedef struct cachekit_scan cachekit_scan;

/**
 * A snapshot of counters. Opaque; read with `cachekit_stats_len`, `cachekit_stats_entry`
 * and `cachekit_stats_lookup`, free with `cachekit_stats_free`. Immutable: any number of
 * threads may read one snapshot at once.
 */
typedef struct cachekit_stats cachekit_stats;

/**
 * Metadata of a hit. Times are Unix milliseconds, the same in every process.
 *
 * A **stale** hit (past `expires_ms`, within the grace period) returns `CACHEKIT_OK` like a
 * fresh one, with `stale` set: serve it, and refresh it (stale-while-revalidate). A miss is
 * `CACHEKIT_MISS`. So `rc == CACHEKIT_OK` means "use this value", and `info.stale` tells
 * whether to refresh it.
 */
typedef struct cachekit_value_info {
  /**
   * When the entry was written.
   */
  uint64_t created_ms;
  /**
   * When it stops being fresh; 0 = never.
   */
  uint64_t expires_ms;
  /**
   * When it stops being servable at all (equal to `expires_ms` when there is no grace
   * period); 0 = never.
   */
  uint64_t grace_until_ms;
  /**
   * Where the hit came from (a `cachekit_source`).
   */
  cachekit_source source;
  /**
   * Past `expires_ms`, within grace: serve it and refresh it.
   */
  bool stale;
  /**
   * The value is an integer counter (written by `cachekit_incr` or `cachekit_set_i64`): its
   * bytes are the ASCII decimal of an int64 (`-42`, `0`, `9223372036854775807`).
   */
  bool integer;
  /**
   * The entry's version on this host, for `cachekit_cas`: it changes with every write of
   * the key. 0 = unknown (a value answered from Redis that the daemon did not keep); a
   * `cachekit_cas` with version 0 never stores.
   */
  uint64_t version;
} cachekit_value_info;

/**
 * Options of `cachekit_client_open`. Zero-initialise it, set `struct_size`, then set what you
 * need: **every zero or NULL field means "the default"**.
 *
 * ```c
 * cachekit_options opts = {0};
 * opts.struct_size = sizeof opts;
 * opts.ns = "sessions";
 * ```
 *
 * Strings are NUL-terminated UTF-8, read during the call only. A NULL `socket_path`,
 * `instance` or `ns` is taken from the environment (`CACHEKIT_SOCKET`, `CACHEKIT_INSTANCE`,
 * `CACHEKIT_NAMESPACE`, `CACHEKIT_REDIS_URL`; `CACHEKIT_DIR` is honoured when the socket is
 * looked up), else the default. Later versions append fields; old programs keep working
 * because their `struct_size` is smaller, and a zero field means what it always did. The
 * struct has no padding on 64-bit targets (128 bytes; 72 before the encryption fields, 120
 * before `encryption_memo_bytes`).
 *
 * Encryption (AES-256-GCM in this process; the daemon and Redis see ciphertext only):
 *
 * ```c
 * opts.encryption_key = key32;       // 32 bytes
 * opts.encryption_key_len = 32;
 * opts.previous_keys = old_keys;     // count x 32 bytes, back to back
 * opts.previous_keys_count = 1;
 * opts.tenant = "acme";              // NULL = the namespace
 * opts.encryption_flags = CACHEKIT_ENCRYPT_REQUIRE;
 * opts.encryption_memo_bytes = 4 << 20; // 0 = 1 MiB; CACHEKIT_ENCRYPT_NO_MEMO turns it off
 * ```
 *
 * With no `encryption_key`, `CACHEKIT_MASTER_KEY` or `CACHEKIT_MASTER_KEY_FILE` from the
 * environment turn encryption on (see the Rust client's `ClientOptions::from_env`).
 */
typedef struct cachekit_options {
  /**
   * Must be `sizeof(cachekit_options)` as the program sees it.
   */
  size_t struct_size;
  /**
   * `CACHEKIT_OPEN_*` bits; 0 for none. Unknown bits are refused.
   */
  uint32_t flags;
  /**
   * Most connections open at once (misses and writes only; hits use none). 0 = 4.
   */
  uint32_t pool_size;
  /**
   * The daemon's socket. Overrides `instance`. NULL = look up `instance`'s socket.
   */
  const char *socket_path;
  /**
   * The daemon instance whose socket is looked up in `/run/cachekit`,
   * `$XDG_RUNTIME_DIR/cachekit`, `/tmp/cachekit-<uid>`. NULL = "default".
   */
  const char *instance;
  /**
   * The namespace of the handle (1 to 127 bytes). NULL = "default".
   */
  const char *ns;
  /**
   * Name sent to the daemon for its logs. NULL = the program's name.
   */
  const char *client_name;
  /**
   * Timeout to connect and handshake, ms. 0 = 1000.
   */
  uint32_t connect_timeout_ms;
  /**
   * Timeout of one request to the daemon, ms. 0 = 5000.
   */
  uint32_t request_timeout_ms;
  /**
   * Redis for the direct fallback: while the daemon is down, gets and writes go to Redis
   * directly (same records and invalidation log as the daemons).
   * `redis://[user:password@]host:port[/db]`, `rediss://...`, `unix:///path`; with
   * `CACHEKIT_OPEN_REDIS_CLUSTER`, seed URLs separated by commas. NULL = none.
   */
  const char *redis_url;
  /**
   * Timeout of each call of the direct fallback, ms. 0 = 250.
   */
  uint32_t redis_timeout_ms;
  /**
   * Must be 0 (room for a later field).
   */
  uint32_t reserved;
  /**
   * The 32-byte master key values are encrypted under (through a key derived per tenant).
   * NULL = no encryption (unless the environment sets a key). Read during the call only.
   */
  const uint8_t *encryption_key;
  /**
   * Length of `encryption_key`: 32 when it is set, else 0.
   */
  size_t encryption_key_len;
  /**
   * Older master keys still accepted for reading (key rotation): `previous_keys_count`
   * keys of 32 bytes, back to back. NULL when the count is 0.
   */
  const uint8_t *previous_keys;
  /**
   * How many keys `previous_keys` holds.
   */
  size_t previous_keys_count;
  /**
   * The tenant whose key is derived (NUL-terminated UTF-8). NULL = each handle's namespace.
   */
  const char *tenant;
  /**
   * `CACHEKIT_ENCRYPT_*` bits; 0 for none. Unknown bits are refused.
   */
  uint32_t encryption_flags;
  /**
   * Must be 0 (room for a later field).
   */
  uint32_t reserved2;
  /**
   * Budget in bytes of the memo of opened values: the plaintext of encrypted values this
   * client already decrypted (up to 16 KiB each), beside the exact stored bytes they came
   * from, so a hit whose bytes did not change skips AES-GCM. The plaintext stays in this
   * process's memory until evicted or the client is closed (zeroed then). 0 = 1 MiB; set
   * `CACHEKIT_ENCRYPT_NO_MEMO` in `encryption_flags` to turn it off.
   */
  size_t encryption_memo_bytes;
} cachekit_options;

/**
 * How `cachekit_add`, `cachekit_replace`, `cachekit_cas` and `cachekit_set_i64` store the
 * entry: what `cachekit_set` takes as parameters, in an extensible struct. NULL means every
 * default. Otherwise zero-initialise it and set `struct_size`: **every zero or NULL field
 * means "the default"**, as in `cachekit_options`.
 *
 * ```c
 * cachekit_set_options so = {0};
 * so.struct_size = sizeof so;
 * so.ttl_ms = 30000;
 * ```
 *
 * The struct has no padding on 64-bit targets (48 bytes).
 */
typedef struct cachekit_set_options {
  /**
   * Must be `sizeof(cachekit_set_options)` as the program sees it.
   */
  size_t struct_size;
  /**
   * `CACHEKIT_SET_*` bits; 0 for none. Unknown bits are refused.
   */
  uint32_t flags;
  /**
   * Must be 0 (room for a later field).
   */
  uint32_t reserved;
  /**
   * Time to live in ms; **0 = never expires**, as in `cachekit_set` (for an entry that
   * expires at once, set `CACHEKIT_SET_EXPIRE_NOW`).
   */
  uint64_t ttl_ms;
  /**
   * How long after expiry the value may still be served, marked stale. 0 = none.
   */
  uint64_t grace_ms;
  /**
   * Tag paths (`posts/123/comments`) for `cachekit_invalidate`; NULL when `tag_count` is 0.
   */
  const char *const *tags;
  /**
   * Number of strings at `tags`.
   */
  size_t tag_count;
} cachekit_set_options;

/**
 * One entry found by `cachekit_scan_next`. Times are Unix milliseconds.
 */
typedef struct cachekit_scan_item {
  /**
   * Bytes the entry takes in the table (its stored envelope, not the decoded value).
   */
  uint64_t stored_len;
  /**
   * When the entry was written.
   */
  uint64_t created_ms;
  /**
   * When it stops being fresh; 0 = never.
   */
  uint64_t expires_ms;
  /**
   * When it stops being servable at all; 0 = never.
   */
  uint64_t grace_until_ms;
  /**
   * Its version on this host (as `cachekit_value_info.version`).
   */
  uint64_t version;
} cachekit_scan_item;

/**
 * How a lease is waited for and held. NULL means every default. Otherwise zero-initialise it
 * and set `struct_size`: **every zero field means "the default"**, as in `cachekit_options`.
 *
 * ```c
 * cachekit_lease_options lo = {0};
 * lo.struct_size = sizeof lo;
 * lo.wait_timeout_ms = 2000;
 * ```
 *
 * The struct has no padding on 64-bit targets (32 bytes).
 */
typedef struct cachekit_lease_options {
  /**
   * Must be `sizeof(cachekit_lease_options)` as the program sees it.
   */
  size_t struct_size;
  /**
   * `CACHEKIT_LEASE_*` bits; 0 for none. Unknown bits are refused.
   */
  uint32_t flags;
  /**
   * Must be 0 (room for a later field).
   */
  uint32_t reserved;
  /**
   * How long to wait for another holder's value, ms. 0 = 10000. The call blocks in the
   * daemon that long at most (plus one round trip).
   */
  uint64_t wait_timeout_ms;
  /**
   * How long the holder may compute before the lease passes to a waiter, ms. 0 = 30000;
   * the daemon caps it at 10 minutes. A holder that dies releases its lease at once.
   */
  uint64_t lease_timeout_ms;
} cachekit_lease_options;

/**
 * The compute callback of `cachekit_query`: computes the value and hands it over with
 * `cachekit_compute_out_set(out, ...)`, then returns 0; any other return is a failure
 * (nothing is cached, `cachekit_query` returns `CACHEKIT_COMPUTE_FAILED`; keep the details in
 * `user_data`). Returning 0 without setting a value stores the empty value. It runs on the
 * calling thread, at most once per `cachekit_query`, and must return normally (no
 * `longjmp` or C++ exception across the library).
 */
typedef int (*cachekit_compute_fn)(void *user_data,
                                   struct cachekit_compute_out *out);

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * Gets `count` keys at once: hits come from the shared segment, and the misses are then
 * fetched from the daemon one after the other. `keys[i]` has `key_lens[i]` bytes.
 *
 * On `CACHEKIT_OK`, `*out` receives a batch of `count` entries (each a hit or a miss), to free
 * with `cachekit_batch_free`. Errors are those of `cachekit_get`, for the first key that
 * fails; nothing is written then. `count` 0 gives an empty batch (`keys`, `key_lens` may then
 * be NULL).
 *
 * # Safety
 *
 * `client` must be a live handle; `keys` and `key_lens` must point to `count` readable
 * elements, each `keys[i]` to `key_lens[i]` readable bytes (or NULL with length 0); `out` must
 * point to a writable `cachekit_batch *`.
 */
cachekit_result cachekit_get_many(const struct cachekit_client *client,
                                  const uint8_t *const *keys,
                                  const size_t *key_lens,
                                  size_t count,
                                  struct cachekit_batch **out);

/**
 * The number of entries in a batch (the `count` it was asked with); 0 for NULL.
 *
 * # Safety
 *
 * `batch` must be NULL or a live batch.
 */
size_t cachekit_batch_len(const struct cachekit_batch *batch);

/**
 * Entry `index` of a batch: `CACHEKIT_OK` for a hit, with `*value` pointing at its
 * `*value_len` bytes (owned by the batch, valid until `cachekit_batch_free`; never NULL) and
 * `*info` (if `info` is not NULL) describing it; `CACHEKIT_MISS` for a miss (nothing
 * written); `CACHEKIT_INVALID_ARGUMENT` when `index` is out of range.
 *
 * # Safety
 *
 * `batch` must be a live batch; `value` must point to a writable `const uint8_t *`,
 * `value_len` to a writable `size_t`; `info` must be NULL or point to a writable
 * `cachekit_value_info`.
 */
cachekit_result cachekit_batch_get(const struct cachekit_batch *batch,
                                   size_t index,
                                   const uint8_t **value,
                                   size_t *value_len,
                                   struct cachekit_value_info *info);

/**
 * Frees a batch and every value in it. NULL is a no-op.
 *
 * # Safety
 *
 * `batch` must be NULL or a live batch from `cachekit_get_many`, not used afterwards.
 */
void cachekit_batch_free(struct cachekit_batch *batch);

/**
 * Stores `count` values at once, each as `cachekit_set` would, with the same `ttl_ms`,
 * `grace_ms` and tags: `keys[i]` (`key_lens[i]` bytes) gets `values[i]` (`value_lens[i]`
 * bytes). One request carries up to 1000 items and the daemon applies them within one turn
 * of its writer; a longer batch, or one whose frame would pass the daemon's frame limit, is
 * sent as several requests, in order.
 *
 * `results`, when not NULL, receives one code per item: `CACHEKIT_OK`, or why that item was
 * not stored (`CACHEKIT_TOO_LARGE` for a key or value over its limit, `CACHEKIT_UNAVAILABLE`,
 * ...); one bad item does not stop the others. Returns `CACHEKIT_OK` when every item was
 * stored, else the code of the first item that was not, with its message in
 * `cachekit_last_error`. A failure of the whole batch (a bad tag list, the daemon
 * unreachable and no other path) is returned as such, with `results` left unwritten; items
 * of requests sent before it are stored, and sending the whole batch again is safe.
 *
 * # Safety
 *
 * `client` must be a live handle; `keys`, `key_lens`, `values`, `value_lens` must point to
 * `count` readable elements each (or be NULL with `count` 0), each buffer to its length of
 * readable bytes (or NULL with length 0); `tags` must point to `tag_count` NUL-terminated
 * strings (or be NULL with count 0); `results` must be NULL or point to `count` writable
 * `cachekit_result`s.
 */
cachekit_result cachekit_set_many(const struct cachekit_client *client,
                                  const uint8_t *const *keys,
                                  const size_t *key_lens,
                                  const uint8_t *const *values,
                                  const size_t *value_lens,
                                  size_t count,
                                  uint64_t ttl_ms,
                                  uint64_t grace_ms,
                                  const char *const *tags,
                                  size_t tag_count,
                                  cachekit_result *results);

/**
 * Removes `count` keys at once, each as `cachekit_delete` would, in one request (split as
 * `cachekit_set_many` splits): `keys[i]` has `key_lens[i]` bytes.
 *
 * `results`, when not NULL, receives one code per key: `CACHEKIT_OK` if it was there,
 * `CACHEKIT_MISS` if not (both are success), or why it could not be removed. Returns
 * `CACHEKIT_OK` when no key failed, else the code of the first that did (its message in
 * `cachekit_last_error`); a failure of the whole batch as for `cachekit_set_many`.
 *
 * # Safety
 *
 * `client` must be a live handle; `keys` and `key_lens` must point to `count` readable
 * elements each (or be NULL with `count` 0), each key to `key_lens[i]` readable bytes (or NULL
 * with length 0); `results` must be NULL or point to `count` writable `cachekit_result`s.
 */
cachekit_result cachekit_delete_many(const struct cachekit_client *client,
                                     const uint8_t *const *keys,
                                     const size_t *key_lens,
                                     size_t count,
                                     cachekit_result *results);

/**
 * Frees a buffer returned by `cachekit_get_alloc`. NULL is a no-op.
 *
 * # Safety
 *
 * `buf` must be NULL or a buffer from `cachekit_get_alloc` not freed yet; never a pointer
 * from `malloc` or a `cachekit_batch`.
 */
void cachekit_buf_free(uint8_t *buf);

/**
 * Opens a client: connects to the daemon, maps its segment (unless `CACHEKIT_OPEN_LAZY`).
 *
 * On `CACHEKIT_OK`, `*out` receives a handle to free with `cachekit_client_close`.
 * Errors: `CACHEKIT_UNAVAILABLE` when cachekitd is not running (the last error message says
 * where it was looked for and how to start it), `CACHEKIT_NOT_PERMITTED`,
 * `CACHEKIT_INVALID_ARGUMENT` / `CACHEKIT_TOO_LARGE` for bad options.
 *
 * # Safety
 *
 * `options` must point to a `cachekit_options` of `options->struct_size` readable bytes;
 * `out` must point to a writable `cachekit_client *`.
 */
cachekit_result cachekit_client_open(const struct cachekit_options *options,
                                     struct cachekit_client **out);

/**
 * A second handle on another namespace, sharing this one's connections, segment and
 * counters (no new connection). Close both, in any order.
 *
 * # Safety
 *
 * `client` must be a live handle; `ns` a NUL-terminated string; `out` must point to a
 * writable `cachekit_client *`.
 */
cachekit_result cachekit_client_with_namespace(const struct cachekit_client *client,
                                               const char *ns,
                                               struct cachekit_client **out);

/**
 * Closes a handle. NULL is a no-op. The handle must not be in use by another thread, and must
 * not be used afterwards. A handle does not survive `fork()`: the child opens its own.
 *
 * # Safety
 *
 * `client` must be NULL or a handle from `cachekit_client_open` /
 * `cachekit_client_with_namespace` that was not closed yet.
 */
void cachekit_client_close(struct cachekit_client *client);

/**
 * Stores `value` under `key`. When it returns `CACHEKIT_OK`, no read on the host that
 * starts afterwards sees an older value.
 *
 * - `ttl_ms`: time to live in ms; **0 = never expires** (until evicted, deleted,
 *   invalidated).
 * - `grace_ms`: how long after expiry the value may still be served, marked stale, while a
 *   caller refreshes it. 0 = none.
 * - `tags`, `tag_count`: tag paths (`posts/123/comments`) for `cachekit_invalidate`; NULL when
 *   `tag_count` is 0.
 *
 * Values may be as large as the daemon's `--max-value-bytes` (the client adopts the daemon's
 * limit when it connects).
 *
 * Errors: `CACHEKIT_TOO_LARGE` (key, value, tag or tag count over the daemon's limits),
 * `CACHEKIT_INVALID_ARGUMENT` (malformed tag), `CACHEKIT_UNAVAILABLE`, `CACHEKIT_TIMEOUT`,
 * `CACHEKIT_NOT_PERMITTED`.
 *
 * # Safety
 *
 * `client` must be a live handle; `key`/`value` must point to `key_len`/`value_len`
 * readable bytes (or be NULL with length 0); `tags` must point to `tag_count`
 * NUL-terminated strings (or be NULL with count 0).
 */
cachekit_result cachekit_set(const struct cachekit_client *client,
                             const uint8_t *key,
                             size_t key_len,
                             const uint8_t *value,
                             size_t value_len,
                             uint64_t ttl_ms,
                             uint64_t grace_ms,
                             const char *const *tags,
                             size_t tag_count);

/**
 * Removes `key`: `CACHEKIT_OK` if it was there, `CACHEKIT_MISS` if not (both are success).
 *
 * # Safety
 *
 * `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
 * with length 0).
 */
cachekit_result cachekit_delete(const struct cachekit_client *client,
                                const uint8_t *key,
                                size_t key_len);

/**
 * Invalidates every entry of the handle's namespace tagged with one of `tags`, and (unless
 * `flags` has `CACHEKIT_INVALIDATE_EXACT`) every entry tagged below one: `posts/123` also
 * covers `posts/123/comments`, never `posts/1234`. O(1) per tag. `tag_count` 0 does nothing.
 *
 * Errors: `CACHEKIT_INVALID_ARGUMENT` (malformed tag, unknown flag), `CACHEKIT_TOO_LARGE`,
 * `CACHEKIT_UNAVAILABLE`, `CACHEKIT_TIMEOUT`, `CACHEKIT_NOT_PERMITTED`.
 *
 * # Safety
 *
 * `client` must be a live handle; `tags` must point to `tag_count` NUL-terminated strings (or
 * be NULL with count 0).
 */
cachekit_result cachekit_invalidate(const struct cachekit_client *client,
                                    const char *const *tags,
                                    size_t tag_count,
                                    uint32_t flags);

/**
 * Drops every entry of the handle's namespace (other namespaces are untouched). O(1).
 *
 * # Safety
 *
 * `client` must be a live handle.
 */
cachekit_result cachekit_clear(const struct cachekit_client *client);

/**
 * A round trip to the daemon. On `CACHEKIT_OK`, the optional outputs receive the daemon's
 * epoch (it changes when the daemon restarts) and the round-trip time in microseconds.
 *
 * # Safety
 *
 * `client` must be a live handle; `epoch` and `rtt_us` must each be NULL or point to a
 * writable `uint64_t`.
 */
cachekit_result cachekit_ping(const struct cachekit_client *client,
                              uint64_t *epoch,
                              uint64_t *rtt_us);

/**
 * Describes a result code with a static, NUL-terminated English sentence.
 *
 * Never allocates, never fails, never returns NULL (except after an internal panic, which
 * cannot happen here); an unknown code gives "unknown cachekit result code". For the details
 * of the last failure, use `cachekit_last_error_message`.
 */
const char *cachekit_result_describe(uint32_t code);

/**
 * Copies the message of the last call on this thread that returned an error code (anything
 * but `CACHEKIT_OK`, `CACHEKIT_MISS`, `CACHEKIT_LEASE_GRANTED` and `CACHEKIT_LEASE_BUSY`)
 * into `buf`, NUL-terminated.
 *
 * The message says what went wrong and what to do, e.g. "cachekitd is not running at
 * /run/cachekit/default.sock; start it with `cachekitd`". It stays until the next failure on
 * the same thread: successful calls do not clear it, so read it right after the failing call.
 * With no failure yet on this thread, it is the empty string. This function never changes it.
 *
 * `*needed` receives the size the message takes, NUL included, on `CACHEKIT_OK` and on
 * `CACHEKIT_BUFFER_TOO_SMALL`. `buf` may be NULL when `len` is 0 (a size query).
 *
 * # Safety
 *
 * `buf` must point to `len` writable bytes (or `len` is 0); `needed` must point to a writable
 * `size_t`.
 */
cachekit_result cachekit_last_error_message(char *buf,
                                            size_t len,
                                            size_t *needed);

/**
 * Asks the daemon for its counters and adds this client's own (see the names above). On
 * `CACHEKIT_OK`, `*out` receives a snapshot to free with `cachekit_stats_free`.
 * Errors: `CACHEKIT_UNAVAILABLE`, `CACHEKIT_TIMEOUT`, `CACHEKIT_NULL_ARGUMENT`.
 *
 * # Safety
 *
 * `client` must be a live handle; `out` must point to a writable `cachekit_stats *`.
 */
cachekit_result cachekit_stats_fetch(const struct cachekit_client *client,
                                     struct cachekit_stats **out);

/**
 * The number of counters in a snapshot; 0 for NULL.
 *
 * # Safety
 *
 * `stats` must be NULL or a live snapshot.
 */
size_t cachekit_stats_len(const struct cachekit_stats *stats);

/**
 * Counter `index`: `*name` receives its NUL-terminated name (owned by the snapshot, valid
 * until `cachekit_stats_free`) and `*value` its value. `CACHEKIT_INVALID_ARGUMENT` when
 * `index` is out of range.
 *
 * # Safety
 *
 * `stats` must be a live snapshot; `name` must point to a writable `const char *`, `value`
 * to a writable `uint64_t`.
 */
cachekit_result cachekit_stats_entry(const struct cachekit_stats *stats,
                                     size_t index,
                                     const char **name,
                                     uint64_t *value);

/**
 * The value of the counter called `name` (e.g. "daemon.table_live_entries"):
 * `CACHEKIT_OK` with `*value` set, or `CACHEKIT_MISS` when the snapshot has no such counter.
 *
 * # Safety
 *
 * `stats` must be a live snapshot; `name` a NUL-terminated string; `value` must point to a
 * writable `uint64_t`.
 */
cachekit_result cachekit_stats_lookup(const struct cachekit_stats *stats,
                                      const char *name,
                                      uint64_t *value);

/**
 * Frees a snapshot. NULL is a no-op.
 *
 * # Safety
 *
 * `stats` must be NULL or a live snapshot from `cachekit_stats_fetch`, not used afterwards.
 */
void cachekit_stats_free(struct cachekit_stats *stats);

/**
 * Gets the value of `key` into the caller's buffer.
 *
 * - `CACHEKIT_OK`: a hit (fresh or stale); the value is in `buf[0..*value_len]` and `*info`
 *   (if `info` is not NULL) describes it.
 * - `CACHEKIT_MISS`: not in the cache, or the daemon cannot be reached. Nothing written.
 * - `CACHEKIT_BUFFER_TOO_SMALL`: `*value_len` receives the value's length; nothing else is
 *   written. Call again with a buffer that large (the value may have changed meanwhile: loop
 *   while you get this code). `buf = NULL, buf_len = 0` is a pure size query.
 * - errors: `CACHEKIT_TOO_LARGE` (key over `max_key_bytes`), `CACHEKIT_CORRUPT_VALUE`,
 *   `CACHEKIT_NOT_PERMITTED`, `CACHEKIT_PROTOCOL`, `CACHEKIT_NULL_ARGUMENT`.
 *
 * A hit costs no syscall and no lock. Each calling thread keeps one copy buffer of the largest
 * value it read, up to 256 KiB.
 *
 * # Safety
 *
 * `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
 * with length 0); `buf` to `buf_len` writable bytes (or NULL with length 0); `value_len` to a
 * writable `size_t`; `info` must be NULL or point to a writable `cachekit_value_info`.
 */
cachekit_result cachekit_get(const struct cachekit_client *client,
                             const uint8_t *key,
                             size_t key_len,
                             uint8_t *buf,
                             size_t buf_len,
                             size_t *value_len,
                             struct cachekit_value_info *info);

/**
 * Gets the value of `key` into the caller's buffer, like `cachekit_get`, and returns its
 * length: one call and its return value, no out-parameter to read back (which costs a
 * binding like Python's cffi as much as the call's other work).
 *
 * - `>= 0`: a hit (fresh or stale) of that many bytes, now in `buf[0..n]`; `*info` (if `info`
 *   is not NULL) describes it.
 * - `-CACHEKIT_MISS` (-1): not in the cache, or the daemon cannot be reached. Nothing written.
 * - `-CACHEKIT_BUFFER_TOO_SMALL` (-2): the value is longer than `buf_len`; nothing written.
 *   `cachekit_get` with the same key tells its length.
 * - otherwise minus the `cachekit_result` of the failure, as `cachekit_get` would return it
 *   (the message in `cachekit_last_error_message`).
 *
 * # Safety
 *
 * `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
 * with length 0); `buf` to `buf_len` writable bytes (or NULL with length 0); `info` must be
 * NULL or point to a writable `cachekit_value_info`.
 */
int64_t cachekit_get_len(const struct cachekit_client *client,
                         const uint8_t *key,
                         size_t key_len,
                         uint8_t *buf,
                         size_t buf_len,
                         struct cachekit_value_info *info);

/**
 * Gets the value of `key` from the shared segment only: like `cachekit_get` (same
 * parameters, same results, same outputs), except that it never leaves the process. No socket
 * request, no Redis, no reconnect, no lock: a read of shared memory, so it never blocks (for
 * event loops: call it inline, and `cachekit_get` on a thread that may wait only when it
 * misses).
 *
 * - `CACHEKIT_OK`: a hit from the segment (`info->source` is `CACHEKIT_SOURCE_SEGMENT`),
 *   fresh or stale, exactly as `cachekit_get` would have served it.
 * - `CACHEKIT_MISS`: the segment does not hold the key, or cannot be used: not attached yet
 *   (a `CACHEKIT_OPEN_LAZY` handle that has not reached the daemon), the daemon's heartbeat
 *   is stale, or the daemon was found gone. A key the daemon could fill (from Redis) misses
 *   here until a `cachekit_get` or a write brings it into the segment.
 * - `CACHEKIT_BUFFER_TOO_SMALL`: as for `cachekit_get`.
 * - errors: `CACHEKIT_TOO_LARGE` (key over `max_key_bytes`), `CACHEKIT_CORRUPT_VALUE`,
 *   `CACHEKIT_NULL_ARGUMENT`.
 *
 * # Safety
 *
 * As `cachekit_get`: `client` must be a live handle; `key` must point to `key_len` readable
 * bytes (or be NULL with length 0); `buf` to `buf_len` writable bytes (or NULL with length 0);
 * `value_len` to a writable `size_t`; `info` must be NULL or point to a writable
 * `cachekit_value_info`.
 */
cachekit_result cachekit_get_local(const struct cachekit_client *client,
                                   const uint8_t *key,
                                   size_t key_len,
                                   uint8_t *buf,
                                   size_t buf_len,
                                   size_t *value_len,
                                   struct cachekit_value_info *info);

/**
 * Gets the value of `key` into a buffer the library allocates.
 *
 * On `CACHEKIT_OK`, `*value` receives a buffer (never NULL, even for an empty value) of
 * `*value_len` bytes, which the caller frees with `cachekit_buf_free`, and `*info` (if `info`
 * is not NULL) describes the hit. On `CACHEKIT_MISS` and errors nothing is written.
 *
 * # Safety
 *
 * `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
 * with length 0); `value` must point to a writable `uint8_t *`, `value_len` to a writable
 * `size_t`; `info` must be NULL or point to a writable `cachekit_value_info`.
 */
cachekit_result cachekit_get_alloc(const struct cachekit_client *client,
                                   const uint8_t *key,
                                   size_t key_len,
                                   uint8_t **value,
                                   size_t *value_len,
                                   struct cachekit_value_info *info);

/**
 * The version of the library actually loaded, as a static string ("0.1.0"). Compare with the
 * `CACHEKIT_VERSION_*` macros to detect a program built against another header.
 */
const char *cachekit_version(void);

/**
 * Stores `value` under `key` only if the key has no fresh entry (an expired or invalidated
 * one counts as none). On `CACHEKIT_OK`, `*stored` tells whether it stored. Of any number of
 * concurrent adds of one key (from any processes of the host, and of other hosts sharing
 * Redis), exactly one stores.
 *
 * `options`: NULL for the defaults (never expires, no grace, no tags). With
 * `CACHEKIT_SET_INTEGER` in its flags, `value` is the decimal of an int64 stored as a counter
 * (so `cachekit_add` of "0" then `cachekit_incr` works).
 *
 * Errors: as `cachekit_set`; `CACHEKIT_INVALID_ARGUMENT` for bad options.
 *
 * # Safety
 *
 * `client` must be a live handle; `key`/`value` must point to `key_len`/`value_len`
 * readable bytes (or be NULL with length 0); `options` must be NULL or point to a
 * `cachekit_set_options` of `options->struct_size` readable bytes; `stored` must point to a
 * writable `bool`.
 */
cachekit_result cachekit_add(const struct cachekit_client *client,
                             const uint8_t *key,
                             size_t key_len,
                             const uint8_t *value,
                             size_t value_len,
                             const struct cachekit_set_options *options,
                             bool *stored);

/**
 * Stores `value` under `key` only if the key has a fresh entry. On `CACHEKIT_OK`, `*stored`
 * tells whether it stored. Parameters and errors as `cachekit_add`.
 *
 * # Safety
 *
 * As `cachekit_add`.
 */
cachekit_result cachekit_replace(const struct cachekit_client *client,
                                 const uint8_t *key,
                                 size_t key_len,
                                 const uint8_t *value,
                                 size_t value_len,
                                 const struct cachekit_set_options *options,
                                 bool *stored);

/**
 * Compare and set: stores `value` under `key` only if the key's fresh entry is still the one
 * whose `cachekit_value_info.version` the caller read. On `CACHEKIT_OK`, `*stored` tells
 * whether it stored; when not, read again and retry. Version 0 never stores. With
 * `CACHEKIT_SET_EXPIRE_NOW` it is a compare-and-delete.
 *
 * Versions are per host: with Redis, a cas also fails when another host wrote the key since,
 * unless that host wrote the very same bytes. Parameters and errors as `cachekit_add`.
 *
 * # Safety
 *
 * As `cachekit_add`.
 */
cachekit_result cachekit_cas(const struct cachekit_client *client,
                             const uint8_t *key,
                             size_t key_len,
                             const uint8_t *value,
                             size_t value_len,
                             uint64_t version,
                             const struct cachekit_set_options *options,
                             bool *stored);

/**
 * Stores the integer `value` as a counter (what `cachekit_incr` writes: the ASCII decimal,
 * flagged integer), so every binding reads it back as an integer and `cachekit_incr` adds to
 * it. `options` as for `cachekit_add`; errors as `cachekit_set`.
 *
 * # Safety
 *
 * `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
 * with length 0); `options` must be NULL or point to a `cachekit_set_options` of
 * `options->struct_size` readable bytes.
 */
cachekit_result cachekit_set_i64(const struct cachekit_client *client,
                                 const uint8_t *key,
                                 size_t key_len,
                                 int64_t value,
                                 const struct cachekit_set_options *options);

/**
 * Adds `delta` to the counter at `key`, atomically: concurrent incrs from any number of
 * processes (and hosts sharing Redis) never lose an update. On `CACHEKIT_OK`, `*value`
 * receives the result.
 *
 * - A missing key (no fresh entry): with `initial` NULL, `CACHEKIT_MISS` and nothing is
 *   stored; otherwise the counter is created as `*initial + delta` (the initial value is the
 *   value before the delta), with time to live `ttl_ms` (**0 = never expires**, as in
 *   `cachekit_set`). An existing counter keeps its expiry and tags.
 * - The value must be an int64 in ASCII decimal (a counter, `cachekit_set_i64`, or a value
 *   set as such bytes): anything else is `CACHEKIT_INVALID_ARGUMENT`, and so is a result
 *   that would overflow an int64; the value is unchanged then.
 *
 * Errors otherwise as `cachekit_set`.
 *
 * # Safety
 *
 * `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
 * with length 0); `initial` must be NULL or point to a readable `int64_t`; `value` must point
 * to a writable `int64_t`.
 */
cachekit_result cachekit_incr(const struct cachekit_client *client,
                              const uint8_t *key,
                              size_t key_len,
                              int64_t delta,
                              const int64_t *initial,
                              uint64_t ttl_ms,
                              int64_t *value);

/**
 * Subtracts `delta`: `cachekit_incr` of `-delta` (same parameters and results; a missing key
 * with `initial` is created as `*initial - delta`). `delta` INT64_MIN is
 * `CACHEKIT_INVALID_ARGUMENT`.
 *
 * # Safety
 *
 * As `cachekit_incr`.
 */
cachekit_result cachekit_decr(const struct cachekit_client *client,
                              const uint8_t *key,
                              size_t key_len,
                              int64_t delta,
                              const int64_t *initial,
                              uint64_t ttl_ms,
                              int64_t *value);

/**
 * Removes `key` and returns the value it had, atomically: of concurrent get_and_deletes of
 * one key, one gets the value. The buffer contract is `cachekit_get`'s:
 *
 * - `CACHEKIT_OK`: the key had a fresh entry, now removed; its value is in
 *   `buf[0..*value_len]` and `*info` (if `info` is not NULL) describes it.
 * - `CACHEKIT_MISS`: the key had no fresh entry. Nothing written.
 * - `CACHEKIT_BUFFER_TOO_SMALL`: `*value_len` receives the value's length. The entry is
 *   already removed: its value is kept for this thread, and the next `cachekit_get_and_delete`
 *   on this thread with the same handle and key returns it (without a request) when the
 *   buffer is large enough. Any other `cachekit_get_and_delete` on the thread discards it.
 *   `buf = NULL, buf_len = 0` is a size query that removes the entry.
 * - errors: as `cachekit_delete`; `CACHEKIT_CORRUPT_VALUE`.
 *
 * # Safety
 *
 * As `cachekit_get`: `client` must be a live handle; `key` must point to `key_len` readable
 * bytes (or be NULL with length 0); `buf` to `buf_len` writable bytes (or NULL with length
 * 0); `value_len` to a writable `size_t`; `info` must be NULL or point to a writable
 * `cachekit_value_info`.
 */
cachekit_result cachekit_get_and_delete(const struct cachekit_client *client,
                                        const uint8_t *key,
                                        size_t key_len,
                                        uint8_t *buf,
                                        size_t buf_len,
                                        size_t *value_len,
                                        struct cachekit_value_info *info);

/**
 * Gives `key`'s fresh entry a new time to live from now; its value, tags and grace length
 * stay. `ttl_ms`: **0 = never expires** (as `cachekit_persist` and as in `cachekit_set`),
 * otherwise ms; to drop a key, delete it. On `CACHEKIT_OK`, `*found` tells whether the key
 * had a fresh entry (nothing changes when it had not).
 *
 * Errors: `CACHEKIT_INVALID_ARGUMENT` for a negative `ttl_ms`; as `cachekit_delete`
 * otherwise.
 *
 * # Safety
 *
 * `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
 * with length 0); `found` must point to a writable `bool`.
 */
cachekit_result cachekit_touch(const struct cachekit_client *client,
                               const uint8_t *key,
                               size_t key_len,
                               int64_t ttl_ms,
                               bool *found);

/**
 * Makes `key`'s fresh entry never expire: `cachekit_touch` with `ttl_ms` 0.
 *
 * # Safety
 *
 * As `cachekit_touch`.
 */
cachekit_result cachekit_persist(const struct cachekit_client *client,
                                 const uint8_t *key,
                                 size_t key_len,
                                 bool *found);

/**
 * How long `key` stays fresh, read like a get (from the shared segment on a hit). On
 * `CACHEKIT_OK`, `*ttl_ms` receives the ms left (0 for a stale entry served within its grace
 * period), or -1 when it never expires. `CACHEKIT_MISS` when the key has no entry (nothing
 * written).
 *
 * Errors: as `cachekit_get`.
 *
 * # Safety
 *
 * `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
 * with length 0); `ttl_ms` must point to a writable `int64_t`.
 */
cachekit_result cachekit_ttl(const struct cachekit_client *client,
                             const uint8_t *key,
                             size_t key_len,
                             int64_t *ttl_ms);

/**
 * Asks the daemon which namespaces its table holds entries of (this host only, not Redis).
 * On `CACHEKIT_OK`, `*out` receives the list, to read with `cachekit_namespaces_next` and free
 * with `cachekit_namespaces_free`.
 *
 * Errors: `CACHEKIT_UNAVAILABLE`, `CACHEKIT_TIMEOUT`, `CACHEKIT_NULL_ARGUMENT`.
 *
 * # Safety
 *
 * `client` must be a live handle; `out` must point to a writable `cachekit_namespaces *`.
 */
cachekit_result cachekit_namespaces_open(const struct cachekit_client *client,
                                         struct cachekit_namespaces **out);

/**
 * The next namespace of the list.
 *
 * - `CACHEKIT_OK`: its name is in `name_buf`, NUL-terminated; `*name_size` receives the size
 *   it takes, NUL included; `*entries` and `*bytes` (each if not NULL) receive its entry count
 *   and the bytes those entries take in the table.
 * - `CACHEKIT_MISS`: the list is over. Nothing written.
 * - `CACHEKIT_BUFFER_TOO_SMALL`: `*name_size` receives the size needed, NUL included; the
 *   list stays on this namespace: call again with a buffer that large. `name_buf = NULL,
 *   name_buf_len = 0` is a pure size query. Names are at most 127 bytes (128 with the NUL).
 *
 * # Safety
 *
 * `list` must be a live list, not used by another thread meanwhile; `name_buf` must point to
 * `name_buf_len` writable bytes (or be NULL with length 0); `name_size` to a writable
 * `size_t`; `entries` and `bytes` must each be NULL or point to a writable `uint64_t`.
 */
cachekit_result cachekit_namespaces_next(struct cachekit_namespaces *list,
                                         char *name_buf,
                                         size_t name_buf_len,
                                         size_t *name_size,
                                         uint64_t *entries,
                                         uint64_t *bytes);

/**
 * Frees a namespace list. NULL is a no-op.
 *
 * # Safety
 *
 * `list` must be NULL or a list from `cachekit_namespaces_open` not freed yet, not in use by
 * another thread.
 */
void cachekit_namespaces_free(struct cachekit_namespaces *list);

/**
 * Starts a scan of the handle's namespace on this host (not Redis) and fetches its first
 * page. On `CACHEKIT_OK`, `*out` receives a scan to read with `cachekit_scan_next` and free
 * with `cachekit_scan_free`.
 *
 * - `pattern`, `pattern_len`: a glob over the key bytes, as Redis's `SCAN MATCH`: `*`, `?`,
 *   `[abc]`, `[^a]` / `[!a]`, `[a-z]`, `\x` for a literal x. NULL (with length 0) selects
 *   every key; an empty pattern at a non-NULL pointer is `CACHEKIT_INVALID_ARGUMENT` (a
 *   pattern built from an empty variable must not select everything).
 * - `tag`: NULL, or only entries tagged with this tag or (unless `exact`) a tag below it.
 *   Tags are matched by their counter in the table: an entry whose tag shares the counter
 *   (one chance in the daemon's tag_count per tag) may be included too.
 * - `page_size`: items per request, 1 to 1000; 0 = the daemon's default (100).
 *
 * The daemon walks a bounded slice of its index per request, so writers are never held up
 * for long. An entry present for the whole scan is returned exactly once; entries written or
 * deleted meanwhile may or may not be.
 *
 * Errors: `CACHEKIT_INVALID_ARGUMENT` (a malformed tag, `exact` without a tag, a page size
 * over 1000), `CACHEKIT_UNAVAILABLE`, `CACHEKIT_TIMEOUT`, `CACHEKIT_NULL_ARGUMENT`.
 *
 * # Safety
 *
 * `client` must be a live handle; `pattern` must point to `pattern_len` readable bytes (or be
 * NULL with length 0); `tag` must be NULL or a NUL-terminated string; `out` must point to a
 * writable `cachekit_scan *`.
 */
cachekit_result cachekit_scan_open(const struct cachekit_client *client,
                                   const uint8_t *pattern,
                                   size_t pattern_len,
                                   const char *tag,
                                   bool exact,
                                   uint32_t page_size,
                                   struct cachekit_scan **out);

/**
 * The next entry of a scan.
 *
 * - `CACHEKIT_OK`: its key is in `key_buf[0..*key_len]` and `*item` (if `item` is not NULL)
 *   describes it.
 * - `CACHEKIT_MISS`: the scan is over. Nothing written.
 * - `CACHEKIT_BUFFER_TOO_SMALL`: `*key_len` receives the key's length; the scan stays on this
 *   entry: call again with a buffer that large. `key_buf = NULL, key_buf_len = 0` is a pure
 *   size query. Keys are at most the daemon's max_key_bytes (256 by default).
 * - errors of fetching the next page (`CACHEKIT_UNAVAILABLE`, `CACHEKIT_TIMEOUT`): the scan
 *   stays where it was; calling again retries.
 *
 * # Safety
 *
 * `scan` must be a live scan, not used by another thread meanwhile; `key_buf` must point to
 * `key_buf_len` writable bytes (or be NULL with length 0); `key_len` to a writable `size_t`;
 * `item` must be NULL or point to a writable `cachekit_scan_item`.
 */
cachekit_result cachekit_scan_next(struct cachekit_scan *scan,
                                   uint8_t *key_buf,
                                   size_t key_buf_len,
                                   size_t *key_len,
                                   struct cachekit_scan_item *item);

/**
 * Frees a scan (finished or not). NULL is a no-op.
 *
 * # Safety
 *
 * `scan` must be NULL or a scan from `cachekit_scan_open` not freed yet, not in use by
 * another thread.
 */
void cachekit_scan_free(struct cachekit_scan *scan);

/**
 * Deletes every entry of the handle's namespace that a scan with the same `pattern`, `tag`
 * and `exact` would select, on this host and, with Redis, in Redis (so other hosts drop them
 * too), a bounded page per request. Unlike `cachekit_invalidate` it frees the memory. On
 * `CACHEKIT_OK`, `*deleted` (if not NULL) receives how many entries were deleted (this
 * host's table and Redis records counted separately). With neither a pattern (NULL) nor a tag
 * it deletes the whole namespace.
 *
 * Errors: as `cachekit_scan_open`; `CACHEKIT_NOT_PERMITTED`.
 *
 * # Safety
 *
 * `client` must be a live handle; `pattern` must point to `pattern_len` readable bytes (or be
 * NULL with length 0); `tag` must be NULL or a NUL-terminated string; `deleted` must be NULL
 * or point to a writable `uint64_t`.
 */
cachekit_result cachekit_delete_matching(const struct cachekit_client *client,
                                         const uint8_t *pattern,
                                         size_t pattern_len,
                                         const char *tag,
                                         bool exact,
                                         uint64_t *deleted);

/**
 * Asks for the fill lease of `key`, after a miss: the one call of the host that gets it
 * computes the value; every other caller, in any process, waits for that value.
 *
 * - `CACHEKIT_OK`: a value is there, or the holder's value came within the wait: it is in
 *   `buf[0..*value_len]` and `*info` (if `info` is not NULL) describes it, as for
 *   `cachekit_get` (it may be stale within grace). No lease.
 * - `CACHEKIT_LEASE_GRANTED`: `*out` receives the lease and nothing else is written: compute
 *   the value, then `cachekit_lease_fill` it (or `cachekit_lease_release` it when the
 *   computation fails). Fill or release it promptly: waiters block until then, or until
 *   `lease_timeout_ms`.
 * - `CACHEKIT_LEASE_BUSY`: another caller holds the lease and its value did not come within
 *   `wait_timeout_ms`. Nothing written. Compute the value yourself, ask again, or fail.
 * - `CACHEKIT_BUFFER_TOO_SMALL`: a value came but does not fit; `*value_len` receives its
 *   length and nothing else is written. Call again with a buffer that large (the value is
 *   then answered at once, unless it went meanwhile).
 * - errors: `CACHEKIT_UNAVAILABLE` / `CACHEKIT_TIMEOUT` (no daemon to coordinate with:
 *   compute, and cache nothing), `CACHEKIT_NOT_PERMITTED` (the peer may not write),
 *   `CACHEKIT_TOO_LARGE` (key), `CACHEKIT_INVALID_ARGUMENT` (options),
 *   `CACHEKIT_CORRUPT_VALUE`, `CACHEKIT_NULL_ARGUMENT`.
 *
 * It always asks the daemon (call `cachekit_get` first: a hit needs no lease). It blocks up
 * to `wait_timeout_ms`; the client's request timeout does not cut that wait short.
 *
 * # Safety
 *
 * `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
 * with length 0); `options` must be NULL or point to a `cachekit_lease_options` of
 * `options->struct_size` readable bytes; `out` must point to a writable `cachekit_lease *`;
 * `buf` to `buf_len` writable bytes (or NULL with length 0); `value_len` to a writable
 * `size_t`; `info` must be NULL or point to a writable `cachekit_value_info`.
 */
cachekit_result cachekit_lease_acquire(const struct cachekit_client *client,
                                       const uint8_t *key,
                                       size_t key_len,
                                       const struct cachekit_lease_options *options,
                                       struct cachekit_lease **out,
                                       uint8_t *buf,
                                       size_t buf_len,
                                       size_t *value_len,
                                       struct cachekit_value_info *info);

/**
 * Asks for the lease to refresh `key`'s stale value (a hit with `cachekit_value_info.stale`
 * set). Never waits: serve the stale value either way.
 *
 * - `CACHEKIT_LEASE_GRANTED`: `*out` receives the lease: compute the new value, then
 *   `cachekit_lease_fill` it (or `cachekit_lease_release` it). Exactly one caller of the host
 *   gets it while the key is being refreshed.
 * - `CACHEKIT_LEASE_BUSY`: someone else is refreshing it. Nothing written.
 * - errors: as `cachekit_lease_acquire`.
 *
 * # Safety
 *
 * `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
 * with length 0); `options` must be NULL or point to a `cachekit_lease_options` of
 * `options->struct_size` readable bytes; `out` must point to a writable `cachekit_lease *`.
 */
cachekit_result cachekit_refresh_lease(const struct cachekit_client *client,
                                       const uint8_t *key,
                                       size_t key_len,
                                       const struct cachekit_lease_options *options,
                                       struct cachekit_lease **out);

/**
 * Stores the computed `value` under the lease's key and ends the lease: every waiter gets
 * the value. **Consumes the lease whatever it returns** (on an error the lease is released,
 * so a waiter takes over); never use it again.
 *
 * `options`: TTL, grace and tags as for `cachekit_add` (NULL: never expires, no tags);
 * `CACHEKIT_SET_INTEGER` is refused. On `CACHEKIT_OK`, `*stored` (if `stored` is not NULL)
 * tells whether the value was stored as fresh: false when the key was written or deleted, or
 * one of its tags invalidated, while it was computed (it would be stale: serve it to your
 * caller, it is simply not cached), or when the lease had passed on (`lease_timeout_ms`).
 *
 * Errors: as `cachekit_set`; `CACHEKIT_INVALID_ARGUMENT` for bad options.
 *
 * # Safety
 *
 * `lease` must be a lease from `cachekit_lease_acquire` / `cachekit_refresh_lease` not
 * consumed yet (or NULL: `CACHEKIT_NULL_ARGUMENT`); `value` must point to `value_len`
 * readable bytes (or be NULL with length 0); `options` must be NULL or point to a
 * `cachekit_set_options` of `options->struct_size` readable bytes; `stored` must be NULL or
 * point to a writable `bool`.
 */
cachekit_result cachekit_lease_fill(struct cachekit_lease *lease,
                                    const uint8_t *value,
                                    size_t value_len,
                                    const struct cachekit_set_options *options,
                                    bool *stored);

/**
 * Ends the lease without a value (the computation failed): nothing is cached and one waiter
 * takes the lease over. Consumes the lease. NULL is a no-op. Never fails: when the daemon
 * cannot be reached, closing the lease's connection releases it all the same.
 *
 * # Safety
 *
 * `lease` must be NULL or a lease from `cachekit_lease_acquire` / `cachekit_refresh_lease`
 * not consumed yet.
 */
void cachekit_lease_release(struct cachekit_lease *lease);

/**
 * Hands the computed value to `cachekit_query`: the bytes are copied at once (they stay the
 * caller's). Calling it again replaces the value.
 *
 * Errors: `CACHEKIT_NULL_ARGUMENT`.
 *
 * # Safety
 *
 * `out` must be the pointer the callback received, during the callback; `value` must point
 * to `value_len` readable bytes (or be NULL with length 0).
 */
cachekit_result cachekit_compute_out_set(struct cachekit_compute_out *out,
                                         const uint8_t *value,
                                         size_t value_len);

/**
 * The value of `key`, computed by `compute` at most once per host at a time (the t87s query
 * semantics of the Rust `Client::query`):
 *
 * 1. a fresh hit is returned from the shared segment (no request, no callback);
 * 2. a stale hit (past its TTL, within grace) is returned at once, unless this caller is the
 *    one of the host that gets to refresh it: then the callback runs and the new value is
 *    stored and returned (a failed refresh returns the stale value);
 * 3. on a miss exactly one caller of the host runs its callback (it holds the key's fill
 *    lease); every other caller, in any process, waits up to `wait_timeout_ms` for that
 *    value. When the holder's callback fails, the holder gets `CACHEKIT_COMPUTE_FAILED` and
 *    the waiters go on waiting for the next holder. When the wait times out the caller runs
 *    its own callback, or returns `CACHEKIT_LEASE_BUSY` with
 *    `CACHEKIT_LEASE_ERROR_ON_TIMEOUT`.
 *
 * A value computed while the key was written or one of its tags invalidated is returned but
 * not stored as fresh. With the daemon unreachable the callback runs and nothing is cached.
 *
 * On `CACHEKIT_OK`, `*value` receives a library buffer of `*value_len` bytes (never NULL) to
 * free with `cachekit_buf_free`, and `*info` (if `info` is not NULL) describes it
 * (`source` is `CACHEKIT_SOURCE_COMPUTED` when this call's callback made it).
 *
 * `lease_options` and `set_options` may be NULL (defaults; the value then never expires).
 *
 * Errors: `CACHEKIT_COMPUTE_FAILED`; `CACHEKIT_TOO_LARGE` (key, value),
 * `CACHEKIT_INVALID_ARGUMENT` (options), `CACHEKIT_NOT_PERMITTED`, `CACHEKIT_CORRUPT_VALUE`,
 * `CACHEKIT_NULL_ARGUMENT` (including a NULL `compute`).
 *
 * # Safety
 *
 * `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
 * with length 0); `lease_options` / `set_options` must be NULL or point to a whole struct of
 * their `struct_size`; `compute` must be safe to call with `user_data`; `value` must point
 * to a writable `uint8_t *`, `value_len` to a writable `size_t`; `info` must be NULL or point
 * to a writable `cachekit_value_info`.
 */
cachekit_result cachekit_query(const struct cachekit_client *client,
                               const uint8_t *key,
                               size_t key_len,
                               const struct cachekit_lease_options *lease_options,
                               const struct cachekit_set_options *set_options,
                               cachekit_compute_fn compute,
                               void *user_data,
                               uint8_t **value,
                               size_t *value_len,
                               struct cachekit_value_info *info);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* CACHEKIT_H */
