package cachekit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The whole API against the shared cachekitd, one test per story; every test uses a
// namespace of its own.

func b(s string) []byte { return []byte(s) }

func mustSet(t *testing.T, c *Client, key, value string, opts SetOptions) {
	t.Helper()
	if err := c.Set(b(key), b(value), opts); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

// get returns the value of key and whether it hit; a failure fails the test.
func get(t *testing.T, c *Client, key string) (string, bool) {
	t.Helper()
	v, ok, err := c.Get(b(key))
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if ok != (v != nil) {
		t.Fatalf("Get(%q) = %q, %v: a hit must have a non-nil value, a miss nil", key, v, ok)
	}
	return string(v), ok
}

func wantHit(t *testing.T, c *Client, key, want string) {
	t.Helper()
	if v, ok := get(t, c, key); !ok || v != want {
		t.Fatalf("Get(%q) = %q, %v; want %q, true", key, v, ok, want)
	}
}

func wantMiss(t *testing.T, c *Client, key string) {
	t.Helper()
	if v, ok := get(t, c, key); ok {
		t.Fatalf("Get(%q) = %q, true; want a miss", key, v)
	}
}

// wantErr checks that err is an *Error matching sentinel whose message has every one of
// parts.
func wantErr(t *testing.T, err, sentinel error, parts ...string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("error = %v; want %v", err, sentinel)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an *Error", err)
	}
	for _, p := range parts {
		if !strings.Contains(e.Message, p) {
			t.Fatalf("error message %q does not contain %q", e.Message, p)
		}
	}
}

// ---- version and codes

func TestVersionOfTheLoadedLibraryMatchesTheHeader(t *testing.T) {
	maj, min, pat := headerVersion()
	header := fmt.Sprintf("%d.%d.%d", maj, min, pat)
	if Version() != header {
		t.Fatalf("loaded libcachekit %s, compiled against cachekit.h %s", Version(), header)
	}
	if want := os.Getenv("CACHEKIT_EXPECTED_VERSION"); want != "" && want != header {
		t.Fatalf("cachekit.h is %s, Cargo.toml says %s", header, want)
	}
}

func TestEveryCodeHasADescriptionAndASentinel(t *testing.T) {
	sentinels := map[Code]error{
		CodeNullArgument: ErrNullArgument, CodeInvalidArgument: ErrInvalidArgument,
		CodeTooLarge: ErrTooLarge, CodeUnavailable: ErrUnavailable, CodeTimeout: ErrTimeout,
		CodeNotPermitted: ErrNotPermitted, CodeProtocol: ErrProtocol, CodeDaemon: ErrDaemon,
		CodeIO: ErrIO, CodeCorruptValue: ErrCorruptValue, CodePanic: ErrPanic, CodeOther: ErrOther,
		CodeDecrypt: ErrDecrypt, CodeEncrypted: ErrEncrypted, CodePlaintext: ErrPlaintext,
	}
	if len(sentinels) != int(lastCode-CodeNullArgument+1) {
		t.Fatalf("%d sentinels for %d codes", len(sentinels), lastCode-CodeNullArgument+1)
	}
	seen := map[string]Code{}
	for code := CodeNullArgument; code <= lastCode; code++ {
		d := code.String()
		if d == "" || d == "unknown cachekit result code" {
			t.Errorf("code %d: description %q", code, d)
		}
		if other, dup := seen[d]; dup {
			t.Errorf("codes %d and %d share the description %q", other, code, d)
		}
		seen[d] = code
		err := fmt.Errorf("wrapped: %w", &Error{Op: "set", Code: code, Message: "details"})
		for c, s := range sentinels {
			if errors.Is(err, s) != (c == code) {
				t.Errorf("errors.Is(error of code %d, sentinel of code %d) = %v", code, c, !(c == code))
			}
		}
		if errors.Is(err, ErrClosed) {
			t.Errorf("code %d matches ErrClosed", code)
		}
	}
	if s := Code(99).String(); s != "unknown cachekit result code" {
		t.Errorf("Code(99).String() = %q", s)
	}
	e := &Error{Op: "set", Code: CodeTooLarge, Message: "value is 3 MiB"}
	if e.Error() != "cachekit: set: value is 3 MiB" {
		t.Errorf("Error() = %q", e.Error())
	}
	if got := ErrUnavailable.Error(); got != "cachekit: "+CodeUnavailable.String() {
		t.Errorf("ErrUnavailable.Error() = %q", got)
	}
	// A specific error is not a sentinel for another specific error.
	if errors.Is(e, &Error{Op: "set", Code: CodeTooLarge, Message: "other"}) {
		t.Error("two *Error with messages compare equal by code")
	}
}

