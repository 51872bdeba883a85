//! Crash injection for the tests: a named point where a run can be made to die as a kill
//! would. At the bottom of the tree (it imports nothing), so every stage can hold one.

/// Crash injection for tests: `DROPSYNC_FAILPOINT=<name>` aborts the process right there,
/// as a kill would (no cleanup, no flush). Compiled into debug builds only (what the tests
/// run): a release binary has no failpoint and ignores the variable.
pub fn failpoint(name: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("DROPSYNC_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}
