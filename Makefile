# capprof's build, generation, tests and demo. `make test` is what CI runs.
GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Recording needs root; the demo asks for it only when not already root.
SUDO    := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

# The pod end-to-end tests run a real kube-apiserver of this version.
K8S_VERSION := v1.37.2
K8S_CACHE   := .cache/k8s/$(K8S_VERSION)
# ... and, beside Debian's runc 1.1, a runc 1.4+ (it starts exec processes
# differently), built from the Go module proxy.
RUNC_VERSION := v1.5.3
RUNC_CACHE   := .cache/runc/$(RUNC_VERSION)
BUSYBOX_CACHE := .cache/busybox
E2E_DEBS    := etcd-server containerd runc busybox-static gcc libc6-dev util-linux qemu-system-x86
E2E_ENV     := CAPPROF_E2E_APISERVER=$(abspath $(K8S_CACHE))/kube-apiserver CAPPROF_E2E_RUNC=$(abspath $(RUNC_CACHE))/runc \
	CAPPROF_E2E_BUSYBOX=$(abspath $(BUSYBOX_CACHE))/busybox

.PHONY: all build generate check-generate cross vet test fuzz kernel-matrix accuracy e2e-deps demo bench clean FORCE

all: build

build: $(BIN)/capprof

$(BIN)/capprof: FORCE
	$(GO) build -ldflags "$(LDFLAGS)" -o $@ ./cmd/capprof

$(BIN)/web-server $(BIN)/workload: FORCE
	$(GO) build -o $@ ./e2e/workload

$(BIN)/bench: FORCE
	$(GO) build -o $@ ./bench

$(BIN)/bench-cluster: FORCE
	$(GO) build -o $@ ./bench/cluster

# The e2e harness's image needs a workload without libraries.
$(BIN)/workload-static: FORCE
	CGO_ENABLED=0 $(GO) build -o $@ ./e2e/workload

# Rebuilds the eBPF objects and Go bindings (needs clang, llvm, libbpf-dev),
# the syscall table (needs linux-libc-dev), and the API types' deep copies
# and CRDs, and the agent's and controller's ClusterRoles (controller-gen, a Go
# tool in go.mod).
generate:
	$(GO) generate ./bpf/ ./recorder/ ./api/... ./agent/ ./controller/

# Changed, new or removed: an object added to gen.go but not committed counts.
GENERATED := 'bpf/*_bpfel.go' 'bpf/*_bpfel.o' recorder/syscalls_amd64.go 'api/*/zz_generated.deepcopy.go' 'deploy/crds/*.yaml' 'deploy/rbac/*/role.yaml'

check-generate: generate
	@if [ -n "$$(git status --porcelain -- $(GENERATED))" ]; then \
		git status --short -- $(GENERATED); \
		echo "generated files are stale: run make generate and commit the result"; \
		exit 1; \
	fi

# analyze, patch and diff on the platforms CI jobs run on besides Linux on
# amd64; record, verify and probes there say they need it. The linux/arm64
# build runs under qemu-user when qemu-aarch64 is installed (.ci/run does).
CROSS := darwin/arm64 linux/arm64
cross:
	@for p in $(CROSS); do echo "build $$p"; GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -o $(BIN)/capprof-$${p%/*}-$${p#*/} ./cmd/capprof || exit 1; done
	@if command -v qemu-aarch64 >/dev/null; then \
		set -e; arm="qemu-aarch64 $(BIN)/capprof-linux-arm64"; \
		$$arm analyze render/testdata/verified.json | grep -q 'add \[NET_BIND_SERVICE\]'; \
		$$arm diff render/testdata/web.json render/testdata/web.json | grep -q 'no changes'; \
		if $$arm record -o /dev/null -- true 2>$(BIN)/cross.err; then echo "record ran on linux/arm64"; exit 1; fi; \
		grep -q 'record needs Linux on amd64' $(BIN)/cross.err; \
		echo "linux/arm64 under qemu: analyze and diff work, record says it needs Linux on amd64"; \
	fi

vet:
	$(GO) vet ./...
	@unformatted="$$(gofmt -l .)"; if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

# Unit tests, golden tests and the privileged end-to-end tests (as root;
# they skip elsewhere, and fail instead of skipping when CI=true). The pod
# tests start etcd, kube-apiserver and containerd on loopback; whatever a
# crashed run leaves (shims, pod cgroups, mounts) is cleaned up afterwards.
# Then the kernel matrix runs on its own, so its VMs do not slow the host's
# timing-sensitive tests.
test: vet cross e2e-deps
	$(E2E_ENV) $(GO) test -count=1 $$($(GO) list ./... | grep -v /e2e/kernels); \
	status=$$?; $(SUDO) $(GO) run ./e2e/cluster/cleanup || status=1; \
	$(MAKE) --no-print-directory fuzz || status=1; \
	$(MAKE) --no-print-directory kernel-matrix || status=1; exit $$status

