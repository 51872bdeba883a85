//! PostgreSQL COPY text format: the escaping the main crate uses to write it and the parser
//! `upsert_row_by_row` uses to read it back. The parser follows the server's rules (see the
//! COPY documentation, "Text Format") so both upsert paths accept the same input.

use std::io::BufRead;

use polars::prelude::{DataFrame, PolarsResult};

use crate::support::frame_rows::ColumnView;

/// The null marker of COPY text format (the default `NULL '\N'`).
pub const COPY_NULL: &str = "\\N";

/// Escapes one value for COPY text format: backslash, tab, newline and carriage return become
/// `\\`, `\t`, `\n` and `\r`; everything else (accents, quotes, other control characters) is
/// copied as is since the connection is UTF-8. Write [`COPY_NULL`] for a null instead of
/// calling this. A NUL character cannot be stored in a PostgreSQL text value at all: the
/// server rejects the row, so strip NULs upstream if the source may contain them.
pub fn copy_escape(value: &str, out: &mut String) {
    if !value.contains(['\\', '\t', '\n', '\r']) {
        out.push_str(value);
        return;
    }
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            other => out.push(other),
        }
    }
}

/// Why a COPY text row could not be parsed.
#[derive(Debug)]
pub(crate) enum ParseError {
    Read(std::io::Error),
    /// `line` is 1-based, counted like the server counts COPY lines.
    Malformed {
        line: u64,
        message: String,
    },
}

/// Reads COPY text rows one at a time from a stream.
pub(crate) struct CopyRows<R> {
    input: R,
    line: u64,
    raw: Vec<u8>,
    done: bool,
}

impl<R: BufRead> CopyRows<R> {
    pub(crate) fn new(input: R) -> Self {
        CopyRows {
            input,
            line: 0,
            raw: Vec::new(),
            done: false,
        }
    }

    /// Line number of the row last returned.
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// The next row's fields (`None` = null), or `None` at the end of the data (end of the
    /// stream or a `\.` line).
    pub(crate) fn next_row(&mut self) -> Result<Option<Vec<Option<String>>>, ParseError> {
        if self.done {
            return Ok(None);
        }
        self.raw.clear();
        let mut total = 0;
        // A newline preceded by an odd number of backslashes is data, not the end of the row.
        loop {
            let read = self
                .input
                .read_until(b'\n', &mut self.raw)
                .map_err(ParseError::Read)?;
            total += read;
            if read == 0 || !self.raw.ends_with(b"\n") {
                break;
            }
            let body = &self.raw[..self.raw.len() - 1];
            let backslashes = body.iter().rev().take_while(|&&b| b == b'\\').count();
            if backslashes % 2 == 0 {
                self.raw.pop();
                break;
            }
        }
        if total == 0 {
            self.done = true;
            return Ok(None);
        }
        self.line += 1;
        if self.raw.last() == Some(&b'\r') {
            self.raw.pop();
        }
        if self.raw == b"\\." {
            self.done = true;
            return Ok(None);
        }
        parse_fields(&self.raw)
            .map(Some)
            .map_err(|message| ParseError::Malformed {
                line: self.line,
                message,
            })
    }
}

/// Splits one line into fields and undoes the escapes.
fn parse_fields(raw: &[u8]) -> Result<Vec<Option<String>>, String> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i <= raw.len() {
        if i == raw.len() || raw[i] == b'\t' {
            fields.push(parse_field(&raw[start..i])?);
            start = i + 1;
        } else if raw[i] == b'\\' {
            i += 1; // the escaped byte is data even if it is a tab
        }
        i += 1;
    }
    Ok(fields)
}

