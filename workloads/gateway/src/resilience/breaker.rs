//! A circuit breaker per upstream: **closed** (calls flow; outcomes counted over a sliding
//! window of the last [`BreakerConfig::window`] calls) → **open** when the error rate over a
//! full-enough window, or a run of consecutive failures, crosses its threshold (calls are
//! refused at once, without waiting for a dead service's timeout) → **half-open** after the
//! cool-down (a few probe calls go through; all succeed → closed, one fails → open again,
//! with the cool-down doubled up to a cap).
//!
//! Pure: time is an argument (`now_ms`), so every transition is unit-tested.

use std::collections::VecDeque;

/// The breaker's state, as the `storefront_circuit_state` metric reports it
/// (0 closed, 1 half-open, 2 open).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Closed,
    HalfOpen,
    Open,
}

impl State {
    /// The metric value.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }

    /// The label in statuses and the console.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half-open",
            Self::Open => "open",
        }
    }
}

/// Thresholds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerConfig {
    /// Calls in the sliding window.
    pub window: usize,
    /// Fewest calls in the window before the error rate counts.
    pub min_calls: usize,
    /// Error rate (0..=1) that opens the breaker.
    pub error_rate: f64,
    /// Consecutive failures that open it whatever the window says.
    pub consecutive: u32,
    /// First cool-down before half-open probes.
    pub cool_down_ms: u64,
    /// Longest cool-down after repeated failed probes.
    pub max_cool_down_ms: u64,
    /// Probe calls let through while half-open.
    pub probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window: 50,
            min_calls: 10,
            error_rate: 0.5,
            consecutive: 5,
            cool_down_ms: 2_000,
            max_cool_down_ms: 30_000,
            probes: 3,
        }
    }
}

