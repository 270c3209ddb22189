//! Row models of the views: what each table shows for the Storefronts in scope, after the
//! `/` filter and sort, and the key/value lines of the Enter detail pane. Pure functions of
//! [`App`]; [`crate::ui`] only lays them out. The detail pane is in `detail.rs`, the rate
//! limits of a Storefront (shop-wide, per service, per client) in `limits.rs`.

use jiff::{SignedDuration, Timestamp};
use storefront_crds::{RateLimit, SalePhase, Tier};

use crate::{
    failures::Failure,
    metrics::{ServiceMetrics, fmt_age},
    model::{EventInfo, sf_key},
    state::{App, SortBy},
    topology,
};

mod detail;
mod limits;

pub use detail::detail;
pub use limits::{Limits, Verdict, limits, limits_of};

/// One service of one Storefront.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceRow {
    pub namespace: String,
    pub storefront: String,
    pub service: String,
    pub tier: Tier,
    pub ready: Option<i32>,
    pub desired: Option<i32>,
    /// Why that many: the operator's `replicasReason`, plus active sales.
    pub why: String,
    pub metrics: ServiceMetrics,
    /// `metrics.ratelimit_use` is the console's estimate from the served rate
    /// ([`ratelimit_estimate`]), not the gateway limiter's allowed count.
    pub ratelimit_estimated: bool,
    pub failed: bool,
}

/// The share of its rate-limit budget a service uses: a rate (allowed by the gateway's limiter,
/// or, where it exports none, served by the service) per minute over the budget in force (an
/// active FlashSale's `rateLimit` for the service, else the Storefront's). The served rate
/// overcounts calls between services (orders → inventory), which the gateway does not limit.
pub fn ratelimit_estimate(rps: Option<f64>, budget_per_minute: Option<u32>) -> Option<f64> {
    let budget = f64::from(budget_per_minute.filter(|b| *b > 0)?);
    Some(rps? * 60.0 / budget)
}

/// Requests per minute `service` of `sf` may take now: the largest `rateLimit` of its active
/// FlashSales, else its own.
fn budget(app: &App, sf: &storefront_crds::Storefront, service: &str) -> Option<u32> {
    budget_in_force(app, sf, service).map(|(r, _)| r.requests_per_minute)
}

/// The budget of `service` of `sf` in force now, and the active FlashSale that set it (`None`:
/// the Storefront's own): the largest `rateLimit` of its active FlashSales, else its own.
pub fn budget_in_force(
    app: &App,
    sf: &storefront_crds::Storefront,
    service: &str,
) -> Option<(RateLimit, Option<String>)> {
    let (ns, _) = sf_key(sf);
    let status = sf.status.clone().unwrap_or_default();
    let from_sales = app
        .cluster
        .sales
        .iter()
        .filter(|s| {
            s.metadata.namespace.as_deref() == Some(ns.as_str())
                && s.metadata
                    .name
                    .as_ref()
                    .is_some_and(|n| status.active_flash_sales.contains(n))
        })
        .filter_map(|s| {
            let r = s.spec.services.get(service)?.rate_limit.clone()?;
            Some((r, s.metadata.name.clone()))
        })
        .max_by_key(|(r, _)| r.requests_per_minute);
    from_sales.or_else(|| {
        let r = sf.spec.services.get(service)?.rate_limit.clone()?;
        Some((r, None))
    })
}

/// Fills `metrics.ratelimit_use` of `service` of `sf` where Prometheus did not: the limiter's
/// allowed rate over the budget in force, else the served rate over it (an estimate: `true`).
fn fill_ratelimit_use(
    app: &App,
    sf: &storefront_crds::Storefront,
    service: &str,
    metrics: &mut ServiceMetrics,
) -> bool {
    if metrics.ratelimit_use.is_some() {
        return false;
    }
    let budget = budget(app, sf, service);
    metrics.ratelimit_use = ratelimit_estimate(metrics.admitted_rps, budget);
    if metrics.ratelimit_use.is_some() {
        return false;
    }
    metrics.ratelimit_use = ratelimit_estimate(metrics.rps, budget);
    metrics.ratelimit_use.is_some()
}

/// One shard.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardRow {
    pub namespace: String,
    pub storefront: String,
    pub service: String,
    pub name: String,
    pub index: i32,
    pub phase: String,
    pub share: String,
    pub handoff: Option<i32>,
    pub ready: i32,
    pub desired: i32,
    pub epoch: Option<i64>,
}

