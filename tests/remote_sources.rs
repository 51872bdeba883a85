//! The remote sources against local servers, through dropsync's public API: the Drive
//! source against a fake Drive API, and `watch` and `run --pull` pulling drops over SFTP (a
//! real OpenSSH server started by the test) and from Drive. The servers come from `dropsync-testkit`
//! (`tests/testkit/`).

mod support;

mod gdrive {
    //! Polls against the fake Drive (`dropsync_testkit::drive`): real HTTP, real token grant,
    //! real google-drive3 and yup-oauth2 code, no Google endpoint.

    use std::collections::HashSet;
    use std::path::Path;
    use std::time::Duration;

    use dropsync::sources::gdrive::{
        Fetched, GdriveConfig, GdriveError, GdriveSource, RetryTiming,
    };
    use dropsync_testkit::drive::{FakeDrive, FakeFile, Fault, Hit, Route, SHEET_MIME};
    use dropsync_testkit::google::key_in_env;

    const FOLDER: &str = "folder-1";
    const EMAIL: &str = "dropsync-test@example-project.iam.gserviceaccount.com";

    struct Setup {
        drive: FakeDrive,
        dir: tempfile::TempDir,
        var: String,
    }

    impl Setup {
        fn new(files: Vec<FakeFile>) -> Self {
            Self::with_email(files, EMAIL)
        }

        /// `key_email` is the account the key file claims; the server only knows `EMAIL`.
        fn with_email(files: Vec<FakeFile>, key_email: &str) -> Self {
            let drive = FakeDrive::start(FOLDER, EMAIL, files);
            let dir = tempfile::tempdir().expect("tempdir");
            let var = key_in_env(
                dir.path(),
                key_email,
                &drive.token_uri(),
                "DROPSYNC_GDRIVE_TEST_KEY",
            );
            Setup { drive, dir, var }
        }

        fn config(&self, max_retries: u32) -> GdriveConfig {
            GdriveConfig {
                name: "test".into(),
                folder_id: FOLDER.into(),
                key_file_env: self.var.clone(),
                patterns: vec!["*.csv".into(), "*.xml".into()],
                api_base: Some(self.drive.base()),
                max_retries,
            }
        }

        fn source(&self, max_retries: u32) -> GdriveSource {
            GdriveSource::new(self.config(max_retries))
                .expect("source")
                .with_timing(fast())
        }

        fn inbox(&self) -> std::path::PathBuf {
            self.dir.path().join("inbox")
        }
    }

    fn fast() -> RetryTiming {
        RetryTiming {
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            request_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(5),
        }
    }

    fn never(_: &str, _: &str) -> bool {
        false
    }

    fn names(fetched: &[Fetched]) -> Vec<&str> {
        fetched.iter().map(|f| f.name.as_str()).collect()
    }

    fn statuses(hits: &[Hit]) -> Vec<u16> {
        hits.iter().map(|h| h.status).collect()
    }

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn five_exports() -> Vec<FakeFile> {
        vec![
            FakeFile::blob("id-a", "clientes.csv", b"id;nombre\n1;Ana\n2;Luis\n"),
            FakeFile::blob("id-b", "VENTAS.CSV", b"id;importe\n7;1.234,56\n"),
            FakeFile::blob(
                "id-c",
                "unidades.xml",
                b"<unidades><u vin=\"X1\"/></unidades>",
            )
            .with_mime("application/xml"),
            FakeFile::blob("id-d", "notas.pdf", b"%PDF-1.4 not wanted")
                .with_mime("application/pdf"),
            FakeFile::blob(
                "id-e",
                "servicios.csv",
                &[0xef, 0xbb, 0xbf, b'a', b';', 0xe9, b'\n'],
            ),
            FakeFile::blob("id-f", "stock.csv", &vec![b'x'; 300_000]),
        ]
    }

