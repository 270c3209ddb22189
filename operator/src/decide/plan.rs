//! The sizing and admission decision for each service: spec, then active FlashSales, then
//! `stopped`. Pure: no client, no clock (`now` is an argument).
//!
//! ```text
//!   StorefrontSpec ──► base sizing (replicas | autoscaling | sharding) + rateLimit
//!         │
//!   FlashSales active at `now` ──► raise floors/ceilings (overlaps: maximum wins),
//!         │                         override rate limits (from `start`, not during pre-warm)
//!   spec.stopped ──► everything to zero (HPA removed, replicas 0)
//!         ▼
//!   ServicePlan { sizing, rate_limit, reason }   ← "orders: min 12 because FlashSale bf is Active"
//! ```
//!
//! Beside the plan, [`order_limits`]: the per-customer caps (`orderLimits`) of the sales whose
//! limits are open, each counted from its window's start, for the gateway's route table.
//!
//! A sale raises the HPA floor and ceiling; it never sets `replicas` on an autoscaled service.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ResourceRequirements;
use storefront_crds::{
    FlashSale, RateLimit, SalePhase, ServiceName, StorefrontSpec, Tier,
    flashsale::SaleService,
    schedule::{SaleEffect, SaleState, Schedule},
};

/// Default CPU utilization target of an autoscaled service.
pub const DEFAULT_TARGET_CPU: i32 = 70;
const MAX_REPLICAS: i32 = 1000;

/// How a service's pods are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sizing {
    /// The operator sets `replicas`.
    Fixed { replicas: i32 },
    /// A HorizontalPodAutoscaler owns `replicas` between `min` and `max`.
    Autoscaled { min: i32, max: i32, target_cpu: i32 },
    /// One ServiceShard per shard, each with `replicas_per_shard` pods.
    Sharded {
        shards: i32,
        replicas_per_shard: i32,
    },
}

impl Sizing {
    /// Pods at the floor: the replicas, the autoscaler's minimum, or all shards' pods.
    pub fn floor_pods(self) -> i32 {
        match self {
            Sizing::Fixed { replicas } => replicas,
            Sizing::Autoscaled { min, .. } => min,
            Sizing::Sharded {
                shards,
                replicas_per_shard,
            } => shards * replicas_per_shard,
        }
    }

    /// Pods at the ceiling (the autoscaler's maximum where there is one).
    pub fn ceiling_pods(self) -> i32 {
        match self {
            Sizing::Autoscaled { max, .. } => max,
            other => other.floor_pods(),
        }
    }
}

/// What the operator decided for one enabled service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePlan {
    pub service: ServiceName,
    pub tier: Tier,
    pub sizing: Sizing,
    pub rate_limit: Option<RateLimit>,
    pub resources: Option<ResourceRequirements>,
    /// Why the service has the pods it has, for status and events.
    pub reason: String,
    /// Where the rate limit comes from, for events ("20000 rpm from FlashSale bf").
    pub limit_reason: String,
}

impl ServicePlan {
    /// Pods the operator wants: the replicas, the autoscaler's floor, or all shards' pods.
    pub fn desired_pods(&self) -> i32 {
        self.sizing.floor_pods()
    }
}

/// A sale with the parts of it in force now.
#[derive(Debug, Clone, Copy)]
pub struct ActiveSale<'a> {
    pub sale: &'a FlashSale,
    pub phase: SalePhase,
    pub effect: SaleEffect,
    /// The start of the window in progress (where per-customer caps count from).
    pub window_start: Option<Timestamp>,
}

impl ActiveSale<'_> {
    /// The sale's name.
    pub fn name(&self) -> &str {
        self.sale.metadata.name.as_deref().unwrap_or("unnamed")
    }
}

/// One sale's per-customer caps in force (`spec.orderLimits`), counted from `since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleOrderLimit {
    pub sale: String,
    /// The start of the sale's window in progress: orders created before it do not count.
    pub since: Timestamp,
    pub units_per_customer: u32,
    /// The SKUs capped; empty: every SKU.
    pub skus: Vec<String>,
}

