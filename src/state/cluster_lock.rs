//! One run per tenant across every machine: a PostgreSQL session-level advisory lock, keyed
//! by the tenant's name. The workspace's file lock serialises runs that share a disk; workers
//! on several machines (CronJobs on any node, a shared volume whose file locks may not hold
//! across nodes) need a lock they all see. PostgreSQL releases a session's advisory locks when
//! the session ends, however it ends: a worker killed or lost mid-run leaves no stale lock.
//!
//! The holder's session is named (`application_name`: tenant, pid, host), so a refused worker
//! says who holds the tenant and since when, as the file lock does.

use std::fmt;
use std::str::FromStr;

use postgres::{Client, NoTls};

use super::lock::LockError;

/// How a tenant's runs lock each other out across machines. The URL is a secret (from the
/// environment variable the tenants file names) and never printed.
#[derive(Clone)]
pub struct ClusterLock {
    url: String,
    tenant: String,
}

impl fmt::Debug for ClusterLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterLock")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

/// Held for as long as the value lives: dropping it closes the session, which releases it.
pub struct ClusterLockGuard {
    tenant: String,
    /// The session that holds the lock (behind a lock of its own: checking it needs `&mut`).
    session: std::sync::Mutex<Client>,
}

impl ClusterLockGuard {
    /// Fails unless the session holding the lock is still alive. A session that ended (a
    /// restart of the server, a network cut long enough for keepalives to give up) took the
    /// lock with it, and another worker may hold it now: the run must not go on to the CRM.
    pub fn ensure_held(&self) -> Result<(), LockError> {
        let mut session = self
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match session.simple_query("SELECT 1") {
            Ok(_) => Ok(()),
            Err(e) => Err(LockError::ClusterLost {
                tenant: self.tenant.clone(),
                message: e.to_string(),
            }),
        }
    }
}

