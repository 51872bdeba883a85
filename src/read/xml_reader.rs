//! Streaming XML: one pass of `quick-xml` events, never a DOM. The record element, the ID
//! attribute and the child elements come from the recipe. The declared encoding is honoured
//! (Windows-1252 included). DOCTYPEs are skipped and entities other than the five XML ones
//! and character references are never resolved (kept as written), so an export cannot make
//! us read local files, fetch a DTD or expand entity bombs (billion laughs, quadratic blowup).
//!
//! Bytes that are not text in the file's encoding, and NUL bytes, make the record that holds
//! them a `read.encoding` / `read.nul` reject (outside records they are ignored: nothing there
//! is kept). A record longer than [`MAX_RECORD_BYTES`] is a `read.too_long` reject and its
//! text is not accumulated past that limit.

use std::path::Path;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use quick_xml::Reader;

use super::sniff::{self, normalize_header, Flaw, Mark};
use super::{
    bounded, clip, file_name, key_seed, line_u32, Columns, LineCounter, ReadError,
    MAX_KEPT_VALUE_BYTES, MAX_NAME_CHARS, MAX_RECORD_BYTES,
};
use crate::config::files::EncodingSpec;
use crate::config::Recipe;

pub(super) fn read(
    path: &Path,
    bytes: &[u8],
    recipe: &Recipe,
    wanted: &[&str],
) -> Result<(Columns, &'static str), ReadError> {
    let Some(xml) = recipe.source.xml.as_ref() else {
        return Err(ReadError::XmlNotConfigured {
            file: file_name(path),
            entity: recipe.entity.clone(),
        });
    };
    let spec = match recipe.source.encoding {
        EncodingSpec::Auto => declared_encoding(bytes),
        forced => forced,
    };
    let sniffed = sniff::sniff_encoding(bytes, spec);
    let Some((text, marks)) = sniff::decode_marked(bytes, sniffed) else {
        return Err(ReadError::Binary {
            path: path.to_path_buf(),
        });
    };
    let text: &str = &text;
    let record_name = xml.record.as_str();
    let id_attr = xml.id_attribute.as_deref();
    let folded: Vec<String> = wanted.iter().map(|w| normalize_header(w)).collect();
    let mut cols = Columns::new(wanted, text.len() / 400);
    let mut seen = vec![false; wanted.len()];
    // Values are decoded text by the time they are kept: the file's encoding is behind them.
    let seed = key_seed("xml");

    let mut reader = Reader::from_str(text);
    reader.config_mut().expand_empty_elements = true;
    let mut lines = LineCounter::new(text.as_bytes());
    let mut depth = 0usize;
    // Inside a record: the values so far, the child being read and its text.
    let mut current: Option<Record> = None;
    let mut child: Option<usize> = None;
    let mut child_text = String::new();
    // The next mark not yet looked at.
    let mut next_mark = 0usize;
    let err = |reader: &Reader<&[u8]>, lines: &mut LineCounter, message: String| ReadError::Xml {
        path: path.to_path_buf(),
        line: lines.line_at(usize::try_from(reader.error_position()).unwrap_or(usize::MAX)),
        message: bounded(message),
    };
    loop {
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(e) => return Err(err(&reader, &mut lines, e.to_string())),
        };
        let pos = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let mut record_starts = false;
        match event {
            Event::Start(e) => {
                depth += 1;
                let name = e.name().as_ref().to_string();
                if current.is_none() && name == record_name {
                    let start = text
                        .as_bytes()
                        .get(..pos)
                        .and_then(|b| b.iter().rposition(|&c| c == b'<'))
                        .unwrap_or(0);
                    // Flaws before this record were outside any record: nothing kept there.
                    while marks.get(next_mark).is_some_and(|m| m.text_offset < start) {
                        next_mark += 1;
                    }
                    let mut rec = Record {
                        line: lines.line_at(start),
                        start,
                        depth,
                        values: vec![None; wanted.len()],
                        kept: 0,
                        too_long: false,
                        flaw: None,
                    };
                    for attr in e.attributes().flatten() {
                        let key = attr.key.as_ref().to_string();
                        if id_attr.is_some_and(|a| a.eq_ignore_ascii_case(&key)) {
                            let raw = attr.value.to_string();
                            let value = quick_xml::escape::unescape_with(&raw, |ent| {
                                resolve_predefined_entity(ent)
                            })
                            .map(|v| v.into_owned())
                            .unwrap_or(raw);
                            if let Some(i) =
                                folded.iter().position(|f| *f == normalize_header(&key))
                            {
                                rec.keep(i, value);
                                seen[i] = true;
                            }
                        }
                    }
                    current = Some(rec);
                    record_starts = true;
                } else if current.is_some() && depth == current.as_ref().map_or(0, |r| r.depth + 1)
                {
                    let n = normalize_header(&name);
                    child = folded.iter().position(|f| *f == n);
                    child_text.clear();
                }
            }
            Event::End(_) => {
                let record_depth = current.as_ref().map(|r| r.depth);
                if record_depth.is_some_and(|d| depth == d + 1) {
                    if let (Some(i), Some(rec)) = (child.take(), current.as_mut()) {
                        rec.keep(i, std::mem::take(&mut child_text));
                        seen[i] = true;
                    }
                } else if record_depth == Some(depth) {
                    if let Some(mut rec) = current.take() {
                        rec.note_marks(&marks, &mut next_mark, pos, None, false);
                        let problem = rec.problem(pos, &mut lines);
                        let values = problem
                            .is_none()
                            .then(|| rec.values.iter().map(|v| v.as_deref().map(str::as_bytes)));
                        cols.push_key(values, seed);
                        for (b, v) in cols.builders.iter_mut().zip(rec.values) {
                            match v {
                                Some(v) => b.append_value(v),
                                None => b.append_null(),
                            }
                        }
                        cols.lines.push(line_u32(rec.line));
                        match problem {
                            Some(p) => cols.bad.append_value(bounded(p)),
                            None => cols.bad.append_null(),
                        }
                    }
                }
                depth = depth.saturating_sub(1);
            }
            Event::Text(t) if child.is_some() => {
                let t = t.xml10_content();
                push_text(&mut current, &mut child, &mut child_text, &t);
            }
            Event::CData(t) if child.is_some() => {
                let t = t.into_inner();
                push_text(&mut current, &mut child, &mut child_text, &t);
            }
            Event::GeneralRef(r) if child.is_some() => {
                let name = r.into_inner();
                let resolved =
                    match quick_xml::events::BytesRef::new(name.clone()).resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        _ => match resolve_predefined_entity(&name) {
                            Some(s) => s.to_string(),
                            // Custom or external entity: never expanded.
                            None => format!("&{name};"),
                        },
                    };
                push_text(&mut current, &mut child, &mut child_text, &resolved);
            }
            Event::Eof => {
                if depth > 0 || current.is_some() {
                    return Err(ReadError::Xml {
                        path: path.to_path_buf(),
                        line: lines.line_at(text.len()),
                        message: format!(
                            "the file ends inside an element ({depth} still open): truncated export"
                        ),
                    });
                }
                break;
            }
            _ => {}
        }
        // A flaw inside the record: remember the first, with the child it is in.
        if let Some(rec) = current.as_mut() {
            let in_child = child.and_then(|i| wanted.get(i)).copied();
            let in_value = in_child.is_some() || record_starts;
            rec.note_marks(&marks, &mut next_mark, pos, in_child, in_value);
        }
    }
    for (i, w) in wanted.iter().enumerate() {
        if !seen[i] && !cols.lines.is_empty() {
            cols.missing.push(w.to_string());
        }
    }
    cols.header = wanted
        .iter()
        .zip(&seen)
        .filter(|(_, s)| **s)
        .map(|(w, _)| w.to_string())
        .collect();
    Ok((cols, sniffed.name()))
}

