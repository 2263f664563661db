/*
 * Fill leases through the C ABI against a real cachekitd, across real processes: one process
 * computes while forked ones wait and all get its value; a released lease and a dead holder's
 * lease (`_exit` without a release, `kill -9`) pass to a waiter; a wait times out with
 * CACHEKIT_LEASE_BUSY; stale values get exactly one refresher; cachekit_query runs its
 * callback once for many threads, and a failing callback reaches its caller only.
 *
 * Usage: test_lease SOCKET
 */
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define WAITERS 6

static const char *SOCKET;
static cachekit_client *C;

static uint64_t daemon_counter(const char *name) {
  cachekit_stats *st = NULL;
  uint64_t v = 0;
  CHECK_RC(cachekit_stats_fetch(C, &st), CACHEKIT_OK);
  CHECK_RC(cachekit_stats_lookup(st, name, &v), CACHEKIT_OK);
  cachekit_stats_free(st);
  return v;
}

/* Waits (up to 10 s) until the daemon has seen `n` more callers wait for a lease than
 * `before`: they are then blocked in LEASE. */
static void await_waiters(uint64_t before, uint64_t n) {
  long long until = mono_ms() + 10000;
  while (daemon_counter("daemon.leases_waited") < before + n && mono_ms() < until) sleep_ms(5);
  CHECK(daemon_counter("daemon.leases_waited") >= before + n);
}

static cachekit_lease_options lease_opts(uint64_t wait_ms, uint64_t lease_ms) {
  cachekit_lease_options lo;
  memset(&lo, 0, sizeof lo);
  lo.struct_size = sizeof lo;
  lo.wait_timeout_ms = wait_ms;
  lo.lease_timeout_ms = lease_ms;
  return lo;
}

static cachekit_result acquire(const cachekit_client *c, const char *key,
                               const cachekit_lease_options *lo, cachekit_lease **out,
                               char *got, size_t cap) {
  size_t len = 0;
  cachekit_result rc = cachekit_lease_acquire(c, (const uint8_t *)key, strlen(key), lo, out,
                                              (uint8_t *)got, cap - 1, &len, NULL);
  if (rc == CACHEKIT_OK) got[len] = 0;
  return rc;
}

static cachekit_result fill_str(cachekit_lease *l, const char *value, bool *stored) {
  cachekit_set_options so;
  memset(&so, 0, sizeof so);
  so.struct_size = sizeof so;
  so.ttl_ms = 60000;
  return cachekit_lease_fill(l, (const uint8_t *)value, strlen(value), &so, stored);
}

