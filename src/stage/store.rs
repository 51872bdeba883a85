//! Where a run's files go when the worker's disk does not outlive the run (a Kubernetes
//! pod): the workbook analysts open, the run's report, and the exports it quarantined, stored
//! under one prefix of an S3-compatible bucket (`object_store`) or a folder on a shared volume.
//!
//! Layout under the prefix: `staging.xlsx` (the latest workbook, replaced by each run),
//! `runs/<run_id>/report.json`, `quarantine/<run_id>/<file>` with its `.reason.txt`. Every
//! run stores the workbook again, so one whose upload failed is made good by the next.
//!
//! Credentials never come from the config: S3 reads the standard `AWS_*` variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL` for an
//! S3-compatible server, `AWS_ALLOW_HTTP=true` for one without TLS).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

/// Files above this go up in parts of this size (S3's single PUT tops out at 5 GiB, and a
/// part in flight is all a quarantined giant costs in memory).
const PART: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("outputs `{location}`: {message}")]
    Config { location: String, message: String },
    #[error("outputs `{location}`, {key}: {message}")]
    Put {
        location: String,
        key: String,
        message: String,
    },
    #[error("outputs: reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// An opened output location.
#[derive(Clone)]
pub struct OutputStore {
    /// As configured (no secret is ever in it).
    location: String,
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for OutputStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// What one run stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// Keys written, relative to the prefix.
    pub keys: Vec<String>,
    pub bytes: u64,
}

impl OutputStore {
    /// `s3://bucket/prefix` or a folder (absolute, or a `file://` URL; created if missing).
    pub fn open(location: &str) -> Result<OutputStore, StoreError> {
        let config = |message: String| StoreError::Config {
            location: location.to_string(),
            message,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| config(format!("cannot start the upload runtime: {e}")))?;
        let (store, prefix): (Arc<dyn ObjectStore>, Key) =
            if let Some(rest) = location.strip_prefix("s3://") {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(config("no bucket after s3://".into()));
                }
                let s3 = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|e| config(e.to_string()))?;
                (Arc::new(s3), key(prefix))
            } else if location.contains("://") && !location.starts_with("file://") {
                return Err(config(
                    "only s3://bucket/prefix and folders (a shared volume) are supported".into(),
                ));
            } else {
                let dir = PathBuf::from(location.trim_start_matches("file://"));
                std::fs::create_dir_all(&dir)
                    .map_err(|e| config(format!("cannot create the folder: {e}")))?;
                let fs = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| config(e.to_string()))?
                    .with_automatic_cleanup(true);
                (Arc::new(fs), Key::default())
            };
        Ok(OutputStore {
            location: location.to_string(),
            store,
            prefix,
            runtime: Arc::new(runtime),
        })
    }

    /// Stores run `run_id`'s files from workspace `out`: the workbook (if the run keeps one),
    /// `report` as `runs/<run_id>/report.json`, and `out/quarantine/<run_id>/`.
    pub fn store_run(&self, out: &Path, run_id: &str, report: &str) -> Result<Stored, StoreError> {
        let mut stored = Stored::default();
        self.put_bytes(
            &format!("runs/{run_id}/report.json"),
            report.as_bytes().to_vec(),
            &mut stored,
        )?;
        let quarantined = out.join("quarantine").join(run_id);
        if let Ok(entries) = std::fs::read_dir(&quarantined) {
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            for f in files {
                let name = f.file_name().unwrap_or_default().to_string_lossy();
                self.put_file(&f, &format!("quarantine/{run_id}/{name}"), &mut stored)?;
            }
        }
        let workbook = out.join("staging.xlsx");
        if workbook.is_file() {
            self.put_file(&workbook, "staging.xlsx", &mut stored)?;
        }
        tracing::info!(location = %self.location, run_id, objects = stored.keys.len(), bytes = stored.bytes, "run outputs stored");
        Ok(stored)
    }

    fn full_key(&self, rel: &str) -> Key {
        let mut parts: Vec<String> = self
            .prefix
            .parts()
            .map(|p| p.as_ref().to_string())
            .collect();
        parts.extend(rel.split('/').map(str::to_string));
        Key::from_iter(parts)
    }

    fn put_err(&self, rel: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Put {
            location: self.location.clone(),
            key: rel.to_string(),
            message: e.to_string(),
        }
    }

    fn put_bytes(&self, rel: &str, bytes: Vec<u8>, stored: &mut Stored) -> Result<(), StoreError> {
        let n = bytes.len() as u64;
        let k = self.full_key(rel);
        self.runtime
            .block_on(self.store.put(&k, PutPayload::from(bytes)))
            .map_err(|e| self.put_err(rel, e))?;
        stored.keys.push(rel.to_string());
        stored.bytes += n;
        Ok(())
    }

    /// A file as one object: in one request when small, else in parts read one at a time.
    fn put_file(&self, path: &Path, rel: &str, stored: &mut Stored) -> Result<(), StoreError> {
        let read = |source| StoreError::Read {
            path: path.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read)?.len();
        if size <= PART as u64 {
            return self.put_bytes(rel, std::fs::read(path).map_err(read)?, stored);
        }
        let k = self.full_key(rel);
        let mut file = std::fs::File::open(path).map_err(read)?;
        self.runtime.block_on(async {
            let upload = self
                .store
                .put_multipart(&k)
                .await
                .map_err(|e| self.put_err(rel, e))?;
            let mut parts = WriteMultipart::new_with_chunk_size(upload, PART);
            let mut buf = vec![0u8; PART];
            loop {
                let n = file.read(&mut buf).map_err(read)?;
                if n == 0 {
                    break;
                }
                parts.write(&buf[..n]);
                parts
                    .wait_for_capacity(2)
                    .await
                    .map_err(|e| self.put_err(rel, e))?;
            }
            parts.finish().await.map_err(|e| self.put_err(rel, e))?;
            Ok::<(), StoreError>(())
        })?;
        stored.keys.push(rel.to_string());
        stored.bytes += size;
        Ok(())
    }
}