    #[test]
    fn pages_through_the_folder_and_fetches_every_file_byte_identical() {
        let files = five_exports();
        let s = Setup::new(files.clone());
        let mut source = s.source(2);
        let fetched = source.poll(&s.inbox(), &never).expect("poll");

        assert_eq!(
            names(&fetched),
            [
                "VENTAS.CSV",
                "clientes.csv",
                "servicios.csv",
                "stock.csv",
                "unidades.xml"
            ]
        );
        for f in &fetched {
            let original = files.iter().find(|o| o.id == f.file_id).expect("known id");
            let on_disk = std::fs::read(&f.local).expect("downloaded file");
            assert_eq!(on_disk, original.content, "{}", f.name);
            assert_eq!(f.hash, blake3::hash(&original.content).to_hex().to_string());
            assert_eq!(f.md5.as_deref(), Some(original.md5().as_str()));
            assert_eq!(f.modified_time, "2025-01-31T09:30:00.000Z");
            assert_eq!(f.local, s.inbox().join(&f.name));
        }
        // 6 items, 2 per page: 3 pages, the 2nd and 3rd asked for by token.
        let lists = s.drive.hits(Route::List);
        assert_eq!(statuses(&lists), [200, 200, 200]);
        let tokens: Vec<Option<&str>> = lists
            .iter()
            .map(|h| h.query.get("pageToken").map(String::as_str))
            .collect();
        assert_eq!(tokens, [None, Some("page-1"), Some("page-2")]);
        let first = &lists[0].query;
        assert_eq!(first["q"], "'folder-1' in parents and trashed = false");
        assert_eq!(first["supportsAllDrives"], "true");
        assert_eq!(first["includeItemsFromAllDrives"], "true");
        // The PDF was listed but never downloaded.
        let media = s.drive.hits(Route::Media);
        assert_eq!(media.len(), 5);
        assert!(media.iter().all(|h| h.file_id.as_deref() != Some("id-d")));
        assert!(media
            .iter()
            .all(|h| h.query.get("alt").map(String::as_str) == Some("media")));
        assert_eq!(
            s.drive.hits(Route::Token).len(),
            1,
            "one token serves the whole poll"
        );
        assert_eq!(
            dir_entries(&s.inbox()),
            [
                "VENTAS.CSV",
                "clientes.csv",
                "servicios.csv",
                "stock.csv",
                "unidades.xml"
            ]
        );
        assert!(source.last_failures().is_empty());
    }

    #[test]
    fn exports_a_google_sheet_as_csv_and_skips_other_native_files() {
        let s = Setup::new(vec![
            FakeFile::blob("sheet-1", "precios", b"modelo;precio\nA3;30000\n")
                .with_mime(SHEET_MIME),
            FakeFile::blob("doc-1", "manual", b"not exportable here")
                .with_mime("application/vnd.google-apps.document"),
        ]);
        let fetched = s.source(1).poll(&s.inbox(), &never).expect("poll");

        assert_eq!(names(&fetched), ["precios.csv"]);
        let f = &fetched[0];
        assert_eq!(
            std::fs::read(&f.local).expect("file"),
            b"modelo;precio\nA3;30000\n"
        );
        assert_eq!(f.md5, None);
        assert_eq!(f.version(), "2025-01-31T09:30:00.000Z");
        let exports = s.drive.hits(Route::Export);
        assert_eq!(statuses(&exports), [200]);
        assert_eq!(exports[0].query["mimeType"], "text/csv");
        assert!(s.drive.hits(Route::Media).is_empty());
    }

    #[test]
    fn a_revoked_token_is_refreshed_once_and_the_poll_succeeds() {
        let s = Setup::new(five_exports());
        s.drive.fault(Route::Api, None, Fault::RevokeToken, 1);
        let fetched = s
            .source(0)
            .poll(&s.inbox(), &never)
            .expect("poll despite the 401");

        assert_eq!(fetched.len(), 5);
        assert_eq!(statuses(&s.drive.hits(Route::Token)), [200, 200]);
        assert_eq!(statuses(&s.drive.hits(Route::List)), [401, 200, 200, 200]);
    }

