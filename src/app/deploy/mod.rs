//! `dropsync deploy`: the Kubernetes manifests for the dealers of a tenants file, so the
//! cluster's scheduler runs the nights rather than a scheduler of our own. One CronJob per
//! tenant (`concurrencyPolicy: Forbid`: a night that runs late is never joined by the next),
//! the status page as a Deployment with its Service, and the shared volume the workspaces live
//! on. The manifests come from the tenants file because a CronJob per dealer has to follow
//! the list of dealers: a dealer added there is one `dropsync deploy | kubectl apply -f -`
//! away from its schedule, and a list kept by hand would drift.
//!
//! Each document is JSON (a subset of YAML: `kubectl apply -f` reads the output as it is),
//! built as values rather than text, so no name or image can break out of its field.
//!
//! What the run's exit codes mean to Kubernetes: 1 (a failure, maybe transient) is retried
//! up to `backoffLimit`; 2 (configuration), 3 (deletes held) and 4 (no export found) fail the
//! Job at once through a `podFailurePolicy` (a retry cannot fix them: an operator must act).
//!
//! The image is built from `src/app/deploy/Dockerfile` (multi-stage, non-root, no secret
//! inside). Secrets never appear in the manifests: each pod takes its environment from the
//! Secrets `dropsync-env` (shared) and `dropsync-<tenant>`, both optional, which hold the
//! variables the recipes and sources config already name (`url_env`, `token_env`, ...), and
//! files from the optional Secret `dropsync-<tenant>-files` at `/var/run/secrets/dropsync`
//! (an SFTP key, Drive credentials: their `key_file_env` variable holds the path). A tenant
//! whose sources config names SFTP or Drive sources runs `run --pull`: each job takes what is
//! new there, so a pod needs nothing on the volume but the workspace.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::config::tenants::{self, Tenant, TenantError};

/// Where the shared volume is mounted in every pod, and the tenants file on it.
pub const DATA_DIR: &str = "/data";
const TENANTS_IN_POD: &str = "/data/tenants.toml";
/// The image's non-root user (`src/app/deploy/Dockerfile`).
const RUN_AS: u64 = 10001;
/// The run's exit codes no retry can fix (see the module doc).
const FINAL_EXIT_CODES: [i32; 3] = [2, 3, 4];

/// The container recipe, shipped for `docker build -f src/app/deploy/Dockerfile .`.
pub const DOCKERFILE: &str = include_str!("Dockerfile");

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Tenants(#[from] TenantError),
    #[error(transparent)]
    Sources(#[from] crate::config::sources::ConfigError),
    #[error("{0}")]
    Invalid(String),
}

/// What the manifests are made of, beside the tenants.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// The tenants file the CronJobs follow (read here; the pods read their copy at
    /// `/data/tenants.toml` on the shared volume).
    pub tenants: PathBuf,
    pub image: String,
    pub namespace: String,
    /// Five-field cron expression of each tenant's run.
    pub schedule: String,
    /// IANA time zone of the schedule (`spec.timeZone`); the controller's (UTC) when `None`.
    pub time_zone: Option<String>,
    /// CPU and memory each run requests, and the memory it may not pass.
    pub cpu: String,
    pub memory: String,
    pub memory_limit: String,
    /// Seconds a run may take before Kubernetes stops it.
    pub deadline_secs: u64,
    /// The shared volume's claim and the size it asks for.
    pub claim: String,
    pub storage: String,
    /// Pushgateway base URL each run pushes its outcome to.
    pub pushgateway: Option<String>,
    /// OpenLineage collector each run sends its events to (its API key, if any, belongs in a
    /// Secret as `DROPSYNC_OPENLINEAGE_API_KEY`).
    pub openlineage: Option<String>,
}

/// Every manifest, in apply order: namespace, volume, status page, one CronJob per tenant.
pub fn manifests(opts: &DeployOptions) -> Result<Vec<Value>, DeployError> {
    check(opts)?;
    let tenants = tenants::load(&opts.tenants)?;
    let mut docs = vec![
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": opts.namespace, "labels": labels(None) },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": meta(opts, &opts.claim, None),
            "spec": {
                // Every tenant's CronJob and the status page mount it, on any node.
                "accessModes": ["ReadWriteMany"],
                "resources": { "requests": { "storage": opts.storage } },
            },
        }),
        serve_deployment(opts),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(opts, "dropsync-serve", None),
            "spec": {
                "selector": { "app.kubernetes.io/name": "dropsync", "app.kubernetes.io/component": "serve" },
                "ports": [{ "name": "http", "port": 8080, "targetPort": "http" }],
            },
        }),
    ];
    for t in &tenants.list {
        docs.push(cron_job(opts, t, &run_args(t)?));
    }
    Ok(docs)
}

