//! The record in status, the Jobs' results, the conditions: pure conversions between the
//! resharding machine and what the controller reads and writes.

use std::{collections::BTreeMap, ops::Range};

use serde::Deserialize;
use storefront_crds::{ReshardPhase, ReshardStatus, RingStatus, ShardPhase, common::condition};

use super::{Observed, Progress, Reshard, Step};

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
