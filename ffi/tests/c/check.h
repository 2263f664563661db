/*
 * A very small test harness for the C tests of libcachekit.
 *
 * TEST(name) runs a function; CHECK / CHECK_RC record failures (from any thread) with file,
 * line, the code's description and the thread's last error message. A test passes when it
 * recorded no failure. check_summary() prints the closing "N passed, M failed" line and
 * returns the exit code.
 */
#ifndef CACHEKIT_CHECK_H
#define CACHEKIT_CHECK_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cachekit.h"

static atomic_int check_failures_in_test;
static int check_tests_passed, check_tests_failed;

/* The thread's last error message, in a static per-thread buffer. */
static inline const char *last_error(void) {
  static _Thread_local char buf[4096];
  size_t needed = 0;
  buf[0] = 0;
  if (cachekit_last_error_message(buf, sizeof buf, &needed) != CACHEKIT_OK) {
    snprintf(buf, sizeof buf, "(last error message of %zu bytes unavailable)", needed);
  }
  return buf;
}

static inline void check_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  atomic_fetch_add(&check_failures_in_test, 1);
  fprintf(stderr, "    %s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

#define CHECK(cond)                                                                         \
  do {                                                                                      \
    if (!(cond)) check_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond);                 \
  } while (0)

#define CHECK_RC(expr, want)                                                                \
  do {                                                                                      \
    cachekit_result rc_ = (expr);                                                           \
    cachekit_result want_ = (want);                                                         \
    if (rc_ != want_)                                                                       \
      check_fail(__FILE__, __LINE__, "%s returned %u (%s), wanted %u (%s); last error: %s", \
                 #expr, (unsigned)rc_, cachekit_result_describe(rc_), (unsigned)want_,      \
                 cachekit_result_describe(want_), last_error());                            \
  } while (0)

/* CHECK that the thread's last error message contains `needle`. */
#define CHECK_MSG(needle)                                                                   \
  do {                                                                                      \
    const char *m_ = last_error();                                                          \
    if (!strstr(m_, (needle)))                                                              \
      check_fail(__FILE__, __LINE__, "last error \"%s\" lacks \"%s\"", m_, (needle));       \
  } while (0)

static inline void run_test(const char *name, void (*fn)(void)) {
  atomic_store(&check_failures_in_test, 0);
  fn();
  fflush(stdout);
  if (atomic_load(&check_failures_in_test) == 0) {
    check_tests_passed++;
    printf("ok - %s\n", name);
  } else {
    check_tests_failed++;
    printf("FAIL - %s (%d failed checks)\n", name, atomic_load(&check_failures_in_test));
  }
  fflush(stdout);
}

#define TEST(fn) run_test(#fn, fn)

static inline int check_summary(void) {
  printf("%d passed, %d failed\n", check_tests_passed, check_tests_failed);
  return check_tests_failed ? 1 : 0;
}

/* Milliseconds on a monotonic clock, for watchdogs. */
static inline long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline long long unix_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Opens a client on `socket` in namespace `ns`; NULL on failure (reported). */
static inline cachekit_client *open_client(const char *socket, const char *ns) {
  cachekit_options o;
  cachekit_client *c = NULL;
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.socket_path = socket;
  o.ns = ns;
  CHECK_RC(cachekit_client_open(&o, &c), CACHEKIT_OK);
  return c;
}

/* Gets `key` (a C string) into a fresh buffer: CACHEKIT_OK and the NUL-terminated value in
 * `out` (of `cap` bytes), or the code. */
static inline cachekit_result get_str(const cachekit_client *c, const char *key, char *out, size_t cap) {
  size_t len = 0;
  cachekit_result rc = cachekit_get(c, (const uint8_t *)key, strlen(key), (uint8_t *)out,
                                    cap - 1, &len, NULL);
  if (rc == CACHEKIT_OK) out[len] = 0;
  return rc;
}

static inline cachekit_result set_str(const cachekit_client *c, const char *key, const char *value,
                               uint64_t ttl_ms, const char *const *tags, size_t ntags) {
  return cachekit_set(c, (const uint8_t *)key, strlen(key), (const uint8_t *)value,
                      strlen(value), ttl_ms, 0, tags, ntags);
}

#endif /* CACHEKIT_CHECK_H */
