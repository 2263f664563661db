package cachekit

// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// Options of Open. The zero value is the default: every empty or zero field means "the
// library's default", and the strings left empty are taken from the environment as the C
// library does (CACHEKIT_SOCKET, CACHEKIT_INSTANCE, CACHEKIT_DIR, CACHEKIT_NAMESPACE,
// CACHEKIT_REDIS_URL).
type Options struct {
	// Socket is the daemon's socket path. Overrides Instance.
	Socket string
	// Instance is the daemon instance whose socket is looked up in /run/cachekit,
	// $XDG_RUNTIME_DIR/cachekit, /tmp/cachekit-<uid>. "" = "default".
	Instance string
	// Namespace of the client, 1 to 127 bytes. "" = "default".
	Namespace string
	// ClientName is sent to the daemon for its logs. "" = the program's name.
	ClientName string
	// Lazy connects on first use instead of in Open: Open then succeeds while the daemon is
	// down; until it comes up, gets miss and writes return ErrUnavailable.
	Lazy bool
	// PoolSize is the most connections open at once (misses and writes; hits use none).
	// 0 = 4.
	PoolSize int
	// ConnectTimeout bounds connecting and the handshake. 0 = 1 s. Rounded up to ms.
	ConnectTimeout time.Duration
	// RequestTimeout bounds one request to the daemon. 0 = 5 s. Rounded up to ms.
	RequestTimeout time.Duration
	// RedisURL is the Redis of the direct fallback: while the daemon is down, gets and writes
	// go to Redis directly. redis://[user:password@]host:port[/db], rediss://..., unix:///path;
	// with RedisCluster, seed URLs separated by commas. "" = none.
	RedisURL string
	// RedisCluster: RedisURL lists the seed nodes of a Redis Cluster.
	RedisCluster bool
	// NoRedisFallback: never fall back to Redis directly, even with a RedisURL.
	NoRedisFallback bool
	// RedisTimeout bounds each call of the direct fallback. 0 = 250 ms.
	RedisTimeout time.Duration
	// Encryption turns on client-side encryption (AES-256-GCM in this process: the daemon,
	// the shared segment and Redis hold ciphertext only). nil = none, unless the environment
	// sets CACHEKIT_MASTER_KEY or CACHEKIT_MASTER_KEY_FILE.
	Encryption *Encryption
}

// Encryption configures client-side encryption. Keys, namespaces and tags stay plaintext
// (unless HashKeys); counters (Incr, SetInt64) stay plaintext.
type Encryption struct {
	// MasterKey is 32 random bytes; each tenant's key is derived from it (HKDF-SHA256).
	MasterKey []byte
	// PreviousKeys are older master keys (32 bytes each) still accepted for reading, so a
	// rotation needs no flush.
	PreviousKeys [][]byte
	// Tenant whose key is derived. "" = each client's namespace.
	Tenant string
	// HashKeys sends HMAC-SHA256 hashes (64 hex digits) instead of keys: neither the daemon
	// nor Redis sees key names; scans then see the hashes.
	HashKeys bool
	// RequireEncryption refuses plaintext values (ErrPlaintext) instead of returning them.
	RequireEncryption bool
	// MemoBytes is the budget of the memo of opened values: the plaintext of encrypted values
	// this client already decrypted (up to 16 KiB each), kept beside the exact stored bytes,
	// so a hit whose bytes did not change skips AES-GCM. The plaintext stays in this
	// process's memory until evicted or the client is closed (zeroed then). 0 = 1 MiB.
	MemoBytes int
	// NoMemo turns the memo off: every encrypted hit is decrypted, and no plaintext is kept
	// after a get returns. Do not set MemoBytes with it.
	NoMemo bool
}

// SetOptions of Set. The zero value stores a value that never expires, with no tags.
type SetOptions struct {
	// TTL is the time to live; 0 = never expires (until evicted, deleted, invalidated).
	// Rounded up to a millisecond, so a positive TTL never means "forever".
	TTL time.Duration
	// Grace is how long after expiry the value may still be served, marked stale, while a
	// caller refreshes it. 0 = none.
	Grace time.Duration
	// Tags are tag paths ("posts/123/comments") for Invalidate.
	Tags []string
}

// ms converts a duration to whole milliseconds, rounding up; negative ones are refused.
func ms(op, name string, d time.Duration, max uint64) (uint64, error) {
	if d < 0 && name == "TTL" {
		return 0, invalid(op, "TTL is negative ("+d.String()+"): a negative TTL is refused (0 means never expires; to drop a key, use Delete)")
	}
	if d < 0 {
		return 0, invalid(op, name+" is negative ("+d.String()+"); use 0 for the default")
	}
	v := uint64((d + time.Millisecond - 1) / time.Millisecond)
	if v > max {
		return 0, invalid(op, name+" is too long ("+d.String()+")")
	}
	return v, nil
}

// cOptions is a cachekit_options and the C strings it points to.
type cOptions struct {
	opts    C.cachekit_options
	strings []*C.char
	buffers []unsafe.Pointer
}

