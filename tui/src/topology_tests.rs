//! Tests of the topology view model: layers, classes, red nodes, terminal rows.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::fixtures;

fn acme(app: &crate::state::App) -> Topology {
    build(app.focus().unwrap(), &app.cluster, &app.prom, &app.failures)
}

#[test]
fn layers_classes_and_edges_of_the_sample_shop() {
    let topo = acme(&fixtures::healthy());
    let ids = |l| topo.layer(l).map(|n| n.id.as_str()).collect::<Vec<_>>();
    assert_eq!(ids(0), ["client"]);
    assert_eq!(ids(1), ["gateway"]);
    assert_eq!(
        ids(2),
        [
            "auth",
            "catalog",
            "orders",
            "payments",
            "inventory",
            "recommendations"
        ]
    );
    assert_eq!(
        ids(3),
        [
            "acme-inventory-0",
            "acme-inventory-1",
            "acme-inventory-2",
            "acme-inventory-3"
        ]
    );
    assert_eq!(ids(4), ["postgres", "postgres-replica", "redis", "broker"]);
    assert_eq!(topo.node("catalog").unwrap().class, NodeClass::Supporting);
    assert_eq!(topo.node("orders").unwrap().class, NodeClass::Core);
    assert_eq!(
        topo.node("inventory").unwrap().replicas,
        Some((4, 4)),
        "sum of its shards"
    );
    assert!(topo.nodes.iter().all(|n| !n.failed));
    let into_orders = topo.traffic_into("orders").unwrap();
    assert_eq!(into_orders.rps, Some(38.0));
    assert_eq!(
        topo.edges.iter().find(|e| e.to == "orders").unwrap().from,
        "gateway"
    );
    assert_eq!(topo.traffic_into("gateway").unwrap().rps, Some(412.0));
    assert_eq!(topo.stores_of("inventory"), ["postgres", "broker"]);
}

#[test]
fn failures_and_empty_replicas_turn_nodes_red() {
    let topo = acme(&fixtures::degraded());
    let failed: Vec<_> = topo
        .nodes
        .iter()
        .filter(|n| n.failed)
        .map(|n| n.id.as_str())
        .collect();
    assert_eq!(failed, ["payments"]);
    assert_eq!(topo.node("payments").unwrap().replicas, Some((0, 2)));

    // a shard whose Deployment lost its pods turns red on its own, before the operator says so
    let mut app = fixtures::healthy();
    let mut deps = app.cluster.deployments.clone();
    deps.iter_mut()
        .find(|d| d.name == "acme-inventory-2")
        .unwrap()
        .ready = 0;
    app.update(crate::state::Action::Data(
        crate::state::Update::Deployments(deps),
    ));
    let topo = acme(&app);
    let failed: Vec<_> = topo
        .nodes
        .iter()
        .filter(|n| n.failed)
        .map(|n| n.id.as_str())
        .collect();
    assert_eq!(failed, ["acme-inventory-2"]);
    assert_eq!(topo.node("inventory").unwrap().replicas, Some((3, 4)));
}

#[test]
fn without_a_gateway_clients_reach_services_directly_and_undeclared_stores_are_absent() {
    let mut app = fixtures::healthy();
    let mut sf = app.cluster.storefronts[0].clone();
    sf.spec.services.remove("gateway");
    sf.spec.datastores = None;
    app.update(crate::state::Action::Data(
        crate::state::Update::Storefronts(vec![sf]),
    ));
    let topo = acme(&app);
    assert_eq!(topo.layer(1).count(), 0);
    assert_eq!(topo.layer(4).count(), 0);
    assert!(
        topo.edges
            .iter()
            .filter(|e| e.traffic.is_some())
            .all(|e| e.from == "client")
    );
}

#[test]
fn terminal_rows_nest_shards_and_elide_them_first() {
    let topo = acme(&fixtures::healthy());
    let (rows, hidden) = rows(&topo, 100);
    let glyphs: Vec<(&str, char, Option<char>)> =
        rows.iter().map(|r| (r.node, r.trunk, r.branch)).collect();
    assert_eq!(
        glyphs,
        [
            ("auth", '┬', None),
            ("catalog", '├', None),
            ("orders", '├', None),
            ("payments", '├', None),
            ("inventory", '├', None),
            ("acme-inventory-0", '│', Some('├')),
            ("acme-inventory-1", '│', Some('├')),
            ("acme-inventory-2", '│', Some('├')),
            ("acme-inventory-3", '│', Some('└')),
            ("recommendations", '└', None),
        ]
    );
    assert_eq!(hidden, 0);
    let (rows, hidden) = rows_fit(&topo, 8);
    assert_eq!(rows, 8);
    assert_eq!(
        hidden, 2,
        "six services and two of four shards fit in eight rows"
    );
}

fn rows_fit(topo: &Topology, max: usize) -> (usize, usize) {
    let (r, h) = rows(topo, max);
    (r.len(), h)
}

