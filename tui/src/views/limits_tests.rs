#![allow(clippy::unwrap_used)]

use super::*;
use crate::{
    fixtures,
    metrics::{Decisions, ServiceKey},
    state::{Action, Update},
    views::services,
};

fn acme(app: &App) -> Limits {
    limits_of(app, app.focus().unwrap())
}

fn value<'a>(lines: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The fixture shop with its spec's `clientLimits` replaced.
fn with_client_limits(mut app: App, limits: serde_json::Value) -> App {
    let mut sfs = app.cluster.storefronts.clone();
    sfs[0].spec.client_limits = serde_json::from_value(limits).unwrap();
    app.update(Action::Data(Update::Storefronts(sfs)));
    app
}

/// The fixture's metrics with the gateway's and orders' numbers changed by `f`.
fn with_metrics(mut app: App, f: impl Fn(&str, &mut crate::metrics::ServiceMetrics)) -> App {
    let mut snap = app.prom.last.clone().unwrap();
    for (ServiceKey { service, .. }, m) in &mut snap.services {
        f(service, m);
    }
    app.update(Action::Data(Update::Prometheus(Ok(snap))));
    app
}

#[test]
fn the_limits_in_force_come_from_the_spec_with_defaults_resolved() {
    let l = acme(&fixtures::healthy());
    let spec = l.spec_lines();
    assert_eq!(
        value(&spec, "shop budget"),
        ["20000/min burst 2000 (sale black-friday) · use 21.0%"],
        "the active sale's budget beats the spec's (none)"
    );
    assert_eq!(
        value(&spec, "per client"),
        ["user 600/min burst 100 · address 1200/min burst 200 (defaults)"]
    );
    assert_eq!(
        value(&spec, "per route"),
        ["POST /api/v1/sessions 30/min burst 5"]
    );
    assert_eq!(value(&spec, "proxies"), ["1 trusted: 10.0.0.0/8"]);
}

#[test]
fn a_shop_that_writes_nothing_shows_the_defaults_and_off_shows_off() {
    let app = with_client_limits(fixtures::healthy(), serde_json::Value::Null);
    let spec = acme(&app).spec_lines();
    assert_eq!(
        value(&spec, "per client"),
        ["user 600/min burst 100 · address 1200/min burst 200 (defaults)"]
    );
    assert_eq!(value(&spec, "per route"), ["none"]);
    assert_eq!(
        value(&spec, "proxies"),
        ["none trusted: X-Forwarded-For ignored"]
    );

    let app = with_client_limits(
        fixtures::healthy(),
        serde_json::json!({"perUser": {"requestsPerMinute": 60},
                           "routes": [{"route": "POST /api/v1/orders", "requestsPerMinute": 20},
                                      {"route": "GET /api/v1/products", "requestsPerMinute": 600}],
                           "trustedProxies": ["10.0.0.0/8", "fd00::/8"]}),
    );
    let spec = acme(&app).spec_lines();
    assert_eq!(
        value(&spec, "per client"),
        ["user 60/min burst 6 · address 1200/min burst 200 (default)"],
        "burst: a tenth of a minute's"
    );
    assert_eq!(
        value(&spec, "per route"),
        [
            "GET /api/v1/products 600/min burst 60",
            "POST /api/v1/orders 20/min burst 2"
        ]
    );
    assert_eq!(value(&spec, "proxies"), ["2 trusted: 10.0.0.0/8, fd00::/8"]);

    let app = with_client_limits(fixtures::healthy(), serde_json::json!({"enabled": false}));
    let l = acme(&app);
    let spec = l.spec_lines();
    assert_eq!(l.clients, None);
    assert_eq!(
        value(&spec, "per client"),
        ["off (clientLimits.enabled: false): shared budgets only"]
    );
    assert_eq!(spec.len(), 2, "the shop budget and `off`: {spec:?}");
    for gone in ["per route", "proxies"] {
        assert!(value(&spec, gone).is_empty(), "{gone} while off");
    }
}

#[test]
fn refusals_are_split_by_what_refused_them() {
    let l = acme(&fixtures::degraded());
    let m = l.metric_lines();
    assert_eq!(
        value(&m, "429/s"),
        ["3.50: per client 2.30 · shop budget 0 · services 1.20 (orders)"]
    );
    // 2.3 of the address budget's 114.3 decisions/s; in the order user, address, routes.
    assert_eq!(
        value(&m, "limited/s"),
        ["user 0 · address 2.30 (2.0%) · POST /api/v1/sessions 0"]
    );
    assert_eq!(value(&m, "clients"), ["1234 tracked on 2 gateway pods"]);
    assert_eq!(l.verdict(), Verdict::ServiceBudgetSpent);
    assert_eq!(
        l.verdict_text(),
        "orders budget spent 1.20/s · clients limited 2.30/s (address)"
    );
}

#[test]
fn one_client_limited_is_told_from_the_shop_budget_spent() {
    let quiet = acme(&fixtures::healthy());
    assert_eq!(quiet.verdict(), Verdict::Quiet);
    assert_eq!(quiet.verdict_text(), "nothing refused");

    // One user at ten times its limit: refused per user, the shared budgets hold.
    let one_client = with_metrics(fixtures::healthy(), |service, m| {
        if let Some(c) = m.clients.as_mut().filter(|_| service == "gateway") {
            c.budgets.insert(
                "user".into(),
                Decisions {
                    allowed: Some(10.0),
                    limited: Some(90.0),
                },
            );
        }
    });
    let l = acme(&one_client);
    assert_eq!(l.verdict(), Verdict::ClientsLimited);
    assert_eq!(
        l.verdict_text(),
        "clients limited 90.0/s (user); the shop's budget holds"
    );
    assert!(value(&l.metric_lines(), "limited/s")[0].starts_with("user 90.0 (90.0%) · "));

    // The shop's budget spent: everyone is refused, whatever the clients do.
    let spent = with_metrics(one_client, |service, m| {
        if service == "gateway" {
            m.limited_rps = Some(40.0);
        }
    });
    let l = acme(&spent);
    assert_eq!(l.verdict(), Verdict::ShopBudgetSpent);
    assert_eq!(
        l.verdict_text(),
        "shop budget spent: 40.0/s refused to everyone · clients limited 90.0/s (user)"
    );
}

#[test]
fn without_limiter_numbers_nothing_is_claimed() {
    let app = with_metrics(fixtures::healthy(), |_, m| {
        m.limited_rps = None;
        m.clients = None;
        m.throttled_rps = None;
    });
    let l = acme(&app);
    assert_eq!(l.verdict(), Verdict::Unknown);
    let m = l.metric_lines();
    assert_eq!(
        value(&m, "429/s"),
        ["–: per client – · shop budget – · services –"]
    );
    assert_eq!(value(&m, "limited/s"), ["–"]);
    assert_eq!(value(&m, "clients"), ["–"], "never zeros for unknowns");
}

#[test]
fn the_services_view_shows_the_limits_of_the_selected_rows_storefront() {
    let mut app = fixtures::many(3);
    app.update(Action::Show(View::Services));
    let shown = |app: &App| limits(app, &services(app)).map(|l| l.namespace);
    assert_eq!(shown(&app).as_deref(), Some("shop-0"));
    for _ in 0..8 {
        app.update(Action::Down);
    }
    assert_eq!(services(&app)[app.selection()].namespace, "shop-1");
    assert_eq!(shown(&app).as_deref(), Some("shop-1"));
    assert_eq!(shown(&fixtures::empty()), None);
}
