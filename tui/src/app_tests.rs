//! Tests of [`App::update`]: navigation, palette, filter, picker, data and staleness.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::fixtures;

#[test]
fn number_keys_and_tab_cycle_views() {
    let mut app = fixtures::healthy();
    app.update(Action::Show(View::Events));
    assert_eq!(app.view, View::Events);
    app.update(Action::NextView);
    assert_eq!(app.view, View::Topology);
    app.update(Action::PrevView);
    assert_eq!(app.view, View::Events);
}

#[test]
fn selection_stays_in_range() {
    let mut app = fixtures::healthy();
    app.update(Action::Show(View::Services));
    app.update(Action::Bottom);
    assert_eq!(app.selection(), 6, "seven services");
    app.update(Action::Down);
    assert_eq!(app.selection(), 6);
    app.update(Action::Top);
    assert_eq!(app.selection(), 0);
    app.update(Action::Up);
    assert_eq!(app.selection(), 0);
}

#[test]
fn palette_runs_completed_commands_and_reports_unknown_ones() {
    let mut app = fixtures::healthy();
    app.update(Action::Command);
    for c in "sh".chars() {
        app.update(Action::Input(c));
    }
    app.update(Action::Complete);
    assert_eq!(app.mode, Mode::Command("shards".into()));
    app.update(Action::Submit);
    assert_eq!(app.view, View::Shards);
    assert_eq!(app.mode, Mode::Normal);
    app.update(Action::Command);
    app.update(Action::Input('x'));
    app.update(Action::Submit);
    assert!(app.message.as_deref().unwrap().contains("unknown command"));
    assert_eq!(app.view, View::Shards);
}

#[test]
fn filter_narrows_rows_and_esc_clears_it() {
    let mut app = fixtures::healthy();
    app.update(Action::Show(View::Services));
    app.update(Action::Filter);
    for c in "pay".chars() {
        app.update(Action::Input(c));
    }
    assert_eq!(app.row_count(), 1);
    app.update(Action::Submit);
    assert_eq!(app.filter, "pay");
    app.update(Action::Back);
    assert_eq!(app.filter, "");
    assert_eq!(app.row_count(), 7);
}

#[test]
fn enter_opens_detail_esc_closes_it() {
    let mut app = fixtures::healthy();
    app.update(Action::Show(View::Services));
    app.update(Action::Enter);
    assert_eq!(app.overlay, Overlay::Detail);
    app.update(Action::Back);
    assert_eq!(app.overlay, Overlay::None);
    app.update(Action::Quit);
    assert!(app.quit);
}

#[test]
fn picker_scopes_to_a_storefront_and_back_to_all() {
    let mut app = fixtures::healthy();
    app.update(Action::Picker);
    app.update(Action::Down);
    app.update(Action::Enter);
    assert_eq!(
        app.scope,
        Scope {
            namespace: Some("shop".into()),
            storefront: Some("acme".into())
        }
    );
    app.update(Action::Command);
    for c in "ns all".chars() {
        app.update(Action::Input(c));
    }
    app.update(Action::Submit);
    assert_eq!(app.scope, Scope::default());
    app.update(Action::Command);
    for c in "sf nope".chars() {
        app.update(Action::Input(c));
    }
    app.update(Action::Submit);
    assert!(
        app.storefronts().is_empty(),
        "an unknown Storefront shows nothing, not everything"
    );
}

#[test]
fn failures_keep_their_first_seen_time_across_updates() {
    let mut app = fixtures::degraded();
    let pod = |app: &App| {
        app.failures
            .iter()
            .find(|f| f.kind == "Pod")
            .map(|f| f.since)
    };
    let first = pod(&app).unwrap();
    app.update(Action::Tick(app.now + jiff::SignedDuration::from_secs(30)));
    assert_eq!(pod(&app), Some(first));
    // the pod recovers: the failure leaves the list
    let mut pods = app.cluster.pods.clone();
    for p in &mut pods {
        p.waiting_reason = None;
    }
    app.update(Action::Data(Update::Pods(pods)));
    assert_eq!(pod(&app), None);
}

