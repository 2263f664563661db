package cachekit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Many goroutines on one client; error messages that must stay with their own call while
// goroutines hop between threads; a daemon that dies and comes back.

func TestManyGoroutinesShareOneClient(t *testing.T) {
	c := open(t, "go-goroutines")
	hot := pattern(300, 9)
	if err := c.Set(b("hot"), hot, SetOptions{}); err != nil {
		t.Fatal(err)
	}
	const goroutines, rounds = 16, 300
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			buf := make([]byte, 0, 64)
			fail := func(format string, args ...any) {
				errs <- fmt.Errorf("goroutine %d: "+format, append([]any{g}, args...)...)
			}
			for i := 0; i < rounds; i++ {
				key := []byte(fmt.Sprintf("g%d-%d", g, i%10))
				val := []byte(fmt.Sprintf("value %d of goroutine %d", i, g))
				if err := c.Set(key, val, SetOptions{TTL: time.Minute, Tags: []string{fmt.Sprintf("g/%d", g)}}); err != nil {
					fail("Set: %v", err)
					return
				}
				v, ok, err := c.GetInto(key, buf)
				if err != nil || !ok || !bytes.Equal(v.Bytes, val) {
					fail("GetInto(%s) = %q, %v, %v; want %q", key, v.Bytes, ok, err, val)
					return
				}
				buf = v.Bytes[:0]
				got, ok, err := c.Get(b("hot"))
				if err != nil || !ok || !bytes.Equal(got, hot) {
					fail("Get(hot) = %d bytes, %v, %v", len(got), ok, err)
					return
				}
				if i%50 == 49 {
					if err := c.Invalidate(fmt.Sprintf("g/%d", g)); err != nil {
						fail("Invalidate: %v", err)
						return
					}
					if _, ok, _ := c.Get(key); ok {
						fail("%s hit after its tag was invalidated", key)
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st["client.segment_hits"] < goroutines*rounds {
		t.Errorf("client.segment_hits = %d; want at least %d", st["client.segment_hits"], goroutines*rounds)
	}
}

// The last error message is per OS thread in the C library, and goroutines move between
// threads: the binding reads it inside the failing C call (shim.c). Two kinds of failures on
// many goroutines at once must each come back with their own message.
func TestErrorMessagesStayWithTheirOwnCall(t *testing.T) {
	c := open(t, "go-messages")
	longKey := bytes.Repeat(b("k"), 5000)
	var wg sync.WaitGroup
	const goroutines = 64
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				var err error
				var want string
				if (g+i)%2 == 0 {
					err, want = c.Set(longKey, b("v"), SetOptions{}), "max_key_bytes"
				} else {
					err, want = c.Set(b("k"), b("v"), SetOptions{Tags: []string{"x//y"}}), "empty segment"
				}
				var e *Error
				if !errors.As(err, &e) || !strings.Contains(e.Message, want) {
					errs <- fmt.Errorf("goroutine %d: got %v; want a message with %q", g, err, want)
					return
				}
				runtime.Gosched()
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestADaemonThatDiesAndComesBack(t *testing.T) {
	bin := os.Getenv("CACHEKITD_BIN")
	if bin == "" {
		t.Skip("needs CACHEKITD_BIN to start a daemon of its own")
	}
	d, err := startDaemon(bin, "--heartbeat-ms", "20", "--heartbeat-timeout-ms", "200")
	if err != nil {
		t.Fatal(err)
	}
	defer d.stop()
	c, err := Open(Options{Socket: d.socket, Namespace: "go-restart", ConnectTimeout: 500 * time.Millisecond,
		RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustSet(t, c, "k", "before", SetOptions{})
	wantHit(t, c, "k", "before")

	d.kill() // SIGKILL: no goodbye
	// Writes fail with ErrUnavailable (or ErrTimeout); gets never fail: once the segment's
	// heartbeat is stale they miss.
	eventually(t, "a write fails with ErrUnavailable", func() bool {
		err := c.Set(b("k"), b("during"), SetOptions{})
		if err != nil && !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrTimeout) {
			t.Fatalf("Set with the daemon dead = %v", err)
		}
		return errors.Is(err, ErrUnavailable)
	})
	eventually(t, "gets miss once the heartbeat is stale", func() bool {
		_, ok := get(t, c, "k")
		return !ok
	})
	_, err = c.Ping()
	wantErr(t, err, ErrUnavailable)

	// The same client reconnects to the new daemon by itself.
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "writes work again after the restart", func() bool {
		return c.Set(b("k"), b("after"), SetOptions{}) == nil
	})
	eventually(t, "the new value hits", func() bool {
		v, ok := get(t, c, "k")
		return ok && v == "after"
	})
}
