//! Shared by the gateway's integration tests: the whole shop on loopback (auth, catalog,
//! orders on PostgreSQL, two inventory shards routed by the ring, the gateway reading the
//! route table and ring files the operator renders) and a minimal HTTP/1.1 client.
//! [`shop_with_saga`] adds the checkout saga on a real NATS JetStream: the orders relay and
//! consumers, inventory shards on PostgreSQL with their consumers, payments and
//! recommendations.
//!
//! Needs `DATABASE_URL` (and `NATS_URL` for the saga; the tests run from
//! `workloads/scripts/integration`).

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
    events::{Bus, EventKeys, EventMetrics},
    gateway::{
        Gateway,
        resilience::guard::AllowAll,
        routing::{
            self,
            table::{Loader, Sources},
        },
        upstream::Deadlines,
    },
    inventory::{
        self,
        memory::MemoryStock,
        ports::ShardPlace,
        postgres::{PgInventory, RingPlace},
    },
    orders::{self, postgres::PgOrders},
    payments::{
        domain::{ProviderConfig, SimulatedProvider},
        postgres::PgLedger,
    },
    recommendations::postgres::PgRecommendations,
};
use tokio::net::TcpListener;

pub const KEY_SEED: [u8; 32] = [21; 32];
pub const SHOP: &str = "shop";

pub use storefront_workloads::gateway::test_client::send;

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

/// Each service's own event key in the saga (seeds), as the operator gives each its own.
pub const EVENT_KEY_SEEDS: [(&str, u8); 4] = [
    ("orders", 31),
    ("inventory", 32),
    ("payments", 33),
    ("recommendations", 34),
];

/// The shop's key set: every service's public key, each trusted for its own events.
pub fn event_trust() -> storefront_workloads::token::TokenVerifier {
    let mut keys = storefront_workloads::token::KeySet::default();
    for (service, seed) in EVENT_KEY_SEEDS {
        let key = SigningKeys::from_seed([seed; 32]).expect("key");
        keys.add_service_key(service, &key.public_key());
    }
    storefront_workloads::token::TokenVerifier::new(keys, SHOP)
}

/// `bus` as `service` uses it: signing with its own key, accepting its publishers' events.
pub fn signed_bus(bus: &Bus, service: &str) -> Bus {
    let seed = EVENT_KEY_SEEDS
        .iter()
        .find(|(s, _)| *s == service)
        .map(|(_, seed)| *seed)
        .expect("a service of the saga");
    bus.clone().signed(EventKeys::new(
        SigningKeys::from_seed([seed; 32]).expect("key"),
        event_trust(),
    ))
}

/// A token signed with the shop's key but with claims of the test's choosing.
pub fn forged(claims: &Claims) -> String {
    forged_with(claims, KEY_SEED)
}

/// A token that names the shop's key (`kid`) but is signed with the key of `seed`.
pub fn forged_with(claims: &Claims, seed: [u8; 32]) -> String {
    let pem = SigningKeys::seed_to_pkcs8_pem(seed).expect("pem");
    let key = EncodingKey::from_ed_pem(pem.as_bytes()).expect("key");
    // The shop key's id, as every token of this shop names it.
    let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(
        SigningKeys::from_seed(KEY_SEED)
            .expect("key")
            .kid()
            .to_string(),
    );
    jsonwebtoken::encode(&header, claims, &key).expect("signs")
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
    /// The saga's stores, when it runs.
    pub saga: Option<SagaParts>,
    _dir: TempDir,
}

/// What the saga tests look into after the traffic.
pub struct SagaParts {
    pub orders: PgOrders,
    pub shards: Vec<PgInventory>,
    pub ledger: PgLedger,
    pub provider: Arc<std::sync::Mutex<SimulatedProvider>>,
}

/// How the saga runs in [`shop_with_saga`].
pub struct SagaOptions {
    /// Probability that the simulated provider declines a charge.
    pub failure_rate: f64,
    /// Stock to set instead of the catalog's, per SKU.
    pub stock: Vec<(String, i64)>,
    /// Inventory shards whose bus consumer is not started (a shard that never answers).
    pub silent_shards: Vec<u32>,
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
    build(tag, None, None).await
}

/// [`shop`] with orders refusing a user's order while `cap` of theirs are pending (with no
/// saga running, every order stays pending).
pub async fn shop_with_pending_cap(tag: &str, cap: u32) -> Shop {
    build(tag, None, Some(cap)).await
}

/// [`shop`] with the checkout saga on NATS JetStream (`NATS_URL`): orders confirm or cancel
/// by themselves.
pub async fn shop_with_saga(tag: &str, options: SagaOptions) -> Shop {
    build(tag, Some(options), None).await
}

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| {
        panic!("NATS_URL is not set: run workloads/scripts/test-datastores up and eval its env")
    })
}