    #[test]
    fn a_429_waits_for_retry_after() {
        let s = Setup::new(vec![FakeFile::blob("id-a", "clientes.csv", b"a\n")]);
        s.drive
            .fault(Route::List, None, Fault::TooMany { retry_after: 1 }, 1);
        let fetched = s.source(2).poll(&s.inbox(), &never).expect("poll");

        assert_eq!(names(&fetched), ["clientes.csv"]);
        let lists = s.drive.hits(Route::List);
        assert_eq!(statuses(&lists), [429, 200]);
        let waited = lists[1].at - lists[0].at;
        assert!(
            waited >= Duration::from_millis(950),
            "waited only {waited:?}"
        );
    }

    #[test]
    fn a_503_is_retried_with_backoff() {
        let s = Setup::new(five_exports());
        s.drive
            .fault(Route::Media, Some("id-c"), Fault::Unavailable, 2);
        s.drive.fault(Route::List, None, Fault::Unavailable, 1);
        let mut source = s.source(3);
        let fetched = source.poll(&s.inbox(), &never).expect("poll");

        assert_eq!(fetched.len(), 5);
        assert!(source.last_failures().is_empty());
        let for_c: Vec<u16> = s
            .drive
            .hits(Route::Media)
            .iter()
            .filter(|h| h.file_id.as_deref() == Some("id-c"))
            .map(|h| h.status)
            .collect();
        assert_eq!(for_c, [503, 503, 200]);
        assert_eq!(statuses(&s.drive.hits(Route::List))[..2], [503, 200]);
    }

    #[test]
    fn a_request_without_answer_times_out_and_is_retried() {
        let s = Setup::new(vec![FakeFile::blob("id-a", "clientes.csv", b"a\n")]);
        s.drive
            .fault(Route::List, None, Fault::Stall(Duration::from_secs(2)), 1);
        let mut source = s.source(1).with_timing(RetryTiming {
            request_timeout: Duration::from_millis(300),
            ..fast()
        });
        let fetched = source.poll(&s.inbox(), &never).expect("poll");
        assert_eq!(names(&fetched), ["clientes.csv"]);
    }

    #[test]
    fn remembered_files_are_not_downloaded_again() {
        let s = Setup::new(five_exports());
        let files = five_exports();
        let version = |id: &str| files.iter().find(|f| f.id == id).expect("id").md5();
        let seen: HashSet<(String, String)> = ["id-a", "id-b", "id-c", "id-e"]
            .iter()
            .map(|id| (id.to_string(), version(id)))
            .collect();
        let remembered = |id: &str, v: &str| seen.contains(&(id.to_owned(), v.to_owned()));
        let fetched = s.source(1).poll(&s.inbox(), &remembered).expect("poll");

        assert_eq!(names(&fetched), ["stock.csv"]);
        let media = s.drive.hits(Route::Media);
        assert_eq!(media.len(), 1);
        assert_eq!(media[0].file_id.as_deref(), Some("id-f"));
        assert_eq!(dir_entries(&s.inbox()), ["stock.csv"]);
    }

    #[test]
    fn a_changed_file_is_downloaded_again() {
        let s = Setup::new(five_exports());
        let mut source = s.source(1);
        let first = source.poll(&s.inbox(), &never).expect("first poll");
        assert_eq!(first.len(), 5);
        let seen: HashSet<(String, String)> = first
            .iter()
            .map(|f| (f.file_id.clone(), f.version().to_owned()))
            .collect();
        let remembered = |id: &str, v: &str| seen.contains(&(id.to_owned(), v.to_owned()));

        assert!(source
            .poll(&s.inbox(), &remembered)
            .expect("idle poll")
            .is_empty());

        let new_content = b"id;nombre\n1;Ana\n2;Luis\n3;Eva\n";
        s.drive
            .replace("id-a", new_content, "2025-02-01T08:00:00.000Z");
        let second = source.poll(&s.inbox(), &remembered).expect("second poll");
        assert_eq!(names(&second), ["clientes.csv"]);
        assert_eq!(std::fs::read(&second[0].local).expect("file"), new_content);
        assert_ne!(
            second[0].md5,
            first
                .iter()
                .find(|f| f.file_id == "id-a")
                .and_then(|f| f.md5.clone())
        );
        assert_eq!(second[0].modified_time, "2025-02-01T08:00:00.000Z");
    }

