//! Properties over random runs: whatever the shards and routers report, in whatever order, with
//! stale reports and the operator restarting (the decision replayed from the recorded state),
//! the machine never publishes a ring before the switch, never switches without a finished
//! verification of the same epoch and attempt, keeps its epoch, removes shards only going down
//! and once drained, and decides the same twice from the same inputs.

use proptest::prelude::*;

use super::*;

/// One report the world may send (an index into a small menu, with random numbers).
#[derive(Clone, Debug)]
enum Report {
    Ready(u32),
    Copy {
        epoch_off: i64,
        attempt: u32,
        finished: bool,
    },
    Verify {
        epoch_off: i64,
        attempt: u32,
        mismatched: u64,
        finished: bool,
    },
    Switched(i64),
    Routers(i64),
    Drained(i64),
    Crash,
}

fn report() -> impl Strategy<Value = Report> {
    prop_oneof![
        (0u32..8).prop_map(Report::Ready),
        (-1i64..=1, 1u32..4, any::<bool>()).prop_map(|(e, a, f)| Report::Copy {
            epoch_off: e,
            attempt: a,
            finished: f
        }),
        (
            -1i64..=1,
            1u32..4,
            prop_oneof![Just(0u64), 1u64..5, 3_000u64..4_000],
            any::<bool>()
        )
            .prop_map(|(e, a, m, f)| Report::Verify {
                epoch_off: e,
                attempt: a,
                mismatched: m,
                finished: f
            }),
        (-1i64..=1).prop_map(Report::Switched),
        (-1i64..=1).prop_map(Report::Routers),
        (-1i64..=1).prop_map(Report::Drained),
        Just(Report::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn no_run_skips_a_step_or_publishes_early(
        from in 1u32..6,
        to in 1u32..6,
        reports in proptest::collection::vec(report(), 1..80),
    ) {
        let start = Ring { shards: from, epoch: 7 };
        let mut ring = start;
        let mut state: Option<Reshard> = None;
        let mut obs = Observed::default();
        let mut published = false;
        for r in reports {
            let epoch = state.as_ref().map_or(ring.epoch + 1, |s| s.epoch);
            match r.clone() {
                Report::Ready(i) => { obs.ready.insert(i); }
                Report::Copy { epoch_off, attempt, finished } => {
                    obs.copy = Some(Progress { epoch: epoch + epoch_off, attempt,
                        keys: 10, done_keys: 10, mismatched: 0, finished });
                }
                Report::Verify { epoch_off, attempt, mismatched, finished } => {
                    obs.verify = Some(Progress { epoch: epoch + epoch_off, attempt,
                        keys: 10, done_keys: 10, mismatched, finished });
                }
                Report::Switched(off) => obs.switched = Some(epoch + off),
                Report::Routers(off) => obs.routers = Some(epoch + off),
                Report::Drained(off) => obs.drained = Some(epoch + off),
                // A crash before the decision was recorded: checked below, then dropped.
                Report::Crash => {}
            }
            let crashed = matches!(r, Report::Crash);
            let d = decide(to, ring, state.as_ref(), &obs);
            let _ = &r;
            // Deterministic: the same inputs decide the same (a replay after a crash).
            prop_assert_eq!(&d, &decide(to, ring, state.as_ref(), &obs));
            if let (Some(before), Some(after)) = (&state, &d.state) {
                prop_assert_eq!(before.epoch, after.epoch, "the epoch is kept");
                prop_assert_eq!((before.from, before.to), (after.from, after.to));
                // No step is skipped: reaching Switching needs every shard Ready and a
                // finished copy and verification of this epoch and attempt (reports of
                // Jobs that ran before a restart may carry it several steps at once).
                if before.step < Step::Switching && after.step >= Step::Switching {
                    let v = obs.verify.expect("a verification");
                    prop_assert!(v.finished && v.epoch == before.epoch && v.attempt == after.attempt);
                    prop_assert!((0..after.shards()).all(|i| obs.ready.contains(&i)));
                    if before.step <= Step::Copying {
                        let c = obs.copy.expect("a copy");
                        prop_assert!(c.finished && c.epoch == before.epoch && c.attempt == after.attempt);
                    }
                }
                prop_assert!(after.step >= before.step || after.step == Step::Copying,
                    "only a failed verification goes back (to Copying)");
            }
            if let Some(s) = &d.state {
                prop_assert_eq!(s.epoch, start.epoch + 1);
            }
            if crashed {
                // Nothing of this decision was recorded or applied.
                continue;
            }
            for a in &d.actions {
                match a {
                    Action::PublishRing { shards, epoch } => {
                        prop_assert!(obs.switched.is_some_and(|e| e >= *epoch),
                            "published before the switch");
                        prop_assert_eq!(*shards, to);
                        ring = Ring { shards: *shards, epoch: *epoch };
                        published = true;
                    }
                    Action::RemoveShards(n) => {
                        prop_assert!(to < from && *n == to);
                        prop_assert!(obs.drained.is_some_and(|e| e > start.epoch));
                        prop_assert!(published, "shards removed before the ring moved");
                    }
                    _ => {}
                }
            }
            if state.is_some() && d.state.is_none() {
                // Done: only after the ring was published and drained.
                prop_assert!(published);
                prop_assert_eq!(ring.shards, to);
            }
            state = d.state;
            if state.is_none() && published {
                break;
            }
        }
    }
}
