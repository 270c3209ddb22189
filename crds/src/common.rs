//! Types shared by the three kinds: the commerce service names and their tiers, rate limits,
//! failure points, and the API group constants.

use std::fmt;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every Storefront kind.
pub const GROUP: &str = "commerce.storefront.dev";
/// API version of every Storefront kind.
pub const VERSION: &str = "v1alpha1";
/// Category shared by every kind (`kubectl get storefront`).
pub const CATEGORY: &str = "commerce";

/// The commerce services a Storefront can run.
///
/// The list is closed: the schema refuses any other key under `spec.services`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceName {
    Gateway,
    Auth,
    Catalog,
    Orders,
    Payments,
    Inventory,
    Recommendations,
}

impl ServiceName {
    /// Every service, in the order they are listed in docs and status.
    pub const ALL: [ServiceName; 7] = [
        ServiceName::Gateway,
        ServiceName::Auth,
        ServiceName::Catalog,
        ServiceName::Orders,
        ServiceName::Payments,
        ServiceName::Inventory,
        ServiceName::Recommendations,
    ];

    /// Services whose state can be split over a hash ring (`sharding`).
    pub const SHARDABLE: [ServiceName; 2] = [ServiceName::Orders, ServiceName::Inventory];

    /// The key used in `spec.services` and as the Kubernetes component label.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Gateway => "gateway",
            ServiceName::Auth => "auth",
            ServiceName::Catalog => "catalog",
            ServiceName::Orders => "orders",
            ServiceName::Payments => "payments",
            ServiceName::Inventory => "inventory",
            ServiceName::Recommendations => "recommendations",
        }
    }

    /// Parses a `spec.services` key; `None` for a name that is not a Storefront service.
    pub fn parse(name: &str) -> Option<ServiceName> {
        ServiceName::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Tier when the spec does not say: the transactional path is core.
    pub fn default_tier(self) -> Tier {
        match self {
            ServiceName::Catalog | ServiceName::Recommendations => Tier::Supporting,
            _ => Tier::Core,
        }
    }

    /// Whether the service may be sharded.
    pub fn shardable(self) -> bool {
        ServiceName::SHARDABLE.contains(&self)
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much a service matters to taking orders.
///
/// `core` services are on the transactional path (a failure there loses sales); `supporting`
/// services degrade gracefully (pages still load without recommendations).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Core,
    Supporting,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Core => "core",
            Tier::Supporting => "supporting",
        }
    }
}

/// A cluster-wide admission budget, enforced by the gateway (token bucket with explicit burst).
///
/// The budget holds for the whole service whatever the number of gateway replicas.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Requests per minute admitted across the whole cluster. At least 1.
    #[schemars(range(min = 1, max = 100_000_000))]
    pub requests_per_minute: u32,
    /// Requests that may be admitted at once above the steady rate. Defaults to a tenth of a
    /// minute's budget (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100_000_000))]
    pub burst: Option<u32>,
}

impl RateLimit {
    /// The burst in effect: the explicit one, or a tenth of the per-minute budget.
    pub fn effective_burst(&self) -> u32 {
        self.burst
            .unwrap_or_else(|| (self.requests_per_minute / 10).max(1))
    }
}

/// Something that is broken right now, normalized for dashboards and the console.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailurePoint {
    /// What is broken: `Service`, `Shard`, `Pod`, `CircuitBreaker`, `RateLimit`, `Metrics`.
    pub kind: String,
    /// Name of the broken thing (service name, shard name, pod name).
    pub name: String,
    /// Machine-readable reason, e.g. `NoReadyReplicas`, `CrashLoopBackOff`.
    pub reason: String,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When it was first seen broken (RFC 3339).
    pub since: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
}

/// Standard condition types used by every kind.
pub mod condition {
    /// All desired work is done and serving.
    pub const READY: &str = "Ready";
    /// The controller is moving the world towards the spec.
    pub const PROGRESSING: &str = "Progressing";
    /// Something is wrong: invalid spec, failure points, apply errors.
    pub const DEGRADED: &str = "Degraded";
    /// Storefront-specific: reconciliation is paused by `spec.paused`.
    pub const PAUSED: &str = "Paused";
    /// Storefront-specific: whether mutual TLS between services is in force. Always `False`
    /// for now (`NotImplemented` when `security.mtls` asks for it, `Disabled` otherwise).
    pub const MTLS_ENFORCED: &str = "MTLSEnforced";
    /// Storefront-specific, with sharded services: a change of a shard count is running.
    pub const RESHARDING: &str = "Resharding";
    /// Storefront-specific, with sharded services: every ring has the spec's shard count.
    pub const RESHARDING_IN_SYNC: &str = "ReshardingInSync";
}