/// A record element being read.
struct Record {
    line: u64,
    /// Offset of its `<` in the text.
    start: usize,
    depth: usize,
    values: Vec<Option<String>>,
    /// Bytes of values kept so far.
    kept: usize,
    too_long: bool,
    /// The first flaw in it, and the child element it is in (if a wanted one).
    flaw: Option<(Mark, Option<String>)>,
}

impl Record {
    fn keep(&mut self, i: usize, value: String) {
        self.kept = self.kept.saturating_add(value.len());
        if self.kept > MAX_RECORD_BYTES {
            self.too_long = true;
        }
        if let Some(slot) = self.values.get_mut(i) {
            *slot = Some(value);
        }
    }

    /// Takes the marks before `pos` (they are inside this record). A NUL anywhere in the
    /// record counts; a byte that is not text counts only `in_value` (inside a child the
    /// recipe reads, or in the record's start tag with the ID), as in a CSV row.
    fn note_marks(
        &mut self,
        marks: &[Mark],
        next: &mut usize,
        pos: usize,
        child: Option<&str>,
        in_value: bool,
    ) {
        while let Some(m) = marks.get(*next).filter(|m| m.text_offset < pos) {
            let counts = in_value || m.flaw == Flaw::Nul;
            if counts && self.flaw.is_none() {
                self.flaw = Some((*m, child.map(str::to_string)));
            }
            *next += 1;
        }
    }

