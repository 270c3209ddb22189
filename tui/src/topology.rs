//! Topology view model: a Storefront as a layered graph, shared by the terminal view and the
//! `diagram` exporter.
//!
//! ```text
//!  layer 0   client
//!              │  rps · p99 · 429/s of the gateway
//!  layer 1   gateway
//!              │  rps · p99 · 429/s of each service
//!  layer 2   auth  catalog  orders  payments  inventory  recommendations
//!              │                     │
//!  layer 3                          inventory-0 … inventory-3   (shards)
//!  layer 4   postgres  postgres-replica  redis  broker          (declared datastores)
//! ```
//!
//! Edge numbers: client → gateway is what the gateway served; gateway → service is the
//! gateway's own calls to that service (`storefront_upstream_*`: only the shoppers' traffic,
//! not calls between services), else — an older gateway — what the service served, marked `~`
//! as an estimate; a service fed by the broker only (payments) shows the messages it consumed;
//! service → datastore is the service's calls to it (`storefront_datastore_*`: requests/s, p99
//! and the share that failed).
//!
//! Nodes carry ready/desired replicas and a class: core (blue), supporting (green), datastore;
//! a node is *failed* (red) when a [`Failure`] points at it (so the graph and the Failures
//! view always agree).
//! [`rows`] lays the graph out for a terminal: one row per service, shards under theirs.

use storefront_crds::{ServiceName, Storefront, Tier};

use crate::{
    failures::Failure,
    metrics::{PromState, fmt_latency, fmt_percent, fmt_rate},
    model::{Cluster, sf_key},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeClass {
    Client,
    Core,
    Supporting,
    Datastore,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Unique in the graph: `client`, the service name, the shard name, `postgres`/`redis`/`broker`.
    pub id: String,
    pub label: String,
    pub class: NodeClass,
    pub failed: bool,
    /// `(ready, desired)` pods, for services and shards.
    pub replicas: Option<(i32, i32)>,
    /// Shards: phase and key share, e.g. `Active 25%`.
    pub note: String,
    /// Shards: the service they belong to.
    pub parent: Option<String>,
    pub layer: usize,
}

/// What an edge's numbers are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TrafficKind {
    /// Requests into the node as its caller counted them (or the gateway as it served them).
    #[default]
    Requests,
    /// Requests the service served: the stand-in where the gateway does not export its calls
    /// per upstream (includes calls between services). Shown with `~`.
    Estimated,
    /// Broker messages the service consumed (it serves no requests: payments).
    Consumed,
    /// A service's calls to a datastore or the broker (`error_ratio`, not 429s).
    Datastore,
}

/// Live numbers on an edge, from Prometheus (last-known values).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Traffic {
    pub rps: Option<f64>,
    pub p99_seconds: Option<f64>,
    pub throttled_rps: Option<f64>,
    /// Datastore edges: the share of calls that failed.
    pub error_ratio: Option<f64>,
    pub kind: TrafficKind,
}

impl Traffic {
    fn rate(&self) -> String {
        let mark = if self.kind == TrafficKind::Estimated {
            "~"
        } else {
            ""
        };
        format!("{mark}{}/s", fmt_rate(self.rps))
    }

    /// `12.3/s p99 45ms 429 0/s` (`~12.3/s …` estimated, `12.3/s consumed` from the broker,
    /// `12.3/s p99 2ms err 0.0%` to a datastore), `–` parts where unknown.
    pub fn label(&self) -> String {
        match self.kind {
            TrafficKind::Consumed => format!("{} consumed", self.rate()),
            TrafficKind::Datastore => format!(
                "{} p99 {} err {}",
                self.rate(),
                fmt_latency(self.p99_seconds),
                fmt_percent(self.error_ratio)
            ),
            _ => format!(
                "{} p99 {} 429 {}/s",
                self.rate(),
                fmt_latency(self.p99_seconds),
                fmt_rate(self.throttled_rps)
            ),
        }
    }

    /// A shorter label for narrow terminals: `12.3/s 45ms 0` (`12.3/s ⇠nats`, `12.3/s 2ms 0.0%`).
    pub fn short_label(&self) -> String {
        match self.kind {
            TrafficKind::Consumed => format!("{} ⇠nats", self.rate()),
            TrafficKind::Datastore => format!(
                "{} {} {}",
                self.rate(),
                fmt_latency(self.p99_seconds),
                fmt_percent(self.error_ratio)
            ),
            _ => format!(
                "{} {} {}",
                self.rate(),
                fmt_latency(self.p99_seconds),
                fmt_rate(self.throttled_rps)
            ),
        }
    }

