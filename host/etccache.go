package host

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nsrun/nsrun/internal/atomicfile"
	"github.com/nsrun/nsrun/netns"
)

// EtcCache keeps, in a file of the state directory Dir (etc-cache),
// digests of nsrun's files in /etc/netns as last read, each with the
// inode, size and change time it had: each namespace's hosts file names
// every namespace of its project, so reading them all again costs the
// square of their number. The file is one line per file kept, led by its
// namespace, so that a query takes only its own namespaces' lines (beside
// thousands of other namespaces, decoding all of them cost an unchanged
// up more than reading its own files). A nil EtcCache keeps nothing.
type EtcCache struct {
	Dir string
}

// etcCacheHeader is the file's first line; it changes with what a line
// holds: a file of another version, another nsrun's, keeps nothing.
const etcCacheHeader = "nsrun etc-cache 2\n"

// cachedEtc is one of nsrun's files of a namespace as read, and the file
// it was read from: its inode, size and change time. A file changed since
// has another change time, unless it changed within the tick of the file
// system's clock in which it was read: a file changed less than a second
// before it was read is not kept (what git calls racily clean).
type cachedEtc struct {
	Inode uint64
	Size  int64
	Ctime int64 // ns since the epoch
	Ours  bool
	Sum   string // hex
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

func (c *EtcCache) path() string { return filepath.Join(c.Dir, "etc-cache") }

// lines returns the file's lines after its header; nil when there is no
// file, or one of another version.
func (c *EtcCache) lines() []byte {
	if c == nil {
		return nil
	}
	data, err := os.ReadFile(c.path())
	if err != nil || !bytes.HasPrefix(data, []byte(etcCacheHeader)) {
		return nil
	}
	return data[len(etcCacheHeader):]
}

// A line is NS, file name, inode, size, change time, ours (0 or 1) and
// the digest's hex, separated by tabs.
func etcLine(ns, name string, f cachedEtc) string {
	ours := 0
	if f.Ours {
		ours = 1
	}
	return fmt.Sprintf("%s\t%s\t%d\t%d\t%d\t%d\t%s\n", ns, name, f.Inode, f.Size, f.Ctime, ours, f.Sum)
}

// parseEtcLine reads a line but its namespace; false for one that is not
// of that form.
func parseEtcLine(rest []byte) (string, cachedEtc, bool) {
	fields := strings.Split(strings.TrimSuffix(string(rest), "\n"), "\t")
	if len(fields) != 6 || (fields[4] != "0" && fields[4] != "1") {
		return "", cachedEtc{}, false
	}
	f := cachedEtc{Ours: fields[4] == "1", Sum: fields[5]}
	var err1, err2, err3 error
	f.Inode, err1 = strconv.ParseUint(fields[1], 10, 64)
	f.Size, err2 = strconv.ParseInt(fields[2], 10, 64)
	f.Ctime, err3 = strconv.ParseInt(fields[3], 10, 64)
	return fields[0], f, err1 == nil && err2 == nil && err3 == nil
}

// load returns the files kept of the namespaces named, by namespace.
func (c *EtcCache) load(names []string) map[string]map[string]cachedEtc {
	data := c.lines()
	if data == nil {
		return nil
	}
	asked := make(map[string]bool, len(names))
	for _, ns := range names {
		asked[ns] = true
	}
	out := map[string]map[string]cachedEtc{}
	for line := range bytes.Lines(data) {
		ns, rest, ok := bytes.Cut(line, []byte("\t"))
		if !ok || !asked[string(ns)] {
			continue
		}
		if name, f, ok := parseEtcLine(rest); ok {
			if out[string(ns)] == nil {
				out[string(ns)] = map[string]cachedEtc{}
			}
			out[string(ns)][name] = f
		}
	}
	return out
}

// save keeps the files read of some namespaces in place of those kept of
// them before, and drops those of the namespaces queried that do not
// exist; the other namespaces' lines stay as they are (a kept file is
// taken only while its inode, size and change time are the same).
func (c *EtcCache) save(read map[string]map[string]cachedEtc, queried []string, exists map[string]bool) {
	if c == nil || len(read) == 0 {
		return
	}
	drop := map[string]bool{}
	for _, ns := range queried {
		if !exists[ns] {
			drop[ns] = true
		}
	}
	for ns := range read {
		drop[ns] = true
	}
	var b bytes.Buffer
	b.WriteString(etcCacheHeader)
	for line := range bytes.Lines(c.lines()) {
		if ns, _, ok := bytes.Cut(line, []byte("\t")); ok && !drop[string(ns)] && bytes.HasSuffix(line, []byte("\n")) {
			b.Write(line)
		}
	}
	for _, ns := range slices.Sorted(maps.Keys(read)) {
		for _, name := range slices.Sorted(maps.Keys(read[ns])) {
			b.WriteString(etcLine(ns, name, read[ns][name]))
		}
	}
	atomicfile.Write(c.path(), b.Bytes(), 0o600)      // a cache: a failed write costs the next up a read
	os.Remove(filepath.Join(c.Dir, "etc-cache.json")) // an older nsrun's
}

// forget empties the cache.
func (c *EtcCache) forget() {
	if c != nil {
		os.Remove(c.path())
	}
}
