package cachekit

// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"math"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Atomic and management operations. Each write is one request that cachekitd applies
// atomically on the host (and, with Redis configured, decides in Redis: see
// docs/ARCHITECTURE.md).

// NoExpiry is the TTL of a key that never expires.
const NoExpiry time.Duration = -1

// IncrOptions of Incr and Decr. The zero value creates a missing counter from 0 (as Redis
// INCR does), with no expiry.
type IncrOptions struct {
	// Initial is the value before the delta when the key has no fresh entry: the counter is
	// created as Initial + delta.
	Initial int64
	// NoCreate: a missing key is not created; Incr returns ok == false.
	NoCreate bool
	// TTL of a counter the call creates (an existing counter keeps its expiry); 0 = never
	// expires. Rounded up to a millisecond.
	TTL time.Duration
}

// ScanOptions select the entries of Scan and DeleteMatching. The zero value selects every
// entry of the client's namespace.
type ScanOptions struct {
	// Pattern is a glob over the key bytes, as Redis's SCAN MATCH: *, ?, [abc], [^a] or [!a],
	// [a-z], and \x for a literal x. "" selects every key.
	Pattern string
	// Tag: only entries tagged with this tag or (unless Exact) a tag below it. Tags are
	// matched by their counter in the table, so an entry whose tag shares the counter (one
	// chance in the daemon's tag_count) may be selected too. "" = no tag filter.
	Tag string
	// Exact: with Tag, exactly that tag path, not the ones below it.
	Exact bool
	// PageSize is the number of entries per request, 1 to 1000; 0 = the daemon's default (100).
	PageSize int
}

// ScanItem is one entry found by a Scanner. Times are Unix milliseconds.
type ScanItem struct {
	// Key is the entry's key.
	Key []byte
	// StoredLen is the bytes the entry's value takes in the table (its envelope).
	StoredLen uint64
	// CreatedMs is when the entry was written.
	CreatedMs uint64
	// ExpiresMs is when it stops being fresh; 0 = never.
	ExpiresMs uint64
	// GraceUntilMs is when it stops being servable at all; 0 = never.
	GraceUntilMs uint64
	// Version is the entry's version on this host (see Value.Version).
	Version uint64
}

// NamespaceInfo is one namespace of the host's table, from Namespaces.
type NamespaceInfo struct {
	// Name of the namespace.
	Name string
	// Entries the table holds for it.
	Entries uint64
	// Bytes those entries take in the table.
	Bytes uint64
}

// Conditional writes (ckgo_set_if's condition).
const (
	condAdd     = C.CKGO_ADD
	condReplace = C.CKGO_REPLACE
	condCAS     = C.CKGO_CAS
)

// Add stores value under key only if the key has no fresh entry (an expired or invalidated
// one counts as none); reports whether it stored. Of any number of concurrent Adds of one key,
// from any processes of the host (and of other hosts sharing Redis), exactly one stores.
//
// Errors: as Set.
func (c *Client) Add(key, value []byte, opts SetOptions) (bool, error) {
	return c.setIf("add", condAdd, key, value, 0, opts, 0)
}

// Replace stores value under key only if the key has a fresh entry; reports whether it
// stored.
//
// Errors: as Set.
func (c *Client) Replace(key, value []byte, opts SetOptions) (bool, error) {
	return c.setIf("replace", condReplace, key, value, 0, opts, 0)
}

// CAS (compare and set) stores value under key only if the key's fresh entry is still the one
// whose Value.Version the caller read; reports whether it stored. On false, read again and
// retry. Version 0 never stores. Versions are per host: with Redis, a CAS also fails when
// another host wrote the key since, unless that host wrote the very same bytes.
//
// Errors: as Set.
func (c *Client) CAS(key, value []byte, version uint64, opts SetOptions) (bool, error) {
	return c.setIf("cas", condCAS, key, value, version, opts, 0)
}

