/*
 * The whole C API against a real cachekitd, one process: every function, every documented
 * result, every error path (NULL arguments, buffers too small, daemon not running, values and
 * keys over the limits, bad tags, bad options), and "outputs are written only on success".
 *
 * Usage: test_api SOCKET
 *   SOCKET: the socket of a running cachekitd started with --max-value-bytes 64KiB.
 * For large values the program also starts a cachekitd of its own with --max-value-bytes
 * 4MiB: $CACHEKITD_BIN, else the cachekitd next to the libcachekit.so it runs with (the
 * build directory, under scripts/test-c).
 * Built by scripts/test-c with -DEXPECTED_VERSION="x.y.z" (the version in Cargo.toml).
 */
#include <dlfcn.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#ifndef EXPECTED_VERSION
#error "build with -DEXPECTED_VERSION=\"x.y.z\" (the version in Cargo.toml)"
#endif

static const char *SOCKET;
static char ABSENT_SOCKET[4200];
static cachekit_client *C; /* namespace "api", shared by the tests */

#define K(s) (const uint8_t *)(s), (sizeof(s) - 1)

/* ---- version and result codes ---- */

static void version_macros_match_the_library_and_cargo(void) {
  char want[64];
  snprintf(want, sizeof want, "%d.%d.%d", CACHEKIT_VERSION_MAJOR, CACHEKIT_VERSION_MINOR,
           CACHEKIT_VERSION_PATCH);
  CHECK(cachekit_version() != NULL);
  CHECK(strcmp(cachekit_version(), want) == 0);
  CHECK(strcmp(want, EXPECTED_VERSION) == 0);
}

static void every_code_has_a_static_description(void) {
  const char *seen[CACHEKIT_COMPUTE_FAILED + 1];
  for (uint32_t code = 0; code <= CACHEKIT_COMPUTE_FAILED; code++) {
    const char *d = cachekit_result_describe(code);
    CHECK(d != NULL && d[0] != 0);
    CHECK(strcmp(d, "unknown cachekit result code") != 0);
    for (uint32_t j = 0; j < code; j++) CHECK(strcmp(seen[j], d) != 0);
    seen[code] = d;
    CHECK(cachekit_result_describe(code) == d); /* static: the same pointer every time */
  }
  CHECK(strcmp(cachekit_result_describe(CACHEKIT_COMPUTE_FAILED + 1),
               "unknown cachekit result code") == 0);
  CHECK(strcmp(cachekit_result_describe(0xFFFFFFFFu), "unknown cachekit result code") == 0);
  CHECK(CACHEKIT_OK == 0);
}

/* ---- opening ---- */

static void daemon_not_running_is_unavailable_with_a_helpful_message(void) {
  cachekit_options o;
  cachekit_client *c = (cachekit_client *)0x1; /* sentinel: must stay untouched */
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.socket_path = ABSENT_SOCKET;
  CHECK_RC(cachekit_client_open(&o, &c), CACHEKIT_UNAVAILABLE);
  CHECK(c == (cachekit_client *)0x1);
  CHECK_MSG("cachekitd is not running at ");
  CHECK_MSG(ABSENT_SOCKET);
  CHECK_MSG("start it with `cachekitd");

  /* Lazy: open succeeds, gets miss, writes are unavailable. */
  o.flags = CACHEKIT_OPEN_LAZY;
  c = NULL;
  CHECK_RC(cachekit_client_open(&o, &c), CACHEKIT_OK);
  CHECK(c != NULL);
  char buf[16];
  size_t len = 77;
  CHECK_RC(cachekit_get(c, K("k"), (uint8_t *)buf, sizeof buf, &len, NULL), CACHEKIT_MISS);
  CHECK_RC(cachekit_get_local(c, K("k"), (uint8_t *)buf, sizeof buf, &len, NULL), CACHEKIT_MISS);
  CHECK(len == 77);
  CHECK_RC(set_str(c, "k", "v", 0, NULL, 0), CACHEKIT_UNAVAILABLE);
  CHECK_MSG("cachekitd is not running");
  CHECK_RC(cachekit_delete(c, K("k")), CACHEKIT_UNAVAILABLE);
  CHECK_RC(cachekit_clear(c), CACHEKIT_UNAVAILABLE);
  CHECK_RC(cachekit_ping(c, NULL, NULL), CACHEKIT_UNAVAILABLE);
  cachekit_stats *s = NULL;
  CHECK_RC(cachekit_stats_fetch(c, &s), CACHEKIT_UNAVAILABLE);
  CHECK(s == NULL);
  cachekit_client_close(c);
}

