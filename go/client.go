package cachekit

// #cgo pkg-config: cachekit
// #cgo CFLAGS: -std=gnu11 -Wall
// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Client is a connection to a cachekitd: an attached shared segment, a small socket pool and a
// namespace. Safe for concurrent use; open one per process and share it.
type Client struct {
	// mu: every call holds it for reading while it uses h; Close takes it for writing, so
	// it waits for the calls in flight and no call ever sees a freed handle.
	mu sync.RWMutex
	h  C.ckgo_client // the cachekit_client *; 0 once closed
}

// finalized counts the handles closed by the finalizer (for the tests).
var finalized atomic.Int64

func newClient(h C.ckgo_client) *Client {
	c := &Client{h: h}
	runtime.SetFinalizer(c, func(c *Client) {
		if c.close() {
			finalized.Add(1)
		}
	})
	return c
}

// Open connects to cachekitd and maps its segment (unless Options.Lazy).
//
// Errors: ErrUnavailable when cachekitd is not running (the message says where it was looked
// for and how to start it), ErrNotPermitted, ErrInvalidArgument and ErrTooLarge for bad
// options.
func Open(opts Options) (*Client, error) {
	o, err := opts.toC()
	if err != nil {
		return nil, err
	}
	defer o.free()
	r := C.ckgo_open(&o.opts)
	if r.rc != C.CACHEKIT_OK {
		return nil, callError("open", r.rc, r.err)
	}
	return newClient(r.client), nil
}

// WithNamespace opens a second client on another namespace that shares this one's
// connections, segment and counters (no new connection). Close both, in any order.
func (c *Client) WithNamespace(ns string) (*Client, error) {
	const op = "with namespace"
	if err := c.acquire(); err != nil {
		return nil, err
	}
	defer c.mu.RUnlock()
	if strings.IndexByte(ns, 0) >= 0 {
		return nil, invalid(op, "namespace contains a NUL byte")
	}
	cns := C.CString(ns)
	defer C.free(unsafe.Pointer(cns))
	r := C.ckgo_with_namespace(c.h, cns)
	runtime.KeepAlive(c)
	if r.rc != C.CACHEKIT_OK {
		return nil, callError(op, r.rc, r.err)
	}
	return newClient(r.client), nil
}

// Close closes the client. It waits for the calls in flight on other goroutines; every call
// afterwards returns ErrClosed. Closing again does nothing. Always returns nil.
func (c *Client) Close() error {
	if c == nil {
		return nil
	}
	if c.close() {
		runtime.SetFinalizer(c, nil)
	}
	return nil
}

// close closes the handle if it is open; reports whether it did.
func (c *Client) close() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.h == 0 {
		return false
	}
	C.ckgo_close(c.h)
	runtime.KeepAlive(c)
	c.h = 0
	return true
}

