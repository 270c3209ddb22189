//! What auth's use cases need from the outside that is not the user table: the throttle's
//! memory ([`AttemptStore`]), and the failures of every store ([`StoreError`], re-exported by
//! [`crate::service`] beside the user store's port). Implemented by [`crate::postgres::PgUserStore`] (a table in
//! auth's schema, shared by every replica) and by [`crate::service::MemoryUserStore`]
//! (through [`crate::throttle::MemoryAttempts`], for tests and single-process runs).
//!
//! The trait is object-safe (boxed futures), so [`crate::throttle::Throttle`] holds any
//! store without making [`crate::service::Accounts`] generic over a second type; a box per
//! call is nothing beside a password hash.

use std::{future::Future, pin::Pin};

use thiserror::Error;

use super::domain::throttle::{Admission, AttemptKey, Policy, UnixMillis};

/// Storage failures.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("email {0} is already registered")]
    EmailTaken(String),
    #[error("failed to reach the user store: {0}")]
    Unavailable(String),
}

/// A store's answer, boxed.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The throttle's counters, one per [`AttemptKey`].
pub trait AttemptStore: Send + Sync + 'static {
    /// Asks `policy` about one attempt of `key` at `now` and, when admitted, keeps the new
    /// state (the attempt counted) — atomically: concurrent calls for one key (on any
    /// replica) see each other's counts.
    fn admit<'a>(
        &'a self,
        key: &'a AttemptKey,
        policy: &'a Policy,
        now: UnixMillis,
    ) -> StoreFuture<'a, Admission>;

    /// Forgives one counted attempt of `key` under `policy` ([`Policy::refund`]: a success
    /// from an address), atomically as [`AttemptStore::admit`].
    fn refund<'a>(&'a self, key: &'a AttemptKey, policy: &'a Policy) -> StoreFuture<'a, ()>;

    /// Forgets `key` (a success for an account).
    fn clear<'a>(&'a self, key: &'a AttemptKey) -> StoreFuture<'a, ()>;

    /// Forgets every key whose last attempt was before `before` (now less the quiet window:
    /// [`Policy::admit`] would start them afresh anyway); returns how many.
    fn sweep(&self, before: UnixMillis) -> StoreFuture<'_, u64>;
}
