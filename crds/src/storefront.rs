//! `Storefront` — the shop a platform team declares.
//!
//! One resource describes every commerce service (gateway, auth, catalog, orders, payments,
//! inventory, recommendations): replicas or autoscaling, resources, tier, a cluster-wide rate
//! limit and, for stateful services, sharding. The schema refuses bad input (ranges, enums and
//! CEL rules for cross-field constraints) so the operator rarely sees it.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::ResourceRequirements, apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    client_limits::ClientLimits,
    common::{FailurePoint, RateLimit, ServiceName, Tier},
};

/// A shop: the commerce services to run, how to size them, what they connect to.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "commerce.storefront.dev",
    version = "v1alpha1",
    kind = "Storefront",
    namespaced,
    status = "StorefrontStatus",
    shortname = "sf",
    category = "commerce",
    doc = "A Storefront is a shop: the commerce services to run, how to size them, what they connect to.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Services",
        type_ = "string",
        json_path = ".status.readyServices",
        description = "ready/enabled services"
    ),
    printcolumn(
        name = "Failures",
        type_ = "integer",
        json_path = ".status.failureCount"
    ),
    printcolumn(
        name = "Sales",
        type_ = "string",
        json_path = ".status.activeFlashSales[*]",
        priority = 1
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message",
        priority = 1,
        description = "why the shop is or is not Ready, and what to do (e.g. a missing Secret)"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct StorefrontSpec {
    /// Container image of the commerce workloads (one image, one subcommand per service),
    /// e.g. `ghcr.io/example/storefront-workload:0.1.0`.
    #[schemars(length(min = 1, max = 512))]
    pub image: String,

    /// The services to run, keyed by name: gateway, auth, catalog, orders, payments, inventory,
    /// recommendations. A service that is not listed (or has `enabled: false`) is not run.
    #[serde(default)]
    #[schemars(extend("maxProperties" = 7))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.all(k, k in ['gateway', 'auth', 'catalog', 'orders', 'payments', 'inventory', 'recommendations'])"
    ).message("unknown service name: services must be among gateway, auth, catalog, orders, payments, inventory, recommendations").reason(kube::core::Reason::FieldValueInvalid))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.all(k, !has(self[k].sharding) || k in ['orders', 'inventory'])"
    ).message("sharding is only supported for the stateful services orders and inventory").reason(kube::core::Reason::FieldValueForbidden))]
    pub services: BTreeMap<String, ServiceSpec>,

    /// Where the backing stores are. The operator does not run databases; it wires services to
    /// them. Each service (and each shard) gets its own database schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastores: Option<Datastores>,

    /// Authentication and network isolation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,

    /// How much one client (a signed-in user, else an address) may ask of the shop, enforced
    /// by the gateway beside the shop-wide and per-service budgets. Unset: the defaults
    /// (600 per minute per user, 1,200 per minute per address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_limits: Option<ClientLimits>,

    /// Stop reconciling: children are left as they are, status is still reported.
    #[serde(default)]
    pub paused: bool,

    /// Scale every service to zero and keep everything else (config, services, shards).
    #[serde(default)]
    pub stopped: bool,
}

/// How one commerce service runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!(has(self.replicas) && has(self.autoscaling))")
    .message("set either replicas or autoscaling, not both").reason(kube::core::Reason::FieldValueForbidden))]
#[x_kube(validation = kube::core::Rule::new("!(has(self.sharding) && has(self.autoscaling))")
    .message("a sharded service sizes each shard with sharding.replicasPerShard; remove autoscaling").reason(kube::core::Reason::FieldValueForbidden))]
pub struct ServiceSpec {
    /// Run this service. Defaults to true for a listed service.
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// Fixed number of pods (0..1000). Defaults to 1. Not allowed together with `autoscaling`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,

    /// Let a HorizontalPodAutoscaler own the replica count between `min` and `max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,

    /// CPU and memory requests/limits of the service's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// `core` (transactional path) or `supporting`. Defaults to core for gateway, auth,
    /// orders, payments and inventory, supporting for catalog and recommendations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,

    /// Cluster-wide admission budget for this service, enforced at the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,

    /// Split the service's keys over shards with consistent hashing (orders, inventory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharding: Option<Sharding>,

