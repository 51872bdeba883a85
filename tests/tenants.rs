//! Many dealers on one installation: `--tenant NAME` picks a dealer of the tenants file for
//! every command, and workers started at once for the same dealer never overlap.
//!
//! The workers' test: every tenant gets its own generated drops (its own seed) over three
//! snapshots. For each snapshot, three `dropsync run --tenant NAME` processes per tenant are
//! started at the same moment, for every tenant at once, and some are killed with SIGKILL at
//! random moments; then one more worker per tenant finishes whatever the wave left. Each
//! tenant's CRM, staging tables and snapshots must equal those of a single uninterrupted
//! worker on the same drops, and its runs table must show no two runs that overlapped. The
//! workers take each tenant's PostgreSQL advisory lock (`[lock]`, a real server started by
//! the test) besides its workspace lock, as workers on several machines would.
//! Tenants: `DROPSYNC_TENANTS_N` (default 20); seed: `DROPSYNC_KILL_SEED`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dropsync_testkit::postgres::TestDb;
use support::{env_num, repo, sqlite_dump, Rng, ENTITIES};

const WORKERS: usize = 3;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dropsync"));
    c.env("RUST_LOG", "warn").env_remove("DROPSYNC_TENANTS");
    c
}

fn output(c: &mut Command) -> Output {
    c.output().unwrap()
}

