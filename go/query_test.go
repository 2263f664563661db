package cachekit

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Query and fill leases against the real cachekitd, across goroutines and processes. The
// helper processes are this test binary again (TestQueryHelperProcess), as in procs_test.go.

const queryHelperEnv = "CACHEKIT_GO_QUERY_HELPER"

const queryNS = "go-query"

func queryHelper(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestQueryHelperProcess$", "--"}, args...)...)
	// helperEnv makes TestMain use the parent's daemon (CACHEKIT_SOCKET) instead of its own.
	cmd.Env = append(os.Environ(), helperEnv+"=1", queryHelperEnv+"=1")
	return cmd
}

// uniqueKey is a key no earlier run or test used.
func uniqueKey(name string) string {
	return fmt.Sprintf("%s-%d-%d", name, os.Getpid(), time.Now().UnixNano())
}

// appendLine appends one line to path with O_APPEND: the count of computations, kept outside
// the cache and shared by every process.
func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(line + "\n")
	return err
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// queryAll runs n goroutines that query key at once, computing by appending to log; returns
// the first error.
func queryAll(c *Client, n int, key, log string) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.Query(context.Background(), []byte(key), QueryOptions{Set: SetOptions{TTL: time.Minute}},
				func() ([]byte, error) {
					if err := appendLine(log, strconv.Itoa(os.Getpid())); err != nil {
						return nil, err
					}
					time.Sleep(300 * time.Millisecond)
					return []byte("computed once"), nil
				})
			if err == nil && string(v.Bytes) != "computed once" {
				err = fmt.Errorf("Query = %q", v.Bytes)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func TestQueryComputesOncePerHost(t *testing.T) {
	const procs, goroutines = 4, 8
	c := open(t, queryNS)
	key, start := uniqueKey("once"), uniqueKey("start")
	log := filepath.Join(t.TempDir(), "computed")
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for i := 0; i < procs; i++ {
		cmd := queryHelper(t, "query", key, start, log, strconv.Itoa(goroutines))
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	// Every process is up and polling for the start key: go, all at once (this one too).
	eventually(t, "every helper process ready", func() bool {
		v, ok := get(t, c, start+"/ready")
		return ok && v == strconv.Itoa(procs)
	})
	before, _ := c.Stats()
	mustSet(t, c, start, "go", SetOptions{TTL: time.Minute})
	if err := queryAll(c, goroutines, key, log); err != nil {
		t.Fatal(err)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper %d: %v\n%s", i, err, outs[i])
		}
	}
	if n := countLines(t, log); n != 1 {
		t.Fatalf("%d processes × %d goroutines (and %d here): computed %d times; want exactly once", procs, goroutines, goroutines, n)
	}
	after, _ := c.Stats()
	t.Logf("%d callers waited for the fill", after["daemon.leases_waited"]-before["daemon.leases_waited"])
	wantHit(t, c, key, "computed once")
}

var errBoom = errors.New("boom: the database is down")

func TestQueryComputeErrorGoesToItsCallerOnly(t *testing.T) {
	c := open(t, queryNS)
	key := uniqueKey("fails")
	started := make(chan struct{})
	var holderErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, holderErr = c.Query(context.Background(), []byte(key), QueryOptions{}, func() ([]byte, error) {
			close(started)
			time.Sleep(300 * time.Millisecond)
			return nil, errBoom
		})
	}()
	<-started
	var good atomic.Int32
	errs := make(chan error, 7)
	for i := 0; i < 7; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.Query(context.Background(), []byte(key), QueryOptions{}, func() ([]byte, error) {
				good.Add(1)
				time.Sleep(100 * time.Millisecond)
				return []byte("second try"), nil
			})
			if err == nil && string(v.Bytes) != "second try" {
				err = fmt.Errorf("Query = %q", v.Bytes)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if !errors.Is(holderErr, errBoom) {
		t.Fatalf("the failing holder got %v; want its own error", holderErr)
	}
	for err := range errs {
		t.Fatalf("a waiter got %v; want the next holder's value", err)
	}
	if n := good.Load(); n != 1 {
		t.Fatalf("after the failure the value was computed %d times; want 1", n)
	}
}

func TestQueryStaleHasOneRefresher(t *testing.T) {
	c := open(t, queryNS)
	key := uniqueKey("stale")
	mustSet(t, c, key, "old", SetOptions{TTL: 50 * time.Millisecond, Grace: time.Minute})
	time.Sleep(120 * time.Millisecond)
	var refreshes atomic.Int32
	results := make([]Value, 8)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			v, err := c.Query(context.Background(), []byte(key), QueryOptions{Set: SetOptions{TTL: time.Minute}},
				func() ([]byte, error) {
					refreshes.Add(1)
					time.Sleep(300 * time.Millisecond)
					return []byte("new"), nil
				})
			if err != nil {
				t.Error(err)
			}
			results[i] = v
		}(i)
	}
	wg.Wait()
	if n := refreshes.Load(); n != 1 {
		t.Fatalf("%d refreshes; want exactly 1", n)
	}
	stale := 0
	for _, v := range results {
		switch {
		case string(v.Bytes) == "old" && v.Stale:
			stale++
		case string(v.Bytes) == "new" && v.Source == SourceComputed:
		default:
			t.Fatalf("a caller got %q (stale %v, source %v)", v.Bytes, v.Stale, v.Source)
		}
	}
	if stale != 7 {
		t.Fatalf("%d callers got the stale value; want 7", stale)
	}
	v, err := c.Query(context.Background(), []byte(key), QueryOptions{}, func() ([]byte, error) {
		return nil, errors.New("must not compute")
	})
	if err != nil || string(v.Bytes) != "new" || v.Stale || v.Source != SourceSegment {
		t.Fatalf("after the refresh: %q stale=%v source=%v err=%v", v.Bytes, v.Stale, v.Source, err)
	}
}

