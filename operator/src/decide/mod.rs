//! The operator's decisions, pure: no I/O (no client, no clock: `now` and what the watches
//! hold are arguments), each unit-tested on its own. The controllers read, call these, and
//! write what they return.
//!
//! * [`plan`]: sizing and admission of each service from the spec and the sales in force.
//! * [`sale`]: a FlashSale's decision (pre-warm, open the limits, close them).
//! * [`preflight`]: whether the cluster has room for a sale's capacity.
//! * [`reshard`]: the resharding state machine.
//! * [`status`]: Storefront status and failure points, from what is decided and observed.
//! * [`subset`]: whether a live object already says everything a desired one says.

pub mod plan;
pub mod preflight;
pub mod reshard;
pub mod sale;
pub mod status;
pub mod subset;
