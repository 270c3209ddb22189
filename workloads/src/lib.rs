//! The commerce services (gateway, auth, catalog, orders, payments, inventory,
//! recommendations) and the load generator. Not built yet: see the workloads issue. Until then
//! the e2e harness runs a stub image (`tests/e2e/cluster/stub-image`).
