//! Co-purchase pairs: every ordered pair of distinct SKUs bought in one order counts once
//! for that order. An order's SKUs are capped so one huge basket cannot write n² rows.

use std::collections::BTreeSet;

/// SKUs of one order taken into account (the first ones, in SKU order).
pub const MAX_SKUS_PER_ORDER: usize = 20;

/// The distinct SKUs of an order that count, sorted.
pub fn basket<'a>(skus: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    skus.into_iter()
        .filter(|s| !s.is_empty())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .take(MAX_SKUS_PER_ORDER)
        .map(str::to_string)
        .collect()
}

/// Every `(sku, other)` with `sku != other` of a basket, both directions.
pub fn pairs(basket: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(basket.len() * basket.len().saturating_sub(1));
    for a in basket {
        for b in basket {
            if a != b {
                out.push((a.clone(), b.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baskets_are_distinct_sorted_and_capped() {
        assert_eq!(basket(["B", "A", "B", ""]), ["A", "B"]);
        let many: Vec<String> = (0..50).map(|i| format!("S{i:02}")).collect();
        let b = basket(many.iter().map(String::as_str));
        assert_eq!(b.len(), MAX_SKUS_PER_ORDER);
        assert_eq!(b[0], "S00");
    }

    #[test]
    fn pairs_go_both_ways_and_never_pair_a_sku_with_itself() {
        let p = pairs(&basket(["A", "B", "C"]));
        assert_eq!(p.len(), 6);
        assert!(p.contains(&("A".into(), "C".into())));
        assert!(p.contains(&("C".into(), "A".into())));
        assert!(p.iter().all(|(a, b)| a != b));
        assert!(pairs(&basket(["A"])).is_empty());
    }
}
