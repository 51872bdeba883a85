//! An independent reading of the dealer drops `dropsync gen` writes, to check the manifest it
//! writes beside them: a quote-aware CSV reader and a line-based XML reader that both keep
//! each record's physical start line, and a small validator that applies the rules of
//! dropsync's validate stage (as the brief states them). It shares no code with the generator
//! (not even the manifest's types: [`read_drop`] reads `manifest.json` as plain JSON); tests
//! compare the manifest with what these find in the written bytes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// Text encoding of every file in a drop, as `manifest.json` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `windows-1252`, no BOM.
    Cp1252,
    /// `utf-8-bom`.
    Utf8Bom,
    /// `utf-8`.
    Utf8,
}

impl Encoding {
    /// The encoding a manifest's `encoding` value names.
    pub fn named(name: &str) -> Option<Encoding> {
        match name {
            "windows-1252" => Some(Encoding::Cp1252),
            "utf-8-bom" => Some(Encoding::Utf8Bom),
            "utf-8" => Some(Encoding::Utf8),
            _ => None,
        }
    }
}

/// One reject or warning: the fields of the manifest's `rejects` and `warnings`, in the same
/// order, so lists of both sort alike.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Issue {
    pub entity: String,
    pub file: String,
    /// Physical line where the record starts (header = 1; for XML the `<Unidad` start tag).
    pub line: u64,
    /// The ID exactly as written.
    pub id: String,
    pub rule: String,
}

/// A parsed file: normalized header names (trimmed, lowercase) and rows.
#[derive(Debug, Clone)]
pub struct Table {
    pub file: String,
    pub headers: Vec<String>,
    pub rows: Vec<Row>,
}

/// One record and the line it starts on.
#[derive(Debug, Clone)]
pub struct Row {
    pub line: u64,
    pub cells: Vec<String>,
}

impl Table {
    /// Column index of a normalized header name.
    pub fn col(&self, name: &str) -> usize {
        self.headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{}: no column {name:?} in {:?}", self.file, self.headers))
    }
}

/// Decodes a file's bytes as the manifest says they are encoded.
pub fn decode(bytes: &[u8], encoding: Encoding) -> String {
    match encoding {
        Encoding::Cp1252 => {
            assert!(
                !bytes.starts_with(b"\xEF\xBB\xBF"),
                "cp1252 file must not start with a BOM"
            );
            let (text, bad) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes);
            assert!(!bad);
            text.into_owned()
        }
        Encoding::Utf8Bom => {
            assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "missing BOM");
            String::from_utf8(bytes[3..].to_vec()).expect("valid UTF-8")
        }
        Encoding::Utf8 => String::from_utf8(bytes.to_vec()).expect("valid UTF-8"),
    }
}