// CompareAndDelete deletes key only if its fresh entry is still the one whose Value.Version
// the caller read (how a lock taken with Add is released without releasing another holder's);
// reports whether it deleted.
//
// Errors: as Delete.
func (c *Client) CompareAndDelete(key []byte, version uint64) (bool, error) {
	return c.setIf("compare and delete", condCAS, key, nil, version, SetOptions{}, C.CACHEKIT_SET_EXPIRE_NOW)
}

func (c *Client) setIf(op string, cond C.uint32_t, key, value []byte, version uint64, opts SetOptions, flags C.uint32_t) (bool, error) {
	ttl, grace, tags, err := setArgs(op, opts)
	if err != nil {
		return false, err
	}
	if err := c.acquire(); err != nil {
		return false, err
	}
	defer c.mu.RUnlock()
	r := C.ckgo_set_if(c.h, cond, bytesPtr(key), C.size_t(len(key)), bytesPtr(value), C.size_t(len(value)),
		C.uint64_t(version), C.uint64_t(ttl), C.uint64_t(grace), flags, charPtr(tags), C.size_t(len(opts.Tags)))
	runtime.KeepAlive(c)
	if r.rc != C.CACHEKIT_OK {
		return false, callError(op, r.rc, r.err)
	}
	return r.yes != 0, nil
}

// setArgs checks SetOptions and converts them for C.
func setArgs(op string, opts SetOptions) (ttl, grace uint64, tags []byte, err error) {
	if ttl, err = ms(op, "TTL", opts.TTL, math.MaxUint64); err != nil {
		return
	}
	if grace, err = ms(op, "Grace", opts.Grace, math.MaxUint64); err != nil {
		return
	}
	tags, err = flatTags(op, opts.Tags)
	return
}

// SetInt64 stores value as a counter (what Incr writes: its ASCII decimal, flagged integer),
// so every binding reads it back as an integer and Incr adds to it.
//
// Errors: as Set.
func (c *Client) SetInt64(key []byte, value int64, opts SetOptions) error {
	const op = "set int64"
	ttl, grace, tags, err := setArgs(op, opts)
	if err != nil {
		return err
	}
	if err := c.acquire(); err != nil {
		return err
	}
	defer c.mu.RUnlock()
	r := C.ckgo_set_i64(c.h, bytesPtr(key), C.size_t(len(key)), C.int64_t(value),
		C.uint64_t(ttl), C.uint64_t(grace), charPtr(tags), C.size_t(len(opts.Tags)))
	runtime.KeepAlive(c)
	if r.rc != C.CACHEKIT_OK {
		return callError(op, r.rc, r.err)
	}
	return nil
}

// Incr adds delta to the counter at key and returns the result, atomically: concurrent Incrs
// from any number of goroutines and processes (and hosts sharing Redis) never lose an update.
// A missing key is created as opts.Initial + delta, unless opts.NoCreate: then ok is false and
// nothing is stored. An existing counter keeps its expiry and tags.
//
// Errors: ErrInvalidArgument when the value is not an integer (ASCII decimal of an int64) or
// the result would overflow an int64 (the value is left unchanged); otherwise as Set.
func (c *Client) Incr(key []byte, delta int64, opts IncrOptions) (int64, bool, error) {
	return c.incr("incr", key, delta, opts, 0)
}

// Decr subtracts delta: Incr of -delta (a missing key is created as opts.Initial - delta).
// delta math.MinInt64 is ErrInvalidArgument.
func (c *Client) Decr(key []byte, delta int64, opts IncrOptions) (int64, bool, error) {
	return c.incr("decr", key, delta, opts, 1)
}