/// A prefix as object-store path parts (empty parts dropped).
fn key(prefix: &str) -> Key {
    Key::from_iter(prefix.split('/').filter(|p| !p.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_gets_the_workbook_the_report_and_the_quarantined_files() {
        let out = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        std::fs::write(out.path().join("staging.xlsx"), b"PK workbook").unwrap();
        let q = out.path().join("quarantine/r1");
        std::fs::create_dir_all(&q).unwrap();
        std::fs::write(q.join("ventas.csv"), b"broken").unwrap();
        std::fs::write(q.join("ventas.csv.reason.txt"), b"why").unwrap();
        // A quarantined file larger than a part goes up in parts, whole.
        let big: Vec<u8> = (0..PART + 12345).map(|i| (i % 251) as u8).collect();
        std::fs::write(q.join("servicios.csv"), &big).unwrap();
        let location = dest.path().join("dealers/norte");
        let store = OutputStore::open(&location.to_string_lossy()).unwrap();
        let stored = store
            .store_run(out.path(), "r1", "{\"run_id\":\"r1\"}")
            .unwrap();
        assert_eq!(
            stored.keys,
            [
                "runs/r1/report.json",
                "quarantine/r1/servicios.csv",
                "quarantine/r1/ventas.csv",
                "quarantine/r1/ventas.csv.reason.txt",
                "staging.xlsx"
            ]
        );
        let read = |rel: &str| std::fs::read(location.join(rel)).unwrap();
        assert_eq!(read("staging.xlsx"), b"PK workbook");
        assert_eq!(read("runs/r1/report.json"), b"{\"run_id\":\"r1\"}");
        assert_eq!(read("quarantine/r1/servicios.csv"), big);
        assert_eq!(stored.bytes, 11 + 15 + 6 + 3 + big.len() as u64);
    }

    #[test]
    fn an_unknown_scheme_or_a_bucketless_url_is_refused() {
        for bad in ["gs://bucket/x", "s3://", "s3:///x", "ftp://host/x"] {
            let e = OutputStore::open(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }
}