// ---- opening

func absentSocket(t *testing.T) string {
	return filepath.Join(t.TempDir(), "no-daemon-here.sock")
}

func TestOpenWithoutADaemonIsUnavailableWithAHelpfulMessage(t *testing.T) {
	sock := absentSocket(t)
	c, err := Open(Options{Socket: sock})
	if c != nil {
		t.Fatal("Open returned a client with an error")
	}
	wantErr(t, err, ErrUnavailable, "cachekitd is not running at ", sock, "start it with `cachekitd")
	if !strings.HasPrefix(err.Error(), "cachekit: open: cachekitd is not running") {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestLazyOpenWithoutADaemonMissesAndWritesAreUnavailable(t *testing.T) {
	c, err := Open(Options{Socket: absentSocket(t), Lazy: true})
	if err != nil {
		t.Fatalf("lazy Open: %v", err)
	}
	defer c.Close()
	wantMiss(t, c, "k")
	wantErr(t, c.Set(b("k"), b("v"), SetOptions{}), ErrUnavailable, "cachekitd is not running")
	_, err = c.Delete(b("k"))
	wantErr(t, err, ErrUnavailable)
	wantErr(t, c.Invalidate("t"), ErrUnavailable)
	wantErr(t, c.Clear(), ErrUnavailable)
	_, err = c.Ping()
	wantErr(t, err, ErrUnavailable)
	_, err = c.Stats()
	wantErr(t, err, ErrUnavailable)
	vals, err := c.GetMany(b("a"), b("b"))
	if err != nil || len(vals) != 2 || vals[0] != nil || vals[1] != nil {
		t.Fatalf("GetMany without a daemon = %v, %v; want two misses", vals, err)
	}
}

func TestOpenChecksItsOptions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     Options
		sentinel error
		msg      string
	}{
		{"namespace of 128 bytes", Options{Namespace: strings.Repeat("n", 128)}, ErrTooLarge, "max_namespace_bytes"},
		{"namespace not UTF-8", Options{Namespace: "\xff\xfe"}, ErrInvalidArgument, "UTF-8"},
		{"NUL in the namespace", Options{Namespace: "a\x00b"}, ErrInvalidArgument, "Namespace contains a NUL byte"},
		{"NUL in the socket path", Options{Socket: "/tmp/x\x00y"}, ErrInvalidArgument, "Socket contains a NUL byte"},
		{"bad instance name", Options{Socket: "", Instance: "bad/instance"}, ErrInvalidArgument, "instance name"},
		{"bad redis URL", Options{RedisURL: "not a url"}, ErrInvalidArgument, "redis_url"},
		{"negative timeout", Options{RequestTimeout: -time.Second}, ErrInvalidArgument, "RequestTimeout is negative"},
		{"timeout over 49 days", Options{ConnectTimeout: 50 * 24 * time.Hour}, ErrInvalidArgument, "ConnectTimeout is too long"},
		{"negative pool", Options{PoolSize: -1}, ErrInvalidArgument, "PoolSize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			if opts.Socket == "" && opts.Instance == "" {
				opts.Socket = testSocket
			}
			c, err := Open(opts)
			if c != nil {
				c.Close()
				t.Fatal("Open succeeded")
			}
			wantErr(t, err, tc.sentinel, tc.msg)
		})
	}
	// Every option set to something valid.
	c, err := Open(Options{Socket: testSocket, Namespace: "opts", ClientName: "go-test", PoolSize: 2,
		ConnectTimeout: 1500 * time.Millisecond, RequestTimeout: 3 * time.Second, NoRedisFallback: true,
		RedisTimeout: time.Second})
	if err != nil {
		t.Fatalf("Open with every option: %v", err)
	}
	c.Close()
	// The zero Options: the socket comes from CACHEKIT_SOCKET (set by TestMain).
	c, err = Open(Options{})
	if err != nil {
		t.Fatalf("Open(Options{}) with CACHEKIT_SOCKET set: %v", err)
	}
	c.Close()
}