func (c *Client) incr(op string, key []byte, delta int64, opts IncrOptions, decrement C.uint8_t) (int64, bool, error) {
	ttl, err := ms(op, "TTL", opts.TTL, math.MaxUint64)
	if err != nil {
		return 0, false, err
	}
	var create C.uint8_t = 1
	if opts.NoCreate {
		create = 0
	}
	if err := c.acquire(); err != nil {
		return 0, false, err
	}
	defer c.mu.RUnlock()
	r := C.ckgo_incr(c.h, bytesPtr(key), C.size_t(len(key)), C.int64_t(delta), create,
		C.int64_t(opts.Initial), C.uint64_t(ttl), decrement)
	runtime.KeepAlive(c)
	switch r.rc {
	case C.CACHEKIT_OK:
		return int64(r.value), true, nil
	case C.CACHEKIT_MISS:
		return 0, false, nil
	}
	return 0, false, callError(op, r.rc, r.err)
}

// GetAndDelete removes key and returns the value it had (with its metadata), atomically: of
// concurrent GetAndDeletes of one key, one gets the value. ok is false when the key had no
// fresh entry.
//
// Errors: as Delete; ErrCorruptValue.
func (c *Client) GetAndDelete(key []byte) (Value, bool, error) {
	const op = "get and delete"
	sp := scratchPool.Get().(*[]byte)
	defer scratchPool.Put(sp)
	buf := (*sp)[:cap(*sp)]
	if err := c.acquire(); err != nil {
		return Value{}, false, err
	}
	defer c.mu.RUnlock()
	r := C.ckgo_get_and_delete(c.h, bytesPtr(key), C.size_t(len(key)), bytesPtr(buf), C.size_t(len(buf)))
	runtime.KeepAlive(c)
	switch r.rc {
	case C.CACHEKIT_OK:
	case C.CACHEKIT_MISS:
		return Value{}, false, nil
	default:
		return Value{}, false, callError(op, r.rc, r.err)
	}
	out := make([]byte, int(r.len))
	if r.alloc != nil {
		copy(out, unsafe.Slice((*byte)(unsafe.Pointer(r.alloc)), int(r.len)))
		C.free(unsafe.Pointer(r.alloc))
	} else {
		copy(out, buf[:r.len])
	}
	return Value{
		Bytes:        out,
		Stale:        r.stale != 0,
		CreatedMs:    uint64(r.created_ms),
		ExpiresMs:    uint64(r.expires_ms),
		GraceUntilMs: uint64(r.grace_until_ms),
		Source:       Source(r.source),
		Version:      uint64(r.version),
		Integer:      r.integer != 0,
	}, true, nil
}

// Touch gives key's fresh entry a new time to live from now: ttl > 0, or 0 = never expires
// (as SetOptions.TTL; Persist says it plainly). Its value, tags and grace length stay.
// Reports whether the key had a fresh entry.
//
// Errors: ErrInvalidArgument for a negative ttl; as Delete.
func (c *Client) Touch(key []byte, ttl time.Duration) (bool, error) {
	v, err := ms("touch", "TTL", ttl, math.MaxInt64)
	if err != nil {
		return false, err
	}
	return c.touch("touch", key, int64(v)) // 0: never expires, in the C library as here
}

// Persist makes key's fresh entry never expire; reports whether the key had one.
func (c *Client) Persist(key []byte) (bool, error) {
	return c.touch("persist", key, 0)
}

func (c *Client) touch(op string, key []byte, ttlMs int64) (bool, error) {
	if err := c.acquire(); err != nil {
		return false, err
	}
	defer c.mu.RUnlock()
	r := C.ckgo_touch(c.h, bytesPtr(key), C.size_t(len(key)), C.int64_t(ttlMs))
	runtime.KeepAlive(c)
	if r.rc != C.CACHEKIT_OK {
		return false, callError(op, r.rc, r.err)
	}
	return r.yes != 0, nil
}

