//! Per-client budgets at run time, cluster-wide without a Redis round trip per request:
//! each replica decides locally and *reports* what it admitted, and adopts what the whole
//! cluster spent (report and adopt; the shop-wide budgets lease instead, see below).
//!
//! ```text
//!  request ─▶ take(rule, client) ── local GCRA on the replica's view of the client's bucket
//!                                    allowed: counted as unreported
//!  every SYNC (100 ms): drain ─▶ one script call per ≤ BATCH clients ─▶ Redis debits each
//!              client's shared bucket by what this replica admitted, answers its debt
//!              (how far its TAT is ahead of now) ─▶ adopt: the local view moves at least
//!              that far ahead (it now includes what other replicas admitted)
//! ```
//!
//! - **Why not leases**: the shop-wide and service budgets are few and busy, and a lease of
//!   tokens per lifetime serves hundreds of requests. Per-client budgets are many and mostly
//!   idle: a lease per client would cost a Redis call per client every lease lifetime (a
//!   shopper sending one request a second would cost one per request), and a new client's
//!   first request would wait for its lease. Reporting batches every client this replica
//!   served into one call per [`SYNC`], whatever their number, and nobody waits on Redis.
//! - **Bound**: a client served by one replica (a keep-alive connection sticks to one) is
//!   limited exactly. A client that spreads its requests over `R` replicas can be admitted
//!   up to `R` bursts plus `R·rate·SYNC` before the replicas see each other's spending; that
//!   excess is then debt in the shared bucket, paid back by refusals, so over any longer
//!   window it gets its rate (the debt is capped at two bursts' worth, [`debit`]).
//! - **Redis unreachable**: each replica keeps limiting every client by its local view (what
//!   one replica admits is at most the limit); the spread client above gets up to `R` times
//!   its rate until Redis is back. Nothing is reported meanwhile (what was admitted during an
//!   outage is not charged later).
//! - **Memory**: a client's entry goes once its bucket is full again and nothing is left to
//!   report (about a burst's worth of seconds after its last request); at most
//!   [`MAX_CLIENTS`] entries (~100 bytes each), past which clients not yet seen share one
//!   bucket per rule (the overflow) until entries free up — so a flood of new addresses
//!   cannot grow the gateway's memory, and is limited together.

use std::sync::{
    Arc, PoisonError, RwLock,
    atomic::{AtomicUsize, Ordering},
};

use dashmap::DashMap;
use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge};

use super::{
    client::{ClientKey, ClientRules, Rule},
    gcra::{self, Rate},
};

/// How often a replica reports and adopts.
pub const SYNC: std::time::Duration = std::time::Duration::from_millis(100);
/// Clients reported in one script call.
pub const BATCH: usize = 256;
/// Entries kept at most; past it, new clients share the overflow bucket of their rule.
pub const MAX_CLIENTS: usize = 100_000;

/// A client's entry: the replica's view of its bucket, and what it admitted since the last
/// report.
#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    tat_us: u64,
    unreported: u64,
}

/// The budget an entry is for: the rule, and the client (`None`: the overflow).
type Key = (Rule, Option<ClientKey>);

/// What one replica reports for one client at a sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub rule: Rule,
    pub client: Option<ClientKey>,
    pub rate: Rate,
    pub spent: u64,
}

/// The answer for one request in one per-client budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub remaining: u64,
    pub reset_us: u64,
    pub retry_after_us: u64,
}

/// The shared bucket after a report of `spent` requests (what the Redis script does, and
/// its test twin): `stored` is the TAT in Redis (none: full), `now` Redis' clock. Returns the
/// TAT to store and the debt answered (TAT − now). The TAT never passes `now` plus two
/// bursts' worth, so a client that ran ahead on several replicas at once pays back at most
/// that, never an unbounded ban.
pub fn debit(stored: Option<u64>, now_us: u64, rate: Rate, spent: u64) -> (u64, u64) {
    let tolerance = rate.burst.saturating_mul(rate.interval_us);
    let tat = stored
        .unwrap_or(0)
        .max(now_us)
        .saturating_add(spent.saturating_mul(rate.interval_us))
        .min(now_us.saturating_add(tolerance.saturating_mul(2)));
    (tat, tat - now_us)
}

/// The script: `KEYS` the clients' buckets; `ARGV` three numbers per key (interval µs,
/// burst, spent); answers each key's debt in µs. Each bucket expires a second after it
/// would be full.
pub const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[3 * i - 2])
  local burst = tonumber(ARGV[3 * i - 1])
  local spent = tonumber(ARGV[3 * i])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  tat = tat + spent * interval
  local cap = now + 2 * burst * interval
  if tat > cap then tat = cap end
  local debt = tat - now
  redis.call('SET', key, string.format('%.0f', tat), 'PX', math.floor(debt / 1000) + 1000)
  out[i] = debt
end
return out
";

