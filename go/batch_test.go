package cachekit

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

func openBatch(t *testing.T) *Client {
	t.Helper()
	c, err := Open(Options{Socket: testSocket, Namespace: "gobatch"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Clear(); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSetManyStoresEachItemAndAnswersEach(t *testing.T) {
	c := openBatch(t)
	keys := [][]byte{b("a"), b("b"), b("")}
	values := [][]byte{b("one"), nil, b("empty key")}
	errs, err := c.SetMany(keys, values, SetOptions{TTL: time.Minute, Tags: []string{"batch/go"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 3 || errs[0] != nil || errs[1] != nil || errs[2] != nil {
		t.Fatalf("item errors %v", errs)
	}
	wantHit(t, c, "a", "one")
	wantHit(t, c, "b", "")
	wantHit(t, c, "", "empty key")
	// The tags apply to every item.
	if err := c.Invalidate("batch"); err != nil {
		t.Fatal(err)
	}
	wantMiss(t, c, "a")

	if _, err := c.SetMany(keys, values, SetOptions{}); err != nil {
		t.Fatal(err)
	}
	existed, errs, err := c.DeleteMany(b("a"), b("absent"), b(""))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(existed) != "[true false true]" || errs[0] != nil || errs[1] != nil || errs[2] != nil {
		t.Fatalf("DeleteMany: existed %v, errors %v", existed, errs)
	}
	wantMiss(t, c, "a")
	wantHit(t, c, "b", "")
	// Nothing to do.
	if errs, err := c.SetMany(nil, nil, SetOptions{}); err != nil || len(errs) != 0 {
		t.Fatalf("empty SetMany: %v %v", errs, err)
	}
	if existed, _, err := c.DeleteMany(); err != nil || len(existed) != 0 {
		t.Fatalf("empty DeleteMany: %v %v", existed, err)
	}
}

func TestSetManyABadItemFailsAlone(t *testing.T) {
	c := openBatch(t)
	// The test daemon allows 64 KiB values.
	big := bytes.Repeat([]byte{0x5a, 0x17, 0x99}, 40<<10)
	errs, err := c.SetMany([][]byte{b("ok1"), b("big"), b("ok2")},
		[][]byte{b("x"), big, b("y")}, SetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("good items failed: %v", errs)
	}
	wantErr(t, errs[1], ErrTooLarge, "max_value_bytes")
	wantHit(t, c, "ok1", "x")
	wantHit(t, c, "ok2", "y")
	wantMiss(t, c, "big")
	// The batch as a whole: a bad tag, or keys and values that do not pair up.
	_, err = c.SetMany([][]byte{b("k")}, [][]byte{b("v")}, SetOptions{Tags: []string{"a//b"}})
	wantErr(t, err, ErrInvalidArgument)
	_, err = c.SetMany([][]byte{b("k")}, nil, SetOptions{})
	wantErr(t, err, ErrInvalidArgument, "1 keys but 0 values")
	var e *Error
	if !errors.As(errs[1], &e) || e.Op != "set many item 1" {
		t.Fatalf("item error %#v", errs[1])
	}
}

func TestSetManyLongerThanOneRequest(t *testing.T) {
	c := openBatch(t)
	const n = 2345
	keys := make([][]byte, n)
	values := make([][]byte, n)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("long:%d", i))
		values[i] = []byte(fmt.Sprintf("v%d", i))
	}
	before, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	errs, err := c.SetMany(keys, values, SetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if e != nil {
			t.Fatalf("item %d: %v", i, e)
		}
	}
	after, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// 3 requests of at most 1000 items, plus the second STATS request itself.
	if got := after["client.requests"] - before["client.requests"]; got != 4 {
		t.Errorf("%d requests for %d items, want 3 (+1 STATS)", got, n)
	}
	wantHit(t, c, "long:2344", "v2344")
	existed, _, err := c.DeleteMany(keys...)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range existed {
		if !x {
			t.Fatalf("key %d was not there", i)
		}
	}
	wantMiss(t, c, "long:0")
}

func TestBatchesOnAClosedClient(t *testing.T) {
	c, err := Open(Options{Socket: testSocket})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := c.SetMany(nil, nil, SetOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("SetMany after Close: %v", err)
	}
	if _, _, err := c.DeleteMany(b("k")); !errors.Is(err, ErrClosed) {
		t.Fatalf("DeleteMany after Close: %v", err)
	}
}
