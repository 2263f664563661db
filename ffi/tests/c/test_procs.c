/*
 * One handle shared by many threads, and two processes on one daemon.
 *
 * Usage: test_procs SOCKET
 *   SOCKET: the socket of a running cachekitd.
 * CACHEKIT_TEST_ITERS (default 300) sets the operations per thread.
 */
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define THREADS 8

static const char *SOCKET;
static cachekit_client *C;
static int ITERS = 300;

/* ---- threads ---- */

static void *worker(void *arg) {
  int id = (int)(intptr_t)arg;
  char key[64], value[64], got[64], tag[32];
  snprintf(tag, sizeof tag, "thread/%d", id);
  const char *tags[] = {tag};
  for (int i = 0; i < ITERS; i++) {
    snprintf(key, sizeof key, "t%d:%d", id, i % 16);
    snprintf(value, sizeof value, "value %d of thread %d", i, id);
    /* Only this thread writes its keys: a get after the set sees exactly that value. */
    CHECK_RC(set_str(C, key, value, 60000, tags, 1), CACHEKIT_OK);
    CHECK_RC(get_str(C, key, got, sizeof got), CACHEKIT_OK);
    CHECK(strcmp(got, value) == 0);
    /* A key every thread reads and nobody writes. */
    CHECK_RC(get_str(C, "shared", got, sizeof got), CACHEKIT_OK);
    CHECK(strcmp(got, "set before the threads started") == 0);
    switch (i % 50) {
    case 10: { /* library-allocated buffers from many threads */
      uint8_t *p = NULL;
      size_t len = 0;
      CHECK_RC(cachekit_get_alloc(C, (const uint8_t *)key, strlen(key), &p, &len, NULL),
               CACHEKIT_OK);
      CHECK(len == strlen(value) && p && memcmp(p, value, len) == 0);
      cachekit_buf_free(p);
      break;
    }
    case 20: { /* batches */
      const uint8_t *keys[] = {(const uint8_t *)key, (const uint8_t *)"shared"};
      size_t lens[] = {strlen(key), 6};
      cachekit_batch *b = NULL;
      CHECK_RC(cachekit_get_many(C, keys, lens, 2, &b), CACHEKIT_OK);
      CHECK(cachekit_batch_len(b) == 2);
      cachekit_batch_free(b);
      break;
    }
    case 30: { /* this thread's tag only: its keys go, the shared one stays */
      CHECK_RC(cachekit_invalidate(C, tags, 1, 0), CACHEKIT_OK);
      CHECK_RC(get_str(C, key, got, sizeof got), CACHEKIT_MISS);
      break;
    }
    case 40: { /* an error whose message must stay this thread's own */
      if (id % 2 == 0) {
        uint8_t big[4097] = {0};
        CHECK_RC(cachekit_set(C, big, sizeof big, NULL, 0, 0, 0, NULL, 0), CACHEKIT_TOO_LARGE);
      } else {
        cachekit_client *x = NULL;
        CHECK_RC(cachekit_client_with_namespace(C, "", &x), CACHEKIT_INVALID_ARGUMENT);
      }
      sched_yield();
      CHECK_MSG(id % 2 == 0 ? "max_key_bytes" : "namespace is empty");
      break;
    }
    case 45: {
      cachekit_stats *st = NULL;
      CHECK_RC(cachekit_stats_fetch(C, &st), CACHEKIT_OK);
      cachekit_stats_free(st);
      break;
    }
    }
  }
  return NULL;
}

static void many_threads_share_one_handle(void) {
  CHECK_RC(set_str(C, "shared", "set before the threads started", 0, NULL, 0), CACHEKIT_OK);
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  uint64_t hits = 0;
  cachekit_stats *st = NULL;
  CHECK_RC(cachekit_stats_fetch(C, &st), CACHEKIT_OK);
  CHECK_RC(cachekit_stats_lookup(st, "client.segment_hits", &hits), CACHEKIT_OK);
  CHECK(hits >= (uint64_t)THREADS * ITERS); /* the gets were served from shared memory */
  cachekit_stats_free(st);
}

/* ---- processes ---- */

/* In a child: open a handle of its own, read what the parent wrote, write an answer. */
static int child(void) {
  cachekit_client *c = open_client(SOCKET, "procs");
  if (!c) return 10;
  char got[64];
  int rc = 0;
  if (get_str(c, "from-parent", got, sizeof got) != CACHEKIT_OK) rc = 11;
  else if (strcmp(got, "hello child") != 0) rc = 12;
  else if (set_str(c, "from-child", "hello parent", 0, NULL, 0) != CACHEKIT_OK) rc = 13;
  /* An invalidation in one process is seen by the other at once. */
  else if (cachekit_invalidate(c, (const char *[]){"fork/doomed"}, 1, 0) != CACHEKIT_OK) rc = 14;
  cachekit_client_close(c);
  return rc;
}

static void a_set_in_one_process_is_a_hit_in_another(void) {
  const char *doomed[] = {"fork/doomed"};
  CHECK_RC(set_str(C, "from-parent", "hello child", 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(set_str(C, "doomed", "x", 0, doomed, 1), CACHEKIT_OK);
  char got[64];
  CHECK_RC(get_str(C, "doomed", got, sizeof got), CACHEKIT_OK);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) _exit(child());
  CHECK(pid > 0);
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
    fprintf(stderr, "    child exited with %d\n", WEXITSTATUS(status));
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK_RC(get_str(C, "from-child", got, sizeof got), CACHEKIT_OK);
  CHECK(strcmp(got, "hello parent") == 0);
  CHECK_RC(get_str(C, "doomed", got, sizeof got), CACHEKIT_MISS);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
    return 2;
  }
  SOCKET = argv[1];
  const char *iters = getenv("CACHEKIT_TEST_ITERS");
  if (iters && atoi(iters) > 0) ITERS = atoi(iters);
  C = open_client(SOCKET, "procs");
  if (!C) {
    fprintf(stderr, "cannot open a client on %s: %s\n", SOCKET, last_error());
    return 1;
  }
  /* Fork first, while this process has a single thread. */
  TEST(a_set_in_one_process_is_a_hit_in_another);
  TEST(many_threads_share_one_handle);
  cachekit_client_close(C);
  return check_summary();
}
