package cachekit

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The atomic and management operations against the real daemon: each method's meaning, and
// their atomicity under goroutines (and processes: procs_test.go).

func TestAddAndReplaceStoreOnlyOnTheirCondition(t *testing.T) {
	c := open(t, "go-add")
	add := func(key, value string, opts SetOptions) bool {
		t.Helper()
		ok, err := c.Add(b(key), b(value), opts)
		if err != nil {
			t.Fatalf("Add(%q): %v", key, err)
		}
		return ok
	}
	if !add("k", "first", SetOptions{TTL: time.Minute, Tags: []string{"t/1"}}) {
		t.Fatal("Add of an absent key did not store")
	}
	if add("k", "second", SetOptions{}) {
		t.Fatal("Add of a present key stored")
	}
	wantHit(t, c, "k", "first")
	ok, err := c.Replace(b("absent"), b("x"), SetOptions{})
	if err != nil || ok {
		t.Fatalf("Replace of an absent key = %v, %v; want false, nil", ok, err)
	}
	wantMiss(t, c, "absent")
	if ok, err := c.Replace(b("k"), b("third"), SetOptions{}); err != nil || !ok {
		t.Fatalf("Replace of a present key = %v, %v; want true, nil", ok, err)
	}
	wantHit(t, c, "k", "third")
	// An expired entry, and an invalidated one, count as absent.
	if !add("short", "v", SetOptions{TTL: time.Millisecond}) {
		t.Fatal("Add(short) did not store")
	}
	eventually(t, "Add of an expired key stores", func() bool { return add("short", "again", SetOptions{}) })
	mustSet(t, c, "tagged", "v", SetOptions{Tags: []string{"t/2"}})
	if err := c.Invalidate("t/2"); err != nil {
		t.Fatal(err)
	}
	if !add("tagged", "new", SetOptions{}) {
		t.Fatal("Add of an invalidated key did not store")
	}
	wantHit(t, c, "tagged", "new")
	_, err = c.Add(b("k"), b("v"), SetOptions{TTL: -time.Second})
	wantErr(t, err, ErrInvalidArgument, "TTL is negative")
}

func TestCASStoresOnlyOverTheVersionRead(t *testing.T) {
	c := open(t, "go-cas")
	mustSet(t, c, "k", "v1", SetOptions{})
	v, ok, err := c.GetInfo(b("k"))
	if err != nil || !ok || v.Version == 0 {
		t.Fatalf("GetInfo = %+v, %v, %v; want a hit with a version", v, ok, err)
	}
	if ok, err := c.CAS(b("k"), b("v2"), v.Version, SetOptions{}); err != nil || !ok {
		t.Fatalf("CAS over the version read = %v, %v; want true", ok, err)
	}
	if ok, err := c.CAS(b("k"), b("v3"), v.Version, SetOptions{}); err != nil || ok {
		t.Fatalf("CAS over an old version = %v, %v; want false", ok, err)
	}
	if ok, err := c.CAS(b("k"), b("v3"), 0, SetOptions{}); err != nil || ok {
		t.Fatalf("CAS with version 0 = %v, %v; want false", ok, err)
	}
	wantHit(t, c, "k", "v2")
	v2, _, _ := c.GetInfo(b("k"))
	if v2.Version <= v.Version {
		t.Fatalf("version after CAS %d, before %d: want it to grow", v2.Version, v.Version)
	}
	if ok, err := c.CAS(b("absent"), b("x"), v2.Version, SetOptions{}); err != nil || ok {
		t.Fatalf("CAS of an absent key = %v, %v; want false", ok, err)
	}
	// CompareAndDelete: a lock released only by its holder.
	if ok, err := c.CompareAndDelete(b("k"), v.Version); err != nil || ok {
		t.Fatalf("CompareAndDelete with an old version = %v, %v; want false", ok, err)
	}
	wantHit(t, c, "k", "v2")
	if ok, err := c.CompareAndDelete(b("k"), v2.Version); err != nil || !ok {
		t.Fatalf("CompareAndDelete with the version read = %v, %v; want true", ok, err)
	}
	wantMiss(t, c, "k")
}

