//! Reading exports as they really come. Bytes in, one raw text column per recipe column
//! out, plus the physical line where each record starts (`__line`, header = line 1) and a
//! per-row read problem (`__bad`). The file is read from disk once: the same buffer is hashed,
//! sniffed and parsed.
//!
//! A file that cannot be read as the entity at all (binary, no header, a required column
//! missing, broken or truncated) is a `ReadError`: the pipeline quarantines it and keeps the
//! entity's last accepted state. A row that is merely malformed is kept, marked in `__bad`, and
//! rejected by `validate` with its line.
//!
//! Guarantees on hostile input (issue #11): nothing here panics on any bytes; every message
//! built from the input is bounded ([`MAX_REASON_CHARS`], header names listed at most
//! [`MAX_LISTED_NAMES`] and each cut to [`MAX_NAME_CHARS`]); a record is at most
//! [`MAX_RECORD_BYTES`] long, a longer one is a row reject whose content is not kept; NUL
//! bytes and bytes that are not text in the file's encoding never reach a value that is kept.
//!
//! ## Row problems in `__bad`
//!
//! `__bad` holds `read.<rule>: <reason>` for the reader's own rules, or a bare reason for a
//! wrong field count (`read.fields`, the original rule); [`split_bad`] splits it:
//! - `read.fields`: a CSV row has another number of fields than the header.
//! - `read.encoding`: a value the recipe reads holds a byte that is not text in the file's
//!   encoding (invalid UTF-8 in a UTF-8 file, `81 8d 8f 90 9d` in a Windows-1252 file).
//! - `read.nul`: the record holds a NUL byte.
//! - `read.too_long`: the record is longer than [`MAX_RECORD_BYTES`].

mod csv_reader;
pub mod sniff;
mod xml_reader;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::config::Recipe;

pub use crate::model::{BAD, LINE, REC};

/// The longest record (CSV row, XML record element) the reader keeps: 16 MiB. The largest
/// real export row is a few KiB; a longer record is a runaway quote or garbage. It becomes a
/// `read.too_long` reject with its line; of its values only those of at most
/// [`MAX_KEPT_VALUE_BYTES`] are kept (the ID, so the rejected row still protects its last
/// accepted version), and the rest of the file is read on. A header row that long makes the
/// file unreadable.
pub const MAX_RECORD_BYTES: usize = 16 << 20;
/// In a record over [`MAX_RECORD_BYTES`], values longer than this are dropped.
pub const MAX_KEPT_VALUE_BYTES: usize = 1024;
/// Longest reason (row problem or file error message) built from the input, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// Header names listed in an error at most.
pub const MAX_LISTED_NAMES: usize = 20;
/// Each header name quoted in an error is cut to this many characters.
pub const MAX_NAME_CHARS: usize = 80;
/// Characters of header names listed in one error at most (so the whole message stays near
/// [`MAX_REASON_CHARS`]).
pub const MAX_LISTED_CHARS: usize = 300;

/// The rule and reason of a `__bad` value: `read.encoding: byte 12 ...` gives
/// (`read.encoding`, `byte 12 ...`); a bare reason is the wrong field count, `read.fields`.
///
/// `validate` files each `__bad` under the rule this returns.
pub fn split_bad(bad: &str) -> (&str, &str) {
    match bad.split_once(": ") {
        Some((rule, reason))
            if rule.len() > 5
                && rule.starts_with("read.")
                && rule[5..]
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_') =>
        {
            (rule, reason)
        }
        _ => ("read.fields", bad),
    }
}

/// `s` cut to at most `max` characters, ending in `…` when cut. Looks at no more than `max`
/// characters of `s`, however long it is.
pub fn clip(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max || s.char_indices().nth(max).is_none() {
        return Cow::Borrowed(s);
    }
    let cut = s
        .char_indices()
        .nth(max.saturating_sub(1))
        .map_or(0, |(i, _)| i);
    Cow::Owned(format!("{}…", &s[..cut]))
}

