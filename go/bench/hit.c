/*
 * hit.c - latency of a 100-byte get hit from C, for scripts/bench-hit.
 *
 * The setup of the Rust client's benchmark (libclient/benches/client.rs), of hit.rs and of the
 * Go TestHitLatency: 10 000 keys of 100 random bytes (splitmix64), each checked to hit from
 * the segment with its own bytes; reads in a shuffled order; n/10 untimed reads, then n reads
 * timed one by one with clock_gettime(CLOCK_MONOTONIC), then n reads timed as one loop (the
 * mean without the clock's cost). Prints one line:
 *   LATENCY lang=c call=cachekit_get ops=N p50=.. p90=.. p99=.. p999=.. max=.. mean=.. timer=..
 *
 * Usage: hit SOCKET [OPS]   (built against the installed library with pkg-config)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cachekit.h>

enum { KEYS = 10000, SIZE = 100 };

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static inline int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static int64_t q(const int64_t *ns, size_t n, double p) { return ns[(size_t)((double)(n - 1) * p + 0.5)]; }

static void die(const char *what, cachekit_result rc) {
  char msg[512];
  size_t needed;
  if (cachekit_last_error_message(msg, sizeof msg, &needed) != CACHEKIT_OK) msg[0] = 0;
  fprintf(stderr, "hit: %s: %s (%s)\n", what, cachekit_result_describe(rc), msg);
  exit(1);
}

static char keys[KEYS][16];
static size_t key_lens[KEYS];
static size_t order[KEYS];

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: hit SOCKET [OPS]\n");
    return 2;
  }
  size_t ops = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 200000;
  cachekit_options o;
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.socket_path = argv[1];
  o.ns = "c-latency";
  cachekit_client *c = NULL;
  cachekit_result rc = cachekit_client_open(&o, &c);
  if (rc != CACHEKIT_OK) die("open", rc);

  uint64_t r = SIZE;
  uint8_t value[SIZE], buf[SIZE];
  for (size_t i = 0; i < KEYS; i++) {
    key_lens[i] = (size_t)snprintf(keys[i], sizeof keys[i], "hit-%zu", i);
    for (size_t j = 0; j < SIZE; j++) value[j] = (uint8_t)splitmix(&r);
    rc = cachekit_set(c, (const uint8_t *)keys[i], key_lens[i], value, SIZE, 3600000, 0, NULL, 0);
    if (rc != CACHEKIT_OK) die("pre-setting a key", rc);
    size_t len = 0;
    cachekit_value_info info;
    rc = cachekit_get(c, (const uint8_t *)keys[i], key_lens[i], buf, sizeof buf, &len, &info);
    if (rc != CACHEKIT_OK || len != SIZE || memcmp(buf, value, SIZE) != 0 ||
        info.source != CACHEKIT_SOURCE_SEGMENT) {
      fprintf(stderr, "hit: pre-set key %zu does not hit from the segment\n", i);
      return 1;
    }
    order[i] = i;
  }
  uint64_t s = ~(uint64_t)SIZE;
  for (size_t i = KEYS - 1; i > 0; i--) {
    size_t j = (size_t)(splitmix(&s) % (i + 1));
    size_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }

  int64_t *ns = malloc(ops * sizeof *ns);
  if (ns == NULL) return 1;
  for (size_t i = 0; i < ops; i++) {
    int64_t t = now_ns();
    ns[i] = now_ns() - t;
  }
  qsort(ns, ops, sizeof *ns, cmp);
  int64_t timer = ns[ops / 2];

  size_t k = 0, missed = 0, len;
#define ONE_GET()                                                                              \
  do {                                                                                         \
    size_t i_ = order[k];                                                                      \
    if (cachekit_get(c, (const uint8_t *)keys[i_], key_lens[i_], buf, sizeof buf, &len, NULL) \
        != CACHEKIT_OK)                                                                        \
      missed++;                                                                                \
    if (++k == KEYS) k = 0;                                                                    \
  } while (0)
  for (size_t i = 0; i < ops / 10; i++) ONE_GET();
  for (size_t i = 0; i < ops; i++) {
    int64_t t = now_ns();
    ONE_GET();
    ns[i] = now_ns() - t;
  }
  int64_t start = now_ns();
  for (size_t i = 0; i < ops; i++) ONE_GET();
  double mean = (double)(now_ns() - start) / (double)ops;
  if (missed) {
    fprintf(stderr, "hit: %zu timed gets missed\n", missed);
    return 1;
  }
  qsort(ns, ops, sizeof *ns, cmp);
  printf("LATENCY lang=c call=cachekit_get ops=%zu p50=%" PRId64 " p90=%" PRId64 " p99=%" PRId64
         " p999=%" PRId64 " max=%" PRId64 " mean=%.0f timer=%" PRId64 "\n",
         ops, q(ns, ops, 0.5), q(ns, ops, 0.9), q(ns, ops, 0.99), q(ns, ops, 0.999), ns[ops - 1],
         mean, timer);
  free(ns);
  cachekit_client_close(c);
  return 0;
}
