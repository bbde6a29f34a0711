package testserver

// MongoPing exposes the raw OP_MSG ping to the external tests: the go.sum of the module
// does not yet cover the mongo driver's own dependencies.
var MongoPing = mongoPing

// Kill exposes kill (syscall.Kill, or its Windows counterpart) to the external tests.
var Kill = kill
