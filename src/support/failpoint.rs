//! Crash injection for the tests: a named point where a run can be made to die as a kill
//! would. At the bottom of the tree (it imports nothing), so every stage can hold one.

/// Crash injection for tests: `DROPSYNC_FAILPOINT=<name>` aborts the process right there,
/// as a kill would (no cleanup, no flush); `DROPSYNC_PAUSEPOINT=<name>:<ms>` sleeps there
/// instead, so a test can change the world under a run at a known step. Compiled into debug
/// builds only (what the tests run): a release binary has neither and ignores the variables.
pub fn failpoint(name: &str) {
    #[cfg(debug_assertions)]
    {
        if std::env::var("DROPSYNC_FAILPOINT").is_ok_and(|v| v == name) {
            eprintln!("failpoint {name}: aborting");
            std::process::abort();
        }
        let pause = std::env::var("DROPSYNC_PAUSEPOINT").ok();
        let ms = pause.as_deref().and_then(|v| {
            let (at, ms) = v.split_once(':')?;
            (at == name).then(|| ms.parse::<u64>().ok()).flatten()
        });
        if let Some(ms) = ms {
            eprintln!("pausepoint {name}: {ms} ms");
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}
