#![allow(clippy::unwrap_used)]

use super::*;
use crate::flashsale::FlashSaleSpec;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn spec(yaml: &str) -> FlashSaleSpec {
    serde_yaml::from_str(&format!("storefrontRef: acme\n{yaml}")).unwrap()
}

fn schedule(yaml: &str) -> Schedule {
    Schedule::from_spec(&spec(yaml), at("2026-01-01T00:00:00Z")).unwrap()
}

fn phase(s: &Schedule, now: &str) -> (SalePhase, SaleEffect, Option<Timestamp>) {
    let st = s.state(at(now));
    (st.phase, st.effect, st.next_transition)
}

const NONE: SaleEffect = SaleEffect {
    capacity: false,
    limits: false,
};
const CAPACITY: SaleEffect = SaleEffect {
    capacity: true,
    limits: false,
};
const BOTH: SaleEffect = SaleEffect {
    capacity: true,
    limits: true,
};

#[test]
fn one_off_walks_every_phase_and_names_the_next_boundary() {
    let s = schedule("start: 2026-11-27T20:00:00Z\nend: 2026-11-27T23:00:00Z\nprewarm: 10m");
    let next = |t: &str| Some(at(t));
    assert_eq!(
        phase(&s, "2026-11-27T19:00:00Z"),
        (SalePhase::Scheduled, NONE, next("2026-11-27T19:50:00Z"))
    );
    // Boundaries are inclusive at their start.
    assert_eq!(
        phase(&s, "2026-11-27T19:50:00Z"),
        (
            SalePhase::PreWarming,
            CAPACITY,
            next("2026-11-27T20:00:00Z")
        )
    );
    assert_eq!(
        phase(&s, "2026-11-27T20:00:00Z"),
        (SalePhase::Active, BOTH, next("2026-11-27T23:00:00Z"))
    );
    assert_eq!(
        phase(&s, "2026-11-27T22:59:59.999Z"),
        (SalePhase::Active, BOTH, next("2026-11-27T23:00:00Z"))
    );
    // Limits close at the end; capacity follows after the grace.
    assert_eq!(
        phase(&s, "2026-11-27T23:00:00Z"),
        (SalePhase::Restoring, CAPACITY, next("2026-11-27T23:00:10Z"))
    );
    assert_eq!(
        phase(&s, "2026-11-27T23:00:10Z"),
        (SalePhase::Completed, NONE, None)
    );
}

#[test]
fn default_prewarm_is_five_minutes() {
    let s = schedule("start: 2026-11-27T20:00:00Z\nend: 2026-11-27T23:00:00Z");
    assert_eq!(s.prewarm(), SignedDuration::from_mins(5));
    assert_eq!(phase(&s, "2026-11-27T19:55:00Z").0, SalePhase::PreWarming);
    assert_eq!(phase(&s, "2026-11-27T19:54:59Z").0, SalePhase::Scheduled);
}

#[test]
fn recurring_in_a_time_zone_opens_at_local_time() {
    // Fridays 20:00 Europe/Berlin (CET, UTC+1 in November) for 3 hours.
    let s = schedule(
        "schedule: {cron: '0 20 * * FRI', duration: 3h, timeZone: Europe/Berlin}\nprewarm: 10m",
    );
    assert_eq!(
        phase(&s, "2026-11-27T18:49:00Z"),
        (SalePhase::Scheduled, NONE, Some(at("2026-11-27T18:50:00Z")))
    );
    assert_eq!(phase(&s, "2026-11-27T18:55:00Z").0, SalePhase::PreWarming);
    let st = s.state(at("2026-11-27T19:00:00Z"));
    assert_eq!(st.phase, SalePhase::Active);
    assert_eq!(
        st.window,
        Some(Window {
            start: at("2026-11-27T19:00:00Z"),
            end: at("2026-11-27T22:00:00Z")
        })
    );
    assert_eq!(st.next_transition, Some(at("2026-11-27T22:00:00Z")));
    // After the window and its grace, back to Scheduled for next Friday (not Completed).
    let st = s.state(at("2026-11-27T22:00:10Z"));
    assert_eq!(st.phase, SalePhase::Scheduled);
    assert_eq!(st.next_transition, Some(at("2026-12-04T18:50:00Z")));
    assert_eq!(st.window.unwrap().start, at("2026-12-04T19:00:00Z"));
    // In summer the same local time is an hour earlier in UTC.
    assert_eq!(phase(&s, "2027-06-04T18:00:00Z").0, SalePhase::Active);
    assert_eq!(phase(&s, "2027-06-04T17:59:59Z").0, SalePhase::PreWarming);
}

#[test]
fn a_sale_at_a_time_skipped_by_spring_forward_starts_after_the_gap() {
    // 02:30 does not exist in Berlin on 2026-03-29; the window opens at 03:30 CEST (01:30Z)
    // and still lasts its full hour.
    let s = schedule(
        "schedule: {cron: '30 2 * * *', duration: 1h, timeZone: Europe/Berlin}\nprewarm: 1m",
    );
    assert_eq!(phase(&s, "2026-03-29T01:29:00Z").0, SalePhase::PreWarming);
    let st = s.state(at("2026-03-29T01:30:00Z"));
    assert_eq!(st.phase, SalePhase::Active);
    assert_eq!(st.window.unwrap().end, at("2026-03-29T02:30:00Z"));
    // The day before, 02:30 CET = 01:30Z; the day after, 02:30 CEST = 00:30Z.
    assert_eq!(phase(&s, "2026-03-28T01:30:00Z").0, SalePhase::Active);
    assert_eq!(phase(&s, "2026-03-30T00:30:00Z").0, SalePhase::Active);
}

