//! The ServiceShard controller: runs one shard's pods (a Deployment and a Service owned by
//! the ServiceShard) and reports ready replicas, phase and the shard's expected share of the
//! ring. Resharding (handoff, draining, retiring) is a later piece; until then a shard is
//! `Joining` until its pods are ready, then `Active`.

use std::{sync::Arc, time::Duration};

use kube::{
    Resource, ResourceExt,
    runtime::{controller::Action, reflector::ObjectRef},
};
use storefront_crds::{ServiceShard, ServiceShardStatus, ShardPhase, common::condition};

use super::{Context, children, jittered};
use crate::{
    build::{self, Owner},
    decide::status::{self, condition as new_condition, keep_transition_times},
    error::{Error, Result},
};

const KIND: &str = "ServiceShard";
const FIELD_MANAGER: &str = "storefront-operator-shards";
const STATUS_MANAGER: &str = "storefront-operator-shards-status";

/// The share of keys jump consistent hashing gives each of `shards` shards, in percent.
pub fn expected_share_percent(shards: i32) -> String {
    format!("{:.1}", 100.0 / f64::from(shards.max(1)))
}

/// Reconciles one ServiceShard.
pub async fn reconcile(shard: Arc<ServiceShard>, ctx: Arc<Context>) -> Result<Action> {
    if let Some(later) = ctx.wait_for_caches() {
        return Ok(later);
    }
    let _timer = ctx.metrics.reconcile(KIND);
    let ns = shard
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = shard.name_any();
    let Some(sf) = ctx
        .stores
        .storefronts
        .get(&ObjectRef::new(&shard.spec.storefront).within(&ns))
    else {
        // The owner is gone or not seen yet; garbage collection removes orphans.
        return Ok(Action::requeue(Duration::from_secs(10)));
    };
    let uid = shard.uid().ok_or(Error::MissingField("metadata.uid"))?;
    let mut owner = Owner::of(&sf)?;
    owner.owner_ref = shard
        .controller_owner_ref(&())
        .ok_or(Error::MissingField("metadata.uid"))?;
    let (deployment, svc) = build::shard::pods(&owner, &shard);
    let pods_svc = build::shard::pods_service(&owner, &shard);
    let instance = shard.spec.storefront.as_str();
    let (c, m, s) = (&ctx.client, ctx.metrics.as_ref(), &ctx.stores);
    let target = children::Target {
        client: c,
        metrics: m,
        namespace: &ns,
        instance,
        owner_uid: &uid,
        field_manager: FIELD_MANAGER,
    };
    let (deployments, services) = ([deployment], [svc, pods_svc]);
    let kinds = [
        children::of(&s.deployments, &deployments),
        children::of(&s.services, &services),
    ];
    children::sync_all(&target, &kinds).await?;

    let ready = s
        .deployments
        .get(&ObjectRef::new(&name).within(&ns))
        .map_or(0, |d| status::deployment_ready(&d));
    let all_ready = ready >= shard.spec.replicas;
    // Its part in a reshard of its service, when it has one (the Storefront controller's
    // annotations); else its pods decide.
    let annotation = |k: &str| shard.metadata.annotations.as_ref().and_then(|a| a.get(k));
    let handoff = match annotation(build::shard::HANDOFF_PHASE).map(String::as_str) {
        Some("Joining") => Some(ShardPhase::Joining),
        Some("Draining") => Some(ShardPhase::Draining),
        Some("Retired") => Some(ShardPhase::Retired),
        _ => None,
    };
    let handoff_percent = handoff
        .and_then(|_| annotation(build::shard::HANDOFF_PERCENT))
        .and_then(|p| p.parse::<i32>().ok());
    let phase = match handoff {
        Some(p) => p,
        None if all_ready => ShardPhase::Active,
        None => ShardPhase::Joining,
    };
    let generation = shard.metadata.generation;
    let cond = |t: &str, ok: bool, reason: &str, msg: String| {
        new_condition(t, ok, reason, msg, generation)
    };
    let counts = format!("{ready}/{} pods ready", shard.spec.replicas);
    let conds = vec![
        cond(
            condition::READY,
            all_ready,
            if all_ready {
                "PodsReady"
            } else {
                "PodsNotReady"
            },
            counts.clone(),
        ),
        cond(
            condition::PROGRESSING,
            !all_ready,
            if all_ready { "Converged" } else { "Starting" },
            counts,
        ),
        cond(
            condition::DEGRADED,
            false,
            "AsExpected",
            "no failure".into(),
        ),
    ];
    let now = jiff::Timestamp::now();
    let prev = shard.status.as_ref();
    let st = ServiceShardStatus {
        observed_generation: shard.metadata.generation,
        conditions: keep_transition_times(conds, prev.map(|p| p.conditions.as_slice()), now),
        ready_replicas: ready,
        key_share_percent: Some(expected_share_percent(shard.spec.shard_count)),
        phase: Some(phase),
        handoff_percent,
    };
    if prev != Some(&st) {
        children::apply_status(c, m, shard.as_ref(), STATUS_MANAGER, &st).await?;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Transient errors back off with jitter.
pub fn error_policy(shard: Arc<ServiceShard>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error(KIND, err.metric_label());
    tracing::warn!(shard = %shard.name_any(), error = %err, "reconcile failed");
    Action::requeue(jittered(Duration::from_secs(5)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_share_is_uniform() {
        assert_eq!(expected_share_percent(4), "25.0");
        assert_eq!(expected_share_percent(3), "33.3");
        assert_eq!(expected_share_percent(0), "100.0");
    }
}