impl ClusterLock {
    pub fn new(url: String, tenant: String) -> ClusterLock {
        ClusterLock { url, tenant }
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The advisory lock's 64-bit key: a stable hash of the tenant's name (xxh3 does not
    /// change between releases, so every version of dropsync takes the same lock).
    pub fn key(&self) -> i64 {
        xxhash_rust::xxh3::xxh3_64(format!("dropsync tenant {}", self.tenant).as_bytes()) as i64
    }

    /// Takes the tenant's lock, or says who holds it. Never waits: a second worker is
    /// refused at once, and the scheduler tries again at its next time.
    pub fn acquire(&self) -> Result<ClusterLockGuard, LockError> {
        let unavailable = |e: &dyn fmt::Display| LockError::ClusterUnavailable {
            tenant: self.tenant.clone(),
            message: e.to_string(),
        };
        let mut config = postgres::Config::from_str(&self.url).map_err(|e| unavailable(&e))?;
        // PostgreSQL keeps 63 bytes of it; the tenant comes first so it survives the cut.
        let name = format!(
            "dropsync {} pid {} on {}",
            self.tenant,
            std::process::id(),
            crate::support::host::name()
        );
        config.application_name(truncate(&name, 63));
        // An unreachable server fails the run in seconds, not after the kernel's minutes; a
        // silent network cut ends the session (and so the lock) within about a minute.
        config
            .connect_timeout(std::time::Duration::from_secs(10))
            .keepalives(true)
            .keepalives_idle(std::time::Duration::from_secs(30));
        let mut session = config.connect(NoTls).map_err(|e| unavailable(&e))?;
        let key = self.key();
        let got: bool = session
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .map_err(|e| unavailable(&e))?
            .get(0);
        if got {
            return Ok(ClusterLockGuard {
                tenant: self.tenant.clone(),
                session: std::sync::Mutex::new(session),
            });
        }
        // pg_locks shows a bigint key as its two halves (classid high, objid low).
        let (high, low) = ((key as u64 >> 32) as u32, key as u64 as u32);
        // Advisory locks are per database: another installation on the same server may hold
        // the same key in its own.
        let holder = session
            .query(
                "SELECT a.application_name, to_char(a.backend_start AT TIME ZONE 'UTC', \
                 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), coalesce(host(a.client_addr), 'local') \
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 \
                 AND l.objid = $2 AND l.objsubid = 1 \
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[&high, &low],
            )
            .ok()
            .and_then(|rows| rows.into_iter().next())
            .map(|r| {
                format!(
                    "{} since {}, from {}",
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    r.get::<_, String>(2)
                )
            })
            .unwrap_or_else(|| "holder gone since; try again".into());
        Err(LockError::ClusterBusy {
            tenant: self.tenant.clone(),
            holder,
        })
    }
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use dropsync_testkit::postgres::TestDb;

    fn lock(db: &TestDb, tenant: &str) -> ClusterLock {
        ClusterLock::new(std::env::var(&db.env_var).unwrap(), tenant.into())
    }

    #[test]
    fn a_second_worker_of_a_tenant_is_refused_naming_the_first() {
        let db = TestDb::new("cluster_lock_refused");
        let first = lock(&db, "norte").acquire().unwrap();
        let err = lock(&db, "norte").acquire().err().unwrap();
        let text = err.to_string();
        assert!(matches!(err, LockError::ClusterBusy { .. }), "{text}");
        assert!(
            text.contains(&format!("dropsync norte pid {}", std::process::id())),
            "{text}"
        );
        // Another tenant is not held up.
        let other = lock(&db, "sur").acquire().unwrap();
        drop(first);
        lock(&db, "norte").acquire().unwrap();
        drop(other);
    }

    /// Regression: with the same tenant held in two databases of one server (two
    /// installations), the refusal named no holder ("holder gone"), the lookup finding two.
    #[test]
    fn the_holder_named_is_the_one_in_this_database() {
        let here = TestDb::new("cluster_lock_here");
        let elsewhere = TestDb::new("cluster_lock_elsewhere");
        let _theirs = lock(&elsewhere, "norte").acquire().unwrap();
        let _ours = lock(&here, "norte").acquire().unwrap();
        let err = lock(&here, "norte").acquire().err().unwrap().to_string();
        assert!(!err.contains("holder gone"), "{err}");
        assert!(err.contains("dropsync norte pid"), "{err}");
    }

    #[test]
    fn a_session_that_ends_releases_the_lock() {
        let db = TestDb::new("cluster_lock_released");
        // The holder is a session the test ends by terminating its backend, as a crashed or
        // lost worker's would end.
        let mut holder = db.client();
        let key = lock(&db, "norte").key();
        let pid: i32 = holder
            .query_one("SELECT pg_backend_pid()", &[])
            .unwrap()
            .get(0);
        assert!(holder
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .unwrap()
            .get::<_, bool>(0));
        assert!(lock(&db, "norte").acquire().is_err());
        db.client()
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .unwrap();
        // The server drops the lock with the session; give it a moment to notice.
        let start = std::time::Instant::now();
        loop {
            match lock(&db, "norte").acquire() {
                Ok(_) => break,
                Err(e) if start.elapsed() < std::time::Duration::from_secs(5) => {
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => panic!("still held after the session ended: {e}"),
            }
        }
    }

    #[test]
    fn a_lock_whose_session_ended_is_known_lost() {
        let db = TestDb::new("cluster_lock_lost");
        let guard = lock(&db, "norte").acquire().unwrap();
        guard.ensure_held().unwrap();
        db.client()
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name LIKE 'dropsync norte pid %' \
                 AND datname = current_database()",
                &[],
            )
            .unwrap();
        let err = guard.ensure_held().unwrap_err();
        assert!(matches!(err, LockError::ClusterLost { .. }), "{err}");
        assert!(err.to_string().contains("tenant norte"), "{err}");
    }

    #[test]
    fn an_unreachable_server_is_a_clear_failure_without_the_url() {
        let l = ClusterLock::new(
            "postgres://dropsync:s3cret@127.0.0.1:1/state".into(),
            "norte".into(),
        );
        let err = l.acquire().err().unwrap();
        let text = err.to_string();
        assert!(
            matches!(err, LockError::ClusterUnavailable { .. }),
            "{text}"
        );
        assert!(text.contains("norte"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!format!("{l:?}").contains("s3cret"));
    }

    const KEY_NORTE: i64 = -8_912_819_359_320_437_346;

    #[test]
    fn keys_are_stable_and_per_tenant() {
        let l = |t: &str| ClusterLock::new(String::new(), t.into()).key();
        // Pinned: every release must take the same lock for a tenant.
        assert_eq!(l("norte"), KEY_NORTE);
        assert_ne!(l("norte"), l("sur"));
        assert_eq!(truncate("añb", 2), "a");
    }
}
