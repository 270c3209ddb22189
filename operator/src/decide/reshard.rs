//! Online resharding of a sharded service as pure decisions (issue 18, first slice): given the
//! ring in force, the recorded step (kept in status, so an operator restart resumes it) and
//! what the shards and routers report, what to do next. No client and no clock: the
//! controller applies the [`Action`]s (Jobs running the workloads' handoff steps, the ring
//! ConfigMap, ServiceShards) and records [`Decision::state`] in the Storefront's status.
//!
//! ```text
//!                 spec.sharding.shards: n → m
//!   Active(n) ──────────────────────────────► Joining    ServiceShards 0..max(n, m) exist, all Ready
//!                                               │
//!                                               ▼
//!                              ┌──────────► Copying    every moved key: source → target (upsert)
//!                              │                │ copy done (this epoch, this attempt)
//!                   mismatch   │                ▼
//!                   (attempt+1)└────────── Verifying  targets re-read every moved key, compare
//!                                               │ all equal
//!                                               ▼
//!                                           Switching  1. the switch: in ONE database transaction
//!                                               │         under the ring's lock, moved keys are
//!                                               │         synced, verified, settled, removed from
//!                                               │         their old owners; the ring → epoch e+1
//!                                               │      2. the ring ConfigMap is published at e+1
//!                                               │      3. every router works with epoch ≥ e+1
//!                                               ▼
//!                                           Draining   going down, the removed shards serve
//!                                               │      stale routers until they moved
//!                                               ▼ drained
//!   Active(m) ◄──────────────────────────────  done     going down: shards m..n deleted
//! ```
//!
//! Jump hash decides who gives and who takes ([`Reshard::sources`], [`Reshard::targets`]):
//! growing from `n` to `m` shards, keys move only from `0..n` to the new shards `n..m`;
//! shrinking, only the keys of the removed shards `m..n` move, to `0..m`.
//!
//! Every action is idempotent for its epoch (and copy attempt), and every report names the
//! epoch (and attempt) it is for, so a decision repeated after a crash, or a stale report, does
//! no harm. A change of the shard count while a reshard runs is queued
//! ([`Decision::queued`]): it starts when this one is done.
//!
//! `record.rs` holds the conversions to and from what the controller reads and writes: the
//! record in status ([`from_status`], [`status_of`]), the Jobs' results ([`parse_result`]), the
//! shards' phases ([`shard_phase`]), the routers' epoch ([`routers_epoch`]) and the conditions.

use std::{collections::BTreeSet, ops::Range};

use serde::{Deserialize, Serialize};

/// Keys the switch may sync under its lock (each a row rewritten in the pause: ~50 µs).
pub const SYNC_BUDGET_KEYS: u64 = 2_000;

/// Where a reshard is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Joining,
    Copying,
    Verifying,
    Switching,
    Draining,
}

/// A reshard in progress, as recorded in status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Reshard {
    /// Shard count of the ring before.
    pub from: u32,
    /// Shard count after.
    pub to: u32,
    /// The epoch the ring is published at by the switch (the epoch before + 1).
    pub epoch: i64,
    pub step: Step,
    /// Copy attempt: a verification that finds a mismatch copies again under the next one.
    pub attempt: u32,
}

impl Reshard {
    /// Shards that give keys: all the old ones going up, the removed ones going down.
    pub fn sources(&self) -> Range<u32> {
        if self.to > self.from {
            0..self.from
        } else {
            self.to..self.from
        }
    }

    /// Shards that take keys: the new ones going up, the remaining ones going down.
    pub fn targets(&self) -> Range<u32> {
        if self.to > self.from {
            self.from..self.to
        } else {
            0..self.to
        }
    }

    /// Shards that exist while it runs: `0..max(from, to)`.
    pub fn shards(&self) -> u32 {
        self.from.max(self.to)
    }
}

/// The ring in force (the published ConfigMap): shard count and epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    pub shards: u32,
    pub epoch: i64,
}

/// A report of the copy or of the verification, for one epoch and attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub epoch: i64,
    pub attempt: u32,
    /// Keys that move.
    pub keys: u64,
    /// Keys copied (or verified) so far.
    pub done_keys: u64,
    /// Keys that differ between source and target (verification only).
    pub mismatched: u64,
    /// The pass is over.
    pub finished: bool,
}

impl Progress {
    fn is_for(&self, r: &Reshard) -> bool {
        self.epoch == r.epoch && self.attempt == r.attempt
    }

    /// Percent of the keys done (100 when nothing moves).
    pub fn percent(&self) -> u32 {
        if self.keys == 0 {
            return 100;
        }
        u32::try_from(self.done_keys.min(self.keys) * 100 / self.keys).unwrap_or(100)
    }
}

/// What the shards and the routers report. Reports for another epoch or attempt are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Ordinals of the shards with every pod Ready.
    pub ready: BTreeSet<u32>,
    pub copy: Option<Progress>,
    pub verify: Option<Progress>,
    /// The epoch the database's ring is at (the switch done).
    pub switched: Option<i64>,
    /// The lowest ring epoch any router (gateway, orders, inventory consumers) works with.
    pub routers: Option<i64>,
    /// The highest epoch the sources have drained: no in-flight hold of a moved key left and
    /// their copies of the moved keys dropped.
    pub drained: Option<i64>,
}

