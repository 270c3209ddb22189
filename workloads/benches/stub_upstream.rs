//! Not a measurement: the trivial upstream of the gateway benchmarks (tests/e2e/bench/gateway
//! and ratelimit), built with the bench profile so the scripts need no binary of their own.
//!
//! - `serve ADDR`: a gRPC `Orders` service (plaintext HTTP/2, as the gateway calls it without
//!   mutual TLS) whose `GetOrder` answers one fixed order at once, with no storage — the
//!   cheapest upstream the gateway's JSON → gRPC path can have; it does not check the
//!   gateway's service token.
//! - `token DIR STOREFRONT`: writes `DIR/private.pem` (an Ed25519 key, as the gateway's
//!   `--jwt-keys-dir` wants) and prints a user token for it, valid for a day.
//!
//! Under `cargo bench` / `cargo test` (no subcommand) it prints a note and exits.
//!
//! `cargo bench -p storefront-workloads --bench stub_upstream --no-run` builds it.

use std::{net::SocketAddr, pin::Pin};

use storefront_workloads::{
    auth::domain::{SigningKeys, TokenIssuer},
    proto::orders::{
        CreateOrderRequest, GetOrderRequest, ListOrdersRequest, ListOrdersResponse, Order,
        OrderLine, OrderStatus,
        orders_server::{Orders, OrdersServer},
    },
};
use tonic::{Request, Response, Status};

struct Stub;

fn order(id: String, user: String) -> Order {
    #[allow(deprecated)] // what orders sends: the enum and its text for older gateways
    Order {
        order_id: id,
        user_id: user,
        status: OrderStatus::Confirmed.into(),
        legacy_status: "CONFIRMED".into(),
        lines: vec![OrderLine {
            sku: "SKU-0001-000001".into(),
            quantity: 2,
            ..Default::default()
        }],
        total_cents: 4_598,
        currency: "EUR".into(),
        reason: String::new(),
        created_at: 1_795_746_832,
    }
}

#[tonic::async_trait]
impl Orders for Stub {
    async fn create_order(
        &self,
        _request: Request<CreateOrderRequest>,
    ) -> Result<Response<Order>, Status> {
        Err(Status::unimplemented("the stub only reads"))
    }

    async fn get_order(
        &self,
        request: Request<GetOrderRequest>,
    ) -> Result<Response<Order>, Status> {
        let r = request.into_inner();
        Ok(Response::new(order(r.order_id, r.user_id)))
    }

    async fn list_orders(
        &self,
        request: Request<ListOrdersRequest>,
    ) -> Result<Response<ListOrdersResponse>, Status> {
        let r = request.into_inner();
        Ok(Response::new(ListOrdersResponse {
            orders: vec![order("o-1".into(), r.user_id)],
        }))
    }
}

type Main = Pin<Box<dyn std::future::Future<Output = Result<(), String>>>>;

fn serve(addr: SocketAddr) -> Main {
    Box::pin(async move {
        tonic::transport::Server::builder()
            .add_service(OrdersServer::new(Stub))
            .serve(addr)
            .await
            .map_err(|e| format!("serve {addr}: {e}"))
    })
}

fn token(dir: &str, storefront: &str) -> Result<(), String> {
    let seed = [7u8; 32];
    let pem = SigningKeys::seed_to_pkcs8_pem(seed).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{dir}: {e}"))?;
    std::fs::write(format!("{dir}/private.pem"), pem).map_err(|e| format!("{dir}: {e}"))?;
    let keys = SigningKeys::from_seed(seed).map_err(|e| e.to_string())?;
    let issuer = TokenIssuer::new(keys, storefront, 86_400, 60);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let t = issuer
        .issue_user("bench-user", "bench@example.com", now)
        .map_err(|e| e.to_string())?;
    println!("{}", t.token);
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["serve", addr] => match addr.parse::<SocketAddr>() {
            Ok(addr) => tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|rt| rt.block_on(serve(addr))),
            Err(e) => Err(format!("{addr}: {e}")),
        },
        ["token", dir, storefront] => token(dir, storefront),
        _ => {
            println!(
                "stub_upstream: not a measurement (see tests/e2e/bench/gateway); usage: serve ADDR | token DIR STOREFRONT"
            );
            Ok(())
        }
    };
    if let Err(e) = result {
        eprintln!("stub_upstream: {e}");
        std::process::exit(1);
    }
}
