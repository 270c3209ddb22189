#!/usr/bin/env bash
# Regenerate go.mod/go.sum of the wrapper module for K8S_VERSION: require k8s.io/kubernetes and
# every staging module it replaces locally (k8s.io/api, ...) at the matching v0.x.y, since a
# dependency's `replace` lines do not apply to us. sample-* modules are not served; skipped.
set -euo pipefail
cd "$(dirname "$0")"
K8S_VERSION=$(sed -n 's/^K8S_VERSION=//p' ../build-k8s.sh)
staging=v0.${K8S_VERSION#v1.}
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
mod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
go_line=$(grep -m1 '^go ' "$mod")
{
  echo "// Wrapper module that builds pinned Kubernetes $K8S_VERSION components (and etcd) from the"
  echo "// Go module proxy. Regenerate with ./gen-gomod.sh after changing K8S_VERSION in ../build-k8s.sh."
  echo "module storefront.dev/k8s-build"
  echo
  echo "$go_line"
  echo
  echo "godebug default=go1.24"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  echo "require ("
  grep -E '=> \./staging' "$mod" | awk '{print $1}' | grep -v 'sample-' | sed "s|.*|\t& $staging|"
  echo ")"
} >go.mod
rm -f go.sum
go mod tidy
