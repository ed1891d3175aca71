package specs

import (
	"strings"
	"testing"
)

func TestHostLinkName(t *testing.T) {
	tests := map[string]string{
		"ns1":         "nsr-ns1",
		"elevenchars": "nsr-elevenchars",
	}
	for ns, want := range tests {
		if got := HostLinkName(ns); got != want {
			t.Errorf("HostLinkName(%q) = %q, want %q", ns, got, want)
		}
	}
	seen := map[string]string{}
	names := []string{"twelve-chars", "twelve-charz", "a-very-long-namespace-name", strings.Repeat("x", 64), "elevenchars", "nsr-abc", "web.1", "web_1"}
	for i := 0; i < 2000; i++ {
		names = append(names, "namespace-"+strings.Repeat("y", i%50)+string(rune('a'+i%26))+string(rune('a'+i/26%26)))
	}
	for _, ns := range names {
		got := HostLinkName(ns)
		if len(got) > 15 || !IsHostLinkName(got) {
			t.Errorf("HostLinkName(%q) = %q: longer than 15 or not recognisable", ns, got)
		}
		if other, dup := seen[got]; dup && other != ns {
			t.Errorf("HostLinkName(%q) = HostLinkName(%q) = %q", ns, other, got)
		}
		seen[got] = ns
		if got != HostLinkName(ns) {
			t.Errorf("HostLinkName(%q) is not stable", ns)
		}
	}
	if got := HostLinkName("twelve-chars"); !strings.HasPrefix(got, "nsh-twe") {
		t.Errorf("hashed name %q should start with nsh- and the name's first letters", got)
	}
}

func TestCheckNames(t *testing.T) {
	good := []string{"ns1", "a", "Web.1", "x_y-z", "1", strings.Repeat("n", 64)}
	for _, n := range good {
		if err := CheckNamespaceName(n); err != nil {
			t.Errorf("CheckNamespaceName(%q): %v", n, err)
		}
	}
	bad := []string{"", ".", "..", "-x", ".hidden", "a/b", "a b", "a\x00b", "é", strings.Repeat("n", 65), "a\nb"}
	for _, n := range bad {
		if err := CheckNamespaceName(n); err == nil {
			t.Errorf("CheckNamespaceName(%q) accepted it", n)
		}
	}
	for _, n := range []string{"blog", "my-lab_2", "0"} {
		if err := CheckProjectName(n); err != nil {
			t.Errorf("CheckProjectName(%q): %v", n, err)
		}
	}
	for _, n := range []string{"", "Blog", "-x", "_x", "a.b", "a/b", strings.Repeat("p", 33)} {
		if err := CheckProjectName(n); err == nil {
			t.Errorf("CheckProjectName(%q) accepted it", n)
		}
	}
}

func TestCheckUser(t *testing.T) {
	for _, u := range []string{"nobody", "www-data", "_apt", "1000", "0", "1000:1000", "nobody:nogroup", "user$", "4294967294"} {
		if err := checkUser(u); err != nil {
			t.Errorf("checkUser(%q): %v", u, err)
		}
	}
	for _, u := range []string{"", ":", "a b", "1000:", ":1000", "-x", "1x", "4294967295", "a:b:c", "u$x", strings.Repeat("u", 33)} {
		if err := checkUser(u); err == nil {
			t.Errorf("checkUser(%q) accepted it", u)
		}
	}
}
