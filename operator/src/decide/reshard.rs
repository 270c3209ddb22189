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

use std::{
    collections::{BTreeMap, BTreeSet},
    ops::Range,
};

use serde::{Deserialize, Serialize};
use storefront_crds::{ReshardPhase, ReshardStatus, RingStatus, ShardPhase, common::condition};

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

// ---------------------------------------------------------------------------------------------
// The record in status, the Jobs' results, the conditions: pure conversions for the controller.

impl From<Step> for ReshardPhase {
    fn from(s: Step) -> Self {
        match s {
            Step::Joining => ReshardPhase::Joining,
            Step::Copying => ReshardPhase::Copying,
            Step::Verifying => ReshardPhase::Verifying,
            Step::Switching => ReshardPhase::Switching,
            Step::Draining => ReshardPhase::Draining,
        }
    }
}

impl From<ReshardPhase> for Step {
    fn from(p: ReshardPhase) -> Self {
        match p {
            ReshardPhase::Joining => Step::Joining,
            ReshardPhase::Copying => Step::Copying,
            ReshardPhase::Verifying => Step::Verifying,
            ReshardPhase::Switching => Step::Switching,
            ReshardPhase::Draining => Step::Draining,
        }
    }
}

/// The reshard recorded in status.
pub fn from_status(s: &ReshardStatus) -> Reshard {
    Reshard {
        from: u32::try_from(s.from).unwrap_or(1),
        to: u32::try_from(s.to).unwrap_or(1),
        epoch: s.epoch,
        step: s.phase.into(),
        attempt: u32::try_from(s.attempt).unwrap_or(1).max(1),
    }
}

fn span(r: Range<u32>) -> String {
    match r.len() {
        0 => String::new(),
        1 => r.start.to_string(),
        _ => format!("{}-{}", r.start, r.end - 1),
    }
}

/// The status of `r` after a decision: progress from the reports for its epoch and attempt,
/// `phase_since` kept while the phase stays, `message` saying what it waits for.
pub fn status_of(
    r: &Reshard,
    previous: Option<&ReshardStatus>,
    obs: &Observed,
    queued: Option<u32>,
    now: &str,
) -> ReshardStatus {
    let phase: ReshardPhase = r.step.into();
    let same = previous.filter(|p| p.epoch == r.epoch);
    let i = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut st = ReshardStatus {
        phase,
        from: i32::try_from(r.from).unwrap_or(i32::MAX),
        to: i32::try_from(r.to).unwrap_or(i32::MAX),
        epoch: r.epoch,
        attempt: i32::try_from(r.attempt).unwrap_or(i32::MAX),
        sources: span(r.sources()),
        targets: span(r.targets()),
        keys_to_move: same.map_or(0, |p| p.keys_to_move),
        keys_copied: same.map_or(0, |p| p.keys_copied),
        keys_verified: same.map_or(0, |p| p.keys_verified),
        mismatched_keys: same.map_or(0, |p| p.mismatched_keys),
        copy_progress: same.map_or(0, |p| p.copy_progress),
        started_at: same.map_or_else(|| now.to_string(), |p| p.started_at.clone()),
        phase_since: same
            .filter(|p| p.phase == phase)
            .map_or_else(|| now.to_string(), |p| p.phase_since.clone()),
        queued: queued.map(|q| i32::try_from(q).unwrap_or(i32::MAX)),
        message: String::new(),
    };
    if let Some(p) = obs.copy.filter(|p| p.epoch == r.epoch) {
        st.keys_to_move = i(p.keys);
        st.keys_copied = i(p.done_keys);
        st.copy_progress = i32::try_from(p.percent()).unwrap_or(100);
    }
    if let Some(p) = obs.verify.filter(|p| p.epoch == r.epoch) {
        st.keys_verified = i(p.done_keys);
        st.mismatched_keys = i(p.mismatched);
    }
    st.message = match r.step {
        Step::Joining => format!(
            "waiting for shards {} to be Ready ({} of {} are)",
            span(0..r.shards()),
            (0..r.shards()).filter(|i| obs.ready.contains(i)).count(),
            r.shards()
        ),
        Step::Copying => format!(
            "copying the keys that move from shards {} to {} (attempt {})",
            st.sources, st.targets, r.attempt
        ),
        Step::Verifying => "comparing every moved key with its source".into(),
        Step::Switching => format!(
            "switching owners in one transaction, then publishing the ring at epoch {}",
            r.epoch
        ),
        Step::Draining if r.to < r.from => format!(
            "routers move to the ring at epoch {}; shards {} are deleted after",
            r.epoch,
            span(r.to..r.from)
        ),
        Step::Draining => format!("routers move to the ring at epoch {}", r.epoch),
    };
    st
}

/// A resharding Job's result: the JSON line `storefront-workloads reshard` writes.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobResult {
    pub step: String,
    pub epoch: i64,
    #[serde(default)]
    pub progress: Option<JobProgress>,
    #[serde(default)]
    pub switched: Option<JobSwitched>,
}

/// A copy's or verification's counts.
#[derive(Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JobProgress {
    pub keys: u64,
    pub done_keys: u64,
    #[serde(default)]
    pub mismatched: JobMismatches,
}

