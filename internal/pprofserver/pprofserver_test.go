package pprofserver

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestStart: the heap profile is served on the address Start picked, and
// nothing is once the context ends; stop after that is harmless.
func TestStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addr, stop, err := Start(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr.String() + "/debug/pprof/heap?debug=1"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "heap profile:") {
		t.Fatalf("GET %s: %s\n%.200s", url, resp.Status, body)
	}
	if resp, err := http.Get("http://" + addr.String() + "/"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /: %v %v, want only the profiles served", resp, err)
	}
	cancel()
	stop()
	if _, err := http.Get(url); err == nil {
		t.Fatal("the profiles are still served after the context ended")
	}
	if _, _, err := Start(context.Background(), "127.0.0.1:http-alt-not-a-port"); err == nil {
		t.Fatal("a bad address was taken")
	}
}
