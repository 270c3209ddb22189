//! Payments' domain: a ledger that allows one charge per order, and a simulated payment
//! provider.
//!
//! `StockReserved` may be delivered more than once (JetStream redelivers until acked; a pod
//! may die between charging and acking). The ledger records an attempt *before* calling the
//! provider and the result after, so a redelivery finds either the result (answer it again)
//! or an attempt in flight (do not charge again; retry later), never nothing. The provider
//! is also given the order id as its idempotency key, as real providers take one.

use std::{collections::HashMap, time::Duration};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The result of charging an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChargeResult {
    Succeeded { charge_id: String },
    Failed { reason: String },
}

/// What to do with a `StockReserved` for an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Begin {
    /// First time: call the provider, then [`Ledger::finish`].
    Charge,
    /// Charged before: publish this result again.
    Done(ChargeResult),
    /// Another delivery is charging right now: do not ack; it will be redelivered.
    InFlight,
}

/// Misuse of the ledger.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum LedgerError {
    #[error("order {0} has no charge in flight to finish")]
    NotInFlight(String),
    #[error("order {order_id} is charged {existing} cents, not {requested}")]
    AmountMismatch {
        order_id: String,
        existing: i64,
        requested: i64,
    },
    #[error("an amount must be positive, got {0}")]
    BadAmount(i64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    InFlight {
        amount_cents: i64,
    },
    Done {
        amount_cents: i64,
        result: ChargeResult,
    },
}

/// One entry per order (the PostgreSQL table has the order id as primary key).
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    entries: HashMap<String, Entry>,
}

impl Ledger {
    /// Records an attempt to charge `amount_cents` for `order_id`, unless there is one.
    pub fn begin(&mut self, order_id: &str, amount_cents: i64) -> Result<Begin, LedgerError> {
        if amount_cents <= 0 {
            return Err(LedgerError::BadAmount(amount_cents));
        }
        match self.entries.get(order_id) {
            None => {
                self.entries
                    .insert(order_id.to_string(), Entry::InFlight { amount_cents });
                Ok(Begin::Charge)
            }
            Some(
                Entry::InFlight { amount_cents: a }
                | Entry::Done {
                    amount_cents: a, ..
                },
            ) if *a != amount_cents => Err(LedgerError::AmountMismatch {
                order_id: order_id.to_string(),
                existing: *a,
                requested: amount_cents,
            }),
            Some(Entry::InFlight { .. }) => Ok(Begin::InFlight),
            Some(Entry::Done { result, .. }) => Ok(Begin::Done(result.clone())),
        }
    }

    /// Records the provider's answer for an attempt begun with [`Ledger::begin`].
    pub fn finish(&mut self, order_id: &str, result: ChargeResult) -> Result<(), LedgerError> {
        match self.entries.get(order_id) {
            Some(Entry::InFlight { amount_cents }) => {
                let amount_cents = *amount_cents;
                self.entries.insert(
                    order_id.to_string(),
                    Entry::Done {
                        amount_cents,
                        result,
                    },
                );
                Ok(())
            }
            _ => Err(LedgerError::NotInFlight(order_id.to_string())),
        }
    }

    /// The recorded result of an order's charge.
    pub fn result(&self, order_id: &str) -> Option<&ChargeResult> {
        match self.entries.get(order_id) {
            Some(Entry::Done { result, .. }) => Some(result),
            _ => None,
        }
    }
}

/// How the simulated provider behaves (from flags).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProviderConfig {
    /// Median latency of a charge.
    pub latency: Duration,
    /// Latency varies uniformly within ± this fraction of `latency` (0..=1).
    pub jitter: f64,
    /// Probability that a charge is declined (0..=1).
    pub failure_rate: f64,
    /// The RNG seed: the same seed gives the same sequence of answers.
    pub seed: u64,
}

/// A bad provider setting.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum ProviderConfigError {
    #[error("failure rate must be between 0 and 1, got {0}")]
    FailureRate(f64),
    #[error("jitter must be between 0 and 1, got {0}")]
    Jitter(f64),
}

impl ProviderConfig {
    pub fn validate(self) -> Result<Self, ProviderConfigError> {
        if !(0.0..=1.0).contains(&self.failure_rate) {
            return Err(ProviderConfigError::FailureRate(self.failure_rate));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(ProviderConfigError::Jitter(self.jitter));
        }
        Ok(self)
    }
}

/// A payment provider stand-in: answers after a latency, declines at a rate, and like a real
/// provider charges at most once per idempotency key. It counts charges so tests can prove
/// that nothing was charged twice.
pub struct SimulatedProvider {
    config: ProviderConfig,
    rng: ChaCha8Rng,
    answered: HashMap<String, ChargeResult>,
    charges: u64,
    next_charge: u64,
}

impl SimulatedProvider {
    pub fn new(config: ProviderConfig) -> Result<Self, ProviderConfigError> {
        let config = config.validate()?;
        Ok(Self {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            answered: HashMap::new(),
            charges: 0,
            next_charge: 1,
        })
    }

