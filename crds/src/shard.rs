//! `ServiceShard` — one shard of a stateful service.
//!
//! Created and owned by the Storefront controller for each shard of a service with
//! `sharding`; its own controller (a later piece) runs the shard's pods and reports ring share
//! and handoff progress. Keys map to shards by jump consistent hash over shard ordinals; the
//! published ring carries an epoch that routers reload on change.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One shard of a sharded service.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "commerce.storefront.dev",
    version = "v1alpha1",
    kind = "ServiceShard",
    namespaced,
    status = "ServiceShardStatus",
    shortname = "ssh",
    category = "commerce",
    doc = "A ServiceShard is one shard of a sharded stateful service, created by its Storefront.",
    printcolumn(name = "Storefront", type_ = "string", json_path = ".spec.storefront"),
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.service"),
    printcolumn(name = "Index", type_ = "integer", json_path = ".spec.index"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(
        name = "Share",
        type_ = "string",
        json_path = ".status.keySharePercent"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = kube::core::Rule::new("self.index < self.shardCount")
    .message("index must be lower than shardCount").reason(kube::core::Reason::FieldValueInvalid))]
#[serde(rename_all = "camelCase")]
pub struct ServiceShardSpec {
    /// Name of the owning Storefront.
    #[schemars(length(min = 1, max = 253))]
    pub storefront: String,
    /// Sharded service (orders or inventory).
    pub service: ShardedService,
    /// Shard ordinal on the ring, `0..shardCount`.
    #[schemars(range(min = 0, max = 63))]
    pub index: i32,
    /// Number of shards on the ring this shard belongs to (1..64).
    #[schemars(range(min = 1, max = 64))]
    pub shard_count: i32,
    /// Pods for this shard (0..100).
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,
    /// Ring epoch this shard was created for; raised on every reshard.
    #[schemars(range(min = 0))]
    pub ring_epoch: i64,
}

/// The services that can be sharded.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ShardedService {
    Orders,
    Inventory,
}

impl ShardedService {
    pub fn as_str(self) -> &'static str {
        match self {
            ShardedService::Orders => "orders",
            ShardedService::Inventory => "inventory",
        }
    }
}

/// Lifecycle of a shard on the ring.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ShardPhase {
    /// New shard receiving its keys.
    Joining,
    /// Owns its share of the ring.
    Active,
    /// Handing its keys to other shards.
    Draining,
    /// Idle, no keys: may be removed.
    Retired,
}

/// Observed state of a shard.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceShardStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing`, `Degraded`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Ready pods of the shard.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Share of the ring's keys this shard owns, in percent (e.g. `25.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_share_percent: Option<String>,
    /// Where the shard is in its lifecycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ShardPhase>,
    /// Handoff progress while resharding, in percent of keys copied and verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff_percent: Option<i32>,
}
