package supervise

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Source is one process's log, shown with a prefix.
type Source struct {
	Prefix string // e.g. "ns1/web"
	Path   string
	// From is where Follow starts in the log: FromEnd for new lines only,
	// or an offset (0: the whole log).
	From int64
}

// FromEnd makes Follow print only lines written from now on.
const FromEnd = -1

// Size returns the current size of a log, for Source.From.
func Size(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// Print writes the last tail whole lines of each log, across its rotation
// (every line when tail < 0), oldest first, each prefixed "PREFIX | ". It
// streams them, so a log of any size takes the same memory. It returns
// the sources set to be followed from where it stopped.
func Print(w io.Writer, sources []Source, tail int) ([]Source, error) {
	out := make([]Source, len(sources))
	for i, s := range sources {
		parts, end := lastLines(s.Path, tail)
		if err := write(w, s.Prefix+" | ", parts); err != nil {
			return nil, err
		}
		s.From = end
		out[i] = s
	}
	return out, nil
}

// Follow writes lines as they are appended to the logs, prefixed, until
// ctx ends. It starts at the current end of each log, and follows a log
// across rotation.
func Follow(ctx context.Context, w io.Writer, sources []Source) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			follow(ctx, s, func(line string) {
				mu.Lock()
				fmt.Fprintf(w, "%s | %s\n", s.Prefix, line)
				mu.Unlock()
			})
		}()
	}
	wg.Wait()
}

func follow(ctx context.Context, s Source, emit func(string)) {
	var f *os.File
	var offset int64
	var partial string
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	first := true
	for {
		if f == nil {
			if opened, err := os.Open(s.Path); err == nil {
				f, offset = opened, 0
				if first && s.From == FromEnd {
					offset, _ = f.Seek(0, io.SeekEnd)
				} else if first {
					offset = s.From
				}
			}
			first = false
		}
		if f != nil {
			if st, err := os.Stat(s.Path); err != nil || st.Size() < offset || !sameInode(f, st) {
				f.Close() // rotated or truncated: start on the new file
				f, offset, partial = nil, 0, ""
				continue
			}
			f.Seek(offset, io.SeekStart)
			r := bufio.NewReader(f)
			for {
				chunk, err := r.ReadString('\n')
				offset += int64(len(chunk))
				if err != nil {
					partial += chunk
					break
				}
				emit(partial + chunk[:len(chunk)-1])
				partial = ""
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func sameInode(f *os.File, st os.FileInfo) bool {
	fst, err := f.Stat()
	return err == nil && os.SameFile(fst, st)
}
