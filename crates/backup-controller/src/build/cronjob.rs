//! The CronJob of a QdrantBackupSchedule, and the identity its pods run as.
//!
//! At each scheduled time the CronJob starts a Job whose one pod runs
//! `backup-controller create-backup --schedule <schedule>` ([`crate::create_backup`]): it
//! reads the schedule and creates a QdrantBackup from `spec.backupTemplate`, named after the
//! Job. The pod talks to the API server as the ServiceAccount `<schedule>-backup-scheduler`,
//! whose Role allows exactly that: `get` on this one QdrantBackupSchedule, `create` and `get`
//! on QdrantBackups. It never sees S3 credentials or Qdrant keys; the backup itself is taken
//! by the backup-controller.

use std::collections::BTreeMap;

use api_types::{GROUP, QdrantBackupSchedule};
use k8s_openapi::{
    api::{
        batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec},
        core::v1::{
            Capabilities, Container, EnvVar, EnvVarSource, ObjectFieldSelector, PodSecurityContext,
            PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile, SecurityContext,
            ServiceAccount,
        },
        rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject},
    },
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::ObjectMeta},
};

use super::{Names, child_meta, common_labels};

/// Name of the container in the CronJob's pods.
pub const CONTAINER_NAME: &str = "create-backup";

/// Path of the controller's binary in the operator image (`deploy/Dockerfile` installs every
/// controller there; the image's entrypoint is another controller, so the command is set).
pub const BINARY: &str = "/usr/local/bin/backup-controller";

/// The subcommand of the controller's binary that the pods run.
pub const SUBCOMMAND: &str = "create-backup";

/// `concurrencyPolicy` of the CronJob: a run never overlaps the previous one.
pub const CONCURRENCY_POLICY: &str = "Forbid";

/// Retries of a failed pod (API server briefly unreachable) before the Job fails.
pub const BACKOFF_LIMIT: i32 = 2;

/// How long a Job may run at all, seconds. The pod only creates one object; a Job stuck
/// (image pull failing, API server unreachable) would otherwise block every later run under
/// `concurrencyPolicy: Forbid`.
pub const ACTIVE_DEADLINE_SECONDS: i64 = 600;

/// How long a finished Job (and its pod, with its logs) is kept, seconds: 7 days, so that
/// `successfulJobsHistoryLimit`/`failedJobsHistoryLimit` govern for hourly and daily
/// schedules, and no Job lingers longer than a week. The QdrantBackup, not the Job, is the
/// record of a run.
pub const TTL_SECONDS_AFTER_FINISHED: i32 = 7 * 24 * 3600;

/// UID and GID of the pods: the `nonroot` user of the distroless image the controller ships
/// in (`deploy/Dockerfile`).
pub const RUN_AS_ID: i64 = 65532;

/// Env var with the pod's namespace (the schedule's), from the downward API.
pub const ENV_POD_NAMESPACE: &str = "POD_NAMESPACE";

/// Env var with the Job's name (`<cronjob>-<minutes since the epoch>`, unique per scheduled
/// time), from the label the Job controller puts on its pods.
pub const ENV_JOB_NAME: &str = "JOB_NAME";

/// Label the Job controller puts on a Job's pods (Kubernetes >= 1.27).
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// The ServiceAccount `<schedule>-backup-scheduler` the CronJob's pods run as.
pub fn service_account(qbs: &QdrantBackupSchedule) -> ServiceAccount {
    ServiceAccount {
        metadata: child_meta(qbs, &Names::of(qbs).scheduler),
        ..ServiceAccount::default()
    }
}

/// The Role `<schedule>-backup-scheduler`: `get` on this QdrantBackupSchedule only, and
/// `create` plus `get` on QdrantBackups (`get` lets a retried pod confirm that the backup its
/// first attempt created is this schedule's). Kubernetes cannot restrict `create` by name.
pub fn role(qbs: &QdrantBackupSchedule) -> Role {
    let names = Names::of(qbs);
    Role {
        metadata: child_meta(qbs, &names.scheduler),
        rules: Some(vec![
            PolicyRule {
                api_groups: Some(vec![GROUP.into()]),
                resources: Some(vec!["qdrantbackupschedules".into()]),
                resource_names: Some(vec![names.schedule.clone()]),
                verbs: vec!["get".into()],
                ..PolicyRule::default()
            },
            PolicyRule {
                api_groups: Some(vec![GROUP.into()]),
                resources: Some(vec!["qdrantbackups".into()]),
                verbs: vec!["create".into(), "get".into()],
                ..PolicyRule::default()
            },
        ]),
    }
}

/// The RoleBinding `<schedule>-backup-scheduler`: the Role to the ServiceAccount.
pub fn role_binding(qbs: &QdrantBackupSchedule) -> RoleBinding {
    let names = Names::of(qbs);
    RoleBinding {
        metadata: child_meta(qbs, &names.scheduler),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: names.scheduler.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: names.scheduler.clone(),
            namespace: Some(names.namespace.clone()),
            api_group: None,
        }]),
    }
}

