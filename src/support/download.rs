//! Downloads that are either whole under their final name or not there at all.
//!
//! A remote source writes to `.<name>.part` in the destination folder (same file system, so
//! the final rename is atomic, and a dotfile no scan of the folder takes for an export), checks
//! what it got against what the server announced, syncs it to disk and only then renames it
//! into place. Until then a [`PartFile`] removes its temporary file when dropped, so no error
//! path, early return or panic leaves half a file behind, and no reader ever sees one under
//! the final name.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Writes are buffered in chunks this large: Drive hands over small frames, and SFTP reads
/// larger than this go straight through.
const BUFFER: usize = 64 * 1024;

/// What the server announced about the file, checked before it is put in place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expected {
    /// Size in bytes, when the listing gave one.
    pub size: Option<u64>,
    /// BLAKE3 of the content, when the caller knows it.
    pub blake3: Option<blake3::Hash>,
}

/// The download did not match [`Expected`], or the disk refused it. The temporary file is
/// gone either way.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("got {got} bytes, expected {expected}")]
    Size { got: u64, expected: u64 },
    #[error("content hash {got} differs from the expected {expected}")]
    Hash { got: String, expected: String },
    #[error("cannot write {}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Why [`PartFile::copy_from`] stopped: the source broke off (maybe worth another try) or our
/// disk refused (not worth one).
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("reading the source failed after {got} bytes: {source}")]
    Read { got: u64, source: io::Error },
    #[error(transparent)]
    Write(#[from] DownloadError),
}

/// A download in progress at `<dir>/.<name>.part`, hashed and counted as it is written.
pub struct PartFile {
    part: PathBuf,
    target: PathBuf,
    file: Option<BufWriter<File>>,
    hasher: blake3::Hasher,
    bytes: u64,
    /// Renamed into place: nothing left to remove.
    committed: bool,
}

/// A complete download that matched what was expected and is on disk, still under its
/// temporary name: the caller may check more (has the remote file changed meanwhile?) before
/// [`Verified::commit`]. Dropping it removes the temporary file.
pub struct Verified {
    part: PartFile,
    hash: blake3::Hash,
}

impl PartFile {
    /// Creates (or truncates: a leftover of a killed process) `<dir>/.<name>.part` for a file
    /// that will end up as `<dir>/<name>`.
    pub fn create(dir: &Path, name: &str) -> Result<Self, DownloadError> {
        let part = dir.join(format!(".{name}.part"));
        let file = File::create(&part).map_err(|source| DownloadError::Io {
            path: part.clone(),
            source,
        })?;
        Ok(PartFile {
            target: dir.join(name),
            file: Some(BufWriter::with_capacity(BUFFER, file)),
            part,
            hasher: blake3::Hasher::new(),
            bytes: 0,
            committed: false,
        })
    }

    /// The temporary file's path.
    pub fn path(&self) -> &Path {
        &self.part
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends `data`.
    pub fn append(&mut self, data: &[u8]) -> Result<(), DownloadError> {
        let file = self.file.as_mut().expect("open until finished");
        file.write_all(data).map_err(|source| DownloadError::Io {
            path: self.part.clone(),
            source,
        })?;
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// Appends everything `src` yields, `chunk` bytes per read (libssh2 pipelines SFTP reads
    /// up to the buffer it is given, so a large one is much faster).
    pub fn copy_from(&mut self, mut src: impl Read, chunk: usize) -> Result<u64, CopyError> {
        let mut buf = vec![0u8; chunk.max(1)];
        let start = self.bytes;
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => return Ok(self.bytes - start),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(CopyError::Read {
                        got: self.bytes,
                        source,
                    })
                }
            };
            self.append(&buf[..n])?;
        }
    }

    /// Checks size and hash against `expected`, then flushes and syncs the file to disk.
    pub fn finish(mut self, expected: Expected) -> Result<Verified, DownloadError> {
        if let Some(size) = expected.size {
            if size != self.bytes {
                return Err(DownloadError::Size {
                    got: self.bytes,
                    expected: size,
                });
            }
        }
        let hash = self.hasher.finalize();
        if let Some(want) = expected.blake3 {
            if want != hash {
                return Err(DownloadError::Hash {
                    got: hash.to_hex().to_string(),
                    expected: want.to_hex().to_string(),
                });
            }
        }
        let io_error = |source| DownloadError::Io {
            path: self.part.clone(),
            source,
        };
        let writer = self.file.take().expect("open until finished");
        let file = writer.into_inner().map_err(|e| io_error(e.into_error()))?;
        file.sync_all().map_err(io_error)?;
        Ok(Verified { part: self, hash })
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        drop(self.file.take());
        if self.committed {
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.part) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %self.part.display(), error = %e, "cannot remove a partial download; delete it by hand");
            }
        }
    }
}

impl Verified {
    /// Size in bytes.
    pub fn bytes(&self) -> u64 {
        self.part.bytes
    }

    /// BLAKE3 of the content.
    pub fn hash(&self) -> blake3::Hash {
        self.hash
    }

