//! Unit tests for the pure parts, then behaviour tests against a real OpenSSH server
//! (see `dropsync_testkit::sshd`).

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dropsync_testkit::sshd::Sshd;

use super::*;

fn never(_: &str, _: u64, _: u64) -> bool {
    false
}

fn login_user() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .expect("run id -un");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A config for `sshd` serving `remote`, key auth, checked against a known_hosts file.
fn config_for(sshd: &Sshd, remote: &Path) -> SftpConfig {
    SftpConfig {
        name: "dealer-test".to_string(),
        host: "127.0.0.1".to_string(),
        port: sshd.port,
        user: login_user(),
        remote_dir: remote.display().to_string(),
        patterns: crate::config::sources::default_patterns(),
        key_file_env: Some(sshd.key_env.clone()),
        password_env: None,
        known_hosts: Some(sshd.known_hosts()),
        fingerprint: None,
        after: After::Move,
        processed_dir: crate::config::sources::default_processed_dir(),
    }
}

/// A config that passes validation without a server: the key variable is PATH, always set.
fn offline_config() -> SftpConfig {
    SftpConfig {
        name: "offline".to_string(),
        host: "sftp.example".to_string(),
        port: 22,
        user: "dropsync".to_string(),
        remote_dir: "/exports".to_string(),
        patterns: crate::config::sources::default_patterns(),
        key_file_env: Some("PATH".to_string()),
        password_env: None,
        known_hosts: None,
        fingerprint: Some("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU".to_string()),
        after: After::Move,
        processed_dir: crate::config::sources::default_processed_dir(),
    }
}

fn config_error(cfg: SftpConfig) -> String {
    match SftpSource::new(cfg) {
        Ok(_) => panic!("config was accepted"),
        Err(e) => e.to_string(),
    }
}

