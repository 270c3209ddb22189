# Storefront: `make demo` runs it, `make test` tests it (what CI runs).
.PHONY: demo test lint unit integration e2e crds cluster-up cluster-down

demo:
	tests/e2e/demo

test: lint unit integration e2e

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --features storefront-workloads/datastore-tests -- -D warnings

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
