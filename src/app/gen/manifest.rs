//! `manifest.json`: what a correct pipeline must conclude about the drop (row counts, every reject and
//! warning with its line, and for a next snapshot the exact diff). Tests of the main crate compare
//! their results against it, so its shape is a contract: fields are only ever added.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{GenEncoding, GenError, UnitFormat};

/// File name of the manifest inside a drop folder.
pub const MANIFEST_FILE: &str = crate::sources::ANSWER_SHEET;

/// The truth about one generated drop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Seed the drop was generated from.
    pub seed: u64,
    /// The `clients` option (N); other entities scale from it.
    pub clients: usize,
    /// Encoding of every file: `windows-1252`, `utf-8-bom` or `utf-8`.
    pub encoding: GenEncoding,
    /// `xml` or `csv`.
    pub unidades_format: UnitFormat,
    /// Whether the documented dirty rows are in the files.
    pub dirty: bool,
    /// The drop's timestamp, as in the XML root (`2026-11-20T23:00:00`).
    pub generated_at: String,
    /// Per entity name: its file and row counts.
    pub entities: BTreeMap<String, EntityCounts>,
    /// Every rejected row, once per rule, in dependency order then file order.
    pub rejects: Vec<RowIssue>,
    /// Every warning on an accepted row, same order.
    pub warnings: Vec<RowIssue>,
    /// For a next snapshot: per entity, what a diff against the base must find. `null` for a base.
    pub changes: Option<BTreeMap<String, ChangeCounts>>,
}

/// Row counts of one entity's file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityCounts {
    /// File name inside the drop (`clientes.csv`).
    pub file: String,
    /// Data records in the file (header excluded).
    pub rows: usize,
    /// Records a correct validator accepts.
    pub accepted: usize,
    /// Records it rejects.
    pub rejected: usize,
    /// Warnings on accepted records.
    pub warnings: usize,
}

/// One reject or warning.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RowIssue {
    /// Entity name (`ventas`).
    pub entity: String,
    /// File name (`ventas.csv`).
    pub file: String,
    /// Physical line where the record starts (header = 1; for XML the `<Unidad` start tag).
    pub line: u64,
    /// The ID exactly as written (empty for an empty ID).
    pub id: String,
    /// Rule name (`ref.missing`, `type.date`, ...).
    pub rule: String,
}

/// What a diff of one entity against the base snapshot must find (rows accepted in both only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeCounts {
    /// New IDs.
    pub inserted: usize,
    /// Same ID, some value different.
    pub updated: usize,
    /// IDs gone from the new snapshot.
    pub deleted: usize,
    /// Same ID, same values.
    pub unchanged: usize,
}

impl Manifest {
    /// Reads `manifest.json` from a drop folder. Tests and tools use it; a binary that only
    /// generates never does, hence the allow.
    #[allow(dead_code)]
    pub fn load(dir: &Path) -> Result<Manifest, GenError> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| GenError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|source| GenError::Manifest { path, source })
    }

    /// Writes it as pretty JSON.
    pub(super) fn save(&self, dir: &Path) -> Result<(), GenError> {
        let path = dir.join(MANIFEST_FILE);
        let mut text = serde_json::to_string_pretty(self).map_err(|source| GenError::Manifest {
            path: path.clone(),
            source,
        })?;
        text.push('\n');
        std::fs::write(&path, text).map_err(|e| GenError::io(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_the_documented_names() {
        let m = Manifest {
            seed: 7,
            clients: 300,
            encoding: GenEncoding::Cp1252,
            unidades_format: UnitFormat::Xml,
            dirty: true,
            generated_at: "2026-11-20T23:00:00".into(),
            entities: BTreeMap::new(),
            rejects: vec![RowIssue {
                entity: "ventas".into(),
                file: "ventas.csv".into(),
                line: 57,
                id: "OP-2026-000123".into(),
                rule: "ref.missing".into(),
            }],
            warnings: vec![],
            changes: None,
        };
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains(r#""encoding":"windows-1252""#), "{json}");
        assert!(json.contains(r#""unidades_format":"xml""#));
        assert!(json.contains(r#""changes":null"#));
        let dir = tempfile::tempdir().unwrap();
        m.save(dir.path()).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), m);
    }
}
