//! The throttle's counters in process memory, for tests and single-process runs: a map
//! behind one lock, so each admission is atomic as the port asks. Bounded by the sweep.

use std::{collections::HashMap, sync::Mutex};

use crate::{
    domain::throttle::{Admission, AttemptKey, Attempts, Policy, UnixMillis},
    ports::{AttemptStore, StoreError, StoreFuture},
};

/// Counters in memory.
#[derive(Default)]
pub struct MemoryAttempts {
    keys: Mutex<HashMap<AttemptKey, Attempts>>,
}

impl MemoryAttempts {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<AttemptKey, Attempts>) -> T,
    ) -> Result<T, StoreError> {
        let mut keys = self
            .keys
            .lock()
            .map_err(|_| StoreError::Unavailable("the attempt map lock is poisoned".into()))?;
        Ok(f(&mut keys))
    }

    /// The state of `key` (for tests).
    pub fn get(&self, key: &AttemptKey) -> Option<Attempts> {
        self.with(|keys| keys.get(key).copied()).ok().flatten()
    }

    /// Keys kept now.
    pub fn len(&self) -> usize {
        self.with(|keys| keys.len()).unwrap_or(0)
    }

    /// Whether no key is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl AttemptStore for MemoryAttempts {
    fn admit<'a>(
        &'a self,
        key: &'a AttemptKey,
        policy: &'a Policy,
        now: UnixMillis,
    ) -> StoreFuture<'a, Admission> {
        Box::pin(async move {
            self.with(|keys| {
                let state = keys.get(key).copied().unwrap_or_default();
                let admission = policy.admit(state, now);
                if let Admission::Admitted(next) = admission {
                    keys.insert(key.clone(), next);
                }
                admission
            })
        })
    }

    fn refund<'a>(&'a self, key: &'a AttemptKey, policy: &'a Policy) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.with(|keys| {
                if let Some(state) = keys.get_mut(key) {
                    *state = policy.refund(*state);
                }
            })
        })
    }

    fn clear<'a>(&'a self, key: &'a AttemptKey) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.with(|keys| {
                keys.remove(key);
            })
        })
    }

    fn sweep(&self, before: UnixMillis) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            self.with(|keys| {
                let was = keys.len();
                keys.retain(|_, s| s.last >= before);
                u64::try_from(was - keys.len()).unwrap_or(u64::MAX)
            })
        })
    }
}