    /// Decides a charge without waiting: the latency to simulate and the answer. A key seen
    /// before gets its first answer and no latency.
    pub fn decide(&mut self, idempotency_key: &str, amount_cents: i64) -> (Duration, ChargeResult) {
        if let Some(result) = self.answered.get(idempotency_key) {
            return (Duration::ZERO, result.clone());
        }
        let spread = self.config.jitter * (2.0 * self.rng.random::<f64>() - 1.0);
        let latency = self.config.latency.mul_f64((1.0 + spread).max(0.0));
        let result = if self.rng.random::<f64>() < self.config.failure_rate {
            ChargeResult::Failed {
                reason: "card declined (simulated)".into(),
            }
        } else {
            self.charges += 1;
            let charge_id = format!("ch_{:08}_{amount_cents}", self.next_charge);
            self.next_charge += 1;
            ChargeResult::Succeeded { charge_id }
        };
        self.answered
            .insert(idempotency_key.to_string(), result.clone());
        (latency, result)
    }

    /// How many successful charges were made.
    pub fn charges(&self) -> u64 {
        self.charges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(failure_rate: f64, seed: u64) -> ProviderConfig {
        ProviderConfig {
            latency: Duration::from_millis(100),
            jitter: 0.5,
            failure_rate,
            seed,
        }
    }

    /// Processes one `StockReserved` delivery the way the service does.
    fn deliver(
        ledger: &mut Ledger,
        provider: &mut SimulatedProvider,
        order: &str,
    ) -> Option<ChargeResult> {
        match ledger.begin(order, 1000).expect("valid") {
            Begin::Charge => {
                let (_, result) = provider.decide(order, 1000);
                ledger.finish(order, result.clone()).expect("in flight");
                Some(result)
            }
            Begin::Done(result) => Some(result),
            Begin::InFlight => None,
        }
    }

    #[test]
    fn one_charge_per_order_whatever_the_redeliveries() {
        let mut ledger = Ledger::default();
        let mut provider = SimulatedProvider::new(config(0.0, 1)).expect("valid");
        let first = deliver(&mut ledger, &mut provider, "o1");
        for _ in 0..5 {
            assert_eq!(deliver(&mut ledger, &mut provider, "o1"), first);
        }
        assert_eq!(provider.charges(), 1);
        assert!(matches!(first, Some(ChargeResult::Succeeded { .. })));
    }

    #[test]
    fn a_delivery_during_a_charge_waits_instead_of_charging() {
        let mut ledger = Ledger::default();
        assert_eq!(ledger.begin("o1", 500), Ok(Begin::Charge));
        assert_eq!(ledger.begin("o1", 500), Ok(Begin::InFlight));
        assert!(ledger.result("o1").is_none());
        let paid = ChargeResult::Succeeded {
            charge_id: "ch".into(),
        };
        ledger.finish("o1", paid.clone()).expect("in flight");
        assert_eq!(ledger.begin("o1", 500), Ok(Begin::Done(paid)));
        assert!(
            ledger
                .finish("o1", ChargeResult::Failed { reason: "x".into() })
                .is_err()
        );
        assert!(
            ledger
                .finish("o2", ChargeResult::Failed { reason: "x".into() })
                .is_err()
        );
        assert!(matches!(
            ledger.begin("o1", 501),
            Err(LedgerError::AmountMismatch { .. })
        ));
        assert_eq!(ledger.begin("o3", 0), Err(LedgerError::BadAmount(0)));
    }

    #[test]
    fn provider_is_seeded_and_honours_its_failure_rate_and_latency() {
        let run = |seed| {
            let mut p = SimulatedProvider::new(config(0.3, seed)).expect("valid");
            (0..2000)
                .map(|i| p.decide(&format!("o{i}"), 100))
                .collect::<Vec<_>>()
        };
        let a = run(42);
        assert_eq!(a, run(42), "same seed, same answers");
        assert_ne!(a, run(43));
        let failed = a
            .iter()
            .filter(|(_, r)| matches!(r, ChargeResult::Failed { .. }))
            .count();
        assert!(
            (500..700).contains(&failed),
            "30% of 2000 declined, got {failed}"
        );
        for (latency, _) in &a {
            assert!((50..=150).contains(&latency.as_millis()), "{latency:?}");
        }
        let mut p = SimulatedProvider::new(config(0.3, 1)).expect("valid");
        let first = p.decide("same", 100);
        assert_eq!(p.decide("same", 100), (Duration::ZERO, first.1));
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        assert_eq!(
            SimulatedProvider::new(config(1.5, 1)).err(),
            Some(ProviderConfigError::FailureRate(1.5))
        );
        assert!(SimulatedProvider::new(config(f64::NAN, 1)).is_err());
        let mut c = config(0.0, 1);
        c.jitter = -0.1;
        assert!(c.validate().is_err());
    }
}
