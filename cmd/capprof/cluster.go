package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/capprof/capprof/api/v1alpha1"
	"github.com/capprof/capprof/kube"
	"github.com/capprof/capprof/profile"
)

// clusterFlags read profiles from the cluster's CapabilityProfile objects
// instead of files: analyze, patch and diff share them.
type clusterFlags struct {
	fromCluster bool
	namespace   string
	kube        kubeFlags
	client      *kube.ProfileClient // made at the first read
}

// flags are --from-cluster and the flags that choose the cluster.
func (f *clusterFlags) flags(what string) []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "from-cluster", Destination: &f.fromCluster, Usage: what + " the CapabilityProfile objects of workloads (KIND/NAME: deploy/web) in the cluster", Category: "Cluster"},
		&cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Destination: &f.namespace, Usage: "the workloads' `NAMESPACE` (default: the kubeconfig context's, or default)", Category: "Cluster"},
		kubeconfigFlag(&f.kube, "Cluster"), contextFlag(&f.kube, "Cluster"),
	}
}

// check refuses the cluster's flags without --from-cluster.
func (f *clusterFlags) check(c *cli.Context) error {
	if f.fromCluster {
		return nil
	}
	for _, name := range []string{"namespace", "kubeconfig", "context"} {
		if c.IsSet(name) {
			return fmt.Errorf("--%s chooses where --from-cluster reads profiles: give --from-cluster too", name)
		}
	}
	return nil
}

// kubeFlags choose the cluster, kubectl's way.
type kubeFlags struct{ kubeconfig, context string }

func kubeconfigFlag(f *kubeFlags, category string) cli.Flag {
	return &cli.StringFlag{Name: "kubeconfig", Destination: &f.kubeconfig, Usage: "kubeconfig `FILE` (default: $KUBECONFIG, ~/.kube/config, or in-cluster)", Category: category}
}

func contextFlag(f *kubeFlags, category string) cli.Flag {
	return &cli.StringFlag{Name: "context", Destination: &f.context, Usage: "kubeconfig `CONTEXT` (default: the current one)", Category: category}
}

// source is a profile argument: a file, "-" for standard input, or with
// fromCluster a workload whose CapabilityProfile the cluster has.
type source struct {
	arg         string
	fromCluster bool
}

// sources are the arguments, each from the cluster with --from-cluster.
func (f *clusterFlags) sources(args []string) []source {
	out := make([]source, len(args))
	for i, a := range args {
		out[i] = source{a, f.fromCluster}
	}
	return out
}

// load reads one source's profile and says how to name it in messages.
func (f *clusterFlags) load(c *cli.Context, s source) (*v1alpha1.Profile, string, error) {
	if !s.fromCluster {
		p, err := loadProfile(c, s.arg)
		return p, inputName(s.arg), err
	}
	if f.client == nil {
		client, err := kube.NewProfileClient(kube.ClusterConfig{Kubeconfig: f.kube.kubeconfig, Context: f.kube.context, Namespace: f.namespace})
		if err != nil {
			return nil, "", fmt.Errorf("--from-cluster: %w", err)
		}
		f.client = client
	}
	data, what, err := f.client.Get(c.Context, s.arg)
	if err != nil {
		return nil, "", fmt.Errorf("--from-cluster: %w", err)
	}
	p, err := profile.Parse(data, false)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", what, err)
	}
	return p, what, nil
}
