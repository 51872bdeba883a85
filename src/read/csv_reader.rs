//! CSV in any common dialect. The `csv` crate does the quoting (separators and doubled quotes
//! inside quotes, line breaks inside quotes) and tells where each record starts, which is the
//! line we report.

use std::path::Path;

use super::sniff::{self, normalize_header};
use super::{Columns, LineCounter, ReadError};
use crate::recipe::Recipe;

pub(super) fn read(
    path: &Path,
    bytes: &[u8],
    recipe: &Recipe,
    wanted: &[&str],
) -> Result<(Columns, &'static str), ReadError> {
    let decoded = sniff::decode(bytes, recipe.source.encoding);
    let text: &str = &decoded.text;
    let delimiter = match recipe.source.delimiter.as_str() {
        "auto" => sniff::delimiter(text),
        d => d.as_bytes()[0],
    };
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut record = csv::ByteRecord::new();
    let csv_err = |e: csv::Error| ReadError::Csv {
        path: path.to_path_buf(),
        line: e.position().map(|p| p.line()).unwrap_or(0),
        message: e.to_string(),
    };
    // Header: the first record that is not blank.
    let header: Vec<String> = loop {
        if !rdr.read_byte_record(&mut record).map_err(csv_err)? {
            return Err(ReadError::NoHeader {
                path: path.to_path_buf(),
            });
        }
        if !is_blank(&record) {
            break record
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
        }
    };
    let folded: Vec<String> = header.iter().map(|h| normalize_header(h)).collect();
    // Rough row estimate from the average line length keeps builders from regrowing.
    let estimate = text.len() / (header.join(";").len().max(16) * 2);
    let mut cols = Columns::new(wanted, estimate);
    let mut lines = LineCounter::new(text);
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
    while rdr.read_byte_record(&mut record).map_err(csv_err)? {
        if is_blank(&record) {
            continue;
        }
        // The parser's own line count skips line breaks inside quotes; count them ourselves.
        // With CRLF the reported start can sit on the previous terminator's `\n`: step over it.
        let mut start = record.position().map(|p| p.byte() as usize).unwrap_or(0);
        while matches!(text.as_bytes().get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        let line = lines.line_at(start);
        for (b, i) in cols.builders.iter_mut().zip(&index) {
            match i.and_then(|i| record.get(i)) {
                // The whole text is valid UTF-8 and the parser splits only at ASCII bytes.
                Some(f) => b.append_value(std::str::from_utf8(f).unwrap_or_default()),
                None => b.append_null(),
            }
        }
        cols.lines.push(line as u32);
        if record.len() != header.len() {
            cols.bad.append_value(format!(
                "row has {} fields, the header has {}",
                record.len(),
                header.len()
            ));
        } else {
            cols.bad.append_null();
        }
    }
    Ok((cols, decoded.encoding))
}

/// Excel leaves rows of bare separators at the end of exports; they are not records.
fn is_blank(record: &csv::ByteRecord) -> bool {
    record
        .iter()
        .all(|f| f.iter().all(|b| b.is_ascii_whitespace()))
}