/* Waits for a child; reports a non-zero exit status. */
static void reap(pid_t pid) {
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fprintf(stderr, "    child %d ended with status %#x\n", (int)pid, status);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- one computes, forked processes wait ---- */

/* A child: waits for the key's value; exit 0 when it is `want`. */
static int waiter_child(const char *key, const char *want) {
  cachekit_client *c = open_client(SOCKET, "lease");
  if (!c) return 10;
  cachekit_lease_options lo = lease_opts(10000, 0);
  cachekit_lease *l = NULL;
  char got[64];
  int rc = 0;
  cachekit_result r = acquire(c, key, &lo, &l, got, sizeof got);
  if (r == CACHEKIT_LEASE_GRANTED) {
    cachekit_lease_release(l);
    rc = 11;
  } else if (r != CACHEKIT_OK) {
    rc = 12;
  } else if (strcmp(got, want) != 0) {
    rc = 13;
  }
  cachekit_client_close(c);
  return rc;
}

static void one_process_computes_while_forked_ones_wait(void) {
  const char *key = "computed-once";
  cachekit_lease_options lo = lease_opts(10000, 0);
  cachekit_lease *l = NULL;
  char got[64];
  CHECK_RC(acquire(C, key, &lo, &l, got, sizeof got), CACHEKIT_LEASE_GRANTED);
  CHECK(l != NULL);
  uint64_t before = daemon_counter("daemon.leases_waited");
  pid_t pids[WAITERS];
  fflush(NULL);
  for (int i = 0; i < WAITERS; i++) {
    pids[i] = fork();
    if (pids[i] == 0) _exit(waiter_child(key, "the one value"));
    CHECK(pids[i] > 0);
  }
  await_waiters(before, WAITERS);
  bool stored = false;
  CHECK_RC(fill_str(l, "the one value", &stored), CACHEKIT_OK);
  CHECK(stored);
  for (int i = 0; i < WAITERS; i++) reap(pids[i]);
  CHECK_RC(get_str(C, key, got, sizeof got), CACHEKIT_OK);
  CHECK(strcmp(got, "the one value") == 0);
}

/* ---- hand-overs ---- */

/* A child: waits for the lease, gets it, fills `value`. */
static int taker_child(const char *key, const char *value) {
  cachekit_client *c = open_client(SOCKET, "lease");
  if (!c) return 10;
  cachekit_lease_options lo = lease_opts(10000, 0);
  cachekit_lease *l = NULL;
  char got[64];
  int rc = 0;
  cachekit_result r = acquire(c, key, &lo, &l, got, sizeof got);
  if (r != CACHEKIT_LEASE_GRANTED) rc = 20 + (int)r;
  else if (fill_str(l, value, NULL) != CACHEKIT_OK) rc = 19;
  cachekit_client_close(c);
  return rc;
}

static void a_released_lease_passes_to_a_waiting_process(void) {
  const char *key = "released";
  cachekit_lease_options lo = lease_opts(10000, 0);
  cachekit_lease *l = NULL;
  char got[64];
  CHECK_RC(acquire(C, key, &lo, &l, got, sizeof got), CACHEKIT_LEASE_GRANTED);
  uint64_t before = daemon_counter("daemon.leases_waited");
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) _exit(taker_child(key, "filled by the second holder"));
  await_waiters(before, 1);
  cachekit_lease_release(l); /* the computation "failed": nothing cached, the child takes over */
  reap(pid);
  CHECK_RC(get_str(C, key, got, sizeof got), CACHEKIT_OK);
  CHECK(strcmp(got, "filled by the second holder") == 0);
}

struct timed_acquire {
  const char *key;
  cachekit_result rc;
  long long returned_ms;
  cachekit_lease *lease;
};

static void *acquire_thread(void *arg) {
  struct timed_acquire *t = arg;
  cachekit_lease_options lo = lease_opts(10000, 0);
  char got[64];
  t->rc = acquire(C, t->key, &lo, &t->lease, got, sizeof got);
  t->returned_ms = mono_ms();
  return NULL;
}

/* A child holds the key's lease, says so on `fd`, then dies without releasing it: by
 * `_exit` (how = 0) or waiting for the parent's SIGKILL (how = 1). */
static int holder_child(const char *key, int fd, int how) {
  cachekit_client *c = open_client(SOCKET, "lease");
  if (!c) return 10;
  cachekit_lease_options lo = lease_opts(10000, 0);
  cachekit_lease *l = NULL;
  char got[64];
  if (acquire(c, key, &lo, &l, got, sizeof got) != CACHEKIT_LEASE_GRANTED) return 11;
  if (write(fd, "g", 1) != 1) return 12;
  if (how == 0) {
    char go;
    if (read(fd, &go, 1) != 1) return 13;
    _exit(0); /* no release, no close: the lease's connection closes with the process */
  }
  for (;;) pause();
}

static void a_dead_holder_passes_the_lease_on(int how) {
  const char *key = how == 0 ? "holder-exits" : "holder-killed";
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    close(sv[0]);
    _exit(holder_child(key, sv[1], how));
  }
  close(sv[1]);
  char g = 0;
  CHECK(read(sv[0], &g, 1) == 1 && g == 'g');
  uint64_t before = daemon_counter("daemon.leases_waited");
  struct timed_acquire t = {key, CACHEKIT_OK, 0, NULL};
  pthread_t th;
  pthread_create(&th, NULL, acquire_thread, &t);
  await_waiters(before, 1);
  long long died_ms = mono_ms();
  if (how == 0) {
    CHECK(write(sv[0], "x", 1) == 1);
  } else {
    kill(pid, SIGKILL);
  }
  pthread_join(th, NULL);
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK_RC(t.rc, CACHEKIT_LEASE_GRANTED);
  long long handover = t.returned_ms - died_ms;
  printf("    hand-over after the holder's %s: %lld ms\n", how == 0 ? "_exit" : "kill -9",
         handover);
  /* The connection's close releases it at once; 2 s leaves room for valgrind. */
  CHECK(handover < 2000);
  CHECK_RC(fill_str(t.lease, "after the holder died", NULL), CACHEKIT_OK);
  close(sv[0]);
}

