// The C side of the Go binding: see shim.h for why each wrapper exists.
#include <stdlib.h>
#include <string.h>

#include "shim.h"

/* The calling thread's last error message, malloc'd for Go to free. Called right after the
 * failing call, on the same thread: that is the whole point of these wrappers. */
static char *take_error(void) {
  size_t needed = 0;
  cachekit_last_error_message(NULL, 0, &needed);
  char *msg = malloc(needed ? needed : 1);
  if (msg == NULL) return NULL;
  msg[0] = 0;
  size_t again = 0;
  if (cachekit_last_error_message(msg, needed ? needed : 1, &again) != CACHEKIT_OK) msg[0] = 0;
  return msg;
}

/* The handle back as the pointer it is. */
#define CLIENT(h) ((const cachekit_client *)(h))

static int is_error(cachekit_result rc) { return rc != CACHEKIT_OK && rc != CACHEKIT_MISS; }

static ckgo_status status(cachekit_result rc) {
  ckgo_status s = {rc, NULL};
  if (is_error(rc)) s.err = take_error();
  return s;
}

/* An array of `count` pointers into a flat buffer of NUL-terminated strings: on the stack for
 * the usual handful, else malloc'd (*heap is then set, for the caller to free). */
enum { STACK_TAGS = 16 };

static const char **split_tags(const char *flat, size_t count, const char **stack, int *heap) {
  const char **arr = stack;
  *heap = 0;
  if (count > STACK_TAGS) {
    arr = malloc(count * sizeof *arr);
    if (arr == NULL) return NULL;
    *heap = 1;
  }
  for (size_t i = 0; i < count; i++) {
    arr[i] = flat;
    flat += strlen(flat) + 1;
  }
  return arr;
}

ckgo_open_result ckgo_open(const cachekit_options *options) {
  ckgo_open_result r = {0, NULL, 0};
  cachekit_client *client = NULL;
  r.rc = cachekit_client_open(options, &client);
  if (r.rc == CACHEKIT_OK) r.client = (ckgo_client)client;
  if (is_error(r.rc)) r.err = take_error();
  return r;
}

ckgo_open_result ckgo_with_namespace(ckgo_client h, const char *ns) {
  ckgo_open_result r = {0, NULL, 0};
  cachekit_client *client = NULL;
  r.rc = cachekit_client_with_namespace(CLIENT(h), ns, &client);
  if (r.rc == CACHEKIT_OK) r.client = (ckgo_client)client;
  if (is_error(r.rc)) r.err = take_error();
  return r;
}

void ckgo_close(ckgo_client h) { cachekit_client_close((cachekit_client *)h); }

static void fill_info(ckgo_get_result *r, const cachekit_value_info *info) {
  r->source = info->source;
  r->created_ms = info->created_ms;
  r->expires_ms = info->expires_ms;
  r->grace_until_ms = info->grace_until_ms;
  r->stale = info->stale;
  r->version = info->version;
  r->integer = info->integer;
}

ckgo_get_result ckgo_get(ckgo_client h, const uint8_t *key, size_t key_len,
                         uint8_t *buf, size_t buf_len) {
  ckgo_get_result r;
  memset(&r, 0, sizeof r);
  cachekit_value_info info;
  size_t len = 0;
  r.rc = cachekit_get(CLIENT(h), key, key_len, buf, buf_len, &len, &info);
  if (r.rc == CACHEKIT_OK) {
    r.len = len;
    fill_info(&r, &info);
  } else if (r.rc == CACHEKIT_BUFFER_TOO_SMALL) {
    r.len = len;
  } else if (is_error(r.rc)) {
    r.err = take_error();
  }
  return r;
}

ckgo_get_result ckgo_get_alloc(ckgo_client h, const uint8_t *key,
                               size_t key_len) {
  ckgo_get_result r;
  memset(&r, 0, sizeof r);
  cachekit_value_info info;
  size_t len = 0;
  r.rc = cachekit_get_alloc(CLIENT(h), key, key_len, &r.alloc, &len, &info);
  if (r.rc == CACHEKIT_OK) {
    r.len = len;
    fill_info(&r, &info);
  } else if (is_error(r.rc)) {
    r.err = take_error();
  }
  return r;
}

