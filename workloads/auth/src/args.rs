//! The `auth` subcommand's own settings: the password hashing gate's limits
//! ([`crate::hash_gate`]), validated into [`HashLimits`] with an error that names the flag.

use clap::Args;

use super::hash_gate::{HashLimits, QUEUE_PER_SLOT};
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

#[cfg(test)]
mod tests {
    use super::*;

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
