package specs

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// problemsOf parses src as file "demo.yaml" and returns its problems.
func problemsOf(t *testing.T, src string) []Problem {
	t.Helper()
	_, err := Parse("demo.yaml", []byte(src))
	if err == nil {
		return nil
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Parse returned %T %v, want *Error", err, err)
	}
	return e.Problems
}

// mustParse parses a good spec, which the schema must accept too: every
// good spec of these tests checks the schema.
func mustParse(t *testing.T, src string) *Spec {
	t.Helper()
	s, err := Parse("demo.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v\nspec:\n%s", err, src)
	}
	if err := schemaForTests(t).Validate(asJSON(t, []byte(src))); err != nil {
		t.Errorf("the schema refuses a spec nsrun accepts: %v\nspec:\n%s", err, src)
	}
	return s
}

// TestTheDesignExample checks the exact message the design gives as its
// example of the message format.
func TestTheDesignExample(t *testing.T) {
	src := `name: demo
namespaces:
  ns1:
    address: 10.203.1.2/24
    egress: true
    run: []
    # the port below is out of range
    ports:
      - "70000:8080"
`
	got := problemsOf(t, src)
	want := "demo.yaml:9:9: namespaces.ns1.ports[0]: host port 70000 is out of range 1-65535"
	if len(got) != 1 || got[0].Error() != want {
		t.Fatalf("problems = %v, want exactly %q", got, want)
	}
}

