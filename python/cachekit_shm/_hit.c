/*
 * cachekit_shm._hit: the hit path of Client.get_raw / Client.get / get_local, one C call
 * from Python to a bytes object.
 *
 * Everything else in cachekit_shm goes through the cffi module (cachekit_shm._cachekit); this
 * module calls the same C ABI (cachekit_get_len of include/cachekit.h, in the same bundled
 * libcachekit.so.0) and only removes what a cffi call costs around it: cffi converts six
 * arguments through an argument tuple (~140 ns of a ~215 ns call on the machine that measured
 * it, python/bench/hit_breakdown.py), and the value then needs a thread's scratch buffer
 * (a threading.local lookup) and a slice of it to become bytes. Here: a vectorcall, the key's
 * bytes (or a str's cached UTF-8) read in place, the value read into a per-thread buffer with the
 * GIL released, then one PyBytes_FromStringAndSize.
 *
 *   hit(addr, key, flags) -> bytes | int | None | tuple
 *
 * addr: the `cachekit_client *` as an int; the caller keeps the handle's cffi object alive
 * for the duration of the call (a local reference). key: str or bytes (anything else: the
 * tuple (0,), and the caller converts it). flags: HIT_INT (decode an integer counter as an
 * int), HIT_LOCAL (cachekit_get_local: the segment only), HIT_PICKLE (the value is a pickle:
 * one of a bytes or str object is returned unpickled, simple_pickle(); any other comes back
 * as a bytearray for pickle.loads). Returns the value's bytes (a bytearray with HIT_PICKLE
 * unless unpickled); for an integer counter with HIT_INT, its int; None on a miss; (code,)
 * for anything else:
 * CACHEKIT_BUFFER_TOO_SMALL (the value is over HIT_BUF: read it through cffi), an error
 * (its message is this thread's cachekit_last_error_message), or 0 for a key this function
 * does not take.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "cachekit.h"

/* Values up to this size are read here; a larger one answers (CACHEKIT_BUFFER_TOO_SMALL,) and
 * Python reads it through its grown per-thread buffer. 16 KiB, what the cffi path's first
 * per-thread buffer holds too. Thread-local rather than on the stack: a thread started with a
 * small threading.stack_size() (32 KiB is allowed) keeps its stack for the library's call.
 * One per thread is enough: nothing on this thread can use it again before the object built
 * from it exists: the library call runs no Python code, and the objects built from the buffer
 * (bytes, str, bytearray) are not tracked by the cycle collector, so making them runs no
 * finalizer. */
#define HIT_BUF (16 * 1024)
static _Thread_local uint8_t hit_buf[HIT_BUF];

#define HIT_INT 1
#define HIT_LOCAL 2
#define HIT_PICKLE 4

static uint64_t le(const uint8_t *p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* The value of a pickle that is one bytes or str object, as protocols 4 and 5 write it (what
 * PickleSerializer stores for one): PROTO, an optional FRAME holding the rest, one
 * SHORT_BINBYTES / BINBYTES / BINBYTES8 or SHORT_BINUNICODE / BINUNICODE / BINUNICODE8,
 * MEMOIZE, STOP, and nothing after. Built as pickle.loads builds it (UTF-8 with
 * surrogatepass). NULL, with no exception set, for any other pickle: pickle.loads reads it. */
static PyObject *simple_pickle(const uint8_t *p, size_t n) {
  const uint8_t *end = p + n;
  if (n < 5 || p[0] != 0x80 || (p[1] != 4 && p[1] != 5)) return NULL;
  p += 2;
  if (*p == 0x95) { /* FRAME: its 8-byte length is all that follows */
    if (end - p < 9 || le(p + 1, 8) != (uint64_t)(end - p - 9)) return NULL;
    p += 9;
  }
  if (p >= end) return NULL;
  int str, width;
  switch (*p) {
    case 'C': str = 0; width = 1; break;
    case 'B': str = 0; width = 4; break;
    case 0x8e: str = 0; width = 8; break;
    case 0x8c: str = 1; width = 1; break;
    case 'X': str = 1; width = 4; break;
    case 0x8d: str = 1; width = 8; break;
    default: return NULL;
  }
  p++;
  if (end - p < width + 2) return NULL;
  uint64_t len = le(p, width);
  p += width;
  /* Exactly the data, MEMOIZE, STOP. */
  if (len != (uint64_t)(end - p - 2) || end[-2] != 0x94 || end[-1] != '.') return NULL;
  if (!str) return PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)len);
  PyObject *text = PyUnicode_DecodeUTF8((const char *)p, (Py_ssize_t)len, "surrogatepass");
  if (text == NULL) PyErr_Clear(); /* pickle.loads raises the error the caller reports */
  return text;
}

