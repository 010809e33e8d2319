#!/usr/bin/env bash
# Runs every Fuzz* target of the module for FUZZTIME each. Crashers found are
# written by go test under the package's testdata/fuzz and become regression
# inputs of the ordinary test run. Fails if any target fails.
set -u
FUZZTIME=${FUZZTIME:-30s}
fail=0
ran=0
for pkg in $(go list ./...); do
  # A package whose tests do not build fails the run instead of silently
  # contributing no targets.
  if ! list=$(go test -list '^Fuzz' "$pkg" 2>&1); then
    echo "FAIL: $pkg: listing its fuzz targets failed:" >&2
    echo "$list" >&2
    fail=1
    continue
  fi
  for target in $(grep '^Fuzz' <<<"$list"); do
    ran=$((ran+1))
    echo "== $pkg $target ($FUZZTIME)"
    if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"; then
      echo "FAIL: $pkg $target" >&2
      fail=1
    fi
  done
done
echo "fuzz: $ran targets run"
exit $fail
