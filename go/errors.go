package cachekit

// #include "shim.h"
import "C"

import (
	"errors"
	"sync"
)

// Code is a cachekit result code (enum cachekit_result in cachekit.h) that is an error. OK and
// MISS never reach Go as errors: a miss is the false of Get's (value, ok, err).
type Code uint32

// The error codes, one to one with cachekit.h. New codes are only ever added at the end; an
// unknown code is an error all the same.
const (
	// CodeNullArgument: a required pointer was NULL (a bug in this binding if ever seen).
	CodeNullArgument Code = C.CACHEKIT_NULL_ARGUMENT
	// CodeInvalidArgument: an argument is refused (bad UTF-8, an empty or malformed namespace
	// or tag, a NUL byte in a string, a negative duration, an unknown instance name...).
	CodeInvalidArgument Code = C.CACHEKIT_INVALID_ARGUMENT
	// CodeTooLarge: a key, namespace, value, tag or tag list is over a limit; the message
	// names the limit and the setting that raises it.
	CodeTooLarge Code = C.CACHEKIT_TOO_LARGE
	// CodeUnavailable: cachekitd cannot be reached (not running, socket missing, connection
	// lost) or cannot serve now. Gets never return it: they miss instead.
	CodeUnavailable Code = C.CACHEKIT_UNAVAILABLE
	// CodeTimeout: cachekitd did not answer in time (stuck or overloaded).
	CodeTimeout Code = C.CACHEKIT_TIMEOUT
	// CodeNotPermitted: the socket's permissions or the daemon refuse this process.
	CodeNotPermitted Code = C.CACHEKIT_NOT_PERMITTED
	// CodeProtocol: cachekitd answered something the library does not understand (version
	// mismatch).
	CodeProtocol Code = C.CACHEKIT_PROTOCOL
	// CodeDaemon: cachekitd reported an internal failure.
	CodeDaemon Code = C.CACHEKIT_DAEMON
	// CodeIO: an operating-system error that is none of the above.
	CodeIO Code = C.CACHEKIT_IO
	// CodeCorruptValue: a stored value is not a valid envelope (damaged, or written by
	// something else).
	CodeCorruptValue Code = C.CACHEKIT_CORRUPT_VALUE
	// CodePanic: a bug inside the library, caught at its boundary. The client may still be
	// used.
	CodePanic Code = C.CACHEKIT_PANIC
	// CodeOther: an error the loaded library has no more precise code for.
	CodeOther Code = C.CACHEKIT_OTHER_ERROR
	// CodeDecrypt: an encrypted value did not decrypt (a wrong master key or tenant, a
	// tampered byte, or a value copied from another key or namespace). Never garbage, never a
	// miss.
	CodeDecrypt Code = C.CACHEKIT_DECRYPT
	// CodeEncrypted: the value is encrypted and this client has no key (Options.Encryption,
	// or CACHEKIT_MASTER_KEY / CACHEKIT_MASTER_KEY_FILE).
	CodeEncrypted Code = C.CACHEKIT_ENCRYPTED
	// CodePlaintext: the value is plaintext and this client requires encryption.
	CodePlaintext Code = C.CACHEKIT_PLAINTEXT
)

// lastCode is the highest code this binding knows (for the description cache).
const lastCode = CodePlaintext

var (
	describeOnce sync.Once
	descriptions [lastCode + 1]string
)

// String is the library's static description of the code (cachekit_result_describe), e.g.
// "cachekitd cannot be reached".
func (c Code) String() string {
	describeOnce.Do(func() {
		for i := range descriptions {
			descriptions[i] = C.GoString(C.cachekit_result_describe(C.uint32_t(i)))
		}
	})
	if c <= lastCode {
		return descriptions[c]
	}
	return C.GoString(C.cachekit_result_describe(C.uint32_t(c)))
}

// Error is an error reported by libcachekit (or refused by this binding before the call, with
// the same codes).
type Error struct {
	// Op is the operation that failed: "open", "get", "set", "delete", "invalidate", ...
	Op string
	// Code says what kind of failure it is; compare with errors.Is(err, ErrUnavailable) etc.
	Code Code
	// Message is the library's message for people: what went wrong and what to do, e.g.
	// "cachekitd is not running at /run/cachekit/default.sock; start it with `cachekitd`".
	Message string
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Code.String()
	}
	if e.Op == "" {
		return "cachekit: " + msg
	}
	return "cachekit: " + e.Op + ": " + msg
}

// Is makes errors.Is(err, ErrTooLarge) true for every *Error of that code: a target with no
// Op and no Message (one of the Err* sentinels, or &Error{Code: c}) matches on the code alone.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Op == "" && t.Message == "" && t.Code == e.Code
}

// Sentinels for errors.Is, one per code.
var (
	ErrNullArgument    error = &Error{Code: CodeNullArgument}
	ErrInvalidArgument error = &Error{Code: CodeInvalidArgument}
	ErrTooLarge        error = &Error{Code: CodeTooLarge}
	ErrUnavailable     error = &Error{Code: CodeUnavailable}
	ErrTimeout         error = &Error{Code: CodeTimeout}
	ErrNotPermitted    error = &Error{Code: CodeNotPermitted}
	ErrProtocol        error = &Error{Code: CodeProtocol}
	ErrDaemon          error = &Error{Code: CodeDaemon}
	ErrIO              error = &Error{Code: CodeIO}
	ErrCorruptValue    error = &Error{Code: CodeCorruptValue}
	ErrPanic           error = &Error{Code: CodePanic}
	ErrOther           error = &Error{Code: CodeOther}
	ErrDecrypt         error = &Error{Code: CodeDecrypt}
	ErrEncrypted       error = &Error{Code: CodeEncrypted}
	ErrPlaintext       error = &Error{Code: CodePlaintext}
)

// ErrClosed is returned by every method of a Client after Close (and of a nil *Client).
var ErrClosed = errors.New("cachekit: the client is closed")

// invalid is an argument this binding refuses before calling the library.
func invalid(op, msg string) error {
	return &Error{Op: op, Code: CodeInvalidArgument, Message: msg}
}
