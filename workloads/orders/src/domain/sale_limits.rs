//! Per-customer caps of flash sales (FlashSale `spec.orderLimits`): during a sale, one user
//! may buy at most `units_per_customer` units of each SKU the sale covers, counted over the
//! user's orders created since the sale's window opened, cancelled ones not counted — this
//! order included. Against stock hoarding: one account cannot take a doorbuster's stock.
//!
//! ```text
//!   gateway (route table orderLimits) ──▶ CreateOrderRequest.sale_limits
//!   orders, in the create transaction, under the user's lock:
//!     for each limit, for each line it covers:
//!       already  = units of that SKU in the user's orders since `since` (not cancelled)
//!       already + quantity > cap  ──▶  OverSaleLimit (nothing written; FAILED_PRECONDITION, 409)
//! ```
//!
//! The decision is pure ([`check`]); the counting is the store's
//! ([`crate::postgres::PgOrders::create_under`]).

use std::collections::BTreeMap;

use super::Line;

/// One sale's cap as the gateway passes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaleLimit {
    /// The FlashSale's name.
    pub sale: String,
    /// Unix seconds of the start of the sale's window: orders created before it do not count.
    pub since: i64,
    /// At least 1.
    pub units_per_customer: u32,
    /// The SKUs it covers; empty: every SKU.
    pub skus: Vec<String>,
}

impl SaleLimit {
    /// Whether the cap covers `sku`.
    pub fn covers(&self, sku: &str) -> bool {
        self.skus.is_empty() || self.skus.iter().any(|s| s == sku)
    }

    /// The SKUs of `lines` this cap covers, in line order.
    pub fn covered<'a>(&self, lines: &'a [Line]) -> Vec<&'a str> {
        lines
            .iter()
            .map(|l| l.sku.as_str())
            .filter(|sku| self.covers(sku))
            .collect()
    }
}

/// An order past a sale's cap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverSaleLimit {
    pub sale: String,
    pub sku: String,
    pub cap: u32,
    /// Units of the SKU the user's orders since the window opened already hold.
    pub already: i64,
    /// Units this order asks for.
    pub requested: u32,
}

impl std::fmt::Display for OverSaleLimit {
    /// Written for the shopper (the gateway passes it on with the 409).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "at most {} of {} per customer during sale {}; you have {} already and this order \
             asks for {}",
            self.cap, self.sku, self.sale, self.already, self.requested
        )
    }
}

/// The first cap `lines` would break, given the units of each covered SKU the user already
/// has since that cap's window opened (`already`, one map per limit, in the order of
/// `limits`; an SKU absent from its map: none).
pub fn check(
    limits: &[SaleLimit],
    already: &[BTreeMap<String, i64>],
    lines: &[Line],
) -> Option<OverSaleLimit> {
    limits.iter().zip(already).find_map(|(limit, held)| {
        lines.iter().filter(|l| limit.covers(&l.sku)).find_map(|l| {
            let already = held.get(&l.sku).copied().unwrap_or(0);
            (already.saturating_add(i64::from(l.quantity)) > i64::from(limit.units_per_customer))
                .then(|| OverSaleLimit {
                    sale: limit.sale.clone(),
                    sku: l.sku.clone(),
                    cap: limit.units_per_customer,
                    already,
                    requested: l.quantity,
                })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: u32) -> Line {
        Line {
            sku: sku.into(),
            quantity,
            unit_price_cents: 100,
        }
    }

    fn limit(sale: &str, cap: u32, skus: &[&str]) -> SaleLimit {
        SaleLimit {
            sale: sale.into(),
            since: 0,
            units_per_customer: cap,
            skus: skus.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn held(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
        pairs.iter().map(|(s, n)| (s.to_string(), *n)).collect()
    }

    #[test]
    fn up_to_the_cap_passes_and_one_more_unit_is_refused() {
        let bf = [limit("bf", 2, &["SKU-1"])];
        let lines = [line("SKU-1", 1), line("SKU-2", 50)];
        assert_eq!(check(&bf, &[held(&[])], &lines), None);
        assert_eq!(check(&bf, &[held(&[("SKU-1", 1)])], &lines), None);
        let over = check(&bf, &[held(&[("SKU-1", 2)])], &lines).expect("refused");
        assert_eq!(
            over,
            OverSaleLimit {
                sale: "bf".into(),
                sku: "SKU-1".into(),
                cap: 2,
                already: 2,
                requested: 1
            }
        );
        assert_eq!(
            over.to_string(),
            "at most 2 of SKU-1 per customer during sale bf; you have 2 already and this order \
             asks for 1"
        );
        // One order asking for more than the cap at once.
        assert_eq!(
            check(&bf, &[held(&[])], &[line("SKU-1", 3)]).map(|o| (o.already, o.requested)),
            Some((0, 3))
        );
    }

    #[test]
    fn a_cap_without_skus_covers_every_sku_and_the_first_broken_cap_is_named() {
        let every = limit("a-every", 5, &[]);
        assert!(every.covers("ANY") && every.covered(&[line("X", 1)]) == ["X"]);
        let limits = [every, limit("bf", 2, &["SKU-1"])];
        let lines = [line("SKU-1", 3)];
        // Within a-every's 5, past bf's 2.
        let over = check(&limits, &[held(&[("SKU-1", 1)]), held(&[])], &lines).expect("bf");
        assert_eq!((over.sale.as_str(), over.already), ("bf", 0));
        // Past both: the first in the list.
        let over = check(&limits, &[held(&[("SKU-1", 4)]), held(&[])], &lines).expect("both");
        assert_eq!(over.sale, "a-every");
        assert_eq!(
            limits[1].covered(&[line("SKU-2", 1), line("SKU-1", 1)]),
            ["SKU-1"]
        );
    }
}
