//! Shared by the gateway's integration tests: the whole shop on loopback (auth, catalog,
//! orders on PostgreSQL, two inventory shards routed by the ring, the gateway reading the
//! route table and ring files the operator renders) and a minimal HTTP/1.1 client.
//!
//! Needs `DATABASE_URL` (the tests are built only with `--features datastore-tests`).

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use sqlx::AssertSqlSafe;
use storefront_crds::ring::shard_of;
use storefront_workloads::{
    auth::{
        self,
        domain::{Claims, HashCost, Passwords, SigningKeys, TokenIssuer},
        postgres::PgUserStore,
        service::Accounts,
    },
    catalog::{self, grpc::Catalog, postgres::PgCatalog, search::SearchIndex, seed::generate},
    gateway::{
        Gateway,
        run::apply,
        table::{Loader, Sources},
        upstream::{AllowAll, Deadlines},
    },
    inventory::{
        self,
        grpc::{MemoryStock, ShardPlace},
    },
    orders::{self, postgres::PgOrders},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

pub const KEY_SEED: [u8; 32] = [21; 32];
pub const SHOP: &str = "shop";

/// One HTTP/1.1 exchange: `(status, lower-case head, JSON body or Null)`.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, Value) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let (head, body) = out.split_once("\r\n\r\n").expect("a head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (
        status,
        head.to_ascii_lowercase(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

pub async fn clean(pool: &sqlx::PgPool, schema: &str) {
    sqlx::query(AssertSqlSafe(format!(
        r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#
    )))
    .execute(pool)
    .await
    .expect("clean schema");
}

pub async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    (l, addr)
}

pub fn never() -> std::future::Pending<()> {
    std::future::pending()
}

/// A token signed with the shop's key but with claims of the test's choosing.
pub fn forged(claims: &Claims) -> String {
    let pem = SigningKeys::seed_to_pkcs8_pem(KEY_SEED).expect("pem");
    let key = EncodingKey::from_ed_pem(pem.as_bytes()).expect("key");
    jsonwebtoken::encode(&Header::new(jsonwebtoken::Algorithm::EdDSA), claims, &key).expect("signs")
}

pub struct Shop {
    pub gateway: SocketAddr,
    pub issuer: Arc<TokenIssuer>,
    pub products: Vec<catalog::seed::Product>,
    /// The running gateway's state and its loader, to reload as the watcher would.
    pub state: Gateway,
    pub loader: Loader,
    pub ring_file: PathBuf,
    pub routes_file: PathBuf,
    /// The route table as written.
    pub routes: Value,
    _dir: TempDir,
}

pub struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts auth, catalog, orders and two inventory shards on loopback, then the gateway with
/// a route table and ring written as the operator renders them.
pub async fn shop(tag: &str) -> Shop {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL is not set: run workloads/scripts/test-datastores up and eval its env")
    });
    let pid = format!("{tag}_{}", std::process::id());
    let issuer = Arc::new(TokenIssuer::new(
        SigningKeys::from_seed(KEY_SEED).expect("key"),
        SHOP,
        3600,
        60,
    ));
    let verifier = Arc::new(issuer.verifier());

    // auth on PostgreSQL.
    let schema = format!("it_gw_auth_{pid}");
    let users = PgUserStore::connect(&url, &schema, 4)
        .await
        .expect("connects");
    clean(users.pool(), &schema).await;
    users.migrate().await.expect("migrates");
    let passwords = Passwords::new(HashCost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    })
    .expect("params");
    let accounts =
        Arc::new(Accounts::new(Arc::new(users), passwords, (*issuer).clone()).expect("accounts"));
    let (l, auth_addr) = listener().await;
    tokio::spawn(auth::grpc::serve(l, accounts, never()));

    // catalog on PostgreSQL with the embedded index.
    let schema = format!("it_gw_catalog_{pid}");
    let primary = PgCatalog::connect(&url, &schema, 4)
        .await
        .expect("connects");
    clean(primary.pool(), &schema).await;
    primary.migrate().await.expect("migrates");
    let products = generate(11, 300);
    primary.upsert(&products).await.expect("loads");
    let cat = Arc::new(Catalog {
        reads: primary.clone(),
        primary,
        index: SearchIndex::new().expect("index"),
    });
    cat.reindex().await.expect("indexes");
    let (l, catalog_addr) = listener().await;
    tokio::spawn(catalog::grpc::serve(l, cat, Arc::clone(&verifier), never()));

    // orders on PostgreSQL.
    let schema = format!("it_gw_orders_{pid}");
    let store = PgOrders::connect(&url, &schema, 4).await.expect("connects");
    clean(store.pool(), &schema).await;
    store.migrate().await.expect("migrates");
    let (l, orders_addr) = listener().await;
    tokio::spawn(orders::grpc::serve(
        l,
        Arc::new(store),
        Arc::clone(&verifier),
        never(),
    ));

    // Two inventory shards, each stocked with the catalog's SKUs it owns.
    let mut shard_addrs = vec![];
    for index in 0..2u32 {
        let stock = Arc::new(MemoryStock::default());
        {
            let mut inv = stock.0.lock().await;
            for p in products.iter().filter(|p| shard_of(&p.sku, 2) == index) {
                inv.set_stock(&p.sku, p.stock).expect("stock");
            }
        }
        let (l, addr) = listener().await;
        let place = ShardPlace {
            index,
            count: 2,
            epoch: 1,
        };
        tokio::spawn(inventory::grpc::serve(
            l,
            stock,
            place,
            Arc::clone(&verifier),
            never(),
        ));
        shard_addrs.push(addr);
    }

    // The files the operator renders.
    let dir = std::env::temp_dir().join(format!("sf-gw-it-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("rings/shop-inventory-ring")).expect("dirs");
    let routes = json!({"storefront": SHOP, "routes": [
        {"service": "auth", "prefix": "/api/auth", "tier": "core", "upstream": auth_addr.to_string()},
        {"service": "catalog", "prefix": "/api/catalog", "tier": "supporting", "upstream": catalog_addr.to_string()},
        {"service": "orders", "prefix": "/api/orders", "tier": "core", "upstream": orders_addr.to_string()},
        {"service": "inventory", "prefix": "/api/inventory", "tier": "core", "ring": "shop-inventory-ring",
         "rateLimit": {"requestsPerMinute": 5000, "burst": 500}}]});
    let ring = json!({"service": "inventory", "epoch": 1, "algorithm": "jump", "shards": [
        {"index": 0, "name": "shop-inventory-0", "address": shard_addrs[0].to_string()},
        {"index": 1, "name": "shop-inventory-1", "address": shard_addrs[1].to_string()}]});
    std::fs::write(dir.join("routes.json"), routes.to_string()).expect("write");
    std::fs::write(
        dir.join("rings/shop-inventory-ring/ring.json"),
        ring.to_string(),
    )
    .expect("write");
    let gateway = Gateway::new(
        Arc::clone(&issuer),
        Arc::new(AllowAll),
        Deadlines::default(),
    );
    let mut loader = Loader::new(Sources {
        routes_file: dir.join("routes.json"),
        rings_dir: dir.join("rings"),
    });
    assert!(apply(&gateway, loader.poll()), "the route table loads");
    let (l, gateway_addr) = listener().await;
    let router = gateway.clone().router();
    tokio::spawn(async move { axum::serve(l, router).await });
    Shop {
        state: gateway,
        loader,
        ring_file: dir.join("rings/shop-inventory-ring/ring.json"),
        routes_file: dir.join("routes.json"),
        routes,
        gateway: gateway_addr,
        issuer,
        products,
        _dir: TempDir(dir),
    }
}

pub fn error_of(json: &Value) -> (&str, &str) {
    (
        json["error"]["code"]
            .as_str()
            .unwrap_or("<no JSON error body>"),
        json["error"]["message"].as_str().unwrap_or(""),
    )
}

/// A stand-in recommendations server (that service is not built yet) answering `skus` for
/// every product; returns its address.
pub async fn recommendations(skus: Vec<String>) -> SocketAddr {
    use storefront_workloads::proto::recommendations::{
        BoughtTogetherRequest, BoughtTogetherResponse,
        recommendations_server::{Recommendations, RecommendationsServer},
    };
    struct Fixed(Vec<String>);
    #[tonic::async_trait]
    impl Recommendations for Fixed {
        async fn bought_together(
            &self,
            _: tonic::Request<BoughtTogetherRequest>,
        ) -> Result<tonic::Response<BoughtTogetherResponse>, tonic::Status> {
            Ok(tonic::Response::new(BoughtTogetherResponse {
                skus: self.0.clone(),
            }))
        }
    }
    let (l, addr) = listener().await;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RecommendationsServer::new(Fixed(skus)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l)),
    );
    addr
}