    #[test]
    fn a_download_that_keeps_breaking_off_leaves_no_partial_file() {
        let s = Setup::new(five_exports());
        s.drive
            .fault(Route::Media, Some("id-f"), Fault::Truncate, u32::MAX);
        let mut source = s.source(1);
        let fetched = source
            .poll(&s.inbox(), &never)
            .expect("the other files still come");

        assert_eq!(
            names(&fetched),
            [
                "VENTAS.CSV",
                "clientes.csv",
                "servicios.csv",
                "unidades.xml"
            ]
        );
        let failures = source.last_failures();
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].name, "stock.csv");
        assert!(
            matches!(failures[0].error, GdriveError::GaveUp { tries: 2, .. }),
            "{}",
            failures[0].error
        );
        assert!(
            failures[0]
                .error
                .to_string()
                .contains("broke off after 150000 bytes"),
            "{}",
            failures[0].error
        );
        assert_eq!(
            dir_entries(&s.inbox()),
            [
                "VENTAS.CSV",
                "clientes.csv",
                "servicios.csv",
                "unidades.xml"
            ],
            "neither .stock.csv.part nor stock.csv may remain"
        );
    }

    #[test]
    fn a_download_that_breaks_off_once_is_retried() {
        let s = Setup::new(five_exports());
        s.drive
            .fault(Route::Media, Some("id-f"), Fault::Truncate, 1);
        let fetched = s.source(1).poll(&s.inbox(), &never).expect("poll");
        let stock = fetched
            .iter()
            .find(|f| f.name == "stock.csv")
            .expect("stock");
        assert_eq!(
            std::fs::read(&stock.local).expect("file"),
            vec![b'x'; 300_000]
        );
        let tries = s
            .drive
            .hits(Route::Media)
            .iter()
            .filter(|h| h.file_id.as_deref() == Some("id-f"))
            .count();
        assert_eq!(tries, 2);
    }

    #[test]
    fn a_listing_that_keeps_failing_gives_up_after_max_retries() {
        let s = Setup::new(five_exports());
        s.drive
            .fault(Route::List, None, Fault::Unavailable, u32::MAX);
        let err = s
            .source(2)
            .poll(&s.inbox(), &never)
            .expect_err("no listing");
        assert!(matches!(err, GdriveError::GaveUp { tries: 3, .. }), "{err}");
        assert!(err.to_string().contains("HTTP 503"), "{err}");
        assert_eq!(statuses(&s.drive.hits(Route::List)), [503, 503, 503]);
    }

    #[test]
    fn an_unknown_folder_is_reported_with_a_hint() {
        let s = Setup::new(five_exports());
        let mut cfg = s.config(1);
        cfg.folder_id = "not-shared".into();
        let mut source = GdriveSource::new(cfg).expect("source").with_timing(fast());
        let err = source.poll(&s.inbox(), &never).expect_err("404");
        let text = err.to_string();
        assert!(
            matches!(err, GdriveError::Api { status: 404, .. }),
            "{text}"
        );
        assert!(
            text.contains("not-shared") && text.contains(EMAIL),
            "{text}"
        );
    }

    #[test]
    fn a_key_the_token_endpoint_refuses_fails_with_an_auth_error() {
        let s = Setup::with_email(
            five_exports(),
            "someone-else@example.iam.gserviceaccount.com",
        );
        let err = s.source(1).poll(&s.inbox(), &never).expect_err("no token");
        let text = err.to_string();
        assert!(matches!(err, GdriveError::Auth { .. }), "{text}");
        assert!(text.contains("key.json"), "{text}");
        assert!(!text.contains("BEGIN PRIVATE KEY"), "{text}");
        assert!(s.drive.hits(Route::List).is_empty());
    }

    #[test]
    fn a_token_revoked_mid_poll_is_refreshed_for_the_download() {
        let s = Setup::new(five_exports());
        s.drive
            .fault(Route::Media, Some("id-c"), Fault::RevokeToken, 1);
        let mut source = s.source(0);
        let fetched = source.poll(&s.inbox(), &never).expect("poll");
        assert_eq!(fetched.len(), 5);
        assert_eq!(statuses(&s.drive.hits(Route::Token)), [200, 200]);
        let for_c: Vec<u16> = s
            .drive
            .hits(Route::Media)
            .iter()
            .filter(|h| h.file_id.as_deref() == Some("id-c"))
            .map(|h| h.status)
            .collect();
        assert_eq!(for_c, [401, 200]);
    }

    #[test]
    fn a_token_refused_even_after_refresh_is_an_error_not_a_loop() {
        let s = Setup::new(five_exports());
        s.drive.fault(Route::List, None, Fault::RevokeToken, 2);
        let err = s.source(3).poll(&s.inbox(), &never).expect_err("401 twice");
        assert!(matches!(err, GdriveError::Api { status: 401, .. }), "{err}");
        assert_eq!(statuses(&s.drive.hits(Route::List)), [401, 401]);
        assert_eq!(s.drive.hits(Route::Token).len(), 2);
    }
}