/// One flash sale.
#[derive(Clone, Debug, PartialEq)]
pub struct SaleRow {
    pub namespace: String,
    pub name: String,
    pub storefront: String,
    pub phase: String,
    pub next: Option<Timestamp>,
    pub window: String,
    /// `service: planned → actual` capacity lines.
    pub plans: Vec<String>,
    pub warning: Option<String>,
}

fn label_of(f: &Failure) -> String {
    format!("{} {} {} {}", f.kind, f.name, f.reason, f.message)
}

/// The nodes listed by the topology view (services then their shards), for selection.
pub fn topology_rows(app: &App) -> Vec<String> {
    let Some(sf) = app.focus() else {
        return Vec::new();
    };
    let topo = topology::build(sf, &app.cluster, &app.prom, &app.failures);
    let (rows, _) = topology::rows(&topo, usize::MAX);
    rows.into_iter().map(|r| r.node.to_string()).collect()
}

/// Services of every Storefront in scope.
pub fn services(app: &App) -> Vec<ServiceRow> {
    let mut rows = Vec::new();
    for sf in app.storefronts() {
        let (ns, name) = sf_key(sf);
        let topo = topology::build(sf, &app.cluster, &app.prom, &app.failures);
        let status = sf.status.clone().unwrap_or_default();
        let on_sale = !status.active_flash_sales.is_empty();
        for (service, spec) in sf.spec.enabled_services() {
            let id = service.as_str();
            let node = topo.node(id);
            let st = status.services.get(id);
            let mut why = st.map(|s| s.replicas_reason.clone()).unwrap_or_default();
            // Autoscaled: the Deployment's replicas are the HPA's choice, the operator's reason
            // its bounds (or the FlashSale floor that raised them).
            let live = node.and_then(|n| n.replicas).map(|r| r.1);
            if spec.autoscaling.is_some() {
                why = match live {
                    Some(live) => format!("HPA {live} · {why}"),
                    None => format!("HPA · {why}"),
                };
            }
            if on_sale {
                why = format!("{why} +sale").trim().to_string();
            }
            let mut metrics = app
                .prom
                .service(&ns, &name, id)
                .cloned()
                .unwrap_or_default();
            let ratelimit_estimated = fill_ratelimit_use(app, sf, id, &mut metrics);
            rows.push(ServiceRow {
                namespace: ns.clone(),
                storefront: name.clone(),
                service: id.to_string(),
                tier: st.map_or_else(|| spec.effective_tier(service), |s| s.tier),
                ready: node.and_then(|n| n.replicas).map(|r| r.0),
                desired: node.and_then(|n| n.replicas).map(|r| r.1),
                why,
                ratelimit_estimated,
                metrics,
                failed: node.is_some_and(|n| n.failed),
            });
        }
    }
    rows.retain(|r| {
        app.matches(&format!(
            "{} {} {} {}",
            r.storefront,
            r.service,
            r.tier.as_str(),
            r.why
        ))
    });
    let key =
        |v: Option<f64>| std::cmp::Reverse(v.filter(|x| x.is_finite()).map(|x| (x * 1e6) as i64));
    match app.sort {
        SortBy::Name => {}
        SortBy::Rps => rows.sort_by_key(|r| key(r.metrics.rps)),
        SortBy::Errors => rows.sort_by_key(|r| key(r.metrics.error_ratio)),
        SortBy::P99 => rows.sort_by_key(|r| key(r.metrics.p99_seconds)),
        SortBy::Ready => {
            rows.sort_by_key(|r| (r.ready.unwrap_or(0) >= r.desired.unwrap_or(0), r.ready))
        }
    }
    rows
}

/// A reshard in progress (or the last one done) of a sharded service, from the Storefront's
/// `status.rings`.
#[derive(Clone, Debug, PartialEq)]
pub struct ReshardRow {
    pub storefront: String,
    pub service: String,
    /// `Copying`, ... or `done` for the last finished one.
    pub phase: String,
    pub from: i32,
    pub to: i32,
    pub epoch: i64,
    pub percent: i32,
    pub copied: i64,
    pub to_move: i64,
    /// What it waits for (running), or its figures (done).
    pub message: String,
    pub running: bool,
}

