//! `staging.xlsx`: one sheet per entity, plus `rejects` and `summary`, written with
//! `rust_xlsxwriter` in constant-memory mode (rows stream to disk), so a million-row entity
//! does not sit in memory twice. A sheet that passes Excel's row limit continues on
//! `<entity> (2)`, `(3)`…

use std::path::Path;

use polars::prelude::*;
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use super::StageError;
use crate::model::EntitySummary;
use crate::model::Issue;
use crate::support::decimal;
use crate::support::frame_rows::ColumnView;

/// Text that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, or a leading tab/CR)
/// gets a leading apostrophe, the usual defence against CSV/formula injection.
pub fn neutralize(s: &str) -> std::borrow::Cow<'_, str> {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}").into(),
        _ => s.into(),
    }
}

/// Excel refuses a cell longer than this many characters (and with it the whole workbook).
pub const XLSX_MAX_CELL_CHARS: usize = 32_767;

/// A cell as a spreadsheet gets it: neutralised, and cut to `max_chars` with `…` at the end.
/// Why cut: one over-long value (a runaway field, a long reason) would otherwise make the
/// spreadsheet refuse the whole write after the CRM already committed; the full text stays
/// in staging.sqlite.
pub fn sheet_cell(s: &str, max_chars: usize) -> std::borrow::Cow<'_, str> {
    let safe = neutralize(s);
    if safe.len() <= max_chars || safe.chars().count() <= max_chars {
        return safe;
    }
    let mut cut: String = safe.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut.into()
}

/// A valid, unique-per-part sheet name: Excel allows 31 characters and none of `[]:*?/\`.
fn sheet_name(entity: &str, part: usize) -> String {
    let clean: String = entity
        .chars()
        .map(|c| if "[]:*?/\\".contains(c) { '_' } else { c })
        .collect();
    let suffix = if part == 0 {
        String::new()
    } else {
        format!(" ({})", part + 1)
    };
    let room = 31usize.saturating_sub(suffix.chars().count());
    let head: String = clean.chars().take(room).collect();
    format!("{head}{suffix}")
}

pub struct SheetInput<'a> {
    pub name: &'a str,
    /// The entity's rows, or its first rows when a sheet shows no more (see `total`).
    pub rows: &'a DataFrame,
    /// The entity's row count, `rows` being perhaps only its first rows: a cut sheet says how
    /// many rows staging.sqlite has beyond it.
    pub total: usize,
    /// Columns holding dates or datetimes as ISO text (`YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS`:
    /// how the transform leaves `date` and `datetime` fields): written as Excel dates, so
    /// analysts can sort, filter and subtract them.
    pub dates: Vec<&'a str>,
}