/// Names for an error message: at most [`MAX_LISTED_NAMES`], each cut to [`MAX_NAME_CHARS`],
/// no more than [`MAX_LISTED_CHARS`] in all, and a last entry saying how many more there were.
fn listed(names: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = 0;
    for n in names.iter().take(MAX_LISTED_NAMES) {
        let n = clip(n, MAX_NAME_CHARS);
        chars += n.chars().count();
        if chars > MAX_LISTED_CHARS && !out.is_empty() {
            break;
        }
        out.push(n.into_owned());
    }
    if names.len() > out.len() {
        out.push(format!("… and {} more", names.len() - out.len()));
    }
    out
}

/// A message derived from the input, cut to [`MAX_REASON_CHARS`].
fn bounded(message: impl AsRef<str>) -> String {
    clip(message.as_ref(), MAX_REASON_CHARS).into_owned()
}

/// The file name for messages (never the whole path).
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// One export file read as raw text.
pub struct RawTable {
    pub path: PathBuf,
    /// blake3 of the file's bytes: the same content is the same drop.
    pub hash: String,
    pub bytes: u64,
    pub encoding: &'static str,
    /// Source columns (named as in the recipe) + `__line` + `__bad` + `__rec`, all rows of
    /// the file.
    pub frame: DataFrame,
    /// Recipe columns the file does not have (optional ones only; their fields stay empty).
    pub missing_columns: Vec<String>,
    /// The file's header as written (CSV), or the recipe's columns the reader found (XML,
    /// streamed for those only): what drift is told from.
    pub header: Vec<String>,
    /// `header` is the file's whole header.
    pub header_complete: bool,
}

/// Why a file cannot be read as its entity. Every message is bounded: lists of names come
/// through [`listed`], messages through [`bounded`].
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
    /// `missing` and `found` are already cut for the message (see [`listed`]).
    #[error("{path}: required column(s) {missing:?} not in the header (found: {found:?})")]
    MissingColumns {
        path: PathBuf,
        missing: Vec<String>,
        found: Vec<String>,
        /// The whole header, uncut (see [`RawTable::header`]), for drift.
        header: Vec<String>,
        header_complete: bool,
    },
    /// Read, but its columns drifted from the recipe and the recipe says to set it aside.
    #[error("{path}: its columns changed ({drift}); the recipe's [source] on_drift = \"quarantine\" sets it aside: apply the proposed patch (the run's drift) or fix the export")]
    Drifted {
        path: PathBuf,
        drift: Box<crate::model::Drift>,
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
    /// A file the recipe's patterns matched whose name ends in `.xml`, for a recipe without
    /// `[source.xml]` (e.g. `files = ["clientes.*"]`).
    #[error("{file} is XML but recipe {entity} has no [source.xml] section")]
    XmlNotConfigured { file: String, entity: String },
    #[error("{path}: the reader crashed on this file (a bug, please report it): {message}")]
    Crashed { path: PathBuf, message: String },
    #[error("{path}: internal table error: {source}")]
    Frame { path: PathBuf, source: PolarsError },
}

/// Reads `path` as `recipe`'s entity.
///
/// Never panics: a panic inside the parsers on some input (a bug) is caught and the file is
/// unreadable (`ReadError::Crashed`), so one hostile file cannot stop the run of the others.
pub fn read_file(path: &Path, recipe: &Recipe) -> Result<RawTable, ReadError> {
    read_loaded(path, load(path)?, recipe)
}

/// A file's bytes, read once, and their blake3: enough to tell whether it is the same
/// content as before, before paying for parsing it.
pub struct Loaded {
    pub bytes: Vec<u8>,
    pub hash: String,
}

pub fn load(path: &Path) -> Result<Loaded, ReadError> {
    let bytes = std::fs::read(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let hash = blake3::hash(&bytes).to_hex().to_string();
    Ok(Loaded { bytes, hash })
}

/// Parses loaded bytes as `recipe`'s entity. A panic in a reader is a read error of this
/// file, not the end of the run.
pub fn read_loaded(path: &Path, loaded: Loaded, recipe: &Recipe) -> Result<RawTable, ReadError> {
    let read = std::panic::AssertUnwindSafe(|| read_file_inner(path, loaded, recipe));
    std::panic::catch_unwind(read).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(ReadError::Crashed {
            path: path.to_path_buf(),
            message: bounded(message),
        })
    })
}

