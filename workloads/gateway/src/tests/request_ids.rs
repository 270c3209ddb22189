//! Request ids and what a failing upstream's words become, on real sockets: every answer
//! has an `X-Request-Id` (the client's when valid, else a new one), an error body repeats it
//! as `requestId`, the upstream gets it as `x-request-id` metadata, and a 5xx says which
//! service failed and what to do, never what the service said about its internals.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use super::{error_code, issuer, send, serve};
use crate::{
    Gateway,
    resilience::guard::AllowAll,
    routing::table::{RouteTable, Snapshot},
    upstream::Deadlines,
};
use storefront_contracts::{
    api::{MAX_REQUEST_ID_LEN, REQUEST_ID_HEADER},
    proto::orders::{
        CreateOrderRequest, GetOrderRequest, ListOrdersRequest, ListOrdersResponse, Order,
        orders_server::{Orders, OrdersServer},
    },
};
use storefront_platform::grpc::unix_now;

/// What the failing orders fake says, as a PostgreSQL-backed service used to.
const INTERNALS: &str =
    "failed to query PostgreSQL: password authentication failed for user postgres";

/// An orders server that fails every call with `status`, and keeps the `x-request-id` of
/// each call it got.
struct FailingOrders {
    status: fn() -> Status,
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

impl FailingOrders {
    fn fail<T, M>(&self, request: &Request<M>) -> Result<Response<T>, Status> {
        let id = request
            .metadata()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(id);
        }
        Err((self.status)())
    }
}

#[tonic::async_trait]
impl Orders for FailingOrders {
    async fn create_order(
        &self,
        request: Request<CreateOrderRequest>,
    ) -> Result<Response<Order>, Status> {
        self.fail(&request)
    }
    async fn get_order(
        &self,
        request: Request<GetOrderRequest>,
    ) -> Result<Response<Order>, Status> {
        self.fail(&request)
    }
    async fn list_orders(
        &self,
        request: Request<ListOrdersRequest>,
    ) -> Result<Response<ListOrdersResponse>, Status> {
        self.fail(&request)
    }
}

