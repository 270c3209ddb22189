//! Inventory's domain: the stock of one shard and its reservations, as a plain data structure
//! whose rules are the contract the PostgreSQL adapter implements in SQL.
//!
//! Rules:
//! - **All or nothing per order**: every line is checked before anything is held; one short
//!   line rejects the whole order and holds nothing.
//! - **Never oversell**: `reserved ≤ stock` for every SKU, always (a property test drives
//!   random operation sequences and checks it after each step).
//! - **Idempotent per order id**: reserving an order again answers what the first attempt
//!   answered (reserved, or the same rejection) and changes nothing; releasing or committing
//!   twice is a no-op. A release that arrives before the reservation leaves a tombstone, so
//!   the late reservation is rejected instead of holding stock for a cancelled order.
//! - **Release on cancel** gives the held quantities back; **commit on confirm** turns them
//!   into sold units (stock and reserved both drop).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The stock of one SKU.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    /// Units on hand (including reserved ones).
    pub stock: i64,
    /// Units held by pending orders.
    pub reserved: i64,
}

impl StockLevel {
    /// Units that can still be reserved.
    pub fn available(&self) -> i64 {
        self.stock - self.reserved
    }
}

/// Why a reservation was rejected (the whole order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    UnknownSku {
        sku: String,
    },
    Insufficient {
        sku: String,
        requested: u32,
        available: i64,
    },
    OrderCancelled,
}

impl Rejection {
    /// A reason for humans (it ends up in the order's `reason`).
    pub fn reason(&self) -> String {
        match self {
            Self::UnknownSku { sku } => format!("unknown SKU {sku}"),
            Self::Insufficient {
                sku,
                requested,
                available,
            } => format!("{sku}: {requested} requested, {available} available"),
            Self::OrderCancelled => "the order was cancelled before stock was reserved".into(),
        }
    }

    /// The SKU at fault, if one was.
    pub fn sku(&self) -> Option<&str> {
        match self {
            Self::UnknownSku { sku } | Self::Insufficient { sku, .. } => Some(sku),
            Self::OrderCancelled => None,
        }
    }
}

/// The answer to a reservation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReserveOutcome {
    Reserved,
    Rejected(Rejection),
}

/// Input that no reservation can be made from (a bug or a bad message, not a rejection).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum InventoryError {
    #[error("an order needs at least one line")]
    NoLines,
    #[error("line for {sku} has quantity 0")]
    ZeroQuantity { sku: String },
    #[error("stock must not be negative ({sku}: {stock})")]
    NegativeStock { sku: String, stock: i64 },
    #[error("stock of {sku} cannot drop to {stock} below the {reserved} units reserved")]
    BelowReserved {
        sku: String,
        stock: i64,
        reserved: i64,
    },
}

/// The lifecycle of one order's reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Hold {
    /// Holding these quantities.
    Held(BTreeMap<String, u32>),
    /// Rejected: the same answer on redelivery.
    Rejected(Rejection),
    /// Released (or cancelled before any reservation): nothing held.
    Released,
    /// Sold: stock went down.
    Committed,
}

/// The stock and reservations of one inventory shard.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    stock: HashMap<String, StockLevel>,
    holds: HashMap<String, Hold>,
    /// How each order was settled first (a release or a commit, whatever it held then): the
    /// first settlement wins, as the SQL store's `settled` table says.
    settled: HashMap<String, Settlement>,
}

/// An order's first settlement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Settlement {
    Released,
    Committed,
}

/// Why `requested` units of `sku` cannot be held at `level` (`None`: unknown SKU), if they
/// cannot. The one rule for the in-memory store and the SQL one.
pub fn line_rejection(sku: &str, requested: u32, level: Option<&StockLevel>) -> Option<Rejection> {
    match level {
        None => Some(Rejection::UnknownSku {
            sku: sku.to_string(),
        }),
        Some(level) if level.available() < i64::from(requested) => Some(Rejection::Insufficient {
            sku: sku.to_string(),
            requested,
            available: level.available(),
        }),
        Some(_) => None,
    }
}