/// Reads `;`-separated CSV with `"` quoting; a record's line is where its first character is.
pub fn parse_csv(file: &str, text: &str) -> Table {
    let mut records: Vec<Row> = Vec::new();
    let mut cells: Vec<String> = Vec::new();
    let mut cell = String::new();
    let mut line = 1u64;
    let mut start = 1u64;
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut at_record_start = true;
    while let Some(c) = chars.next() {
        if at_record_start {
            start = line;
            at_record_start = false;
        }
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    cell.push('\n');
                }
                c => cell.push(c),
            }
            continue;
        }
        match c {
            '"' if cell.is_empty() => quoted = true,
            ';' => cells.push(std::mem::take(&mut cell)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                line += 1;
                cells.push(std::mem::take(&mut cell));
                records.push(Row {
                    line: start,
                    cells: std::mem::take(&mut cells),
                });
                at_record_start = true;
            }
            c => cell.push(c),
        }
    }
    assert!(
        cell.is_empty() && cells.is_empty(),
        "{file}: last record has no line end"
    );
    let header = records.remove(0);
    assert_eq!(header.line, 1);
    let width = header.cells.len();
    for r in &records {
        assert_eq!(
            r.cells.len(),
            width,
            "{file}: line {} has {} cells",
            r.line,
            r.cells.len()
        );
    }
    Table {
        file: file.to_string(),
        headers: header
            .cells
            .iter()
            .map(|h| h.trim().to_lowercase())
            .collect(),
        rows: records,
    }
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// Reads unidades.xml: one `<Unidad id="...">` per record, one child element per line.
pub fn parse_units_xml(text: &str) -> Table {
    let headers: Vec<String> = [
        "id", "vin", "dominio", "marca", "modelo", "version", "anio", "color", "km", "cliente",
        "venta", "sucursal",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut rows = Vec::new();
    let mut current: Option<Row> = None;
    for (k, raw) in text.split('\n').enumerate() {
        let line = k as u64 + 1;
        let t = raw.trim_end_matches('\r').trim();
        if let Some(rest) = t.strip_prefix("<Unidad id=\"") {
            let id = rest.strip_suffix("\">").expect("start tag");
            let mut cells = vec![String::new(); headers.len()];
            cells[0] = unescape(id);
            current = Some(Row { line, cells });
        } else if t == "</Unidad>" {
            rows.push(current.take().expect("open unit"));
        } else if let Some(row) = current.as_mut() {
            let inner = t.strip_prefix('<').expect("child element");
            let (name, value) = match inner.strip_suffix("/>") {
                Some(name) => (name, String::new()),
                None => {
                    let (name, rest) = inner.split_once('>').expect("element");
                    let value = rest.strip_suffix(&format!("</{name}>")).expect("end tag");
                    (name, unescape(value))
                }
            };
            let col = headers
                .iter()
                .position(|h| *h == name.to_lowercase())
                .expect("known element");
            row.cells[col] = value;
        }
    }
    Table {
        file: "unidades.xml".into(),
        headers,
        rows,
    }
}

/// Reads every file of a drop, keyed by entity name: the files and their encoding are the ones
/// `manifest.json` names.
pub fn read_drop(dir: &Path) -> BTreeMap<String, Table> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("manifest is JSON");
    let encoding = manifest["encoding"]
        .as_str()
        .and_then(Encoding::named)
        .unwrap_or_else(|| panic!("unknown encoding {}", manifest["encoding"]));
    let entities = manifest["entities"].as_object().expect("manifest entities");
    let mut tables = BTreeMap::new();
    for (entity, counts) in entities {
        let file = counts["file"].as_str().expect("entity file");
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let text = decode(&bytes, encoding);
        let table = if file.ends_with(".xml") {
            parse_units_xml(&text)
        } else {
            parse_csv(file, &text)
        };
        tables.insert(entity.clone(), table);
    }
    tables
}

#[derive(Clone, Copy)]
enum Ty {
    Date,
    Integer,
    Decimal,
    Boolean,
}

struct Schema {
    entity: &'static str,
    id: &'static str,
    required_dates: &'static [&'static str],
    required_refs: &'static [(&'static str, &'static str)],
    optional_refs: &'static [(&'static str, &'static str)],
    typed: &'static [(&'static str, Ty)],
}

