//! A throwaway PostgreSQL for the tests of dropsync's PostgreSQL target: `initdb` into a temp
//! dir, `pg_ctl start` on a free port of 127.0.0.1, stopped when the last test using it drops
//! its handle ([`TestDb`] holds it). One server is shared by the tests that run together
//! (starting one costs about a second) and each test gets its own database, so tests stay
//! independent and can run in parallel.
//!
//! `initdb` refuses to run as root, so under root the temp dir is handed to the `postgres`
//! user and the server commands go through `su postgres -c`. A watchdog shell stops the
//! server and removes the dir if the test process dies without running destructors.

use crate::free_port;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};

/// The server currently shared by running tests; `Weak` so it stops with the last user.
static SHARED: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());

/// Environment variable overriding where `initdb` and `pg_ctl` are looked up.
const BIN_ENV: &str = "DROPSYNC_TEST_PG_BIN";

pub struct PgServer {
    port: u16,
    data: PathBuf,
    bin: PathBuf,
    as_root: bool,
    watchdog: Option<Child>,
    // Dropped last: removes the cluster files after the server stopped.
    _dir: tempfile::TempDir,
}

impl PgServer {
    /// The running shared server, started if no test holds it.
    pub fn shared() -> Arc<PgServer> {
        let mut slot = SHARED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(server) = slot.upgrade() {
            return server;
        }
        let server = Arc::new(PgServer::start());
        *slot = Arc::downgrade(&server);
        server
    }

    fn start() -> PgServer {
        let bin = find_bin();
        let as_root = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let dir = tempfile::Builder::new()
            .prefix("dropsync-pg-")
            .tempdir()
            .expect("create a temp dir for the test PostgreSQL cluster");
        if as_root {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .expect("run chown");
            assert!(
                status.success(),
                "chown postgres {} failed: the `postgres` user must exist (it comes with the \
                 `postgresql` package)",
                dir.path().display()
            );
        }
        let data = dir.path().join("data");
        let mut server = PgServer {
            port: 0,
            data,
            bin,
            as_root,
            watchdog: None,
            _dir: dir,
        };
        let initdb = format!(
            "{} -D {} -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync",
            sh_quote(&server.bin.join("initdb")),
            sh_quote(&server.data)
        );
        server
            .run(&initdb)
            .unwrap_or_else(|e| panic!("initdb failed: {e}"));
        // The port is free when probed but may be taken before the server binds it: retry.
        let mut last_error = String::new();
        for _ in 0..3 {
            server.port = free_port();
            let log = server._dir.path().join("server.log");
            let start = format!(
                "{} -D {} -l {} -o {} -w -t 30 start",
                sh_quote(&server.bin.join("pg_ctl")),
                sh_quote(&server.data),
                sh_quote(&log),
                sh_quote(Path::new(&format!(
                    "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
                     -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                    server.port,
                    server._dir.path().display()
                )))
            );
            match server.run(&start) {
                Ok(()) => {
                    server.watchdog = Some(server.spawn_watchdog());
                    return server;
                }
                Err(e) => {
                    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
                    last_error = format!("{e}\nserver log:\n{log_text}");
                }
            }
        }
        panic!("could not start the test PostgreSQL: {last_error}");
    }

    /// `postgres://postgres@127.0.0.1:PORT/DATABASE` (trust authentication, no password).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs a shell command as the `postgres` user (directly when not root).
    fn run(&self, command: &str) -> Result<(), String> {
        let output = self
            .shell(command)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run `{command}`: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`{command}` exited with {}\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    fn shell(&self, command: &str) -> Command {
        if self.as_root {
            let mut cmd = Command::new("su");
            cmd.args(["postgres", "-s", "/bin/sh", "-c", command]);
            cmd
        } else {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", command]);
            cmd
        }
    }

    fn stop_command(&self) -> String {
        format!(
            "{} -D {} -m fast -w stop",
            sh_quote(&self.bin.join("pg_ctl")),
            sh_quote(&self.data)
        )
    }

    /// A shell that waits for this process to end and then stops the server and removes
    /// the cluster: the safety net for a test binary killed before `Drop` runs.
    fn spawn_watchdog(&self) -> Child {
        let stop = if self.as_root {
            format!(
                "su postgres -s /bin/sh -c {}",
                sh_quote(Path::new(&self.stop_command()))
            )
        } else {
            self.stop_command()
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            dir = sh_quote(self._dir.path())
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the test PostgreSQL watchdog")
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if let Err(e) = self.run(&self.stop_command()) {
            eprintln!("stopping the test PostgreSQL failed: {e}");
        }
    }
}

/// A database of its own for one test on the shared server, with its URL exported in an
/// environment variable unique to the test (what `PgTarget::connect` reads).
pub struct TestDb {
    pub env_var: String,
    url: String,
    _server: Arc<PgServer>,
}

impl TestDb {
    pub fn new(name: &str) -> TestDb {
        let server = PgServer::shared();
        let mut admin = postgres::Client::connect(&server.url("postgres"), postgres::NoTls)
            .expect("connect to the test PostgreSQL");
        // Two statements: a multi-statement string would run as one transaction block,
        // which CREATE/DROP DATABASE refuse.
        for sql in [
            format!("DROP DATABASE IF EXISTS \"{name}\""),
            format!("CREATE DATABASE \"{name}\""),
        ] {
            admin.batch_execute(&sql).expect("create the test database");
        }
        let env_var = format!("DROPSYNC_TEST_PG_URL_{}", name.to_ascii_uppercase());
        let url = server.url(name);
        std::env::set_var(&env_var, &url);
        TestDb {
            env_var,
            url,
            _server: server,
        }
    }

    /// A separate client to inspect what the target wrote.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect to the test database")
    }
}

/// `initdb`/`pg_ctl` from `DROPSYNC_TEST_PG_BIN`, else the newest /usr/lib/postgresql/*/bin.
fn find_bin() -> PathBuf {
    let usable = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os(BIN_ENV) {
        let dir = PathBuf::from(dir);
        assert!(
            usable(&dir),
            "{BIN_ENV}={} has no initdb/pg_ctl",
            dir.display()
        );
        return dir;
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            usable(&bin).then_some((version, bin))
        })
        .collect();
    candidates.sort();
    match candidates.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL server binaries (initdb, pg_ctl) not found under \
             /usr/lib/postgresql/*/bin: the tests need a real server, install the `postgresql` \
             package (apt-get install -y postgresql) or set {BIN_ENV} to the directory holding them"
        ),
    }
}

/// Single-quotes a word for `sh`.
fn sh_quote(value: &Path) -> String {
    format!("'{}'", value.display().to_string().replace('\'', "'\\''"))
}
