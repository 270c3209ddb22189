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

// The lifetime is defined with the fair shares (which are measured in lifetimes), so that
// the dependency runs one way: `fair` below `lease`.
pub use super::fair::LEASE_LIFETIME_US;
use super::{
    fair::{self, STALE_US},
    gcra::{self, Rate},
};

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
mod tests;
