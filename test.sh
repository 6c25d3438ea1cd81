#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine or a developer's. It installs what the tests need (Debian
# packages; helm is built from the Go module proxy and cached), then checks the line budget, formats, vets and
# lints every module, builds with CGO_ENABLED=0, runs every test with the race detector (Redis tests against
# private redis-server processes on free ports; browser tests in headless Chromium; the image built with buildah
# and run with podman; three real replicas on one Redis), runs the benchmarks once, the model checker, the Helm
# chart checks, a short benchmark run, and every fuzz target for FUZZTIME.
#
#   ./test.sh                 everything (FUZZTIME=10s per fuzz target)
#   FUZZTIME=0 ./test.sh      everything but fuzzing
set -euo pipefail
cd "$(dirname "$0")"
step() { printf '\n== %s (%ss)\n' "$*" "$SECONDS"; }

# Debian packages: redis-server (store tests), chromium (page), spin and gcc (model), buildah, podman and runc
# (image), wrk (benchmark smoke run).
need=(redis-server:redis-server chromium:chromium spin:spin gcc:gcc buildah:buildah podman:podman runc:runc wrk:wrk)
missing=()
for pair in "${need[@]}"; do command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}"); done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Tests that need a dependency fail, rather than skip, without it.
export DASHAUTH_REQUIRE_REDIS=1 DASHAUTH_REQUIRE_BROWSER=1 DASHAUTH_REQUIRE_IMAGE=1

step "line budget: the service in at most 2,500 lines of non-test Go, in at most 8 files"
files=$(ls *.go | grep -v '_test\.go$')
lines=$(cat $files | wc -l)
echo "$(echo "$files" | wc -l) files, $lines lines"
[ "$lines" -le 2500 ] && [ "$(echo "$files" | wc -l)" -le 8 ] || { echo "over budget"; exit 1; }

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
[ -z "$unformatted" ] || { echo "gofmt would change:"; echo "$unformatted"; exit 1; }

modules=(. bench e2e deploy/helm/check)
for m in "${modules[@]}"; do
  step "go vet and staticcheck ($m)"
  (cd "$m" && go vet ./... && go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...)
done

step "go build, CGO_ENABLED=0"
CGO_ENABLED=0 go build -o /dev/null .

for m in "${modules[@]}"; do
  step "go test -race ($m)"
  (cd "$m" && go test -race -count=1 ./...)
done

for m in . bench; do
  step "benchmarks run once ($m)"
  (cd "$m" && go test -run '^$' -bench . -benchtime 1x ./... >/dev/null)
done

step "model check of the webhook's exactly-once protocol (spin)"
model/check.sh

step "Helm chart: lint, template, strict decoding"
deploy/helm/test.sh

step "benchmark smoke run (bench/run, one short round)"
bench/run -rounds 1 -http 1s -benchtime 20x -out "$(mktemp)" >/dev/null

fuzztime=${FUZZTIME:-10s}
if [ "$fuzztime" != "0" ]; then
  for target in $(go test -list '^Fuzz' . | grep '^Fuzz'); do
    step "fuzz $target for $fuzztime"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" .
  done
fi

step "all tests passed"
