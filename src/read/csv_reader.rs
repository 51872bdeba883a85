//! CSV in any common dialect. The `csv` crate does the quoting (separators and doubled quotes
//! inside quotes, line breaks inside quotes) and tells where each record starts, which is the
//! line we report.
//!
//! The parser runs on the file's raw bytes (the separators and the quote are ASCII, the same
//! byte in UTF-8 and Windows-1252) and each value the recipe reads is decoded on its own, in
//! the encoding chosen for the whole file ([`sniff::sniff_encoding`]): a byte that is not text
//! in that encoding makes its row a `read.encoding` reject and leaves every other row alone.
//! No decoded copy of the whole file is made.

use std::borrow::Cow;
use std::path::Path;

use super::sniff::{self, normalize_header, Sniffed};
use super::{
    bounded, clip, key_seed, line_u32, Columns, LineCounter, ReadError, MAX_KEPT_VALUE_BYTES,
    MAX_NAME_CHARS, MAX_RECORD_BYTES,
};
use crate::config::Recipe;

pub(super) fn read(
    path: &Path,
    bytes: &[u8],
    recipe: &Recipe,
    wanted: &[&str],
) -> Result<(Columns, &'static str), ReadError> {
    let sniffed = sniff::sniff_encoding(bytes, recipe.source.encoding);
    let body = bytes.get(sniffed.bom..).unwrap_or_default();
    let delimiter = match recipe.source.delimiter.as_str() {
        "auto" => sniff::delimiter(body),
        d => d.as_bytes().first().copied().unwrap_or(b';'),
    };
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    let mut record = csv::ByteRecord::new();
    let mut lines = LineCounter::new(body);
    if !first_record_fits(body, delimiter) {
        let line = lines.line_at(
            body.iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count(),
        );
        return Err(ReadError::Csv {
            path: path.to_path_buf(),
            line,
            message: format!(
                "the first row (line {line}) is longer than the {MAX_RECORD_BYTES} bytes a record \
                 may have: not an export"
            ),
        });
    }
    let csv_err = |line: u64, message: String| ReadError::Csv {
        path: path.to_path_buf(),
        line,
        message: bounded(message),
    };
    let io_err =
        |e: csv::Error| csv_err(e.position().map(|p| p.line()).unwrap_or(0), e.to_string());
    // Header: the first record that is not blank.
    let header: Vec<String> = loop {
        if !rdr.read_byte_record(&mut record).map_err(io_err)? {
            return Err(ReadError::NoHeader {
                path: path.to_path_buf(),
            });
        }
        let span = span_of(&record, &rdr, body);
        if span.len() > MAX_RECORD_BYTES {
            let line = lines.line_at(span.start);
            return Err(csv_err(
                line,
                format!(
                    "the header row (line {line}) is {} bytes long, more than the {MAX_RECORD_BYTES} \
                     bytes a record may have: not an export",
                    span.len()
                ),
            ));
        }
        if !is_blank(&record) {
            break record
                .iter()
                .map(|f| decode_lossy(sniffed, f).into_owned())
                .collect();
        }
    };
    let folded: Vec<String> = header.iter().map(|h| normalize_header(h)).collect();
    let mut cols = Columns::new(wanted, estimate_rows(body));
    cols.header = header.clone();
    let index: Vec<Option<usize>> = wanted
        .iter()
        .map(|w| {
            let w = normalize_header(w);
            folded.iter().position(|h| *h == w)
        })
        .collect();
    for (w, i) in wanted.iter().zip(&index) {
        if i.is_none() {
            cols.missing.push(w.to_string());
        }
    }
    let seed = key_seed(sniffed.name());
    let ends_with_break = matches!(body.last(), Some(b'\n' | b'\r'));
    while rdr.read_byte_record(&mut record).map_err(io_err)? {
        if is_blank(&record) {
            continue;
        }
        let span = span_of(&record, &rdr, body);
        let raw = body.get(span.clone()).unwrap_or_default();
        let line = lines.line_at(span.start);
        // The last record: a file that ends inside it was cut (or has a runaway quote). Its
        // rows after the cut would be deleted as "gone from the snapshot": quarantine.
        if span.end >= body.len() {
            if ends_inside_quotes(raw, delimiter) {
                let last = lines.line_at(body.len());
                return Err(csv_err(
                    line,
                    format!(
                        "the file ends inside a quoted value that starts in this row (which runs \
                         to line {last}): a truncated export or a quote that is never closed"
                    ),
                ));
            }
            if !ends_with_break && record.len() < header.len() {
                return Err(csv_err(
                    line,
                    format!(
                        "the file ends in the middle of this row ({} of {} fields, no final line \
                         break): a truncated export",
                        record.len(),
                        header.len()
                    ),
                ));
            }
        }
        let file_offset = sniffed.bom + span.start;
        let problem = if raw.len() > MAX_RECORD_BYTES {
            for (b, i) in cols.builders.iter_mut().zip(&index) {
                match i.and_then(|i| record.get(i)) {
                    Some(f) if f.len() <= MAX_KEPT_VALUE_BYTES => {
                        b.append_value(display_value(&decode_lossy(sniffed, f)))
                    }
                    _ => b.append_null(),
                }
            }
            Some(format!(
                "read.too_long: the row is {} bytes long, more than the {MAX_RECORD_BYTES} bytes \
                 a record may have; its values are not kept",
                raw.len()
            ))
        } else if let Some(p) = raw
            .contains(&0)
            .then(|| raw.iter().position(|&b| b == 0))
            .flatten()
        {
            for (b, i) in cols.builders.iter_mut().zip(&index) {
                match i.and_then(|i| record.get(i)) {
                    Some(f) => b.append_value(display_value(&decode_lossy(sniffed, f))),
                    None => b.append_null(),
                }
            }
            let column = record
                .iter()
                .position(|f| f.contains(&0))
                .map(|i| column_name(&header, i))
                .unwrap_or_default();
            Some(format!(
                "read.nul: NUL byte at byte {} of the file{column}: a text export never holds \
                 one",
                file_offset + p
            ))
        } else {
            let mut problem = None;
            for (b, i) in cols.builders.iter_mut().zip(&index) {
                let Some((i, f)) = i.and_then(|i| Some((i, record.get(i)?))) else {
                    b.append_null();
                    continue;
                };
                match decode(sniffed, f) {
                    Ok(v) => b.append_value(v),
                    Err(flaw) => {
                        let value = display_value(&decode_lossy(sniffed, f)).into_owned();
                        if problem.is_none() {
                            problem = Some(encoding_reason(
                                sniffed,
                                &flaw,
                                f,
                                raw,
                                file_offset,
                                &column_name(&header, i),
                                &value,
                            ));
                        }
                        b.append_value(value);
                    }
                }
            }
            problem.or_else(|| {
                (record.len() != header.len()).then(|| {
                    format!(
                        "row has {} fields, the header has {}",
                        record.len(),
                        header.len()
                    )
                })
            })
        };
        let values = problem
            .is_none()
            .then(|| index.iter().map(|i| i.and_then(|i| record.get(i))));
        cols.push_key(values, seed);
        match problem {
            Some(p) => cols.bad.append_value(bounded(p)),
            None => cols.bad.append_null(),
        }
        cols.lines.push(line_u32(line));
        if record.as_slice().len() > MAX_RECORD_BYTES {
            // Give back the buffer a huge record grew.
            record = csv::ByteRecord::new();
        }
    }
    Ok((cols, sniffed.name()))
}