    /// Rate and p99 only: `12.3/s 2ms`.
    pub fn rate_label(&self) -> String {
        format!("{} {}", self.rate(), fmt_latency(self.p99_seconds))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// Request edges (client → gateway → services) and service → datastore edges carry
    /// traffic (`None` for shards; datastore edges without any series).
    pub traffic: Option<Traffic>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    pub namespace: String,
    pub storefront: String,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// Declared datastores (node id, `datastore` label of the services' metrics) and the
/// services that use each.
const DATASTORES: [(&str, &str, &[ServiceName]); 4] = [
    (
        "postgres",
        "postgres",
        &[
            ServiceName::Auth,
            ServiceName::Catalog,
            ServiceName::Orders,
            ServiceName::Payments,
            ServiceName::Inventory,
            ServiceName::Recommendations,
        ],
    ),
    // Product reads of the catalog, when the shop names a replica.
    (
        "postgres-replica",
        "postgres-replica",
        &[ServiceName::Catalog],
    ),
    // The gateway's rate-limit budgets and the catalog's product cache.
    (
        "redis",
        "redis",
        &[ServiceName::Gateway, ServiceName::Catalog],
    ),
    (
        "broker",
        "nats",
        &[
            ServiceName::Orders,
            ServiceName::Payments,
            ServiceName::Inventory,
            ServiceName::Recommendations,
        ],
    ),
];

/// Builds the graph of `sf` from what the watchers and Prometheus know.
pub fn build(
    sf: &Storefront,
    cluster: &Cluster,
    prom: &PromState,
    failures: &[Failure],
) -> Topology {
    let (ns, name) = sf_key(sf);
    let status = sf.status.clone().unwrap_or_default();
    let failed_ids: Vec<&str> = failures
        .iter()
        .filter(|f| f.namespace == ns && f.storefront.as_deref().is_none_or(|s| s == name))
        .filter_map(|f| f.node.as_deref())
        .collect();
    // Into a service: the gateway's calls to it where the gateway counts them, else what the
    // service served (an estimate behind a gateway); the broker's messages for a service that
    // serves no requests but consumes.
    // Whether this shop's gateway counts its calls per upstream at all (a newer image): then
    // a service it has no series for received none from it.
    let gateway_counts = prom.last.as_ref().is_some_and(|snap| {
        snap.services.iter().any(|(k, m)| {
            k.namespace == ns
                && k.storefront.as_deref().is_none_or(|s| s == name)
                && m.upstream.is_some()
        })
    });
    let traffic = |service: &str, behind_gateway: bool| {
        let m = prom
            .service(&ns, &name, service)
            .cloned()
            .unwrap_or_default();
        if let Some(up) = m.upstream.as_ref().filter(|u| u.rps.is_some()) {
            return Traffic {
                rps: up.rps,
                p99_seconds: up.p99_seconds,
                throttled_rps: up.throttled_rps,
                ..Traffic::default()
            };
        }
        if m.consumed_rps.is_some() && m.rps.is_none_or(|r| r <= 0.0) {
            return Traffic {
                rps: m.consumed_rps,
                kind: TrafficKind::Consumed,
                ..Traffic::default()
            };
        }
        if behind_gateway && gateway_counts {
            return Traffic {
                rps: Some(0.0),
                throttled_rps: Some(0.0),
                ..Traffic::default()
            };
        }
        Traffic {
            rps: m.rps,
            p99_seconds: m.p99_seconds,
            throttled_rps: m.throttled_rps,
            error_ratio: None,
            kind: if behind_gateway && m.rps.is_some() {
                TrafficKind::Estimated
            } else {
                TrafficKind::Requests
            },
        }
    };
    let store_traffic = |service: &str, datastore: &str| {
        let m = prom.service(&ns, &name, service)?;
        let st = m.stores.get(datastore)?;
        Some(Traffic {
            rps: st.rps,
            p99_seconds: st.p99_seconds,
            throttled_rps: None,
            error_ratio: st.error_ratio,
            kind: TrafficKind::Datastore,
        })
    };
    let deployments = cluster.deployments_of(&ns, &name);
    let deployment = |node: &str| {
        deployments
            .iter()
            .find(|d| d.node().as_deref() == Some(node))
    };

    let mut nodes = vec![Node {
        id: "client".into(),
        label: "client".into(),
        class: NodeClass::Client,
        failed: false,
        replicas: None,
        note: String::new(),
        parent: None,
        layer: 0,
    }];
    let mut edges = Vec::new();
    let services: Vec<_> = sf.spec.enabled_services().collect();
    let has_gateway = services.iter().any(|(s, _)| *s == ServiceName::Gateway);

    for (service, spec) in &services {
        let id = service.as_str().to_string();
        let st = status.services.get(&id);
        let mut shards = shard_nodes(sf, cluster, &id, &failed_ids);
        let replicas = if shards.is_empty() {
            let d = deployment(&id);
            // The Deployment's replicas are live (the HPA's choice); the status is the fallback.
            let desired = d.map(|d| d.desired).or(st.map(|s| s.desired));
            let ready = d.map(|d| d.ready).or(st.map(|s| s.ready));
            desired.zip(ready).map(|(d, r)| (r, d))
        } else {
            let sum = |f: fn(&Node) -> i32| shards.iter().map(f).sum::<i32>();
            Some((
                sum(|n| n.replicas.map_or(0, |r| r.0)),
                sum(|n| n.replicas.map_or(0, |r| r.1)),
            ))
        };
        let tier = st
            .map(|s| s.tier)
            .unwrap_or_else(|| spec.effective_tier(*service));
        let failed = failed_ids.contains(&id.as_str());
        nodes.push(Node {
            id: id.clone(),
            label: id.clone(),
            class: if tier == Tier::Core {
                NodeClass::Core
            } else {
                NodeClass::Supporting
            },
            failed,
            replicas,
            note: String::new(),
            parent: None,
            layer: if *service == ServiceName::Gateway {
                1
            } else {
                2
            },
        });
        let from = if has_gateway && *service != ServiceName::Gateway {
            "gateway"
        } else {
            "client"
        };
        edges.push(Edge {
            from: from.into(),
            to: id.clone(),
            traffic: Some(traffic(&id, from == "gateway")),
        });
        for shard in &shards {
            edges.push(Edge {
                from: id.clone(),
                to: shard.id.clone(),
                traffic: None,
            });
        }
        nodes.append(&mut shards);
    }

    let declared = sf.spec.datastores.clone().unwrap_or_default();
    for (store, label, users) in DATASTORES {
        let present = match store {
            "postgres" => declared.postgres.is_some(),
            "postgres-replica" => declared.postgres_read_replica.is_some(),
            "redis" => declared.redis.is_some(),
            _ => declared.broker.is_some(),
        };
        if !present {
            continue;
        }
        nodes.push(Node {
            id: store.into(),
            label: store.into(),
            class: NodeClass::Datastore,
            failed: false,
            replicas: None,
            note: String::new(),
            parent: None,
            layer: 4,
        });
        for (service, _) in services.iter().filter(|(s, _)| users.contains(s)) {
            edges.push(Edge {
                from: service.as_str().into(),
                to: store.into(),
                traffic: store_traffic(service.as_str(), label),
            });
        }
    }
    Topology {
        namespace: ns,
        storefront: name,
        nodes,
        edges,
    }
}

/// Shard nodes of one service, from the ServiceShard objects (or the status rollup before
/// they are watched), ordered by index.
fn shard_nodes(
    sf: &Storefront,
    cluster: &Cluster,
    service: &str,
    failed_ids: &[&str],
) -> Vec<Node> {
    let (ns, name) = sf_key(sf);
    let deployments = cluster.deployments_of(&ns, &name);
    let mut shards: Vec<(i32, Node)> = cluster
        .shards_of(&ns, &name)
        .iter()
        .filter(|s| s.spec.service.as_str() == service)
        .map(|s| {
            let st = s.status.clone().unwrap_or_default();
            let id = s.metadata.name.clone().unwrap_or_default();
            let phase = st.phase.map(|p| format!("{p:?}")).unwrap_or_default();
            let share = st
                .key_share_percent
                .map(|p| format!(" {p}%"))
                .unwrap_or_default();
            let ready = deployments
                .iter()
                .find(|d| d.name == id)
                .map_or(st.ready_replicas, |d| d.ready);
            (
                s.spec.index,
                shard_node(
                    id,
                    service,
                    ready,
                    s.spec.replicas,
                    format!("{phase}{share}"),
                    failed_ids,
                ),
            )
        })
        .collect();
    if shards.is_empty() {
        shards = sf
            .status
            .iter()
            .flat_map(|s| &s.shards)
            .filter(|r| r.service == service)
            .map(|r| {
                (
                    r.index,
                    shard_node(
                        r.name.clone(),
                        service,
                        r.ready,
                        r.replicas,
                        r.phase.clone(),
                        failed_ids,
                    ),
                )
            })
            .collect();
    }
    shards.sort_by_key(|(i, _)| *i);
    shards.into_iter().map(|(_, n)| n).collect()
}

fn shard_node(
    id: String,
    service: &str,
    ready: i32,
    desired: i32,
    note: String,
    failed_ids: &[&str],
) -> Node {
    Node {
        failed: failed_ids.contains(&id.as_str()),
        label: id.clone(),
        id,
        class: NodeClass::Core,
        replicas: Some((ready, desired)),
        note: note.trim().to_string(),
        parent: Some(service.to_string()),
        layer: 3,
    }
}

/// A datastore node's short name: `pg`, `pg-ro`, `redis`, `nats`.
pub fn short_store(id: &str) -> &str {
    match id {
        "postgres" => "pg",
        "postgres-replica" => "pg-ro",
        "broker" => "nats",
        other => other,
    }
}

impl Topology {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The traffic on the request edge into `id`.
    pub fn traffic_into(&self, id: &str) -> Option<&Traffic> {
        self.edges
            .iter()
            .find(|e| e.to == id)
            .and_then(|e| e.traffic.as_ref())
    }

    /// Nodes of one layer, in graph order.
    pub fn layer(&self, layer: usize) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(move |n| n.layer == layer)
    }

    /// Datastores a node talks to.
    pub fn stores_of(&self, id: &str) -> Vec<&str> {
        self.store_edges_of(id).map(|e| e.to.as_str()).collect()
    }

    /// The edges from a node to the datastores it talks to.
    pub fn store_edges_of(&self, id: &str) -> impl Iterator<Item = &Edge> {
        self.edges.iter().filter(move |e| {
            e.from == id
                && self
                    .node(&e.to)
                    .is_some_and(|n| n.class == NodeClass::Datastore)
        })
    }
}

/// One row of the terminal layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row<'a> {
    /// The node shown on this row (a service, or a shard under its service).
    pub node: &'a str,
    /// Tree glyph joining the row to the gateway's trunk: `┬` first, `├` middle, `└` last,
    /// `│` for shard rows while services follow, ` ` after the last service.
    pub trunk: char,
    /// For shard rows: `├` or `└` under their service.
    pub branch: Option<char>,
}

