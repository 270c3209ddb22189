//! Orders' PostgreSQL store against a real server: idempotent creation (replay and
//! conflict), the saga through the event log, optimistic concurrency, the outbox, the
//! newest-first listing, the pending-order cap and the flash sales' per-customer caps.
//!
//! Needs `DATABASE_URL` (run by `workloads/scripts/integration`):
//! `workloads/scripts/test-datastores up && eval "$(workloads/scripts/test-datastores env)"`.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::AssertSqlSafe;
use storefront_workloads::{
    api::{ApiError, CreateOrderRequest},
    orders::{
        domain::{
            Compensation, Line, OrderEvent, OrderStatus, SagaInput,
            sale_limits::{OverSaleLimit, SaleLimit},
        },
        idempotency::Fingerprint,
        postgres::{Created, PgOrders, PgOrdersError},
    },
};

static NEXT: AtomicU32 = AtomicU32::new(0);

async fn store() -> PgOrders {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL is not set: run workloads/scripts/test-datastores up and eval its env")
    });
    let schema = format!(
        "it_orders_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let store = PgOrders::connect(&url, &schema, 8).await.expect("connects");
    sqlx::query(AssertSqlSafe(format!(
        r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#
    )))
    .execute(store.pool())
    .await
    .expect("clean schema");
    store.migrate().await.expect("migrates");
    store.migrate().await.expect("migrating twice is a no-op");
    store
}

fn created(order_id: &str, user: &str, at: i64) -> OrderEvent {
    OrderEvent::OrderCreated {
        order_id: order_id.into(),
        user_id: user.into(),
        lines: vec![Line {
            sku: "SKU-A".into(),
            quantity: 2,
            unit_price_cents: 500,
        }],
        total_cents: 1000,
        currency: "USD".into(),
        created_at: at,
    }
}

fn fingerprint(body: &str) -> Fingerprint {
    Fingerprint::of(
        &ApiError::parse_body::<CreateOrderRequest>(body.as_bytes())
            .expect("parses")
            .validate()
            .expect("valid"),
    )
}

