//! Cluster-wide budgets without a network hop per request: the budget lives in Redis (one
//! atomic script, Redis `TIME` as the shared clock) and each gateway replica *leases* small
//! batches of tokens from it, spends them with a local atomic decision, and gives back what
//! it did not use when the lease ends.
//!
//! - [`authority`] is the script's decision in Rust: first give back the previous lease's
//!   unused tokens, then grant up to `want` tokens under [`super::gcra`] — as many as the
//!   budget allows, possibly fewer, possibly none (then the answer says when to retry).
//!   [`SCRIPT`] is the same arithmetic in Lua; the integration test runs both on the same
//!   inputs against a real Redis and requires the same answers.
//! - [`lease_size`]: a replica asks for what it expects to spend during one lease period
//!   (its recent demand), at least 1, and at most its fair part of what is left of the burst
//!   (`remaining / (2 · replicas)`), so leases shrink as the budget runs low and no replica
//!   hoards the last tokens.
//! - [`Lease`]: the local tokens, taken with a compare-and-swap (no lock, no await).
//!
//! Bound on over-admission: every admitted request spends a token the authority granted
//! under GCRA, so over any window of length `W` the cluster admits at most what a single
//! exact limiter admits over `W + L`, where `L` is the lease lifetime: at most
//! `rate · L` extra requests (5,000 rpm with 250 ms leases: 21). Nothing is ever admitted
//! twice: a token is spent locally or given back, never both.

use std::sync::atomic::{AtomicU64, Ordering};

use super::gcra::{self, Rate};

/// How long a lease lives before its unused tokens go back.
pub const LEASE_LIFETIME_US: u64 = 250_000;

/// The authority's answer to one lease request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Tokens granted (0..=want).
    pub granted: u64,
    /// The TAT to store.
    pub tat_us: u64,
    /// Tokens left in the shared budget after this grant.
    pub remaining: u64,
    /// When nothing was granted: how long until one token would be.
    pub retry_after_us: u64,
    /// How long until the shared bucket is full again.
    pub reset_us: u64,
}

/// The authority: gives back `returned` unused tokens, then grants up to `want`.
pub fn authority(rate: Rate, tat_us: u64, now_us: u64, want: u64, returned: u64) -> Grant {
    let tat = gcra::give_back(rate, tat_us, now_us, returned);
    // The most that fits now: the whole tolerance minus what is in use.
    let in_use = tat.max(now_us) - now_us;
    let fits =
        (rate.burst.saturating_mul(rate.interval_us)).saturating_sub(in_use) / rate.interval_us;
    let n = want.min(fits);
    if n == 0 {
        let d = gcra::take(rate, tat, now_us, 1);
        return Grant {
            granted: 0,
            tat_us: tat,
            remaining: 0,
            retry_after_us: d.retry_after_us,
            reset_us: d.reset_us,
        };
    }
    let d = gcra::take(rate, tat, now_us, n);
    Grant {
        granted: n,
        tat_us: d.tat_us,
        remaining: d.remaining,
        retry_after_us: 0,
        reset_us: d.reset_us,
    }
}

/// The Redis side of [`authority`]: `KEYS[1]` the bucket, `ARGV` = interval µs, burst,
/// want, returned. Returns `{granted, remaining, retry_after_us, reset_us}`. The TAT key
/// expires when the bucket would be full anyway.
pub const SCRIPT: &str = r#"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local returned = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local back = tat - returned * interval
if back < math.min(now, tat) then back = math.min(now, tat) end
tat = back
local start = math.max(tat, now)
local tolerance = burst * interval
local fits = math.floor((tolerance - (start - now)) / interval)
if fits < 0 then fits = 0 end
local n = math.min(want, fits)
if n == 0 then
  local retry = start + interval - now - tolerance
  if retry < 0 then retry = 0 end
  redis.call('SET', KEYS[1], tostring(tat), 'PX', math.max(1, math.ceil((start - now) / 1000)))
  return {0, 0, retry, start - now}
end
local new_tat = start + n * interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
return {n, math.floor((tolerance - (new_tat - now)) / interval), 0, new_tat - now}
"#;

/// How many tokens to ask for: what `demand_per_s` spends in one lease period, at least 1,
/// at most the fair part (`remaining / (2 · replicas)`, at least 1) of what is left.
pub fn lease_size(demand_per_s: f64, remaining: u64, replicas: u64) -> u64 {
    let period_s = LEASE_LIFETIME_US as f64 / 1e6;
    let want = if demand_per_s.is_finite() && demand_per_s > 0.0 {
        (demand_per_s * period_s).ceil().min(1e9) as u64
    } else {
        1
    };
    let fair = (remaining / (2 * replicas.max(1))).max(1);
    want.clamp(1, fair)
}

