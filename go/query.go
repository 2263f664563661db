package cachekit

// #include <stdlib.h>
// #include "lease_shim.h"
import "C"

import (
	"context"
	"errors"
	"math"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// Compute once per host: fill leases (Lease, Fill, Release) and Query, the t87s query built
// on them. Every process of the host that misses a key asks the daemon for the key's fill
// lease: one gets it and computes, the others wait for its value.

// Defaults of LeaseOptions, as the library has them.
const (
	DefaultWaitTimeout  = 10 * time.Second
	DefaultLeaseTimeout = 30 * time.Second
)

// ErrLeaseBusy: another caller holds the key's lease and its value did not come within the
// wait (Client.Lease, and Client.Query with ErrorOnTimeout).
var ErrLeaseBusy = errors.New("cachekit: another caller is computing this key and its value did not come in time; raise WaitTimeout or compute it yourself")

// LeaseOptions say how long a lease is waited for and held. The zero value is the default.
type LeaseOptions struct {
	// WaitTimeout bounds the wait for another holder's value. 0 = 10 s. A context deadline
	// that comes sooner bounds it instead.
	WaitTimeout time.Duration
	// LeaseTimeout is how long the holder may compute before the lease passes to a waiter.
	// 0 = 30 s (the daemon caps it at 10 minutes). A holder that dies releases it at once.
	LeaseTimeout time.Duration
	// Global also takes the lease in Redis, so one host of all those sharing the daemon's
	// Redis computes (the host's lease alone when Redis is unreachable).
	Global bool
}

// QueryOptions of Query.
type QueryOptions struct {
	// Set: TTL, grace and tags of the value stored.
	Set SetOptions
	// Lease: the lease's timeouts and scope.
	Lease LeaseOptions
	// ErrorOnTimeout: when the wait for another caller's value times out, return ErrLeaseBusy
	// instead of computing the value anyway (the default: the wait only bounds the delay).
	ErrorOnTimeout bool
}

// Lease is a key's fill lease, held by this process: compute the value, then Fill it (every
// waiter gets it) or Release it (one waiter takes over). It holds a daemon connection of its
// own, so a process that dies releases its leases at once; a Lease dropped without either is
// released when the garbage collector finds it, which may be late: always end it.
type Lease struct {
	mu sync.Mutex
	h  C.ckgo_lease // 0 once filled or released
}

func newLease(h C.ckgo_lease) *Lease {
	l := &Lease{h: h}
	runtime.SetFinalizer(l, func(l *Lease) { l.Release() })
	return l
}

// take hands the handle over to whoever ends the lease (0: already ended).
func (l *Lease) take() C.ckgo_lease {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.h
	l.h = 0
	return h
}

// Fill stores the computed value under the lease's key and ends the lease: every waiter gets
// it. stored is false when it was not stored as fresh: the key was written or deleted, or one
// of its tags invalidated, while it was computed (it would be stale: serve it to your caller,
// it is simply not cached), or the lease had passed on (LeaseTimeout). The lease ends whatever
// Fill returns; a second Fill or Release does nothing (Fill returns ErrClosed).
//
// Errors: those of Set.
func (l *Lease) Fill(value []byte, opts SetOptions) (stored bool, err error) {
	const op = "lease fill"
	ttl, grace, tags, err := setArgs(op, opts)
	h := l.take()
	if h == 0 {
		return false, ErrClosed
	}
	runtime.SetFinalizer(l, nil)
	if err != nil {
		C.ckgo_lease_release(h)
		return false, err
	}
	r := C.ckgo_lease_fill(h, bytesPtr(value), C.size_t(len(value)), C.uint64_t(ttl),
		C.uint64_t(grace), charPtr(tags), C.size_t(len(opts.Tags)))
	if r.rc != C.CACHEKIT_OK {
		return false, callError(op, r.rc, r.err)
	}
	return r.stored != 0, nil
}

// Release ends the lease without a value (the computation failed): nothing is cached, one
// waiter takes the lease over. Releasing an ended lease (or a nil one) does nothing.
func (l *Lease) Release() {
	if h := l.take(); h != 0 {
		runtime.SetFinalizer(l, nil)
		C.ckgo_lease_release(h)
	}
}

// leaseArgs converts the options; wait is the wait actually asked for.
func leaseArgs(op string, o LeaseOptions, wait time.Duration) (flags C.uint32_t, waitMs, leaseMs uint64, err error) {
	if waitMs, err = ms(op, "WaitTimeout", wait, math.MaxUint32); err != nil {
		return
	}
	if leaseMs, err = ms(op, "LeaseTimeout", o.LeaseTimeout, math.MaxUint32); err != nil {
		return
	}
	if o.Global {
		flags |= C.CACHEKIT_LEASE_GLOBAL
	}
	return
}

// waitFor is how long a lease may be waited for under ctx: WaitTimeout (or its default), cut
// to the context's deadline (cut is then true).
func waitFor(ctx context.Context, o LeaseOptions) (wait time.Duration, cut bool, err error) {
	wait = o.WaitTimeout
	if wait == 0 {
		wait = DefaultWaitTimeout
	}
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		left := time.Until(deadline)
		if left < time.Millisecond {
			return 0, true, context.DeadlineExceeded
		}
		if left < wait {
			wait, cut = left, true
		}
	}
	return wait, cut, nil
}