ckgo_batch_result ckgo_get_many(ckgo_client h, const uint8_t *keys,
                                const size_t *key_lens, size_t count) {
  ckgo_batch_result r = {0, NULL, NULL};
  const uint8_t **ptrs = NULL;
  if (count > 0) {
    ptrs = malloc(count * sizeof *ptrs);
    if (ptrs == NULL) {
      r.rc = CACHEKIT_IO;
      r.err = strdup("out of memory building the key array");
      return r;
    }
    size_t off = 0;
    for (size_t i = 0; i < count; i++) {
      ptrs[i] = key_lens[i] ? keys + off : NULL;
      off += key_lens[i];
    }
  }
  r.rc = cachekit_get_many(CLIENT(h), ptrs, key_lens, count, &r.batch);
  if (is_error(r.rc)) r.err = take_error();
  free(ptrs);
  return r;
}

void ckgo_batch_layout(const cachekit_batch *batch, size_t count, ckgo_entry *out) {
  for (size_t i = 0; i < count; i++) {
    const uint8_t *v = NULL;
    size_t len = 0;
    cachekit_value_info info;
    memset(&out[i], 0, sizeof out[i]);
    if (cachekit_batch_get(batch, i, &v, &len, &info) == CACHEKIT_OK) {
      out[i].found = 1;
      out[i].len = len;
      out[i].created_ms = info.created_ms;
      out[i].expires_ms = info.expires_ms;
      out[i].grace_until_ms = info.grace_until_ms;
      out[i].source = info.source;
      out[i].stale = info.stale;
      out[i].version = info.version;
      out[i].integer = info.integer;
    }
  }
}

void ckgo_batch_copy(const cachekit_batch *batch, size_t count, uint8_t *dst) {
  for (size_t i = 0; i < count; i++) {
    const uint8_t *v = NULL;
    size_t len = 0;
    if (cachekit_batch_get(batch, i, &v, &len, NULL) == CACHEKIT_OK && len > 0) {
      memcpy(dst, v, len);
      dst += len;
    }
  }
}

ckgo_status ckgo_set(ckgo_client h, const uint8_t *key, size_t key_len,
                     const uint8_t *value, size_t value_len, uint64_t ttl_ms, uint64_t grace_ms,
                     const char *tags, size_t tag_count) {
  const char *stack[STACK_TAGS];
  int heap = 0;
  const char **arr = NULL;
  if (tag_count > 0) {
    arr = split_tags(tags, tag_count, stack, &heap);
    if (arr == NULL) return (ckgo_status){CACHEKIT_IO, strdup("out of memory building the tag array")};
  }
  ckgo_status s = status(
      cachekit_set(CLIENT(h), key, key_len, value, value_len, ttl_ms, grace_ms, arr, tag_count));
  if (heap) free(arr);
  return s;
}

ckgo_status ckgo_delete(ckgo_client h, const uint8_t *key, size_t key_len) {
  return status(cachekit_delete(CLIENT(h), key, key_len));
}

/* Pointers into a flat buffer of `count` items of lens[i] bytes (NULL for an empty one);
 * malloc'd, NULL when out of memory. */
static const uint8_t **split_flat(const uint8_t *flat, const size_t *lens, size_t count) {
  const uint8_t **ptrs = malloc(count * sizeof *ptrs);
  if (ptrs == NULL) return NULL;
  size_t off = 0;
  for (size_t i = 0; i < count; i++) {
    ptrs[i] = lens[i] ? flat + off : NULL;
    off += lens[i];
  }
  return ptrs;
}

/* Copies each item's code to results; CKGO_NO_RESULT everywhere when none was written. */
static void copy_results(const cachekit_result *codes, size_t count, uint32_t *results) {
  for (size_t i = 0; i < count; i++) results[i] = codes[i];
}