#[derive(Clone, Default)]
pub(crate) struct ClientMetrics {
    pub decisions: Family<Vec<(&'static str, String)>, Counter>,
    pub tracked: Gauge,
}

/// The rules in force and their decision counters (allowed, limited), swapped whole.
struct Rules {
    rules: Arc<ClientRules>,
    counters: Vec<(Rule, [Counter; 2])>,
}

/// Every client this replica limits (see the module docs).
pub struct ClientTable {
    entries: DashMap<Key, Entry>,
    count: AtomicUsize,
    rules: RwLock<Option<Arc<Rules>>>,
    metrics: ClientMetrics,
}

impl Default for ClientTable {
    fn default() -> Self {
        Self::new(ClientMetrics::default())
    }
}

impl ClientTable {
    pub(crate) fn new(metrics: ClientMetrics) -> Self {
        Self {
            entries: DashMap::new(),
            count: AtomicUsize::new(0),
            rules: RwLock::new(None),
            metrics,
        }
    }

    /// Sets the rules (`None`: no per-client limits). A changed budget starts fresh buckets
    /// (as the shop-wide ones do); unchanged rules keep every client's state.
    pub fn configure(&self, rules: Option<ClientRules>) {
        let mut slot = self.rules.write().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().map(|r| &*r.rules) == rules.as_ref() {
            return;
        }
        *slot = rules.map(|rules| {
            let mut all = vec![Rule::PerUser, Rule::PerAddress];
            all.extend(
                (0..rules.routes.len()).filter_map(|n| u8::try_from(n).ok().map(Rule::Route)),
            );
            let counters = all
                .into_iter()
                .filter_map(|rule| {
                    let name = rules.budget(rule)?.name.to_string();
                    let counter = |decision: &str| {
                        self.metrics
                            .decisions
                            .get_or_create(&vec![
                                ("budget", name.clone()),
                                ("decision", decision.to_string()),
                            ])
                            .clone()
                    };
                    Some((rule, [counter("allowed"), counter("limited")]))
                })
                .collect();
            Arc::new(Rules {
                rules: Arc::new(rules),
                counters,
            })
        });
        drop(slot);
        self.entries.clear();
        self.count.store(0, Ordering::Release);
        self.metrics.tracked.set(0);
    }

    /// The rules in force.
    pub fn rules(&self) -> Option<Arc<ClientRules>> {
        self.rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|r| Arc::clone(&r.rules))
    }

    /// Decides one request of `client` in `rule`'s budget at `now_us` (the limiter's clock);
    /// `None` when the rule has no budget.
    pub fn take(&self, rule: Rule, client: &ClientKey, now_us: u64) -> Option<Decision> {
        let rules = self
            .rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        let rate = rules.rules.budget(rule)?.rate;
        let key = (rule, Some(client.clone()));
        let decision = match self.entries.get_mut(&key) {
            Some(mut entry) => decide(&mut entry, rate, now_us),
            None => {
                let key = if self.count.load(Ordering::Acquire) >= MAX_CLIENTS {
                    (rule, None)
                } else {
                    key
                };
                let mut entry = self.entries.entry(key).or_insert_with(|| {
                    self.count.fetch_add(1, Ordering::AcqRel);
                    Entry::default()
                });
                decide(&mut entry, rate, now_us)
            }
        };
        if let Some((_, counters)) = rules.counters.iter().find(|(r, _)| *r == rule) {
            counters[usize::from(!decision.allowed)].inc();
        }
        Some(decision)
    }

    /// Takes what every client was admitted since the last report (clearing it), and drops
    /// the entries with nothing left to remember (bucket full at `now_us`, nothing to
    /// report).
    pub fn drain(&self, now_us: u64) -> Vec<Report> {
        let Some(rules) = self.rules() else {
            return Vec::new();
        };
        let mut reports = Vec::new();
        let mut dropped = 0usize;
        self.entries.retain(|(rule, client), entry| {
            if entry.unreported > 0 {
                if let Some(b) = rules.budget(*rule) {
                    reports.push(Report {
                        rule: *rule,
                        client: client.clone(),
                        rate: b.rate,
                        spent: entry.unreported,
                    });
                }
                entry.unreported = 0;
                return true;
            }
            let keep = entry.tat_us > now_us;
            dropped += usize::from(!keep);
            keep
        });
        let left = self.count.fetch_sub(dropped, Ordering::AcqRel) - dropped;
        self.metrics
            .tracked
            .set(i64::try_from(left).unwrap_or(i64::MAX));
        reports
    }

    /// Takes the cluster's view of a client's bucket: at least `debt_us` ahead of `now_us`.
    pub fn adopt(&self, rule: Rule, client: Option<&ClientKey>, debt_us: u64, now_us: u64) {
        let key = (rule, client.cloned());
        if let Some(mut entry) = self.entries.get_mut(&key) {
            entry.tat_us = entry.tat_us.max(now_us.saturating_add(debt_us));
        }
    }

    /// Puts back reports that could not be sent (Redis slow or failing), to go with the
    /// next sync.
    pub fn restore(&self, reports: &[Report]) {
        for r in reports {
            if let Some(mut entry) = self.entries.get_mut(&(r.rule, r.client.clone())) {
                entry.unreported = entry.unreported.saturating_add(r.spent);
            }
        }
    }

