package keeper

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nsrun/nsrun/internal/daemon"
	"github.com/nsrun/nsrun/internal/rtnl"
)

// Socket is where the keeper answers up: "hold" makes it hold the ports
// the projects publish now; "changes" asks for its count of the host's
// changes.
func Socket(dir string) string { return filepath.Join(dir, "keeper.sock") }

// Serve answers on the keeper's socket of dir, until ctx ends: to "hold",
// once hold returned, "held" or "error: " and why; to "changes", "changes
// " and what changes returns (or "error: "); to anything else, nothing.
func Serve(ctx context.Context, dir string, hold func() error, changes func() (string, error)) error {
	sock := Socket(dir)
	os.Remove(sock) // a keeper before this one's
	l, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("answering up's questions on %s: %w", sock, err)
	}
	defer os.Remove(sock)
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("answering up's questions on %s: %w", sock, err)
		}
		go answer(conn, hold, changes)
	}
}

// answer answers one question on the keeper's socket.
func answer(conn net.Conn, hold func() error, changes func() (string, error)) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(time.Second))
	question, _ := bufio.NewReader(conn).ReadString('\n')
	var reply string
	var err error
	switch strings.TrimSpace(question) {
	case "hold":
		reply, err = "held", hold()
	case "changes":
		if changes == nil {
			return
		}
		var n string
		n, err = changes()
		reply = "changes " + n
	default:
		return
	}
	if err != nil {
		reply = "error: " + strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	conn.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintln(conn, reply)
}

// Changes asks the keeper of dir for its count of the host's changes
// (HostChanges); an error when no keeper answers it at once.
func Changes(dir string) (string, error) {
	conn, err := net.DialTimeout("unix", Socket(dir), time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprintln(conn, "changes")
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("asking the keeper for its count of the host's changes: %w", err)
	}
	n, ok := strings.CutPrefix(strings.TrimSpace(line), "changes ")
	if !ok {
		return "", fmt.Errorf("asking the keeper for its count of the host's changes: it answered %q", line)
	}
	return n, nil
}

// HostChanges starts counting the changes to the host's links,
// addresses, routes and next hops (rtnl.Changes), and returns how to read
// the count: this keeper's (a random name, chosen now) and the number, so
// that two keepers' counts never read the same.
func HostChanges() (func() (string, error), func() error, error) {
	c, err := rtnl.WatchChanges()
	if err != nil {
		return nil, nil, err
	}
	name := rand.Text()
	return func() (string, error) {
		n, err := c.Count()
		return fmt.Sprintf("%s-%d", name, n), err
	}, c.Close, nil
}

// ask asks the keeper of dir to hold the ports the projects publish now,
// and waits for it to answer: nil once it holds them.
func ask(ctx context.Context, dir string) error {
	// A keeper just started may not answer yet.
	var conn net.Conn
	var err error
	daemon.Await(ctx, 10*time.Second, 10*time.Millisecond, func() bool {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "unix", Socket(dir))
		return err == nil
	})
	if err != nil {
		return fmt.Errorf("asking the keeper to hold the published ports: %w; see %s", err, Log(dir))
	}
	defer conn.Close()
	deadline := time.Now().Add(30 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	fmt.Fprintln(conn, "hold")
	line, err := bufio.NewReader(conn).ReadString('\n')
	switch line = strings.TrimSpace(line); {
	case err != nil:
		return fmt.Errorf("asking the keeper to hold the published ports: %w; see %s", err, Log(dir))
	case line == "held":
		return nil
	case strings.HasPrefix(line, "error: "):
		return errors.New(strings.TrimPrefix(line, "error: "))
	}
	return fmt.Errorf("%w: it answered %q to hold", errOldKeeper, line)
}

// errOldKeeper: the keeper running is an older nsrun's, which holds no
// port.
var errOldKeeper = errors.New("the keeper is an older nsrun's")
