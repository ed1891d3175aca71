package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsrun/nsrun/netns/nstest"
)

// TestMetrics: nsrun metrics prints a project's counters in a form
// promtool accepts, with the connections made to its published port (5
// from the host, 5 from a neighbour namespace, whose bytes the host
// forwards and counts both ways); and a real Prometheus scraping nsrun
// metrics --listen gets the port's series.
func TestMetrics(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.DumpOnFailure(t)
	promtool, err1 := exec.LookPath("promtool")
	prometheus, err2 := exec.LookPath("prometheus")
	if err1 != nil || err2 != nil {
		if os.Getenv("NSRUN_REQUIRE_ROOT") == "1" {
			t.Fatal("promtool or prometheus is missing; scripts/test.sh installs them (NSRUN_TEST_DEPS=1 scripts/install-deps.sh)")
		}
		t.Skip("no promtool or prometheus (apt-get install prometheus)")
	}
	name := strings.ToLower(nstest.Name("mx"))
	const port = 26150
	spec := writeSpec(t, name+".yaml", fmt.Sprintf("namespaces:\n  %s:\n    ports: [\"%d:8080\"]\n    run:\n"+
		"      - {name: web, command: [python3, -m, http.server, \"8080\"], ready: {tcp: 8080}, health: {tcp: 8080, interval: 1s}}\n  %s-c: {}\n", name, port, name))
	t.Cleanup(func() { nsrunCmd(t, "/", "down", "-q", "-p", name) })
	if code, _, errOut := nsrunCmd(t, "/", "up", "-q", spec); code != 0 {
		t.Fatalf("up: %s", errOut)
	}
	for i := range 5 {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp.Body.Close()
	}
	// From the neighbour, to the host's address at the other end of its
	// link: DNAT'd and forwarded.
	get := fmt.Sprintf(`gw=$(ip -4 route show default | cut -d" " -f3); for i in 1 2 3 4 5; do python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=30).read()" "http://$gw:%d/" || exit 1; done`, port)
	if code, _, errOut := nsrunCmd(t, "/", "exec", name+"-c", "--", "sh", "-c", get); code != 0 {
		t.Fatalf("requests from namespace %s-c: exit %d: %s", name, code, errOut)
	}

	code, out, errOut := nsrunCmd(t, "/", "metrics", "-p", name)
	if code != 0 {
		t.Fatalf("metrics: exit %d: %s", code, errOut)
	}
	series := regexp.MustCompile(`(?m)^nsrun_published_connections_total\{host_ip="0.0.0.0",namespace="` + name + `",port="26150",project="` + name + `",protocol="tcp"\} (\d+)$`)
	m := series.FindStringSubmatch(out)
	if n, _ := strconv.Atoi(m1(m)); n < 10 {
		t.Errorf("metrics: want the port's connections, at least 10:\n%s", out)
	}
	for _, metric := range []string{"bytes", "packets"} {
		for _, dir := range []string{"in", "out"} {
			series := regexp.MustCompile(`(?m)^nsrun_published_` + metric + `_total\{direction="` + dir + `",host_ip="0.0.0.0",namespace="` + name + `",port="26150",project="` + name + `",protocol="tcp"\} (\d+)$`)
			if n, _ := strconv.Atoi(m1(series.FindStringSubmatch(out))); n < 10 {
				t.Errorf("metrics: want the port's %s %s, at least 10 (two packets a connection):\n%s", metric, dir, out)
			}
		}
	}
	for _, want := range []string{
		`nsrun_namespace_bytes_total{direction="in",namespace="` + name + `",project="` + name + `"}`,
		`nsrun_process_up{namespace="` + name + `",process="web",project="` + name + `"} 1`,
		`nsrun_process_restarts_total{namespace="` + name + `",process="web",project="` + name + `"} 0`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lacks %s:\n%s", want, out)
		}
	}
	// status shows the same counters, in its table and its JSON.
	if code, out, errOut := nsrunCmd(t, "/", "status", "-p", name); code != 0 || !regexp.MustCompile(`(?m)^0\.0\.0\.0:26150/tcp -> \S+:8080\s+\d\d+\s+\S+, \d+ packets\s+\S+, \d+ packets$`).MatchString(out) ||
		!strings.Contains(out, "DROPS (IN, OUT)") {
		t.Errorf("status (exit %d) lacks the port's connections or the namespace's traffic:\n%s%s", code, out, errOut)
	}
	code, out2, _ := nsrunCmd(t, "/", "status", "-p", name, "-o", "json")
	var doc struct {
		Projects []struct {
			Namespaces []struct {
				Ports []struct {
					Connections *uint64 `json:"connections"`
					Traffic     *struct {
						In, Out struct{ Bytes, Packets uint64 }
					} `json:"traffic"`
				} `json:"ports"`
				Traffic *struct {
					In, Out struct{ Bytes, Packets uint64 }
				} `json:"traffic"`
			} `json:"namespaces"`
		} `json:"projects"`
	}
	if err := json.Unmarshal([]byte(out2), &doc); err != nil || code != 0 || len(doc.Projects) != 1 || len(doc.Projects[0].Namespaces) != 2 {
		t.Fatalf("status -o json (exit %d): %v\n%s", code, err, out2)
	}
	ns := doc.Projects[0].Namespaces[0]
	if len(ns.Ports) != 1 || ns.Ports[0].Connections == nil || *ns.Ports[0].Connections < 10 || ns.Traffic == nil || ns.Traffic.In.Bytes == 0 || ns.Traffic.Out.Packets == 0 {
		t.Errorf("status -o json: the port's connections or the namespace's traffic are missing:\n%s", out2)
	}
	if tr := ns.Ports[0].Traffic; tr == nil || tr.In.Packets < 10 || tr.Out.Packets < 10 || tr.In.Bytes < 40*tr.In.Packets || tr.Out.Bytes < 40*tr.Out.Packets {
		t.Errorf("status -o json: the port's traffic is missing or too small:\n%s", out2)
	}

	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = strings.NewReader(out)
	if res, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, res)
	}

	// Served, and scraped by a real Prometheus on loopback.
	listen, promAt := freeLoopback(t), freeLoopback(t)
	serve := exec.Command(nstest.Binary(t), "metrics", "-p", name, "--listen", listen)
	var serveErr strings.Builder
	serve.Stderr = &serveErr
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { serve.Process.Signal(syscall.SIGTERM); serve.Wait() })
	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf("global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: nsrun\n    static_configs: [{targets: [%q]}]\n", listen)), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := exec.Command(prometheus, "--config.file="+config, "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAt)
	var promOut strings.Builder
	prom.Stdout, prom.Stderr = &promOut, &promOut
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prom.Process.Signal(syscall.SIGTERM); prom.Wait() })
	query := fmt.Sprintf("http://%s/api/v1/query?query=%s", promAt, url.QueryEscape(`nsrun_published_connections_total{project="`+name+`",port="26150"}`))
	var last string
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		resp, err := http.Get(query)
		if err != nil {
			last = err.Error()
			continue
		}
		var answer struct {
			Status string `json:"status"`
			Data   struct {
				Result []struct {
					Value []any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&answer)
		resp.Body.Close()
		last = fmt.Sprintf("%+v %v", answer, err)
		if err == nil && answer.Status == "success" && len(answer.Data.Result) == 1 && len(answer.Data.Result[0].Value) == 2 {
			if n, _ := strconv.Atoi(fmt.Sprint(answer.Data.Result[0].Value[1])); n >= 5 {
				return
			}
		}
	}
	t.Fatalf("Prometheus never had the port's series; last answer: %s\nnsrun metrics --listen said:\n%s\nprometheus said:\n%s", last, serveErr.String(), promOut.String())
}

func m1(m []string) string {
	if len(m) < 2 {
		return ""
	}
	return m[1]
}

// freeLoopback returns a TCP address on 127.0.0.1 that was free a moment ago.
func freeLoopback(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
