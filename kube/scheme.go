package kube

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/capprof/capprof/api/v1alpha1"
)

// Scheme knows the objects capprof's cluster mode reads and writes.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Logger is for controller-runtime: its warnings and errors, one line each,
// to w.
func Logger(w io.Writer) logr.Logger {
	return logr.FromSlogHandler(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// Client is a client of capprof's objects in the cluster cfg chooses, with
// the namespace (-n, else the context's) and which configuration it used.
func Client(cfg ClusterConfig) (client.Client, string, string, error) {
	config, ns, origin, err := Config(cfg)
	if err != nil {
		return nil, "", "", err
	}
	scheme, err := Scheme()
	if err != nil {
		return nil, "", "", err
	}
	// The client logs nothing capprof's errors do not say; without a
	// logger, controller-runtime prints a stack after 30 s to say it has none.
	ctrl.SetLogger(logr.Discard())
	cl, err := client.New(config, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", "", fmt.Errorf("create Kubernetes client (%s): %w", origin, err)
	}
	return cl, ns, origin, nil
}

// Manager is a controller-runtime manager of capprof's objects in the
// cluster cfg chooses, logging to log, with no metrics endpoint; opts adds
// the rest. It says which configuration it used.
func Manager(cfg ClusterConfig, log io.Writer, opts manager.Options) (manager.Manager, string, error) {
	config, _, origin, err := Config(cfg)
	if err != nil {
		return nil, "", err
	}
	if opts.Scheme, err = Scheme(); err != nil {
		return nil, "", err
	}
	opts.Logger = Logger(log)
	opts.Metrics = metricsserver.Options{BindAddress: "0"}
	ctrl.SetLogger(opts.Logger)
	mgr, err := ctrl.NewManager(config, opts)
	if err != nil {
		return nil, "", fmt.Errorf("create Kubernetes client (%s): %w", origin, err)
	}
	return mgr, origin, nil
}
