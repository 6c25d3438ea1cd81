#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine or a developer's:
# installs what the tests need, then formats, vets, lints, tests with the
# race detector (against a real redis-server the tests start themselves on
# free ports), and runs every fuzz target briefly so none of them rots.
#
#   ./test.sh                 everything (FUZZTIME=10s per fuzz target)
#   FUZZTIME=0 ./test.sh      everything but fuzzing
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n== %s\n' "$*"; }

# redis-server for the store tests, chromium for the browser tests (e2e/).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Tests that need Redis or a browser fail, rather than skip, without them.
export DASHAUTH_REQUIRE_REDIS=1 DASHAUTH_REQUIRE_BROWSER=1

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

modules=(.)
for m in bench e2e; do [ -f "$m/go.mod" ] && modules+=("$m"); done

for m in "${modules[@]}"; do
  step "go vet ($m)"
  (cd "$m" && go vet ./...)
  step "staticcheck ($m)"
  (cd "$m" && go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...)
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

fuzztime=${FUZZTIME:-10s}
if [ "$fuzztime" != "0" ]; then
  for target in $(go test -list '^Fuzz' . | grep '^Fuzz'); do
    step "fuzz $target for $fuzztime"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" .
  done
fi

step "all tests passed"
