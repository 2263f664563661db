/*
 * The atomic and management functions of the C API against a real cachekitd: add, replace,
 * cas (with cachekit_set_options), set_i64, incr/decr, get_and_delete, touch, persist, ttl,
 * scan, delete_matching, namespaces, the version and integer fields of cachekit_value_info;
 * their bad inputs (NULL pointers, buffers too small, bad options, a non-integer incr); and
 * processes racing incr, add and cas on one key.
 *
 * Usage: test_atomic SOCKET
 *   SOCKET: the socket of a running cachekitd.
 * CACHEKIT_TEST_ITERS (default 300) sets the operations per process in the races.
 */
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static const char *SOCKET;
static cachekit_client *C; /* namespace "atomic", shared by the tests */
static int ITERS = 300;

#define K(s) (const uint8_t *)(s), (sizeof(s) - 1)

static cachekit_set_options set_options(uint64_t ttl_ms) {
  cachekit_set_options o;
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.ttl_ms = ttl_ms;
  return o;
}

/* The version of `key`'s entry (0 on a miss, reported). */
static uint64_t version_of(const char *key) {
  uint8_t buf[64];
  size_t len = 0;
  cachekit_value_info info;
  memset(&info, 0, sizeof info);
  CHECK_RC(cachekit_get(C, (const uint8_t *)key, strlen(key), buf, sizeof buf, &len, &info),
           CACHEKIT_OK);
  return info.version;
}

/* ---- add / replace / cas ---- */

static void add_stores_only_when_absent(void) {
  bool stored = false;
  CHECK_RC(cachekit_add(C, K("add"), K("first"), NULL, &stored), CACHEKIT_OK);
  CHECK(stored);
  stored = true;
  CHECK_RC(cachekit_add(C, K("add"), K("second"), NULL, &stored), CACHEKIT_OK);
  CHECK(!stored);
  char got[32];
  CHECK_RC(get_str(C, "add", got, sizeof got), CACHEKIT_OK);
  CHECK(strcmp(got, "first") == 0);

  /* With options: a TTL, a grace period and a tag. */
  const char *tags[] = {"adds/1"};
  cachekit_set_options o = set_options(60000);
  o.grace_ms = 5000;
  o.tags = tags;
  o.tag_count = 1;
  CHECK_RC(cachekit_add(C, K("add-ttl"), K("v"), &o, &stored), CACHEKIT_OK);
  CHECK(stored);
  uint8_t buf[8];
  size_t len = 0;
  cachekit_value_info info;
  CHECK_RC(cachekit_get(C, K("add-ttl"), buf, sizeof buf, &len, &info), CACHEKIT_OK);
  CHECK(info.expires_ms == info.created_ms + 60000);
  CHECK(info.grace_until_ms == info.expires_ms + 5000);
  CHECK(info.version != 0 && !info.integer);
  CHECK_RC(cachekit_invalidate(C, tags, 1, 0), CACHEKIT_OK);
  /* An invalidated entry counts as absent. */
  CHECK_RC(cachekit_add(C, K("add-ttl"), K("again"), &o, &stored), CACHEKIT_OK);
  CHECK(stored);

  /* An expired entry counts as absent too. */
  CHECK_RC(cachekit_set(C, K("add-expired"), K("old"), 30, 0, NULL, 0), CACHEKIT_OK);
  sleep_ms(80);
  CHECK_RC(cachekit_add(C, K("add-expired"), K("new"), NULL, &stored), CACHEKIT_OK);
  CHECK(stored);
}

