//! The exactly-once promise under SIGKILL, whatever drop comes next.
//!
//! A seeded sequence of generated drops (a first load, a day of changes, a drop that returns
//! to the first state, a truncated clientes export the guard holds, its approval, then the
//! full export again) is run step by step, each step's process killed with SIGKILL after a
//! random delay, and the *next* step run whatever happened. A killed run either committed its
//! journal (the next command completes it: it took effect) or did not (it never touched the
//! CRM: as if it had not run), so the harness reads which runs took effect and replays
//! exactly those steps, uninterrupted, in a fresh workspace. The final CRM (every column but
//! the run-id bookkeeping), the staging tables and the snapshots must be equal.
//!
//! Runs on the three targets: the embedded SQLite CRM, a real PostgreSQL (started by the
//! test) and a REST CRM (a local HTTP server speaking the bulk API). Seed:
//! `DROPSYNC_KILL_SEED` (default fixed); trials per target: `DROPSYNC_KILL_TRIALS`; on a
//! mismatch, `DROPSYNC_KILL_DUMP=DIR` writes both states to `DIR/got.txt` and `DIR/want.txt`.

mod support;

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dropsync_testkit::crm::FakeCrm;
use dropsync_testkit::postgres::TestDb;
use support::{env_num, repo, sqlite_dump, Rng, Workdir, ENTITIES, WORKSPACE};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Step {
    /// Run the drop with this index.
    Run(usize),
    /// Approve the latest run of the drop with this index.
    Approve(usize),
}

/// Drop 0: first load; 1: the next day (changes, additions, deletions); 2: back to drop 0
/// (the deleted rows return); 3: drop 1 with clientes cut to half (held); then the approval
/// of that run; then drop 3 again (nothing left to do if the approval took effect, held
/// again if not: so the approval's effect shows in the final CRM).
const STEPS: [Step; 6] = [
    Step::Run(0),
    Step::Run(1),
    Step::Run(2),
    Step::Run(3),
    Step::Approve(3),
    Step::Run(3),
];

/// The drops, generated once per test binary.
fn drops() -> &'static Vec<PathBuf> {
    static DROPS: OnceLock<(tempfile::TempDir, Vec<PathBuf>)> = OnceLock::new();
    &DROPS
        .get_or_init(|| {
            let tmp = tempfile::tempdir().unwrap();
            let d = |i: usize| tmp.path().join(format!("d{i}"));
            let st = Command::new(env!("CARGO_BIN_EXE_dropsync"))
                .args(["gen", "--clients", "120", "--seed", "11", "--out"])
                .arg(d(0))
                .arg("--next")
                .arg(d(1))
                .args(["--changed", "0.15", "--added", "0.05", "--deleted", "0.05"])
                .status()
                .unwrap();
            assert!(st.success());
            copy_dir(&d(0), &d(2));
            copy_dir(&d(1), &d(3));
            let clientes = d(3).join("clientes.csv");
            let records = csv::ReaderBuilder::new()
                .delimiter(b';')
                .from_path(&clientes)
                .unwrap()
                .byte_records()
                .count();
            support::keep_csv_records(&clientes, records / 2);
            let paths = (0..4).map(d).collect();
            (tmp, paths)
        })
        .1
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() != "manifest.json" {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// The inbox of a workspace filled with drop `i`.
fn load_drop(w: &Workdir, i: usize) {
    let _ = std::fs::remove_dir_all(w.inbox());
    copy_dir(&drops()[i], &w.inbox());
}

/// One CRM target: how to point a workspace's recipes at it, and how to read it back.
trait Target {
    fn name(&self) -> &'static str;
    /// A new, empty CRM; the text to append to pipeline.toml for it.
    fn fresh(&mut self, tag: &str) -> String;
    /// The CRM's contents (bookkeeping run-id columns left out), in a stable order.
    fn dump(&self, tag: &str, w: &Workdir) -> String;
}

struct Sqlite;

impl Target for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }
    fn fresh(&mut self, _tag: &str) -> String {
        String::new()
    }
    fn dump(&self, _tag: &str, w: &Workdir) -> String {
        sqlite_dump(
            &w.out().join("crm.sqlite"),
            &["_created_run", "_updated_run", "_deleted_run"],
        )
    }
}

