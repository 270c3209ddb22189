//! ConfigMaps the workloads read: the gateway's route table (one route per enabled service,
//! with its tier and cluster-wide rate limit, the per-client limits, and the per-customer caps
//! of the sales in force) and each sharded service's ring.
//!
//! Content is JSON serialized from ordered structs, so the same spec always yields the same
//! bytes and an unchanged Storefront makes no writes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use serde::Serialize;
use storefront_crds::{
    RateLimit, ServiceName, StorefrontSpec,
    ring::{ALGORITHM_JUMP, RING_DATA_KEY, RingDocument, RingShard},
};

use super::{Owner, deployment::GRPC_PORT};
use crate::{
    decide::plan::{SaleOrderLimit, ServicePlan, Sizing},
    labels,
};

/// Ring epoch published until resharding (a later piece) raises it.
pub const INITIAL_RING_EPOCH: i64 = 1;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Routes<'a> {
    storefront: &'a str,
    routes: Vec<Route>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Route {
    service: String,
    prefix: String,
    tier: String,
    /// `host:port` of the service (unsharded services).
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream: Option<String>,
    /// `host:port` of its headless Service: the pods the gateway spreads calls over.
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoints: Option<String>,
    /// Ring ConfigMap of a sharded service: shard addresses by ordinal, with an epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    ring: Option<String>,
    /// The same ring inline: the gateway watches this table through the API, so a new ring
    /// (resharding's switch) reaches it in about a second; the mounted ring file is the
    /// fallback.
    #[serde(skip_serializing_if = "Option::is_none")]
    ring_document: Option<RingDocument>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<Limit>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Limit {
    requests_per_minute: u32,
    burst: u32,
}

impl From<&RateLimit> for Limit {
    fn from(r: &RateLimit) -> Self {
        Limit {
            requests_per_minute: r.requests_per_minute,
            burst: r.effective_burst(),
        }
    }
}

/// The per-client limits in force (`spec.clientLimits`, defaults filled in; absent when
/// turned off, and so for a gateway that predates them).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClientLimitsDoc {
    per_user: Limit,
    per_address: Limit,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<RouteLimit>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    trusted_proxies: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RouteLimit {
    route: &'static str,
    #[serde(flatten)]
    limit: Limit,
}

fn client_limits(spec: &StorefrontSpec) -> Option<ClientLimitsDoc> {
    let limits = spec.client_limits.clone().unwrap_or_default().effective()?;
    Some(ClientLimitsDoc {
        per_user: Limit::from(&limits.per_user),
        per_address: Limit::from(&limits.per_address),
        routes: limits
            .routes
            .iter()
            .map(|(route, limit)| RouteLimit {
                route: route.as_str(),
                limit: Limit::from(limit),
            })
            .collect(),
        trusted_proxies: limits.trusted_proxies,
    })
}

/// One sale's per-customer caps (`orderLimits`), as the gateway passes them to orders.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrderLimitDoc<'a> {
    sale: &'a str,
    /// Unix seconds of the window's start: orders created before it do not count.
    since: i64,
    units_per_customer: u32,
    /// Empty: every SKU.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    skus: &'a [String],
}

fn order_limits(limits: &[SaleOrderLimit]) -> Vec<OrderLimitDoc<'_>> {
    let mut docs: Vec<_> = limits
        .iter()
        .map(|l| OrderLimitDoc {
            sale: &l.sale,
            since: l.since.as_second(),
            units_per_customer: l.units_per_customer,
            skus: &l.skus,
        })
        .collect();
    // Sale name order whatever the caller's, so the same sales give the same bytes.
    docs.sort_by(|a, b| a.sale.cmp(b.sale));
    docs
}

fn address(owner: &Owner<'_>, name: &str) -> String {
    format!("{name}.{}.svc:{GRPC_PORT}", owner.namespace)
}

fn config_map(
    owner: &Owner<'_>,
    name: String,
    component: &str,
    key: &str,
    json: String,
) -> ConfigMap {
    ConfigMap {
        metadata: owner.meta(name, component, &BTreeMap::new()),
        data: Some(BTreeMap::from([(key.to_string(), json)])),
        ..ConfigMap::default()
    }
}

fn to_json<T: Serialize>(v: &T) -> String {
    // Serializing plain structs of strings and integers cannot fail.
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

/// The gateway's route table, with the rings in force (`rings`: shards and epoch by service)
/// and the per-customer caps of the sales in force (`sale_limits`).
pub fn gateway_routes(
    owner: &Owner<'_>,
    plans: &[ServicePlan],
    rings: &BTreeMap<String, (i32, i64)>,
    sale_limits: &[SaleOrderLimit],
) -> ConfigMap {
    let routes = plans
        .iter()
        .filter(|p| p.service != ServiceName::Gateway)
        .map(|p| {
            let service = p.service.as_str();
            let sharded = matches!(p.sizing, Sizing::Sharded { .. });
            Route {
                service: service.to_string(),
                prefix: format!("/api/{service}"),
                tier: p.tier.as_str().to_string(),
                upstream: (!sharded)
                    .then(|| address(owner, &labels::service_object_name(owner.name, service))),
                endpoints: (!sharded)
                    .then(|| address(owner, &labels::pods_service_name(owner.name, service))),
                ring: sharded.then(|| labels::ring_name(owner.name, service)),
                ring_document: rings
                    .get(service)
                    .filter(|_| sharded)
                    .map(|&(shards, epoch)| ring_document(owner, p.service, shards, epoch)),
                rate_limit: p.rate_limit.as_ref().map(Limit::from),
            }
        })
        .collect();
    let gateway_limit = plans
        .iter()
        .find(|p| p.service == ServiceName::Gateway)
        .and_then(|p| p.rate_limit.as_ref())
        .map(Limit::from);
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Doc<'a> {
        #[serde(flatten)]
        routes: Routes<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        gateway_rate_limit: Option<Limit>,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_limits: Option<ClientLimitsDoc>,
        /// Absent without a sale's caps in force (and so for a gateway that predates them).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        order_limits: Vec<OrderLimitDoc<'a>>,
    }
    let doc = Doc {
        routes: Routes {
            storefront: owner.name,
            routes,
        },
        gateway_rate_limit: gateway_limit,
        client_limits: client_limits(owner.spec),
        order_limits: order_limits(sale_limits),
    };
    config_map(
        owner,
        labels::gateway_config_name(owner.name),
        "gateway",
        "routes.json",
        to_json(&doc),
    )
}

/// The ring of a sharded service: shard ordinals and their addresses, with an epoch.
pub fn ring(owner: &Owner<'_>, service: ServiceName, shards: i32, epoch: i64) -> ConfigMap {
    let ring = ring_document(owner, service, shards, epoch);
    config_map(
        owner,
        labels::ring_name(owner.name, service.as_str()),
        service.as_str(),
        RING_DATA_KEY,
        to_json(&ring),
    )
}

/// The ring document (the type the routers parse, `storefront_crds::ring`, so both sides
/// agree).
fn ring_document(owner: &Owner<'_>, service: ServiceName, shards: i32, epoch: i64) -> RingDocument {
    let service = service.as_str();
    RingDocument {
        service: service.to_string(),
        epoch,
        algorithm: ALGORITHM_JUMP.to_string(),
        shards: (0..shards)
            .map(|index| {
                let name = labels::shard_name(owner.name, service, index);
                RingShard {
                    index,
                    address: address(owner, &name),
                    // Each pod of the shard, reached individually (`replicasPerShard` > 1).
                    endpoints: Some(address(owner, &labels::shard_pods_name(&name))),
                    name,
                }
            })
            .collect(),
    }
}