static void replace_stores_only_when_present(void) {
  bool stored = true;
  CHECK_RC(cachekit_replace(C, K("replace"), K("x"), NULL, &stored), CACHEKIT_OK);
  CHECK(!stored);
  char got[32];
  CHECK_RC(get_str(C, "replace", got, sizeof got), CACHEKIT_MISS);
  CHECK_RC(set_str(C, "replace", "old", 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(cachekit_replace(C, K("replace"), K("new"), NULL, &stored), CACHEKIT_OK);
  CHECK(stored);
  CHECK_RC(get_str(C, "replace", got, sizeof got), CACHEKIT_OK);
  CHECK(strcmp(got, "new") == 0);
}

static void cas_stores_only_over_the_version_read(void) {
  CHECK_RC(set_str(C, "cas", "1", 0, NULL, 0), CACHEKIT_OK);
  uint64_t v1 = version_of("cas");
  CHECK(v1 != 0);
  bool stored = false;
  CHECK_RC(cachekit_cas(C, K("cas"), K("2"), v1, NULL, &stored), CACHEKIT_OK);
  CHECK(stored);
  uint64_t v2 = version_of("cas");
  CHECK(v2 != v1 && v2 != 0);
  /* The old version no longer matches. */
  stored = true;
  CHECK_RC(cachekit_cas(C, K("cas"), K("3"), v1, NULL, &stored), CACHEKIT_OK);
  CHECK(!stored);
  /* Version 0 never stores; nor does a cas of a missing key. */
  CHECK_RC(cachekit_cas(C, K("cas"), K("3"), 0, NULL, &stored), CACHEKIT_OK);
  CHECK(!stored);
  CHECK_RC(cachekit_cas(C, K("cas-missing"), K("3"), v2, NULL, &stored), CACHEKIT_OK);
  CHECK(!stored);
  char got[32];
  CHECK_RC(get_str(C, "cas", got, sizeof got), CACHEKIT_OK);
  CHECK(strcmp(got, "2") == 0);

  /* Compare-and-delete: an entry written already expired, only over the version read. */
  cachekit_set_options now;
  memset(&now, 0, sizeof now);
  now.struct_size = sizeof now;
  now.flags = CACHEKIT_SET_EXPIRE_NOW;
  CHECK_RC(cachekit_cas(C, K("cas"), NULL, 0, v1, &now, &stored), CACHEKIT_OK);
  CHECK(!stored);
  CHECK_RC(get_str(C, "cas", got, sizeof got), CACHEKIT_OK);
  CHECK_RC(cachekit_cas(C, K("cas"), NULL, 0, v2, &now, &stored), CACHEKIT_OK);
  CHECK(stored);
  CHECK_RC(get_str(C, "cas", got, sizeof got), CACHEKIT_MISS);
}

static void set_options_are_checked(void) {
  bool stored = true;
  cachekit_set_options o = set_options(0);
  o.struct_size = 8;
  CHECK_RC(cachekit_add(C, K("opts"), K("v"), &o, &stored), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("sizeof(cachekit_set_options)");
  o = set_options(10);
  o.flags = CACHEKIT_SET_EXPIRE_NOW;
  CHECK_RC(cachekit_add(C, K("opts"), K("v"), &o, &stored), CACHEKIT_INVALID_ARGUMENT);
  o = set_options(0);
  o.flags = 0x80;
  CHECK_RC(cachekit_replace(C, K("opts"), K("v"), &o, &stored), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("0x80");
  o = set_options(0);
  o.reserved = 1;
  CHECK_RC(cachekit_cas(C, K("opts"), K("v"), 1, &o, &stored), CACHEKIT_INVALID_ARGUMENT);
  o = set_options(0);
  o.tag_count = 1; /* tags NULL */
  CHECK_RC(cachekit_add(C, K("opts"), K("v"), &o, &stored), CACHEKIT_NULL_ARGUMENT);
  const char *bad[] = {"a//b"};
  o.tags = bad;
  CHECK_RC(cachekit_add(C, K("opts"), K("v"), &o, &stored), CACHEKIT_INVALID_ARGUMENT);
  /* A newer program's larger struct: zero extra fields are accepted. */
  struct {
    cachekit_set_options base;
    uint64_t later;
  } newer;
  memset(&newer, 0, sizeof newer);
  newer.base.struct_size = sizeof newer;
  CHECK_RC(cachekit_add(C, K("opts"), K("v"), &newer.base, &stored), CACHEKIT_OK);
  CHECK(stored);
  newer.later = 1;
  CHECK_RC(cachekit_add(C, K("opts2"), K("v"), &newer.base, &stored), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("does not know");
  CHECK(stored); /* untouched by the failures */
  char got[8];
  CHECK_RC(get_str(C, "opts2", got, sizeof got), CACHEKIT_MISS);
}

/* ---- counters ---- */

static void set_i64_is_read_as_an_integer(void) {
  CHECK_RC(cachekit_set_i64(C, K("int"), -42, NULL), CACHEKIT_OK);
  uint8_t buf[32];
  size_t len = 0;
  cachekit_value_info info;
  memset(&info, 0, sizeof info);
  CHECK_RC(cachekit_get(C, K("int"), buf, sizeof buf, &len, &info), CACHEKIT_OK);
  CHECK(len == 3 && memcmp(buf, "-42", 3) == 0);
  CHECK(info.integer && info.version != 0);
  int64_t v = 0;
  CHECK_RC(cachekit_incr(C, K("int"), 2, NULL, 0, &v), CACHEKIT_OK);
  CHECK(v == -40);
  cachekit_set_options o = set_options(60000);
  CHECK_RC(cachekit_set_i64(C, K("int-ttl"), INT64_MAX, &o), CACHEKIT_OK);
  CHECK_RC(cachekit_get(C, K("int-ttl"), buf, sizeof buf, &len, &info), CACHEKIT_OK);
  CHECK(len == 19 && memcmp(buf, "9223372036854775807", 19) == 0);
  CHECK(info.integer && info.expires_ms == info.created_ms + 60000);
  CHECK_RC(cachekit_set_i64(NULL, K("int"), 1, NULL), CACHEKIT_NULL_ARGUMENT);

  /* add / replace / cas of a decimal with CACHEKIT_SET_INTEGER store a counter. */
  o = set_options(0);
  o.flags = CACHEKIT_SET_INTEGER;
  bool stored = false;
  CHECK_RC(cachekit_add(C, K("int-add"), K("0"), &o, &stored), CACHEKIT_OK);
  CHECK(stored);
  CHECK_RC(cachekit_get(C, K("int-add"), buf, sizeof buf, &len, &info), CACHEKIT_OK);
  CHECK(len == 1 && buf[0] == '0' && info.integer);
  CHECK_RC(cachekit_incr(C, K("int-add"), 1, NULL, 0, &v), CACHEKIT_OK);
  CHECK(v == 1);
  CHECK_RC(cachekit_replace(C, K("int-add"), K("-5"), &o, &stored), CACHEKIT_OK);
  CHECK(stored);
  CHECK_RC(cachekit_get(C, K("int-add"), buf, sizeof buf, &len, &info), CACHEKIT_OK);
  CHECK(len == 2 && memcmp(buf, "-5", 2) == 0 && info.integer);
  CHECK_RC(cachekit_cas(C, K("int-add"), K("7"), info.version, &o, &stored), CACHEKIT_OK);
  CHECK(stored);
  CHECK_RC(cachekit_incr(C, K("int-add"), 1, NULL, 0, &v), CACHEKIT_OK);
  CHECK(v == 8);
  /* Not a canonical int64: refused, nothing stored. */
  stored = false;
  CHECK_RC(cachekit_add(C, K("int-bad"), K("01"), &o, &stored), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("CACHEKIT_SET_INTEGER");
  CHECK_RC(cachekit_add(C, K("int-bad"), K("9223372036854775808"), &o, &stored),
           CACHEKIT_INVALID_ARGUMENT);
  CHECK(!stored);
  char got[8];
  CHECK_RC(get_str(C, "int-bad", got, sizeof got), CACHEKIT_MISS);
}

static void incr_creates_adds_and_decr_subtracts(void) {
  int64_t v = 12345;
  /* Missing, no initial: a miss, nothing stored, nothing written. */
  CHECK_RC(cachekit_incr(C, K("n"), 1, NULL, 0, &v), CACHEKIT_MISS);
  CHECK(v == 12345);
  char got[32];
  CHECK_RC(get_str(C, "n", got, sizeof got), CACHEKIT_MISS);
  /* Missing with an initial value: created as initial + delta. */
  int64_t initial = 10;
  CHECK_RC(cachekit_incr(C, K("n"), 5, &initial, 0, &v), CACHEKIT_OK);
  CHECK(v == 15);
  CHECK_RC(cachekit_incr(C, K("n"), 1, &initial, 0, &v), CACHEKIT_OK);
  CHECK(v == 16); /* the initial value applies to a missing key only */
  CHECK_RC(cachekit_decr(C, K("n"), 20, NULL, 0, &v), CACHEKIT_OK);
  CHECK(v == -4);
  CHECK_RC(get_str(C, "n", got, sizeof got), CACHEKIT_OK);
  CHECK(strcmp(got, "-4") == 0);
  /* decr of a missing key with an initial value: initial - delta. */
  CHECK_RC(cachekit_decr(C, K("n-down"), 3, &initial, 0, &v), CACHEKIT_OK);
  CHECK(v == 7);

  /* A counter created with a TTL expires; an incr keeps the expiry. */
  CHECK_RC(cachekit_incr(C, K("n-ttl"), 1, &initial, 60000, &v), CACHEKIT_OK);
  uint8_t buf[32];
  size_t len = 0;
  cachekit_value_info a, b;
  CHECK_RC(cachekit_get(C, K("n-ttl"), buf, sizeof buf, &len, &a), CACHEKIT_OK);
  CHECK(a.integer && a.expires_ms > 0);
  CHECK_RC(cachekit_incr(C, K("n-ttl"), 1, &initial, 0, &v), CACHEKIT_OK);
  CHECK(v == 12);
  CHECK_RC(cachekit_get(C, K("n-ttl"), buf, sizeof buf, &len, &b), CACHEKIT_OK);
  CHECK(b.expires_ms == a.expires_ms && b.version != a.version);

  /* A value set as decimal bytes is a number too. */
  CHECK_RC(set_str(C, "n-text", "41", 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(cachekit_incr(C, K("n-text"), 1, NULL, 0, &v), CACHEKIT_OK);
  CHECK(v == 42);
}

static void incr_of_a_non_integer_or_overflow_is_refused(void) {
  int64_t v = 777;
  CHECK_RC(set_str(C, "text", "hello", 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(cachekit_incr(C, K("text"), 1, NULL, 0, &v), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("not an integer");
  CHECK(v == 777);
  char got[32];
  CHECK_RC(get_str(C, "text", got, sizeof got), CACHEKIT_OK);
  CHECK(strcmp(got, "hello") == 0);
  /* Not canonical decimal: refused too. */
  CHECK_RC(set_str(C, "text", "+5", 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(cachekit_incr(C, K("text"), 1, NULL, 0, &v), CACHEKIT_INVALID_ARGUMENT);

  CHECK_RC(cachekit_set_i64(C, K("big"), INT64_MAX - 1, NULL), CACHEKIT_OK);
  CHECK_RC(cachekit_incr(C, K("big"), 1, NULL, 0, &v), CACHEKIT_OK);
  CHECK(v == INT64_MAX);
  v = 777;
  CHECK_RC(cachekit_incr(C, K("big"), 1, NULL, 0, &v), CACHEKIT_INVALID_ARGUMENT);
  CHECK(v == 777);
  CHECK_RC(get_str(C, "big", got, sizeof got), CACHEKIT_OK);
  CHECK(strcmp(got, "9223372036854775807") == 0);
  CHECK_RC(cachekit_decr(C, K("big"), INT64_MIN, NULL, 0, &v), CACHEKIT_INVALID_ARGUMENT);
  CHECK(v == 777);
  /* NULL output. */
  CHECK_RC(cachekit_incr(C, K("big"), 1, NULL, 0, NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_decr(C, NULL, 3, 1, NULL, 0, &v), CACHEKIT_NULL_ARGUMENT);
}

/* ---- get_and_delete ---- */

static void get_and_delete_takes_the_value_once(void) {
  CHECK_RC(set_str(C, "take", "taken value", 0, NULL, 0), CACHEKIT_OK);
  uint8_t buf[32];
  size_t len = 0;
  cachekit_value_info info;
  memset(&info, 0, sizeof info);
  CHECK_RC(cachekit_get_and_delete(C, K("take"), buf, sizeof buf, &len, &info), CACHEKIT_OK);
  CHECK(len == 11 && memcmp(buf, "taken value", 11) == 0);
  CHECK(info.version != 0 && !info.stale);
  len = 99;
  CHECK_RC(cachekit_get_and_delete(C, K("take"), buf, sizeof buf, &len, &info), CACHEKIT_MISS);
  CHECK(len == 99);
  char got[32];
  CHECK_RC(get_str(C, "take", got, sizeof got), CACHEKIT_MISS);

  /* A counter comes back flagged integer. */
  CHECK_RC(cachekit_set_i64(C, K("take-n"), 5, NULL), CACHEKIT_OK);
  CHECK_RC(cachekit_get_and_delete(C, K("take-n"), buf, sizeof buf, &len, &info), CACHEKIT_OK);
  CHECK(len == 1 && buf[0] == '5' && info.integer);
}

static void get_and_delete_keeps_a_value_too_large_for_the_buffer(void) {
  CHECK_RC(set_str(C, "take-big", "0123456789", 0, NULL, 0), CACHEKIT_OK);
  size_t needed = 0;
  /* A size query removes the entry and keeps its value for this thread. */
  CHECK_RC(cachekit_get_and_delete(C, K("take-big"), NULL, 0, &needed, NULL),
           CACHEKIT_BUFFER_TOO_SMALL);
  CHECK(needed == 10);
  char got[32];
  CHECK_RC(get_str(C, "take-big", got, sizeof got), CACHEKIT_MISS);
  uint8_t buf[16];
  memset(buf, 0x5A, sizeof buf);
  /* Still too small: nothing written but the size. */
  CHECK_RC(cachekit_get_and_delete(C, K("take-big"), buf, 9, &needed, NULL),
           CACHEKIT_BUFFER_TOO_SMALL);
  CHECK(needed == 10 && buf[0] == 0x5A);
  size_t len = 0;
  CHECK_RC(cachekit_get_and_delete(C, K("take-big"), buf, sizeof buf, &len, NULL), CACHEKIT_OK);
  CHECK(len == 10 && memcmp(buf, "0123456789", 10) == 0);
  CHECK_RC(cachekit_get_and_delete(C, K("take-big"), buf, sizeof buf, &len, NULL), CACHEKIT_MISS);

  /* Another key in between discards the kept value. */
  CHECK_RC(set_str(C, "take-big", "0123456789", 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(cachekit_get_and_delete(C, K("take-big"), NULL, 0, &needed, NULL),
           CACHEKIT_BUFFER_TOO_SMALL);
  CHECK_RC(cachekit_get_and_delete(C, K("take-other"), buf, sizeof buf, &len, NULL),
           CACHEKIT_MISS);
  CHECK_RC(cachekit_get_and_delete(C, K("take-big"), buf, sizeof buf, &len, NULL), CACHEKIT_MISS);

  CHECK_RC(cachekit_get_and_delete(C, K("take-big"), buf, sizeof buf, NULL, NULL),
           CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_get_and_delete(C, K("take-big"), NULL, 4, &len, NULL),
           CACHEKIT_NULL_ARGUMENT);
}

/* ---- one TTL rule: 0 = never expires everywhere, negative refused ---- */

static void a_zero_ttl_never_expires_in_every_call(void) {
  int64_t ttl = 5;
  bool stored = false, found = false;
  int64_t n = 0, initial = 0;
  cachekit_set_options zero = set_options(0);
  CHECK_RC(set_str(C, "rule-set", "v", 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(cachekit_add(C, K("rule-add"), K("v"), &zero, &stored), CACHEKIT_OK);
  CHECK(stored);
  CHECK_RC(cachekit_set_i64(C, K("rule-i64"), 7, &zero), CACHEKIT_OK);
  CHECK_RC(cachekit_incr(C, K("rule-incr"), 1, &initial, 0, &n), CACHEKIT_OK);
  CHECK(n == 1);
  cachekit_set_options minute = set_options(60000);
  CHECK_RC(cachekit_add(C, K("rule-touch"), K("v"), &minute, &stored), CACHEKIT_OK);
  CHECK_RC(cachekit_touch(C, K("rule-touch"), 0, &found), CACHEKIT_OK);
  CHECK(found);
  const char *keys[] = {"rule-set", "rule-add", "rule-i64", "rule-incr", "rule-touch"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    ttl = 5;
    CHECK_RC(cachekit_ttl(C, (const uint8_t *)keys[i], strlen(keys[i]), &ttl), CACHEKIT_OK);
    if (ttl != -1) check_fail(__FILE__, __LINE__, "%s: ttl %lld, wanted -1 (never)", keys[i], (long long)ttl);
  }
  /* The one TTL a C caller can write negative (touch's int64_t) is refused and names it. */
  CHECK_RC(cachekit_touch(C, K("rule-touch"), -1, &found), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("ttl_ms is -1");
  CHECK_RC(cachekit_ttl(C, K("rule-touch"), &ttl), CACHEKIT_OK);
  CHECK(ttl == -1);
}

/* ---- touch / persist / ttl ---- */

static void touch_persist_and_ttl(void) {
  int64_t ttl = 5;
  bool found = true;
  CHECK_RC(cachekit_ttl(C, K("t"), &ttl), CACHEKIT_MISS);
  CHECK(ttl == 5);
  CHECK_RC(cachekit_touch(C, K("t"), 1000, &found), CACHEKIT_OK);
  CHECK(!found);
  CHECK_RC(cachekit_persist(C, K("t"), &found), CACHEKIT_OK);
  CHECK(!found);

  CHECK_RC(set_str(C, "t", "v", 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(cachekit_ttl(C, K("t"), &ttl), CACHEKIT_OK);
  CHECK(ttl == -1);
  CHECK_RC(cachekit_touch(C, K("t"), 50000, &found), CACHEKIT_OK);
  CHECK(found);
  CHECK_RC(cachekit_ttl(C, K("t"), &ttl), CACHEKIT_OK);
  CHECK(ttl > 40000 && ttl <= 50000);
  CHECK_RC(cachekit_persist(C, K("t"), &found), CACHEKIT_OK);
  CHECK(found);
  CHECK_RC(cachekit_ttl(C, K("t"), &ttl), CACHEKIT_OK);
  CHECK(ttl == -1);
  /* A ttl of 0 is persist too: never expires, as in cachekit_set. */
  CHECK_RC(cachekit_touch(C, K("t"), 50000, &found), CACHEKIT_OK);
  CHECK_RC(cachekit_touch(C, K("t"), 0, &found), CACHEKIT_OK);
  CHECK(found);
  CHECK_RC(cachekit_ttl(C, K("t"), &ttl), CACHEKIT_OK);
  CHECK(ttl == -1);
  /* A negative ttl is refused, and says so; the entry is left as it was. */
  CHECK_RC(cachekit_touch(C, K("t"), 50000, &found), CACHEKIT_OK);
  found = false;
  CHECK_RC(cachekit_touch(C, K("t"), -7, &found), CACHEKIT_INVALID_ARGUMENT);
  CHECK(!found);
  CHECK_MSG("negative TTL");
  CHECK_RC(cachekit_ttl(C, K("t"), &ttl), CACHEKIT_OK);
  CHECK(ttl > 40000 && ttl <= 50000);
  /* The value stays. */
  char got[8];
  CHECK_RC(get_str(C, "t", got, sizeof got), CACHEKIT_OK);
  CHECK(strcmp(got, "v") == 0);

  CHECK_RC(cachekit_touch(C, K("t"), 10, NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_persist(NULL, K("t"), &found), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_ttl(C, K("t"), NULL), CACHEKIT_NULL_ARGUMENT);
}

/* ---- scan / delete_matching / namespaces ---- */

static void scan_returns_each_match_once_page_by_page(void) {
  cachekit_client *s = open_client(SOCKET, "atomic-scan");
  if (!s) return;
  CHECK_RC(cachekit_clear(s), CACHEKIT_OK);
  const char *even[] = {"scan/even"};
  char key[32];
  for (int i = 0; i < 50; i++) {
    snprintf(key, sizeof key, "user:%02d", i);
    CHECK_RC(set_str(s, key, "v", i < 10 ? 60000 : 0, i % 2 ? NULL : even, i % 2 ? 0 : 1),
             CACHEKIT_OK);
  }
  CHECK_RC(set_str(s, "other", "v", 0, NULL, 0), CACHEKIT_OK);

  int seen[50] = {0};
  int count = 0, other = 0;
  cachekit_scan *sc = NULL;
  CHECK_RC(cachekit_scan_open(s, K("user:*"), NULL, false, 7, &sc), CACHEKIT_OK);
  for (;;) {
    uint8_t buf[32];
    size_t len = 0;
    cachekit_scan_item item;
    cachekit_result rc = cachekit_scan_next(sc, buf, sizeof buf - 1, &len, &item);
    if (rc == CACHEKIT_MISS) break;
    CHECK_RC(rc, CACHEKIT_OK);
    if (rc != CACHEKIT_OK) break;
    buf[len] = 0;
    int n = -1;
    if (sscanf((char *)buf, "user:%d", &n) == 1 && n >= 0 && n < 50) {
      seen[n]++;
      CHECK(item.version != 0 && item.created_ms > 0 && item.stored_len > 0);
      CHECK(n < 10 ? item.expires_ms == item.created_ms + 60000 : item.expires_ms == 0);
    } else {
      other++;
    }
    count++;
  }
  /* After the end it stays at the end. */
  size_t len = 0;
  CHECK_RC(cachekit_scan_next(sc, NULL, 0, &len, NULL), CACHEKIT_MISS);
  cachekit_scan_free(sc);
  CHECK(count == 50 && other == 0);
  for (int i = 0; i < 50; i++) CHECK(seen[i] == 1);

  /* Glob classes, and a tag. */
  count = 0;
  CHECK_RC(cachekit_scan_open(s, K("user:[0-1]?"), NULL, false, 0, &sc), CACHEKIT_OK);
  while (cachekit_scan_next(sc, NULL, 0, &len, NULL) == CACHEKIT_BUFFER_TOO_SMALL) {
    uint8_t *k = malloc(len);
    CHECK_RC(cachekit_scan_next(sc, k, len, &len, NULL), CACHEKIT_OK);
    CHECK(len == 7 && (k[5] == '0' || k[5] == '1'));
    free(k);
    count++;
  }
  cachekit_scan_free(sc);
  CHECK(count == 20);
  count = 0;
  CHECK_RC(cachekit_scan_open(s, NULL, 0, "scan/even", true, 1000, &sc), CACHEKIT_OK);
  uint8_t buf[32];
  while (cachekit_scan_next(sc, buf, sizeof buf, &len, NULL) == CACHEKIT_OK) {
    CHECK(len == 7 && (buf[6] - '0') % 2 == 0);
    count++;
  }
  cachekit_scan_free(sc);
  CHECK(count == 25);
  /* Everything, with no pattern. */
  count = 0;
  CHECK_RC(cachekit_scan_open(s, NULL, 0, NULL, false, 0, &sc), CACHEKIT_OK);
  while (cachekit_scan_next(sc, buf, sizeof buf, &len, NULL) == CACHEKIT_OK) count++;
  cachekit_scan_free(sc);
  CHECK(count == 51);

  /* A scan outlives the handle it was opened on. */
  cachekit_client *tmp = open_client(SOCKET, "atomic-scan");
  CHECK_RC(cachekit_scan_open(tmp, K("user:0*"), NULL, false, 3, &sc), CACHEKIT_OK);
  cachekit_client_close(tmp);
  count = 0;
  while (cachekit_scan_next(sc, buf, sizeof buf, &len, NULL) == CACHEKIT_OK) count++;
  cachekit_scan_free(sc);
  CHECK(count == 10);
  cachekit_client_close(s);
}

static void scan_refuses_bad_input(void) {
  cachekit_scan *sc = (cachekit_scan *)0x1;
  CHECK_RC(cachekit_scan_open(C, NULL, 0, NULL, true, 0, &sc), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("without a `tag`");
  CHECK_RC(cachekit_scan_open(C, NULL, 0, NULL, false, 1001, &sc), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("1000");
  CHECK_RC(cachekit_scan_open(C, NULL, 0, "a//b", false, 0, &sc), CACHEKIT_INVALID_ARGUMENT);
  CHECK_RC(cachekit_scan_open(C, NULL, 3, NULL, false, 0, &sc), CACHEKIT_NULL_ARGUMENT);
  /* An empty pattern is refused (NULL selects every key). */
  CHECK_RC(cachekit_scan_open(C, (const uint8_t *)"", 0, NULL, false, 0, &sc),
           CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("pattern is empty");
  CHECK_RC(cachekit_scan_open(C, NULL, 0, NULL, false, 0, NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_scan_open(NULL, NULL, 0, NULL, false, 0, &sc), CACHEKIT_NULL_ARGUMENT);
  CHECK(sc == (cachekit_scan *)0x1);
  size_t len = 0;
  CHECK_RC(cachekit_scan_next(NULL, NULL, 0, &len, NULL), CACHEKIT_NULL_ARGUMENT);
  sc = NULL;
  CHECK_RC(set_str(C, "scan-bad", "v", 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(cachekit_scan_open(C, K("scan-bad"), NULL, false, 0, &sc), CACHEKIT_OK);
  CHECK_RC(cachekit_scan_next(sc, NULL, 0, NULL, NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_scan_next(sc, NULL, 5, &len, NULL), CACHEKIT_NULL_ARGUMENT);
  /* A key too large for the buffer: the size, and the scan stays on it. */
  uint8_t buf[16];
  memset(buf, 0x5A, sizeof buf);
  CHECK_RC(cachekit_scan_next(sc, buf, 3, &len, NULL), CACHEKIT_BUFFER_TOO_SMALL);
  CHECK(len == 8 && buf[0] == 0x5A);
  CHECK_RC(cachekit_scan_next(sc, buf, sizeof buf, &len, NULL), CACHEKIT_OK);
  CHECK(len == 8 && memcmp(buf, "scan-bad", 8) == 0);
  CHECK_RC(cachekit_scan_next(sc, buf, sizeof buf, &len, NULL), CACHEKIT_MISS);
  cachekit_scan_free(sc);
  cachekit_scan_free(NULL);
}

static void delete_matching_frees_what_a_scan_selects(void) {
  cachekit_client *s = open_client(SOCKET, "atomic-del");
  if (!s) return;
  CHECK_RC(cachekit_clear(s), CACHEKIT_OK);
  const char *tag[] = {"del/t"};
  char key[32];
  for (int i = 0; i < 30; i++) {
    snprintf(key, sizeof key, "%s:%d", i < 20 ? "drop" : "keep", i);
    CHECK_RC(set_str(s, key, "v", 0, i >= 25 ? tag : NULL, i >= 25 ? 1 : 0), CACHEKIT_OK);
  }
  uint64_t deleted = 0;
  CHECK_RC(cachekit_delete_matching(s, K("drop:*"), NULL, false, &deleted), CACHEKIT_OK);
  CHECK(deleted == 20);
  char got[8];
  CHECK_RC(get_str(s, "drop:3", got, sizeof got), CACHEKIT_MISS);
  CHECK_RC(get_str(s, "keep:21", got, sizeof got), CACHEKIT_OK);
  /* By tag; the counter output is optional. */
  CHECK_RC(cachekit_delete_matching(s, NULL, 0, "del/t", false, NULL), CACHEKIT_OK);
  CHECK_RC(get_str(s, "keep:26", got, sizeof got), CACHEKIT_MISS);
  CHECK_RC(get_str(s, "keep:21", got, sizeof got), CACHEKIT_OK);
  /* Nothing matches: 0. */
  deleted = 9;
  CHECK_RC(cachekit_delete_matching(s, K("nothing*"), NULL, false, &deleted), CACHEKIT_OK);
  CHECK(deleted == 0);
  CHECK_RC(cachekit_delete_matching(s, NULL, 0, NULL, true, &deleted), CACHEKIT_INVALID_ARGUMENT);
  CHECK_RC(cachekit_delete_matching(s, (const uint8_t *)"", 0, NULL, false, &deleted),
           CACHEKIT_INVALID_ARGUMENT);
  CHECK_RC(get_str(s, "keep:21", got, sizeof got), CACHEKIT_OK);
  CHECK_RC(cachekit_delete_matching(NULL, NULL, 0, NULL, false, &deleted), CACHEKIT_NULL_ARGUMENT);
  CHECK(deleted == 0);
  cachekit_client_close(s);
}

static void namespaces_list_entries_and_bytes(void) {
  cachekit_client *s = open_client(SOCKET, "atomic-ns-list");
  if (!s) return;
  CHECK_RC(cachekit_clear(s), CACHEKIT_OK);
  CHECK_RC(set_str(s, "a", "12345", 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(set_str(s, "b", "12345", 0, NULL, 0), CACHEKIT_OK);
  cachekit_namespaces *list = NULL;
  CHECK_RC(cachekit_namespaces_open(s, &list), CACHEKIT_OK);
  int found = 0;
  for (;;) {
    size_t size = 0;
    cachekit_result rc = cachekit_namespaces_next(list, NULL, 0, &size, NULL, NULL);
    if (rc == CACHEKIT_MISS) break;
    CHECK_RC(rc, CACHEKIT_BUFFER_TOO_SMALL);
    if (rc != CACHEKIT_BUFFER_TOO_SMALL) break;
    char *name = malloc(size);
    uint64_t entries = 0, bytes = 0;
    CHECK_RC(cachekit_namespaces_next(list, name, size, &size, &entries, &bytes), CACHEKIT_OK);
    CHECK(strlen(name) + 1 == size && entries > 0 && bytes > 0);
    if (strcmp(name, "atomic-ns-list") == 0) {
      found++;
      CHECK(entries == 2 && bytes >= 10);
    }
    free(name);
  }
  CHECK(found == 1);
  cachekit_namespaces_free(list);
  cachekit_namespaces_free(NULL);
  CHECK_RC(cachekit_namespaces_open(s, NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_namespaces_open(NULL, &list), CACHEKIT_NULL_ARGUMENT);
  size_t size = 0;
  CHECK_RC(cachekit_namespaces_next(NULL, NULL, 0, &size, NULL, NULL), CACHEKIT_NULL_ARGUMENT);
  cachekit_client_close(s);
}

/* ---- processes racing on one key ---- */

/* Runs `body(client, id)` in `n` child processes at once; each opens its own handle. The
 * children exit with their failed-check count. */
static void in_processes(int n, void (*body)(cachekit_client *, int)) {
  pid_t pids[16];
  for (int i = 0; i < n; i++) {
    pids[i] = fork();
    if (pids[i] == 0) {
      atomic_store(&check_failures_in_test, 0);
      cachekit_client *c = open_client(SOCKET, "atomic-race");
      if (c) {
        body(c, i);
        cachekit_client_close(c);
      }
      _exit(atomic_load(&check_failures_in_test) ? 1 : 0);
    }
  }
  for (int i = 0; i < n; i++) {
    int status = 0;
    waitpid(pids[i], &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
}

static void incr_body(cachekit_client *c, int id) {
  (void)id;
  int64_t zero = 0, v = 0;
  for (int i = 0; i < ITERS; i++) CHECK_RC(cachekit_incr(c, K("hits"), 1, &zero, 0, &v), CACHEKIT_OK);
}

static void add_body(cachekit_client *c, int id) {
  char key[32];
  int wins = 0;
  for (int round = 0; round < ITERS / 10; round++) {
    snprintf(key, sizeof key, "lock:%d", round);
    bool stored = false;
    CHECK_RC(cachekit_add(c, (const uint8_t *)key, strlen(key), K("held"), NULL, &stored),
             CACHEKIT_OK);
    if (stored) {
      /* Record the winner under a key of its own: exactly one per round may exist. */
      snprintf(key, sizeof key, "winner:%d:%d", round, id);
      CHECK_RC(set_str(c, key, "1", 0, NULL, 0), CACHEKIT_OK);
      wins++;
    }
  }
  (void)wins;
}

static void cas_body(cachekit_client *c, int id) {
  (void)id;
  for (int i = 0; i < ITERS / 3; i++) {
    for (;;) {
      uint8_t buf[32];
      size_t len = 0;
      cachekit_value_info info;
      CHECK_RC(cachekit_get(c, K("cas-count"), buf, sizeof buf - 1, &len, &info), CACHEKIT_OK);
      buf[len] = 0;
      char next[32];
      snprintf(next, sizeof next, "%lld", atoll((char *)buf) + 1);
      bool stored = false;
      CHECK_RC(cachekit_cas(c, K("cas-count"), (const uint8_t *)next, strlen(next), info.version,
                            NULL, &stored),
               CACHEKIT_OK);
      if (stored) break;
    }
  }
}

static void processes_racing_incr_add_and_cas_lose_nothing(void) {
  cachekit_client *s = open_client(SOCKET, "atomic-race");
  if (!s) return;
  CHECK_RC(cachekit_clear(s), CACHEKIT_OK);
  in_processes(4, incr_body);
  int64_t v = 0;
  CHECK_RC(cachekit_incr(s, K("hits"), 0, NULL, 0, &v), CACHEKIT_OK);
  CHECK(v == 4 * ITERS);

  in_processes(8, add_body);
  for (int round = 0; round < ITERS / 10; round++) {
    int winners = 0;
    for (int id = 0; id < 8; id++) {
      char key[32], got[8];
      snprintf(key, sizeof key, "winner:%d:%d", round, id);
      if (get_str(s, key, got, sizeof got) == CACHEKIT_OK) winners++;
    }
    CHECK(winners == 1);
  }

  CHECK_RC(set_str(s, "cas-count", "0", 0, NULL, 0), CACHEKIT_OK);
  in_processes(4, cas_body);
  char got[32];
  CHECK_RC(get_str(s, "cas-count", got, sizeof got), CACHEKIT_OK);
  CHECK(atoll(got) == 4 * (ITERS / 3));
  cachekit_client_close(s);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
    return 2;
  }
  SOCKET = argv[1];
  const char *iters = getenv("CACHEKIT_TEST_ITERS");
  if (iters && atoi(iters) > 0) ITERS = atoi(iters);
  C = open_client(SOCKET, "atomic");
  if (!C) {
    fprintf(stderr, "cannot open a client on %s: %s\n", SOCKET, last_error());
    return 1;
  }
  CHECK_RC(cachekit_clear(C), CACHEKIT_OK);
  TEST(add_stores_only_when_absent);
  TEST(replace_stores_only_when_present);
  TEST(cas_stores_only_over_the_version_read);
  TEST(set_options_are_checked);
  TEST(set_i64_is_read_as_an_integer);
  TEST(incr_creates_adds_and_decr_subtracts);
  TEST(incr_of_a_non_integer_or_overflow_is_refused);
  TEST(get_and_delete_takes_the_value_once);
  TEST(get_and_delete_keeps_a_value_too_large_for_the_buffer);
  TEST(a_zero_ttl_never_expires_in_every_call);
  TEST(touch_persist_and_ttl);
  TEST(scan_returns_each_match_once_page_by_page);
  TEST(scan_refuses_bad_input);
  TEST(delete_matching_frees_what_a_scan_selects);
  TEST(namespaces_list_entries_and_bytes);
  TEST(processes_racing_incr_add_and_cas_lose_nothing);
  cachekit_client_close(C);
  return check_summary();
}
