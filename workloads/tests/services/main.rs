//! The workloads' integration tests that need no datastore: services over real gRPC and
//! HTTP on loopback sockets, mutual TLS, the gateway's binary, the load generator. One test
//! binary (modules), so the workspace is linked once.

mod auth_flood;
mod auth_grpc;
mod gateway_binary;
mod inventory_grpc;
mod loadgen;
