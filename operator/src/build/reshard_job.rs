//! The Job of one resharding step: the workload image running `reshard <step>` (the data
//! handoff, `workloads/inventory/src/handoff.rs`) against the shop's PostgreSQL. It prints its
//! result as one JSON line into its termination message, where the controller reads it.
//!
//! ```text
//!   Job <storefront>-<service>-e<epoch>-<step>[-<attempt>]   (one per step, epoch and attempt)
//!     args  reshard <copy|verify|switch|retire> --from n --to m --epoch e
//!     env   DATABASE_URL (the datastores' Secret), SHARD_SCHEMA_PREFIX (<ns>_<sf>_<service>_)
//! ```
//!
//! The step is idempotent, so a Job retried (backoff), deleted after a failure and created
//! again, or left over from before an operator restart does no harm.

use k8s_openapi::api::{
    batch::v1::{Job, JobSpec},
    core::v1::{
        Capabilities, Container, PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile,
        SecurityContext,
    },
};
use storefront_crds::ServiceName;

use super::{
    Owner,
    deployment::{RUN_AS_USER, database_schema, env, secret_env},
};
use crate::labels;

/// The component label of resharding Jobs and their pods.
pub const COMPONENT: &str = "reshard";

/// What a Job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step<'a> {
    pub service: ServiceName,
    /// `copy`, `verify`, `switch` or `retire`.
    pub step: &'a str,
    pub from: u32,
    pub to: u32,
    pub epoch: i64,
    pub attempt: u32,
}

/// The Job's name: one per step, epoch and copy attempt.
pub fn name(storefront: &str, s: &Step<'_>) -> String {
    let base = format!(
        "{storefront}-{}-e{}-{}",
        s.service.as_str(),
        s.epoch,
        s.step
    );
    if matches!(s.step, "copy" | "verify") {
        format!("{base}-{}", s.attempt)
    } else {
        base
    }
}

/// The schema prefix of a sharded service's shards: shard `i` is `<prefix><i>`.
pub fn schema_prefix(owner: &Owner<'_>, service: ServiceName) -> String {
    database_schema(
        owner.namespace,
        owner.name,
        &format!("{}_", service.as_str()),
    )
}

/// Whether the schemas of shards `0..shards` are all `<prefix><index>` (PostgreSQL keeps 63
/// bytes of a name: longer ones are shortened with a hash, and the handoff cannot find them).
pub fn schemas_fit(owner: &Owner<'_>, service: ServiceName, shards: i32) -> bool {
    let prefix = schema_prefix(owner, service);
    let last = shards.max(1) - 1;
    database_schema(
        owner.namespace,
        owner.name,
        &format!("{}_{last}", service.as_str()),
    ) == format!("{prefix}{last}")
}

/// The Job of `s` for `owner`.
pub fn build(owner: &Owner<'_>, s: &Step<'_>) -> Job {
    let name = name(owner.name, s);
    let mut envs = vec![
        env("SHARD_SCHEMA_PREFIX", &schema_prefix(owner, s.service)),
        env("LOG_FORMAT", "json"),
    ];
    if let Some(pg) = owner
        .spec
        .datastores
        .as_ref()
        .and_then(|d| d.postgres.as_ref())
    {
        envs.push(secret_env("DATABASE_URL", pg));
    }
    let container = Container {
        name: COMPONENT.to_string(),
        image: Some(owner.spec.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        args: Some(vec![
            "reshard".to_string(),
            s.step.to_string(),
            format!("--from={}", s.from),
            format!("--to={}", s.to),
            format!("--epoch={}", s.epoch),
        ]),
        env: Some(envs),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let mut meta = owner.meta(name, COMPONENT, &Default::default());
    meta.labels.get_or_insert_with(Default::default).insert(
        labels::SERVICE_LABEL.to_string(),
        s.service.as_str().to_string(),
    );
    Job {
        metadata: meta.clone(),
        spec: Some(JobSpec {
            backoff_limit: Some(3),
            active_deadline_seconds: Some(900),
            ttl_seconds_after_finished: Some(3600),
            template: PodTemplateSpec {
                metadata: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                    labels: meta.labels.clone(),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_string()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS_USER),
                        run_as_group: Some(RUN_AS_USER),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_string(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_do_not_fit_the_handoff() {
        let sf = crate::testutil::sample_storefront();
        let owner = Owner::of(&sf).unwrap();
        assert!(schemas_fit(&owner, ServiceName::Inventory, 64));
        let mut long = sf.clone();
        long.metadata.name = Some("a".repeat(40));
        long.metadata.namespace = Some("n".repeat(20));
        let owner = Owner::of(&long).unwrap();
        assert!(!schemas_fit(&owner, ServiceName::Inventory, 5));
    }

    #[test]
    fn names_are_one_per_step_epoch_and_attempt() {
        let s = |step, attempt| Step {
            service: ServiceName::Inventory,
            step,
            from: 4,
            to: 5,
            epoch: 2,
            attempt,
        };
        assert_eq!(name("shop", &s("copy", 1)), "shop-inventory-e2-copy-1");
        assert_eq!(name("shop", &s("verify", 2)), "shop-inventory-e2-verify-2");
        assert_eq!(name("shop", &s("switch", 2)), "shop-inventory-e2-switch");
    }
}
