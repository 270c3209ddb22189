//! What a shopper sees when a service's database fails, and what the logs keep: the gateway
//! in front of a real orders service whose PostgreSQL schema has no tables (the driver's
//! error names a relation). The answer is a 503 in the gateway's words with the request id;
//! the driver's words are in the orders service's log line and the gateway's, each with
//! that id, and in neither the body nor the gRPC status.
//!
//! Needs `DATABASE_URL` (`workloads/scripts/test-datastores up` and its env).

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use storefront_workloads::{
    auth::domain::{SigningKeys, TokenIssuer},
    gateway::{
        Gateway,
        resilience::guard::AllowAll,
        routing::table::{RouteTable, Snapshot},
        test_client::send,
        upstream::Deadlines,
    },
    grpc::{ServiceTokenAttacher, unix_now},
    orders::{self, postgres::PgOrders},
    proto::orders::{GetOrderRequest, orders_client::OrdersClient},
};
use tokio::net::TcpListener;
use tonic::{Code, transport::Channel};

use crate::gateway_support::clean;

/// Log lines written while a test runs, for assertions.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Lines of `logs` that contain every one of `words`.
fn lines_with<'a>(logs: &'a str, words: &[&str]) -> Vec<&'a str> {
    logs.lines()
        .filter(|l| words.iter().all(|w| l.contains(w)))
        .collect()
}

// Current-thread runtime: the servers' tasks run on this thread, under its log subscriber.
#[tokio::test]
async fn a_database_failure_is_a_503_with_an_id_and_its_cause_only_in_the_logs() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL is not set: run workloads/scripts/test-datastores up and eval its env")
    });
    // A schema with no tables: every query fails in the driver, naming what it missed.
    let schema = format!("it_error_bodies_{}", std::process::id());
    let store = PgOrders::connect(&url, &schema, 2).await.expect("connects");
    clean(store.pool(), &schema).await;

    let issuer = Arc::new(TokenIssuer::new(
        SigningKeys::from_seed([31; 32]).expect("key"),
        "shop",
        600,
        60,
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let orders_addr = listener.local_addr().expect("addr");
    tokio::spawn(orders::grpc::serve(
        listener,
        Arc::new(store),
        Arc::new(issuer.verifier()),
        std::future::pending(),
    ));

    // The service alone: a short stable status, whatever the driver said.
    let channel = Channel::from_shared(format!("http://{orders_addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    let mut client = OrdersClient::with_interceptor(
        channel,
        ServiceTokenAttacher::new(Arc::clone(&issuer), "gateway", orders::grpc::SERVICE),
    );
    let mut request = tonic::Request::new(GetOrderRequest {
        order_id: "o-1".into(),
        user_id: "u1".into(),
    });
    request
        .metadata_mut()
        .insert("x-request-id", "direct-1".parse().expect("metadata"));
    let status = client.get_order(request).await.expect_err("no tables");
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unavailable, "the orders store is unavailable")
    );

    // Through the gateway.
    let table = RouteTable::parse(&format!(
        r#"{{"storefront": "shop", "routes": [{{"service": "orders", "upstream": "{orders_addr}"}}]}}"#
    ))
    .expect("table");
    let gateway = Gateway::new(
        Arc::clone(&issuer),
        Arc::new(AllowAll),
        Deadlines::default(),
    );
    gateway
        .apply(Snapshot {
            table,
            rings: Default::default(),
        })
        .expect("applies");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let gateway_addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, gateway.router()).await });
    let token = issuer
        .issue_user("u1", "a@b.c", unix_now())
        .expect("token")
        .token;
    let bearer = format!("Bearer {token}");
    let (status, head, json) = send(
        gateway_addr,
        "GET",
        "/api/v1/orders/o-1",
        &[
            ("authorization", &bearer),
            ("x-request-id", "shopper-report-7"),
        ],
        "",
    )
    .await;
    assert_eq!(status, 503, "{json}");
    assert!(head.contains("x-request-id: shopper-report-7"), "{head}");
    assert_eq!(
        json,
        serde_json::json!({"error": {"code": "service_unavailable",
            "message": "the orders service is unavailable; retry shortly",
            "requestId": "shopper-report-7"}})
    );

    // The cause, with the id, in each service's log line; the driver named the relation.
    let logs = logs.text();
    let cause = "does not exist";
    let direct = lines_with(
        &logs,
        &["direct-1", "the orders store is unavailable", cause],
    );
    assert_eq!(
        direct.len(),
        1,
        "the orders line of the direct call:\n{logs}"
    );
    let orders_lines = lines_with(
        &logs,
        &["shopper-report-7", "the orders store is unavailable", cause],
    );
    assert!(
        !orders_lines.is_empty(),
        "the orders service's line has the shopper's id:\n{logs}"
    );
    let gateway_lines = lines_with(
        &logs,
        &["shopper-report-7", "a call to the orders service failed"],
    );
    assert!(
        !gateway_lines.is_empty(),
        "the gateway's line has the shopper's id:\n{logs}"
    );
}