struct Postgres {
    dbs: HashMap<String, TestDb>,
    n: usize,
}

impl Target for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }
    fn fresh(&mut self, tag: &str) -> String {
        self.n += 1;
        let db = TestDb::new(&format!("kill_{}_{}", std::process::id(), self.n));
        let cfg = format!(
            "\n[target]\nkind = \"postgres\"\n[target.postgres]\nurl_env = \"{}\"\nschema = \"crm\"\nstaging_schema = \"staging\"\n",
            db.env_var
        );
        self.dbs.insert(tag.to_string(), db);
        cfg
    }
    fn dump(&self, tag: &str, _w: &Workdir) -> String {
        support::pg_dump(&self.dbs[tag])
    }
}

struct Rest {
    crms: HashMap<String, FakeCrm>,
    n: usize,
}

impl Target for Rest {
    fn name(&self) -> &'static str {
        "rest"
    }
    fn fresh(&mut self, tag: &str) -> String {
        self.n += 1;
        let crm = FakeCrm::start("kill-token");
        let var = "DROPSYNC_KILL_CRM_TOKEN";
        std::env::set_var(var, "kill-token");
        let cfg = format!(
            "\n[target]\nkind = \"rest\"\n[target.rest]\nbase_url = \"{}\"\ntoken_env = \"{var}\"\nmax_requests_per_second = 10000.0\n",
            crm.base_url
        );
        self.crms.insert(tag.to_string(), crm);
        cfg
    }
    fn dump(&self, tag: &str, _w: &Workdir) -> String {
        self.crms[tag].dump()
    }
}

/// A workspace on a fresh CRM of `target`.
fn workspace(target: &mut dyn Target, tag: &str) -> Workdir {
    let w = Workdir::new();
    let cfg = target.fresh(tag);
    let p = w.recipes().join("pipeline.toml");
    let mut text = std::fs::read_to_string(&p).unwrap();
    // Snapshot deltas up to 30% of an entity: the drops' quarter of changed rows goes into
    // deltas (also the approval's tombstones), the half-cut clientes into a new base, so
    // the kills land on both paths (`trials` checks that both were taken).
    text.push_str("\n[snapshots]\nmax_delta_share = 0.3\n");
    text.push_str(&cfg);
    std::fs::write(p, text).unwrap();
    w
}

/// The command of a step; `by_drop` holds the latest run of each drop (for approvals).
fn command(w: &Workdir, step: Step, by_drop: &HashMap<usize, String>) -> Option<Command> {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dropsync"));
    c.current_dir(w.path())
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match step {
        Step::Run(i) => {
            load_drop(w, i);
            c.args(["run", "--inbox", "in", "--json", "--quiet"]);
        }
        Step::Approve(k) => {
            c.args(["approve", by_drop.get(&k)?]);
        }
    }
    c.args(WORKSPACE);
    Some(c)
}

fn run_ids(w: &Workdir) -> Vec<(String, String)> {
    // A run killed while creating the state database may leave it without tables.
    if !w.out().join("state/state.sqlite").exists()
        || w.q::<i64>(
            "state/state.sqlite",
            "SELECT count(*) FROM sqlite_master WHERE name = 'runs'",
        ) == 0
    {
        return Vec::new();
    }
    w.rows(
        "state/state.sqlite",
        "SELECT run_id, status FROM runs ORDER BY started_at, run_id",
    )
    .into_iter()
    .map(|r| {
        let (id, status) = r.split_once('|').unwrap();
        (id.to_string(), status.to_string())
    })
    .collect()
}

/// Runs `steps` without interruption; the seconds each took.
fn replay(w: &Workdir, steps: &[Step]) -> Vec<f64> {
    let mut by_drop: HashMap<usize, String> = HashMap::new();
    let mut secs = Vec::new();
    for &step in steps {
        let before = run_ids(w).len();
        let t = Instant::now();
        if let Some(mut c) = command(w, step, &by_drop) {
            let st = c.status().unwrap();
            assert!(
                matches!(st.code(), Some(0 | 3)),
                "{step:?} exited {st:?} in an uninterrupted replay"
            );
        }
        secs.push(t.elapsed().as_secs_f64());
        if let (Some((id, _)), Step::Run(i)) = (run_ids(w).get(before), step) {
            by_drop.insert(i, id.clone());
        }
    }
    secs
}

