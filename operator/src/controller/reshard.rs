//! Resharding in the Storefront controller: observe → [`crate::decide::reshard::decide`] → act.
//!
//! Thin on purpose: what to do is pure ([`crate::decide::reshard`]); this file reads what the shards
//! and the step Jobs report, creates the Jobs the decision asks for, and returns the rings to
//! record in status (the controller renders ServiceShards and ring ConfigMaps from them, see
//! [`crate::build::desired`]). Only inventory reshards: its data handoff exists
//! (`workloads/inventory/src/handoff.rs`); a new shard count for orders is held, and status
//! says so.

use std::{collections::BTreeMap, time::Duration};

use jiff::Timestamp;
use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, PostParams, PropagationPolicy},
    runtime::events::EventType,
};
use storefront_crds::{ReshardOutcome, RingStatus, ServiceName, Storefront};

use super::Context;
use crate::{
    build::{self, reshard_job},
    decide::reshard::{self, Action, Observed, Reshard, Ring, Step},
    error::Result,
    labels,
};

/// How long to wait for a router that does not report its ring (an older gateway) after the
/// switch: it reads the ring from a mounted ConfigMap, which the kubelet refreshes within
/// about a minute. Gateways that report are waited for exactly.
pub const ROUTER_GRACE: Duration = Duration::from_secs(90);
/// How often to look while a reshard runs (the Jobs are not watched).
pub const POLL: Duration = Duration::from_secs(2);