fn names(fetched: &[Fetched]) -> Vec<&str> {
    fetched.iter().map(|f| f.name.as_str()).collect()
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

// ---------- pure ----------

#[test]
fn base64_matches_openssh_alphabet_without_padding() {
    assert_eq!(base64_nopad(b""), "");
    assert_eq!(base64_nopad(b"f"), "Zg");
    assert_eq!(base64_nopad(b"fo"), "Zm8");
    assert_eq!(base64_nopad(b"foo"), "Zm9v");
    assert_eq!(base64_nopad(b"foob"), "Zm9vYg");
    assert_eq!(base64_nopad(&[0xfb, 0xff, 0xfe]), "+//+");
    // SHA-256 of "" as OpenSSH would print it.
    let empty = [
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9,
        0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52,
        0xb8, 0x55,
    ];
    assert_eq!(
        base64_nopad(&empty),
        "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
    );
}

#[test]
fn fingerprints_are_normalized_or_refused() {
    let fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
    assert_eq!(normalize_fingerprint(fp).as_deref(), Some(fp));
    assert_eq!(
        normalize_fingerprint(" SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU= ").as_deref(),
        Some(fp)
    );
    assert_eq!(
        normalize_fingerprint("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"),
        None
    );
    assert_eq!(normalize_fingerprint("MD5:aa:bb:cc"), None);
    assert_eq!(normalize_fingerprint("SHA256:short"), None);
}

#[test]
fn temp_names_and_patterns_decide_what_is_wanted() {
    let src = SftpSource::new(offline_config()).unwrap();
    for name in ["clientes.csv", "VENTAS.CSV", "unidades.Xml"] {
        assert!(src.wants(name), "{name} should be wanted");
    }
    for name in [
        "clientes.csv.part",
        "ventas.csv.tmp",
        "ventas.csv.filepart",
        "~$clientes.csv",
        ".clientes.csv",
        "notes.txt",
        "clientes.CSV.TMP",
    ] {
        assert!(!src.wants(name), "{name} should not be wanted");
    }
}

// ---------- config validation (no server) ----------

#[test]
fn config_without_credential_or_host_check_reports_both() {
    let mut cfg = offline_config();
    cfg.key_file_env = None;
    cfg.fingerprint = None;
    let msg = config_error(cfg);
    assert!(msg.contains("`offline`"), "{msg}");
    assert!(
        msg.contains("key_file_env") && msg.contains("password_env"),
        "{msg}"
    );
    assert!(
        msg.contains("known_hosts") && msg.contains("fingerprint"),
        "{msg}"
    );
}

#[test]
fn config_with_both_credentials_or_both_checks_is_refused() {
    let mut cfg = offline_config();
    cfg.password_env = Some("PATH".to_string());
    cfg.known_hosts = Some(PathBuf::from("/etc/ssh/ssh_known_hosts"));
    let msg = config_error(cfg);
    assert!(
        msg.contains("both `key_file_env` and `password_env`"),
        "{msg}"
    );
    assert!(
        msg.contains("both `known_hosts` and `fingerprint`"),
        "{msg}"
    );
}

#[test]
fn unset_credential_variable_is_named() {
    let mut cfg = offline_config();
    cfg.key_file_env = Some("DROPSYNC_TEST_SURELY_UNSET_KEY".to_string());
    let msg = config_error(cfg);
    assert!(
        msg.contains("`DROPSYNC_TEST_SURELY_UNSET_KEY`") && msg.contains("not set"),
        "{msg}"
    );

    let mut cfg = offline_config();
    cfg.key_file_env = None;
    cfg.password_env = Some("DROPSYNC_TEST_SURELY_UNSET_PASSWORD".to_string());
    let msg = config_error(cfg);
    assert!(
        msg.contains("`DROPSYNC_TEST_SURELY_UNSET_PASSWORD`") && msg.contains("password_env"),
        "{msg}"
    );
}

#[test]
fn password_credential_is_accepted_when_its_variable_is_set() {
    let mut cfg = offline_config();
    cfg.key_file_env = None;
    cfg.password_env = Some("PATH".to_string());
    let src = SftpSource::new(cfg).expect("password config");
    assert!(matches!(src.credential, Credential::Password(ref v) if v == "PATH"));
}

#[test]
fn bad_fingerprint_pattern_and_processed_dir_are_all_reported() {
    let mut cfg = offline_config();
    cfg.fingerprint = Some("aa:bb:cc".to_string());
    cfg.patterns = vec!["[clientes.csv".to_string()];
    cfg.processed_dir = "../elsewhere".to_string();
    let msg = config_error(cfg);
    assert!(msg.contains("aa:bb:cc"), "{msg}");
    assert!(msg.contains("[clientes.csv"), "{msg}");
    assert!(msg.contains("../elsewhere"), "{msg}");
}

// ---------- against a real OpenSSH server ----------

#[test]
fn a_drop_is_taken_on_the_second_look_and_moved_after_ack() {
    let sshd = Sshd::start();
    let remote = tempfile::tempdir().unwrap();
    let into = tempfile::tempdir().unwrap();
    let clientes = b"id;nombre\n1;Ana\n2;Luis\n".to_vec();
    let ventas = pseudo_random(300_000, 7);
    fs::write(remote.path().join("clientes.csv"), &clientes).unwrap();
    fs::write(remote.path().join("ventas.csv"), &ventas).unwrap();
    // Never taken: temp names and files the patterns do not want.
    fs::write(remote.path().join("~$clientes.csv"), "lock").unwrap();
    fs::write(remote.path().join(".ventas.csv"), "hidden").unwrap();
    fs::write(remote.path().join("unidades.xml.part"), "<half").unwrap();
    fs::write(remote.path().join("notes.txt"), "hola").unwrap();
    // An older processed copy is replaced on acknowledge.
    fs::create_dir(remote.path().join("processed")).unwrap();
    fs::write(remote.path().join("processed/clientes.csv"), "old").unwrap();

    let mut src = SftpSource::new(config_for(&sshd, remote.path())).unwrap();
    let first = src.poll(into.path(), &never).expect("first poll");
    assert!(first.is_empty(), "first sighting only records: {first:?}");

    let second = src.poll(into.path(), &never).expect("second poll");
    assert_eq!(names(&second), ["clientes.csv", "ventas.csv"]);
    assert_eq!(
        fs::read(into.path().join("clientes.csv")).unwrap(),
        clientes
    );
    assert_eq!(fs::read(into.path().join("ventas.csv")).unwrap(), ventas);
    assert_eq!(second[1].size, ventas.len() as u64);
    assert_eq!(second[1].hash, blake3::hash(&ventas).to_hex().to_string());
    assert_eq!(second[1].local, into.path().join("ventas.csv"));
    assert_eq!(dir_entries(into.path()), ["clientes.csv", "ventas.csv"]);

    src.acknowledge(&second).expect("acknowledge");
    assert_eq!(
        fs::read(remote.path().join("processed/clientes.csv")).unwrap(),
        clientes
    );
    assert_eq!(
        fs::read(remote.path().join("processed/ventas.csv")).unwrap(),
        ventas
    );
    assert!(!remote.path().join("clientes.csv").exists());
    assert!(!remote.path().join("ventas.csv").exists());

    let third = src.poll(into.path(), &never).expect("third poll");
    assert!(third.is_empty(), "nothing left to take: {third:?}");
}

#[test]
fn acknowledge_creates_processed_dir_and_leaves_a_newer_export_in_place() {
    let sshd = Sshd::start();
    let remote = tempfile::tempdir().unwrap();
    let into = tempfile::tempdir().unwrap();
    fs::write(remote.path().join("clientes.csv"), "v1\n").unwrap();
    fs::write(remote.path().join("ventas.csv"), "v1\n").unwrap();
    let mut cfg = config_for(&sshd, remote.path());
    cfg.processed_dir = "done/2024".to_string();
    let mut src = SftpSource::new(cfg).unwrap();
    assert!(src.poll(into.path(), &never).unwrap().is_empty());
    let got = src.poll(into.path(), &never).unwrap();
    assert_eq!(names(&got), ["clientes.csv", "ventas.csv"]);

    // The dealer drops a new clientes.csv before the run finished.
    fs::write(remote.path().join("clientes.csv"), "v2 longer\n").unwrap();
    src.acknowledge(&got).expect("acknowledge");
    assert!(remote.path().join("done/2024/ventas.csv").exists());
    assert!(!remote.path().join("ventas.csv").exists());
    assert_eq!(
        fs::read_to_string(remote.path().join("clientes.csv")).unwrap(),
        "v2 longer\n"
    );
    assert!(!remote.path().join("done/2024/clientes.csv").exists());
}

#[test]
fn a_growing_file_is_taken_only_once_it_stops_changing() {
    let sshd = Sshd::start();
    let remote = tempfile::tempdir().unwrap();
    let into = tempfile::tempdir().unwrap();
    let path = remote.path().join("ventas.csv");
    let mut content = b"id;importe\n".to_vec();
    fs::write(&path, &content).unwrap();
    let mut src = SftpSource::new(config_for(&sshd, remote.path())).unwrap();

    assert!(
        src.poll(into.path(), &never).unwrap().is_empty(),
        "first sighting"
    );
    for i in 0..3 {
        let line = format!("{i};{}\n", 1000 + i);
        content.extend_from_slice(line.as_bytes());
        fs::write(&path, &content).unwrap();
        let got = src.poll(into.path(), &never).unwrap();
        assert!(got.is_empty(), "still growing, taken anyway: {got:?}");
        assert!(dir_entries(into.path()).is_empty());
    }
    let got = src.poll(into.path(), &never).unwrap();
    assert_eq!(names(&got), ["ventas.csv"]);
    assert_eq!(fs::read(into.path().join("ventas.csv")).unwrap(), content);
}

#[test]
fn unknown_or_changed_host_key_is_refused_showing_the_real_fingerprint() {
    let sshd = Sshd::start();
    let remote = tempfile::tempdir().unwrap();
    let into = tempfile::tempdir().unwrap();
    fs::write(remote.path().join("clientes.csv"), "id\n1\n").unwrap();
    let real = sshd.fingerprint();
    let files = tempfile::tempdir().unwrap();

    // known_hosts lists another key for this host and port.
    let changed = files.path().join("changed_known_hosts");
    fs::write(
        &changed,
        format!("[127.0.0.1]:{} {}\n", sshd.port, sshd.other_public_key()),
    )
    .unwrap();
    // known_hosts that does not list this server at all.
    let unknown = files.path().join("unknown_known_hosts");
    fs::write(
        &unknown,
        format!("[10.9.8.7]:2222 {}\n", sshd.host_public_key()),
    )
    .unwrap();

    for (file, problem) in [(&changed, "DIFFERENT"), (&unknown, "not listed")] {
        let mut cfg = config_for(&sshd, remote.path());
        cfg.known_hosts = Some(file.clone());
        let mut src = SftpSource::new(cfg).unwrap();
        for _ in 0..2 {
            let err = src.poll(into.path(), &never).expect_err("must refuse");
            let msg = err.to_string();
            assert!(matches!(err, SftpError::HostKeyRejected { .. }), "{msg}");
            assert!(msg.contains(&real), "no real fingerprint {real} in: {msg}");
            assert!(
                msg.contains(problem) && msg.contains("fingerprint = "),
                "{msg}"
            );
        }
    }

    // A wrong pinned fingerprint.
    let mut cfg = config_for(&sshd, remote.path());
    cfg.known_hosts = None;
    cfg.fingerprint = Some("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU".to_string());
    let mut src = SftpSource::new(cfg).unwrap();
    for _ in 0..2 {
        let err = src.poll(into.path(), &never).expect_err("must refuse");
        let msg = err.to_string();
        assert!(
            matches!(err, SftpError::FingerprintMismatch { .. }),
            "{msg}"
        );
        assert!(msg.contains(&format!("fingerprint = \"{real}\"")), "{msg}");
    }
    assert!(dir_entries(into.path()).is_empty(), "nothing downloaded");

    // The right pinned fingerprint works.
    let mut cfg = config_for(&sshd, remote.path());
    cfg.known_hosts = None;
    cfg.fingerprint = Some(real.clone());
    let mut src = SftpSource::new(cfg).unwrap();
    assert!(src.poll(into.path(), &never).unwrap().is_empty());
    let got = src.poll(into.path(), &never).unwrap();
    assert_eq!(names(&got), ["clientes.csv"]);
}

#[test]
fn connection_lost_mid_download_leaves_nothing_and_next_poll_fetches_it_whole() {
    let mut sshd = Sshd::start();
    let remote = tempfile::tempdir().unwrap();
    let into = tempfile::tempdir().unwrap();
    let big = pseudo_random(32 * 1024 * 1024, 42);
    fs::write(remote.path().join("ventas.csv"), &big).unwrap();
    let mut src = SftpSource::new(config_for(&sshd, remote.path())).unwrap();
    assert!(src.poll(into.path(), &never).unwrap().is_empty());

    let into_path = into.path().to_path_buf();
    let worker = std::thread::spawn(move || {
        let result = src.poll(&into_path, &never);
        (src, result)
    });
    let part = into.path().join(".ventas.csv.part");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if fs::metadata(&part).map(|m| m.len() > 0).unwrap_or(false) {
            break;
        }
        assert!(!worker.is_finished(), "poll ended before any byte was seen");
        assert!(Instant::now() < deadline, "download never started");
        std::thread::sleep(Duration::from_millis(1));
    }
    sshd.kill();
    let (mut src, result) = worker.join().unwrap();
    let err = result.expect_err("poll must fail when the server dies mid-download");
    eprintln!("expected error: {err}");
    assert!(
        dir_entries(into.path()).is_empty(),
        "left behind: {:?}",
        dir_entries(into.path())
    );

    sshd.restart();
    let mut got = Vec::new();
    for _ in 0..2 {
        got = src.poll(into.path(), &never).expect("poll after restart");
        if !got.is_empty() {
            break;
        }
    }
    assert_eq!(names(&got), ["ventas.csv"]);
    assert_eq!(got[0].size, big.len() as u64);
    assert_eq!(got[0].hash, blake3::hash(&big).to_hex().to_string());
    assert!(fs::read(into.path().join("ventas.csv")).unwrap() == big);
    assert_eq!(dir_entries(into.path()), ["ventas.csv"]);
}