/// Merges lines by SKU, refusing empty orders and zero quantities.
pub fn merge_lines(lines: &[(String, u32)]) -> Result<BTreeMap<String, u32>, InventoryError> {
    if lines.is_empty() {
        return Err(InventoryError::NoLines);
    }
    let mut merged = BTreeMap::new();
    for (sku, quantity) in lines {
        if *quantity == 0 {
            return Err(InventoryError::ZeroQuantity { sku: sku.clone() });
        }
        let total: &mut u32 = merged.entry(sku.clone()).or_default();
        *total = total.saturating_add(*quantity);
    }
    Ok(merged)
}

impl Inventory {
    /// Sets a SKU's stock on hand (seeding, restocking). Refuses to go below what is held.
    pub fn set_stock(&mut self, sku: &str, stock: i64) -> Result<(), InventoryError> {
        if stock < 0 {
            return Err(InventoryError::NegativeStock {
                sku: sku.into(),
                stock,
            });
        }
        let level = self.stock.entry(sku.to_string()).or_default();
        if stock < level.reserved {
            return Err(InventoryError::BelowReserved {
                sku: sku.into(),
                stock,
                reserved: level.reserved,
            });
        }
        level.stock = stock;
        Ok(())
    }

    /// A SKU's stock, if it is known here.
    pub fn level(&self, sku: &str) -> Option<&StockLevel> {
        self.stock.get(sku)
    }

    /// Every SKU's stock.
    pub fn levels(&self) -> impl Iterator<Item = (&str, &StockLevel)> {
        self.stock.iter().map(|(sku, level)| (sku.as_str(), level))
    }

    /// Reserves every line of `order_id`, or nothing.
    pub fn reserve(
        &mut self,
        order_id: &str,
        lines: &[(String, u32)],
    ) -> Result<ReserveOutcome, InventoryError> {
        let wanted = merge_lines(lines)?;
        if self.settled.get(order_id) == Some(&Settlement::Released) {
            // Cancelled first: nothing is held for a dead order.
            return Ok(ReserveOutcome::Rejected(Rejection::OrderCancelled));
        }
        match self.holds.get(order_id) {
            Some(Hold::Held(_) | Hold::Committed) => return Ok(ReserveOutcome::Reserved),
            Some(Hold::Rejected(rejection)) => {
                return Ok(ReserveOutcome::Rejected(rejection.clone()));
            }
            Some(Hold::Released) => return Ok(ReserveOutcome::Rejected(Rejection::OrderCancelled)),
            None => {}
        }
        if self.settled.contains_key(order_id) {
            // Confirmed before this reservation (lines a resharding handed over late): they
            // are held or sold where they were; claim nothing.
            return Ok(ReserveOutcome::Reserved);
        }
        // Check every line first: nothing is held unless everything can be.
        let rejection = wanted
            .iter()
            .find_map(|(sku, &requested)| line_rejection(sku, requested, self.stock.get(sku)));
        if let Some(rejection) = rejection {
            self.holds
                .insert(order_id.to_string(), Hold::Rejected(rejection.clone()));
            return Ok(ReserveOutcome::Rejected(rejection));
        }
        for (sku, &quantity) in &wanted {
            if let Some(level) = self.stock.get_mut(sku) {
                level.reserved += i64::from(quantity);
            }
        }
        self.holds.insert(order_id.to_string(), Hold::Held(wanted));
        Ok(ReserveOutcome::Reserved)
    }

    /// Gives back what `order_id` holds (cancellation). Returns whether anything was held.
    /// A cancel that comes first is remembered, so a late reservation is refused.
    pub fn release(&mut self, order_id: &str) -> bool {
        self.settle(order_id, Settlement::Released, Hold::Released, false)
    }

    /// Turns what `order_id` holds into sold units (confirmation). Returns whether it did.
    /// A confirmation that comes first is remembered, so a late reservation claims nothing.
    pub fn commit(&mut self, order_id: &str) -> bool {
        self.settle(order_id, Settlement::Committed, Hold::Committed, true)
    }

    /// Records `settlement` if the order has none yet, and settles what it holds as `after`
    /// (`sold`: the units leave the stock too).
    fn settle(&mut self, order_id: &str, settlement: Settlement, after: Hold, sold: bool) -> bool {
        self.settled
            .entry(order_id.to_string())
            .or_insert(settlement);
        if !matches!(self.holds.get(order_id), Some(Hold::Held(_))) {
            return false;
        }
        if let Some(Hold::Held(held)) = self.holds.insert(order_id.to_string(), after) {
            for (sku, quantity) in held {
                if let Some(level) = self.stock.get_mut(&sku) {
                    level.reserved -= i64::from(quantity);
                    if sold {
                        level.stock -= i64::from(quantity);
                    }
                }
            }
        }
        true
    }
}