fn parse_field(raw: &[u8]) -> Result<Option<String>, String> {
    if raw == COPY_NULL.as_bytes() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        i += 1;
        if b == b'\r' {
            return Err("literal carriage return in data: write it as \\r".to_string());
        }
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&e) = raw.get(i) else {
            // A lone trailing backslash: the server keeps it as is.
            out.push(b'\\');
            break;
        };
        i += 1;
        match e {
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut value = u32::from(e - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((value & 0xff) as u8);
            }
            b'x' if raw.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut value = 0u32;
                for _ in 0..2 {
                    match raw.get(i).and_then(|d| char::from(*d).to_digit(16)) {
                        Some(d) => {
                            value = value * 16 + d;
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push(value as u8);
            }
            other => out.push(other),
        }
    }
    if out.contains(&0) {
        return Err("NUL character in data: PostgreSQL text cannot hold it".to_string());
    }
    String::from_utf8(out)
        .map(Some)
        .map_err(|e| format!("invalid UTF-8 in data: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escape(value: &str) -> String {
        let mut out = String::new();
        copy_escape(value, &mut out);
        out
    }

    fn rows(text: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        let mut reader = CopyRows::new(text.as_bytes());
        let mut out = Vec::new();
        loop {
            match reader.next_row() {
                Ok(Some(row)) => out.push(row),
                Ok(None) => return Ok(out),
                Err(ParseError::Malformed { line, message }) => {
                    return Err(format!("line {line}: {message}"))
                }
                Err(ParseError::Read(e)) => return Err(e.to_string()),
            }
        }
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn escape_handles_the_four_special_characters() {
        assert_eq!(escape("plain Núñez \"q\" 'q'"), "plain Núñez \"q\" 'q'");
        assert_eq!(escape("a\tb\nc\rd\\e"), "a\\tb\\nc\\rd\\\\e");
        // A value that looks like the null marker or the end marker stays data.
        assert_eq!(escape("\\N"), "\\\\N");
        assert_eq!(escape("\\."), "\\\\.");
    }

    #[test]
    fn parse_round_trips_escaped_values() {
        let values = [
            "a\tb",
            "line1\nline2",
            "cr\r",
            "back\\slash",
            "\\N",
            "Núñez",
            "",
        ];
        let mut text = String::from("id1");
        for v in values {
            text.push('\t');
            copy_escape(v, &mut text);
        }
        text.push('\t');
        text.push_str(COPY_NULL);
        text.push('\n');
        let parsed = rows(&text).unwrap();
        let mut expected: Vec<Option<String>> = vec![s("id1")];
        expected.extend(values.iter().map(|v| s(v)));
        expected.push(None);
        assert_eq!(parsed, vec![expected]);
    }

    #[test]
    fn parse_follows_server_escapes() {
        let parsed = rows("\\101\\x42\\x4a\\q\\b\\v\\f\\xZ\tx\\\ty\n").unwrap();
        assert_eq!(parsed, vec![vec![s("ABJq\u{8}\u{b}\u{c}xZ"), s("x\ty")]]);
    }

    #[test]
    fn parse_handles_line_endings_and_end_marker() {
        assert_eq!(rows("").unwrap(), Vec::<Vec<Option<String>>>::new());
        assert_eq!(rows("a\tb").unwrap(), vec![vec![s("a"), s("b")]]);
        assert_eq!(
            rows("a\r\nb\r\n").unwrap(),
            vec![vec![s("a")], vec![s("b")]]
        );
        assert_eq!(rows("a\n\\.\nignored\n").unwrap(), vec![vec![s("a")]]);
        // Backslash-newline is a newline inside the value.
        assert_eq!(rows("a\\\nb\n").unwrap(), vec![vec![s("a\nb")]]);
        // An empty line is one empty field.
        assert_eq!(rows("\n").unwrap(), vec![vec![s("")]]);
    }

    #[test]
    fn parse_rejects_what_the_server_rejects() {
        let err = rows("ok\nbad\rvalue\n").unwrap_err();
        assert!(err.starts_with("line 2: literal carriage return"), "{err}");
        assert!(rows("\\xff\n").unwrap_err().contains("UTF-8"));
        assert!(rows("a\\000b\n").unwrap_err().contains("NUL"));
    }
}

/// A frame as PostgreSQL `COPY ... FROM STDIN` text (tab-separated, `\N` for null,
/// backslash escapes), rendered a thousand rows at a time so a million-row frame never
/// exists twice in memory.
pub struct CopyText {
    views: Vec<ColumnView>,
    height: usize,
    row: usize,
    buf: Vec<u8>,
    pos: usize,
}

impl CopyText {
    pub fn new(df: &DataFrame) -> PolarsResult<CopyText> {
        Ok(CopyText {
            views: df
                .columns()
                .iter()
                .map(ColumnView::new)
                .collect::<PolarsResult<_>>()?,
            height: df.height(),
            row: 0,
            buf: Vec::new(),
            pos: 0,
        })
    }

    fn refill(&mut self) {
        self.buf.clear();
        self.pos = 0;
        let end = (self.row + 1000).min(self.height);
        let mut line = String::new();
        for i in self.row..end {
            line.clear();
            for (c, v) in self.views.iter().enumerate() {
                if c > 0 {
                    line.push('\t');
                }
                match v.text(i) {
                    None => line.push_str("\\N"),
                    Some(t) if matches!(v, ColumnView::Bool(_)) => {
                        line.push_str(if t == "true" { "t" } else { "f" })
                    }
                    Some(t) => copy_escape(&t, &mut line),
                }
            }
            line.push('\n');
            self.buf.extend_from_slice(line.as_bytes());
        }
        self.row = end;
    }
}

impl std::io::Read for CopyText {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.buf.len() {
            if self.row >= self.height {
                return Ok(0);
            }
            self.refill();
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod frame_copy_tests {
    use super::*;
    use polars::df;
    use std::io::Read;

    #[test]
    fn copy_text_escapes_and_marks_nulls() {
        let df = df!(
            "id" => ["1", "2"],
            "s" => [Some("a\tb\\c\nd"), None],
            "n" => [Some(3i64), None],
            "b" => [Some(true), Some(false)]
        )
        .unwrap();
        let mut out = String::new();
        CopyText::new(&df)
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "1\ta\\tb\\\\c\\nd\t3\tt\n2\t\\N\t\\N\tf\n");
    }
}
