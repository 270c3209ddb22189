#![allow(clippy::unwrap_used)]

use super::*;
use crate::testutil::{sale, sample_storefront, ts};

fn ready(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn eval(
    sale: &FlashSale,
    sf: Option<&Storefront>,
    ready: &BTreeMap<String, i32>,
    now: &str,
) -> Outcome {
    evaluate(&Inputs {
        sale,
        storefront: sf,
        sales: std::slice::from_ref(sale),
        ready,
        preflight: None,
        now: ts(now),
    })
}

fn cond<'a>(o: &'a Outcome, t: &str) -> &'a Condition {
    find_condition(&o.status, t).unwrap()
}

fn fresh() -> FlashSale {
    let mut s = sale(
        "bf",
        "acme",
        "2026-11-27T08:00:00Z",
        "2026-11-27T20:00:00Z",
        "10m",
    );
    s.status = None;
    s.metadata.generation = Some(1);
    s
}

#[test]
fn scheduled_sale_requeues_exactly_at_prewarm_and_reports_a_countdown() {
    let sf = sample_storefront();
    let o = eval(&fresh(), Some(&sf), &ready(&[]), "2026-11-27T07:00:00Z");
    assert_eq!(o.status.phase, Some(SalePhase::Scheduled));
    assert_eq!(
        o.status.next_transition_time,
        Some(Time(ts("2026-11-27T07:50:00Z")))
    );
    assert_eq!(o.requeue, Some(Duration::from_secs(50 * 60)));
    assert_eq!(
        o.status.window_start,
        Some(Time(ts("2026-11-27T08:00:00Z")))
    );
    assert!(!o.status.limits_open);
    // Planned versus actual for each service the sale names.
    let orders = &o.status.services["orders"];
    assert_eq!((orders.base_replicas, orders.planned_replicas), (2, 6));
    assert_eq!(orders.requests_per_minute, Some(15000));
    let gw = &o.status.services["gateway"];
    assert_eq!(
        (gw.planned_replicas, gw.planned_max_replicas),
        (6, Some(20))
    );
    assert_eq!(o.events.len(), 1);
    assert!(
        o.events[0].message.starts_with("new → Scheduled"),
        "{:?}",
        o.events
    );
    assert_eq!(cond(&o, "Ready").status, "True");
}

#[test]
fn limits_open_at_start_when_capacity_is_ready_and_stay_open_for_the_window() {
    let sf = sample_storefront();
    let all_ready = ready(&[
        ("gateway", 6),
        ("orders", 6),
        ("payments", 4),
        ("catalog", 3),
    ]);
    let mut s = fresh();
    let o = eval(&s, Some(&sf), &all_ready, "2026-11-27T08:00:00Z");
    assert_eq!(o.status.phase, Some(SalePhase::Active));
    assert!(o.status.limits_open);
    assert!(
        o.events
            .iter()
            .any(|e| e.reason == "LimitsOpened" && e.message.contains("gateway 20000 rpm"))
    );
    assert_eq!(o.requeue, Some(Duration::from_secs(12 * 3600)));
    // A pod restarting mid-sale does not close the limits again.
    s.status = Some(o.status);
    let o = eval(
        &s,
        Some(&sf),
        &ready(&[("orders", 5)]),
        "2026-11-27T09:00:00Z",
    );
    assert!(o.status.limits_open);
    assert_eq!(cond(&o, "CapacityLate").status, "False");
    // The end closes them.
    s.status = Some(o.status);
    let o = eval(&s, Some(&sf), &all_ready, "2026-11-27T20:00:00Z");
    assert_eq!(o.status.phase, Some(SalePhase::Restoring));
    assert!(!o.status.limits_open);
    assert_eq!(o.requeue, Some(Duration::from_secs(10)));
    s.status = Some(o.status);
    let o = eval(&s, Some(&sf), &all_ready, "2026-11-27T20:00:10Z");
    assert_eq!(o.status.phase, Some(SalePhase::Completed));
    assert_eq!(o.requeue, None);
    assert!(o.events[0].message.starts_with("Restoring → Completed"));
}

