//! One ServiceAccount per service: pods run with their own identity and no API token (the
//! gateway's pod asks for one: see `rbac.rs`).

use k8s_openapi::api::core::v1::ServiceAccount;

use super::Owner;
use crate::labels;

pub fn build(owner: &Owner<'_>, service: &str) -> ServiceAccount {
    ServiceAccount {
        metadata: owner.meta(
            labels::service_object_name(owner.name, service),
            service,
            &Default::default(),
        ),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}
