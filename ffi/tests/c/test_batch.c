/*
 * cachekit_set_many and cachekit_delete_many against a real cachekitd: a result per item, a
 * bad item refused alone, batches longer than one request (1000 items), NULL arguments.
 *
 * Usage: test_batch SOCKET   (a running cachekitd's socket, started with --max-value-bytes 64KiB)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"

static const char *SOCKET;
static cachekit_client *C;

static void set_many_stores_each_item_and_answers_each(void) {
  const uint8_t *keys[] = {(const uint8_t *)"b1", (const uint8_t *)"b2", (const uint8_t *)"b3"};
  size_t key_lens[] = {2, 2, 2};
  const uint8_t *values[] = {(const uint8_t *)"one", (const uint8_t *)"", (const uint8_t *)"three"};
  size_t value_lens[] = {3, 0, 5};
  const char *tags[] = {"batch/c"};
  cachekit_result results[3] = {CACHEKIT_OTHER_ERROR, CACHEKIT_OTHER_ERROR, CACHEKIT_OTHER_ERROR};
  CHECK_RC(cachekit_set_many(C, keys, key_lens, values, value_lens, 3, 60000, 0, tags, 1, results),
           CACHEKIT_OK);
  for (int i = 0; i < 3; i++) CHECK(results[i] == CACHEKIT_OK);
  char s[16];
  CHECK_RC(get_str(C, "b1", s, sizeof s), CACHEKIT_OK);
  CHECK(strcmp(s, "one") == 0);
  CHECK_RC(get_str(C, "b2", s, sizeof s), CACHEKIT_OK);
  CHECK(strcmp(s, "") == 0);
  CHECK_RC(get_str(C, "b3", s, sizeof s), CACHEKIT_OK);
  CHECK(strcmp(s, "three") == 0);
  /* The tags apply to every item. */
  CHECK_RC(cachekit_invalidate(C, tags, 1, 0), CACHEKIT_OK);
  CHECK_RC(get_str(C, "b1", s, sizeof s), CACHEKIT_MISS);
  /* results may be NULL. */
  CHECK_RC(cachekit_set_many(C, keys, key_lens, values, value_lens, 3, 0, 0, NULL, 0, NULL),
           CACHEKIT_OK);

  const uint8_t *dkeys[] = {(const uint8_t *)"b1", (const uint8_t *)"absent", (const uint8_t *)"b3"};
  size_t dlens[] = {2, 6, 2};
  CHECK_RC(cachekit_delete_many(C, dkeys, dlens, 3, results), CACHEKIT_OK);
  CHECK(results[0] == CACHEKIT_OK && results[1] == CACHEKIT_MISS && results[2] == CACHEKIT_OK);
  CHECK_RC(get_str(C, "b3", s, sizeof s), CACHEKIT_MISS);
  CHECK_RC(get_str(C, "b2", s, sizeof s), CACHEKIT_OK);
  /* Nothing to do. */
  CHECK_RC(cachekit_set_many(C, NULL, NULL, NULL, NULL, 0, 0, 0, NULL, 0, NULL), CACHEKIT_OK);
  CHECK_RC(cachekit_delete_many(C, NULL, NULL, 0, NULL), CACHEKIT_OK);
}

static void a_bad_item_fails_alone(void) {
  /* The daemon of scripts/test-c allows 64 KiB values: 100 KiB is over. */
  size_t big_len = 100 * 1024;
  uint8_t *big = calloc(1, big_len);
  for (size_t i = 0; i < big_len; i++) big[i] = (uint8_t)(i * 2654435761u >> 13);
  const uint8_t *keys[] = {(const uint8_t *)"ok1", (const uint8_t *)"big", (const uint8_t *)"ok2"};
  size_t key_lens[] = {3, 3, 3};
  const uint8_t *values[] = {(const uint8_t *)"a", big, (const uint8_t *)"b"};
  size_t value_lens[] = {1, big_len, 1};
  cachekit_result results[3];
  CHECK_RC(cachekit_set_many(C, keys, key_lens, values, value_lens, 3, 0, 0, NULL, 0, results),
           CACHEKIT_TOO_LARGE);
  CHECK_MSG("max_value_bytes");
  CHECK(results[0] == CACHEKIT_OK && results[1] == CACHEKIT_TOO_LARGE && results[2] == CACHEKIT_OK);
  char s[16];
  CHECK_RC(get_str(C, "ok1", s, sizeof s), CACHEKIT_OK);
  CHECK_RC(get_str(C, "ok2", s, sizeof s), CACHEKIT_OK);
  CHECK_RC(get_str(C, "big", s, sizeof s), CACHEKIT_MISS);
  free(big);
  /* A bad tag concerns every item: the whole batch fails, results untouched. */
  const char *bad[] = {"a//b"};
  results[0] = CACHEKIT_OTHER_ERROR;
  CHECK_RC(cachekit_set_many(C, keys, key_lens, values, value_lens, 1, 0, 0, bad, 1, results),
           CACHEKIT_INVALID_ARGUMENT);
  CHECK(results[0] == CACHEKIT_OTHER_ERROR);
}