/// One upstream's breaker.
#[derive(Clone, Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: State,
    outcomes: VecDeque<bool>,
    failures_in_window: usize,
    consecutive_failures: u32,
    opened_at_ms: u64,
    cool_down_ms: u64,
    probes_sent: u32,
    probes_ok: u32,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: State::Closed,
            outcomes: VecDeque::with_capacity(config.window),
            failures_in_window: 0,
            consecutive_failures: 0,
            opened_at_ms: 0,
            cool_down_ms: config.cool_down_ms,
            probes_sent: 0,
            probes_ok: 0,
        }
    }

    /// The state at `now_ms` (an open breaker whose cool-down is over is half-open).
    pub fn state(&mut self, now_ms: u64) -> State {
        if self.state == State::Open && now_ms >= self.opened_at_ms + self.cool_down_ms {
            self.state = State::HalfOpen;
            self.probes_sent = 0;
            self.probes_ok = 0;
        }
        self.state
    }

    /// May a call go through now? Half-open lets [`BreakerConfig::probes`] through.
    pub fn allow(&mut self, now_ms: u64) -> bool {
        match self.state(now_ms) {
            State::Closed => true,
            State::Open => false,
            State::HalfOpen => {
                if self.probes_sent < self.config.probes {
                    self.probes_sent += 1;
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Milliseconds until an open breaker lets a probe through (0 otherwise).
    pub fn retry_in_ms(&self, now_ms: u64) -> u64 {
        match self.state {
            State::Open => (self.opened_at_ms + self.cool_down_ms).saturating_sub(now_ms),
            _ => 0,
        }
    }

    /// Records how a call that was allowed ended.
    pub fn record(&mut self, ok: bool, now_ms: u64) {
        match self.state(now_ms) {
            State::HalfOpen => {
                if ok {
                    self.probes_ok += 1;
                    if self.probes_ok >= self.config.probes {
                        self.close();
                    }
                } else {
                    // A failed probe: open again, for longer.
                    self.cool_down_ms = (self.cool_down_ms * 2).min(self.config.max_cool_down_ms);
                    self.open(now_ms);
                }
            }
            State::Open => {} // a late answer of a call made before opening
            State::Closed => {
                self.push(ok);
                self.consecutive_failures = if ok { 0 } else { self.consecutive_failures + 1 };
                let rate_tripped = self.outcomes.len() >= self.config.min_calls
                    && self.failures_in_window as f64
                        >= self.config.error_rate * self.outcomes.len() as f64;
                if rate_tripped || self.consecutive_failures >= self.config.consecutive {
                    self.open(now_ms);
                }
            }
        }
    }

    fn push(&mut self, ok: bool) {
        if self.outcomes.len() == self.config.window.max(1)
            && let Some(old) = self.outcomes.pop_front()
            && !old
        {
            self.failures_in_window -= 1;
        }
        self.outcomes.push_back(ok);
        if !ok {
            self.failures_in_window += 1;
        }
    }

    fn open(&mut self, now_ms: u64) {
        self.state = State::Open;
        self.opened_at_ms = now_ms;
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.outcomes.clear();
        self.failures_in_window = 0;
        self.consecutive_failures = 0;
        self.cool_down_ms = self.config.cool_down_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig::default())
    }

    #[test]
    fn consecutive_failures_open_and_refuse_at_once() {
        let mut b = breaker();
        for t in 0..4 {
            assert!(b.allow(t));
            b.record(false, t);
        }
        assert_eq!(b.state(4), State::Closed, "four is not five");
        b.record(false, 5);
        assert_eq!(b.state(5), State::Open);
        assert!(!b.allow(6));
        assert_eq!(b.retry_in_ms(6), 1_999);
    }

    #[test]
    fn the_error_rate_opens_only_over_enough_calls() {
        let mut b = breaker();
        // Alternating: never 5 in a row, but half of the calls fail.
        for t in 0..9 {
            b.record(t % 2 == 0, t);
        }
        assert_eq!(b.state(9), State::Closed, "9 calls are below min_calls");
        b.record(false, 10);
        assert_eq!(b.state(10), State::Open, "5 of 10 failed");
    }

    #[test]
    fn old_failures_slide_out_of_the_window() {
        let mut b = breaker();
        for t in 0..4 {
            b.record(false, t);
        }
        for t in 4..200 {
            b.record(true, t);
        }
        // 24 failures among the last 50 would open it; these are long gone.
        for t in 200..204 {
            b.record(false, t);
        }
        assert_eq!(b.state(204), State::Closed);
    }

    #[test]
    fn half_open_probes_close_it_or_open_it_for_longer() {
        let mut b = breaker();
        for t in 0..5 {
            b.record(false, t);
        }
        assert_eq!(b.state(1_000), State::Open);
        assert_eq!(b.state(2_004), State::HalfOpen);
        // Three probes go through, the fourth waits.
        assert!(b.allow(2_004) && b.allow(2_004) && b.allow(2_004));
        assert!(!b.allow(2_004));
        // A failed probe: open again, cool-down doubled.
        b.record(false, 2_005);
        assert_eq!(b.state(2_005), State::Open);
        assert_eq!(b.retry_in_ms(2_005), 4_000);
        assert_eq!(b.state(6_005), State::HalfOpen);
        for _ in 0..3 {
            assert!(b.allow(6_005));
            b.record(true, 6_006);
        }
        assert_eq!(b.state(6_006), State::Closed);
        // Closed again with a clean slate and the first cool-down.
        for t in 0..5 {
            b.record(false, 7_000 + t);
        }
        assert_eq!(b.retry_in_ms(7_004), 2_000);
    }

    #[test]
    fn the_cool_down_is_capped() {
        let mut b = breaker();
        let mut now = 0;
        for _ in 0..5 {
            b.record(false, now);
        }
        for _ in 0..10 {
            now += b.retry_in_ms(now);
            assert_eq!(b.state(now), State::HalfOpen);
            assert!(b.allow(now));
            b.record(false, now);
        }
        assert_eq!(b.retry_in_ms(now), 30_000);
        assert_eq!(State::Open.gauge(), 2);
    }
}