/// The bytes of the record just read: from its first byte (the parser's start can sit on
/// the previous record's line break or on blank lines) to the end of what it consumed.
fn span_of(
    record: &csv::ByteRecord,
    rdr: &csv::Reader<&[u8]>,
    body: &[u8],
) -> std::ops::Range<usize> {
    let end = usize::try_from(rdr.position().byte())
        .unwrap_or(usize::MAX)
        .min(body.len());
    let mut start = record
        .position()
        .and_then(|p| usize::try_from(p.byte()).ok())
        .unwrap_or(0)
        .min(end);
    while start < end && matches!(body.get(start), Some(b'\r' | b'\n')) {
        start += 1;
    }
    start..end
}

/// ` (column "Teléfono")`, or ` (field 14)` past the header.
fn column_name(header: &[String], i: usize) -> String {
    match header.get(i) {
        Some(h) => format!(" (column \"{}\")", clip(h, MAX_NAME_CHARS)),
        None => format!(" (field {})", i + 1),
    }
}

/// Why a value does not decode.
struct Flaw {
    /// Offset of the bad bytes in the value.
    at: usize,
    len: usize,
}

/// A value in the file's encoding, or where it stops being text in it.
fn decode(sniffed: Sniffed, f: &[u8]) -> Result<Cow<'_, str>, Flaw> {
    if sniffed.is_utf8() {
        std::str::from_utf8(f).map(Cow::Borrowed).map_err(|e| Flaw {
            at: e.valid_up_to(),
            len: e
                .error_len()
                .unwrap_or(f.len().saturating_sub(e.valid_up_to())),
        })
    } else {
        let undefined = |b: &u8| (0x81..=0x9D).contains(b) && sniff::CP1252_UNDEFINED.contains(b);
        match f.iter().position(undefined) {
            Some(at) => Err(Flaw { at, len: 1 }),
            None => Ok(sniffed.encoding.decode_without_bom_handling(f).0),
        }
    }
}

