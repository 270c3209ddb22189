//! `FlashSale` — a scheduled change of capacity and admission for a Storefront.
//!
//! A sale has a one-off window (`start`, `end`) or a recurring one (`schedule`: cron +
//! `duration` + `timeZone`), a `prewarm` lead time, and per-service capacity (`scale` or
//! `factor`) and rate-limit overrides. Its phases run
//! `Scheduled → PreWarming → Active → Restoring → Completed` (or `Failed`). The Storefront
//! controller merges every sale active at `now` into what it applies (overlaps: maximum wins).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::RateLimit;

/// Go-style duration such as `90s`, `15m`, `1h30m`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

/// A scheduled sale.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "commerce.storefront.dev",
    version = "v1alpha1",
    kind = "FlashSale",
    namespaced,
    status = "FlashSaleStatus",
    shortname = "fsale",
    category = "commerce",
    doc = "A FlashSale is a scheduled change of capacity and admission for a Storefront.",
    printcolumn(
        name = "Storefront",
        type_ = "string",
        json_path = ".spec.storefrontRef"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Next",
        type_ = "date",
        json_path = ".status.nextTransitionTime"
    ),
    printcolumn(
        name = "Start",
        type_ = "date",
        json_path = ".spec.start",
        priority = 1
    ),
    printcolumn(name = "End", type_ = "date", json_path = ".spec.end", priority = 1),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = kube::core::Rule::new("has(self.start) == has(self.end)")
    .message("start and end must be set together").reason(kube::core::Reason::FieldValueRequired))]
#[x_kube(validation = kube::core::Rule::new("has(self.start) != has(self.schedule)")
    .message("set either a one-off window (start and end) or a recurring schedule, exactly one").reason(kube::core::Reason::FieldValueInvalid))]
#[x_kube(validation = kube::core::Rule::new("!has(self.start) || !has(self.end) || self.end > self.start")
    .message("end must be after start").reason(kube::core::Reason::FieldValueInvalid).field_path(".end"))]
#[serde(rename_all = "camelCase")]
pub struct FlashSaleSpec {
    /// Name of the Storefront (same namespace) this sale applies to.
    #[schemars(length(min = 1, max = 253))]
    pub storefront_ref: String,

    /// Start of a one-off sale window (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Time>,

    /// End of a one-off sale window (RFC 3339); after `start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Time>,

    /// A recurring window instead of start/end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<RecurringWindow>,

    /// Lead time before the window opens in which capacity is raised (limits open only at the
    /// start). Go duration, e.g. `10m`. Defaults to `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub prewarm: Option<String>,

    /// Per-service changes during the sale, keyed by service name.
    #[serde(default)]
    #[schemars(extend("maxProperties" = 7))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.all(k, k in ['gateway', 'auth', 'catalog', 'orders', 'payments', 'inventory', 'recommendations'])"
    ).message("unknown service name: services must be among gateway, auth, catalog, orders, payments, inventory, recommendations").reason(kube::core::Reason::FieldValueInvalid))]
    pub services: BTreeMap<String, SaleService>,
}

/// A window that repeats.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecurringWindow {
    /// Standard 5-field cron expression for the window's start, e.g. `0 20 * * FRI`.
    #[schemars(regex(pattern = r"^\S+( \S+){4}$"), length(max = 128))]
    pub cron: String,
    /// How long each window lasts (Go duration, e.g. `2h`).
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub duration: String,
    /// IANA time zone the cron expression is read in. Defaults to `UTC`.
    #[serde(default = "default_tz")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: String,
}

fn default_tz() -> String {
    "UTC".to_string()
}

/// What a sale changes for one service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!(has(self.scale) && has(self.factor))")
    .message("set either scale or factor, not both").reason(kube::core::Reason::FieldValueForbidden))]
pub struct SaleService {
    /// Absolute bounds during the sale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<SaleScale>,
    /// Multiply the service's normal replicas (or autoscaling bounds) by this factor (1..100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0, max = 100.0))]
    pub factor: Option<f64>,
    /// Rate limit in force while the sale is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

/// Replica bounds during a sale.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.maxReplicas >= self.minReplicas")
    .message("scale.maxReplicas must be greater than or equal to scale.minReplicas").reason(kube::core::Reason::FieldValueInvalid))]
pub struct SaleScale {
    /// Floor during the sale (1..1000).
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// Ceiling during the sale (1..1000).
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
}

/// Where a sale is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SalePhase {
    Scheduled,
    PreWarming,
    Active,
    Restoring,
    Completed,
    Failed,
}

/// Observed state of a sale.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlashSaleStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing`, `Degraded`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Current phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SalePhase>,
    /// When the phase changes next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_transition_time: Option<Time>,
    /// Preflight: pods the sale needs against the cluster's allocatable capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<SalePlan>,
}

/// Preflight capacity check of a sale.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SalePlan {
    /// Extra pods the sale needs at its peak.
    pub additional_pods: i32,
    /// Whether the cluster's allocatable capacity fits them.
    pub fits: bool,
    /// Human-readable warning when it does not.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}
