// The C side of query.go: see lease_shim.h.
#include <stdlib.h>
#include <string.h>

#include "lease_shim.h"

static char *lease_error(void) {
  size_t needed = 0;
  cachekit_last_error_message(NULL, 0, &needed);
  char *msg = malloc(needed ? needed : 1);
  if (msg == NULL) return NULL;
  msg[0] = 0;
  size_t again = 0;
  if (cachekit_last_error_message(msg, needed ? needed : 1, &again) != CACHEKIT_OK) msg[0] = 0;
  return msg;
}

/* Answers that are not errors: they leave no message to read. */
static int is_answer(uint32_t rc) {
  return rc == CACHEKIT_OK || rc == CACHEKIT_MISS || rc == CACHEKIT_BUFFER_TOO_SMALL ||
         rc == CACHEKIT_LEASE_GRANTED || rc == CACHEKIT_LEASE_BUSY;
}

static void lease_fill_info(ckgo_get_result *r, size_t len, const cachekit_value_info *info) {
  r->len = len;
  r->source = info->source;
  r->created_ms = info->created_ms;
  r->expires_ms = info->expires_ms;
  r->grace_until_ms = info->grace_until_ms;
  r->stale = info->stale;
  r->version = info->version;
  r->integer = info->integer;
}

static cachekit_lease_options options(uint32_t flags, uint64_t wait_ms, uint64_t lease_ms) {
  cachekit_lease_options o;
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.flags = flags;
  o.wait_timeout_ms = wait_ms;
  o.lease_timeout_ms = lease_ms;
  return o;
}

ckgo_lease_result ckgo_lease_acquire(ckgo_client h, const uint8_t *key, size_t key_len,
                                     uint32_t flags, uint64_t wait_ms, uint64_t lease_ms,
                                     uint8_t *buf, size_t buf_len) {
  ckgo_lease_result r;
  memset(&r, 0, sizeof r);
  cachekit_lease_options o = options(flags, wait_ms, lease_ms);
  cachekit_lease *lease = NULL;
  cachekit_value_info info;
  size_t len = 0;
  r.get.rc = cachekit_lease_acquire((const cachekit_client *)h, key, key_len, &o, &lease, buf,
                                    buf_len, &len, &info);
  if (r.get.rc == CACHEKIT_OK) lease_fill_info(&r.get, len, &info);
  else if (r.get.rc == CACHEKIT_BUFFER_TOO_SMALL) r.get.len = len;
  else if (r.get.rc == CACHEKIT_LEASE_GRANTED) r.lease = (ckgo_lease)lease;
  if (!is_answer(r.get.rc)) r.get.err = lease_error();
  return r;
}

ckgo_lease_result ckgo_refresh_lease(ckgo_client h, const uint8_t *key, size_t key_len,
                                     uint32_t flags, uint64_t lease_ms) {
  ckgo_lease_result r;
  memset(&r, 0, sizeof r);
  cachekit_lease_options o = options(flags, 0, lease_ms);
  cachekit_lease *lease = NULL;
  r.get.rc = cachekit_refresh_lease((const cachekit_client *)h, key, key_len, &o, &lease);
  if (r.get.rc == CACHEKIT_LEASE_GRANTED) r.lease = (ckgo_lease)lease;
  if (!is_answer(r.get.rc)) r.get.err = lease_error();
  return r;
}

ckgo_get_result ckgo_get_local(ckgo_client h, const uint8_t *key, size_t key_len, uint8_t *buf,
                               size_t buf_len) {
  ckgo_get_result r;
  memset(&r, 0, sizeof r);
  cachekit_value_info info;
  size_t len = 0;
  r.rc = cachekit_get_local((const cachekit_client *)h, key, key_len, buf, buf_len, &len, &info);
  if (r.rc == CACHEKIT_OK) lease_fill_info(&r, len, &info);
  else if (r.rc == CACHEKIT_BUFFER_TOO_SMALL) r.len = len;
  if (!is_answer(r.rc)) r.err = lease_error();
  return r;
}

enum { FILL_STACK_TAGS = 16 };

ckgo_fill_result ckgo_lease_fill(ckgo_lease lease, const uint8_t *value, size_t value_len,
                                 uint64_t ttl_ms, uint64_t grace_ms, const char *tags,
                                 size_t tag_count) {
  ckgo_fill_result r = {0, NULL, 0};
  const char *stack[FILL_STACK_TAGS];
  const char **arr = stack;
  if (tag_count > FILL_STACK_TAGS) {
    arr = malloc(tag_count * sizeof *arr);
    if (arr == NULL) {
      cachekit_lease_release((cachekit_lease *)lease);
      r.rc = CACHEKIT_IO;
      r.err = strdup("out of memory for the tag list");
      return r;
    }
  }
  for (size_t i = 0; i < tag_count; i++) {
    arr[i] = tags;
    tags += strlen(tags) + 1;
  }
  cachekit_set_options o;
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.ttl_ms = ttl_ms;
  o.grace_ms = grace_ms;
  o.tags = tag_count ? arr : NULL;
  o.tag_count = tag_count;
  bool stored = false;
  r.rc = cachekit_lease_fill((cachekit_lease *)lease, value, value_len, &o, &stored);
  if (r.rc == CACHEKIT_OK) r.stored = stored;
  else r.err = lease_error();
  if (arr != stack) free(arr);
  return r;
}

void ckgo_lease_release(ckgo_lease lease) { cachekit_lease_release((cachekit_lease *)lease); }