// badSpecs is the table of invalid specs: each yields a problem at line
// (and column, when col > 0) whose message contains msg.
var badSpecs = []struct {
	name      string
	src       string
	line, col int
	path, msg string
}{
	{"empty file", "", 1, 1, "", "spec is empty"},
	{"only a comment", "# nothing\n", 1, 1, "", "spec is empty"},
	{"top level is a list", "- ns1\n", 1, 1, "", "expected a mapping, found a list"},
	{"not YAML", "namespaces: {ns1: [\n", 1, 1, "", "not valid YAML"},
	{"tab indentation", "namespaces:\n\tns1: {}\n", 2, 1, "", "not valid YAML"},
	{"two documents", "namespaces: {ns1: {}}\n---\nname: x\n", 2, 1, "", "more than one YAML document"},
	{"unknown top-level key", "namespace: {ns1: {}}\n", 1, 1, "namespace", `unknown key "namespace"`},
	{"duplicate top-level key", "name: a\nname: b\nnamespaces: {ns1: {}}\n", 2, 1, "name", `duplicate key "name"`},
	{"namespaces missing", "name: demo\n", 1, 1, "namespaces", "is required"},
	{"namespaces empty", "namespaces: {}\n", 1, 13, "namespaces", "is empty"},
	{"namespaces is a list", "namespaces:\n  - ns1\n", 2, 3, "namespaces", "expected a mapping, found a list"},
	{"duplicate namespace", "namespaces:\n  ns1: {}\n  ns1: {}\n", 3, 3, "namespaces.ns1", `duplicate key "ns1"`},
	{"namespace name with slash", "namespaces:\n  a/b: {}\n", 2, 3, "namespaces.a/b", `contains "/"`},
	{"namespace name dot", "namespaces:\n  .: {}\n", 2, 3, "namespaces..", "must start with a letter or digit"},
	{"namespace name dot dot", "namespaces:\n  ..: {}\n", 2, 3, "", "must start with a letter or digit"},
	{"namespace name leading dash", "namespaces:\n  -x: {}\n", 2, 3, "", "must start with a letter or digit"},
	{"namespace name with space", "namespaces:\n  \"a b\": {}\n", 2, 3, "", `contains " "`},
	{"namespace name with control character", "namespaces:\n  \"a\\tb\": {}\n", 2, 3, "", `contains "\t"`},
	{"namespace name too long", "namespaces:\n  " + strings.Repeat("n", 65) + ": {}\n", 2, 3, "", "the limit is 64"},
	{"namespace is a list", "namespaces:\n  ns1: [a]\n", 2, 8, "namespaces.ns1", "expected a mapping, found a list"},
	{"unknown namespace key", "namespaces:\n  ns1:\n    colour: red\n", 3, 5, "namespaces.ns1.colour", `unknown key "colour"; known keys here: address, address6, egress, networks, ports, run`},
	{"project name uppercase", "name: Demo\nnamespaces: {ns1: {}}\n", 1, 7, "name", "must start with a lowercase letter or digit"},
	{"project name with dot", "name: my.app\nnamespaces: {ns1: {}}\n", 1, 7, "name", `contains "."`},
	{"project name too long", "name: " + strings.Repeat("p", 33) + "\nnamespaces: {ns1: {}}\n", 1, 7, "name", "the limit is 32"},
	{"project name is a number", "name: 42\nnamespaces: {ns1: {}}\n", 1, 7, "name", "expected a string, found an integer"},
	{"subnet without length", "subnet: 10.0.0.0\nnamespaces: {ns1: {}}\n", 1, 9, "subnet", "not an address with a prefix length"},
	{"subnet too small", "subnet: 10.0.0.0/31\nnamespaces: {ns1: {}}\n", 1, 9, "subnet", "too small"},
	{"subnet host bits", "subnet: 10.203.0.1/16\nnamespaces: {ns1: {}}\n", 1, 9, "subnet", "write 10.203.0.0/16"},
	{"subnet IPv6", "subnet: fd00::/64\nnamespaces: {ns1: {}}\n", 1, 9, "subnet", "subnet fd00::/64 is not IPv4; IPv6 addresses go in subnet6"},
	{"ipv6 is a string", "ipv6: \"yes\"\nnamespaces: {ns1: {}}\n", 1, 7, "ipv6", "expected true or false"},
	{"subnet6 without ipv6", "subnet6: fd12::/48\nnamespaces: {ns1: {}}\n", 1, 10, "subnet6", "IPv6 is off; set ipv6: true"},
	{"subnet6 is IPv4", "ipv6: true\nsubnet6: 10.0.0.0/16\nnamespaces: {ns1: {}}\n", 2, 10, "subnet6", "is not IPv6"},
	{"subnet6 too small", "ipv6: true\nsubnet6: fd12::/80\nnamespaces: {ns1: {}}\n", 2, 10, "subnet6", "too small; each namespace takes a /64"},
	{"subnet6 host bits", "ipv6: true\nsubnet6: fd12::1/48\nnamespaces: {ns1: {}}\n", 2, 10, "subnet6", "write fd12::/48"},
	{"subnet6 link-local", "ipv6: true\nsubnet6: fe80::/48\nnamespaces: {ns1: {}}\n", 2, 10, "subnet6", "not a unicast range"},
	{"subnet6 full", "ipv6: true\nsubnet6: fd12::/64\nnamespaces: {a: {}, b: {}}\n", 2, 10, "subnet6", "no room left"},
	{"address6 without ipv6", "namespaces:\n  ns1: {address6: \"fd00::2/64\"}\n", 2, 19, "namespaces.ns1.address6", "IPv6 is off; set ipv6: true"},
	{"address6 is IPv4", "ipv6: true\nnamespaces:\n  ns1: {address6: 10.1.0.2/24}\n", 3, 19, "namespaces.ns1.address6", "is not IPv6"},
	{"address6 link-local", "ipv6: true\nnamespaces:\n  ns1: {address6: \"fe80::2/64\"}\n", 3, 19, "", "link-local"},
	{"address6 host side", "ipv6: true\nnamespaces:\n  ns1: {address6: \"fd00::1/64\"}\n", 3, 19, "", "the host side's address"},
	{"address6 without length", "ipv6: true\nnamespaces:\n  ns1: {address6: \"fd00::2\"}\n", 3, 19, "", "not an address with a prefix length"},
	{"address6 overlap", "ipv6: true\nnamespaces:\n  a: {address6: \"fd00::2/64\"}\n  b: {address6: \"fd00::3/64\"}\n", 4, 17, "namespaces.b.address6", "overlaps fd00::/64 of namespace \"a\""},
	{"long port IPv6 without ipv6", "namespaces:\n  ns1:\n    ports: [{published: 1, target: 2, host_ip: \"::1\"}]\n", 3, 13, "", "but IPv6 is off; set ipv6: true"},
	{"long port link-local host_ip", "ipv6: true\nnamespaces:\n  ns1:\n    ports: [{published: 1, target: 2, host_ip: \"fe80::1\"}]\n", 4, 48, "", "link-local"},
	{"port compose IPv6", "ipv6: true\nnamespaces:\n  ns1:\n    ports: [\"::1:6000:6000\"]\n", 4, 13, "", "write [::1]:6000:6000"},
	{"port UDP on ::1", "ipv6: true\nnamespaces:\n  ns1:\n    ports: [\"[::1]:6000:53/udp\"]\n", 4, 13, "namespaces.ns1.ports[0]", "UDP cannot be published on [::1]"},
	{"port IPv6 published twice", "ipv6: true\nnamespaces:\n  a: {ports: [\"6000:80\"]}\n  b: {ports: [\"[::1]:6000:80\"]}\n", 4, 15, "namespaces.b.ports[0]", "host port 6000/tcp on [::1] is already published by namespaces.a.ports[0] (line 3)"},
	{"exec is a list", "exec: [alice]\nnamespaces: {ns1: {}}\n", 1, 7, "exec", "expected a mapping, found a list"},
	{"exec unknown key", "exec: {user: [alice]}\nnamespaces: {ns1: {}}\n", 1, 8, "exec.user", `unknown key "user"; known keys here: users, groups`},
	{"exec users not a list", "namespaces:\n  ns1: {exec: {users: alice}}\n", 2, 23, "namespaces.ns1.exec.users", "expected a list"},
	{"exec bad name", "exec: {users: [\"a b\"]}\nnamespaces: {ns1: {}}\n", 1, 16, "exec.users[0]", `"a b" is not a user or group name`},
	{"subnet full", "subnet: 10.9.0.0/30\nnamespaces: {a: {}, b: {}}\n", 1, 9, "subnet", "no room left"},
	{"address without length", "namespaces:\n  ns1: {address: 10.203.1.2}\n", 2, 18, "namespaces.ns1.address", "not an address with a prefix length"},
	{"address is the network", "namespaces:\n  ns1: {address: 10.203.1.0/24}\n", 2, 18, "", "network address"},
	{"address is the host side", "namespaces:\n  ns1: {address: 10.203.1.1/24}\n", 2, 18, "", "host side's address"},
	{"address is broadcast", "namespaces:\n  ns1: {address: 10.203.1.255/24}\n", 2, 18, "", "broadcast address"},
	{"address /31", "namespaces:\n  ns1: {address: 10.203.1.2/31}\n", 2, 18, "", "no room for the host side"},
	{"address multicast", "namespaces:\n  ns1: {address: 224.0.0.2/24}\n", 2, 18, "", "not a unicast address"},
	{"addresses overlap", "namespaces:\n  ns1: {address: 10.203.1.2/24}\n  ns2: {address: 10.203.1.200/25}\n", 3, 18, "namespaces.ns2.address", `overlaps 10.203.1.0/24 of namespace "ns1" (line 2)`},
	{"egress is a string", "namespaces:\n  ns1: {egress: \"yes\"}\n", 2, 17, "namespaces.ns1.egress", "expected true or false, found a string"},
	{"ports not a list", "namespaces:\n  ns1: {ports: \"6000:8080\"}\n", 2, 16, "namespaces.ns1.ports", "expected a list"},
	{"port without host port", "namespaces:\n  ns1:\n    ports: [\"8080\"]\n", 3, 13, "namespaces.ns1.ports[0]", "has no host port"},
	{"port as integer", "namespaces:\n  ns1:\n    ports: [8080]\n", 3, 13, "namespaces.ns1.ports[0]", "has no host port"},
	{"port zero", "namespaces:\n  ns1:\n    ports: [\"6000:0\"]\n", 3, 13, "", "port 0 is out of range 1-65535"},
	{"port not a number", "namespaces:\n  ns1:\n    ports: [\"6000:http\"]\n", 3, 13, "", `port "http" is not a number`},
	{"port range lengths differ", "namespaces:\n  ns1:\n    ports: [\"7000-7002:8000-8001\"]\n", 3, 13, "", "differ in length"},
	{"port range reversed", "namespaces:\n  ns1:\n    ports: [\"7002-7000:8000-8002\"]\n", 3, 13, "", "ends before it starts"},
	{"port protocol sctp", "namespaces:\n  ns1:\n    ports: [\"6000:8080/sctp\"]\n", 3, 13, "", `protocol "sctp" is not supported; use tcp or udp`},
	{"port host ip is a name", "namespaces:\n  ns1:\n    ports: [\"localhost:6000:8080\"]\n", 3, 13, "", `host address "localhost" is not an IP address`},
	{"port host ip IPv6", "namespaces:\n  ns1:\n    ports: [\"[::1]:6000:8080\"]\n", 3, 13, "namespaces.ns1.ports[0]", "published on IPv6 address ::1 but IPv6 is off; set ipv6: true"},
	{"port too many parts", "namespaces:\n  ns1:\n    ports: [\"1.2.3.4:6000:8080:9\"]\n", 3, 13, "", "too many parts"},
	{"port is a list", "namespaces:\n  ns1:\n    ports: [[6000, 8080]]\n", 3, 13, "", "expected a port such as"},
	{"long port missing target", "namespaces:\n  ns1:\n    ports:\n      - published: 6002\n", 4, 9, "namespaces.ns1.ports[0]", "target is required"},
	{"long port missing published", "namespaces:\n  ns1:\n    ports:\n      - target: 8080\n", 4, 9, "namespaces.ns1.ports[0]", "published is required"},
	{"long port unknown key", "namespaces:\n  ns1:\n    ports:\n      - {published: 1, target: 2, container: 3}\n", 4, 35, "namespaces.ns1.ports[0].container", `unknown key "container"`},
	{"long port published zero", "namespaces:\n  ns1:\n    ports:\n      - {published: 0, target: 2}\n", 4, 21, "namespaces.ns1.ports[0].published", "host port 0 is out of range 1-65535"},
	{"long port target huge", "namespaces:\n  ns1:\n    ports:\n      - {published: 1, target: 99999999999999999999}\n", 4, 32, "namespaces.ns1.ports[0].target", "expected a port number"},
	{"long port target negative", "namespaces:\n  ns1:\n    ports:\n      - {published: 1, target: -80}\n", 4, 32, "", "port -80 is out of range 1-65535"},
	{"long port published is bool", "namespaces:\n  ns1:\n    ports:\n      - {published: true, target: 2}\n", 4, 21, "", "expected a port number, found true or false"},
	{"long port bad protocol", "namespaces:\n  ns1:\n    ports:\n      - {published: 1, target: 2, protocol: TCP}\n", 4, 45, "namespaces.ns1.ports[0].protocol", `protocol "TCP" is not supported`},
	{"long port bad host_ip", "namespaces:\n  ns1:\n    ports:\n      - {published: 1, target: 2, host_ip: 300.1.1.1}\n", 4, 44, "namespaces.ns1.ports[0].host_ip", "is not an IP address"},
	{"long port multicast host_ip", "namespaces:\n  ns1:\n    ports:\n      - {published: 1, target: 2, host_ip: 239.1.1.1}\n", 4, 44, "", "cannot receive connections"},
	{"host port twice in a namespace", "namespaces:\n  ns1:\n    ports: [\"6000:8080\", \"6000:9090\"]\n", 3, 26, "namespaces.ns1.ports[1]", "host port 6000/tcp on 0.0.0.0 is already published by namespaces.ns1.ports[0] (line 3)"},
	{"host port twice across namespaces", "namespaces:\n  ns1:\n    ports: [\"6000:8080\"]\n  ns2:\n    ports: [\"6000:8080\"]\n", 5, 13, "namespaces.ns2.ports[0]", "already published by namespaces.ns1.ports[0] (line 3)"},
	{"host port ranges overlap", "namespaces:\n  ns1:\n    ports: [\"7000-7010:8000-8010\"]\n  ns2:\n    ports: [\"7010:8080\"]\n", 5, 13, "namespaces.ns2.ports[0]", "host port 7010/tcp"},
	{"host port on 0.0.0.0 and 127.0.0.1", "namespaces:\n  ns1:\n    ports: [\"127.0.0.1:6000:8080\"]\n  ns2:\n    ports: [\"6000:8080\"]\n", 5, 13, "", "already published"},
	{"run not a list", "namespaces:\n  ns1:\n    run: {command: x}\n", 3, 10, "namespaces.ns1.run", "expected a list"},
	{"run entry without command", "namespaces:\n  ns1:\n    run:\n      - name: web\n", 4, 9, "namespaces.ns1.run[0]", "command is required"},
	{"run unknown key", "namespaces:\n  ns1:\n    run:\n      - cmd: [ls]\n", 4, 9, "namespaces.ns1.run[0].cmd", `unknown key "cmd"`},
	{"command empty list", "namespaces:\n  ns1:\n    run:\n      - command: []\n", 4, 18, "namespaces.ns1.run[0].command", "empty list"},
	{"command empty string", "namespaces:\n  ns1:\n    run:\n      - command: \"  \"\n", 4, 18, "", "command is empty"},
	{"command null", "namespaces:\n  ns1:\n    run:\n      - command:\n", 4, 17, "namespaces.ns1.run[0].command", "expected a list of arguments or a shell string, found nothing (null)"},
	{"command argument is a mapping", "namespaces:\n  ns1:\n    run:\n      - command: [ls, {a: b}]\n", 4, 23, "namespaces.ns1.run[0].command[1]", "expected a string argument"},
	{"command program empty", "namespaces:\n  ns1:\n    run:\n      - command: [\"\", x]\n", 4, 19, "namespaces.ns1.run[0].command[0]", "program name is empty"},
	{"duplicate default process names", "namespaces:\n  ns1:\n    run:\n      - command: python3 -m a\n      - command: [/usr/bin/python3]\n", 5, 9, "namespaces.ns1.run[1]", `process name "python3" is already used by run[0] (line 4)`},
	{"duplicate given process names", "namespaces:\n  ns1:\n    run:\n      - {name: web, command: a}\n      - {name: web, command: b}\n", 5, 9, "", "already used by run[0]"},
	{"process name with slash", "namespaces:\n  ns1:\n    run:\n      - {name: web/1, command: a}\n", 4, 16, "namespaces.ns1.run[0].name", `contains "/"`},
	{"restart unknown", "namespaces:\n  ns1:\n    run:\n      - {command: a, restart: sometimes}\n", 4, 31, "namespaces.ns1.run[0].restart", `restart "sometimes" is not supported; use no, on-failure or always`},
	{"restart boolean", "namespaces:\n  ns1:\n    run:\n      - {command: a, restart: false}\n", 4, 31, "", "expected a string, found true or false"},
	{"ready without tcp", "namespaces:\n  ns1:\n    run:\n      - {command: a, ready: {timeout: 5s}}\n", 4, 29, "namespaces.ns1.run[0].ready", "tcp is required"},
	{"ready port zero", "namespaces:\n  ns1:\n    run:\n      - {command: a, ready: {tcp: 0}}\n", 4, 35, "namespaces.ns1.run[0].ready.tcp", "ready port 0 is out of range 1-65535"},
	{"ready port string", "namespaces:\n  ns1:\n    run:\n      - {command: a, ready: {tcp: http}}\n", 4, 35, "", "expected a port number, found a string"},
	{"ready timeout not a duration", "namespaces:\n  ns1:\n    run:\n      - {command: a, ready: {tcp: 1, timeout: soon}}\n", 4, 47, "namespaces.ns1.run[0].ready.timeout", `"soon" is not a duration`},
	{"ready timeout without unit", "namespaces:\n  ns1:\n    run:\n      - {command: a, ready: {tcp: 1, timeout: 30}}\n", 4, 47, "", `"30" is not a duration`},
	{"ready timeout negative", "namespaces:\n  ns1:\n    run:\n      - {command: a, ready: {tcp: 1, timeout: -5s}}\n", 4, 47, "", "must be positive"},
	{"ready timeout too long", "namespaces:\n  ns1:\n    run:\n      - {command: a, ready: {tcp: 1, timeout: 48h}}\n", 4, 47, "", "longer than 1h0m0s"},
	{"env is a list", "namespaces:\n  ns1:\n    run:\n      - {command: a, env: [A=1]}\n", 4, 27, "namespaces.ns1.run[0].env", "expected a mapping, found a list"},
	{"env value is a mapping", "namespaces:\n  ns1:\n    run:\n      - {command: a, env: {A: {b: c}}}\n", 4, 31, "namespaces.ns1.run[0].env.A", "expected a string, number or boolean"},
	{"env name with equals", "namespaces:\n  ns1:\n    run:\n      - {command: a, env: {\"A=B\": c}}\n", 4, 28, "", "must be non-empty and contain no '='"},
	{"user with space", "namespaces:\n  ns1:\n    run:\n      - {command: a, user: \"bad user\"}\n", 4, 28, "namespaces.ns1.run[0].user", "is not a valid name or number"},
	{"user uid out of range", "namespaces:\n  ns1:\n    run:\n      - {command: a, user: 4294967295}\n", 4, 28, "", "out of range 0-4294967294"},
	{"user empty group", "namespaces:\n  ns1:\n    run:\n      - {command: a, user: \"nobody:\"}\n", 4, 28, "", "group is empty"},
	{"workdir empty", "namespaces:\n  ns1:\n    run:\n      - {command: a, workdir: \"\"}\n", 4, 31, "namespaces.ns1.run[0].workdir", "leave workdir out to start in the spec's directory"},
	{"merge key", "base: &b {egress: true}\nnamespaces: {}\n", 1, 1, "base", "unknown key"},
	{"merge key in namespace", "namespaces:\n  ns1:\n    <<: {egress: false}\n", 3, 5, "namespaces.ns1", "merge keys (<<) are not supported"},
	{"key is a list", "namespaces:\n  ? [a]\n  : {}\n", 2, 5, "namespaces", "keys must be plain names"},
}