static void a_holder_that_exits_without_release_passes_the_lease_on(void) {
  a_dead_holder_passes_the_lease_on(0);
}

static void a_holder_killed_with_sigkill_passes_the_lease_on(void) {
  a_dead_holder_passes_the_lease_on(1);
}

/* ---- timeouts, refresh, fills across an invalidation ---- */

static void a_wait_times_out_as_busy(void) {
  const char *key = "busy";
  cachekit_lease_options lo = lease_opts(10000, 0);
  cachekit_lease *l = NULL, *other = NULL;
  char got[64];
  CHECK_RC(acquire(C, key, &lo, &l, got, sizeof got), CACHEKIT_LEASE_GRANTED);
  /* Each lease has a connection of its own: a second caller in this process waits too. */
  cachekit_lease_options short_wait = lease_opts(300, 0);
  long long t0 = mono_ms();
  CHECK_RC(acquire(C, key, &short_wait, &other, got, sizeof got), CACHEKIT_LEASE_BUSY);
  long long waited = mono_ms() - t0;
  CHECK(other == NULL);
  CHECK(waited >= 290 && waited < 3000);
  cachekit_lease_release(l);
}

static void an_expired_lease_passes_on_and_its_late_fill_is_refused(void) {
  const char *key = "expired";
  cachekit_lease_options slow = lease_opts(10000, 200);
  cachekit_lease *l = NULL, *next = NULL;
  char got[64];
  CHECK_RC(acquire(C, key, &slow, &l, got, sizeof got), CACHEKIT_LEASE_GRANTED);
  cachekit_lease_options lo = lease_opts(10000, 0);
  CHECK_RC(acquire(C, key, &lo, &next, got, sizeof got), CACHEKIT_LEASE_GRANTED);
  bool stored = true;
  CHECK_RC(fill_str(l, "too late", &stored), CACHEKIT_OK);
  CHECK(!stored);
  CHECK_RC(fill_str(next, "in time", &stored), CACHEKIT_OK);
  CHECK(stored);
  CHECK_RC(get_str(C, key, got, sizeof got), CACHEKIT_OK);
  CHECK(strcmp(got, "in time") == 0);
}

static void a_fill_across_an_invalidation_is_not_stored(void) {
  const char *key = "invalidated";
  const char *tags[] = {"lease/inv"};
  cachekit_lease *l = NULL;
  char got[64];
  CHECK_RC(acquire(C, key, NULL, &l, got, sizeof got), CACHEKIT_LEASE_GRANTED);
  CHECK_RC(cachekit_invalidate(C, tags, 1, 0), CACHEKIT_OK);
  cachekit_set_options so;
  memset(&so, 0, sizeof so);
  so.struct_size = sizeof so;
  so.tags = tags;
  so.tag_count = 1;
  bool stored = true;
  CHECK_RC(cachekit_lease_fill(l, (const uint8_t *)"old row", 7, &so, &stored), CACHEKIT_OK);
  CHECK(!stored);
  CHECK_RC(get_str(C, key, got, sizeof got), CACHEKIT_MISS);
}

static void a_stale_value_has_one_refresher(void) {
  const char *key = "stale";
  CHECK_RC(cachekit_set(C, (const uint8_t *)key, strlen(key), (const uint8_t *)"old", 3, 50,
                        60000, NULL, 0),
           CACHEKIT_OK);
  sleep_ms(120);
  char got[64];
  size_t len = 0;
  cachekit_value_info info;
  CHECK_RC(cachekit_get(C, (const uint8_t *)key, strlen(key), (uint8_t *)got, sizeof got, &len,
                        &info),
           CACHEKIT_OK);
  CHECK(info.stale);
  cachekit_lease *l = NULL, *second = NULL;
  CHECK_RC(cachekit_refresh_lease(C, (const uint8_t *)key, strlen(key), NULL, &l),
           CACHEKIT_LEASE_GRANTED);
  long long t0 = mono_ms();
  CHECK_RC(cachekit_refresh_lease(C, (const uint8_t *)key, strlen(key), NULL, &second),
           CACHEKIT_LEASE_BUSY);
  CHECK(mono_ms() - t0 < 1000); /* never waits */
  CHECK(second == NULL);
  CHECK_RC(fill_str(l, "new", NULL), CACHEKIT_OK);
  CHECK_RC(cachekit_get(C, (const uint8_t *)key, strlen(key), (uint8_t *)got, sizeof got, &len,
                        &info),
           CACHEKIT_OK);
  CHECK(len == 3 && memcmp(got, "new", 3) == 0 && !info.stale);
}