func TestIncrAndDecrCountAndRefuseNonIntegers(t *testing.T) {
	c := open(t, "go-incr")
	incr := func(key string, delta int64, opts IncrOptions) (int64, bool) {
		t.Helper()
		n, ok, err := c.Incr(b(key), delta, opts)
		if err != nil {
			t.Fatalf("Incr(%q, %d): %v", key, delta, err)
		}
		return n, ok
	}
	if n, ok := incr("c", 1, IncrOptions{}); !ok || n != 1 {
		t.Fatalf("Incr of a missing key = %d, %v; want 1 (created from 0)", n, ok)
	}
	if n, _ := incr("c", 10, IncrOptions{}); n != 11 {
		t.Fatalf("Incr 10 = %d; want 11", n)
	}
	if n, ok, err := c.Decr(b("c"), 20, IncrOptions{}); err != nil || !ok || n != -9 {
		t.Fatalf("Decr 20 = %d, %v, %v; want -9", n, ok, err)
	}
	v, ok, err := c.GetInfo(b("c"))
	if n, isInt := v.Int64(); err != nil || !ok || !v.Integer || !isInt || n != -9 || string(v.Bytes) != "-9" {
		t.Fatalf("GetInfo(c) = %q integer %v (Int64 %d, %v), %v, %v; want the counter -9", v.Bytes, v.Integer, n, isInt, ok, err)
	}
	if n, ok := incr("absent", 1, IncrOptions{NoCreate: true}); ok || n != 0 {
		t.Fatalf("Incr NoCreate of a missing key = %d, %v; want 0, false", n, ok)
	}
	wantMiss(t, c, "absent")
	if n, _ := incr("made", 1, IncrOptions{Initial: 100, TTL: time.Minute}); n != 101 {
		t.Fatalf("Incr with Initial 100 = %d; want 101", n)
	}
	if ttl, ok, err := c.TTL(b("made")); err != nil || !ok || ttl <= 50*time.Second || ttl > time.Minute {
		t.Fatalf("TTL of a created counter = %v, %v, %v; want about 1m", ttl, ok, err)
	}
	if n, _, _ := c.Decr(b("down"), 5, IncrOptions{Initial: 2}); n != -3 {
		t.Fatalf("Decr 5 of a missing key from 2 = %d; want -3", n)
	}
	// Any value that is an int64's decimal counts; SetInt64 writes a counter.
	mustSet(t, c, "plain", "41", SetOptions{})
	if n, _ := incr("plain", 1, IncrOptions{}); n != 42 {
		t.Fatalf("Incr of a value set as \"41\" = %d; want 42", n)
	}
	if err := c.SetInt64(b("set"), -7, SetOptions{}); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := c.GetInfo(b("set")); !v.Integer || string(v.Bytes) != "-7" {
		t.Fatalf("SetInt64 stored %q integer %v", v.Bytes, v.Integer)
	}
	if n, _ := incr("set", 8, IncrOptions{}); n != 1 {
		t.Fatalf("Incr 8 of -7 = %d", n)
	}
	// Not an integer, or an overflow: ErrInvalidArgument, and the value stays.
	for _, bad := range []string{"abc", "1.5", "+1", "007", " 1", ""} {
		mustSet(t, c, "bad", bad, SetOptions{})
		_, _, err := c.Incr(b("bad"), 1, IncrOptions{})
		wantErr(t, err, ErrInvalidArgument, "not an integer")
		wantHit(t, c, "bad", bad)
	}
	if err := c.SetInt64(b("max"), math.MaxInt64, SetOptions{}); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Incr(b("max"), 1, IncrOptions{})
	wantErr(t, err, ErrInvalidArgument, "overflow")
	wantHit(t, c, "max", "9223372036854775807")
	_, _, err = c.Decr(b("max"), math.MinInt64, IncrOptions{})
	wantErr(t, err, ErrInvalidArgument)
	_, _, err = c.Incr(b("c"), 1, IncrOptions{TTL: -time.Second})
	wantErr(t, err, ErrInvalidArgument, "TTL is negative")
}

func TestValueInt64ParsesOnlyTheCounterFormat(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "-42": -42, "9223372036854775807": math.MaxInt64, "-9223372036854775808": math.MinInt64} {
		if n, ok := (Value{Bytes: b(in)}).Int64(); !ok || n != want {
			t.Errorf("Int64(%q) = %d, %v; want %d", in, n, ok, want)
		}
	}
	for _, in := range []string{"", "-", "-0", "01", "+1", "1 ", "9223372036854775808", "-9223372036854775809", "99999999999999999999", "x"} {
		if n, ok := (Value{Bytes: b(in)}).Int64(); ok {
			t.Errorf("Int64(%q) = %d, true; want false", in, n)
		}
	}
}

