//! Parquet files this program writes for itself (snapshots, journals, staging's copies of
//! its hashes): written under a temporary name beside the final one and renamed into place,
//! so a file under its name is always whole. They are read back whole by this program only:
//! LZ4 writes several times faster than polars' default zstd for a file somewhat larger, and
//! no reader uses column statistics. Files written with zstd by earlier builds read the same.

use std::path::{Path, PathBuf};

use polars::prelude::*;

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Frame(#[from] PolarsError),
}

/// The temporary name `path` is written under before it is renamed into place.
pub fn temp_path(path: &Path) -> PathBuf {
    path.with_extension("parquet.tmp")
}

/// Writes `df` to `path` through [`temp_path`]; with `sync`, the file's bytes are on disk
/// before it takes its name.
pub fn write(path: &Path, df: &mut DataFrame, sync: bool) -> Result<(), WriteError> {
    let tmp = temp_path(path);
    let file = std::fs::File::create(&tmp)?;
    ParquetWriter::new(&file)
        .with_compression(ParquetCompression::Lz4Raw)
        .with_statistics(StatisticsOptions {
            min_value: false,
            max_value: false,
            distinct_count: false,
            null_count: false,
            ..StatisticsOptions::default()
        })
        .finish(df)?;
    if sync {
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_reads_back_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let mut df = df!("id" => ["1", "2"], "h" => [1u64, 2]).unwrap();
        write(&path, &mut df, true).unwrap();
        let back = ParquetReader::new(std::fs::File::open(&path).unwrap())
            .finish()
            .unwrap();
        assert_eq!(back, df);
        assert!(!temp_path(&path).exists());
    }
}