/// The per-customer caps of the `sales` in force now, in sale name order: a sale's caps hold
/// exactly when its rate limits do (from the start once capacity is Ready, until the end).
/// A sale whose spec is invalid (it slipped past the schema; its controller reports it) has
/// none: the gateway would refuse the whole route table for one bad cap.
pub fn order_limits(sales: &[ActiveSale<'_>]) -> Vec<SaleOrderLimit> {
    sales
        .iter()
        .filter(|a| a.effect.limits)
        .filter(|a| storefront_crds::validate::flash_sale(&a.sale.spec).is_ok())
        .filter_map(|a| {
            let limits = a.sale.spec.order_limits.as_ref()?;
            Some(SaleOrderLimit {
                sale: a.name().to_string(),
                since: a.window_start?,
                units_per_customer: limits.units_per_customer,
                skus: limits.skus.clone(),
            })
        })
        .collect()
}

/// Where a sale stands at `now` by the clock alone; `None` when its spec cannot be scheduled
/// (the FlashSale controller reports that; the Storefront ignores the sale).
pub fn sale_state(sale: &FlashSale, now: Timestamp) -> Option<SaleState> {
    Some(Schedule::from_spec(&sale.spec, now).ok()?.state(now))
}

/// What a sale does at `now`; `None` when it does nothing.
///
/// Capacity follows the clock. Limits follow the clock **and** the FlashSale controller's
/// decision that the window's raised capacity is Ready (`status.limitsOpen` for the current
/// `status.windowStart`): limits open at the start or when capacity is Ready, whichever is
/// later, and close at the end whatever the status says.
pub fn sale_effect(sale: &FlashSale, now: Timestamp) -> Option<(SalePhase, SaleEffect)> {
    sale_effect_in_window(sale, now).map(|(phase, effect, _)| (phase, effect))
}

/// [`sale_effect`] with the start of the window it is for.
fn sale_effect_in_window(
    sale: &FlashSale,
    now: Timestamp,
) -> Option<(SalePhase, SaleEffect, Option<Timestamp>)> {
    let st = sale_state(sale, now)?;
    let opened = sale.status.as_ref().is_some_and(|s| {
        s.limits_open && s.window_start.as_ref().map(|t| t.0) == st.window.map(|w| w.start)
    });
    let effect = SaleEffect {
        capacity: st.effect.capacity,
        limits: st.effect.limits && opened,
    };
    (effect.capacity || effect.limits).then_some((st.phase, effect, st.window.map(|w| w.start)))
}

/// The next instant after `now` at which a sale of `storefront` changes the plan, so the
/// controller can requeue exactly then instead of waiting for a resync.
pub fn next_boundary(storefront: &str, sales: &[FlashSale], now: Timestamp) -> Option<Timestamp> {
    sales
        .iter()
        .filter(|s| s.spec.storefront_ref == storefront)
        .filter_map(|s| sale_state(s, now)?.next_transition)
        .min()
}

/// The sales of `storefront` that do something at `now`, in name order.
pub fn active_sales<'a>(
    storefront: &str,
    sales: &'a [FlashSale],
    now: Timestamp,
) -> Vec<ActiveSale<'a>> {
    let mut active: Vec<_> = sales
        .iter()
        .filter(|s| s.spec.storefront_ref == storefront)
        .filter_map(|sale| {
            sale_effect_in_window(sale, now).map(|(phase, effect, window_start)| ActiveSale {
                sale,
                phase,
                effect,
                window_start,
            })
        })
        .collect();
    active.sort_by(|a, b| a.name().cmp(b.name()));
    active
}

fn scaled(n: i32, factor: f64) -> i32 {
    let v = (f64::from(n) * factor).ceil();
    if v >= f64::from(MAX_REPLICAS) {
        MAX_REPLICAS
    } else {
        v as i32
    }
}

/// Applies one sale's capacity change to a sizing; returns the new sizing.
pub fn raise(sizing: Sizing, change: &SaleService) -> Sizing {
    let factor = change.factor.unwrap_or(1.0);
    let (floor, ceiling) = change
        .scale
        .as_ref()
        .map_or((0, 0), |s| (s.min_replicas, s.max_replicas));
    match sizing {
        Sizing::Fixed { replicas } => Sizing::Fixed {
            replicas: scaled(replicas, factor).max(floor),
        },
        Sizing::Autoscaled {
            min,
            max,
            target_cpu,
        } => {
            let min = scaled(min, factor).max(floor);
            Sizing::Autoscaled {
                min,
                max: scaled(max, factor).max(ceiling).max(min),
                target_cpu,
            }
        }
        Sizing::Sharded {
            shards,
            replicas_per_shard,
        } => Sizing::Sharded {
            shards,
            replicas_per_shard: scaled(replicas_per_shard, factor).max(floor),
        },
    }
}

