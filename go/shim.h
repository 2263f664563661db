/*
 * shim.h - small C wrappers the Go binding calls instead of the cachekit functions themselves.
 *
 * Why they exist:
 *   - The last error message is per OS thread, and a goroutine may move to another thread
 *     between two cgo calls. Each wrapper therefore reads the message itself, in the same
 *     C call as the failure, and hands it back as a malloc'd string (NULL on success) that Go
 *     frees. Success and misses pay nothing for it.
 *   - Outputs come back in a struct returned by value, not through pointers to Go variables:
 *     a Go variable whose address goes to C escapes to the heap, so every hit would allocate.
 *   - The client handle crosses as an integer (ckgo_client): in Go 1.19 a pointer to an
 *     incomplete C type is not pointer-shaped, so cgo's pointer check boxes it
 *     (runtime.convT64): one allocation per call, on every hit.
 *   - cgo forbids passing C an array of Go pointers (const char *const *tags, the keys of a
 *     batch): Go passes one flat buffer instead and the wrapper builds the pointer array.
 */
#ifndef CACHEKIT_GO_SHIM_H
#define CACHEKIT_GO_SHIM_H

#include <stdint.h>
#include <stddef.h>

#include <cachekit.h>

/* A cachekit_client *, as an integer (see above). 0 is no handle. */
typedef uintptr_t ckgo_client;

/* A result code and, for an error code, the thread's last error message (malloc'd, or NULL). */
typedef struct {
  uint32_t rc;
  char *err;
} ckgo_status;

typedef struct {
  uint32_t rc;
  char *err;
  ckgo_client client;
} ckgo_open_result;

/* A get: on CACHEKIT_OK the value is in buf[0..len]; on CACHEKIT_BUFFER_TOO_SMALL, len is the
 * size needed (and err is NULL: the caller grows its buffer and asks again). */
typedef struct {
  uint32_t rc;
  uint32_t source;
  uint64_t len;
  uint64_t created_ms;
  uint64_t expires_ms;
  uint64_t grace_until_ms;
  char *err;
  uint64_t version;
  uint8_t *alloc; /* ckgo_get_alloc: the library's buffer, for cachekit_buf_free;
                     ckgo_get_and_delete: malloc'd when buf was too small, for free */
  uint8_t stale;
  uint8_t integer;
} ckgo_get_result;

/* One entry of a batch, as ckgo_batch_layout describes it. */
typedef struct {
  uint64_t len;
  uint64_t created_ms;
  uint64_t expires_ms;
  uint64_t grace_until_ms;
  uint64_t version;
  uint32_t source;
  uint8_t found;
  uint8_t stale;
  uint8_t integer;
} ckgo_entry;

typedef struct {
  uint32_t rc;
  char *err;
  cachekit_batch *batch;
} ckgo_batch_result;

typedef struct {
  uint32_t rc;
  char *err;
  cachekit_stats *stats;
} ckgo_stats_result;

typedef struct {
  uint32_t rc;
  const char *name;
  uint64_t value;
} ckgo_stat_entry;

typedef struct {
  uint32_t rc;
  char *err;
  uint64_t epoch;
  uint64_t rtt_us;
} ckgo_ping_result;

ckgo_open_result ckgo_open(const cachekit_options *options);
ckgo_open_result ckgo_with_namespace(ckgo_client client, const char *ns);
void ckgo_close(ckgo_client client);

ckgo_get_result ckgo_get(ckgo_client client, const uint8_t *key, size_t key_len,
                         uint8_t *buf, size_t buf_len);
/* The alternative Get was measured against: the library allocates (r.alloc), Go copies,
 * cachekit_buf_free frees. Only
 * the benchmarks use it (see bench_test.go). */
ckgo_get_result ckgo_get_alloc(ckgo_client client, const uint8_t *key,
                               size_t key_len);

/* keys: the keys back to back; key_lens: each one's length. */
ckgo_batch_result ckgo_get_many(ckgo_client client, const uint8_t *keys,
                                const size_t *key_lens, size_t count);
/* Describes the batch's `count` entries into out[0..count]. */
void ckgo_batch_layout(const cachekit_batch *batch, size_t count, ckgo_entry *out);
/* Copies the batch's hits back to back into dst (sized from ckgo_batch_layout). */
void ckgo_batch_copy(const cachekit_batch *batch, size_t count, uint8_t *dst);

/* tags: tag_count NUL-terminated strings back to back (NULL when tag_count is 0). */
ckgo_status ckgo_set(ckgo_client client, const uint8_t *key, size_t key_len,
                     const uint8_t *value, size_t value_len, uint64_t ttl_ms, uint64_t grace_ms,
                     const char *tags, size_t tag_count);
ckgo_status ckgo_delete(ckgo_client client, const uint8_t *key, size_t key_len);
/* cachekit_set_many / cachekit_delete_many: keys (and values) back to back with their
 * lengths, tags as for ckgo_set. results[0..count] receives each item's code; when the batch
 * failed as a whole (rc an error and no item answered) every results[i] is CKGO_NO_RESULT. */
