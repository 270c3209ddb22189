//! Rust-side validation of specs: the same rules the schema enforces, checked again by the
//! operator for whatever slips past it (an API server without CEL, objects stored before a
//! schema change). The operator reports failures as a `Degraded` condition with reason
//! `InvalidSpec` and waits for a change; it never applies a partial spec.

use std::{fmt, str::FromStr};

use crate::{
    client_limits::{ClientLimits, is_cidr},
    common::{RateLimit, ServiceName},
    flashsale::{
        FlashSaleSpec, MAX_LIMITED_SKUS, MAX_SKU_CHARS, MAX_UNITS_PER_CUSTOMER, OrderLimits,
    },
    storefront::StorefrontSpec,
};

/// One rule a spec breaks, with the path of the field to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `spec.services.gateway.replicas`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every rule a spec breaks, joined for a condition message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct InvalidSpec(pub Vec<FieldError>);

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn check(&mut self, ok: bool, field: impl Into<String>, message: impl Into<String>) {
        if !ok {
            self.0.push(FieldError {
                field: field.into(),
                message: message.into(),
            });
        }
    }

    fn range(&mut self, value: i64, min: i64, max: i64, field: impl Into<String>) {
        self.check(
            (min..=max).contains(&value),
            field,
            format!("must be between {min} and {max}, got {value}"),
        );
    }

    fn rate_limit(&mut self, limit: &RateLimit, field: &str) {
        self.check(
            limit.requests_per_minute >= 1,
            format!("{field}.requestsPerMinute"),
            "must be at least 1",
        );
        if let Some(burst) = limit.burst {
            self.check(burst >= 1, format!("{field}.burst"), "must be at least 1");
        }
    }

    fn finish(self) -> Result<(), InvalidSpec> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(InvalidSpec(self.0))
        }
    }
}

const SERVICE_NAMES: &str = "gateway, auth, catalog, orders, payments, inventory, recommendations";

/// Checks a Storefront spec.
pub fn storefront(spec: &StorefrontSpec) -> Result<(), InvalidSpec> {
    let mut e = Errors::default();
    e.check(
        !spec.image.trim().is_empty(),
        "spec.image",
        "must not be empty",
    );
    for (name, svc) in &spec.services {
        let path = format!("spec.services.{name}");
        let Some(service) = ServiceName::parse(name) else {
            e.check(
                false,
                path,
                format!("unknown service name: services must be among {SERVICE_NAMES}"),
            );
            continue;
        };
        if let Some(r) = svc.replicas {
            e.range(r.into(), 0, 1000, format!("{path}.replicas"));
        }
        e.check(
            !(svc.replicas.is_some() && svc.autoscaling.is_some()),
            path.clone(),
            "set either replicas or autoscaling, not both",
        );
        if let Some(a) = &svc.autoscaling {
            e.range(a.min.into(), 1, 1000, format!("{path}.autoscaling.min"));
            e.range(a.max.into(), 1, 1000, format!("{path}.autoscaling.max"));
            e.check(
                a.max >= a.min,
                format!("{path}.autoscaling"),
                "autoscaling.max must be greater than or equal to autoscaling.min",
            );
            if let Some(t) = a.target_cpu_utilization {
                e.range(
                    t.into(),
                    1,
                    100,
                    format!("{path}.autoscaling.targetCPUUtilization"),
                );
            }
            if let Some(t) = a.target_memory_utilization {
                e.range(
                    t.into(),
                    1,
                    100,
                    format!("{path}.autoscaling.targetMemoryUtilization"),
                );
            }
            if let Some(s) = a.scale_down_stabilization_seconds {
                e.range(
                    s.into(),
                    0,
                    3600,
                    format!("{path}.autoscaling.scaleDownStabilizationSeconds"),
                );
            }
        }
        if let Some(limit) = &svc.rate_limit {
            e.rate_limit(limit, &format!("{path}.rateLimit"));
        }
        if let Some(sh) = &svc.sharding {
            e.check(
                service.shardable(),
                format!("{path}.sharding"),
                "sharding is only supported for the stateful services orders and inventory",
            );
            e.check(
                svc.autoscaling.is_none(),
                format!("{path}.sharding"),
                "a sharded service sizes each shard with sharding.replicasPerShard; remove autoscaling",
            );
            e.range(sh.shards.into(), 1, 64, format!("{path}.sharding.shards"));
            e.range(
                sh.replicas_per_shard.into(),
                1,
                100,
                format!("{path}.sharding.replicasPerShard"),
            );
        }
    }
    if let Some(limits) = &spec.client_limits {
        client_limits(&mut e, limits);
    }
    e.finish()
}

