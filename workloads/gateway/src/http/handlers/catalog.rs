//! The catalog's routes: a page of products (search), one product with its stock, and what is
//! bought with it (recommendations, a supporting call that degrades, never fails).

use super::*;

/// Query of `GET /api/v1/products`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    limit: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

fn summary(p: Product) -> ProductSummary {
    ProductSummary {
        sku: p.sku,
        name: p.name,
        category: p.category,
        brand: p.brand,
        price_cents: p.price_cents,
        currency: p.currency,
    }
}

/// `GET /api/v1/products?q=&category=&limit=&cursor=` → 200 `{items, next}`.
pub async fn list_products(
    State(gw): State<Gateway>,
    query: Result<Query<ProductQuery>, QueryRejection>,
) -> Answer {
    let Query(query) = query.map_err(|e| {
        ApiError::new(
            ErrorKind::Malformed,
            format!("failed to read the query: {}", e.body_text()),
        )
    })?;
    let limit = match query.limit.as_deref() {
        None | Some("") => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<i64>()
            .map_err(|_| {
                ApiError::new(
                    ErrorKind::Malformed,
                    format!("limit must be a whole number, got {raw:?}"),
                )
            })
            .and_then(|n| {
                u32::try_from(n)
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid(format!(
                            "limit must be between 1 and {MAX_PAGE}, got {n}"
                        ))
                    })
            })?,
    };
    let q = query.q.unwrap_or_default();
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(
            ApiError::invalid(format!("q must be at most {MAX_QUERY_CHARS} characters")).into(),
        );
    }
    let request = SearchProductsRequest {
        query: q,
        category: query.category.unwrap_or_default(),
        limit,
        cursor: query.cursor.unwrap_or_default(),
    };
    let catalog = LIST_PRODUCTS.service();
    let channel = gw.client(catalog)?;
    let page = gw
        .caller()
        .call(catalog, channel, LIST_PRODUCTS.retry, |c| {
            let request = request.clone();
            async move { CatalogClient::new(c).search_products(request).await }
        })
        .await
        .map_err(|s| upstream::error(catalog, &s))?;
    let body = ProductPage {
        items: page.items.into_iter().map(summary).collect(),
        next: Some(page.next).filter(|n| !n.is_empty()),
    };
    Ok(Json(body).into_response())
}

/// `GET /api/v1/products/{sku}` → 200 product with `description` and `available`; 404.
/// Without inventory the product still shows, with `available: 0` and the degraded header.
pub async fn get_product(
    State(gw): State<Gateway>,
    sku: Result<Path<String>, PathRejection>,
) -> Answer {
    let sku = path(sku)?;
    sku_in_path(&sku)?;
    let catalog = GET_PRODUCT.service();
    let channel = gw.client(catalog)?;
    let product = gw
        .caller()
        .call(catalog, channel, GET_PRODUCT.retry, |c| {
            let request = GetProductRequest { sku: sku.clone() };
            async move { CatalogClient::new(c).get_product(request).await }
        })
        .await
        .map_err(|s| upstream::error(catalog, &s))?;
    let stock = match gw.shard(Service::Inventory.name(), &sku) {
        Ok((channel, _)) => {
            let answer = gw
                .caller()
                .call(Service::Inventory.name(), channel, Retry::Idempotent, |c| {
                    let request = GetStockRequest { sku: sku.clone() };
                    async move { InventoryClient::new(c).get_stock(request).await }
                })
                .await;
            match answer {
                Ok(stock) => Some(stock.available),
                Err(s) if s.code() == Code::NotFound => Some(0),
                Err(s) => {
                    tracing::warn!(
                        request_id = request_id::for_log(),
                        %sku,
                        "failed to read stock for a product page: {}",
                        s.message()
                    );
                    None
                }
            }
        }
        Err(_) => None,
    };
    let description = product.description.clone();
    let body = ProductDetail {
        summary: summary(product),
        description,
        available: stock.unwrap_or(0),
    };
    let response = Json(body).into_response();
    Ok(match stock {
        Some(_) => response,
        None => degraded(response, "inventory"),
    })
}

/// `GET /api/v1/products/{sku}/recommendations` → 200 `{items}`; an empty list with
/// `Storefront-Degraded: recommendations` when that service is not routed or fails.
pub async fn recommendations(
    State(gw): State<Gateway>,
    sku: Result<Path<String>, PathRejection>,
) -> Answer {
    let sku = path(sku)?;
    sku_in_path(&sku)?;
    let empty = || {
        degraded(
            Json(Recommendations { items: vec![] }).into_response(),
            "recommendations",
        )
    };
    let recommendations = GET_RECOMMENDATIONS.service();
    if !gw.is_routed(recommendations) {
        return Ok(empty());
    }
    let Ok(channel) = gw.client(recommendations) else {
        return Ok(empty());
    };
    let within = gw.deadlines().supporting;
    let answer = gw
        .caller()
        .call_within(
            recommendations,
            channel,
            GET_RECOMMENDATIONS.retry,
            within,
            |c| {
                let mut request = tonic::Request::new(BoughtTogetherRequest {
                    sku: sku.clone(),
                    limit: RECOMMENDATIONS,
                });
                request.set_timeout(within);
                async move { RecommendationsClient::new(c).bought_together(request).await }
            },
        )
        .await;
    let skus = match answer {
        Ok(r) => r.skus,
        Err(s) => {
            tracing::warn!(
                request_id = request_id::for_log(),
                "recommendations degraded: {}",
                s.message()
            );
            return Ok(empty());
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (i, sku) in skus.into_iter().take(RECOMMENDATIONS as usize).enumerate() {
        let Ok(channel) = gw.client(Service::Catalog.name()) else {
            break;
        };
        let gw = gw.clone();
        tasks.spawn(request_id::inherit(async move {
            let answer = gw
                .caller()
                .call(Service::Catalog.name(), channel, Retry::Idempotent, |c| {
                    let request = GetProductRequest { sku: sku.clone() };
                    async move { CatalogClient::new(c).get_product(request).await }
                })
                .await;
            (i, answer)
        }));
    }
    let mut found = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((i, Ok(product))) = joined {
            found.insert(i, summary(product));
        }
    }
    let body = Recommendations {
        items: found.into_values().collect(),
    };
    Ok(Json(body).into_response())
}