#[test]
fn capacity_not_ready_at_start_holds_the_limits_and_says_so_once() {
    let sf = sample_storefront();
    let mut s = fresh();
    let few = ready(&[
        ("gateway", 6),
        ("orders", 3),
        ("payments", 4),
        ("catalog", 3),
    ]);
    let o = eval(&s, Some(&sf), &few, "2026-11-27T08:00:00Z");
    assert_eq!(o.status.phase, Some(SalePhase::Active));
    assert!(!o.status.limits_open);
    let late = cond(&o, "CapacityLate");
    assert_eq!(late.status, "True");
    assert!(late.message.contains("orders 3/6"), "{}", late.message);
    assert_eq!(cond(&o, "Ready").status, "False");
    assert!(
        o.events
            .iter()
            .any(|e| e.warning && e.reason == "CapacityLate")
    );
    assert_eq!(o.requeue, Some(LATE_RECHECK));
    // Still late a second later: no second Warning.
    s.status = Some(o.status);
    let o = eval(&s, Some(&sf), &few, "2026-11-27T08:00:01Z");
    assert!(!o.events.iter().any(|e| e.reason == "CapacityLate"));
    // Capacity Ready: limits open.
    s.status = Some(o.status);
    let all = ready(&[
        ("gateway", 6),
        ("orders", 6),
        ("payments", 4),
        ("catalog", 3),
    ]);
    let o = eval(&s, Some(&sf), &all, "2026-11-27T08:00:07Z");
    assert!(o.status.limits_open);
    assert_eq!(cond(&o, "CapacityLate").status, "False");
    assert!(o.events.iter().any(|e| e.reason == "LimitsOpened"));
}

#[test]
fn a_sale_without_its_storefront_fails_and_recovers_when_it_appears() {
    let sf = sample_storefront();
    let mut s = fresh();
    let o = eval(&s, None, &ready(&[]), "2026-11-27T07:00:00Z");
    assert_eq!(o.status.phase, Some(SalePhase::Failed));
    assert_eq!(cond(&o, "Degraded").reason, "StorefrontNotFound");
    assert!(
        cond(&o, "Degraded")
            .message
            .contains("\"acme\" does not exist")
    );
    assert_eq!(o.requeue, Some(MISSING_RECHECK));
    s.status = Some(o.status);
    let o = eval(&s, Some(&sf), &ready(&[]), "2026-11-27T07:00:00Z");
    assert_eq!(o.status.phase, Some(SalePhase::Scheduled));
    assert_eq!(cond(&o, "Degraded").status, "False");
}

#[test]
fn what_the_schema_cannot_check_is_invalid_spec_with_the_field_named() {
    let sf = sample_storefront();
    let mut s = fresh();
    s.spec.start = None;
    s.spec.end = None;
    s.spec.schedule = Some(
        serde_yaml::from_str("{cron: '0 20 * * FRI', duration: 3h, timeZone: Europe/Atlantis}")
            .unwrap(),
    );
    let o = eval(&s, Some(&sf), &ready(&[]), "2026-11-27T07:00:00Z");
    assert_eq!(o.status.phase, Some(SalePhase::Failed));
    let d = cond(&o, "Degraded");
    assert_eq!(d.reason, "InvalidSpec");
    assert!(
        d.message.contains("spec.schedule.timeZone"),
        "{}",
        d.message
    );
    assert!(
        o.status.services.is_empty(),
        "nothing planned for an invalid sale"
    );
    for (cron, dur, field) in [
        ("0 20 31 2 *", "1h", "spec.schedule.cron"),
        ("*/10 * * * *", "15m", "spec.schedule.duration"),
    ] {
        s.spec.schedule =
            Some(serde_yaml::from_str(&format!("{{cron: '{cron}', duration: {dur}}}")).unwrap());
        let o = eval(&s, Some(&sf), &ready(&[]), "2026-11-27T07:00:00Z");
        assert!(
            cond(&o, "Degraded").message.contains(field),
            "{cron}: {:?}",
            cond(&o, "Degraded")
        );
    }
}

#[test]
fn unchanged_inputs_give_an_unchanged_status() {
    let sf = sample_storefront();
    let mut s = fresh();
    let r = ready(&[("orders", 2)]);
    let o = eval(&s, Some(&sf), &r, "2026-11-27T07:00:00Z");
    s.status = Some(o.status.clone());
    let again = eval(&s, Some(&sf), &r, "2026-11-27T07:10:00Z");
    assert_eq!(
        again.status, o.status,
        "no status write when nothing changed"
    );
    assert!(again.events.is_empty());
}