func TestGetAndDeleteTakesTheValueOnce(t *testing.T) {
	c := open(t, "go-take")
	mustSet(t, c, "k", "v", SetOptions{TTL: time.Minute})
	v, ok, err := c.GetAndDelete(b("k"))
	if err != nil || !ok || string(v.Bytes) != "v" || v.ExpiresMs == 0 || v.Version == 0 {
		t.Fatalf("GetAndDelete = %+v, %v, %v; want v with its metadata", v, ok, err)
	}
	if v, ok, err := c.GetAndDelete(b("k")); err != nil || ok || v.Bytes != nil {
		t.Fatalf("second GetAndDelete = %+v, %v, %v; want a miss", v, ok, err)
	}
	wantMiss(t, c, "k")
	// Larger than the pooled buffer: fetched again in the same C call.
	big := pattern(40<<10, 3)
	if err := c.Set(b("big"), big, SetOptions{}); err != nil {
		t.Fatal(err)
	}
	v, ok, err = c.GetAndDelete(b("big"))
	if err != nil || !ok || !bytes.Equal(v.Bytes, big) {
		t.Fatalf("GetAndDelete(big) = %d bytes, %v, %v; want the %d bytes set", len(v.Bytes), ok, err, len(big))
	}
	wantMiss(t, c, "big")
	if err := c.SetInt64(b("n"), 5, SetOptions{}); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := c.GetAndDelete(b("n")); !v.Integer {
		t.Fatalf("GetAndDelete of a counter: Integer false")
	}
}

func TestTouchPersistAndTTL(t *testing.T) {
	c := open(t, "go-ttl")
	ttl := func(key string) (time.Duration, bool) {
		t.Helper()
		d, ok, err := c.TTL(b(key))
		if err != nil {
			t.Fatalf("TTL(%q): %v", key, err)
		}
		return d, ok
	}
	touch := func(key string, d time.Duration) bool {
		t.Helper()
		ok, err := c.Touch(b(key), d)
		if err != nil {
			t.Fatalf("Touch(%q, %v): %v", key, d, err)
		}
		return ok
	}
	mustSet(t, c, "k", "v", SetOptions{TTL: 30 * time.Second, Tags: []string{"t"}})
	if d, ok := ttl("k"); !ok || d <= 20*time.Second || d > 30*time.Second {
		t.Fatalf("TTL = %v, %v; want about 30s", d, ok)
	}
	if !touch("k", time.Hour) {
		t.Fatal("Touch of a present key: not found")
	}
	if d, _ := ttl("k"); d <= 59*time.Minute || d > time.Hour {
		t.Fatalf("TTL after Touch 1h = %v", d)
	}
	if ok, err := c.Persist(b("k")); err != nil || !ok {
		t.Fatalf("Persist = %v, %v", ok, err)
	}
	if d, ok := ttl("k"); !ok || d != NoExpiry {
		t.Fatalf("TTL after Persist = %v, %v; want NoExpiry", d, ok)
	}
	touch("k", time.Minute)
	if !touch("k", 0) {
		t.Fatal("Touch 0 of a present key: not found")
	}
	if d, _ := ttl("k"); d != NoExpiry {
		t.Fatalf("TTL after Touch 0 = %v; want NoExpiry (0 = never, as SetOptions.TTL)", d)
	}
	// The value and its tags stay.
	wantHit(t, c, "k", "v")
	if err := c.Invalidate("t"); err != nil {
		t.Fatal(err)
	}
	wantMiss(t, c, "k")
	if touch("absent", time.Minute) {
		t.Fatal("Touch of a missing key: found")
	}
	if ok, err := c.Persist(b("absent")); err != nil || ok {
		t.Fatalf("Persist of a missing key = %v, %v", ok, err)
	}
	if d, ok := ttl("absent"); ok || d != 0 {
		t.Fatalf("TTL of a missing key = %v, %v; want 0, false", d, ok)
	}
	mustSet(t, c, "forever", "v", SetOptions{})
	if d, ok := ttl("forever"); !ok || d != NoExpiry {
		t.Fatalf("TTL of a key set with no TTL = %v, %v", d, ok)
	}
	mustSet(t, c, "soon", "v", SetOptions{TTL: time.Minute})
	touch("soon", 5*time.Millisecond)
	eventually(t, "a key touched with 5ms expires", func() bool { _, ok := ttl("soon"); return !ok })
	_, err := c.Touch(b("k"), -time.Second)
	wantErr(t, err, ErrInvalidArgument, "TTL is negative")
}