#[test]
fn an_ambiguous_time_on_fall_back_runs_once_at_its_first_occurrence() {
    // 01:30 happens twice in New York on 2026-11-01: EDT (05:30Z) then EST (06:30Z).
    let s = schedule(
        "schedule: {cron: '30 1 * * *', duration: 30m, timeZone: America/New_York}\nprewarm: 1m",
    );
    assert_eq!(phase(&s, "2026-11-01T05:30:00Z").0, SalePhase::Active);
    assert_eq!(phase(&s, "2026-11-01T06:00:00Z").0, SalePhase::Restoring);
    // The second 01:30 is not a window.
    let st = s.state(at("2026-11-01T06:35:00Z"));
    assert_eq!(st.phase, SalePhase::Scheduled);
    assert_eq!(st.window.unwrap().start, at("2026-11-02T06:30:00Z"));
}

#[test]
fn back_to_back_windows_stay_active_and_prewarm_the_next_one() {
    // Every hour for an hour: limits never close between windows.
    let s = schedule("schedule: {cron: '0 * * * *', duration: 1h}\nprewarm: 5m");
    assert_eq!(
        phase(&s, "2026-11-27T10:30:00Z"),
        (SalePhase::Active, BOTH, Some(at("2026-11-27T10:55:00Z")))
    );
    assert_eq!(
        phase(&s, "2026-11-27T10:57:00Z"),
        (SalePhase::Active, BOTH, Some(at("2026-11-27T11:00:00Z")))
    );
    // 11:00: one window ends (its grace runs), the next is active.
    assert_eq!(
        phase(&s, "2026-11-27T11:00:00Z"),
        (SalePhase::Active, BOTH, Some(at("2026-11-27T11:00:10Z")))
    );
    assert_eq!(
        s.state(at("2026-11-27T11:00:05Z")).window.unwrap().start,
        at("2026-11-27T11:00:00Z")
    );
}

#[test]
fn a_short_recurring_window_cycles_active_restoring_scheduled() {
    // Every minute for 20 s, as in the e2e test.
    let s = schedule("schedule: {cron: '* * * * *', duration: 20s}\nprewarm: 5s");
    let seq = [
        (
            "2026-11-27T10:00:54Z",
            SalePhase::Scheduled,
            "2026-11-27T10:00:55Z",
        ),
        (
            "2026-11-27T10:00:55Z",
            SalePhase::PreWarming,
            "2026-11-27T10:01:00Z",
        ),
        (
            "2026-11-27T10:01:00Z",
            SalePhase::Active,
            "2026-11-27T10:01:20Z",
        ),
        (
            "2026-11-27T10:01:20Z",
            SalePhase::Restoring,
            "2026-11-27T10:01:30Z",
        ),
        (
            "2026-11-27T10:01:30Z",
            SalePhase::Scheduled,
            "2026-11-27T10:01:55Z",
        ),
    ];
    for (now, want, next) in seq {
        let (p, _, n) = phase(&s, now);
        assert_eq!((p, n), (want, Some(at(next))), "at {now}");
    }
}

#[test]
fn prewarm_longer_than_the_gap_keeps_capacity_up() {
    let s = schedule("schedule: {cron: '* * * * *', duration: 20s}\nprewarm: 5m");
    for now in ["2026-11-27T10:00:30Z", "2026-11-27T10:00:45Z"] {
        let st = s.state(at(now));
        assert_eq!(st.phase, SalePhase::PreWarming, "at {now}");
        assert!(st.effect.capacity && !st.effect.limits);
    }
}

#[test]
fn bad_schedules_name_the_field() {
    let now = at("2026-01-01T00:00:00Z");
    for (yaml, field, needle) in [
        (
            "start: 2026-11-27T20:00:00Z\nend: 2026-11-27T20:00:00Z",
            "spec.end",
            "after start",
        ),
        (
            "schedule: {cron: '0 25 * * *', duration: 1h}",
            "spec.schedule.cron",
            "hour field: 25",
        ),
        (
            "schedule: {cron: '0 0 30 2 *', duration: 1h}",
            "spec.schedule.cron",
            "never fires",
        ),
        (
            "schedule: {cron: '0 20 * * *', duration: 1h, timeZone: Mars/Olympus}",
            "spec.schedule.timeZone",
            "unknown time zone \"Mars/Olympus\"",
        ),
        (
            "schedule: {cron: '0 20 * * *', duration: 0s}",
            "spec.schedule.duration",
            "longer than 0",
        ),
        (
            "schedule: {cron: '*/30 * * * *', duration: 45m}",
            "spec.schedule.duration",
            "shortest gap between two starts (30m)",
        ),
        (
            // A daily 24 h window overlaps on the 23-hour spring-forward day.
            "schedule: {cron: '0 0 * * *', duration: 24h, timeZone: Europe/Berlin}",
            "spec.schedule.duration",
            "(23h)",
        ),
        (
            "start: 2026-11-27T20:00:00Z\nend: 2026-11-27T23:00:00Z\nprewarm: soon",
            "spec.prewarm",
            "not a duration",
        ),
    ] {
        let e = Schedule::from_spec(&spec(yaml), now).unwrap_err();
        assert_eq!(e.field, field, "{yaml}: {e}");
        assert!(e.message.contains(needle), "{yaml}: {e}");
    }
    // A daily 24 h window is fine where there is no DST.
    assert!(
        Schedule::from_spec(
            &spec("schedule: {cron: '0 0 * * *', duration: 24h, timeZone: UTC}"),
            now
        )
        .is_ok()
    );
}
