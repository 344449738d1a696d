package kernels

// AccuracyResult is one row of the accuracy corpus (e2e/accuracy_test.go) as
// JSON: the e2e tests write one per workload to $CAPPROF_E2E_RESULTS, the
// guests print them, and TestKernelMatrix compares them across probes.
type AccuracyResult struct {
	Workload   string   `json:"workload"`
	Probe      string   `json:"probe"`
	Required   []string `json:"required"`
	Denied     []string `json:"denied"`
	Sufficient bool     `json:"sufficient"`
	Minimal    bool     `json:"minimal"`
}