// keysOf scans c with opts and returns the keys, sorted, failing on a key seen twice.
func keysOf(t *testing.T, c *Client, opts ScanOptions) []string {
	t.Helper()
	sc, err := c.Scan(opts)
	if err != nil {
		t.Fatalf("Scan(%+v): %v", opts, err)
	}
	defer sc.Close()
	seen := map[string]bool{}
	var keys []string
	for sc.Next() {
		k := string(sc.Item().Key)
		if seen[k] {
			t.Fatalf("Scan(%+v) returned %q twice", opts, k)
		}
		seen[k] = true
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("Scan(%+v): %v", opts, err)
	}
	sort.Strings(keys)
	return keys
}

func TestScanReturnsEachMatchOncePageByPage(t *testing.T) {
	c := open(t, "go-scan")
	const n = 2500
	var want []string
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("k:%d", i)
		mustSet(t, c, k, "v", SetOptions{TTL: time.Hour, Tags: []string{fmt.Sprintf("mod/%d", i%3)}})
		if strings.HasPrefix(k, "k:1") {
			want = append(want, k)
		}
	}
	sort.Strings(want)
	for _, page := range []int{0, 1, 100, 1000} {
		got := keysOf(t, c, ScanOptions{Pattern: "k:1*", PageSize: page})
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("PageSize %d: %d keys; want the %d matching k:1*", page, len(got), len(want))
		}
	}
	if got := keysOf(t, c, ScanOptions{}); len(got) != n {
		t.Fatalf("Scan of everything: %d keys; want %d", len(got), n)
	}
	// By tag (a counter match may add an entry of another tag: at least the tagged ones).
	tagged := keysOf(t, c, ScanOptions{Tag: "mod/1", Exact: true})
	if len(tagged) < n/3 {
		t.Fatalf("Scan by tag mod/1: %d keys; want at least %d", len(tagged), n/3)
	}
	if got := keysOf(t, c, ScanOptions{Pattern: "k:[12]?", Tag: "mod"}); strings.Join(got, ",") != "k:10,k:11,k:12,k:13,k:14,k:15,k:16,k:17,k:18,k:19,k:20,k:21,k:22,k:23,k:24,k:25,k:26,k:27,k:28,k:29" {
		t.Fatalf("Scan with a pattern and a parent tag = %v", got)
	}
	items, err := c.ScanAll(ScanOptions{Pattern: "k:7"})
	if err != nil || len(items) != 1 {
		t.Fatalf("ScanAll(k:7) = %+v, %v", items, err)
	}
	it := items[0]
	if string(it.Key) != "k:7" || it.StoredLen == 0 || it.CreatedMs == 0 || it.ExpiresMs <= it.CreatedMs || it.Version == 0 {
		t.Fatalf("ScanAll(k:7) item = %+v", it)
	}
	if v, _, _ := c.GetInfo(b("k:7")); v.Version != it.Version {
		t.Fatalf("scan version %d, get version %d", it.Version, v.Version)
	}
	_, err = c.Scan(ScanOptions{Exact: true})
	wantErr(t, err, ErrInvalidArgument, "Exact needs a Tag")
	_, err = c.Scan(ScanOptions{PageSize: 1001})
	wantErr(t, err, ErrInvalidArgument, "PageSize")
	_, err = c.Scan(ScanOptions{Tag: "a//b"})
	wantErr(t, err, ErrInvalidArgument)
}

