package veth

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nsrun/nsrun/internal/rawfile"
)

// SysctlRoot is where sysctls live.
const SysctlRoot = "/proc/sys"

// IPForward is the sysctl that lets the host route between its links.
const IPForward = "net/ipv4/ip_forward"

// LinkSysctl returns the path (below /proc/sys) of an IPv4 per-link sysctl.
// Link names may hold dots, so paths use slashes throughout.
func LinkSysctl(link, key string) string {
	return filepath.Join("net/ipv4/conf", link, key)
}

// IPv6Forward is the sysctl that lets the host route IPv6 between its
// links; turning it on turns it on for every link.
const IPv6Forward = "net/ipv6/conf/all/forwarding"

// LinkSysctl6 returns the path (below /proc/sys) of an IPv6 per-link sysctl.
func LinkSysctl6(link, key string) string {
	return filepath.Join("net/ipv6/conf", link, key)
}

// GetSysctl reads a sysctl given by its path below /proc/sys.
func GetSysctl(path string) (string, error) {
	b, err := rawfile.Read(filepath.Join(SysctlRoot, path))
	if err != nil {
		return "", fmt.Errorf("reading sysctl %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// SetSysctl writes a sysctl given by its path below /proc/sys, unless it
// already holds the value.
func SetSysctl(path, value string) error {
	if old, err := GetSysctl(path); err == nil && old == value {
		return nil
	}
	if err := os.WriteFile(filepath.Join(SysctlRoot, path), []byte(value), 0o644); err != nil {
		return fmt.Errorf("setting sysctl %s=%s: %w", path, value, err)
	}
	return nil
}

// SetLinkSysctl sets an IPv4 per-link sysctl.
func SetLinkSysctl(link, key, value string) error {
	return SetSysctl(LinkSysctl(link, key), value)
}
