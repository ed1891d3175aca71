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
	mu      sync.Mutex
	records map[string]cachedRecord
}

type cachedRecord struct {
	ino, size uint64
	mtime     time.Time
	record    *Record
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
	key.record = r
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.records == nil {
		c.records = map[string]cachedRecord{}
	}
	c.records[project] = key
	return r, nil
}
