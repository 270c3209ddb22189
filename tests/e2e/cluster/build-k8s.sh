#!/usr/bin/env bash
# Build the pinned Kubernetes components (and etcd 3.6, CoreDNS, metrics-server) from their Go modules through the
# Go module proxy into a cache outside the repo; reuse what is already there.
#   K8S_CACHE (default ~/.cache/storefront/k8s-<version>) receives bin/<component>.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
K8S_VERSION=v1.34.4
COREDNS_VERSION=$(sed -n 's/.*github.com\/coredns\/coredns \(v[0-9.]*\).*/\1/p' "$here/coredns/go.mod" | head -1)
METRICS_SERVER_VERSION=$(sed -n 's/^require sigs.k8s.io\/metrics-server \(v[0-9.]*\)$/\1/p' "$here/metrics-server/go.mod")
CACHE=${K8S_CACHE:-$HOME/.cache/storefront/k8s-$K8S_VERSION}
mkdir -p "$CACHE/bin"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
# Two cores: keep the Go compiler's parallelism and memory use modest.
export GOMAXPROCS=${GOMAXPROCS:-2}

build() { # build DIR PKG NAME [LDFLAGS]
  local dir=$1 pkg=$2 name=$3 ldflags=${4:-}
  if [ -x "$CACHE/bin/$name" ]; then return 0; fi
  echo "building $name ($pkg)"
  local t0=$SECONDS
  (cd "$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$CACHE/bin/$name.tmp" "$pkg")
  mv "$CACHE/bin/$name.tmp" "$CACHE/bin/$name"
  echo "built $name in $((SECONDS - t0))s"
}

ldk="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34"
# The Kubernetes components in one `go build`: their shared packages compile once and the
# links overlap with other compiles (six builds one after another each ended on a lone link).
missing=()
for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  [ -x "$CACHE/bin/$c" ] || missing+=("$c")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "building ${missing[*]}"
  t0=$SECONDS
  rm -rf "$CACHE/bin/.new" && mkdir -p "$CACHE/bin/.new"
  (cd "$here/k8s" && go build -trimpath -ldflags "-s -w $ldk" -o "$CACHE/bin/.new/" \
    "${missing[@]/#/k8s.io/kubernetes/cmd/}")
  for c in "${missing[@]}"; do mv "$CACHE/bin/.new/$c" "$CACHE/bin/$c"; done
  rmdir "$CACHE/bin/.new"
  echo "built ${missing[*]} in $((SECONDS - t0))s"
fi
build "$here/k8s" go.etcd.io/etcd/server/v3 etcd
build "$here/coredns" github.com/coredns/coredns coredns
# metrics-server reports its version through client-go's version package (as its Makefile sets it)
build "$here/metrics-server" sigs.k8s.io/metrics-server/cmd/metrics-server metrics-server \
  "-X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION"
echo "kubernetes $K8S_VERSION, coredns $COREDNS_VERSION, metrics-server $METRICS_SERVER_VERSION binaries in $CACHE/bin"
