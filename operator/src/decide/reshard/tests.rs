//! The decisions step by step, then the whole machine driven against a simulated shop (shards
//! holding stock, routers on a ring, shoppers buying all along) with a crash injected at every
//! step: stock is conserved, every key ends on its owner only, and the switch never lets two
//! shards accept the same key.

use std::collections::BTreeMap;

use storefront_crds::ring::shard_of;

use super::*;

fn ring(shards: u32, epoch: i64) -> Ring {
    Ring { shards, epoch }
}

fn ready(n: u32) -> BTreeSet<u32> {
    (0..n).collect()
}

fn at(step: Step, attempt: u32) -> Reshard {
    Reshard {
        from: 4,
        to: 5,
        epoch: 2,
        step,
        attempt,
    }
}

fn finished(epoch: i64, attempt: u32, keys: u64, mismatched: u64) -> Option<Progress> {
    Some(Progress {
        epoch,
        attempt,
        keys,
        done_keys: keys,
        mismatched,
        finished: true,
    })
}

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

// ---- The whole machine against a simulated shop ------------------------------------------

/// One shard's store: stock per SKU (what its database schema holds), the keys it refuses
/// (switched at an epoch: moved away), and the keys written since the copy (its change log).
#[derive(Clone, Debug, Default)]
struct Shard {
    stock: BTreeMap<String, i64>,
    switched: BTreeSet<String>,
    dirty: BTreeSet<String>,
}

/// How the simulated shop misbehaves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    /// The operator dies after applying the first `applied` actions of tick `tick`, before it
    /// records the new state.
    Operator {
        tick: usize,
        applied: usize,
    },
    /// A shard pod restarts at `tick`: reports of running passes are lost (the data is in its
    /// database and survives).
    ShardPod {
        tick: usize,
    },
}

struct Shop {
    shards: Vec<Shard>,
    ready: BTreeSet<u32>,
    ring: Ring,
    /// The ring the routers work with (they reload a tick after a publish).
    routers: Ring,
    copy: Option<Progress>,
    verify: Option<Progress>,
    switched: Option<i64>,
    drained: Option<i64>,
    /// The first copy of attempt 1 loses one key (a write the copy never made).
    lossy_first_copy: bool,
    sold: BTreeMap<String, i64>,
    initial: BTreeMap<String, i64>,
    /// Ticks in which a shopper's write was refused (the pause), and accepted writes.
    refused: usize,
    accepted: usize,
}

impl Shop {
    fn new(shards: u32, keys: usize) -> Self {
        let mut s = Shop {
            shards: vec![Shard::default(); shards as usize],
            ready: ready(shards),
            ring: ring(shards, 1),
            routers: ring(shards, 1),
            copy: None,
            verify: None,
            switched: None,
            drained: None,
            lossy_first_copy: false,
            sold: BTreeMap::new(),
            initial: BTreeMap::new(),
            refused: 0,
            accepted: 0,
        };
        for k in 0..keys {
            let sku = format!("SKU-{k:05}");
            let stock = 5 + (k % 7) as i64;
            s.shards[shard_of(&sku, shards) as usize]
                .stock
                .insert(sku.clone(), stock);
            s.initial.insert(sku, stock);
        }
        s
    }

    fn observe(&self) -> Observed {
        Observed {
            ready: self.ready.clone(),
            copy: self.copy,
            verify: self.verify,
            switched: self.switched,
            routers: Some(self.routers.epoch),
            drained: self.drained,
        }
    }

    /// The keys that move, by source, for a reshard `r`.
    fn moved(&self, r: &Reshard) -> Vec<(u32, String, u32)> {
        let mut out = Vec::new();
        for s in r.sources() {
            for sku in self.shards[s as usize].stock.keys() {
                let owner = shard_of(sku, r.to);
                if owner != s {
                    out.push((s, sku.clone(), owner));
                }
            }
        }
        out
    }

