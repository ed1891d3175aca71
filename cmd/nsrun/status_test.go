package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/cgroup"
	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/iptables"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/nsrun/nsrun/project"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/state"
)

// TestStatusJSONShape fails when the status document changes shape: a
// change here is a change for every script that reads it, and needs a new
// version and a note in the README.
func TestStatusJSONShape(t *testing.T) {
	s, err := specs.Parse("blog.yaml", []byte("name: blog\nnamespaces:\n  ns1:\n    address: 10.9.1.2/24\n    ports: [\"6000:8080\", \"127.0.0.1:6100:9090/udp\"]\n    run: [{name: web, command: [srv]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	st := project.FromSpec(s)
	st.Backend, st.Accepts = iptables.NFT, []forward.Backend{iptables.Legacy}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	r := report(&project.Report{Project: "blog", State: st,
		Supervisor: &project.ProcessReport{Name: "supervisor", State: "gone", PID: 1 << 30},
		Processes:  []project.ProcessReport{{Name: "ns1/web", State: "unsupervised", PID: 4242, Restarts: 2, StartedAt: now.Add(-90 * time.Second)}},
		Drift:      []project.Drift{{Kind: project.DriftLink, Namespace: "ns1", Message: "link nsr-ns1 is missing"}},
		Heal: state.HealStatus{Repairs: 2, LastRepair: now.Add(-time.Minute), LastFixed: []string{"firewalld has link nsr-ns1 in no zone"},
			LastCause: []string{"firewalld reloaded"}},
	}, now)
	host := project.HostReport{Passes: false, Uplinks: []string{"eth0"}, Findings: []project.Finding{
		{Firewall: "nftables", Found: "chain inet filter forward (hook forward) ends in policy drop", Action: "nsrun does not change other programs' tables",
			Fix: "nft insert rule inet filter forward iifname 'nsr-*' accept"}}}
	bad := report(&project.Report{Project: "old", Err: errors.New("state of project \"old\" is corrupt")}, now)
	var got bytes.Buffer
	enc := json.NewEncoder(&got)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	doc := statusDoc{Version: statusVersion, Projects: []projectReport{r, bad}, HostFirewall: host,
		Keeper: &processReport{Name: "keeper", State: "running", PID: 77}}
	if err := enc.Encode(doc); err != nil {
		t.Fatal(err)
	}
	want := `{
  "version": 1,
  "projects": [
    {
      "name": "blog",
      "spec": "blog.yaml",
      "backend": "iptables-nft",
      "forward_accepts": [
        "iptables-legacy"
      ],
      "namespaces": [
        {
          "name": "ns1",
          "address": "10.9.1.2/24",
          "host_link": "nsr-ns1",
          "host_address": "10.9.1.1/24",
          "egress": true,
          "networks": [
            {
              "name": "default",
              "external": false
            }
          ],
          "ports": [
            {
              "host_ip": "0.0.0.0",
              "published": "6000",
              "protocol": "tcp",
              "address": "10.9.1.2",
              "target": "8080"
            },
            {
              "host_ip": "127.0.0.1",
              "published": "6100",
              "protocol": "udp",
              "address": "10.9.1.2",
              "target": "9090"
            }
          ]
        }
      ],
      "supervisor": {
        "name": "supervisor",
        "state": "gone",
        "pid": 1073741824,
        "restarts": 0,
        "exit_code": 0
      },
      "processes": [
        {
          "name": "ns1/web",
          "state": "unsupervised",
          "pid": 4242,
          "restarts": 2,
          "uptime": "1m30s",
          "exit_code": 0
        }
      ],
      "drift": [
        "link nsr-ns1 is missing"
      ],
      "heal": true,
      "repairs": 2,
      "last_repair": "2026-11-26T11:59:00Z",
      "last_fixed": [
        "firewalld has link nsr-ns1 in no zone"
      ],
      "last_cause": [
        "firewalld reloaded"
      ]
    },
    {
      "name": "old",
      "error": "state of project \"old\" is corrupt",
      "backend": "",
      "namespaces": [],
      "processes": [],
      "drift": [],
      "heal": false,
      "repairs": 0
    }
  ],
  "keeper": {
    "name": "keeper",
    "state": "running",
    "pid": 77,
    "restarts": 0,
    "exit_code": 0
  },
  "host_firewall": {
    "passes": false,
    "findings": [
      {
        "firewall": "nftables",
        "found": "chain inet filter forward (hook forward) ends in policy drop",
        "action": "nsrun does not change other programs' tables",
        "passes": false,
        "fix": "nft insert rule inet filter forward iifname 'nsr-*' accept"
      }
    ],
    "uplinks": [
      "eth0"
    ]
  }
}
`
	if got.String() != want {
		t.Errorf("status document:\n%s\nwant:\n%s", got.String(), want)
	}
}

// TestCompletion: exec completes namespace names; logs completes NS/PROC.
func TestCompletion(t *testing.T) {
	nstest.RequireRoot(t)
	name := nstest.Name("cp")
	if err := netns.Create(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete(name) })
	out, err := exec.Command(nstest.Binary(t), "__complete", "exec", "").CombinedOutput()
	if err != nil || !strings.Contains(string(out), name+"\n") {
		t.Errorf("completion of exec: %v\n%s", err, out)
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		if out, err := exec.Command(nstest.Binary(t), "completion", shell).Output(); err != nil || !strings.Contains(string(out), "__complete") {
			t.Errorf("completion %s: %v", shell, err)
		}
	}
	// Projects for -p, and NS/PROC for logs, from the record.
	proj := strings.ToLower(nstest.Name("cq"))
	spec := writeSpec(t, proj+".yaml", "namespaces:\n  "+proj+":\n    run: [{name: idle, command: [sleep, \"300\"]}]\n")
	t.Cleanup(func() { nsrunCmd(t, "/", "down", "-q", "-p", proj) })
	if code, _, errOut := nsrunCmd(t, "/", "up", "-q", spec); code != 0 {
		t.Fatal(errOut)
	}
	if out, _ := exec.Command(nstest.Binary(t), "__complete", "logs", "-p", "").Output(); !strings.Contains(string(out), proj+"\n") {
		t.Errorf("completion of -p:\n%s", out)
	}
	if out, _ := exec.Command(nstest.Binary(t), "__complete", "logs", "-p", proj, "").Output(); !strings.Contains(string(out), proj+"/idle\n") {
		t.Errorf("completion of logs NS/PROC:\n%s", out)
	}
}

// TestStatusJSONIPv6: a project with IPv6 adds, and only adds, the IPv6
// addresses, its ports on IPv6 with the namespace's IPv6 address, and
// whether [::1] is served.
func TestStatusJSONIPv6(t *testing.T) {
	s, err := specs.Parse("dual.yaml", []byte("name: dual\nipv6: true\nnamespaces:\n  ns1:\n    address: 10.9.1.2/24\n    address6: \"fd00:9:1::2/64\"\n    ports: [\"6000:8080\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := report(&project.Report{Project: "dual", State: project.FromSpec(s), Loopback6: "served by the loopback shortcut"}, time.Now())
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"address":"10.9.1.2/24"`, `"address6":"fd00:9:1::2/64"`, `"host_address6":"fd00:9:1::1/64"`,
		`{"host_ip":"0.0.0.0","published":"6000","protocol":"tcp","address":"10.9.1.2","target":"8080"}`,
		`{"host_ip":"::","published":"6000","protocol":"tcp","address":"fd00:9:1::2","target":"8080"}`,
		`"loopback6":"served by the loopback shortcut"`,
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("status lacks %s:\n%s", want, data)
		}
	}
	var text bytes.Buffer
	printProject(&text, r)
	if !strings.Contains(text.String(), "[::]:6000/tcp -> [fd00:9:1::2]:8080") || !strings.Contains(text.String(), "[::1] (ports published on IPv6, from this host): served") {
		t.Errorf("status for people:\n%s", text.String())
	}
}

// TestStatusLimits: a namespace with limits shows them and its usage, in
// JSON and in the table; a process the OOM killer ended says so.
func TestStatusLimits(t *testing.T) {
	s, err := specs.Parse("lim.yaml", []byte("name: lim\nnamespaces:\n  ns1:\n    resources: {memory: 256M, cpus: 0.5, pids: 64}\n    run: [{name: app, command: [srv], resources: {memory: 128M}}]\n  ns2: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := report(&project.Report{Project: "lim", State: project.FromSpec(s),
		Usage:     map[string]cgroup.Usage{"ns1": {Memory: 42 << 20, CPUSeconds: 12.5, PIDs: 3}},
		Processes: []project.ProcessReport{{Name: "ns1/app", State: "backoff", Restarts: 2, ExitCode: 137, ExitCause: "killed: out of memory (limit 128M)", OOMKills: 2}},
	}, time.Now())
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"resources":{"limits":{"memory":268435456,"cpus":0.5,"pids":64},"usage":{"memory_bytes":44040192,"cpu_seconds":12.5,"pids":3},"processes":{"app":{"memory":134217728}}}`,
		`"exit_code":137,"exit_cause":"killed: out of memory (limit 128M)","oom_kills":2`,
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("status -o json lacks %s:\n%s", want, data)
		}
	}
	if strings.Count(string(data), `"resources"`) != 1 {
		t.Errorf("ns2, without limits, has resources:\n%s", data)
	}
	var table bytes.Buffer
	printProject(&table, r)
	for _, want := range []string{
		"LIMITS OF  LIMITS                          MEMORY USED  CPU TIME  PIDS",
		"ns1        memory 256M, cpus 0.5, pids 64  42.0M        12.50s    3",
		"ns1/app    memory 128M",
		"137, killed: out of memory (limit 128M) (2 OOM kills so far)",
	} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, table.String())
		}
	}
}

