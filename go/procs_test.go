package cachekit

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Two processes on one daemon. The test binary runs itself again as a helper process
// (TestHelperProcess, selected with -test.run and switched on by helperEnv); the helper finds
// the daemon in CACHEKIT_SOCKET, which TestMain set in the parent and the child inherits.

const helperEnv = "CACHEKIT_GO_HELPER"

const procsNS = "go-procs"

// helper starts the test binary as a helper process running args.
func helper(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestHelperProcess$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	return cmd
}

// runHelper runs a helper process to the end and fails the test if it fails.
func runHelper(t *testing.T, args ...string) string {
	t.Helper()
	out, err := helper(t, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("helper %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestTwoProcesses(t *testing.T) {
	c := open(t, procsNS)

	t.Run("the child sets, the parent gets", func(t *testing.T) {
		runHelper(t, "set", "from-child", "hello from the child")
		wantHit(t, c, "from-child", "hello from the child")
	})

	t.Run("the parent sets, the child gets", func(t *testing.T) {
		mustSet(t, c, "from-parent", "hello from the parent", SetOptions{Tags: []string{"parent/1"}})
		runHelper(t, "get", "from-parent", "hello from the parent")
	})

	t.Run("the parent invalidates, the child misses", func(t *testing.T) {
		if err := c.Invalidate("parent"); err != nil {
			t.Fatal(err)
		}
		runHelper(t, "miss", "from-parent")
	})

	t.Run("ping-pong through the cache", func(t *testing.T) {
		// The child waits for ping/i and answers pong/i, 200 times; each side sees the other's
		// write as soon as the writer's Set returned.
		const rounds = 200
		cmd := helper(t, "pong", strconv.Itoa(rounds))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < rounds; i++ {
			mustSet(t, c, fmt.Sprintf("ping/%d", i), fmt.Sprintf("ping %d", i), SetOptions{TTL: time.Minute})
			eventually(t, fmt.Sprintf("pong/%d from the child", i), func() bool {
				v, ok := get(t, c, fmt.Sprintf("pong/%d", i))
				if ok && v != fmt.Sprintf("pong %d", i) {
					t.Fatalf("pong/%d = %q", i, v)
				}
				return ok
			})
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("pong helper: %v\n%s", err, out.String())
		}
	})

	t.Run("a reader never sees a torn value while the other process writes", func(t *testing.T) {
		// The child rewrites "shared" 300 times with 2000-byte values that check themselves;
		// the parent reads it meanwhile.
		cmd := helper(t, "writer", "300")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		reads, seen := 0, map[uint32]bool{}
		buf := make([]byte, 0, 4096)
		for {
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("writer helper: %v\n%s", err, out.String())
				}
				if reads == 0 {
					t.Fatal("no read while the child wrote")
				}
				t.Logf("%d reads, %d distinct versions seen", reads, len(seen))
				return
			default:
			}
			v, ok, err := c.GetInto(b("shared"), buf)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				n, good := checkVersioned(v.Bytes)
				if !good {
					t.Fatalf("torn or foreign value of %d bytes", len(v.Bytes))
				}
				seen[n] = true
				reads++
			}
		}
	})

	t.Run("processes racing incr lose no update; racing add, one stores", func(t *testing.T) {
		// 4 children incr "hits" 500 times each; then 8 children add one key at once.
		run := func(n int, args ...string) []string {
			outs := make([]string, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					out, err := helper(t, append(args, strconv.Itoa(i))...).CombinedOutput()
					outs[i], errs[i] = string(out), err
				}(i)
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("helper %v %d: %v\n%s", args, i, err, outs[i])
				}
			}
			return outs
		}
		run(4, "incr", "500")
		wantHit(t, c, "hits", "2000")
		stored := 0
		for _, out := range run(8, "add", "race-lock") {
			if strings.Contains(out, "stored") {
				stored++
			}
		}
		if stored != 1 {
			t.Fatalf("%d of 8 processes' adds stored; want exactly 1", stored)
		}
	})
}

// versioned is a 2000-byte value made of its version number repeated.
func versioned(n uint32) []byte {
	v := make([]byte, 2000)
	for i := 0; i < len(v); i += 4 {
		binary.LittleEndian.PutUint32(v[i:], n)
	}
	return v
}

func checkVersioned(v []byte) (uint32, bool) {
	if len(v) != 2000 {
		return 0, false
	}
	n := binary.LittleEndian.Uint32(v)
	return n, bytes.Equal(v, versioned(n))
}

// TestHelperProcess is not a test: it is the child process of TestTwoProcesses.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		return
	}
	args := flag.Args()
	fail := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "helper %v: "+format+"\n", append([]any{args}, a...)...)
		os.Exit(1)
	}
	c, err := Open(Options{Namespace: procsNS}) // the socket from CACHEKIT_SOCKET
	if err != nil {
		fail("Open: %v", err)
	}
	defer c.Close()
	if len(args) < 2 {
		fail("usage: set KEY VALUE | get KEY WANT | miss KEY | pong N | writer N | incr N | add KEY VALUE")
	}
	switch args[0] {
	case "set":
		if err := c.Set([]byte(args[1]), []byte(args[2]), SetOptions{}); err != nil {
			fail("%v", err)
		}
	case "get":
		v, ok, err := c.Get([]byte(args[1]))
		if err != nil || !ok || string(v) != args[2] {
			fail("Get = %q, %v, %v; want %q", v, ok, err, args[2])
		}
	case "miss":
		if v, ok, err := c.Get([]byte(args[1])); ok || err != nil {
			fail("Get = %q, %v, %v; want a miss", v, ok, err)
		}
	case "pong":
		n, _ := strconv.Atoi(args[1])
		deadline := time.Now().Add(30 * time.Second)
		for i := 0; i < n; i++ {
			for {
				v, ok, err := c.Get([]byte(fmt.Sprintf("ping/%d", i)))
				if err != nil {
					fail("Get: %v", err)
				}
				if ok {
					if string(v) != fmt.Sprintf("ping %d", i) {
						fail("ping/%d = %q", i, v)
					}
					break
				}
				if time.Now().After(deadline) {
					fail("no ping/%d within 30 s", i)
				}
				time.Sleep(time.Millisecond)
			}
			if err := c.Set([]byte(fmt.Sprintf("pong/%d", i)), []byte(fmt.Sprintf("pong %d", i)), SetOptions{TTL: time.Minute}); err != nil {
				fail("Set: %v", err)
			}
		}
	case "writer":
		n, _ := strconv.Atoi(args[1])
		for i := 0; i < n; i++ {
			if err := c.Set([]byte("shared"), versioned(uint32(i)), SetOptions{}); err != nil {
				fail("Set: %v", err)
			}
		}
	case "incr":
		n, _ := strconv.Atoi(args[1])
		for i := 0; i < n; i++ {
			if _, _, err := c.Incr([]byte("hits"), 1, IncrOptions{}); err != nil {
				fail("Incr: %v", err)
			}
		}
	case "add":
		ok, err := c.Add([]byte(args[1]), []byte(args[2]), SetOptions{TTL: time.Minute})
		if err != nil {
			fail("Add: %v", err)
		}
		if ok {
			fmt.Println("stored")
		}
	default:
		fail("unknown helper command %q", strings.Join(args, " "))
	}
	os.Exit(0)
}