// TTL is how long key stays fresh, read like a Get: (time left, true, nil), NoExpiry when it
// never expires, 0 for a stale entry served within its grace period; (0, false, nil) when the
// key has no entry.
//
// Errors: as Get.
func (c *Client) TTL(key []byte) (time.Duration, bool, error) {
	if err := c.acquire(); err != nil {
		return 0, false, err
	}
	defer c.mu.RUnlock()
	r := C.ckgo_ttl(c.h, bytesPtr(key), C.size_t(len(key)))
	runtime.KeepAlive(c)
	switch r.rc {
	case C.CACHEKIT_OK:
		if r.value < 0 {
			return NoExpiry, true, nil
		}
		return time.Duration(r.value) * time.Millisecond, true, nil
	case C.CACHEKIT_MISS:
		return 0, false, nil
	}
	return 0, false, callError("ttl", r.rc, r.err)
}

// selection converts ScanOptions for C: the pattern's bytes and the tag as a C string (free
// it with C.free; nil for none).
func (o ScanOptions) selection(op string) (pattern []byte, tag *C.char, err error) {
	if strings.IndexByte(o.Tag, 0) >= 0 {
		return nil, nil, invalid(op, "Tag contains a NUL byte")
	}
	if o.Exact && o.Tag == "" {
		return nil, nil, invalid(op, "Exact needs a Tag (it selects entries tagged exactly that path)")
	}
	if o.Tag != "" {
		tag = C.CString(o.Tag)
	}
	return []byte(o.Pattern), tag, nil
}

// Scanner walks the entries of a Scan, a page per request to the daemon (which walks a
// bounded slice of its index per request, so writers are never held up for long). An entry
// present for the whole scan is returned exactly once; entries written or deleted meanwhile
// may or may not be. Use it like bufio.Scanner:
//
//	sc, err := c.Scan(cachekit.ScanOptions{Pattern: "user:*"})
//	if err != nil { ... }
//	defer sc.Close()
//	for sc.Next() {
//		item := sc.Item()
//	}
//	if err := sc.Err(); err != nil { ... }
//
// A Scanner may be used from one goroutine at a time; it outlives a Close of its Client.
type Scanner struct {
	mu   sync.Mutex
	scan *C.cachekit_scan // nil once closed
	buf  []byte
	item ScanItem
	err  error
}

// Scan starts a scan of the client's namespace on this host (not Redis) and fetches its first
// page.
//
// Errors: ErrInvalidArgument (a malformed tag, Exact without a Tag, PageSize out of range),
// ErrUnavailable, ErrTimeout, ErrClosed.
func (c *Client) Scan(opts ScanOptions) (*Scanner, error) {
	const op = "scan"
	if opts.PageSize < 0 || opts.PageSize > 1000 {
		return nil, invalid(op, "PageSize must be 0 (the daemon's default) to 1000")
	}
	pattern, tag, err := opts.selection(op)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(tag))
	exact := C.uint8_t(0)
	if opts.Exact {
		exact = 1
	}
	if err := c.acquire(); err != nil {
		return nil, err
	}
	r := C.ckgo_scan_open(c.h, bytesPtr(pattern), C.size_t(len(pattern)), tag, exact, C.uint32_t(opts.PageSize))
	runtime.KeepAlive(c)
	c.mu.RUnlock() // the scan holds its own reference to the connections
	if r.rc != C.CACHEKIT_OK {
		return nil, callError(op, r.rc, r.err)
	}
	s := &Scanner{scan: r.scan, buf: make([]byte, 256)}
	runtime.SetFinalizer(s, func(s *Scanner) { s.Close() })
	return s, nil
}

// Next advances to the next entry; false at the end or on an error (see Err). An error of
// fetching a page ends the walk: start a new Scan to retry.
func (s *Scanner) Next() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.scan == nil || s.err != nil {
		return false
	}
	for {
		r := C.ckgo_scan_next(s.scan, bytesPtr(s.buf), C.size_t(len(s.buf)))
		switch r.rc {
		case C.CACHEKIT_OK:
			key := make([]byte, int(r.key_len))
			copy(key, s.buf)
			it := &r.item
			s.item = ScanItem{
				Key:          key,
				StoredLen:    uint64(it.stored_len),
				CreatedMs:    uint64(it.created_ms),
				ExpiresMs:    uint64(it.expires_ms),
				GraceUntilMs: uint64(it.grace_until_ms),
				Version:      uint64(it.version),
			}
			return true
		case C.CACHEKIT_BUFFER_TOO_SMALL:
			s.buf = make([]byte, int(r.key_len))
		case C.CACHEKIT_MISS:
			s.release()
			return false
		default:
			s.err = callError("scan", r.rc, r.err)
			s.release()
			return false
		}
	}
}