async fn build(tag: &str, saga: Option<SagaOptions>, pending_cap: Option<u32>) -> Shop {
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
        cache: None,
        reads: primary.clone(),
        primary,
        index: SearchIndex::new().expect("index"),
    });
    cat.reindex().await.expect("indexes");
    let (l, catalog_addr) = listener().await;
    tokio::spawn(catalog::grpc::serve(l, cat, Arc::clone(&verifier), never()));

    // orders on PostgreSQL.
    let schema = format!("it_gw_orders_{pid}");
    let mut store = PgOrders::connect(&url, &schema, 4).await.expect("connects");
    clean(store.pool(), &schema).await;
    store.migrate().await.expect("migrates");
    if let Some(cap) = pending_cap {
        store = store.with_pending_cap(cap);
    }
    // The saga gets a pool of its own, as the service runs it.
    let orders_store = PgOrders::connect(&url, &schema, 8).await.expect("connects");
    let (l, orders_addr) = listener().await;
    tokio::spawn(orders::grpc::serve(
        l,
        Arc::new(store),
        Arc::clone(&verifier),
        never(),
    ));

    // The bus of this shop (a stream of its own), when the saga runs.
    let bus = match &saga {
        Some(_) => Some(
            Bus::connect(
                &nats_url(),
                &format!("it-{}", pid.replace('_', "-")),
                EventMetrics::default(),
            )
            .await
            .expect("connects to NATS"),
        ),
        None => None,
    };

    // Two inventory shards, each stocked with the catalog's SKUs it owns: in memory, or on
    // PostgreSQL with their bus consumers when the saga runs.
    let mut shard_addrs = vec![];
    let mut pg_shards = vec![];
    for index in 0..2u32 {
        let owned = products.iter().filter(|p| shard_of(&p.sku, 2) == index);
        let (l, addr) = listener().await;
        let place = ShardPlace {
            index,
            count: 2,
            epoch: 1,
        };
        if let (Some(options), Some(bus)) = (&saga, &bus) {
            // Shards with the ring in the database, as the operator names their schemas.
            let ring = RingPlace {
                prefix: format!("it_gw_{pid}_inv_"),
                index,
            };
            let shard = PgInventory::connect_shard(&url, ring.clone(), 8)
                .await
                .expect("connects");
            clean(shard.pool(), &ring.schema_of(index)).await;
            if index == 0 {
                clean(shard.pool(), &ring.ring_schema()).await;
            }
            shard.migrate_ring(2, 1).await.expect("migrates");
            for p in owned {
                let stock = options
                    .stock
                    .iter()
                    .find(|(sku, _)| *sku == p.sku)
                    .map_or(p.stock, |(_, n)| *n);
                shard.set_stock(&p.sku, stock).await.expect("stock");
            }
            let shard = Arc::new(shard);
            if !options.silent_shards.contains(&index) {
                tokio::spawn(inventory::bus::consume(
                    shard.clone(),
                    signed_bus(bus, "inventory"),
                    place,
                    16,
                ));
            }
            tokio::spawn(inventory::grpc::serve(
                l,
                shard.clone(),
                place,
                Arc::clone(&verifier),
                never(),
            ));
            pg_shards.push((*shard).clone());
        } else {
            let stock = Arc::new(MemoryStock::default());
            {
                let mut inv = stock.0.lock().await;
                for p in owned {
                    inv.set_stock(&p.sku, p.stock).expect("stock");
                }
            }
            tokio::spawn(inventory::grpc::serve(
                l,
                stock,
                place,
                Arc::clone(&verifier),
                never(),
            ));
        }
        shard_addrs.push(addr);
    }

    // The rest of the saga: the orders relay and consumers, payments, recommendations.
    let mut recommendations_addr = None;
    let saga_parts = match (&saga, &bus) {
        (Some(options), Some(bus)) => {
            use storefront_workloads::{
                orders::bus as orders_bus, payments, recommendations as recs,
            };
            tokio::spawn(orders_bus::relay(
                orders_store.clone(),
                signed_bus(bus, "orders"),
            ));
            // Timeouts and stalled orders, looked at every second (5 s in the service).
            tokio::spawn(orders_bus::sweep_timeouts(
                orders_store.clone(),
                std::time::Duration::from_secs(120),
                std::time::Duration::from_secs(1),
            ));
            tokio::spawn(orders_bus::consume_replies(
                orders_store.clone(),
                signed_bus(bus, "orders"),
                16,
            ));
            let schema = format!("it_gw_pay_{pid}");
            let ledger = PgLedger::connect(&url, &schema, 8, std::time::Duration::from_secs(30))
                .await
                .expect("connects");
            clean(ledger.pool(), &schema).await;
            ledger.migrate().await.expect("migrates");
            let provider = Arc::new(std::sync::Mutex::new(
                SimulatedProvider::new(ProviderConfig {
                    latency: std::time::Duration::from_millis(20),
                    jitter: 0.5,
                    failure_rate: options.failure_rate,
                    seed: 7,
                })
                .expect("valid provider"),
            ));
            tokio::spawn(payments::bus::consume(
                ledger.clone(),
                provider.clone(),
                signed_bus(bus, "payments"),
                32,
            ));
            let schema = format!("it_gw_recs_{pid}");
            let recs_store = PgRecommendations::connect(&url, &schema, 4)
                .await
                .expect("connects");
            clean(recs_store.pool(), &schema).await;
            recs_store.migrate().await.expect("migrates");
            tokio::spawn(recs::bus::consume(
                recs_store.clone(),
                signed_bus(bus, "recommendations"),
                8,
            ));
            let (l, addr) = listener().await;
            tokio::spawn(recs::grpc::serve(
                l,
                recs_store,
                Arc::clone(&verifier),
                never(),
            ));
            recommendations_addr = Some(addr);
            Some(SagaParts {
                orders: orders_store,
                shards: pg_shards,
                ledger,
                provider,
            })
        }
        _ => None,
    };

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
    let mut routes = routes;
    if let Some(addr) = recommendations_addr {
        routes["routes"]
            .as_array_mut()
            .expect("routes")
            .push(json!({"service": "recommendations", "tier": "supporting", "upstream": addr.to_string()}));
    }
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
    routing::apply(&gateway, loader.poll()).expect("the route table applies");
    assert!(gateway.has_routes(), "the route table loads");
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
        saga: saga_parts,
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