func TestBadSpecs(t *testing.T) {
	if len(badSpecs) < 30 {
		t.Fatalf("only %d bad specs; the issue asks for at least 30", len(badSpecs))
	}
	for _, tc := range badSpecs {
		t.Run(tc.name, func(t *testing.T) {
			got := problemsOf(t, tc.src)
			if len(got) == 0 {
				t.Fatalf("spec was accepted:\n%s", tc.src)
			}
			for _, p := range got {
				if p.Line == tc.line && (tc.col == 0 || p.Col == tc.col) &&
					(tc.path == "" || p.Path == tc.path) && strings.Contains(p.Msg, tc.msg) {
					if p.File != "demo.yaml" {
						t.Errorf("problem names file %q, want demo.yaml", p.File)
					}
					return
				}
			}
			t.Errorf("no problem at %d:%d (path %q) containing %q; got:\n%v", tc.line, tc.col, tc.path, tc.msg, (&Error{got}).Error())
		})
	}
}

func TestAllProblemsAtOnce(t *testing.T) {
	src := `name: Bad
namespaces:
  ns1:
    ports: ["70000:8080", "6000:8080/sctp"]
    run:
      - command: []
  ns2:
    egress: maybe
`
	got := problemsOf(t, src)
	var lines []string
	for _, p := range got {
		lines = append(lines, p.Error())
	}
	want := []string{
		`demo.yaml:1:7: name: project name "Bad" must start with a lowercase letter or digit`,
		`demo.yaml:4:13: namespaces.ns1.ports[0]: host port 70000 is out of range 1-65535`,
		`demo.yaml:4:27: namespaces.ns1.ports[1]: protocol "sctp" is not supported; use tcp or udp`,
		`demo.yaml:6:18: namespaces.ns1.run[0].command: command is an empty list; give the program to run first`,
		`demo.yaml:8:13: namespaces.ns2.egress: expected true or false, found a string`,
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestProjectNameFromFile(t *testing.T) {
	for file, want := range map[string]string{
		"blog.yaml":               "blog",
		"/etc/nsrun/My_Lab.yml":   "my_lab",
		"two servers.v2.yaml":     "twoserversv2",
		"--x.yaml":                "x",
		"spec":                    "spec",
		strings.Repeat("a", 40):   strings.Repeat("a", 32),
		"dir.with.dots/demo.yaml": "demo",
	} {
		if got := ProjectNameFromFile(file); got != want {
			t.Errorf("ProjectNameFromFile(%q) = %q, want %q", file, got, want)
		}
	}
	s, err := Parse("/tmp/My Lab.yaml", []byte("namespaces: {ns1: {}}\n"))
	if err != nil || s.Name != "mylab" {
		t.Errorf("Parse name = %v, %v; want mylab", s, err)
	}
	_, err = Parse("/tmp/___.yaml", []byte("namespaces: {ns1: {}}\n"))
	if err == nil || !strings.Contains(err.Error(), "(derived from the file name); set name: in the spec") {
		t.Errorf("Parse of ___.yaml: %v; want a message to set name:", err)
	}
}

func TestDefaults(t *testing.T) {
	s := mustParse(t, `namespaces:
  ns1:
    ports: ["6000:8080", {published: 6001, target: 8081}]
    run:
      - command: python3 -m http.server 8080
        ready: {tcp: 8080}
      - command: ["/usr/bin/env", "sleep", "1"]
  ns2:
`)
	if s.Name != "demo" || s.SubnetSet || s.Subnet != DefaultPools()[0] {
		t.Errorf("name %q, subnet %v set %v; want demo and the first default pool, unset", s.Name, s.Subnet, s.SubnetSet)
	}
	ns1 := s.Namespace("ns1")
	if !ns1.Egress || !ns1.AutoAddress || ns1.HostLink != "nsr-ns1" {
		t.Errorf("ns1 = %+v; want egress, auto address, link nsr-ns1", ns1)
	}
	for _, p := range ns1.Ports {
		if p.Protocol != TCP || p.HostIP != netip.IPv4Unspecified() {
			t.Errorf("port %v: protocol %q host %v; want tcp on 0.0.0.0", p, p.Protocol, p.HostIP)
		}
	}
	web, sleep := ns1.Run[0], ns1.Run[1]
	if web.Name != "python3" || !web.Shell || !reflect.DeepEqual(web.Command, []string{"/bin/sh", "-c", "python3 -m http.server 8080"}) {
		t.Errorf("string command = %+v", web)
	}
	if web.Restart != RestartNo || web.Ready == nil || web.Ready.TCP != 8080 || web.Ready.Timeout != DefaultReadyTimeout {
		t.Errorf("restart %q ready %+v; want no and tcp 8080 within %v", web.Restart, web.Ready, DefaultReadyTimeout)
	}
	if sleep.Name != "env" || sleep.Shell || sleep.Ready != nil || sleep.User != "" {
		t.Errorf("list command = %+v", sleep)
	}
	if ns2 := s.Namespace("ns2"); ns2 == nil || !ns2.Egress || len(ns2.Ports) != 0 {
		t.Errorf("ns2 = %+v; want an empty namespace with egress", ns2)
	}
}

func TestEveryField(t *testing.T) {
	s := mustParse(t, `name: lab
subnet: 10.99.0.0/16
namespaces:
  a:
    address: 10.50.1.2/24
    egress: false
    ports:
      - "127.0.0.1:6100-6101:9090-9091/udp"
      - {published: "7000-7001", target: "8000-8001", protocol: udp, host_ip: 192.0.2.10}
    run:
      - name: web
        command: [sleep, 10, 1.5]
        workdir: /srv
        env: {B: 2, A: hello, C: true, D: null}
        user: "1000:users"
        restart: always
        ready: {tcp: 80, timeout: 2m}
`)
	a := s.Namespace("a")
	if s.Subnet != netip.MustParsePrefix("10.99.0.0/16") || !s.SubnetSet {
		t.Errorf("subnet %v set %v", s.Subnet, s.SubnetSet)
	}
	if a.Address != netip.MustParsePrefix("10.50.1.2/24") || a.HostAddress != netip.MustParsePrefix("10.50.1.1/24") || a.AutoAddress || a.Egress {
		t.Errorf("namespace a = %+v", a)
	}
	wantPorts := []Port{
		{HostIP: netip.MustParseAddr("127.0.0.1"), Published: PortRange{6100, 6101}, Target: PortRange{9090, 9091}, Protocol: UDP},
		{HostIP: netip.MustParseAddr("192.0.2.10"), Published: PortRange{7000, 7001}, Target: PortRange{8000, 8001}, Protocol: UDP},
	}
	for i := range a.Ports {
		a.Ports[i].pos, a.Ports[i].item = position{}, 0
	}
	if !reflect.DeepEqual(a.Ports, wantPorts) {
		t.Errorf("ports = %+v, want %+v", a.Ports, wantPorts)
	}
	p := a.Run[0]
	p.pos = position{}
	want := Process{
		Name: "web", Command: []string{"sleep", "10", "1.5"}, Workdir: "/srv",
		Env:  []string{"A=hello", "B=2", "C=true", "D="},
		User: "1000:users", Restart: RestartAlways, Ready: &Ready{TCP: 80, Timeout: 2 * time.Minute},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("process = %+v, want %+v", p, want)
	}
}

func TestAliasesAreFollowed(t *testing.T) {
	s := mustParse(t, `namespaces:
  ns1:
    run: &procs
      - command: [sleep, "1"]
  ns2:
    run: *procs
`)
	if len(s.Namespace("ns2").Run) != 1 || s.Namespace("ns2").Run[0].Name != "sleep" {
		t.Errorf("ns2 run = %+v; want the aliased entry", s.Namespace("ns2").Run)
	}
}

func TestHostileInput(t *testing.T) {
	// One list of 1,000 ports, aliased by 300 namespaces: 300,000 values
	// to walk from a file of a few KiB.
	bomb := "namespaces:\n  ns0:\n    ports: &p [" + strings.Repeat(`"1:1", `, 1000) + "]\n"
	for i := 1; i < 300; i++ {
		bomb += "  ns" + strconv.Itoa(i) + ": {ports: *p}\n"
	}
	tests := map[string]struct {
		src, msg string
	}{
		"too large":        {strings.Repeat("#", MaxFileSize+1), "larger than"},
		"deep nesting":     {"namespaces: " + strings.Repeat("[", 20000) + strings.Repeat("]", 20000), "not valid YAML"},
		"alias bomb":       {bomb, "more than 200000 values"},
		"10,000 ports":     {manyPorts(10000), "spec has 10000 port entries; the limit is 4096"},
		"4,000 ports":      {manyPorts(4000), ""},
		"huge number":      {"namespaces:\n  ns1:\n    ports: [{published: 1e400, target: 1}]\n", `host port "1e400" is not a number`},
		"control in value": {"namespaces:\n  ns1:\n    run: [{command: \"a\\u0000b\"}]\n", "NUL"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("demo.yaml", []byte(tc.src))
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Parse error %v; want one containing %q", err, tc.msg)
			}
		})
	}
}

