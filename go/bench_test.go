package cachekit

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"
	_ "unsafe" // go:linkname
)

// Hit latency. The setup is the one of the Rust client's benchmark (libclient/benches) and
// of go/bench/hit.c and hit.rs, so scripts/bench-hit can put the three side by side: 10 000
// keys of 100 random bytes, read in a shuffled order, every read checked to hit from the
// segment.
//
//   go test -run '^$' -bench BenchmarkGetHit100B        ns/op and allocs/op of each way to read
//   CACHEKIT_LATENCY=1 go test -run TestHitLatency -v   p50/p90/p99 of 200 000 single gets

const (
	benchKeys  = 10000
	benchValue = 100
)

// splitmix64, as in the Rust benchmark: reproducible values and orders without a dependency.
type rng uint64

func (r *rng) next() uint64 {
	*r += 0x9E3779B97F4A7C15
	z := uint64(*r)
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// fillHits sets n keys of size random bytes in c's namespace, checks each one hits from the
// segment with its own bytes, and returns the keys in a shuffled order.
func fillHits(tb testing.TB, c *Client, n, size int) [][]byte {
	tb.Helper()
	r := rng(size)
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("hit-%d", i))
		v := make([]byte, size)
		for j := range v {
			v[j] = byte(r.next())
		}
		if err := c.Set(keys[i], v, SetOptions{TTL: time.Hour}); err != nil {
			tb.Fatalf("pre-setting a key: %v", err)
		}
		got, ok, err := c.GetInfo(keys[i])
		if err != nil || !ok || got.Source != SourceSegment || string(got.Bytes) != string(v) {
			tb.Fatalf("pre-set key %d does not hit from the segment: %v, %v, %+v", i, ok, err, got)
		}
	}
	s := rng(^uint64(size))
	for i := len(keys) - 1; i > 0; i-- {
		j := int(s.next() % uint64(i+1))
		keys[i], keys[j] = keys[j], keys[i]
	}
	return keys
}

func segmentHits(tb testing.TB, c *Client) uint64 {
	st, err := c.Stats()
	if err != nil {
		tb.Fatal(err)
	}
	return st["client.segment_hits"]
}

func BenchmarkGetHit100B(bm *testing.B) {
	c := open(bm, "go-bench")
	keys := fillHits(bm, c, benchKeys, benchValue)
	ways := []struct {
		name string
		get  func(key, buf []byte) ([]byte, bool, error)
	}{
		// The API.
		{"Get", func(k, _ []byte) ([]byte, bool, error) { return c.Get(k) }},
		{"GetInto", func(k, buf []byte) ([]byte, bool, error) {
			v, ok, err := c.GetInto(k, buf)
			return v.Bytes, ok, err
		}},
		{"GetInfo", func(k, _ []byte) ([]byte, bool, error) {
			v, ok, err := c.GetInfo(k)
			return v.Bytes, ok, err
		}},
		// What Get was chosen against (alternatives.go).
		{"alt=get_alloc+free", func(k, _ []byte) ([]byte, bool, error) { return c.getViaAlloc(k) }},
		{"alt=size-query+get", func(k, _ []byte) ([]byte, bool, error) { return c.getViaSizeQuery(k) }},
	}
	for _, w := range ways {
		bm.Run(w.name, func(bm *testing.B) {
			before := segmentHits(bm, c)
			buf := make([]byte, 0, benchValue)
			bm.ReportAllocs()
			bm.ResetTimer()
			for i := 0; i < bm.N; i++ {
				v, ok, err := w.get(keys[i%len(keys)], buf)
				if !ok || err != nil || len(v) != benchValue {
					bm.Fatalf("a measured get missed: %v, %v", ok, err)
				}
			}
			bm.StopTimer()
			if hits := segmentHits(bm, c) - before; hits < uint64(bm.N) {
				bm.Fatalf("%d segment hits for %d gets", hits, bm.N)
			}
		})
	}
	bm.Run("Get/parallel", func(bm *testing.B) {
		bm.ReportAllocs()
		bm.RunParallel(func(pb *testing.PB) {
			r := rng(time.Now().UnixNano())
			i := int(r.next() % benchKeys)
			for pb.Next() {
				if _, ok, err := c.Get(keys[i%len(keys)]); !ok || err != nil {
					panic("a measured get missed")
				}
				i++
			}
		})
	})
}

//go:linkname nanotime runtime.nanotime
func nanotime() int64

// timeOps times n single calls of op (after n/10 untimed ones), one monotonic clock pair
// each (runtime.nanotime: the same clock_gettime(CLOCK_MONOTONIC) as C's and Rust's
// Instant), and returns the sorted nanoseconds.
func timeOps(n int, op func()) []int64 {
	for i := 0; i < n/10; i++ {
		op()
	}
	ns := make([]int64, n)
	for i := range ns {
		t := nanotime()
		op()
		ns[i] = nanotime() - t
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i] < ns[j] })
	return ns
}

func quantile(ns []int64, q float64) int64 {
	return ns[int(float64(len(ns)-1)*q+0.5)]
}

// TestHitLatency prints the percentiles of single 100-byte hits, in the line format
// scripts/bench-hit reads. Off unless CACHEKIT_LATENCY=1 (it takes a few seconds).
func TestHitLatency(t *testing.T) {
	if os.Getenv("CACHEKIT_LATENCY") != "1" {
		t.Skip("set CACHEKIT_LATENCY=1 to measure")
	}
	ops := 200000
	if s := os.Getenv("CACHEKIT_LATENCY_OPS"); s != "" {
		ops, _ = strconv.Atoi(s)
	}
	c := open(t, "go-latency")
	keys := fillHits(t, c, benchKeys, benchValue)
	timer := timeOps(ops, func() {})[ops/2]
	buf := make([]byte, 0, benchValue)
	for _, w := range []struct {
		call string
		get  func(key []byte) bool
	}{
		{"GetInto", func(k []byte) bool { _, ok, _ := c.GetInto(k, buf); return ok }},
		{"Get", func(k []byte) bool { _, ok, _ := c.Get(k); return ok }},
	} {
		before := segmentHits(t, c)
		i, missed := 0, 0
		op := func() {
			if !w.get(keys[i]) {
				missed++
			}
			if i++; i == len(keys) {
				i = 0
			}
		}
		ns := timeOps(ops, op)
		// The same calls without a clock around each: the mean cost of one.
		start := nanotime()
		for j := 0; j < ops; j++ {
			op()
		}
		mean := float64(nanotime()-start) / float64(ops)
		if missed != 0 {
			t.Fatalf("%s: %d timed gets missed", w.call, missed)
		}
		if hits := segmentHits(t, c) - before; hits < uint64(2*ops+ops/10) {
			t.Fatalf("%s: %d segment hits for %d gets", w.call, hits, 2*ops+ops/10)
		}
		fmt.Printf("LATENCY lang=go call=%s ops=%d p50=%d p90=%d p99=%d p999=%d max=%d mean=%.0f timer=%d\n",
			w.call, ops, quantile(ns, 0.5), quantile(ns, 0.9), quantile(ns, 0.99), quantile(ns, 0.999),
			ns[len(ns)-1], mean, timer)
	}
}
