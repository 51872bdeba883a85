//! Errors of the generator: each names the value or the file at fault, so the caller can fix the call
//! or the disk instead of guessing.

use std::path::PathBuf;

/// Why a drop could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// The client count is outside what the ID ranges can hold without colliding with dirty-row IDs.
    #[error("clients = {got} is out of range: use {min}..={max}")]
    Clients {
        /// The requested count.
        got: usize,
        /// Smallest supported count (every entity needs a few referenceable rows).
        min: usize,
        /// Largest supported count (fresh dirty-row IDs live above it).
        max: usize,
    },
    /// A change fraction is not usable, e.g. deletes of 10% or more of an entity.
    #[error("change fraction `{name}` = {value} is invalid: {reason}")]
    ChangeSpec {
        /// `changed`, `added` or `deleted`.
        name: &'static str,
        /// The fraction given.
        value: f64,
        /// What it must be instead.
        reason: &'static str,
    },
    /// Creating or writing an output file failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or folder being written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A generated value holds a character Windows-1252 has no byte for (a bug in a word list).
    #[error("{}: {ch:?} has no Windows-1252 byte; pick another encoding or fix the word list", path.display())]
    Unencodable {
        /// The file being written.
        path: PathBuf,
        /// The first character that failed.
        ch: char,
    },
    /// The manifest could not be written or read back as JSON.
    #[error("manifest {}: {source}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

impl GenError {
    /// Wraps an I/O error with the path it happened on.
    pub(super) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        GenError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_bad_value() {
        let e = GenError::Clients {
            got: 3,
            min: 20,
            max: 10,
        };
        assert!(e.to_string().contains("clients = 3"));
        let e = GenError::ChangeSpec {
            name: "deleted",
            value: 0.5,
            reason: "must be below 0.1",
        };
        assert!(e.to_string().contains("`deleted` = 0.5"));
    }
}
