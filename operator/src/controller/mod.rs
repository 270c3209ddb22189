//! Controllers and their shared context: one reconcile + error_policy per kind
//! (`storefront.rs`, `shard.rs`, `sale.rs`), shared trimmed watches (`stores.rs`) and the generic
//! apply-and-prune of children (`children.rs`).

pub mod children;
pub mod reshard;
pub mod sale;
pub mod shard;
pub mod storefront;
pub mod stores;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use kube::{
    Client,
    runtime::events::{Event, EventType, Recorder, Reporter},
};
use rand::Rng;

use crate::metrics::Metrics;

/// What every reconcile gets.
pub struct Context {
    pub client: Client,
    pub stores: stores::Stores,
    pub metrics: Arc<Metrics>,
    /// Who publishes Events (see [`Context::publish`]).
    pub reporter: Reporter,
    /// Set once every child store has its initial list: until then a reconcile would see no
    /// children and re-apply them all, so reconciles wait.
    pub synced: Arc<AtomicBool>,
}

impl Context {
    /// Publishes an Event about `obj` (the note cut to the API's 1,000 characters); failures
    /// are logged, never fatal.
    ///
    /// A fresh recorder each time: kube's recorder folds Events with the same reason and
    /// action on one object into a series that keeps the *first* note, which would hide every
    /// later decision ("gateway: min 6 because FlashSale bf is Active" after "… from spec").
    pub async fn publish(
        &self,
        obj: &k8s_openapi::api::core::v1::ObjectReference,
        type_: EventType,
        action: &str,
        reason: &str,
        note: &str,
    ) {
        let ev = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note.chars().take(1000).collect()),
            action: action.to_string(),
            secondary: None,
        };
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        if let Err(e) = recorder.publish(&ev, obj).await {
            tracing::warn!(error = %e, reason = %ev.reason, "failed to publish event");
        }
    }

    /// `Some(action)` to come back later when the child caches are not synced yet.
    pub fn wait_for_caches(&self) -> Option<kube::runtime::controller::Action> {
        (!self.synced.load(Ordering::Relaxed))
            .then(|| kube::runtime::controller::Action::requeue(Duration::from_millis(500)))
    }
}

/// Backoff for transient errors: a base delay with ±25% jitter so that many failing objects do
/// not retry in lockstep.
pub fn jittered(base: Duration) -> Duration {
    let factor = rand::rng().random_range(0.75..1.25);
    base.mul_f64(factor)
}
