//! The FlashSale controller: fetch → preflight (when the sale is created or edited, and when
//! it starts pre-warming) → decide ([`crate::decide::sale::evaluate`], pure) → status and Events →
//! requeue exactly at the next boundary.
//!
//! Thin on purpose: the phase, the limits gate and the conditions are decided by pure code;
//! this file reads the stores, lists nodes/pods/quotas for the preflight, and writes.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod, ResourceQuota};
use kube::{
    Api, Resource, ResourceExt,
    api::ListParams,
    runtime::{controller::Action, events::EventType, reflector::ObjectRef},
};
use storefront_crds::{FlashSale, SalePhase, Storefront, flashsale::SalePlan};

use super::{Context, children, jittered};
use crate::{
    decide::{
        plan, preflight,
        sale::{self, Inputs},
    },
    error::{Error, Result},
    labels,
};

/// Kind label for metrics.
const KIND: &str = "FlashSale";
/// Field manager of sale status writes.
const STATUS_MANAGER: &str = "storefront-operator-sale-status";

/// Reconciles one FlashSale.
pub async fn reconcile(sale: Arc<FlashSale>, ctx: Arc<Context>) -> Result<Action> {
    if let Some(later) = ctx.wait_for_caches() {
        return Ok(later);
    }
    let _timer = ctx.metrics.reconcile(KIND);
    let ns = sale
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let sale = ctx
        .stores
        .sales
        .get(&ObjectRef::new(&sale.name_any()).within(&ns))
        .unwrap_or(sale);
    if sale.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    let sales = ctx.stores.sales_in(&ns);
    let sf = ctx
        .stores
        .storefronts
        .get(&ObjectRef::new(&sale.spec.storefront_ref).within(&ns));
    let ready = sf
        .as_ref()
        .map(|sf| ready_by_service(&ctx, &ns, &sf.name_any()))
        .unwrap_or_default();

    let prev = sale.status.as_ref();
    let edited = prev.and_then(|p| p.observed_generation) != sale.metadata.generation;
    let warming = plan::sale_state(&sale, now).is_some_and(|st| st.phase == SalePhase::PreWarming)
        && prev.and_then(|p| p.phase) != Some(SalePhase::PreWarming);
    let preflight = match &sf {
        Some(sf) if edited || warming => run_preflight(&ctx, &sale, sf, &ns, now).await,
        _ => None,
    };

    let outcome = sale::evaluate(&Inputs {
        sale: &sale,
        storefront: sf.as_deref(),
        sales: &sales,
        ready: &ready,
        preflight,
        now,
    });
    if sale.status.as_ref() != Some(&outcome.status) {
        children::apply_status(
            &ctx.client,
            &ctx.metrics,
            sale.as_ref(),
            STATUS_MANAGER,
            &outcome.status,
        )
        .await?;
    }
    for note in &outcome.events {
        let type_ = if note.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        publish(&ctx, &sale, type_, note.reason, &note.message).await;
    }
    Ok(outcome
        .requeue
        .map_or_else(Action::await_change, Action::requeue))
}

/// Ready pods per service of a Storefront, from the stores (shards summed per service).
pub fn ready_by_service(ctx: &Context, ns: &str, storefront: &str) -> BTreeMap<String, i32> {
    let mut ready = BTreeMap::new();
    for d in ctx.stores.deployments.state() {
        let l = d.labels();
        if d.namespace().as_deref() != Some(ns)
            || l.get(labels::INSTANCE).map(String::as_str) != Some(storefront)
            || l.contains_key(labels::SHARD)
        {
            continue;
        }
        if let Some(component) = l.get(labels::COMPONENT) {
            let n = d
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            *ready.entry(component.clone()).or_insert(0) += n;
        }
    }
    for sh in ctx.stores.shards.state() {
        if sh.namespace().as_deref() != Some(ns) || sh.spec.storefront != storefront {
            continue;
        }
        let n = sh.status.as_ref().map_or(0, |s| s.ready_replicas);
        *ready
            .entry(sh.spec.service.as_str().to_string())
            .or_insert(0) += n;
    }
    ready
}

/// Lists nodes, pods and the namespace's quotas once and checks the sale against them. A
/// failed list leaves the previous preflight in place (logged), never fails the reconcile.
async fn run_preflight(
    ctx: &Context,
    sale: &FlashSale,
    sf: &Storefront,
    ns: &str,
    now: Timestamp,
) -> Option<SalePlan> {
    let lp = ListParams::default();
    let lists = async {
        let nodes = Api::<Node>::all(ctx.client.clone()).list(&lp).await?;
        let pods = Api::<Pod>::all(ctx.client.clone()).list(&lp).await?;
        let quotas = Api::<ResourceQuota>::namespaced(ctx.client.clone(), ns)
            .list(&lp)
            .await?;
        Ok::<_, kube::Error>((nodes.items, pods.items, quotas.items))
    };
    match lists.await {
        Ok((nodes, pods, quotas)) => {
            let (need, peak) = preflight::need(sale, sf);
            let free = preflight::free_on_nodes(&nodes, &pods);
            Some(preflight::check(
                need,
                peak,
                free,
                preflight::quota_room(&quotas),
                now,
            ))
        }
        Err(e) => {
            tracing::warn!(sale = %sale.name_any(), error = %e, "failed to run the preflight");
            None
        }
    }
}

/// Publishes an event on the sale; failures are logged, never fatal.
async fn publish(ctx: &Context, sale: &FlashSale, type_: EventType, reason: &str, note: &str) {
    ctx.publish(&sale.object_ref(&()), type_, "Schedule", reason, note)
        .await;
}

/// Transient errors back off with jitter.
pub fn error_policy(sale: Arc<FlashSale>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error(KIND, err.metric_label());
    tracing::warn!(sale = %sale.name_any(), error = %err, "reconcile failed");
    Action::requeue(jittered(Duration::from_secs(5)))
}
