//! GCRA (the generic cell rate algorithm): a token bucket kept as one number, the
//! *theoretical arrival time* (TAT) — the time at which the bucket would be full again.
//!
//! With an emission interval `T = 60 s / requestsPerMinute` and a burst `b` (how many
//! requests may arrive at once on a full bucket), taking `n` tokens at `now` is allowed iff
//!
//! ```text
//!   tat' = max(tat, now) + n·T      and      tat' − now ≤ b·T
//! ```
//!
//! and then `tat := tat'`. A refused request changes nothing and may retry after
//! `tat' − now − b·T`. What is left is `⌊(b·T − (max(tat, now) − now)) / T⌋`. Time is in
//! microseconds from any fixed origin; all arithmetic saturates, so absurd settings or clocks
//! give absurd answers, never a panic.
//!
//! The same function runs in two places: inside Redis (one atomic script, Redis `TIME` as
//! the clock shared by every gateway replica, see [`super::lease`]) and locally, as the
//! fallback budget while Redis is unreachable. A clock that goes backwards (a skewed
//! replica, a Redis failover) can only make a decision stricter, never admit more: `now`
//! earlier than a stored TAT leaves less room, and the TAT never moves back.

/// A budget: the emission interval and the burst, in microseconds and tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Microseconds per token (`60 s / rpm`), at least 1.
    pub interval_us: u64,
    /// Tokens a full bucket holds (requests allowed at once), at least 1.
    pub burst: u64,
}

/// Why a budget cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("requestsPerMinute must be at least 1, got {0}")]
    ZeroRate(u64),
    #[error("requestsPerMinute {0} is above the supported 60,000,000 (one per microsecond)")]
    TooFast(u64),
}

impl Rate {
    /// `rpm` requests per minute with `burst` at once (a burst of 0 means 1).
    pub fn per_minute(rpm: u64, burst: u64) -> Result<Self, RateError> {
        if rpm == 0 {
            return Err(RateError::ZeroRate(rpm));
        }
        if rpm > 60_000_000 {
            return Err(RateError::TooFast(rpm));
        }
        Ok(Self {
            interval_us: 60_000_000 / rpm,
            burst: burst.max(1),
        })
    }

    /// This budget divided among `parts` (the fallback share of one replica): the same
    /// burst split, the interval multiplied, never below one token.
    pub fn share(self, parts: u64) -> Self {
        let parts = parts.max(1);
        Self {
            interval_us: self.interval_us.saturating_mul(parts),
            burst: (self.burst / parts).max(1),
        }
    }

    fn tolerance_us(self) -> u64 {
        self.burst.saturating_mul(self.interval_us)
    }
}

/// The answer to one request for tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the tokens were granted.
    pub allowed: bool,
    /// The TAT to store (unchanged when refused).
    pub tat_us: u64,
    /// Tokens left after this decision.
    pub remaining: u64,
    /// When refused: how long until the same request would be allowed.
    pub retry_after_us: u64,
    /// How long until the bucket is full again (the `RateLimit` header's reset).
    pub reset_us: u64,
}

/// Takes `n` tokens at `now_us` from a bucket whose TAT is `tat_us` (0 for a new bucket).
pub fn take(rate: Rate, tat_us: u64, now_us: u64, n: u64) -> Decision {
    let start = tat_us.max(now_us);
    let new_tat = start.saturating_add(n.saturating_mul(rate.interval_us));
    let tolerance = rate.tolerance_us();
    let used = |tat: u64| tat.saturating_sub(now_us);
    if used(new_tat) <= tolerance {
        Decision {
            allowed: true,
            tat_us: new_tat,
            remaining: (tolerance - used(new_tat)) / rate.interval_us,
            retry_after_us: 0,
            reset_us: used(new_tat),
        }
    } else {
        Decision {
            allowed: false,
            tat_us,
            remaining: tolerance.saturating_sub(used(start)) / rate.interval_us,
            retry_after_us: used(new_tat) - tolerance,
            reset_us: used(start),
        }
    }
}