static void options_are_checked(void) {
  cachekit_options o;
  cachekit_client *c = NULL;
  memset(&o, 0, sizeof o);
  o.socket_path = SOCKET;
  /* struct_size forgotten */
  CHECK_RC(cachekit_client_open(&o, &c), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("struct_size");
  o.struct_size = sizeof o;
  o.flags = 0x100;
  CHECK_RC(cachekit_client_open(&o, &c), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("flags");
  o.flags = 0;
  o.ns = "";
  CHECK_RC(cachekit_client_open(&o, &c), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("namespace is empty");
  char long_ns[200];
  memset(long_ns, 'n', 128);
  long_ns[128] = 0;
  o.ns = long_ns;
  CHECK_RC(cachekit_client_open(&o, &c), CACHEKIT_TOO_LARGE);
  CHECK_MSG("max_namespace_bytes");
  o.ns = "\xff\xfe";
  CHECK_RC(cachekit_client_open(&o, &c), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("UTF-8");
  o.ns = NULL;
  o.socket_path = NULL;
  o.instance = "bad/instance";
  CHECK_RC(cachekit_client_open(&o, &c), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("instance name");
  o.instance = NULL;
  o.socket_path = SOCKET;
  o.reserved = 1;
  CHECK_RC(cachekit_client_open(&o, &c), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("reserved");
  o.reserved = 0;
  o.redis_url = "not a url";
  CHECK_RC(cachekit_client_open(&o, &c), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("redis_url");
  CHECK(c == NULL);

  /* A program built against a newer header: larger struct, unknown fields zero = accepted. */
  struct {
    cachekit_options base;
    const char *future_redis_url;
  } newer;
  memset(&newer, 0, sizeof newer);
  newer.base.struct_size = sizeof newer;
  newer.base.socket_path = SOCKET;
  newer.base.ns = "api";
  CHECK_RC(cachekit_client_open(&newer.base, &c), CACHEKIT_OK);
  cachekit_client_close(c);
  c = NULL;
  newer.future_redis_url = "redis://localhost";
  CHECK_RC(cachekit_client_open(&newer.base, &c), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("does not know");
  CHECK(c == NULL);
}

/* ---- get and set ---- */

static void set_then_get_into_a_caller_buffer(void) {
  const char *tags[] = {"demo/greetings"};
  CHECK_RC(cachekit_set(C, K("greeting"), K("hello, world"), 60000, 5000, tags, 1), CACHEKIT_OK);
  uint8_t buf[64];
  size_t len = 0;
  cachekit_value_info info;
  memset(&info, 0xAB, sizeof info);
  long long before = unix_ms();
  CHECK_RC(cachekit_get(C, K("greeting"), buf, sizeof buf, &len, &info), CACHEKIT_OK);
  CHECK(len == 12 && memcmp(buf, "hello, world", 12) == 0);
  CHECK(!info.stale);
  CHECK(info.source == CACHEKIT_SOURCE_SEGMENT); /* served from shared memory */
  CHECK(info.created_ms > 0 && (long long)info.created_ms <= before + 1000);
  CHECK(info.expires_ms == info.created_ms + 60000);
  CHECK(info.grace_until_ms == info.expires_ms + 5000);
  /* info is optional */
  CHECK_RC(cachekit_get(C, K("greeting"), buf, sizeof buf, &len, NULL), CACHEKIT_OK);
  /* Exactly the right size is enough. */
  CHECK_RC(cachekit_get(C, K("greeting"), buf, 12, &len, NULL), CACHEKIT_OK);

  /* No TTL: expires_ms = 0, grace_until_ms = 0. */
  CHECK_RC(cachekit_set(C, K("forever"), K("x"), 0, 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(cachekit_get(C, K("forever"), buf, sizeof buf, &len, &info), CACHEKIT_OK);
  CHECK(info.expires_ms == 0 && info.grace_until_ms == 0 && !info.stale);
}

static void a_small_buffer_gets_the_size_and_nothing_else(void) {
  CHECK_RC(cachekit_set(C, K("sized"), K("0123456789"), 0, 0, NULL, 0), CACHEKIT_OK);
  size_t needed = 0;
  /* Pure size query. */
  CHECK_RC(cachekit_get(C, K("sized"), NULL, 0, &needed, NULL), CACHEKIT_BUFFER_TOO_SMALL);
  CHECK(needed == 10);
  CHECK_MSG("needs 10 bytes");
  /* One byte short: the buffer and info are untouched. */
  uint8_t buf[16];
  memset(buf, 0x5A, sizeof buf);
  cachekit_value_info info;
  memset(&info, 0xAB, sizeof info);
  needed = 0;
  CHECK_RC(cachekit_get(C, K("sized"), buf, 9, &needed, &info), CACHEKIT_BUFFER_TOO_SMALL);
  CHECK(needed == 10);
  for (size_t i = 0; i < sizeof buf; i++) CHECK(buf[i] == 0x5A);
  unsigned char *raw = (unsigned char *)&info;
  for (size_t i = 0; i < sizeof info; i++) CHECK(raw[i] == 0xAB);
  /* Then with the size it asked for. */
  uint8_t *exact = malloc(needed);
  size_t len = 0;
  CHECK_RC(cachekit_get(C, K("sized"), exact, needed, &len, NULL), CACHEKIT_OK);
  CHECK(len == 10 && memcmp(exact, "0123456789", 10) == 0);
  free(exact);
}

static void a_miss_writes_nothing(void) {
  uint8_t buf[8];
  memset(buf, 0x5A, sizeof buf);
  size_t len = 1234;
  cachekit_value_info info;
  memset(&info, 0xAB, sizeof info);
  CHECK_RC(cachekit_get(C, K("never-set"), buf, sizeof buf, &len, &info), CACHEKIT_MISS);
  CHECK(len == 1234 && buf[0] == 0x5A && ((unsigned char *)&info)[0] == 0xAB);
  uint8_t *p = (uint8_t *)0x1;
  CHECK_RC(cachekit_get_alloc(C, K("never-set"), &p, &len, &info), CACHEKIT_MISS);
  CHECK(p == (uint8_t *)0x1 && len == 1234);
}

static void binary_keys_values_and_empty_ones(void) {
  static const uint8_t key[] = {'a', 0, 'b', 0xFF};
  static const uint8_t val[] = {0, 1, 2, 0, 0xFE};
  CHECK_RC(cachekit_set(C, key, sizeof key, val, sizeof val, 0, 0, NULL, 0), CACHEKIT_OK);
  uint8_t buf[8];
  size_t len = 0;
  CHECK_RC(cachekit_get(C, key, sizeof key, buf, sizeof buf, &len, NULL), CACHEKIT_OK);
  CHECK(len == sizeof val && memcmp(buf, val, len) == 0);
  /* A different key that shares a prefix is another key. */
  CHECK_RC(cachekit_get(C, key, 3, buf, sizeof buf, &len, NULL), CACHEKIT_MISS);

  /* Empty value: OK with length 0, even into a NULL buffer. */
  CHECK_RC(cachekit_set(C, K("empty-value"), NULL, 0, 0, 0, NULL, 0), CACHEKIT_OK);
  len = 99;
  CHECK_RC(cachekit_get(C, K("empty-value"), NULL, 0, &len, NULL), CACHEKIT_OK);
  CHECK(len == 0);
  uint8_t *p = NULL;
  CHECK_RC(cachekit_get_alloc(C, K("empty-value"), &p, &len, NULL), CACHEKIT_OK);
  CHECK(p != NULL && len == 0);
  cachekit_buf_free(p);

  /* Empty key. */
  CHECK_RC(cachekit_set(C, NULL, 0, K("for the empty key"), 0, 0, NULL, 0), CACHEKIT_OK);
  char s[64];
  CHECK_RC(get_str(C, "", s, sizeof s), CACHEKIT_OK);
  CHECK(strcmp(s, "for the empty key") == 0);
}

static void get_alloc_returns_a_buffer_to_free(void) {
  /* Large enough to be LZ4-compressed in the envelope. */
  size_t n = 50000;
  uint8_t *big = malloc(n);
  for (size_t i = 0; i < n; i++) big[i] = (uint8_t)(i % 251);
  CHECK_RC(cachekit_set(C, K("big"), big, n, 0, 0, NULL, 0), CACHEKIT_OK);
  uint8_t *p = NULL;
  size_t len = 0;
  cachekit_value_info info;
  CHECK_RC(cachekit_get_alloc(C, K("big"), &p, &len, &info), CACHEKIT_OK);
  CHECK(p != NULL && len == n && memcmp(p, big, n) == 0);
  CHECK(!info.stale);
  cachekit_buf_free(p);
  cachekit_buf_free(NULL);
  /* And into a caller buffer, after a size query. */
  size_t needed = 0;
  CHECK_RC(cachekit_get(C, K("big"), NULL, 0, &needed, NULL), CACHEKIT_BUFFER_TOO_SMALL);
  CHECK(needed == n);
  uint8_t *buf = malloc(needed);
  CHECK_RC(cachekit_get(C, K("big"), buf, needed, &len, NULL), CACHEKIT_OK);
  CHECK(len == n && memcmp(buf, big, n) == 0);
  free(buf);
  free(big);
}

static void overwrite_and_delete(void) {
  char s[64];
  CHECK_RC(set_str(C, "k", "one", 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(set_str(C, "k", "two", 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(get_str(C, "k", s, sizeof s), CACHEKIT_OK);
  CHECK(strcmp(s, "two") == 0);
  CHECK_RC(cachekit_delete(C, K("k")), CACHEKIT_OK);
  CHECK_RC(cachekit_delete(C, K("k")), CACHEKIT_MISS);
  CHECK_RC(get_str(C, "k", s, sizeof s), CACHEKIT_MISS);
}

static void stale_hits_are_ok_with_the_stale_flag_then_miss(void) {
  /* 100 ms of life, then 60 s of grace. */
  CHECK_RC(cachekit_set(C, K("swr"), K("old"), 100, 60000, NULL, 0), CACHEKIT_OK);
  /* 50 ms of life, 50 ms of grace: gone soon after. */
  CHECK_RC(cachekit_set(C, K("gone"), K("x"), 50, 50, NULL, 0), CACHEKIT_OK);
  uint8_t buf[8];
  size_t len;
  cachekit_value_info info;
  long long deadline = mono_ms() + 20000;
  cachekit_result rc;
  for (;;) {
    rc = cachekit_get(C, K("swr"), buf, sizeof buf, &len, &info);
    if (rc != CACHEKIT_OK || info.stale || mono_ms() > deadline) break;
    sleep_ms(10);
  }
  CHECK_RC(rc, CACHEKIT_OK);
  CHECK(info.stale);
  CHECK(len == 3 && memcmp(buf, "old", 3) == 0);
  CHECK((long long)info.expires_ms <= unix_ms());
  CHECK(info.grace_until_ms == info.expires_ms + 60000);
  for (;;) {
    rc = cachekit_get(C, K("gone"), buf, sizeof buf, &len, NULL);
    if (rc != CACHEKIT_OK || mono_ms() > deadline) break;
    sleep_ms(10);
  }
  CHECK_RC(rc, CACHEKIT_MISS);
}

/* ---- get_local: the shared segment only ---- */

/* client.requests of a fresh stats snapshot (which counts its own STATS request). */
static uint64_t requests_sent(const cachekit_client *c) {
  cachekit_stats *st = NULL;
  uint64_t v = 0;
  CHECK_RC(cachekit_stats_fetch(c, &st), CACHEKIT_OK);
  CHECK_RC(cachekit_stats_lookup(st, "client.requests", &v), CACHEKIT_OK);
  cachekit_stats_free(st);
  return v;
}

static void get_local_reads_the_segment_and_sends_nothing(void) {
  CHECK_RC(cachekit_set(C, K("local"), K("in shared memory"), 60000, 5000, NULL, 0), CACHEKIT_OK);
  uint8_t buf[64];
  size_t len = 0;
  cachekit_value_info info, full;
  uint64_t before = requests_sent(C);
  for (int i = 0; i < 100; i++) {
    memset(&info, 0xAB, sizeof info);
    CHECK_RC(cachekit_get_local(C, K("local"), buf, sizeof buf, &len, &info), CACHEKIT_OK);
    CHECK(len == 16 && memcmp(buf, "in shared memory", 16) == 0);
    CHECK(info.source == CACHEKIT_SOURCE_SEGMENT && !info.stale);
    /* A miss writes nothing. */
    len = 1234;
    buf[0] = 0x5A;
    CHECK_RC(cachekit_get_local(C, K("not-local"), buf, sizeof buf, &len, &info), CACHEKIT_MISS);
    CHECK(len == 1234 && buf[0] == 0x5A);
  }
  /* Only the two STATS requests: get_local never asked the daemon, even for the miss. */
  CHECK(requests_sent(C) == before + 1);
  /* The same metadata as cachekit_get's hit. */
  CHECK_RC(cachekit_get(C, K("local"), buf, sizeof buf, &len, &full), CACHEKIT_OK);
  CHECK(info.created_ms == full.created_ms && info.expires_ms == full.expires_ms &&
        info.grace_until_ms == full.grace_until_ms && info.source == full.source &&
        info.stale == full.stale);
  CHECK(info.expires_ms == info.created_ms + 60000 && info.grace_until_ms == info.expires_ms + 5000);

  /* cachekit_get's buffer conventions: size query, too small, exact. */
  size_t needed = 0;
  CHECK_RC(cachekit_get_local(C, K("local"), NULL, 0, &needed, NULL), CACHEKIT_BUFFER_TOO_SMALL);
  CHECK(needed == 16);
  CHECK_MSG("needs 16 bytes");
  memset(buf, 0x5A, sizeof buf);
  CHECK_RC(cachekit_get_local(C, K("local"), buf, 15, &needed, NULL), CACHEKIT_BUFFER_TOO_SMALL);
  CHECK(needed == 16 && buf[0] == 0x5A);
  CHECK_RC(cachekit_get_local(C, K("local"), buf, 16, &len, NULL), CACHEKIT_OK);
  CHECK(len == 16);

  /* Invalidation and deletes are seen at once, as by cachekit_get. */
  CHECK_RC(cachekit_delete(C, K("local")), CACHEKIT_OK);
  CHECK_RC(cachekit_get_local(C, K("local"), buf, sizeof buf, &len, NULL), CACHEKIT_MISS);

  /* Errors are cachekit_get's. */
  size_t klen = 4097;
  uint8_t *key = malloc(klen);
  memset(key, 'k', klen);
  CHECK_RC(cachekit_get_local(C, key, klen, buf, sizeof buf, &len, NULL), CACHEKIT_TOO_LARGE);
  CHECK_MSG("max_key_bytes = 4096");
  free(key);
}

static void get_len_returns_the_length_or_minus_the_code(void) {
  CHECK_RC(cachekit_set(C, K("len"), K("sixteen bytes!!!"), 60000, 0, NULL, 0), CACHEKIT_OK);
  uint8_t buf[64];
  size_t len = 0;
  cachekit_value_info info, full;
  /* A hit: the length, the bytes, the metadata of cachekit_get's hit. */
  CHECK(cachekit_get_len(C, K("len"), buf, sizeof buf, &info) == 16);
  CHECK(memcmp(buf, "sixteen bytes!!!", 16) == 0);
  CHECK_RC(cachekit_get(C, K("len"), buf, sizeof buf, &len, &full), CACHEKIT_OK);
  CHECK(info.created_ms == full.created_ms && info.expires_ms == full.expires_ms &&
        info.version == full.version && info.source == CACHEKIT_SOURCE_SEGMENT && !info.stale);
  CHECK(cachekit_get_len(C, K("len"), buf, 16, NULL) == 16);
  /* Too small: minus the code, nothing written. */
  memset(buf, 0x5A, sizeof buf);
  CHECK(cachekit_get_len(C, K("len"), buf, 15, NULL) == -(int64_t)CACHEKIT_BUFFER_TOO_SMALL);
  CHECK(buf[0] == 0x5A);
  CHECK_MSG("needs 16 bytes");
  /* A miss: -CACHEKIT_MISS, nothing written. An empty value: 0. */
  CHECK(cachekit_get_len(C, K("len-absent"), buf, sizeof buf, NULL) == -(int64_t)CACHEKIT_MISS);
  CHECK(buf[0] == 0x5A);
  CHECK_RC(cachekit_set(C, K("len-empty"), NULL, 0, 60000, 0, NULL, 0), CACHEKIT_OK);
  CHECK(cachekit_get_len(C, K("len-empty"), NULL, 0, NULL) == 0);
  /* Errors: minus cachekit_get's code, with its message. */
  CHECK(cachekit_get_len(NULL, K("len"), buf, sizeof buf, NULL) == -(int64_t)CACHEKIT_NULL_ARGUMENT);
  CHECK(cachekit_get_len(C, NULL, 1, buf, sizeof buf, NULL) == -(int64_t)CACHEKIT_NULL_ARGUMENT);
  CHECK_MSG("`key` is NULL");
  CHECK(cachekit_get_len(C, K("len"), NULL, 4, NULL) == -(int64_t)CACHEKIT_NULL_ARGUMENT);
  size_t klen = 4097;
  uint8_t *key = malloc(klen);
  memset(key, 'k', klen);
  CHECK(cachekit_get_len(C, key, klen, buf, sizeof buf, NULL) == -(int64_t)CACHEKIT_TOO_LARGE);
  CHECK_MSG("max_key_bytes = 4096");
  free(key);
}

/* ---- invalidation, namespaces, clear ---- */

static void invalidate_is_hierarchical_unless_exact(void) {
  const char *t1[] = {"posts/1"}, *t2[] = {"posts/1/comments"}, *t3[] = {"posts/10"},
             *t4[] = {"posts"}, *t5[] = {"users/1"}, *t6[] = {"users/1/x"};
  CHECK_RC(set_str(C, "p1", "v", 0, t1, 1), CACHEKIT_OK);
  CHECK_RC(set_str(C, "p1c", "v", 0, t2, 1), CACHEKIT_OK);
  CHECK_RC(set_str(C, "p10", "v", 0, t3, 1), CACHEKIT_OK);
  CHECK_RC(set_str(C, "p", "v", 0, t4, 1), CACHEKIT_OK);
  CHECK_RC(set_str(C, "u1", "v", 0, t5, 1), CACHEKIT_OK);
  CHECK_RC(set_str(C, "u1x", "v", 0, t6, 1), CACHEKIT_OK);
  char s[8];
  CHECK_RC(cachekit_invalidate(C, t1, 1, 0), CACHEKIT_OK);
  CHECK_RC(get_str(C, "p1", s, sizeof s), CACHEKIT_MISS);
  CHECK_RC(get_str(C, "p1c", s, sizeof s), CACHEKIT_MISS);
  CHECK_RC(get_str(C, "p10", s, sizeof s), CACHEKIT_OK);
  CHECK_RC(get_str(C, "p", s, sizeof s), CACHEKIT_OK);
  CHECK_RC(cachekit_invalidate(C, t5, 1, CACHEKIT_INVALIDATE_EXACT), CACHEKIT_OK);
  CHECK_RC(get_str(C, "u1", s, sizeof s), CACHEKIT_MISS);
  CHECK_RC(get_str(C, "u1x", s, sizeof s), CACHEKIT_OK);
  /* Several tags at once; no tags is a no-op. */
  const char *both[] = {"posts", "users"};
  CHECK_RC(cachekit_invalidate(C, both, 2, 0), CACHEKIT_OK);
  CHECK_RC(get_str(C, "p10", s, sizeof s), CACHEKIT_MISS);
  CHECK_RC(get_str(C, "u1x", s, sizeof s), CACHEKIT_MISS);
  CHECK_RC(cachekit_invalidate(C, NULL, 0, 0), CACHEKIT_OK);
  CHECK_RC(cachekit_invalidate(C, t1, 1, 0x4), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("unknown flags");
}

static void namespaces_are_separate_and_clear_clears_one(void) {
  cachekit_client *other = NULL;
  CHECK_RC(cachekit_client_with_namespace(C, "api-other", &other), CACHEKIT_OK);
  char s[16];
  CHECK_RC(set_str(C, "same", "mine", 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(set_str(other, "same", "theirs", 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(get_str(C, "same", s, sizeof s), CACHEKIT_OK);
  CHECK(strcmp(s, "mine") == 0);
  CHECK_RC(get_str(other, "same", s, sizeof s), CACHEKIT_OK);
  CHECK(strcmp(s, "theirs") == 0);
  CHECK_RC(cachekit_clear(other), CACHEKIT_OK);
  CHECK_RC(get_str(other, "same", s, sizeof s), CACHEKIT_MISS);
  CHECK_RC(get_str(C, "same", s, sizeof s), CACHEKIT_OK);
  cachekit_client *bad = NULL;
  CHECK_RC(cachekit_client_with_namespace(C, "", &bad), CACHEKIT_INVALID_ARGUMENT);
  CHECK(bad == NULL);
  /* The second handle outlives nothing it needs: close it first, C keeps working. */
  cachekit_client_close(other);
  CHECK_RC(get_str(C, "same", s, sizeof s), CACHEKIT_OK);
}

/* ---- get_many, stats, ping ---- */

static void get_many_answers_each_key_in_order(void) {
  CHECK_RC(set_str(C, "m1", "first", 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(set_str(C, "m3", "third", 0, NULL, 0), CACHEKIT_OK);
  const uint8_t *keys[] = {(const uint8_t *)"m1", (const uint8_t *)"m2", (const uint8_t *)"m3"};
  size_t lens[] = {2, 2, 2};
  cachekit_batch *b = NULL;
  CHECK_RC(cachekit_get_many(C, keys, lens, 3, &b), CACHEKIT_OK);
  CHECK(cachekit_batch_len(b) == 3);
  const uint8_t *v = NULL;
  size_t len = 0;
  cachekit_value_info info;
  CHECK_RC(cachekit_batch_get(b, 0, &v, &len, &info), CACHEKIT_OK);
  CHECK(len == 5 && memcmp(v, "first", 5) == 0 && !info.stale);
  v = (const uint8_t *)0x1;
  CHECK_RC(cachekit_batch_get(b, 1, &v, &len, NULL), CACHEKIT_MISS);
  CHECK(v == (const uint8_t *)0x1);
  CHECK_RC(cachekit_batch_get(b, 2, &v, &len, NULL), CACHEKIT_OK);
  CHECK(len == 5 && memcmp(v, "third", 5) == 0);
  CHECK_RC(cachekit_batch_get(b, 3, &v, &len, NULL), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("out of range");
  cachekit_batch_free(b);
  cachekit_batch_free(NULL);
  /* No keys: an empty batch. */
  b = NULL;
  CHECK_RC(cachekit_get_many(C, NULL, NULL, 0, &b), CACHEKIT_OK);
  CHECK(b != NULL && cachekit_batch_len(b) == 0);
  cachekit_batch_free(b);
  CHECK(cachekit_batch_len(NULL) == 0);
}

static void stats_iterate_and_look_up(void) {
  char s[16];
  CHECK_RC(set_str(C, "st", "v", 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(get_str(C, "st", s, sizeof s), CACHEKIT_OK);
  cachekit_stats *st = NULL;
  CHECK_RC(cachekit_stats_fetch(C, &st), CACHEKIT_OK);
  size_t n = cachekit_stats_len(st);
  CHECK(n > 16);
  int daemon = 0, client = 0, segment = 0;
  for (size_t i = 0; i < n; i++) {
    const char *name = NULL;
    uint64_t value = 0;
    CHECK_RC(cachekit_stats_entry(st, i, &name, &value), CACHEKIT_OK);
    CHECK(name != NULL);
    if (!name) continue;
    daemon += strncmp(name, "daemon.", 7) == 0;
    client += strncmp(name, "client.", 7) == 0;
    segment += strncmp(name, "segment.", 8) == 0;
    uint64_t again = 0;
    CHECK_RC(cachekit_stats_lookup(st, name, &again), CACHEKIT_OK);
    CHECK(again == value);
  }
  CHECK(daemon > 0 && client == 16 && segment == 4);
  uint64_t v = 0;
  CHECK_RC(cachekit_stats_lookup(st, "client.segment_hits", &v), CACHEKIT_OK);
  CHECK(v >= 1);
  CHECK_RC(cachekit_stats_lookup(st, "segment.live", &v), CACHEKIT_OK);
  CHECK(v == 1);
  v = 42;
  CHECK_RC(cachekit_stats_lookup(st, "daemon.no_such_counter", &v), CACHEKIT_MISS);
  CHECK(v == 42);
  const char *name = NULL;
  CHECK_RC(cachekit_stats_entry(st, n, &name, &v), CACHEKIT_INVALID_ARGUMENT);
  CHECK(name == NULL);
  cachekit_stats_free(st);
  cachekit_stats_free(NULL);
  CHECK(cachekit_stats_len(NULL) == 0);
}

static void ping_answers(void) {
  uint64_t epoch = 0, rtt = UINT64_MAX;
  CHECK_RC(cachekit_ping(C, &epoch, &rtt), CACHEKIT_OK);
  CHECK(epoch != 0 && rtt < 10 * 1000 * 1000);
  CHECK_RC(cachekit_ping(C, NULL, NULL), CACHEKIT_OK);
}

/* ---- limits and bad arguments ---- */

/* Incompressible bytes. */
static uint8_t *noise(size_t n, uint64_t seed) {
  uint8_t *p = malloc(n);
  uint64_t x = seed | 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    p[i] = (uint8_t)x;
  }
  return p;
}

/* ---- a cachekitd of the test's own ---- */

/* $CACHEKITD_BIN, else the cachekitd next to the libcachekit.so this program runs with. */
static int find_daemon(char *out, size_t cap) {
  const char *env = getenv("CACHEKITD_BIN");
  if (env && *env) {
    snprintf(out, cap, "%s", env);
  } else {
    Dl_info di;
    char real[PATH_MAX];
    if (!dladdr((void *)cachekit_version, &di) || !di.dli_fname || !realpath(di.dli_fname, real))
      return 0;
    char *slash = strrchr(real, '/');
    if (!slash) return 0;
    *slash = 0;
    snprintf(out, cap, "%s/cachekitd", real);
  }
  return access(out, X_OK) == 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

typedef struct {
  pid_t pid;
  char dir[64];
  char socket[128];
} own_daemon;

/* Starts `cachekitd --max-value-bytes MAX EXTRA...` (EXTRA: NULL-terminated, or NULL) in a
 * temp dir; 0 and a reported failure if not. */
static int start_daemon(own_daemon *d, const char *max, const char *const *extra) {
  char bin[PATH_MAX];
  memset(d, 0, sizeof *d);
  if (!find_daemon(bin, sizeof bin)) {
    check_fail(__FILE__, __LINE__, "no cachekitd next to libcachekit.so; set CACHEKITD_BIN");
    return 0;
  }
  snprintf(d->dir, sizeof d->dir, "/tmp/cachekit-test-api.XXXXXX");
  if (!mkdtemp(d->dir)) {
    check_fail(__FILE__, __LINE__, "mkdtemp failed");
    return 0;
  }
  snprintf(d->socket, sizeof d->socket, "%s/big.sock", d->dir);
  fflush(NULL);
  d->pid = fork();
  if (d->pid == 0) {
    const char *vars[] = {"CACHEKIT_SOCKET", "CACHEKIT_INSTANCE", "CACHEKIT_DIR",
                          "CACHEKIT_CONFIG", "NOTIFY_SOCKET"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) unsetenv(vars[i]);
    const char *argv[24] = {bin, "--dir", d->dir, "--instance", "big", "--max-value-bytes", max,
                            "--log", "warn"};
    size_t n = 9;
    for (size_t i = 0; extra && extra[i] && n < 23; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  long long deadline = mono_ms() + 20000;
  while (access(d->socket, F_OK) != 0) {
    int status;
    if (d->pid < 0 || waitpid(d->pid, &status, WNOHANG) != 0 || mono_ms() > deadline) {
      check_fail(__FILE__, __LINE__, "%s --max-value-bytes %s did not start", bin, max);
      if (d->pid > 0) kill(d->pid, SIGKILL), waitpid(d->pid, &status, 0);
      nftw(d->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
      return 0;
    }
    sleep_ms(10);
  }
  return 1;
}

static void stop_daemon(own_daemon *d) {
  int status = 0;
  kill(d->pid, SIGTERM);
  waitpid(d->pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* it survived, and stopped cleanly */
  nftw(d->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Against a daemon run with --max-value-bytes 4MiB: the client adopts its limit. */
static void values_as_large_as_the_daemon_allows(void) {
  own_daemon d;
  if (!start_daemon(&d, "4MiB", NULL)) return;
  cachekit_client *big = open_client(d.socket, "api-big");
  if (!big) {
    stop_daemon(&d);
    return;
  }
  size_t n = 3u << 20;
  uint8_t *value = noise(n, 42);
  CHECK_RC(cachekit_set(big, K("3mib"), value, n, 0, 0, NULL, 0), CACHEKIT_OK);
  /* Into a caller buffer, after a size query. */
  size_t needed = 0, len = 0;
  CHECK_RC(cachekit_get(big, K("3mib"), NULL, 0, &needed, NULL), CACHEKIT_BUFFER_TOO_SMALL);
  CHECK(needed == n);
  uint8_t *buf = malloc(n);
  cachekit_value_info info;
  CHECK_RC(cachekit_get(big, K("3mib"), buf, n, &len, &info), CACHEKIT_OK);
  CHECK(len == n && memcmp(buf, value, n) == 0 && info.source == CACHEKIT_SOURCE_SEGMENT);
  memset(buf, 0, n);
  CHECK_RC(cachekit_get_local(big, K("3mib"), buf, n, &len, NULL), CACHEKIT_OK);
  CHECK(len == n && memcmp(buf, value, n) == 0);
  uint8_t *p = NULL;
  CHECK_RC(cachekit_get_alloc(big, K("3mib"), &p, &len, NULL), CACHEKIT_OK);
  CHECK(p != NULL && len == n && memcmp(p, value, n) == 0);
  cachekit_buf_free(p);
  /* And in a batch. */
  const uint8_t *keys[] = {(const uint8_t *)"3mib"};
  size_t lens[] = {4};
  cachekit_batch *b = NULL;
  CHECK_RC(cachekit_get_many(big, keys, lens, 1, &b), CACHEKIT_OK);
  const uint8_t *v = NULL;
  CHECK_RC(cachekit_batch_get(b, 0, &v, &len, NULL), CACHEKIT_OK);
  CHECK(len == n && v != NULL && memcmp(v, value, n) == 0);
  cachekit_batch_free(b);
  free(buf);
  free(value);
  /* Over 4 MiB: refused before sending, naming the daemon's limit. */
  n = (4u << 20) + 1;
  value = noise(n, 7);
  CHECK_RC(cachekit_set(big, K("over"), value, n, 0, 0, NULL, 0), CACHEKIT_TOO_LARGE);
  CHECK_MSG("max_value_bytes = 4194304");
  CHECK_RC(cachekit_set(big, K("4mib"), value, n - 1, 0, 0, NULL, 0), CACHEKIT_OK);
  free(value);
  cachekit_client_close(big);
  stop_daemon(&d);
}

static void keys_values_and_tags_over_the_limits(void) {
  size_t klen = 4097;
  uint8_t *key = malloc(klen);
  memset(key, 'k', klen);
  CHECK_RC(cachekit_set(C, key, klen, K("v"), 0, 0, NULL, 0), CACHEKIT_TOO_LARGE);
  CHECK_MSG("max_key_bytes = 4096");
  size_t len;
  uint8_t buf[4];
  CHECK_RC(cachekit_get(C, key, klen, buf, sizeof buf, &len, NULL), CACHEKIT_TOO_LARGE);
  CHECK_RC(cachekit_delete(C, key, klen), CACHEKIT_TOO_LARGE);
  free(key);

  /* The daemon runs with --max-value-bytes 64KiB; random bytes do not compress. */
  size_t vlen = 100 * 1024;
  uint8_t *value = malloc(vlen);
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i < vlen; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    value[i] = (uint8_t)x;
  }
  CHECK_RC(cachekit_set(C, K("huge"), value, vlen, 0, 0, NULL, 0), CACHEKIT_TOO_LARGE);
  CHECK_MSG("max_value_bytes = 65536"); /* the daemon's limit, not the 1 MiB default */
  CHECK_MSG("--max-value-bytes");
  /* Exactly the limit is fine. */
  CHECK_RC(cachekit_set(C, K("64k"), value, 64 * 1024, 0, 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(cachekit_set(C, K("64k+1"), value, 64 * 1024 + 1, 0, 0, NULL, 0), CACHEKIT_TOO_LARGE);
  free(value);

  const char *nine[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
  CHECK_RC(set_str(C, "t", "v", 0, nine, 9), CACHEKIT_TOO_LARGE);
  CHECK_MSG("max_tags = 8");
  char long_tag[1100];
  memset(long_tag, 't', 1025);
  long_tag[1025] = 0;
  const char *lt[] = {long_tag};
  CHECK_RC(set_str(C, "t", "v", 0, lt, 1), CACHEKIT_TOO_LARGE);
  CHECK_RC(cachekit_invalidate(C, lt, 1, 0), CACHEKIT_TOO_LARGE);
}

static void bad_tags_are_invalid_arguments(void) {
  const char *empty_segment[] = {"a//b"};
  CHECK_RC(set_str(C, "t", "v", 0, empty_segment, 1), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("empty segment");
  CHECK_RC(cachekit_invalidate(C, empty_segment, 1, 0), CACHEKIT_INVALID_ARGUMENT);
  const char *deep[] = {"a/b/c/d/e/f/g/h/i"};
  CHECK_RC(set_str(C, "t", "v", 0, deep, 1), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("segments");
  const char *not_utf8[] = {"ok", "\xc3\x28"};
  CHECK_RC(set_str(C, "t", "v", 0, not_utf8, 2), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("tags[1]");
  CHECK_MSG("UTF-8");
  char s[4];
  CHECK_RC(get_str(C, "t", s, sizeof s), CACHEKIT_MISS); /* nothing was stored */
}

static void null_arguments_are_reported(void) {
  const cachekit_client *N = NULL;
  uint8_t buf[4];
  size_t len = 0;
  uint8_t *p = NULL;
  cachekit_client *out = NULL;
  cachekit_batch *b = NULL;
  cachekit_stats *st = NULL;
  uint64_t v = 0;
  const char *name = NULL;
  const char *tags_with_null[] = {"ok", NULL};

  CHECK_RC(cachekit_client_open(NULL, &out), CACHEKIT_NULL_ARGUMENT);
  CHECK_MSG("`options` is NULL");
  cachekit_options o;
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.socket_path = SOCKET;
  CHECK_RC(cachekit_client_open(&o, NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_client_with_namespace(N, "x", &out), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_client_with_namespace(C, NULL, &out), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_client_with_namespace(C, "x", NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK(out == NULL);

  CHECK_RC(cachekit_get(N, K("k"), buf, 4, &len, NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_get(C, NULL, 1, buf, 4, &len, NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK_MSG("`key` is NULL");
  CHECK_RC(cachekit_get(C, K("k"), NULL, 4, &len, NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_get(C, K("k"), buf, 4, NULL, NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_get_local(N, K("k"), buf, 4, &len, NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_get_local(C, NULL, 1, buf, 4, &len, NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_get_local(C, K("k"), NULL, 4, &len, NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_get_local(C, K("k"), buf, 4, NULL, NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_get_alloc(N, K("k"), &p, &len, NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_get_alloc(C, K("k"), NULL, &len, NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_get_alloc(C, K("k"), &p, NULL, NULL), CACHEKIT_NULL_ARGUMENT);

  CHECK_RC(cachekit_set(N, K("k"), K("v"), 0, 0, NULL, 0), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_set(C, NULL, 1, K("v"), 0, 0, NULL, 0), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_set(C, K("k"), NULL, 1, 0, 0, NULL, 0), CACHEKIT_NULL_ARGUMENT);
  CHECK_MSG("`value` is NULL");
  CHECK_RC(cachekit_set(C, K("k"), K("v"), 0, 0, NULL, 1), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_set(C, K("k"), K("v"), 0, 0, tags_with_null, 2), CACHEKIT_NULL_ARGUMENT);
  CHECK_MSG("`tags[1]` is NULL");
  CHECK_RC(cachekit_delete(N, K("k")), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_delete(C, NULL, 1), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_invalidate(N, NULL, 0, 0), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_invalidate(C, NULL, 1, 0), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_clear(N), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_ping(N, NULL, NULL), CACHEKIT_NULL_ARGUMENT);

  const uint8_t *keys[] = {(const uint8_t *)"a", NULL};
  size_t lens[] = {1, 1};
  CHECK_RC(cachekit_get_many(N, keys, lens, 1, &b), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_get_many(C, NULL, lens, 1, &b), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_get_many(C, keys, NULL, 1, &b), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_get_many(C, keys, lens, 2, &b), CACHEKIT_NULL_ARGUMENT);
  CHECK_MSG("`keys[1]` is NULL");
  CHECK_RC(cachekit_get_many(C, keys, lens, 1, NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK(b == NULL);
  const uint8_t *vp;
  CHECK_RC(cachekit_batch_get(NULL, 0, &vp, &len, NULL), CACHEKIT_NULL_ARGUMENT);

  CHECK_RC(cachekit_stats_fetch(N, &st), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_stats_fetch(C, NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK(st == NULL);
  CHECK_RC(cachekit_stats_entry(NULL, 0, &name, &v), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_stats_lookup(NULL, "x", &v), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_stats_fetch(C, &st), CACHEKIT_OK);
  CHECK_RC(cachekit_stats_entry(st, 0, NULL, &v), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_stats_entry(st, 0, &name, NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_stats_lookup(st, NULL, &v), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_stats_lookup(st, "x", NULL), CACHEKIT_NULL_ARGUMENT);
  cachekit_stats_free(st);

  size_t needed;
  CHECK_RC(cachekit_last_error_message((char *)buf, sizeof buf, NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_last_error_message(NULL, 4, &needed), CACHEKIT_NULL_ARGUMENT);

  /* Every free/close takes NULL. */
  cachekit_client_close(NULL);
  cachekit_buf_free(NULL);
  cachekit_batch_free(NULL);
  cachekit_stats_free(NULL);
}

/* ---- the last error message ---- */

static void *other_thread_last_error(void *arg) {
  size_t *needed = arg;
  char buf[8];
  buf[0] = 'x';
  cachekit_last_error_message(buf, sizeof buf, needed);
  return NULL;
}

static void last_error_is_per_thread_with_a_size_query(void) {
  const char *bad[] = {"x//y"};
  CHECK_RC(set_str(C, "k", "v", 0, bad, 1), CACHEKIT_INVALID_ARGUMENT);
  size_t needed = 0;
  CHECK_RC(cachekit_last_error_message(NULL, 0, &needed), CACHEKIT_BUFFER_TOO_SMALL);
  CHECK(needed > 10);
  char small[5];
  memset(small, 'Z', sizeof small);
  size_t needed2 = 0;
  CHECK_RC(cachekit_last_error_message(small, sizeof small, &needed2), CACHEKIT_BUFFER_TOO_SMALL);
  CHECK(needed2 == needed && small[0] == 'Z' && small[4] == 'Z');
  char *msg = malloc(needed);
  CHECK_RC(cachekit_last_error_message(msg, needed, &needed2), CACHEKIT_OK);
  CHECK(strlen(msg) + 1 == needed && strstr(msg, "x//y") != NULL);
  free(msg);
  /* Successful calls leave it in place. */
  CHECK_RC(cachekit_ping(C, NULL, NULL), CACHEKIT_OK);
  CHECK_MSG("x//y");
  /* Another thread has its own (empty) message. */
  pthread_t t;
  size_t other = 0;
  pthread_create(&t, NULL, other_thread_last_error, &other);
  pthread_join(t, NULL);
  CHECK(other == 1);
}

/* A daemon at its max_connections refuses a client at accept and closes, often before the
 * client's HELLO is sent: the client must still report the daemon's reason (it reads the
 * ERROR waiting in its receive buffer), and the failed send must not raise SIGPIPE, whose
 * default action would kill this program. */
static void a_full_daemon_says_why_and_raises_no_sigpipe(void) {
  own_daemon d;
  const char *flags[] = {"--max-connections", "2", NULL};
  if (!start_daemon(&d, "1MiB", flags)) return;
  void (*before)(int) = signal(SIGPIPE, SIG_DFL);
  cachekit_client *a = open_client(d.socket, "holder-a");
  cachekit_client *b = open_client(d.socket, "holder-b");
  cachekit_options o;
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.socket_path = d.socket;
  for (int i = 0; i < 100; i++) {
    cachekit_client *c = NULL;
    cachekit_result rc = cachekit_client_open(&o, &c);
    const char *m = last_error();
    if (rc != CACHEKIT_UNAVAILABLE || !strstr(m, "2 connections open, its max_connections")) {
      check_fail(__FILE__, __LINE__, "attempt %d: %u (%s), wanted the daemon's max_connections reason", i,
                 (unsigned)rc, m);
      if (c) cachekit_client_close(c);
      break;
    }
  }
  signal(SIGPIPE, before);
  cachekit_client_close(a);
  cachekit_client_close(b);
  stop_daemon(&d);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
    return 2;
  }
  SOCKET = argv[1];
  snprintf(ABSENT_SOCKET, sizeof ABSENT_SOCKET, "%s.absent.sock", SOCKET);

  TEST(version_macros_match_the_library_and_cargo);
  TEST(every_code_has_a_static_description);
  TEST(daemon_not_running_is_unavailable_with_a_helpful_message);
  TEST(options_are_checked);
  C = open_client(SOCKET, "api");
  if (!C) {
    fprintf(stderr, "cannot open a client on %s: %s\n", SOCKET, last_error());
    return 1;
  }
  CHECK_RC(cachekit_clear(C), CACHEKIT_OK);
  TEST(set_then_get_into_a_caller_buffer);
  TEST(a_small_buffer_gets_the_size_and_nothing_else);
  TEST(a_miss_writes_nothing);
  TEST(binary_keys_values_and_empty_ones);
  TEST(get_alloc_returns_a_buffer_to_free);
  TEST(overwrite_and_delete);
  TEST(stale_hits_are_ok_with_the_stale_flag_then_miss);
  TEST(get_local_reads_the_segment_and_sends_nothing);
  TEST(get_len_returns_the_length_or_minus_the_code);
  TEST(invalidate_is_hierarchical_unless_exact);
  TEST(namespaces_are_separate_and_clear_clears_one);
  TEST(get_many_answers_each_key_in_order);
  TEST(stats_iterate_and_look_up);
  TEST(ping_answers);
  TEST(keys_values_and_tags_over_the_limits);
  TEST(values_as_large_as_the_daemon_allows);
  TEST(a_full_daemon_says_why_and_raises_no_sigpipe);
  TEST(bad_tags_are_invalid_arguments);
  TEST(null_arguments_are_reported);
  TEST(last_error_is_per_thread_with_a_size_query);
  cachekit_client_close(C);
  return check_summary();
}