// bytes copies b into C memory, freed by free().
func (o *cOptions) bytes(b []byte) *C.uint8_t {
	p := C.CBytes(b)
	o.buffers = append(o.buffers, p)
	return (*C.uint8_t)(p)
}

func (o *cOptions) str(op, name, s string) (*C.char, error) {
	if s == "" {
		return nil, nil
	}
	if strings.IndexByte(s, 0) >= 0 {
		return nil, invalid(op, name+" contains a NUL byte")
	}
	p := C.CString(s)
	o.strings = append(o.strings, p)
	return p, nil
}

func (o *cOptions) free() {
	for _, p := range o.strings {
		C.free(unsafe.Pointer(p))
	}
	o.strings = nil
	for _, p := range o.buffers {
		C.free(p)
	}
	o.buffers = nil
}

// toC builds the C options; the caller frees them with free() after the call.
func (opts *Options) toC() (*cOptions, error) {
	const op = "open"
	o := &cOptions{}
	c := &o.opts
	c.struct_size = C.size_t(unsafe.Sizeof(*c))
	var err error
	fail := func(e error) (*cOptions, error) { o.free(); return nil, e }
	if c.socket_path, err = o.str(op, "Socket", opts.Socket); err != nil {
		return fail(err)
	}
	if c.instance, err = o.str(op, "Instance", opts.Instance); err != nil {
		return fail(err)
	}
	if c.ns, err = o.str(op, "Namespace", opts.Namespace); err != nil {
		return fail(err)
	}
	if c.client_name, err = o.str(op, "ClientName", opts.ClientName); err != nil {
		return fail(err)
	}
	if c.redis_url, err = o.str(op, "RedisURL", opts.RedisURL); err != nil {
		return fail(err)
	}
	if opts.Lazy {
		c.flags |= C.CACHEKIT_OPEN_LAZY
	}
	if opts.RedisCluster {
		c.flags |= C.CACHEKIT_OPEN_REDIS_CLUSTER
	}
	if opts.NoRedisFallback {
		c.flags |= C.CACHEKIT_OPEN_NO_REDIS_FALLBACK
	}
	if opts.PoolSize < 0 || uint64(opts.PoolSize) > math.MaxUint32 {
		return fail(invalid(op, "PoolSize is out of range"))
	}
	c.pool_size = C.uint32_t(opts.PoolSize)
	for _, t := range []struct {
		name string
		d    time.Duration
		out  *C.uint32_t
	}{
		{"ConnectTimeout", opts.ConnectTimeout, &c.connect_timeout_ms},
		{"RequestTimeout", opts.RequestTimeout, &c.request_timeout_ms},
		{"RedisTimeout", opts.RedisTimeout, &c.redis_timeout_ms},
	} {
		v, err := ms(op, t.name, t.d, math.MaxUint32)
		if err != nil {
			return fail(err)
		}
		*t.out = C.uint32_t(v)
	}
	if e := opts.Encryption; e != nil {
		if len(e.MasterKey) != 32 {
			return fail(invalid(op, "Encryption.MasterKey is "+strconv.Itoa(len(e.MasterKey))+
				" bytes; it must be exactly 32 random bytes"))
		}
		c.encryption_key = o.bytes(e.MasterKey)
		c.encryption_key_len = 32
		if len(e.PreviousKeys) > 0 {
			flat := make([]byte, 0, 32*len(e.PreviousKeys))
			for i, k := range e.PreviousKeys {
				if len(k) != 32 {
					return fail(invalid(op, "Encryption.PreviousKeys["+strconv.Itoa(i)+"] is "+
						strconv.Itoa(len(k))+" bytes; it must be exactly 32"))
				}
				flat = append(flat, k...)
			}
			c.previous_keys = o.bytes(flat)
			c.previous_keys_count = C.size_t(len(e.PreviousKeys))
		}
		if c.tenant, err = o.str(op, "Encryption.Tenant", e.Tenant); err != nil {
			return fail(err)
		}
		if e.HashKeys {
			c.encryption_flags |= C.CACHEKIT_ENCRYPT_HASH_KEYS
		}
		if e.RequireEncryption {
			c.encryption_flags |= C.CACHEKIT_ENCRYPT_REQUIRE
		}
		if e.MemoBytes < 0 {
			return fail(invalid(op, "Encryption.MemoBytes is "+strconv.Itoa(e.MemoBytes)+
				"; use 0 for the default (1 MiB), or NoMemo to turn the memo off"))
		}
		c.encryption_memo_bytes = C.size_t(e.MemoBytes)
		if e.NoMemo {
			c.encryption_flags |= C.CACHEKIT_ENCRYPT_NO_MEMO
		}
	}
	return o, nil
}

// flatTags lays tags out back to back, NUL-terminated, for the C wrapper to split.
func flatTags(op string, tags []string) ([]byte, error) {
	n := 0
	for _, t := range tags {
		n += len(t) + 1
	}
	flat := make([]byte, 0, n)
	for i, t := range tags {
		if strings.IndexByte(t, 0) >= 0 {
			return nil, invalid(op, "tags["+strconv.Itoa(i)+"] contains a NUL byte")
		}
		flat = append(flat, t...)
		flat = append(flat, 0)
	}
	return flat, nil
}
