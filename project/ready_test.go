package project

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// TestReadyChecksSideBySide: the ready checks run side by side, each
// reported as it passes: a process that becomes ready only after the
// others does not hold them up (in spec order, one at a time, this up
// would wait for it until its timeout).
func TestReadyChecksSideBySide(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	var mu sync.Mutex
	var ready []string
	e.Progress = func(s Step) {
		if s.Op == OpReady {
			mu.Lock()
			ready = append(ready, s.Namespace)
			mu.Unlock()
		}
	}
	e.Supervision.(*fakeSupervision).dial = func(ns string, _ uint16) error {
		mu.Lock()
		defer mu.Unlock()
		if ns == "slow" && len(ready) < 2 {
			return errors.New("connection refused")
		}
		return nil
	}
	src := `namespaces:
  slow: {run: [{name: a, command: [a], ready: {tcp: 80, timeout: 2s}}]}
  fast1: {run: [{name: a, command: [a], ready: {tcp: 80, timeout: 2s}}]}
  fast2: {run: [{name: a, command: [a], ready: {tcp: 80, timeout: 2s}}]}
`
	if _, err := e.Up(context.Background(), spec(t, src)); err != nil {
		t.Fatal(err)
	}
	if len(ready) != 3 || ready[2] != "slow" {
		t.Errorf("ready in the order %q; want fast1 and fast2 (in any order), then slow", ready)
	}
}