// acquire holds c.mu for reading, or returns ErrClosed (without holding it).
func (c *Client) acquire() error {
	if c == nil {
		return ErrClosed
	}
	c.mu.RLock()
	if c.h == 0 {
		c.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// callError builds the *Error of a failed call and frees the C message.
func callError(op string, rc C.uint32_t, msg *C.char) error {
	e := &Error{Op: op, Code: Code(rc)}
	if msg != nil {
		e.Message = C.GoString(msg)
		C.free(unsafe.Pointer(msg))
	}
	return e
}

func bytesPtr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

func charPtr(b []byte) *C.char {
	if len(b) == 0 {
		return nil
	}
	return (*C.char)(unsafe.Pointer(&b[0]))
}

// ---- gets

// scratch buffers of Get: one value is read into a pooled buffer, then copied into a slice of
// exactly its size, so a hit costs one Go allocation and no C malloc/free (measured against
// the alternatives in bench_test.go). Buffers that grew past scratchKeep are not kept.
const (
	scratchSize = 4 << 10
	scratchKeep = 256 << 10
)

var scratchPool = sync.Pool{New: func() any { b := make([]byte, scratchSize); return &b }}

// Get returns the value of key: (value, true, nil) on a hit, fresh or stale; (nil, false, nil)
// on a miss, and also when cachekitd cannot be reached. Use GetInfo to tell a stale hit from
// a fresh one.
//
// Errors: ErrTooLarge (key over max_key_bytes), ErrCorruptValue, ErrNotPermitted,
// ErrProtocol, ErrClosed.
func (c *Client) Get(key []byte) ([]byte, bool, error) {
	v, ok, err := c.getCopy(key)
	return v.Bytes, ok, err
}

// GetInfo is Get with the entry's metadata: Value.Stale is set for a stale hit (past its
// TTL, within its grace period): serve it and refresh it.
func (c *Client) GetInfo(key []byte) (Value, bool, error) {
	return c.getCopy(key)
}

func (c *Client) getCopy(key []byte) (Value, bool, error) {
	sp := scratchPool.Get().(*[]byte)
	v, ok, err := c.getInto("get", key, *sp)
	if ok {
		if cap(v.Bytes) > cap(*sp) && cap(v.Bytes) <= scratchKeep {
			*sp = v.Bytes[:cap(v.Bytes)]
		}
		out := make([]byte, len(v.Bytes))
		copy(out, v.Bytes)
		v.Bytes = out
	}
	scratchPool.Put(sp)
	return v, ok, err
}

// GetInto is GetInfo without an allocation: the value is read into buf[:cap(buf)], and
// Value.Bytes is buf[:n] when it fits; when it does not, Value.Bytes is a new slice of the
// value's size (pass it back in next time). Nothing is allocated on a hit that fits.
func (c *Client) GetInto(key, buf []byte) (Value, bool, error) {
	return c.getInto("get", key, buf)
}

func (c *Client) getInto(op string, key, buf []byte) (Value, bool, error) {
	if err := c.acquire(); err != nil {
		return Value{}, false, err
	}
	defer c.mu.RUnlock()
	buf = buf[:cap(buf)]
	for {
		r := C.ckgo_get(c.h, bytesPtr(key), C.size_t(len(key)), bytesPtr(buf), C.size_t(len(buf)))
		runtime.KeepAlive(c)
		switch r.rc {
		case C.CACHEKIT_OK:
			if buf == nil {
				buf = []byte{}
			}
			return Value{
				Bytes:        buf[:r.len],
				Stale:        r.stale != 0,
				CreatedMs:    uint64(r.created_ms),
				ExpiresMs:    uint64(r.expires_ms),
				GraceUntilMs: uint64(r.grace_until_ms),
				Source:       Source(r.source),
				Version:      uint64(r.version),
				Integer:      r.integer != 0,
			}, true, nil
		case C.CACHEKIT_MISS:
			return Value{}, false, nil
		case C.CACHEKIT_BUFFER_TOO_SMALL:
			// The value may change between two calls: loop until one fits.
			buf = make([]byte, r.len)
		default:
			return Value{}, false, callError(op, r.rc, r.err)
		}
	}
}

// GetMany gets several keys at once: hits come from the shared segment, and the misses are
// then fetched from the daemon one after the other. The result has one entry per key, in
// order: nil for a miss. Errors are those of Get, for the first key that fails.
func (c *Client) GetMany(keys ...[]byte) ([]*Value, error) {
	const op = "get many"
	n := len(keys)
	total := 0
	for _, k := range keys {
		total += len(k)
	}
	flat := make([]byte, 0, total)
	lens := make([]C.size_t, n)
	for i, k := range keys {
		flat = append(flat, k...)
		lens[i] = C.size_t(len(k))
	}
	var lensPtr *C.size_t
	if n > 0 {
		lensPtr = &lens[0]
	}
	if err := c.acquire(); err != nil {
		return nil, err
	}
	r := C.ckgo_get_many(c.h, bytesPtr(flat), lensPtr, C.size_t(n))
	runtime.KeepAlive(c)
	c.mu.RUnlock() // the batch lives on its own: it outlives a Close of the client
	if r.rc != C.CACHEKIT_OK {
		return nil, callError(op, r.rc, r.err)
	}
	defer C.cachekit_batch_free(r.batch)
	out := make([]*Value, n)
	if n == 0 {
		return out, nil
	}
	entries := make([]C.ckgo_entry, n)
	C.ckgo_batch_layout(r.batch, C.size_t(n), &entries[0])
	size := 0
	for i := range entries {
		size += int(entries[i].len)
	}
	data := make([]byte, size)
	C.ckgo_batch_copy(r.batch, C.size_t(n), bytesPtr(data))
	values := make([]Value, n)
	off := 0
	for i := range entries {
		e := &entries[i]
		if e.found == 0 {
			continue
		}
		l := int(e.len)
		values[i] = Value{
			Bytes:        data[off : off+l : off+l],
			Stale:        e.stale != 0,
			CreatedMs:    uint64(e.created_ms),
			ExpiresMs:    uint64(e.expires_ms),
			GraceUntilMs: uint64(e.grace_until_ms),
			Source:       Source(e.source),
			Version:      uint64(e.version),
			Integer:      e.integer != 0,
		}
		off += l
		out[i] = &values[i]
	}
	return out, nil
}

// ---- writes

// Set stores value under key. When it returns nil, no read on the host that starts afterwards
// sees an older value.
//
// Errors: ErrTooLarge (key, value, tag or tag count over the daemon's limits),
// ErrInvalidArgument (malformed tag, negative TTL or grace), ErrUnavailable, ErrTimeout,
// ErrNotPermitted, ErrClosed.
func (c *Client) Set(key, value []byte, opts SetOptions) error {
	const op = "set"
	ttl, err := ms(op, "TTL", opts.TTL, math.MaxUint64)
	if err != nil {
		return err
	}
	grace, err := ms(op, "Grace", opts.Grace, math.MaxUint64)
	if err != nil {
		return err
	}
	tags, err := flatTags(op, opts.Tags)
	if err != nil {
		return err
	}
	if err := c.acquire(); err != nil {
		return err
	}
	defer c.mu.RUnlock()
	r := C.ckgo_set(c.h, bytesPtr(key), C.size_t(len(key)), bytesPtr(value), C.size_t(len(value)),
		C.uint64_t(ttl), C.uint64_t(grace), charPtr(tags), C.size_t(len(opts.Tags)))
	runtime.KeepAlive(c)
	if r.rc != C.CACHEKIT_OK {
		return callError(op, r.rc, r.err)
	}
	return nil
}

// Delete removes key; reports whether it was there.
func (c *Client) Delete(key []byte) (bool, error) {
	if err := c.acquire(); err != nil {
		return false, err
	}
	defer c.mu.RUnlock()
	r := C.ckgo_delete(c.h, bytesPtr(key), C.size_t(len(key)))
	runtime.KeepAlive(c)
	switch r.rc {
	case C.CACHEKIT_OK:
		return true, nil
	case C.CACHEKIT_MISS:
		return false, nil
	}
	return false, callError("delete", r.rc, r.err)
}

// Invalidate invalidates every entry of the client's namespace tagged with one of tags, and
// every entry tagged below one: "posts/123" also covers "posts/123/comments", never
// "posts/1234". O(1) per tag; no tags does nothing.
//
// Errors: ErrInvalidArgument (malformed tag), ErrTooLarge, ErrUnavailable, ErrTimeout,
// ErrNotPermitted, ErrClosed.
func (c *Client) Invalidate(tags ...string) error {
	return c.invalidate(tags, 0)
}

// InvalidateExact is Invalidate of the entries tagged with exactly these paths, not the ones
// below them.
func (c *Client) InvalidateExact(tags ...string) error {
	return c.invalidate(tags, C.CACHEKIT_INVALIDATE_EXACT)
}

func (c *Client) invalidate(tags []string, flags C.uint32_t) error {
	const op = "invalidate"
	flat, err := flatTags(op, tags)
	if err != nil {
		return err
	}
	if err := c.acquire(); err != nil {
		return err
	}
	defer c.mu.RUnlock()
	r := C.ckgo_invalidate(c.h, charPtr(flat), C.size_t(len(tags)), flags)
	runtime.KeepAlive(c)
	if r.rc != C.CACHEKIT_OK {
		return callError(op, r.rc, r.err)
	}
	return nil
}

// Clear drops every entry of the client's namespace (other namespaces are untouched). O(1).
func (c *Client) Clear() error {
	if err := c.acquire(); err != nil {
		return err
	}
	defer c.mu.RUnlock()
	r := C.ckgo_clear(c.h)
	runtime.KeepAlive(c)
	if r.rc != C.CACHEKIT_OK {
		return callError("clear", r.rc, r.err)
	}
	return nil
}

// ---- daemon

// Ping makes a round trip to the daemon.
func (c *Client) Ping() (Pong, error) {
	if err := c.acquire(); err != nil {
		return Pong{}, err
	}
	defer c.mu.RUnlock()
	r := C.ckgo_ping(c.h)
	runtime.KeepAlive(c)
	if r.rc != C.CACHEKIT_OK {
		return Pong{}, callError("ping", r.rc, r.err)
	}
	return Pong{Epoch: uint64(r.epoch), RTT: time.Duration(r.rtt_us) * time.Microsecond}, nil
}

// Stats returns the daemon's counters ("daemon.*", "segment.*") and this client's own
// ("client.*"), by name.
func (c *Client) Stats() (map[string]uint64, error) {
	if err := c.acquire(); err != nil {
		return nil, err
	}
	r := C.ckgo_stats_fetch(c.h)
	runtime.KeepAlive(c)
	c.mu.RUnlock() // the snapshot lives on its own
	if r.rc != C.CACHEKIT_OK {
		return nil, callError("stats", r.rc, r.err)
	}
	defer C.cachekit_stats_free(r.stats)
	n := int(C.cachekit_stats_len(r.stats))
	out := make(map[string]uint64, n)
	for i := 0; i < n; i++ {
		e := C.ckgo_stats_entry(r.stats, C.size_t(i))
		if e.rc == C.CACHEKIT_OK {
			out[C.GoString(e.name)] = uint64(e.value)
		}
	}
	return out, nil
}

// Version is the version of the libcachekit actually loaded ("0.1.0").
func Version() string {
	return C.GoString(C.cachekit_version())
}

// headerVersion is the version of the cachekit.h this package was compiled against.
func headerVersion() (major, minor, patch int) {
	return C.CACHEKIT_VERSION_MAJOR, C.CACHEKIT_VERSION_MINOR, C.CACHEKIT_VERSION_PATCH
}
