//! An inventory shard over a real gRPC socket on loopback (memory store): reservations,
//! idempotency, ring ownership and epoch checks, bad input, the service-token check, and
//! concurrent orders for a hot SKU that never oversell.

use std::sync::Arc;

use storefront_crds::ring::shard_of;
use storefront_workloads::{
    auth::domain::{SigningKeys, TokenIssuer},
    grpc::ServiceTokenAttacher,
    inventory::{
        grpc::{SERVICE, serve},
        memory::MemoryStock,
        ports::ShardPlace,
    },
    proto::inventory::{
        CommitRequest, GetStockRequest, Line, ReleaseRequest, ReserveRequest,
        inventory_client::InventoryClient,
    },
};
use tokio::{net::TcpListener, sync::oneshot};
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel};

type Client = InventoryClient<InterceptedService<Channel, ServiceTokenAttacher>>;

const PLACE: ShardPlace = ShardPlace {
    index: 0,
    count: 2,
    epoch: 3,
};

/// SKUs owned by shard `index` of 2.
fn skus_of(index: u32, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("SKU-0001-{i:06}"))
        .filter(|sku| shard_of(sku, PLACE.count) == index)
        .take(n)
        .collect()
}

fn reserve(order: &str, lines: &[(&str, u32)], epoch: i64) -> ReserveRequest {
    ReserveRequest {
        order_id: order.into(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| Line {
                sku: sku.to_string(),
                quantity: *quantity,
            })
            .collect(),
        ring_epoch: epoch,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_reserves_over_grpc_and_never_oversells() {
    let mine = skus_of(0, 3);
    let theirs = skus_of(1, 1);
    let (a, b, hot) = (mine[0].as_str(), mine[1].as_str(), mine[2].as_str());
    let store = Arc::new(MemoryStock::default());
    {
        let mut inv = store.0.lock().await;
        inv.set_stock(a, 5).expect("stock");
        inv.set_stock(b, 1).expect("stock");
        inv.set_stock(hot, 10).expect("stock");
    }
    let issuer = Arc::new(TokenIssuer::new(
        SigningKeys::from_seed([4; 32]).expect("key"),
        "shop",
        60,
        60,
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        store,
        PLACE,
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
    let client: Client = InventoryClient::with_interceptor(
        channel.clone(),
        ServiceTokenAttacher::new(issuer.clone(), "orders", SERVICE),
    );
    let mut c = client.clone();
    // The gateway reads stock; only orders moves it (inventory::grpc::callers).
    let mut reader: Client = InventoryClient::with_interceptor(
        channel.clone(),
        ServiceTokenAttacher::new(issuer.clone(), "gateway", SERVICE),
    );
    let denied = reader
        .reserve(reserve("o0", &[(a, 1)], 3))
        .await
        .expect_err("the gateway may not reserve");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let denied = c
        .get_stock(GetStockRequest { sku: a.into() })
        .await
        .expect_err("orders may not read stock over gRPC");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");

    let ok = c
        .reserve(reserve("o1", &[(a, 2), (b, 1)], 3))
        .await
        .expect("reserve")
        .into_inner();
    assert!(ok.reserved, "{ok:?}");
    let again = c
        .reserve(reserve("o1", &[(a, 2), (b, 1)], 0))
        .await
        .expect("reserve")
        .into_inner();
    assert!(again.reserved);
    let short = c
        .reserve(reserve("o2", &[(a, 1), (b, 1)], 3))
        .await
        .expect("reserve")
        .into_inner();
    assert!(!short.reserved);
    assert_eq!(short.sku, b);
    assert!(
        short.reason.contains("1 requested, 0 available"),
        "{}",
        short.reason
    );
    let stock = reader
        .get_stock(GetStockRequest { sku: a.into() })
        .await
        .expect("stock")
        .into_inner();
    assert_eq!((stock.stock, stock.reserved, stock.available), (5, 2, 3));

    assert!(
        c.release(ReleaseRequest {
            order_id: "o1".into()
        })
        .await
        .expect("release")
        .into_inner()
        .released
    );
    assert!(
        !c.release(ReleaseRequest {
            order_id: "o1".into()
        })
        .await
        .expect("release")
        .into_inner()
        .released
    );
    assert!(
        !c.commit(CommitRequest {
            order_id: "o1".into()
        })
        .await
        .expect("commit")
        .into_inner()
        .committed
    );

    // Keys of another shard, a stale epoch, bad input: refused with the right code.
    let err = c
        .reserve(reserve("o3", &[(a, 1), (&theirs[0], 1)], 3))
        .await
        .expect_err("not mine");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("belongs to shard 1"),
        "{}",
        err.message()
    );
    let err = reader
        .get_stock(GetStockRequest {
            sku: theirs[0].clone(),
        })
        .await
        .expect_err("not mine");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = c
        .reserve(reserve("o3", &[(a, 1)], 2))
        .await
        .expect_err("stale epoch");
    assert_eq!(err.code(), Code::FailedPrecondition);
    for bad in [
        reserve("o3", &[(a, 0)], 3),
        reserve("o3", &[("no spaces", 1)], 3),
        reserve("", &[(a, 1)], 3),
        reserve("o3", &[], 3),
    ] {
        let err = c.reserve(bad).await.expect_err("invalid");
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    }
    let err = reader
        .get_stock(GetStockRequest {
            sku: mine[2].replace("SKU", "SKX"),
        })
        .await
        .expect_err("unknown or foreign");
    assert!(
        matches!(err.code(), Code::NotFound | Code::FailedPrecondition),
        "{err:?}"
    );

    // Without a service token for inventory: refused.
    let mut wrong = InventoryClient::with_interceptor(
        channel.clone(),
        ServiceTokenAttacher::new(issuer, "orders", "payments"),
    );
    let err = wrong
        .get_stock(GetStockRequest { sku: a.into() })
        .await
        .expect_err("wrong audience");
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = InventoryClient::new(channel)
        .get_stock(GetStockRequest { sku: a.into() })
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);

    // 40 shoppers want the 10 hot units at once; each order is sent twice.
    let mut tasks = Vec::new();
    for i in 0..40 {
        for _ in 0..2 {
            let mut c = client.clone();
            let hot = hot.to_string();
            tasks.push(tokio::spawn(async move {
                let order = format!("hot-{i}");
                let r = c
                    .reserve(reserve(&order, &[(&hot, 1)], 3))
                    .await
                    .expect("reserve")
                    .into_inner();
                (order, r.reserved)
            }));
        }
    }
    let mut answers = std::collections::HashMap::new();
    for task in tasks {
        let (order, reserved) = task.await.expect("joins");
        if let Some(previous) = answers.insert(order.clone(), reserved) {
            assert_eq!(
                previous, reserved,
                "{order}: same answer to both deliveries"
            );
        }
    }
    assert_eq!(answers.values().filter(|r| **r).count(), 10);
    let stock = reader
        .get_stock(GetStockRequest { sku: hot.into() })
        .await
        .expect("stock")
        .into_inner();
    assert_eq!((stock.stock, stock.reserved, stock.available), (10, 10, 0));

    stop.send(()).expect("server running");
    server.await.expect("joins").expect("drains cleanly");
}