/// `spec.clientLimits`: valid budgets, each route once, proxies as CIDRs.
fn client_limits(e: &mut Errors, limits: &ClientLimits) {
    let path = "spec.clientLimits";
    if let Some(l) = &limits.per_user {
        e.rate_limit(l, &format!("{path}.perUser"));
    }
    if let Some(l) = &limits.per_address {
        e.rate_limit(l, &format!("{path}.perAddress"));
    }
    for (i, r) in limits.routes.iter().enumerate() {
        e.rate_limit(&r.limit(), &format!("{path}.routes[{i}]"));
        e.check(
            !limits.routes[..i].iter().any(|o| o.route == r.route),
            format!("{path}.routes[{i}].route"),
            format!(
                "{} is listed twice; keep one limit per route",
                r.route.as_str()
            ),
        );
    }
    for (i, cidr) in limits.trusted_proxies.iter().enumerate() {
        e.check(
            is_cidr(cidr),
            format!("{path}.trustedProxies[{i}]"),
            format!("{cidr:?} is not a CIDR; write one such as 10.0.0.0/8 or fd00::/8"),
        );
    }
}

/// Checks a FlashSale spec.
pub fn flash_sale(spec: &FlashSaleSpec) -> Result<(), InvalidSpec> {
    let mut e = Errors::default();
    e.check(
        !spec.storefront_ref.is_empty(),
        "spec.storefrontRef",
        "must name a Storefront",
    );
    e.check(
        spec.start.is_some() == spec.end.is_some(),
        "spec",
        "start and end must be set together",
    );
    e.check(
        spec.start.is_some() != spec.schedule.is_some(),
        "spec",
        "set either a one-off window (start and end) or a recurring schedule, exactly one",
    );
    if let (Some(start), Some(end)) = (&spec.start, &spec.end) {
        e.check(end.0 > start.0, "spec.end", "end must be after start");
    }
    if let Some(p) = &spec.prewarm {
        e.check(
            parse_duration(p).is_some(),
            "spec.prewarm",
            format!("not a duration: {p:?} (use e.g. 10m, 1h30m)"),
        );
    }
    if let Some(s) = &spec.schedule {
        e.check(
            parse_duration(&s.duration).is_some_and(|d| !d.is_zero()),
            "spec.schedule.duration",
            format!("not a positive duration: {:?} (use e.g. 2h)", s.duration),
        );
        e.check(
            s.cron.split_whitespace().count() == 5,
            "spec.schedule.cron",
            "must be a 5-field cron expression, e.g. `0 20 * * FRI`",
        );
    }
    for (name, svc) in &spec.services {
        let path = format!("spec.services.{name}");
        if ServiceName::parse(name).is_none() {
            e.check(
                false,
                path,
                format!("unknown service name: services must be among {SERVICE_NAMES}"),
            );
            continue;
        }
        e.check(
            !(svc.scale.is_some() && svc.factor.is_some()),
            path.clone(),
            "set either scale or factor, not both",
        );
        if let Some(s) = &svc.scale {
            e.range(
                s.min_replicas.into(),
                1,
                1000,
                format!("{path}.scale.minReplicas"),
            );
            e.range(
                s.max_replicas.into(),
                1,
                1000,
                format!("{path}.scale.maxReplicas"),
            );
            e.check(
                s.max_replicas >= s.min_replicas,
                format!("{path}.scale"),
                "scale.maxReplicas must be greater than or equal to scale.minReplicas",
            );
        }
        if let Some(f) = svc.factor {
            e.check(
                (1.0..=100.0).contains(&f),
                format!("{path}.factor"),
                format!("must be between 1 and 100, got {f}"),
            );
        }
        if let Some(limit) = &svc.rate_limit {
            e.rate_limit(limit, &format!("{path}.rateLimit"));
        }
    }
    if let Some(limits) = &spec.order_limits {
        order_limits(&mut e, limits);
    }
    e.finish()
}

/// `spec.orderLimits`: a cap within range, at most [`MAX_LIMITED_SKUS`] SKUs, each a SKU the
/// public API accepts and listed once.
fn order_limits(e: &mut Errors, limits: &OrderLimits) {
    let path = "spec.orderLimits";
    e.range(
        limits.units_per_customer.into(),
        1,
        MAX_UNITS_PER_CUSTOMER.into(),
        format!("{path}.unitsPerCustomer"),
    );
    e.check(
        limits.skus.len() <= MAX_LIMITED_SKUS,
        format!("{path}.skus"),
        format!(
            "lists {} SKUs; at most {MAX_LIMITED_SKUS} (leave it empty to cap every SKU)",
            limits.skus.len()
        ),
    );
    for (i, sku) in limits.skus.iter().enumerate() {
        let field = format!("{path}.skus[{i}]");
        e.check(
            (1..=MAX_SKU_CHARS).contains(&sku.len()),
            field.clone(),
            format!("{sku:?} must be 1 to {MAX_SKU_CHARS} characters long"),
        );
        e.check(
            sku.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            field.clone(),
            format!("{sku:?}: a SKU may contain only letters, digits, '-' and '_'"),
        );
        e.check(
            !limits.skus[..i].contains(sku),
            field,
            format!("{sku:?} is listed twice; list each SKU once"),
        );
    }
}

/// Parses a Go-style duration (`90s`, `1h30m`); `None` when it is not one or is negative.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let d = kube::core::Duration::from_str(s).ok()?;
    if d.is_negative() {
        return None;
    }
    Some(d.into())
}

#[cfg(test)]
mod tests;
