#!/usr/bin/env bash
# The Helm chart's test. Gets helm (built once from the Go module proxy into a
# cache folder), lints the chart with each values file in testdata/, renders
# each with helm template (a file whose first line is "# want error: <text>"
# must fail with that text), then decodes every rendered object strictly into
# the Kubernetes API types and checks the mapping (check/main.go).
#
#   deploy/helm/test.sh            HELM=/path/to/helm to use another helm
set -euo pipefail
cd "$(dirname "$0")"

helm_version=v3.22.0
# The Kubernetes version helm renders for (its Capabilities); a helm built
# with go install would otherwise say v1.20.
kube_version=1.33.0

helm=${HELM:-}
if [ -z "$helm" ]; then
  bin="${XDG_CACHE_HOME:-$HOME/.cache}/dashauth/helm-$helm_version"
  helm="$bin/helm"
  # The cached binary must be the module version asked for, not just any helm.
  if ! go version -m "$helm" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+helm.sh/helm/v3[[:space:]]+$helm_version[[:space:]]"; then
    echo "building helm $helm_version into $bin (once; a few minutes without a Go build cache)"
    mkdir -p "$bin"
    start=$SECONDS
    GOBIN="$bin" CGO_ENABLED=0 go install "helm.sh/helm/v3/cmd/helm@$helm_version"
    echo "built helm in $((SECONDS - start))s"
  fi
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

status=0
for values in testdata/*.yaml; do
  name=$(basename "$values" .yaml)
  want=$(sed -n '1s/^# want error: //p' "$values")
  if [ -n "$want" ]; then
    if "$helm" template dashauth dashauth -f "$values" --kube-version "$kube_version" >/dev/null 2>"$out/stderr"; then
      echo "FAIL $name: helm template rendered it; want the error: $want"
      status=1
    elif ! grep -qF -- "$want" "$out/stderr"; then
      echo "FAIL $name: helm template failed otherwise than with: $want"
      cat "$out/stderr"
      status=1
    else
      echo "ok   $name: refused: $(grep -o 'execution error at ([^)]*): .*' "$out/stderr" | sed 's/^[^)]*): //')"
    fi
    continue
  fi
  if ! "$helm" lint --strict dashauth -f "$values" --kube-version "$kube_version" >"$out/lint" 2>&1; then
    echo "FAIL $name: helm lint --strict"
    cat "$out/lint"
    status=1
  fi
  "$helm" template dashauth dashauth -f "$values" --kube-version "$kube_version" >"$out/$name.yaml"
done

(cd check && go run . -dir "$out") || status=1
exit $status