#[test]
fn api_errors_keep_data_and_the_next_delivery_clears_them() {
    let mut app = fixtures::api_down();
    assert!(app.api.error().is_some());
    assert_eq!(app.cluster.storefronts.len(), 1, "last-known objects stay");
    assert!(app.api.unreachable());
    app.update(Action::Data(Update::ApiError(
        "FlashSale".into(),
        "failed to watch FlashSale: forbidden".into(),
    )));
    let sfs = app.cluster.storefronts.clone();
    app.update(Action::Data(Update::Storefronts(sfs)));
    assert_eq!(
        app.api.error().map(String::as_str),
        Some("failed to watch FlashSale: forbidden"),
        "a delivery clears only its own kind's error"
    );
    assert!(!app.api.unreachable(), "forbidden is not unreachable");
    app.update(Action::Data(Update::Sales(Vec::new())));
    assert!(app.api.error().is_none());
}

#[test]
fn prometheus_errors_keep_the_last_snapshot() {
    let app = fixtures::prometheus_down();
    assert!(app.prom.error.is_some());
    let m = app.prom.service("shop", "acme", "gateway").unwrap();
    assert_eq!(m.rps, Some(412.0));
    assert!(
        app.failures
            .iter()
            .any(|f| f.kind == "Metrics" && f.reason == "Unreachable")
    );
}

#[test]
fn services_say_what_the_autoscaler_chose() {
    let mut app = fixtures::healthy();
    let mut deps = app.cluster.deployments.clone();
    deps.iter_mut()
        .find(|d| d.name == "acme-gateway")
        .unwrap()
        .desired = 5;
    app.update(Action::Data(Update::Deployments(deps)));
    let rows = views::services(&app);
    let gw = rows.iter().find(|r| r.service == "gateway").unwrap();
    assert_eq!(gw.why, "HPA 5 · min 2, max 10 +sale");
    assert_eq!((gw.ready, gw.desired), (Some(2), Some(5)));
    let auth = rows.iter().find(|r| r.service == "auth").unwrap();
    assert_eq!(auth.why, "replicas 2 +sale", "no autoscaler, no HPA note");
}

#[test]
fn rate_limit_use_from_the_limiters_count_else_estimated_from_the_served_rate() {
    let mut app = fixtures::healthy();
    let mut sfs = app.cluster.storefronts.clone();
    for (service, rpm) in [("auth", 4800), ("orders", 1000), ("inventory", 600)] {
        sfs[0].spec.services.get_mut(service).unwrap().rate_limit =
            Some(serde_json::from_value(serde_json::json!({ "requestsPerMinute": rpm })).unwrap());
    }
    app.update(Action::Data(Update::Storefronts(sfs)));
    let mut snap = app.prom.last.clone().unwrap();
    for m in snap.services.values_mut() {
        if m.rps != Some(412.0) {
            m.ratelimit_use = None;
        }
        if m.rps == Some(44.0) {
            // inventory: the gateway's limiter allowed 3/s of the 44/s it served
            m.admitted_rps = Some(3.0);
        }
    }
    app.update(Action::Data(Update::Prometheus(Ok(snap))));
    let rows = views::services(&app);
    let row = |s: &str| rows.iter().find(|r| r.service == s).unwrap();
    // gateway: the gateway's own count wins
    assert_eq!(row("gateway").metrics.ratelimit_use, Some(0.21));
    assert!(!row("gateway").ratelimit_estimated);
    // auth: 96/s = 5760/min of its 4800/min budget
    assert_eq!(
        row("auth").metrics.ratelimit_use,
        Some(96.0 * 60.0 / 4800.0)
    );
    assert!(row("auth").ratelimit_estimated);
    // orders: the active sale's 15000/min replaces the Storefront's 1000/min
    assert_eq!(
        row("orders").metrics.ratelimit_use,
        Some(38.0 * 60.0 / 15000.0)
    );
    // inventory: the limiter's allowed count, not an estimate
    assert_eq!(
        row("inventory").metrics.ratelimit_use,
        Some(3.0 * 60.0 / 600.0)
    );
    assert!(!row("inventory").ratelimit_estimated);
    // catalog: no budget, no estimate
    assert_eq!(row("catalog").metrics.ratelimit_use, None);
    assert!(!row("catalog").ratelimit_estimated);
    assert_eq!(views::ratelimit_estimate(None, Some(100)), None, "no rate");
    assert_eq!(views::ratelimit_estimate(Some(1.0), Some(0)), None);
}
