//! When a FlashSale does what: its windows (one-off, or recurring from a cron in a time zone),
//! its phase at `now`, which of its effects are in force, and the next instant anything
//! changes. Pure: `now` is always an argument, so every boundary is unit-tested with a fake
//! clock, and controllers requeue exactly at [`SaleState::next_transition`].
//!
//! One window, and what is in force when:
//!
//! ```text
//!           start − prewarm          start                   end          end + RESTORE_GRACE
//!  ──────────────┬─────────────────────┬──────────────────────┬──────────────────┬──────────────
//!   Scheduled    │ PreWarming          │ Active               │ Restoring        │ Completed
//!                │ capacity raised ────┼──────────────────────┼──────────────────┤ (one-off) or
//!                │                     │ limits open ─────────┤                  │ Scheduled
//!                                                                                  (recurring)
//! ```
//!
//! Going up, capacity rises first (from `start − prewarm`) and limits open at `start` (the
//! Storefront controller also waits for the raised capacity to be Ready: `CapacityLate`).
//! Going down, limits close at `end` and capacity shrinks [`RESTORE_GRACE`] later, so traffic
//! admitted under the sale's limits drains on the sale's pods.
//!
//! Recurring windows start at every instant the cron fires in `timeZone` (see [`crate::cron`]
//! for the DST rules) and last `duration` of elapsed time. The duration may not exceed the
//! shortest gap between two starts (checked over the coming year), so at most two windows
//! touch at any instant: one ending (Active/Restoring) while the next one pre-warms.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp, tz::TimeZone};

use crate::{
    cron::Cron,
    flashsale::{FlashSaleSpec, SalePhase},
    validate::parse_duration,
};

/// Default lead time of a sale's capacity before its window opens.
pub const DEFAULT_PREWARM: Duration = Duration::from_secs(300);
/// How long capacity stays raised after a window's end (limits have closed already).
pub const RESTORE_GRACE: SignedDuration = SignedDuration::from_secs(10);
/// How many upcoming starts of a recurring sale are compared to find its shortest gap.
const GAP_SAMPLE: usize = 1000;

/// One window of a sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Window {
    fn boundaries(&self, prewarm: SignedDuration) -> [Timestamp; 4] {
        [
            self.start - prewarm,
            self.start,
            self.end,
            self.end + RESTORE_GRACE,
        ]
    }
}

/// Which parts of a sale are in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SaleEffect {
    /// Capacity is raised (from `start − prewarm` to `end + RESTORE_GRACE`).
    pub capacity: bool,
    /// Rate-limit overrides apply (from `start` to `end`), once the capacity is Ready.
    pub limits: bool,
}

/// Where a sale stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaleState {
    pub phase: SalePhase,
    pub effect: SaleEffect,
    /// The window in progress (pre-warming to restoring), or else the next one.
    pub window: Option<Window>,
    /// The next instant at which the phase or effect changes.
    pub next_transition: Option<Timestamp>,
}

/// When a sale's windows are.
#[derive(Debug, Clone, PartialEq)]
enum Windows {
    OneOff(Window),
    Recurring {
        cron: Cron,
        tz: TimeZone,
        duration: SignedDuration,
    },
}

/// A sale's schedule, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    windows: Windows,
    prewarm: SignedDuration,
}

/// A schedule that cannot run, with the field to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ScheduleError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> ScheduleError {
    ScheduleError {
        field,
        message: message.into(),
    }
}

fn signed(field: &'static str, text: &str) -> Result<SignedDuration, ScheduleError> {
    parse_duration(text)
        .and_then(|d| SignedDuration::try_from(d).ok())
        .ok_or_else(|| {
            err(
                field,
                format!("not a duration: {text:?} (use e.g. 10m, 1h30m)"),
            )
        })
}

impl Schedule {
    /// Parses a sale's window(s). `now` bounds the check that a recurring window is not longer
    /// than the gap between two starts (the coming year is checked).
    pub fn from_spec(spec: &FlashSaleSpec, now: Timestamp) -> Result<Self, ScheduleError> {
        let prewarm = match &spec.prewarm {
            Some(p) => signed("spec.prewarm", p)?,
            None => SignedDuration::try_from(DEFAULT_PREWARM)
                .map_err(|e| err("spec.prewarm", e.to_string()))?,
        };
        let windows = match (&spec.start, &spec.end, &spec.schedule) {
            (Some(start), Some(end), None) => {
                if end.0 <= start.0 {
                    return Err(err("spec.end", "end must be after start"));
                }
                Windows::OneOff(Window {
                    start: start.0,
                    end: end.0,
                })
            }
            (None, None, Some(rec)) => {
                let cron: Cron = rec
                    .cron
                    .parse()
                    .map_err(|e: crate::cron::CronError| err("spec.schedule.cron", e.0))?;
                let tz = TimeZone::get(&rec.time_zone).map_err(|_| {
                    err(
                        "spec.schedule.timeZone",
                        format!(
                            "unknown time zone {:?} (use an IANA name such as Europe/Berlin or UTC)",
                            rec.time_zone
                        ),
                    )
                })?;
                let duration = signed("spec.schedule.duration", &rec.duration)?;
                if duration.is_zero() {
                    return Err(err("spec.schedule.duration", "must be longer than 0"));
                }
                let gap = shortest_gap(&cron, &tz, now).ok_or_else(|| {
                    err(
                        "spec.schedule.cron",
                        format!("{:?} never fires in the coming years", rec.cron),
                    )
                })?;
                if duration > gap {
                    return Err(err(
                        "spec.schedule.duration",
                        format!(
                            "{} is longer than the shortest gap between two starts ({}); windows would overlap",
                            rec.duration,
                            human(gap)
                        ),
                    ));
                }
                Windows::Recurring { cron, tz, duration }
            }
            _ => {
                return Err(err(
                    "spec",
                    "set either a one-off window (start and end) or a recurring schedule, exactly one",
                ));
            }
        };
        Ok(Schedule { windows, prewarm })
    }

