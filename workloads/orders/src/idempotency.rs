//! `Idempotency-Key` handling for `POST /api/v1/orders`: the same key with the same body gets
//! the same answer (no second order); the same key with another body is refused (422).
//!
//! A key is scoped to its user (two shoppers may pick the same key). What is compared is a
//! SHA-256 fingerprint of the order's *canonical* JSON (`{"items":[{"sku":..,"quantity":..}]}`
//! made from the checked lines, the shape of the public body), so whitespace and key order
//! do not make "another body", while any change of SKU, quantity or line order does. The record is stored with the order's first events in
//! the same transaction, so a retry after a crash finds either both or neither.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A request fingerprint: SHA-256 of the canonical JSON, hex.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint(pub String);

/// The canonical body: the public request's shape, so fingerprints stored before this
/// module stopped reading the public type still match.
#[derive(Serialize)]
struct Canonical<'a> {
    items: Vec<Item<'a>>,
}

#[derive(Serialize)]
struct Item<'a> {
    sku: &'a str,
    quantity: u32,
}

impl Fingerprint {
    /// The fingerprint of an order's checked lines, `(sku, quantity)` in the shopper's order.
    pub fn of(lines: &[(String, u32)]) -> Self {
        let canonical = Canonical {
            items: lines
                .iter()
                .map(|(sku, quantity)| Item {
                    sku,
                    quantity: *quantity,
                })
                .collect(),
        };
        // Serializing a struct of strings and integers cannot fail; an empty body would
        // still fingerprint deterministically.
        let canonical = serde_json::to_vec(&canonical).unwrap_or_default();
        Self(
            Sha256::digest(&canonical)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }
}

/// What was stored under a key: who used it, with which body, and the answer given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub user_id: String,
    pub key: String,
    pub fingerprint: Fingerprint,
    /// The order created for it (the answer is `{orderId, status: PENDING}` with 202).
    pub order_id: String,
}

/// What to do with a request that carries a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdempotencyDecision {
    /// First use: create the order and store a record.
    Proceed,
    /// Seen with the same body: answer with this order again.
    Replay { order_id: String },
    /// Seen with another body: 422.
    Conflict,
}

/// Decides from the record stored under `(user, key)`, if any.
pub fn check(
    existing: Option<&IdempotencyRecord>,
    fingerprint: &Fingerprint,
) -> IdempotencyDecision {
    match existing {
        None => IdempotencyDecision::Proceed,
        Some(record) if &record.fingerprint == fingerprint => IdempotencyDecision::Replay {
            order_id: record.order_id.clone(),
        },
        Some(_) => IdempotencyDecision::Conflict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storefront_contracts::api::{ApiError, CreateOrderRequest};

    /// The checked lines of a public body.
    fn parse(body: &str) -> Vec<(String, u32)> {
        ApiError::parse_body::<CreateOrderRequest>(body.as_bytes())
            .expect("parses")
            .validate()
            .expect("valid")
    }

    #[test]
    fn the_fingerprint_is_the_sha256_of_the_public_body_in_canonical_form() {
        let body = r#"{"items":[{"sku":"A","quantity":2},{"sku":"B","quantity":1}]}"#;
        let expected: String = Sha256::digest(body.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(Fingerprint::of(&parse(body)).0, expected);
    }

    #[test]
    fn same_body_in_another_layout_has_the_same_fingerprint() {
        let a = parse(r#"{"items":[{"sku":"A","quantity":2}]}"#);
        let b = parse("{ \"items\" : [ { \"quantity\" : 2, \"sku\" : \"A\" } ] }\n");
        assert_eq!(Fingerprint::of(&a), Fingerprint::of(&b));
        assert_eq!(Fingerprint::of(&a).0.len(), 64);
    }

    #[test]
    fn any_change_of_content_changes_the_fingerprint() {
        let base = Fingerprint::of(&parse(
            r#"{"items":[{"sku":"A","quantity":2},{"sku":"B","quantity":1}]}"#,
        ));
        for other in [
            r#"{"items":[{"sku":"A","quantity":3},{"sku":"B","quantity":1}]}"#,
            r#"{"items":[{"sku":"A","quantity":2},{"sku":"C","quantity":1}]}"#,
            r#"{"items":[{"sku":"B","quantity":1},{"sku":"A","quantity":2}]}"#,
            r#"{"items":[{"sku":"A","quantity":2}]}"#,
        ] {
            assert_ne!(Fingerprint::of(&parse(other)), base, "{other}");
        }
    }

    #[test]
    fn first_use_proceeds_replay_answers_the_same_other_body_conflicts() {
        let body = parse(r#"{"items":[{"sku":"A","quantity":2}]}"#);
        let fp = Fingerprint::of(&body);
        assert_eq!(check(None, &fp), IdempotencyDecision::Proceed);
        let record = IdempotencyRecord {
            user_id: "u1".into(),
            key: "k1".into(),
            fingerprint: fp.clone(),
            order_id: "o1".into(),
        };
        assert_eq!(
            check(Some(&record), &fp),
            IdempotencyDecision::Replay {
                order_id: "o1".into()
            }
        );
        let other = Fingerprint::of(&parse(r#"{"items":[{"sku":"A","quantity":1}]}"#));
        assert_eq!(check(Some(&record), &other), IdempotencyDecision::Conflict);
    }
}
