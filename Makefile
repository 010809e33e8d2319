# msgtrack: the one place the project's commands live.
GO       ?= go
FUZZTIME ?= 30s
BENCHROUNDS ?= 10
BENCHFLAGS ?=
BENCHMICRO ?=
PKGS     ?= ./...

.PHONY: all test servers lint fuzz bench demo

all: lint test

## test: install missing test servers when possible, then run every test with the race detector.
test: servers
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

## servers: install memcached, slapd, ldap-utils, python3, swaks and libnet-ssleay-perl (root + apt only).
servers:
	@bash scripts/install-servers.sh

## lint: go vet and staticcheck (pinned as a Go tool dependency in go.mod).
lint:
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## fuzz: run every Fuzz* target for FUZZTIME each (default 30s).
fuzz:
	@FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

## bench: the load generator (examples/loadgen): every variant side by side, round-robin,
## BENCHROUNDS rounds, medians with 95% intervals and ratios, written to docs/BENCHMARKS.md.
## It starts its own memcached. BENCHFLAGS adds flags (e.g. -quick, -only SMTP, -cpuprofile f);
## BENCHMICRO=1 also runs every package's Benchmark* BENCHROUNDS times through benchstat.
bench:
	$(GO) run ./examples/loadgen -rounds $(BENCHROUNDS) -out docs/BENCHMARKS.md $(BENCHFLAGS)
	@if [ "$(BENCHMICRO)" = 1 ]; then mkdir -p bench-out && \
	  $(GO) test -run '^$$' -bench . -benchmem -count $(BENCHROUNDS) $(PKGS) | tee bench-out/bench.txt && \
	  $(GO) tool benchstat bench-out/bench.txt; fi

## demo: the one-shot tour (see README).
demo:
	$(GO) run ./examples/demo
