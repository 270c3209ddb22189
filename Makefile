# Storefront: `make demo` runs it, `make test` tests it (what CI runs).
.PHONY: demo test lint unit integration e2e crds cluster-up cluster-down

# One build directory per machine for every command here, CI's included: `make test` and
# `make demo` build the workspace once between them.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/storefront/cargo-target

demo:
	tests/e2e/demo

# Every stage below, timed, with the Kubernetes build in the background (tests/all).
test:
	tests/all

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --test datastores --test datastore_metrics -- -D warnings

unit:
	cargo test

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
