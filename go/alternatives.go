package cachekit

// #include "shim.h"
import "C"

import (
	"runtime"
	"unsafe"
)

// The two other ways Get could read a value, kept so BenchmarkGetHit100B measures Get against
// them in every run (bench_test.go; the numbers are in README.md). Not used by the API.

// getViaAlloc: cachekit_get_alloc, then a Go copy, then cachekit_buf_free: a C malloc and
// free per hit on top of the Go allocation.
func (c *Client) getViaAlloc(key []byte) ([]byte, bool, error) {
	if err := c.acquire(); err != nil {
		return nil, false, err
	}
	defer c.mu.RUnlock()
	r := C.ckgo_get_alloc(c.h, bytesPtr(key), C.size_t(len(key)))
	runtime.KeepAlive(c)
	switch r.rc {
	case C.CACHEKIT_OK:
		out := C.GoBytes(unsafe.Pointer(r.alloc), C.int(r.len))
		C.cachekit_buf_free(r.alloc)
		return out, true, nil
	case C.CACHEKIT_MISS:
		return nil, false, nil
	}
	return nil, false, callError("get", r.rc, r.err)
}

// getViaSizeQuery: a size query, then a get into a slice of exactly that size: no copy, but
// two lookups (and two cgo calls) per hit.
func (c *Client) getViaSizeQuery(key []byte) ([]byte, bool, error) {
	if err := c.acquire(); err != nil {
		return nil, false, err
	}
	defer c.mu.RUnlock()
	var buf []byte
	for {
		r := C.ckgo_get(c.h, bytesPtr(key), C.size_t(len(key)), bytesPtr(buf), C.size_t(len(buf)))
		runtime.KeepAlive(c)
		switch r.rc {
		case C.CACHEKIT_OK:
			if buf == nil {
				buf = []byte{}
			}
			return buf[:r.len], true, nil
		case C.CACHEKIT_MISS:
			return nil, false, nil
		case C.CACHEKIT_BUFFER_TOO_SMALL:
			buf = make([]byte, r.len)
		default:
			return nil, false, callError("get", r.rc, r.err)
		}
	}
}