/// What resharding decided in one reconcile.
#[derive(Default)]
pub struct Outcome {
    /// The rings to render and record.
    pub rings: BTreeMap<String, RingStatus>,
    /// Events to publish: (type, reason, note).
    pub events: Vec<(EventType, &'static str, String)>,
    /// A reshard runs: look again soon.
    pub active: bool,
}

/// A step Job's state.
enum JobState {
    Missing,
    Running,
    Succeeded(Option<reshard::JobResult>),
    Failed(String),
}

/// Advances every sharded service's ring of `sf` by one decision.
pub async fn advance(ctx: &Context, sf: &Storefront, ns: &str, now: Timestamp) -> Result<Outcome> {
    let mut out = Outcome::default();
    let Ok(owner) = build::Owner::of(sf) else {
        return Ok(out);
    };
    let previous = sf
        .status
        .as_ref()
        .map(|s| s.rings.clone())
        .unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let stamp = now.to_string();
    for (service, settings) in &sf.spec.services {
        let (Some(sharding), Some(svc)) = (settings.sharding.as_ref(), ServiceName::parse(service))
        else {
            continue;
        };
        if !settings.enabled {
            continue;
        }
        let wanted = sharding.shards;
        let mut ring = previous.get(service).cloned().unwrap_or(RingStatus {
            shards: wanted,
            epoch: build::INITIAL_RING_EPOCH,
            ..RingStatus::default()
        });
        if svc != ServiceName::Inventory
            || !reshard_job::schemas_fit(&owner, svc, wanted.max(ring.shards))
        {
            // No handoff for orders yet; and shard schemas whose names PostgreSQL would cut
            // (63 bytes: a long namespace and name) are not `<prefix><index>`, which the
            // handoff needs. The ring stays; status says so (`ReshardingInSync=False, Held`).
            out.rings.insert(service.clone(), ring);
            continue;
        }
        let state = ring.resharding.as_ref().map(reshard::from_status);
        let mut obs = Observed::default();
        for sh in ctx.stores.shards.state() {
            if sh.namespace().as_deref() == Some(ns)
                && sh.spec.storefront == owner.name
                && sh.spec.service.as_str() == service
            {
                let st = sh.status.clone().unwrap_or_default();
                if st.ready_replicas >= sh.spec.replicas.max(1) {
                    obs.ready
                        .insert(u32::try_from(sh.spec.index).unwrap_or(u32::MAX));
                }
            }
        }
        let mut switched = None;
        if let Some(r) = &state {
            let step = |name, attempt| reshard_job::Step {
                service: svc,
                step: name,
                from: r.from,
                to: r.to,
                epoch: r.epoch,
                attempt,
            };
            // Only the current step's Job is read (earlier counts are kept in status).
            match r.step {
                Step::Joining => {}
                Step::Copying => {
                    obs.copy = report(&jobs, &pods, &owner, &step("copy", r.attempt), r, &mut out)
                        .await?
                        .and_then(|j| j.progress(r.attempt));
                }
                Step::Verifying => {
                    obs.verify = report(
                        &jobs,
                        &pods,
                        &owner,
                        &step("verify", r.attempt),
                        r,
                        &mut out,
                    )
                    .await?
                    .and_then(|j| j.progress(r.attempt));
                }
                Step::Switching | Step::Draining => {
                    let s = report(
                        &jobs,
                        &pods,
                        &owner,
                        &step("switch", r.attempt),
                        r,
                        &mut out,
                    )
                    .await?;
                    if let Some(s) = s {
                        obs.switched = Some(s.epoch);
                        switched = s.switched;
                    }
                }
            }
            // Routers: every gateway pod says which ring epoch it routes by. A gateway that
            // says nothing (an older image) is waited for: the ring published, then
            // ROUTER_GRACE, the bound on a mounted ConfigMap's refresh.
            let reports = gateway_reports(ctx, ns, owner.name);
            let reports: Vec<Option<&str>> = reports.iter().map(Option::as_deref).collect();
            let reported = reshard::routers_epoch(service, &reports);
            let since = ring
                .resharding
                .as_ref()
                .and_then(|x| x.phase_since.parse::<Timestamp>().ok());
            let grace_over = since
                .is_some_and(|t| now.duration_since(t).as_secs() >= ROUTER_GRACE.as_secs() as i64);
            let published = ring.epoch >= r.epoch;
            obs.routers = match reported {
                Some(e) if published => Some(e.min(ring.epoch)),
                None if published && grace_over => Some(ring.epoch),
                _ => None,
            };
            // Draining is entered once every router works with the new epoch: the removed
            // shards (going down) can go.
            if r.step == Step::Draining {
                obs.drained = Some(r.epoch);
            }
        }
        let in_force = Ring {
            shards: u32::try_from(ring.shards).unwrap_or(1),
            epoch: ring.epoch,
        };
        let d = reshard::decide(
            u32::try_from(wanted).unwrap_or(1),
            in_force,
            state.as_ref(),
            &obs,
        );
        for e in &d.events {
            out.events
                .push((EventType::Normal, "Resharding", format!("{service}: {e}")));
        }
        let r_for_jobs = d.state.clone().or_else(|| state.clone());
        for action in &d.actions {
            let Some(r) = &r_for_jobs else { break };
            let job = |name, attempt| reshard_job::Step {
                service: svc,
                step: name,
                from: r.from,
                to: r.to,
                epoch: r.epoch,
                attempt,
            };
            match action {
                Action::Copy { attempt, .. } => {
                    ensure(ctx, &jobs, &owner, &job("copy", *attempt)).await?
                }
                Action::Verify { attempt, .. } => {
                    ensure(ctx, &jobs, &owner, &job("verify", *attempt)).await?
                }
                Action::Switch { .. } => {
                    ensure(ctx, &jobs, &owner, &job("switch", r.attempt)).await?
                }
                Action::PublishRing { shards, epoch } => {
                    ring.shards = i32::try_from(*shards).unwrap_or(i32::MAX);
                    ring.epoch = *epoch;
                    out.events.push((
                        EventType::Normal,
                        "RingPublished",
                        format!("{service}: the ring has {shards} shards at epoch {epoch}"),
                    ));
                }
                Action::RemoveShards(n) => {
                    // The ServiceShards go with the record (the build renders 0..n); their
                    // emptied schemas are dropped by a last Job.
                    ensure(ctx, &jobs, &owner, &job("retire", r.attempt)).await?;
                    out.events.push((
                        EventType::Normal,
                        "Resharding",
                        format!("{service}: shards {n} and above are deleted"),
                    ));
                }
                Action::EnsureShards(_) | Action::Drain { .. } => {}
            }
        }
        // A step that ended: how long it took, for the metric.
        if let Some(prev) = &ring.resharding {
            let ended = d
                .state
                .as_ref()
                .is_none_or(|r| Step::from(prev.phase) != r.step);
            if ended && let Ok(t) = prev.phase_since.parse::<Timestamp>() {
                ctx.metrics
                    .reshard_steps
                    .get_or_create(&crate::metrics::StepLabels {
                        service: service.clone(),
                        step: format!("{:?}", prev.phase),
                    })
                    .observe(now.duration_since(t).as_secs_f64().max(0.0));
            }
        }
        match (&d.state, &state) {
            (Some(r), _) => {
                ring.resharding = Some(reshard::status_of(
                    r,
                    ring.resharding.as_ref(),
                    &obs,
                    d.queued,
                    &stamp,
                ));
                out.active = true;
            }
            (None, Some(r)) => {
                ring.last = Some(ReshardOutcome {
                    from: i32::try_from(r.from).unwrap_or(i32::MAX),
                    to: i32::try_from(r.to).unwrap_or(i32::MAX),
                    epoch: r.epoch,
                    keys_moved: switched.map_or(0, |s| i64::try_from(s.moved_keys).unwrap_or(0)),
                    pause_micros: switched.map_or(0, |s| {
                        ((s.lock_wait_ms + s.pause_ms) * 1000.0).round() as i64
                    }),
                    started_at: ring
                        .resharding
                        .as_ref()
                        .map_or_else(|| stamp.clone(), |x| x.started_at.clone()),
                    finished_at: stamp.clone(),
                });
                ring.resharding = None;
                // A count asked for meanwhile starts at the next reconcile.
                out.active = wanted != ring.shards;
            }
            (None, None) => {}
        }
        out.rings.insert(service.clone(), ring);
    }
    Ok(out)
}

/// What each running gateway pod of `storefront` reports as the rings it routes by.
fn gateway_reports(ctx: &Context, ns: &str, storefront: &str) -> Vec<Option<String>> {
    ctx.stores
        .pods
        .state()
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(ns))
        .filter(|p| p.labels().get(labels::INSTANCE).map(String::as_str) == Some(storefront))
        .filter(|p| {
            p.labels().get(labels::COMPONENT).map(String::as_str)
                == Some(ServiceName::Gateway.as_str())
        })
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .map(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == RINGS_CONDITION))
                .and_then(|c| c.message.clone())
        })
        .collect()
}

