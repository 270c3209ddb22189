//! ServiceShard resources of a sharded service: one per ring ordinal. Their own controller
//! runs each shard's pods and reports readiness and ring share.

use std::collections::BTreeMap;

use storefront_crds::{ServiceShard, ServiceShardSpec, ShardedService};

use super::{Owner, config::INITIAL_RING_EPOCH};
use crate::{labels, plan::ServicePlan};

pub fn build(
    owner: &Owner<'_>,
    plan: &ServicePlan,
    index: i32,
    shard_count: i32,
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
            ring_epoch: INITIAL_RING_EPOCH,
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
