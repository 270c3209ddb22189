//! Cluster-wide budgets without a network hop per request: the budget lives in Redis (one
//! atomic script, Redis `TIME` as the shared clock) and each gateway replica *leases* small
//! batches of tokens from it, spends them with a local atomic decision, and gives back what
//! it did not use when the lease ends.
//!
//! - [`fair_authority`] is the script's decision in Rust: first give back the previous
//!   lease's unused tokens, then grant up to `want` tokens — as many as the shared budget
//!   allows under [`super::gcra`] *and* as the replica's fair share allows ([`super::fair`]),
//!   possibly fewer, possibly none (then the answer says when to retry). [`SCRIPT`] is the
//!   same arithmetic in Lua; the integration test runs both on the same inputs against a
//!   real Redis and requires the same answers. [`authority`] is the shared bucket alone
//!   (what a replica alone gets: the fair authority with one replica gives the same answers).
//! - **Fair shares under saturation**: each lease request records the replica's demand (its
//!   offered rate, with headroom) in a hash next to the budget; the script splits the
//!   budget's rate max-min fairly among the replicas whose demand is fresh (recorded in the
//!   last [`super::fair::STALE_US`]) and keeps a GCRA bucket per replica at its share. A
//!   grant is capped by that bucket — except for the tokens above half of the shared bucket,
//!   which anyone may take — so when the budget is short a replica that asks more often
//!   cannot take another's share, and when it is not (or the others are idle) nothing is
//!   split. The last few tokens of the shared bucket ([`super::fair::reserve`]) are kept for
//!   replicas below their share (own bucket at least half full): a replica spending all of
//!   its share would otherwise take each token as it comes, and one asking for less than
//!   its share would find the bucket empty at the moment it needs one. Before this, five
//!   replicas offered the same load admitted 1051 … 314 each; now 620 … 616.
//! - [`lease_size`]: a replica asks for what it expects to spend during one lease period
//!   (its recent demand, or its fair share if that is less), at least 1, and at most its
//!   fair part of what is left of the burst (`remaining / (2 · replicas)`), so leases shrink
//!   as the budget runs low and no replica hoards the last tokens.
//! - [`Lease`]: the local tokens, taken with a compare-and-swap (no lock, no await).
//!
//! Bound on over-admission: every admitted request spends a token the authority granted
//! under the shared bucket's GCRA (the per-replica buckets only ever grant *less*), so over
//! any window of length `W` the cluster admits at most what a single exact limiter admits
//! over `W + L`, where `L` is the lease lifetime: at most `rate · L` extra requests (5,000
//! rpm with 250 ms leases: 21). Nothing is ever admitted twice: a token is spent locally or
//! given back, never both.
//!
//! Fairness holds in steady state, over windows longer than a few lease lifetimes: a replica
//! can run ahead of its share by its own bucket's burst (what its share earns over the
//! shared tolerance or two lease lifetimes, the longer: 10 tokens for a fifth of 6,000 rpm
//! with a burst of 20), so replicas that start together split the first second unevenly by
//! up to that much each; a replica's demand is measured over 100 ms windows with a 500 ms
//! time constant ([`super::fair::DemandMeter`]), so a change of load shifts the shares
//! within about half a second; a fresh replica counts as wanting as much as it can get (an
//! equal split) until measured. Replicas are told apart by their member name (the pod's):
//! two with the same name share one record and one share.
//!
//! Cost: a light replica's headroom (25% over its measured demand) that it does not use
//! collects in the shared bucket, which only past half full is anyone's again — so with
//! uneven demand up to half the burst can stay unspent (a fixed amount, not a rate: 50 of
//! 3,100 over 30 s with a burst of 100). The total stays within the bound above.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicU64, Ordering},
};

use super::{
    fair::{self, STALE_US},
    gcra::{self, Rate},
};

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

/// A replica's record next to a budget in Redis (the script's hash `KEYS[2]`, one field per
/// replica: `"<demand rpm>:<seen µs>:<own TAT µs>"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its demand, requests per minute with headroom ([`fair::demand_rpm`]).
    pub demand_rpm: u64,
    /// When it last asked (Redis `TIME`).
    pub seen_us: u64,
    /// The TAT of its own bucket (its fair share).
    pub tat_us: u64,
}