/// Excel's "Unicode text" and some systems export UTF-16 with a byte-order mark: such a file
/// is transcoded to UTF-8 (with a BOM) once, before anything else looks at it. Line breaks
/// map one to one, so every line number stays exact; an unpaired surrogate becomes U+FFFD.
/// Returns the bytes to read and, for UTF-16, the encoding to report.
fn from_utf16(bytes: Vec<u8>) -> (Vec<u8>, Option<&'static str>) {
    let (encoding, label) = match bytes.get(..2) {
        Some([0xFF, 0xFE]) => (encoding_rs::UTF_16LE, "utf-16le"),
        Some([0xFE, 0xFF]) => (encoding_rs::UTF_16BE, "utf-16be"),
        _ => return (bytes, None),
    };
    let (text, _) = encoding.decode_with_bom_removal(&bytes);
    let mut utf8 = Vec::with_capacity(text.len() + 3);
    utf8.extend_from_slice(b"\xEF\xBB\xBF");
    utf8.extend_from_slice(text.as_bytes());
    (utf8, Some(label))
}

fn read_file_inner(path: &Path, loaded: Loaded, recipe: &Recipe) -> Result<RawTable, ReadError> {
    let Loaded { bytes, hash } = loaded;
    let (bytes, utf16) = from_utf16(bytes);
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
        if recipe.source.xml.is_none() {
            return Err(ReadError::XmlNotConfigured {
                file: file_name(path),
                entity: recipe.entity.clone(),
            });
        }
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
            missing: listed(&missing_required),
            found: listed(&columns.header),
            header: columns.header.clone(),
            header_complete: !is_xml,
        });
    }
    let header = columns.header.clone();
    let frame = columns.finish().map_err(|source| ReadError::Frame {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(RawTable {
        path: path.to_path_buf(),
        hash,
        bytes: bytes.len() as u64,
        encoding: utf16.unwrap_or(encoding),
        frame,
        missing_columns,
        header,
        header_complete: !is_xml,
    })
}

/// Column builders shared by the CSV and XML readers.
struct Columns {
    /// Header as found in the file (for error messages).
    header: Vec<String>,
    builders: Vec<StringChunkedBuilder>,
    lines: Vec<u32>,
    bad: StringChunkedBuilder,
    /// Each record's key ([`REC`]), `None` for a record with a read problem.
    keys: Vec<Option<u64>>,
    /// Where a record's values are laid end to end to be hashed (reused record to record).
    key_buf: Vec<u8>,
    missing: Vec<String>,
}

impl Columns {
    /// `capacity` is a guess from the file size; it is capped so a guess from a hostile file
    /// cannot reserve gigabytes.
    fn new(wanted: &[&str], capacity: usize) -> Self {
        let capacity = capacity.min(1 << 21);
        Columns {
            header: Vec::new(),
            builders: wanted
                .iter()
                .map(|w| StringChunkedBuilder::new((*w).into(), capacity))
                .collect(),
            lines: Vec::with_capacity(capacity),
            bad: StringChunkedBuilder::new(BAD.into(), capacity),
            keys: Vec::with_capacity(capacity),
            key_buf: Vec::new(),
            missing: Vec::new(),
        }
    }

    /// Records the key of the record just appended: a hash of the values the recipe reads
    /// (each length-prefixed, a missing one marked apart from an empty one) under `seed`, which
    /// names how the bytes are to be read (the file's encoding). Two records with the same key
    /// give the recipe the same values. A record with a read problem gets none.
    fn push_key<'v>(&mut self, values: Option<impl Iterator<Item = Option<&'v [u8]>>>, seed: u64) {
        let Some(values) = values else {
            self.keys.push(None);
            return;
        };
        let buf = &mut self.key_buf;
        buf.clear();
        for v in values {
            match v {
                Some(v) => {
                    buf.extend_from_slice(&(v.len() as u64).to_le_bytes());
                    buf.extend_from_slice(v);
                }
                None => buf.extend_from_slice(&u64::MAX.to_le_bytes()),
            }
        }
        self.keys
            .push(Some(xxhash_rust::xxh3::xxh3_64_with_seed(buf, seed)));
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
        cols.push(
            UInt64Chunked::from_iter_options(REC.into(), self.keys.into_iter()).into_column(),
        );
        DataFrame::new(height, cols)
    }
}