func TestAScannerGrowsItsKeyBufferAndOutlivesItsClient(t *testing.T) {
	c := open(t, "go-scan-long")
	long := strings.Repeat("x", 200)
	mustSet(t, c, long, "v", SetOptions{})
	mustSet(t, c, "short", "v", SetOptions{})
	c2, err := c.WithNamespace("go-scan-long")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := c2.Scan(ScanOptions{PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	sc.buf = make([]byte, 8) // force the BUFFER_TOO_SMALL path
	c2.Close()
	var got []string
	for sc.Next() {
		got = append(got, string(sc.Item().Key))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if len(got) != 2 || got[0] != "short" || got[1] != long {
		t.Fatalf("keys = %q", got)
	}
	if sc.Next() {
		t.Fatal("Next after the end = true")
	}
	sc.Close()
	sc.Close()
}

func TestDeleteMatchingDeletesTheSelectionOnly(t *testing.T) {
	c := open(t, "go-delmatch")
	other := open(t, "go-delmatch-other")
	for i := 0; i < 50; i++ {
		mustSet(t, c, fmt.Sprintf("user:%d", i), "v", SetOptions{})
		mustSet(t, c, fmt.Sprintf("post:%d", i), "v", SetOptions{Tags: []string{fmt.Sprintf("posts/%d", i%2)}})
		mustSet(t, other, fmt.Sprintf("user:%d", i), "v", SetOptions{})
	}
	n, err := c.DeleteMatching(ScanOptions{Pattern: "user:*"})
	if err != nil || n != 50 {
		t.Fatalf("DeleteMatching(user:*) = %d, %v; want 50", n, err)
	}
	if got := keysOf(t, c, ScanOptions{Pattern: "user:*"}); len(got) != 0 {
		t.Fatalf("user keys left: %v", got)
	}
	if got := keysOf(t, other, ScanOptions{}); len(got) != 50 {
		t.Fatalf("the other namespace has %d keys; want its 50", len(got))
	}
	byTag, err := c.DeleteMatching(ScanOptions{Tag: "posts/1", Exact: true})
	if err != nil || byTag != 25 {
		t.Fatalf("DeleteMatching(tag posts/1) = %d, %v; want 25", byTag, err)
	}
	wantHit(t, c, "post:0", "v")
	wantMiss(t, c, "post:1")
	n, err = c.DeleteMatching(ScanOptions{})
	if err != nil || n != 25 {
		t.Fatalf("DeleteMatching of everything = %d, %v; want the 25 left", n, err)
	}
	if got := keysOf(t, c, ScanOptions{}); len(got) != 0 {
		t.Fatalf("keys left after deleting everything: %v", got)
	}
	_, err = c.DeleteMatching(ScanOptions{Exact: true})
	wantErr(t, err, ErrInvalidArgument, "Exact needs a Tag")
}

func TestNamespacesCountEntriesAndBytes(t *testing.T) {
	a := open(t, "go-ns-a")
	bb := open(t, "go-ns-b")
	for i := 0; i < 7; i++ {
		mustSet(t, a, fmt.Sprint(i), "value", SetOptions{})
	}
	for i := 0; i < 3; i++ {
		if err := bb.Set(b(fmt.Sprint(i)), pattern(1000, byte(i)), SetOptions{}); err != nil { // incompressible
			t.Fatal(err)
		}
	}
	list, err := a.Namespaces()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]NamespaceInfo{}
	for _, n := range list {
		found[n.Name] = n
	}
	na, nb := found["go-ns-a"], found["go-ns-b"]
	if na.Entries != 7 || nb.Entries != 3 || na.Bytes == 0 || nb.Bytes <= 3000 {
		t.Fatalf("Namespaces: go-ns-a %+v, go-ns-b %+v; want 7 and 3 entries, b over 3000 bytes", na, nb)
	}
	for i := 1; i < len(list); i++ {
		if list[i].Bytes > list[i-1].Bytes {
			t.Fatalf("not largest first: %+v", list)
		}
	}
}

func TestManagementMethodsOfAClosedClientReturnErrClosed(t *testing.T) {
	c := open(t, "go-manage-closed")
	c.Close()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s on a closed client = %v; want ErrClosed", what, err)
		}
	}
	_, err := c.Add(b("k"), b("v"), SetOptions{})
	check("Add", err)
	_, err = c.Replace(b("k"), b("v"), SetOptions{})
	check("Replace", err)
	_, err = c.CAS(b("k"), b("v"), 1, SetOptions{})
	check("CAS", err)
	_, err = c.CompareAndDelete(b("k"), 1)
	check("CompareAndDelete", err)
	check("SetInt64", c.SetInt64(b("k"), 1, SetOptions{}))
	_, _, err = c.Incr(b("k"), 1, IncrOptions{})
	check("Incr", err)
	_, _, err = c.Decr(b("k"), 1, IncrOptions{})
	check("Decr", err)
	_, _, err = c.GetAndDelete(b("k"))
	check("GetAndDelete", err)
	_, err = c.Touch(b("k"), time.Second)
	check("Touch", err)
	_, err = c.Persist(b("k"))
	check("Persist", err)
	_, _, err = c.TTL(b("k"))
	check("TTL", err)
	_, err = c.Scan(ScanOptions{})
	check("Scan", err)
	_, err = c.DeleteMatching(ScanOptions{})
	check("DeleteMatching", err)
	_, err = c.Namespaces()
	check("Namespaces", err)
}