// Item is the entry Next moved to.
func (s *Scanner) Item() ScanItem {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.item
}

// Err is the error that ended the scan, or nil.
func (s *Scanner) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close frees the scan; Next returns false afterwards. Closing again does nothing.
func (s *Scanner) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.release()
	return nil
}

func (s *Scanner) release() {
	if s.scan != nil {
		C.cachekit_scan_free(s.scan)
		s.scan = nil
		runtime.SetFinalizer(s, nil)
	}
}

// ScanAll is Scan collected into a slice (for namespaces known to be small).
func (c *Client) ScanAll(opts ScanOptions) ([]ScanItem, error) {
	sc, err := c.Scan(opts)
	if err != nil {
		return nil, err
	}
	defer sc.Close()
	var out []ScanItem
	for sc.Next() {
		out = append(out, sc.Item())
	}
	return out, sc.Err()
}

// DeleteMatching deletes every entry of the client's namespace that a Scan with the same
// options would select, on this host and, with Redis, in Redis (so other hosts drop them
// too), a bounded page per request; returns how many were deleted (this host's table and
// Redis records counted separately). Unlike Invalidate it frees the memory. The zero
// ScanOptions delete the whole namespace.
//
// Errors: as Scan; ErrNotPermitted.
func (c *Client) DeleteMatching(opts ScanOptions) (uint64, error) {
	const op = "delete matching"
	pattern, tag, err := opts.selection(op)
	if err != nil {
		return 0, err
	}
	defer C.free(unsafe.Pointer(tag))
	exact := C.uint8_t(0)
	if opts.Exact {
		exact = 1
	}
	if err := c.acquire(); err != nil {
		return 0, err
	}
	defer c.mu.RUnlock()
	r := C.ckgo_delete_matching(c.h, bytesPtr(pattern), C.size_t(len(pattern)), tag, exact)
	runtime.KeepAlive(c)
	if r.rc != C.CACHEKIT_OK {
		return 0, callError(op, r.rc, r.err)
	}
	return uint64(r.count), nil
}

// Namespaces lists the namespaces of the host's table (not Redis) with their entry counts and
// bytes, largest first.
//
// Errors: ErrUnavailable, ErrTimeout, ErrClosed.
func (c *Client) Namespaces() ([]NamespaceInfo, error) {
	const op = "namespaces"
	if err := c.acquire(); err != nil {
		return nil, err
	}
	r := C.ckgo_namespaces_open(c.h)
	runtime.KeepAlive(c)
	c.mu.RUnlock() // the list lives on its own
	if r.rc != C.CACHEKIT_OK {
		return nil, callError(op, r.rc, r.err)
	}
	defer C.cachekit_namespaces_free(r.list)
	buf := make([]byte, 128) // names are at most 127 bytes
	var out []NamespaceInfo
	for {
		e := C.ckgo_namespaces_next(r.list, charPtr(buf), C.size_t(len(buf)))
		switch e.rc {
		case C.CACHEKIT_OK:
			out = append(out, NamespaceInfo{
				Name:    string(buf[:e.size-1]),
				Entries: uint64(e.entries),
				Bytes:   uint64(e.bytes),
			})
		case C.CACHEKIT_BUFFER_TOO_SMALL:
			buf = make([]byte, int(e.size))
		case C.CACHEKIT_MISS:
			return out, nil
		default:
			return nil, callError(op, e.rc, nil)
		}
	}
}