/// The larger of two sizings of the same kind (overlapping sales: maximum wins).
fn max_sizing(a: Sizing, b: Sizing) -> Sizing {
    match (a, b) {
        (Sizing::Fixed { replicas: x }, Sizing::Fixed { replicas: y }) => {
            Sizing::Fixed { replicas: x.max(y) }
        }
        (
            Sizing::Autoscaled {
                min: a_min,
                max: a_max,
                target_cpu,
            },
            Sizing::Autoscaled {
                min: b_min,
                max: b_max,
                ..
            },
        ) => Sizing::Autoscaled {
            min: a_min.max(b_min),
            max: a_max.max(b_max),
            target_cpu,
        },
        (
            Sizing::Sharded {
                shards,
                replicas_per_shard: x,
            },
            Sizing::Sharded {
                replicas_per_shard: y,
                ..
            },
        ) => Sizing::Sharded {
            shards,
            replicas_per_shard: x.max(y),
        },
        (a, _) => a,
    }
}

fn describe(sizing: Sizing) -> String {
    match sizing {
        Sizing::Fixed { replicas } => format!("replicas {replicas}"),
        Sizing::Autoscaled { min, max, .. } => format!("min {min}, max {max}"),
        Sizing::Sharded {
            shards,
            replicas_per_shard,
        } => format!("{shards} shards x {replicas_per_shard}"),
    }
}

/// How a service is sized by its spec alone.
pub fn base_sizing(svc: &storefront_crds::ServiceSpec) -> Sizing {
    match (&svc.sharding, &svc.autoscaling) {
        (Some(sh), _) => Sizing::Sharded {
            shards: sh.shards,
            replicas_per_shard: sh.replicas_per_shard,
        },
        (None, Some(a)) => Sizing::Autoscaled {
            min: a.min,
            max: a.max.max(a.min),
            target_cpu: a.target_cpu_utilization.unwrap_or(DEFAULT_TARGET_CPU),
        },
        (None, None) => Sizing::Fixed {
            replicas: svc.replicas.unwrap_or(1),
        },
    }
}

fn describe_limit(limit: Option<&RateLimit>) -> String {
    match limit {
        Some(l) => format!("{} rpm", l.requests_per_minute),
        None => "no rate limit".to_string(),
    }
}

/// Plans every enabled service of `spec` under the sales active now.
///
/// Overlapping sales: each sale's change is applied to the spec's sizing on its own, and the
/// largest floor and the largest ceiling win (so two sales never multiply each other); the
/// highest rate limit among the sales whose limits are open wins.
pub fn plan(spec: &StorefrontSpec, sales: &[ActiveSale<'_>]) -> Vec<ServicePlan> {
    spec.enabled_services()
        .map(|(service, svc)| {
            let base = base_sizing(svc);
            let mut sizing = base;
            let mut raised_by: Vec<&ActiveSale<'_>> = Vec::new();
            let mut rate_limit = svc.rate_limit.clone();
            let mut limited_by = None;
            for active in sales {
                let Some(change) = active.sale.spec.services.get(service.as_str()) else {
                    continue;
                };
                if active.effect.capacity {
                    let raised = raise(base, change);
                    if raised != base {
                        raised_by.push(active);
                    }
                    sizing = max_sizing(sizing, raised);
                }
                if let (true, Some(limit)) = (active.effect.limits, &change.rate_limit) {
                    let wins = match (&limited_by, &rate_limit) {
                        (Some(_), Some(cur)) => limit.requests_per_minute > cur.requests_per_minute,
                        _ => true,
                    };
                    if wins {
                        rate_limit = Some(limit.clone());
                        limited_by = Some(active.name().to_string());
                    }
                }
            }
            let mut reason = if raised_by.is_empty() {
                format!("{} from spec", describe(sizing))
            } else {
                let names: Vec<&str> = raised_by.iter().map(|a| a.name()).collect();
                // The phase of the sale that matters most: Active over PreWarming over Restoring.
                let phase = raised_by
                    .iter()
                    .map(|a| a.phase)
                    .min_by_key(|p| match p {
                        SalePhase::Active => 0,
                        SalePhase::PreWarming => 1,
                        _ => 2,
                    })
                    .unwrap_or(SalePhase::Active);
                format!(
                    "{} because FlashSale {} is {phase:?}",
                    describe(sizing),
                    names.join(", "),
                )
            };
            let limit_reason = match &limited_by {
                Some(sale) => format!(
                    "{} from FlashSale {sale}",
                    describe_limit(rate_limit.as_ref())
                ),
                None => format!("{} from spec", describe_limit(rate_limit.as_ref())),
            };
            if spec.stopped {
                sizing = match sizing {
                    Sizing::Sharded { shards, .. } => Sizing::Sharded {
                        shards,
                        replicas_per_shard: 0,
                    },
                    _ => Sizing::Fixed { replicas: 0 },
                };
                reason = "0 because the Storefront is stopped".to_string();
            }
            ServicePlan {
                service,
                tier: svc.effective_tier(service),
                sizing,
                rate_limit,
                resources: svc.resources.clone(),
                reason,
                limit_reason,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
