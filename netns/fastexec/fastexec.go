//go:build cgo && linux

package fastexec

// fastexec.c holds the whole of it; importing "C" is what compiles and
// links it into nsrun.

import "C"
