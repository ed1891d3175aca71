package specs

import (
	"fmt"
	"sort"
	"strings"
)

// position is a place in the spec file, for messages.
type position struct {
	Line, Col int
}

// Problem is one thing wrong with a spec, at a place in its file.
type Problem struct {
	File      string
	Line, Col int
	Path      string // field path, e.g. namespaces.ns1.ports[0]
	Msg       string
}

// Error formats the problem as FILE:LINE:COL: PATH: message, leaving out
// the position or the path when there is none.
func (p Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Line, p.Col)
	}
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error is every problem found in a spec. A spec with problems changes
// nothing: callers report them all and stop (exit status 2).
type Error struct {
	Problems []Problem
}

// maxShown bounds the problems an Error prints; a hostile spec can have
// one per line.
const maxShown = 50

func (e *Error) Error() string {
	var lines []string
	for i, p := range e.Problems {
		if i == maxShown {
			lines = append(lines, fmt.Sprintf("%s: ... and %d more problems", p.File, len(e.Problems)-maxShown))
			break
		}
		lines = append(lines, p.Error())
	}
	return strings.Join(lines, "\n")
}

// problems collects problems while a spec is parsed and validated.
type problems struct {
	file string
	list []Problem
}

func (ps *problems) add(at position, path, format string, args ...any) {
	ps.list = append(ps.list, Problem{File: ps.file, Line: at.Line, Col: at.Col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	sort.SliceStable(ps.list, func(i, j int) bool {
		a, b := ps.list[i], ps.list[j]
		return a.Line < b.Line || (a.Line == b.Line && a.Col < b.Col)
	})
	return &Error{Problems: ps.list}
}
