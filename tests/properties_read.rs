//! Property tests of the reader (`read::read_file`): whatever records the `csv` crate writes
//! (any of the four separators, quotes, embedded line breaks, accents; UTF-8, UTF-8 with a BOM
//! or Windows-1252; CRLF or LF), the reader gives the same values back, and each record's
//! `__line` is the physical line where it starts. The same for XML exports: any text (with
//! `<>&"'` escaped, character references, CDATA, accents) and optional elements left out.

use std::path::Path;

use dropsync::config::{load_dir, Recipe};
use dropsync::read::{read_file, BAD, LINE};
use polars::prelude::*;
use proptest::prelude::*;

/// The CSV columns; accented, so a Windows-1252 file always has evidence of its encoding.
const CSV_COLUMNS: [&str; 4] = ["Código", "Razón Social", "Teléfono", "Dirección"];

fn recipe(dir: &Path, toml: &str) -> Recipe {
    std::fs::write(dir.join("props.toml"), toml).unwrap();
    load_dir(dir).unwrap().entities.remove(0)
}

fn csv_recipe(dir: &Path) -> Recipe {
    recipe(
        dir,
        r#"entity = "props"
[source]
files = ["props.csv"]
[id]
column = "Código"
[[field]]
name = "razon"
from = "Razón Social"
[[field]]
name = "telefono"
from = "Teléfono"
[[field]]
name = "direccion"
from = "Dirección"
"#,
    )
}

fn xml_recipe(dir: &Path) -> Recipe {
    recipe(
        dir,
        r#"entity = "props"
[source]
files = ["props.xml"]
[source.xml]
record = "Unidad"
id_attribute = "id"
[id]
column = "id"
[[field]]
name = "marca"
from = "Marca"
[[field]]
name = "modelo"
from = "Modelo"
[[field]]
name = "color"
from = "Color"
"#,
    )
}

fn column(df: &DataFrame, name: &str) -> Vec<Option<String>> {
    df.column(name)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

fn lines(df: &DataFrame) -> Vec<u32> {
    df.column(LINE)
        .unwrap()
        .u32()
        .unwrap()
        .iter()
        .map(|l| l.unwrap())
        .collect()
}

/// Text for values: ASCII, the separators, quotes, line breaks, spaces, and the accented
/// letters of Spanish exports. No symbol from 0x80-0xBF of Windows-1252 (`º`, `¿`, NBSP...):
/// after an upper-case accented letter it would happen to be valid UTF-8, which is the one
/// case where the encoding sniffer is allowed to guess wrong.
fn csv_text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9 ;,\t|\"'\n.\\-/áéíóúñüÁÉÍÓÚÑÜ]{0,12}|(\r\n)")
        .unwrap()
}

