//! The `auth` subcommand's own settings: the password hashing gate's limits
//! ([`crate::hash_gate`]), validated into [`HashLimits`], and the sign-in and sign-up
//! throttles' ([`crate::throttle`]), validated into [`Policies`]; errors name the flag.

use std::time::Duration;

use clap::Args;

use super::{
    domain::throttle::Policy,
    hash_gate::{HashLimits, QUEUE_PER_SLOT},
    throttle::{ACCOUNT_FREE, ADDRESS_FREE, BASE_DELAY, MAX_DELAY, Policies, QUIET, SIGN_UP_FREE},
};
use storefront_contracts::overload::MAX_THROTTLE_RETRY_AFTER_SECONDS;
use storefront_platform::config::ConfigError;

/// The most hashing slots a pod may ask for (each may hold 19 MiB).
pub const MAX_HASH_CONCURRENCY: usize = 256;
/// The longest queue of requests waiting for a slot.
pub const MAX_HASH_QUEUE: usize = 10_000;

/// How many password hashes run at once, and how many sign-ins may wait for one.
#[derive(Args, Clone, Debug, Default)]
pub struct HashArgs {
    /// Password hashes (argon2id, 19 MiB each) running at once; default one per core of the
    /// container's CPU quota.
    #[arg(long, env = "HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,
    /// Sign-ins and sign-ups that may wait (up to 1 s) for a hashing slot; past it they are
    /// refused at once (RESOURCE_EXHAUSTED, a 503 with Retry-After at the gateway). Default
    /// eight per slot; 0 never waits.
    #[arg(long, env = "HASH_QUEUE")]
    pub hash_queue: Option<usize>,
}

impl HashArgs {
    /// The validated limits.
    pub fn limits(&self) -> Result<HashLimits, ConfigError> {
        let mut limits = match self.hash_concurrency {
            None => HashLimits::per_core(),
            Some(n) if (1..=MAX_HASH_CONCURRENCY).contains(&n) => HashLimits::with_concurrency(n),
            Some(n) => {
                return Err(ConfigError::Invalid {
                    flag: "--hash-concurrency",
                    reason: format!("must be 1..={MAX_HASH_CONCURRENCY}, got {n}"),
                });
            }
        };
        match self.hash_queue {
            None => {}
            Some(q) if q <= MAX_HASH_QUEUE => limits.queue = q,
            Some(q) => {
                return Err(ConfigError::Invalid {
                    flag: "--hash-queue",
                    reason: format!(
                        "must be 0..={MAX_HASH_QUEUE} (default {QUEUE_PER_SLOT} per slot), got {q}"
                    ),
                });
            }
        }
        Ok(limits)
    }
}

/// The most free attempts a throttle may allow.
pub const MAX_FREE: u32 = 1_000_000;
/// The longest first block.
pub const MAX_BASE_MS: u64 = 60_000;
/// The longest quiet window (a week).
pub const MAX_QUIET_SECS: u64 = 7 * 24 * 3600;

/// The sign-in and sign-up throttles: free attempts per account and per address, then
/// blocks from the base delay doubling up to the cap, forgotten after the quiet window.
#[derive(Args, Clone, Debug)]
pub struct ThrottleArgs {
    /// Sign-in attempts per account before its blocks begin (a success clears the count).
    #[arg(long, env = "SIGN_IN_ACCOUNT_FREE", default_value_t = ACCOUNT_FREE)]
    pub sign_in_account_free: u32,
    /// Failed sign-ins per client address before its blocks begin.
    #[arg(long, env = "SIGN_IN_ADDRESS_FREE", default_value_t = ADDRESS_FREE)]
    pub sign_in_address_free: u32,
    /// Sign-ups per client address before its blocks begin.
    #[arg(long, env = "SIGN_UP_ADDRESS_FREE", default_value_t = SIGN_UP_FREE)]
    pub sign_up_address_free: u32,
    /// The first block, in milliseconds; each further attempt doubles it.
    #[arg(long, env = "THROTTLE_BASE_MS", default_value_t = millis(BASE_DELAY))]
    pub throttle_base_ms: u64,
    /// The longest block, in seconds.
    #[arg(long, env = "THROTTLE_CAP_SECS", default_value_t = MAX_DELAY.as_secs())]
    pub throttle_cap_secs: u64,
    /// After this many seconds without an attempt a key starts afresh (at least the cap).
    #[arg(long, env = "THROTTLE_QUIET_SECS", default_value_t = QUIET.as_secs())]
    pub throttle_quiet_secs: u64,
}

const fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl Default for ThrottleArgs {
    fn default() -> Self {
        Self {
            sign_in_account_free: ACCOUNT_FREE,
            sign_in_address_free: ADDRESS_FREE,
            sign_up_address_free: SIGN_UP_FREE,
            throttle_base_ms: millis(BASE_DELAY),
            throttle_cap_secs: MAX_DELAY.as_secs(),
            throttle_quiet_secs: QUIET.as_secs(),
        }
    }
}