static PyObject *code_tuple(long code) {
  PyObject *c = PyLong_FromLong(code);
  if (c == NULL) return NULL;
  PyObject *t = PyTuple_Pack(1, c);
  Py_DECREF(c);
  return t;
}

static PyObject *hit(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  (void)self;
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "hit(addr, key, flags) takes 3 arguments");
    return NULL;
  }
  const cachekit_client *client = (const cachekit_client *)PyLong_AsVoidPtr(args[0]);
  if (client == NULL && PyErr_Occurred()) return NULL;
  long flags = PyLong_AsLong(args[2]);
  if (flags == -1 && PyErr_Occurred()) return NULL;

  PyObject *key = args[1];
  const char *k;
  Py_ssize_t klen;
  if (PyBytes_CheckExact(key)) {
    k = PyBytes_AS_STRING(key);
    klen = PyBytes_GET_SIZE(key);
  } else if (PyUnicode_CheckExact(key)) {
    k = PyUnicode_AsUTF8AndSize(key, &klen);
    if (k == NULL) { /* not encodable (a lone surrogate): the caller's str.encode() says so */
      PyErr_Clear();
      return code_tuple(0);
    }
  } else {
    return code_tuple(0);
  }

  uint8_t *buf = hit_buf;
  cachekit_value_info info;
  cachekit_value_info *infop = (flags & HIT_INT) ? &info : NULL;
  int64_t n;
  /* The key's bytes stay valid: `key` is the caller's reference, and a str's UTF-8 is
   * cached in the object. */
  Py_BEGIN_ALLOW_THREADS
  if (flags & HIT_LOCAL) {
    size_t len = 0;
    cachekit_result rc = cachekit_get_local(client, (const uint8_t *)k, (size_t)klen, buf,
                                            (size_t)HIT_BUF, &len, infop);
    n = rc == CACHEKIT_OK ? (int64_t)len : -(int64_t)rc;
  } else {
    n = cachekit_get_len(client, (const uint8_t *)k, (size_t)klen, buf, (size_t)HIT_BUF, infop);
  }
  Py_END_ALLOW_THREADS

  if (n >= 0) {
    if ((flags & HIT_PICKLE) && !(infop != NULL && info.integer)) {
      PyObject *v = simple_pickle(buf, (size_t)n);
      if (v != NULL || PyErr_Occurred()) return v;
      return PyByteArray_FromStringAndSize((const char *)buf, (Py_ssize_t)n);
    }
    PyObject *value = PyBytes_FromStringAndSize((const char *)buf, (Py_ssize_t)n);
    if (value != NULL && infop != NULL && info.integer) {
      /* The ASCII decimal of an int64 (cachekit.h): int(value), as the cffi path does. */
      PyObject *i = PyNumber_Long(value);
      Py_DECREF(value);
      return i;
    }
    return value;
  }
  if (n == -(int64_t)CACHEKIT_MISS) Py_RETURN_NONE;
  return code_tuple((long)-n);
}

static PyMethodDef methods[] = {
    {"hit", (PyCFunction)(void (*)(void))hit, METH_FASTCALL,
     "hit(addr, key, flags) -> bytes | int | None | (code,): see cachekit_shm/_hit.c"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "cachekit_shm._hit",
    "The hit path of Client.get_raw / get / get_local in one C call (see _hit.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__hit(void) {
  PyObject *m = PyModule_Create(&module);
  if (m == NULL) return NULL;
  if (PyModule_AddIntConstant(m, "HIT_INT", HIT_INT) < 0 ||
      PyModule_AddIntConstant(m, "HIT_LOCAL", HIT_LOCAL) < 0 ||
      PyModule_AddIntConstant(m, "HIT_PICKLE", HIT_PICKLE) < 0 ||
      PyModule_AddIntConstant(m, "HIT_BUF", HIT_BUF) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
