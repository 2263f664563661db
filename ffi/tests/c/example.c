/*
 * A program written only against the installed <cachekit.h>, built the way a user builds:
 *
 *   cc example.c $(pkg-config --cflags --libs cachekit)
 *
 * Usage:
 *   example set KEY VALUE [TTL_MS]   store VALUE under KEY
 *   example get KEY                  print the value (exit 1 on a miss)
 *
 * The daemon is found like any cachekit client finds it: $CACHEKIT_SOCKET, else
 * $CACHEKIT_INSTANCE in $CACHEKIT_DIR or the standard runtime directories. scripts/test-c runs
 * "set" in one process and "get" in another.
 */
#include <cachekit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, cachekit_result rc) {
  char msg[1024];
  size_t needed;
  if (cachekit_last_error_message(msg, sizeof msg, &needed) != CACHEKIT_OK) msg[0] = 0;
  fprintf(stderr, "%s: %s: %s\n", what, cachekit_result_describe(rc), msg);
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 3 || (strcmp(argv[1], "set") == 0 && argc < 4)) {
    fprintf(stderr, "usage: %s set KEY VALUE [TTL_MS] | get KEY\n", argv[0]);
    return 2;
  }
  const char *key = argv[2];

  cachekit_options opts = {0};
  opts.struct_size = sizeof opts; /* every other field: default (or the environment) */
  opts.ns = "example";
  cachekit_client *client = NULL;
  cachekit_result rc = cachekit_client_open(&opts, &client);
  if (rc != CACHEKIT_OK) return fail("open", rc);

  int status = 0;
  if (strcmp(argv[1], "set") == 0) {
    uint64_t ttl_ms = argc > 4 ? strtoull(argv[4], NULL, 10) : 0;
    const char *tags[] = {"example"};
    rc = cachekit_set(client, (const uint8_t *)key, strlen(key), (const uint8_t *)argv[3],
                      strlen(argv[3]), ttl_ms, 0, tags, 1);
    if (rc != CACHEKIT_OK) status = fail("set", rc);
  } else {
    /* Size query, then the value into a buffer of that size. */
    size_t len = 0;
    cachekit_value_info info;
    uint8_t *buf = NULL;
    rc = cachekit_get(client, (const uint8_t *)key, strlen(key), NULL, 0, &len, NULL);
    while (rc == CACHEKIT_BUFFER_TOO_SMALL) {
      free(buf);
      buf = malloc(len);
      rc = cachekit_get(client, (const uint8_t *)key, strlen(key), buf, len, &len, &info);
    }
    if (rc == CACHEKIT_OK) {
      fwrite(buf, 1, len, stdout);
      printf("\n");
    } else if (rc == CACHEKIT_MISS) {
      status = 1;
    } else {
      status = fail("get", rc);
    }
    free(buf);
  }
  cachekit_client_close(client);
  return status;
}
