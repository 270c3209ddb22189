//! The generated gRPC code for `workloads/contracts/proto/*.proto` (messages, clients, servers).
//! `build.rs` compiles the protos with protox, so no `protoc` is needed.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

/// `storefront.auth.v1`: users and tokens.
pub mod auth {
    tonic::include_proto!("storefront.auth.v1");
}

/// `storefront.catalog.v1`: products and search.
pub mod catalog {
    tonic::include_proto!("storefront.catalog.v1");
}

/// `storefront.inventory.v1`: stock and reservations on one shard.
pub mod inventory {
    tonic::include_proto!("storefront.inventory.v1");
}

/// `storefront.orders.v1`: orders.
pub mod orders {
    tonic::include_proto!("storefront.orders.v1");
}

/// `storefront.payments.v1`: charge lookups.
pub mod payments {
    tonic::include_proto!("storefront.payments.v1");
}

/// `storefront.recommendations.v1`: bought-together lists.
pub mod recommendations {
    tonic::include_proto!("storefront.recommendations.v1");
}
