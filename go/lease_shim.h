/*
 * lease_shim.h - the C wrappers of the fill-lease calls (query.go), for the reasons given in
 * shim.h: the last error message is read in the same C call as the failure, outputs come back
 * in a struct returned by value, and handles cross as integers.
 */
#ifndef CACHEKIT_GO_LEASE_SHIM_H
#define CACHEKIT_GO_LEASE_SHIM_H

#include "shim.h"

/* A cachekit_lease *, as an integer. 0 is no lease. */
typedef uintptr_t ckgo_lease;

/* cachekit_lease_acquire / cachekit_refresh_lease / cachekit_get_local: on CACHEKIT_OK the
 * value is in buf[0..get.len] as for ckgo_get; on CACHEKIT_LEASE_GRANTED, lease is set. */
typedef struct {
  ckgo_get_result get;
  ckgo_lease lease;
} ckgo_lease_result;

typedef struct {
  uint32_t rc;
  char *err;
  uint8_t stored;
} ckgo_fill_result;

/* flags: CACHEKIT_LEASE_*; a 0 ms is the library's default. */
ckgo_lease_result ckgo_lease_acquire(ckgo_client client, const uint8_t *key, size_t key_len,
                                     uint32_t flags, uint64_t wait_ms, uint64_t lease_ms,
                                     uint8_t *buf, size_t buf_len);
ckgo_lease_result ckgo_refresh_lease(ckgo_client client, const uint8_t *key, size_t key_len,
                                     uint32_t flags, uint64_t lease_ms);
/* cachekit_get_local (the segment only), in a ckgo_get_result. */
ckgo_get_result ckgo_get_local(ckgo_client client, const uint8_t *key, size_t key_len,
                               uint8_t *buf, size_t buf_len);
/* Consumes the lease. tags: tag_count NUL-terminated strings back to back. */
ckgo_fill_result ckgo_lease_fill(ckgo_lease lease, const uint8_t *value, size_t value_len,
                                 uint64_t ttl_ms, uint64_t grace_ms, const char *tags,
                                 size_t tag_count);
void ckgo_lease_release(ckgo_lease lease);

#endif /* CACHEKIT_GO_LEASE_SHIM_H */
