//! The whole machine against a simulated shop (shards holding stock, routers on a ring,
//! shoppers buying all along), with a crash injected at every step: stock is conserved, every
//! key ends on its owner only, and the switch never lets two shards accept the same key.

use super::*;

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