/// The gateway in front of a [`FailingOrders`] answering `status`: its address, a Bearer
/// header value, and the ids the fake was sent.
async fn gateway_before(
    status: fn() -> Status,
) -> (
    std::net::SocketAddr,
    String,
    Arc<Mutex<Vec<Option<String>>>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let upstream = listener.local_addr().expect("addr");
    let seen = Arc::default();
    let orders = FailingOrders {
        status,
        seen: Arc::clone(&seen),
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(OrdersServer::new(orders))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let table = RouteTable::parse(&format!(
        r#"{{"storefront": "shop", "routes": [{{"service": "orders", "upstream": "{upstream}"}}]}}"#
    ))
    .expect("table");
    let issuer = issuer(9);
    let token = issuer
        .issue_user("u1", "a@b.c", unix_now())
        .expect("token")
        .token;
    let gateway = Gateway::new(issuer, Arc::new(AllowAll), Deadlines::default());
    let addr = serve(
        gateway,
        Snapshot {
            table,
            rings: Default::default(),
        },
    )
    .await;
    (addr, format!("Bearer {token}"), seen)
}

/// The `X-Request-Id` of a (lower-cased) response head.
fn request_id(head: &str) -> Option<&str> {
    head.lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .map(str::trim)
}

/// The text of an error body, for "does not contain".
fn text(json: &Value) -> String {
    json.to_string().to_ascii_lowercase()
}

#[tokio::test]
async fn every_answer_has_an_id_the_clients_when_valid() {
    let (addr, bearer, _) = gateway_before(|| Status::unavailable(INTERNALS)).await;
    // A 2xx (the API document calls nothing) has one too, made here: a UUIDv4.
    let (status, head, _) = send(addr, "GET", "/api/v1/openapi.json", &[], "").await;
    assert_eq!(status, 200);
    let made = request_id(&head).expect("an id on a 200");
    assert_eq!(
        (made.len(), made.as_bytes().get(14)),
        (36, Some(&b'4')),
        "{made}"
    );
    let (_, again, _) = send(addr, "GET", "/api/v1/openapi.json", &[], "").await;
    assert_ne!(request_id(&again), Some(made), "one id per request");

    // A valid id is the request's: echoed in the header and in an error body.
    let (status, head, json) = send(
        addr,
        "GET",
        "/api/v1/nothing",
        &[("x-request-id", "client-trace:42/a")],
        "",
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(request_id(&head), Some("client-trace:42/a"), "{head}");
    assert_eq!(json["error"]["requestId"], "client-trace:42/a", "{json}");

    // Invalid ones (a space, over the length) are replaced, never echoed.
    let long = "x".repeat(MAX_REQUEST_ID_LEN + 1);
    for bad in ["has a space", long.as_str()] {
        let (_, head, json) = send(
            addr,
            "GET",
            "/api/v1/orders",
            &[("authorization", bearer.as_str()), ("x-request-id", bad)],
            "",
        )
        .await;
        let id = request_id(&head).expect("an id");
        assert_ne!(id, bad.to_ascii_lowercase());
        assert_eq!(id.len(), 36, "a new UUID: {id}");
        assert_eq!(json["error"]["requestId"], id, "{json}");
    }
    // The longest valid one is kept.
    let longest = "y".repeat(MAX_REQUEST_ID_LEN);
    let (_, head, _) = send(
        addr,
        "GET",
        "/api/v1/openapi.json",
        &[("x-request-id", longest.as_str())],
        "",
    )
    .await;
    assert_eq!(request_id(&head), Some(longest.as_str()));
}

#[tokio::test]
async fn an_upstreams_internals_stay_out_of_the_body_and_its_id_reaches_it() {
    let (addr, bearer, sent) = gateway_before(|| Status::unavailable(INTERNALS)).await;
    let (status, head, json) = send(
        addr,
        "GET",
        "/api/v1/orders/o-1",
        &[("authorization", bearer.as_str())],
        "",
    )
    .await;
    assert_eq!(
        (status, error_code(&json)),
        (503, "service_unavailable"),
        "{json}"
    );
    let body = text(&json);
    assert!(
        !body.contains("postgresql") && !body.contains("password"),
        "internal text in the body: {json}"
    );
    assert_eq!(
        json["error"]["message"],
        "the orders service is unavailable; retry shortly"
    );
    let id = request_id(&head).expect("an id");
    assert_eq!(json["error"]["requestId"], id, "{json}");
    // UNAVAILABLE on a read is retried: every attempt carried the same id.
    let seen = sent.lock().expect("lock").clone();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|s| s.as_deref() == Some(id)),
        "the upstream got {seen:?}, the client {id}"
    );

    // The client's own id is the one the upstream gets.
    let (_, head, _) = send(
        addr,
        "GET",
        "/api/v1/orders",
        &[("authorization", bearer.as_str()), ("x-request-id", "r-77")],
        "",
    )
    .await;
    assert_eq!(request_id(&head), Some("r-77"));
    let later = sent.lock().expect("lock")[seen.len()..].to_vec();
    assert!(
        !later.is_empty() && later.iter().all(|s| s.as_deref() == Some("r-77")),
        "{later:?}"
    );
}

#[tokio::test]
async fn a_failing_service_is_named_with_what_to_do_never_quoted() {
    type Case = (fn() -> Status, u16, &'static str, &'static str);
    let cases: [Case; 4] = [
        (
            || Status::internal(INTERNALS),
            500,
            "internal",
            "the orders service failed; if it persists, report the request id",
        ),
        (
            || Status::failed_precondition(format!("{INTERNALS} at ring epoch 7")),
            503,
            "service_unavailable",
            "the orders service is being resharded; retry shortly",
        ),
        (
            || Status::unauthenticated(format!("service token refused: {INTERNALS}")),
            503,
            "service_unavailable",
            "the orders service is unavailable; retry shortly",
        ),
        (
            || Status::unknown(INTERNALS),
            503,
            "service_unavailable",
            "the orders service is unavailable; retry shortly",
        ),
    ];
    for (status, want, code, message) in cases {
        let (addr, bearer, sent) = gateway_before(status).await;
        let (got, head, json) = send(
            addr,
            "GET",
            "/api/v1/orders/o-1",
            &[("authorization", bearer.as_str())],
            "",
        )
        .await;
        assert_eq!((got, error_code(&json)), (want, code), "{json}");
        assert_eq!(json["error"]["message"], message, "{json}");
        let body = text(&json);
        assert!(
            !body.contains("postgresql") && !body.contains("password") && !body.contains("epoch"),
            "{json}"
        );
        let id = request_id(&head).expect("id");
        assert_eq!(json["error"]["requestId"], id);
        assert_eq!(
            sent.lock().expect("lock").as_slice(),
            [Some(id.to_string())],
            "not retried, and the call carried the id"
        );
    }
}
