// Package sysctl reads and writes the kernel's settings below /proc/sys,
// by their paths there (slashes throughout: link names may hold dots).
package sysctl

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nsrun/nsrun/internal/rawfile"
)

// Root is where sysctls live.
const Root = "/proc/sys"

// IPForward is the sysctl that lets the host route between its links.
const IPForward = "net/ipv4/ip_forward"

// Link returns the path of an IPv4 per-link sysctl.
func Link(link, key string) string {
	return filepath.Join("net/ipv4/conf", link, key)
}

// IPv6Forward is the sysctl that lets the host route IPv6 between its
// links; turning it on turns it on for every link.
const IPv6Forward = "net/ipv6/conf/all/forwarding"

// Link6 returns the path of an IPv6 per-link sysctl.
func Link6(link, key string) string {
	return filepath.Join("net/ipv6/conf", link, key)
}

// Get reads a sysctl given by its path below /proc/sys.
func Get(path string) (string, error) {
	b, err := rawfile.Read(filepath.Join(Root, path))
	if err != nil {
		return "", fmt.Errorf("reading sysctl %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Set writes a sysctl given by its path below /proc/sys, unless it
// already holds the value.
func Set(path, value string) error {
	if old, err := Get(path); err == nil && old == value {
		return nil
	}
	if err := os.WriteFile(filepath.Join(Root, path), []byte(value), 0o644); err != nil {
		return fmt.Errorf("setting sysctl %s=%s: %w", path, value, err)
	}
	return nil
}

// SetLink sets an IPv4 per-link sysctl.
func SetLink(link, key, value string) error {
	return Set(Link(link, key), value)
}