/// Turns increasing byte offsets into line numbers without rescanning from the start. A line
/// ends at LF, CRLF, or a lone CR (Excel for Mac's "CSV (Macintosh)" ends lines with CR
/// alone, and the CSV parser takes those as record ends too).
pub(crate) struct LineCounter<'a> {
    text: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    pub(crate) fn new(text: &'a [u8]) -> Self {
        LineCounter {
            text,
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
        let text = self.text;
        self.line += (self.offset..offset)
            .filter(|&i| match text[i] {
                b'\n' => true,
                b'\r' => text.get(i + 1) != Some(&b'\n'),
                _ => false,
            })
            .count() as u64;
        self.offset = offset;
        self.line
    }
}

/// The seed of record keys for values read as `label` (an encoding, or `xml` for decoded
/// text): the same bytes in two encodings are two records.
fn key_seed(label: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(label.as_bytes(), 0x0072_6563)
}

/// A line number as stored in `__line` (files of more than 4 billion lines keep the last).
fn line_u32(line: u64) -> u32 {
    u32::try_from(line).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_end_at_lf_crlf_and_a_lone_cr() {
        for text in [
            &b"a\nb\nc\nd"[..],
            b"a\r\nb\r\nc\r\nd",
            b"a\rb\rc\rd",
            b"a\r\nb\rc\nd",
        ] {
            let mut lines = LineCounter::new(text);
            let d = text.iter().position(|&b| b == b'd').unwrap();
            let c = text.iter().position(|&b| b == b'c').unwrap();
            assert_eq!(lines.line_at(c), 3, "{text:?}");
            assert_eq!(lines.line_at(d), 4, "{text:?}");
        }
        // A CRLF split between two calls counts once.
        let text = b"a\r\nb";
        let mut lines = LineCounter::new(text);
        assert_eq!(lines.line_at(2), 1);
        assert_eq!(lines.line_at(3), 2);
    }

    #[test]
    fn clip_cuts_on_characters_and_marks_the_cut() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "ab…");
        assert_eq!(clip("ñññññ", 4), "ñññ…");
        assert_eq!(clip("ñññ", 3), "ñññ");
        assert_eq!(clip("", 0), "");
        let huge = "x".repeat(1 << 20);
        assert_eq!(
            clip(&huge, MAX_REASON_CHARS).chars().count(),
            MAX_REASON_CHARS
        );
    }

    #[test]
    fn split_bad_reads_the_rule_prefix() {
        assert_eq!(
            split_bad("read.encoding: byte 3: e9"),
            ("read.encoding", "byte 3: e9")
        );
        assert_eq!(split_bad("read.too_long: x"), ("read.too_long", "x"));
        assert_eq!(
            split_bad("row has 3 fields, the header has 2"),
            ("read.fields", "row has 3 fields, the header has 2")
        );
        assert_eq!(split_bad("read.: x"), ("read.fields", "read.: x"));
        assert_eq!(split_bad("read.X y: z"), ("read.fields", "read.X y: z"));
    }

    #[test]
    fn listed_names_are_bounded() {
        let names: Vec<String> = (0..100)
            .map(|i| format!("{i}{}", "n".repeat(500)))
            .collect();
        let l = listed(&names);
        assert!(l.iter().all(|n| n.chars().count() <= MAX_NAME_CHARS));
        assert_eq!(l.len(), 4, "{l:?}");
        assert_eq!(l.last().unwrap(), "… and 97 more");
        let short: Vec<String> = (0..30).map(|i| format!("c{i}")).collect();
        let l = listed(&short);
        assert_eq!(l.len(), MAX_LISTED_NAMES + 1);
        assert_eq!(l.last().unwrap(), "… and 10 more");
        assert_eq!(listed(&short[..2]), ["c0", "c1"]);
    }
}