static void arguments_are_checked_and_a_failed_fill_still_ends_the_lease(void) {
  const char *key = "args";
  cachekit_lease *l = NULL;
  char got[64];
  size_t len = 0;
  CHECK_RC(cachekit_lease_acquire(C, (const uint8_t *)key, 4, NULL, NULL, (uint8_t *)got,
                                  sizeof got, &len, NULL),
           CACHEKIT_NULL_ARGUMENT);
  cachekit_lease_options bad = lease_opts(0, 0);
  bad.struct_size = 8;
  CHECK_RC(acquire(C, key, &bad, &l, got, sizeof got), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("sizeof(cachekit_lease_options)");
  bad = lease_opts(0, 0);
  bad.flags = 0x80;
  CHECK_RC(acquire(C, key, &bad, &l, got, sizeof got), CACHEKIT_INVALID_ARGUMENT);
  CHECK(l == NULL); /* outputs only on success */
  CHECK_RC(acquire(C, key, NULL, &l, got, sizeof got), CACHEKIT_LEASE_GRANTED);
  cachekit_set_options so;
  memset(&so, 0, sizeof so);
  so.struct_size = sizeof so;
  so.flags = CACHEKIT_SET_INTEGER;
  CHECK_RC(cachekit_lease_fill(l, (const uint8_t *)"1", 1, &so, NULL), CACHEKIT_INVALID_ARGUMENT);
  CHECK_MSG("CACHEKIT_SET_INTEGER");
  /* The refused fill released the lease: the next caller gets it at once. */
  cachekit_lease_options quick = lease_opts(200, 0);
  l = NULL;
  CHECK_RC(acquire(C, key, &quick, &l, got, sizeof got), CACHEKIT_LEASE_GRANTED);
  /* A value too large for the buffer: its size, then the value. */
  CHECK_RC(fill_str(l, "twelve bytes", NULL), CACHEKIT_OK);
  CHECK_RC(cachekit_lease_acquire(C, (const uint8_t *)key, 4, NULL, &l, (uint8_t *)got, 4, &len,
                                  NULL),
           CACHEKIT_BUFFER_TOO_SMALL);
  CHECK(len == 12);
  CHECK_RC(acquire(C, key, NULL, &l, got, sizeof got), CACHEKIT_OK);
  CHECK(strcmp(got, "twelve bytes") == 0);
  CHECK(strcmp(cachekit_result_describe(CACHEKIT_LEASE_GRANTED), cachekit_result_describe(
                                                                     CACHEKIT_LEASE_BUSY)) != 0);
}

/* ---- cachekit_query ---- */

struct compute_ctx {
  atomic_int calls;
  int fail_with;
};

static int compute(void *user_data, cachekit_compute_out *out) {
  struct compute_ctx *ctx = user_data;
  atomic_fetch_add(&ctx->calls, 1);
  sleep_ms(200); /* long enough for every other thread to find the lease taken */
  if (ctx->fail_with) return ctx->fail_with;
  const char *v = "queried value";
  return cachekit_compute_out_set(out, (const uint8_t *)v, strlen(v)) == CACHEKIT_OK ? 0 : -1;
}

struct query_thread {
  struct compute_ctx *ctx;
  const char *key;
  cachekit_result rc;
  char got[64];
  cachekit_source source;
};

static void *query_thread(void *arg) {
  struct query_thread *q = arg;
  cachekit_set_options so;
  memset(&so, 0, sizeof so);
  so.struct_size = sizeof so;
  so.ttl_ms = 60000;
  uint8_t *v = NULL;
  size_t len = 0;
  cachekit_value_info info;
  q->rc = cachekit_query(C, (const uint8_t *)q->key, strlen(q->key), NULL, &so, compute, q->ctx,
                         &v, &len, &info);
  if (q->rc == CACHEKIT_OK) {
    snprintf(q->got, sizeof q->got, "%.*s", (int)len, (const char *)v);
    q->source = info.source;
    cachekit_buf_free(v);
  }
  return NULL;
}

#define QUERY_THREADS 8

static void query_computes_once_for_many_threads(void) {
  struct compute_ctx ctx = {0, 0};
  struct query_thread q[QUERY_THREADS];
  pthread_t t[QUERY_THREADS];
  for (int i = 0; i < QUERY_THREADS; i++) {
    memset(&q[i], 0, sizeof q[i]);
    q[i].ctx = &ctx;
    q[i].key = "query-once";
    pthread_create(&t[i], NULL, query_thread, &q[i]);
  }
  int computed = 0;
  for (int i = 0; i < QUERY_THREADS; i++) {
    pthread_join(t[i], NULL);
    CHECK_RC(q[i].rc, CACHEKIT_OK);
    CHECK(strcmp(q[i].got, "queried value") == 0);
    computed += q[i].source == CACHEKIT_SOURCE_COMPUTED;
  }
  CHECK(atomic_load(&ctx.calls) == 1);
  CHECK(computed == 1);
  /* A fresh hit now: no callback. */
  query_thread(&q[0]);
  CHECK(q[0].source == CACHEKIT_SOURCE_SEGMENT);
  CHECK(atomic_load(&ctx.calls) == 1);
}

static void a_failing_callback_reaches_its_caller_only(void) {
  struct compute_ctx failing = {0, 7};
  struct compute_ctx good = {0, 0};
  struct query_thread a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  a.ctx = &failing;
  a.key = b.key = "query-fails";
  b.ctx = &good;
  pthread_t ta, tb;
  pthread_create(&ta, NULL, query_thread, &a);
  sleep_ms(50); /* a holds the lease: b waits, then takes it over */
  pthread_create(&tb, NULL, query_thread, &b);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  CHECK_RC(a.rc, CACHEKIT_COMPUTE_FAILED);
  CHECK_RC(b.rc, CACHEKIT_OK);
  CHECK(strcmp(b.got, "queried value") == 0);
  CHECK(atomic_load(&failing.calls) == 1 && atomic_load(&good.calls) == 1);
  uint8_t *v = NULL;
  size_t len = 0;
  CHECK_RC(cachekit_query(C, (const uint8_t *)"q-null", 6, NULL, NULL, NULL, NULL, &v, &len, NULL),
           CACHEKIT_NULL_ARGUMENT);
  struct compute_ctx again = {0, 3};
  CHECK_RC(cachekit_query(C, (const uint8_t *)"q-err", 5, NULL, NULL, compute, &again, &v, &len,
                          NULL),
           CACHEKIT_COMPUTE_FAILED);
  CHECK_MSG("returned 3");
  char got[16];
  CHECK_RC(get_str(C, "q-err", got, sizeof got), CACHEKIT_MISS);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
    return 2;
  }
  SOCKET = argv[1];
  C = open_client(SOCKET, "lease");
  if (!C) {
    fprintf(stderr, "cannot open a client on %s: %s\n", SOCKET, last_error());
    return 1;
  }
  CHECK_RC(cachekit_clear(C), CACHEKIT_OK);
  TEST(one_process_computes_while_forked_ones_wait);
  TEST(a_released_lease_passes_to_a_waiting_process);
  TEST(a_holder_that_exits_without_release_passes_the_lease_on);
  TEST(a_holder_killed_with_sigkill_passes_the_lease_on);
  TEST(a_wait_times_out_as_busy);
  TEST(an_expired_lease_passes_on_and_its_late_fill_is_refused);
  TEST(a_fill_across_an_invalidation_is_not_stored);
  TEST(a_stale_value_has_one_refresher);
  TEST(arguments_are_checked_and_a_failed_fill_still_ends_the_lease);
  TEST(query_computes_once_for_many_threads);
  TEST(a_failing_callback_reaches_its_caller_only);
  cachekit_client_close(C);
  return check_summary();
}