// ---- get and set

func TestSetThenGetWithItsMetadata(t *testing.T) {
	c := open(t, "go-setget")
	before := uint64(time.Now().UnixMilli())
	mustSet(t, c, "greeting", "hello, world", SetOptions{TTL: time.Minute, Grace: 5 * time.Second, Tags: []string{"demo/greetings"}})
	after := uint64(time.Now().UnixMilli())
	wantHit(t, c, "greeting", "hello, world")
	v, ok, err := c.GetInfo(b("greeting"))
	if err != nil || !ok {
		t.Fatalf("GetInfo = %v, %v", ok, err)
	}
	if string(v.Bytes) != "hello, world" || v.Stale || v.Source != SourceSegment {
		t.Fatalf("GetInfo = %+v; want a fresh hit from the segment", v)
	}
	if v.CreatedMs+1000 < before || v.CreatedMs > after+1000 {
		t.Errorf("CreatedMs %d outside [%d, %d] (± 1 s)", v.CreatedMs, before, after)
	}
	if v.ExpiresMs != v.CreatedMs+60000 || v.GraceUntilMs != v.ExpiresMs+5000 {
		t.Errorf("created %d, expires %d, grace until %d; want +60 s and +5 s", v.CreatedMs, v.ExpiresMs, v.GraceUntilMs)
	}
	if !v.Created().Equal(time.UnixMilli(int64(v.CreatedMs))) || v.Expires().Sub(v.Created()) != time.Minute ||
		v.GraceUntil().Sub(v.Expires()) != 5*time.Second {
		t.Errorf("time helpers: %v %v %v", v.Created(), v.Expires(), v.GraceUntil())
	}
	if v.Source.String() != "segment" || SourceDaemon.String() != "daemon" {
		t.Errorf("Source strings: %v %v", v.Source, SourceDaemon)
	}

	// No TTL: never expires.
	mustSet(t, c, "forever", "x", SetOptions{})
	v, ok, err = c.GetInfo(b("forever"))
	if err != nil || !ok || v.ExpiresMs != 0 || v.GraceUntilMs != 0 || !v.Expires().IsZero() || !v.GraceUntil().IsZero() {
		t.Fatalf("GetInfo(forever) = %+v, %v, %v", v, ok, err)
	}
	// A TTL without grace: servable until it expires.
	mustSet(t, c, "no-grace", "x", SetOptions{TTL: time.Minute})
	v, ok, err = c.GetInfo(b("no-grace"))
	if err != nil || !ok || v.ExpiresMs == 0 || v.GraceUntilMs != v.ExpiresMs {
		t.Fatalf("GetInfo(no-grace) = %+v, %v, %v; want GraceUntilMs == ExpiresMs", v, ok, err)
	}
	// A TTL under a millisecond is rounded up, never taken as "forever".
	mustSet(t, c, "brief", "x", SetOptions{TTL: time.Nanosecond})
	if v, ok, _ := c.GetInfo(b("brief")); ok && v.ExpiresMs == 0 {
		t.Fatal("a TTL of 1 ns was stored as no TTL")
	}
}

