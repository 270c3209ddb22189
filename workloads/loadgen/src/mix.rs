//! The shopper mix: what each arrival does, picked by weight from a seeded generator (the
//! same `--seed` gives the same sequence of requests for the same catalog and users).

use std::fmt;

use anyhow::{Context, Result, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One kind of request of the mix (a row of the report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `GET /api/v1/products?limit=20`
    Browse,
    /// `GET /api/v1/products?q=<word>&limit=20`
    Search,
    /// `GET /api/v1/products/{sku}`
    Product,
    /// `GET /api/v1/products/{sku}/recommendations`
    Recommendations,
    /// `POST /api/v1/sessions`
    SignIn,
    /// `POST /api/v1/orders`
    Order,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Browse,
        Kind::Search,
        Kind::Product,
        Kind::Recommendations,
        Kind::SignIn,
        Kind::Order,
    ];

    /// The name used in `--mix` and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Browse => "browse",
            Kind::Search => "search",
            Kind::Product => "product",
            Kind::Recommendations => "recommendations",
            Kind::SignIn => "signin",
            Kind::Order => "order",
        }
    }

    /// The endpoint, for the report.
    pub fn endpoint(self) -> &'static str {
        match self {
            Kind::Browse => "GET /api/v1/products?limit=20",
            Kind::Search => "GET /api/v1/products?q=",
            Kind::Product => "GET /api/v1/products/{sku}",
            Kind::Recommendations => "GET /api/v1/products/{sku}/recommendations",
            Kind::SignIn => "POST /api/v1/sessions",
            Kind::Order => "POST /api/v1/orders",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "browse" => Kind::Browse,
            "search" => Kind::Search,
            "product" | "product-page" => Kind::Product,
            "recommendations" | "recs" => Kind::Recommendations,
            "signin" | "sign-in" | "session" => Kind::SignIn,
            "order" | "orders" => Kind::Order,
            _ => return None,
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Weights per kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    weights: Vec<(Kind, u32)>,
    total: u32,
}

/// The default mix: mostly browsing, a little buying.
pub const DEFAULT_MIX: &str = "browse=40,search=20,product=20,recommendations=10,signin=5,order=5";

impl Mix {
    /// Parses `browse=40,search=20,…`; kinds left out weigh 0.
    pub fn parse(s: &str) -> Result<Self> {
        let mut weights: Vec<(Kind, u32)> = vec![];
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, w) = part.split_once('=').with_context(|| {
                format!("invalid mix entry {part:?}: use NAME=WEIGHT (e.g. browse=40)")
            })?;
            let kind = Kind::parse(name.trim()).with_context(|| {
                format!(
                    "invalid mix entry {part:?}: {:?} is not one of browse, search, product, recommendations, signin, order",
                    name.trim()
                )
            })?;
            let w: u32 = w
                .trim()
                .parse()
                .ok()
                .filter(|w| *w <= 1_000_000)
                .with_context(|| {
                    format!(
                        "invalid mix entry {part:?}: the weight must be a whole number from 0 to 1000000"
                    )
                })?;
            if weights.iter().any(|(k, _)| *k == kind) {
                bail!("invalid mix {s:?}: {kind} is given twice");
            }
            weights.push((kind, w));
        }
        weights.retain(|(_, w)| *w > 0);
        weights.sort();
        let total = weights.iter().map(|(_, w)| w).sum();
        if total == 0 {
            bail!("invalid mix {s:?}: every weight is 0 (e.g. browse=40,order=5)");
        }
        Ok(Self { weights, total })
    }

    /// The weight of a kind.
    pub fn weight(&self, kind: Kind) -> u32 {
        self.weights
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, w)| *w)
    }

    /// Whether the mix ever picks this kind.
    pub fn has(&self, kind: Kind) -> bool {
        self.weight(kind) > 0
    }

    /// Picks a kind with probability weight / total.
    pub fn pick(&self, rng: &mut ChaCha8Rng) -> Kind {
        let mut x = rng.random_range(0..self.total);
        for (kind, w) in &self.weights {
            if x < *w {
                return *kind;
            }
            x -= w;
        }
        // Unreachable: x < total = Σ weights.
        self.weights[self.weights.len() - 1].0
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .weights
            .iter()
            .map(|(k, w)| format!("{k}={w}"))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// The generator every choice of a run is drawn from.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_follow_the_weights() {
        let mix = Mix::parse(DEFAULT_MIX).expect("parses");
        let mut r = rng(7);
        let n = 100_000;
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..n {
            *counts.entry(mix.pick(&mut r)).or_insert(0u32) += 1;
        }
        for kind in Kind::ALL {
            let expected = f64::from(n) * f64::from(mix.weight(kind)) / 100.0;
            let got = f64::from(counts[&kind]);
            // ±5 % of the expectation (and at least 100): far outside a fair draw's noise.
            assert!(
                (got - expected).abs() <= (expected * 0.05).max(100.0),
                "{kind}: {got} vs {expected}"
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let mix = Mix::parse("browse=1,order=1,search=2").expect("parses");
        let draw = |seed| {
            let mut r = rng(seed);
            (0..50).map(|_| mix.pick(&mut r)).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
        assert!(draw(3).iter().all(|k| *k != Kind::Product));
    }

    #[test]
    fn zero_weights_are_never_picked() {
        let mix = Mix::parse("order=1,browse=0").expect("parses");
        let mut r = rng(1);
        assert!((0..1000).all(|_| mix.pick(&mut r) == Kind::Order));
        assert!(!mix.has(Kind::Browse));
        assert_eq!(mix.to_string(), "order=1");
    }

    #[test]
    fn bad_mixes_are_named() {
        for (input, wanted) in [
            ("", "every weight is 0"),
            ("browse=0", "every weight is 0"),
            ("browse", "use NAME=WEIGHT"),
            ("basket=3", "\"basket\" is not one of"),
            ("browse=-1", "whole number"),
            ("browse=1.5", "whole number"),
            ("browse=1,browse=2", "browse is given twice"),
        ] {
            let err = format!("{:#}", Mix::parse(input).expect_err(input));
            assert!(err.contains(wanted), "{input:?}: {err}");
        }
    }
}
