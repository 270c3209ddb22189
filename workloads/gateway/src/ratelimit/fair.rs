//! Fair shares of one budget between gateway replicas (max-min fairness), the pure math the
//! lease script runs (`lease::fair_authority` and `lease::SCRIPT`, which build on this module;
//! it does not import them).
//!
//! Every lease request records the replica's demand (its offered rate, in requests per
//! minute, with [`HEADROOM`]) next to the budget in Redis. The budget's rate is split by
//! *water-filling* ([`max_min_share`]): replicas asking for less than an equal split get
//! what they ask; the rest is split evenly among the others; what nobody asks for is split
//! evenly among all of them (so the shares always add up to the budget, and a replica alone
//! — the others idle, their demand gone stale — has all of it).
//!
//! Each replica's share is enforced by a bucket of its own ([`own_rate`]): a GCRA at its
//! share's rate, holding its share's worth of the shared bucket's tolerance or of two lease
//! lifetimes, whichever is longer (a replica asks at least once per lease lifetime, so it
//! loses nothing it was due between two asks; a replica alone has the whole burst). A replica whose own bucket is empty is refused even when the
//! shared bucket has a token: that token is another replica's share. Above half of the
//! shared bucket anyone may take (an unsaturated budget is not split; see the lease docs);
//! the last [`reserve`] tokens only a replica below its share may take.
//!
//! All arithmetic is on integers, as in the Lua script (Redis numbers are doubles, exact up
//! to 2^53, which sane budgets never approach).

use super::gcra::Rate;

/// Microseconds in a minute: demands and shares are in requests per minute.
pub const MINUTE_US: u64 = 60_000_000;

/// A replica's demand counts this much over its measured offered rate (in 1/4): a measured
/// rate lags a rising one, and a replica given exactly its estimate would refuse the part
/// of its traffic that arrives a little early.
pub const HEADROOM_QUARTERS: u64 = 5;
/// `HEADROOM_QUARTERS / 4`, for the docs.
pub const HEADROOM: f64 = HEADROOM_QUARTERS as f64 / 4.0;

/// How long a lease lives before its unused tokens go back (`lease`, which
/// re-exports it; defined here because shares are measured in lease lifetimes, and `fair`
/// sits below `lease`).
pub const LEASE_LIFETIME_US: u64 = 250_000;

/// How long a replica's recorded demand counts without a new lease request: four lease
/// lifetimes (an active replica asks at least once per lifetime).
pub const STALE_US: u64 = 4 * LEASE_LIFETIME_US;

/// The demand to record for an offered rate of `per_s` requests a second: with
/// [`HEADROOM`], in requests per minute, at least 1 (a replica that asks has demand).
pub fn demand_rpm(per_s: f64) -> u64 {
    if !(per_s.is_finite() && per_s > 0.0) {
        return 1;
    }
    let rpm = (per_s * 60.0 * HEADROOM).ceil().min(1e12) as u64;
    rpm.saturating_add(1)
}

/// The demand recorded while a replica has not measured its own yet (a fresh or long-idle
/// replica): as much as it can get, so it starts at an equal split, not at nothing.
pub const UNKNOWN_DEMAND_RPM: u64 = 1_000_000_000_000;

/// The shortest window a demand measurement spans (shorter ones count a request or two and
/// swing the estimate).
pub const MIN_WINDOW_US: u64 = 100_000;
/// The demand estimate's time constant: a change of offered rate shows in full after about
/// this long.
pub const TAU_US: u64 = 500_000;

/// A replica's offered rate in one scope, measured over windows of at least
/// [`MIN_WINDOW_US`] and smoothed with the time constant [`TAU_US`]; unknown at first and
/// after an idle stretch longer than [`STALE_US`] (its record in Redis is gone by then).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DemandMeter {
    per_s: Option<f64>,
    offered_then: u64,
    then_us: u64,
}

impl DemandMeter {
    /// A meter with no estimate, counting from `offered` requests at `now_us`.
    pub fn new(offered: u64, now_us: u64) -> Self {
        Self {
            per_s: None,
            offered_then: offered,
            then_us: now_us,
        }
    }

    /// Takes the count of requests offered so far at `now_us`.
    pub fn update(&mut self, offered: u64, now_us: u64) {
        let elapsed = now_us.saturating_sub(self.then_us);
        if elapsed > STALE_US {
            // Idle for long: what came before says nothing about what comes now.
            *self = Self::new(offered.saturating_sub(1), now_us);
            return;
        }
        if elapsed < MIN_WINDOW_US {
            return;
        }
        let recent = offered.saturating_sub(self.offered_then) as f64 * 1e6 / elapsed as f64;
        let alpha = (elapsed as f64 / TAU_US as f64).min(1.0);
        self.per_s = Some(
            self.per_s
                .map_or(recent, |old| old + alpha * (recent - old)),
        );
        self.offered_then = offered;
        self.then_us = now_us;
    }