/// What the controller does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// ServiceShards `0..n` exist (new ones join owning no keys).
    EnsureShards(u32),
    /// Copy the moved keys from the sources to the targets (an upsert per key).
    Copy { epoch: i64, attempt: u32 },
    /// Compare every moved key between source and target.
    Verify { epoch: i64, attempt: u32 },
    /// The switch of owners: one transaction under the ring's lock (the write pause).
    Switch { epoch: i64 },
    /// Publish the ring with `shards` shards at `epoch`. Routers switch; the pause ends.
    PublishRing { shards: u32, epoch: i64 },
    /// Sources finish or hand over in-flight holds of moved keys and drop their copies.
    Drain { epoch: i64 },
    /// Delete ServiceShards `n..` (going down, once drained).
    RemoveShards(u32),
}

/// The outcome of one decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// What to record: `None` when no reshard runs (any more).
    pub state: Option<Reshard>,
    pub actions: Vec<Action>,
    /// One line per step taken, for an Event.
    pub events: Vec<String>,
    /// A shard count asked for while this reshard runs; it starts when this one is done.
    pub queued: Option<u32>,
}

impl Decision {
    fn new(state: Option<Reshard>) -> Self {
        Decision {
            state,
            actions: Vec::new(),
            events: Vec::new(),
            queued: None,
        }
    }
}

/// The next step of resharding toward `wanted` shards. Pure.
pub fn decide(wanted: u32, ring: Ring, state: Option<&Reshard>, obs: &Observed) -> Decision {
    let Some(r) = state else {
        if wanted == ring.shards || wanted == 0 {
            return Decision::new(None);
        }
        let r = Reshard {
            from: ring.shards,
            to: wanted,
            epoch: ring.epoch + 1,
            step: Step::Joining,
            attempt: 1,
        };
        let mut d = Decision::new(Some(r.clone()));
        d.events.push(format!(
            "resharding {} → {} shards: Joining (ring epoch {} → {})",
            r.from, r.to, ring.epoch, r.epoch
        ));
        d.actions.push(Action::EnsureShards(r.shards()));
        return d;
    };
    let mut r = r.clone();
    let mut d = Decision::new(None);
    if wanted != r.to {
        d.queued = Some(wanted);
    }
    fn step(r: &mut Reshard, d: &mut Decision, to: Step, why: String) {
        r.step = to;
        d.events.push(format!(
            "resharding {} → {} shards: {to:?} ({why})",
            r.from, r.to
        ));
    }
    // Each arm may take one step and falls through to the actions of the step it is in then.
    if r.step == Step::Joining && (0..r.shards()).all(|i| obs.ready.contains(&i)) {
        step(&mut r, &mut d, Step::Copying, "every shard is Ready".into());
    }
    if r.step == Step::Copying
        && let Some(p) = obs.copy.filter(|p| p.is_for(&r) && p.finished)
    {
        step(
            &mut r,
            &mut d,
            Step::Verifying,
            format!("{} keys copied", p.done_keys),
        );
    }
    if r.step == Step::Verifying
        && let Some(p) = obs.verify.filter(|p| p.is_for(&r) && p.finished)
    {
        // Keys written since the copy differ too; the switch syncs and re-verifies them under
        // its lock. After one copy again, differences that fit its sync budget go ahead.
        let fits = p.mismatched == 0 || (r.attempt >= 2 && p.mismatched <= SYNC_BUDGET_KEYS);
        if fits && p.done_keys >= p.keys {
            step(
                &mut r,
                &mut d,
                Step::Switching,
                format!("{} keys verified", p.done_keys),
            );
        } else {
            let why = format!(
                "{} of {} keys differ after copy attempt {}: copying again",
                p.mismatched, p.keys, r.attempt
            );
            r.attempt += 1;
            step(&mut r, &mut d, Step::Copying, why);
        }
    }
    if r.step == Step::Switching
        && ring.epoch >= r.epoch
        && obs.routers.is_some_and(|e| e >= r.epoch)
    {
        let why = format!("every router is on epoch {}", r.epoch);
        step(&mut r, &mut d, Step::Draining, why);
    }
    if r.step == Step::Draining && obs.drained.is_some_and(|e| e >= r.epoch) {
        if r.to < r.from {
            d.actions.push(Action::RemoveShards(r.to));
        }
        d.events.push(format!(
            "resharding {} → {} shards: done at ring epoch {}",
            r.from, r.to, r.epoch
        ));
        return d;
    }
    d.actions.push(Action::EnsureShards(r.shards()));
    match r.step {
        Step::Joining => {}
        Step::Copying => d.actions.push(Action::Copy {
            epoch: r.epoch,
            attempt: r.attempt,
        }),
        Step::Verifying => d.actions.push(Action::Verify {
            epoch: r.epoch,
            attempt: r.attempt,
        }),
        Step::Switching => {
            // Switch first; publish only once the database's ring moved, so no router sends a
            // key to its new owner before the key is there.
            d.actions.push(Action::Switch { epoch: r.epoch });
            if obs.switched.is_some_and(|e| e >= r.epoch) {
                d.actions.push(Action::PublishRing {
                    shards: r.to,
                    epoch: r.epoch,
                });
            }
        }
        Step::Draining => d.actions.push(Action::Drain { epoch: r.epoch }),
    }
    d.state = Some(r);
    d
}

mod record;

pub use record::{
    JobMismatches, JobProgress, JobResult, JobSwitched, conditions, from_status, parse_result,
    routers_epoch, shard_phase, status_of,
};

#[cfg(test)]
mod tests;