    /// Clients tracked now.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Whether no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn decide(entry: &mut Entry, rate: Rate, now_us: u64) -> Decision {
    let d = gcra::take(rate, entry.tat_us, now_us, 1);
    if d.allowed {
        entry.tat_us = d.tat_us;
        entry.unreported += 1;
    }
    Decision {
        allowed: d.allowed,
        remaining: d.remaining,
        reset_us: d.reset_us,
        retry_after_us: d.retry_after_us,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::table::{ClientLimitsTable, RateLimit};

    fn rules(rpm: u32, burst: u32) -> ClientRules {
        ClientRules::from_table(&ClientLimitsTable {
            per_user: RateLimit {
                requests_per_minute: rpm,
                burst,
            },
            per_address: RateLimit {
                requests_per_minute: rpm * 2,
                burst,
            },
            routes: vec![],
            trusted_proxies: vec![],
        })
        .expect("rules")
    }

    const S: u64 = 1_000_000;

    #[test]
    fn each_client_gets_its_own_budget() {
        let table = ClientTable::default();
        table.configure(Some(rules(60, 5)));
        let (a, b) = (ClientKey::user("a"), ClientKey::user("b"));
        let admitted = |c: &ClientKey, now| {
            (0..50)
                .filter(|_| table.take(Rule::PerUser, c, now).expect("rule").allowed)
                .count()
        };
        assert_eq!(admitted(&a, S), 5, "the burst");
        assert_eq!(admitted(&b, S), 5, "another client is untouched");
        assert_eq!(admitted(&a, 3 * S), 2, "then one a second");
        let refused = table.take(Rule::PerUser, &a, 3 * S).expect("rule");
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_us, S);
        // The address budget of the same text is another bucket.
        let addr = ClientKey::address("203.0.113.7".parse().expect("ip"));
        assert!(
            table
                .take(Rule::PerAddress, &addr, 3 * S)
                .expect("rule")
                .allowed
        );
        assert_eq!(table.take(Rule::Route(0), &a, 3 * S), None, "no such rule");
    }

    #[test]
    fn reports_carry_what_was_admitted_and_adoption_spends_what_others_did() {
        let table = ClientTable::default();
        table.configure(Some(rules(60, 5)));
        let a = ClientKey::user("a");
        for _ in 0..3 {
            assert!(table.take(Rule::PerUser, &a, S).expect("rule").allowed);
        }
        let reports = table.drain(S);
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].spent, 3);
        assert!(table.drain(S).is_empty(), "reported once");
        // Another replica spent the rest: the cluster says the bucket is 5 s ahead.
        table.adopt(Rule::PerUser, Some(&a), 5 * S, S);
        assert!(!table.take(Rule::PerUser, &a, S).expect("rule").allowed);
        assert!(table.take(Rule::PerUser, &a, 2 * S).expect("rule").allowed);
        // A failed sync puts the count back.
        let reports = table.drain(2 * S);
        table.restore(&reports);
        assert_eq!(table.drain(2 * S)[0].spent, 1);
    }

    #[test]
    fn full_buckets_are_forgotten_and_a_rule_change_starts_fresh() {
        let table = ClientTable::default();
        table.configure(Some(rules(60, 5)));
        for n in 0..10 {
            let c = ClientKey::user(&format!("u{n}"));
            table.take(Rule::PerUser, &c, S).expect("rule");
        }
        assert_eq!(table.len(), 10);
        table.drain(S);
        assert_eq!(table.len(), 10, "not full yet");
        table.drain(3 * S);
        assert_eq!(table.len(), 0, "full again: nothing to remember");
        let a = ClientKey::user("a");
        for _ in 0..5 {
            table.take(Rule::PerUser, &a, 10 * S);
        }
        assert!(!table.take(Rule::PerUser, &a, 10 * S).expect("rule").allowed);
        table.configure(Some(rules(60, 5)));
        assert!(
            !table.take(Rule::PerUser, &a, 10 * S).expect("rule").allowed,
            "same rules: kept"
        );
        table.configure(Some(rules(120, 5)));
        assert!(
            table.take(Rule::PerUser, &a, 10 * S).expect("rule").allowed,
            "new rules: fresh"
        );
        table.configure(None);
        assert_eq!(table.take(Rule::PerUser, &a, 10 * S), None);
    }

    #[test]
    fn the_shared_bucket_takes_every_report_and_caps_the_debt() {
        let rate = Rate::per_minute(60, 5).expect("rate");
        // Fresh: the report's worth ahead of now.
        assert_eq!(debit(None, 100 * S, rate, 3), (103 * S, 3 * S));
        // An old TAT counts from now.
        assert_eq!(debit(Some(S), 100 * S, rate, 1), (101 * S, S));
        // Reports add up.
        assert_eq!(debit(Some(103 * S), 100 * S, rate, 2), (105 * S, 5 * S));
        // Never more than two bursts' worth of debt.
        assert_eq!(debit(Some(105 * S), 100 * S, rate, 50), (110 * S, 10 * S));
        // Absurd numbers saturate.
        let (_, debt) = debit(Some(u64::MAX), 0, rate, u64::MAX);
        assert_eq!(debt, 10 * S);
    }
}