mod watch {
    //! `watch --once` pulling a generated drop from a remote source must load the CRM exactly as
    //! `run` does with the same files: over SFTP from a real sshd (`dropsync_testkit::sshd`) and
    //! from the fake Drive.

    use std::path::{Path, PathBuf};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use dropsync::app::gen::{self, GenEncoding, GenOptions, UnitFormat};
    use dropsync::app::run::{self, RunOptions};
    use dropsync::app::watch::{watch, WatchOptions};
    use dropsync_testkit::drive::{FakeDrive, FakeFile};
    use dropsync_testkit::google::key_in_env;
    use dropsync_testkit::sshd::Sshd;

    /// Business columns of every CRM table (bookkeeping run ids differ between runs).
    pub(super) fn crm(out: &Path) -> Vec<String> {
        let conn = rusqlite::Connection::open(out.join("crm.sqlite")).unwrap();
        let mut rows = Vec::new();
        for t in super::support::ENTITIES {
            let mut st = conn
                .prepare(&format!("SELECT * FROM {t} ORDER BY id"))
                .unwrap();
            let n = st.column_count();
            let names: Vec<String> = st.column_names().map(|s| s.to_string()).collect();
            let got: Vec<String> = st
                .query_map([], |r| {
                    Ok((0..n)
                        .filter(|i| !names[*i].ends_with("_run"))
                        .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                        .collect::<Vec<_>>()
                        .join("|"))
                })
                .unwrap()
                .map(|r| format!("{t}:{}", r.unwrap()))
                .collect();
            rows.extend(got);
        }
        rows
    }

    /// A generated dirty drop in `dir` (no manifest) and what `dropsync run` makes of it.
    pub(super) fn drop_and_plain_run(dir: &Path) -> (tempfile::TempDir, Vec<String>) {
        let opts = GenOptions {
            clients: 60,
            seed: 5,
            encoding: GenEncoding::Cp1252,
            unidades: UnitFormat::Xml,
            dirty: true,
        };
        gen::generate(&opts, dir).unwrap();
        std::fs::remove_file(dir.join("manifest.json")).unwrap();
        let plain = tempfile::tempdir().unwrap();
        let report = run::run(&RunOptions::new(
            recipes(),
            dir.to_path_buf(),
            plain.path().to_path_buf(),
        ))
        .unwrap();
        assert_eq!(report.status.as_str(), "ok");
        let rows = crm(plain.path());
        (plain, rows)
    }

