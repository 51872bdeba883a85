//! Streaming XML: one pass of `quick-xml` events, never a DOM. The record element, the ID
//! attribute and the child elements come from the recipe. The declared encoding is honoured
//! (Windows-1252 included). DOCTYPEs are skipped and entities other than the five XML ones
//! and character references are never resolved (kept as written), so an export cannot make
//! us read local files or expand entity bombs.

use std::path::Path;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use quick_xml::Reader;

use super::sniff::{self, normalize_header};
use super::{Columns, LineCounter, ReadError};
use crate::recipe::model::EncodingSpec;
use crate::recipe::Recipe;

pub(super) fn read(
    path: &Path,
    bytes: &[u8],
    recipe: &Recipe,
    wanted: &[&str],
) -> Result<(Columns, &'static str), ReadError> {
    let spec = match recipe.source.encoding {
        EncodingSpec::Auto => declared_encoding(bytes),
        forced => forced,
    };
    let decoded = sniff::decode(bytes, spec);
    let text: &str = &decoded.text;
    let xml = recipe
        .source
        .xml
        .as_ref()
        .expect("compile guarantees [source.xml] for XML sources");
    let record_name = xml.record.as_str();
    let id_attr = xml.id_attribute.as_deref();
    let folded: Vec<String> = wanted.iter().map(|w| normalize_header(w)).collect();
    let mut cols = Columns::new(wanted, text.len() / 400);
    let mut seen = vec![false; wanted.len()];

    let mut reader = Reader::from_str(text);
    reader.config_mut().expand_empty_elements = true;
    let mut lines = LineCounter::new(text);
    let mut depth = 0usize;
    // Inside a record: the values so far, the child being read and its text.
    let mut current: Option<Vec<Option<String>>> = None;
    let mut record_line = 0u64;
    let mut record_depth = 0usize;
    let mut child: Option<usize> = None;
    let mut child_text = String::new();
    let err = |reader: &Reader<&[u8]>, lines: &mut LineCounter, message: String| ReadError::Xml {
        path: path.to_path_buf(),
        line: lines.line_at(reader.error_position() as usize),
        message,
    };
    loop {
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(e) => return Err(err(&reader, &mut lines, e.to_string())),
        };
        match event {
            Event::Start(e) => {
                depth += 1;
                let name = e.name().as_ref().to_string();
                if current.is_none() && name == record_name {
                    let end = reader.buffer_position() as usize;
                    let start = text[..end].rfind('<').unwrap_or(0);
                    record_line = lines.line_at(start);
                    record_depth = depth;
                    let mut values = vec![None; wanted.len()];
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
                                values[i] = Some(value);
                                seen[i] = true;
                            }
                        }
                    }
                    current = Some(values);
                } else if current.is_some() && depth == record_depth + 1 {
                    let n = normalize_header(&name);
                    child = folded.iter().position(|f| *f == n);
                    child_text.clear();
                }
            }
            Event::End(_) => {
                if current.is_some() && depth == record_depth + 1 {
                    if let (Some(i), Some(values)) = (child.take(), current.as_mut()) {
                        values[i] = Some(std::mem::take(&mut child_text));
                        seen[i] = true;
                    }
                } else if current.is_some() && depth == record_depth {
                    let values = current.take().expect("checked");
                    for (b, v) in cols.builders.iter_mut().zip(values) {
                        match v {
                            Some(v) => b.append_value(v),
                            None => b.append_null(),
                        }
                    }
                    cols.lines.push(record_line as u32);
                    cols.bad.append_null();
                }
                depth = depth.saturating_sub(1);
            }
            Event::Text(t) if child.is_some() => child_text.push_str(&t.xml10_content()),
            Event::CData(t) if child.is_some() => child_text.push_str(&t.into_inner()),
            Event::GeneralRef(r) if child.is_some() => {
                let name = r.into_inner();
                match quick_xml::events::BytesRef::new(name.clone()).resolve_char_ref() {
                    Ok(Some(c)) => child_text.push(c),
                    _ => match resolve_predefined_entity(&name) {
                        Some(s) => child_text.push_str(s),
                        // Custom or external entity: never expanded.
                        None => {
                            child_text.push('&');
                            child_text.push_str(&name);
                            child_text.push(';');
                        }
                    },
                }
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
    Ok((cols, decoded.encoding))
}

/// The `encoding="..."` of the XML declaration, if it names Windows-1252/Latin-1.
fn declared_encoding(bytes: &[u8]) -> EncodingSpec {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).to_lowercase();
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
