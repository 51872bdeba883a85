//! A copy of each staging table's `(id, hash)` pairs beside staging.sqlite, in
//! `staging.hashes/<entity>.<token>.parquet`, so a rerun compares this run's rows with what
//! is staged without reading millions of pairs back out of SQLite (at 1M clients that read
//! was 5 of the 13 seconds the staging sync took).
//!
//! The SQLite `_staged_<entity>` table stays the truth; the file is a cache that names the
//! commit it mirrors. Each sync writes its file under a new token before the transaction
//! that records the token commits, and removes older files after: a crash in between leaves
//! either the old token with its file or the new one with its file, and a token without its
//! file (lost, copied workspace) falls back to the SQLite table.

use std::path::{Path, PathBuf};

use polars::prelude::*;

/// The folder of the cache files of a staging database.
pub fn dir_of(staging: &Path) -> PathBuf {
    staging.with_extension("hashes")
}

/// The cache file of `entity` under `token`.
pub fn path_of(dir: &Path, entity: &str, token: &str) -> PathBuf {
    dir.join(format!("{entity}.{token}.parquet"))
}

/// A token not used before by this workspace: the time in nanoseconds, the process and a
/// counter.
pub fn new_token() -> String {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{nanos:x}-{:x}-{n:x}", std::process::id())
}

/// The cached `(id, hash)` frame of `entity` under `token`, or `None` when there is no such
/// file or it cannot be read (the caller then reads SQLite).
pub fn read(dir: &Path, entity: &str, token: &str) -> Option<DataFrame> {
    let path = path_of(dir, entity, token);
    let file = std::fs::File::open(&path).ok()?;
    match ParquetReader::new(file).finish() {
        Ok(df) if df.get_column_names().len() == 2 => Some(df),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "staged hashes unreadable; reading staging.sqlite");
            None
        }
    }
}

/// Writes `pairs` as `entity`'s cache under `token` (through a temporary name, so a file
/// under a token is always whole).
pub fn write(dir: &Path, entity: &str, token: &str, pairs: &mut DataFrame) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    // Not fsynced: a copy lost in a crash only means reading the pairs from SQLite.
    crate::support::parquet_file::write(&path_of(dir, entity, token), pairs, false)
        .map_err(std::io::Error::other)
}

/// Removes `entity`'s cache files other than `keep`'s (and leftover temporary files).
pub fn remove_others(dir: &Path, entity: &str, keep: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let keep = path_of(dir, entity, keep);
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let ours = name
            .strip_suffix(".parquet")
            .or_else(|| name.strip_suffix(".parquet.tmp"))
            .and_then(|stem| stem.rsplit_once('.'))
            .is_some_and(|(e, _)| e == entity);
        if ours && path != keep {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::debug!(path = %path.display(), error = %e, "old staged hashes left");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_back_under_its_token_only_and_older_ones_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = dir_of(&tmp.path().join("staging.sqlite"));
        let mut a = df!("id" => ["1", "2"], "hash" => [10i64, 20]).unwrap();
        write(&dir, "clientes", "t1", &mut a).unwrap();
        let mut b = df!("id" => ["1"], "hash" => [11i64]).unwrap();
        write(&dir, "clientes", "t2", &mut b).unwrap();
        write(&dir, "clientes.v2", "t1", &mut b.clone()).unwrap();
        assert_eq!(read(&dir, "clientes", "t1").unwrap(), a);
        assert_eq!(read(&dir, "clientes", "t3"), None);
        remove_others(&dir, "clientes", "t2");
        assert_eq!(read(&dir, "clientes", "t1"), None);
        assert_eq!(read(&dir, "clientes", "t2").unwrap(), b);
        assert!(
            read(&dir, "clientes.v2", "t1").is_some(),
            "another entity's file stays"
        );
    }

    #[test]
    fn a_damaged_file_reads_as_none() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("staging.hashes");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(path_of(&dir, "ventas", "t"), b"not parquet").unwrap();
        assert_eq!(read(&dir, "ventas", "t"), None);
    }

    #[test]
    fn tokens_differ() {
        assert_ne!(new_token(), new_token());
    }
}
