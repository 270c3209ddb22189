//! The catalog's gRPC adapter (`proto/catalog.proto`) over a [`Catalog`]: PostgreSQL for
//! product reads and writes, the tantivy index for search. Behind the service-token check.

use std::{future::Future, sync::Arc};

use tokio::net::TcpListener;
use tonic::{Code, Request, Response, Status};

use super::{
    cache::ProductCache,
    postgres::{PgCatalog, PgCatalogError},
    search::{SearchError, SearchIndex},
    seed::Product,
};
use storefront_contracts::order_lines::{MAX_ORDER_LINES, validate_sku};
use storefront_contracts::proto::catalog::{
    GetPricesRequest, GetPricesResponse, GetProductRequest, Price, Product as ProductMessage,
    SearchProductsRequest, SearchProductsResponse,
    catalog_server::{Catalog as CatalogApi, CatalogServer},
};
use storefront_platform::grpc::RequireServiceToken;
use storefront_platform::request_id::hidden;
use storefront_platform::token::TokenVerifier;

/// This service's name: the audience of the service tokens it accepts.
pub const SERVICE: &str = "catalog";

/// Who may call each method, by the name its service token proves (the architecture's call
/// graph: the gateway, for shoppers browsing and checking out); anyone else, and any other method, is refused with `PERMISSION_DENIED`.
pub fn callers(method: &str) -> &'static [&'static str] {
    match method {
        "GetProduct" | "SearchProducts" | "GetPrices" => &["gateway"],
        _ => &[],
    }
}

/// The catalog: products in PostgreSQL (reads from the replica when there is one) and the
/// search index built from them.
pub struct Catalog {
    pub primary: PgCatalog,
    pub reads: PgCatalog,
    pub index: SearchIndex,
    /// The Redis product cache, when the shop names a Redis.
    pub cache: Option<ProductCache>,
}

impl Catalog {
    /// Writes products: PostgreSQL first, then the cache and the search index (write-through:
    /// a reader never sees a product that is not stored).
    pub async fn write(&self, products: &[Product]) -> Result<(), Status> {
        self.primary.upsert(products).await.map_err(db)?;
        if let Some(cache) = &self.cache {
            cache.put(products).await;
        }
        for p in products {
            self.index.upsert(p).map_err(search)?;
        }
        Ok(())
    }

    /// A product: from the cache when it has it, else from PostgreSQL (then cached).
    pub async fn product(&self, sku: &str) -> Result<Option<Product>, Status> {
        if let Some(cache) = &self.cache
            && let Some(p) = cache.get(sku).await
        {
            return Ok(Some(p));
        }
        let product = self.reads.get(sku).await.map_err(db)?;
        if let (Some(cache), Some(p)) = (&self.cache, &product) {
            cache.put(std::slice::from_ref(p)).await;
        }
        Ok(product)
    }

    /// Rebuilds the search index from PostgreSQL (at start).
    pub async fn reindex(&self) -> Result<usize, Status> {
        // From the primary: a replica may not have replayed the migration or the seed yet
        // (a first start would index nothing, or fail on a table that does not exist there).
        let products = self.primary.all().await.map_err(db)?;
        self.index.rebuild(&products).map_err(search)?;
        Ok(products.len())
    }
}

/// A store failure as the caller sees it: short stable words; the driver's are logged with
/// the request id ([`hidden`]).
fn db(e: PgCatalogError) -> Status {
    hidden(Code::Unavailable, "the product store is unavailable", e)
}

/// The index's refusals of a query in its words (written for the client); its failures in
/// short stable ones, the cause logged ([`hidden`]).
fn search(e: SearchError) -> Status {
    match e {
        SearchError::BadCursor(_) | SearchError::QueryTooLong => {
            Status::invalid_argument(e.to_string())
        }
        other => hidden(Code::Internal, "the search index failed", other),
    }
}

fn message(p: Product) -> ProductMessage {
    ProductMessage {
        sku: p.sku,
        name: p.name,
        category: p.category,
        brand: p.brand,
        price_cents: p.price_cents,
        currency: p.currency,
        description: p.description,
    }
}

/// The tonic implementation.
pub struct CatalogGrpc {
    catalog: Arc<Catalog>,
}

#[tonic::async_trait]
impl CatalogApi for CatalogGrpc {
    async fn get_product(
        &self,
        request: Request<GetProductRequest>,
    ) -> Result<Response<ProductMessage>, Status> {
        let sku = request.into_inner().sku;
        validate_sku(&sku).map_err(|m| Status::invalid_argument(format!("sku {sku:?}: {m}")))?;
        let product = self
            .catalog
            .product(&sku)
            .await?
            .ok_or_else(|| Status::not_found(format!("unknown SKU {sku}")))?;
        Ok(Response::new(message(product)))
    }

    async fn search_products(
        &self,
        request: Request<SearchProductsRequest>,
    ) -> Result<Response<SearchProductsResponse>, Status> {
        let r = request.into_inner();
        let limit = if r.limit == 0 { 20 } else { r.limit as usize };
        let page = self
            .catalog
            .index
            .search(
                &r.query,
                Some(r.category.as_str()),
                limit,
                Some(r.cursor.as_str()),
            )
            .map_err(search)?;
        Ok(Response::new(SearchProductsResponse {
            items: page
                .items
                .into_iter()
                .map(|p| ProductMessage {
                    sku: p.sku,
                    name: p.name,
                    category: p.category,
                    brand: p.brand,
                    price_cents: p.price_cents,
                    currency: p.currency,
                    description: String::new(),
                })
                .collect(),
            next: page.next.unwrap_or_default(),
        }))
    }

    async fn get_prices(
        &self,
        request: Request<GetPricesRequest>,
    ) -> Result<Response<GetPricesResponse>, Status> {
        let skus = request.into_inner().skus;
        if skus.is_empty() || skus.len() > MAX_ORDER_LINES {
            return Err(Status::invalid_argument(format!(
                "ask for 1 to {MAX_ORDER_LINES} SKUs, got {}",
                skus.len()
            )));
        }
        for sku in &skus {
            validate_sku(sku).map_err(|m| Status::invalid_argument(format!("sku {sku:?}: {m}")))?;
        }
        // Prices that an order is charged by come from the primary, never a lagging replica.
        let products = self.catalog.primary.get_many(&skus).await.map_err(db)?;
        Ok(Response::new(GetPricesResponse {
            prices: products
                .into_iter()
                .map(|p| Price {
                    sku: p.sku,
                    price_cents: p.price_cents,
                    currency: p.currency,
                })
                .collect(),
        }))
    }
}

/// Serves the catalog and gRPC health on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    catalog: Arc<Catalog>,
    verifier: Arc<TokenVerifier>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let service = CatalogServer::with_interceptor(
        CatalogGrpc { catalog },
        RequireServiceToken::new(verifier, SERVICE, callers),
    );
    storefront_platform::grpc::serve(listener, service, shutdown).await
}
