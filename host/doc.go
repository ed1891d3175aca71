// Package host is nsrun's adapter to the real host: Kernel changes it
// (namespaces, links, sysctls, /etc/netns files, the firewall backends,
// the loopback shortcut, firewalld's zone) as project.System asks, and
// Observe reads all of it in bulk into an Observed, the engine's view of
// the host. Everything that touches the kernel for the engine is here,
// through the netns, veth, forward and hostfw packages; the engine's
// decisions are not.
package host
