package specs

import (
	"slices"
	"testing"
	"time"
)

func TestHealth(t *testing.T) {
	s := mustParse(t, `namespaces:
  web:
    ports: ["6000:8080", "6001:9090"]
    run:
      - name: app
        command: [srv]
        health: {http: /healthz, interval: 5s, timeout: 1s, retries: 2, start_period: 10s, on_failure: restart}
      - name: ready
        command: [srv]
        ready: {tcp: 7070}
        health: {http: /ok}
      - name: url
        command: [srv]
        health: {http: "http://10.0.0.2:81/x?y=1"}
      - name: tcp
        command: [srv]
        health: {tcp: 8080, on_failure: stop}
        depends_on: [app, db/pg]
      - name: cmd
        command: [srv]
        health: {command: "test -e /tmp/ok"}
  db:
    run:
      - name: pg
        command: [pg]
        health: {command: [pg_isready, -q]}
`)
	web := s.Namespace("web")
	app := web.Run[0].Health
	if app.HTTP != "http://127.0.0.1:8080/healthz" || app.Interval != 5*time.Second || app.Timeout != time.Second ||
		app.Retries != 2 || app.StartPeriod != 10*time.Second || app.OnFailure != OnFailureRestart || app.Kind() != "http" {
		t.Errorf("app's health = %+v", *app)
	}
	if got := web.Run[1].Health.HTTP; got != "http://127.0.0.1:7070/ok" {
		t.Errorf("a path goes to the ready port: %q", got)
	}
	if got := web.Run[2].Health.HTTP; got != "http://10.0.0.2:81/x?y=1" {
		t.Errorf("a URL is kept: %q", got)
	}
	tcp := web.Run[3]
	if tcp.Health.TCP != 8080 || tcp.Health.Kind() != "tcp" || tcp.Health.OnFailure != OnFailureStop {
		t.Errorf("tcp's health = %+v", *tcp.Health)
	}
	if !slices.Equal(tcp.DependsOn, []string{"web/app", "db/pg"}) {
		t.Errorf("depends_on resolved to %v", tcp.DependsOn)
	}
	cmd := web.Run[4].Health
	if !slices.Equal(cmd.Command, []string{"/bin/sh", "-c", "test -e /tmp/ok"}) || cmd.Kind() != "command" {
		t.Errorf("cmd's health = %+v", *cmd)
	}
	pg := s.Namespace("db").Run[0].Health
	if !slices.Equal(pg.Command, []string{"pg_isready", "-q"}) || pg.Interval != DefaultHealthInterval || pg.Timeout != DefaultHealthTimeout ||
		pg.Retries != DefaultHealthRetries || pg.StartPeriod != 0 || pg.OnFailure != OnFailureNone {
		t.Errorf("the defaults: %+v", *pg)
	}
}

func TestBadHealth(t *testing.T) {
	run := func(entry string) string { return "namespaces:\n  a:\n    run:\n      - " + entry + "\n" }
	for _, c := range []struct {
		name, spec string
		line, col  int
		path, msg  string
	}{
		{"no kind", run("{command: [x], health: {interval: 5s}}"), 4, 32, "namespaces.a.run[0].health", "exactly one of http, tcp and command (it has none)"},
		{"two kinds", run("{command: [x], health: {tcp: 80, http: /}}"), 4, 32, "namespaces.a.run[0].health", "(it has tcp and http)"},
		{"https", run(`{command: [x], health: {http: "https://127.0.0.1:443/"}}`), 4, 39, "namespaces.a.run[0].health.http", "https is not supported"},
		{"host name", run(`{command: [x], health: {http: "http://localhost:80/"}}`), 4, 39, "namespaces.a.run[0].health.http", `names host "localhost"; give an IP address`},
		{"no port in URL", run(`{command: [x], health: {http: "http://127.0.0.1/"}}`), 4, 39, "namespaces.a.run[0].health.http", "has no port"},
		{"path without a port", run("{command: [x], health: {http: /healthz}}"), 4, 39, "namespaces.a.run[0].health.http", "has no port to go with"},
		{"interval too short", run("{command: [x], health: {tcp: 80, interval: 500ms}}"), 4, 52, "namespaces.a.run[0].health.interval", "500ms is shorter than 1s"},
		{"timeout too long", run("{command: [x], health: {tcp: 80, timeout: 2h}}"), 4, 51, "namespaces.a.run[0].health.timeout", "2h is longer than 1h0m0s"},
		{"not whole seconds", run("{command: [x], health: {tcp: 80, interval: 1500ms}}"), 4, 52, "namespaces.a.run[0].health.interval", "not a whole number of seconds"},
		{"not a duration", run("{command: [x], health: {tcp: 80, start_period: soon}}"), 4, 56, "namespaces.a.run[0].health.start_period", `"soon" is not a duration`},
		{"retries zero", run("{command: [x], health: {tcp: 80, retries: 0}}"), 4, 51, "namespaces.a.run[0].health.retries", `retries "0" is out of range 1-100`},
		{"on_failure", run("{command: [x], health: {tcp: 80, on_failure: kill}}"), 4, 54, "namespaces.a.run[0].health.on_failure", `on_failure "kill" is not supported`},
		{"unknown key", run("{command: [x], health: {tcp: 80, every: 5s}}"), 4, 42, "namespaces.a.run[0].health.every", `unknown key "every"`},
		{"unknown dependency", run("{command: [x], depends_on: [b/db]}"), 4, 37, "namespaces.a.run[0].depends_on[0]", `depends_on names "b/db", which no namespace of the spec runs`},
		{"itself", run("{name: x, command: [x], depends_on: [x]}"), 4, 46, "namespaces.a.run[0].depends_on[0]", `process "a/x" depends on itself`},
		{"twice", "namespaces:\n  a:\n    run:\n      - {name: x, command: [x], depends_on: [y, a/y]}\n      - {name: y, command: [y]}\n", 4, 49, "namespaces.a.run[0].depends_on[1]", `depends_on names "a/y" twice`},
		{"not a list", run("{command: [x], depends_on: db}"), 4, 36, "namespaces.a.run[0].depends_on", "expected a list"},
		{"cycle", "namespaces:\n  a:\n    run:\n      - {name: app, command: [x], depends_on: [b/db]}\n  b:\n    run:\n      - {name: db, command: [x], depends_on: [cache]}\n      - {name: cache, command: [x], depends_on: [a/app]}\n",
			4, 9, "namespaces.a.run[0]", "depends_on makes a cycle: a/app -> b/db -> b/cache -> a/app"},
	} {
		t.Run(c.name, func(t *testing.T) { expectProblem(t, c.spec, c.line, c.col, c.path, c.msg) })
	}
}
