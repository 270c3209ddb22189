//! The pane readers (edge and datastore rates) on captured panes, without a cluster.

use super::*;

#[test]
fn edge_rates_are_read_from_the_pane() {
    let pane = "│client ─▶ gateway 2/2 ──┬─ 1.22/s 66ms 0   ─▶ auth 2/2         → pg   │\n\
                │  20.0/s 46ms 0         ├─ 16.9/s 5ms 0    ─▶ catalog 1/1      → pg   │\n\
                │                        ├─ 0/s – –         ─▶ payments 2/2     → pg   │\n\
                │                        ├─ –/s – –         ─▶ orders 2/2       → pg   │\n\
                │                        └─ 1.2k/s 5ms 0    ─▶ recommendations 1/1     │";
    assert_eq!(edge_rps(pane, "gateway"), Some(20.0));
    assert_eq!(edge_rps(pane, "auth"), Some(1.22));
    assert_eq!(edge_rps(pane, "catalog"), Some(16.9));
    assert_eq!(edge_rps(pane, "payments"), Some(0.0));
    assert_eq!(edge_rps(pane, "orders"), None);
    assert_eq!(edge_rps(pane, "recommendations"), Some(1200.0));
    assert_eq!(edge_rps(pane, "inventory"), None);
    assert_eq!(
        edge_rps("│ ├─ ~3.50/s 5ms 0 ─▶ orders 2/2 → pg", "orders"),
        Some(3.5)
    );
}

#[test]
fn datastore_rates_are_read_from_the_pane() {
    let summary = "│operator  0.25 reconciles/s · 0 errors/s · 0 writes/s · p99 2ms      │\n\
                   │datastore pg    56.0/s · p99 ≤6ms · err 0.0% · from 6 services     │\n\
                   │datastore nats  –/s · p99 ≤– · err – · from 1 service              │";
    assert_eq!(datastore_rps(summary, "pg"), Some(56.0));
    assert_eq!(datastore_rps(summary, "nats"), None);
    assert_eq!(datastore_rps(summary, "redis"), None);
    let rows = "│ ├─ 9.0/s 5ms 0 ─▶ auth 2/2    → pg 9.00/s 2ms                     │\n\
                │ ├─ 20/s 5ms 0  ─▶ catalog 1/1 → pg 1.00/s · pg-ro 12.0/s · redis 3.0/s │\n\
                │ └─ 0/s – 0     ─▶ orders 2/2  → pg · nats                          │";
    assert_eq!(datastore_rps(rows, "pg"), Some(10.0));
    assert_eq!(datastore_rps(rows, "pg-ro"), Some(12.0));
    assert_eq!(datastore_rps(rows, "nats"), None);
}
