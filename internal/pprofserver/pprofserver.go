// Package pprofserver serves the Go runtime's profiles (net/http/pprof) of
// capprof's long-running verbs, the agent and the controller, on an address
// the user chose: where their memory and CPU go on a real node.
package pprofserver

import (
	"context"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// Start serves the profiles under /debug/pprof/ on address (host:port; port
// 0 picks a free one) until ctx ends or stop is called, and returns the
// address it listens on. Only the profiles are served, from a mux of their
// own.
func Start(ctx context.Context, address string) (addr net.Addr, stop func(), err error) {
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // heap, goroutine, allocs, ... by name
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln) // until closed; a failed listener ends the profiles, not the verb
	}()
	closeWithCtx := context.AfterFunc(ctx, func() { srv.Close() })
	return ln.Addr(), func() {
		closeWithCtx()
		srv.Close()
		<-served
	}, nil
}
