//! unidades.xml as the contract's example shows it: `<Unidades generado="...">` holding one
//! `<Unidad id="...">` per vehicle with one child element per field. Optional elements may be left
//! out or written empty (`<Venta/>`). The declaration names the real encoding.

use super::calendar::push_iso_evening;
use super::record::Record;
use super::sink::TextSink;
use super::{GenEncoding, GenError};

/// An XML file being written.
pub(super) struct XmlOut {
    sink: TextSink,
    names: &'static [&'static str],
    next_line: u64,
}

/// Appends `s` with `&`, `<`, `>` and `"` escaped.
fn push_escaped(out: &mut String, s: &str) {
    if !s.bytes().any(|b| matches!(b, b'&' | b'<' | b'>' | b'"')) {
        out.push_str(s);
        return;
    }
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

impl XmlOut {
    /// Writes the declaration and the root start tag. `names` are the record's columns: the first is
    /// the `id` attribute, the others child elements.
    pub(super) fn new(
        mut sink: TextSink,
        encoding: GenEncoding,
        day: i32,
        names: &'static [&'static str],
    ) -> XmlOut {
        let label = match encoding {
            GenEncoding::Cp1252 => "Windows-1252",
            GenEncoding::Utf8 | GenEncoding::Utf8Bom => "UTF-8",
        };
        let text = sink.text();
        text.push_str("<?xml version=\"1.0\" encoding=\"");
        text.push_str(label);
        text.push_str("\"?>\r\n<Unidades generado=\"");
        push_iso_evening(text, day);
        text.push_str("\">\r\n");
        XmlOut {
            sink,
            names,
            next_line: 3,
        }
    }

    /// Writes one `<Unidad>`; returns the line of its start tag. Cells must not hold line breaks.
    pub(super) fn write(&mut self, rec: &Record) -> Result<u64, GenError> {
        let start = self.next_line;
        let text = self.sink.text();
        text.push_str("  <");
        text.push_str("Unidad id=\"");
        push_escaped(text, rec.get(0));
        text.push_str("\">\r\n");
        let mut lines = 2;
        for (k, name) in self.names.iter().enumerate().skip(1) {
            if rec.is_absent(k) {
                continue;
            }
            lines += 1;
            text.push_str("    <");
            text.push_str(name);
            let value = rec.get(k);
            if value.is_empty() {
                text.push_str("/>\r\n");
            } else {
                text.push('>');
                push_escaped(text, value);
                text.push_str("</");
                text.push_str(name);
                text.push_str(">\r\n");
            }
        }
        text.push_str("  </Unidad>\r\n");
        self.next_line += lines;
        self.sink.maybe_flush()?;
        Ok(start)
    }

    /// Closes the root and flushes the file.
    pub(super) fn finish(mut self) -> Result<(), GenError> {
        self.sink.text().push_str("</Unidades>\r\n");
        self.sink.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::calendar::days_from_civil;
    use super::*;

    #[test]
    fn writes_the_contract_shape_with_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.xml");
        let sink = TextSink::create(&path, GenEncoding::Utf8).unwrap();
        const NAMES: [&str; 4] = ["id", "Version", "Venta", "Cliente"];
        let mut xml = XmlOut::new(
            sink,
            GenEncoding::Utf8,
            days_from_civil(2026, 11, 20),
            &NAMES,
        );
        let mut rec = Record::new(4);
        rec.set(0, "U000001");
        rec.set(1, "XLT \"Black\" & <Sport>");
        rec.mark_absent(3);
        assert_eq!(xml.write(&rec).unwrap(), 3);
        assert_eq!(xml.write(&rec).unwrap(), 7);
        xml.finish().unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        assert_eq!(lines[1], "<Unidades generado=\"2026-11-20T23:00:00\">");
        assert_eq!(lines[2], "  <Unidad id=\"U000001\">");
        assert_eq!(
            lines[3],
            "    <Version>XLT &quot;Black&quot; &amp; &lt;Sport&gt;</Version>"
        );
        assert_eq!(lines[4], "    <Venta/>");
        assert_eq!(lines[5], "  </Unidad>");
        assert_eq!(lines[6], "  <Unidad id=\"U000001\">");
        assert_eq!(lines[10], "</Unidades>");
    }
}
