use super::*;

fn options(tenants: PathBuf) -> DeployOptions {
    DeployOptions {
        tenants,
        image: "registry.example.com/dropsync:0.1.0".into(),
        namespace: "dropsync".into(),
        schedule: "30 2 * * *".into(),
        time_zone: Some("America/Argentina/Buenos_Aires".into()),
        cpu: "1".into(),
        memory: "1Gi".into(),
        memory_limit: "2Gi".into(),
        deadline_secs: 3600,
        claim: "dropsync-data".into(),
        storage: "50Gi".into(),
        pushgateway: Some("http://pushgateway.monitoring:9091".into()),
        openlineage: Some("http://marquez.lineage:5000".into()),
    }
}

fn tenants_file(names: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut text =
        "[defaults]\nrecipes = \"recipes\"\ninbox = \"{tenant}/inbox\"\nout = \"{tenant}/out\"\n"
            .to_string();
    for n in names {
        text.push_str(&format!("[tenants.{n}]\n"));
    }
    let path = dir.path().join("tenants.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

#[test]
fn one_cron_job_per_tenant_that_never_overlaps_itself() {
    let (_dir, path) = tenants_file(&["norte", "sur", "dealer-42"]);
    let docs = manifests(&options(path)).unwrap();
    let jobs = of_kind(&docs, "CronJob");
    let names: Vec<&str> = jobs
        .iter()
        .map(|j| j["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["dropsync-dealer-42", "dropsync-norte", "dropsync-sur"]
    );
    for (job, tenant) in jobs.iter().zip(["dealer-42", "norte", "sur"]) {
        let spec = &job["spec"];
        assert_eq!(spec["concurrencyPolicy"], "Forbid");
        assert_eq!(spec["schedule"], "30 2 * * *");
        assert_eq!(spec["timeZone"], "America/Argentina/Buenos_Aires");
        assert_eq!(spec["startingDeadlineSeconds"], 600);
        let job_spec = &spec["jobTemplate"]["spec"];
        assert_eq!(job_spec["backoffLimit"], 2);
        assert_eq!(job_spec["activeDeadlineSeconds"], 3600);
        // Configuration, held and nothing-found are not retried.
        let rule = &job_spec["podFailurePolicy"]["rules"][0];
        assert_eq!(rule["action"], "FailJob");
        assert_eq!(rule["onExitCodes"]["values"], json!([2, 3, 4]));
        let pod = &job_spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        let c = &pod["containers"][0];
        assert_eq!(rule["onExitCodes"]["containerName"], c["name"]);
        assert_eq!(c["args"], json!(["run", "--tenant", tenant, "--quiet"]));
        assert_eq!(c["resources"]["requests"]["memory"], "1Gi");
        assert_eq!(c["resources"]["limits"]["memory"], "2Gi");
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(
            c["envFrom"][1]["secretRef"]["name"],
            format!("dropsync-{tenant}")
        );
        assert_eq!(job["metadata"]["labels"]["dropsync.io/tenant"], tenant);
    }
}

#[test]
fn no_secret_value_is_written_into_a_manifest() {
    let (_dir, path) = tenants_file(&["norte"]);
    let docs = manifests(&options(path)).unwrap();
    let mut env_names = Vec::new();
    for d in &docs {
        let spec = if d["kind"] == "CronJob" {
            &d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        } else {
            &d["spec"]["template"]["spec"]
        };
        for c in spec["containers"].as_array().into_iter().flatten() {
            for e in c["env"].as_array().into_iter().flatten() {
                env_names.push(e["name"].as_str().unwrap().to_string());
            }
            for from in c["envFrom"].as_array().unwrap() {
                assert_eq!(from["secretRef"]["optional"], true, "{from}");
            }
        }
    }
    env_names.sort();
    env_names.dedup();
    // Where the tenants file is, and where to report: the rest comes from Secrets.
    assert_eq!(
        env_names,
        [
            "DROPSYNC_OPENLINEAGE_URL",
            "DROPSYNC_PUSHGATEWAY_URL",
            "DROPSYNC_TENANTS"
        ]
    );
}

#[test]
fn the_status_page_serves_every_tenant_behind_its_token() {
    let (_dir, path) = tenants_file(&["norte"]);
    let docs = manifests(&options(path)).unwrap();
    let deploy = of_kind(&docs, "Deployment")[0];
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["args"],
        json!(["serve", "--all-tenants", "--listen", "0.0.0.0:8080"])
    );
    let service = of_kind(&docs, "Service")[0];
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(
            &deploy["spec"]["template"]["metadata"]["labels"][k], v,
            "the Service selects the serve pods"
        );
    }
    let claim = of_kind(&docs, "PersistentVolumeClaim")[0];
    assert_eq!(claim["spec"]["accessModes"], json!(["ReadWriteMany"]));
    assert_eq!(
        deploy["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        claim["metadata"]["name"]
    );
}

#[test]
fn bad_options_are_refused_before_anything_is_written() {
    let (_dir, path) = tenants_file(&["norte"]);
    for (change, want) in [
        (
            (|o: &mut DeployOptions| o.schedule = "every night".into()) as fn(&mut DeployOptions),
            "five-field cron",
        ),
        (|o| o.schedule = "0 0 2 * * *".into(), "five-field cron"),
        (|o| o.image = "my image".into(), "--image"),
        (|o| o.namespace = "Prod_NS".into(), "--namespace"),
    ] {
        let mut o = options(path.clone());
        change(&mut o);
        let err = manifests(&o).unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn the_render_is_a_stream_of_documents_kubectl_reads() {
    let (_dir, path) = tenants_file(&["norte"]);
    let o = options(path);
    let docs = manifests(&o).unwrap();
    let text = render(&o, &docs);
    let parsed: Vec<Value> = text
        .split("\n---\n")
        .skip(1)
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(parsed, docs);
    assert!(text.starts_with("# Generated by `dropsync deploy`"));
}

#[test]
fn the_image_is_multi_stage_non_root_and_holds_no_secret() {
    let lines: Vec<&str> = DOCKERFILE
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let froms: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("FROM "))
        .collect();
    assert!(froms.len() >= 2, "a build stage and a runtime stage");
    let runtime = &lines[*froms.last().unwrap()..];
    assert!(
        runtime.contains(&format!("USER {RUN_AS}:{RUN_AS}").as_str()),
        "the runtime stage runs as the UID the manifests expect"
    );
    assert!(runtime.iter().any(|l| l.starts_with("COPY --from=build")));
    assert!(lines
        .iter()
        .any(|l| l.contains("cargo build --release --locked")));
    for l in &lines {
        let upper = l.to_uppercase();
        if upper.starts_with("ENV ") || upper.starts_with("ARG ") {
            for word in ["TOKEN", "PASSWORD", "SECRET", "_KEY", "PG_URL"] {
                assert!(!upper.contains(word), "a secret in the image: {l}");
            }
        }
    }
}

#[test]
fn a_tenant_with_remote_sources_pulls_from_them_with_its_key_files_mounted() {
    let (dir, path) = tenants_file(&["norte", "sur"]);
    // norte's drops come over SFTP; sur's land in its folder.
    std::fs::create_dir_all(dir.path().join("norte")).unwrap();
    std::fs::write(
        dir.path().join("norte/sources.toml"),
        "[[sftp]]\nname = \"norte\"\nhost = \"sftp.norte.example\"\nuser = \"dropsync\"\n\
         remote_dir = \"/exports\"\nkey_file_env = \"NORTE_SFTP_KEY\"\n\
         fingerprint = \"SHA256:7YbZ0yq3p9tT0rA9m3x1c3uGq6m2k8w0Jr2e7qQm0hA\"\n",
    )
    .unwrap();
    let docs = manifests(&options(path.clone())).unwrap();
    let jobs = of_kind(&docs, "CronJob");
    let pod = |i: usize| &jobs[i]["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(
        pod(0)["containers"][0]["args"],
        json!(["run", "--tenant", "norte", "--pull", "--quiet"])
    );
    assert_eq!(
        pod(1)["containers"][0]["args"],
        json!(["run", "--tenant", "sur", "--quiet"])
    );
    for (i, tenant) in ["norte", "sur"].iter().enumerate() {
        let volume = pod(i)["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "secret-files")
            .unwrap();
        assert_eq!(
            volume["secret"]["secretName"],
            format!("dropsync-{tenant}-files")
        );
        assert_eq!(volume["secret"]["optional"], true);
        let mount = pod(i)["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "secret-files")
            .unwrap()
            .clone();
        assert_eq!(mount["mountPath"], SECRET_FILES_DIR);
        assert_eq!(mount["readOnly"], true);
    }
    // A broken sources config is the operator's to fix, named with its line.
    std::fs::create_dir_all(dir.path().join("sur")).unwrap();
    std::fs::write(dir.path().join("sur/sources.toml"), "[[sftp]]\nnmae = 1\n").unwrap();
    let err = manifests(&options(path)).unwrap_err().to_string();
    assert!(err.contains("sources.toml:2"), "{err}");
}
