package hostfw

import (
	"context"
	"errors"
	"os"
	"time"
	"unsafe"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// Event says what may have changed a firewall.
type Event string

const (
	NFTablesChanged  Event = "nftables changed (nft, iptables-nft or a daemon using them)"
	XtablesLock      Event = "an iptables command ran (it took /run/xtables.lock)"
	FirewalldReload  Event = "firewalld reloaded"
	FirewalldStarted Event = "firewalld started"
	FirewalldStopped Event = "firewalld stopped"
	FirewalldChanged Event = "firewalld changed a zone"
)

// Watcher sends an event whenever something may have changed a firewall,
// from what the kernel and firewalld tell: nftables' netlink
// notifications (which cover iptables-nft), firewalld's signals and its
// name's owners on the system bus, and the opening of the xtables lock,
// which every iptables command that changes rules takes. Programs that
// change iptables-legacy without the lock send nothing: the keeper's
// periodic check is for them.
type Watcher struct {
	C    chan Event
	Lock string // the xtables lock; "" is /run/xtables.lock
	Bus  string // the system bus socket; "" is SystemBus
}

// NewWatcher makes a watcher; Run starts it.
func NewWatcher() *Watcher { return &Watcher{C: make(chan Event, 64)} }

func (w *Watcher) send(e Event) {
	select {
	case w.C <- e:
	default: // full: what is queued makes a check anyway
	}
}

// Run watches until ctx ends. It returns an error only when nftables'
// notifications cannot be had at all; the bus and the lock are tried
// again every retry while they are missing.
func (w *Watcher) Run(ctx context.Context, retry time.Duration) error {
	nft, err := nftMonitor()
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); nft.Close() }()
	go w.readNFT(nft)
	go w.watchLock(ctx, retry)
	go w.watchFirewalld(ctx, retry)
	return nil
}

// nftMonitor is a netlink socket subscribed to nftables' notifications
// (NFNLGRP_NFTABLES), non-blocking under Go's poller so that Close ends a
// read.
func nftMonitor() (*os.File, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (unix.NFNLGRP_NFTABLES - 1)}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "nftables-monitor"), nil
}

func (w *Watcher) readNFT(f *os.File) {
	buf := make([]byte, 64<<10)
	for {
		_, err := f.Read(buf)
		switch {
		case err == nil, errors.Is(err, unix.ENOBUFS): // lost some: a change all the same
			w.send(NFTablesChanged)
		case errors.Is(err, os.ErrClosed):
			return
		default:
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// watchLock watches the xtables lock being opened, adding the watch once
// the file exists.
func (w *Watcher) watchLock(ctx context.Context, retry time.Duration) {
	path := w.Lock
	if path == "" {
		path = "/run/xtables.lock"
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), "inotify")
	go func() { <-ctx.Done(); f.Close() }()
	for {
		if _, err := unix.InotifyAddWatch(fd, path, unix.IN_OPEN|unix.IN_DELETE_SELF); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
	}
	buf := make([]byte, 4096)
	for {
		n, err := f.Read(buf)
		if err != nil {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			if ev.Mask&(unix.IN_DELETE_SELF|unix.IN_IGNORED) != 0 {
				f.Close()
				go w.watchLock(ctx, retry) // a new file: watch it anew
				return
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
		w.send(XtablesLock)
	}
}

// watchFirewalld follows firewalld on the system bus: its signals (Reloaded
// among them) and its name's owner coming and going. It connects again
// whenever the bus goes away.
func (w *Watcher) watchFirewalld(ctx context.Context, retry time.Duration) {
	socket := w.Bus
	if socket == "" {
		socket = SystemBus
	}
	for ctx.Err() == nil {
		w.followBus(ctx, socket)
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}

func (w *Watcher) followBus(ctx context.Context, socket string) {
	if _, err := os.Stat(socket); err != nil {
		return
	}
	conn, err := dbus.Connect("unix:path="+socket, dbus.WithContext(ctx))
	if err != nil {
		return
	}
	defer conn.Close()
	if conn.AddMatchSignal(dbus.WithMatchSender(fwName)) != nil ||
		conn.AddMatchSignal(dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, fwName)) != nil {
		return
	}
	signals := make(chan *dbus.Signal, 16)
	conn.Signal(signals)
	// firewalld may have started while no one listened.
	if ok, _ := running(ctx, conn); ok {
		w.send(FirewalldStarted)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case s, ok := <-signals:
			if !ok {
				return // the bus went away
			}
			w.send(firewalldEvent(s))
		}
	}
}

func firewalldEvent(s *dbus.Signal) Event {
	switch {
	case s.Name == "org.freedesktop.DBus.NameOwnerChanged" && len(s.Body) == 3:
		if owner, _ := s.Body[2].(string); owner == "" {
			return FirewalldStopped
		}
		return FirewalldStarted
	case s.Name == fwName+".Reloaded":
		return FirewalldReload
	}
	return FirewalldChanged
}