/// Reshards of the Storefronts in scope: the running ones, else the last one done.
pub fn reshards(app: &App) -> Vec<ReshardRow> {
    let mut rows = Vec::new();
    for sf in app.storefronts() {
        let (_, name) = sf_key(sf);
        let Some(st) = &sf.status else { continue };
        for (service, ring) in &st.rings {
            let row = |phase: String, running, message: String| ReshardRow {
                storefront: name.clone(),
                service: service.clone(),
                phase,
                from: 0,
                to: 0,
                epoch: ring.epoch,
                percent: 0,
                copied: 0,
                to_move: 0,
                message,
                running,
            };
            if let Some(r) = &ring.resharding {
                rows.push(ReshardRow {
                    from: r.from,
                    to: r.to,
                    epoch: r.epoch,
                    percent: r.copy_progress,
                    copied: r.keys_copied,
                    to_move: r.keys_to_move,
                    ..row(format!("{:?}", r.phase), true, r.message.clone())
                });
            } else if let Some(l) = &ring.last {
                rows.push(ReshardRow {
                    from: l.from,
                    to: l.to,
                    epoch: l.epoch,
                    percent: 100,
                    copied: l.keys_moved,
                    to_move: l.keys_moved,
                    ..row(
                        "done".into(),
                        false,
                        format!(
                            "write pause {:.1} ms, finished {}",
                            l.pause_micros as f64 / 1000.0,
                            l.finished_at
                        ),
                    )
                });
            }
        }
    }
    rows
}

/// Shards of every sharded service in scope.
pub fn shards(app: &App) -> Vec<ShardRow> {
    let mut rows = Vec::new();
    for sf in app.storefronts() {
        let (ns, name) = sf_key(sf);
        let topo = topology::build(sf, &app.cluster, &app.prom, &app.failures);
        for n in topo.layer(3) {
            let obj = app
                .cluster
                .shards_of(&ns, &name)
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(&n.id));
            let st = obj.and_then(|s| s.status.clone()).unwrap_or_default();
            let (ready, desired) = n.replicas.unwrap_or((0, 0));
            rows.push(ShardRow {
                namespace: ns.clone(),
                storefront: name.clone(),
                service: n.parent.clone().unwrap_or_default(),
                name: n.id.clone(),
                index: obj.map_or_else(
                    || {
                        n.id.rsplit('-')
                            .next()
                            .and_then(|i| i.parse().ok())
                            .unwrap_or(0)
                    },
                    |s| s.spec.index,
                ),
                phase: st
                    .phase
                    .map(|p| format!("{p:?}"))
                    .unwrap_or_else(|| n.note.clone()),
                share: st
                    .key_share_percent
                    .map(|p| format!("{p}%"))
                    .unwrap_or_else(|| "–".into()),
                handoff: st.handoff_percent,
                ready,
                desired,
                epoch: obj.map(|s| s.spec.ring_epoch),
            });
        }
    }
    rows.retain(|r| app.matches(&format!("{} {} {}", r.name, r.service, r.phase)));
    rows
}

/// Flash sales of the Storefronts in scope, soonest transition first.
pub fn sales(app: &App) -> Vec<SaleRow> {
    let in_scope: Vec<(String, String)> = app.storefronts().into_iter().map(sf_key).collect();
    let mut rows: Vec<SaleRow> = app
        .cluster
        .sales
        .iter()
        .filter(|s| {
            let ns = s.metadata.namespace.clone().unwrap_or_default();
            in_scope.contains(&(ns.clone(), s.spec.storefront_ref.clone()))
                || (app.scope.storefront.is_none()
                    && app.scope.namespace.as_deref().is_none_or(|n| n == ns))
        })
        .map(|s| {
            let st = s.status.clone().unwrap_or_default();
            let ns = s.metadata.namespace.clone().unwrap_or_default();
            let sf = app
                .cluster
                .storefronts
                .iter()
                .find(|sf| sf_key(sf) == (ns.clone(), s.spec.storefront_ref.clone()));
            let window = match (&s.spec.start, &s.spec.end, &s.spec.schedule) {
                (Some(a), Some(b), _) => window(a.0, b.0),
                (_, _, Some(w)) => format!("{} for {} ({})", w.cron, w.duration, w.time_zone),
                _ => String::new(),
            };
            let plans = s
                .spec
                .services
                .iter()
                .map(|(svc, change)| {
                    let planned = match (&change.scale, change.factor) {
                        (Some(sc), _) => format!("{}..{}", sc.min_replicas, sc.max_replicas),
                        (None, Some(f)) => format!("×{f}"),
                        _ => "=".into(),
                    };
                    let actual = sf
                        .and_then(|sf| sf.status.as_ref()?.services.get(svc))
                        .map_or_else(|| "–".into(), |st| format!("{}/{}", st.ready, st.desired));
                    let limit = change
                        .rate_limit
                        .as_ref()
                        .map(|r| format!(" limit {}/min", r.requests_per_minute))
                        .unwrap_or_default();
                    format!("{svc}: {planned} now {actual}{limit}")
                })
                .collect();
            SaleRow {
                namespace: ns,
                name: s.metadata.name.clone().unwrap_or_default(),
                storefront: s.spec.storefront_ref.clone(),
                phase: st.phase.map_or_else(|| "Pending".into(), phase_name),
                next: st.next_transition_time.map(|t| t.0),
                window,
                plans,
                warning: st.plan.filter(|p| !p.fits).map(|p| {
                    if p.message.is_empty() {
                        format!("needs {} more pods than fit", p.additional_pods)
                    } else {
                        p.message
                    }
                }),
            }
        })
        .collect();
    rows.retain(|r| app.matches(&format!("{} {} {}", r.name, r.storefront, r.phase)));
    rows.sort_by(|a, b| {
        a.next
            .is_none()
            .cmp(&b.next.is_none())
            .then(a.next.cmp(&b.next))
            .then(a.name.cmp(&b.name))
    });
    rows
}

