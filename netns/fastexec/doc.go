// Package fastexec makes 'nsrun exec' start as fast as 'ip netns exec'.
//
// A Go program spends about a millisecond starting its runtime before main
// runs, longer than all the work of entering a namespace. So when nsrun is
// built with cgo (the default where a C compiler is installed), a C
// constructor in this package handles the plain form of the command,
//
//	nsrun exec NS [--] CMD [ARG...]
//
// before the Go runtime starts, and replaces the process with CMD without
// ever starting it. It does the steps of netns.Exec in the same order and
// nothing more. Anything else, and any failure, falls through to the Go
// path, which redoes every step and reports the error; netns.Exec is the
// reference, and the tests run the same cases through both.
//
// Importing this package for its side effect is all cmd/nsrun does with it.
// A build without cgo leaves it empty, and exec goes the Go way.
package fastexec