/// The documents as one YAML stream (each document JSON), with a header saying how it was made.
pub fn render(opts: &DeployOptions, docs: &[Value]) -> String {
    let mut out = format!(
        "# Generated by `dropsync deploy` from {} for image {}.\n\
         # Apply with `kubectl apply -f`; regenerate when the tenants change.\n",
        opts.tenants.display(),
        opts.image
    );
    for d in docs {
        out.push_str("---\n");
        out.push_str(&serde_json::to_string_pretty(d).expect("JSON values serialize"));
        out.push('\n');
    }
    out
}

fn check(opts: &DeployOptions) -> Result<(), DeployError> {
    let bad = |what: &str| Err(DeployError::Invalid(what.to_string()));
    if opts.image.is_empty() || opts.image.chars().any(|c| c.is_whitespace()) {
        return bad("--image must be an image reference without spaces (e.g. registry.example.com/dropsync:0.1.0)");
    }
    if !tenants::valid_name(&opts.namespace) {
        return bad("--namespace must be a DNS label (lowercase letters, digits and `-`)");
    }
    if opts.schedule.split_whitespace().count() != 5
        || opts.schedule.parse::<croner::Cron>().is_err()
    {
        return Err(DeployError::Invalid(format!(
            "--schedule `{}` is not a five-field cron expression (e.g. \"30 2 * * *\")",
            opts.schedule
        )));
    }
    Ok(())
}

fn labels(tenant: Option<&str>) -> Value {
    let mut l =
        json!({ "app.kubernetes.io/name": "dropsync", "app.kubernetes.io/part-of": "dropsync" });
    if let Some(t) = tenant {
        l["dropsync.io/tenant"] = json!(t);
    }
    l
}

fn meta(opts: &DeployOptions, name: &str, tenant: Option<&str>) -> Value {
    json!({ "name": name, "namespace": opts.namespace, "labels": labels(tenant) })
}

/// The environment every pod shares: where the tenants file is, and the Secrets.
fn env_from(tenant: Option<&str>) -> Value {
    let mut refs = vec![json!({ "secretRef": { "name": "dropsync-env", "optional": true } })];
    if let Some(t) = tenant {
        refs.push(json!({ "secretRef": { "name": format!("dropsync-{t}"), "optional": true } }));
    }
    Value::Array(refs)
}

/// Non-root, nothing written outside the volume and `/tmp`, no privilege to gain.
fn pod_security() -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": { "type": "RuntimeDefault" },
    })
}

fn container_security() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "capabilities": { "drop": ["ALL"] },
    })
}

/// The run's mounts plus the tenant's secret files, read-only.
fn with_secret_files(mut mounts: Value) -> Value {
    if let Some(list) = mounts.as_array_mut() {
        list.push(
            json!({ "name": "secret-files", "mountPath": SECRET_FILES_DIR, "readOnly": true }),
        );
    }
    mounts
}

/// The volumes plus the Secret `dropsync-<tenant>-files` (optional: a tenant with no key
/// file has none), readable by the run's user only.
fn with_secret_volume(mut volumes: Value, tenant: &str) -> Value {
    if let Some(list) = volumes.as_array_mut() {
        list.push(json!({ "name": "secret-files", "secret": {
            "secretName": format!("dropsync-{tenant}-files"),
            "optional": true,
            "defaultMode": 0o400,
        } }));
    }
    volumes
}

fn volumes(opts: &DeployOptions) -> Value {
    json!([
        { "name": "data", "persistentVolumeClaim": { "claimName": opts.claim } },
        { "name": "tmp", "emptyDir": {} },
    ])
}

fn mounts() -> Value {
    json!([
        { "name": "data", "mountPath": DATA_DIR },
        { "name": "tmp", "mountPath": "/tmp" },
    ])
}

