//! Desired state: `desired(storefront, sales, now)` builds every child object of a Storefront.
//!
//! Pure — no client, no clock — so it carries most of the unit tests. One file per child kind
//! (`deployment.rs`, `service.rs`, …), in the stackable style. The controller applies the result
//! with server-side apply and prunes every labelled child that is not in it.
//!
//! ```text
//!  Storefront ─┬─ per unsharded service: Deployment, Service (+ a headless `-pods` one when
//!              │                         a gateway calls it), ServiceAccount, [HPA], [PDB]
//!              ├─ per sharded service:   ServiceAccount, ring ConfigMap, ServiceShard × shards
//!              ├─ gateway enabled:       route table ConfigMap (routes, rate limits, sales'
//!              │                         per-customer caps),
//!              │                         Role + RoleBinding (watch that ConfigMap, patch pod status)
//!              ├─ no security.jwtSecretName: Secret <sf>-jwt (created once, see `jwt.rs`)
//!              └─ security.networkPolicies: a NetworkPolicy per service
//! ```

mod config;
mod deployment;
mod hpa;
pub mod jwt;
mod network_policy;
mod pdb;
mod rbac;
pub mod reshard_job;
mod service;
mod service_account;
pub mod shard;

use std::collections::BTreeMap;

pub use config::INITIAL_RING_EPOCH;
pub use deployment::{ContainerSpec, database_schema, workload};
use jiff::Timestamp;
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        autoscaling::v2::HorizontalPodAutoscaler,
        core::v1::{ConfigMap, Service, ServiceAccount},
        networking::v1::NetworkPolicy,
        policy::v1::PodDisruptionBudget,
        rbac::v1::{Role, RoleBinding},
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{Resource, ResourceExt};
pub use service::service_for;
use storefront_crds::{
    FlashSale, RingStatus, ServiceShard, Storefront, StorefrontSpec,
    validate::{self, InvalidSpec},
};

use crate::{
    decide::{
        plan::{self, ServicePlan, Sizing},
        reshard, status,
    },
    labels,
};

/// Why a Storefront cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid spec: {0}")]
    InvalidSpec(#[from] InvalidSpec),
    #[error("storefront has no {0} (not read from the API server?)")]
    MissingMetadata(&'static str),
}

/// Everything a Storefront should own right now.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub plans: Vec<ServicePlan>,
    /// When a sale next changes this plan (requeue exactly then).
    pub next_change: Option<Timestamp>,
    /// Names of the sales that changed something.
    pub active_sales: Vec<String>,
    /// Services whose rate limit some sale of this Storefront overrides (now or later).
    pub sale_limited: Vec<storefront_crds::ServiceName>,
    pub deployments: Vec<Deployment>,
    pub services: Vec<Service>,
    pub service_accounts: Vec<ServiceAccount>,
    pub hpas: Vec<HorizontalPodAutoscaler>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub config_maps: Vec<ConfigMap>,
    /// The gateway's API access (its route table, its pod's status): see `rbac.rs`.
    pub roles: Vec<Role>,
    pub role_bindings: Vec<RoleBinding>,
    pub shards: Vec<ServiceShard>,
    pub network_policies: Vec<NetworkPolicy>,
    /// The JWT keys Secret the operator generates (created once, never updated); `None` when
    /// the spec names its own.
    pub generated_jwt_secret: Option<String>,
    /// The service key Secrets the operator generates (one per service; created once).
    pub service_key_secrets: Vec<(String, String)>,
    /// `security.mtls` is asked for (and not enforced yet: reported in status).
    pub mtls_requested: bool,
    /// The sharded services' rings as rendered (the controller's record, for status).
    pub rings: BTreeMap<String, RingStatus>,
    /// The shard count the spec asks for, per sharded service.
    pub ring_wanted: BTreeMap<String, i32>,
}

impl Desired {
    /// What status needs of this: the decisions, not the objects.
    pub fn decided(&self) -> status::Decided<'_> {
        status::Decided {
            plans: &self.plans,
            active_sales: &self.active_sales,
            rings: &self.rings,
            ring_wanted: &self.ring_wanted,
            mtls_requested: self.mtls_requested,
        }
    }
}

/// What every builder needs to know about the owning Storefront.
pub struct Owner<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub owner_ref: OwnerReference,
    pub spec: &'a StorefrontSpec,
}

impl<'a> Owner<'a> {
    /// Reads name, namespace and owner reference of a Storefront.
    pub fn of(sf: &'a Storefront) -> Result<Self, BuildError> {
        Ok(Owner {
            name: sf
                .metadata
                .name
                .as_deref()
                .ok_or(BuildError::MissingMetadata("name"))?,
            namespace: sf
                .metadata
                .namespace
                .as_deref()
                .ok_or(BuildError::MissingMetadata("namespace"))?,
            owner_ref: sf
                .controller_owner_ref(&())
                .ok_or(BuildError::MissingMetadata("uid"))?,
            spec: &sf.spec,
        })
    }

    /// Metadata of a child named `name` for `component`, with extra labels.
    pub fn meta(
        &self,
        name: String,
        component: &str,
        extra: &BTreeMap<String, String>,
    ) -> ObjectMeta {
        let mut l = labels::labels(self.name, component);
        l.extend(extra.clone());
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.to_string()),
            labels: Some(l),
            owner_references: Some(vec![self.owner_ref.clone()]),
            ..ObjectMeta::default()
        }
    }
}