func TestQueryWaitIsBoundedByTheContext(t *testing.T) {
	c := open(t, queryNS)
	key := uniqueKey("held")
	_, holder, err := c.Lease(context.Background(), []byte(key), LeaseOptions{})
	if err != nil || holder == nil {
		t.Fatalf("Lease = %v, %v; want the lease", holder, err)
	}
	defer holder.Release()
	never := func() ([]byte, error) { return nil, errors.New("must not compute") }

	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		t0 := time.Now()
		_, err := c.Query(ctx, []byte(key), QueryOptions{}, never)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Query = %v; want context.DeadlineExceeded", err)
		}
		if d := time.Since(t0); d < 250*time.Millisecond || d > 3*time.Second {
			t.Fatalf("returned after %v; want about 300 ms", d)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		t0 := time.Now()
		_, err := c.Query(ctx, []byte(key), QueryOptions{}, never)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Query = %v; want context.Canceled", err)
		}
		if d := time.Since(t0); d > 3*time.Second {
			t.Fatalf("returned after %v; want about 200 ms", d)
		}
	})
	t.Run("wait timeout, error", func(t *testing.T) {
		_, err := c.Query(context.Background(), []byte(key), QueryOptions{
			Lease: LeaseOptions{WaitTimeout: 200 * time.Millisecond}, ErrorOnTimeout: true,
		}, never)
		if !errors.Is(err, ErrLeaseBusy) {
			t.Fatalf("Query = %v; want ErrLeaseBusy", err)
		}
	})
	t.Run("wait timeout, compute", func(t *testing.T) {
		v, err := c.Query(context.Background(), []byte(key), QueryOptions{
			Lease: LeaseOptions{WaitTimeout: 200 * time.Millisecond},
		}, func() ([]byte, error) { return []byte("mine"), nil })
		if err != nil || string(v.Bytes) != "mine" || v.Source != SourceComputed {
			t.Fatalf("Query = %q, %v", v.Bytes, err)
		}
	})
}