/// The gateway's condition naming the rings it routes by (`workloads/gateway/src/edge_health/mod.rs`).
const RINGS_CONDITION: &str = "storefront.dev/RingsApplied";

/// The result of `step`'s Job: `None` while it runs or is missing; a failed Job is deleted
/// (the next decision creates it again: every step is idempotent) and reported.
async fn report(
    jobs: &Api<Job>,
    pods: &Api<Pod>,
    owner: &build::Owner<'_>,
    step: &reshard_job::Step<'_>,
    r: &Reshard,
    out: &mut Outcome,
) -> Result<Option<reshard::JobResult>> {
    let name = reshard_job::name(owner.name, step);
    match job_state(jobs, pods, &name).await? {
        JobState::Succeeded(result) => Ok(result.filter(|j| j.epoch == r.epoch)),
        JobState::Failed(message) => {
            out.events.push((
                EventType::Warning,
                "ReshardStepFailed",
                format!(
                    "{}: Job {name} failed, retrying: {}",
                    step.service.as_str(),
                    message.chars().take(600).collect::<String>()
                ),
            ));
            let dp = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..DeleteParams::default()
            };
            match jobs.delete(&name, &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            Ok(None)
        }
        JobState::Missing | JobState::Running => Ok(None),
    }
}

async fn job_state(jobs: &Api<Job>, pods: &Api<Pod>, name: &str) -> Result<JobState> {
    let Some(job) = jobs.get_opt(name).await? else {
        return Ok(JobState::Missing);
    };
    let st = job.status.unwrap_or_default();
    let cond = |t: &str| {
        st.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == t && c.status == "True")
            .cloned()
    };
    let terminated = |want_ok: bool| async move {
        let list = pods
            .list(&ListParams::default().labels(&format!("job-name={name}")))
            .await?;
        Ok::<_, kube::Error>(list.items.into_iter().find_map(|p| {
            let t = p
                .status?
                .container_statuses?
                .into_iter()
                .next()?
                .state?
                .terminated?;
            ((t.exit_code == 0) == want_ok).then(|| t.message.unwrap_or_default())
        }))
    };
    if cond("Complete").is_some() || st.succeeded.unwrap_or(0) > 0 {
        let message = terminated(true).await?.unwrap_or_default();
        return Ok(JobState::Succeeded(reshard::parse_result(&message)));
    }
    if let Some(c) = cond("Failed") {
        let message = terminated(false)
            .await?
            .filter(|m| !m.is_empty())
            .or(c.message)
            .unwrap_or_default();
        return Ok(JobState::Failed(message));
    }
    Ok(JobState::Running)
}

/// Creates `step`'s Job unless it exists.
async fn ensure(
    ctx: &Context,
    jobs: &Api<Job>,
    owner: &build::Owner<'_>,
    step: &reshard_job::Step<'_>,
) -> Result<()> {
    let job = reshard_job::build(owner, step);
    match jobs.create(&PostParams::default(), &job).await {
        Ok(_) => {
            ctx.metrics.write("Job", "create");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
