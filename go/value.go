package cachekit

import (
	"math"
	"time"
)

// Source says where a hit came from.
type Source uint32

const (
	// SourceSegment: read straight from the shared segment, no syscall, no socket.
	SourceSegment Source = 0
	// SourceDaemon: answered by cachekitd over the socket (the segment did not have the key,
	// or its heartbeat was stale).
	SourceDaemon Source = 1
	// SourceComputed: computed by this very call (a Query that held the key's fill lease).
	SourceComputed Source = 2
)

func (s Source) String() string {
	switch s {
	case SourceSegment:
		return "segment"
	case SourceDaemon:
		return "daemon"
	case SourceComputed:
		return "computed"
	}
	return "unknown"
}

// Value is a hit: the bytes and the entry's metadata. Times are Unix milliseconds, the same in
// every process.
type Value struct {
	// Bytes is the value as given to Set (never nil for a hit, possibly empty).
	Bytes []byte
	// Stale: past ExpiresMs, within the grace period. The value may be served; refresh it
	// (stale-while-revalidate).
	Stale bool
	// CreatedMs is when the entry was written.
	CreatedMs uint64
	// ExpiresMs is when it stops being fresh; 0 = never.
	ExpiresMs uint64
	// GraceUntilMs is when it stops being servable at all (equal to ExpiresMs when there is no
	// grace period); 0 = never.
	GraceUntilMs uint64
	// Source is where the hit came from.
	Source Source
	// Version is the entry's version on this host, for CAS: it changes with every write of
	// the key. 0 = unknown (a value answered from Redis that the daemon did not keep); a CAS
	// with version 0 never stores.
	Version uint64
	// Integer: the value is a counter (written by Incr or SetInt64); Int64 reads it.
	Integer bool
}

// Int64 parses Bytes as a counter's ASCII decimal int64 ("-42", "0"; no sign "+", no
// spaces, no leading zeros), as Incr does: ok is false for anything else.
func (v Value) Int64() (int64, bool) {
	b := v.Bytes
	neg := len(b) > 0 && b[0] == '-'
	digits := b
	if neg {
		digits = b[1:]
	}
	if len(digits) == 0 || len(digits) > 19 || (digits[0] == '0' && (len(digits) > 1 || neg)) {
		return 0, false
	}
	var n uint64
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + uint64(d-'0')
	}
	switch {
	case !neg && n <= math.MaxInt64:
		return int64(n), true
	case neg && n <= math.MaxInt64+1:
		return int64(-n), true
	}
	return 0, false
}

// Created is CreatedMs as a time.Time.
func (v Value) Created() time.Time { return time.UnixMilli(int64(v.CreatedMs)) }

// Expires is ExpiresMs as a time.Time; the zero Time when the entry never expires.
func (v Value) Expires() time.Time { return msTime(v.ExpiresMs) }

// GraceUntil is GraceUntilMs as a time.Time; the zero Time when the entry never expires.
func (v Value) GraceUntil() time.Time { return msTime(v.GraceUntilMs) }

func msTime(ms uint64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(ms))
}

// Pong is the answer to Ping.
type Pong struct {
	// Epoch identifies the daemon's run: it changes when cachekitd restarts.
	Epoch uint64
	// RTT is the round trip measured by the library.
	RTT time.Duration
}
