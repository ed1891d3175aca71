package daemon

import (
	"context"
	"testing"
	"time"
)

// TestAwait: true once ready says so, false when the time is up or the
// context ends first.
func TestAwait(t *testing.T) {
	calls := 0
	if !Await(context.Background(), time.Minute, time.Millisecond, func() bool { calls++; return calls == 3 }) || calls != 3 {
		t.Errorf("ready on the third call: %d calls", calls)
	}
	if Await(context.Background(), 20*time.Millisecond, time.Millisecond, func() bool { return false }) {
		t.Error("never ready, yet Await said yes")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Await(ctx, time.Minute, time.Millisecond, func() bool { return false }) {
		t.Error("a context that ended, yet Await said yes")
	}
}