    fn apply(&mut self, r: Option<&Reshard>, action: &Action) {
        match *action {
            Action::EnsureShards(n) => {
                while self.shards.len() < n as usize {
                    self.shards.push(Shard::default());
                }
                // New shards are Ready from the next tick.
            }
            Action::Copy { epoch, attempt } => {
                let r = r.expect("a copy belongs to a reshard");
                let moved = self.moved(r);
                let lose = self.lossy_first_copy && attempt == 1;
                for (i, (s, sku, t)) in moved.iter().enumerate() {
                    // The change log starts with the copy: what is written from now on is
                    // synced at the fence.
                    self.shards[*s as usize].dirty.remove(sku);
                    if lose && i == 0 {
                        continue;
                    }
                    let v = self.shards[*s as usize].stock[sku];
                    self.shards[*t as usize].stock.insert(sku.clone(), v);
                }
                let keys = moved.len() as u64;
                self.copy = Some(Progress {
                    epoch,
                    attempt,
                    keys,
                    done_keys: keys,
                    mismatched: 0,
                    finished: true,
                });
            }
            Action::Verify { epoch, attempt } => {
                let r = r.expect("a verification belongs to a reshard");
                let moved = self.moved(r);
                let mismatched = moved
                    .iter()
                    .filter(|(s, sku, t)| {
                        self.shards[*t as usize].stock.get(sku)
                            != self.shards[*s as usize].stock.get(sku)
                            && !self.shards[*s as usize].dirty.contains(sku)
                    })
                    .count() as u64;
                let keys = moved.len() as u64;
                self.verify = Some(Progress {
                    epoch,
                    attempt,
                    keys,
                    done_keys: keys,
                    mismatched,
                    finished: true,
                });
            }
            Action::Switch { epoch } => {
                let r = r.expect("a fence belongs to a reshard");
                for (s, sku, t) in self.moved(r) {
                    let src = &mut self.shards[s as usize];
                    src.switched.insert(sku.clone());
                    // The delta: only what was written since the copy.
                    if src.dirty.remove(&sku) {
                        let v = src.stock[&sku];
                        self.shards[t as usize].stock.insert(sku, v);
                    }
                }
                self.switched = Some(epoch);
            }
            Action::PublishRing { shards, epoch } => self.ring = ring(shards, epoch),
            Action::Drain { epoch } => {
                let r = r.expect("a drain belongs to a reshard");
                for (s, sku, _) in self.moved(r) {
                    let src = &mut self.shards[s as usize];
                    src.stock.remove(&sku);
                    src.switched.remove(&sku);
                }
                self.drained = Some(epoch);
            }
            Action::RemoveShards(n) => {
                assert!(
                    self.shards[n as usize..].iter().all(|s| s.stock.is_empty()),
                    "a shard was removed while it still held keys"
                );
                self.shards.truncate(n as usize);
                self.ready.retain(|i| *i < n);
            }
        }
    }

    /// A shopper buys one of `sku` through a router; refused (and retried later) when the
    /// shard the router picks does not own it now.
    fn buy(&mut self, sku: &str) {
        let shard = shard_of(sku, self.routers.shards) as usize;
        let Some(s) = self.shards.get_mut(shard) else {
            self.refused += 1;
            return;
        };
        match s.stock.get_mut(sku) {
            Some(v) if !s.switched.contains(sku) => {
                if *v > 0 {
                    *v -= 1;
                    *self.sold.entry(sku.to_string()).or_default() += 1;
                }
                s.dirty.insert(sku.to_string());
                self.accepted += 1;
            }
            _ => self.refused += 1,
        }
    }

    /// Every key on exactly its owner, with its stock less what was sold.
    fn check_conserved(&self) {
        let n = self.ring.shards;
        assert_eq!(self.shards.len(), n as usize, "shards left over");
        for (sku, initial) in &self.initial {
            let owner = shard_of(sku, n) as usize;
            let holders: Vec<_> = (0..self.shards.len())
                .filter(|i| self.shards[*i].stock.contains_key(sku))
                .collect();
            assert_eq!(holders, [owner], "{sku} held by {holders:?}, owner {owner}");
            let sold = self.sold.get(sku).copied().unwrap_or(0);
            assert_eq!(
                self.shards[owner].stock[sku],
                initial - sold,
                "{sku}: stock not conserved"
            );
        }
    }
}

