//! The decisions step by step: each step waits for what it must, stale reports do not count.

use super::*;

#[test]
fn sources_and_targets_follow_jump_hash() {
    let up = Reshard {
        from: 4,
        to: 6,
        ..at(Step::Joining, 1)
    };
    assert_eq!((up.sources(), up.targets(), up.shards()), (0..4, 4..6, 6));
    let down = Reshard {
        from: 5,
        to: 3,
        ..at(Step::Joining, 1)
    };
    assert_eq!(
        (down.sources(), down.targets(), down.shards()),
        (3..5, 0..3, 5)
    );
}

#[test]
fn nothing_to_do_when_the_ring_has_the_wanted_count() {
    let d = decide(4, ring(4, 1), None, &Observed::default());
    assert_eq!(d, Decision::new(None));
}

#[test]
fn a_new_count_starts_joining_at_the_next_epoch() {
    let d = decide(5, ring(4, 7), None, &Observed::default());
    let r = d.state.unwrap();
    assert_eq!(
        (r.from, r.to, r.epoch, r.step, r.attempt),
        (4, 5, 8, Step::Joining, 1)
    );
    assert_eq!(d.actions, [Action::EnsureShards(5)]);
    assert_eq!(
        d.events,
        ["resharding 4 → 5 shards: Joining (ring epoch 7 → 8)"]
    );
}

#[test]
fn joining_waits_for_every_shard_to_be_ready() {
    let obs = Observed {
        ready: ready(4),
        ..Observed::default()
    };
    let d = decide(5, ring(4, 1), Some(&at(Step::Joining, 1)), &obs);
    assert_eq!(d.state.unwrap().step, Step::Joining);
    assert_eq!(d.actions, [Action::EnsureShards(5)]);
    let obs = Observed {
        ready: ready(5),
        ..Observed::default()
    };
    let d = decide(5, ring(4, 1), Some(&at(Step::Joining, 1)), &obs);
    assert_eq!(d.state.unwrap().step, Step::Copying);
    assert_eq!(
        d.actions,
        [
            Action::EnsureShards(5),
            Action::Copy {
                epoch: 2,
                attempt: 1
            }
        ]
    );
}

#[test]
fn stale_reports_do_not_advance() {
    // A copy report of an earlier epoch, or of an earlier attempt, is not this copy.
    for copy in [finished(1, 1, 10, 0), finished(2, 0, 10, 0)] {
        let obs = Observed {
            ready: ready(5),
            copy,
            ..Observed::default()
        };
        let d = decide(5, ring(4, 1), Some(&at(Step::Copying, 1)), &obs);
        assert_eq!(d.state.unwrap().step, Step::Copying);
    }
    // An unfinished copy neither.
    let obs = Observed {
        copy: Some(Progress {
            finished: false,
            ..finished(2, 1, 10, 0).unwrap()
        }),
        ..Observed::default()
    };
    let d = decide(5, ring(4, 1), Some(&at(Step::Copying, 1)), &obs);
    assert_eq!(d.state.unwrap().step, Step::Copying);
}

#[test]
fn a_mismatch_copies_again_under_the_next_attempt() {
    let obs = Observed {
        verify: finished(2, 1, 100, 3),
        ..Observed::default()
    };
    let d = decide(5, ring(4, 1), Some(&at(Step::Verifying, 1)), &obs);
    let r = d.state.unwrap();
    assert_eq!((r.step, r.attempt), (Step::Copying, 2));
    assert!(d.actions.contains(&Action::Copy {
        epoch: 2,
        attempt: 2
    }));
    assert_eq!(
        d.events,
        [
            "resharding 4 → 5 shards: Copying (3 of 100 keys differ after copy attempt 1: copying again)"
        ]
    );
}

#[test]
fn the_ring_is_published_only_after_the_sources_fenced() {
    let verified = Observed {
        verify: finished(2, 1, 100, 0),
        ..Observed::default()
    };
    let d = decide(5, ring(4, 1), Some(&at(Step::Verifying, 1)), &verified);
    assert_eq!(d.state.as_ref().unwrap().step, Step::Switching);
    assert_eq!(
        d.actions,
        [Action::EnsureShards(5), Action::Switch { epoch: 2 }]
    );
    let switched = Observed {
        switched: Some(2),
        ..Observed::default()
    };
    let d = decide(5, ring(4, 1), Some(&at(Step::Switching, 1)), &switched);
    assert_eq!(
        d.actions,
        [
            Action::EnsureShards(5),
            Action::Switch { epoch: 2 },
            Action::PublishRing {
                shards: 5,
                epoch: 2
            }
        ]
    );
    // Published, but a router is still on epoch 1: keep switching.
    let lagging = Observed {
        switched: Some(2),
        routers: Some(1),
        ..Observed::default()
    };
    let d = decide(5, ring(5, 2), Some(&at(Step::Switching, 1)), &lagging);
    assert_eq!(d.state.unwrap().step, Step::Switching);
    let switched = Observed {
        routers: Some(2),
        ..lagging
    };
    let d = decide(5, ring(5, 2), Some(&at(Step::Switching, 1)), &switched);
    assert_eq!(d.state.unwrap().step, Step::Draining);
    assert_eq!(
        d.actions,
        [Action::EnsureShards(5), Action::Drain { epoch: 2 }]
    );
}

#[test]
fn going_down_removes_the_shards_only_once_drained() {
    let r = Reshard {
        from: 5,
        to: 3,
        epoch: 4,
        step: Step::Draining,
        attempt: 1,
    };
    let d = decide(3, ring(3, 4), Some(&r), &Observed::default());
    assert_eq!(
        d.actions,
        [Action::EnsureShards(5), Action::Drain { epoch: 4 }]
    );
    let drained = Observed {
        drained: Some(4),
        ..Observed::default()
    };
    let d = decide(3, ring(3, 4), Some(&r), &drained);
    assert_eq!(d.state, None);
    assert_eq!(d.actions, [Action::RemoveShards(3)]);
    assert_eq!(d.events, ["resharding 5 → 3 shards: done at ring epoch 4"]);
}

#[test]
fn a_change_while_resharding_is_queued_not_applied() {
    let obs = Observed::default();
    let d = decide(7, ring(4, 1), Some(&at(Step::Copying, 1)), &obs);
    assert_eq!(d.queued, Some(7));
    let r = d.state.unwrap();
    assert_eq!((r.to, r.step), (5, Step::Copying));
    // Once done, the queued count starts the next reshard from the new ring.
    let d = decide(7, ring(5, 2), None, &obs);
    let r = d.state.unwrap();
    assert_eq!((r.from, r.to, r.epoch), (5, 7, 3));
}

#[test]
fn progress_is_a_percent_of_the_keys() {
    let p = Progress {
        keys: 200,
        done_keys: 50,
        ..Progress::default()
    };
    assert_eq!(p.percent(), 25);
    assert_eq!(Progress::default().percent(), 100);
}
