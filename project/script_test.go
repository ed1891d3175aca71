package project

import (
	"strings"
	"testing"

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
		script, err := Script(FromSpec(spec(t, "namespaces:\n  ns1: {address: 10.9.1.2/24, ports: "+c.ports+"}\n")), iptables.New(iptables.NFT, 0))
		if err != nil {
			t.Fatal(err)
		}
		has := strings.Contains(script, "loopback shortcut")
		if c.want == "" && has || c.want != "" && !strings.Contains(script, c.want) {
			t.Errorf("ports %s: the script's note on the shortcut is wrong; want %q:\n%s", c.ports, c.want, script)
		}
	}
}
