//! The sign-in and sign-up throttles: password guessing and email probing slowed per account
//! and per client address, before any password hash, with the policy of
//! [`crate::domain::throttle`] over the counters of an [`AttemptStore`] (PostgreSQL, shared
//! by every replica and kept over restarts).
//!
//! ```text
//!  sign-in ─▶ address (if known) ─▶ account ─▶ hash gate ─▶ lookup ─▶ hash ─┬▶ right: token;
//!             admit or Throttled    admit or                                │   clear account,
//!             (counted)             Throttled (counted)                     │   refund address
//!                                                                           └▶ wrong: stays counted
//!  sign-up ─▶ address (if known) ─▶ hash gate ─▶ lookup ─▶ one hash ─┬▶ created: stays counted
//!             admit or Throttled                                     ├▶ the owner's own password
//!                                                                    │   on a taken email: refund
//!                                                                    └▶ someone else's: counted
//! ```
//!
//! | throttle          | counts                          | free (default) | forgiven by               |
//! |-------------------|---------------------------------|----------------|---------------------------|
//! | sign-in account   | sign-ins naming the account     | 5              | a success (cleared)       |
//! | sign-in address   | sign-ins from the address       | 20             | a success (that one only) |
//! | sign-up address   | sign-ups from the address       | 100            | a re-registration with the account's own password |
//!
//! Past its free attempts a key is blocked for 1 s, 2 s, 4 s … up to the cap (15 min), and
//! forgotten after an hour without attempts (all configurable: [`crate::args::ThrottleArgs`]).
//!
//! - **Refused before any hash, whatever the password.** A refusal happens before the hash
//!   gate, the lookup and the hash, so it costs one indexed read and says nothing about the
//!   password: the right one is refused during a block like any other. An email with no
//!   account is throttled exactly like one with an account, so the throttle tells no one
//!   which emails exist.
//! - **A block ends.** Someone guessing at a real shopper's account slows it down for as long
//!   as the attack lasts, but each block is at most the cap, and a success (the owner, once a
//!   block ends) clears the account's count. The residual cost is known: while an attack
//!   runs, the owner competes with it for the admitted attempts; exempting the addresses an
//!   account signed in from before (or a device cookie) is the usual remedy, not built here.
//! - **An address's successes do not clear it**, they only forgive themselves: otherwise one
//!   guesser with an account of its own could sign in between guesses and never be slowed.
//!   Many shoppers behind one NAT then share only their mistakes, not their sign-ins.
//! - **Which address.** The gateway passes the connection's peer address as the
//!   [`CLIENT_ADDRESS`] metadata, and auth believes it only from the gateway's service token
//!   ([`TRUSTED_CALLER`]). `X-Forwarded-For` is not read: anyone can write it, and trusting it
//!   needs the list of trusted proxies that comes with the per-client limits. Until then a
//!   gateway behind a load balancer that rewrites source addresses
//!   (`externalTrafficPolicy: Cluster`) sees few addresses, and the address throttles count
//!   those: the account throttle is unaffected. No address (a test router without connect
//!   info, another caller) means no address throttle.
//!
//! **Sign-up and the 409.** A taken email is still a 409: a shopper who already has an
//! account must be told to sign in, and the alternative — answering 202 always and telling
//! the owner by email — needs an email channel the shop does not have. Answering 201 for a
//! taken email would lie to that shopper and leave them without an account. So the 409 stays,
//! and what it costs is bounded: every sign-up from an address counts (created or not, which
//! also slows mass account creation), so probing emails from one address is slowed to that
//! address's allowance and then to one probe per block. Someone signing up again with the
//! account's own password (the owner, or a load generator re-running) is forgiven, which
//! needs one verification against the stored hash instead of hashing the new password: the
//! same one hash either way, so time does not tell a taken email from a free one either.
//! Many addresses still probe at many times the rate; the per-address limits on
//! unauthenticated traffic at the gateway are the brake for that.
//!
//! Metrics ([`ThrottleMetrics`]): `storefront_auth_throttled_total{action, scope}` (action
//! `sign_in` or `sign_up`, scope `account` or `address`).

mod memory;