    /// The estimate, requests per second (`None` while unknown).
    pub fn per_s(&self) -> Option<f64> {
        self.per_s
    }

    /// The demand to record: [`demand_rpm`] of the estimate, or [`UNKNOWN_DEMAND_RPM`].
    pub fn demand_rpm(&self) -> u64 {
        self.per_s.map_or(UNKNOWN_DEMAND_RPM, demand_rpm)
    }
}

/// The budget's rate in requests per minute (what the shares split).
pub fn capacity_rpm(rate: Rate) -> u64 {
    (MINUTE_US / rate.interval_us.max(1)).max(1)
}

/// The max-min fair share of `capacity` (requests per minute) for a replica demanding
/// `mine` when the other live replicas demand `others`: water-filling, then what nobody
/// asks for split evenly among all. At least 1. Equal demands always get equal shares.
pub fn max_min_share(capacity: u64, mine: u64, others: &[u64]) -> u64 {
    let mut demands: Vec<u64> = others.to_vec();
    demands.push(mine);
    demands.sort_unstable();
    let k = demands.len() as u64;
    let mut left = capacity;
    for (j, &d) in demands.iter().enumerate() {
        let rest = k - j as u64;
        if d.saturating_mul(rest) > left {
            // Everyone from here on demands more than an equal split of what is left: the
            // water level.
            return mine.min(left / rest).max(1);
        }
        left -= d;
    }
    // Every demand fits: the rest is split evenly.
    mine.saturating_add(left / k).max(1)
}

/// The bucket that enforces a `share_rpm` share of `rate`: its GCRA interval, and a burst
/// of what the share earns over the shared tolerance or two lease lifetimes, whichever is
/// longer, between 1 and the shared burst (a replica alone has the whole budget's bucket);
/// never faster than `rate`. This burst is how far a replica can run ahead of its share.
pub fn own_rate(rate: Rate, share_rpm: u64) -> Rate {
    let share = share_rpm.max(1);
    let window = u128::from(
        rate.burst
            .saturating_mul(rate.interval_us)
            .max(2 * LEASE_LIFETIME_US),
    );
    let burst = u128::from(share)
        .saturating_mul(window)
        .div_ceil(u128::from(MINUTE_US));
    Rate {
        interval_us: (MINUTE_US / share).max(rate.interval_us),
        burst: u64::try_from(burst)
            .unwrap_or(u64::MAX)
            .clamp(1, rate.burst),
    }
}

/// Tokens of the shared bucket anyone may take, whatever their share: what is above half
/// of it (`fits − burst / 2`), so an unsaturated budget is not split.
pub fn free_above_half(rate: Rate, fits: u64) -> u64 {
    fits.saturating_sub(rate.burst / 2)
}