/// Writes the whole workbook to `path` (via a temporary file renamed into place). Sheets are
/// filled on parallel threads (constant-memory worksheets stream to their own temp files),
/// then zipped at a fast compression level: the workbook is the slowest output of a run.
pub fn write_workbook(
    path: &Path,
    entities: &[SheetInput],
    rejects: &[Issue],
    summary: &[(String, EntitySummary)],
    max_rows: u32,
    entity_rows: usize,
) -> Result<(), StageError> {
    let fail = |e: &dyn std::fmt::Display| StageError::Xlsx {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let rejects_df = issues_frame(rejects).map_err(|e| fail(&e))?;
    let summary_df = summary_frame(summary).map_err(|e| fail(&e))?;
    // Entity sheets keep their first `entity_rows` rows and say where the rest is; rejects
    // and the summary explain the run, so they are always whole.
    let frames: Vec<(&str, &DataFrame, &[&str], usize, usize)> = entities
        .iter()
        .map(|e| (e.name, e.rows, e.dates.as_slice(), entity_rows, e.total))
        .chain([
            (
                "rejects",
                &rejects_df,
                &[][..],
                usize::MAX,
                rejects_df.height(),
            ),
            (
                "summary",
                &summary_df,
                &[][..],
                usize::MAX,
                summary_df.height(),
            ),
        ])
        .collect();
    // One part per sheet: Excel's row limit splits a frame over `name (2)`, `name (3)`…
    let per_sheet = max_rows.max(1) as usize;
    let mut parts: Vec<Part> = Vec::new();
    for (name, df, dates, cap, total) in frames {
        let total = total.max(df.height());
        let shown = df.height().min(cap);
        let marker = (shown < total).then(|| cut_marker(name, total - shown, cap));
        let n = shown.div_ceil(per_sheet).max(1);
        for k in 0..n {
            parts.push(Part {
                sheet: sheet_name(name, k),
                df,
                dates,
                start: k * per_sheet,
                end: shown.min((k + 1) * per_sheet),
                marker: marker.clone().filter(|_| k + 1 == n),
            });
        }
    }
    let mut wb = Workbook::new();
    wb.set_zip_compression_level(1);
    let formats = Formats {
        bold: Format::new().set_bold(),
        amounts: (0..=crate::config::DecimalSpec::MAX_PRECISION)
            .map(|scale| Format::new().set_num_format(amount_format(scale)))
            .collect(),
        date: Format::new().set_num_format(DATE_FORMAT),
        datetime: Format::new().set_num_format(DATETIME_FORMAT),
    };
    // Every format gets its index before the sheets are filled in parallel: rust_xlsxwriter
    // gives an unknown format its index under a lock it takes twice (read, then write), so two
    // sheets meeting one new format at once gave it two indices, and one sheet's cells showed
    // another style (seen as an amount cell without its number format).
    formats.register(&mut wb);
    let mut sheets = Vec::with_capacity(parts.len());
    for part in &parts {
        let mut ws = wb
            .new_worksheet_with_constant_memory()
            .map_err(|e| fail(&e))?;
        ws.set_name(&part.sheet).map_err(|e| fail(&e))?;
        sheets.push(ws);
    }
    let results: Vec<Result<(), XlsxError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = sheets
            .iter_mut()
            .zip(&parts)
            .map(|(ws, part)| {
                let formats = &formats;
                scope.spawn(move || fill(ws, part, formats))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                // rust_xlsxwriter's constant-memory writer panics on an I/O error (a full
                // disk): say what it said, not just that it panicked.
                h.join().unwrap_or_else(|p| {
                    let why = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "no message".into());
                    Err(XlsxError::ParameterError(format!(
                        "the sheet writer failed: {why}"
                    )))
                })
            })
            .collect()
    });
    for r in results {
        r.map_err(|e| fail(&e))?;
    }
    for ws in sheets {
        wb.push_worksheet(ws);
    }
    let tmp = path.with_extension("xlsx.tmp");
    wb.save(&tmp).map_err(|e| fail(&e))?;
    std::fs::rename(&tmp, path).map_err(|e| fail(&e))
}

/// The `rejects` sheet's rows (also published to Google Sheets).
pub(crate) fn issues_frame(issues: &[Issue]) -> PolarsResult<DataFrame> {
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

/// The `summary` sheet's rows (also published to Google Sheets).
pub(crate) fn summary_frame(summary: &[(String, EntitySummary)]) -> PolarsResult<DataFrame> {
    let num = |f: fn(&EntitySummary) -> usize| {
        summary.iter().map(|(_, s)| f(s) as i64).collect::<Vec<_>>()
    };
    df!(
        "entity" => summary.iter().map(|(e, _)| e.as_str()).collect::<Vec<_>>(),
        "status" => summary.iter().map(|(_, s)| s.status.as_str()).collect::<Vec<_>>(),
        "file" => summary.iter().map(|(_, s)| s.file.as_deref()).collect::<Vec<_>>(),
        "encoding" => summary.iter().map(|(_, s)| s.encoding.as_deref()).collect::<Vec<_>>(),
        "read" => num(|s| s.read),
        "accepted" => num(|s| s.accepted),
        "rejected" => num(|s| s.rejected),
        "skipped" => num(|s| s.skipped),
        "warnings" => num(|s| s.warnings),
        "inserted" => num(|s| s.inserted),
        "updated" => num(|s| s.updated),
        "unchanged" => num(|s| s.unchanged),
        "deleted" => num(|s| s.deleted),
        "held_deletes" => num(|s| s.held_deletes),
        "crm_refused" => num(|s| s.crm_refused),
        "reason" => summary.iter().map(|(_, s)| s.reason.as_deref()).collect::<Vec<_>>()
    )
}

/// How decimal amounts of scale 2 show in the workbook: numbers an analyst can sum, with
/// thousands separators and cents.
pub const AMOUNT_FORMAT: &str = "#,##0.00";

/// The amount format for a decimal field of `scale` decimals: every decimal it keeps shows.
pub fn amount_format(scale: usize) -> String {
    match scale {
        0 => "#,##0".to_string(),
        s => format!("#,##0.{}", "0".repeat(s)),
    }
}

/// Excel cells are doubles and Excel shows 15 significant digits: an amount with more
/// (10^13 and up with cents) is written as its exact text instead, so no cent is lost.
pub const EXCEL_DIGITS: usize = 15;

/// How dates show in the workbook: ISO, the same text staging.sqlite holds.
pub const DATE_FORMAT: &str = "yyyy-mm-dd";
/// How datetimes show: ISO with seconds, as staging.sqlite holds them.
pub const DATETIME_FORMAT: &str = "yyyy-mm-dd hh:mm:ss";

/// Excel's serial number of an ISO date or datetime (days since 1899-12-30, the epoch
/// Excel's 1900 system uses for every date after February 1900, the time of day as the
/// fraction), and whether it had a time; `None` for text that is neither.
pub fn excel_serial(iso: &str) -> Option<(f64, bool)> {
    let epoch = chrono::NaiveDate::from_ymd_opt(1899, 12, 30)?.and_hms_opt(0, 0, 0)?;
    let (at, timed) = match chrono::NaiveDate::parse_from_str(iso, "%Y-%m-%d") {
        Ok(day) => (day.and_hms_opt(0, 0, 0)?, false),
        Err(_) => (
            chrono::NaiveDateTime::parse_from_str(iso, "%Y-%m-%d %H:%M:%S").ok()?,
            true,
        ),
    };
    let seconds = (at - epoch).num_seconds() as f64;
    Some((seconds / 86_400.0, timed))
}

/// The cell formats every sheet shares.
impl Formats {
    /// Gives each format its workbook-wide index now (see `write_workbook`).
    fn register(&self, wb: &mut Workbook) {
        for f in [&self.bold, &self.date, &self.datetime]
            .into_iter()
            .chain(&self.amounts)
        {
            wb.register_format(f);
        }
    }
}

struct Formats {
    bold: Format,
    /// By scale: `#,##0`, `#,##0.0`, `#,##0.00`…
    amounts: Vec<Format>,
    date: Format,
    datetime: Format,
}

/// One sheet of the workbook: rows `start..end` of a frame, and for the last sheet of a cut
/// entity, the row that says where the rest is.
struct Part<'a> {
    sheet: String,
    df: &'a DataFrame,
    dates: &'a [&'a str],
    start: usize,
    end: usize,
    marker: Option<String>,
}

