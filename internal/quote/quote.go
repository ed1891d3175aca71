// Package quote prints strings that come from elsewhere (process names,
// interface, zone and chain names, processes' logs) as ls and ps do: as
// they are when they are plain, escaped otherwise, so that none can write
// control characters to root's terminal or pass for other text.
package quote

import (
	"fmt"
	"io"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Name returns s as it is when it is plain (non-empty; ASCII letters,
// digits and . _ - + : @ / , = %), and strconv.Quote(s) otherwise.
func Name(s string) string {
	if s == "" {
		return `""`
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		plain := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		switch c {
		case '.', '_', '-', '+', ':', '@', '/', ',', '=', '%':
			plain = true
		}
		if !plain {
			return strconv.Quote(s)
		}
	}
	return s
}

// Names applies Name to each of list.
func Names(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = Name(s)
	}
	return out
}

// Terminal returns a writer that passes text on to w with every control
// character but newline and tab, and every byte that is not UTF-8, written
// as an escape (\x1b, \u009b): what another program wrote (a process's
// log) cannot move the cursor, set the title or change the colours of the
// terminal it is shown on. Each write is escaped on its own.
func Terminal(w io.Writer) io.Writer { return terminal{w} }

type terminal struct{ w io.Writer }

func (t terminal) Write(p []byte) (int, error) {
	out := make([]byte, 0, len(p))
	for rest := p; len(rest) > 0; {
		r, size := utf8.DecodeRune(rest)
		switch {
		case r == utf8.RuneError && size <= 1:
			out = fmt.Appendf(out, `\x%02x`, rest[0])
		case r == '\n' || r == '\t' || !unicode.IsControl(r):
			out = append(out, rest[:size]...)
		case r < 0x80:
			out = fmt.Appendf(out, `\x%02x`, r)
		default:
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		rest = rest[size:]
	}
	if _, err := t.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}