    /// The `__bad` of the record that ends at `end`.
    fn problem(&mut self, end: usize, lines: &mut LineCounter) -> Option<String> {
        let len = end.saturating_sub(self.start);
        if self.too_long || len > MAX_RECORD_BYTES {
            for v in &mut self.values {
                if v.as_ref().is_some_and(|v| v.len() > MAX_KEPT_VALUE_BYTES) {
                    *v = None;
                }
            }
            return Some(format!(
                "read.too_long: the record is {len} bytes long, more than the {MAX_RECORD_BYTES} \
                 bytes a record may have; its long values are not kept"
            ));
        }
        let (mark, child) = self.flaw.take()?;
        let line = lines.line_at(mark.text_offset);
        let place = match child {
            Some(c) => format!(" (<{}>)", clip(&c, MAX_NAME_CHARS)),
            None => String::new(),
        };
        let hex = mark
            .flaw
            .bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ");
        Some(match mark.flaw {
            Flaw::Nul => format!(
                "read.nul: NUL byte at byte {} of the file, line {line}{place}: a text export never \
                 holds one",
                mark.file_offset
            ),
            Flaw::Invalid { .. } => format!(
                "read.encoding: byte {} of the file, line {line}{place}: {hex} is not text in the \
                 file's encoding",
                mark.file_offset
            ),
        })
    }
}

/// Adds text to the child being read, up to the record limit: past it the record is too long
/// and nothing more of it is kept.
fn push_text(
    current: &mut Option<Record>,
    child: &mut Option<usize>,
    child_text: &mut String,
    t: &str,
) {
    let Some(rec) = current.as_mut() else {
        return;
    };
    if rec
        .kept
        .saturating_add(child_text.len())
        .saturating_add(t.len())
        > MAX_RECORD_BYTES
    {
        rec.too_long = true;
        *child = None;
        *child_text = String::new();
        return;
    }
    child_text.push_str(t);
}

/// The `encoding="..."` of the XML declaration, if it names Windows-1252/Latin-1.
fn declared_encoding(bytes: &[u8]) -> EncodingSpec {
    let head = String::from_utf8_lossy(bytes.get(..200).unwrap_or(bytes)).to_lowercase();
    let decl = head.split("?>").next().unwrap_or("");
    if decl.contains("<?xml")
        && ["windows-1252", "cp1252", "iso-8859-1", "latin1", "latin-1"]
            .iter()
            .any(|e| decl.contains(e))
    {
        EncodingSpec::Windows1252
    } else {
        EncodingSpec::Auto
    }
}