/// The last row of an entity sheet cut at `cap` rows.
fn cut_marker(entity: &str, more: usize, cap: usize) -> String {
    format!(
        "… {more} more rows not in this workbook: it keeps the first {cap} rows of each entity \
         (a spreadsheet this long is no longer usable); every row is in staging.sqlite, table \
         {entity}"
    )
}

/// A part into its sheet, header first.
fn fill(ws: &mut Worksheet, part: &Part, formats: &Formats) -> Result<(), XlsxError> {
    let Part {
        df,
        dates,
        start,
        end,
        ..
    } = *part;
    let views: Vec<ColumnView> = df
        .columns()
        .iter()
        .map(ColumnView::new)
        .collect::<PolarsResult<_>>()
        .map_err(|e| XlsxError::ParameterError(e.to_string()))?;
    let is_date: Vec<bool> = df
        .get_column_names()
        .iter()
        .map(|n| dates.contains(&n.as_str()))
        .collect();
    header(ws, df, &formats.bold)?;
    for (r, i) in (start..end).enumerate() {
        let r = r as u32 + 1;
        for (c, v) in views.iter().enumerate() {
            let col = c;
            let c = c as u16;
            match v {
                ColumnView::Str(s) => {
                    if let Some(s) = s.get(i) {
                        match excel_serial(s).filter(|_| is_date[col]) {
                            Some((day, false)) => {
                                ws.write_number_with_format(r, c, day, &formats.date)?
                            }
                            Some((at, true)) => {
                                ws.write_number_with_format(r, c, at, &formats.datetime)?
                            }
                            None => ws.write_string(r, c, sheet_cell(s, XLSX_MAX_CELL_CHARS))?,
                        };
                    }
                }
                ColumnView::I64(x) => {
                    if let Some(x) = x.get(i) {
                        ws.write_number(r, c, x as f64)?;
                    }
                }
                ColumnView::F64(x) => {
                    if let Some(x) = x.get(i) {
                        ws.write_number_with_format(r, c, x, &formats.amounts[2])?;
                    }
                }
                ColumnView::Dec(x, scale) => {
                    if let Some(units) = x.get(i) {
                        if decimal::significant_digits(units) <= EXCEL_DIGITS {
                            let value = decimal::to_f64(units, *scale);
                            let format = &formats.amounts[(*scale).min(formats.amounts.len() - 1)];
                            ws.write_number_with_format(r, c, value, format)?;
                        } else {
                            ws.write_string(r, c, decimal::to_text(units, *scale))?;
                        }
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
    if let Some(marker) = &part.marker {
        ws.write_string((end - start) as u32 + 1, 0, marker)?;
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

    /// Writes `df` as the one entity sheet `name` (no rejects, no summary) and returns
    /// where, with the temporary folder that holds it.
    fn one_sheet(
        name: &str,
        df: &DataFrame,
        dates: Vec<&str>,
        max_rows: u32,
    ) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.xlsx");
        write_workbook(
            &path,
            &[SheetInput {
                name,
                rows: df,
                total: df.height(),
                dates,
            }],
            &[],
            &[],
            max_rows,
            usize::MAX,
        )
        .unwrap();
        (dir, path)
    }

    /// The style index of cell `at` in sheet `n` of `path`, and the number format of that style.
    fn cell_format(path: &std::path::Path, n: usize, at: &str) -> String {
        let styles = read_zip_entry(path, "xl/styles.xml");
        let sheet = read_zip_entry(path, &format!("xl/worksheets/sheet{n}.xml"));
        let cell = sheet
            .split("<c ")
            .find(|c| c.starts_with(&format!("r=\"{at}\"")))
            .unwrap_or_else(|| panic!("no {at} in sheet {n}"));
        let style: usize = cell
            .split("s=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unstyled {at} in sheet {n}: {cell}"));
        let xfs = styles.split("<cellXfs").nth(1).unwrap();
        let xf = xfs.split("<xf ").nth(style + 1).unwrap();
        let id = xf
            .split("numFmtId=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        styles
            .split("<numFmt ")
            .find(|f| f.contains(&format!("numFmtId=\"{id}\"")))
            .and_then(|f| f.split("formatCode=\"").nth(1))
            .and_then(|f| f.split('"').next())
            .unwrap_or(id)
            .to_string()
    }

    /// Sheets filled in parallel used to give a format met at the same moment two indices,
    /// so some sheets' amounts or dates showed another cell style (1 run in ~5 of the suite).
    #[test]
    fn every_sheet_filled_in_parallel_keeps_its_formats() {
        let amount = Int128Chunked::from_iter([Some(123_456i128)])
            .with_name("importe".into())
            .into_decimal(18, 2)
            .unwrap()
            .into_series()
            .into_column();
        let mut df = df!("id" => ["1"], "fecha" => ["2026-11-20"]).unwrap();
        df.insert_column(1, amount).unwrap();
        let names: Vec<String> = (0..12).map(|i| format!("e{i}")).collect();
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("w.xlsx");
            let sheets: Vec<SheetInput> = names
                .iter()
                .map(|name| SheetInput {
                    name,
                    rows: &df,
                    total: df.height(),
                    dates: vec!["fecha"],
                })
                .collect();
            write_workbook(&path, &sheets, &[], &[], 10, usize::MAX).unwrap();
            for n in 1..=names.len() {
                assert_eq!(cell_format(&path, n, "B2"), AMOUNT_FORMAT, "sheet {n}");
                assert_eq!(cell_format(&path, n, "C2"), DATE_FORMAT, "sheet {n}");
            }
        }
    }

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
    fn overlong_cells_are_cut_with_a_marker_and_sheet_names_fit() {
        let long = "x".repeat(40_000);
        let cut = sheet_cell(&long, XLSX_MAX_CELL_CHARS);
        assert_eq!(cut.chars().count(), XLSX_MAX_CELL_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(sheet_cell("=1+1", 10), "'=1+1");
        assert_eq!(sheet_cell("ñandú", 5), "ñandú");
        let name = sheet_name(&"e".repeat(40), 2);
        assert_eq!(name.chars().count(), 31);
        assert!(name.ends_with(" (3)"));
        assert_eq!(sheet_name("a/b", 0), "a_b");
    }

    #[test]
    fn a_workbook_with_an_overlong_cell_is_written() {
        let df = df!("id" => ["1"], "note" => ["y".repeat(100_000)]).unwrap();
        let (_dir, path) = one_sheet("clientes", &df, vec![], 1_000);
        let sheet = read_zip_entry(&path, "xl/worksheets/sheet1.xml");
        assert!(sheet.contains('…'), "the cut cell carries its marker");
    }

    #[test]
    fn long_frames_continue_on_numbered_sheets() {
        let df = df!("id" => (0..25).map(|i| i.to_string()).collect::<Vec<_>>()).unwrap();
        let (_dir, path) = one_sheet("clientes", &df, vec![], 10);
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

    #[test]
    fn long_entity_sheets_keep_their_first_rows_and_say_where_the_rest_is() {
        let df = df!("id" => (0..25).map(|i| i.to_string()).collect::<Vec<_>>()).unwrap();
        let issues: Vec<Issue> = (0..30)
            .map(|i| Issue {
                entity: "clientes".into(),
                file: "clientes.csv".into(),
                line: i + 2,
                id: i.to_string(),
                severity: crate::model::Severity::Warning,
                rule: "map.unknown".into(),
                reason: "x".into(),
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.xlsx");
        let input = SheetInput {
            name: "clientes",
            rows: &df,
            total: df.height(),
            dates: vec![],
        };
        write_workbook(&path, &[input], &issues, &[], 1_000, 10).unwrap();
        let sheet = read_zip_entry(&path, "xl/worksheets/sheet1.xml");
        assert_eq!(
            sheet.matches("<row ").count(),
            12,
            "header, 10 rows, the marker"
        );
        assert!(
            sheet.contains("15 more rows not in this workbook")
                && sheet.contains("staging.sqlite, table clientes"),
            "{sheet}"
        );
        let rejects = read_zip_entry(&path, "xl/worksheets/sheet2.xml");
        assert_eq!(rejects.matches("<row ").count(), 31, "rejects are whole");
        // A run hands over only the rows a sheet shows, with the entity's row count: the
        // same sheet.
        let head = df.head(Some(10));
        let cut = dir.path().join("cut.xlsx");
        let input = SheetInput {
            name: "clientes",
            rows: &head,
            total: 25,
            dates: vec![],
        };
        write_workbook(&cut, &[input], &issues, &[], 1_000, 10).unwrap();
        assert_eq!(read_zip_entry(&cut, "xl/worksheets/sheet1.xml"), sheet);
    }

    #[test]
    fn amounts_are_numbers_with_a_thousands_and_cents_format() {
        let importe =
            Int128Chunked::from_iter([Some(4_085_017_187i128), Some(1_234_567_890_123_456)])
                .with_name("importe".into())
                .into_decimal(18, 2)
                .unwrap()
                .into_series()
                .into_column();
        let mut df = df!("id" => ["1", "2"], "cuotas" => [12i64, 1]).unwrap();
        df.insert_column(1, importe).unwrap();
        let (_dir, path) = one_sheet("ventas", &df, vec![], 10);
        // The amount cell is a number (no t="s"/"str") whose style uses the amount format.
        let sheet = read_zip_entry(&path, "xl/worksheets/sheet1.xml");
        let cell = sheet
            .split("<c ")
            .find(|c| c.starts_with("r=\"B2\""))
            .unwrap_or_else(|| panic!("no B2 in {sheet}"));
        assert!(!cell.contains(" t=\""), "{cell}");
        assert!(cell.contains("<v>40850171.87</v>"), "{cell}");
        assert_eq!(cell_format(&path, 1, "B2"), AMOUNT_FORMAT);
        // Integers stay plain numbers.
        let c2 = sheet
            .split("<c ")
            .find(|c| c.starts_with("r=\"C2\""))
            .unwrap();
        assert!(c2.contains("<v>12</v>") && !c2.contains(" s=\""), "{c2}");
        // 16 significant digits: more than Excel keeps, so the exact text.
        let b3 = sheet
            .split("<c ")
            .find(|c| c.starts_with("r=\"B3\""))
            .unwrap();
        assert!(b3.contains(" t=\"inlineStr\""), "{b3}");
        assert!(b3.contains(">12345678901234.56<"), "{b3}");
    }

    #[test]
    fn date_fields_are_excel_dates() {
        assert_eq!(excel_serial("1900-03-01"), Some((61.0, false)));
        assert_eq!(excel_serial("2026-11-20"), Some((46346.0, false)));
        assert_eq!(excel_serial("2026-11-20 18:00:00"), Some((46346.75, true)));
        assert_eq!(excel_serial("20/11/2026"), None);
        let df = df!("id" => ["1", "2"], "fecha" => [Some("2026-11-20"), None], "nota" => ["2026-11-20", "x"]).unwrap();
        let (_dir, path) = one_sheet("ventas", &df, vec!["fecha"], 10);
        let sheet = read_zip_entry(&path, "xl/worksheets/sheet1.xml");
        let cell = |r: &str| {
            sheet
                .split("<c ")
                .find(|c| c.starts_with(&format!("r=\"{r}\"")))
                .map(str::to_string)
        };
        let b2 = cell("B2").unwrap();
        assert!(b2.contains("<v>46346</v>") && !b2.contains(" t=\""), "{b2}");
        let styles = read_zip_entry(&path, "xl/styles.xml");
        assert!(
            styles.contains(&format!("formatCode=\"{DATE_FORMAT}\"")),
            "{styles}"
        );
        // A missing date stays empty; a text column that looks like a date stays text.
        assert!(cell("B3").is_none(), "{sheet}");
        assert!(cell("C2").unwrap().contains(" t=\""), "{sheet}");
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
