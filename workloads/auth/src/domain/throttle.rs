//! The sign-in and sign-up throttle's policy, pure: given what a key (an account, a client
//! address) did recently and the time now, whether one more attempt is admitted, and if not,
//! for how long it must wait. No clock and no storage in here: `now` is an argument (unix
//! milliseconds) and the state is a value the stores keep ([`crate::ports::AttemptStore`]).
//!
//! ```text
//!  attempt n (1-based, counted when admitted)      the key is blocked for
//!  ─────────────────────────────────────────────   ───────────────────────────────────────
//!  1 ..= free                                      nothing
//!  free + k  (k ≥ 1)                               min(base · 2^(k-1), cap) after attempt n
//!  no attempt for `quiet`                          the count starts again from 0
//! ```
//!
//! With the defaults of the sign-in account throttle (5 free, 1 s base, 15 min cap) the 6th
//! attempt blocks for 1 s, the 7th for 2 s, the 15th for 512 s, the 16th and later for
//! 15 min each: a guesser gets 5 + 10 guesses in the first ~17 minutes, then 4 an hour.
//!
//! **Attempts are counted when admitted, not when they fail.** Counting failures after the
//! hash would let N concurrent guesses all pass the check before the first of them is
//! recorded; counted at admission (atomically, by the store), the number that reach the
//! hash is bounded by the policy whatever the concurrency ([`Policy::most_admitted`] is that
//! bound). The outcome then settles the count: a success forgives the attempt
//! ([`Policy::refund`], which also lifts the block that attempt set) or the whole key
//! ([`crate::ports::AttemptStore::clear`]); a failure leaves it counted.
//!
//! **A block always ends.** The delay is capped ([`Policy::cap`]) and a quiet key starts
//! afresh ([`Policy::quiet`], which is never shorter than the cap): an attacker can keep an
//! account slowed while the attack lasts, never locked for good. Arithmetic saturates: a
//! count of `u64::MAX` is a capped delay, a far-future instant is the end of time, a clock
//! behind the stored one (another replica's) never waits longer than the cap.

use std::{fmt, net::IpAddr, time::Duration};

/// Unix time in milliseconds.
pub type UnixMillis = i64;

/// What one throttle allows (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Attempts admitted with no delay.
    pub free: u32,
    /// The block after the first attempt past the free ones; it doubles with each further one.
    pub base: Duration,
    /// The longest block.
    pub cap: Duration,
    /// A key with no attempt for this long starts afresh (at least [`Policy::cap`]).
    pub quiet: Duration,
}

/// A key's recent attempts, as the stores keep them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attempts {
    /// Attempts counted since the key was last quiet or cleared.
    pub count: u64,
    /// When the last one was admitted.
    pub last: UnixMillis,
    /// No attempt is admitted before this instant.
    pub blocked_until: UnixMillis,
}

/// A refused attempt: when to try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wait {
    pub retry_after: Duration,
}

impl Wait {
    /// The wait in whole seconds, rounded up, at least 1 (what `Retry-After` can say).
    pub fn seconds(&self) -> u64 {
        let whole = self.retry_after.as_secs();
        let rounded = if self.retry_after.subsec_nanos() > 0 {
            whole.saturating_add(1)
        } else {
            whole
        };
        rounded.max(1)
    }
}

