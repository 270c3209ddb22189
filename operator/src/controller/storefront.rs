//! The Storefront controller: fetch → validate → build → apply → status.
//!
//! Thin on purpose: validation and building are pure ([`crate::build::desired`]), status is
//! pure ([`crate::decide::status::compute`], from what [`crate::decide::status::observed`] makes of the
//! watched objects); this file reads the stores, applies, and writes status only when it
//! changed.

use std::{sync::Arc, time::Duration};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Resource, ResourceExt,
    api::PostParams,
    runtime::{controller::Action, events::EventType, reflector::ObjectRef},
};
use rand::RngCore;
use storefront_crds::{FlashSale, Storefront, StorefrontStatus};

use super::{
    Context,
    children::{self, Child},
    jittered,
    stores::Stores,
};
use crate::{
    build::{self, BuildError, Desired},
    decide::status::{self, Observed, Outcome},
    error::{Error, Result},
    labels,
    references::{self, Found, Unresolved},
};

/// Kind label for metrics.
const KIND: &str = "Storefront";
/// Field manager of status writes (server-side apply: removed entries are removed).
const STATUS_MANAGER: &str = "storefront-operator-status";
/// Resync even when nothing happens, to catch what watches may have missed.
const RESYNC: Duration = Duration::from_secs(300);

/// Reconciles one Storefront.
pub async fn reconcile(sf: Arc<Storefront>, ctx: Arc<Context>) -> Result<Action> {
    if let Some(later) = ctx.wait_for_caches() {
        return Ok(later);
    }
    let _timer = ctx.metrics.reconcile(KIND);
    let ns = sf
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = sf.name_any();
    // Read the latest copy: the trigger may be an older event.
    let sf = ctx
        .stores
        .storefronts
        .get(&ObjectRef::new(&name).within(&ns))
        .unwrap_or(sf);
    if sf.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    let sales = ctx.stores.sales_in(&ns);

    // Resharding first: the rings it records decide which shards and ring to render.
    let resharding = if sf.spec.paused {
        super::reshard::Outcome {
            rings: sf
                .status
                .as_ref()
                .map(|s| s.rings.clone())
                .unwrap_or_default(),
            ..Default::default()
        }
    } else {
        super::reshard::advance(&ctx, &sf, &ns, now).await?
    };
    for (type_, reason, note) in &resharding.events {
        publish(&ctx, &sf, *type_, reason, note).await;
    }
    let desired = match build::desired(&sf, &sales, now, &resharding.rings) {
        Ok(d) => d,
        Err(BuildError::InvalidSpec(invalid)) => {
            let msg = invalid.to_string();
            let st = status::compute(
                &name,
                sf.metadata.generation,
                Outcome::Invalid(&msg),
                &Observed::new(),
                sf.status.as_ref(),
                now,
            );
            if write_status(&ctx, &sf, st).await? {
                publish(&ctx, &sf, EventType::Warning, "InvalidSpec", &msg).await;
            }
            return Ok(Action::await_change());
        }
        Err(e) => return Err(e.into()),
    };

    // Before any pod is created: does every Secret the spec names exist, with its keys?
    let unresolved = if sf.spec.paused {
        None
    } else {
        unresolved_secrets(&ctx, &sf.spec, &ns).await?
    };
    let apply_error = if sf.spec.paused || unresolved.is_some() {
        None
    } else {
        apply(&ctx, &sf, &ns, &desired).await.err()
    };
    let observed = observe(&ctx, &ns, &name);
    let msg = apply_error.as_ref().map(ToString::to_string);
    let outcome = match &unresolved {
        _ if sf.spec.paused => Outcome::Paused(desired.decided()),
        Some(u) => Outcome::Waiting(desired.decided(), u),
        None => Outcome::Applied(desired.decided(), msg.as_deref()),
    };
    let st = status::compute(
        &name,
        sf.metadata.generation,
        outcome,
        &observed,
        sf.status.as_ref(),
        now,
    );
    let mut requeue = next_check(&st, desired.next_change, now);
    if resharding.active {
        requeue = requeue.min(super::reshard::POLL);
    }
    if write_status(&ctx, &sf, st).await?
        && let Some(u) = &unresolved
    {
        publish(&ctx, &sf, EventType::Warning, u.reason, &u.message).await;
    }
    match apply_error {
        Some(e) => Err(e),
        None => Ok(Action::requeue(requeue)),
    }
}

