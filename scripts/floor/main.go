// Command floor is the kernel floor scripts/bench.sh measures nsrun's up
// and down of many namespaces against: the same kernel work, done with
// nothing else: no spec, no record, no checks of what exists, no firewall
// (and no files in /etc/netns but with -etc). For each namespace i of N
// it makes the namespace PREFIXi with lo up and a veth pair (PREFIXi on
// the host, eth0 inside, made there), labels the host side, gives both
// sides an address of a /30 of SUBNET (a /16), turns IPv6 off on the
// host side and route_localnet on, brings both up and routes the
// namespace through the host; on as many workers as nsrun uses. down
// deletes the namespaces, as ip netns del does: the kernel removes their
// pairs with them.
//
// With -etc, up also writes each namespace's /etc/netns files as nsrun
// does: one hosts file naming all N and a copy of the host's resolv.conf,
// written once and hard-linked into each namespace's directory, beside
// its pair; down removes them (and /etc/netns, when left empty).
// scripts/bench.sh adds the project's firewall rules and counters to that
// for the floor of the same work as nsrun's up.
//
//	floor up [-etc] PREFIX N SUBNET
//	floor down PREFIX N
package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/internal/sysctl"
	"github.com/nsrun/nsrun/netns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// workers is as many as nsrun's steps run on (project.workers).
const workers = 8

func main() {
	etc := len(os.Args) > 2 && os.Args[1] == "up" && os.Args[2] == "-etc"
	if etc {
		os.Args = slices.Delete(os.Args, 2, 3)
	}
	if len(os.Args) < 4 || (os.Args[1] == "up" && len(os.Args) != 5) {
		fmt.Fprintln(os.Stderr, "usage: floor up [-etc] PREFIX N SUBNET | floor down PREFIX N")
		os.Exit(2)
	}
	prefix := os.Args[2]
	n, err := strconv.Atoi(os.Args[3])
	if err != nil || n < 1 || n > 16384 {
		fmt.Fprintf(os.Stderr, "floor: N %q: want 1-16384\n", os.Args[3])
		os.Exit(2)
	}
	var each func(i int) error
	switch os.Args[1] {
	case "up":
		subnet, err := netip.ParsePrefix(os.Args[4])
		if err != nil || !subnet.Addr().Is4() || subnet.Bits() != 16 {
			fmt.Fprintf(os.Stderr, "floor: SUBNET %q: want an IPv4 /16\n", os.Args[4])
			os.Exit(2)
		}
		base := subnet.Masked().Addr().As4()
		if etc {
			if err := writeEtc(prefix, n, base); err != nil {
				fmt.Fprintln(os.Stderr, "floor:", err)
				os.Exit(1)
			}
		}
		each = func(i int) error {
			name := fmt.Sprintf("%s%d", prefix, i)
			if err := up(name, base, i); err != nil {
				return err
			}
			if etc && i > 0 {
				return linkEtc(prefix, name)
			}
			return nil
		}
	case "down":
		each = func(i int) error {
			name := fmt.Sprintf("%s%d", prefix, i)
			return errors.Join(down(name), os.RemoveAll(filepath.Join(netns.EtcDir, name)))
		}
	default:
		fmt.Fprintf(os.Stderr, "floor: unknown command %q: up or down\n", os.Args[1])
		os.Exit(2)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, workers)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := each(i); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	if os.Args[1] == "down" {
		os.Remove(netns.EtcDir) // when left empty, as nsrun's down does
	}
	close(errs)
	failed := false
	for err := range errs {
		fmt.Fprintln(os.Stderr, "floor:", err)
		failed = true
	}
	if failed {
		os.Exit(1)
	}
}

// writeEtc writes the files of the first namespace, PREFIX0: the hosts
// file names all n namespaces at their inner addresses.
func writeEtc(prefix string, n int, base [4]byte) error {
	var hosts strings.Builder
	hosts.WriteString("# written by the floor\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for i := range n {
		fmt.Fprintf(&hosts, "%s\t%s%d\n", peerAddr(base, i), prefix, i)
	}
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return err
	}
	dir := filepath.Join(netns.EtcDir, prefix+"0")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(hosts.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "resolv.conf"), resolv, 0o644)
}

// linkEtc links the first namespace's files into namespace name's
// directory.
func linkEtc(prefix, name string) error {
	dir := filepath.Join(netns.EtcDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range host.EtcNames {
		if err := os.Link(filepath.Join(netns.EtcDir, prefix+"0", f), filepath.Join(dir, f)); err != nil {
			return err
		}
	}
	return nil
}

// hostAddr and peerAddr are the host side's and the namespace side's
// addresses of the i-th /30 of the /16 at base.
func hostAddr(base [4]byte, i int) net.IP {
	return net.IPv4(base[0], base[1], byte(i>>6), byte(i&63)<<2+1)
}

func peerAddr(base [4]byte, i int) net.IP {
	return net.IPv4(base[0], base[1], byte(i>>6), byte(i&63)<<2+2)
}

// up makes namespace name, the i-th, and its pair on the i-th /30 of the
// /16 at base.
func up(name string, base [4]byte, i int) error {
	if err := netns.Create(name); err != nil { // lo up too
		return err
	}
	ns, err := netns.Handle(name)
	if err != nil {
		return err
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer nh.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	hostSide := &netlink.Veth{LinkAttrs: attrs, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ns))}
	if err := netlink.LinkAdd(hostSide); err != nil { // looks the link up for its index
		return fmt.Errorf("%s: %w", name, err)
	}
	if hostSide.Index == 0 {
		return fmt.Errorf("%s: created but not found", name)
	}
	peer, err := nh.LinkByName("eth0")
	if err != nil {
		return err
	}
	hostIP, peerIP := hostAddr(base, i), peerAddr(base, i)
	mask := net.CIDRMask(30, 32)
	if err := netlink.LinkSetAlias(hostSide, "floor:"+name); err != nil {
		return err
	}
	if err := netlink.AddrAdd(hostSide, &netlink.Addr{IPNet: &net.IPNet{IP: hostIP, Mask: mask}}); err != nil {
		return err
	}
	if err := sysctl.Set(sysctl.Link6(name, "disable_ipv6"), "1"); err != nil {
		return err
	}
	if err := sysctl.SetLink(name, "route_localnet", "1"); err != nil {
		return err
	}
	if err := netlink.LinkSetUp(hostSide); err != nil {
		return err
	}
	if err := nh.AddrAdd(peer, &netlink.Addr{IPNet: &net.IPNet{IP: peerIP, Mask: mask}}); err != nil {
		return err
	}
	if err := nh.LinkSetUp(peer); err != nil {
		return err
	}
	return nh.RouteReplace(&netlink.Route{LinkIndex: peer.Attrs().Index, Gw: hostIP})
}

// down deletes namespace name.
func down(name string) error { return netns.Delete(name) }
