//! Reading exports as they really come. Bytes in, one raw text column per recipe column
//! out, plus the physical line where each record starts (`__line`, header = line 1) and a
//! per-row read problem (`__bad`). The file is read from disk once: the same buffer is hashed,
//! sniffed and parsed.
//!
//! A file that cannot be read as the entity at all (binary, no header, a required column
//! missing, broken XML) is a `ReadError`: the pipeline quarantines it and keeps the entity's
//! last accepted state. A row that is merely malformed is kept, marked in `__bad`, and
//! rejected by `validate` with its line.

mod csv_reader;
pub mod sniff;
mod xml_reader;

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::recipe::Recipe;

/// Column holding the physical start line of each record.
pub const LINE: &str = "__line";
/// Column holding a read problem of the row (wrong field count), null when fine.
pub const BAD: &str = "__bad";

/// One export file read as raw text.
pub struct RawTable {
    pub path: PathBuf,
    /// blake3 of the file's bytes: the same content is the same drop.
    pub hash: String,
    pub bytes: u64,
    pub encoding: &'static str,
    /// Source columns (named as in the recipe) + `__line` + `__bad`, all rows of the file.
    pub frame: DataFrame,
    /// Recipe columns the file does not have (optional ones only; their fields stay empty).
    pub missing_columns: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot open {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a text export (binary content)")]
    Binary { path: PathBuf },
    #[error("{path}: the file is empty (no header row)")]
    NoHeader { path: PathBuf },
    #[error("{path}: required column(s) {missing:?} not in the header (found: {found:?})")]
    MissingColumns {
        path: PathBuf,
        missing: Vec<String>,
        found: Vec<String>,
    },
    #[error("{path}:{line}: broken CSV: {message}")]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{path}:{line}: broken XML: {message}")]
    Xml {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{path}: internal table error: {source}")]
    Frame { path: PathBuf, source: PolarsError },
}

/// Reads `path` as `recipe`'s entity.
pub fn read_file(path: &Path, recipe: &Recipe) -> Result<RawTable, ReadError> {
    let bytes = std::fs::read(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let hash = blake3::hash(&bytes).to_hex().to_string();
    if sniff::is_binary(&bytes) {
        return Err(ReadError::Binary {
            path: path.to_path_buf(),
        });
    }
    let is_xml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("xml"));
    let wanted: Vec<&str> = recipe.source_columns();
    let (columns, encoding) = if is_xml {
        xml_reader::read(path, &bytes, recipe, &wanted)?
    } else {
        csv_reader::read(path, &bytes, recipe, &wanted)?
    };
    let missing_columns = columns.missing.clone();
    let required = recipe.required_columns();
    let missing_required: Vec<String> = missing_columns
        .iter()
        .filter(|c| required.contains(&c.as_str()))
        .cloned()
        .collect();
    if !missing_required.is_empty() {
        return Err(ReadError::MissingColumns {
            path: path.to_path_buf(),
            missing: missing_required,
            found: columns.header.clone(),
        });
    }
    let frame = columns.finish().map_err(|source| ReadError::Frame {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(RawTable {
        path: path.to_path_buf(),
        hash,
        bytes: bytes.len() as u64,
        encoding,
        frame,
        missing_columns,
    })
}

/// Column builders shared by the CSV and XML readers.
struct Columns {
    /// Header as found in the file (for error messages).
    header: Vec<String>,
    builders: Vec<StringChunkedBuilder>,
    lines: Vec<u32>,
    bad: StringChunkedBuilder,
    missing: Vec<String>,
}

impl Columns {
    fn new(wanted: &[&str], capacity: usize) -> Self {
        Columns {
            header: Vec::new(),
            builders: wanted
                .iter()
                .map(|w| StringChunkedBuilder::new((*w).into(), capacity))
                .collect(),
            lines: Vec::with_capacity(capacity),
            bad: StringChunkedBuilder::new(BAD.into(), capacity),
            missing: Vec::new(),
        }
    }

    fn finish(self) -> PolarsResult<DataFrame> {
        let height = self.lines.len();
        let mut cols: Vec<Column> = self
            .builders
            .into_iter()
            .map(|b| b.finish().into_series().into_column())
            .collect();
        cols.push(UInt32Chunked::from_vec(LINE.into(), self.lines).into_column());
        cols.push(self.bad.finish().into_series().into_column());
        DataFrame::new(height, cols)
    }
}

/// Turns increasing byte offsets into line numbers without rescanning from the start.
pub(crate) struct LineCounter<'a> {
    text: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        LineCounter {
            text: text.as_bytes(),
            offset: 0,
            line: 1,
        }
    }

    pub(crate) fn line_at(&mut self, offset: usize) -> u64 {
        let offset = offset.min(self.text.len());
        if offset < self.offset {
            self.offset = 0;
            self.line = 1;
        }
        self.line += self.text[self.offset..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        self.offset = offset;
        self.line
    }
}