/// The ring as a transaction saw it: `shards` shards at `epoch` (epoch 0: a store without a
/// ring, which owns everything).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingView {
    pub epoch: i64,
    pub shards: u32,
}

/// The answer of a shard to an order: what it decided for the lines it owns, which SKUs of
/// the order it holds (or sold), and the ring it decided under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub outcome: ReserveOutcome,
    pub skus: Vec<String>,
    pub ring: RingView,
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn lines(items: &[(&str, u32)]) -> Vec<(String, u32)> {
        items.iter().map(|(s, q)| (s.to_string(), *q)).collect()
    }

    fn shop() -> Inventory {
        let mut inv = Inventory::default();
        inv.set_stock("A", 5).expect("stock");
        inv.set_stock("B", 1).expect("stock");
        inv
    }

    fn level(inv: &Inventory, sku: &str) -> (i64, i64, i64) {
        let l = inv.level(sku).expect("known");
        (l.stock, l.reserved, l.available())
    }

    #[test]
    fn reserves_all_lines_or_none() {
        let mut inv = shop();
        let out = inv
            .reserve("o1", &lines(&[("A", 2), ("B", 2)]))
            .expect("valid");
        assert_eq!(
            out,
            ReserveOutcome::Rejected(Rejection::Insufficient {
                sku: "B".into(),
                requested: 2,
                available: 1
            })
        );
        assert_eq!(
            level(&inv, "A"),
            (5, 0, 5),
            "nothing held for a rejected order"
        );
        assert_eq!(
            inv.reserve("o2", &lines(&[("A", 2), ("B", 1)])),
            Ok(ReserveOutcome::Reserved)
        );
        assert_eq!((level(&inv, "A"), level(&inv, "B")), ((5, 2, 3), (1, 1, 0)));
        let unknown = inv
            .reserve("o3", &lines(&[("A", 1), ("Z", 1)]))
            .expect("valid");
        assert_eq!(
            unknown,
            ReserveOutcome::Rejected(Rejection::UnknownSku { sku: "Z".into() })
        );
        assert_eq!(level(&inv, "A"), (5, 2, 3));
    }

    #[test]
    fn lines_of_the_same_sku_add_up() {
        let mut inv = shop();
        let out = inv
            .reserve("o1", &lines(&[("A", 3), ("A", 3)]))
            .expect("valid");
        assert!(matches!(
            out,
            ReserveOutcome::Rejected(Rejection::Insufficient { requested: 6, .. })
        ));
        assert_eq!(
            inv.reserve("o2", &lines(&[("A", 2), ("A", 3)])),
            Ok(ReserveOutcome::Reserved)
        );
        assert_eq!(level(&inv, "A"), (5, 5, 0));
    }

    #[test]
    fn reservations_are_idempotent_per_order() {
        let mut inv = shop();
        assert_eq!(
            inv.reserve("o1", &lines(&[("A", 2)])),
            Ok(ReserveOutcome::Reserved)
        );
        assert_eq!(
            inv.reserve("o1", &lines(&[("A", 2)])),
            Ok(ReserveOutcome::Reserved)
        );
        assert_eq!(
            level(&inv, "A"),
            (5, 2, 3),
            "a redelivery holds nothing more"
        );
        let rejected = inv.reserve("o2", &lines(&[("B", 9)])).expect("valid");
        inv.set_stock("B", 100).expect("restock");
        assert_eq!(
            inv.reserve("o2", &lines(&[("B", 9)])),
            Ok(rejected),
            "same answer as before"
        );
    }

    #[test]
    fn release_gives_back_and_commit_sells_once() {
        let mut inv = shop();
        inv.reserve("o1", &lines(&[("A", 2)])).expect("valid");
        inv.reserve("o2", &lines(&[("A", 3)])).expect("valid");
        assert!(inv.release("o1"));
        assert!(!inv.release("o1"), "second release is a no-op");
        assert_eq!(level(&inv, "A"), (5, 3, 2));
        assert!(inv.commit("o2"));
        assert!(!inv.commit("o2"));
        assert!(!inv.release("o2"), "a sold order holds nothing");
        assert_eq!(level(&inv, "A"), (2, 0, 2));
        assert_eq!(
            inv.reserve("o1", &lines(&[("A", 1)])),
            Ok(ReserveOutcome::Rejected(Rejection::OrderCancelled))
        );
    }

    #[test]
    fn a_cancel_that_arrives_first_blocks_the_late_reservation() {
        let mut inv = shop();
        assert!(!inv.release("o1"));
        assert_eq!(
            inv.reserve("o1", &lines(&[("A", 1)])),
            Ok(ReserveOutcome::Rejected(Rejection::OrderCancelled))
        );
        assert_eq!(level(&inv, "A"), (5, 0, 5));
    }

    #[test]
    fn the_first_settlement_wins_whatever_the_order_held() {
        let mut inv = shop();
        // Confirmed before this shard held anything (lines handed over late): nothing claimed.
        assert!(!inv.commit("o1"));
        assert_eq!(
            inv.reserve("o1", &lines(&[("A", 1)])),
            Ok(ReserveOutcome::Reserved)
        );
        assert_eq!(
            level(&inv, "A"),
            (5, 0, 5),
            "a confirmed order claims nothing"
        );
        assert!(
            !inv.release("o1"),
            "and a later cancel has nothing to give back"
        );

        // Rejected, then cancelled: a redelivered reservation is answered as cancelled.
        let rejected = inv.reserve("o2", &lines(&[("B", 9)])).expect("valid");
        assert!(matches!(
            rejected,
            ReserveOutcome::Rejected(Rejection::Insufficient { .. })
        ));
        assert!(!inv.release("o2"));
        assert_eq!(
            inv.reserve("o2", &lines(&[("B", 9)])),
            Ok(ReserveOutcome::Rejected(Rejection::OrderCancelled))
        );

        // Rejected, then confirmed first: the rejection stands.
        inv.reserve("o3", &lines(&[("B", 9)])).expect("valid");
        assert!(!inv.commit("o3"));
        assert!(!inv.release("o3"));
        assert_eq!(inv.reserve("o3", &lines(&[("B", 9)])), Ok(rejected));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut inv = shop();
        assert_eq!(inv.reserve("o1", &[]), Err(InventoryError::NoLines));
        assert!(matches!(
            inv.reserve("o1", &lines(&[("A", 0)])),
            Err(InventoryError::ZeroQuantity { .. })
        ));
        assert!(inv.set_stock("A", -1).is_err());
        inv.reserve("o2", &lines(&[("A", 4)])).expect("valid");
        assert!(matches!(
            inv.set_stock("A", 3),
            Err(InventoryError::BelowReserved { .. })
        ));
        assert!(
            inv.reserve("o3", &lines(&[("A", u32::MAX), ("A", 5)]))
                .is_ok_and(|o| o != ReserveOutcome::Reserved)
        );
    }

    #[test]
    fn random_operations_never_oversell() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let skus = ["A", "B", "C"];
        let mut inv = Inventory::default();
        for sku in skus {
            inv.set_stock(sku, rng.random_range(0..20)).expect("stock");
        }
        let mut reserved_orders = 0;
        for step in 0..20_000 {
            let order = format!("o{}", rng.random_range(0..500));
            match rng.random_range(0..10) {
                0..=5 => {
                    let n = rng.random_range(1..=3);
                    let ls: Vec<(String, u32)> = (0..n)
                        .map(|_| {
                            (
                                skus[rng.random_range(0..3)].to_string(),
                                rng.random_range(1..4),
                            )
                        })
                        .collect();
                    if inv.reserve(&order, &ls) == Ok(ReserveOutcome::Reserved) {
                        reserved_orders += 1;
                    }
                }
                6 | 7 => {
                    inv.release(&order);
                }
                8 => {
                    inv.commit(&order);
                }
                _ => {
                    let sku = skus[rng.random_range(0..3)];
                    let _ = inv.set_stock(sku, rng.random_range(0..30));
                }
            }
            for (sku, level) in inv.levels() {
                assert!(
                    0 <= level.reserved && level.reserved <= level.stock,
                    "step {step}: {sku} {level:?}"
                );
            }
        }
        assert!(
            reserved_orders > 100,
            "the run exercised reservations ({reserved_orders})"
        );
    }
}