/// Gives back `n` unused tokens: the TAT moves back by `n·T`, but never before `now` (a
/// bucket cannot hold more than full) and never below what it was minus what was taken.
pub fn give_back(rate: Rate, tat_us: u64, now_us: u64, n: u64) -> u64 {
    tat_us
        .saturating_sub(n.saturating_mul(rate.interval_us))
        .max(now_us.min(tat_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    fn rate(rpm: u64, burst: u64) -> Rate {
        Rate::per_minute(rpm, burst).expect("valid")
    }

    /// Runs `count` single-token requests at `now`, returning how many were allowed.
    fn admit(rate: Rate, tat: &mut u64, now: u64, count: u64) -> u64 {
        let mut allowed = 0;
        for _ in 0..count {
            let d = take(rate, *tat, now, 1);
            if d.allowed {
                *tat = d.tat_us;
                allowed += 1;
            }
        }
        allowed
    }

    #[test]
    fn a_full_bucket_admits_exactly_the_burst_at_once() {
        let r = rate(600, 10); // one per 100 ms, 10 at once
        let mut tat = 0;
        assert_eq!(admit(r, &mut tat, 5 * S, 25), 10);
        let refused = take(r, tat, 5 * S, 1);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert_eq!(
            refused.retry_after_us, 100_000,
            "one interval until the next token"
        );
    }

    #[test]
    fn the_bucket_refills_at_the_rate_and_never_beyond_the_burst() {
        let r = rate(600, 10);
        let mut tat = 0;
        assert_eq!(admit(r, &mut tat, 5 * S, 10), 10);
        // 350 ms later: 3 tokens back.
        assert_eq!(admit(r, &mut tat, 5 * S + 350_000, 10), 3);
        // An hour of silence refills to the burst, not to 36,000.
        assert_eq!(admit(r, &mut tat, 3_600 * S, 100), 10);
    }

    #[test]
    fn sustained_traffic_gets_the_rate_over_a_minute() {
        let r = rate(6_000, 50); // 100/s
        let mut tat = 0;
        let mut allowed = 0;
        // 1,000 requests/s offered for 60 s, in 1 ms steps.
        for ms in 0..60_000u64 {
            allowed += admit(r, &mut tat, ms * 1_000, 1);
        }
        // The rate for a minute plus the initial burst, never more.
        assert!(allowed <= 6_000 + 50, "{allowed}");
        assert!(allowed >= 6_000, "{allowed}");
    }

    #[test]
    fn remaining_and_reset_describe_the_bucket() {
        let r = rate(60, 5); // one per second
        let d = take(r, 0, 100 * S, 2);
        assert!(d.allowed);
        assert_eq!(d.remaining, 3);
        assert_eq!(d.reset_us, 2 * S, "full again after two intervals");
        let d = take(r, d.tat_us, 100 * S, 4);
        assert!(!d.allowed, "only 3 left");
        assert_eq!(d.remaining, 3);
        assert_eq!(d.retry_after_us, S);
    }

    #[test]
    fn a_clock_that_goes_backwards_never_admits_more() {
        let r = rate(600, 10);
        let mut tat = 0;
        assert_eq!(admit(r, &mut tat, 10 * S, 10), 10);
        // A replica whose clock is 5 s behind sees a TAT far in its future: nothing.
        assert_eq!(admit(r, &mut tat, 5 * S, 10), 0);
        // And the stored TAT did not move back.
        assert_eq!(tat, 10 * S + 10 * 100_000);
    }

    #[test]
    fn giving_back_restores_tokens_but_never_overfills() {
        let r = rate(600, 10);
        let d = take(r, 0, 10 * S, 8);
        let tat = give_back(r, d.tat_us, 10 * S, 3);
        assert_eq!(
            take(r, tat, 10 * S, 1).remaining,
            4,
            "8 taken, 3 back, 1 more"
        );
        // Giving back more than was taken leaves a full bucket, not an overfull one.
        let tat = give_back(r, tat, 10 * S, 1_000);
        assert_eq!(tat, 10 * S);
        assert_eq!(admit(r, &mut tat.clone(), 10 * S, 100), 10);
    }

    #[test]
    fn bad_and_absurd_settings_are_errors_or_saturate() {
        assert_eq!(Rate::per_minute(0, 1), Err(RateError::ZeroRate(0)));
        assert!(matches!(
            Rate::per_minute(u64::MAX, 1),
            Err(RateError::TooFast(_))
        ));
        let tiny = rate(1, 0);
        assert_eq!(tiny.burst, 1);
        let d = take(tiny, 0, 10 * S, u64::MAX);
        assert!(!d.allowed, "saturating, no panic");
        assert!(!take(tiny, u64::MAX, 10 * S, 1).allowed);
        assert_eq!(
            rate(6_000, 100).share(4),
            Rate {
                interval_us: 40_000,
                burst: 25
            }
        );
        assert_eq!(rate(6_000, 2).share(4).burst, 1, "never below one token");
    }
}
