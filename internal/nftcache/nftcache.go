// Package nftcache keeps what programs that read the firewalls printed,
// keyed on a version of what they read. For nftables that is the ruleset's
// generation: the kernel bumps it with every change to any table
// (iptables-nft's, firewalld's, nsrun's own), and only then, so an output
// kept at a generation is what the program would print again while the
// generation is the same; an up that changes nothing reads the firewalls
// without running a program. iptables-legacy's x_tables have no
// generation; their version is a digest of their rules (xtables.Digest).
// Counters change neither: nothing read through the cache may be read for
// counters.
package nftcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/nsrun/nsrun/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// Cache keeps results in the directory Dir, one file per key, so that a
// read costs what its key holds, not what every key does (one project's
// drift beside thousands of others'). A nil Cache, or one whose Dir's
// parent does not exist, keeps nothing: every Output runs its program.
type Cache struct {
	Dir string

	mu   sync.Mutex
	held map[string]entry // by key, the entries as this process last read or wrote them
}

// Result is what a program did: its standard output and error and its
// exit status.
type Result struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	Code   int    `json:"code"`
	// At is the version the output is of; "" when it is not known (no
	// cache, or the version changed while the program ran).
	At string `json:"-"`
}

// Err is nil for a program that exited 0, else an error with the exit
// status and what it printed on its standard error.
func (r Result) Err(argv ...string) error {
	if r.Code == 0 {
		return nil
	}
	return fmt.Errorf("%s: exit status %d: %s", strings.Join(argv, " "), r.Code, strings.TrimSpace(r.Stderr))
}

// A Version names the state a program's output reflects: while it
// returns the same string, the program would print the same again.
type Version func() (string, error)

// NFTGeneration is the version of what reads nftables: its generation.
func NFTGeneration() (string, error) {
	g, err := Generation()
	return fmt.Sprintf("nftables generation %d", g), err
}

// entry is what a key's file holds: the last result kept and the version
// it was kept at.
type entry struct {
	Version string `json:"version"`
	Result
}

// A key's file is a line of JSON with the entry's version, standard
// error and exit status, then the standard output as the program printed
// it: decoding a firewall's whole ruleset as a JSON string took longer
// than the rest of an unchanged up beside thousands of namespaces.
type header struct {
	Version string `json:"version"`
	Stderr  string `json:"stderr"`
	Code    int    `json:"code"`
}

// Run runs the program of argv, or returns what it did at the same
// nftables generation (RunAt with NFTGeneration).
func (c *Cache) Run(ctx context.Context, argv ...string) (Result, error) {
	return c.RunAt(ctx, NFTGeneration, argv...)
}

// RunAt runs the program of argv, or returns what it did at the same
// version: from the cache when version returns what it returned when the
// result was kept, else by running it, kept when the version did not
// change while it ran. The error is for a program that could not be run
// at all; a version that cannot be read keeps nothing.
func (c *Cache) RunAt(ctx context.Context, version Version, argv ...string) (Result, error) {
	if c == nil || c.Dir == "" {
		return run(ctx, argv)
	}
	before, err := version()
	if err != nil {
		return run(ctx, argv)
	}
	key := strings.Join(argv, "\x00")
	if r, ok := c.lookup(before, key); ok {
		r.At = before
		return r, nil
	}
	r, err := run(ctx, argv)
	if err != nil {
		return r, err
	}
	if after, err := version(); err != nil || after != before {
		return r, nil // changed meanwhile: r may be of either version
	}
	c.keep(before, key, r)
	r.At = before
	return r, nil
}

// Later is RunAt put off until the output is needed: it returns the
// version now, and how to have the output, from the cache or by running
// the program, once; that output's At is "" unless it is of the version
// returned. A read that a kept computation answers (Lines) then needs no
// output at all.
func (c *Cache) Later(ctx context.Context, version Version, argv ...string) (string, func() (Result, error)) {
	at := ""
	if c != nil && c.Dir != "" {
		if v, err := version(); err == nil {
			at = v
		}
	}
	return at, sync.OnceValues(func() (Result, error) {
		r, err := c.RunAt(ctx, version, argv...)
		if r.At != at {
			r.At = ""
		}
		return r, err
	})
}

// Lines returns what compute returns, kept under key for as long as
// version is the same: version names everything the computation reads
// (outputs read through the cache, at their Result.At, and its other
// inputs), and the running program (another nsrun may compute otherwise)
// is added to it; compute says whether what it read was of that version
// (false: the answer is not kept). Each key holds one answer, the last
// one computed. A nil Cache, or an unknown version (""), computes every
// time.
func (c *Cache) Lines(version, key string, compute func() ([]string, bool)) []string {
	if c == nil || c.Dir == "" || version == "" || executable() == "" {
		lines, _ := compute()
		return lines
	}
	version += "\x00" + executable()
	key = "lines\x00" + key
	if r, ok := c.lookup(version, key); ok {
		var lines []string
		if json.Unmarshal([]byte(r.Stdout), &lines) == nil {
			return lines
		}
	}
	lines, of := compute()
	if data, err := json.Marshal(lines); err == nil && of {
		c.keep(version, key, Result{Stdout: string(data)})
	}
	return lines
}