// TestStatusShaping: each shaped namespace's limits and netem, and
// whether its qdiscs are in place, in the table and in JSON.
func TestStatusShaping(t *testing.T) {
	s, err := specs.Parse("sh.yaml", []byte("name: sh\nnamespaces:\n  ns1:\n    bandwidth: {ingress: 20mbit, egress: 10mbit}\n    netem: {delay: 20ms, loss: 1%}\n  ns2: {bandwidth: {egress: 1gbit}}\n  ns3: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := report(&project.Report{Project: "sh", State: project.FromSpec(s),
		Drift: []project.Drift{{Kind: project.DriftShaping, Namespace: "ns2", Message: "the shaping of what goes out of namespace ns2 is missing: ..."}},
	}, time.Now())
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"shaping":{"bandwidth":{"ingress":20000000,"egress":10000000},"netem":{"delay":"20ms","loss_percent":1},"in_place":true}`,
		`"shaping":{"bandwidth":{"egress":1000000000},"in_place":false}`,
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("status -o json lacks %s:\n%s", want, data)
		}
	}
	if strings.Count(string(data), `"shaping"`) != 2 {
		t.Errorf("ns3, unshaped, has shaping:\n%s", data)
	}
	var table bytes.Buffer
	printProject(&table, r)
	for _, want := range []string{
		"SHAPING OF  INTO IT  OUT OF IT  NETEM (OUT OF IT)    IN PLACE",
		"ns1         20mbit   10mbit     delay 20ms, loss 1%  yes",
		"ns2         -        1gbit      -                    no (see drift)",
	} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, table.String())
		}
	}
}