/// Drives `from → to` until done; returns the steps recorded in order.
fn run(from: u32, to: u32, fault: Fault, lossy_first_copy: bool) -> (Shop, Vec<Step>) {
    let mut shop = Shop::new(from, 400);
    shop.lossy_first_copy = lossy_first_copy;
    let skus: Vec<String> = shop.initial.keys().cloned().collect();
    let mut recorded: Option<Reshard> = None;
    let mut steps = Vec::new();
    for tick in 0..200 {
        // Shoppers buy every tick, before and during the reshard.
        for i in 0..8 {
            let sku = skus[(tick * 37 + i * 101) % skus.len()].clone();
            shop.buy(&sku);
        }
        if fault == (Fault::ShardPod { tick }) {
            shop.copy = None;
            shop.verify = None;
        }
        let d = decide(to, shop.ring, recorded.as_ref(), &shop.observe());
        let state_for_actions = d.state.clone().or_else(|| recorded.clone());
        let mut actions = d.actions.clone();
        let crashed = match fault {
            Fault::Operator { tick: t, applied } if t == tick => {
                actions.truncate(applied);
                true
            }
            _ => false,
        };
        for a in &actions {
            shop.apply(state_for_actions.as_ref(), a);
        }
        // Routers reload the published ring, and new shards become ready, by the next tick.
        shop.routers = shop.ring;
        shop.ready = ready(shop.shards.len() as u32);
        if crashed {
            // The status write never happened: the next leader starts from what was recorded.
            continue;
        }
        if let Some(r) = &d.state
            && steps.last() != Some(&r.step)
        {
            steps.push(r.step);
        }
        recorded = d.state;
        if recorded.is_none() && shop.ring.shards == to && tick > 0 {
            return (shop, steps);
        }
    }
    panic!("{from} → {to} with {fault:?} did not finish: {recorded:?}");
}

const CHANGES: [(u32, u32); 7] = [(4, 5), (5, 3), (3, 4), (1, 2), (2, 1), (4, 8), (8, 4)];

#[test]
fn every_change_walks_the_steps_and_conserves_stock() {
    for (from, to) in CHANGES {
        let (shop, steps) = run(from, to, Fault::None, false);
        shop.check_conserved();
        assert_eq!(
            steps,
            [
                Step::Joining,
                Step::Copying,
                Step::Verifying,
                Step::Switching,
                Step::Draining
            ],
            "{from} → {to}"
        );
        assert_eq!(shop.ring, ring(to, 2));
        assert!(shop.accepted > 0 && shop.sold.values().sum::<i64>() > 0);
    }
}

#[test]
fn verification_catches_a_lost_key_and_copies_again() {
    for (from, to) in CHANGES {
        let (shop, steps) = run(from, to, Fault::None, true);
        shop.check_conserved();
        assert!(
            steps
                .windows(2)
                .any(|w| w == [Step::Verifying, Step::Copying]),
            "{from} → {to}: {steps:?}"
        );
    }
}

#[test]
fn a_crash_at_any_step_resumes_and_loses_nothing() {
    for (from, to) in CHANGES {
        // The ticks a run without faults takes, to inject a crash into each of them.
        let ticks = {
            let mut shop = Shop::new(from, 400);
            let mut recorded = None;
            let mut n = 0;
            loop {
                let d = decide(to, shop.ring, recorded.as_ref(), &shop.observe());
                let st = d.state.clone().or_else(|| recorded.clone());
                for a in &d.actions {
                    shop.apply(st.as_ref(), a);
                }
                shop.routers = shop.ring;
                shop.ready = ready(shop.shards.len() as u32);
                recorded = d.state;
                n += 1;
                if recorded.is_none() {
                    break n;
                }
            }
        };
        for tick in 0..ticks + 1 {
            for applied in 0..4 {
                for lossy in [false, true] {
                    let (shop, _) = run(from, to, Fault::Operator { tick, applied }, lossy);
                    shop.check_conserved();
                }
            }
            let (shop, _) = run(from, to, Fault::ShardPod { tick }, true);
            shop.check_conserved();
        }
    }
}

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

// ---------------------------------------------------------------------------------------------
// Properties over random runs: whatever the shards and routers report, in whatever order, with
// stale reports and the operator restarting (the decision replayed from the recorded state),
// the machine never publishes a ring before the switch, never switches without a finished
// verification of the same epoch and attempt, keeps its epoch, removes shards only going down
// and once drained, and decides the same twice from the same inputs.

mod properties {
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
}