func TestMissesEmptyValuesAndBinaryKeys(t *testing.T) {
	c := open(t, "go-binary")
	wantMiss(t, c, "never-set")
	if v, ok, err := c.GetInfo(b("never-set")); ok || err != nil || v.Bytes != nil {
		t.Fatalf("GetInfo of a miss = %+v, %v, %v", v, ok, err)
	}

	key := []byte{'a', 0, 'b', 0xFF}
	val := []byte{0, 1, 2, 0, 0xFE}
	if err := c.Set(key, val, SetOptions{}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := c.Get(key)
	if err != nil || !ok || !bytes.Equal(got, val) {
		t.Fatalf("binary Get = %v, %v, %v", got, ok, err)
	}
	if _, ok, _ := c.Get(key[:3]); ok {
		t.Fatal("a key sharing a prefix hit")
	}

	// The empty value: a hit with a non-nil, empty slice.
	if err := c.Set(b("empty"), nil, SetOptions{}); err != nil {
		t.Fatal(err)
	}
	got, ok, err = c.Get(b("empty"))
	if err != nil || !ok || got == nil || len(got) != 0 {
		t.Fatalf("Get(empty value) = %#v, %v, %v", got, ok, err)
	}
	v, ok, err := c.GetInto(b("empty"), nil)
	if err != nil || !ok || v.Bytes == nil || len(v.Bytes) != 0 {
		t.Fatalf("GetInto(empty value, nil) = %#v, %v, %v", v.Bytes, ok, err)
	}
	// The empty key.
	mustSet(t, c, "", "for the empty key", SetOptions{})
	wantHit(t, c, "", "for the empty key")
	if _, err := c.Delete(nil); err != nil {
		t.Fatal(err)
	}
	wantMiss(t, c, "")
}

func pattern(n int, seed byte) []byte {
	v := make([]byte, n)
	x := uint32(seed) + 1
	for i := range v {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		v[i] = byte(x)
	}
	return v
}

func TestLargeValuesGrowTheBuffers(t *testing.T) {
	c := open(t, "go-large")
	big := pattern(60000, 1) // incompressible, over the 4 KiB scratch, under the 64 KiB limit
	if err := c.Set(b("big"), big, SetOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // the scratch grows once, then is reused
		got, ok, err := c.Get(b("big"))
		if err != nil || !ok || !bytes.Equal(got, big) {
			t.Fatalf("Get(big) #%d: %d bytes, %v, %v", i, len(got), ok, err)
		}
	}
	// GetInto a buffer too small: a new slice of the right size.
	small := make([]byte, 10)
	v, ok, err := c.GetInto(b("big"), small)
	if err != nil || !ok || !bytes.Equal(v.Bytes, big) {
		t.Fatalf("GetInto(small buffer): %d bytes, %v, %v", len(v.Bytes), ok, err)
	}
	// GetInto a buffer large enough: the bytes are in it.
	roomy := make([]byte, 0, 70000)
	v, ok, err = c.GetInto(b("big"), roomy)
	if err != nil || !ok || !bytes.Equal(v.Bytes, big) || &v.Bytes[0] != &roomy[:1][0] {
		t.Fatalf("GetInto(roomy buffer): %d bytes, %v, %v, aliases: %v", len(v.Bytes), ok, err, &v.Bytes[0] == &roomy[:1][0])
	}
	// Compressible and large: stored compressed, read back whole.
	text := bytes.Repeat([]byte("cachekit "), 7000)
	if err := c.Set(b("text"), text, SetOptions{}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := c.Get(b("text"))
	if err != nil || !ok || !bytes.Equal(got, text) {
		t.Fatalf("Get(text): %d bytes, %v, %v", len(got), ok, err)
	}
}

func TestAHitAllocatesOnlyItsResult(t *testing.T) {
	c := open(t, "go-allocs")
	val := pattern(100, 2)
	if err := c.Set(b("k"), val, SetOptions{}); err != nil {
		t.Fatal(err)
	}
	key, buf := b("k"), make([]byte, 0, 128)
	if n := testing.AllocsPerRun(2000, func() {
		if _, ok, err := c.GetInto(key, buf); !ok || err != nil {
			panic("GetInto missed")
		}
	}); n != 0 {
		t.Errorf("GetInto of a hit allocates %v times; want 0", n)
	}
	if n := testing.AllocsPerRun(2000, func() {
		if _, ok, err := c.Get(key); !ok || err != nil {
			panic("Get missed")
		}
	}); n > 1 {
		t.Errorf("Get of a hit allocates %v times; want 1 (the result)", n)
	}
}

func TestOverwriteAndDelete(t *testing.T) {
	c := open(t, "go-delete")
	mustSet(t, c, "k", "one", SetOptions{})
	mustSet(t, c, "k", "two", SetOptions{})
	wantHit(t, c, "k", "two")
	if was, err := c.Delete(b("k")); err != nil || !was {
		t.Fatalf("Delete = %v, %v; want true", was, err)
	}
	if was, err := c.Delete(b("k")); err != nil || was {
		t.Fatalf("second Delete = %v, %v; want false", was, err)
	}
	wantMiss(t, c, "k")
}

func TestStaleHitsAreHitsMarkedStaleThenMiss(t *testing.T) {
	c := open(t, "go-stale")
	mustSet(t, c, "swr", "old", SetOptions{TTL: 100 * time.Millisecond, Grace: time.Minute})
	mustSet(t, c, "gone", "x", SetOptions{TTL: 50 * time.Millisecond, Grace: 50 * time.Millisecond})
	var v Value
	eventually(t, "swr turns stale", func() bool {
		var ok bool
		var err error
		v, ok, err = c.GetInfo(b("swr"))
		if err != nil || !ok {
			t.Fatalf("GetInfo(swr) within grace = %v, %v; want a hit", ok, err)
		}
		return v.Stale
	})
	if string(v.Bytes) != "old" || v.ExpiresMs > uint64(time.Now().UnixMilli()) || v.GraceUntilMs != v.ExpiresMs+60000 {
		t.Fatalf("stale hit = %+v", v)
	}
	// Get serves it too (the plain API does not hide stale values).
	wantHit(t, c, "swr", "old")
	eventually(t, "gone misses after its grace", func() bool {
		_, ok := get(t, c, "gone")
		return !ok
	})
}

// ---- invalidation, namespaces, clear

func TestInvalidateIsHierarchicalUnlessExact(t *testing.T) {
	c := open(t, "go-invalidate")
	for key, tag := range map[string]string{"p1": "posts/1", "p1c": "posts/1/comments", "p10": "posts/10",
		"p": "posts", "u1": "users/1", "u1x": "users/1/x"} {
		mustSet(t, c, key, "v", SetOptions{Tags: []string{tag}})
	}
	if err := c.Invalidate("posts/1"); err != nil {
		t.Fatal(err)
	}
	wantMiss(t, c, "p1")
	wantMiss(t, c, "p1c")
	wantHit(t, c, "p10", "v")
	wantHit(t, c, "p", "v")
	if err := c.InvalidateExact("users/1"); err != nil {
		t.Fatal(err)
	}
	wantMiss(t, c, "u1")
	wantHit(t, c, "u1x", "v")
	if err := c.Invalidate("posts", "users"); err != nil {
		t.Fatal(err)
	}
	wantMiss(t, c, "p10")
	wantMiss(t, c, "u1x")
	if err := c.Invalidate(); err != nil {
		t.Fatalf("Invalidate() with no tags: %v", err)
	}
	// The daemon's max_tags holds for invalidations too (40 tags also take the wrapper's
	// heap-allocated tag array, past its 16 on the stack).
	var tags []string
	for i := 0; i < 40; i++ {
		tags = append(tags, fmt.Sprintf("many/%d", i))
	}
	wantErr(t, c.Invalidate(tags...), ErrTooLarge, "40 tags", "max_tags = 8")
	if err := c.Invalidate(tags[:8]...); err != nil {
		t.Fatalf("Invalidate of 8 tags: %v", err)
	}
}

func TestNamespacesAreSeparateAndClearClearsOne(t *testing.T) {
	c := open(t, "go-ns")
	other, err := c.WithNamespace("go-ns-other")
	if err != nil {
		t.Fatal(err)
	}
	third := open(t, "go-ns-other") // the same namespace through another connection
	mustSet(t, c, "same", "mine", SetOptions{})
	mustSet(t, other, "same", "theirs", SetOptions{})
	wantHit(t, c, "same", "mine")
	wantHit(t, other, "same", "theirs")
	wantHit(t, third, "same", "theirs")
	if err := other.Clear(); err != nil {
		t.Fatal(err)
	}
	wantMiss(t, other, "same")
	wantMiss(t, third, "same")
	wantHit(t, c, "same", "mine")
	if _, err := c.WithNamespace(""); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("WithNamespace(\"\") = %v", err)
	}
	if _, err := c.WithNamespace("a\x00"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("WithNamespace with a NUL = %v", err)
	}
	// Either handle may be closed first: close the parent, the child keeps working.
	c.Close()
	mustSet(t, other, "after", "parent closed", SetOptions{})
	wantHit(t, other, "after", "parent closed")
	other.Close()
}

// ---- get many, stats, ping

func TestGetManyAnswersEachKeyInOrder(t *testing.T) {
	c := open(t, "go-many")
	mustSet(t, c, "m1", "first", SetOptions{TTL: time.Minute})
	mustSet(t, c, "m3", "third", SetOptions{})
	mustSet(t, c, "m4", "", SetOptions{})
	vals, err := c.GetMany(b("m1"), b("m2"), b("m3"), b("m4"), b("m1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) != 5 || vals[1] != nil || vals[0] == nil || vals[2] == nil || vals[3] == nil || vals[4] == nil {
		t.Fatalf("GetMany = %v", vals)
	}
	if string(vals[0].Bytes) != "first" || vals[0].ExpiresMs == 0 || vals[0].Stale || string(vals[2].Bytes) != "third" ||
		vals[3].Bytes == nil || len(vals[3].Bytes) != 0 || string(vals[4].Bytes) != "first" {
		t.Fatalf("GetMany values: %q %q %q %q", vals[0].Bytes, vals[2].Bytes, vals[3].Bytes, vals[4].Bytes)
	}
	// The values share one buffer but cannot overwrite each other.
	vals[0].Bytes = append(vals[0].Bytes, "!!!"...)
	if string(vals[2].Bytes) != "third" {
		t.Fatal("appending to one value changed the next")
	}
	if vals, err := c.GetMany(); err != nil || len(vals) != 0 {
		t.Fatalf("GetMany() = %v, %v", vals, err)
	}
	if _, err := c.GetMany(b("ok"), make([]byte, 4097)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("GetMany with a key too large = %v", err)
	}
}

func TestStatsAndPing(t *testing.T) {
	c := open(t, "go-stats")
	mustSet(t, c, "st", "v", SetOptions{})
	wantHit(t, c, "st", "v")
	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	var daemon, client, segment int
	for name := range st {
		switch {
		case strings.HasPrefix(name, "daemon."):
			daemon++
		case strings.HasPrefix(name, "client."):
			client++
		case strings.HasPrefix(name, "segment."):
			segment++
		}
	}
	if daemon == 0 || client == 0 || segment == 0 {
		t.Fatalf("counters: %d daemon, %d client, %d segment: %v", daemon, client, segment, st)
	}
	if st["client.segment_hits"] < 1 {
		t.Errorf("client.segment_hits = %d after a hit", st["client.segment_hits"])
	}
	p, err := c.Ping()
	if err != nil || p.Epoch == 0 || p.RTT > 10*time.Second {
		t.Fatalf("Ping = %+v, %v", p, err)
	}
}

// ---- limits and bad arguments

func TestKeysValuesAndTagsOverTheLimits(t *testing.T) {
	c := open(t, "go-limits")
	key := bytes.Repeat(b("k"), 4097)
	wantErr(t, c.Set(key, b("v"), SetOptions{}), ErrTooLarge, "max_key_bytes = 4096")
	_, _, err := c.Get(key)
	wantErr(t, err, ErrTooLarge, "max_key_bytes")
	_, err = c.Delete(key)
	wantErr(t, err, ErrTooLarge)

	// The daemon runs with --max-value-bytes 64KiB; the pattern does not compress.
	wantErr(t, c.Set(b("huge"), pattern(100*1024, 3), SetOptions{}), ErrTooLarge, "max_value_bytes")
	wantMiss(t, c, "huge")

	nine := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"}
	wantErr(t, c.Set(b("t"), b("v"), SetOptions{Tags: nine}), ErrTooLarge, "max_tags = 8")
	long := strings.Repeat("t", 1025)
	wantErr(t, c.Set(b("t"), b("v"), SetOptions{Tags: []string{long}}), ErrTooLarge)
	wantErr(t, c.Invalidate(long), ErrTooLarge)
}

func TestBadTagsAndDurationsAreInvalidArguments(t *testing.T) {
	c := open(t, "go-badtags")
	set := func(tags ...string) error { return c.Set(b("t"), b("v"), SetOptions{Tags: tags}) }
	wantErr(t, set("a//b"), ErrInvalidArgument, "empty segment")
	wantErr(t, c.Invalidate("a//b"), ErrInvalidArgument, "empty segment")
	wantErr(t, set("a/b/c/d/e/f/g/h/i"), ErrInvalidArgument, "segments")
	wantErr(t, set("ok", "\xc3\x28"), ErrInvalidArgument, "tags[1]", "UTF-8")
	wantErr(t, set("ok", "a\x00b"), ErrInvalidArgument, "tags[1] contains a NUL byte")
	wantErr(t, c.InvalidateExact("a\x00b"), ErrInvalidArgument, "tags[0] contains a NUL byte")
	wantErr(t, c.Set(b("t"), b("v"), SetOptions{TTL: -time.Second}), ErrInvalidArgument, "TTL is negative")
	wantErr(t, c.Set(b("t"), b("v"), SetOptions{Grace: -1}), ErrInvalidArgument, "Grace is negative")
	wantMiss(t, c, "t") // nothing was stored
}

// ---- closing

func TestAClosedClientReturnsErrClosedEverywhere(t *testing.T) {
	c := open(t, "go-closed")
	mustSet(t, c, "k", "v", SetOptions{})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	for _, cl := range []*Client{c, nil} {
		_, _, err := cl.Get(b("k"))
		check := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, ErrClosed) {
				t.Errorf("%s on a closed client (%p) = %v; want ErrClosed", what, cl, err)
			}
		}
		check("Get", err)
		_, _, err = cl.GetInfo(b("k"))
		check("GetInfo", err)
		_, _, err = cl.GetInto(b("k"), nil)
		check("GetInto", err)
		_, err = cl.GetMany(b("k"))
		check("GetMany", err)
		check("Set", cl.Set(b("k"), b("v"), SetOptions{}))
		_, err = cl.Delete(b("k"))
		check("Delete", err)
		check("Invalidate", cl.Invalidate("t"))
		check("InvalidateExact", cl.InvalidateExact("t"))
		check("Clear", cl.Clear())
		_, err = cl.Ping()
		check("Ping", err)
		_, err = cl.Stats()
		check("Stats", err)
		_, err = cl.WithNamespace("x")
		check("WithNamespace", err)
		if err := cl.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	}
}