    pub(super) fn recipes() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes")
    }

    /// The files of `dir` as Drive files `id0`, `id1`, ... in name order.
    pub(super) fn drive_files(dir: &Path) -> Vec<FakeFile> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        paths
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                FakeFile::blob(&format!("id{i}"), &name, &std::fs::read(p).unwrap())
            })
            .collect()
    }

    /// Runs `watch --once` with `sources` appended to a fast local config; returns the CRM.
    fn watch_once(ws: &Path, sources: &str) -> (usize, Vec<String>) {
        watch_once_on(ws, "every = \"300ms\"", sources)
    }

    /// `watch_once` with `schedule` as the `[schedule]` table's body.
    fn watch_once_on(ws: &Path, schedule: &str, sources: &str) -> (usize, Vec<String>) {
        let config = ws.join("sources.toml");
        std::fs::write(
            &config,
            format!(
                "[watch]\ninbox = {:?}\narchive = {:?}\nquarantine = {:?}\n\
                 settle = \"200ms\"\nquiet = \"400ms\"\n[schedule]\n{schedule}\n{sources}",
                ws.join("inbox"),
                ws.join("archive"),
                ws.join("quarantine"),
            ),
        )
        .unwrap();
        let out = ws.join("out");
        let runs = watch(&WatchOptions {
            config,
            folders: None,
            cluster: None,
            remote: None,
            outputs: None,
            recipes: recipes(),
            out: out.clone(),
            once: true,
            stop: Arc::new(AtomicBool::new(false)),
        })
        .unwrap();
        (runs, crm(&out))
    }

    #[test]
    fn an_sftp_drop_runs_like_the_same_files_given_to_run() {
        let sshd = Sshd::start();
        let remote = tempfile::tempdir().unwrap();
        let (_plain, want) = drop_and_plain_run(remote.path());
        let ws = tempfile::tempdir().unwrap();
        let (runs, got) = watch_once(
            ws.path(),
            &format!(
                "[[sftp]]\nname = \"dealer\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"root\"\n\
                 remote_dir = {:?}\nkey_file_env = {:?}\nknown_hosts = {:?}\n",
                sshd.port,
                remote.path(),
                sshd.key_env,
                sshd.known_hosts(),
            ),
        );
        assert_eq!(runs, 1);
        assert_eq!(got, want);
        // Acknowledged: the remote files moved to processed/.
        let processed: Vec<_> = std::fs::read_dir(remote.path().join("processed"))
            .unwrap()
            .collect();
        assert_eq!(processed.len(), 6);
    }

    /// `--once` on a nightly schedule: the second look at the SFTP folder comes `settle` after
    /// the first, not at the next night's pull (regression: it waited for the schedule).
    #[test]
    fn watch_once_on_a_nightly_schedule_looks_again_after_settle() {
        let sshd = Sshd::start();
        let remote = tempfile::tempdir().unwrap();
        let (_plain, want) = drop_and_plain_run(remote.path());
        let ws = tempfile::tempdir().unwrap();
        let section = format!(
            "[[sftp]]\nname = \"dealer\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"root\"\n\
             remote_dir = {:?}\nkey_file_env = {:?}\nknown_hosts = {:?}\n",
            sshd.port,
            remote.path(),
            sshd.key_env,
            sshd.known_hosts(),
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = ws.path().to_path_buf();
        // The schedule's next pull is always about a day away.
        let now = chrono::Local::now() - chrono::Duration::minutes(1);
        let cron = format!("cron = \"{} {} * * *\"", now.format("%M"), now.format("%H"));
        std::thread::spawn(move || {
            let _ = tx.send(watch_once_on(&dir, &cron, &section));
        });
        let (runs, got) = rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("watch --once returned");
        assert_eq!(runs, 1);
        assert_eq!(got, want);
    }

    #[test]
    fn a_drive_drop_runs_like_the_same_files_given_to_run() {
        let local = tempfile::tempdir().unwrap();
        let (_plain, want) = drop_and_plain_run(local.path());
        let files = drive_files(local.path());
        let email = "dropsync@test.iam.gserviceaccount.com";
        let drive = FakeDrive::start("folder-x", email, files);
        let ws = tempfile::tempdir().unwrap();
        let var = key_in_env(
            ws.path(),
            email,
            &drive.token_uri(),
            "DROPSYNC_WATCH_TEST_DRIVE_KEY",
        );
        let (runs, got) = watch_once(
            ws.path(),
            &format!(
                "[[gdrive]]\nname = \"drive\"\nfolder_id = \"folder-x\"\nkey_file_env = {var:?}\napi_base = {:?}\n",
                drive.base()
            ),
        );
        assert_eq!(runs, 1);
        assert_eq!(got, want);
        // Remembered by id and md5: a second watch pulls nothing and makes no run.
        let (runs, _) = watch_once(ws.path(), &format!(
            "[[gdrive]]\nname = \"drive\"\nfolder_id = \"folder-x\"\nkey_file_env = {var:?}\napi_base = {:?}\n",
            drive.base()
        ));
        assert_eq!(runs, 0);
    }
}