use std::{fmt, net::IpAddr, sync::Arc, time::Duration};

use prometheus_client::{
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

pub use self::memory::MemoryAttempts;
use super::{
    domain::throttle::{Admission, AttemptKey, Policy, Scope, UnixMillis, Wait, address_subject},
    ports::{AttemptStore, StoreError},
};
pub use storefront_contracts::client_address::{CLIENT_ADDRESS, TRUSTED_CALLER};

/// The throttles' policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policies {
    /// Sign-ins per account.
    pub account: Policy,
    /// Sign-ins per client address.
    pub address: Policy,
    /// Sign-ups per client address.
    pub sign_up: Policy,
}

/// The default free attempts per account (sign-in).
pub const ACCOUNT_FREE: u32 = 5;
/// The default free attempts per address (sign-in).
pub const ADDRESS_FREE: u32 = 20;
/// The default free sign-ups per address: one address may be a NAT of many shoppers (and our
/// own load generator creates 50 users from one).
pub const SIGN_UP_FREE: u32 = 100;
/// The default first block.
pub const BASE_DELAY: Duration = Duration::from_secs(1);
/// The default longest block.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// The default quiet window after which a key starts afresh.
pub const QUIET: Duration = Duration::from_secs(60 * 60);

impl Default for Policies {
    fn default() -> Self {
        let policy = |free| Policy::new(free, BASE_DELAY, MAX_DELAY, QUIET);
        Self {
            account: policy(ACCOUNT_FREE),
            address: policy(ADDRESS_FREE),
            sign_up: policy(SIGN_UP_FREE),
        }
    }
}

impl Policies {
    /// The longest quiet window (a key quiet for longer is forgotten by the sweep).
    pub fn quiet(&self) -> Duration {
        self.account
            .quiet
            .max(self.address.quiet)
            .max(self.sign_up.quiet)
    }

    fn of(&self, scope: Scope) -> &Policy {
        match scope {
            Scope::SignInAccount => &self.account,
            Scope::SignInAddress => &self.address,
            Scope::SignUpAddress => &self.sign_up,
        }
    }
}

/// A refusal: this account or address is blocked for now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    pub scope: Scope,
    pub wait: Wait,
}

impl Throttled {
    /// The retry hint in whole seconds (at least 1).
    pub fn retry_after_seconds(&self) -> u64 {
        self.wait.seconds()
    }
}

impl fmt::Display for Throttled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.scope {
            Scope::SignInAccount => "sign-in attempts for this account",
            Scope::SignInAddress => "sign-in attempts from this address",
            Scope::SignUpAddress => "sign-ups from this address",
        };
        write!(
            f,
            "too many {what}; retry in {} s",
            self.retry_after_seconds()
        )
    }
}

impl std::error::Error for Throttled {}

/// Why the throttle did not admit an attempt.
#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    #[error(transparent)]
    Throttled(Throttled),
    /// The counters could not be read or written: the attempt is refused (a throttle that
    /// fails open is no throttle).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The throttles' metrics. Cheap to clone; [`Default`] is unregistered.
#[derive(Clone, Default)]
pub struct ThrottleMetrics {
    throttled: Family<[(&'static str, &'static str); 2], Counter>,
}

impl ThrottleMetrics {
    /// The series, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "storefront_auth_throttled",
            "Sign-ins and sign-ups refused by a throttle, by action and by what was throttled",
            m.throttled.clone(),
        );
        m
    }

    fn labels(scope: Scope) -> [(&'static str, &'static str); 2] {
        match scope {
            Scope::SignInAccount => [("action", "sign_in"), ("scope", "account")],
            Scope::SignInAddress => [("action", "sign_in"), ("scope", "address")],
            Scope::SignUpAddress => [("action", "sign_up"), ("scope", "address")],
        }
    }

    fn record(&self, scope: Scope) {
        self.throttled.get_or_create(&Self::labels(scope)).inc();
    }

    /// Refusals of `scope` so far.
    pub fn throttled(&self, scope: Scope) -> u64 {
        self.throttled
            .get(&Self::labels(scope))
            .map_or(0, |c| c.get())
    }
}