#[test]
fn traffic_labels_say_unknown_not_zero() {
    let t = Traffic::default();
    assert_eq!(t.label(), "–/s p99 – 429 –/s");
    let t = Traffic {
        rps: Some(0.0),
        p99_seconds: Some(0.25),
        throttled_rps: Some(1.5),
        ..Traffic::default()
    };
    assert_eq!(t.short_label(), "0/s 250ms 1.50");
    let estimated = Traffic {
        kind: TrafficKind::Estimated,
        ..t.clone()
    };
    assert_eq!(estimated.label(), "~0/s p99 250ms 429 1.50/s");
    let store = Traffic {
        rps: Some(96.0),
        p99_seconds: Some(0.0021),
        error_ratio: Some(0.02),
        kind: TrafficKind::Datastore,
        ..Traffic::default()
    };
    assert_eq!(store.label(), "96.0/s p99 2ms err 2.0%");
    assert_eq!(store.short_label(), "96.0/s 2ms 2.0%");
    assert_eq!(
        Traffic {
            kind: TrafficKind::Datastore,
            ..Traffic::default()
        }
        .label(),
        "–/s p99 – err –"
    );
    let consumed = Traffic {
        rps: Some(31.0),
        kind: TrafficKind::Consumed,
        ..Traffic::default()
    };
    assert_eq!(consumed.label(), "31.0/s consumed");
    assert_eq!(consumed.short_label(), "31.0/s ⇠nats");
}

#[test]
fn datastore_edges_carry_each_services_calls() {
    let topo = acme(&fixtures::healthy());
    let edge = |from: &str, to: &str| {
        topo.edges
            .iter()
            .find(|e| e.from == from && e.to == to)
            .unwrap_or_else(|| panic!("no edge {from} → {to}"))
            .traffic
            .clone()
    };
    let pg = edge("auth", "postgres").unwrap();
    assert_eq!(pg.kind, TrafficKind::Datastore);
    assert_eq!(
        (pg.rps, pg.p99_seconds, pg.error_ratio),
        (Some(96.0), Some(0.0021), Some(0.0))
    );
    assert_eq!(edge("catalog", "postgres-replica").unwrap().rps, Some(38.0));
    assert_eq!(edge("catalog", "redis").unwrap().rps, Some(250.0));
    // The `datastore` label of the broker is `nats`; its node is the broker.
    assert_eq!(edge("inventory", "broker").unwrap().rps, Some(132.0));
    // The gateway's Redis use (the rate limiter) exports no datastore metrics: no numbers.
    assert_eq!(edge("gateway", "redis"), None);
    assert_eq!(
        topo.stores_of("catalog"),
        ["postgres", "postgres-replica", "redis"]
    );
    // Degraded: payments' pods are gone, and so are its series; orders' errors show.
    let topo = acme(&fixtures::degraded());
    let from_payments: Vec<_> = topo.store_edges_of("payments").collect();
    assert_eq!(from_payments.len(), 2);
    assert!(from_payments.iter().all(|e| e.traffic.is_none()));
    let orders_pg = topo
        .store_edges_of("orders")
        .find(|e| e.to == "postgres")
        .and_then(|e| e.traffic.clone())
        .unwrap();
    assert_eq!(orders_pg.error_ratio, Some(0.02));
}

#[test]
fn gateway_edges_are_the_gateways_calls_else_an_estimate_from_the_served_rate() {
    let app = fixtures::healthy();
    let topo = acme(&app);
    // The gateway's client-side count, not the 250/s the catalog served (orders call it too).
    let catalog = topo.traffic_into("catalog").unwrap();
    assert_eq!(catalog.kind, TrafficKind::Requests);
    assert_eq!(
        (catalog.rps, catalog.p99_seconds),
        (Some(212.0), Some(0.036))
    );
    // Payments is fed by the broker: its consumption, not 0/s.
    let payments = topo.traffic_into("payments").unwrap();
    assert_eq!(payments.kind, TrafficKind::Consumed);
    assert_eq!(payments.rps, Some(31.0));
    // The client → gateway edge stays what the gateway served.
    assert_eq!(topo.traffic_into("gateway").unwrap().rps, Some(412.0));

    // An older gateway that does not count its calls: the served rate, marked as estimated.
    let mut app = app;
    let mut snap = app.prom.last.clone().unwrap();
    for m in snap.services.values_mut() {
        m.upstream = None;
    }
    app.prom.last = Some(snap.clone());
    let topo = acme(&app);
    let catalog = topo.traffic_into("catalog").unwrap();
    assert_eq!(catalog.kind, TrafficKind::Estimated);
    assert_eq!(catalog.rps, Some(250.0));
    assert!(catalog.label().starts_with("~250/s"), "{}", catalog.label());

    // A gateway that counts its calls but never called a service: 0/s from it, not the
    // service's served rate (which would be calls from other services).
    for (k, m) in &mut snap.services {
        if k.service == "catalog" {
            m.upstream = Some(crate::metrics::EdgeTraffic {
                rps: Some(5.0),
                ..Default::default()
            });
        }
    }
    app.prom.last = Some(snap);
    let topo = acme(&app);
    let orders = topo.traffic_into("orders").unwrap();
    assert_eq!(
        (orders.kind, orders.rps),
        (TrafficKind::Requests, Some(0.0))
    );
}
