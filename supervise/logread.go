package supervise

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// A log is PATH.1 (the rotated part, complete) followed by PATH (being
// written). The reading here is the one "tail across rotation": Print,
// Tail and the starting point of Follow all go through lastLines, and
// stream what they find, so memory stays constant whatever the log's size.

// part is a stretch of whole lines of one file, [start, end).
type part struct {
	path       string
	start, end int64
}

// lastLines returns the parts of a log that hold its last n whole lines,
// oldest first (every line when n < 0), and where the whole lines of the
// current file end: a last line still being written (no newline yet) is
// not a line, and following starts there.
func lastLines(path string, n int) (parts []part, end int64) {
	end = wholeEnd(path, false)
	cur := part{path: path, end: end}
	k := -1
	if n >= 0 {
		cur.start, k = linesBack(path, end, n)
	}
	if cur.end > cur.start {
		parts = append(parts, cur)
	}
	if n < 0 || k < n {
		old := part{path: path + ".1", end: wholeEnd(path+".1", true)}
		if n >= 0 {
			old.start, _ = linesBack(old.path, old.end, n-max(k, 0))
		}
		if old.end > old.start {
			parts = append([]part{old}, parts...)
		}
	}
	return parts, end
}

// wholeEnd returns where the whole lines of a file end: just past its
// last newline. A complete file (the rotated part) ends where it ends,
// newline or not.
func wholeEnd(path string, complete bool) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	if complete {
		return st.Size()
	}
	end := int64(0)
	scanBack(f, st.Size(), func(pos int64) bool { end = pos + 1; return false })
	return end
}

// linesBack returns where the last n lines of a file's first end bytes
// start, and how many lines there are from there (fewer than n when the
// file is shorter).
func linesBack(path string, end int64, n int) (int64, int) {
	f, err := os.Open(path)
	if err != nil || n <= 0 || end == 0 {
		return end, 0
	}
	defer f.Close()
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, end-1); err == nil && last[0] == '\n' {
		end-- // the newline that ends the last line starts no line
	}
	start, found := int64(0), 0
	scanBack(f, end, func(pos int64) bool {
		found++
		start = pos + 1
		return found < n
	})
	if found < n {
		return 0, found + 1 // the first line has no newline before it
	}
	return start, found
}

// scanBack calls fn with the offset of each newline before end, last
// first, while fn returns true. It reads in blocks of 64 KiB.
func scanBack(f *os.File, end int64, fn func(pos int64) bool) {
	buf := make([]byte, 64<<10)
	for pos := end; pos > 0; {
		size := min(int64(len(buf)), pos)
		pos -= size
		if _, err := f.ReadAt(buf[:size], pos); err != nil && !errors.Is(err, io.EOF) {
			return
		}
		for i := size - 1; i >= 0; i-- {
			if buf[i] == '\n' && !fn(pos+i) {
				return
			}
		}
	}
}

// write streams the parts to w, each line prefixed.
func write(w io.Writer, prefix string, parts []part) error {
	bw := bufio.NewWriter(w)
	for _, p := range parts {
		if err := writePart(bw, prefix, p); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func writePart(w *bufio.Writer, prefix string, p part) error {
	f, err := os.Open(p.path)
	if err != nil {
		return nil // rotated away meanwhile: nothing to show
	}
	defer f.Close()
	r := bufio.NewReaderSize(io.NewSectionReader(f, p.start, p.end-p.start), 64<<10)
	atStart := true
	for {
		chunk, err := r.ReadSlice('\n')
		if len(chunk) > 0 {
			if atStart {
				w.WriteString(prefix)
			}
			w.Write(chunk)
			atStart = chunk[len(chunk)-1] == '\n'
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue // a line longer than the buffer: go on with it
		case errors.Is(err, io.EOF):
			if !atStart {
				w.WriteByte('\n') // the rotated part's last line had no newline
			}
			return nil
		case err != nil:
			return fmt.Errorf("reading %s: %w", p.path, err)
		}
	}
}

// Tail returns the last n whole lines of a log, across its rotation.
func Tail(path string, n int) []string {
	parts, _ := lastLines(path, n)
	var b bytes.Buffer
	if write(&b, "", parts) != nil || b.Len() == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
}
