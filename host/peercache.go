package host

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nsrun/nsrun/internal/atomicfile"
	"github.com/nsrun/nsrun/keeper"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/veth"
)

// PeerCache keeps, in a file of the state directory Dir, the namespaces'
// sides of their pairs as last read, with the keeper's answer at the time
// (peers-cache.json). A nil PeerCache keeps nothing.
type PeerCache struct {
	Dir string
}

type peerFile struct {
	Version int                   `json:"version"`
	Token   string                `json:"token"`
	Peers   map[string]cachedPeer `json:"peers"`
}

// peerFileVersion changes with what peerFile holds: a file of another
// version, another nsrun's, keeps nothing.
const peerFileVersion = 1

// cachedPeer is a namespace's side of its pair, and which namespace it
// was read in: the inode of its /run/netns file (a namespace deleted and
// made again is another; that its pair went with it is a change too);
// and nsrun's files in its /etc/netns directory.
type cachedPeer struct {
	Inode uint64               `json:"inode"`
	Peer  veth.Peer            `json:"peer"`
	Etc   map[string]cachedEtc `json:"etc,omitempty"`
}

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

func (c *PeerCache) path() string { return filepath.Join(c.Dir, "peers-cache.json") }

// token is the keeper's answer now; "" without a cache or a keeper.
func (c *PeerCache) token() string {
	if c == nil {
		return ""
	}
	return keeper.Token(c.Dir)
}

// load returns the peers kept at that token: none for another, or "".
func (c *PeerCache) load(token string) map[string]cachedPeer {
	var f peerFile
	if c == nil || token == "" {
		return nil
	}
	if err := atomicfile.ReadJSON(c.path(), &f); err != nil || f.Version != peerFileVersion || f.Token != token {
		return nil
	}
	return f.Peers
}

// save keeps peers read at that token, beside those kept at it before.
func (c *PeerCache) save(token string, peers map[string]cachedPeer) {
	if c == nil || token == "" || len(peers) == 0 {
		return
	}
	f := peerFile{Version: peerFileVersion, Token: token, Peers: c.load(token)}
	if f.Peers == nil {
		f.Peers = map[string]cachedPeer{}
	}
	for name, p := range peers {
		f.Peers[name] = p
	}
	atomicfile.WriteJSON(c.path(), f) // a cache: a failed write costs the next up a read
}

// forget empties the cache.
func (c *PeerCache) forget() {
	if c != nil {
		os.Remove(c.path())
	}
}

// reusable returns the kept peer of a namespace that exists, when it is
// still the namespace it was read in and its peer existed then (a
// namespace without one may not have an id on the host: its changes
// would not be counted).
func reusable(kept map[string]cachedPeer, name string, inode uint64) (veth.Peer, bool) {
	p, ok := kept[name]
	if !ok || inode == 0 || p.Inode != inode || !p.Peer.Exists {
		return veth.Peer{}, false
	}
	return p.Peer, true
}

// namespaceInode is the inode of a namespace's /run/netns file; 0 when it
// cannot be read.
func namespaceInode(name string) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat(netns.Path(name), &st); err != nil {
		return 0
	}
	return st.Ino
}