mod pull {
    //! `dropsync run --pull`, the one-shot a scheduler starts: it takes what is new on the
    //! sources, runs it, and remembers it (SFTP: moves it to `processed/`) only once the run
    //! ended, so a run killed or failed at any point leaves the files to the next job, and the
    //! CRM ends as one uninterrupted run leaves it.

    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    use dropsync_testkit::drive::{FakeDrive, Fault, Route};
    use dropsync_testkit::google::key_in_env;
    use dropsync_testkit::sshd::Sshd;

    use super::watch::{crm, drive_files, drop_and_plain_run, recipes};

    /// A workspace of its own with a sources config of `sources` (settle 300 ms).
    struct Job {
        ws: tempfile::TempDir,
    }

    impl Job {
        fn new(sources: &str) -> Job {
            let ws = tempfile::tempdir().unwrap();
            std::fs::write(
                ws.path().join("sources.toml"),
                format!("[watch]\nsettle = \"300ms\"\n{sources}"),
            )
            .unwrap();
            Job { ws }
        }

        fn out(&self) -> PathBuf {
            self.ws.path().join("out")
        }

        fn inbox(&self) -> PathBuf {
            self.ws.path().join("inbox")
        }

        /// `dropsync run --pull --json` on this workspace, with `env` set.
        fn run(&self, env: &[(&str, &str)]) -> Output {
            Command::new(env!("CARGO_BIN_EXE_dropsync"))
                .args(["run", "--pull", "--json", "--config"])
                .arg(self.ws.path().join("sources.toml"))
                .arg("--recipes")
                .arg(recipes())
                .arg("--out")
                .arg(self.out())
                .arg("--inbox")
                .arg(self.inbox())
                .env("RUST_LOG", "warn")
                .envs(env.iter().copied())
                .output()
                .unwrap()
        }

        /// Runs the job; it must exit `code`; its JSON.
        fn expect(&self, code: i32) -> serde_json::Value {
            let o = self.run(&[]);
            assert_eq!(
                o.status.code(),
                Some(code),
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
        }

        fn runs(&self) -> Vec<String> {
            let db = self.out().join("state/state.sqlite");
            if !db.exists() {
                return Vec::new();
            }
            super::support::rows_in(&db, "SELECT status FROM runs ORDER BY rowid")
        }

        fn remembered(&self) -> usize {
            super::support::rows_in(
                &self.out().join("state/state.sqlite"),
                "SELECT count(*) FROM remote_seen",
            )[0]
            .parse()
            .unwrap()
        }
    }

    fn sftp_section(sshd: &Sshd, remote: &Path) -> String {
        format!(
            "[[sftp]]\nname = \"dealer\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"root\"\n\
             remote_dir = {:?}\nkey_file_env = {:?}\nknown_hosts = {:?}\n",
            sshd.port,
            remote,
            sshd.key_env,
            sshd.known_hosts(),
        )
    }