/// One lease request of a replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ask<'a> {
    /// The replica (its heartbeat member name).
    pub member: &'a str,
    pub want: u64,
    /// Unused tokens of its previous lease, given back first.
    pub returned: u64,
    /// Its demand, requests per minute with headroom ([`fair::demand_rpm`]).
    pub demand_rpm: u64,
}

/// The fair authority's answer: the grant, and the replica's share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FairGrant {
    pub grant: Grant,
    /// The replica's max-min fair share of the budget, requests per minute.
    pub share_rpm: u64,
    /// Tokens left in the replica's own bucket after this grant.
    pub own_left: u64,
}

/// The authority with fair shares: gives back `ask.returned` unused tokens (to the shared
/// bucket and the replica's own), forgets replicas not seen for [`STALE_US`], records this
/// one's demand, and grants up to `ask.want`: what fits the shared bucket, and of that what
/// fits the replica's own bucket at its max-min fair share or lies above half of the shared
/// bucket. Mirrors [`SCRIPT`] exactly.
pub fn fair_authority(
    rate: Rate,
    tat_us: u64,
    peers: &mut BTreeMap<String, Peer>,
    now_us: u64,
    ask: &Ask<'_>,
) -> FairGrant {
    let tat = gcra::give_back(rate, tat_us, now_us, ask.returned);
    let start = tat.max(now_us);
    let tolerance = rate.burst.saturating_mul(rate.interval_us);
    let fits = tolerance.saturating_sub(start - now_us) / rate.interval_us;

    peers.retain(|_, p| now_us.saturating_sub(p.seen_us) <= STALE_US);
    let mine = peers.get(ask.member).map_or(0, |p| p.tat_us);
    let others: Vec<u64> = peers
        .iter()
        .filter(|(m, _)| m.as_str() != ask.member)
        .map(|(_, p)| p.demand_rpm)
        .collect();
    let share_rpm = fair::max_min_share(fair::capacity_rpm(rate), ask.demand_rpm, &others);
    let own = fair::own_rate(rate, share_rpm);
    let own_tolerance = own.burst.saturating_mul(own.interval_us);
    let mine = gcra::give_back(own, mine, now_us, ask.returned);
    let own_start = mine.max(now_us);
    let own_fits = own_tolerance.saturating_sub(own_start - now_us) / own.interval_us;

    // The last tokens of the shared bucket are kept for replicas below their share.
    let reserve = if own_fits.saturating_mul(2) >= own.burst {
        0
    } else {
        fair::reserve(rate, others.len() as u64)
    };
    let n = ask
        .want
        .min(fits.saturating_sub(reserve))
        .min(own_fits.max(fair::free_above_half(rate, fits)));
    let record = |tat_us| Peer {
        demand_rpm: ask.demand_rpm,
        seen_us: now_us,
        tat_us,
    };
    if n == 0 {
        // Until the shared bucket holds a token above the reserve, and the own bucket one.
        let retry = |start: u64, tokens: u64, r: Rate, tolerance: u64| {
            (start + tokens * r.interval_us - now_us).saturating_sub(tolerance)
        };
        peers.insert(ask.member.to_string(), record(mine));
        return FairGrant {
            grant: Grant {
                granted: 0,
                tat_us: tat,
                remaining: 0,
                retry_after_us: retry(start, reserve + 1, rate, tolerance).max(retry(
                    own_start,
                    1,
                    own,
                    own_tolerance,
                )),
                reset_us: start - now_us,
            },
            share_rpm,
            own_left: own_fits,
        };
    }
    let new_tat = start + n * rate.interval_us;
    let own_new = (own_start + n * own.interval_us).min(now_us + own_tolerance);
    peers.insert(ask.member.to_string(), record(own_new));
    FairGrant {
        grant: Grant {
            granted: n,
            tat_us: new_tat,
            remaining: (tolerance - (new_tat - now_us)) / rate.interval_us,
            retry_after_us: 0,
            reset_us: new_tat - now_us,
        },
        share_rpm,
        own_left: (own_tolerance - (own_new - now_us)) / own.interval_us,
    }
}

