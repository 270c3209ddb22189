//! `FlashSale` — a scheduled change of capacity and admission for a Storefront.
//!
//! A sale has a one-off window (`start`, `end`) or a recurring one (`schedule`: cron +
//! `duration` + `timeZone`), a `prewarm` lead time, and per-service capacity (`scale` or
//! `factor`) and rate-limit overrides, and per-customer caps on units per SKU
//! (`orderLimits`, in force with the rate limits). Its phases run
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
    // Times as strings: kubectl prints a `date` column as an age, and a time in the future,
    // a sale's most useful column, as `<invalid>`.
    printcolumn(
        name = "Next",
        type_ = "string",
        json_path = ".status.nextTransitionTime",
        description = "when the phase changes next (UTC)"
    ),
    printcolumn(
        name = "Start",
        type_ = "string",
        json_path = ".spec.start",
        priority = 1
    ),
    printcolumn(name = "End", type_ = "string", json_path = ".spec.end", priority = 1),
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

    /// Caps on what one signed-in customer may buy during the window, against stock hoarding
    /// (absent: none). In force exactly when the sale's rate limits are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_limits: Option<OrderLimits>,
}

/// Most units a SKU may be capped at per customer.
pub const MAX_UNITS_PER_CUSTOMER: u32 = 10_000;
/// Most SKUs one sale may name in `orderLimits.skus`.
pub const MAX_LIMITED_SKUS: usize = 1_000;
/// Longest SKU (the public API's rule).
pub const MAX_SKU_CHARS: usize = 64;

/// Per-customer caps of a sale (`spec.orderLimits`).
///
/// During the sale's window, one signed-in customer may buy at most `unitsPerCustomer` units
/// of each SKU the caps cover, counted over the customer's orders created since the window
/// opened (cancelled ones not counted). An order past the cap is refused whole with 409 and a
/// message that says the cap and how many the customer has; nothing of it is kept.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderLimits {
    /// Units of each covered SKU one customer may buy during the window (1..10000).
    #[schemars(range(min = 1, max = 10000))]
    pub units_per_customer: u32,
    /// The SKUs the cap covers (at most 1000, each once); empty or absent: every SKU.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    #[schemars(extend(
        "x-kubernetes-list-type" = "set",
        "items" = {"type": "string", "minLength": 1, "maxLength": 64, "x-kubernetes-validations": [{"rule": "self.matches('^[A-Za-z0-9_-]+$')", "message": "a SKU may contain only letters, digits, '-' and '_'"}]}
    ))]
    pub skus: Vec<String>,
}

impl OrderLimits {
    /// Whether the cap covers `sku`.
    pub fn covers(&self, sku: &str) -> bool {
        self.skus.is_empty() || self.skus.iter().any(|s| s == sku)
    }
}

/// A window that repeats.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("duration(self.duration) > duration('0s')")
    .message("schedule.duration must be longer than 0").reason(kube::core::Reason::FieldValueInvalid).field_path(".duration"))]
pub struct RecurringWindow {
    /// Standard 5-field cron expression (minute hour day-of-month month day-of-week) for the
    /// window's start, read in `timeZone`, e.g. `0 20 * * FRI`. Day of week 0 and 7 are Sunday.
    /// A wall-clock time skipped by a DST change starts the window after the gap; one that
    /// happens twice starts it at the first occurrence only.
    #[schemars(
        regex(pattern = r"^[0-9A-Za-z*,/-]+( +[0-9A-Za-z*,/-]+){4}$"),
        length(max = 128)
    )]
    pub cron: String,
    /// How long each window lasts (Go duration, e.g. `2h`).
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub duration: String,
    /// IANA time zone the cron expression is read in, e.g. `Europe/Berlin`. Defaults to `UTC`.
    #[serde(default = "default_tz")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_+/-]+$"), length(min = 1, max = 64))]
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

/// Observed state of a sale: enough for a countdown and for planned-versus-actual per service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlashSaleStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing`, `Degraded`, `CapacityLate` (limits wait for capacity that is not
    /// Ready at the start), `CapacityAtRisk` (the preflight says the peak does not fit).
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Current phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SalePhase>,
    /// When the phase changes next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_transition_time: Option<Time>,
    /// Start of the window in progress, or else of the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start: Option<Time>,
    /// End of that window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_end: Option<Time>,
    /// Whether the sale's rate limits are in force: from the window's start once its raised
    /// capacity is Ready, until its end.
    #[serde(default)]
    pub limits_open: bool,
    /// Per service the sale changes: what it plans and what runs now.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, SaleServiceStatus>,
    /// Preflight: pods the sale needs against the cluster's allocatable capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<SalePlan>,
}

/// Planned versus actual for one service of a sale.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SaleServiceStatus {
    /// Pods the service runs at its floor outside the sale.
    pub base_replicas: i32,
    /// Pods the sale raises the floor to (replicas, or the autoscaler's minimum).
    pub planned_replicas: i32,
    /// The autoscaler's ceiling during the sale, when the service autoscales.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_max_replicas: Option<i32>,
    /// Pods the operator wants for the service right now (all sales merged).
    pub desired_replicas: i32,
    /// Pods that are Ready now.
    pub ready_replicas: i32,
    /// The sale's rate limit for the service (requests per minute), if it sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
}

/// Preflight capacity check of a sale.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SalePlan {
    /// Extra pods the sale needs at its floor (replicas or autoscaler minimum).
    pub additional_pods: i32,
    /// Extra pods at the autoscalers' raised ceilings (what the peak may take).
    #[serde(default)]
    pub peak_additional_pods: i32,
    /// CPU the extra pods request, in millicores.
    #[serde(default)]
    pub additional_cpu_millis: i64,
    /// Memory the extra pods request, in MiB.
    #[serde(default)]
    pub additional_memory_mib: i64,
    /// CPU free for requests on schedulable nodes (allocatable minus requested), millicores.
    #[serde(default)]
    pub free_cpu_millis: i64,
    /// Memory free for requests on schedulable nodes, MiB.
    #[serde(default)]
    pub free_memory_mib: i64,
    /// Whether the extra pods fit the nodes (and the namespace ResourceQuota, if any).
    pub fits: bool,
    /// What was checked, and what is short when it does not fit.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When this preflight ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<Time>,
}