    /// Extra environment variables for the service's containers (at most 32), e.g. the
    /// simulated payment provider's `PAYMENT_FAILURE_RATE` or the demo catalog's
    /// `CATALOG_SEED`. The operator's own variables (datastores, schema, shard place, ports)
    /// come after these and win.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub env: Vec<EnvVarSpec>,
}

/// One environment variable.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct EnvVarSpec {
    /// Name: a C identifier (letters, digits, `_`; not starting with a digit).
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$")
    )]
    pub name: String,
    /// Value (may be empty).
    #[serde(default)]
    #[schemars(length(max = 4096))]
    pub value: String,
}

fn default_true() -> bool {
    true
}

/// Bounds for the HorizontalPodAutoscaler of a service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.max >= self.min")
    .message("autoscaling.max must be greater than or equal to autoscaling.min").reason(kube::core::Reason::FieldValueInvalid))]
pub struct Autoscaling {
    /// Fewest pods (1..1000).
    #[schemars(range(min = 1, max = 1000))]
    pub min: i32,
    /// Most pods (1..1000); at least `min`.
    #[schemars(range(min = 1, max = 1000))]
    pub max: i32,
    /// Average CPU utilization (percent of requests) the autoscaler aims for. Defaults to 70.
    #[serde(
        rename = "targetCPUUtilization",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization: Option<i32>,
    /// Average memory utilization (percent of requests) the autoscaler also aims for; unset, it
    /// follows CPU only. With both, the HPA takes the larger replica count of the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    #[x_kube(validation = kube::core::Rule::new("self >= 1 && self <= 100")
        .message("autoscaling.targetMemoryUtilization must be a percentage between 1 and 100").reason(kube::core::Reason::FieldValueInvalid))]
    pub target_memory_utilization: Option<i32>,
    /// Seconds the autoscaler waits after load drops before removing pods (0..3600): it scales
    /// in to the highest recommendation of that window. Unset, Kubernetes' default (300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_stabilization_seconds: Option<i32>,
}

/// Consistent-hash sharding of a stateful service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sharding {
    /// Number of shards (1..64). Each shard is a ServiceShard with its own pods.
    #[schemars(range(min = 1, max = 64))]
    pub shards: i32,
    /// Pods per shard (1..100). Defaults to 1.
    #[serde(default = "default_one")]
    #[schemars(range(min = 1, max = 100))]
    pub replicas_per_shard: i32,
}

fn default_one() -> i32 {
    1
}

/// References to the backing stores' connection Secrets.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Datastores {
    /// Secret with the PostgreSQL connection URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<SecretKeyRef>,
    /// Secret with the URL of a PostgreSQL streaming read replica (optional): read-mostly
    /// queries (catalog reads) go there. Services get it as `DATABASE_READ_REPLICA_URL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_read_replica: Option<SecretKeyRef>,
    /// Secret with the Redis URL (rate-limit budgets, caches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<SecretKeyRef>,
    /// Secret with the NATS (JetStream) URL of the event broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<SecretKeyRef>,
}

/// A key of a Secret in the Storefront's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// Key in the Secret holding the URL. Defaults to `url`.
    #[serde(default = "default_url_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_url_key() -> String {
    "url".to_string()
}

/// Authentication between users and services, and network isolation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Security {
    /// Secret holding the user-token signing key (`private.pem`: PKCS#8 Ed25519, mounted in
    /// auth only; `public.pem`, mounted in every service). When unset, the operator generates
    /// `<storefront>-jwt` once and keeps it. Each service's own service-token key is always
    /// generated, in `<storefront>-<service>-token-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_secret_name: Option<String>,
    /// Mutual TLS between services. Not enforced yet: the Storefront reports it with the
    /// condition `MTLSEnforced` = False.
    #[serde(default)]
    pub mtls: bool,
    /// Restrict pod ingress to the shop's own traffic with NetworkPolicies.
    #[serde(default)]
    pub network_policies: bool,
}