/// Differences a verification found.
#[derive(Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobMismatches {
    pub keys: u64,
    pub lines: u64,
}

/// What a switch did.
#[derive(Deserialize, Clone, Copy, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobSwitched {
    pub moved_keys: u64,
    pub moved_lines: u64,
    pub lock_wait_ms: f64,
    pub pause_ms: f64,
}

/// The last JSON line of a termination message (logs may precede it).
pub fn parse_result(message: &str) -> Option<JobResult> {
    message
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<JobResult>(l.trim()).ok())
}

impl JobResult {
    /// The copy or verification report for `attempt`.
    pub fn progress(&self, attempt: u32) -> Option<Progress> {
        let p = self.progress?;
        Some(Progress {
            epoch: self.epoch,
            attempt,
            keys: p.keys,
            done_keys: p.done_keys,
            mismatched: p.mismatched.keys + p.mismatched.lines,
            finished: true,
        })
    }
}

/// A shard's phase while its service reshards (`None`: no reshard concerns it; its phase
/// follows its pods), with the handoff's copy progress: a new shard is `Joining` until the
/// switch gives it its keys; a removed shard is `Draining` while its keys are handed over and
/// `Retired` once the switch took them (it serves stale routers until it is deleted).
pub fn shard_phase(index: u32, ring: &RingStatus) -> Option<(ShardPhase, i32)> {
    let x = ring.resharding.as_ref()?;
    let r = from_status(x);
    let switched = r.step >= Step::Draining;
    let phase = if r.to > r.from && r.targets().contains(&index) {
        if switched {
            return None;
        }
        ShardPhase::Joining
    } else if r.to < r.from && r.sources().contains(&index) {
        if switched {
            ShardPhase::Retired
        } else {
            ShardPhase::Draining
        }
    } else {
        return None;
    };
    Some((phase, x.copy_progress))
}

/// The ring epoch every router works with for `service`, from what each gateway pod reports
/// (`storefront.dev/RingsApplied`: `inventory@2; orders@1`; `None` for a pod that reports
/// nothing): the lowest, or `None` when a router does not say (an older gateway: the caller
/// falls back to waiting). No routers at all: `Some(i64::MAX)`, nobody to wait for.
pub fn routers_epoch(service: &str, reports: &[Option<&str>]) -> Option<i64> {
    let mut lowest = i64::MAX;
    for report in reports {
        let epoch = (*report)?.split("; ").find_map(|entry| {
            let (svc, epoch) = entry.trim().split_once('@')?;
            (svc == service)
                .then(|| epoch.parse::<i64>().ok())
                .flatten()
        })?;
        lowest = lowest.min(epoch);
    }
    Some(lowest)
}

/// `Resharding` and `ReshardingInSync` for the rings (none without sharded services):
/// `(type, ok, reason, message)`.
pub fn conditions(
    rings: &BTreeMap<String, RingStatus>,
    wanted: &BTreeMap<String, i32>,
) -> Vec<(&'static str, bool, &'static str, String)> {
    if rings.is_empty() {
        return Vec::new();
    }
    let running: Vec<String> = rings
        .iter()
        .filter_map(|(svc, r)| {
            r.resharding.as_ref().map(|x| {
                format!(
                    "{svc} {} → {} shards: {:?} ({}%, {} keys to move)",
                    x.from, x.to, x.phase, x.copy_progress, x.keys_to_move
                )
            })
        })
        .collect();
    let out_of_sync: Vec<String> = rings
        .iter()
        .filter_map(|(svc, r)| {
            let want = wanted.get(svc).copied().unwrap_or(r.shards);
            (want != r.shards || r.resharding.is_some()).then(|| {
                if r.resharding.is_some() {
                    format!(
                        "{svc}: the ring has {} shards, the spec asks {want}",
                        r.shards
                    )
                } else if svc == "inventory" {
                    // A reshard starts in the reconcile that sees the new count: held.
                    format!(
                        "{svc}: the ring stays at {} shards (the spec asks {want}): its shard \
                         schemas' names are too long for PostgreSQL (63 bytes) to be found by \
                         the handoff; use a shorter namespace or Storefront name",
                        r.shards
                    )
                } else {
                    format!(
                        "{svc}: resharding {svc} is not supported yet; its ring stays at {} \
                         shards (the spec asks {want})",
                        r.shards
                    )
                }
            })
        })
        .collect();
    let mut out = Vec::new();
    if running.is_empty() {
        out.push((
            condition::RESHARDING,
            false,
            "Idle",
            "no change of a shard count is running".to_string(),
        ));
    } else {
        out.push((
            condition::RESHARDING,
            true,
            "Resharding",
            running.join("; "),
        ));
    }
    if out_of_sync.is_empty() {
        out.push((
            condition::RESHARDING_IN_SYNC,
            true,
            "InSync",
            "every ring has the spec's shard count".to_string(),
        ));
    } else {
        let reason = if running.is_empty() {
            "Held"
        } else {
            "Resharding"
        };
        out.push((
            condition::RESHARDING_IN_SYNC,
            false,
            reason,
            out_of_sync.join("; "),
        ));
    }
    out
}

#[cfg(test)]
mod tests;
