//! The FlashSale decision, pure (no client, no clock): phase, conditions, the gate that opens
//! a sale's rate limits, planned-versus-actual per service, the Events to publish, and when to
//! look again.
//!
//! ```text
//!  spec ──► Schedule::state(now) ──► phase, window, next transition (requeue exactly then)
//!  Storefront + all sales ──► plan::plan (merged) ──► desired pods per service
//!  ready pods per service ──► capacity Ready? ──► limitsOpen (latched for the window)
//!                                              └► CapacityLate (limits wait; Warning Event)
//! ```
//!
//! Limits open at the window's start or when the raised capacity is Ready, whichever is later;
//! once open they stay open until the end of that window (a pod restarting mid-sale does not
//! close them). The Storefront controller applies them only while `status.limitsOpen` holds
//! for the current `status.windowStart`.

use std::{collections::BTreeMap, time::Duration};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use storefront_crds::{
    FlashSale, FlashSaleStatus, SalePhase, Storefront,
    flashsale::{SalePlan, SaleServiceStatus},
    schedule::Schedule,
    validate,
};

use super::{
    plan::{self, Sizing},
    status::{condition, keep_transition_times},
};

/// How often a sale whose limits wait for capacity looks again.
pub const LATE_RECHECK: Duration = Duration::from_secs(1);
/// How often a sale whose Storefront does not exist looks again.
pub const MISSING_RECHECK: Duration = Duration::from_secs(10);

/// What the decision reads.
pub struct Inputs<'a> {
    pub sale: &'a FlashSale,
    /// The Storefront named by `spec.storefrontRef`, if it exists.
    pub storefront: Option<&'a Storefront>,
    /// Every sale of the namespace (overlaps are merged: maximum wins).
    pub sales: &'a [FlashSale],
    /// Ready pods per service of the Storefront (all shards summed).
    pub ready: &'a BTreeMap<String, i32>,
    /// A preflight that just ran, if one did.
    pub preflight: Option<SalePlan>,
    pub now: Timestamp,
}

/// An Event to publish on the sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// The decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: FlashSaleStatus,
    pub events: Vec<Note>,
    /// When to reconcile again (`None`: only on change).
    pub requeue: Option<Duration>,
}

fn time(t: Timestamp) -> Time {
    Time(t)
}

fn normal(reason: &'static str, message: String) -> Note {
    Note {
        warning: false,
        reason,
        message,
    }
}

fn warning(reason: &'static str, message: String) -> Note {
    Note {
        warning: true,
        reason,
        message,
    }
}

/// Whether the previous status had condition `type_` True with the same message.
fn had(prev: Option<&FlashSaleStatus>, type_: &str, message: &str) -> bool {
    prev.is_some_and(|p| {
        p.conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True" && c.message == message)
    })
}

/// A sale that cannot run (bad spec, missing Storefront): `Failed`, nothing applied.
fn failed(inputs: &Inputs<'_>, reason: &'static str, message: String) -> Outcome {
    let prev = inputs.sale.status.as_ref();
    let generation = inputs.sale.metadata.generation;
    let conds = vec![
        condition("Ready", false, reason, message.clone(), generation),
        condition("Progressing", false, reason, message.clone(), generation),
        condition("Degraded", true, reason, message.clone(), generation),
    ];
    let mut events = Vec::new();
    if !had(prev, "Degraded", &message) {
        events.push(warning(reason, message));
    }
    Outcome {
        status: FlashSaleStatus {
            observed_generation: generation,
            conditions: keep_transition_times(conds, prev.map(|p| &p.conditions[..]), inputs.now),
            phase: Some(SalePhase::Failed),
            plan: prev.and_then(|p| p.plan.clone()),
            ..FlashSaleStatus::default()
        },
        events,
        requeue: (reason == "StorefrontNotFound").then_some(MISSING_RECHECK),
    }
}

