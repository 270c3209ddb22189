//! The Enter detail pane: key/value lines of the selected row of each view, with its title.

use storefront_crds::ServiceName;

use super::{countdown, events, failures, limits_of, opt, sales, services, shards, topology_rows};
use crate::{
    metrics::{fmt_age, fmt_latency, fmt_percent, fmt_rate},
    model::sf_key,
    state::{App, View},
};

/// Key/value lines of the selected row's detail pane, with its title.
pub fn detail(app: &App) -> (String, Vec<(String, String)>) {
    let i = app.selection();
    let kv = |k: &str, v: String| (k.to_string(), v);
    match app.view {
        View::Topology | View::Services => {
            let rows = services(app);
            let id = if app.view == View::Topology {
                topology_rows(app).get(i).cloned()
            } else {
                rows.get(i).map(|r| r.service.clone())
            };
            if let Some(shard) = id.as_ref().filter(|id| ServiceName::parse(id).is_none()) {
                return shard_detail(app, shard);
            }
            let Some(r) = id.and_then(|id| rows.into_iter().find(|r| r.service == id)) else {
                return ("nothing selected".into(), Vec::new());
            };
            let m = &r.metrics;
            let pods: Vec<String> = app
                .cluster
                .pods_of(&r.namespace, &r.storefront)
                .iter()
                .filter(|p| p.component.as_deref() == Some(&r.service))
                .map(|p| {
                    let state = p.waiting_reason.clone().unwrap_or_else(|| p.phase.clone());
                    format!(
                        "{} {} {} restarts",
                        p.name,
                        if p.ready { "ready" } else { &state },
                        p.restarts
                    )
                })
                .collect();
            let mut lines = vec![
                kv("storefront", format!("{}/{}", r.namespace, r.storefront)),
                kv("tier", r.tier.as_str().into()),
                kv(
                    "replicas",
                    format!("{}/{} ready", opt(r.ready), opt(r.desired)),
                ),
                kv("why", r.why.clone()),
                kv("requests/s", fmt_rate(m.rps)),
                kv("errors", fmt_percent(m.error_ratio)),
                kv("p99", fmt_latency(m.p99_seconds)),
                kv("429/s", fmt_rate(m.throttled_rps)),
                kv(
                    "rate limit use",
                    if r.ratelimit_estimated {
                        format!("~{} (served/budget)", fmt_percent(m.ratelimit_use))
                    } else {
                        fmt_percent(m.ratelimit_use)
                    },
                ),
                kv("circuit", m.circuit.map_or("–", |c| c.as_str()).into()),
            ];
            if let Some(up) = &m.upstream {
                lines.push(kv(
                    "from gateway",
                    format!(
                        "{}/s p99 {} 429 {}/s",
                        fmt_rate(up.rps),
                        fmt_latency(up.p99_seconds),
                        fmt_rate(up.throttled_rps)
                    ),
                ));
            }
            if let Some(consumed) = m.consumed_rps {
                lines.push(kv(
                    "consumed",
                    format!("{}/s from nats", fmt_rate(Some(consumed))),
                ));
            }
            lines.extend(m.stores.iter().map(|(store, t)| {
                kv(
                    &format!("→ {}", crate::topology::short_store(store)),
                    format!(
                        "{}/s p99 {} err {}",
                        fmt_rate(t.rps),
                        fmt_latency(t.p99_seconds),
                        fmt_percent(t.error_ratio)
                    ),
                )
            }));
            // The gateway holds the shop's rate limits: what refuses (per client, shop,
            // services) here, what is in force after the pods (the Services view's panel
            // has it all where this pane is cut).
            let limits = (r.service == "gateway")
                .then(|| {
                    app.storefronts()
                        .into_iter()
                        .find(|sf| sf_key(sf) == (r.namespace.clone(), r.storefront.clone()))
                })
                .flatten()
                .map(|sf| limits_of(app, sf));
            if let Some(limits) = &limits {
                lines.push(kv("limits", limits.verdict_text()));
                for (k, v) in limits.metric_lines() {
                    // The gateway's 429/s, now split by what refused them.
                    match lines.iter_mut().find(|(key, _)| *key == k) {
                        Some(line) => line.1 = v,
                        None => lines.push((k, v)),
                    }
                }
            }
            lines.extend(
                app.failures
                    .iter()
                    .filter(|f| f.node.as_deref() == Some(&r.service))
                    .map(|f| kv("failure", format!("{} {}", f.reason, f.message))),
            );
            lines.extend(pods.into_iter().map(|p| kv("pod", p)));
            lines.extend(limits.iter().flat_map(|l| l.spec_lines()));
            (format!("service {}", r.service), lines)
        }
        View::Shards => match shards(app).get(i) {
            Some(r) => shard_detail(app, &r.name),
            None => ("nothing selected".into(), Vec::new()),
        },
        View::Sales => match sales(app).into_iter().nth(i) {
            Some(r) => {
                let mut lines = vec![
                    kv("storefront", format!("{}/{}", r.namespace, r.storefront)),
                    kv("phase", r.phase),
                    kv("next transition", countdown(r.next, app.now)),
                    kv("window", r.window),
                ];
                lines.extend(r.plans.into_iter().map(|p| kv("service", p)));
                lines.extend(r.warning.map(|w| kv("preflight", w)));
                (format!("flash sale {}", r.name), lines)
            }
            None => ("nothing selected".into(), Vec::new()),
        },
        View::Failures => match failures(app).get(i) {
            Some(f) => (
                format!("{} {}", f.kind, f.name),
                vec![
                    kv(
                        "storefront",
                        format!(
                            "{}/{}",
                            f.namespace,
                            f.storefront.clone().unwrap_or_default()
                        ),
                    ),
                    kv("reason", f.reason.clone()),
                    kv("message", f.message.clone()),
                    kv(
                        "since",
                        format!(
                            "{} ({} ago)",
                            f.since,
                            fmt_age(app.now.duration_since(f.since))
                        ),
                    ),
                ],
            ),
            None => ("nothing selected".into(), Vec::new()),
        },
        View::Events => match events(app).get(i) {
            Some(e) => (
                format!("{} {}", e.kind, e.object),
                vec![
                    kv("type", e.type_.clone()),
                    kv("reason", e.reason.clone()),
                    kv("message", e.message.clone()),
                    kv("count", e.count.to_string()),
                    kv("last", e.last.map_or_else(|| "–".into(), |t| t.to_string())),
                ],
            ),
            None => ("nothing selected".into(), Vec::new()),
        },
    }
}

fn shard_detail(app: &App, name: &str) -> (String, Vec<(String, String)>) {
    let Some(r) = shards(app).into_iter().find(|r| r.name == name) else {
        return (format!("shard {name}"), Vec::new());
    };
    let kv = |k: &str, v: String| (k.to_string(), v);
    (
        format!("shard {}", r.name),
        vec![
            kv("service", r.service),
            kv("index", r.index.to_string()),
            kv("phase", r.phase),
            kv("key share", r.share),
            kv(
                "handoff",
                r.handoff.map_or_else(|| "–".into(), |h| format!("{h}%")),
            ),
            kv("replicas", format!("{}/{} ready", r.ready, r.desired)),
            kv(
                "ring epoch",
                r.epoch.map_or_else(|| "–".into(), |e| e.to_string()),
            ),
        ],
    )
}
