//! The rate limits of one Storefront: what is in force and what it refuses, so that an SRE
//! tells "one client is being limited" from "the shop's budget is spent".
//!
//! ```text
//!  429s at the gateway ─┬─ per-client budgets (user, address, route:…) → those clients only
//!   (storefront_        │    spec.clientLimits, defaults resolved      storefront_ratelimit_
//!    requests_total)    │                                              client_decisions_total
//!                       ├─ the shop-wide budget (scope gateway)        → everyone
//!                       └─ each service's budget (scope <service>)     → everyone on its routes
//!                            spec.services.*.rateLimit or an active    storefront_ratelimit_
//!                            FlashSale's                               decisions_total
//! ```
//!
//! The gateway checks a request's client first (the signed-in user, else its address, then the
//! route's per-client limit) and only then the shared budgets, so per-client refusals never
//! spend what everyone shares. [`Limits`] holds both sides for one Storefront; [`Verdict`]
//! says which of them refuses. The limits in force come from the spec as the operator
//! renders them ([`storefront_crds::ClientLimits::effective`]: absent means the defaults,
//! `enabled: false` means off); the numbers are Prometheus's last-known, `–` when absent.

use storefront_crds::{RateLimit, Storefront, client_limits::EffectiveClientLimits};

use super::{ServiceRow, budget_in_force, fill_ratelimit_use};
use crate::{
    metrics::{ClientTraffic, fmt_percent, fmt_rate},
    model::sf_key,
    state::{App, View},
};

/// The rate limits of one Storefront and what they refuse (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub namespace: String,
    pub storefront: String,
    /// The shop-wide budget in force and the active FlashSale that set it (`None`: the spec).
    pub shop_budget: Option<(RateLimit, Option<String>)>,
    /// The shop-wide budget's use, 0..1, and whether it is estimated from the served rate.
    pub shop_use: (Option<f64>, bool),
    /// Per-client limits in force; `None`: turned off (`spec.clientLimits.enabled: false`).
    pub clients: Option<EffectiveClientLimits>,
    /// Whether `perUser` and `perAddress` are the defaults (the spec names none).
    pub default_user: bool,
    pub default_address: bool,
    /// 429s per second the gateway answered, whatever refused them.
    pub throttled_rps: Option<f64>,
    /// Refusals per second of the shop-wide budget.
    pub shop_limited: Option<f64>,
    /// Refusals per second of each service's own budget, where Prometheus has them.
    pub services_limited: Vec<(String, f64)>,
    /// The gateway's per-client decisions and the clients it tracks.
    pub traffic: Option<ClientTraffic>,
}

/// Which limits refuse requests now, the widest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Prometheus has no limiter numbers for the shop.
    Unknown,
    /// Nothing refused.
    Quiet,
    /// Per-client limits refuse some clients; the shared budgets hold.
    ClientsLimited,
    /// A service's budget is spent: everyone on its routes gets 429s.
    ServiceBudgetSpent,
    /// The shop-wide budget is spent: everyone gets 429s.
    ShopBudgetSpent,
}

/// `600/min burst 100`.
pub fn fmt_limit(r: &RateLimit) -> String {
    format!(
        "{}/min burst {}",
        r.requests_per_minute,
        r.effective_burst()
    )
}

/// A per-client budget's name as shown: `user`, `address`, a route as `METHOD path`.
fn budget_label(name: &str) -> &str {
    name.strip_prefix("route:").unwrap_or(name)
}

/// Order of the per-client budgets: user, address, then the routes.
fn budget_rank(name: &str) -> (u8, &str) {
    match name {
        "user" => (0, name),
        "address" => (1, name),
        _ => (2, name),
    }
}

fn positive(v: Option<f64>) -> bool {
    v.is_some_and(|v| v > 0.0)
}