ckgo_status ckgo_set_many(ckgo_client h, const uint8_t *keys, const size_t *key_lens,
                          const uint8_t *values, const size_t *value_lens, size_t count,
                          uint64_t ttl_ms, uint64_t grace_ms, const char *tags, size_t tag_count,
                          uint32_t *results) {
  if (count == 0) return status(cachekit_set_many(CLIENT(h), NULL, NULL, NULL, NULL, 0, ttl_ms,
                                                  grace_ms, NULL, 0, NULL));
  const char *stack[STACK_TAGS];
  int heap = 0;
  const char **arr = NULL;
  const uint8_t **kp = split_flat(keys, key_lens, count);
  const uint8_t **vp = split_flat(values, value_lens, count);
  cachekit_result *codes = malloc(count * sizeof *codes);
  if (tag_count > 0) arr = split_tags(tags, tag_count, stack, &heap);
  ckgo_status s;
  if (kp == NULL || vp == NULL || codes == NULL || (tag_count > 0 && arr == NULL)) {
    s = (ckgo_status){CACHEKIT_IO, strdup("out of memory building the item arrays")};
  } else {
    for (size_t i = 0; i < count; i++) codes[i] = (cachekit_result)CKGO_NO_RESULT;
    s = status(cachekit_set_many(CLIENT(h), kp, key_lens, vp, value_lens, count, ttl_ms, grace_ms,
                                 arr, tag_count, codes));
    copy_results(codes, count, results);
  }
  if (heap) free(arr);
  free(kp);
  free(vp);
  free(codes);
  return s;
}

ckgo_status ckgo_delete_many(ckgo_client h, const uint8_t *keys, const size_t *key_lens,
                             size_t count, uint32_t *results) {
  if (count == 0) return status(cachekit_delete_many(CLIENT(h), NULL, NULL, 0, NULL));
  const uint8_t **kp = split_flat(keys, key_lens, count);
  cachekit_result *codes = malloc(count * sizeof *codes);
  ckgo_status s;
  if (kp == NULL || codes == NULL) {
    s = (ckgo_status){CACHEKIT_IO, strdup("out of memory building the key array")};
  } else {
    for (size_t i = 0; i < count; i++) codes[i] = (cachekit_result)CKGO_NO_RESULT;
    s = status(cachekit_delete_many(CLIENT(h), kp, key_lens, count, codes));
    copy_results(codes, count, results);
  }
  free(kp);
  free(codes);
  return s;
}

ckgo_status ckgo_invalidate(ckgo_client h, const char *tags, size_t tag_count,
                            uint32_t flags) {
  const char *stack[STACK_TAGS];
  int heap = 0;
  const char **arr = NULL;
  if (tag_count > 0) {
    arr = split_tags(tags, tag_count, stack, &heap);
    if (arr == NULL) return (ckgo_status){CACHEKIT_IO, strdup("out of memory building the tag array")};
  }
  ckgo_status s = status(cachekit_invalidate(CLIENT(h), arr, tag_count, flags));
  if (heap) free(arr);
  return s;
}

ckgo_status ckgo_clear(ckgo_client h) { return status(cachekit_clear(CLIENT(h))); }

ckgo_ping_result ckgo_ping(ckgo_client h) {
  ckgo_ping_result r = {0, NULL, 0, 0};
  r.rc = cachekit_ping(CLIENT(h), &r.epoch, &r.rtt_us);
  if (is_error(r.rc)) r.err = take_error();
  return r;
}

ckgo_stats_result ckgo_stats_fetch(ckgo_client h) {
  ckgo_stats_result r = {0, NULL, NULL};
  r.rc = cachekit_stats_fetch(CLIENT(h), &r.stats);
  if (is_error(r.rc)) r.err = take_error();
  return r;
}