/// Applies every child kind and prunes what is no longer desired; one event per change.
async fn apply(ctx: &Context, sf: &Storefront, ns: &str, d: &Desired) -> Result<()> {
    let name = sf.name_any();
    let uid = sf.uid().ok_or(Error::MissingField("metadata.uid"))?;
    // Keys first: the pods mount them.
    ensure_key_secrets(ctx, sf, ns, d).await?;
    let target = children::Target {
        client: &ctx.client,
        metrics: &ctx.metrics,
        namespace: ns,
        instance: &name,
        owner_uid: &uid,
        field_manager: labels::FIELD_MANAGER,
    };
    // Every kind is applied before any event is published: a failed apply publishes none.
    let changes = children::sync_all(&target, &storefront_children(&ctx.stores, d)).await?;
    for (kind, ch) in changes {
        if !ch.applied.is_empty() {
            let note = format!("applied {kind} {}", ch.applied.join(", "));
            publish(ctx, sf, EventType::Normal, "Applied", &note).await;
        }
        if !ch.pruned.is_empty() {
            let note = format!(
                "deleted {kind} {} (no longer desired)",
                ch.pruned.join(", ")
            );
            publish(ctx, sf, EventType::Normal, "Pruned", &note).await;
        }
        if kind == "ConfigMap"
            && ch
                .applied
                .iter()
                .any(|n| *n == labels::gateway_config_name(&name))
        {
            // Say where every limit a sale touches comes from now ("gateway: 20000 rpm from
            // FlashSale bf", or back "from spec").
            for p in d
                .plans
                .iter()
                .filter(|p| d.sale_limited.contains(&p.service))
            {
                let note = format!("{}: {}", p.service, p.limit_reason);
                publish(ctx, sf, EventType::Normal, "RateLimit", &note).await;
            }
        }
        if kind == "Deployment" || kind == "HorizontalPodAutoscaler" || kind == "ServiceShard" {
            for p in d
                .plans
                .iter()
                .filter(|p| ch.applied.iter().any(|n| n.contains(p.service.as_str())))
            {
                let note = format!("{}: {}", p.service, p.reason);
                publish(ctx, sf, EventType::Normal, "Scaled", &note).await;
            }
        }
    }
    Ok(())
}

/// A Storefront's children, one line per kind, in apply order: identities and config before
/// the pods that use them, HPAs after their Deployments.
fn storefront_children<'a>(s: &'a Stores, d: &'a Desired) -> [Box<dyn Child + 'a>; 10] {
    [
        children::of(&s.service_accounts, &d.service_accounts),
        children::of(&s.config_maps, &d.config_maps),
        children::of(&s.roles, &d.roles),
        children::of(&s.role_bindings, &d.role_bindings),
        children::of(&s.services, &d.services),
        children::of(&s.deployments, &d.deployments),
        children::of(&s.hpas, &d.hpas),
        children::of(&s.pdbs, &d.pdbs),
        children::of(&s.shards, &d.shards),
        children::of(&s.network_policies, &d.network_policies),
    ]
}

