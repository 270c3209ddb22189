//! Storefront custom resources: `Storefront`, `ServiceShard` and `FlashSale` in
//! `commerce.storefront.dev/v1alpha1`, their schema validation (ranges, enums and CEL rules
//! enforced by the API server), defaults, the Rust-side [`validate`] of whatever slips past
//! the schema, and [`crdgen`] that writes the CRD YAML under `manifests/crds/`.
//!
//! This crate has no API client: it is types and pure functions only.

// kube-derive's repeated `printcolumn(...)` arguments look like duplicated attributes to clippy.
#![allow(clippy::duplicated_attributes)]

pub mod client_limits;
pub mod common;
pub mod crdgen;
pub mod cron;
pub mod flashsale;
pub mod ring;
pub mod schedule;
pub mod shard;
pub mod storefront;
pub mod validate;

pub use client_limits::{ClientLimits, PublicRoute};
pub use common::{FailurePoint, RateLimit, ServiceName, Tier};
pub use flashsale::{FlashSale, FlashSaleSpec, FlashSaleStatus, SalePhase};
pub use shard::{ServiceShard, ServiceShardSpec, ServiceShardStatus, ShardPhase, ShardedService};
pub use storefront::{
    ReshardOutcome, ReshardPhase, ReshardStatus, RingStatus, ServiceSpec, Storefront,
    StorefrontSpec, StorefrontStatus,
};
