# Shared settings and helpers for the local single-node cluster scripts (up, down, load-image,
# stub-image, smoke). Sourced, not run. Everything the cluster writes lives under $SF_CLUSTER_DIR.
# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
K8S_VERSION=$(sed -n 's/^K8S_VERSION=//p' "$HERE/build-k8s.sh")
COREDNS_VERSION=$(sed -n 's/.*github.com\/coredns\/coredns \(v[0-9.]*\).*/\1/p' "$HERE/coredns/go.mod" | head -1)
METRICS_SERVER_VERSION=$(sed -n 's/^require sigs.k8s.io\/metrics-server \(v[0-9.]*\)$/\1/p' "$HERE/metrics-server/go.mod")

D=${SF_CLUSTER_DIR:-/var/tmp/storefront-cluster}   # state dir
BIN=${K8S_CACHE:-$HOME/.cache/storefront/k8s-$K8S_VERSION}/bin
NODE_NAME=${SF_NODE_NAME:-sf-node}
NODE_IP=${SF_NODE_IP:-10.250.0.1}      # on interface $NODE_IF: apiserver advertise address, node IP
NODE_IF=sfnode0
CNI_BRIDGE=sfcni0
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
DNS_IP=10.96.0.10

PKI=$D/pki; LOGS=$D/logs; RUN=$D/run; IMAGES=$D/images
KUBECONFIG_FILE=$D/kubeconfig
SOCK=$D/containerd/containerd.sock

PAUSE_IMAGE=docker.io/storefront/pause:dev
BUSYBOX_IMAGE=docker.io/storefront/busybox:dev
COREDNS_IMAGE=docker.io/storefront/coredns:$COREDNS_VERSION
KUBECTL_IMAGE=docker.io/storefront/kubectl:$K8S_VERSION
METRICS_SERVER_IMAGE=docker.io/storefront/metrics-server:$METRICS_SERVER_VERSION

# Host paths the components create outside the state dir (some are hard-coded in kubelet and
# containerd 1.6); down removes those that did not exist before the first up.
HOST_PATHS=(/var/lib/cni /var/log/containers /var/lib/kubelet /run/containerd)

# Components in start order; `down` stops them in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy)

kubectl() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }
ctr() { command ctr --address "$SOCK" --namespace k8s.io "$@"; }
log() { printf '[%4ss] %s\n' "$SECONDS" "$*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

bin_of() { # path of the executable a component runs
  case $1 in containerd) command -v containerd ;; *) echo "$BIN/$1" ;; esac
}

pid_of() { # PID of a component we started, if it is still that process
  local pid; pid=$(cat "$RUN/$1.pid" 2>/dev/null) || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  [ "$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -1)" = "$(bin_of "$1")" ] || return 1
  echo "$pid"
}

wait_for() { # wait_for SECONDS DESCRIPTION CMD...: retry CMD every second
  local timeout=$1 what=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "timeout after ${timeout}s waiting for $what" >&2; return 1; }
    sleep 1
  done
}

image_present() { ctr images ls -q 2>/dev/null | grep -qxF "$1"; }

import_image() { # import_image TAR: load an OCI archive into the cluster's containerd
  ctr images import "$1" >/dev/null
}

ensure_busybox_image() {
  image_present "$BUSYBOX_IMAGE" && return 0
  [ -s "$IMAGES/busybox.tar" ] || python3 "$HERE/mkoci.py" busybox "$IMAGES/busybox.tar" "$BUSYBOX_IMAGE"
  import_image "$IMAGES/busybox.tar"
}
