//! The saga's step for one input: load the order, [`decide`], append what was decided after
//! the version it was decided from; when another writer appended meanwhile (a second reply
//! for the same order on another pod), load and decide again. Written against the
//! [`OrderLog`] port, so it is the same over PostgreSQL and over the in-memory log of the
//! tests.

use super::ports::{Appended, OrderLog};
use super::{Decision, SagaInput, decide};

/// How many times one input is decided again before giving up on a contended order (the
/// message is then delivered again later).
pub const ATTEMPTS: usize = 8;

/// What became of an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Decided and appended (the decision may append nothing).
    Applied(Decision),
    /// The order does not exist (yet).
    NoOrder,
    /// Every attempt lost to a concurrent writer.
    Contended,
}

/// Applies `input` to order `order_id` in `log`.
pub async fn step<L: OrderLog + Sync>(
    log: &L,
    order_id: &str,
    input: &SagaInput,
) -> Result<Step, L::Error> {
    for _ in 0..ATTEMPTS {
        let Some(order) = log.load(order_id).await? else {
            return Ok(Step::NoOrder);
        };
        let decision = decide(&order, input);
        if log
            .append(order_id, order.version, &decision.events)
            .await?
            == Appended::Done
        {
            return Ok(Step::Applied(decision));
        }
    }
    Ok(Step::Contended)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::domain::{Order, OrderEvent, SagaState};

    /// An in-memory log that loses the first `conflicts` appends to a "concurrent writer".
    struct Log {
        events: Mutex<Vec<OrderEvent>>,
        conflicts: Mutex<usize>,
    }

    impl Log {
        fn new(events: Vec<OrderEvent>, conflicts: usize) -> Self {
            Self {
                events: Mutex::new(events),
                conflicts: Mutex::new(conflicts),
            }
        }
    }

    impl OrderLog for Log {
        type Error = String;

        async fn load(&self, _: &str) -> Result<Option<Order>, String> {
            let events = self.events.lock().expect("log").clone();
            if events.is_empty() {
                return Ok(None);
            }
            Order::fold(&events).map(Some).map_err(|e| e.to_string())
        }

        async fn append(
            &self,
            _: &str,
            expected_version: u64,
            new: &[OrderEvent],
        ) -> Result<Appended, String> {
            let mut conflicts = self.conflicts.lock().expect("conflicts");
            let mut events = self.events.lock().expect("log");
            if *conflicts > 0 || events.len() as u64 != expected_version {
                *conflicts = conflicts.saturating_sub(1);
                return Ok(Appended::Conflict);
            }
            events.extend_from_slice(new);
            Ok(Appended::Done)
        }
    }

    fn created() -> OrderEvent {
        OrderEvent::OrderCreated {
            order_id: "o1".into(),
            user_id: "u1".into(),
            lines: vec![],
            total_cents: 100,
            currency: "USD".into(),
            created_at: 0,
        }
    }

    #[tokio::test]
    async fn decides_again_after_a_conflict_and_gives_up_after_every_attempt_lost() {
        let timed_out = SagaInput::TimedOut;
        let log = Log::new(vec![created()], 2);
        let Step::Applied(decision) = step(&log, "o1", &timed_out).await.expect("steps") else {
            panic!("not applied");
        };
        assert!(!decision.events.is_empty());
        let order = log.load("o1").await.expect("loads").expect("exists");
        assert_eq!(order.state, SagaState::Cancelled);

        let contended = Log::new(vec![created()], ATTEMPTS);
        assert_eq!(
            step(&contended, "o1", &timed_out).await,
            Ok(Step::Contended)
        );
        assert_eq!(contended.events.lock().expect("log").len(), 1);

        let empty = Log::new(vec![], 0);
        assert_eq!(step(&empty, "o1", &timed_out).await, Ok(Step::NoOrder));
    }
}