/// Terminal layout: every layer-2 service on its own row (the gateway is drawn left of them), each
/// sharded service followed by its shards; at most `max_rows` rows, shards being elided first
/// (a `… n more` row is then the caller's to draw from the returned count).
pub fn rows(topo: &Topology, max_rows: usize) -> (Vec<Row<'_>>, usize) {
    let services: Vec<&Node> = topo.nodes.iter().filter(|n| n.layer == 2).collect();
    let total_shards = topo.nodes.iter().filter(|n| n.layer == 3).count();
    let shard_budget = max_rows.saturating_sub(services.len());
    let mut out = Vec::new();
    let mut shown_shards = 0;
    for (i, s) in services.iter().enumerate() {
        let last = i + 1 == services.len();
        let trunk = match (i, last) {
            (0, true) => '─',
            (0, false) => '┬',
            (_, true) => '└',
            _ => '├',
        };
        out.push(Row {
            node: &s.id,
            trunk,
            branch: None,
        });
        let shards: Vec<&Node> = topo
            .layer(3)
            .filter(|n| n.parent.as_deref() == Some(&s.id))
            .collect();
        for (j, sh) in shards.iter().enumerate() {
            if shown_shards >= shard_budget {
                break;
            }
            shown_shards += 1;
            out.push(Row {
                node: &sh.id,
                trunk: if last { ' ' } else { '│' },
                branch: Some(if j + 1 == shards.len() { '└' } else { '├' }),
            });
        }
    }
    out.truncate(max_rows);
    (out, total_shards - shown_shards)
}

#[cfg(test)]
#[path = "topology_tests.rs"]
mod tests;