func manyPorts(n int) string {
	var b strings.Builder
	b.WriteString("namespaces:\n  ns1:\n    ports:\n")
	for i := 0; i < n; i++ {
		b.WriteString("      - \"" + strconv.Itoa(10000+i) + ":" + strconv.Itoa(1+i) + "\"\n")
	}
	return b.String()
}

func TestExamples(t *testing.T) {
	files, err := filepath.Glob("examples/*.yaml")
	if err != nil || len(files) < 2 {
		t.Fatalf("examples: %v, %v; want at least blog.yaml and full.yaml", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Namespaces) == 0 {
				t.Errorf("%s has no namespaces", f)
			}
		})
	}
	blog, err := Load("examples/blog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"6000:8080", "6001:8080"} {
		ns := blog.Namespaces[i]
		if len(ns.Ports) != 1 || ns.Ports[0].String() != want || len(ns.Run) != 1 {
			t.Errorf("blog namespace %s publishes %v with %d processes; want %s and one server", ns.Name, ns.Ports, len(ns.Run), want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "check the path") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestIPv6Spec(t *testing.T) {
	s := mustParse(t, `
ipv6: true
subnet6: fd12:3456:789a::/48
namespaces:
  a:
    ports: ["6000:8080", "0.0.0.0:6001:8080", "[::]:6002:8080", "[::1]:6003:8080", {published: 6004, target: 80, host_ip: "::1"}, {published: 6005, target: 80}]
  b:
    address6: fd00:9::2/64
    ports: ["6000:8080/udp"]
`)
	a, b := s.Namespace("a"), s.Namespace("b")
	var got []string
	for _, p := range a.Ports {
		got = append(got, p.Full())
	}
	want := []string{
		"0.0.0.0:6000:8080/tcp", "[::]:6000:8080/tcp", // both families, as Docker
		"0.0.0.0:6001:8080/tcp", "[::]:6002:8080/tcp", "[::1]:6003:8080/tcp", "[::1]:6004:80/tcp",
		"0.0.0.0:6005:80/tcp", "[::]:6005:80/tcp",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ports of a:\n got %v\nwant %v", got, want)
	}
	if !a.AutoAddress6 || a.Address6.Bits() != 64 || !netip.MustParsePrefix("fd12:3456:789a::/48").Contains(a.Address6.Addr()) {
		t.Errorf("a's automatic address6 is %v (auto %v); want a /64 of subnet6", a.Address6, a.AutoAddress6)
	}
	if a.Address6.Addr() != a.Address6.Masked().Addr().Next().Next() || a.HostAddress6.Addr() != a.Address6.Masked().Addr().Next() {
		t.Errorf("a: namespace %v, host %v; want ::2 and ::1 of the /64", a.Address6, a.HostAddress6)
	}
	if b.AutoAddress6 || b.Address6 != netip.MustParsePrefix("fd00:9::2/64") || b.HostAddress6 != netip.MustParsePrefix("fd00:9::1/64") {
		t.Errorf("b: address6 %v host %v auto %v", b.Address6, b.HostAddress6, b.AutoAddress6)
	}
	if len(b.Ports) != 2 || !b.Ports[1].Is6() || b.Ports[1].Protocol != UDP {
		t.Errorf("b's ports: %v", b.Ports)
	}

	// Without ipv6: true nothing is IPv6.
	s = mustParse(t, "namespaces:\n  a: {ports: [\"6000:8080\"]}\n")
	if a := s.Namespace("a"); len(a.Ports) != 1 || a.Ports[0].Is6() || a.Address6.IsValid() || a.AutoAddress6 {
		t.Errorf("an IPv4 spec got IPv6: %+v", a)
	}
	// Without subnet6 the automatic addresses wait for the system layer's pool.
	s = mustParse(t, "ipv6: true\nnamespaces:\n  a: {}\n")
	if a := s.Namespace("a"); !a.AutoAddress6 || a.Address6.IsValid() {
		t.Errorf("without subnet6: %v auto %v", a.Address6, a.AutoAddress6)
	}
}

func TestExecGrants(t *testing.T) {
	s := mustParse(t, `
exec: {users: [alice, 1500], groups: [nsrun]}
namespaces:
  a: {}
  b: {exec: {users: [bob]}}
  c: {exec: {}}
`)
	users := map[string]uint32{"alice": 1000, "bob": 1001}
	groups := map[string]uint32{"nsrun": 900}
	lookup := func(m map[string]uint32) func(string) (uint32, error) {
		return func(name string) (uint32, error) {
			if id, ok := m[name]; ok {
				return id, nil
			}
			return 0, errors.New("unknown")
		}
	}
	if err := ResolveExec(s, lookup(users), lookup(groups)); err != nil {
		t.Fatal(err)
	}
	a, b, c := s.ExecFor(s.Namespace("a")), s.ExecFor(s.Namespace("b")), s.ExecFor(s.Namespace("c"))
	if fmt.Sprint(a.UIDs, a.GIDs) != "[1000 1500] [900]" || fmt.Sprint(b.UIDs, b.GIDs) != "[1001] []" || len(c.UIDs)+len(c.GIDs) != 0 {
		t.Errorf("grants: a %v %v, b %v %v (its own replaces the project's), c %v %v (exec: {} grants nobody)", a.UIDs, a.GIDs, b.UIDs, b.GIDs, c.UIDs, c.GIDs)
	}
	if s := mustParse(t, "namespaces: {a: {}}\n"); s.ExecFor(s.Namespace("a")) != nil {
		t.Error("a spec without exec grants someone")
	}
	// Unknown names are problems at their lines.
	s = mustParse(t, "exec:\n  users: [alice, mallory]\nnamespaces:\n  a: {exec: {groups: [wheel]}}\n")
	err := ResolveExec(s, lookup(users), lookup(groups))
	var e *Error
	if !errors.As(err, &e) || len(e.Problems) != 2 ||
		e.Problems[0].Line != 2 || e.Problems[0].Path != "exec.users[1]" || !strings.Contains(e.Problems[0].Msg, `user "mallory" does not exist on this host`) ||
		e.Problems[1].Line != 4 || e.Problems[1].Path != "namespaces.a.exec.groups[0]" || !strings.Contains(e.Problems[1].Msg, `group "wheel" does not exist`) {
		t.Errorf("unknown names: %v", err)
	}
}

// TestWorkdirResolvesAgainstTheSpec: a process starts in the spec file's
// directory unless it says otherwise, and a relative workdir is taken from
// there too, whatever directory parses the spec.
func TestWorkdirResolvesAgainstTheSpec(t *testing.T) {
	src := []byte("namespaces:\n  ns1:\n    run:\n      - {name: none, command: [./app]}\n      - {name: rel, command: [./app], workdir: sub/../www}\n      - {name: abs, command: [./app], workdir: /srv//app/}\n")
	s, err := Parse("/etc/nsrun/specs/web.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	if s.Dir != "/etc/nsrun/specs" {
		t.Errorf("Dir = %q; want the spec file's directory", s.Dir)
	}
	want := map[string]string{"none": "/etc/nsrun/specs", "rel": "/etc/nsrun/specs/www", "abs": "/srv/app"}
	for _, p := range s.Namespaces[0].Run {
		if got := s.WorkdirOf(p); got != want[p.Name] {
			t.Errorf("%s: WorkdirOf = %q; want %q", p.Name, got, want[p.Name])
		}
	}
	if s.Namespaces[0].Run[1].Workdir != "sub/../www" {
		t.Errorf("the workdir as written is %q", s.Namespaces[0].Run[1].Workdir)
	}
	// A spec named relative to the working directory gets an absolute Dir.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	s, err = Parse("examples/web.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	if s.Dir != filepath.Join(wd, "examples") {
		t.Errorf("Dir of a relative spec path = %q; want %q", s.Dir, filepath.Join(wd, "examples"))
	}
}

// TestNetworks: networks as compose writes them; a namespace that names
// none is on the default one; the keys say which namespaces share one.
func TestNetworks(t *testing.T) {
	s := mustParse(t, `
name: shop
networks:
  front: {}
  back:
  shared: {external: true}
namespaces:
  web: {networks: [front, back]}
  db: {networks: [back]}
  edge: {networks: [front, shared]}
  tool: {}
  alone: {networks: []}
`)
	ns := s.Namespace
	for _, c := range []struct {
		name string
		keys []string
	}{
		{"web", []string{"shop/front", "shop/back"}},
		{"db", []string{"shop/back"}},
		{"edge", []string{"shop/front", "shared"}},
		{"tool", []string{"shop/default"}},
		{"alone", []string{}},
	} {
		if got := s.NetworkKeys(ns(c.name)); !slices.Equal(got, c.keys) {
			t.Errorf("%s: network keys %q, want %q", c.name, got, c.keys)
		}
	}
	for _, c := range []struct {
		a, b  string
		share bool
	}{{"web", "db", true}, {"web", "edge", true}, {"db", "edge", false}, {"tool", "web", false}, {"alone", "alone", false}} {
		if got := s.Shares(ns(c.a), ns(c.b)); got != c.share {
			t.Errorf("Shares(%s, %s) = %t, want %t", c.a, c.b, got, c.share)
		}
	}
	// The default network may be declared, and then shared.
	s = mustParse(t, "networks: {default: {external: true}}\nnamespaces: {a: {}}\n")
	if got := s.NetworkKeys(s.Namespace("a")); !slices.Equal(got, []string{"default"}) {
		t.Errorf("declared external default: keys %q", got)
	}
}

func TestBadNetworks(t *testing.T) {
	for _, c := range []struct {
		name, spec string
		line, col  int
		path, msg  string
	}{
		{"undeclared", "networks: {front: {}}\nnamespaces:\n  a: {networks: [front, back]}\n", 3, 25, "namespaces.a.networks[1]", `network "back" is not declared; declare it under networks: at the top of the spec (declared: "front")`},
		{"none declared", "namespaces:\n  a: {networks: [front]}\n", 2, 18, "namespaces.a.networks[0]", `network "front" is not declared; declare it under networks: at the top of the spec (declared: none)`},
		{"twice", "networks: {front: {}}\nnamespaces:\n  a: {networks: [front, front]}\n", 3, 25, "namespaces.a.networks[1]", `network "front" is listed twice`},
		{"bad name", "networks: {fr/nt: {}}\nnamespaces: {a: {}}\n", 1, 12, "networks.fr/nt", `network name "fr/nt" contains "/"`},
		{"unknown key", "networks: {front: {driver: bridge}}\nnamespaces: {a: {}}\n", 1, 20, "networks.front.driver", `unknown key "driver"; known keys here: external`},
		{"external not bool", "networks: {front: {external: yes please}}\nnamespaces: {a: {}}\n", 1, 30, "networks.front.external", "expected true or false"},
		{"not a list", "networks: {front: {}}\nnamespaces:\n  a: {networks: front}\n", 3, 17, "namespaces.a.networks", "expected a list"},
	} {
		t.Run(c.name, func(t *testing.T) { expectProblem(t, c.spec, c.line, c.col, c.path, c.msg) })
	}
}

func TestResources(t *testing.T) {
	s, err := Parse("demo.yaml", []byte(`namespaces:
  a:
    resources: {memory: 256M, cpus: 0.5, pids: 64}
    run:
      - {command: [a], resources: {memory: 128MiB}}
      - {command: [b]}
  b:
    resources: {memory: 1073741824, cpus: 2}
  c: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := s.Namespace("a"), s.Namespace("b"), s.Namespace("c")
	if want := (Resources{Memory: 256 << 20, CPUs: 0.5, PIDs: 64}); a.Resources != want {
		t.Errorf("a: %+v; want %+v", a.Resources, want)
	}
	if want := (Resources{Memory: 128 << 20}); a.Run[0].Resources != want || !a.Run[1].Resources.IsZero() {
		t.Errorf("a's processes: %+v, %+v", a.Run[0].Resources, a.Run[1].Resources)
	}
	if want := (Resources{Memory: 1 << 30, CPUs: 2}); b.Resources != want || !c.Resources.IsZero() {
		t.Errorf("b: %+v, c: %+v", b.Resources, c.Resources)
	}
	if got := a.Resources.String(); got != "memory 256M, cpus 0.5, pids 64" {
		t.Errorf("String: %q", got)
	}
	// The printed spec says the same.
	out, err := s.Config()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse("demo.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if again.Namespace("a").Resources != a.Resources || again.Namespace("a").Run[0].Resources != a.Run[0].Resources || again.Namespace("b").Resources != b.Resources {
		t.Errorf("config does not parse back to the same limits:\n%s", out)
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"268435456": 268435456, "256M": 256 << 20, "256m": 256 << 20, "256MB": 256 << 20,
		"256MiB": 256 << 20, "0.5G": 512 << 20, "1g": 1 << 30, "64k": 64 << 10, "100b": 100, "2 GB": 2 << 30} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "256X", "-1M", "256 MBs", "1e9", "12.M"} {
		if got, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) = %d; want an error", in, got)
		}
	}
	for n, want := range map[int64]string{256 << 20: "256M", 1 << 30: "1G", 1536 << 20: "1536M", 1000: "1000", 6 << 20: "6M"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q; want %q", n, got, want)
		}
	}
}

func TestBadResources(t *testing.T) {
	for _, c := range []struct {
		name, spec string
		line, col  int
		path, msg  string
	}{
		{"unit", "namespaces:\n  a: {resources: {memory: 256X}}\n", 2, 27, "namespaces.a.resources.memory", `"256X" is not a size; write bytes, or a number with K, M, G or T`},
		{"too little memory", "namespaces:\n  a: {resources: {memory: 1M}}\n", 2, 27, "namespaces.a.resources.memory", `memory "1M" is below the least a process needs, 6M`},
		{"zero cpus", "namespaces:\n  a: {resources: {cpus: 0}}\n", 2, 25, "namespaces.a.resources.cpus", `cpus "0" is out of range 0.01-1024`},
		{"negative cpus", "namespaces:\n  a: {resources: {cpus: -1}}\n", 2, 25, "namespaces.a.resources.cpus", `cpus "-1" is out of range`},
		{"cpus not a number", "namespaces:\n  a: {resources: {cpus: half}}\n", 2, 25, "namespaces.a.resources.cpus", `cpus "half" is not a number of cores`},
		{"zero pids", "namespaces:\n  a: {resources: {pids: 0}}\n", 2, 25, "namespaces.a.resources.pids", `pids "0" is out of range 1-4194304`},
		{"fractional pids", "namespaces:\n  a: {resources: {pids: 1.5}}\n", 2, 25, "namespaces.a.resources.pids", `pids "1.5" is not a whole number`},
		{"unknown key", "namespaces:\n  a: {resources: {swap: 1G}}\n", 2, 19, "namespaces.a.resources.swap", `unknown key "swap"; known keys here: memory, cpus, pids`},
		{"process above namespace", "namespaces:\n  a:\n    resources: {memory: 256M, pids: 10}\n    run:\n      - {command: [x], resources: {memory: 512M}}\n", 5, 35, "namespaces.a.run[0].resources",
			"memory 512M is above the namespace's 256M; a process's limits nest inside its namespace's"},
		{"process pids above namespace", "namespaces:\n  a:\n    resources: {pids: 10}\n    run:\n      - {command: [x], resources: {pids: 11}}\n", 5, 35, "namespaces.a.run[0].resources",
			"pids 11 is above the namespace's 10"},
	} {
		t.Run(c.name, func(t *testing.T) { expectProblem(t, c.spec, c.line, c.col, c.path, c.msg) })
	}
}

// expectProblem checks that a spec is refused with a problem at that
// place and path whose message contains msg.
func expectProblem(t *testing.T, spec string, line, col int, path, msg string) {
	t.Helper()
	_, err := Parse("demo.yaml", []byte(spec))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("no spec error: %v", err)
	}
	for _, p := range e.Problems {
		if p.Line == line && p.Col == col && p.Path == path && strings.Contains(p.Msg, msg) {
			return
		}
	}
	t.Errorf("no problem at %d:%d %s containing %q; got:\n%v", line, col, path, msg, err)
}