func TestLeaseFillAndRelease(t *testing.T) {
	c := open(t, queryNS)
	key := []byte(uniqueKey("two-step"))
	_, l, err := c.Lease(context.Background(), key, LeaseOptions{})
	if err != nil || l == nil {
		t.Fatalf("Lease = %v, %v", l, err)
	}
	// A waiter takes over a released lease.
	type reply struct {
		l   *Lease
		err error
	}
	next := make(chan reply, 1)
	go func() {
		_, l, err := c.Lease(context.Background(), key, LeaseOptions{})
		next <- reply{l, err}
	}()
	time.Sleep(100 * time.Millisecond)
	l.Release()
	l.Release() // a no-op
	r := <-next
	if r.err != nil || r.l == nil {
		t.Fatalf("the waiter got %v, %v; want the lease", r.l, r.err)
	}
	stored, err := r.l.Fill([]byte("filled"), SetOptions{TTL: time.Minute, Tags: []string{"q/1"}})
	if err != nil || !stored {
		t.Fatalf("Fill = %v, %v", stored, err)
	}
	if _, err := r.l.Fill([]byte("again"), SetOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Fill = %v; want ErrClosed", err)
	}
	v, l2, err := c.Lease(context.Background(), key, LeaseOptions{})
	if err != nil || l2 != nil || string(v.Bytes) != "filled" {
		t.Fatalf("Lease after the fill = %q, %v, %v; want the value", v.Bytes, l2, err)
	}
	// A fill across an invalidation of its tag is not stored as fresh.
	key2 := []byte(uniqueKey("invalidated"))
	_, l, _ = c.Lease(context.Background(), key2, LeaseOptions{})
	if err := c.Invalidate("q/2"); err != nil {
		t.Fatal(err)
	}
	if stored, err := l.Fill([]byte("old row"), SetOptions{Tags: []string{"q/2"}}); err != nil || stored {
		t.Fatalf("Fill across an invalidation = %v, %v; want not stored", stored, err)
	}
	// A fresh value needs no refresh; a stale one gets exactly one refresher.
	if lease, err := c.RefreshLease(key, LeaseOptions{}); err != nil || lease != nil {
		t.Fatalf("RefreshLease of a fresh value = %v, %v; want nil", lease, err)
	}
	key3 := []byte(uniqueKey("stale"))
	if err := c.Set(key3, []byte("old"), SetOptions{TTL: 20 * time.Millisecond, Grace: time.Minute}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if lease, err := c.RefreshLease(key3, LeaseOptions{}); err != nil || lease == nil {
		t.Fatalf("RefreshLease of a stale value = %v, %v", lease, err)
	} else {
		if again, err := c.RefreshLease(key3, LeaseOptions{}); err != nil || again != nil {
			t.Fatalf("a second RefreshLease = %v, %v; want nil (someone refreshes)", again, err)
		}
		lease.Release()
	}
}

func TestQueryKilledHolderHandsOver(t *testing.T) {
	c := open(t, queryNS)
	key := uniqueKey("killed")
	cmd := queryHelper(t, "hold", key)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "granted\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper said %q, %v; want granted", line, err)
	}
	killed := make(chan time.Time, 1)
	time.AfterFunc(200*time.Millisecond, func() {
		killed <- time.Now()
		cmd.Process.Kill() // SIGKILL
	})
	v, err := c.Query(context.Background(), []byte(key), QueryOptions{}, func() ([]byte, error) {
		return []byte("after the kill"), nil
	})
	handover := time.Since(<-killed)
	cmd.Wait()
	if err != nil || string(v.Bytes) != "after the kill" {
		t.Fatalf("Query = %q, %v", v.Bytes, err)
	}
	t.Logf("hand-over after kill -9: %v", handover)
	if handover > 2*time.Second {
		t.Fatalf("the lease passed on %v after its holder died; want at once", handover)
	}
}

// TestQueryHelperProcess is not a test: it is the child process of the tests above.
func TestQueryHelperProcess(t *testing.T) {
	if os.Getenv(queryHelperEnv) == "" {
		return
	}
	args := flag.Args()
	fail := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "query helper %v: "+format+"\n", append([]any{args}, a...)...)
		os.Exit(1)
	}
	c, err := Open(Options{Namespace: queryNS}) // the socket from CACHEKIT_SOCKET
	if err != nil {
		fail("Open: %v", err)
	}
	switch {
	case len(args) == 5 && args[0] == "query":
		key, start, log := args[1], args[2], args[3]
		n, _ := strconv.Atoi(args[4])
		if _, _, err := c.Incr([]byte(start+"/ready"), 1, IncrOptions{}); err != nil {
			fail("Incr: %v", err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, ok, _ := c.Get([]byte(start)); ok {
				break
			}
			if time.Now().After(deadline) {
				fail("no start signal within 20 s")
			}
			time.Sleep(time.Millisecond)
		}
		if err := queryAll(c, n, key, log); err != nil {
			fail("%v", err)
		}
	case len(args) == 2 && args[0] == "hold":
		_, l, err := c.Lease(context.Background(), []byte(args[1]), LeaseOptions{})
		if err != nil || l == nil {
			fail("Lease = %v, %v", l, err)
		}
		fmt.Println("granted")
		time.Sleep(time.Minute) // until killed
		fail("not killed within a minute")
	default:
		fail("usage: query KEY START LOG N | hold KEY")
	}
	c.Close()
	os.Exit(0)
}