ckgo_stat_entry ckgo_stats_entry(const cachekit_stats *stats, size_t index) {
  ckgo_stat_entry e = {0, NULL, 0};
  e.rc = cachekit_stats_entry(stats, index, &e.name, &e.value);
  return e;
}

/* ---- atomic and management operations */

/* A cachekit_set_options over tags split from the flat buffer (arr: the caller's stack array,
 * or malloc'd when *heap is set). Returns 0 when the tag array cannot be allocated. */
static int set_options(cachekit_set_options *so, uint64_t ttl_ms, uint64_t grace_ms, uint32_t flags,
                       const char *tags, size_t tag_count, const char **stack, int *heap) {
  memset(so, 0, sizeof *so);
  so->struct_size = sizeof *so;
  so->flags = flags;
  so->ttl_ms = ttl_ms;
  so->grace_ms = grace_ms;
  *heap = 0;
  if (tag_count > 0) {
    so->tags = split_tags(tags, tag_count, stack, heap);
    if (so->tags == NULL) return 0;
    so->tag_count = tag_count;
  }
  return 1;
}

#define NO_TAG_MEMORY "out of memory building the tag array"

ckgo_bool_result ckgo_set_if(ckgo_client h, uint32_t condition, const uint8_t *key,
                             size_t key_len, const uint8_t *value, size_t value_len,
                             uint64_t version, uint64_t ttl_ms, uint64_t grace_ms, uint32_t flags,
                             const char *tags, size_t tag_count) {
  ckgo_bool_result r = {0, NULL, 0};
  const char *stack[STACK_TAGS];
  int heap = 0;
  cachekit_set_options so;
  if (!set_options(&so, ttl_ms, grace_ms, flags, tags, tag_count, stack, &heap)) {
    r.rc = CACHEKIT_IO;
    r.err = strdup(NO_TAG_MEMORY);
    return r;
  }
  bool stored = false;
  switch (condition) {
    case CKGO_ADD:
      r.rc = cachekit_add(CLIENT(h), key, key_len, value, value_len, &so, &stored);
      break;
    case CKGO_REPLACE:
      r.rc = cachekit_replace(CLIENT(h), key, key_len, value, value_len, &so, &stored);
      break;
    default:
      r.rc = cachekit_cas(CLIENT(h), key, key_len, value, value_len, version, &so, &stored);
      break;
  }
  if (heap) free((void *)so.tags);
  r.yes = stored;
  if (is_error(r.rc)) r.err = take_error();
  return r;
}

ckgo_status ckgo_set_i64(ckgo_client h, const uint8_t *key, size_t key_len, int64_t value,
                         uint64_t ttl_ms, uint64_t grace_ms, const char *tags, size_t tag_count) {
  const char *stack[STACK_TAGS];
  int heap = 0;
  cachekit_set_options so;
  if (!set_options(&so, ttl_ms, grace_ms, 0, tags, tag_count, stack, &heap))
    return (ckgo_status){CACHEKIT_IO, strdup(NO_TAG_MEMORY)};
  ckgo_status s = status(cachekit_set_i64(CLIENT(h), key, key_len, value, &so));
  if (heap) free((void *)so.tags);
  return s;
}

ckgo_int_result ckgo_incr(ckgo_client h, const uint8_t *key, size_t key_len, int64_t delta,
                          uint8_t has_initial, int64_t initial, uint64_t ttl_ms,
                          uint8_t decrement) {
  ckgo_int_result r = {0, NULL, 0};
  const int64_t *init = has_initial ? &initial : NULL;
  r.rc = decrement ? cachekit_decr(CLIENT(h), key, key_len, delta, init, ttl_ms, &r.value)
                   : cachekit_incr(CLIENT(h), key, key_len, delta, init, ttl_ms, &r.value);
  if (is_error(r.rc)) r.err = take_error();
  return r;
}

