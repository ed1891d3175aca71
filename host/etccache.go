package host

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nsrun/nsrun/internal/atomicfile"
	"github.com/nsrun/nsrun/netns"
)

// EtcCache keeps, in a file of the state directory Dir
// (etc-cache.json), digests of nsrun's files in /etc/netns as last read,
// each with the inode, size and change time it had: each namespace's
// hosts file names every namespace of its project, so reading them all
// again costs the square of their number. A nil EtcCache keeps nothing.
type EtcCache struct {
	Dir string
}

type etcCacheFile struct {
	Version int                             `json:"version"`
	Files   map[string]map[string]cachedEtc `json:"files"` // namespace -> file name -> file
}

// etcCacheVersion changes with what etcCacheFile holds: a file of another
// version, another nsrun's, keeps nothing.
const etcCacheVersion = 1

// cachedEtc is one of nsrun's files of a namespace as read, and the file
// it was read from: its inode, size and change time. A file changed since
// has another change time, unless it changed within the tick of the file
// system's clock in which it was read: a file changed less than a second
// before it was read is not kept (what git calls racily clean).
type cachedEtc struct {
	Inode uint64 `json:"inode"`
	Size  int64  `json:"size"`
	Ctime int64  `json:"ctime"` // ns since the epoch
	Ours  bool   `json:"ours"`
	Sum   string `json:"sum"` // hex: a JSON array of 32 numbers reads ten times slower
}

// file is the kept file; false when what is kept is not a digest.
func (c cachedEtc) file() (EtcFile, bool) {
	f := EtcFile{Ours: c.Ours}
	n, err := hex.Decode(f.Sum[:], []byte(c.Sum))
	return f, err == nil && n == len(f.Sum) && len(c.Sum) == 2*len(f.Sum)
}

// readEtcCached is readEtc, taking from kept each file whose inode, size
// and change time are those kept; it returns the files, and those to keep.
func readEtcCached(ns string, buf []byte, kept map[string]cachedEtc) (map[string]EtcFile, map[string]cachedEtc) {
	files, keep := map[string]EtcFile{}, map[string]cachedEtc{}
	for _, name := range EtcNames {
		path := filepath.Join(netns.EtcDir, ns, name)
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			continue // as readEtc: a file that is not there
		}
		now := cachedEtc{Inode: st.Ino, Size: st.Size, Ctime: st.Ctim.Nano()}
		if k, ok := kept[name]; ok && k.Inode == now.Inode && k.Size == now.Size && k.Ctime == now.Ctime {
			if f, ok := k.file(); ok {
				files[name], keep[name] = f, k
				continue
			}
		}
		f, ok := readEtcFile(path, buf)
		if !ok {
			continue
		}
		files[name] = f
		if time.Since(time.Unix(0, now.Ctime)) > time.Second {
			now.Ours, now.Sum = f.Ours, hex.EncodeToString(f.Sum[:])
			keep[name] = now
		}
	}
	return files, keep
}

func (c *EtcCache) path() string { return filepath.Join(c.Dir, "etc-cache.json") }

// load returns the files kept, by namespace.
func (c *EtcCache) load() map[string]map[string]cachedEtc {
	var f etcCacheFile
	if c == nil {
		return nil
	}
	if err := atomicfile.ReadJSON(c.path(), &f); err != nil || f.Version != etcCacheVersion {
		return nil
	}
	return f.Files
}

// save keeps the files read of some namespaces beside those kept before,
// but those of the namespaces queried that do not exist (the others'
// stay: a kept file is taken only while its inode, size and change time
// are the same).
func (c *EtcCache) save(read map[string]map[string]cachedEtc, queried []string, exists map[string]bool) {
	if c == nil || len(read) == 0 {
		return
	}
	f := etcCacheFile{Version: etcCacheVersion, Files: c.load()}
	if f.Files == nil {
		f.Files = map[string]map[string]cachedEtc{}
	}
	for _, ns := range queried {
		if !exists[ns] {
			delete(f.Files, ns)
		}
	}
	for ns, files := range read {
		if len(files) == 0 {
			delete(f.Files, ns)
		} else {
			f.Files[ns] = files
		}
	}
	atomicfile.WriteJSON(c.path(), f) // a cache: a failed write costs the next up a read
}

// forget empties the cache.
func (c *EtcCache) forget() {
	if c != nil {
		os.Remove(c.path())
	}
}
