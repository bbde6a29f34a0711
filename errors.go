package cachier

import (
	"errors"
	"fmt"
)

var (
	// ErrUnkeyable reports an argument that cannot be turned into a key: its type
	// cannot be encoded faithfully (reported by Wrap, naming the field), or the
	// WithKey function failed or returned an empty key (reported by Call).
	ErrUnkeyable = errors.New("cachier: argument cannot be keyed")
	// ErrUncacheable reports a result type that cannot round-trip through the codec.
	ErrUncacheable = errors.New("cachier: result type cannot be cached")
	// ErrUnnamed reports a function whose runtime name is not a stable, unique
	// namespace (an anonymous function, a method value, a generic function); give it
	// one with Name.
	ErrUnnamed = errors.New("cachier: function needs a Name")
	// ErrPanicked is returned to callers that waited for a computation that panicked,
	// inside a *PanicError. The caller that ran the function panics with the
	// *PanicError itself.
	ErrPanicked = errors.New("cachier: computation panicked")
	// ErrStore wraps a store failure returned to the caller, which happens only with
	// FailOnStoreError; otherwise store failures are logged and counted.
	ErrStore = errors.New("cachier: store failed")
	// ErrClosed is returned by a Func's Precache, Invalidate, Clear and
	// ClearBeingCalculated after Close.
	ErrClosed = errors.New("cachier: function closed")
	// ErrComputeTimeout is returned to a caller that waited for a computation in its
	// process longer than ComputeTimeout. The caller that ran fn gets fn's own error
	// (its context's deadline passed: context.DeadlineExceeded).
	ErrComputeTimeout = errors.New("cachier: computation exceeded ComputeTimeout")
)

// PanicError is a panic of the wrapped function, with the stack where it happened.
// The function runs on a goroutine of cachier's single flight, so the caller that
// started the computation re-panics with a *PanicError (recover it and read Value for
// what fn panicked with, Stack for where); callers that waited for that computation
// get it as an error, which matches ErrPanicked under errors.Is, and the panic value
// too when it is an error.
type PanicError struct {
	// Value is what fn panicked with.
	Value any
	// Stack is the stack of the goroutine that panicked, captured at the panic.
	Stack []byte
}

// Error returns the panic value and the stack where it happened.
func (p *PanicError) Error() string {
	return fmt.Sprintf("cachier: function panicked: %v\n\n%s", p.Value, p.Stack)
}

// Unwrap returns ErrPanicked, and the panic value when it is an error.
func (p *PanicError) Unwrap() []error {
	if err, ok := p.Value.(error); ok {
		return []error{ErrPanicked, err}
	}
	return []error{ErrPanicked}
}