/// A value decoded whatever it holds (bad bytes become U+FFFD).
fn decode_lossy(sniffed: Sniffed, f: &[u8]) -> Cow<'_, str> {
    sniffed.encoding.decode_without_bom_handling(f).0
}

/// A value of a rejected row as kept (for reasons): NUL and control characters other than
/// line breaks and tabs become U+FFFD, so none reaches anything downstream.
fn display_value(v: &str) -> Cow<'_, str> {
    let odd = |c: char| c.is_control() && !matches!(c, '\t' | '\n' | '\r');
    if v.chars().any(odd) {
        Cow::Owned(
            v.chars()
                .map(|c| if odd(c) { '\u{FFFD}' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(v)
    }
}

/// `read.encoding: byte 4711 of the file (column "Email"): e9 is not valid UTF-8 (bytes
/// 6f 72 72 [e9] 61 2c; the value reads "Corr�a, Florencia")`. The file offset is found by
/// looking for the bytes around the flaw in the record; the value offset stands in when the
/// value was unquoted in a way that changed them (doubled quotes).
fn encoding_reason(
    sniffed: Sniffed,
    flaw: &Flaw,
    f: &[u8],
    raw: &[u8],
    record_offset: usize,
    column: &str,
    value: &str,
) -> String {
    let bad_end = (flaw.at + flaw.len.max(1)).min(f.len());
    let before = flaw.at.saturating_sub(4);
    let after = (bad_end + 4).min(f.len());
    let needle = f.get(before..bad_end).unwrap_or_default();
    let place = match find(raw, needle) {
        Some(p) => format!(
            "byte {} of the file",
            record_offset + p + (flaw.at - before)
        ),
        None => format!("byte {} of the value", flaw.at),
    };
    let hex = |b: &[u8]| {
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let context = [
        hex(f.get(before..flaw.at).unwrap_or_default()),
        format!("[{}]", hex(f.get(flaw.at..bad_end).unwrap_or_default())),
        hex(f.get(bad_end..after).unwrap_or_default()),
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join(" ");
    let what = if sniffed.is_utf8() {
        "is not valid UTF-8"
    } else {
        "is not a Windows-1252 character"
    };
    format!(
        "read.encoding: {place}{column}: {} {what} (bytes {context}; the value reads \"{}\")",
        hex(f.get(flaw.at..bad_end).unwrap_or_default()),
        clip(value, 60)
    )
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Where the `csv` parser is within a record, by the same rules: a quote opens a quoted value
/// only at the start of a field, `""` inside it is a quote, the next lone quote closes it, and
/// a line break outside quotes ends the record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quoting {
    FieldStart,
    InField,
    InQuotes,
    /// A quote inside quotes: closing, or the first of `""`.
    QuoteInQuotes,
}

impl Quoting {
    /// Takes one byte; true when it ends the record.
    fn feed(&mut self, b: u8, delimiter: u8) -> bool {
        match *self {
            Quoting::InQuotes => {
                if b == b'"' {
                    *self = Quoting::QuoteInQuotes;
                }
                false
            }
            Quoting::QuoteInQuotes if b == b'"' => {
                *self = Quoting::InQuotes;
                false
            }
            Quoting::FieldStart if b == b'"' => {
                *self = Quoting::InQuotes;
                false
            }
            _ if b == delimiter => {
                *self = Quoting::FieldStart;
                false
            }
            _ if b == b'\n' || b == b'\r' => {
                *self = Quoting::FieldStart;
                true
            }
            _ => {
                *self = Quoting::InField;
                false
            }
        }
    }
}

/// Whether the last record of a file is still inside a quoted value at its end.
fn ends_inside_quotes(raw: &[u8], delimiter: u8) -> bool {
    let mut q = Quoting::FieldStart;
    for &b in raw {
        q.feed(b, delimiter);
    }
    q == Quoting::InQuotes
}

/// Whether the first record (after blank lines) fits in [`MAX_RECORD_BYTES`], looking at no
/// more than that many bytes. Checked before parsing because the `csv` reader keeps a copy of
/// the first record it reads: a 200 MB header would cost its size three times over.
fn first_record_fits(body: &[u8], delimiter: u8) -> bool {
    let start = body
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(body.len());
    let rest = body.get(start..).unwrap_or_default();
    let window = rest.get(..=MAX_RECORD_BYTES).unwrap_or(rest);
    let mut q = Quoting::FieldStart;
    window.iter().any(|&b| q.feed(b, delimiter)) || window.len() <= MAX_RECORD_BYTES
}

/// Rows expected, from the average length of the lines in the first 64 KiB (so a file with a
/// 200 MB line does not reserve millions of rows).
fn estimate_rows(body: &[u8]) -> usize {
    let prefix = body.get(..64 * 1024).unwrap_or(body);
    let breaks = prefix.iter().filter(|&&b| b == b'\n').count();
    let avg = prefix.len() / breaks.max(1);
    body.len() / avg.max(16)
}

/// Excel leaves rows of bare separators at the end of exports; they are not records.
fn is_blank(record: &csv::ByteRecord) -> bool {
    record
        .iter()
        .all(|f| f.iter().all(|b| b.is_ascii_whitespace()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_quotes_at_the_end_are_seen_as_the_parser_sees_them() {
        assert!(ends_inside_quotes(b"1;\"abc", b';'));
        assert!(ends_inside_quotes(b"1;\"a\"\"bc", b';'));
        assert!(ends_inside_quotes(b"1;\"a;b\nc", b';'));
        assert!(!ends_inside_quotes(b"1;\"abc\"", b';'));
        assert!(!ends_inside_quotes(b"1;\"a\"\"bc\"\n", b';'));
        // A quote inside an unquoted value is a plain character.
        assert!(!ends_inside_quotes(b"1;ab\"c", b';'));
        assert!(!ends_inside_quotes(b"1,\"x\"y\"", b','));
        assert!(ends_inside_quotes(b"1,\"", b','));
    }

    #[test]
    fn a_huge_first_record_is_seen_without_parsing_it() {
        let mut body = b"\r\n\nNro;".to_vec();
        body.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES));
        assert!(!first_record_fits(&body, b';'));
        body.truncate(MAX_RECORD_BYTES);
        assert!(first_record_fits(&body, b';'));
        // A quoted line break does not end the record; the one after the quote does.
        let mut body = b"a;\"b\n".to_vec();
        body.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES));
        assert!(!first_record_fits(&body, b';'));
        assert!(first_record_fits(b"a;\"b\nc\"\n1;2", b';'));
    }

    #[test]
    fn estimate_is_bounded_by_the_line_length() {
        assert_eq!(estimate_rows(&[b'x'; 1 << 20]), 16);
        assert_eq!(
            estimate_rows(&b"abcdefghijklmnopqrstuvwxyz0123456789abc\n".repeat(1000)),
            1000
        );
    }
}
