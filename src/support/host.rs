//! This machine's name, as logs, lock holders and lineage events show it.

/// The kernel's host name (`/proc/sys/kernel/hostname`), or `localhost` when it cannot be read.
pub fn name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
