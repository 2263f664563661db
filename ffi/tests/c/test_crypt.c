/*
 * Client-side encryption through the C API against a real cachekitd: the encryption fields of
 * cachekit_options, round trips, and the result codes CACHEKIT_DECRYPT (another tenant, another
 * master key), CACHEKIT_ENCRYPTED (a handle without a key), CACHEKIT_PLAINTEXT
 * (CACHEKIT_ENCRYPT_REQUIRE); rotation with previous_keys; hashed keys; the memo of opened values
 * (encryption_memo_bytes, CACHEKIT_ENCRYPT_NO_MEMO) and a struct of the 120-byte version.
 *
 * Usage: test_crypt SOCKET   (a running cachekitd's socket)
 */
#include <stdint.h>

#include "check.h"

static const char *SOCKET;

#define K(s) (const uint8_t *)(s), (sizeof(s) - 1)

static uint8_t KEY1[32], KEY2[32];

/* A handle on namespace "crypt" with `key` (NULL: none), `previous` (count keys), `tenant`,
 * `flags`; NULL (and a recorded failure) if the open fails. */
static cachekit_client *open_enc(const uint8_t *key, const uint8_t *previous, size_t count,
                                 const char *tenant, uint32_t flags) {
  cachekit_options o;
  cachekit_client *c = NULL;
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.socket_path = SOCKET;
  o.ns = "crypt";
  o.encryption_key = key;
  o.encryption_key_len = key ? 32 : 0;
  o.previous_keys = previous;
  o.previous_keys_count = count;
  o.tenant = tenant;
  o.encryption_flags = flags;
  CHECK_RC(cachekit_client_open(&o, &c), CACHEKIT_OK);
  return c;
}