fn phase_name(p: SalePhase) -> String {
    format!("{p:?}")
}

/// A one-off window in UTC: `11-27 08:00–20:00`, or `11-27 08:00–11-30 20:00`.
pub fn window(start: Timestamp, end: Timestamp) -> String {
    let same_day = start.strftime("%Y%m%d").to_string() == end.strftime("%Y%m%d").to_string();
    if same_day {
        format!("{}–{}", short_time(start), end.strftime("%H:%M"))
    } else {
        format!("{}–{}", short_time(start), short_time(end))
    }
}

/// `11-27 08:00` in UTC.
pub fn short_time(t: Timestamp) -> String {
    t.strftime("%m-%d %H:%M").to_string()
}

/// Countdown to `t`: `in 4m10s`, or `4m10s ago`.
pub fn countdown(t: Option<Timestamp>, now: Timestamp) -> String {
    match t {
        None => "–".into(),
        Some(t) => {
            let d = t.duration_since(now);
            if d >= SignedDuration::ZERO {
                format!("in {}", fmt_age(d))
            } else {
                format!("{} ago", fmt_age(-d))
            }
        }
    }
}

/// Failures after the filter.
pub fn failures(app: &App) -> Vec<&Failure> {
    app.failures
        .iter()
        .filter(|f| app.matches(&label_of(f)))
        .collect()
}

/// Events of the Storefronts in scope and their children, newest first.
pub fn events(app: &App) -> Vec<&EventInfo> {
    let mut by_ns: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (ns, name) in app.storefronts().into_iter().map(sf_key) {
        by_ns.entry(ns).or_default().push(name);
    }
    // Sales are not named after their Storefront: they belong by `storefrontRef`.
    let sales: std::collections::BTreeSet<(String, String)> = app
        .cluster
        .sales
        .iter()
        .filter_map(|s| {
            let ns = s.metadata.namespace.clone()?;
            by_ns
                .get(&ns)
                .is_some_and(|names| names.contains(&s.spec.storefront_ref))
                .then(|| (ns, s.metadata.name.clone().unwrap_or_default()))
        })
        .collect();
    let mut v: Vec<&EventInfo> = app
        .cluster
        .events
        .iter()
        .filter(|e| {
            by_ns
                .get(&e.namespace)
                .is_some_and(|names| names.iter().any(|n| e.concerns(n)))
                || (e.kind == "FlashSale"
                    && sales.contains(&(e.namespace.clone(), e.object.clone())))
        })
        .filter(|e| {
            app.matches(&format!(
                "{} {} {} {} {}",
                e.type_, e.kind, e.object, e.reason, e.message
            ))
        })
        .collect();
    v.sort_by(|a, b| b.last.cmp(&a.last).then_with(|| a.object.cmp(&b.object)));
    v
}

/// An optional count, `–` when unknown.
pub fn opt(v: Option<i32>) -> String {
    v.map_or_else(|| "–".into(), |v| v.to_string())
}