    /// Renames the file into place (replacing an older copy) and returns its final path.
    pub fn commit(mut self) -> Result<PathBuf, DownloadError> {
        std::fs::rename(&self.part.part, &self.part.target).map_err(|source| {
            DownloadError::Io {
                path: self.part.target.clone(),
                source,
            }
        })?;
        self.part.committed = true;
        Ok(self.part.target.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_complete_download_lands_under_its_name_and_nothing_else_remains() {
        let dir = tempfile::tempdir().unwrap();
        let mut part = PartFile::create(dir.path(), "a.csv").unwrap();
        assert_eq!(part.path(), dir.path().join(".a.csv.part"));
        part.append(b"id;x\n").unwrap();
        part.append(b"1;2\n").unwrap();
        assert_eq!(
            entries(dir.path()),
            [".a.csv.part"],
            "only the temporary name while writing"
        );
        let done = part
            .finish(Expected {
                size: Some(9),
                blake3: Some(blake3::hash(b"id;x\n1;2\n")),
            })
            .unwrap();
        assert_eq!(done.bytes(), 9);
        assert_eq!(done.hash(), blake3::hash(b"id;x\n1;2\n"));
        assert_eq!(
            entries(dir.path()),
            [".a.csv.part"],
            "not in place before commit"
        );
        let path = done.commit().unwrap();
        assert_eq!(path, dir.path().join("a.csv"));
        assert_eq!(std::fs::read(&path).unwrap(), b"id;x\n1;2\n");
        assert_eq!(entries(dir.path()), ["a.csv"]);
    }

    #[test]
    fn a_commit_replaces_an_older_copy() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), b"old").unwrap();
        let mut part = PartFile::create(dir.path(), "a.csv").unwrap();
        part.append(b"new").unwrap();
        part.finish(Expected::default()).unwrap().commit().unwrap();
        assert_eq!(std::fs::read(dir.path().join("a.csv")).unwrap(), b"new");
    }

    #[test]
    fn a_wrong_size_or_hash_leaves_nothing_and_keeps_the_old_copy() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), b"old").unwrap();
        let mut part = PartFile::create(dir.path(), "a.csv").unwrap();
        part.append(b"half").unwrap();
        let err = part
            .finish(Expected {
                size: Some(8),
                blake3: None,
            })
            .err()
            .unwrap();
        assert!(
            matches!(
                err,
                DownloadError::Size {
                    got: 4,
                    expected: 8
                }
            ),
            "{err}"
        );
        assert_eq!(entries(dir.path()), ["a.csv"]);
        assert_eq!(std::fs::read(dir.path().join("a.csv")).unwrap(), b"old");

        let mut part = PartFile::create(dir.path(), "a.csv").unwrap();
        part.append(b"evil").unwrap();
        let err = part
            .finish(Expected {
                size: Some(4),
                blake3: Some(blake3::hash(b"good")),
            })
            .err()
            .unwrap();
        assert!(matches!(err, DownloadError::Hash { .. }), "{err}");
        assert_eq!(entries(dir.path()), ["a.csv"]);
        assert_eq!(std::fs::read(dir.path().join("a.csv")).unwrap(), b"old");
    }

    #[test]
    fn an_abandoned_download_removes_its_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut part = PartFile::create(dir.path(), "a.csv").unwrap();
            part.append(b"half").unwrap();
        }
        assert!(entries(dir.path()).is_empty());
        // Verified but never committed (the remote file changed meanwhile): gone too.
        let mut part = PartFile::create(dir.path(), "a.csv").unwrap();
        part.append(b"whole").unwrap();
        drop(part.finish(Expected::default()).unwrap());
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn a_panic_mid_download_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let result = std::panic::catch_unwind(move || {
            let mut part = PartFile::create(&path, "a.csv").unwrap();
            part.append(b"half").unwrap();
            panic!("connection handler crashed");
        });
        assert!(result.is_err());
        assert!(entries(dir.path()).is_empty());
    }

    /// Yields `data`, then fails like a dropped connection.
    struct Broken<'a>(&'a [u8]);

    impl Read for Broken<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "peer gone"));
            }
            let n = buf.len().min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_source_that_breaks_off_is_a_read_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut part = PartFile::create(dir.path(), "a.csv").unwrap();
        let err = part.copy_from(Broken(b"0123456789"), 4).unwrap_err();
        assert!(matches!(err, CopyError::Read { got: 10, .. }), "{err}");
        drop(part);
        assert!(entries(dir.path()).is_empty());

        let mut part = PartFile::create(dir.path(), "b.csv").unwrap();
        assert_eq!(part.copy_from(&b"0123456789"[..], 4).unwrap(), 10);
        let path = part.finish(Expected::default()).unwrap().commit().unwrap();
        assert_eq!(std::fs::read(path).unwrap(), b"0123456789");
    }

    #[test]
    fn a_folder_that_is_not_there_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = PartFile::create(&dir.path().join("missing"), "a.csv")
            .err()
            .unwrap();
        assert!(matches!(err, DownloadError::Io { .. }), "{err}");
    }
}