/// The rate limits of `sf`, from its spec, its active FlashSales and Prometheus.
pub fn limits_of(app: &App, sf: &Storefront) -> Limits {
    let (ns, name) = sf_key(sf);
    let spec = sf.spec.client_limits.clone().unwrap_or_default();
    let mut gateway = app
        .prom
        .service(&ns, &name, "gateway")
        .cloned()
        .unwrap_or_default();
    let estimated = fill_ratelimit_use(app, sf, "gateway", &mut gateway);
    let services_limited = sf
        .spec
        .enabled_services()
        .filter_map(|(service, _)| {
            let id = service.as_str();
            (id != "gateway")
                .then(|| app.prom.service(&ns, &name, id)?.limited_rps)
                .flatten()
                .map(|r| (id.to_string(), r))
        })
        .collect();
    Limits {
        shop_budget: budget_in_force(app, sf, "gateway"),
        shop_use: (gateway.ratelimit_use, estimated),
        clients: spec.effective(),
        default_user: spec.per_user.is_none(),
        default_address: spec.per_address.is_none(),
        throttled_rps: gateway.throttled_rps,
        shop_limited: gateway.limited_rps,
        services_limited,
        traffic: gateway.clients,
        namespace: ns,
        storefront: name,
    }
}

/// The limits the Services view shows under `rows` (its rows): of the selected row's
/// Storefront, else of the first in scope.
pub fn limits(app: &App, rows: &[ServiceRow]) -> Option<Limits> {
    let selected = (app.view == View::Services)
        .then(|| rows.get(app.selection()))
        .flatten();
    let sf = match selected {
        Some(row) => app
            .storefronts()
            .into_iter()
            .find(|sf| sf_key(sf) == (row.namespace.clone(), row.storefront.clone())),
        None => app.focus(),
    }?;
    Some(limits_of(app, sf))
}

impl Limits {
    /// Per-client refusals per second over every budget.
    pub fn client_limited(&self) -> Option<f64> {
        self.traffic.as_ref().and_then(ClientTraffic::limited_rps)
    }

    /// Refusals per second over the services' own budgets.
    fn service_limited(&self) -> Option<f64> {
        self.services_limited
            .iter()
            .map(|(_, r)| *r)
            .reduce(|a, b| a + b)
    }

