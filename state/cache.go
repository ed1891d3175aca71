package state

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// Cache keeps the records it loaded while their files stay the same: the
// same inode, size and modification time (Save renames a new file over
// the old one, so a saved record is a new inode). For a reader that loads
// the same records again and again, as nsrun metrics --listen at each
// scrape; the records it returns are shared, and must not be changed.
type Cache struct {
	// Trim, when set, is what of each record loaded is kept and returned:
	// a reader that needs a part of every record keeps that part alone
	// (nil: all of it).
	Trim func(*Record) *Record

	mu      sync.Mutex
	records map[string]cachedRecord
}

type cachedRecord struct {
	ino, size uint64
	mtime     time.Time
	record    *Record
}

// loader loads st's records through c; st.Load for a nil c.
func (c *Cache) loader(st Store) func(string) (*Record, error) {
	if c == nil {
		return st.Load
	}
	return func(name string) (*Record, error) { return c.Load(st, name) }
}

// Load is st.Load, from the cache while the project's file is the same.
func (c *Cache) Load(st Store, project string) (*Record, error) {
	fi, err := os.Stat(st.statePath(project))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("project %q: %w", project, ErrNoRecord)
	}
	if err != nil {
		return nil, fmt.Errorf("reading state of project %q: %w", project, err)
	}
	key := cachedRecord{size: uint64(fi.Size()), mtime: fi.ModTime()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		key.ino = sys.Ino
	}
	c.mu.Lock()
	have, ok := c.records[project]
	c.mu.Unlock()
	if ok && have.ino == key.ino && have.size == key.size && have.mtime.Equal(key.mtime) {
		return have.record, nil
	}
	r, err := st.Load(project)
	if err != nil {
		return nil, err
	}
	if c.Trim != nil {
		r = c.Trim(r)
	}
	key.record = r
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.records == nil {
		c.records = map[string]cachedRecord{}
	}
	c.records[project] = key
	return r, nil
}