# Each fuzz target for FUZZTIME: what profiles, manifests, --events-filter
# terms and ring-buffer records from anywhere meet. An input that fails is
# written to the package's testdata/fuzz/, where go test runs it from then
# on: commit it with the fix. A count of runs, not a duration: Go before
# 1.27 can fail a duration-bound run that found nothing with "context
# deadline exceeded" (golang/go#75804). 50000 runs take 2-15 s a target here.
FUZZTIME ?= 50000x
FUZZ_TARGETS := render:FuzzProfile manifest:FuzzManifest events:FuzzFilter bpf:FuzzDecodeEvent internal/escape:FuzzText
fuzz:
	@status=0; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 200x ./$${t%%:*} || status=1; \
	done; exit $$status

# Boots Debian's cloud kernels 6.1, 6.12 and 7.x under qemu (downloaded into
# .cache/kernels through their meta-packages) and runs the recording tests
# and the accuracy corpus inside each, with every probe backend the kernel
# supports (e2e/kernels). The full log is bin/kernel-matrix.log, each guest's
# console bin/kernel-matrix/KERNEL.log, the README's table bin/kernel-matrix.md.
kernel-matrix:
	@mkdir -p $(BIN)
	@$(GO) test -count=1 -v -timeout 85m ./e2e/kernels > $(BIN)/kernel-matrix.log 2>&1; \
	status=$$?; grep -E '^ *(--- |ok |FAIL|PASS$$|matrix_test.go)|^        ' $(BIN)/kernel-matrix.log; exit $$status

# The accuracy corpus alone, printing its table: every workload recorded,
# then verified sufficient and minimal (e2e/accuracy_test.go). Needs root.
accuracy: e2e-deps
	@mkdir -p $(BIN)
	$(E2E_ENV) $(GO) test -count=1 -v -run '^TestAccuracyCorpus$$' ./e2e > $(BIN)/accuracy.log 2>&1; \
	status=$$?; grep -v '^=== ' $(BIN)/accuracy.log; $(SUDO) $(GO) run ./e2e/cluster/cleanup || status=1; exit $$status

# What the end-to-end tests need: gcc and libc6-dev (the accuracy corpus),
# setpriv (util-linux), etcd, containerd, runc, busybox-static and qemu
# (the kernel matrix) from Debian; kube-apiserver built from the Go module proxy into
# $(K8S_CACHE) (~6 min and ~3 GB of build cache cold; seconds when cached);
# runc $(RUNC_VERSION) into $(RUNC_CACHE) (~30 s cold); and busybox-static's
# static binary, taken from its package, whatever busybox the host has.
e2e-deps:
	@missing=""; for p in $(E2E_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	e2e/cluster/build-apiserver.sh $(K8S_VERSION) $(K8S_CACHE)
	e2e/cluster/build-runc.sh $(RUNC_VERSION) $(RUNC_CACHE)
	e2e/cluster/fetch-busybox.sh $(BUSYBOX_CACHE)

# Records the bundled demo (a start script and a small server that binds
# port 80, hands its data directory to nobody and drops root), analyzes it,
# compares it with demo/deploy.yaml and prints that manifest hardened.
demo: $(BIN)/capprof $(BIN)/web-server
	$(SUDO) $(BIN)/capprof record -o $(BIN)/demo.json -- ./demo/start.sh
	$(BIN)/capprof analyze $(BIN)/demo.json
	$(BIN)/capprof analyze -o yaml $(BIN)/demo.json
	$(BIN)/capprof analyze --manifest demo/deploy.yaml $(BIN)/demo.json
	$(BIN)/capprof patch --manifest demo/deploy.yaml $(BIN)/demo.json

# Side-by-side overhead of capprof and bpftrace (installed from Debian if
# missing); a table on stdout, all figures in bin/bench.json. Then cluster
# mode at scale on the e2e harness: the controller merging 300 pods x 3
# containers on 30 nodes, an agent recording 110 pods (bin/bench-cluster.json).
# Takes ~8 min.
bench: $(BIN)/capprof $(BIN)/workload $(BIN)/bench $(BIN)/bench-cluster $(BIN)/workload-static e2e-deps
	@command -v bpftrace >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq bpftrace; }
	$(SUDO) $(BIN)/bench -capprof $(BIN)/capprof -workload $(BIN)/workload -json $(BIN)/bench.json $(BENCHFLAGS)
	$(SUDO) $(BIN)/bench-cluster -capprof $(BIN)/capprof -apiserver $(abspath $(K8S_CACHE))/kube-apiserver \
		-busybox $(abspath $(BUSYBOX_CACHE))/busybox -workload $(BIN)/workload-static -json $(BIN)/bench-cluster.json 2>$(BIN)/bench-cluster.log

clean:
	rm -rf $(BIN)