static void round_trip_and_the_three_codes(void) {
  cachekit_client *t1 = open_enc(KEY1, NULL, 0, "t1", 0);
  cachekit_client *t2 = open_enc(KEY1, NULL, 0, "t2", 0);
  cachekit_client *keyless = open_enc(NULL, NULL, 0, NULL, 0);
  cachekit_client *strict = open_enc(KEY1, NULL, 0, "t1", CACHEKIT_ENCRYPT_REQUIRE);
  if (!t1 || !t2 || !keyless || !strict) return;
  char buf[64];
  CHECK_RC(cachekit_set(t1, K("secret"), K("t1 only"), 60000, 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(get_str(t1, "secret", buf, sizeof buf), CACHEKIT_OK);
  CHECK(strcmp(buf, "t1 only") == 0);
  CHECK_RC(get_str(t2, "secret", buf, sizeof buf), CACHEKIT_DECRYPT);
  CHECK(strstr(last_error(), "key id") != NULL);
  CHECK_RC(get_str(keyless, "secret", buf, sizeof buf), CACHEKIT_ENCRYPTED);
  CHECK(strstr(last_error(), "CACHEKIT_MASTER_KEY") != NULL);
  CHECK_RC(cachekit_set(keyless, K("open"), K("plain"), 60000, 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(get_str(t1, "open", buf, sizeof buf), CACHEKIT_OK);
  CHECK_RC(get_str(strict, "open", buf, sizeof buf), CACHEKIT_PLAINTEXT);
  CHECK_RC(get_str(strict, "secret", buf, sizeof buf), CACHEKIT_OK);
  /* The codes describe themselves. */
  CHECK(strstr(cachekit_result_describe(CACHEKIT_DECRYPT), "decrypt") != NULL);
  CHECK(strstr(cachekit_result_describe(CACHEKIT_ENCRYPTED), "encrypted") != NULL);
  CHECK(strstr(cachekit_result_describe(CACHEKIT_PLAINTEXT), "not encrypted") != NULL);
  cachekit_client_close(t1);
  cachekit_client_close(t2);
  cachekit_client_close(keyless);
  cachekit_client_close(strict);
}

static void rotation_with_previous_keys(void) {
  cachekit_client *old = open_enc(KEY1, NULL, 0, NULL, 0);
  cachekit_client *rotated = open_enc(KEY2, KEY1, 1, NULL, 0);
  if (!old || !rotated) return;
  char buf[64];
  CHECK_RC(cachekit_set(old, K("before"), K("under key 1"), 60000, 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(get_str(rotated, "before", buf, sizeof buf), CACHEKIT_OK);
  CHECK(strcmp(buf, "under key 1") == 0);
  CHECK_RC(cachekit_set(rotated, K("after"), K("under key 2"), 60000, 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(get_str(old, "after", buf, sizeof buf), CACHEKIT_DECRYPT);
  cachekit_client_close(old);
  cachekit_client_close(rotated);
}

static void hashed_keys(void) {
  cachekit_client *h = open_enc(KEY1, NULL, 0, "h", CACHEKIT_ENCRYPT_HASH_KEYS);
  cachekit_client *plain_keys = open_enc(KEY1, NULL, 0, "h", 0);
  if (!h || !plain_keys) return;
  char buf[64];
  CHECK_RC(cachekit_set(h, K("user:1"), K("alice"), 60000, 0, NULL, 0), CACHEKIT_OK);
  CHECK_RC(get_str(h, "user:1", buf, sizeof buf), CACHEKIT_OK);
  CHECK(strcmp(buf, "alice") == 0);
  /* The daemon holds the hash, not "user:1". */
  CHECK_RC(get_str(plain_keys, "user:1", buf, sizeof buf), CACHEKIT_MISS);
  cachekit_client_close(h);
  cachekit_client_close(plain_keys);
}

/* Repeated hits through the memo, a same-length rewrite seen at once, the memo off, and a
 * program built against the 120-byte struct (before encryption_memo_bytes). */
static void the_memo_of_opened_values(void) {
  cachekit_client *memo = open_enc(KEY1, NULL, 0, "m", 0);
  cachekit_client *off = open_enc(KEY1, NULL, 0, "m", CACHEKIT_ENCRYPT_NO_MEMO);
  cachekit_options o;
  cachekit_client *sized = NULL, *old = NULL;
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.socket_path = SOCKET;
  o.ns = "crypt";
  o.encryption_key = KEY1;
  o.encryption_key_len = 32;
  o.tenant = "m";
  o.encryption_memo_bytes = 4 << 20;
  CHECK_RC(cachekit_client_open(&o, &sized), CACHEKIT_OK);
  o.encryption_memo_bytes = 0;
  o.struct_size = 120;
  CHECK_RC(cachekit_client_open(&o, &old), CACHEKIT_OK);
  o.struct_size = sizeof o;
  o.encryption_memo_bytes = 1;
  o.encryption_flags = CACHEKIT_ENCRYPT_NO_MEMO;
  cachekit_client *both = NULL;
  CHECK_RC(cachekit_client_open(&o, &both), CACHEKIT_INVALID_ARGUMENT);
  CHECK(strstr(last_error(), "CACHEKIT_ENCRYPT_NO_MEMO") != NULL);
  if (!memo || !off || !sized || !old) return;
  char buf[64];
  CHECK_RC(cachekit_set(memo, K("m1"), K("first value"), 60000, 0, NULL, 0), CACHEKIT_OK);
  cachekit_client *all[] = {memo, off, sized, old};
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 4; i++) {
      CHECK_RC(get_str(all[i], "m1", buf, sizeof buf), CACHEKIT_OK);
      CHECK(strcmp(buf, "first value") == 0);
    }
  }
  CHECK_RC(cachekit_set(off, K("m1"), K("other value"), 60000, 0, NULL, 0), CACHEKIT_OK);
  for (int i = 0; i < 4; i++) {
    CHECK_RC(get_str(all[i], "m1", buf, sizeof buf), CACHEKIT_OK);
    CHECK(strcmp(buf, "other value") == 0);
  }
  for (int i = 0; i < 4; i++) cachekit_client_close(all[i]);
}

static void bad_encryption_options_are_refused(void) {
  cachekit_options o;
  cachekit_client *c = NULL;
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.socket_path = SOCKET;
  o.encryption_key = KEY1;
  o.encryption_key_len = 16;
  CHECK_RC(cachekit_client_open(&o, &c), CACHEKIT_INVALID_ARGUMENT);
  CHECK(strstr(last_error(), "32") != NULL);
  o.encryption_key_len = 32;
  o.encryption_flags = 0x80;
  CHECK_RC(cachekit_client_open(&o, &c), CACHEKIT_INVALID_ARGUMENT);
  o.encryption_flags = 0;
  o.encryption_key = NULL;
  o.encryption_key_len = 0;
  o.tenant = "t";
  CHECK_RC(cachekit_client_open(&o, &c), CACHEKIT_INVALID_ARGUMENT);
  CHECK(c == NULL);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
    return 2;
  }
  SOCKET = argv[1];
  for (int i = 0; i < 32; i++) {
    KEY1[i] = (uint8_t)(i * 7 + 1);
    KEY2[i] = (uint8_t)(i * 13 + 5);
  }
  TEST(round_trip_and_the_three_codes);
  TEST(rotation_with_previous_keys);
  TEST(hashed_keys);
  TEST(the_memo_of_opened_values);
  TEST(bad_encryption_options_are_refused);
  return check_summary();
}
