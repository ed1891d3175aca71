// Package host is nsrun's adapter to the real host: Kernel changes it
// (namespaces, links, sysctls, /etc/netns files, firewalld's zone) as
// project.System asks, and Observe reads all of it in bulk into an
// Observed, the engine's view of the host, the firewall backends and the
// loopback shortcut included (forward.Publisher changes those). The
// engine's decisions are not here.
package host