    /// The lead time of capacity before each window.
    pub fn prewarm(&self) -> SignedDuration {
        self.prewarm
    }

    /// The windows that touch `now` (pre-warming to restoring), oldest first, and the first
    /// window whose pre-warm starts after `now`.
    fn around(&self, now: Timestamp) -> (Vec<Window>, Option<Window>) {
        match &self.windows {
            Windows::OneOff(w) => {
                let [warm, .., done] = w.boundaries(self.prewarm);
                if now < warm {
                    (Vec::new(), Some(*w))
                } else if now < done {
                    (vec![*w], None)
                } else {
                    (Vec::new(), None)
                }
            }
            Windows::Recurring { cron, tz, duration } => {
                let window = |start: Timestamp| Window {
                    start,
                    end: start + *duration,
                };
                // Every window whose pre-warm has begun and which has not finished restoring:
                // walk back from the latest start until a window is over (ends are in order).
                let mut touching = Vec::new();
                let mut start = cron.last_at_or_before(tz, now + self.prewarm);
                while let Some(s) = start {
                    let w = window(s);
                    if now >= w.end + RESTORE_GRACE || touching.len() >= GAP_SAMPLE {
                        break;
                    }
                    touching.push(w);
                    start = cron.last_at_or_before(tz, s - SignedDuration::from_secs(1));
                }
                touching.reverse();
                let next = cron.next_after(tz, now + self.prewarm).map(window);
                (touching, next)
            }
        }
    }

    /// Phase, effect and next transition at `now`.
    pub fn state(&self, now: Timestamp) -> SaleState {
        let (touching, next) = self.around(now);
        let mut effect = SaleEffect::default();
        let (mut warming, mut restoring) = (false, false);
        for w in &touching {
            let [warm, start, end, done] = w.boundaries(self.prewarm);
            effect.capacity |= warm <= now && now < done;
            effect.limits |= start <= now && now < end;
            warming |= warm <= now && now < start;
            restoring |= end <= now && now < done;
        }
        let phase = if effect.limits {
            SalePhase::Active
        } else if warming {
            SalePhase::PreWarming
        } else if restoring {
            SalePhase::Restoring
        } else if next.is_some() {
            SalePhase::Scheduled
        } else {
            SalePhase::Completed
        };
        let next_transition = touching
            .iter()
            .flat_map(|w| w.boundaries(self.prewarm))
            .chain(next.map(|w| w.start - self.prewarm))
            .filter(|t| *t > now)
            .min();
        SaleState {
            phase,
            effect,
            window: touching
                .iter()
                .find(|w| w.start <= now && now < w.end)
                .or(touching.last())
                .copied()
                .or(next),
            next_transition,
        }
    }
}

/// The shortest gap between consecutive starts over the coming year (or [`GAP_SAMPLE`]
/// starts); `None` when the cron never fires.
fn shortest_gap(cron: &Cron, tz: &TimeZone, now: Timestamp) -> Option<SignedDuration> {
    let horizon = now + SignedDuration::from_hours(24 * 366);
    let mut prev = cron.next_after(tz, now)?;
    let mut shortest: Option<SignedDuration> = None;
    for _ in 0..GAP_SAMPLE {
        let Some(next) = cron.next_after(tz, prev) else {
            break;
        };
        let gap = next.duration_since(prev);
        shortest = Some(shortest.map_or(gap, |s| s.min(gap)));
        if next > horizon {
            break;
        }
        prev = next;
    }
    // A cron that fires once in the coming years has no gap to overlap.
    Some(shortest.unwrap_or(SignedDuration::MAX))
}

fn human(d: SignedDuration) -> String {
    let secs = d.as_secs();
    match (secs / 3600, (secs % 3600) / 60, secs % 60) {
        (h, 0, 0) if h > 0 => format!("{h}h"),
        (0, m, 0) => format!("{m}m"),
        (0, 0, s) => format!("{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests;