/// Tokens at the bottom of the shared bucket that only replicas below their share (their
/// own bucket at least half full) may take: one per other live replica, at most a tenth of
/// the burst (none for a replica alone or a burst under 10).
pub fn reserve(rate: Rate, others: u64) -> u64 {
    (rate.burst / 10).min(others)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(rpm: u64, burst: u64) -> Rate {
        Rate::per_minute(rpm, burst).expect("valid")
    }

    #[test]
    fn equal_demands_over_the_budget_split_it_evenly() {
        for n in 1..=7u64 {
            let others = vec![10_000; n as usize - 1];
            let share = max_min_share(6_000, 10_000, &others);
            assert_eq!(share, 6_000 / n, "{n} replicas");
        }
        // Floors never make equal demands unequal.
        assert_eq!(max_min_share(10, 50, &[50, 50]), 3);
    }

    #[test]
    fn a_light_replica_gets_what_it_asks_and_the_rest_is_split() {
        // 6,000 rpm; one replica asks 600, four ask 5,000 each.
        assert_eq!(max_min_share(6_000, 600, &[5_000; 4]), 600);
        assert_eq!(
            max_min_share(6_000, 5_000, &[600, 5_000, 5_000, 5_000]),
            1_350
        );
        // Two light ones, one between, one heavy: water-filling level by level.
        assert_eq!(max_min_share(1_000, 100, &[200, 400, 900]), 100);
        assert_eq!(max_min_share(1_000, 200, &[100, 400, 900]), 200);
        assert_eq!(max_min_share(1_000, 400, &[100, 200, 900]), 350);
        assert_eq!(max_min_share(1_000, 900, &[100, 200, 400]), 350);
    }

    #[test]
    fn what_nobody_asks_for_is_split_so_nothing_is_held_back() {
        // Alone (the others idle, their demand stale): the whole budget, whatever it asks.
        assert_eq!(max_min_share(6_000, 1, &[]), 6_000);
        assert_eq!(max_min_share(6_000, 60_000, &[]), 6_000);
        // Unsaturated: each gets its demand plus an even part of the rest; the shares add
        // up to the budget.
        let shares = [
            max_min_share(6_000, 1_000, &[2_000]),
            max_min_share(6_000, 2_000, &[1_000]),
        ];
        assert_eq!(shares, [2_500, 3_500]);
        assert_eq!(shares.iter().sum::<u64>(), 6_000);
    }

    #[test]
    fn shares_never_sum_over_the_budget() {
        let demands = [3u64, 17, 170, 1_700, 9_000, 9_000, 40_000];
        for capacity in [1u64, 7, 100, 5_000, 6_000, 1_000_000] {
            let sum: u64 = (0..demands.len())
                .map(|i| {
                    let mut others = demands.to_vec();
                    let mine = others.remove(i);
                    max_min_share(capacity, mine, &others)
                })
                .sum();
            // At least 1 each, so a budget under the replica count is the only excess.
            assert!(
                sum <= capacity.max(demands.len() as u64),
                "{capacity}: {sum}"
            );
        }
    }

    #[test]
    fn demand_has_headroom_and_is_never_zero() {
        assert_eq!(demand_rpm(10.0), 751, "10/s = 600 rpm, +25%, +1");
        assert_eq!(demand_rpm(0.0), 1);
        assert_eq!(demand_rpm(f64::NAN), 1);
        assert_eq!(demand_rpm(f64::INFINITY), 1);
        assert_eq!(demand_rpm(1e300), 1_000_000_000_001);
    }

    #[test]
    fn the_own_bucket_runs_at_the_share_and_never_beyond_the_shared_one() {
        let r = rate(6_000, 20); // 100/s, tolerance 200 ms
        // A fifth: 20/s, holding 20/s × max(200 ms, 500 ms) = 10 tokens.
        assert_eq!(
            own_rate(r, 1_200),
            Rate {
                interval_us: 50_000,
                burst: 10
            }
        );
        // A long tolerance: the share's part of it (a fifth of 500 at 5,000 rpm).
        assert_eq!(own_rate(rate(5_000, 500), 1_000).burst, 100);
        // The whole budget: the shared bucket itself.
        assert_eq!(own_rate(r, capacity_rpm(r)), r);
        // Absurd shares saturate, never panic.
        assert_eq!(own_rate(r, 0).interval_us, MINUTE_US);
        assert_eq!(
            own_rate(r, u64::MAX),
            r,
            "never faster than the shared bucket"
        );
        let huge = rate(60_000_000, u64::MAX);
        assert_eq!(own_rate(huge, u64::MAX).interval_us, 1);
        assert_eq!(own_rate(huge, 60_000_000).burst, u64::MAX);
    }

    #[test]
    fn the_demand_meter_smooths_and_forgets() {
        let ms = 1_000;
        let mut m = DemandMeter::new(0, 0);
        assert_eq!(
            m.demand_rpm(),
            UNKNOWN_DEMAND_RPM,
            "unknown: an equal split"
        );
        // A request 10 ms in is not a rate of 100/s: windows span 100 ms at least.
        m.update(1, 10 * ms);
        assert_eq!(m.per_s(), None);
        // 40/s for 250 ms: the first estimate is the measurement.
        m.update(10, 250 * ms);
        assert_eq!(m.per_s(), Some(40.0));
        // A quiet 100 ms moves it a fifth of the way (time constant 500 ms), not halfway.
        m.update(10, 350 * ms);
        assert_eq!(m.per_s(), Some(32.0));
        // Sustained 10/s converges.
        let mut offered = 10;
        for step in 1..=40u64 {
            offered += 1;
            m.update(offered, 350 * ms + step * 100 * ms);
        }
        let per_s = m.per_s().expect("known");
        assert!((per_s - 10.0).abs() < 0.1, "{per_s}");
        assert_eq!(m.demand_rpm(), demand_rpm(per_s));
        // Idle for longer than a record lives: unknown again.
        m.update(offered + 1, 350 * ms + 4_100 * ms + STALE_US + 1);
        assert_eq!(m.per_s(), None);
    }

    #[test]
    fn the_reserve_is_one_per_other_replica_and_a_tenth_of_the_burst_at_most() {
        assert_eq!(reserve(rate(6_000, 20), 4), 2);
        assert_eq!(reserve(rate(6_000, 500), 4), 4);
        assert_eq!(reserve(rate(6_000, 500), 0), 0, "alone");
        assert_eq!(reserve(rate(6_000, 9), 4), 0);
    }

    #[test]
    fn anyone_may_take_the_upper_half_of_the_shared_bucket() {
        let r = rate(6_000, 20);
        assert_eq!(free_above_half(r, 20), 10);
        assert_eq!(free_above_half(r, 10), 0);
        assert_eq!(free_above_half(r, 0), 0);
    }
}
