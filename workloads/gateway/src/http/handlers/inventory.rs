//! `GET /api/v1/inventory/{sku}`: a SKU's stock from the shard that owns it in the ring.

use super::*;

/// `GET /api/v1/inventory/{sku}` → 200 `{sku, stock, reserved, available}` from the shard
/// that owns the SKU in the ring; 404 for an unknown SKU.
pub async fn get_inventory(
    State(gw): State<Gateway>,
    sku: Result<Path<String>, PathRejection>,
) -> Answer {
    let sku = path(sku)?;
    sku_in_path(&sku)?;
    let (channel, _epoch) = gw.shard(GET_INVENTORY.service(), &sku)?;
    let stock = gw
        .caller()
        .call(GET_INVENTORY.service(), channel, GET_INVENTORY.retry, |c| {
            let request = GetStockRequest { sku: sku.clone() };
            async move { InventoryClient::new(c).get_stock(request).await }
        })
        .await
        .map_err(|s| upstream::error(GET_INVENTORY.service(), &s))?;
    let body = InventoryView {
        sku: stock.sku,
        stock: stock.stock,
        reserved: stock.reserved,
        available: stock.available,
    };
    Ok(Json(body).into_response())
}
