package specs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

const (
	// MaxProjectName keeps project names short enough for chain names,
	// rule comments and paths.
	MaxProjectName = 32
	// MaxNamespaceName bounds namespace names; the netns file allows more,
	// but names are typed by people and shown in tables.
	MaxNamespaceName = 64
	// MaxProcessName bounds run entry names (log file names, NS/PROC).
	MaxProcessName = 64
	// maxIfName is the kernel's limit on interface names (IFNAMSIZ-1).
	maxIfName = 15
)

// Host-side link names: "nsr-" + the namespace name when it fits in 15
// characters, otherwise "nsh-" + a prefix of the name + a hash of it. The
// two prefixes never produce the same name.
const (
	linkPrefix       = "nsr-"
	hashedLinkPrefix = "nsh-"
)

// HostLinkName returns the host-side veth name for a namespace name.
func HostLinkName(ns string) string {
	if len(linkPrefix)+len(ns) <= maxIfName {
		return linkPrefix + ns
	}
	sum := sha256.Sum256([]byte(ns))
	const keep = 3
	hash := hex.EncodeToString(sum[:])[:maxIfName-len(hashedLinkPrefix)-keep]
	return hashedLinkPrefix + ns[:keep] + hash
}

// IsHostLinkName reports whether an interface name has the shape of an
// nsrun host-side link.
func IsHostLinkName(name string) bool {
	return strings.HasPrefix(name, linkPrefix) || strings.HasPrefix(name, hashedLinkPrefix)
}

// CheckNamespaceName reports why name cannot be an nsrun namespace name:
// it becomes /run/netns/NAME and is typed on command lines.
func CheckNamespaceName(name string) error {
	return checkName(name, "namespace name", MaxNamespaceName)
}

// CheckProcessName reports why name cannot name a run entry.
func CheckProcessName(name string) error {
	return checkName(name, "process name", MaxProcessName)
}

func checkName(name, what string, max int) error {
	switch {
	case name == "":
		return fmt.Errorf("%s is empty", what)
	case len(name) > max:
		return fmt.Errorf("%s %s is %d characters long; the limit is %d", what, quote(name), len(name), max)
	case !isAlnum(rune(name[0])):
		return fmt.Errorf("%s %s must start with a letter or digit", what, quote(name))
	}
	for _, c := range name {
		if !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("%s %s contains %s; use only letters, digits, '.', '_' and '-'", what, quote(name), quote(string(c)))
		}
	}
	return nil
}

// CheckProjectName reports why name cannot be a project name: lowercase
// letters, digits, '_' and '-', starting with a letter or digit, as in
// docker compose.
func CheckProjectName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("project name is empty")
	case len(name) > MaxProjectName:
		return fmt.Errorf("project name %s is %d characters long; the limit is %d", quote(name), len(name), MaxProjectName)
	case !isLowerAlnum(rune(name[0])):
		return fmt.Errorf("project name %s must start with a lowercase letter or digit", quote(name))
	}
	for _, c := range name {
		if !isLowerAlnum(c) && c != '_' && c != '-' {
			return fmt.Errorf("project name %s contains %s; use only lowercase letters, digits, '_' and '-'", quote(name), quote(string(c)))
		}
	}
	return nil
}

// ProjectNameFromFile derives a project name from a spec file name the way
// docker compose does: the base name without extension, lowercased, with
// other characters dropped.
func ProjectNameFromFile(path string) string {
	base := filepath.Base(path)
	base = strings.TrimSuffix(base, filepath.Ext(base))
	var b strings.Builder
	for _, c := range strings.ToLower(base) {
		if isLowerAlnum(c) || c == '_' || c == '-' {
			b.WriteRune(c)
		}
	}
	name := strings.TrimLeft(b.String(), "_-")
	if len(name) > MaxProjectName {
		name = name[:MaxProjectName]
	}
	return name
}

// checkUser accepts "name", "uid", and either followed by ":group" or ":gid".
func checkUser(s string) error {
	user, group, hasGroup := strings.Cut(s, ":")
	if err := checkUserPart(user, "user"); err != nil {
		return err
	}
	if hasGroup {
		return checkUserPart(group, "group")
	}
	return nil
}

func checkUserPart(s, what string) error {
	if s == "" {
		return fmt.Errorf("%s is empty; write NAME or UID, optionally :GROUP or :GID", what)
	}
	if isDigits(s) {
		if n, err := strconv.ParseUint(s, 10, 32); err != nil || n >= 1<<32-1 {
			return fmt.Errorf("%s id %s is out of range 0-4294967294", what, quote(s))
		}
		return nil
	}
	if len(s) > 32 {
		return fmt.Errorf("%s name %s is longer than 32 characters", what, quote(s))
	}
	for i, c := range s {
		ok := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(i > 0 && (isAlnum(c) || c == '-' || c == '.' || (c == '$' && i == len(s)-1)))
		if !ok {
			return fmt.Errorf("%s %s is not a valid name or number; write NAME or UID, optionally :GROUP or :GID", what, quote(s))
		}
	}
	return nil
}

func isAlnum(c rune) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func isLowerAlnum(c rune) bool {
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// quote quotes text from the spec for a message, cut short when long so a
// hostile spec cannot produce huge messages.
func quote(s string) string {
	const max = 48
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