    /// Per-client budgets that refuse, the most refused first: `address 2.30`.
    fn refusing_budgets(&self) -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = self
            .traffic
            .iter()
            .flat_map(|t| &t.budgets)
            .filter_map(|(name, d)| Some((budget_label(name).to_string(), d.limited?)))
            .filter(|(_, r)| *r > 0.0)
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }

    /// Which limits refuse requests now.
    pub fn verdict(&self) -> Verdict {
        let client = self.client_limited();
        let service = self.service_limited();
        if positive(self.shop_limited) {
            Verdict::ShopBudgetSpent
        } else if positive(service) {
            Verdict::ServiceBudgetSpent
        } else if positive(client) {
            Verdict::ClientsLimited
        } else if client.is_none() && self.shop_limited.is_none() && service.is_none() {
            Verdict::Unknown
        } else {
            Verdict::Quiet
        }
    }

    /// The verdict in words, with the rates behind it, in at most ~65 columns for the usual
    /// cases: `clients limited 2.30/s (address); the shop's budget holds`.
    pub fn verdict_text(&self) -> String {
        let names = |v: &[(String, f64)]| {
            v.iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let verdict = self.verdict();
        let mut parts = Vec::new();
        match verdict {
            Verdict::Unknown => return "– (no limiter numbers from Prometheus)".into(),
            Verdict::Quiet => return "nothing refused".into(),
            Verdict::ShopBudgetSpent => parts.push(format!(
                "shop budget spent: {}/s refused to everyone",
                fmt_rate(self.shop_limited)
            )),
            Verdict::ServiceBudgetSpent | Verdict::ClientsLimited => {}
        }
        let spent: Vec<(String, f64)> = self
            .services_limited
            .iter()
            .filter(|(_, r)| *r > 0.0)
            .cloned()
            .collect();
        if !spent.is_empty() {
            parts.push(format!(
                "{} budget{} spent {}/s",
                names(&spent),
                if spent.len() == 1 { "" } else { "s" },
                fmt_rate(self.service_limited())
            ));
        }
        if let Some(r) = self.client_limited().filter(|r| *r > 0.0) {
            let holds = if verdict == Verdict::ClientsLimited && self.shop_limited == Some(0.0) {
                "; the shop's budget holds"
            } else {
                ""
            };
            parts.push(format!(
                "clients limited {}/s ({}){holds}",
                fmt_rate(Some(r)),
                names(&self.refusing_budgets())
            ));
        }
        parts.join(" · ")
    }

    /// What is in force, as key/value lines: the shop-wide budget, then the per-client limits
    /// (`off`, or the user's and the address's budgets, per route, trusted proxies).
    pub fn spec_lines(&self) -> Vec<(String, String)> {
        let kv = |k: &str, v: String| (k.to_string(), v);
        let mut out = vec![kv(
            "shop budget",
            match &self.shop_budget {
                None => "none (no shop-wide budget)".into(),
                Some((r, sale)) => {
                    let from = sale
                        .as_ref()
                        .map(|s| format!(" (sale {s})"))
                        .unwrap_or_default();
                    let (use_, estimated) = self.shop_use;
                    let mark = if estimated { "~" } else { "" };
                    format!("{}{from} · use {mark}{}", fmt_limit(r), fmt_percent(use_))
                }
            },
        )];
        let Some(c) = &self.clients else {
            out.push(kv(
                "per client",
                "off (clientLimits.enabled: false): shared budgets only".into(),
            ));
            return out;
        };
        let both = self.default_user && self.default_address;
        let default = |d: bool| if d && !both { " (default)" } else { "" };
        out.push(kv(
            "per client",
            format!(
                "user {}{} · address {}{}",
                fmt_limit(&c.per_user),
                default(self.default_user),
                fmt_limit(&c.per_address),
                if both {
                    " (defaults)"
                } else {
                    default(self.default_address)
                }
            ),
        ));
        if c.routes.is_empty() {
            out.push(kv("per route", "none".into()));
        }
        out.extend(
            c.routes
                .iter()
                .map(|(route, r)| kv("per route", format!("{} {}", route.as_str(), fmt_limit(r)))),
        );
        out.push(kv(
            "proxies",
            match c.trusted_proxies.len() {
                0 => "none trusted: X-Forwarded-For ignored".into(),
                n => format!("{n} trusted: {}", c.trusted_proxies.join(", ")),
            },
        ));
        out
    }

    /// What the limiter did, as key/value lines: 429s by what refused them, per-client
    /// refusals by budget (with their share of that budget's decisions), clients tracked.
    pub fn metric_lines(&self) -> Vec<(String, String)> {
        let kv = |k: &str, v: String| (k.to_string(), v);
        let services = match self.service_limited() {
            None => "–".to_string(),
            Some(r) => {
                let spent: Vec<&str> = self
                    .services_limited
                    .iter()
                    .filter(|(_, r)| *r > 0.0)
                    .map(|(s, _)| s.as_str())
                    .collect();
                if spent.is_empty() {
                    fmt_rate(Some(r))
                } else {
                    format!("{} ({})", fmt_rate(Some(r)), spent.join(", "))
                }
            }
        };
        let mut out = vec![kv(
            "429/s",
            format!(
                "{}: per client {} · shop budget {} · services {services}",
                fmt_rate(self.throttled_rps),
                fmt_rate(self.client_limited()),
                fmt_rate(self.shop_limited),
            ),
        )];
        if self.clients.is_none() && self.traffic.is_none() {
            return out;
        }
        let mut budgets: Vec<(&String, &crate::metrics::Decisions)> =
            self.traffic.iter().flat_map(|t| &t.budgets).collect();
        budgets.sort_by_key(|(name, _)| budget_rank(name));
        let by_budget = budgets
            .iter()
            .map(|(name, d)| {
                let share = match (d.allowed, d.limited) {
                    (Some(a), Some(l)) if l > 0.0 => {
                        format!(" ({})", fmt_percent(Some(l / (a + l))))
                    }
                    _ => String::new(),
                };
                format!("{} {}{share}", budget_label(name), fmt_rate(d.limited))
            })
            .collect::<Vec<_>>();
        out.push(kv(
            "limited/s",
            if by_budget.is_empty() {
                "–".into()
            } else {
                by_budget.join(" · ")
            },
        ));
        let t = self.traffic.as_ref();
        let tracked = t.and_then(|t| t.tracked);
        let pods = t.and_then(|t| t.pods);
        out.push(kv(
            "clients",
            match (tracked, pods) {
                (None, _) => "–".into(),
                (Some(n), Some(p)) => format!(
                    "{n:.0} tracked on {p:.0} gateway pod{}",
                    if p == 1.0 { "" } else { "s" }
                ),
                (Some(n), None) => format!("{n:.0} tracked"),
            },
        ));
        out
    }
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