// leaseReply is what one LEASE request got.
type leaseReply struct {
	v     Value
	hit   bool
	lease *Lease
	err   error
}

// Lease asks for key's fill lease after a miss: (value, nil, nil) when a value is there or
// the holder's value came within the wait; (_, lease, nil) when this caller is to compute it
// (then Fill or Release the lease); ErrLeaseBusy when another caller holds it and its value
// did not come in time. The wait ends at ctx's deadline if that is sooner, and Lease returns
// ctx.Err() as soon as ctx is done (a lease granted after that is released).
//
// Errors: ErrUnavailable, ErrTimeout (no daemon to coordinate with: compute, cache nothing),
// ErrNotPermitted, ErrTooLarge (key), ErrLeaseBusy, ctx.Err(), ErrClosed.
func (c *Client) Lease(ctx context.Context, key []byte, opts LeaseOptions) (Value, *Lease, error) {
	const op = "lease"
	wait, cut, err := waitFor(ctx, opts)
	if err != nil {
		return Value{}, nil, err
	}
	flags, waitMs, leaseMs, err := leaseArgs(op, opts, wait)
	if err != nil {
		return Value{}, nil, err
	}
	call := func() leaseReply { return c.leaseCall(op, key, flags, waitMs, leaseMs) }
	var r leaseReply
	if ctx.Done() == nil {
		r = call()
	} else {
		// The C call blocks in the daemon until the wait ends: run it aside, so a cancelled
		// context returns at once. A lease it gets after that passes straight on.
		key = append([]byte(nil), key...)
		done := make(chan leaseReply, 1)
		go func() { done <- call() }()
		select {
		case r = <-done:
		case <-ctx.Done():
			go func() { (<-done).lease.Release() }()
			return Value{}, nil, ctx.Err()
		}
	}
	if errors.Is(r.err, ErrLeaseBusy) && cut {
		// The wait ended at the context's deadline (the daemon may answer a moment before
		// the context notices).
		if err := ctx.Err(); err != nil {
			return Value{}, nil, err
		}
		return Value{}, nil, context.DeadlineExceeded
	}
	return r.v, r.lease, r.err
}

func (c *Client) leaseCall(op string, key []byte, flags C.uint32_t, waitMs, leaseMs uint64) leaseReply {
	if err := c.acquire(); err != nil {
		return leaseReply{err: err}
	}
	defer c.mu.RUnlock()
	buf := make([]byte, scratchSize)
	for {
		r := C.ckgo_lease_acquire(c.h, bytesPtr(key), C.size_t(len(key)), flags,
			C.uint64_t(waitMs), C.uint64_t(leaseMs), bytesPtr(buf), C.size_t(len(buf)))
		runtime.KeepAlive(c)
		switch r.get.rc {
		case C.CACHEKIT_OK:
			return leaseReply{v: valueOf(buf, &r.get), hit: true}
		case C.CACHEKIT_LEASE_GRANTED:
			return leaseReply{lease: newLease(r.lease)}
		case C.CACHEKIT_LEASE_BUSY:
			return leaseReply{err: ErrLeaseBusy}
		case C.CACHEKIT_BUFFER_TOO_SMALL:
			// The value is there now: asking again answers it at once.
			buf = make([]byte, r.get.len)
		default:
			return leaseReply{err: callError(op, r.get.rc, r.get.err)}
		}
	}
}

// valueOf is the hit a get-shaped result describes, its bytes at buf[:r.len].
func valueOf(buf []byte, r *C.ckgo_get_result) Value {
	if buf == nil {
		buf = []byte{}
	}
	return Value{
		Bytes:        buf[:r.len:r.len],
		Stale:        r.stale != 0,
		CreatedMs:    uint64(r.created_ms),
		ExpiresMs:    uint64(r.expires_ms),
		GraceUntilMs: uint64(r.grace_until_ms),
		Source:       Source(r.source),
		Version:      uint64(r.version),
		Integer:      r.integer != 0,
	}
}

// RefreshLease asks for the lease to refresh key's stale value; never waits. nil (and no
// error) when someone else is refreshing it: serve the stale value either way.
func (c *Client) RefreshLease(key []byte, opts LeaseOptions) (*Lease, error) {
	const op = "refresh lease"
	flags, _, leaseMs, err := leaseArgs(op, opts, 0)
	if err != nil {
		return nil, err
	}
	if err := c.acquire(); err != nil {
		return nil, err
	}
	defer c.mu.RUnlock()
	r := C.ckgo_refresh_lease(c.h, bytesPtr(key), C.size_t(len(key)), flags, C.uint64_t(leaseMs))
	runtime.KeepAlive(c)
	switch r.get.rc {
	case C.CACHEKIT_LEASE_GRANTED:
		return newLease(r.lease), nil
	case C.CACHEKIT_LEASE_BUSY:
		return nil, nil
	}
	return nil, callError(op, r.get.rc, r.get.err)
}