ckgo_get_result ckgo_get_and_delete(ckgo_client h, const uint8_t *key, size_t key_len,
                                    uint8_t *buf, size_t buf_len) {
  ckgo_get_result r;
  memset(&r, 0, sizeof r);
  cachekit_value_info info;
  size_t len = 0;
  r.rc = cachekit_get_and_delete(CLIENT(h), key, key_len, buf, buf_len, &len, &info);
  if (r.rc == CACHEKIT_BUFFER_TOO_SMALL) {
    /* The entry is gone; the library holds its value for this thread and this key, and
     * hands it over on the next call from the same thread: make it now, before Go can move
     * to another thread. */
    r.alloc = malloc(len ? len : 1);
    if (r.alloc == NULL) {
      r.rc = CACHEKIT_IO;
      r.err = strdup("out of memory for the value taken by get_and_delete");
      return r;
    }
    r.rc = cachekit_get_and_delete(CLIENT(h), key, key_len, r.alloc, len, &len, &info);
    if (r.rc != CACHEKIT_OK) {
      free(r.alloc);
      r.alloc = NULL;
    }
  }
  if (r.rc == CACHEKIT_OK) {
    r.len = len;
    fill_info(&r, &info);
  } else if (is_error(r.rc)) {
    r.err = take_error();
  }
  return r;
}

ckgo_bool_result ckgo_touch(ckgo_client h, const uint8_t *key, size_t key_len, int64_t ttl_ms) {
  ckgo_bool_result r = {0, NULL, 0};
  bool found = false;
  r.rc = cachekit_touch(CLIENT(h), key, key_len, ttl_ms, &found);
  r.yes = found;
  if (is_error(r.rc)) r.err = take_error();
  return r;
}

ckgo_int_result ckgo_ttl(ckgo_client h, const uint8_t *key, size_t key_len) {
  ckgo_int_result r = {0, NULL, 0};
  r.rc = cachekit_ttl(CLIENT(h), key, key_len, &r.value);
  if (is_error(r.rc)) r.err = take_error();
  return r;
}

ckgo_scan_open_result ckgo_scan_open(ckgo_client h, const uint8_t *pattern, size_t pattern_len,
                                     const char *tag, uint8_t exact, uint32_t page_size) {
  ckgo_scan_open_result r = {0, NULL, NULL};
  r.rc = cachekit_scan_open(CLIENT(h), pattern, pattern_len, tag, exact, page_size, &r.scan);
  if (is_error(r.rc)) r.err = take_error();
  return r;
}

ckgo_scan_next_result ckgo_scan_next(cachekit_scan *scan, uint8_t *buf, size_t buf_len) {
  ckgo_scan_next_result r;
  memset(&r, 0, sizeof r);
  size_t len = 0;
  r.rc = cachekit_scan_next(scan, buf, buf_len, &len, &r.item);
  if (r.rc == CACHEKIT_OK || r.rc == CACHEKIT_BUFFER_TOO_SMALL) {
    r.key_len = len;
  } else if (is_error(r.rc)) {
    r.err = take_error();
  }
  return r;
}

ckgo_count_result ckgo_delete_matching(ckgo_client h, const uint8_t *pattern,
                                       size_t pattern_len, const char *tag, uint8_t exact) {
  ckgo_count_result r = {0, NULL, 0};
  r.rc = cachekit_delete_matching(CLIENT(h), pattern, pattern_len, tag, exact, &r.count);
  if (is_error(r.rc)) r.err = take_error();
  return r;
}

ckgo_namespaces_result ckgo_namespaces_open(ckgo_client h) {
  ckgo_namespaces_result r = {0, NULL, NULL};
  r.rc = cachekit_namespaces_open(CLIENT(h), &r.list);
  if (is_error(r.rc)) r.err = take_error();
  return r;
}

ckgo_namespace_entry ckgo_namespaces_next(cachekit_namespaces *list, char *buf, size_t buf_len) {
  ckgo_namespace_entry e = {0, 0, 0, 0};
  size_t size = 0;
  e.rc = cachekit_namespaces_next(list, buf, buf_len, &size, &e.entries, &e.bytes);
  e.size = size;
  return e;
}
