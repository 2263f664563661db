package cachekit

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func key32(seed byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = seed*31 ^ byte(i)
	}
	return k
}

func openEnc(t *testing.T, e *Encryption) *Client {
	t.Helper()
	c, err := Open(Options{Socket: testSocket, Namespace: "gocrypt", Encryption: e})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestEncryptionRoundTripAndItsErrors(t *testing.T) {
	t1 := openEnc(t, &Encryption{MasterKey: key32(1), Tenant: "t1"})
	t2 := openEnc(t, &Encryption{MasterKey: key32(1), Tenant: "t2"})
	keyless := openEnc(t, nil)
	strict := openEnc(t, &Encryption{MasterKey: key32(1), Tenant: "t1", RequireEncryption: true})
	if err := t1.Set([]byte("secret"), []byte("t1 only"), SetOptions{}); err != nil {
		t.Fatal(err)
	}
	v, ok, err := t1.Get([]byte("secret"))
	if err != nil || !ok || !bytes.Equal(v, []byte("t1 only")) {
		t.Fatalf("t1 reads its value: %q %v %v", v, ok, err)
	}
	if _, _, err := t2.Get([]byte("secret")); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("another tenant: %v, want ErrDecrypt", err)
	}
	_, _, err = keyless.Get([]byte("secret"))
	if !errors.Is(err, ErrEncrypted) || !strings.Contains(err.Error(), "CACHEKIT_MASTER_KEY") {
		t.Fatalf("no key: %v, want ErrEncrypted naming CACHEKIT_MASTER_KEY", err)
	}
	if err := keyless.Set([]byte("open"), []byte("plain"), SetOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := strict.Get([]byte("open")); !errors.Is(err, ErrPlaintext) {
		t.Fatalf("strict client, plaintext value: %v, want ErrPlaintext", err)
	}
	if v, ok, err := t1.Get([]byte("open")); err != nil || !ok || string(v) != "plain" {
		t.Fatalf("lenient client, plaintext value: %q %v %v", v, ok, err)
	}
}

func TestEncryptionRotationAndHashedKeys(t *testing.T) {
	old := openEnc(t, &Encryption{MasterKey: key32(1)})
	rotated := openEnc(t, &Encryption{MasterKey: key32(2), PreviousKeys: [][]byte{key32(1)}})
	if err := old.Set([]byte("before"), []byte("under key 1"), SetOptions{}); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := rotated.Get([]byte("before")); err != nil || !ok || string(v) != "under key 1" {
		t.Fatalf("rotated client reads the old value: %q %v %v", v, ok, err)
	}
	if err := rotated.Set([]byte("after"), []byte("under key 2"), SetOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := old.Get([]byte("after")); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("old key, new value: %v, want ErrDecrypt", err)
	}
	hashed := openEnc(t, &Encryption{MasterKey: key32(3), HashKeys: true})
	clear := openEnc(t, &Encryption{MasterKey: key32(3)})
	if err := hashed.Set([]byte("user:1"), []byte("alice"), SetOptions{}); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := hashed.Get([]byte("user:1")); err != nil || !ok || string(v) != "alice" {
		t.Fatalf("hashed keys round trip: %q %v %v", v, ok, err)
	}
	if _, ok, err := clear.Get([]byte("user:1")); err != nil || ok {
		t.Fatalf("the daemon holds the hash, not the key: %v %v", ok, err)
	}
}

func TestEncryptionMemoOfOpenedValues(t *testing.T) {
	memo := openEnc(t, &Encryption{MasterKey: key32(5), Tenant: "memo", MemoBytes: 4 << 20})
	def := openEnc(t, &Encryption{MasterKey: key32(5), Tenant: "memo"})
	off := openEnc(t, &Encryption{MasterKey: key32(5), Tenant: "memo", NoMemo: true})
	if err := memo.Set([]byte("m"), []byte("first value"), SetOptions{}); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 3; round++ {
		for _, c := range []*Client{memo, def, off} {
			if v, ok, err := c.Get([]byte("m")); err != nil || !ok || string(v) != "first value" {
				t.Fatalf("round %d: %q, %v, %v", round, v, ok, err)
			}
		}
	}
	// A rewrite of the same length is seen at once by every client.
	if err := off.Set([]byte("m"), []byte("other value"), SetOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Client{memo, def, off} {
		if v, ok, err := c.Get([]byte("m")); err != nil || !ok || string(v) != "other value" {
			t.Fatalf("after the rewrite: %q, %v, %v", v, ok, err)
		}
	}
}

func TestEncryptionOptionsAreChecked(t *testing.T) {
	for _, e := range []*Encryption{
		{MasterKey: make([]byte, 16)},
		{MasterKey: key32(1), PreviousKeys: [][]byte{make([]byte, 31)}},
		{MasterKey: key32(1), MemoBytes: -1},
		{MasterKey: key32(1), MemoBytes: 1 << 20, NoMemo: true},
	} {
		if _, err := Open(Options{Socket: testSocket, Encryption: e}); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("%+v: %v, want ErrInvalidArgument", e, err)
		}
	}
}