#[derive(Debug, Clone, Copy)]
enum Enc {
    Utf8,
    Utf8Bom,
    Cp1252,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn csv_records_read_back_with_their_start_lines(
        rows in proptest::collection::vec((csv_text(), csv_text(), csv_text()), 1..12),
        delimiter in prop::sample::select(vec![b';', b',', b'\t', b'|']),
        crlf in any::<bool>(),
        enc in prop::sample::select(vec![Enc::Utf8, Enc::Utf8Bom, Enc::Cp1252]),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let r = csv_recipe(dir.path());
        let mut wtr = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .terminator(if crlf { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') })
            .from_writer(Vec::new());
        wtr.write_record(CSV_COLUMNS).unwrap();
        let mut starts = Vec::new();
        for (i, (a, b, c)) in rows.iter().enumerate() {
            wtr.flush().unwrap();
            starts.push(wtr.get_ref().len());
            // The ID is never blank: an all-blank row is not a record.
            wtr.write_record([format!("id{i}{a}").as_str(), a, b, c]).unwrap();
        }
        let utf8 = wtr.into_inner().unwrap();
        let expected_lines: Vec<u32> = starts
            .iter()
            .map(|&s| utf8[..s].iter().filter(|&&b| b == b'\n').count() as u32 + 1)
            .collect();
        let text = String::from_utf8(utf8).unwrap();
        let bytes = match enc {
            Enc::Utf8 => text.clone().into_bytes(),
            Enc::Utf8Bom => [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat(),
            Enc::Cp1252 => encoding_rs::WINDOWS_1252.encode(&text).0.into_owned(),
        };
        let path = dir.path().join("props.csv");
        std::fs::write(&path, &bytes).unwrap();
        let raw = read_file(&path, &r).unwrap();
        let expected_encoding = match enc {
            Enc::Utf8 => "utf-8",
            Enc::Utf8Bom => "utf-8-bom",
            Enc::Cp1252 => "windows-1252",
        };
        prop_assert_eq!(raw.encoding, expected_encoding);
        prop_assert_eq!(column(&raw.frame, BAD), vec![None; rows.len()]);
        let ids: Vec<Option<String>> =
            rows.iter().enumerate().map(|(i, (a, _, _))| Some(format!("id{i}{a}"))).collect();
        prop_assert_eq!(column(&raw.frame, "Código"), ids);
        for (k, name) in CSV_COLUMNS.iter().enumerate().skip(1) {
            let want: Vec<Option<String>> = rows
                .iter()
                .map(|r| Some([&r.0, &r.1, &r.2][k - 1].to_string()))
                .collect();
            prop_assert_eq!(column(&raw.frame, name), want, "column {}", name);
        }
        prop_assert_eq!(lines(&raw.frame), expected_lines);
    }
}

/// One field of an XML record: missing, or present with a text written plainly, as CDATA,
/// or with its accented letters as character references.
#[derive(Debug, Clone)]
enum XmlField {
    Missing,
    Text(String, Style),
}

#[derive(Debug, Clone, Copy)]
enum Style {
    Escaped,
    CharRefs,
    CData,
}

fn xml_text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9 <>&\"'\n.;,\\-/áéíóúñüÁÉÍÓÚÑÜ]{0,16}").unwrap()
}

fn xml_field() -> impl Strategy<Value = XmlField> {
    prop_oneof![
        1 => Just(XmlField::Missing),
        4 => (xml_text(), prop::sample::select(vec![Style::Escaped, Style::CharRefs, Style::CData]))
            .prop_map(|(t, s)| XmlField::Text(t, s)),
    ]
}

fn write_field(out: &mut String, name: &str, f: &XmlField) {
    let XmlField::Text(t, style) = f else {
        return;
    };
    let body = match style {
        Style::CData => format!("<![CDATA[{t}]]>"),
        Style::Escaped => quick_xml::escape::escape(t.as_str()).into_owned(),
        Style::CharRefs => quick_xml::escape::escape(t.as_str())
            .chars()
            .map(|c| {
                if c.is_ascii() {
                    c.to_string()
                } else {
                    format!("&#{};", c as u32)
                }
            })
            .collect(),
    };
    out.push_str(&format!("    <{name}>{body}</{name}>\n"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn xml_records_read_back_with_missing_elements_empty(
        units in proptest::collection::vec(
            (xml_text(), xml_field(), xml_field(), xml_field()), 1..10),
        cp1252 in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let r = xml_recipe(dir.path());
        let decl = if cp1252 { "Windows-1252" } else { "UTF-8" };
        let mut xml = format!("<?xml version=\"1.0\" encoding=\"{decl}\"?>\n<Unidades>\n");
        let mut expected_lines = Vec::new();
        for (i, (id, marca, modelo, color)) in units.iter().enumerate() {
            expected_lines.push(xml.matches('\n').count() as u32 + 1);
            let id = format!("U{i}{id}");
            xml.push_str(&format!("  <Unidad id=\"{}\">\n", quick_xml::escape::escape(id.as_str())));
            write_field(&mut xml, "Marca", marca);
            // An element the recipe does not read, with markup of its own.
            xml.push_str("    <Extra a=\"1\"><Marca>not this one</Marca></Extra>\n");
            write_field(&mut xml, "Modelo", modelo);
            write_field(&mut xml, "Color", color);
            xml.push_str("  </Unidad>\n");
        }
        xml.push_str("</Unidades>\n");
        let bytes = if cp1252 {
            encoding_rs::WINDOWS_1252.encode(&xml).0.into_owned()
        } else {
            xml.clone().into_bytes()
        };
        let path = dir.path().join("props.xml");
        std::fs::write(&path, &bytes).unwrap();
        let raw = read_file(&path, &r).unwrap();
        let has_accents = !xml.is_ascii();
        if cp1252 && has_accents {
            prop_assert_eq!(raw.encoding, "windows-1252");
        } else if !cp1252 {
            prop_assert_eq!(raw.encoding, "utf-8");
        }
        prop_assert_eq!(column(&raw.frame, BAD), vec![None; units.len()]);
        let ids: Vec<Option<String>> =
            units.iter().enumerate().map(|(i, u)| Some(format!("U{i}{}", u.0))).collect();
        prop_assert_eq!(column(&raw.frame, "id"), ids);
        for (k, name) in ["Marca", "Modelo", "Color"].iter().enumerate() {
            let want: Vec<Option<String>> = units
                .iter()
                .map(|u| match [&u.1, &u.2, &u.3][k] {
                    XmlField::Missing => None,
                    XmlField::Text(t, _) => Some(t.clone()),
                })
                .collect();
            // A column no record has is reported missing and read as empty.
            prop_assert_eq!(column(&raw.frame, name), want, "element {}", name);
        }
        prop_assert_eq!(lines(&raw.frame), expected_lines);
    }
}

/// Bytes built from the pieces of both formats, broken ones included, and any byte at all.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    const PIECES: &[&str] = &[
        "Código;Razón Social;Teléfono;Dirección\n",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
        "<?xml version=\"1.0\" encoding=\"Windows-1252\"?>",
        "<Unidades>",
        "<Unidad id=\"",
        "\">",
        "</Unidad>",
        "<Marca>",
        "</Marca>",
        "<Modelo/>",
        "<![CDATA[",
        "]]>",
        "<!DOCTYPE Unidades [<!ENTITY a \"&a;&a;\"> <!ENTITY x SYSTEM \"file:///etc/passwd\">]>",
        "&a;",
        "&x;",
        "&#233;",
        "&#xD800;",
        "&#99999999;",
        "<!--",
        "-->",
        "\"",
        "\"\"",
        ";",
        ",",
        "\t",
        "|",
        "\r\n",
        "\n",
        "\r",
        "ñ",
        "id1",
    ];
    let piece = prop_oneof![
        6 => prop::sample::select(PIECES).prop_map(|p| p.as_bytes().to_vec()),
        2 => prop::sample::select(vec![0u8, 0xC3, 0xA9, 0xE9, 0x81, 0xEF, 0xBB, 0xBF, 0xFF, 0xFE])
            .prop_map(|b| vec![b]),
        1 => any::<u8>().prop_map(|b| vec![b]),
    ];
    proptest::collection::vec(piece, 0..60).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    /// Whatever the bytes, reading them as CSV or as XML gives rows or an error: the reader
    /// never panics (`read_file` would turn a panic into `ReadError::Crashed`: none here), and
    /// no kept value holds a NUL.
    #[test]
    fn any_bytes_are_read_or_refused_without_a_crash(bytes in hostile_bytes()) {
        let dir = tempfile::tempdir().unwrap();
        for (r, name) in [(csv_recipe(dir.path()), "props.csv"), (xml_recipe(dir.path()), "props.xml")] {
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            match read_file(&path, &r) {
                Ok(raw) => {
                    for c in raw.frame.columns() {
                        if let Ok(s) = c.str() {
                            prop_assert!(s.iter().flatten().all(|v| !v.contains('\0')));
                        }
                    }
                }
                Err(e) => {
                    prop_assert!(
                        !matches!(e, dropsync::read::ReadError::Crashed { .. }),
                        "{}", e
                    );
                    prop_assert!(e.to_string().chars().count() < 1000);
                }
            }
        }
    }
}