/// Everything that must match between a killed sequence and its uninterrupted replay.
fn state_of(target: &dyn Target, tag: &str, w: &Workdir) -> String {
    let mut out = vec![target.dump(tag, w)];
    out.push(sqlite_dump(&w.out().join("staging.sqlite"), &[]));
    let state = dropsync::state::State::open(&w.out()).unwrap();
    for e in ENTITIES {
        match state.load_snapshot(e).unwrap() {
            Some(df) => {
                // Every cell as text, row by row (a frame's Display elides rows).
                out.push(format!("== snapshot {e} {:?}", df.get_column_names()));
                for i in 0..df.height() {
                    let row: Vec<String> = df
                        .columns()
                        .iter()
                        .map(|c| format!("{}", c.get(i).unwrap()))
                        .collect();
                    out.push(row.join("|"));
                }
            }
            None => out.push(format!("== snapshot {e}: none")),
        }
    }
    out.join("\n")
}

/// Kills every step but the last at a random moment, then checks the result against the
/// replay of the steps that took effect. Returns the kills that landed.
fn trials(target: &mut dyn Target, trials: u64, seed: u64) -> usize {
    let mut rng = Rng(seed | 1);
    // The uninterrupted sequence: the reference when every step takes effect, and the
    // durations the kill delays are drawn from.
    let full = workspace(target, "ref-full");
    let durations = replay(&full, &STEPS);
    let snapshot_files: Vec<String> = std::fs::read_dir(full.out().join("state/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        snapshot_files.iter().any(|f| f.ends_with(".delta.parquet"))
            && snapshot_files.iter().any(|f| f.contains(".g1.")),
        "the sequence takes both snapshot paths: {snapshot_files:?}"
    );
    let mut refs: HashMap<Vec<Step>, String> = HashMap::new();
    refs.insert(STEPS.to_vec(), state_of(target, "ref-full", &full));
    drop(full);
    let mut landed = 0;
    for trial in 0..trials {
        let tag = format!("trial-{trial}");
        let w = workspace(target, &tag);
        let mut ids: HashMap<usize, String> = HashMap::new();
        let mut by_drop: HashMap<usize, String> = HashMap::new();
        let mut killed_steps = Vec::new();
        for (k, &step) in STEPS.iter().enumerate() {
            let before = run_ids(&w).len();
            let last = k == STEPS.len() - 1;
            if let Step::Approve(of) = step {
                if let Some(id) = by_drop.get(&of) {
                    ids.insert(k, id.clone());
                }
            }
            if let Some(mut c) = command(&w, step, &by_drop) {
                let mut child = c.spawn().unwrap();
                if last {
                    let st = child.wait().unwrap();
                    assert!(matches!(st.code(), Some(0 | 3)), "last step exited {st:?}");
                } else {
                    let delay = rng.unit() * durations[k] * 1.1;
                    let until = Instant::now() + Duration::from_secs_f64(delay);
                    loop {
                        if child.try_wait().unwrap().is_some() {
                            break;
                        }
                        if Instant::now() >= until {
                            child.kill().unwrap();
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    let st = child.wait().unwrap();
                    if st.signal() == Some(9) {
                        landed += 1;
                        killed_steps.push(k);
                    } else {
                        // An approval of a run that never took effect finds nothing
                        // held: a usage error (2), and no effect.
                        let ok = match step {
                            Step::Run(_) => matches!(st.code(), Some(0 | 3)),
                            Step::Approve(_) => matches!(st.code(), Some(0 | 2)),
                        };
                        assert!(
                            ok,
                            "{} trial {trial} step {step:?}: exited {st:?} without a kill",
                            target.name()
                        );
                    }
                }
            }
            if let (Some((id, _)), Step::Run(i)) = (run_ids(&w).get(before), step) {
                ids.insert(k, id.clone());
                by_drop.insert(i, id.clone());
            }
        }
        // Which steps took effect: a run whose row ended ok/held/approved, an approval whose
        // run ended approved. A run killed before it registered left no row.
        let status: HashMap<String, String> = run_ids(&w).into_iter().collect();
        let effective: Vec<Step> = STEPS
            .iter()
            .enumerate()
            .filter(|(k, step)| match step {
                Step::Run(_) => ids
                    .get(k)
                    .is_some_and(|id| ["ok", "held", "approved"].contains(&status[id].as_str())),
                Step::Approve(_) => ids.get(k).is_some_and(|id| status[id] == "approved"),
            })
            .map(|(_, s)| *s)
            .collect();
        assert!(
            status.values().all(|s| s != "running" && s != "failed"),
            "{} trial {trial}: {status:?}",
            target.name()
        );
        let got = state_of(target, &tag, &w);
        let want = refs.entry(effective.clone()).or_insert_with(|| {
            let rtag = format!("ref-{trial}");
            let r = workspace(target, &rtag);
            replay(&r, &effective);
            state_of(target, &rtag, &r)
        });
        if got != *want {
            let (g, v): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
            let at = g.iter().zip(&v).take_while(|(a, b)| a == b).count();
            let diff = format!(
                "first difference at line {at} of {} (got) / {} (want):\ngot  {:?}\nwant {:?}",
                g.len(),
                v.len(),
                &g[at.min(g.len())..(at + 3).min(g.len())],
                &v[at.min(v.len())..(at + 3).min(v.len())],
            );
            if let Ok(dir) = std::env::var("DROPSYNC_KILL_DUMP") {
                std::fs::write(format!("{dir}/got.txt"), &got).unwrap();
                std::fs::write(format!("{dir}/want.txt"), &*want).unwrap();
            }
            panic!(
                "{} trial {trial} (seed {seed}): killed at steps {killed_steps:?}, effective {effective:?}: the result differs from the uninterrupted replay:\n{}",
                target.name(),
                diff
            );
        }
        eprintln!(
            "{} trial {trial}: killed at steps {killed_steps:?}, effective {effective:?}: same as uninterrupted",
            target.name()
        );
    }
    eprintln!(
        "{}: {landed} kills landed, every result exact",
        target.name()
    );
    landed
}

fn seed() -> u64 {
    env_num("DROPSYNC_KILL_SEED", 20261201)
}

#[test]
fn sqlite_crm_is_exact_after_kills_at_random_moments() {
    let n = env_num("DROPSYNC_KILL_TRIALS", 7);
    let landed = trials(&mut Sqlite, n, seed());
    assert!(landed >= 1, "no kill landed: the delays are off");
}

#[test]
fn postgres_crm_is_exact_after_kills_at_random_moments() {
    let n = env_num("DROPSYNC_KILL_TRIALS", 3);
    let mut pg = Postgres {
        dbs: HashMap::new(),
        n: 0,
    };
    let landed = trials(&mut pg, n, seed() ^ 0x9e37);
    assert!(landed >= 1, "no kill landed: the delays are off");
}

#[test]
fn rest_crm_is_exact_after_kills_at_random_moments() {
    let n = env_num("DROPSYNC_KILL_TRIALS", 3);
    let mut rest = Rest {
        crms: HashMap::new(),
        n: 0,
    };
    let landed = trials(&mut rest, n, seed() ^ 0x51ed);
    assert!(landed >= 1, "no kill landed: the delays are off");
}

#[test]
fn the_drops_are_what_the_harness_says() {
    // Drop 3 is drop 1 with half of its clients: the guard must hold it.
    let count = |i: usize| {
        csv::ReaderBuilder::new()
            .delimiter(b';')
            .from_path(drops()[i].join("clientes.csv"))
            .unwrap()
            .byte_records()
            .count()
    };
    assert!(count(3) * 2 <= count(1) + 1 && count(3) > 0);
    assert_eq!(
        std::fs::read(drops()[0].join("clientes.csv")).unwrap(),
        std::fs::read(drops()[2].join("clientes.csv")).unwrap()
    );
    assert!(repo().join("recipes/clientes.toml").exists());
}
