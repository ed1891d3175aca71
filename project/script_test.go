package project

import (
	"strings"
	"testing"

	"github.com/nsrun/nsrun/cgroup"
	"github.com/nsrun/nsrun/forward/iptables"
)

// TestScriptShortcutNote: the plan says which published ports nsrun up
// also serves by its loopback shortcut, which no command in it makes.
func TestScriptShortcutNote(t *testing.T) {
	for _, c := range []struct {
		ports string
		want  string
	}{
		{`["6000:8080", "7000-7002:8000-8002", "127.0.0.1:6100:9090/udp", "192.0.2.1:6200:80"]`, "the 4 port(s) published at 127.0.0.0/8"},
		{`["127.0.0.1:6100:9090/udp", "192.0.2.1:6200:80"]`, ""},
	} {
		script, err := Script(FromSpec(spec(t, "namespaces:\n  ns1: {address: 10.9.1.2/24, ports: "+c.ports+"}\n")), iptables.New(iptables.NFT, 0), cgroup.Host())
		if err != nil {
			t.Fatal(err)
		}
		has := strings.Contains(script, "loopback shortcut")
		if c.want == "" && has || c.want != "" && !strings.Contains(script, c.want) {
			t.Errorf("ports %s: the script's note on the shortcut is wrong; want %q:\n%s", c.ports, c.want, script)
		}
	}
}

// TestScriptIPv6: a spec with ipv6: true gets IPv6 forwarding, addresses
// without duplicate address detection, the IPv6 default route, the
// ip6tables rules and the note on [::1].
func TestScriptIPv6(t *testing.T) {
	s := spec(t, "ipv6: true\nnamespaces:\n  ns1: {address: 10.9.1.2/24, address6: \"fd00:9:1::2/64\", ports: [\"6000:8080\"]}\n")
	script, err := Script(FromSpec(s), iptables.New(iptables.NFT, 0), cgroup.Host())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"sysctl -w net.ipv6.conf.all.forwarding=1",
		"sysctl -w net.ipv6.conf.nsr-ns1.accept_dad=0 net.ipv6.conf.nsr-ns1.accept_ra=0 net.ipv6.conf.nsr-ns1.autoconf=0",
		"ip addr add fd00:9:1::1/64 dev nsr-ns1 nodad",
		"ip -n ns1 addr add fd00:9:1::2/64 dev eth0 nodad",
		"ip -n ns1 -6 route add default via fd00:9:1::1",
		"ip6tables-restore -w 30 --noflush",
		"--to-destination [fd00:9:1::2]:8080",
		"the 1 TCP port(s) published on IPv6 at [::1]",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("the script lacks %q:\n%s", want, script)
		}
	}
}

// TestScriptShaping: the plan shapes each end with tc, after the links.
func TestScriptShaping(t *testing.T) {
	s := spec(t, "namespaces:\n  ns1: {bandwidth: {ingress: 20mbit, egress: 10mbit}}\n  ns2: {}\n")
	script, err := Script(FromSpec(s), iptables.New(iptables.NFT, 0), cgroup.Host())
	if err != nil {
		t.Fatal(err)
	}
	host := "tc qdisc replace dev nsr-ns1 root handle 6e73: tbf rate 20mbit burst 25000b limit 150000b"
	peer := "ip netns exec ns1 tc qdisc replace dev eth0 root handle 6e73: tbf rate 10mbit burst 12500b limit 75000b"
	for _, want := range []string{"# shaping of namespace ns1 (ingress 20mbit, egress 10mbit)", host, peer} {
		if !strings.Contains(script, want) {
			t.Errorf("the script lacks %q:\n%s", want, script)
		}
	}
	if strings.Index(script, host) < strings.Index(script, "ip -n ns2 route add default") || strings.Count(script, "tc qdisc") != 2 {
		t.Errorf("the shaping is not after every link, or shapes more than ns1:\n%s", script)
	}
}
