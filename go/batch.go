package cachekit

// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"math"
	"runtime"
	"strconv"
	"unsafe"
)

// SetMany stores values[i] under keys[i], each as Set would, with the same options, in one
// request: one round trip, and the daemon applies every item within one turn of its writer.
// A batch of more than 1000 items, or one whose frame would pass the daemon's frame limit, is
// sent as several requests, in order, each applied within one writer turn of its own.
//
// itemErrs holds one error per item, nil for a stored one: an item over a limit (ErrTooLarge)
// or one the daemon or Redis refused does not stop the others. The first failing item's error
// carries the library's message; the others carry their code. err is for the batch as a
// whole (a bad tag list, the daemon unreachable and no other path, ErrClosed); itemErrs is
// then nil. Items of requests sent before such an error are stored: sending the whole batch
// again is safe.
func (c *Client) SetMany(keys, values [][]byte, opts SetOptions) (itemErrs []error, err error) {
	const op = "set many"
	if len(keys) != len(values) {
		return nil, invalid(op, strconv.Itoa(len(keys))+" keys but "+strconv.Itoa(len(values))+
			" values; pass one value per key")
	}
	ttl, err := ms(op, "TTL", opts.TTL, math.MaxUint64)
	if err != nil {
		return nil, err
	}
	grace, err := ms(op, "Grace", opts.Grace, math.MaxUint64)
	if err != nil {
		return nil, err
	}
	tags, err := flatTags(op, opts.Tags)
	if err != nil {
		return nil, err
	}
	n := len(keys)
	flatKeys, keyLens := flatten(keys)
	flatValues, valueLens := flatten(values)
	results := make([]C.uint32_t, n)
	if err := c.acquire(); err != nil {
		return nil, err
	}
	defer c.mu.RUnlock()
	r := C.ckgo_set_many(c.h, bytesPtr(flatKeys), lensPtr(keyLens), bytesPtr(flatValues),
		lensPtr(valueLens), C.size_t(n), C.uint64_t(ttl), C.uint64_t(grace), charPtr(tags),
		C.size_t(len(opts.Tags)), resultsPtr(results))
	runtime.KeepAlive(c)
	errs, err := itemErrors(op, r, results)
	return errs, err
}

// DeleteMany removes keys, each as Delete would, in one request (split as SetMany splits).
// existed[i] says whether keys[i] was there; itemErrs and err are as for SetMany.
func (c *Client) DeleteMany(keys ...[]byte) (existed []bool, itemErrs []error, err error) {
	const op = "delete many"
	n := len(keys)
	flatKeys, keyLens := flatten(keys)
	results := make([]C.uint32_t, n)
	if err := c.acquire(); err != nil {
		return nil, nil, err
	}
	defer c.mu.RUnlock()
	r := C.ckgo_delete_many(c.h, bytesPtr(flatKeys), lensPtr(keyLens), C.size_t(n),
		resultsPtr(results))
	runtime.KeepAlive(c)
	itemErrs, err = itemErrors(op, r, results)
	if err != nil {
		return nil, nil, err
	}
	existed = make([]bool, n)
	for i, rc := range results {
		existed[i] = rc == C.CACHEKIT_OK
	}
	return existed, itemErrs, nil
}

// flatten puts items back to back (cgo cannot pass C an array of Go pointers).
func flatten(items [][]byte) ([]byte, []C.size_t) {
	total := 0
	for _, it := range items {
		total += len(it)
	}
	flat := make([]byte, 0, total)
	lens := make([]C.size_t, len(items))
	for i, it := range items {
		flat = append(flat, it...)
		lens[i] = C.size_t(len(it))
	}
	return flat, lens
}

func lensPtr(lens []C.size_t) *C.size_t {
	if len(lens) == 0 {
		return nil
	}
	return &lens[0]
}

func resultsPtr(results []C.uint32_t) *C.uint32_t {
	if len(results) == 0 {
		return nil
	}
	return &results[0]
}

// itemErrors turns a batch's codes into one error per item; err when the batch failed as a
// whole (no item answered).
func itemErrors(op string, r C.ckgo_status, results []C.uint32_t) ([]error, error) {
	if r.rc != C.CACHEKIT_OK && (len(results) == 0 || results[0] == C.CKGO_NO_RESULT) {
		return nil, callError(op, r.rc, r.err)
	}
	first := ""
	if r.err != nil {
		first = C.GoString(r.err)
		C.free(unsafe.Pointer(r.err))
	}
	errs := make([]error, len(results))
	for i, rc := range results {
		if rc == C.CACHEKIT_OK || rc == C.CACHEKIT_MISS {
			continue
		}
		e := &Error{Op: op + " item " + strconv.Itoa(i), Code: Code(rc)}
		if first != "" && C.uint32_t(r.rc) == rc {
			e.Message, first = first, ""
		}
		errs[i] = e
	}
	return errs, nil
}
