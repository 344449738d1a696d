package recorder

import (
	"testing"
	"time"
)

// TestCheckpoints: requests made while a checkpoint runs fold into one next
// checkpoint, a request never waits for one, and stop waits for the one
// running and drops one still waiting.
func TestCheckpoints(t *testing.T) {
	started := make(chan struct{}, 10)
	release := make(chan struct{})
	runs := 0 // only the checkpoints' goroutine writes it before stop returns
	c := startCheckpoints(func() {
		runs++
		started <- struct{}{}
		<-release
	})
	c.request()
	<-started
	for range 5 {
		c.request() // folded into one, and never blocking
	}
	release <- struct{}{}
	<-started
	c.request() // still waiting when stop comes: dropped
	stopped := make(chan struct{})
	go func() {
		c.stop()
		close(stopped)
	}()
	select {
	case <-stopped:
		t.Fatal("stop returned while a checkpoint was running")
	case <-time.After(50 * time.Millisecond):
	}
	release <- struct{}{}
	<-stopped
	if runs != 2 {
		t.Fatalf("%d checkpoints ran, want 2: the first, then one for the five requests made during it", runs)
	}
}
