"""The cffi declarations of include/cachekit.h, and the builders of both cffi modes.

Shipped: **API mode** (``cachekit_shm._cachekit``, a C extension compiled against
include/cachekit.h and linked with the bundled libcachekit.so.0). Compiling it also checks
every declaration below against the real header: a drifted signature or constant is a
compile error, not a silent ABI mismatch. ``bench/ffi_modes.py`` builds the ABI-mode variant
(``ffi.dlopen`` of the same library) next to it and times both; python/README.md has the
figures that decided it.

This file is used by setup.py at build time and by the benchmark; it is not installed.
"""

from __future__ import annotations

from pathlib import Path

import cffi

# Types and functions as include/cachekit.h declares them (C11: the enums are uint32_t
# typedefs). Result and source codes are named constants; their values are checked against
# the header by the API-mode build (see CHECKS).
CDEF = r"""
typedef uint32_t cachekit_result;
typedef uint32_t cachekit_source;

#define CACHEKIT_OK 0
#define CACHEKIT_MISS 1
#define CACHEKIT_BUFFER_TOO_SMALL 2
#define CACHEKIT_NULL_ARGUMENT 3
#define CACHEKIT_INVALID_ARGUMENT 4
#define CACHEKIT_TOO_LARGE 5
#define CACHEKIT_UNAVAILABLE 6
#define CACHEKIT_TIMEOUT 7
#define CACHEKIT_NOT_PERMITTED 8
#define CACHEKIT_PROTOCOL 9
#define CACHEKIT_DAEMON 10
#define CACHEKIT_IO 11
#define CACHEKIT_CORRUPT_VALUE 12
#define CACHEKIT_PANIC 13
#define CACHEKIT_OTHER_ERROR 14

#define CACHEKIT_SOURCE_SEGMENT 0
#define CACHEKIT_SOURCE_DAEMON 1

#define CACHEKIT_INVALIDATE_EXACT 1
#define CACHEKIT_OPEN_LAZY 1
#define CACHEKIT_OPEN_REDIS_CLUSTER 2
#define CACHEKIT_OPEN_NO_REDIS_FALLBACK 4
#define CACHEKIT_VERSION_MAJOR 0

typedef struct cachekit_batch cachekit_batch;
typedef struct cachekit_client cachekit_client;
typedef struct cachekit_stats cachekit_stats;

typedef struct cachekit_value_info {
  uint64_t created_ms;
  uint64_t expires_ms;
  uint64_t grace_until_ms;
  cachekit_source source;
  bool stale;
} cachekit_value_info;

typedef struct cachekit_options {
  size_t struct_size;
  uint32_t flags;
  uint32_t pool_size;
  const char *socket_path;
  const char *instance;
  const char *ns;
  const char *client_name;
  uint32_t connect_timeout_ms;
  uint32_t request_timeout_ms;
  const char *redis_url;
  uint32_t redis_timeout_ms;
  uint32_t reserved;
} cachekit_options;

cachekit_result cachekit_get_many(const struct cachekit_client *client,
                                  const uint8_t *const *keys, const size_t *key_lens,
                                  size_t count, struct cachekit_batch **out);
size_t cachekit_batch_len(const struct cachekit_batch *batch);
cachekit_result cachekit_batch_get(const struct cachekit_batch *batch, size_t index,
                                   const uint8_t **value, size_t *value_len,
                                   struct cachekit_value_info *info);
void cachekit_batch_free(struct cachekit_batch *batch);
void cachekit_buf_free(uint8_t *buf);
cachekit_result cachekit_client_open(const struct cachekit_options *options,
                                     struct cachekit_client **out);
cachekit_result cachekit_client_with_namespace(const struct cachekit_client *client,
                                               const char *ns,
                                               struct cachekit_client **out);
void cachekit_client_close(struct cachekit_client *client);
cachekit_result cachekit_set(const struct cachekit_client *client,
                             const uint8_t *key, size_t key_len,
                             const uint8_t *value, size_t value_len,
                             uint64_t ttl_ms, uint64_t grace_ms,
                             const char *const *tags, size_t tag_count);
cachekit_result cachekit_delete(const struct cachekit_client *client,
                                const uint8_t *key, size_t key_len);
cachekit_result cachekit_invalidate(const struct cachekit_client *client,
                                    const char *const *tags, size_t tag_count,
                                    uint32_t flags);
cachekit_result cachekit_clear(const struct cachekit_client *client);
cachekit_result cachekit_ping(const struct cachekit_client *client,
                              uint64_t *epoch, uint64_t *rtt_us);
const char *cachekit_result_describe(uint32_t code);
cachekit_result cachekit_last_error_message(char *buf, size_t len, size_t *needed);
cachekit_result cachekit_stats_fetch(const struct cachekit_client *client,
                                     struct cachekit_stats **out);
size_t cachekit_stats_len(const struct cachekit_stats *stats);
cachekit_result cachekit_stats_entry(const struct cachekit_stats *stats, size_t index,
                                     const char **name, uint64_t *value);
cachekit_result cachekit_stats_lookup(const struct cachekit_stats *stats,
                                      const char *name, uint64_t *value);
void cachekit_stats_free(struct cachekit_stats *stats);
cachekit_result cachekit_get(const struct cachekit_client *client,
                             const uint8_t *key, size_t key_len,
                             uint8_t *buf, size_t buf_len, size_t *value_len,
                             struct cachekit_value_info *info);
cachekit_result cachekit_get_local(const struct cachekit_client *client,
                                   const uint8_t *key, size_t key_len,
                                   uint8_t *buf, size_t buf_len, size_t *value_len,
                                   struct cachekit_value_info *info);
cachekit_result cachekit_get_alloc(const struct cachekit_client *client,
                                   const uint8_t *key, size_t key_len,
                                   uint8_t **value, size_t *value_len,
                                   struct cachekit_value_info *info);
const char *cachekit_version(void);
"""

# Compiled into the API-mode module: the constants of CDEF must be the header's. (cffi checks
# the #define values itself; these also pin the struct sizes the header documents.)
CHECKS = r"""
#include "cachekit.h"
_Static_assert(sizeof(cachekit_options) == 72, "cachekit_options is 72 bytes (cachekit.h)");
_Static_assert(sizeof(cachekit_value_info) == 32, "cachekit_value_info is 32 bytes");
"""

MODULE = "cachekit_shm._cachekit"


def api_builder(include_dir: Path, lib_dir: Path, module: str = MODULE) -> cffi.FFI:
    """The API-mode builder: a C extension linked with libcachekit (found through $ORIGIN)."""
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.set_source(
        module,
        CHECKS,
        include_dirs=[str(include_dir)],
        library_dirs=[str(lib_dir)],
        libraries=["cachekit"],
        # DT_RPATH (not RUNPATH): the bundled libcachekit.so.0 next to the extension wins
        # over LD_LIBRARY_PATH, so the library always matches these declarations.
        extra_link_args=["-Wl,-rpath,$ORIGIN", "-Wl,--disable-new-dtags"],
        extra_compile_args=["-std=c11", "-Werror=incompatible-pointer-types"],
    )
    return ffi


def abi_builder(module: str) -> cffi.FFI:
    """The out-of-line ABI-mode builder (a pure-Python module; ``ffi.dlopen`` at run time)."""
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.set_source(module, None)
    return ffi
