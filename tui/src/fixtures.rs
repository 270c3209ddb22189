//! Sample data: the `acme` shop of `manifests/samples/` with status, shards, a flash sale,
//! pods, events and Prometheus numbers, as an [`App`] in a known state. Used by the snapshot
//! tests and by `--demo` (render the console with no cluster, for docs and measurements).

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use storefront_crds::{FlashSale, ServiceShard, Storefront};

use crate::{
    metrics::{
        Circuit, ClientTraffic, Decisions, EdgeTraffic, PromSnapshot, ServiceKey, ServiceMetrics,
        StoreTraffic,
    },
    model::{DeploymentInfo, EventInfo, PodInfo},
    state::{Action, App, Scope, Settings, Update},
};

/// The fixed "now" of every fixture: noon on Black Friday 2026.
pub fn now() -> Timestamp {
    Timestamp::from_second(1_795_780_800).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn ago(secs: i64) -> Timestamp {
    now() - SignedDuration::from_secs(secs)
}

const NS: &str = "shop";

/// (service, tier, desired, ready, reason) of the healthy shop.
const SERVICES: [(&str, &str, i32, &str); 7] = [
    ("gateway", "core", 2, "min 2, max 10"),
    ("auth", "core", 2, "replicas 2"),
    ("catalog", "supporting", 1, "min 1, max 6"),
    ("orders", "core", 2, "replicas 2"),
    ("payments", "core", 2, "replicas 2"),
    ("inventory", "core", 4, "4 shards x 1"),
    ("recommendations", "supporting", 1, "replicas 1"),
];

fn storefront(broken: bool) -> Storefront {
    let services: serde_json::Map<String, serde_json::Value> = SERVICES
        .iter()
        .map(|(name, tier, desired, reason)| {
            let ready = if broken && *name == "payments" {
                0
            } else {
                *desired
            };
            (
                name.to_string(),
                json!({"desired": desired, "ready": ready, "tier": tier, "replicasReason": reason}),
            )
        })
        .collect();
    let failure_points = if broken {
        json!([{"kind": "Service", "name": "payments", "reason": "NoReadyReplicas",
                "message": "payments has no ready pod", "since": ago(150).to_string()}])
    } else {
        json!([])
    };
    let ready = if broken { "False" } else { "True" };
    let v = json!({
        "apiVersion": "commerce.storefront.dev/v1alpha1", "kind": "Storefront",
        "metadata": {"name": "acme", "namespace": NS, "generation": 3},
        "spec": {
            "image": "storefront/workload:dev",
            "services": {
                "gateway": {"autoscaling": {"min": 2, "max": 10}},
                "auth": {"replicas": 2}, "catalog": {"autoscaling": {"min": 1, "max": 6}},
                "orders": {"replicas": 2}, "payments": {"replicas": 2},
                "inventory": {"sharding": {"shards": 4, "replicasPerShard": 1}},
                "recommendations": {"replicas": 1, "tier": "supporting"}
            },
            // Per user and per address the defaults; sign-in tighter; behind the cluster's
            // ingress proxies.
            "clientLimits": {"routes": [{"route": "POST /api/v1/sessions",
                                         "requestsPerMinute": 30, "burst": 5}],
                             "trustedProxies": ["10.0.0.0/8"]},
            "datastores": {"postgres": {"secretName": "acme-pg"},
                           "postgresReadReplica": {"secretName": "acme-pg-replica"},
                           "redis": {"secretName": "acme-redis"},
                           "broker": {"secretName": "acme-nats"}}
        },
        "status": {
            "observedGeneration": 3,
            "conditions": [{"type": "Ready", "status": ready, "reason": "AllServicesReady", "message": "",
                            "lastTransitionTime": ago(3600).to_string(), "observedGeneration": 3}],
            "services": services,
            "activeFlashSales": ["black-friday"],
            "failurePoints": failure_points,
            "failureCount": if broken { 1 } else { 0 },
            "readyServices": if broken { "6/7" } else { "7/7" }
        }
    });
    serde_json::from_value(v).expect("the fixture Storefront is valid")
}

fn shards() -> Vec<ServiceShard> {
    (0..4)
        .filter_map(|i| {
            serde_json::from_value(json!({
                "apiVersion": "commerce.storefront.dev/v1alpha1", "kind": "ServiceShard",
                "metadata": {"name": format!("acme-inventory-{i}"), "namespace": NS},
                "spec": {"storefront": "acme", "service": "inventory", "index": i, "shardCount": 4,
                         "replicas": 1, "ringEpoch": 1},
                "status": {"readyReplicas": 1, "keySharePercent": "25.0", "phase": "Active"}
            }))
            .ok()
        })
        .collect()
}

fn sales() -> Vec<FlashSale> {
    let v = json!([
        {"apiVersion": "commerce.storefront.dev/v1alpha1", "kind": "FlashSale",
         "metadata": {"name": "black-friday", "namespace": NS},
         "spec": {"storefrontRef": "acme", "start": "2026-11-27T08:00:00Z", "end": "2026-11-27T20:00:00Z",
                  "prewarm": "10m", "services": {
                      "gateway": {"scale": {"minReplicas": 6, "maxReplicas": 20},
                                  "rateLimit": {"requestsPerMinute": 20000, "burst": 2000}},
                      "orders": {"factor": 3.0, "rateLimit": {"requestsPerMinute": 15000}}}},
         "status": {"phase": "Active", "nextTransitionTime": "2026-11-27T20:00:00Z",
                    "plan": {"additionalPods": 8, "fits": true}}},
        {"apiVersion": "commerce.storefront.dev/v1alpha1", "kind": "FlashSale",
         "metadata": {"name": "cyber-monday", "namespace": NS},
         "spec": {"storefrontRef": "acme", "start": "2026-11-30T08:00:00Z", "end": "2026-11-30T20:00:00Z",
                  "services": {"payments": {"factor": 4.0}}},
         "status": {"phase": "Scheduled", "nextTransitionTime": "2026-11-30T07:55:00Z",
                    "plan": {"additionalPods": 40, "fits": false,
                             "message": "needs 40 pods, the cluster fits 25 more"}}}
    ]);
    serde_json::from_value(v).unwrap_or_default()
}

fn deployments(broken: bool) -> Vec<DeploymentInfo> {
    let mut v: Vec<DeploymentInfo> = SERVICES
        .iter()
        .filter(|(s, ..)| *s != "inventory")
        .map(|(s, _, desired, _)| DeploymentInfo {
            namespace: NS.into(),
            name: format!("acme-{s}"),
            storefront: Some("acme".into()),
            component: Some(s.to_string()),
            shard: None,
            created: Some(ago(7200)),
            desired: *desired,
            ready: if broken && *s == "payments" {
                0
            } else {
                *desired
            },
            updated: *desired,
        })
        .collect();
    v.extend((0..4).map(|i| DeploymentInfo {
        namespace: NS.into(),
        name: format!("acme-inventory-{i}"),
        storefront: Some("acme".into()),
        component: Some("inventory".into()),
        shard: Some(i.to_string()),
        created: Some(ago(7200)),
        desired: 1,
        ready: 1,
        updated: 1,
    }));
    v
}

fn pods(broken: bool) -> Vec<PodInfo> {
    let mut v = Vec::new();
    for (s, _, desired, _) in SERVICES.iter().filter(|(s, ..)| *s != "inventory") {
        for i in 0..*desired {
            let bad = broken && *s == "payments";
            v.push(PodInfo {
                namespace: NS.into(),
                name: format!("acme-{s}-7d9f-{i}"),
                storefront: Some("acme".into()),
                component: Some(s.to_string()),
                shard: None,
                phase: "Running".into(),
                ready: !bad,
                restarts: if bad { 6 } else { 0 },
                waiting_reason: bad.then(|| "CrashLoopBackOff".into()),
                message: if bad {
                    "back-off 2m40s".into()
                } else {
                    String::new()
                },
                created: Some(ago(7200)),
            });
        }
    }
    v
}

fn events(broken: bool) -> Vec<EventInfo> {
    let ev = |secs, kind: &str, object: &str, type_: &str, reason: &str, message: &str| EventInfo {
        namespace: NS.into(),
        kind: kind.into(),
        object: object.into(),
        type_: type_.into(),
        reason: reason.into(),
        message: message.into(),
        count: 1,
        last: Some(ago(secs)),
    };
    let mut v = vec![
        ev(
            4 * 3600,
            "FlashSale",
            "black-friday",
            "Normal",
            "PreWarming",
            "capacity rises 10m before the window",
        ),
        ev(
            14400 - 600,
            "Storefront",
            "acme",
            "Normal",
            "Scaled",
            "gateway: min 6 because FlashSale black-friday is Active",
        ),
        ev(
            900,
            "Deployment",
            "acme-orders",
            "Normal",
            "ScalingReplicaSet",
            "Scaled up replica set acme-orders-7d9f to 2",
        ),
    ];
    if broken {
        let mut back = ev(
            20,
            "Pod",
            "acme-payments-7d9f-0",
            "Warning",
            "BackOff",
            "Back-off restarting failed container payments",
        );
        back.count = 6;
        v.push(back);
    }
    v
}

/// The operator's counters 10 s apart: 1 reconcile/s, 0.1 writes/s, no errors.
fn prom_snapshot_before(at: Timestamp, broken: bool) -> PromSnapshot {
    let mut snap = prom_snapshot(at - SignedDuration::from_secs(10), broken);
    snap.operator.reconciles = Some(1190.0);
    snap.operator.writes = Some(84.0);
    snap
}

fn prom_snapshot(at: Timestamp, broken: bool) -> PromSnapshot {
    let mut snap = PromSnapshot::empty(at);
    let numbers = [
        ("gateway", 412.0, 0.002, 0.061, 3.5, 0.21),
        ("auth", 96.0, 0.0, 0.012, 0.0, 0.06),
        ("catalog", 250.0, 0.001, 0.034, 0.0, 0.05),
        ("orders", 38.0, 0.0, 0.088, 1.2, 0.15),
        ("payments", 31.0, 0.0, 0.240, 0.0, 0.03),
        ("inventory", 44.0, 0.0, 0.019, 0.0, 0.04),
        ("recommendations", 180.0, 0.0, 0.045, 0.0, 0.02),
    ];
    // The gateway's calls per upstream (rps, p99): fewer than the services served where
    // services call each other (orders prices its lines at the catalog and asks inventory).
    // Payments is fed by the broker only: no gateway calls, no requests served.
    let upstream = [
        ("auth", 96.0, 0.013),
        ("catalog", 212.0, 0.036),
        ("orders", 38.0, 0.091),
        ("inventory", 20.0, 0.021),
        ("recommendations", 180.0, 0.047),
    ];
    // Each service's calls to its datastores: (service, datastore, rps, p99, error ratio).
    let stores = [
        ("auth", "postgres", 96.0, 0.0021, 0.0),
        ("catalog", "postgres", 14.0, 0.0032, 0.0),
        ("catalog", "postgres-replica", 38.0, 0.0018, 0.0),
        ("catalog", "redis", 250.0, 0.0006, 0.0),
        ("orders", "postgres", 120.0, 0.0044, 0.0),
        ("orders", "nats", 76.0, 0.0031, 0.0),
        ("payments", "postgres", 62.0, 0.0052, 0.0),
        ("payments", "nats", 62.0, 0.0024, 0.0),
        ("inventory", "postgres", 88.0, 0.0061, 0.0),
        ("inventory", "nats", 132.0, 0.0022, 0.0),
        ("recommendations", "postgres", 180.0, 0.0019, 0.0),
        ("recommendations", "nats", 38.0, 0.0020, 0.0),
    ];
    for (service, rps, err, p99, throttled, use_) in numbers {
        let failing = broken && service == "payments";
        let rps = if service == "payments" { 0.0 } else { rps };
        snap.services.insert(
            ServiceKey {
                namespace: NS.into(),
                storefront: Some("acme".into()),
                service: service.into(),
            },
            ServiceMetrics {
                rps: Some(if failing { 0.0 } else { rps }),
                error_ratio: if failing { None } else { Some(err) },
                p99_seconds: if failing { None } else { Some(p99) },
                throttled_rps: Some(if broken { throttled } else { 0.0 }),
                admitted_rps: None,
                ratelimit_use: Some(use_),
                // The budgets the limiter holds: the shop-wide one and orders' (the sale's).
                limited_rps: match service {
                    "gateway" => Some(0.0),
                    "orders" => Some(if broken { throttled } else { 0.0 }),
                    _ => None,
                },
                clients: (service == "gateway").then(|| client_traffic(broken)),
                circuit: Some(if failing {
                    Circuit::Open
                } else {
                    Circuit::Closed
                }),
                upstream: upstream
                    .iter()
                    .find(|u| u.0 == service)
                    .map(|u| EdgeTraffic {
                        rps: Some(u.1),
                        p99_seconds: Some(u.2),
                        throttled_rps: Some(if broken && service == "orders" {
                            throttled
                        } else {
                            0.0
                        }),
                    }),
                consumed_rps: (service == "payments" && !failing).then_some(31.0),
                stores: stores
                    .iter()
                    .filter(|st| st.0 == service && !failing)
                    .map(|st| {
                        // While payments is down orders' publishes to it still land; one in
                        // fifty of orders' statements times out on a busy primary.
                        let err = if broken && st.0 == "orders" && st.1 == "postgres" {
                            0.02
                        } else {
                            st.4
                        };
                        (
                            st.1.to_string(),
                            StoreTraffic {
                                rps: Some(st.2),
                                p99_seconds: Some(st.3),
                                error_ratio: Some(err),
                            },
                        )
                    })
                    .collect(),
            },
        );
    }
    snap.operator.reconciles = Some(1200.0);
    snap.operator.errors = Some(2.0);
    snap.operator.writes = Some(85.0);
    snap.operator.p99_seconds = Some(0.021);
    snap
}

/// The gateway's per-client limits at work. Broken: a flood of bad tokens from one address,
/// refused by its address's budget (2.30/s of the gateway's 3.50 429s/s; orders' budget
/// refuses the other 1.20).
fn client_traffic(broken: bool) -> ClientTraffic {
    let budget = |allowed: f64, limited: f64| Decisions {
        allowed: Some(allowed),
        limited: Some(limited),
    };
    ClientTraffic {
        budgets: [
            ("user", budget(300.0, 0.0)),
            ("address", budget(112.0, if broken { 2.3 } else { 0.0 })),
            ("route:POST /api/v1/sessions", budget(1.5, 0.0)),
        ]
        .into_iter()
        .map(|(name, d)| (name.to_string(), d))
        .collect(),
        tracked: Some(1234.0),
        pods: Some(2.0),
    }
}

fn base(settings: Settings) -> App {
    App::new(now(), settings, Scope::default())
}

fn settings() -> Settings {
    Settings {
        context: Some("storefront-local".into()),
        prometheus_url: Some("http://prometheus:9090".into()),
    }
}

fn feed(app: &mut App, broken: bool) {
    for u in [
        Update::Storefronts(vec![storefront(broken)]),
        Update::Shards(shards()),
        Update::Sales(sales()),
        Update::Deployments(deployments(broken)),
        Update::Pods(pods(broken)),
        Update::Events(events(broken)),
        Update::ApiSynced,
    ] {
        app.update(Action::Data(u));
    }
}

/// The shop, all well, metrics 3 s old.
pub fn healthy() -> App {
    let mut app = base(settings());
    feed(&mut app, false);
    for snap in [
        prom_snapshot_before(ago(3), false),
        prom_snapshot(ago(3), false),
    ] {
        app.update(Action::Data(Update::Prometheus(Ok(snap))));
    }
    app
}

/// The healthy shop while its inventory goes 4 → 5 shards: Copying at 50 %, the new shard
/// joining.
pub fn resharding() -> App {
    let mut app = healthy();
    let mut sfs = app.cluster.storefronts.clone();
    for sf in &mut sfs {
        let st = sf.status.get_or_insert_with(Default::default);
        st.rings.insert(
            "inventory".into(),
            serde_json::from_value(json!({
                "shards": 4, "epoch": 1,
                "resharding": {"phase": "Copying", "from": 4, "to": 5, "epoch": 2, "attempt": 1,
                    "sources": "0-3", "targets": "4", "keysToMove": 400, "keysCopied": 200,
                    "copyProgress": 50, "startedAt": ago(20).to_string(),
                    "phaseSince": ago(5).to_string(),
                    "message": "copying the keys that move from shards 0-3 to 4 (attempt 1)"}
            }))
            .expect("a valid ring status"),
        );
    }
    app.update(Action::Data(Update::Storefronts(sfs)));
    let mut shards = app.cluster.shards.clone();
    if let Some(mut joining) = shards.first().cloned() {
        joining.metadata.name = Some("acme-inventory-4".into());
        joining.spec.index = 4;
        joining.spec.shard_count = 5;
        joining.status = Some(storefront_crds::ServiceShardStatus {
            ready_replicas: 1,
            phase: Some(storefront_crds::ShardPhase::Joining),
            handoff_percent: Some(50),
            ..Default::default()
        });
        shards.push(joining);
    }
    app.update(Action::Data(Update::Shards(shards)));
    app
}

/// Payments down (no ready pod, crash-looping, circuit open), gateway throttling.
pub fn degraded() -> App {
    let mut app = base(settings());
    feed(&mut app, true);
    for snap in [
        prom_snapshot_before(ago(3), true),
        prom_snapshot(ago(3), true),
    ] {
        app.update(Action::Data(Update::Prometheus(Ok(snap))));
    }
    app
}

/// The shop with Prometheus unreachable for two minutes: last-known numbers and their age.
pub fn prometheus_down() -> App {
    let mut app = base(settings());
    feed(&mut app, false);
    app.update(Action::Data(Update::Prometheus(Ok(prom_snapshot(
        ago(125),
        false,
    )))));
    app.update(Action::Data(Update::Prometheus(Err(
        "failed to query Prometheus: connection refused".into(),
    ))));
    app
}

/// The shop with the API server gone for 45 s: last-known objects.
pub fn api_down() -> App {
    let mut app = base(settings());
    app.now = now() - SignedDuration::from_secs(45);
    feed(&mut app, false);
    app.update(Action::Tick(now()));
    app.update(Action::Data(Update::Prometheus(Ok(prom_snapshot(
        ago(3),
        false,
    )))));
    app.update(Action::Data(Update::ApiError(
        "Storefront".into(),
        "failed to watch Storefront: connection refused".into(),
    )));
    app
}

/// A synced cluster without Storefronts, and no Prometheus configured.
pub fn empty() -> App {
    let mut app = base(Settings {
        context: Some("storefront-local".into()),
        prometheus_url: None,
    });
    app.update(Action::Data(Update::ApiSynced));
    app
}

/// `n` copies of the shop, one per namespace `shop-<i>`, every tenth with payments down: the
/// console at scale (render time with a thousand Storefronts).
pub fn many(n: usize) -> App {
    let mut app = base(settings());
    let mut all = crate::model::Cluster::default();
    for i in 0..n {
        let ns = format!("shop-{i}");
        let broken = i % 10 == 0;
        let mut sf = storefront(broken);
        sf.metadata.namespace = Some(ns.clone());
        all.storefronts.push(sf);
        for mut s in shards() {
            s.metadata.namespace = Some(ns.clone());
            all.shards.push(s);
        }
        all.deployments
            .extend(deployments(broken).into_iter().map(|mut d| {
                d.namespace = ns.clone();
                d
            }));
        all.pods.extend(pods(broken).into_iter().map(|mut p| {
            p.namespace = ns.clone();
            p
        }));
    }
    for u in [
        Update::Storefronts(all.storefronts),
        Update::Shards(all.shards),
        Update::Deployments(all.deployments),
        Update::Pods(all.pods),
        Update::ApiSynced,
    ] {
        app.update(Action::Data(u));
    }
    app
}