// executable names the running program's file (device, inode, size and
// change time); "" when it cannot be read.
var executable = sync.OnceValue(func() string {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return ""
	}
	return fmt.Sprintf("%d:%d:%d:%d", st.Dev, st.Ino, st.Size, st.Ctim.Nano())
})

// lookup returns the result kept for key at that version: from what
// this process holds, else from the key's file (which another nsrun may
// have written since).
func (c *Cache) lookup(version, key string) (Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.held[key]; ok && e.Version == version {
		return e.Result, true
	}
	e, ok := c.load(key)
	if ok {
		c.hold(key, e)
	}
	return e.Result, ok && e.Version == version
}

// keep puts a result in the key's file, in place of the one kept before.
func (c *Cache) keep(version, key string, r Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := entry{Version: version, Result: r}
	c.hold(key, e)
	if err := os.Mkdir(c.Dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return // no state directory: nothing is kept
	}
	if data, err := json.Marshal(header{Version: version, Stderr: r.Stderr, Code: r.Code}); err == nil {
		data = append(append(data, '\n'), r.Stdout...)
		atomicfile.Write(c.path(key), data, 0o600) // a cache: a failed write only costs the next read
	}
}

// heldLimit is the largest output a process holds in memory: a larger one
// (a firewall's whole ruleset beside thousands of namespaces is megabytes)
// is read from its file again when asked for again; the keeper lives for
// days.
const heldLimit = 1 << 20

// hold keeps e in memory, unless its output is larger than heldLimit.
func (c *Cache) hold(key string, e entry) {
	if c.held == nil {
		c.held = map[string]entry{}
	}
	if len(e.Stdout) > heldLimit {
		delete(c.held, key)
		return
	}
	c.held[key] = e
}

// path is the file of a key: a digest of it, as keys are long and hold
// any byte.
func (c *Cache) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(c.Dir, hex.EncodeToString(sum[:16]))
}

// load reads a key's file; false when there is none or it is corrupt.
// The file is read into a string once: an output is megabytes with
// thousands of namespaces, and a copy of it more to fault in.
func (c *Cache) load(key string) (entry, bool) {
	f, err := os.Open(c.path(key))
	if err != nil {
		return entry{}, false
	}
	defer f.Close()
	var data strings.Builder
	if st, err := f.Stat(); err == nil {
		data.Grow(int(st.Size()) + 1)
	}
	if _, err := io.Copy(&data, f); err != nil {
		return entry{}, false
	}
	line, stdout, ok := strings.Cut(data.String(), "\n")
	var h header
	if !ok || json.Unmarshal([]byte(line), &h) != nil {
		return entry{}, false
	}
	return entry{Version: h.Version, Result: Result{Stdout: stdout, Stderr: h.Stderr, Code: h.Code}}, true
}

func run(ctx context.Context, argv []string) (Result, error) {
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) && ctx.Err() == nil {
		return Result{Stdout: out.String(), Stderr: errOut.String(), Code: exit.ExitCode()}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return Result{Stdout: out.String(), Stderr: errOut.String()}, nil
}

// Generation asks the kernel for the nftables ruleset's generation of the
// network namespace the caller is in (NFT_MSG_GETGEN).
func Generation() (uint32, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return 0, fmt.Errorf("nftables generation: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.Timeval{Sec: 1}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return 0, fmt.Errorf("nftables generation: %w", err)
	}
	// nlmsghdr, then nfgenmsg: family AF_UNSPEC, version NFNETLINK_V0.
	req := make([]byte, unix.NLMSG_HDRLEN+4)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETGEN)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(req[8:], 1)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("nftables generation: %w", err)
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return 0, fmt.Errorf("nftables generation: %w", err)
	}
	return parseGeneration(buf[:n])
}

// parseGeneration reads NFTA_GEN_ID from the kernel's answer to
// NFT_MSG_GETGEN.
func parseGeneration(msg []byte) (uint32, error) {
	if len(msg) < unix.NLMSG_HDRLEN+4 {
		return 0, errors.New("nftables generation: short answer")
	}
	if typ := binary.NativeEndian.Uint16(msg[4:]); typ == unix.NLMSG_ERROR {
		errno := int32(binary.NativeEndian.Uint32(msg[unix.NLMSG_HDRLEN:]))
		return 0, fmt.Errorf("nftables generation: %w", unix.Errno(-errno))
	}
	attrs := msg[unix.NLMSG_HDRLEN+4 : min(len(msg), int(binary.NativeEndian.Uint32(msg[0:])))]
	for len(attrs) >= 4 {
		alen, atype := int(binary.NativeEndian.Uint16(attrs[0:])), binary.NativeEndian.Uint16(attrs[2:])&^unix.NLA_F_NESTED
		if alen < 4 || alen > len(attrs) {
			break
		}
		if atype == unix.NFTA_GEN_ID && alen >= 8 {
			return binary.BigEndian.Uint32(attrs[4:8]), nil
		}
		attrs = attrs[min(len(attrs), (alen+3)&^3):]
	}
	return 0, errors.New("nftables generation: no NFTA_GEN_ID in the answer")
}
