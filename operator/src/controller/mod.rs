//! Controllers and their shared context: one reconcile + error_policy per kind
//! (`storefront.rs`, `shard.rs`), shared trimmed watches (`stores.rs`) and the generic
//! apply-and-prune of children (`children.rs`).

pub mod children;
pub mod shard;
pub mod storefront;
pub mod stores;

use std::{sync::Arc, time::Duration};

use kube::{Client, runtime::events::Recorder};
use rand::Rng;

use crate::metrics::Metrics;

/// What every reconcile gets.
pub struct Context {
    pub client: Client,
    pub stores: stores::Stores,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
}

/// Backoff for transient errors: a base delay with ±25% jitter so that many failing objects do
/// not retry in lockstep.
pub fn jittered(base: Duration) -> Duration {
    let factor = rand::rng().random_range(0.75..1.25);
    base.mul_f64(factor)
}
