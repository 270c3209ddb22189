//! The gateway's rate limits (issue 7), algorithm first: [`gcra`] is the budget math,
//! [`lease`] the cluster-wide budget in Redis that replicas lease tokens from. Both are pure
//! (the Redis script mirrors [`lease::authority`]) and unit-tested; wiring them into the
//! gateway's `UpstreamGuard`, the fallback while Redis is down, the headers and the metrics
//! are still to come.

pub mod gcra;
pub mod lease;
