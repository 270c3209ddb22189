//! What the controller reads and records: routers' epochs, status conditions, Job results and
//! the shards' part of a handoff.

use super::*;

#[test]
fn routers_report_the_lowest_epoch_or_nothing_when_one_is_silent() {
    assert_eq!(
        routers_epoch(
            "inventory",
            &[Some("inventory@2; orders@1"), Some("inventory@3")]
        ),
        Some(2)
    );
    assert_eq!(
        routers_epoch("inventory", &[Some("inventory@2"), None]),
        None,
        "a gateway that reports nothing"
    );
    assert_eq!(routers_epoch("inventory", &[Some("orders@4")]), None);
    assert_eq!(routers_epoch("inventory", &[Some("inventory@x")]), None);
    assert_eq!(routers_epoch("inventory", &[]), Some(i64::MAX));
}

#[test]
fn status_conditions_say_what_runs_and_what_is_held() {
    use std::collections::BTreeMap;
    use storefront_crds::{ReshardPhase, RingStatus};
    let idle = BTreeMap::from([(
        "inventory".to_string(),
        RingStatus {
            shards: 4,
            epoch: 3,
            ..RingStatus::default()
        },
    )]);
    let want = |n| BTreeMap::from([("inventory".to_string(), n)]);
    let c = conditions(&idle, &want(4));
    assert_eq!(
        c.iter().map(|c| (c.0, c.1, c.2)).collect::<Vec<_>>(),
        [
            ("Resharding", false, "Idle"),
            ("ReshardingInSync", true, "InSync")
        ]
    );
    let mut running = idle.clone();
    running.get_mut("inventory").unwrap().resharding = Some(crate::testutil::reshard_status(
        ReshardPhase::Copying,
        4,
        5,
        4,
        50,
    ));
    let c = conditions(&running, &want(5));
    assert_eq!((c[0].1, c[0].2), (true, "Resharding"));
    assert!(
        c[0].3.contains("inventory 4 → 5 shards: Copying (50%"),
        "{}",
        c[0].3
    );
    assert_eq!((c[1].1, c[1].2), (false, "Resharding"));
    // Orders has no handoff: a new count is held, and said so.
    let orders = BTreeMap::from([(
        "orders".to_string(),
        RingStatus {
            shards: 2,
            epoch: 1,
            ..RingStatus::default()
        },
    )]);
    let c = conditions(&orders, &BTreeMap::from([("orders".to_string(), 3)]));
    assert_eq!((c[1].1, c[1].2), (false, "Held"));
    assert!(c[1].3.contains("not supported"), "{}", c[1].3);
    assert!(conditions(&BTreeMap::new(), &BTreeMap::new()).is_empty());
}

#[test]
fn job_results_parse_from_the_last_json_line() {
    let msg = "some log line\n{\"step\":\"copy\",\"epoch\":2,\"progress\":{\"keys\":10,\"doneKeys\":10,\"lines\":3,\"mismatched\":{\"keys\":0,\"lines\":0}}}\n";
    let r = parse_result(msg).expect("parses");
    let p = r.progress(1).expect("progress");
    assert_eq!((p.epoch, p.attempt, p.keys, p.finished), (2, 1, 10, true));
    let sw = parse_result(r#"{"step":"switch","epoch":2,"switched":{"epoch":2,"from":4,"to":5,"movedKeys":7,"movedLines":1,"syncedKeys":0,"settledLines":0,"lockWaitMs":1.5,"pauseMs":9.0,"now":true}}"#).expect("parses");
    assert_eq!(sw.switched.map(|s| s.moved_keys), Some(7));
    assert!(parse_result("not json").is_none());
}

#[test]
fn shards_show_their_part_of_the_handoff() {
    use storefront_crds::{ReshardPhase, RingStatus, ShardPhase};
    let at = |from, to, phase| RingStatus {
        shards: from,
        epoch: 1,
        resharding: Some(crate::testutil::reshard_status(phase, from, to, 2, 50)),
        last: None,
    };
    // Growing 4 -> 5: the new shard joins until the switch; the others are not concerned.
    let grow = at(4, 5, ReshardPhase::Copying);
    assert_eq!(shard_phase(4, &grow), Some((ShardPhase::Joining, 50)));
    assert_eq!(shard_phase(0, &grow), None);
    assert_eq!(shard_phase(4, &at(4, 5, ReshardPhase::Draining)), None);
    // Shrinking 5 -> 3: the removed shards drain, then are retired after the switch.
    let shrink = at(5, 3, ReshardPhase::Verifying);
    assert_eq!(shard_phase(3, &shrink), Some((ShardPhase::Draining, 50)));
    assert_eq!(shard_phase(4, &shrink), Some((ShardPhase::Draining, 50)));
    assert_eq!(shard_phase(2, &shrink), None);
    assert_eq!(
        shard_phase(4, &at(5, 3, ReshardPhase::Draining)),
        Some((ShardPhase::Retired, 50))
    );
    assert_eq!(shard_phase(0, &RingStatus::default()), None);
}