const SCHEMAS: [Schema; 6] = [
    Schema {
        entity: "usuarios",
        id: "código",
        required_dates: &[],
        required_refs: &[],
        optional_refs: &[("sucursal", "sucursales")],
        typed: &[("activo", Ty::Boolean)],
    },
    Schema {
        entity: "sucursales",
        id: "código sucursal",
        required_dates: &[],
        required_refs: &[],
        optional_refs: &[],
        typed: &[],
    },
    Schema {
        entity: "clientes",
        id: "nro cliente",
        required_dates: &[],
        required_refs: &[],
        optional_refs: &[],
        typed: &[("fecha alta", Ty::Date)],
    },
    Schema {
        entity: "ventas",
        id: "nro operación",
        required_dates: &["fecha"],
        required_refs: &[("nro cliente", "clientes")],
        optional_refs: &[("vendedor", "usuarios"), ("sucursal", "sucursales")],
        typed: &[("importe total", Ty::Decimal)],
    },
    Schema {
        entity: "unidades",
        id: "id",
        required_dates: &[],
        required_refs: &[],
        optional_refs: &[
            ("cliente", "clientes"),
            ("venta", "ventas"),
            ("sucursal", "sucursales"),
        ],
        typed: &[("anio", Ty::Integer), ("km", Ty::Integer)],
    },
    Schema {
        entity: "servicios",
        id: "nro ot",
        required_dates: &["fecha ingreso"],
        required_refs: &[
            ("nro cliente", "clientes"),
            ("unidad", "unidades"),
            ("taller", "sucursales"),
        ],
        optional_refs: &[("asesor", "usuarios")],
        typed: &[
            ("fecha entrega", Ty::Date),
            ("kilometraje", Ty::Integer),
            ("importe", Ty::Decimal),
        ],
    },
];

/// Normalized ID as the validator compares it: clientes numbers without leading zeros, else trimmed.
pub fn norm_id(entity: &str, raw: &str) -> String {
    let t = raw.trim();
    if entity == "clientes" {
        let s = t.trim_start_matches('0');
        if s.is_empty() && !t.is_empty() {
            "0".into()
        } else {
            s.into()
        }
    } else {
        t.into()
    }
}