/// Decides the sale's status at `now`.
pub fn evaluate(inputs: &Inputs<'_>) -> Outcome {
    let sale = inputs.sale;
    let now = inputs.now;
    let prev = sale.status.as_ref();
    let generation = sale.metadata.generation;
    if let Err(invalid) = validate::flash_sale(&sale.spec) {
        return failed(inputs, "InvalidSpec", invalid.to_string());
    }
    let schedule = match Schedule::from_spec(&sale.spec, now) {
        Ok(s) => s,
        Err(e) => return failed(inputs, "InvalidSpec", format!("invalid spec: {e}")),
    };
    let Some(sf) = inputs.storefront else {
        return failed(
            inputs,
            "StorefrontNotFound",
            format!(
                "Storefront {:?} does not exist in this namespace; the sale starts working when it appears",
                sale.spec.storefront_ref
            ),
        );
    };
    let st = schedule.state(now);
    let window_start = st.window.map(|w| w.start);

    // What the Storefront runs under every sale (this one included) right now.
    let sf_name = sale.spec.storefront_ref.as_str();
    let active = plan::active_sales(sf_name, inputs.sales, now);
    let merged = plan::plan(&sf.spec, &active);

    let mut services = BTreeMap::new();
    let mut short = Vec::new();
    for (name, change) in &sale.spec.services {
        let Some((_, svc)) = sf.spec.enabled_services().find(|(n, _)| n.as_str() == name) else {
            continue;
        };
        let base = plan::base_sizing(svc);
        let planned = plan::raise(base, change);
        let desired = merged
            .iter()
            .find(|p| p.service.as_str() == name)
            .map_or(0, |p| p.desired_pods());
        let ready = inputs.ready.get(name).copied().unwrap_or(0);
        if planned != base && st.effect.capacity && ready < desired {
            short.push(format!("{name} {ready}/{desired}"));
        }
        services.insert(
            name.clone(),
            SaleServiceStatus {
                base_replicas: base.floor_pods(),
                planned_replicas: planned.floor_pods(),
                planned_max_replicas: matches!(planned, Sizing::Autoscaled { .. })
                    .then(|| planned.ceiling_pods()),
                desired_replicas: desired,
                ready_replicas: ready,
                requests_per_minute: change.rate_limit.as_ref().map(|l| l.requests_per_minute),
            },
        );
    }

    let was_open =
        prev.is_some_and(|p| p.limits_open && p.window_start.as_ref().map(|t| t.0) == window_start);
    let limits_open = st.effect.limits && (was_open || short.is_empty());
    let late = st.effect.limits && !limits_open;
    let phase = st.phase;

    let plan = inputs
        .preflight
        .clone()
        .or_else(|| prev.and_then(|p| p.plan.clone()));
    let at_risk = plan.as_ref().is_some_and(|p| !p.fits);

    let late_msg = format!(
        "the window opened but its capacity is not Ready ({} ready pods); rate limits open when it is",
        short.join(", ")
    );
    let at = |t: Option<Timestamp>| t.map_or("-".to_string(), |t| t.to_string());
    let (ready_reason, ready_msg) = match phase {
        SalePhase::Scheduled => (
            "Scheduled",
            format!("capacity rises at {}", at(st.next_transition)),
        ),
        SalePhase::PreWarming => (
            "PreWarming",
            format!(
                "capacity is rising; rate limits open at {}",
                at(window_start)
            ),
        ),
        SalePhase::Active if late => ("CapacityLate", late_msg.clone()),
        SalePhase::Active => (
            "Active",
            format!("sale is on until {}", at(st.window.map(|w| w.end))),
        ),
        SalePhase::Restoring => (
            "Restoring",
            "rate limits are back to the Storefront's; capacity follows".to_string(),
        ),
        _ => ("Completed", "the sale is over".to_string()),
    };
    let conds = vec![
        condition("Ready", !late, ready_reason, ready_msg, generation),
        condition(
            "Progressing",
            late || matches!(phase, SalePhase::PreWarming | SalePhase::Restoring),
            ready_reason,
            String::new(),
            generation,
        ),
        condition("Degraded", false, "AsPlanned", String::new(), generation),
        condition(
            "CapacityLate",
            late,
            if late { "CapacityLate" } else { "OnTime" },
            if late {
                late_msg.clone()
            } else {
                String::new()
            },
            generation,
        ),
        condition(
            "CapacityAtRisk",
            at_risk,
            if at_risk {
                "InsufficientCapacity"
            } else {
                "Fits"
            },
            plan.as_ref().map(|p| p.message.clone()).unwrap_or_default(),
            generation,
        ),
    ];

    let mut events = Vec::new();
    let prev_phase = prev.and_then(|p| p.phase);
    if prev_phase != Some(phase) {
        let from = prev_phase.map_or("new".to_string(), |p| format!("{p:?}"));
        let what = match phase {
            SalePhase::PreWarming => format!(
                "raising capacity of {}",
                services.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
            SalePhase::Active => "window open".to_string(),
            SalePhase::Restoring => "rate limits closed; capacity shrinks next".to_string(),
            SalePhase::Scheduled => format!("next window at {}", at(window_start)),
            _ => "everything back to the Storefront spec".to_string(),
        };
        events.push(normal(
            "PhaseChanged",
            format!("{from} → {phase:?}: {what}"),
        ));
    }
    if late && !had(prev, "CapacityLate", &late_msg) {
        events.push(warning("CapacityLate", late_msg));
    }
    if limits_open && !was_open {
        let limits: Vec<String> = services
            .iter()
            .filter_map(|(n, s)| s.requests_per_minute.map(|r| format!("{n} {r} rpm")))
            .collect();
        events.push(normal(
            "LimitsOpened",
            format!("rate limits in force: {}", limits.join(", ")),
        ));
    }
    if let Some(p) = plan
        .as_ref()
        .filter(|p| !p.fits && !had(prev, "CapacityAtRisk", &p.message))
    {
        events.push(warning("CapacityAtRisk", p.message.clone()));
    }

    let requeue = if late {
        Some(LATE_RECHECK)
    } else {
        st.next_transition
            .map(|t| Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO))
    };
    Outcome {
        status: FlashSaleStatus {
            observed_generation: generation,
            conditions: keep_transition_times(conds, prev.map(|p| &p.conditions[..]), now),
            phase: Some(phase),
            next_transition_time: st.next_transition.map(time),
            window_start: window_start.map(time),
            window_end: st.window.map(|w| time(w.end)),
            limits_open,
            services,
            plan,
        },
        events,
        requeue,
    }
}

/// Conditions of a sale, for callers that want one (`None` when absent).
pub fn find_condition<'a>(status: &'a FlashSaleStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests;