#define CKGO_NO_RESULT UINT32_MAX
ckgo_status ckgo_set_many(ckgo_client client, const uint8_t *keys, const size_t *key_lens,
                          const uint8_t *values, const size_t *value_lens, size_t count,
                          uint64_t ttl_ms, uint64_t grace_ms, const char *tags, size_t tag_count,
                          uint32_t *results);
ckgo_status ckgo_delete_many(ckgo_client client, const uint8_t *keys, const size_t *key_lens,
                             size_t count, uint32_t *results);
ckgo_status ckgo_invalidate(ckgo_client client, const char *tags, size_t tag_count,
                            uint32_t flags);
ckgo_status ckgo_clear(ckgo_client client);
ckgo_ping_result ckgo_ping(ckgo_client client);

ckgo_stats_result ckgo_stats_fetch(ckgo_client client);
ckgo_stat_entry ckgo_stats_entry(const cachekit_stats *stats, size_t index);

/* ---- atomic and management operations (manage_shim.c) */

/* Which conditional write ckgo_set_if makes. */
enum { CKGO_ADD = 0, CKGO_REPLACE = 1, CKGO_CAS = 2 };

typedef struct {
  uint32_t rc;
  char *err;
  uint8_t yes; /* stored (add/replace/cas), found (touch) */
} ckgo_bool_result;

typedef struct {
  uint32_t rc;
  char *err;
  int64_t value;
} ckgo_int_result;

/* tags as for ckgo_set; flags: CACHEKIT_SET_* bits. */
ckgo_bool_result ckgo_set_if(ckgo_client client, uint32_t condition, const uint8_t *key,
                             size_t key_len, const uint8_t *value, size_t value_len,
                             uint64_t version, uint64_t ttl_ms, uint64_t grace_ms, uint32_t flags,
                             const char *tags, size_t tag_count);
ckgo_status ckgo_set_i64(ckgo_client client, const uint8_t *key, size_t key_len, int64_t value,
                         uint64_t ttl_ms, uint64_t grace_ms, const char *tags, size_t tag_count);
/* has_initial 0: a missing key is CACHEKIT_MISS. decrement: cachekit_decr. */
ckgo_int_result ckgo_incr(ckgo_client client, const uint8_t *key, size_t key_len, int64_t delta,
                          uint8_t has_initial, int64_t initial, uint64_t ttl_ms,
                          uint8_t decrement);
/* As ckgo_get; when buf is too small the value (already removed from the cache) is fetched
 * again in the same call, on the same thread (the library keeps it per thread), into a
 * malloc'd r.alloc of r.len bytes that Go copies and frees. */
ckgo_get_result ckgo_get_and_delete(ckgo_client client, const uint8_t *key, size_t key_len,
                                    uint8_t *buf, size_t buf_len);
/* ttl_ms: negative = never expires, 0 = at once. */
ckgo_bool_result ckgo_touch(ckgo_client client, const uint8_t *key, size_t key_len,
                            int64_t ttl_ms);
/* value: ms left, -1 = never expires; CACHEKIT_MISS when missing. */
ckgo_int_result ckgo_ttl(ckgo_client client, const uint8_t *key, size_t key_len);

typedef struct {
  uint32_t rc;
  char *err;
  cachekit_scan *scan;
} ckgo_scan_open_result;

/* On CACHEKIT_OK the key is in buf[0..key_len]; on CACHEKIT_BUFFER_TOO_SMALL key_len is the
 * size needed (err NULL). */
typedef struct {
  uint32_t rc;
  char *err;
  uint64_t key_len;
  cachekit_scan_item item;
} ckgo_scan_next_result;

typedef struct {
  uint32_t rc;
  char *err;
  uint64_t count;
} ckgo_count_result;

typedef struct {
  uint32_t rc;
  char *err;
  cachekit_namespaces *list;
} ckgo_namespaces_result;

/* On CACHEKIT_OK the name is in buf, NUL-terminated, size bytes with the NUL; on
 * CACHEKIT_BUFFER_TOO_SMALL size is the size needed. */
typedef struct {
  uint32_t rc;
  uint64_t size;
  uint64_t entries;
  uint64_t bytes;
} ckgo_namespace_entry;

ckgo_scan_open_result ckgo_scan_open(ckgo_client client, const uint8_t *pattern,
                                     size_t pattern_len, const char *tag, uint8_t exact,
                                     uint32_t page_size);
ckgo_scan_next_result ckgo_scan_next(cachekit_scan *scan, uint8_t *buf, size_t buf_len);
ckgo_count_result ckgo_delete_matching(ckgo_client client, const uint8_t *pattern,
                                       size_t pattern_len, const char *tag, uint8_t exact);
ckgo_namespaces_result ckgo_namespaces_open(ckgo_client client);
ckgo_namespace_entry ckgo_namespaces_next(cachekit_namespaces *list, char *buf, size_t buf_len);

#endif
