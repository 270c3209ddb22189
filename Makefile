# Storefront: `make demo` runs it, `make test` tests it (what CI runs).
.PHONY: demo test lint unit e2e crds cluster-up cluster-down

demo:
	tests/e2e/demo

test: lint unit e2e

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

unit:
	cargo test

e2e:
	tests/e2e/run

crds:
	cargo run -q -p storefront-operator -- crd --write manifests/crds

cluster-up:
	tests/e2e/cluster/up

cluster-down:
	tests/e2e/cluster/down