/// Builds every child of `sf` under the `sales` (all FlashSales of its namespace) at `now`,
/// with the sharded services' `rings` as the operator records them (the ring in force and a
/// reshard in progress; a service without an entry gets the spec's count at the first epoch).
pub fn desired(
    sf: &Storefront,
    sales: &[FlashSale],
    now: Timestamp,
    rings: &BTreeMap<String, RingStatus>,
) -> Result<Desired, BuildError> {
    validate::storefront(&sf.spec)?;
    let owner = Owner::of(sf)?;
    let active = plan::active_sales(&sf.name_any(), sales, now);
    let plans = plan::plan(&sf.spec, &active);
    let mut d = Desired {
        next_change: plan::next_boundary(&sf.name_any(), sales, now),
        active_sales: active
            .iter()
            .filter_map(|a| a.sale.metadata.name.clone())
            .collect(),
        sale_limited: storefront_crds::ServiceName::ALL
            .into_iter()
            .filter(|svc| {
                sales.iter().any(|s| {
                    s.spec.storefront_ref == sf.name_any()
                        && s.spec
                            .services
                            .get(svc.as_str())
                            .is_some_and(|c| c.rate_limit.is_some())
                })
            })
            .collect(),
        generated_jwt_secret: jwt::generated_name(owner.name, &sf.spec),
        service_key_secrets: storefront_crds::ServiceName::ALL
            .iter()
            .map(|s| {
                (
                    s.as_str().to_string(),
                    labels::service_key_secret_name(owner.name, s.as_str()),
                )
            })
            .collect(),
        mtls_requested: sf.spec.security.as_ref().is_some_and(|s| s.mtls),
        ..Desired::default()
    };
    let gateway = plans
        .iter()
        .any(|p| p.service == storefront_crds::ServiceName::Gateway);
    for p in &plans {
        d.service_accounts
            .push(service_account::build(&owner, p.service.as_str()));
        d.network_policies.extend(network_policy::build(&owner, p));
        match p.sizing {
            Sizing::Sharded {
                shards,
                replicas_per_shard,
            } => {
                // The ring in force decides the shards, not the spec: a new count goes
                // through resharding (the controller's `reshard`), which records every step.
                let ring = rings.get(p.service.as_str());
                d.rings.insert(
                    p.service.as_str().to_string(),
                    ring.cloned().unwrap_or(RingStatus {
                        shards,
                        epoch: config::INITIAL_RING_EPOCH,
                        ..RingStatus::default()
                    }),
                );
                d.ring_wanted.insert(p.service.as_str().to_string(), shards);
                let (in_force, epoch) = ring.map_or((shards, config::INITIAL_RING_EPOCH), |r| {
                    (r.shards, r.epoch)
                });
                let existing = ring
                    .and_then(|r| r.resharding.as_ref())
                    .map_or(in_force, |r| r.from.max(r.to));
                for index in 0..existing {
                    // A joining (or leaving) shard is placed in the larger ring.
                    let count = if index < in_force { in_force } else { existing };
                    let mut sh = shard::build(&owner, p, index, count, epoch, replicas_per_shard);
                    let handoff = ring
                        .and_then(|r| reshard::shard_phase(u32::try_from(index).unwrap_or(0), r));
                    // Always both annotations, empty without a handoff: the apply skips
                    // objects that already contain the desired ones, so an omitted key would
                    // never clear an old value.
                    let (phase, percent) = handoff
                        .map(|(p, n)| (format!("{p:?}"), n.to_string()))
                        .unwrap_or_default();
                    let a = sh.metadata.annotations.get_or_insert_with(BTreeMap::new);
                    a.insert(shard::HANDOFF_PHASE.to_string(), phase);
                    a.insert(shard::HANDOFF_PERCENT.to_string(), percent);
                    d.shards.push(sh);
                }
                d.config_maps
                    .push(config::ring(&owner, p.service, in_force, epoch));
            }
            Sizing::Fixed { .. } | Sizing::Autoscaled { .. } => {
                d.deployments.push(deployment::build(&owner, p));
                d.services.push(service::build(&owner, p.service.as_str()));
                // The pods the gateway spreads its calls over (none without a gateway).
                if gateway && p.service != storefront_crds::ServiceName::Gateway {
                    d.services.push(service::pods(&owner, p.service.as_str()));
                }
                d.hpas.extend(hpa::build(&owner, p));
                d.pdbs.extend(pdb::build(&owner, p));
            }
        }
    }
    if gateway {
        let rings: BTreeMap<String, (i32, i64)> = d
            .rings
            .iter()
            .map(|(k, r)| (k.clone(), (r.shards, r.epoch)))
            .collect();
        d.config_maps.push(config::gateway_routes(
            &owner,
            &plans,
            &rings,
            &plan::order_limits(&active),
        ));
        d.roles.push(rbac::role(&owner));
        d.role_bindings.push(rbac::role_binding(&owner));
    }
    d.plans = plans;
    Ok(d)
}

#[cfg(test)]
mod tests;
