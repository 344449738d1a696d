# capprof's build, generation, tests and demo. `make test` is what CI runs.
GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Recording needs root; the demo asks for it only when not already root.
SUDO    := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: all build generate check-generate vet test demo bench clean FORCE

all: build

build: $(BIN)/capprof

$(BIN)/capprof: FORCE
	$(GO) build -ldflags "$(LDFLAGS)" -o $@ ./cmd/capprof

$(BIN)/web-server $(BIN)/workload: FORCE
	$(GO) build -o $@ ./e2e/workload

$(BIN)/bench: FORCE
	$(GO) build -o $@ ./bench

# Rebuilds the eBPF objects and Go bindings (needs clang, llvm, libbpf-dev)
# and the syscall table (needs linux-libc-dev).
generate:
	$(GO) generate ./bpf/ ./recorder/

GENERATED := bpf/capprof_x86_bpfel.go bpf/capprof_x86_bpfel.o recorder/syscalls_amd64.go

check-generate: generate
	@if ! git diff --quiet -- $(GENERATED); then \
		git diff --stat -- $(GENERATED); \
		echo "generated files are stale: run make generate and commit the result"; \
		exit 1; \
	fi

vet:
	$(GO) vet ./...
	@unformatted="$$(gofmt -l .)"; if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

# Unit tests, golden tests and the privileged end-to-end tests (as root;
# they skip elsewhere, and fail instead of skipping when CI=true).
test: vet
	$(GO) test -count=1 ./...

# Records the bundled demo (a start script and a small server that binds
# port 80, hands its data directory to nobody and drops root), then analyzes it.
demo: $(BIN)/capprof $(BIN)/web-server
	$(SUDO) $(BIN)/capprof record -o $(BIN)/demo.json -- ./demo/start.sh
	$(BIN)/capprof analyze $(BIN)/demo.json
	$(BIN)/capprof analyze -o yaml $(BIN)/demo.json

# Side-by-side overhead of capprof and bpftrace (installed from Debian if
# missing); a table on stdout, all figures in bin/bench.json. Takes ~4 min.
bench: $(BIN)/capprof $(BIN)/workload $(BIN)/bench
	@command -v bpftrace >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq bpftrace; }
	$(SUDO) $(BIN)/bench -capprof $(BIN)/capprof -workload $(BIN)/workload -json $(BIN)/bench.json $(BENCHFLAGS)

clean:
	rm -rf $(BIN)