    fn exports_in(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter(|e| {
                    let n = e.as_ref().unwrap().file_name();
                    let n = n.to_string_lossy().to_lowercase();
                    n.ends_with(".csv") || n.ends_with(".xml")
                })
                .count()
            })
            .unwrap_or(0)
    }

    #[test]
    fn a_pull_over_sftp_runs_like_the_same_files_and_the_next_finds_nothing_new() {
        let sshd = Sshd::start();
        let remote = tempfile::tempdir().unwrap();
        let (_plain, want) = drop_and_plain_run(remote.path());
        let job = Job::new(&sftp_section(&sshd, remote.path()));

        let report = job.expect(0);
        assert_eq!(report["status"], "ok", "{report}");
        assert_eq!(crm(&job.out()), want);
        assert_eq!(exports_in(remote.path()), 0, "moved once the run ended");
        assert_eq!(exports_in(&remote.path().join("processed")), 6);

        // Nothing new: no run at all, exit 0.
        let again = job.expect(0);
        assert_eq!(again["status"], "nothing_new");
        assert_eq!(job.runs(), ["ok"]);
    }

    /// Killed before its journal commits or after its CRM upserts: nothing remembered, the
    /// files still on the server; the next job takes them again and the CRM is exact.
    #[test]
    fn a_pull_killed_mid_run_leaves_its_files_to_the_next_job() {
        let sshd = Sshd::start();
        for point in ["before-journal-commit", "after-upserts"] {
            let remote = tempfile::tempdir().unwrap();
            let (_plain, want) = drop_and_plain_run(remote.path());
            let job = Job::new(&sftp_section(&sshd, remote.path()));
            let o = job.run(&[("DROPSYNC_FAILPOINT", point)]);
            assert_eq!(o.status.code(), None, "{point}: aborted");
            assert_eq!(exports_in(remote.path()), 6, "{point}: left on the server");
            assert_eq!(job.remembered(), 0, "{point}");

            let report = job.expect(0);
            assert_eq!(report["status"], "ok", "{point}: {report}");
            assert_eq!(crm(&job.out()), want, "{point}");
            assert_eq!(exports_in(&remote.path().join("processed")), 6, "{point}");
            assert_eq!(job.remembered(), 6, "{point}");
        }
    }

    /// A Drive file that cannot be downloaded fails the job (exit 1) with nothing taken from
    /// any source and no run; the next job, the fault gone, takes all and runs; the one after
    /// finds nothing new.
    #[test]
    fn a_failed_drive_download_takes_nothing_and_the_next_job_does() {
        let local = tempfile::tempdir().unwrap();
        let (_plain, want) = drop_and_plain_run(local.path());
        let files = drive_files(local.path());
        let last = format!("id{}", files.len() - 1);
        let email = "dropsync@test.iam.gserviceaccount.com";
        let drive = FakeDrive::start("folder-p", email, files);
        let dir = tempfile::tempdir().unwrap();
        let var = key_in_env(
            dir.path(),
            email,
            &drive.token_uri(),
            "DROPSYNC_PULL_TEST_KEY",
        );
        let job = Job::new(&format!(
            "[[gdrive]]\nname = \"drive\"\nfolder_id = \"folder-p\"\nkey_file_env = {var:?}\n\
             api_base = {:?}\nmax_retries = 1\n",
            drive.base()
        ));
        // The last file's two tries are cut short.
        drive.fault(Route::Media, Some(&last), Fault::Truncate, 2);
        let o = job.run(&[]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("source `drive`"), "{err}");
        assert_eq!(exports_in(&job.inbox()), 0, "nothing taken");
        assert!(job.runs().is_empty());

        let report = job.expect(0);
        assert_eq!(report["status"], "ok", "{report}");
        assert_eq!(crm(&job.out()), want);
        assert_eq!(job.expect(0)["status"], "nothing_new");
        assert_eq!(job.runs(), ["ok"]);
    }
}