/// Tokens a replica holds: taken locally with a compare-and-swap.
#[derive(Debug, Default)]
pub struct Lease {
    left: AtomicU64,
}

impl Lease {
    /// A lease of `tokens`.
    pub fn new(tokens: u64) -> Self {
        Self {
            left: AtomicU64::new(tokens),
        }
    }

    /// Takes one token; `false` when none is left (ask the authority for a new lease).
    pub fn try_take(&self) -> bool {
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Adds `n` granted tokens.
    pub fn add(&self, n: u64) {
        self.left.fetch_add(n, Ordering::AcqRel);
    }

    /// Ends the lease: the unused tokens, to give back (nothing can be taken afterwards).
    pub fn end(&self) -> u64 {
        self.left.swap(0, Ordering::AcqRel)
    }

    /// Tokens left.
    pub fn left(&self) -> u64 {
        self.left.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const S: u64 = 1_000_000;

    fn rate(rpm: u64, burst: u64) -> Rate {
        Rate::per_minute(rpm, burst).expect("valid")
    }

    #[test]
    fn grants_what_fits_and_says_when_nothing_does() {
        let r = rate(600, 10);
        let g = authority(r, 0, 10 * S, 4, 0);
        assert_eq!((g.granted, g.remaining), (4, 6));
        let g = authority(r, g.tat_us, 10 * S, 8, 0);
        assert_eq!((g.granted, g.remaining), (6, 0), "only what fits");
        let g = authority(r, g.tat_us, 10 * S, 8, 0);
        assert_eq!(g.granted, 0);
        assert_eq!(g.retry_after_us, 100_000);
    }

    #[test]
    fn returned_tokens_are_granted_again_and_never_twice() {
        let r = rate(600, 10);
        let a = authority(r, 0, 10 * S, 10, 0);
        assert_eq!(a.granted, 10);
        // The replica used 3 of them: 7 go back and can be granted to another.
        let b = authority(r, a.tat_us, 10 * S, 10, 7);
        assert_eq!(b.granted, 7);
        // Returning more than the bucket can hold never creates tokens.
        let c = authority(r, b.tat_us, 10 * S, 100, 1_000);
        assert_eq!(c.granted, 10);
    }

    /// Several replicas lease and spend concurrently; over a simulated minute the cluster
    /// never admits more than the budget plus one lease lifetime of rate (the stated bound).
    #[test]
    fn replicas_sharing_a_budget_stay_within_the_bound() {
        let r = rate(6_000, 100); // 100/s cluster-wide
        let replicas = 4u64;
        let mut tat = 0u64;
        let mut admitted = 0u64;
        let mut leases: Vec<(u64, u64)> = vec![(0, 0); replicas as usize]; // (tokens, expires)
        // Every replica is offered 100/s (400/s in total), in 1 ms steps for 60 s.
        for ms in 0..60_000u64 {
            let now = ms * 1_000;
            for (i, lease) in leases.iter_mut().enumerate() {
                if ms % 10 != i as u64 % 10 {
                    continue; // each replica sees one request every 10 ms
                }
                if lease.1 <= now {
                    let g = authority(r, tat, now, lease_size(100.0, r.burst, replicas), lease.0);
                    tat = g.tat_us;
                    *lease = (g.granted, now + LEASE_LIFETIME_US);
                }
                if lease.0 > 0 {
                    lease.0 -= 1;
                    admitted += 1;
                }
            }
        }
        let bound = 6_000 + 100 + 6_000 * LEASE_LIFETIME_US / (60 * S);
        assert!(admitted <= bound, "{admitted} > {bound}");
        assert!(
            admitted >= 5_500,
            "the budget is used, not starved: {admitted}"
        );
    }

    #[test]
    fn leases_shrink_as_the_budget_runs_low() {
        assert_eq!(lease_size(400.0, 1_000, 4), 100, "demand for 250 ms");
        assert_eq!(lease_size(400.0, 40, 4), 5, "a fair part of what is left");
        assert_eq!(lease_size(400.0, 0, 4), 1, "always at least one");
        assert_eq!(lease_size(0.0, 1_000, 4), 1);
        assert_eq!(lease_size(f64::NAN, 1_000, 0), 1);
    }

    #[test]
    fn local_tokens_are_taken_once_each_across_threads() {
        let lease = Arc::new(Lease::new(1_000));
        let taken: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let lease = Arc::clone(&lease);
                    s.spawn(move || (0..400).filter(|_| lease.try_take()).count() as u64)
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("joins")).sum()
        });
        assert_eq!(taken, 1_000, "exactly the lease, never more");
        assert_eq!(lease.end(), 0);
        let lease = Lease::new(5);
        assert!(lease.try_take());
        assert_eq!(lease.end(), 4, "unused tokens go back");
        assert!(!lease.try_take(), "nothing after the end");
    }
}