impl ThrottleArgs {
    /// The validated policies.
    pub fn policies(&self) -> Result<Policies, ConfigError> {
        let invalid = |flag: &'static str, reason: String| ConfigError::Invalid { flag, reason };
        for (flag, free) in [
            ("--sign-in-account-free", self.sign_in_account_free),
            ("--sign-in-address-free", self.sign_in_address_free),
            ("--sign-up-address-free", self.sign_up_address_free),
        ] {
            if free > MAX_FREE {
                return Err(invalid(flag, format!("must be 0..={MAX_FREE}, got {free}")));
            }
        }
        if !(1..=MAX_BASE_MS).contains(&self.throttle_base_ms) {
            return Err(invalid(
                "--throttle-base-ms",
                format!("must be 1..={MAX_BASE_MS}, got {}", self.throttle_base_ms),
            ));
        }
        let base = Duration::from_millis(self.throttle_base_ms);
        let cap = Duration::from_secs(self.throttle_cap_secs);
        // The gateway clamps a throttle's Retry-After to this: a longer block could not be said.
        if cap < base || self.throttle_cap_secs > MAX_THROTTLE_RETRY_AFTER_SECONDS {
            return Err(invalid(
                "--throttle-cap-secs",
                format!(
                    "must be at least the base delay ({} ms) and at most \
                     {MAX_THROTTLE_RETRY_AFTER_SECONDS}, got {}",
                    self.throttle_base_ms, self.throttle_cap_secs
                ),
            ));
        }
        if self.throttle_quiet_secs < self.throttle_cap_secs
            || self.throttle_quiet_secs > MAX_QUIET_SECS
        {
            return Err(invalid(
                "--throttle-quiet-secs",
                format!(
                    "must be at least the cap ({} s) and at most {MAX_QUIET_SECS}, got {}",
                    self.throttle_cap_secs, self.throttle_quiet_secs
                ),
            ));
        }
        let quiet = Duration::from_secs(self.throttle_quiet_secs);
        let policy = |free| Policy::new(free, base, cap, quiet);
        Ok(Policies {
            account: policy(self.sign_in_account_free),
            address: policy(self.sign_in_address_free),
            sign_up: policy(self.sign_up_address_free),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_default_to_the_documented_policies_and_refuse_what_is_out_of_range() {
        assert_eq!(
            ThrottleArgs::default().policies().expect("defaults"),
            Policies::default()
        );
        let set = ThrottleArgs {
            sign_in_account_free: 0,
            throttle_base_ms: 50,
            throttle_cap_secs: 2,
            throttle_quiet_secs: 2,
            ..ThrottleArgs::default()
        }
        .policies()
        .expect("valid");
        assert_eq!(set.account.free, 0);
        assert_eq!(set.address.base, Duration::from_millis(50));
        assert_eq!(set.sign_up.cap, Duration::from_secs(2));
        let cases = [
            (
                ThrottleArgs {
                    sign_up_address_free: MAX_FREE + 1,
                    ..ThrottleArgs::default()
                },
                "--sign-up-address-free",
            ),
            (
                ThrottleArgs {
                    throttle_base_ms: 0,
                    ..ThrottleArgs::default()
                },
                "--throttle-base-ms",
            ),
            (
                ThrottleArgs {
                    throttle_cap_secs: MAX_THROTTLE_RETRY_AFTER_SECONDS + 1,
                    throttle_quiet_secs: MAX_QUIET_SECS,
                    ..ThrottleArgs::default()
                },
                "--throttle-cap-secs",
            ),
            (
                ThrottleArgs {
                    throttle_base_ms: 5_000,
                    throttle_cap_secs: 4,
                    ..ThrottleArgs::default()
                },
                "--throttle-cap-secs",
            ),
            (
                ThrottleArgs {
                    throttle_quiet_secs: 899,
                    ..ThrottleArgs::default()
                },
                "--throttle-quiet-secs",
            ),
        ];
        for (args, flag) in cases {
            match args.policies() {
                Err(ConfigError::Invalid { flag: f, .. }) => assert_eq!(f, flag),
                other => panic!("{args:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn limits_default_per_core_and_refuse_what_is_out_of_range() {
        let default = HashArgs::default().limits().expect("defaults");
        assert_eq!(default, HashLimits::per_core());
        let set = HashArgs {
            hash_concurrency: Some(3),
            hash_queue: Some(0),
        }
        .limits()
        .expect("valid");
        assert_eq!((set.concurrency, set.queue), (3, 0));
        assert_eq!(
            HashArgs {
                hash_concurrency: Some(3),
                hash_queue: None,
            }
            .limits()
            .expect("valid")
            .queue,
            3 * QUEUE_PER_SLOT
        );
        for (args, flag) in [
            (
                HashArgs {
                    hash_concurrency: Some(0),
                    hash_queue: None,
                },
                "--hash-concurrency",
            ),
            (
                HashArgs {
                    hash_concurrency: Some(MAX_HASH_CONCURRENCY + 1),
                    hash_queue: None,
                },
                "--hash-concurrency",
            ),
            (
                HashArgs {
                    hash_concurrency: None,
                    hash_queue: Some(MAX_HASH_QUEUE + 1),
                },
                "--hash-queue",
            ),
        ] {
            match args.limits() {
                Err(ConfigError::Invalid { flag: f, .. }) => assert_eq!(f, flag),
                other => panic!("{args:?} gave {other:?}"),
            }
        }
    }
}
