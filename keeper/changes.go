package keeper

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nsrun/nsrun/internal/daemon"
)

// The keeper counts the changes to links, addresses and routes of the
// host and of every namespace the host has an id for (each of nsrun's, by
// its veth pair), and answers on its socket who it is and the count. While
// it answers the same, nothing in those namespaces changed, and what an
// up read of a namespace's side of its pair is still true: the peer cache
// keeps it, and an unchanged up reads no namespace (a netlink socket
// inside each and three requests, most of its time).

// Socket is where the keeper answers.
func Socket(dir string) string { return filepath.Join(dir, "keeper.sock") }

// ChangeCounter counts link, address and route changes (rtnl.Changes).
type ChangeCounter interface {
	// Count takes what is queued and returns the count: the same while
	// nothing changes, more after any change made before the call.
	Count() (uint64, error)
	// Wait returns once something is queued, or after timeout.
	Wait(timeout time.Duration) error
}

// Serve answers on the keeper's socket of dir, until ctx ends. To
// "count" (or nothing) it answers with a line that names this keeper and
// its count of changes, when it counts (c is not nil); to "hold", once
// hold returned: "held", or "error: " and why. It keeps the count's queue
// short meanwhile.
func Serve(ctx context.Context, dir string, c ChangeCounter, hold func() error) error {
	sock := Socket(dir)
	os.Remove(sock) // a keeper before this one's
	l, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("answering up's questions on %s: %w", sock, err)
	}
	defer os.Remove(sock)
	nonce := make([]byte, 8)
	rand.Read(nonce)
	self := fmt.Sprintf("keeper %d %s", os.Getpid(), hex.EncodeToString(nonce))
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	if c != nil {
		go func() {
			for ctx.Err() == nil {
				if err := c.Wait(time.Second); err != nil {
					log.Print(err)
					sleep(ctx, time.Second)
				}
				c.Count()
			}
		}()
	}
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("answering up's questions on %s: %w", sock, err)
		}
		go answer(conn, self, c, hold)
	}
}

// answer answers one question on the keeper's socket.
func answer(conn net.Conn, self string, c ChangeCounter, hold func() error) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(time.Second))
	question, _ := bufio.NewReader(conn).ReadString('\n')
	var reply string
	switch strings.TrimSpace(question) {
	case "hold":
		reply = "held"
		if err := hold(); err != nil {
			reply = "error: " + strings.ReplaceAll(err.Error(), "\n", "; ")
		}
	default:
		if c == nil {
			return
		}
		n, err := c.Count()
		if err != nil {
			log.Print(err)
			return
		}
		reply = fmt.Sprintf("%s %d", self, n)
	}
	conn.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintln(conn, reply)
}

// Token asks the keeper of dir for its line: who it is and its count of
// changes; "" when none answers.
func Token(dir string) string {
	conn, err := net.DialTimeout("unix", Socket(dir), time.Second)
	if err != nil {
		return ""
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintln(conn, "count")
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "keeper ") {
		return ""
	}
	return strings.TrimSpace(line)
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
