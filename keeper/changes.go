package keeper

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
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

// Serve answers on the keeper's socket of dir, until ctx ends,
// with a line that names this keeper and its count of changes; it keeps
// the count's queue short meanwhile.
func Serve(ctx context.Context, dir string, c ChangeCounter) error {
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
	go func() {
		for ctx.Err() == nil {
			if err := c.Wait(time.Second); err != nil {
				log.Print(err)
				sleep(ctx, time.Second)
			}
			c.Count()
		}
	}()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("answering up's questions on %s: %w", sock, err)
		}
		if n, err := c.Count(); err == nil {
			conn.SetWriteDeadline(time.Now().Add(time.Second))
			fmt.Fprintf(conn, "%s %d\n", self, n)
		} else {
			log.Print(err)
		}
		conn.Close()
	}
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
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "keeper ") {
		return ""
	}
	return strings.TrimSpace(line)
}