/// The command's output, which must have exited 0 (`what` says which, beside its stderr).
fn succeed(c: &mut Command, what: &str) -> Output {
    let o = output(c);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{what}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A folder of tenants: `tenants.toml` with every dealer's places under `root/NAME/`.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(names: &[String]) -> Site {
        Site::with_lock(names, None)
    }

    /// With `[lock]` naming `lock_env`, the variable holding a PostgreSQL URL.
    fn with_lock(names: &[String], lock_env: Option<&str>) -> Site {
        let header = lock_env
            .map(|v| format!("[lock]\npostgres_url_env = \"{v}\"\n\n"))
            .unwrap_or_default();
        Site::with(names, &header, &repo().join("recipes"))
    }

    /// A tenants file starting with `header` (e.g. `[lock]`, `[state]`), every tenant on
    /// `recipes`.
    fn with(names: &[String], header: &str, recipes: &Path) -> Site {
        Site::with_defaults(names, header, recipes, "")
    }

    /// [`Site::with`], `defaults` added to the `[defaults]` table.
    fn with_defaults(names: &[String], header: &str, recipes: &Path, defaults: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let mut toml = header.to_string();
        toml.push_str(&format!(
            "[defaults]\nrecipes = \"{}\"\ninbox = \"{{tenant}}/inbox\"\nout = \"{{tenant}}/out\"\n{defaults}",
            recipes.display()
        ));
        for n in names {
            toml.push_str(&format!("\n[tenants.{n}]\n"));
            std::fs::create_dir_all(dir.path().join(n).join("inbox")).unwrap();
        }
        std::fs::write(dir.path().join("tenants.toml"), toml).unwrap();
        Site { dir }
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("tenants.toml")
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name).join("out")
    }

    fn inbox(&self, name: &str) -> PathBuf {
        self.dir.path().join(name).join("inbox")
    }

    /// `dropsync ARGS --tenant NAME --tenants FILE`, from an unrelated working directory:
    /// the tenants file's paths are its own folder's.
    fn cmd(&self, name: &str, args: &[&str]) -> Command {
        let mut c = bin();
        c.current_dir(std::env::temp_dir())
            .args(args)
            .args(["--tenant", name, "--tenants"])
            .arg(self.file());
        c
    }

    /// Puts drop `from` in the tenant's inbox, replacing what was there.
    fn drop_into(&self, name: &str, from: &Path) {
        let inbox = self.inbox(name);
        std::fs::remove_dir_all(&inbox).unwrap();
        copy_dir(from, &inbox);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "csv" || x == "xml") {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// Three snapshots of one dealer: a first load, the next day, then the first again (the
/// deleted rows come back).
fn snapshots(dir: &Path, seed: u64) -> [PathBuf; 3] {
    let d = |i: usize| dir.join(format!("d{i}"));
    let st = bin()
        .args([
            "gen",
            "--clients",
            "40",
            "--seed",
            &seed.to_string(),
            "--out",
        ])
        .arg(d(0))
        .arg("--next")
        .arg(d(1))
        .args(["--changed", "0.2", "--added", "0.05", "--deleted", "0.05"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    copy_dir(&d(0), &d(2));
    [d(0), d(1), d(2)]
}

/// What two workspaces of one dealer must agree on: the CRM without its run-id bookkeeping,
/// the staging tables, and each entity's snapshot.
fn state_of(out: &Path) -> String {
    let mut parts = vec![
        sqlite_dump(
            &out.join("crm.sqlite"),
            &["_created_run", "_updated_run", "_deleted_run"],
        ),
        sqlite_dump(&out.join("staging.sqlite"), &[]),
    ];
    let state = dropsync::state::State::open(out).unwrap();
    for e in ENTITIES {
        let ids = state.snapshot_ids(e).unwrap().map(|mut ids| {
            ids.sort();
            ids
        });
        parts.push(format!("== snapshot {e}: {ids:?}"));
    }
    parts.join("\n")
}

/// The runs of a workspace, oldest first: (run id, started, finished, status).
fn runs(out: &Path) -> Vec<(String, String, Option<String>, String)> {
    let conn = rusqlite::Connection::open(out.join("state/state.sqlite")).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT run_id, started_at, finished_at, status FROM runs ORDER BY started_at, rowid",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// Every worker of every tenant, started at once; some die at a random moment within
/// `kill_within` seconds. Returns
/// (killed, refused because another held the tenant); any other ending fails the test.
fn wave(
    rng: &mut Rng,
    names: &[String],
    kill_within: f64,
    spawn: &dyn Fn(&str) -> Command,
) -> (usize, usize) {
    let (mut killed, mut refused) = (0, 0);
    let mut wave: Vec<(String, Child, Option<Duration>)> = Vec::new();
    for name in names {
        for _ in 0..WORKERS {
            let child = spawn(name)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let kill_at =
                (rng.unit() < 0.4).then(|| Duration::from_secs_f64(rng.unit() * kill_within));
            wave.push((name.clone(), child, kill_at));
        }
    }
    let start = Instant::now();
    let mut left: Vec<_> = wave.into_iter().map(Some).collect();
    while left.iter().any(Option::is_some) {
        for slot in left.iter_mut() {
            let (name, child, kill_at) = slot.as_mut().unwrap_or_else(|| unreachable!());
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                match status.code() {
                    Some(0) => {}
                    Some(1)
                        if err.contains("is being worked on by another dropsync")
                            || err.contains("another dropsync is working") =>
                    {
                        refused += 1
                    }
                    other => panic!("{name}: worker ended {other:?}: {err}"),
                }
                *slot = None;
            } else if kill_at.is_some_and(|at| start.elapsed() >= at) {
                child.kill().unwrap();
                child.wait().unwrap();
                killed += 1;
                *slot = None;
            }
        }
        left.retain(Option::is_some);
        std::thread::sleep(Duration::from_millis(5));
    }
    (killed, refused)
}

/// The scheduler's next attempt: one worker per tenant, which finishes what a killed one
/// left (or finds nothing to do), and must succeed.
fn converge(names: &[String], spawn: &dyn Fn(&str) -> Command) {
    for name in names {
        succeed(&mut spawn(name), &format!("{name}: "));
    }
}

#[test]
fn workers_started_at_once_and_killed_leave_each_tenant_as_one_worker_would() {
    let n = env_num("DROPSYNC_TENANTS_N", 20) as usize;
    let seed = env_num("DROPSYNC_KILL_SEED", 0x7e4a_9c31);
    let names: Vec<String> = (0..n).map(|i| format!("dealer-{i:02}")).collect();
    let drops_dir = tempfile::tempdir().unwrap();
    let drops: Vec<[PathBuf; 3]> = names
        .iter()
        .enumerate()
        .map(|(i, name)| snapshots(&drops_dir.path().join(name), 100 + i as u64))
        .collect();

    // What one uninterrupted worker per tenant leaves.
    let reference = Site::new(&names);
    for (name, snaps) in names.iter().zip(&drops) {
        for snap in snaps {
            reference.drop_into(name, snap);
            let o = output(&mut reference.cmd(name, &["run"]));
            assert!(
                matches!(o.status.code(), Some(0)),
                "{name}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }

    let db = TestDb::new("tenants_workers");
    let site = Site::with_lock(&names, Some(&db.env_var));
    let mut rng = Rng(seed);
    let (mut killed, mut refused) = (0, 0);
    for step in 0..3 {
        for (name, snaps) in names.iter().zip(&drops) {
            site.drop_into(name, &snaps[step]);
        }
        let (k, r) = wave(&mut rng, &names, 3.0, &|name| site.cmd(name, &["run"]));
        killed += k;
        refused += r;
        converge(&names, &|name| site.cmd(name, &["run"]));
    }
    eprintln!("{n} tenants x {WORKERS} workers x 3 snapshots: {killed} killed, {refused} refused while another worked");
    assert!(refused > 0, "no two workers of a tenant ever met");

    for name in &names {
        assert_eq!(
            state_of(&site.out(name)),
            state_of(&reference.out(name)),
            "{name}: workers and one worker disagree"
        );
        // One at a time: each run started after the one before it finished (a killed run has
        // no finish, and the lock was free only once its process was gone).
        let list = runs(&site.out(name));
        for pair in list.windows(2) {
            if let Some(finished) = &pair[0].2 {
                assert!(
                    pair[1].1 >= *finished,
                    "{name}: {} started at {} before {} finished at {finished}",
                    pair[1].0,
                    pair[1].1,
                    pair[0].0
                );
            }
        }
    }
}

/// Each command with `--tenant` works on that dealer's places and no one else's.
#[test]
fn every_command_takes_a_tenant() {
    let names = ["norte".to_string(), "sur".to_string()];
    let site = Site::new(&names);
    let drops = tempfile::tempdir().unwrap();
    let norte = snapshots(&drops.path().join("norte"), 1);
    let sur = snapshots(&drops.path().join("sur"), 2);
    site.drop_into("norte", &norte[0]);
    site.drop_into("sur", &sur[0]);

    // plan writes nothing; run writes the tenant's workspace only.
    succeed(&mut site.cmd("norte", &["plan", "--json"]), "");
    assert!(!site.out("norte").exists(), "plan created the workspace");
    let o = succeed(&mut site.cmd("norte", &["run", "--json"]), "");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(site.out("norte").join("crm.sqlite").is_file());
    assert!(!site.out("sur").exists(), "sur's workspace untouched");

    // runs and explain read the tenant's workspace.
    let o = output(&mut site.cmd("norte", &["runs", "--json"]));
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listed[0]["run_id"], report["run_id"]);
    let id = support::rows_in(
        &site.out("norte").join("crm.sqlite"),
        "SELECT id FROM clientes ORDER BY id LIMIT 1",
    )
    .remove(0);
    let o = succeed(
        &mut site.cmd("norte", &["explain", "clientes", &id, "--json"]),
        "",
    );
    let events: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(events[0]["run_id"], report["run_id"]);
    let o = output(&mut site.cmd("sur", &["runs"]));
    assert_eq!(o.status.code(), Some(2), "sur has no workspace yet");
    assert!(String::from_utf8_lossy(&o.stderr).contains("no dropsync workspace"));

    // A truncated export is held in norte; approve --tenant applies it there.
    let clientes = site.inbox("norte").join("clientes.csv");
    site.drop_into("norte", &norte[0]);
    support::keep_csv_records(&clientes, 5);
    let o = output(&mut site.cmd("norte", &["run", "--json"]));
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let held: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let run_id = held["run_id"].as_str().unwrap();
    succeed(&mut site.cmd("norte", &["approve", run_id]), "");
    let live = support::rows_in(
        &site.out("norte").join("crm.sqlite"),
        "SELECT count(*) FROM clientes WHERE _deleted = 0",
    );
    assert_eq!(live, ["5"]);

    // check reads the tenant's recipes and sources.
    succeed(&mut site.cmd("sur", &["check", "--json"]), "");

    // watch --once takes the drop from the tenant's inbox and archives it beside it.
    std::fs::write(
        site.dir.path().join("sur/sources.toml"),
        "[watch]\nsettle = \"200ms\"\nquiet = \"400ms\"\nrescan = \"200ms\"\n",
    )
    .unwrap();
    succeed(&mut site.cmd("sur", &["watch", "--once"]), "");
    assert!(site.out("sur").join("crm.sqlite").is_file());
    assert!(site.dir.path().join("sur/archive").is_dir());
    assert_eq!(
        std::fs::read_dir(site.inbox("sur")).unwrap().count(),
        0,
        "the drop left the inbox"
    );
}

#[test]
fn a_wrong_tenant_or_tenants_file_is_a_configuration_error() {
    let site = Site::new(&["norte".to_string()]);
    let o = output(&mut site.cmd("nrote", &["runs"]));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no tenant `nrote`") && err.contains("it lists norte"),
        "{err}"
    );

    std::fs::write(
        site.file(),
        "[defaults]\nrecipes = \"r\"\n[tenants.norte]\nout = \"x\"\n",
    )
    .unwrap();
    let o = output(&mut site.cmd("norte", &["run"]));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("tenants.toml:3:") && err.contains("has no `inbox`"),
        "{err}"
    );

    let o = output(
        bin()
            .args(["run", "--tenant", "norte", "--tenants"])
            .arg(site.dir.path().join("missing.toml")),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no tenants file at"));

    // The file is read only when a tenant is named: the single folder is unaffected.
    let o = output(bin().current_dir(site.dir.path()).args([
        "runs",
        "--out",
        "nowhere",
        "--tenants",
        "missing.toml",
    ]));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no dropsync workspace"));
}

/// A worker on another machine holds the tenant in PostgreSQL: a run here is refused, naming
/// it, and touches nothing; once that session ends (its worker died), the run goes.
#[test]
fn a_tenant_held_in_postgres_by_another_machine_is_refused() {
    let db = TestDb::new("tenants_cluster_lock");
    let names = ["norte".to_string()];
    let site = Site::with_lock(&names, Some(&db.env_var));
    let drops = tempfile::tempdir().unwrap();
    site.drop_into("norte", &snapshots(drops.path(), 3)[0]);

    let mut other = db.client();
    other
        .batch_execute("SET application_name = 'dropsync norte pid 4242 on node-b'")
        .unwrap();
    let url = std::env::var(&db.env_var).unwrap();
    let key = dropsync::state::cluster_lock::ClusterLock::new(url, "norte".into()).key();
    let got: bool = other
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .unwrap()
        .get(0);
    assert!(got);
    let o = output(&mut site.cmd("norte", &["run"]));
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("tenant norte is being worked on by another dropsync (dropsync norte pid 4242 on node-b since"),
        "{err}"
    );
    assert!(!site.out("norte").exists(), "a refused run touches nothing");

    drop(other);
    let start = Instant::now();
    let o = loop {
        let o = output(&mut site.cmd("norte", &["run"]));
        // The server drops the lock as it sees the session end.
        if o.status.code() == Some(0) || start.elapsed() > Duration::from_secs(5) {
            break o;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(site.out("norte").join("crm.sqlite").is_file());

    // The URL's variable unset: a configuration error naming it.
    let o = output(site.cmd("norte", &["run"]).env_remove(&db.env_var));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&db.env_var));
}

/// The tenant's lock lost mid-run (its PostgreSQL session ended, as on a server restart or a
/// network cut): the run stops before the journal, the point of no return, so nothing reaches
/// the CRM; the next run does the work.
#[test]
fn a_run_that_lost_its_cluster_lock_stops_before_the_crm() {
    use std::io::{BufRead, BufReader};
    let db = TestDb::new("tenants_lock_lost");
    let names = ["norte".to_string()];
    let site = Site::with_lock(&names, Some(&db.env_var));
    let drops = tempfile::tempdir().unwrap();
    site.drop_into("norte", &snapshots(drops.path(), 5)[0]);
    let mut child = site
        .cmd("norte", &["run"])
        .env("DROPSYNC_PAUSEPOINT", "before-journal-commit:5000")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "ended early: {seen}"
        );
        seen.push_str(&line);
        if line.contains("pausepoint before-journal-commit") {
            break;
        }
    }
    let ended: i64 = db
        .client()
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name LIKE 'dropsync norte pid %' \
             AND datname = current_database()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(ended, 1, "the run's lock session");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{seen}{rest}");
    assert!(
        rest.contains("tenant norte's lock in PostgreSQL was lost during the run"),
        "{rest}"
    );
    let out = site.out("norte");
    let state = dropsync::state::State::open(&out).unwrap();
    assert_eq!(
        state.snapshot_ids("clientes").unwrap(),
        None,
        "no snapshot advanced"
    );
    assert!(state.pending().unwrap().is_empty(), "no journal committed");
    let crm_rows = support::rows_in(
        &out.join("crm.sqlite"),
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'clientes'",
    );
    if crm_rows == ["1"] {
        let n = support::rows_in(&out.join("crm.sqlite"), "SELECT count(*) FROM clientes");
        assert_eq!(n, ["0"], "the CRM was written");
    }
    drop(state);

    let o = succeed(&mut site.cmd("norte", &["run", "--json"]), "");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let inserted = report["entities"]["clientes"]["inserted"].as_u64().unwrap();
    assert!(inserted > 0);
    let n = support::rows_in(&out.join("crm.sqlite"), "SELECT count(*) FROM clientes");
    assert_eq!(n, [inserted.to_string()]);
}

/// One dealer with `[state]`: the state database, its CRM, and a reference CRM for one
/// uninterrupted worker on a disk of its own, with recipes writing to each.
struct StateSite {
    state_db: TestDb,
    crm_db: TestDb,
    ref_db: TestDb,
    _recipes_dir: tempfile::TempDir,
    recipes: PathBuf,
    ref_recipes: PathBuf,
    /// The tenants file's `[state]` table.
    header: String,
}

/// One uninterrupted worker's site for `norte`, every snapshot run in turn.
fn reference_of(recipes: &Path, snaps: &[PathBuf]) -> Site {
    let reference = Site::with(&["norte".to_string()], "", recipes);
    for snap in snaps {
        reference.drop_into("norte", snap);
        succeed(&mut reference.cmd("norte", &["run"]), "");
    }
    reference
}

/// Runs `snap` for `norte` at `site`, aborted at failpoint `point` (as a kill would).
fn killed_at(site: &Site, snap: &Path, point: &str) {
    site.drop_into("norte", snap);
    let o = output(site.cmd("norte", &["run"]).env("DROPSYNC_FAILPOINT", point));
    assert_eq!(
        o.status.code(),
        None,
        "aborted at {point}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

impl StateSite {
    fn new(prefix: &str) -> StateSite {
        let state_db = TestDb::new(&format!("{prefix}_state"));
        let crm_db = TestDb::new(&format!("{prefix}_crm"));
        let ref_db = TestDb::new(&format!("{prefix}_ref"));
        let recipes_dir = tempfile::tempdir().unwrap();
        let recipes = support::recipes_with(
            &recipes_dir.path().join("shared"),
            &support::postgres_target(&crm_db.env_var),
        );
        let ref_recipes = support::recipes_with(
            &recipes_dir.path().join("reference"),
            &support::postgres_target(&ref_db.env_var),
        );
        let header = format!("[state]\npostgres_url_env = \"{}\"\n\n", state_db.env_var);
        StateSite {
            state_db,
            crm_db,
            ref_db,
            _recipes_dir: recipes_dir,
            recipes,
            ref_recipes,
            header,
        }
    }
}

/// With `[state]`, a worker on a fresh folder (nothing on its disk) continues a tenant that
/// another worker started: the first is killed right after its CRM upserts, a second on
/// another folder runs the next drop, a third on yet another folder the one after; the CRM
/// (PostgreSQL) equals that of one uninterrupted worker.
#[test]
fn a_worker_on_a_fresh_folder_continues_what_another_started() {
    let StateSite {
        state_db,
        crm_db,
        ref_db,
        recipes,
        ref_recipes,
        header,
        _recipes_dir: _recipes,
    } = StateSite::new("tenants_state");
    let names = ["norte".to_string()];
    let drops = tempfile::tempdir().unwrap();
    let snaps = snapshots(drops.path(), 9);

    let _reference = reference_of(&ref_recipes, &snaps);

    // Machine A: killed once its CRM upserts are in (after its journal was published).
    let a = Site::with(&names, &header, &recipes);
    killed_at(&a, &snaps[0], "after-upserts");

    // Machines B and C: fresh folders.
    for (i, snap) in snaps.iter().enumerate().skip(1) {
        let fresh = Site::with(&names, &header, &recipes);
        assert!(!fresh.out("norte").exists());
        fresh.drop_into("norte", snap);
        succeed(
            &mut fresh.cmd("norte", &["run", "--json"]),
            &format!("snapshot {i}: "),
        );
        assert!(fresh.out("norte").join("state/state.sqlite").is_file());
    }
    assert_eq!(support::pg_dump(&crm_db), support::pg_dump(&ref_db));
    // One more worker on an empty folder, the same export again: the fetched snapshots are
    // as their publisher left them (times included), so every entity's last pass stands.
    let again = Site::with(&names, &header, &recipes);
    again.drop_into("norte", &snaps[2]);
    let o = succeed(&mut again.cmd("norte", &["run", "--json"]), "");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["crm_rows_written"], 0);
    for (entity, e) in report["entities"].as_object().unwrap() {
        assert!(e["unchanged_since"].is_string(), "{entity} recomputed: {e}");
    }
    // The runs recorded: A's (completed by B), B's and C's.
    let published: i64 = state_db
        .client()
        .query_one(
            "SELECT generation FROM dropsync_state.heads WHERE tenant = 'norte'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(published >= 4, "generation {published}");
}

/// Stateless workers: with `[state]`, every worker starts on a fresh folder of its own (as a
/// pod on any node would), the state and the CRM in PostgreSQL. Workers started at once for
/// every tenant and killed at random moments, over three snapshots, leave each tenant's CRM
/// and staging schema as one uninterrupted worker does. Tenants:
/// `DROPSYNC_STATE_TENANTS_N` (default 20).
#[test]
fn stateless_workers_killed_at_random_leave_each_tenant_as_one_worker_would() {
    let n = env_num("DROPSYNC_STATE_TENANTS_N", 20) as usize;
    let seed = env_num("DROPSYNC_KILL_SEED", 0x7e4a_9c31) ^ 0x5eed;
    let names: Vec<String> = (0..n).map(|i| format!("dealer-{i:02}")).collect();
    let state_db = TestDb::new("tenants_stateless");
    let dir = tempfile::tempdir().unwrap();
    // Each tenant its own CRM database, and one for its reference.
    let mut dbs = Vec::new();
    let (mut recipes, mut ref_recipes) = (Vec::new(), Vec::new());
    for name in &names {
        let db = TestDb::new(&format!("stateless_{}", name.replace('-', "_")));
        let reference = TestDb::new(&format!("stateless_ref_{}", name.replace('-', "_")));
        recipes.push(support::recipes_with(
            &dir.path().join(name),
            &support::postgres_target(&db.env_var),
        ));
        ref_recipes.push(support::recipes_with(
            &dir.path().join(format!("ref-{name}")),
            &support::postgres_target(&reference.env_var),
        ));
        dbs.push((db, reference));
    }
    let drops: Vec<[PathBuf; 3]> = names
        .iter()
        .enumerate()
        .map(|(i, name)| snapshots(&dir.path().join(format!("drops-{name}")), 300 + i as u64))
        .collect();
    let tenants_file = |header: &str, recipes: &[PathBuf]| {
        let mut toml =
            format!("{header}[defaults]\ninbox = \"{{tenant}}/inbox\"\nout = \"{{tenant}}/out\"\n");
        for (name, r) in names.iter().zip(recipes) {
            toml.push_str(&format!(
                "[tenants.{name}]\nrecipes = \"{}\"\n",
                r.display()
            ));
        }
        toml
    };

    let reference = Site::with(&names, "", &repo().join("recipes"));
    std::fs::write(reference.file(), tenants_file("", &ref_recipes)).unwrap();
    for (name, snaps) in names.iter().zip(&drops) {
        for snap in snaps {
            reference.drop_into(name, snap);
            succeed(&mut reference.cmd(name, &["run"]), &format!("{name}: "));
        }
    }

    let header = format!("[state]\npostgres_url_env = \"{}\"\n\n", state_db.env_var);
    let shared_file = tenants_file(&header, &recipes);
    // A fresh folder for every worker, kept until the test ends.
    let folders = std::cell::RefCell::new(Vec::new());
    let worker = |name: &str, snap: &Path| -> Command {
        let site = Site::with(&names, "", &repo().join("recipes"));
        std::fs::write(site.file(), &shared_file).unwrap();
        site.drop_into(name, snap);
        let cmd = site.cmd(name, &["run"]);
        folders.borrow_mut().push(site);
        cmd
    };
    let mut rng = Rng(seed);
    let (mut killed, mut refused) = (0, 0);
    for step in [0, 1, 2] {
        let snap_of = |name: &str| -> PathBuf {
            let i = names.iter().position(|n| n == name).unwrap();
            drops[i][step].clone()
        };
        let (k, r) = wave(&mut rng, &names, 1.5, &|name| worker(name, &snap_of(name)));
        killed += k;
        refused += r;
        converge(&names, &|name| worker(name, &snap_of(name)));
    }
    eprintln!("{n} stateless tenants x {WORKERS} workers x 3 snapshots: {killed} killed, {refused} refused");
    assert!(refused > 0, "no two workers of a tenant ever met");
    for name in &names {
        // Any worker reads the tenant's runs: a fresh folder fetches them first.
        let site = Site::with(&names, "", &repo().join("recipes"));
        std::fs::write(site.file(), &shared_file).unwrap();
        let o = succeed(
            &mut site.cmd(name, &["runs", "--json", "--limit", "1000"]),
            "",
        );
        let mut runs: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
        runs.sort_by(|a, b| a["started_at"].as_str().cmp(&b["started_at"].as_str()));
        // At least the three that finished each snapshot (a run killed before its journal
        // was published left no trace there, as if it had not run).
        assert!(runs.len() >= 3, "{name}: {} runs", runs.len());
        for pair in runs.windows(2) {
            if let Some(finished) = pair[0]["finished_at"].as_str() {
                let next = pair[1]["started_at"].as_str().unwrap();
                assert!(next >= finished, "{name}: runs overlap: {pair:?}");
            }
        }
    }
    for (name, (db, reference)) in names.iter().zip(&dbs) {
        assert_eq!(
            support::pg_dump(db),
            support::pg_dump(reference),
            "{name}: stateless workers and one worker disagree"
        );
    }
}

/// `run --pull` on stateless workers (`[state]`, every worker on a fresh folder): what one
/// took from the tenant's SFTP server is remembered in the published state, so the next
/// worker finds nothing new although the files stay on the server (`after = "keep"`), and a
/// worker pulling only the one export that changed continues the tenant: its CRM equals that
/// of a worker given the whole drop on a disk of its own.
#[test]
fn stateless_pulls_take_each_file_once_and_continue_on_a_fresh_folder() {
    let sshd = dropsync_testkit::sshd::Sshd::start();
    let StateSite {
        state_db: _state_db,
        crm_db,
        ref_db,
        recipes,
        ref_recipes,
        header,
        _recipes_dir: _recipes,
    } = StateSite::new("tenants_pull");
    let names = ["norte".to_string()];
    let drops = tempfile::tempdir().unwrap();
    let snaps = snapshots(drops.path(), 13);
    let server = tempfile::tempdir().unwrap();
    copy_dir(&snaps[0], server.path());
    let worker = || {
        let site = Site::with(&names, &header, &recipes);
        std::fs::write(
            site.dir.path().join("norte/sources.toml"),
            format!(
                "[watch]\nsettle = \"300ms\"\n\n[[sftp]]\nname = \"norte\"\nhost = \"127.0.0.1\"\n\
                 port = {}\nuser = \"root\"\nremote_dir = {:?}\nkey_file_env = {:?}\n\
                 known_hosts = {:?}\nafter = \"keep\"\n",
                sshd.port,
                server.path(),
                sshd.key_env,
                sshd.known_hosts()
            ),
        )
        .unwrap();
        site
    };
    let pull = |site: &Site| {
        let o = succeed(&mut site.cmd("norte", &["run", "--pull", "--json"]), "");
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };

    let a = worker();
    assert_eq!(pull(&a)["status"], "ok");
    let b = worker();
    assert_eq!(pull(&b)["status"], "nothing_new");
    assert!(!b.inbox("norte").join("clientes.csv").exists());

    // The dealer's system exports new sales only.
    let ventas = snaps[1].join("ventas.csv");
    assert_ne!(
        std::fs::metadata(&ventas).unwrap().len(),
        std::fs::metadata(server.path().join("ventas.csv"))
            .unwrap()
            .len()
    );
    std::fs::copy(&ventas, server.path().join("ventas.csv")).unwrap();
    let c = worker();
    let report = pull(&c);
    assert_eq!(report["status"], "ok", "{report}");
    let taken: Vec<_> = std::fs::read_dir(c.inbox("norte"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(taken, ["ventas.csv"]);

    let reference = Site::with(&names, "", &ref_recipes);
    reference.drop_into("norte", &snaps[0]);
    succeed(&mut reference.cmd("norte", &["run"]), "");
    std::fs::copy(&ventas, reference.inbox("norte").join("ventas.csv")).unwrap();
    succeed(&mut reference.cmd("norte", &["run"]), "");
    assert_eq!(support::pg_dump(&crm_db), support::pg_dump(&ref_db));
}

/// With `[state]` the change log lives in PostgreSQL: a worker killed right after its first
/// publication (its rows in PostgreSQL, still in its folder too), then workers continuing on
/// a fresh folder and on the killed one's, leave a log with every change exactly once: as
/// many rows as one disk's log, and `explain` on yet another empty folder tells each row's
/// history as the single-disk workspace does.
#[test]
fn the_published_change_log_explains_rows_as_one_disk_does() {
    let StateSite {
        state_db,
        crm_db,
        ref_db,
        recipes,
        ref_recipes,
        header,
        _recipes_dir: _recipes,
    } = StateSite::new("tenants_log");
    let names = ["norte".to_string()];
    let drops = tempfile::tempdir().unwrap();
    let snaps = snapshots(drops.path(), 21);

    let reference = reference_of(&ref_recipes, &snaps);

    let a = Site::with(&names, &header, &recipes);
    killed_at(&a, &snaps[0], "state-published");
    let b = Site::with(&names, &header, &recipes);
    b.drop_into("norte", &snaps[1]);
    succeed(&mut b.cmd("norte", &["run"]), "");
    a.drop_into("norte", &snaps[2]);
    succeed(&mut a.cmd("norte", &["run"]), "");
    assert_eq!(support::pg_dump(&crm_db), support::pg_dump(&ref_db));

    let logged: i64 = state_db
        .client()
        .query_one(
            "SELECT count(*) FROM dropsync_state.changes WHERE tenant = 'norte'",
            &[],
        )
        .unwrap()
        .get(0);
    let one_disk = support::rows_in(
        &reference.out("norte").join("state/state.sqlite"),
        "SELECT count(*) FROM changes",
    );
    assert_eq!(logged.to_string(), one_disk[0]);

    // Each row's story, without the run ids and times (the two sides ran at other moments).
    let story = |site: &Site, id: &str| {
        let o = succeed(
            &mut site.cmd("norte", &["explain", "clientes", id, "--json"]),
            "",
        );
        let events: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
        events
            .iter()
            .map(|e| format!("{} {} {} {}", e["what"], e["detail"], e["file"], e["line"]))
            .collect::<Vec<_>>()
    };
    let d = Site::with(&names, &header, &recipes);
    let ids = support::rows_in(
        &reference.out("norte").join("state/state.sqlite"),
        "SELECT DISTINCT id FROM changes WHERE entity = 'clientes' ORDER BY id LIMIT 40",
    );
    let mut told = 0;
    for id in &ids {
        let want = story(&reference, id);
        assert_eq!(story(&d, id), want, "client {id}");
        told += want.len();
    }
    assert!(
        told > ids.len(),
        "some rows have more than one event: {told}"
    );

    // `plan` on an empty folder compares with the published state: the last export again
    // changes nothing (without the fetch it would insert every row).
    let e = Site::with(&names, &header, &recipes);
    e.drop_into("norte", &snaps[2]);
    let o = succeed(&mut e.cmd("norte", &["plan", "--json"]), "");
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for (entity, s) in plan["entities"].as_object().unwrap() {
        assert_eq!(
            (&s["inserted"], &s["updated"]),
            (&serde_json::json!(0), &serde_json::json!(0)),
            "{entity}: {s}"
        );
    }
}

/// `outputs = "s3://…"`: each run stores the workbook, its report and the exports it
/// quarantined in the bucket (moto's S3 server, `dropsync_testkit::s3`), under the tenant's
/// prefix; a store that is down fails the run with exit 1 after the CRM committed, and the
/// next run stores the workbook again.
#[test]
fn runs_store_their_files_in_the_tenants_bucket() {
    let mut s3 = dropsync_testkit::s3::S3::start("dealers");
    let names = ["norte".to_string(), "sur".to_string()];
    let site = Site::with_defaults(
        &names,
        "",
        &repo().join("recipes"),
        "outputs = \"s3://dealers/exports/{tenant}\"\n",
    );
    let drops = tempfile::tempdir().unwrap();
    let snaps = snapshots(drops.path(), 31);
    site.drop_into("norte", &snaps[0]);
    // An export the reader cannot take: quarantined, and stored for the dealer to see.
    std::fs::write(site.inbox("norte").join("ventas.csv"), "foo;bar\n1;2\n").unwrap();
    let run = |s3: &dropsync_testkit::s3::S3| {
        let mut c = site.cmd("norte", &["run", "--json"]);
        c.envs(s3.env());
        output(&mut c)
    };
    let o = run(&s3);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let run_id = report["run_id"].as_str().unwrap();
    assert_eq!(report["entities"]["ventas"]["status"], "quarantined");
    assert_eq!(
        s3.keys("exports/"),
        [
            format!("exports/norte/quarantine/{run_id}/ventas.csv"),
            format!("exports/norte/quarantine/{run_id}/ventas.csv.reason.txt"),
            format!("exports/norte/runs/{run_id}/report.json"),
            "exports/norte/staging.xlsx".to_string(),
        ]
    );
    assert_eq!(
        s3.get("exports/norte/staging.xlsx").unwrap(),
        std::fs::read(site.out("norte").join("staging.xlsx")).unwrap()
    );
    let stored: serde_json::Value = serde_json::from_slice(
        &s3.get(&format!("exports/norte/runs/{run_id}/report.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stored["run_id"], run_id);
    assert_eq!(
        s3.get(&format!("exports/norte/quarantine/{run_id}/ventas.csv"))
            .unwrap(),
        b"foo;bar\n1;2\n"
    );

    // The store is down: the run commits, then says its files were not stored (exit 1).
    s3.stop();
    site.drop_into("norte", &snaps[1]);
    let o = run(&s3);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("could not be stored"), "{err}");
    let runs = runs(&site.out("norte"));
    assert_eq!(runs.last().unwrap().3, "ok", "{runs:?}");

    // Back up (a new server, empty): the next run stores the workbook again.
    let s3 = dropsync_testkit::s3::S3::start("dealers");
    let o = run(&s3);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        s3.get("exports/norte/staging.xlsx").unwrap(),
        std::fs::read(site.out("norte").join("staging.xlsx")).unwrap()
    );
}