// ---- atomicity under goroutines

func TestConcurrentIncrsLoseNoUpdate(t *testing.T) {
	c := open(t, "go-incr-race")
	const goroutines, rounds = 8, 500
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		cl := c
		if g%2 == 1 { // half on clients of their own (their own connections)
			cl = open(t, "go-incr-race")
		}
		wg.Add(1)
		go func(cl *Client, g int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				var err error
				if i%5 == 4 {
					_, _, err = cl.Decr(b("n"), -1, IncrOptions{})
				} else {
					_, _, err = cl.Incr(b("n"), 1, IncrOptions{})
				}
				if err != nil {
					errs <- fmt.Errorf("goroutine %d: %v", g, err)
					return
				}
			}
		}(cl, g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	wantHit(t, c, "n", fmt.Sprint(goroutines*rounds))
}

func TestConcurrentAddsHaveOneWinner(t *testing.T) {
	c := open(t, "go-add-race")
	const goroutines, rounds = 8, 50
	for r := 0; r < rounds; r++ {
		key := b(fmt.Sprintf("lock/%d", r))
		var wins atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				<-start
				ok, err := c.Add(key, b(fmt.Sprint(g)), SetOptions{TTL: time.Minute})
				if err != nil {
					t.Error(err)
				}
				if ok {
					wins.Add(1)
				}
			}(g)
		}
		close(start)
		wg.Wait()
		if w := wins.Load(); w != 1 {
			t.Fatalf("round %d: %d Adds stored; want exactly 1", r, w)
		}
	}
}

func TestACounterBuiltOnCASIsExact(t *testing.T) {
	c := open(t, "go-cas-race")
	if err := c.Set(b("n"), b("0"), SetOptions{}); err != nil {
		t.Fatal(err)
	}
	const goroutines, rounds = 4, 200
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				for {
					v, ok, err := c.GetInfo(b("n"))
					if err != nil || !ok {
						t.Errorf("GetInfo = %v, %v", ok, err)
						return
					}
					n, _ := v.Int64()
					stored, err := c.CAS(b("n"), b(fmt.Sprint(n+1)), v.Version, SetOptions{})
					if err != nil {
						t.Error(err)
						return
					}
					if stored {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	wantHit(t, c, "n", fmt.Sprint(goroutines*rounds))
}

// The one TTL rule of every binding: 0 = never expires in Set, Add, SetInt64, Incr and Touch;
// a negative TTL is ErrInvalidArgument that says so.
func TestZeroTTLNeverExpiresAndNegativeIsRefused(t *testing.T) {
	c := open(t, "go-ttl-rule")
	mustSet(t, c, "set", "v", SetOptions{TTL: 0})
	if ok, err := c.Add(b("add"), b("v"), SetOptions{}); err != nil || !ok {
		t.Fatalf("Add = %v, %v", ok, err)
	}
	if err := c.SetInt64(b("i64"), 7, SetOptions{TTL: 0}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Incr(b("incr"), 1, IncrOptions{TTL: 0}); err != nil {
		t.Fatal(err)
	}
	mustSet(t, c, "touch", "v", SetOptions{TTL: time.Minute})
	if ok, err := c.Touch(b("touch"), 0); err != nil || !ok {
		t.Fatalf("Touch 0 = %v, %v", ok, err)
	}
	for _, key := range []string{"set", "add", "i64", "incr", "touch"} {
		if d, ok, err := c.TTL(b(key)); err != nil || !ok || d != NoExpiry {
			t.Errorf("TTL(%q) = %v, %v, %v; want NoExpiry", key, d, ok, err)
		}
	}
	negative := map[string]func() error{
		"Set":   func() error { return c.Set(b("set"), b("v"), SetOptions{TTL: -time.Second}) },
		"Add":   func() error { _, err := c.Add(b("n"), b("v"), SetOptions{TTL: -time.Second}); return err },
		"Incr":  func() error { _, _, err := c.Incr(b("n"), 1, IncrOptions{TTL: -time.Second}); return err },
		"Touch": func() error { _, err := c.Touch(b("touch"), -time.Second); return err },
	}
	for name, call := range negative {
		err := call()
		if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "negative TTL") {
			t.Errorf("%s with a negative TTL: %v; want ErrInvalidArgument naming the negative TTL", name, err)
		}
	}
	if d, _, _ := c.TTL(b("touch")); d != NoExpiry {
		t.Errorf("a refused Touch changed the TTL to %v", d)
	}
}
