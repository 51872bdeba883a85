//! CSV as the DMS writes it: `;` separator, CRLF line ends, `"` quoting only where needed. Tracks the
//! physical line each record starts on, counting the extra lines of quoted line breaks.

use super::record::Record;
use super::sink::TextSink;
use super::GenError;

/// A CSV file being written.
pub(super) struct CsvOut {
    sink: TextSink,
    next_line: u64,
}

/// True when a cell must be quoted: it holds the separator, a quote, CR or LF.
fn needs_quotes(cell: &str) -> bool {
    cell.bytes()
        .any(|b| matches!(b, b';' | b'"' | b'\r' | b'\n'))
}

fn push_cell(out: &mut String, cell: &str) -> u64 {
    if !needs_quotes(cell) {
        out.push_str(cell);
        return 0;
    }
    out.push('"');
    for ch in cell.chars() {
        if ch == '"' {
            out.push('"');
        }
        out.push(ch);
    }
    out.push('"');
    cell.bytes().filter(|&b| b == b'\n').count() as u64
}

impl CsvOut {
    /// Starts the file with its header row (line 1).
    pub(super) fn new(mut sink: TextSink, headers: &[&str]) -> CsvOut {
        let text = sink.text();
        let mut extra = 0;
        for (k, h) in headers.iter().enumerate() {
            if k > 0 {
                text.push(';');
            }
            extra += push_cell(text, h);
        }
        text.push_str("\r\n");
        CsvOut {
            sink,
            next_line: 2 + extra,
        }
    }

    /// Writes one record; returns the line it starts on.
    pub(super) fn write(&mut self, rec: &Record) -> Result<u64, GenError> {
        let start = self.next_line;
        let text = self.sink.text();
        let mut extra = 0;
        for (k, cell) in rec.cells().iter().enumerate() {
            if k > 0 {
                text.push(';');
            }
            extra += push_cell(text, cell);
        }
        text.push_str("\r\n");
        self.next_line += 1 + extra;
        self.sink.maybe_flush()?;
        Ok(start)
    }

    /// Flushes the file.
    pub(super) fn finish(self) -> Result<(), GenError> {
        self.sink.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::GenEncoding;
    use super::*;

    #[test]
    fn quotes_only_where_needed_and_counts_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        let sink = TextSink::create(&path, GenEncoding::Utf8).unwrap();
        let mut csv = CsvOut::new(sink, &["a", "b"]);
        let mut rec = Record::new(2);
        rec.set(0, "1");
        rec.set(1, "Ruta 8 km 50\nLote 3");
        assert_eq!(csv.write(&rec).unwrap(), 2);
        rec.set(1, "Av. X 1; Piso 2");
        assert_eq!(csv.write(&rec).unwrap(), 4);
        rec.set(1, "El \"Ombú\"");
        assert_eq!(csv.write(&rec).unwrap(), 5);
        rec.set(1, "plain");
        assert_eq!(csv.write(&rec).unwrap(), 6);
        csv.finish().unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            text,
            "a;b\r\n1;\"Ruta 8 km 50\nLote 3\"\r\n1;\"Av. X 1; Piso 2\"\r\n1;\"El \"\"Ombú\"\"\"\r\n1;plain\r\n"
        );
    }
}
