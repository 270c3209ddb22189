//! ServiceShard resources of a sharded service: one per ring ordinal. Their own controller
//! runs each shard's pods ([`pods`]) and reports readiness and ring share.

use std::collections::BTreeMap;

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Service};
use storefront_crds::{ServiceName, ServiceShard, ServiceShardSpec, ShardedService, Tier};

use super::{ContainerSpec, Owner, database_schema, service_for, workload};
use crate::{decide::plan::ServicePlan, labels};

pub fn build(
    owner: &Owner<'_>,
    plan: &ServicePlan,
    index: i32,
    shard_count: i32,
    ring_epoch: i64,
    replicas: i32,
) -> ServiceShard {
    let service = plan.service.as_str();
    let extra = BTreeMap::from([(labels::SHARD.to_string(), index.to_string())]);
    let mut shard = ServiceShard::new(
        &labels::shard_name(owner.name, service, index),
        ServiceShardSpec {
            storefront: owner.name.to_string(),
            service: if service == "orders" {
                ShardedService::Orders
            } else {
                ShardedService::Inventory
            },
            index,
            shard_count,
            replicas,
            ring_epoch,
        },
    );
    shard.metadata = owner.meta(
        labels::shard_name(owner.name, service, index),
        service,
        &extra,
    );
    shard.metadata.annotations = Some(BTreeMap::from([(
        WORKLOAD_HASH.to_string(),
        workload_hash(owner, plan),
    )]));
    shard
}

/// Annotations with a shard's part in a reshard of its service (set by the Storefront
/// controller, read by the ServiceShard controller into the shard's `phase` and
/// `handoffPercent`): `Joining`, `Draining` or `Retired`, and the copy's percent.
pub const HANDOFF_PHASE: &str = "commerce.storefront.dev/handoff-phase";
pub const HANDOFF_PERCENT: &str = "commerce.storefront.dev/handoff-percent";

/// Annotation carrying a hash of the Storefront settings a shard's pods are built from, so a
/// change of image, resources, datastores or security reaches the ServiceShard controller.
pub const WORKLOAD_HASH: &str = "commerce.storefront.dev/workload-hash";

fn workload_hash(owner: &Owner<'_>, plan: &ServicePlan) -> String {
    use std::hash::{Hash, Hasher};
    let inputs = serde_json::json!({
        "image": owner.spec.image,
        "resources": plan.resources,
        "tier": plan.tier,
        "datastores": owner.spec.datastores,
        "security": owner.spec.security,
    });
    let mut h = std::collections::hash_map::DefaultHasher::new();
    inputs.to_string().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The Deployment and Service of one shard's pods, built for the ServiceShard controller:
/// `owner` is the Storefront with the ServiceShard as the owner reference. Shard pods get
/// `SHARD_INDEX`, `SHARD_COUNT`, `RING_EPOCH` and their own database schema
/// (`<namespace>_<storefront>_<service>_<index>`) on top of what every service gets.
pub fn pods(owner: &Owner<'_>, shard: &ServiceShard) -> (Deployment, Service) {
    let service = shard.spec.service.as_str();
    let name =
        shard.metadata.name.clone().unwrap_or_else(|| {
            labels::shard_name(&shard.spec.storefront, service, shard.spec.index)
        });
    let settings = owner.spec.services.get(service);
    let tier = settings
        .zip(ServiceName::parse(service))
        .map_or(Tier::Core, |(s, n)| s.effective_tier(n));
    let extra = BTreeMap::from([(labels::SHARD.to_string(), shard.spec.index.to_string())]);
    let deployment = workload(
        owner,
        ContainerSpec {
            name: name.clone(),
            service,
            tier,
            replicas: Some(shard.spec.replicas),
            resources: settings.and_then(|s| s.resources.clone()),
            extra_labels: extra.clone(),
            env: vec![
                ("SHARD_INDEX".into(), shard.spec.index.to_string()),
                ("SHARD_COUNT".into(), shard.spec.shard_count.to_string()),
                ("RING_EPOCH".into(), shard.spec.ring_epoch.to_string()),
            ],
            database_schema: database_schema(
                owner.namespace,
                &shard.spec.storefront,
                &format!("{service}_{}", shard.spec.index),
            ),
        },
    );
    let mut selector = labels::selector(owner.name, service);
    selector.extend(extra.clone());
    let svc = service_for(owner, name, service, selector, &extra);
    (deployment, svc)
}

/// The headless Service of one shard's pods (`<shard>-pods`, `grpc` only, ready pods only):
/// the ring names it as the shard's `endpoints`, so a router reaches each pod of a shard
/// individually (`replicasPerShard` above 1) instead of pinning one through the cluster IP.
pub fn pods_service(owner: &Owner<'_>, shard: &ServiceShard) -> Service {
    let service = shard.spec.service.as_str();
    let name =
        shard.metadata.name.clone().unwrap_or_else(|| {
            labels::shard_name(&shard.spec.storefront, service, shard.spec.index)
        });
    let extra = BTreeMap::from([(labels::SHARD.to_string(), shard.spec.index.to_string())]);
    let mut selector = labels::selector(owner.name, service);
    selector.extend(extra.clone());
    let mut svc =
        super::service::headless(owner, labels::shard_pods_name(&name), service, selector);
    if let Some(l) = svc.metadata.labels.as_mut() {
        l.extend(extra);
    }
    svc
}