/// The Secrets the spec names that are missing or lack a key (`None`: all there). Each is
/// read once per reconcile (the operator keeps no Secret data; a metadata watch of Secrets
/// triggers the reconcile when one appears, changes or goes, see
/// [`super::stores::secret_triggers`]).
async fn unresolved_secrets(
    ctx: &Context,
    spec: &storefront_crds::StorefrontSpec,
    ns: &str,
) -> Result<Option<Unresolved>> {
    let refs = references::secret_refs(spec);
    if refs.is_empty() {
        return Ok(None);
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    // The reads at once: a reconcile waits for one round trip, not one per Secret.
    let reads = references::secret_names(&refs).into_iter().map(|name| {
        let api = api.clone();
        async move {
            let keys = api.get_opt(name).await?.map(|s| {
                s.data
                    .unwrap_or_default()
                    .into_keys()
                    .chain(s.string_data.unwrap_or_default().into_keys())
                    .collect()
            });
            Ok::<_, kube::Error>((name.to_string(), keys))
        }
    });
    let found: Found = futures::future::try_join_all(reads)
        .await?
        .into_iter()
        .collect();
    Ok(references::check(ns, &refs, &found))
}

/// Creates the generated token key Secrets that do not exist (the user key unless the spec
/// names its own, and every service's key); an existing one is never changed (keys must
/// outlive reconciles and operator restarts). One metadata list per reconcile (the Secrets
/// the operator manages for this Storefront): the operator keeps no Secret cache (a
/// cluster-wide one would hold every Secret's data).
async fn ensure_key_secrets(ctx: &Context, sf: &Storefront, ns: &str, d: &Desired) -> Result<()> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let selector = crate::labels::children_selector(&sf.name_any());
    let existing: std::collections::BTreeSet<String> = api
        .list_metadata(&kube::api::ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    let owner = build::Owner::of(sf)?;
    let mut wanted = Vec::new();
    if let Some(name) = &d.generated_jwt_secret {
        wanted.push((name.clone(), None));
    }
    for (service, name) in &d.service_key_secrets {
        wanted.push((name.clone(), Some(service.as_str())));
    }
    for (name, service) in wanted {
        if existing.contains(&name) {
            continue;
        }
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        let secret = match service {
            None => build::jwt::generated_secret(&owner, seed),
            Some(service) => build::jwt::generated_service_secret(&owner, service, seed),
        }
        .map_err(|e| Error::Keys(e.to_string()))?;
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                ctx.metrics.write("Secret", "create");
                let note = match service {
                    None => {
                        format!("generated the user-token signing key (Ed25519) in Secret {name}")
                    }
                    Some(s) => format!(
                        "generated {s}'s service-token signing key (Ed25519) in Secret {name}"
                    ),
                };
                publish(ctx, sf, EventType::Normal, "GeneratedKeys", &note).await;
            }
            // Created in between (another reconcile, a person): keep that one.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Ready pods and health of the Storefront's workloads, from the stores.
fn observe(ctx: &Context, ns: &str, storefront: &str) -> Observed {
    let s = &ctx.stores;
    status::observed(
        ns,
        storefront,
        &s.deployments.state(),
        &s.shards.state(),
        &s.pods.state(),
    )
}

/// When to look again: at the next sale boundary, soon while something is starting (failure
/// points have a grace period), otherwise at the periodic resync.
fn next_check(st: &StorefrontStatus, next_change: Option<Timestamp>, now: Timestamp) -> Duration {
    let waiting = st.services.values().any(|s| s.ready < s.desired);
    let base = if waiting {
        Duration::from_secs(status::STARTUP_GRACE_SECS.unsigned_abs() / 3)
    } else {
        RESYNC
    };
    let until_change = next_change
        .and_then(|t| Duration::try_from(t.duration_since(now)).ok())
        .unwrap_or(base);
    base.min(until_change)
}

/// Writes status when it differs from the stored one; returns whether it wrote.
async fn write_status(ctx: &Context, sf: &Storefront, st: StorefrontStatus) -> Result<bool> {
    if sf.status.as_ref() == Some(&st) {
        return Ok(false);
    }
    children::apply_status(&ctx.client, &ctx.metrics, sf, STATUS_MANAGER, &st).await?;
    Ok(true)
}

/// Publishes an event on the Storefront; failures are logged, never fatal.
async fn publish(ctx: &Context, sf: &Storefront, type_: EventType, reason: &str, note: &str) {
    ctx.publish(&sf.object_ref(&()), type_, "Reconcile", reason, note)
        .await;
}

/// Transient errors back off with jitter.
pub fn error_policy(sf: Arc<Storefront>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error(KIND, err.metric_label());
    tracing::warn!(storefront = %sf.name_any(), error = %err, "reconcile failed");
    Action::requeue(jittered(Duration::from_secs(5)))
}

/// Which Storefront a FlashSale affects.
pub fn sale_to_storefront(sale: Arc<FlashSale>) -> Option<ObjectRef<Storefront>> {
    Some(ObjectRef::new(&sale.spec.storefront_ref).within(&sale.namespace()?))
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector;

    use super::*;
    use crate::testutil::sample_storefront;

    fn empty<K>() -> reflector::Store<K>
    where
        K: kube::Resource<DynamicType = ()> + Clone + 'static,
    {
        reflector::store().0
    }

    #[test]
    fn children_apply_in_a_fixed_order_one_kind_each() {
        let stores = Stores {
            storefronts: empty(),
            sales: empty(),
            shards: empty(),
            deployments: empty(),
            services: empty(),
            service_accounts: empty(),
            hpas: empty(),
            pdbs: empty(),
            config_maps: empty(),
            network_policies: empty(),
            roles: empty(),
            role_bindings: empty(),
            pods: empty(),
        };
        let now = "2026-11-25T12:00:00Z".parse::<Timestamp>().unwrap();
        let d = build::desired(&sample_storefront(), &[], now, &Default::default()).unwrap();
        let kinds: Vec<_> = storefront_children(&stores, &d)
            .iter()
            .map(|c| c.kind())
            .collect();
        assert_eq!(
            kinds,
            [
                "ServiceAccount",
                "ConfigMap",
                "Role",
                "RoleBinding",
                "Service",
                "Deployment",
                "HorizontalPodAutoscaler",
                "PodDisruptionBudget",
                "ServiceShard",
                "NetworkPolicy",
            ]
        );
    }
}
