//! Orders over a real gRPC socket on a real PostgreSQL: create with an Idempotency-Key
//! (replay, conflict), owner-only reads, newest-first lists, a sale's per-customer cap, bad
//! input, service tokens.
//!
//! Needs `DATABASE_URL` (run by `workloads/scripts/integration`):
//! `workloads/scripts/test-datastores up && eval "$(workloads/scripts/test-datastores env)"`.

use std::sync::Arc;

use sqlx::AssertSqlSafe;
use storefront_workloads::{
    auth::domain::{SigningKeys, TokenIssuer},
    grpc::ServiceTokenAttacher,
    orders::{
        grpc::{SERVICE, serve},
        postgres::PgOrders,
    },
    proto::orders::{
        CreateOrderRequest, GetOrderRequest, ListOrdersRequest, OrderLine, OrderStatus, SaleLimit,
        orders_client::OrdersClient,
    },
};
use tokio::{net::TcpListener, sync::oneshot};
use tonic::{Code, transport::Channel};

fn create(user: &str, key: &str, lines: &[(&str, u32, i64)]) -> CreateOrderRequest {
    CreateOrderRequest {
        user_id: user.into(),
        idempotency_key: key.into(),
        lines: lines
            .iter()
            .map(|(sku, quantity, price)| OrderLine {
                sku: sku.to_string(),
                quantity: *quantity,
                unit_price_cents: *price,
            })
            .collect(),
        sale_limits: vec![],
    }
}

#[tokio::test]
async fn orders_answer_over_grpc() {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL is not set: run workloads/scripts/test-datastores up and eval its env")
    });
    let schema = format!("it_orders_grpc_{}", std::process::id());
    let store = PgOrders::connect(&url, &schema, 4).await.expect("connects");
    sqlx::query(AssertSqlSafe(format!(
        r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#
    )))
    .execute(store.pool())
    .await
    .expect("clean schema");
    store.migrate().await.expect("migrates");

    let issuer = Arc::new(TokenIssuer::new(
        SigningKeys::from_seed([8; 32]).expect("key"),
        "shop",
        60,
        60,
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        Arc::new(store),
        Arc::new(issuer.verifier()),
        async {
            let _ = stopped.await;
        },
    ));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    let mut c = OrdersClient::with_interceptor(
        channel.clone(),
        ServiceTokenAttacher::new(issuer, "gateway", SERVICE),
    );

    let first = c
        .create_order(create("u1", "k1", &[("SKU-A", 2, 500), ("SKU-B", 1, 250)]))
        .await
        .expect("creates")
        .into_inner();
    assert_eq!(
        (first.status(), first.total_cents, first.currency.as_str()),
        (OrderStatus::Pending, 1250, "USD")
    );
    // The text form is still sent for gateways older than the enum (a rolling upgrade).
    #[allow(deprecated)]
    let legacy = first.legacy_status.as_str();
    assert_eq!(legacy, "PENDING");
    let replay = c
        .create_order(create("u1", "k1", &[("SKU-A", 2, 500), ("SKU-B", 1, 250)]))
        .await
        .expect("replays")
        .into_inner();
    assert_eq!(
        replay.order_id, first.order_id,
        "same key, same body: same order"
    );
    let err = c
        .create_order(create("u1", "k1", &[("SKU-A", 3, 500)]))
        .await
        .expect_err("conflict");
    assert_eq!(err.code(), Code::AlreadyExists);
    let second = c
        .create_order(create("u1", "k2", &[("SKU-C", 1, 999)]))
        .await
        .expect("creates")
        .into_inner();

    let got = c
        .get_order(GetOrderRequest {
            order_id: first.order_id.clone(),
            user_id: "u1".into(),
        })
        .await
        .expect("owner reads")
        .into_inner();
    assert_eq!(got.lines.len(), 2);
    let err = c
        .get_order(GetOrderRequest {
            order_id: first.order_id.clone(),
            user_id: "u2".into(),
        })
        .await
        .expect_err("not yours");
    assert_eq!(err.code(), Code::NotFound);

    let list = c
        .list_orders(ListOrdersRequest {
            user_id: "u1".into(),
            limit: 0,
        })
        .await
        .expect("lists")
        .into_inner();
    let ids: Vec<&str> = list.orders.iter().map(|o| o.order_id.as_str()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&first.order_id.as_str()) && ids.contains(&second.order_id.as_str()));

    for bad in [
        create("u1", "", &[("SKU-A", 1, 100)]),
        create("u1", "k3", &[]),
        create("u1", "k3", &[("SKU-A", 0, 100)]),
        create("u1", "k3", &[("SKU-A", 1, 0)]),
        create("u1", "k3", &[("bad sku", 1, 100)]),
        create("u1", "k3", &[("SKU-A", 1000, i64::MAX)]),
        create("", "k3", &[("SKU-A", 1, 100)]),
    ] {
        let err = c.create_order(bad.clone()).await.expect_err("invalid");
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{bad:?}: {}",
            err.message()
        );
    }

    // A sale's cap: 1 of SKU-A per customer since the epoch; u1 already has 2 (refused whole,
    // in words for the shopper), u9 may buy 1.
    let capped = |user: &str, key: &str, units_per_customer: u32| {
        let mut r = create(user, key, &[("SKU-A", 1, 500)]);
        r.sale_limits = vec![SaleLimit {
            sale: "bf".into(),
            since_unix: 0,
            units_per_customer,
            skus: vec!["SKU-A".into()],
        }];
        r
    };
    let err = c
        .create_order(capped("u1", "k-cap", 1))
        .await
        .expect_err("over the cap");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        err.message(),
        "at most 1 of SKU-A per customer during sale bf; you have 2 already and this order asks for 1"
    );
    c.create_order(capped("u9", "k-cap", 1))
        .await
        .expect("within the cap");
    let err = c
        .create_order(capped("u9", "k-zero", 0))
        .await
        .expect_err("a cap of 0");
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());

    let err = OrdersClient::new(channel)
        .list_orders(ListOrdersRequest {
            user_id: "u1".into(),
            limit: 1,
        })
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);

    stop.send(()).expect("server running");
    server.await.expect("joins").expect("drains cleanly");
}
