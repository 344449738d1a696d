package recorder

// checkpoints takes the profile recorded so far and hands it to a
// Checkpoint function on a goroutine of its own, one at a time, with
// requests that come meanwhile folded into one: a slow snapshot or write
// (the agent's, to an API server under load) delays the next checkpoint,
// never the loop that arms the pods that come. With both on the loop, 100
// busy pods on 2 CPUs left the agent minutes behind the pods it was to arm
// (bench-cluster's mix): their containers started before it saw them.
type checkpoints struct {
	due  chan struct{} // holds a request not yet taken
	done chan struct{}
}

func startCheckpoints(checkpoint func()) *checkpoints {
	c := &checkpoints{due: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for range c.due {
			checkpoint()
		}
	}()
	return c
}

// request asks for a checkpoint; it never blocks, and is folded into one
// still waiting.
func (c *checkpoints) request() {
	select {
	case c.due <- struct{}{}:
	default:
	}
}

// stop drops a request still waiting and waits for the checkpoint in
// progress: after it, none runs. One goroutine requests and stops.
func (c *checkpoints) stop() {
	select {
	case <-c.due:
	default:
	}
	close(c.due)
	<-c.done
}