/// The CronJob `<schedule>`: the spec's `schedule`, `timeZone`, `suspend`, history limits and
/// `startingDeadlineSeconds`, `concurrencyPolicy: Forbid`; its Job retries the pod
/// [`BACKOFF_LIMIT`] times within [`ACTIVE_DEADLINE_SECONDS`] and is deleted
/// [`TTL_SECONDS_AFTER_FINISHED`] after it finished; the pod runs `image` with
/// `create-backup --schedule <schedule>` under the `restricted` Pod Security Standard.
pub fn cron_job(qbs: &QdrantBackupSchedule, image: &str) -> CronJob {
    let names = Names::of(qbs);
    let spec = &qbs.spec;
    let template_meta = ObjectMeta {
        labels: Some(common_labels(qbs)),
        ..ObjectMeta::default()
    };
    CronJob {
        metadata: child_meta(qbs, names.cron_job()),
        spec: Some(CronJobSpec {
            schedule: spec.schedule.clone(),
            time_zone: spec.time_zone.clone(),
            suspend: Some(spec.suspend),
            concurrency_policy: Some(CONCURRENCY_POLICY.into()),
            successful_jobs_history_limit: Some(spec.successful_jobs_history_limit),
            failed_jobs_history_limit: Some(spec.failed_jobs_history_limit),
            starting_deadline_seconds: spec.starting_deadline_seconds,
            job_template: JobTemplateSpec {
                metadata: Some(template_meta.clone()),
                spec: Some(JobSpec {
                    backoff_limit: Some(BACKOFF_LIMIT),
                    active_deadline_seconds: Some(ACTIVE_DEADLINE_SECONDS),
                    ttl_seconds_after_finished: Some(TTL_SECONDS_AFTER_FINISHED),
                    template: PodTemplateSpec {
                        metadata: Some(template_meta),
                        spec: Some(pod_spec(&names, image)),
                    },
                    ..JobSpec::default()
                }),
            },
        }),
        ..CronJob::default()
    }
}

fn pod_spec(names: &Names, image: &str) -> PodSpec {
    PodSpec {
        service_account_name: Some(names.scheduler.clone()),
        automount_service_account_token: Some(true),
        restart_policy: Some("OnFailure".into()),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS_ID),
            run_as_group: Some(RUN_AS_ID),
            seccomp_profile: Some(runtime_default()),
            ..PodSecurityContext::default()
        }),
        containers: vec![Container {
            name: CONTAINER_NAME.into(),
            image: Some(image.to_string()),
            command: Some(vec![BINARY.into()]),
            args: Some(vec![
                SUBCOMMAND.into(),
                "--schedule".into(),
                names.schedule.clone(),
            ]),
            env: Some(vec![
                field_env(ENV_POD_NAMESPACE, "metadata.namespace"),
                field_env(
                    ENV_JOB_NAME,
                    &format!("metadata.labels['{JOB_NAME_LABEL}']"),
                ),
            ]),
            resources: Some(ResourceRequirements {
                requests: Some(quantities([("cpu", "10m"), ("memory", "32Mi")])),
                limits: Some(quantities([("cpu", "100m"), ("memory", "64Mi")])),
                ..ResourceRequirements::default()
            }),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                privileged: Some(false),
                read_only_root_filesystem: Some(true),
                run_as_non_root: Some(true),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".into()]),
                    add: None,
                }),
                seccomp_profile: Some(runtime_default()),
                ..SecurityContext::default()
            }),
            ..Container::default()
        }],
        ..PodSpec::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
    }
}

fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: field_path.into(),
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn quantities<const N: usize>(q: [(&str, &str); N]) -> BTreeMap<String, Quantity> {
    q.into_iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const IMAGE: &str = "ghcr.io/qdrant-operator/backup-controller:1.2.3";

    fn schedule(extra: Value) -> QdrantBackupSchedule {
        let mut spec = json!({
            "schedule": "0 2 * * *",
            "backupTemplate": {
                "cluster": {"name": "demo"},
                "storage": {"s3": {"bucket": "qdrant-backups"}}
            },
        });
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        serde_json::from_value(json!({
            "apiVersion": "qdrant.operator.dev/v1alpha1",
            "kind": "QdrantBackupSchedule",
            "metadata": {"name": "nightly", "namespace": "search", "uid": "uid-1"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn to_json<T: serde::Serialize>(v: &T) -> Value {
        serde_json::to_value(v).unwrap()
    }

    fn expected_meta(name: &str) -> Value {
        json!({
            "name": name,
            "namespace": "search",
            "labels": {
                "app.kubernetes.io/managed-by": "qdrant-operator",
                "app.kubernetes.io/component": "backup-schedule",
                "qdrant.operator.dev/schedule": "nightly",
            },
            "ownerReferences": [{
                "apiVersion": "qdrant.operator.dev/v1alpha1",
                "kind": "QdrantBackupSchedule",
                "name": "nightly",
                "uid": "uid-1",
                "controller": true,
            }],
        })
    }

    #[test]
    fn cron_job_from_the_spec() {
        let qbs = schedule(json!({
            "timeZone": "Europe/Berlin",
            "suspend": true,
            "successfulJobsHistoryLimit": 5,
            "failedJobsHistoryLimit": 2,
            "startingDeadlineSeconds": 300,
        }));
        let cj = to_json(&cron_job(&qbs, IMAGE));
        assert_eq!(cj["apiVersion"], "batch/v1");
        assert_eq!(cj["kind"], "CronJob");
        assert_eq!(cj["metadata"], expected_meta("nightly"));
        let spec = &cj["spec"];
        assert_eq!(spec["schedule"], "0 2 * * *");
        assert_eq!(spec["timeZone"], "Europe/Berlin");
        assert_eq!(spec["suspend"], true);
        assert_eq!(spec["concurrencyPolicy"], "Forbid");
        assert_eq!(spec["successfulJobsHistoryLimit"], 5);
        assert_eq!(spec["failedJobsHistoryLimit"], 2);
        assert_eq!(spec["startingDeadlineSeconds"], 300);
    }

    #[test]
    fn defaults_leave_time_zone_and_deadline_unset() {
        let cj = to_json(&cron_job(&schedule(json!({})), IMAGE));
        let spec = cj["spec"].as_object().unwrap();
        assert!(!spec.contains_key("timeZone"));
        assert!(!spec.contains_key("startingDeadlineSeconds"));
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["successfulJobsHistoryLimit"], 3);
        assert_eq!(spec["failedJobsHistoryLimit"], 1);
    }

    /// The whole Job template, as the API server receives it.
    #[test]
    fn job_template_snapshot() {
        let cj = to_json(&cron_job(&schedule(json!({})), IMAGE));
        let labels = expected_meta("x")["labels"].clone();
        assert_eq!(
            cj["spec"]["jobTemplate"],
            json!({
                "metadata": {"labels": labels},
                "spec": {
                    "backoffLimit": 2,
                    "activeDeadlineSeconds": 600,
                    "ttlSecondsAfterFinished": 604_800,
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "serviceAccountName": "nightly-backup-scheduler",
                            "automountServiceAccountToken": true,
                            "restartPolicy": "OnFailure",
                            "securityContext": {
                                "runAsNonRoot": true,
                                "runAsUser": 65532,
                                "runAsGroup": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "containers": [{
                                "name": "create-backup",
                                "image": IMAGE,
                                "command": ["/usr/local/bin/backup-controller"],
                                "args": ["create-backup", "--schedule", "nightly"],
                                "env": [
                                    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                                    {"name": "JOB_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}}},
                                ],
                                "resources": {
                                    "requests": {"cpu": "10m", "memory": "32Mi"},
                                    "limits": {"cpu": "100m", "memory": "64Mi"},
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": false,
                                    "privileged": false,
                                    "readOnlyRootFilesystem": true,
                                    "runAsNonRoot": true,
                                    "capabilities": {"drop": ["ALL"]},
                                    "seccompProfile": {"type": "RuntimeDefault"},
                                },
                            }],
                        },
                    },
                },
            })
        );
    }

    #[test]
    fn rbac_allows_exactly_what_the_pod_does() {
        let qbs = schedule(json!({}));
        let sa = to_json(&service_account(&qbs));
        assert_eq!(
            sa,
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": expected_meta("nightly-backup-scheduler")})
        );
        let role = to_json(&role(&qbs));
        assert_eq!(role["apiVersion"], "rbac.authorization.k8s.io/v1");
        assert_eq!(role["metadata"], expected_meta("nightly-backup-scheduler"));
        assert_eq!(
            role["rules"],
            json!([
                {"apiGroups": ["qdrant.operator.dev"], "resources": ["qdrantbackupschedules"], "resourceNames": ["nightly"], "verbs": ["get"]},
                {"apiGroups": ["qdrant.operator.dev"], "resources": ["qdrantbackups"], "verbs": ["create", "get"]},
            ])
        );
        let rb = to_json(&role_binding(&qbs));
        assert_eq!(rb["metadata"], expected_meta("nightly-backup-scheduler"));
        assert_eq!(
            rb["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "nightly-backup-scheduler"})
        );
        assert_eq!(
            rb["subjects"],
            json!([{"kind": "ServiceAccount", "name": "nightly-backup-scheduler", "namespace": "search"}])
        );
    }

    #[test]
    fn build_returns_every_child() {
        let d = crate::build::build(&schedule(json!({})), IMAGE);
        assert_eq!(d.cron_job.metadata.name.as_deref(), Some("nightly"));
        for name in [
            &d.service_account.metadata.name,
            &d.role.metadata.name,
            &d.role_binding.metadata.name,
        ] {
            assert_eq!(name.as_deref(), Some("nightly-backup-scheduler"));
        }
    }

    #[test]
    fn no_owner_reference_without_uid() {
        let mut qbs = schedule(json!({}));
        qbs.metadata.uid = None;
        assert!(cron_job(&qbs, IMAGE).metadata.owner_references.is_none());
    }
}
