package cachekit_test

import (
	"errors"
	"fmt"
	"log"
	"time"

	"cachekit.local/cachekit"
)

// Open finds the daemon as the C library does: Options.Socket, else $CACHEKIT_SOCKET (which the
// tests set to their own daemon), else the socket of Options.Instance ($CACHEKIT_INSTANCE,
// "default").
func Example() {
	c, err := cachekit.Open(cachekit.Options{Namespace: "example"})
	if errors.Is(err, cachekit.ErrUnavailable) {
		log.Fatal(err) // "cachekit: open: cachekitd is not running at ...; start it with `cachekitd`"
	} else if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	err = c.Set([]byte("user:42"), []byte(`{"name":"Ada"}`), cachekit.SetOptions{
		TTL:  time.Minute,
		Tags: []string{"users/42"},
	})
	if err != nil {
		log.Fatal(err)
	}
	if v, ok, err := c.Get([]byte("user:42")); err == nil && ok {
		fmt.Println(string(v)) // served from shared memory
	}
	if err := c.Invalidate("users/42"); err != nil { // everything tagged users/42/...
		log.Fatal(err)
	}
	_, ok, _ := c.Get([]byte("user:42"))
	fmt.Println("hit after invalidation:", ok)
	// Output:
	// {"name":"Ada"}
	// hit after invalidation: false
}

// Stale-while-revalidate: a value past its TTL but within its grace period is still a hit,
// marked stale; serve it and refresh it.
func ExampleClient_GetInfo() {
	c, err := cachekit.Open(cachekit.Options{Namespace: "example"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	key := []byte("report")
	_ = c.Set(key, []byte("v1"), cachekit.SetOptions{TTL: 50 * time.Millisecond, Grace: time.Minute})
	time.Sleep(100 * time.Millisecond)

	v, ok, err := c.GetInfo(key)
	if err != nil {
		log.Fatal(err)
	}
	if ok && v.Stale {
		fmt.Printf("serving stale %q; refreshing\n", v.Bytes)
		_ = c.Set(key, []byte("v2"), cachekit.SetOptions{TTL: time.Minute, Grace: time.Minute})
	}
	v, _, _ = c.GetInfo(key)
	fmt.Printf("%q stale=%v\n", v.Bytes, v.Stale)
	// Output:
	// serving stale "v1"; refreshing
	// "v2" stale=false
}

// GetInto reads into a buffer the caller keeps: no allocation per hit once it is large enough.
func ExampleClient_GetInto() {
	c, err := cachekit.Open(cachekit.Options{Namespace: "example"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	_ = c.Set([]byte("counter"), []byte("12345"), cachekit.SetOptions{})
	buf := make([]byte, 0, 64)
	for i := 0; i < 3; i++ {
		v, ok, err := c.GetInto([]byte("counter"), buf)
		if err != nil || !ok {
			log.Fatal("miss")
		}
		buf = v.Bytes[:0] // keep the (possibly grown) buffer for the next read
		fmt.Println(string(v.Bytes))
	}
	// Output:
	// 12345
	// 12345
	// 12345
}