/// What the operator observed and decided.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorefrontStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing`, `Degraded` and `Paused`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Per enabled service: desired and ready pods, tier, and why that many.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceStatus>,
    /// Per shard of sharded services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardRollup>,
    /// FlashSales active now.
    #[serde(default)]
    pub active_flash_sales: Vec<String>,
    /// What is broken right now.
    #[serde(default)]
    pub failure_points: Vec<FailurePoint>,
    /// Number of failure points (printer column).
    #[serde(default)]
    pub failure_count: i32,
    /// `ready/enabled` services, e.g. `6/7` (printer column).
    #[serde(default)]
    pub ready_services: String,
    /// Per sharded service: the ring in force and a reshard in progress. The operator keeps
    /// its resharding here (not in memory), so a restart resumes at the recorded step.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rings: BTreeMap<String, RingStatus>,
}

/// The ring of a sharded service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RingStatus {
    /// Shards in the ring in force (what routers and shards use now).
    pub shards: i32,
    /// The ring's epoch: every reshard's switch adds one.
    pub epoch: i64,
    /// A change of the shard count in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resharding: Option<ReshardStatus>,
    /// The last reshard that finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<ReshardOutcome>,
}

/// Where a reshard is.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum ReshardPhase {
    /// The new shards start (they own no keys yet); every shard must be Ready.
    Joining,
    /// The keys that move are copied to their new owners while the shop keeps serving.
    Copying,
    /// The copies are compared with their sources.
    Verifying,
    /// Owners switch in one transaction (the write pause); the ring is published.
    Switching,
    /// Routers move to the new ring; going down, the removed shards are deleted after.
    Draining,
}

/// A reshard in progress (the step is recorded before it is acted on).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReshardStatus {
    pub phase: ReshardPhase,
    /// Shards before.
    pub from: i32,
    /// Shards after.
    pub to: i32,
    /// The ring's epoch after the switch.
    pub epoch: i64,
    /// Copy attempt (a verification that finds too many differences copies again).
    pub attempt: i32,
    /// Shards that give keys, e.g. `0-3`.
    pub sources: String,
    /// Shards that take keys, e.g. `4`.
    pub targets: String,
    /// Keys whose owner changes (known once copied).
    #[serde(default)]
    pub keys_to_move: i64,
    #[serde(default)]
    pub keys_copied: i64,
    #[serde(default)]
    pub keys_verified: i64,
    /// Keys that differed at the last verification (written since the copy; the switch
    /// syncs and re-verifies them under its lock).
    #[serde(default)]
    pub mismatched_keys: i64,
    /// Percent of the keys copied.
    #[serde(default)]
    pub copy_progress: i32,
    /// When this reshard started (RFC 3339).
    pub started_at: String,
    /// When the current phase started (RFC 3339).
    pub phase_since: String,
    /// A shard count asked for meanwhile: it starts when this one is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<i32>,
    /// What the reshard waits for now.
    #[serde(default)]
    pub message: String,
}

/// A finished reshard, with its figures.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReshardOutcome {
    pub from: i32,
    pub to: i32,
    pub epoch: i64,
    pub keys_moved: i64,
    /// The write pause of the switch, in microseconds (lock wait + the switch).
    pub pause_micros: i64,
    pub started_at: String,
    pub finished_at: String,
}

/// One service in the status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// Pods the operator wants (for autoscaled services: the autoscaler's floor).
    pub desired: i32,
    /// Pods ready now.
    pub ready: i32,
    /// `core` or `supporting`.
    pub tier: Tier,
    /// Why `desired` is what it is.
    pub replicas_reason: String,
}

/// One shard of a sharded service in the status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardRollup {
    /// Sharded service.
    pub service: String,
    /// Shard ordinal.
    pub index: i32,
    /// ServiceShard name.
    pub name: String,
    /// Pods the shard wants.
    pub replicas: i32,
    /// Ready pods reported by the ServiceShard.
    pub ready: i32,
    /// Phase reported by the ServiceShard (empty until its controller reports).
    #[serde(default)]
    pub phase: String,
}

impl StorefrontSpec {
    /// The enabled services with a known name, in canonical order.
    pub fn enabled_services(&self) -> impl Iterator<Item = (ServiceName, &ServiceSpec)> {
        ServiceName::ALL.into_iter().filter_map(|name| {
            self.services
                .get(name.as_str())
                .filter(|s| s.enabled)
                .map(|s| (name, s))
        })
    }
}

impl ServiceSpec {
    /// The tier in effect for `name`.
    pub fn effective_tier(&self, name: ServiceName) -> Tier {
        self.tier.unwrap_or_else(|| name.default_tier())
    }
}