#[tokio::test]
async fn orders_are_created_once_per_key_and_run_the_saga_from_their_events() {
    let s = store().await;
    let body = fingerprint(r#"{"items":[{"sku":"SKU-A","quantity":2}]}"#);
    let Created::New(order) = s
        .create("k1", &body, created("o1", "u1", 100))
        .await
        .expect("creates")
    else {
        panic!("a new key creates an order");
    };
    assert_eq!((order.status(), order.version), (OrderStatus::Pending, 1));

    // The same key and body: the same order, no second one. Another body: conflict.
    let again = s
        .create("k1", &body, created("o1-retry", "u1", 101))
        .await
        .expect("answers");
    assert!(
        matches!(again, Created::Replay(ref o) if o.order_id == "o1"),
        "{again:?}"
    );
    let other = fingerprint(r#"{"items":[{"sku":"SKU-A","quantity":3}]}"#);
    assert_eq!(
        s.create("k1", &other, created("o1-other", "u1", 102))
            .await
            .expect("answers"),
        Created::Conflict
    );
    assert!(s.load("o1-retry").await.expect("query").is_none());
    // Another user may use the same key.
    assert!(matches!(
        s.create("k1", &body, created("o2", "u2", 103))
            .await
            .expect("creates"),
        Created::New(_)
    ));

    // The saga, through the store, with redeliveries.
    s.apply(
        "o1",
        &SagaInput::StockHeld {
            shard: 0,
            shards: 1,
        },
    )
    .await
    .expect("applies");
    s.apply(
        "o1",
        &SagaInput::StockHeld {
            shard: 0,
            shards: 1,
        },
    )
    .await
    .expect("duplicate is a no-op");
    let paid = SagaInput::PaymentSucceeded {
        charge_id: "ch1".into(),
    };
    let decision = s
        .apply("o1", &paid)
        .await
        .expect("applies")
        .expect("order exists");
    assert_eq!(decision.events.len(), 2);
    s.apply("o1", &paid).await.expect("duplicate is a no-op");
    let order = s.load("o1").await.expect("query").expect("exists");
    assert_eq!((order.status(), order.version), (OrderStatus::Confirmed, 5));
    assert!(s.apply("nope", &paid).await.expect("query").is_none());

    // Only the pending order is overdue.
    assert_eq!(s.overdue(i64::MAX, 10).await.expect("query"), ["o2"]);
    // A late payment for a timed-out order is recorded and refunded once.
    s.apply("o2", &SagaInput::TimedOut).await.expect("applies");
    assert!(s.overdue(i64::MAX, 10).await.expect("query").is_empty());
    let late = SagaInput::PaymentSucceeded {
        charge_id: "ch2".into(),
    };
    let first = s
        .apply("o2", &late)
        .await
        .expect("applies")
        .expect("exists");
    assert_eq!(
        first.compensations(),
        [Compensation::Refund {
            charge_id: "ch2".into(),
            amount_cents: 1000
        }]
    );
    let second = s
        .apply("o2", &late)
        .await
        .expect("applies")
        .expect("exists");
    assert!(second.compensations().is_empty());

    // Two writers deciding from the same version: the second is told to reload.
    let stale = s.load("o2").await.expect("query").expect("exists");
    let cancel = OrderEvent::OrderCancelled {
        order_id: "o2".into(),
        reason: "x".into(),
    };
    s.append("o2", stale.version - 1, std::slice::from_ref(&cancel))
        .await
        .expect_err("version taken");
    assert!(matches!(
        s.append("o2", stale.version - 1, &[cancel]).await,
        Err(PgOrdersError::Concurrent(_))
    ));

    // The outbox holds what others must hear, once each, with stable message ids.
    let (tx, messages) = s.claim_outbox(100).await.expect("claims");
    let ids: Vec<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "o1:OrderCreated",
            "o2:OrderCreated",
            "o1:StockReserved",
            "o1:OrderConfirmed",
            "o2:OrderCancelled",
            "o2:RefundRequested"
        ]
    );
    assert_eq!(messages[3].subject, "orders.OrderConfirmed");
    let published: Vec<i64> = messages.iter().map(|m| m.id).collect();
    PgOrders::mark_published(tx, &published)
        .await
        .expect("marks");
    let (_tx, rest) = s.claim_outbox(100).await.expect("claims");
    assert!(rest.is_empty());
}