/// The policy's answer to one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead; the store keeps this state (the attempt counted).
    Admitted(Attempts),
    /// Not now.
    Refused(Wait),
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Policy {
    /// A policy whose quiet window is at least its cap (a shorter one would reset a
    /// blocked key when its block ends, and the cap would never be reached).
    pub fn new(free: u32, base: Duration, cap: Duration, quiet: Duration) -> Self {
        Self {
            free,
            base,
            cap,
            quiet: quiet.max(cap),
        }
    }

    /// The block after attempt `count` (1-based).
    pub fn delay(&self, count: u64) -> Duration {
        let Some(past) = count.checked_sub(u64::from(self.free)).filter(|&k| k > 0) else {
            return Duration::ZERO;
        };
        // base · 2^(past-1) in nanoseconds, the cap wherever that overflows.
        let cap = self.cap.as_nanos();
        let nanos = u32::try_from(past - 1)
            .ok()
            .and_then(|doublings| 1u128.checked_shl(doublings))
            .and_then(|factor| self.base.as_nanos().checked_mul(factor))
            .map_or(cap, |n| n.min(cap));
        const NANOS: u128 = 1_000_000_000;
        // At most the cap, which was a Duration: both parts fit.
        Duration::new(
            u64::try_from(nanos / NANOS).unwrap_or(u64::MAX),
            u32::try_from(nanos % NANOS).unwrap_or(0),
        )
    }

    /// Whether `state` is quiet at `now` (its count no longer matters).
    pub fn is_quiet(&self, state: &Attempts, now: UnixMillis) -> bool {
        now.saturating_sub(state.last) >= millis(self.quiet)
    }

    /// `state` after one of its attempts succeeded: one attempt fewer, and the block no
    /// longer than the smaller count sets from the last attempt (a success does not leave
    /// the block its admission set; a later failure's block, if longer, is shortened to
    /// what the count without the success gives).
    #[must_use]
    pub fn refund(&self, state: Attempts) -> Attempts {
        let count = state.count.saturating_sub(1);
        let block = state.last.saturating_add(millis(self.delay(count)));
        Attempts {
            count,
            last: state.last,
            blocked_until: state.blocked_until.min(block),
        }
    }

    /// One attempt at `now` for a key in `state` (the default state for a key never seen).
    pub fn admit(&self, state: Attempts, now: UnixMillis) -> Admission {
        let state = if self.is_quiet(&state, now) {
            Attempts::default()
        } else {
            state
        };
        if now < state.blocked_until {
            // Never more than the cap, whatever another replica's clock wrote.
            let left = Duration::from_millis(state.blocked_until.abs_diff(now)).min(self.cap);
            return Admission::Refused(Wait { retry_after: left });
        }
        let count = state.count.saturating_add(1);
        Admission::Admitted(Attempts {
            count,
            last: now,
            blocked_until: now.saturating_add(millis(self.delay(count))),
        })
    }

    /// The most attempts one key can have admitted within `window`, however they are timed
    /// (the bound a test holds the stores to). Without a reset it is the attempts of the
    /// fastest schedule (each as soon as the last block ends) that start within the
    /// window; a window of `quiet` or more may hold `window / quiet` resets, each of which
    /// could start such a schedule again, so the bound multiplies.
    pub fn most_admitted(&self, window: Duration) -> u64 {
        let (window, cap) = (millis(window), millis(self.cap));
        if self.base.is_zero() || cap == 0 {
            return u64::MAX; // nothing ever blocks
        }
        // The free attempts all at 0; then each as soon as the last one's block ends.
        let mut count = u64::from(self.free);
        let mut at: i64 = 0;
        while at <= window {
            count = count.saturating_add(1);
            let delay = millis(self.delay(count));
            if delay >= cap {
                // One per cap from here on: at at + cap, at + 2·cap, … within the window.
                let more = u64::try_from((window - at) / cap).unwrap_or(u64::MAX);
                count = count.saturating_add(more);
                break;
            }
            at = at.saturating_add(delay);
        }
        let epochs = u64::try_from(window / millis(self.quiet).max(1)).unwrap_or(u64::MAX);
        count.saturating_mul(epochs.saturating_add(1))
    }
}

/// What a throttle counts: a sign-in account, a sign-in address, a sign-up address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    SignInAccount,
    SignInAddress,
    SignUpAddress,
}

impl Scope {
    /// The scope as stored and as a metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SignInAccount => "sign_in_account",
            Self::SignInAddress => "sign_in_address",
            Self::SignUpAddress => "sign_up_address",
        }
    }
}

/// One counted thing: its scope and who (an email in its canonical form, or an address
/// from [`address_subject`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptKey {
    pub scope: Scope,
    pub subject: String,
}

impl AttemptKey {
    pub fn new(scope: Scope, subject: impl Into<String>) -> Self {
        Self {
            scope,
            subject: subject.into(),
        }
    }
}

impl fmt::Display for AttemptKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.scope.as_str(), self.subject)
    }
}