/// The tenant's nightly command: with SFTP or Drive sources in its sources config, the run
/// pulls from them first (`run --pull`: a pod has no watcher that could have).
fn run_args(t: &Tenant) -> Result<Vec<String>, DeployError> {
    let sources = crate::config::sources::load(&t.sources)?;
    let mut args = vec!["run".to_string(), "--tenant".into(), t.name.clone()];
    if !sources.sftp.is_empty() || !sources.gdrive.is_empty() {
        args.push("--pull".into());
    }
    args.push("--quiet".into());
    Ok(args)
}

/// Where each pod finds the files its Secrets' variables point to (SFTP keys, Drive
/// credentials: `key_file_env` names a variable holding a path).
pub const SECRET_FILES_DIR: &str = "/var/run/secrets/dropsync";

fn cron_job(opts: &DeployOptions, t: &Tenant, args: &[String]) -> Value {
    let name = format!("dropsync-{}", t.name);
    let mut env = vec![json!({ "name": "DROPSYNC_TENANTS", "value": TENANTS_IN_POD })];
    if let Some(url) = &opts.pushgateway {
        env.push(json!({ "name": "DROPSYNC_PUSHGATEWAY_URL", "value": url }));
    }
    if let Some(url) = &opts.openlineage {
        env.push(json!({ "name": "DROPSYNC_OPENLINEAGE_URL", "value": url }));
    }
    let mut spec = json!({
        "schedule": opts.schedule,
        // A night still running when the next is due is not joined by it (the workspace
        // lock would refuse the second anyway; this keeps it from being started at all).
        "concurrencyPolicy": "Forbid",
        // Missed by more than ten minutes (controller down): skipped, not run late at once.
        "startingDeadlineSeconds": 600,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 5,
        "jobTemplate": {
            "metadata": { "labels": labels(Some(&t.name)) },
            "spec": {
                "backoffLimit": 2,
                "activeDeadlineSeconds": opts.deadline_secs,
                "podFailurePolicy": { "rules": [{
                    "action": "FailJob",
                    "onExitCodes": { "containerName": "dropsync", "operator": "In", "values": FINAL_EXIT_CODES },
                }] },
                "template": {
                    "metadata": { "labels": labels(Some(&t.name)) },
                    "spec": {
                        "restartPolicy": "Never",
                        "securityContext": pod_security(),
                        "containers": [{
                            "name": "dropsync",
                            "image": opts.image,
                            "args": args,
                            "env": env,
                            "envFrom": env_from(Some(&t.name)),
                            "resources": {
                                "requests": { "cpu": opts.cpu, "memory": opts.memory },
                                "limits": { "memory": opts.memory_limit },
                            },
                            "securityContext": container_security(),
                            "volumeMounts": with_secret_files(mounts()),
                        }],
                        "volumes": with_secret_volume(volumes(opts), &t.name),
                    },
                },
            },
        },
    });
    if let Some(tz) = &opts.time_zone {
        spec["timeZone"] = json!(tz);
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": meta(opts, &name, Some(&t.name)),
        "spec": spec,
    })
}

/// `serve --all-tenants` on the pod's address: it refuses to start beyond loopback without
/// `DROPSYNC_SERVE_TOKEN`, which the `dropsync-env` Secret must hold.
fn serve_deployment(opts: &DeployOptions) -> Value {
    let select =
        json!({ "app.kubernetes.io/name": "dropsync", "app.kubernetes.io/component": "serve" });
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(opts, "dropsync-serve", None),
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": select },
            "template": {
                "metadata": { "labels": select },
                "spec": {
                    "securityContext": pod_security(),
                    "containers": [{
                        "name": "serve",
                        "image": opts.image,
                        "args": ["serve", "--all-tenants", "--listen", "0.0.0.0:8080"],
                        "env": [{ "name": "DROPSYNC_TENANTS", "value": TENANTS_IN_POD }],
                        "envFrom": env_from(None),
                        "ports": [{ "name": "http", "containerPort": 8080 }],
                        // Every page needs the token; the port answering is what is probed.
                        "readinessProbe": { "tcpSocket": { "port": "http" }, "periodSeconds": 10 },
                        "livenessProbe": { "tcpSocket": { "port": "http" }, "periodSeconds": 30 },
                        "resources": {
                            "requests": { "cpu": "100m", "memory": "128Mi" },
                            "limits": { "memory": "512Mi" },
                        },
                        "securityContext": container_security(),
                        "volumeMounts": mounts(),
                    }],
                    "volumes": volumes(opts),
                },
            },
        },
    })
}

#[cfg(test)]
mod tests;