/// The Redis side of [`fair_authority`]: `KEYS[1]` the budget's TAT, `KEYS[2]` the
/// replicas' hash; `ARGV` = interval µs, burst, want, returned, member, demand rpm. Returns
/// `{granted, remaining, retry_after_us, reset_us, share_rpm, own_left}`. The TAT key
/// expires when the bucket would be full anyway, the hash when no replica has asked for
/// twice [`STALE_US`]. Numbers are written with `%.0f` (Lua's `tostring` keeps 14 digits,
/// rounding a µs timestamp to 100 µs).
pub const SCRIPT: &str = r#"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local returned = tonumber(ARGV[4])
local member = ARGV[5]
local demand = tonumber(ARGV[6])
local MINUTE = 60000000
local STALE = @STALE@
local WINDOW = @WINDOW@
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function give_back(tat, iv)
  local back = tat - returned * iv
  if back < math.min(now, tat) then back = math.min(now, tat) end
  return back
end
local function fits_of(start, iv, tol)
  local f = math.floor((tol - (start - now)) / iv)
  if f < 0 then f = 0 end
  return f
end
local tat = give_back(tonumber(redis.call('GET', KEYS[1]) or '0') or 0, interval)
local start = math.max(tat, now)
local tolerance = burst * interval
local fits = fits_of(start, interval, tolerance)
local mine = 0
local demands = {demand}
local fields = redis.call('HGETALL', KEYS[2])
for i = 1, #fields, 2 do
  local d, seen, ptat = string.match(fields[i + 1], '^(%d+):(%d+):(%d+)$')
  if d == nil or now - tonumber(seen) > STALE then
    redis.call('HDEL', KEYS[2], fields[i])
  elseif fields[i] == member then
    mine = tonumber(ptat)
  else
    demands[#demands + 1] = tonumber(d)
  end
end
table.sort(demands)
local k = #demands
local left = math.max(1, math.floor(MINUTE / interval))
local share = nil
for j = 1, k do
  local rest = k - j + 1
  if demands[j] * rest > left then
    share = math.min(demand, math.floor(left / rest))
    break
  end
  left = left - demands[j]
end
if share == nil then share = demand + math.floor(left / k) end
if share < 1 then share = 1 end
local own_interval = math.max(math.floor(MINUTE / share), interval)
local own_burst = math.min(math.max(math.ceil(share * math.max(tolerance, WINDOW) / MINUTE), 1), burst)
local own_tolerance = own_burst * own_interval
mine = give_back(mine, own_interval)
local own_start = math.max(mine, now)
local own_fits = fits_of(own_start, own_interval, own_tolerance)
local free = fits - math.floor(burst / 2)
if free < 0 then free = 0 end
local reserve = 0
if own_fits * 2 < own_burst then reserve = math.min(math.floor(burst / 10), #demands - 1) end
local n = math.min(want, fits - reserve, math.max(own_fits, free))
local function record(own_tat)
  redis.call('HSET', KEYS[2], member, string.format('%.0f:%.0f:%.0f', demand, now, own_tat))
  redis.call('PEXPIRE', KEYS[2], math.floor(2 * STALE / 1000))
end
if n <= 0 then
  local retry = math.max(0, start + (reserve + 1) * interval - now - tolerance,
    own_start + own_interval - now - own_tolerance)
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.max(1, math.ceil((start - now) / 1000)))
  record(mine)
  return {0, 0, retry, start - now, share, own_fits}
end
local new_tat = start + n * interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
local own_new = math.min(own_start + n * own_interval, now + own_tolerance)
record(own_new)
return {n, math.floor((tolerance - (new_tat - now)) / interval), 0, new_tat - now, share,
  math.floor((own_tolerance - (own_new - now)) / own_interval)}
"#;

/// [`SCRIPT`] with its constants filled in (what is sent to Redis).
pub fn script() -> String {
    SCRIPT
        .replace("@STALE@", &STALE_US.to_string())
        .replace("@WINDOW@", &(2 * LEASE_LIFETIME_US).to_string())
}

/// How many tokens to ask for: what `demand_per_s` spends in one lease period — or what the
/// replica's fair share `share_per_s` (the authority's last answer; infinite before one)
/// allows in a period, if that is less — at least 1, at most the fair part
/// (`remaining / (2 · replicas)`, at least 1) of what is left.
pub fn lease_size(demand_per_s: f64, remaining: u64, replicas: u64, share_per_s: f64) -> u64 {
    let period_s = LEASE_LIFETIME_US as f64 / 1e6;
    // `f64::min` ignores a NaN share.
    let per_s = demand_per_s.min(share_per_s);
    let want = if per_s.is_finite() && per_s > 0.0 {
        (per_s * period_s).ceil().min(1e9) as u64
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
                    let want = lease_size(100.0, r.burst, replicas, f64::INFINITY);
                    let g = authority(r, tat, now, want, lease.0);
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
        let any = f64::INFINITY;
        assert_eq!(lease_size(400.0, 1_000, 4, any), 100, "demand for 250 ms");
        assert_eq!(
            lease_size(400.0, 40, 4, any),
            5,
            "a fair part of what is left"
        );
        assert_eq!(lease_size(400.0, 0, 4, any), 1, "always at least one");
        assert_eq!(lease_size(0.0, 1_000, 4, any), 1);
        assert_eq!(lease_size(f64::NAN, 1_000, 0, any), 1);
    }

    #[test]
    fn leases_are_capped_at_the_fair_share() {
        // Demand 400/s, fair share 20/s: 5 tokens per 250 ms, not 100.
        assert_eq!(lease_size(400.0, 1_000, 4, 20.0), 5);
        // A share above the demand changes nothing; a NaN share is no cap.
        assert_eq!(lease_size(40.0, 1_000, 4, 400.0), 10);
        assert_eq!(lease_size(40.0, 1_000, 4, f64::NAN), 10);
        assert_eq!(lease_size(40.0, 1_000, 4, 0.0), 1, "at least one");
    }

    fn ask(member: &str, want: u64, demand_rpm: u64) -> Ask<'_> {
        Ask {
            member,
            want,
            returned: 0,
            demand_rpm,
        }
    }

    #[test]
    fn one_replica_gets_what_the_shared_bucket_alone_grants() {
        let r = rate(600, 10);
        let (mut tat, mut peers) = (0, BTreeMap::new());
        let mut plain_tat = 0;
        for (step, want, returned) in [(0, 4, 0), (0, 8, 0), (0, 8, 0), (150, 3, 2), (900, 20, 1)] {
            let now = 10 * S + step * 1_000;
            let a = Ask {
                returned,
                ..ask("gw-0", want, 100_000)
            };
            let fair = fair_authority(r, tat, &mut peers, now, &a);
            let plain = authority(r, plain_tat, now, want, returned);
            assert_eq!(fair.grant, plain, "step {step}");
            assert_eq!(fair.share_rpm, 600, "alone: the whole budget");
            tat = fair.grant.tat_us;
            plain_tat = plain.tat_us;
        }
    }

    #[test]
    fn grants_are_capped_at_the_fair_share_when_the_bucket_is_short() {
        let r = rate(6_000, 20); // 100/s
        let (mut tat, mut peers) = (0, BTreeMap::new());
        let now = 10 * S;
        // Five replicas, each demanding 50/s: 20/s each, own buckets of 14.
        for m in ["a", "b", "c", "d"] {
            let g = fair_authority(r, tat, &mut peers, now, &ask(m, 1, 3_000));
            tat = g.grant.tat_us;
        }
        // "e" asks for everything: of the 16 left, the 6 above half the bucket are anyone's,
        // the rest only as far as its own bucket (a fifth of the rate, 10 tokens) holds.
        let g = fair_authority(r, tat, &mut peers, now, &ask("e", 100, 3_000));
        assert_eq!(g.share_rpm, 1_200);
        assert_eq!(g.grant.granted, 10, "its own bucket, not the 16 left");
        assert_eq!(g.own_left, 0);
        tat = g.grant.tat_us;
        let g = fair_authority(r, tat, &mut peers, now, &ask("e", 1, 3_000));
        assert_eq!(
            g.grant.granted, 0,
            "its share is spent; the last 6 are others'"
        );
        assert_eq!(
            g.grant.retry_after_us, 50_000,
            "one interval of its own bucket"
        );
        let g = fair_authority(r, tat, &mut peers, now, &ask("a", 9, 3_000));
        assert_eq!(g.grant.granted, 6, "what is left, within a's own 9");
    }

    #[test]
    fn the_last_tokens_are_kept_for_a_replica_below_its_share() {
        let r = rate(6_000, 20); // 100/s
        let (mut tat, mut peers) = (0, BTreeMap::new());
        let now = 10 * S;
        // "light" asks for a tenth of the budget, "heavy" for all of it.
        let g = fair_authority(r, tat, &mut peers, now, &ask("light", 1, 600));
        tat = g.grant.tat_us;
        let g = fair_authority(r, tat, &mut peers, now, &ask("heavy", 100, 60_000));
        assert_eq!(g.share_rpm, 5_400);
        assert_eq!(
            g.grant.granted, 19,
            "all that is left: its own bucket holds 20"
        );
        tat = g.grant.tat_us;
        // 20 ms later two tokens are back; heavy's own bucket (90/s) holds two of its 20, so
        // it is below half: the last token (a reserve of 1, one other replica) is not for it.
        let later = now + 20_000;
        let g = fair_authority(r, tat, &mut peers, later, &ask("heavy", 5, 60_000));
        assert_eq!(g.grant.granted, 1, "2 in the bucket, 1 kept");
        tat = g.grant.tat_us;
        let g = fair_authority(r, tat, &mut peers, later, &ask("heavy", 5, 60_000));
        assert_eq!(g.grant.granted, 0);
        assert_eq!(
            g.grant.retry_after_us, 10_000,
            "until one more is above the reserve"
        );
        // The light one, far below its share, takes it.
        let g = fair_authority(r, tat, &mut peers, later, &ask("light", 1, 600));
        assert_eq!(g.grant.granted, 1);
    }

    #[test]
    fn stale_replicas_are_forgotten_and_their_share_returns() {
        let r = rate(6_000, 20);
        let (mut tat, mut peers) = (0, BTreeMap::new());
        for m in ["a", "b", "c"] {
            tat = fair_authority(r, tat, &mut peers, 10 * S, &ask(m, 1, 6_000))
                .grant
                .tat_us;
        }
        let g = fair_authority(r, tat, &mut peers, 10 * S, &ask("a", 1, 6_000));
        assert_eq!(g.share_rpm, 2_000);
        let later = 10 * S + STALE_US + 1;
        let g = fair_authority(r, g.grant.tat_us, &mut peers, later, &ask("a", 1, 6_000));
        assert_eq!(g.share_rpm, 6_000, "b and c went quiet");
        assert_eq!(peers.len(), 1);
    }

    #[test]
    fn returned_tokens_go_back_to_the_own_bucket_too() {
        let r = rate(6_000, 20);
        let (mut tat, mut peers) = (0, BTreeMap::new());
        tat = fair_authority(r, tat, &mut peers, 10 * S, &ask("b", 1, 3_000))
            .grant
            .tat_us;
        let g = fair_authority(r, tat, &mut peers, 10 * S, &ask("a", 100, 3_000));
        assert_eq!(
            g.grant.granted, 19,
            "its own bucket (half the rate, 20) holds all 19"
        );
        let back = Ask {
            returned: 10,
            ..ask("a", 0, 3_000)
        };
        let g = fair_authority(r, g.grant.tat_us, &mut peers, 10 * S, &back);
        assert_eq!(g.grant.granted, 0);
        assert_eq!(g.own_left, 11, "its 1 left and the 10 returned");
    }

    /// A simulated minute of `offered[i]` requests a second per replica, all arriving on the
    /// same millisecond ticks and asking in the same order (replica 0 first), each replica
    /// leasing as the gateway does (ask when empty, wait out a refusal's retry time).
    /// Returns what each admitted.
    fn simulate(offered: &[u64], fair: bool) -> Vec<u64> {
        let r = rate(6_000, 20);
        let n = offered.len() as u64;
        let (mut tat, mut peers) = (0u64, BTreeMap::new());
        let mut tokens = vec![0u64; offered.len()];
        let mut blocked = vec![0u64; offered.len()];
        let mut share = vec![f64::INFINITY; offered.len()];
        let mut remaining = r.burst;
        let mut admitted = vec![0u64; offered.len()];
        let members: Vec<String> = (0..n).map(|i| format!("gw-{i}")).collect();
        for ms in 0..60_000u64 {
            let now = 10 * S + ms * 1_000;
            for (i, &per_s) in offered.iter().enumerate() {
                if (ms * per_s) / 1_000 == ((ms + 1) * per_s) / 1_000 {
                    continue; // no request for this replica on this tick
                }
                if tokens[i] > 0 {
                    tokens[i] -= 1;
                    admitted[i] += 1;
                    continue;
                }
                if now < blocked[i] {
                    continue;
                }
                let want = lease_size(per_s as f64, remaining, n, share[i]);
                let g = if fair {
                    let a = ask(&members[i], want, fair::demand_rpm(per_s as f64));
                    let g = fair_authority(r, tat, &mut peers, now, &a);
                    share[i] = g.share_rpm as f64 / 60.0;
                    g.grant
                } else {
                    authority(r, tat, now, want, 0)
                };
                tat = g.tat_us;
                remaining = g.remaining;
                if g.granted > 0 {
                    tokens[i] = g.granted - 1;
                    admitted[i] += 1;
                } else {
                    blocked[i] = now + g.retry_after_us.max(1_000);
                }
            }
        }
        admitted
    }

    fn max_min(v: &[u64]) -> f64 {
        let max = v.iter().copied().max().unwrap_or(0);
        let min = v.iter().copied().min().unwrap_or(0).max(1);
        max as f64 / min as f64
    }

    #[test]
    fn equal_demand_gets_equal_shares_whoever_asks_first() {
        // Five replicas offered 40/s each over a 100/s budget, for a minute.
        let plain = simulate(&[40; 5], false);
        let fair = simulate(&[40; 5], true);
        println!("simulated minute, 5 × 40/s over 100/s: plain {plain:?}, fair {fair:?}");
        let bound = 6_000 + 20 + 6_000 * LEASE_LIFETIME_US / (60 * S);
        for v in [&plain, &fair] {
            let total: u64 = v.iter().sum();
            assert!(total <= bound && total >= 5_900, "{v:?}");
        }
        assert!(max_min(&plain) > 2.0, "first come, first served: {plain:?}");
        assert!(max_min(&fair) <= 1.05, "{fair:?}");
    }

    #[test]
    fn a_light_replica_gets_all_it_asks_and_the_heavy_split_the_rest() {
        // 10/s (10% of the budget) beside four replicas offered 45/s each.
        let fair = simulate(&[10, 45, 45, 45, 45], true);
        assert!(fair[0] >= 595, "the light one asked 600: {fair:?}");
        // The headroom the light one leaves unused (25% of 10/s) refills the shared bucket
        // above half, where whoever asks first (replica 1) takes it: work-conserving, a
        // little uneven.
        assert!(max_min(&fair[1..]) <= 1.15, "{fair:?}");
        let total: u64 = fair.iter().sum();
        assert!(total <= 6_000 + 20 + 25, "{fair:?}");
    }

    #[test]
    fn an_unsaturated_budget_is_not_split() {
        // One replica offered 90/s: it gets all it asks.
        let fair = simulate(&[90], true);
        assert_eq!(fair[0], 5_400);
        // Two replicas at 60/s and 30/s (90% of the budget): both get all they ask.
        let fair = simulate(&[60, 30], true);
        assert_eq!(fair, [3_600, 1_800]);
    }

    #[test]
    fn the_script_is_the_fair_authority_with_its_constants() {
        let s = script();
        assert!(s.contains(&format!("local STALE = {STALE_US}\n")));
        assert!(s.contains(&format!("local WINDOW = {}\n", 2 * LEASE_LIFETIME_US)));
        assert!(!s.contains('@'));
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
