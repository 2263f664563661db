package cachekit

import "time"

// Source says where a hit came from.
type Source uint32

const (
	// SourceSegment: read straight from the shared segment, no syscall, no socket.
	SourceSegment Source = 0
	// SourceDaemon: answered by cachekitd over the socket (the segment did not have the key,
	// or its heartbeat was stale).
	SourceDaemon Source = 1
)

func (s Source) String() string {
	switch s {
	case SourceSegment:
		return "segment"
	case SourceDaemon:
		return "daemon"
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
