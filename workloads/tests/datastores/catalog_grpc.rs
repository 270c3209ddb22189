//! The catalog over a real gRPC socket, on a real PostgreSQL: product reads, search pages,
//! prices (unknown SKUs absent), bad input and the service-token check.
//!
//! Needs `DATABASE_URL` (run by `workloads/scripts/integration`):
//! `workloads/scripts/test-datastores up && eval "$(workloads/scripts/test-datastores env)"`.

use std::sync::Arc;

use sqlx::AssertSqlSafe;
use storefront_workloads::{
    auth::domain::{SigningKeys, TokenIssuer},
    catalog::{
        grpc::{Catalog, SERVICE, serve},
        postgres::PgCatalog,
        search::SearchIndex,
        seed::generate,
    },
    grpc::ServiceTokenAttacher,
    proto::catalog::{
        GetPricesRequest, GetProductRequest, SearchProductsRequest, catalog_client::CatalogClient,
    },
};
use tokio::{net::TcpListener, sync::oneshot};
use tonic::{Code, transport::Channel};

#[tokio::test]
async fn catalog_answers_over_grpc() {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL is not set: run workloads/scripts/test-datastores up and eval its env")
    });
    let schema = format!("it_catalog_grpc_{}", std::process::id());
    let primary = PgCatalog::connect(&url, &schema, 4)
        .await
        .expect("connects");
    sqlx::query(AssertSqlSafe(format!(
        r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#
    )))
    .execute(primary.pool())
    .await
    .expect("clean schema");
    primary.migrate().await.expect("migrates");
    let products = generate(5, 600);
    primary.upsert(&products).await.expect("loads");
    let catalog = Arc::new(Catalog {
        cache: None,
        reads: primary.clone(),
        primary,
        index: SearchIndex::new().expect("index"),
    });
    assert_eq!(catalog.reindex().await.expect("indexes"), 600);

    let issuer = Arc::new(TokenIssuer::new(
        SigningKeys::from_seed([6; 32]).expect("key"),
        "shop",
        60,
        60,
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        catalog,
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
    let mut c = CatalogClient::with_interceptor(
        channel.clone(),
        ServiceTokenAttacher::new(issuer, "gateway", SERVICE),
    );

    let p = c
        .get_product(GetProductRequest {
            sku: products[10].sku.clone(),
        })
        .await
        .expect("product")
        .into_inner();
    assert_eq!(
        (p.name.as_str(), p.price_cents),
        (products[10].name.as_str(), products[10].price_cents)
    );
    assert_eq!(p.description, products[10].description);
    let err = c
        .get_product(GetProductRequest {
            sku: "SKU-NOPE".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .get_product(GetProductRequest {
            sku: "bad sku".into(),
        })
        .await
        .expect_err("invalid");
    assert_eq!(err.code(), Code::InvalidArgument);

    let page = c
        .search_products(SearchProductsRequest {
            query: "headphones".into(),
            category: "electronics".into(),
            limit: 5,
            cursor: String::new(),
        })
        .await
        .expect("search")
        .into_inner();
    assert_eq!(page.items.len(), 5);
    assert!(page.items.iter().all(|p| p.name.contains("Headphones")));
    let next = c
        .search_products(SearchProductsRequest {
            query: "headphones".into(),
            category: "electronics".into(),
            limit: 5,
            cursor: page.next.clone(),
        })
        .await
        .expect("search")
        .into_inner();
    assert!(
        next.items
            .iter()
            .all(|n| page.items.iter().all(|p| p.sku != n.sku))
    );
    let err = c
        .search_products(SearchProductsRequest {
            query: String::new(),
            category: String::new(),
            limit: 5,
            cursor: "garbage".into(),
        })
        .await
        .expect_err("bad cursor");
    assert_eq!(err.code(), Code::InvalidArgument);

    let prices = c
        .get_prices(GetPricesRequest {
            skus: vec![products[1].sku.clone(), "SKU-NOPE".into()],
        })
        .await
        .expect("prices")
        .into_inner();
    assert_eq!(prices.prices.len(), 1);
    assert_eq!(prices.prices[0].price_cents, products[1].price_cents);
    let err = c
        .get_prices(GetPricesRequest { skus: vec![] })
        .await
        .expect_err("empty");
    assert_eq!(err.code(), Code::InvalidArgument);

    let err = CatalogClient::new(channel)
        .get_product(GetProductRequest {
            sku: products[0].sku.clone(),
        })
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);

    stop.send(()).expect("server running");
    server.await.expect("joins").expect("drains cleanly");
}
