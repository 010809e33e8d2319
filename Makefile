# msgtrack: the one place the project's commands live.
GO       ?= go
FUZZTIME ?= 30s
BENCHCOUNT ?= 10
PKGS     ?= ./...

.PHONY: all test servers lint fuzz bench demo

all: lint test

## test: install missing test servers when possible, then run every test with the race detector.
test: servers
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

## servers: install memcached, slapd, ldap-utils, python3 and swaks (root + apt only).
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

## bench: run every benchmark BENCHCOUNT times and summarise with benchstat.
bench:
	@mkdir -p bench-out
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) $(PKGS) | tee bench-out/bench.txt
	$(GO) tool benchstat bench-out/bench.txt

## demo: the one-shot tour (see README).
demo:
	$(GO) run ./examples/demo
