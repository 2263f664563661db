// Package cachekit is the Go binding of cachekit, a per-host cache shared by every process on
// a machine.
//
// A daemon, cachekitd, owns a hash table in shared memory. A Client maps it read-only and
// serves hits from it with no syscall and no lock; misses and writes go to the daemon over a
// Unix socket. The package wraps libcachekit, the C library (include/cachekit.h), with cgo and
// the standard library only.
//
//	c, err := cachekit.Open(cachekit.Options{Namespace: "app"})
//	if err != nil { ... }                       // errors.Is(err, cachekit.ErrUnavailable): start cachekitd
//	defer c.Close()
//	err = c.Set([]byte("user:42"), []byte("Ada"), cachekit.SetOptions{TTL: time.Minute, Tags: []string{"users/42"}})
//	v, ok, err := c.Get([]byte("user:42"))      // ok == false: a miss
//	err = c.Invalidate("users/42")              // everything tagged users/42 and below
//
// # Hits, stale hits and misses
//
// Get returns (value, true, nil) for a hit, (nil, false, nil) for a miss. A stale hit (past
// its TTL, within its grace period) is a hit too; GetInfo tells it apart with Value.Stale:
// serve the value and refresh it. Gets never fail because cachekitd is unreachable: they miss.
// Writes then fail with ErrUnavailable or ErrTimeout.
//
// # Errors
//
// Every error from the library is an *Error with a Code and the library's message, which says
// what went wrong and what to do. Compare with errors.Is against the sentinels (ErrUnavailable,
// ErrTooLarge, ErrInvalidArgument, ...). A closed client returns ErrClosed.
//
// # Concurrency and lifetime
//
// A Client is safe for concurrent use by any number of goroutines; open one per process and
// share it. Close is idempotent and waits for calls in flight; a Client that becomes
// unreachable without Close is closed by a finalizer. A Client does not survive fork (Go
// programs do not fork; a child started with os/exec opens its own).
//
// # Linking
//
// The package finds libcachekit with pkg-config (`#cgo pkg-config: cachekit`): install the
// library with scripts/install --prefix DIR and set PKG_CONFIG_PATH=DIR/lib/pkgconfig. The
// program then loads libcachekit.so.0 at run time (add -Wl,-rpath,DIR/lib to CGO_LDFLAGS, or
// set LD_LIBRARY_PATH, when DIR is not a system library directory).
package cachekit
