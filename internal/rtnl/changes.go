package rtnl

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// Changes hears of the changes to the links, addresses, routes and next
// hops of the network namespace it is made in (rtnetlink's multicast
// groups), and counts them when asked: nothing runs in between, the
// kernel queues the messages on the socket. It hears its own namespace
// only: a socket that hears every namespace (NETLINK_LISTEN_ALL_NSID)
// makes the kernel walk the namespace ids of the host for each message.
type Changes struct {
	mu  sync.Mutex
	fd  int
	n   uint64
	buf []byte
}

// changeGroups are the groups whose messages tell of a change to what an
// address or route dump prints, or to the names of the links they name.
const changeGroups = unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_IFADDR | unix.RTMGRP_IPV6_ROUTE

// WatchChanges starts hearing of the changes in the caller's network
// namespace.
func WatchChanges() (*Changes, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("rtnl: watching changes: %w", err)
	}
	err = unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: changeGroups})
	if err == nil { // next hops are past the 32 groups of the bind
		err = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, unix.RTNLGRP_NEXTHOP)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("rtnl: watching changes: %w", err)
	}
	return &Changes{fd: fd, buf: make([]byte, BufferSize)}, nil
}

// Count returns how many changes were heard so far, counting every change
// made before the call: the kernel queues a change's message before the
// change returns. Messages the socket had no room for count as well (the
// kernel says they were lost), so a count that did not move means nothing
// changed.
func (c *Changes) Count() (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		_, _, err := unix.Recvfrom(c.fd, c.buf, unix.MSG_DONTWAIT)
		switch {
		case err == nil, errors.Is(err, unix.ENOBUFS):
			c.n++
		case errors.Is(err, unix.EAGAIN):
			return c.n, nil
		case errors.Is(err, unix.EINTR):
		default:
			return 0, fmt.Errorf("rtnl: counting changes: %w", err)
		}
	}
}

// Close stops hearing.
func (c *Changes) Close() error { return unix.Close(c.fd) }
