//! What makes an order's lines acceptable: the one copy of the rules that the gateway checks
//! on the public body (a 422 before any service is called) and orders checks again on its
//! gRPC request (`INVALID_ARGUMENT`), so the two can never disagree.

/// The most lines one order may have.
pub const MAX_ORDER_LINES: usize = 50;
/// The largest quantity of one line.
pub const MAX_QUANTITY: u32 = 1_000;
/// The longest SKU accepted.
pub const MAX_SKU_LEN: usize = 64;

/// Checks an order's lines, given as `(sku, quantity)` in the shopper's order: 1..=50 lines,
/// SKUs of [`validate_sku`]'s shape, quantities in 1..=1000, no SKU twice. Returns them with
/// their quantities as `u32`, or what to fix (naming the line as `items[i]`).
pub fn validate<'a>(
    items: impl ExactSizeIterator<Item = (&'a str, i64)>,
) -> Result<Vec<(String, u32)>, String> {
    if items.len() == 0 {
        return Err("an order needs at least one item".into());
    }
    if items.len() > MAX_ORDER_LINES {
        return Err(format!(
            "an order has at most {MAX_ORDER_LINES} items, got {}",
            items.len()
        ));
    }
    let mut lines: Vec<(String, u32)> = Vec::with_capacity(items.len());
    for (i, (sku, quantity)) in items.enumerate() {
        validate_sku(sku).map_err(|m| format!("items[{i}].sku: {m}"))?;
        let checked = u32::try_from(quantity)
            .ok()
            .filter(|q| (1..=MAX_QUANTITY).contains(q))
            .ok_or_else(|| {
                format!("items[{i}].quantity must be between 1 and {MAX_QUANTITY}, got {quantity}")
            })?;
        if lines.iter().any(|(seen, _)| seen == sku) {
            return Err(format!(
                "items[{i}].sku {sku:?} appears twice; put the whole quantity on one line"
            ));
        }
        lines.push((sku.to_string(), checked));
    }
    Ok(lines)
}

/// Checks a SKU's shape: 1..=64 characters of ASCII letters, digits, `-` and `_`.
pub fn validate_sku(sku: &str) -> Result<(), String> {
    if sku.is_empty() {
        return Err("must not be empty".into());
    }
    if sku.len() > MAX_SKU_LEN {
        return Err(format!("must be at most {MAX_SKU_LEN} characters"));
    }
    if !sku
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err("may contain only letters, digits, '-' and '_'".into());
    }
    Ok(())
}