static void batches_longer_than_one_request(void) {
  enum { N = 2345 };
  static char kbuf[N][16], vbuf[N][16];
  static const uint8_t *keys[N], *values[N];
  static size_t key_lens[N], value_lens[N];
  static cachekit_result results[N];
  for (int i = 0; i < N; i++) {
    key_lens[i] = (size_t)snprintf(kbuf[i], sizeof kbuf[i], "long:%d", i);
    value_lens[i] = (size_t)snprintf(vbuf[i], sizeof vbuf[i], "v%d", i);
    keys[i] = (const uint8_t *)kbuf[i];
    values[i] = (const uint8_t *)vbuf[i];
  }
  CHECK_RC(cachekit_set_many(C, keys, key_lens, values, value_lens, N, 0, 0, NULL, 0, results),
           CACHEKIT_OK);
  char s[16];
  CHECK_RC(get_str(C, "long:0", s, sizeof s), CACHEKIT_OK);
  CHECK(strcmp(s, "v0") == 0);
  CHECK_RC(get_str(C, "long:2344", s, sizeof s), CACHEKIT_OK);
  CHECK(strcmp(s, "v2344") == 0);
  CHECK_RC(cachekit_delete_many(C, keys, key_lens, N, results), CACHEKIT_OK);
  int present = 0;
  for (int i = 0; i < N; i++) present += results[i] == CACHEKIT_OK;
  CHECK(present == N);
  CHECK_RC(get_str(C, "long:1500", s, sizeof s), CACHEKIT_MISS);
}

static void null_arguments_are_reported(void) {
  const uint8_t *keys[] = {(const uint8_t *)"k"};
  size_t lens[] = {1};
  CHECK_RC(cachekit_set_many(NULL, keys, lens, keys, lens, 1, 0, 0, NULL, 0, NULL),
           CACHEKIT_NULL_ARGUMENT);
  CHECK_RC(cachekit_set_many(C, NULL, lens, keys, lens, 1, 0, 0, NULL, 0, NULL),
           CACHEKIT_NULL_ARGUMENT);
  CHECK_MSG("keys");
  CHECK_RC(cachekit_set_many(C, keys, lens, keys, NULL, 1, 0, 0, NULL, 0, NULL),
           CACHEKIT_NULL_ARGUMENT);
  CHECK_MSG("value_lens");
  CHECK_RC(cachekit_delete_many(C, keys, NULL, 1, NULL), CACHEKIT_NULL_ARGUMENT);
  const uint8_t *null_key[] = {NULL};
  CHECK_RC(cachekit_delete_many(C, null_key, lens, 1, NULL), CACHEKIT_NULL_ARGUMENT);
  CHECK_MSG("keys[0]");
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
    return 2;
  }
  SOCKET = argv[1];
  C = open_client(SOCKET, "cbatch");
  if (!C) {
    fprintf(stderr, "cannot open a client on %s: %s\n", SOCKET, last_error());
    return 1;
  }
  CHECK_RC(cachekit_clear(C), CACHEKIT_OK);
  TEST(set_many_stores_each_item_and_answers_each);
  TEST(a_bad_item_fails_alone);
  TEST(batches_longer_than_one_request);
  TEST(null_arguments_are_reported);
  cachekit_client_close(C);
  return check_summary();
}