#[test]
fn kept_files_are_not_fetched_again_once_remembered() {
    let sshd = Sshd::start();
    let remote = tempfile::tempdir().unwrap();
    let into = tempfile::tempdir().unwrap();
    fs::write(remote.path().join("unidades.xml"), "<unidades/>").unwrap();
    let mut cfg = config_for(&sshd, remote.path());
    cfg.after = After::Keep;
    let mut src = SftpSource::new(cfg).unwrap();

    let memory: RefCell<HashSet<(String, u64, u64)>> = RefCell::new(HashSet::new());
    let remembered = |name: &str, size: u64, mtime: u64| {
        memory.borrow().contains(&(name.to_string(), size, mtime))
    };

    assert!(src.poll(into.path(), &remembered).unwrap().is_empty());
    let got = src.poll(into.path(), &remembered).unwrap();
    assert_eq!(names(&got), ["unidades.xml"]);
    src.acknowledge(&got).unwrap();
    assert!(
        remote.path().join("unidades.xml").exists(),
        "Keep leaves it"
    );
    assert!(!remote.path().join("processed").exists());
    for f in &got {
        memory
            .borrow_mut()
            .insert((f.name.clone(), f.size, f.mtime));
    }
    fs::remove_file(into.path().join("unidades.xml")).unwrap();

    for _ in 0..2 {
        let again = src.poll(into.path(), &remembered).unwrap();
        assert!(again.is_empty(), "remembered file fetched again: {again:?}");
    }
    assert!(dir_entries(into.path()).is_empty());

    // A new export under the same name is a different file.
    fs::write(
        remote.path().join("unidades.xml"),
        "<unidades><u/></unidades>",
    )
    .unwrap();
    assert!(src.poll(into.path(), &remembered).unwrap().is_empty());
    let got = src.poll(into.path(), &remembered).unwrap();
    assert_eq!(names(&got), ["unidades.xml"]);
}

#[test]
fn a_dead_port_fails_fast_with_a_connect_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = offline_config();
    cfg.host = "127.0.0.1".to_string();
    cfg.port = port;
    let mut src = SftpSource::new(cfg).unwrap();
    let into = tempfile::tempdir().unwrap();
    let err = src.poll(into.path(), &never).expect_err("nothing listens");
    assert!(matches!(err, SftpError::Connect { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}
