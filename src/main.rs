fn main() -> std::process::ExitCode {
    return_freed_frames();
    sqlite_without_memory_statistics();
    // reqwest is built with `rustls-no-provider`: without a process-wide provider the first
    // HTTP client (a webhook alert, the REST CRM) panics. Install `ring` before anything runs.
    dropsync::sinks::rest::ensure_crypto_provider();
    dropsync::cli::main()
}

/// A run frees each entity's frames before the next entity's are built (see `app::run`), but
/// glibc's malloc raises its mmap threshold to the size of each large block freed, up to
/// 32 MiB: most column buffers then come from the heap, which keeps freed pages and fragments,
/// so the process's peak grew entity after entity as if nothing had been freed. Blocks of
/// 4 MiB and more (a column of half a million values) are mmapped and returned when freed.
/// Measured on the 1M-client 1% rerun, back to back: peak RSS 2.2-2.3 GiB -> 1.6-1.8 GiB,
/// time within the noise (a 128 KiB threshold saved as much but cost 14%).
fn return_freed_frames() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a malloc tuning parameter; it runs before any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

/// SQLite keeps process-wide memory statistics by default, behind one global mutex taken on
/// every allocation and free it makes: a first load that binds and inserts millions of values
/// into staging and the CRM locked and unlocked it for each (4% of the 1M-client first load's
/// samples were that mutex). Nothing here reads those statistics. Measured on a 200k-client
/// first load, four alternating pairs: 15.1 s against 16.7 s on average, staging.sqlite's
/// column 5.8 s against 6.5 s.
fn sqlite_without_memory_statistics() {
    // SAFETY: sqlite3_config may only be called before SQLite initialises, which it does on
    // the first connection; nothing has opened one yet and no other thread runs.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0 as libc::c_int)
    };
    debug_assert_eq!(
        rc,
        rusqlite::ffi::SQLITE_OK,
        "sqlite3_config after initialisation"
    );
}

#[cfg(test)]
mod tests {
    /// The only test of the binary's own crate, so SQLite is not initialised before it.
    #[test]
    fn sqlite_keeps_no_memory_statistics() {
        super::sqlite_without_memory_statistics();
        let db = rusqlite::Connection::open_in_memory().unwrap();
        db.execute_batch("CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('a'), ('b');")
            .unwrap();
        // SAFETY: reads a counter.
        let used = unsafe { rusqlite::ffi::sqlite3_memory_used() };
        assert_eq!(used, 0, "SQLite still counts its memory");
    }
}
