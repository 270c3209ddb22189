//! Where the gateway's routes come from and how a new table takes effect: the route table and
//! rings as the operator renders them ([`table`]), the table straight from the API server
//! ([`source`]), and the reload loop with its record of what is in force ([`reload`]).
//!
//! ```text
//!  source::watch_routes ─┐
//!  mounted files (tick) ─┴▶ table::Loader::poll ─▶ apply ─▶ Routed::apply (channels, limits)
//!                                                   │ Ok(Change) / Err(Refused)
//!                                                   ▼
//!                                           reload::Loaded ─▶ GET /routes
//! ```
//!
//! [`apply`] is the one place a poll's outcome takes effect, and it says what happened; the
//! reload loop records that, and `run` only starts the loop (the loop does not import `run`).

pub mod reload;
pub mod source;
pub mod table;

use std::sync::Arc;

use self::table::{Poll, Snapshot};

/// What route tables are applied to: the gateway (its channels and rate limits).
pub trait Routed: Send + Sync + 'static {
    /// Switches to `snapshot`; on error (a bad address, a limit the limiter refuses) the
    /// table in force stays, whole.
    fn apply(&self, snapshot: Snapshot) -> Result<(), String>;
    /// The snapshot in force (none before the first table).
    fn in_force(&self) -> Option<Arc<Snapshot>>;
}

/// What a poll that was not refused did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The same table and rings: nothing to do.
    Unchanged,
    /// A new table or ring is in force.
    Switched,
}

/// Why a poll changed nothing although its input changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The loader refused the input (missing, malformed, invalid).
    Input(String),
    /// The table parsed but could not be applied (a bad address, a limit the limiter
    /// refuses).
    NotApplied(String),
}

/// Applies what one poll found (and logs it); on any refusal the last good table stays,
/// whole.
pub fn apply(gateway: &impl Routed, poll: Poll) -> Result<Change, Refused> {
    match poll {
        Poll::Unchanged => Ok(Change::Unchanged),
        Poll::Changed(snapshot) => {
            let routes = snapshot.table.routes.len();
            let rings: Vec<String> = snapshot
                .rings
                .iter()
                .map(|(s, r)| format!("{s}@{}x{}", r.epoch(), r.shard_count()))
                .collect();
            match gateway.apply(*snapshot) {
                Ok(()) => {
                    tracing::info!(routes, ?rings, "route table loaded");
                    Ok(Change::Switched)
                }
                Err(e) => {
                    tracing::warn!(
                        "failed to apply the route table (keeping the last good one): {e}"
                    );
                    Err(Refused::NotApplied(e))
                }
            }
        }
        Poll::Refused(e) => {
            tracing::warn!("failed to load the route table (keeping the last good one): {e}");
            Err(Refused::Input(e))
        }
    }
}
