//! A retry budget (as Finagle and Linkerd do it): retries may add at most a fixed share of
//! the requests (`ratio`, e.g. 20 %), plus a small floor per second so a quiet service can
//! still retry. Each request deposits `ratio` of a token; each retry withdraws a whole one;
//! tokens older than the window expire. So when an upstream fails, retries add at most 20 %
//! load instead of multiplying the outage by the attempt count.
//!
//! Pure: time is an argument.

use std::collections::VecDeque;

/// The budget of one upstream.
#[derive(Clone, Debug)]
pub struct RetryBudget {
    ratio: f64,
    min_per_s: f64,
    window_ms: u64,
    /// (time, tokens) deposits within the window.
    deposits: VecDeque<(u64, f64)>,
    withdrawn: VecDeque<u64>,
}

impl RetryBudget {
    /// `ratio` of requests (0..=1) may be retried, plus `min_per_s`, over `window_ms`.
    pub fn new(ratio: f64, min_per_s: f64, window_ms: u64) -> Self {
        Self {
            ratio: ratio.clamp(0.0, 1.0),
            min_per_s: min_per_s.max(0.0),
            window_ms: window_ms.max(1),
            deposits: VecDeque::new(),
            withdrawn: VecDeque::new(),
        }
    }

    fn expire(&mut self, now_ms: u64) {
        let horizon = now_ms.saturating_sub(self.window_ms);
        while self.deposits.front().is_some_and(|(t, _)| *t < horizon) {
            self.deposits.pop_front();
        }
        while self.withdrawn.front().is_some_and(|t| *t < horizon) {
            self.withdrawn.pop_front();
        }
    }

    /// A request was made (not a retry).
    pub fn deposit(&mut self, now_ms: u64) {
        self.expire(now_ms);
        self.deposits.push_back((now_ms, self.ratio));
    }

    /// May a retry be made now? Takes a token if so.
    pub fn try_withdraw(&mut self, now_ms: u64) -> bool {
        self.expire(now_ms);
        let earned: f64 = self.deposits.iter().map(|(_, t)| t).sum::<f64>()
            + self.min_per_s * self.window_ms as f64 / 1_000.0;
        // A little slack: a sum of many 0.2s is 19.999…, not 20.
        if (self.withdrawn.len() as f64) + 1.0 <= earned + 1e-9 {
            self.withdrawn.push_back(now_ms);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_a_share_of_requests() {
        let mut b = RetryBudget::new(0.2, 0.0, 10_000);
        for t in 0..100 {
            b.deposit(t);
        }
        let retries = (0..100).filter(|t| b.try_withdraw(100 + t)).count();
        assert_eq!(retries, 20, "20 % of 100 requests");
    }

    #[test]
    fn an_outage_adds_at_most_the_ratio_of_load() {
        // Every request fails and wants a retry: 1,000 requests over 10 s.
        let mut b = RetryBudget::new(0.2, 1.0, 10_000);
        let mut retries = 0;
        for i in 0..1_000u64 {
            let t = i * 10;
            b.deposit(t);
            if b.try_withdraw(t) {
                retries += 1;
            }
        }
        // 20 % of the requests plus the floor of 1/s over the 10 s window.
        assert!(retries <= 200 + 10, "{retries}");
        assert!(retries >= 190, "{retries}");
    }

    #[test]
    fn the_floor_lets_a_quiet_service_retry_and_tokens_expire() {
        let mut b = RetryBudget::new(0.2, 0.5, 10_000);
        assert!(b.try_withdraw(0), "5 tokens of floor per window");
        for t in 1..5 {
            assert!(b.try_withdraw(t));
        }
        assert!(!b.try_withdraw(5));
        assert!(b.try_withdraw(20_000), "the window moved on");
        let mut none = RetryBudget::new(0.0, 0.0, 1_000);
        none.deposit(0);
        assert!(!none.try_withdraw(0));
    }
}