fn parse_date(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if !(b.len() == 10 || b.len() == 16) || b[2] != b'/' || b[5] != b'/' {
        return false;
    }
    let (Some(d), Some(m), Some(y)) = (num(0..2), num(3..5), num(6..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d == 0 || d > days[m as usize - 1] {
        return false;
    }
    if b.len() == 16 {
        return b[10] == b' '
            && b[13] == b':'
            && num(11..13).is_some_and(|h| h < 24)
            && num(14..16).is_some_and(|mi| mi < 60);
    }
    true
}

fn thousands_ok(int: &str) -> bool {
    if int.bytes().all(|c| c.is_ascii_digit()) {
        return !int.is_empty();
    }
    let groups: Vec<&str> = int.split('.').collect();
    !groups[0].is_empty()
        && groups[0].len() <= 3
        && groups.iter().all(|g| g.bytes().all(|c| c.is_ascii_digit()))
        && groups[1..].iter().all(|g| g.len() == 3)
}

fn parse_typed(ty: Ty, s: &str) -> bool {
    match ty {
        Ty::Date => parse_date(s),
        Ty::Integer => thousands_ok(s),
        Ty::Decimal => match s.split_once(',') {
            Some((int, dec)) => {
                thousands_ok(int) && !dec.is_empty() && dec.bytes().all(|c| c.is_ascii_digit())
            }
            None => thousands_ok(s),
        },
        Ty::Boolean => matches!(
            s.to_lowercase().as_str(),
            "s" | "n" | "si" | "sí" | "no" | "1" | "0"
        ),
    }
}

fn ty_name(ty: Ty) -> &'static str {
    match ty {
        Ty::Date => "date",
        Ty::Integer => "integer",
        Ty::Decimal => "decimal",
        Ty::Boolean => "boolean",
    }
}

/// What the validator concludes about a drop.
#[derive(Debug, Default)]
pub struct Verdict {
    pub rejects: Vec<Issue>,
    pub warnings: Vec<Issue>,
    /// Per entity: normalized ID → row index, for accepted rows only.
    pub accepted: HashMap<String, HashMap<String, usize>>,
}

fn issue(t: &Table, entity: &str, row: &Row, id_col: usize, rule: String) -> Issue {
    Issue {
        entity: entity.into(),
        file: t.file.clone(),
        line: row.line,
        id: row.cells[id_col].clone(),
        rule,
    }
}

/// Validates a drop as dropsync's validate stage does.
pub fn validate(tables: &BTreeMap<String, Table>) -> Verdict {
    let mut v = Verdict::default();
    for s in &SCHEMAS {
        let t = &tables[s.entity];
        let id_col = t.col(s.id);
        let mut counts: HashMap<String, usize> = HashMap::new();
        for r in &t.rows {
            let id = norm_id(s.entity, &r.cells[id_col]);
            if !id.is_empty() {
                *counts.entry(id).or_default() += 1;
            }
        }
        let mut accepted = HashMap::new();
        for (k, r) in t.rows.iter().enumerate() {
            let mut rules: Vec<String> = Vec::new();
            let id = norm_id(s.entity, &r.cells[id_col]);
            if id.is_empty() {
                rules.push("id.empty".into());
            } else if counts[&id] > 1 {
                rules.push("id.duplicate".into());
            }
            for name in s.required_dates {
                let val = r.cells[t.col(name)].trim();
                if val.is_empty() {
                    rules.push("required".into());
                } else if !parse_date(val) {
                    rules.push("type.date".into());
                }
            }
            for (name, target) in s.required_refs {
                let val = norm_id(target, &r.cells[t.col(name)]);
                if val.is_empty() {
                    rules.push("required".into());
                } else if !v.accepted[*target].contains_key(&val) {
                    rules.push("ref.missing".into());
                }
            }
            if rules.is_empty() {
                accepted.insert(id, k);
            }
            for rule in rules {
                v.rejects.push(issue(t, s.entity, r, id_col, rule));
            }
        }
        v.accepted.insert(s.entity.to_string(), accepted);
    }
    for s in &SCHEMAS {
        let t = &tables[s.entity];
        let id_col = t.col(s.id);
        let accepted: HashSet<usize> = v.accepted[s.entity].values().copied().collect();
        for (k, r) in t.rows.iter().enumerate() {
            if !accepted.contains(&k) {
                continue;
            }
            for (name, target) in s.optional_refs {
                let val = norm_id(target, &r.cells[t.col(name)]);
                if !val.is_empty() && !v.accepted[*target].contains_key(&val) {
                    v.warnings
                        .push(issue(t, s.entity, r, id_col, "ref.optional_missing".into()));
                }
            }
            for (name, ty) in s.typed {
                let val = r.cells[t.col(name)].trim();
                if !val.is_empty() && !parse_typed(*ty, val) {
                    v.warnings.push(issue(
                        t,
                        s.entity,
                        r,
                        id_col,
                        format!("type.{}", ty_name(*ty)),
                    ));
                }
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_reader_tracks_lines_through_quoted_breaks() {
        let t = parse_csv(
            "x.csv",
            "A; B \r\n1;\"x\ny\"\r\n2;\"a;\"\"b\"\"\"\r\n3;z\r\n",
        );
        assert_eq!(t.headers, ["a", "b"]);
        let lines: Vec<u64> = t.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 4, 5]);
        assert_eq!(t.rows[0].cells[1], "x\ny");
        assert_eq!(t.rows[1].cells[1], "a;\"b\"");
    }

    #[test]
    fn type_parsers_follow_the_contract() {
        assert!(parse_date("29/02/2024") && parse_date("01/12/2026 18:05"));
        assert!(!parse_date("31/02/2026") && !parse_date("99/99/2020") && !parse_date("sin fecha"));
        assert!(parse_typed(Ty::Decimal, "1.234.567,89") && parse_typed(Ty::Decimal, "12,5"));
        assert!(!parse_typed(Ty::Decimal, "12,3,4abc") && !parse_typed(Ty::Decimal, "abc"));
        assert!(parse_typed(Ty::Integer, "35.400") && !parse_typed(Ty::Integer, "35.4OO"));
        assert!(!parse_typed(Ty::Integer, "12.3x") && !parse_typed(Ty::Integer, "dos mil"));
        assert!(parse_typed(Ty::Boolean, "Si") && !parse_typed(Ty::Boolean, "X"));
        assert_eq!(norm_id("clientes", " 000123 "), "123");
    }
}