/// The subject an address is counted under: an IPv4 address as itself (an IPv4-mapped IPv6
/// one too), an IPv6 address by its /64, the block one subscriber is usually given (counted
/// one by one, a single host could take 2^64 fresh addresses).
pub fn address_subject(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(free: u32) -> Policy {
        Policy::new(
            free,
            Duration::from_secs(1),
            Duration::from_secs(900),
            Duration::from_secs(3600),
        )
    }

    #[test]
    fn free_attempts_then_doubling_delays_up_to_the_cap() {
        let p = policy(5);
        let delays: Vec<u64> = (1..=17).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(
            delays,
            [
                0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900
            ]
        );
        assert_eq!(p.delay(0), Duration::ZERO);
    }

    #[test]
    fn huge_counts_and_instants_saturate_instead_of_overflowing() {
        let p = policy(5);
        for n in [38, 64, 65, 1 << 40, u64::MAX - 1, u64::MAX] {
            assert_eq!(p.delay(n), p.cap, "{n}");
        }
        let free_max = Policy::new(u32::MAX, p.base, p.cap, p.quiet);
        assert_eq!(free_max.delay(u64::from(u32::MAX)), Duration::ZERO);
        assert_eq!(free_max.delay(u64::MAX), p.cap);
        // A count at the top stays there, and an instant near the end of time saturates.
        let state = Attempts {
            count: u64::MAX,
            last: i64::MAX - 10,
            blocked_until: i64::MAX - 5,
        };
        assert_eq!(
            p.admit(state, i64::MAX),
            Admission::Admitted(Attempts {
                count: u64::MAX,
                last: i64::MAX,
                blocked_until: i64::MAX,
            })
        );
        let Admission::Refused(wait) = p.admit(state, i64::MAX - 10) else {
            panic!("blocked")
        };
        assert_eq!(wait.retry_after, Duration::from_millis(5));
        // An unbounded base is still the cap, and a tiny one keeps doubling up to it.
        let wide = Policy::new(0, Duration::MAX, p.cap, p.quiet);
        assert_eq!(wide.delay(1), p.cap);
        assert_eq!(wide.delay(u64::MAX), p.cap);
        let tiny = Policy::new(0, Duration::from_nanos(1), p.cap, p.quiet);
        assert_eq!(tiny.delay(3), Duration::from_nanos(4));
        assert_eq!(tiny.delay(31), Duration::from_nanos(1 << 30));
        assert_eq!(tiny.delay(50), p.cap);
        assert!((40..100).contains(&tiny.most_admitted(Duration::from_secs(3599))));
    }

    #[test]
    fn an_attempt_is_counted_when_admitted_and_blocks_the_next_for_its_delay() {
        let p = policy(2);
        let mut state = Attempts::default();
        let mut now = 1_000_000;
        for expected_block in [0, 0, 1_000, 2_000] {
            let Admission::Admitted(next) = p.admit(state, now) else {
                panic!("admitted at {now}")
            };
            assert_eq!(next.last, now);
            assert_eq!(next.blocked_until - now, expected_block);
            state = next;
            if expected_block > 0 {
                // Just before the block ends: refused with what is left, rounded up to 1 s.
                let Admission::Refused(wait) = p.admit(state, now + expected_block - 1) else {
                    panic!("blocked")
                };
                assert_eq!(wait.retry_after, Duration::from_millis(1));
                assert_eq!(wait.seconds(), 1);
                let refused_early = p.admit(state, now + 1);
                assert_eq!(
                    refused_early,
                    Admission::Refused(Wait {
                        retry_after: Duration::from_millis(expected_block as u64 - 1)
                    })
                );
            }
            now += expected_block;
        }
        assert_eq!(state.count, 4);
    }

    #[test]
    fn a_quiet_key_starts_afresh_and_a_refund_forgives_one_attempt() {
        let p = policy(1);
        let blocked = Attempts {
            count: 30,
            last: 0,
            blocked_until: 900_000,
        };
        assert!(matches!(p.admit(blocked, 899_999), Admission::Refused(_)));
        // Past the block but not quiet: admitted, counted as the 31st (capped delay).
        assert_eq!(
            p.admit(blocked, 900_000),
            Admission::Admitted(Attempts {
                count: 31,
                last: 900_000,
                blocked_until: 1_800_000,
            })
        );
        // Quiet for an hour: the first attempt again (free).
        assert_eq!(
            p.admit(blocked, 3_600_000),
            Admission::Admitted(Attempts {
                count: 1,
                last: 3_600_000,
                blocked_until: 3_600_000,
            })
        );
        assert!(p.is_quiet(&blocked, 3_600_000) && !p.is_quiet(&blocked, 3_599_999));
        // A refund lowers the count and the block to what the lower count sets.
        assert_eq!(
            p.refund(blocked),
            Attempts {
                count: 29,
                last: 0,
                blocked_until: 900_000,
            }
        );
        let just_past_free = Attempts {
            count: 2,
            last: 50,
            blocked_until: 1_050,
        };
        assert_eq!(
            p.refund(just_past_free),
            Attempts {
                count: 1,
                last: 50,
                blocked_until: 50,
            }
        );
        assert_eq!(p.refund(Attempts::default()), Attempts::default());
    }

    #[test]
    fn a_clock_behind_the_stored_block_waits_at_most_the_cap() {
        let p = policy(0);
        let written_ahead = Attempts {
            count: 1,
            last: 10_000_000,
            blocked_until: 10_000_000 + 900_000,
        };
        let Admission::Refused(wait) = p.admit(written_ahead, 0) else {
            panic!("blocked")
        };
        assert_eq!(wait.retry_after, p.cap);
    }

    #[test]
    fn the_quiet_window_is_never_shorter_than_the_cap() {
        let p = Policy::new(
            1,
            Duration::from_secs(1),
            Duration::from_secs(900),
            Duration::from_secs(60),
        );
        assert_eq!(p.quiet, Duration::from_secs(900));
    }

    #[test]
    fn most_admitted_follows_the_fastest_schedule_and_multiplies_over_resets() {
        let p = policy(5);
        // At 0 ms: 5 free and the 6th (whose 1 s block starts then) all fit at t=0.
        assert_eq!(p.most_admitted(Duration::ZERO), 6);
        // Then the 7th at 1 s, the 8th at 3 s, the 9th at 7 s, the 10th at 15 s.
        assert_eq!(p.most_admitted(Duration::from_millis(999)), 6);
        assert_eq!(p.most_admitted(Duration::from_secs(1)), 7);
        assert_eq!(p.most_admitted(Duration::from_secs(14)), 9);
        assert_eq!(p.most_admitted(Duration::from_secs(15)), 10);
        // 1+2+...+512 = 1023 s for the 16th; then one per 900 s.
        assert_eq!(p.most_admitted(Duration::from_secs(1023)), 16);
        assert_eq!(p.most_admitted(Duration::from_secs(1023 + 900)), 17);
        // An hour holds one reset: the bound doubles.
        let hour = Duration::from_secs(3600);
        let no_reset = p.most_admitted(hour - Duration::from_millis(1));
        assert_eq!(p.most_admitted(hour), 2 * no_reset);
        // Simulating the policy never beats the bound.
        let mut state = Attempts::default();
        let mut admitted = 0;
        for now in (0..120_000).step_by(7) {
            if let Admission::Admitted(next) = p.admit(state, now) {
                state = next;
                admitted += 1;
            }
        }
        assert_eq!(admitted, p.most_admitted(Duration::from_millis(119_999)));
        // A policy that never blocks has no bound.
        let open = Policy::new(1, Duration::ZERO, Duration::ZERO, Duration::ZERO);
        assert_eq!(open.most_admitted(Duration::from_secs(1)), u64::MAX);
    }

    #[test]
    fn addresses_count_by_host_and_ipv6_by_its_64() {
        let subject = |s: &str| address_subject(s.parse().expect("address"));
        assert_eq!(subject("203.0.113.7"), "203.0.113.7");
        assert_eq!(subject("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(subject("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(subject("2001:db8:1:2:ffff::9"), "2001:db8:1:2::/64");
        assert_ne!(subject("2001:db8:1:3::1"), subject("2001:db8:1:2::1"));
        assert_eq!(
            AttemptKey::new(Scope::SignInAccount, "ann@example.com").to_string(),
            "sign_in_account ann@example.com"
        );
    }
}
