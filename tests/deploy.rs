//! The Kubernetes manifests `dropsync deploy` writes validate against the Kubernetes API
//! schemas, offline: `kubernetes-validate` (PyPI; it carries the schemas of each release, so
//! nothing is fetched), which `.ci/run` installs. Checked strictly (no unknown field) against
//! the oldest release with every field used here GA (1.31: `podFailurePolicy`) and a current
//! one. A manifest broken on purpose must fail, so a validator that passes everything fails
//! this test.

use std::path::Path;
use std::process::Command;

const RELEASES: [&str; 2] = ["1.31.0", "1.37.0"];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn deploy(out: &Path, extra: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_dropsync"))
        .current_dir(repo())
        .env_remove("DROPSYNC_TENANTS")
        .args([
            "deploy",
            "--image",
            "registry.example.com/dropsync:0.1.0",
            "--tenants",
            "watch/tenants.toml",
            "--write",
        ])
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `kubernetes-validate --strict` on `file` for one release: (passed, what it printed).
fn validate(file: &Path, release: &str) -> (bool, String) {
    let o = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict", "--kubernetes-version", release])
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 not found ({e}): the manifests are validated by python3 -m kubernetes_validate (.ci/run installs it)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

#[test]
fn the_manifests_validate_against_the_kubernetes_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dropsync.yaml");
    deploy(
        &file,
        &[
            "--time-zone",
            "America/Argentina/Buenos_Aires",
            "--pushgateway",
            "http://pushgateway.monitoring:9091",
            "--openlineage",
            "http://marquez.lineage:5000",
        ],
    );
    let text = std::fs::read_to_string(&file).unwrap();
    // The shipped tenants file: one CronJob for each of its two dealers.
    assert_eq!(text.matches("\"kind\": \"CronJob\"").count(), 2, "{text}");
    for release in RELEASES {
        let (ok, out) = validate(&file, release);
        assert!(ok, "Kubernetes {release}:\n{out}");
        // One verdict per document: namespace, claim, deployment, service, two CronJobs.
        assert_eq!(
            out.matches(" passed for resource ").count(),
            6,
            "Kubernetes {release}:\n{out}"
        );
    }

    // The validator is not a rubber stamp: a value of the wrong type and an unknown field fail.
    for (from, to) in [
        (
            "\"startingDeadlineSeconds\": 600",
            "\"startingDeadlineSeconds\": \"ten minutes\"",
        ),
        ("\"backoffLimit\": 2", "\"backoffLimit\": 2, \"retries\": 2"),
    ] {
        assert!(text.contains(from));
        let broken = dir.path().join("broken.yaml");
        std::fs::write(&broken, text.replacen(from, to, 1)).unwrap();
        let (ok, out) = validate(&broken, RELEASES[1]);
        assert!(!ok, "{to} passed:\n{out}");
    }
}

#[test]
fn a_wrong_schedule_or_tenants_file_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dropsync.yaml");
    let o = Command::new(env!("CARGO_BIN_EXE_dropsync"))
        .current_dir(repo())
        .args([
            "deploy",
            "--image",
            "x/dropsync:1",
            "--tenants",
            "watch/tenants.toml",
            "--schedule",
            "nightly",
            "--write",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("five-field cron"));
    assert!(!file.exists());
    let o = Command::new(env!("CARGO_BIN_EXE_dropsync"))
        .args(["deploy", "--image", "x/dropsync:1", "--tenants"])
        .arg(dir.path().join("none.toml"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no tenants file at"));
}
