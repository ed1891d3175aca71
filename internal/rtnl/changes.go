package rtnl

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Changes counts the changes to links, addresses and routes of the
// network namespace it was made in and of every namespace that one has an
// id for (NETLINK_LISTEN_ALL_NSID; a veth pair between two namespaces
// gives each an id in the other). The kernel queues a change's message on
// the socket before the call that made the change returns, so Count, which
// takes every message queued, counts every change made before it was
// called. The messages themselves are not read: only that there were some.
type Changes struct {
	fd  int
	mu  sync.Mutex
	n   uint64
	buf []byte
}

// The multicast groups of links, addresses and routes (RTMGRP_*).
const changeGroups = unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV4_ROUTE |
	unix.RTMGRP_IPV6_IFADDR | unix.RTMGRP_IPV6_ROUTE

// WatchChanges starts counting. It needs CAP_NET_ADMIN for a large
// receive queue (a burst of changes beyond it is counted all the same, as
// one change) and CAP_NET_BROADCAST for other namespaces' messages.
func WatchChanges() (*Changes, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("watching link, address and route changes: %w", err)
	}
	c := &Changes{fd: fd, buf: make([]byte, BufferSize)}
	if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_LISTEN_ALL_NSID, 1); err != nil {
		c.Close()
		return nil, fmt.Errorf("watching the changes of every namespace (NETLINK_LISTEN_ALL_NSID): %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: changeGroups}); err != nil {
		c.Close()
		return nil, fmt.Errorf("watching link, address and route changes: %w", err)
	}
	return c, nil
}

// Count takes the messages queued and returns how many batches of changes
// were seen since WatchChanges: a number that stays the same while
// nothing changes, and grows with any change (a queue that overflowed
// counts as one).
func (c *Changes) Count() (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		_, _, err := unix.Recvfrom(c.fd, c.buf, unix.MSG_DONTWAIT)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return c.n, nil
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.ENOBUFS): // messages were lost: changes all the same
			c.n++
		case err != nil:
			return c.n, fmt.Errorf("reading link, address and route changes: %w", err)
		default:
			c.n++
		}
	}
}

// Wait returns once a message is queued, or after timeout.
func (c *Changes) Wait(timeout time.Duration) error {
	fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
	_, err := unix.Poll(fds, int(timeout.Milliseconds()))
	if err != nil && !errors.Is(err, unix.EINTR) {
		return fmt.Errorf("waiting for link, address and route changes: %w", err)
	}
	return nil
}

// Close stops counting.
func (c *Changes) Close() error { return unix.Close(c.fd) }