/// Unix milliseconds now, from a clock a test can replace.
pub type Clock = Arc<dyn Fn() -> UnixMillis + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    })
}

/// What an admitted sign-in counted, to settle when it ends.
#[derive(Debug)]
pub struct SignInTicket {
    account: AttemptKey,
    address: Option<AttemptKey>,
}

/// The throttles (module docs).
pub struct Throttle {
    store: Arc<dyn AttemptStore>,
    policies: Policies,
    metrics: ThrottleMetrics,
    clock: Clock,
}

impl Throttle {
    /// Throttles keeping their counters in `store`, on the system clock.
    pub fn new(store: Arc<dyn AttemptStore>, policies: Policies, metrics: ThrottleMetrics) -> Self {
        Self {
            store,
            policies,
            metrics,
            clock: system_clock(),
        }
    }

    /// The same throttles on `clock`.
    #[must_use]
    pub fn with_clock(self, clock: Clock) -> Self {
        Self { clock, ..self }
    }

    /// The policies in force.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// The metrics (for tests).
    pub fn metrics(&self) -> &ThrottleMetrics {
        &self.metrics
    }

    async fn admit(&self, key: &AttemptKey) -> Result<(), ThrottleError> {
        let policy = self.policies.of(key.scope);
        match self.store.admit(key, policy, (self.clock)()).await? {
            Admission::Admitted(_) => Ok(()),
            Admission::Refused(wait) => {
                self.metrics.record(key.scope);
                Err(ThrottleError::Throttled(Throttled {
                    scope: key.scope,
                    wait,
                }))
            }
        }
    }

    /// Admits (and counts) a sign-in naming `account` (its canonical email) from `from`:
    /// the address first, so a blocked address costs the account nothing.
    pub async fn admit_sign_in(
        &self,
        account: &str,
        from: Option<IpAddr>,
    ) -> Result<SignInTicket, ThrottleError> {
        let address = from.map(|a| AttemptKey::new(Scope::SignInAddress, address_subject(a)));
        if let Some(address) = &address {
            self.admit(address).await?;
        }
        let account = AttemptKey::new(Scope::SignInAccount, account);
        self.admit(&account).await?;
        Ok(SignInTicket { account, address })
    }

    /// A sign-in of `ticket` succeeded: the account's count is cleared and the address's
    /// attempt forgiven. A store failure here is logged, not the caller's: the sign-in stands.
    pub async fn signed_in(&self, ticket: &SignInTicket) {
        if let Err(e) = self.store.clear(&ticket.account).await {
            tracing::warn!("failed to clear the sign-in count of an account: {e}");
        }
        if let Some(address) = &ticket.address {
            self.forgive(address).await;
        }
    }

    /// Admits (and counts) a sign-up from `from`; the key to [`Throttle::forgive`] if the
    /// attempt turns out harmless.
    pub async fn admit_sign_up(
        &self,
        from: Option<IpAddr>,
    ) -> Result<Option<AttemptKey>, ThrottleError> {
        let Some(from) = from else {
            return Ok(None);
        };
        let key = AttemptKey::new(Scope::SignUpAddress, address_subject(from));
        self.admit(&key).await?;
        Ok(Some(key))
    }

    /// Forgives one counted attempt of `key` (logged, not returned, on a store failure).
    pub async fn forgive(&self, key: &AttemptKey) {
        if let Err(e) = self.store.refund(key, self.policies.of(key.scope)).await {
            tracing::warn!(
                "failed to forgive an attempt of {}: {e}",
                key.scope.as_str()
            );
        }
    }

    /// Forgets the keys that have been quiet for the longest quiet window; returns how many.
    pub async fn sweep(&self) -> Result<u64, StoreError> {
        let quiet = i64::try_from(self.policies.quiet().as_millis()).unwrap_or(i64::MAX);
        self.store.sweep((self.clock)().saturating_sub(quiet)).await
    }

    /// Sweeps every `every` until the task is dropped (a failed sweep is logged and tried
    /// again next time).
    pub async fn sweep_every(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(forgotten = n, "swept quiet throttle counters"),
                Err(e) => tracing::warn!("failed to sweep the throttle counters: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests;