func TestCloseWaitsForCallsInFlight(t *testing.T) {
	c, err := Open(Options{Socket: testSocket, Namespace: "go-close-race"})
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, c, "k", "v", SetOptions{})
	const workers = 8
	errs := make(chan error, workers)
	started := make(chan struct{}, workers)
	for w := 0; w < workers; w++ {
		go func(w int) {
			started <- struct{}{}
			for i := 0; ; i++ {
				var err error
				switch i % 3 {
				case 0:
					_, _, err = c.Get(b("k"))
				case 1:
					err = c.Set(b(fmt.Sprint("w", w)), b("v"), SetOptions{})
				case 2:
					_, err = c.GetMany(b("k"), b("absent"))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	for w := 0; w < workers; w++ {
		<-started
	}
	time.Sleep(50 * time.Millisecond)
	c.Close()
	for w := 0; w < workers; w++ {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrClosed) {
				t.Errorf("a call racing Close failed with %v; want ErrClosed", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a goroutine did not see ErrClosed within 20 s")
		}
	}
}

func TestTheFinalizerClosesAnUnreachableClient(t *testing.T) {
	before := finalized.Load()
	func() {
		for i := 0; i < 3; i++ {
			c, err := Open(Options{Socket: testSocket, Namespace: "go-finalizer"})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Set(b("k"), b("v"), SetOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}()
	eventually(t, "the finalizer closes 3 dropped clients", func() bool {
		runtime.GC()
		return finalized.Load() >= before+3
	})
	// A client closed explicitly is not closed again by its finalizer.
	c, _ := Open(Options{Socket: testSocket, Namespace: "go-finalizer"})
	c.Close()
	n := finalized.Load()
	c = nil
	for i := 0; i < 3; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if finalized.Load() != n {
		t.Fatal("the finalizer ran on a client closed with Close")
	}
}

func TestOpenWithAnAbsentDaemonDirectory(t *testing.T) {
	_, err := Open(Options{Socket: filepath.Join(t.TempDir(), "missing-dir", "x.sock")})
	wantErr(t, err, ErrUnavailable)
}