// getLocal reads key from the shared segment only (no request).
func (c *Client) getLocal(key []byte) (Value, bool) {
	if err := c.acquire(); err != nil {
		return Value{}, false
	}
	defer c.mu.RUnlock()
	buf := make([]byte, scratchSize)
	for {
		r := C.ckgo_get_local(c.h, bytesPtr(key), C.size_t(len(key)), bytesPtr(buf), C.size_t(len(buf)))
		runtime.KeepAlive(c)
		if r.err != nil {
			C.free(unsafe.Pointer(r.err))
		}
		switch r.rc {
		case C.CACHEKIT_OK:
			return valueOf(buf, &r), true
		case C.CACHEKIT_BUFFER_TOO_SMALL:
			buf = make([]byte, r.len)
		default:
			return Value{}, false
		}
	}
}

// computed is a value this call computed, with the times it was stored with.
func computed(bytes []byte, opts SetOptions) Value {
	now := uint64(time.Now().UnixMilli())
	v := Value{Bytes: bytes, CreatedMs: now, Source: SourceComputed}
	if opts.TTL > 0 {
		v.ExpiresMs = now + uint64((opts.TTL+time.Millisecond-1)/time.Millisecond)
		v.GraceUntilMs = v.ExpiresMs + uint64((opts.Grace+time.Millisecond-1)/time.Millisecond)
	}
	if bytes == nil {
		v.Bytes = []byte{}
	}
	return v
}

// Query returns the value of key, computed by compute at most once per host at a time (the
// semantics of t87s and of the Rust Client::query):
//
//  1. a fresh hit is returned from the shared segment (no request, no compute);
//  2. a stale hit (past its TTL, within grace) is returned at once, unless this caller is the
//     one of the host that gets to refresh it: then it computes, stores and returns the new
//     value (a refresh that fails returns the stale value);
//  3. on a miss exactly one caller of the host computes (it holds the key's fill lease);
//     every other caller, in any process, waits for its value. A compute that fails releases
//     the lease: its error goes to this caller only, and the waiters go on waiting for the
//     next holder. When the wait times out the caller computes itself (the value is stored
//     with Set), or returns ErrLeaseBusy with ErrorOnTimeout.
//
// ctx bounds the wait: its deadline cuts WaitTimeout short, and Query returns ctx.Err() as
// soon as ctx is done while it waits (compute itself is not interrupted: pass it ctx).
// A value computed while the key was written or one of its tags invalidated is returned but
// not stored as fresh. With the daemon unreachable compute runs and nothing is cached.
//
// Errors: compute's error as is; ErrLeaseBusy; ctx.Err(); ErrTooLarge (key),
// ErrInvalidArgument, ErrNotPermitted, ErrCorruptValue; ErrClosed.
func (c *Client) Query(ctx context.Context, key []byte, opts QueryOptions, compute func() ([]byte, error)) (Value, error) {
	if err := c.acquire(); err != nil {
		return Value{}, err
	}
	c.mu.RUnlock()
	if v, ok := c.getLocal(key); ok {
		if !v.Stale {
			return v, nil
		}
		lease, err := c.RefreshLease(key, opts.Lease)
		if err != nil || lease == nil {
			return v, nil
		}
		defer lease.Release()
		bytes, err := compute()
		if err != nil {
			return v, nil
		}
		if _, err := lease.Fill(bytes, opts.Set); err != nil {
			return v, nil
		}
		return computed(bytes, opts.Set), nil
	}
	v, lease, err := c.Lease(ctx, key, opts.Lease)
	switch {
	case err == nil && lease == nil:
		return v, nil
	case err == nil:
		defer lease.Release() // a compute that panics releases it too
		bytes, err := compute()
		if err != nil {
			lease.Release()
			return Value{}, err
		}
		// A refused fill (a value over the limit, the daemon gone) still leaves the value
		// this caller computed: return it, as the Rust client does.
		_, _ = lease.Fill(bytes, opts.Set)
		return computed(bytes, opts.Set), nil
	case errors.Is(err, ErrLeaseBusy):
		if opts.ErrorOnTimeout {
			return Value{}, err
		}
		bytes, err := compute()
		if err != nil {
			return Value{}, err
		}
		_ = c.Set(key, bytes, opts.Set) // best effort: the value is the caller's either way
		return computed(bytes, opts.Set), nil
	case transient(err):
		// No daemon to coordinate with: compute, cache nothing.
		bytes, err := compute()
		if err != nil {
			return Value{}, err
		}
		return computed(bytes, opts.Set), nil
	}
	return Value{}, err
}

// transient: the daemon is unreachable or slow, not the request refused.
func transient(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout) || errors.Is(err, ErrIO)
}
