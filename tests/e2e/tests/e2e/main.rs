//! The end-to-end suite: one test binary, a module per area, against the cluster in
//! `KUBECONFIG` (the harness is the `storefront-e2e` library). One binary links the
//! workspace once; `tests/e2e/run` runs it in groups by module filter (`noop` alone: it
//! counts the operator's writes, so nothing else may write meanwhile; `storefront` restarts
//! the operator, so the timed FlashSale boundaries run apart from it).
//! One area by hand: `cargo test --workspace --test e2e -- shop:: --nocapture`
//! (`--workspace`: the features `make test` builds with, so nothing is rebuilt).

mod abusive_client;
mod autoscale;
mod console;
mod core_path;
mod crds;
mod first_contact;
mod flashsale;
mod gateway_edge;
mod kubectl_names;
mod noop;
mod ratelimit;
mod reshard;
mod shop;
mod storefront;