#[tokio::test]
async fn a_users_orders_list_newest_first() {
    let s = store().await;
    for (i, at) in [(1, 300), (2, 100), (3, 200)] {
        let body = fingerprint(&format!(
            r#"{{"items":[{{"sku":"SKU-A","quantity":{i}}}]}}"#
        ));
        s.create(&format!("k{i}"), &body, created(&format!("o{i}"), "u1", at))
            .await
            .expect("creates");
    }
    let body = fingerprint(r#"{"items":[{"sku":"SKU-B","quantity":1}]}"#);
    s.create("k9", &body, created("o9", "u2", 999))
        .await
        .expect("creates");
    let ids: Vec<String> = s
        .list("u1", 10)
        .await
        .expect("lists")
        .into_iter()
        .map(|o| o.order_id)
        .collect();
    assert_eq!(ids, ["o1", "o3", "o2"]);
    assert_eq!(s.list("u1", 1).await.expect("lists").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_cannot_hold_more_pending_orders_than_the_cap() {
    const CAP: u32 = 3;
    let s = store().await.with_pending_cap(CAP);
    let body = fingerprint(r#"{"items":[{"sku":"SKU-A","quantity":2}]}"#);

    // Twelve orders at once from one user, each with its own key: exactly CAP get through.
    let tries: Vec<_> = (0..12)
        .map(|i| {
            let (s, body) = (s.clone(), body.clone());
            tokio::spawn(async move {
                let id = format!("o{i}");
                let answer = s
                    .create(&format!("k{i}"), &body, created(&id, "u1", 100 + i))
                    .await
                    .expect("answers");
                (id, answer)
            })
        })
        .collect();
    let (mut new, mut refused) = (Vec::new(), Vec::new());
    for t in tries {
        match t.await.expect("joins") {
            (_, Created::New(order)) => new.push(order.order_id),
            (id, Created::TooManyPending { pending, cap }) => {
                assert_eq!((pending, cap), (i64::from(CAP), CAP));
                refused.push(id);
            }
            (_, other) => panic!("{other:?}"),
        }
    }
    assert_eq!(new.len(), CAP as usize, "{new:?}");
    // A refused order wrote nothing.
    for id in &refused {
        assert!(s.load(id).await.expect("query").is_none(), "{id}");
    }
    // A replay of an accepted key still answers, cap or not.
    let first = new[0].trim_start_matches('o').to_string();
    assert!(matches!(
        s.create(&format!("k{first}"), &body, created("again", "u1", 200)).await.expect("answers"),
        Created::Replay(ref o) if o.order_id == new[0]
    ));
    // Another user is not affected.
    assert!(matches!(
        s.create("k0", &body, created("other-user", "u2", 201))
            .await
            .expect("answers"),
        Created::New(_)
    ));

    // One pending order ends (payment failed: cancelled), and the user may order again.
    for input in [
        SagaInput::StockHeld {
            shard: 0,
            shards: 1,
        },
        SagaInput::PaymentFailed {
            reason: "declined".into(),
        },
    ] {
        s.apply(&new[0], &input).await.expect("applies");
    }
    assert_eq!(
        s.load(&new[0])
            .await
            .expect("query")
            .expect("exists")
            .status(),
        OrderStatus::Cancelled
    );
    assert!(matches!(
        s.create("k-late", &body, created("late", "u1", 300))
            .await
            .expect("answers"),
        Created::New(_)
    ));
    assert!(matches!(
        s.create("k-later", &body, created("later", "u1", 301))
            .await
            .expect("answers"),
        Created::TooManyPending {
            pending: 3,
            cap: CAP
        }
    ));
}

/// An `OrderCreated` of `user` at `at` (unix seconds) with `lines` of `(sku, quantity)`.
fn order_of(order_id: &str, user: &str, at: i64, lines: &[(&str, u32)]) -> OrderEvent {
    OrderEvent::OrderCreated {
        order_id: order_id.into(),
        user_id: user.into(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| Line {
                sku: sku.to_string(),
                quantity: *quantity,
                unit_price_cents: 100,
            })
            .collect(),
        total_cents: lines.iter().map(|(_, q)| i64::from(*q) * 100).sum(),
        currency: "USD".into(),
        created_at: at,
    }
}

/// The fingerprint of the public body with `lines`.
fn body_of(lines: &[(&str, u32)]) -> Fingerprint {
    let items: Vec<String> = lines
        .iter()
        .map(|(sku, q)| format!(r#"{{"sku":"{sku}","quantity":{q}}}"#))
        .collect();
    fingerprint(&format!(r#"{{"items":[{}]}}"#, items.join(",")))
}

/// The sale `bf` from `SINCE`: 2 of SKU-1 per customer.
const SINCE: i64 = 1_000;

fn bf() -> Vec<SaleLimit> {
    vec![SaleLimit {
        sale: "bf".into(),
        since: SINCE,
        units_per_customer: 2,
        skus: vec!["SKU-1".into()],
    }]
}

/// Creates `lines` for `user` under key `key` within the caps `limits`.
async fn place(
    s: &PgOrders,
    limits: &[SaleLimit],
    user: &str,
    key: &str,
    at: i64,
    lines: &[(&str, u32)],
) -> Created {
    s.create_under(
        key,
        &body_of(lines),
        order_of(&format!("o-{user}-{key}"), user, at, lines),
        limits,
    )
    .await
    .expect("answers")
}

fn over(already: i64, requested: u32) -> Created {
    Created::OverSaleLimit(OverSaleLimit {
        sale: "bf".into(),
        sku: "SKU-1".into(),
        cap: 2,
        already,
        requested,
    })
}

#[tokio::test]
async fn a_customer_cannot_buy_more_units_of_a_sku_than_the_sales_cap() {
    let s = store().await;
    let limits = bf();
    // Before the window opened: not counted.
    assert!(matches!(
        place(&s, &[], "u1", "early", SINCE - 1, &[("SKU-1", 2)]).await,
        Created::New(_)
    ));
    // 1 + 1 pass (the second with another SKU beside it); the third unit is refused.
    assert!(matches!(
        place(&s, &limits, "u1", "k1", SINCE, &[("SKU-1", 1)]).await,
        Created::New(_)
    ));
    assert!(matches!(
        place(
            &s,
            &limits,
            "u1",
            "k2",
            SINCE + 1,
            &[("SKU-2", 5), ("SKU-1", 1)]
        )
        .await,
        Created::New(_)
    ));
    let refused = place(&s, &limits, "u1", "k3", SINCE + 2, &[("SKU-1", 1)]).await;
    assert_eq!(refused, over(2, 1));
    // Nothing of it was written, and its key is still free.
    assert!(s.load("o-u1-k3").await.expect("query").is_none());
    let Created::New(_) = place(&s, &limits, "u1", "k3", SINCE + 3, &[("SKU-2", 1)]).await else {
        panic!("the refused key is free, and another SKU is not capped");
    };
    // One order asking for more than the cap at once, from a fresh customer.
    assert_eq!(
        place(&s, &limits, "u2", "k1", SINCE, &[("SKU-1", 3)]).await,
        over(0, 3)
    );
    // Another customer has a cap of their own.
    assert!(matches!(
        place(&s, &limits, "u2", "k2", SINCE, &[("SKU-1", 2)]).await,
        Created::New(_)
    ));
    // A replay of an accepted key still answers with its order, cap or not.
    let Created::Replay(order) = place(&s, &limits, "u1", "k1", SINCE + 9, &[("SKU-1", 1)]).await
    else {
        panic!("a replay");
    };
    assert_eq!(order.order_id, "o-u1-k1");

    // A cancelled order frees its units: o-u1-k1 fails payment.
    for input in [
        SagaInput::StockHeld {
            shard: 0,
            shards: 1,
        },
        SagaInput::PaymentFailed {
            reason: "declined".into(),
        },
    ] {
        s.apply("o-u1-k1", &input).await.expect("applies");
    }
    assert!(matches!(
        place(&s, &limits, "u1", "k4", SINCE + 10, &[("SKU-1", 1)]).await,
        Created::New(_)
    ));
    assert_eq!(
        place(&s, &limits, "u1", "k5", SINCE + 11, &[("SKU-1", 1)]).await,
        over(2, 1)
    );
    // A cap on every SKU (no list) counts SKU-2 too: 5 + 1 held, 6 allowed, the 7th not.
    let every = [SaleLimit {
        sale: "every".into(),
        since: SINCE,
        units_per_customer: 6,
        skus: vec![],
    }];
    let Created::OverSaleLimit(o) =
        place(&s, &every, "u1", "k6", SINCE + 12, &[("SKU-2", 1)]).await
    else {
        panic!("SKU-2 is capped too");
    };
    assert_eq!(
        (o.sale.as_str(), o.sku.as_str(), o.already),
        ("every", "SKU-2", 6)
    );
    // Without caps (the sale is over), the customer orders as much as they like.
    assert!(matches!(
        place(&s, &[], "u1", "k7", SINCE + 13, &[("SKU-1", 9)]).await,
        Created::New(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_orders_cannot_both_pass_a_sales_cap() {
    let s = store().await;
    // Ten orders of one unit at once from one customer, with a cap of 2: exactly 2 pass.
    let tries: Vec<_> = (0..10)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                place(
                    &s,
                    &bf(),
                    "u1",
                    &format!("k{i}"),
                    SINCE + i,
                    &[("SKU-1", 1)],
                )
                .await
            })
        })
        .collect();
    let mut new = 0;
    for t in tries {
        match t.await.expect("joins") {
            Created::New(_) => new += 1,
            Created::OverSaleLimit(o) => assert_eq!((o.already, o.cap), (2, 2)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(new, 2);
    assert_eq!(s.list("u1", 50).await.expect("lists").len(), 2);
}
