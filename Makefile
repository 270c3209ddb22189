# Storefront: `make demo` runs it, `make test` tests it (what CI runs).
.PHONY: demo test lint unit integration e2e crds cluster-up cluster-down

# One build directory per machine for every command here, CI's included: `make test` and
# `make demo` build the workspace once between them.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/storefront/cargo-target
# As .ci/run sets it: an incremental build's artifacts are not the non-incremental ones, so a
# mismatch rebuilds our crates between `make test` and `make demo`.
export CARGO_INCREMENTAL ?= 0
# Clippy lints our crates while they compile: clippy-driver wraps rustc for the workspace's
# members only (as `cargo clippy` runs it), with `-D warnings` (`CLIPPY_ARGS`, the form
# cargo-clippy hands it). `cargo clippy` checks every dependency as well, in check mode,
# whose artifacts a build cannot use: on a cold 2-core machine that was a second compile of
# ~500 crates. With the wrapper, one build lints and serves the tests, the images and the
# demo. Without clippy-driver (a minimal toolchain), `make lint` runs `cargo clippy`.
export RUSTC_WORKSPACE_WRAPPER ?= $(shell command -v clippy-driver 2>/dev/null)
export CLIPPY_ARGS ?= -D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# Every target `make test` compiles: all targets (benches and examples too, as clippy's
# `--all-targets`) and the suites that need services (`test = false`: cargo test skips them).
TARGETS := --workspace --all-targets --test datastores --test datastore_metrics --test e2e

demo:
	tests/e2e/demo

# Every stage below, timed, with the Kubernetes build in the background (tests/all).
test:
	tests/all

# fmt, then every target built with clippy's lints as errors (the build `make unit` tests).
lint:
	cargo fmt --all --check
ifeq ($(RUSTC_WORKSPACE_WRAPPER),)
	cargo clippy $(TARGETS) -- -D warnings
else
	cargo build $(TARGETS)
endif

# Every cargo command of `make test`, the images and the demo selects the whole workspace
# (`--workspace`, with tests): cargo unifies dependency features over the packages it builds,
# so `-p one-package` would build tokio, hyper, kube... again with other features.
# One build graph for every binary of `make test` (tests, the datastore and e2e suites, the
# images' binaries): the two cores stay busy across crates, and the later stages only run.
unit:
	cargo build $(TARGETS)
	cargo test --workspace

# Workloads against real PostgreSQL, Redis and NATS on loopback (installed and started here).
integration:
	workloads/scripts/integration

e2e:
	tests/e2e/run

crds:
	cargo run -q -p storefront-operator -- crd --write manifests/crds

cluster-up:
	tests/e2e/cluster/up

cluster-down:
	tests/e2e/cluster/down
