//! `staging.xlsx`: one sheet per entity, plus `rejects` and `summary`, written with
//! `rust_xlsxwriter` in constant-memory mode (rows stream to disk), so a million-row entity
//! does not sit in memory twice. A sheet that passes Excel's row limit continues on
//! `<entity> (2)`, `(3)`…

use std::path::Path;

use polars::prelude::*;
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use super::{EntitySummary, StageError};
use crate::table::ColumnView;
use crate::validate::Issue;

/// Text that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, or a leading tab/CR)
/// gets a leading apostrophe, the usual defence against CSV/formula injection.
pub fn neutralize(s: &str) -> std::borrow::Cow<'_, str> {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}").into(),
        _ => s.into(),
    }
}

pub struct SheetInput<'a> {
    pub name: &'a str,
    pub rows: &'a DataFrame,
}

/// Writes the whole workbook to `path` (via a temporary file renamed into place).
pub fn write_workbook(
    path: &Path,
    entities: &[SheetInput],
    rejects: &[Issue],
    summary: &[(String, EntitySummary)],
    max_rows: u32,
) -> Result<(), StageError> {
    let err = |e: XlsxError| StageError::Xlsx {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    for input in entities {
        write_frame(&mut wb, input.name, input.rows, max_rows, &bold).map_err(err)?;
    }
    let rejects_df = issues_frame(rejects).map_err(|e| StageError::Xlsx {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    write_frame(&mut wb, "rejects", &rejects_df, max_rows, &bold).map_err(err)?;
    let ws = wb.add_worksheet_with_constant_memory().map_err(err)?;
    ws.set_name("summary").map_err(err)?;
    let head = [
        "entity",
        "status",
        "file",
        "encoding",
        "read",
        "accepted",
        "rejected",
        "skipped",
        "warnings",
        "inserted",
        "updated",
        "unchanged",
        "deleted",
        "held_deletes",
        "reason",
    ];
    for (c, h) in head.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *h, &bold)
            .map_err(err)?;
    }
    for (r, (entity, s)) in summary.iter().enumerate() {
        let r = r as u32 + 1;
        ws.write_string(r, 0, entity).map_err(err)?;
        ws.write_string(r, 1, &s.status).map_err(err)?;
        ws.write_string(r, 2, neutralize(s.file.as_deref().unwrap_or("")))
            .map_err(err)?;
        ws.write_string(r, 3, s.encoding.as_deref().unwrap_or(""))
            .map_err(err)?;
        let nums = [
            s.read,
            s.accepted,
            s.rejected,
            s.skipped,
            s.warnings,
            s.inserted,
            s.updated,
            s.unchanged,
            s.deleted,
            s.held_deletes,
        ];
        for (i, n) in nums.iter().enumerate() {
            ws.write_number(r, 4 + i as u16, *n as f64).map_err(err)?;
        }
        ws.write_string(r, 14, neutralize(s.reason.as_deref().unwrap_or("")))
            .map_err(err)?;
    }
    let tmp = path.with_extension("xlsx.tmp");
    wb.save(&tmp).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| StageError::Xlsx {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

fn issues_frame(issues: &[Issue]) -> PolarsResult<DataFrame> {
    df!(
        "entity" => issues.iter().map(|i| i.entity.as_str()).collect::<Vec<_>>(),
        "file" => issues.iter().map(|i| i.file.as_str()).collect::<Vec<_>>(),
        "line" => issues.iter().map(|i| i.line as i64).collect::<Vec<_>>(),
        "id" => issues.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        "severity" => issues.iter().map(|i| i.severity.as_str()).collect::<Vec<_>>(),
        "rule" => issues.iter().map(|i| i.rule.as_str()).collect::<Vec<_>>(),
        "reason" => issues.iter().map(|i| i.reason.as_str()).collect::<Vec<_>>()
    )
}

/// One frame over as many sheets as Excel's row limit needs.
fn write_frame(
    wb: &mut Workbook,
    name: &str,
    df: &DataFrame,
    max_rows: u32,
    bold: &Format,
) -> Result<(), XlsxError> {
    let views: Vec<ColumnView> = df
        .columns()
        .iter()
        .map(ColumnView::new)
        .collect::<PolarsResult<_>>()
        .map_err(|e| XlsxError::ParameterError(e.to_string()))?;
    let height = df.height();
    let per_sheet = max_rows.max(1) as usize;
    let sheets = height.div_ceil(per_sheet).max(1);
    for part in 0..sheets {
        let ws = wb.add_worksheet_with_constant_memory()?;
        ws.set_name(if part == 0 {
            name.to_string()
        } else {
            format!("{name} ({})", part + 1)
        })?;
        header(ws, df, bold)?;
        let start = part * per_sheet;
        for (r, i) in (start..height.min(start + per_sheet)).enumerate() {
            let r = r as u32 + 1;
            for (c, v) in views.iter().enumerate() {
                let c = c as u16;
                match v {
                    ColumnView::Str(s) => {
                        if let Some(s) = s.get(i) {
                            ws.write_string(r, c, neutralize(s))?;
                        }
                    }
                    ColumnView::I64(x) => {
                        if let Some(x) = x.get(i) {
                            ws.write_number(r, c, x as f64)?;
                        }
                    }
                    ColumnView::F64(x) => {
                        if let Some(x) = x.get(i) {
                            ws.write_number(r, c, x)?;
                        }
                    }
                    ColumnView::Bool(x) => {
                        if let Some(x) = x.get(i) {
                            ws.write_boolean(r, c, x)?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn header(ws: &mut Worksheet, df: &DataFrame, bold: &Format) -> Result<(), XlsxError> {
    for (c, col) in df.columns().iter().enumerate() {
        ws.write_string_with_format(0, c as u16, col.name().as_str(), bold)?;
    }
    ws.set_freeze_panes(1, 0)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralized_and_plain_text_is_not() {
        assert_eq!(
            neutralize("=HYPERLINK(\"http://x\")"),
            "'=HYPERLINK(\"http://x\")"
        );
        assert_eq!(neutralize("+54 11 5555"), "'+54 11 5555");
        assert_eq!(neutralize("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralize("-2+3"), "'-2+3");
        assert_eq!(neutralize("Núñez"), "Núñez");
    }

    #[test]
    fn long_frames_continue_on_numbered_sheets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.xlsx");
        let df = df!("id" => (0..25).map(|i| i.to_string()).collect::<Vec<_>>()).unwrap();
        write_workbook(
            &path,
            &[SheetInput {
                name: "clientes",
                rows: &df,
            }],
            &[],
            &[],
            10,
        )
        .unwrap();
        let workbook = read_zip_entry(&path, "xl/workbook.xml");
        for name in [
            "clientes",
            "clientes (2)",
            "clientes (3)",
            "rejects",
            "summary",
        ] {
            assert!(
                workbook.contains(&format!("name=\"{name}\"")),
                "{name} missing: {workbook}"
            );
        }
        assert!(!workbook.contains("clientes (4)"));
    }

    /// Reads one part of the xlsx package (a zip of XML files).
    pub(crate) fn read_zip_entry(path: &Path, name: &str) -> String {
        use std::io::Read;
        let mut zip = ::zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
        let mut out = String::new();
        zip.by_name(name).unwrap().read_to_string(&mut out).unwrap();
        out
    }
}
