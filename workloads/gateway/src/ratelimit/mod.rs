//! The gateway's rate limits (issue 7): [`gcra`] is the budget math, [`lease`] the
//! cluster-wide budget in Redis that replicas lease tokens from, [`fair`] the max-min fair
//! shares of it between replicas (all three pure; the Redis script mirrors
//! [`lease::fair_authority`]), and [`cluster`] the limiter at run time — buckets per
//! scope, refills, heartbeats, and the local fallback while Redis is unreachable.
//! Per-client budgets: [`client`] says who the client is and which budgets it spends (pure),
//! [`clients`] keeps them, cluster-wide by report and adopt (run by [`cluster`]'s limiter).

pub mod client;
pub mod clients;
pub mod cluster;
pub mod fair;
pub mod gcra;
pub mod lease;
