//! Where each value goes: A1 ranges, the resize requests (shrinks before grows) and the
//! split of the values into write requests of bounded size. Pure, so tested without a server.

use google_sheets4::api::{
    AddSheetRequest, CellData, CellFormat, GridProperties, GridRange, NumberFormat,
    RepeatCellRequest, Request, SheetProperties, UpdateSheetPropertiesRequest,
};
use google_sheets4::FieldMask;

use crate::stage::workbook::{
    amount_format, excel_serial, sheet_cell, DATETIME_FORMAT, DATE_FORMAT,
};

use super::{CellKind, Grid};

/// The `fields` mask of a resize: only the grid size changes, nothing else of the sheet.
const RESIZE_FIELDS: &str = "gridProperties.rowCount,gridProperties.columnCount";
/// Google refuses a cell with more characters than this.
pub(crate) const MAX_CELL_CHARS: usize = 50_000;
/// JSON around one range of a write request besides its rows and quoted title:
/// `{"majorDimension":"ROWS","range":"!A1:ZZ1000000","values":[]}`, with room to spare for
/// the request's own envelope.
const RANGE_OVERHEAD: usize = 96;

/// One managed sheet as it will be written.
#[derive(Debug)]
pub(crate) struct Planned<'a> {
    pub grid: &'a Grid,
    /// Grid width: the widest of header and rows, at least 1.
    pub cols: usize,
    /// Data rows written (the top ones).
    pub written: usize,
    /// First cell of the last row when rows were left out.
    pub marker: Option<String>,
}

impl Planned<'_> {
    /// Header, data rows, marker.
    pub(crate) fn grid_rows(&self) -> usize {
        1 + self.written + usize::from(self.marker.is_some())
    }

    /// Row `i` of the sheet (0 = header): a data row's cells in typed columns as JSON
    /// numbers, every other cell as text, neutralised and cut to Google's limit.
    pub(crate) fn row(&self, i: usize) -> Vec<serde_json::Value> {
        let data = i >= 1 && i <= self.written;
        self.cells(i)
            .enumerate()
            .map(|(c, text)| {
                let kind = self.grid.kinds.get(c).copied().flatten().filter(|_| data);
                kind.and_then(|k| typed_value(k, text))
                    .unwrap_or_else(|| serde_json::Value::String(cell(text)))
            })
            .collect()
    }

    /// How many cells are longer than Google takes; [`Self::row`] cuts them.
    pub(crate) fn overlong(&self) -> usize {
        (0..self.grid_rows())
            .flat_map(|i| self.cells(i))
            .filter(|c| c.len() > MAX_CELL_CHARS && c.chars().count() > MAX_CELL_CHARS)
            .count()
    }

    /// An upper bound of row `i`'s JSON size, without building it.
    fn row_bytes(&self, i: usize) -> usize {
        // `[`, `]`, and per cell: two quotes, a comma, an apostrophe from `neutralize`.
        2 + self.cells(i).map(|c| json_str_bytes(c) + 4).sum::<usize>()
    }

    fn cells(&self, i: usize) -> Box<dyn Iterator<Item = &str> + '_> {
        if i == 0 {
            Box::new(self.grid.header.iter().map(String::as_str))
        } else if i <= self.written {
            Box::new(self.grid.rows[i - 1].iter().map(String::as_str))
        } else {
            Box::new(self.marker.iter().map(String::as_str))
        }
    }
}

/// Sheets keeps numbers as doubles and shows 15 significant digits, like Excel: a value with
/// more stays text, so no digit is lost.
const SHEETS_DIGITS: usize = 15;

/// The JSON number a typed cell is sent as (RAW input stores it as a number); `None` for an
/// empty cell or text that is not of its column's kind, which is sent as text.
fn typed_value(kind: CellKind, text: &str) -> Option<serde_json::Value> {
    let number = |x: f64| serde_json::Number::from_f64(x).map(serde_json::Value::Number);
    match kind {
        CellKind::Integer | CellKind::Amount { .. } => {
            let digits = text
                .bytes()
                .filter(u8::is_ascii_digit)
                .skip_while(|b| *b == b'0')
                .count();
            let plain = !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
            if !plain || digits > SHEETS_DIGITS {
                return None;
            }
            match kind {
                CellKind::Integer => text.parse::<i64>().ok().map(serde_json::Value::from),
                _ => text.parse::<f64>().ok().and_then(number),
            }
        }
        // A whole day goes as an integer, as Sheets itself stores dates.
        CellKind::Date | CellKind::DateTime => match excel_serial(text)? {
            (day, false) => Some(serde_json::Value::from(day as i64)),
            (at, true) => number(at),
        },
    }
}

/// `repeatCell` requests giving each amount, date and datetime column of every planned
/// sheet its number format over the rows written. `sheet_ids` follows `planned`.
pub(crate) fn format_requests(planned: &[Planned<'_>], sheet_ids: &[Option<i32>]) -> Vec<Request> {
    let mut out = Vec::new();
    for (p, id) in planned.iter().zip(sheet_ids) {
        let Some(id) = *id else { continue };
        if p.written == 0 {
            continue;
        }
        for (c, kind) in p.grid.kinds.iter().enumerate() {
            let (type_, pattern) = match kind {
                Some(CellKind::Amount { scale }) => ("NUMBER", amount_format(*scale)),
                Some(CellKind::Date) => ("DATE", DATE_FORMAT.to_owned()),
                Some(CellKind::DateTime) => ("DATE_TIME", DATETIME_FORMAT.to_owned()),
                Some(CellKind::Integer) | None => continue,
            };
            out.push(Request {
                repeat_cell: Some(RepeatCellRequest {
                    range: Some(GridRange {
                        sheet_id: Some(id),
                        start_row_index: Some(1),
                        end_row_index: Some(i32::try_from(1 + p.written).unwrap_or(i32::MAX)),
                        start_column_index: Some(c as i32),
                        end_column_index: Some(c as i32 + 1),
                    }),
                    cell: Some(CellData {
                        user_entered_format: Some(CellFormat {
                            number_format: Some(NumberFormat {
                                type_: Some(type_.to_owned()),
                                pattern: Some(pattern),
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    fields: Some(
                        NUMBER_FORMAT_FIELDS
                            .parse::<FieldMask>()
                            .unwrap_or_default(),
                    ),
                }),
                ..Default::default()
            });
        }
    }
    out
}

/// The `fields` mask of a format request: only the number format changes.
const NUMBER_FORMAT_FIELDS: &str = "userEnteredFormat.numberFormat";

/// A cell as sent: neutralised, and cut to Google's limit with `…` at the end, since Google
/// refuses the whole write otherwise (the full text is in staging.sqlite).
fn cell(c: &str) -> String {
    sheet_cell(c, MAX_CELL_CHARS).into_owned()
}

/// Bytes of `s` as a JSON string body: `"` and `\` take 2, other control characters up to 6.
fn json_str_bytes(s: &str) -> usize {
    s.len()
        + s.bytes()
            .map(|b| match b {
                b'"' | b'\\' => 1,
                0..=0x1f => 5,
                _ => 0,
            })
            .sum::<usize>()
}

/// The marker's text; says where the full data is, since the sheet cannot hold it.
pub(crate) fn marker(more: usize, max_cells: u64) -> String {
    format!(
        "… {more} more rows not written: a Google spreadsheet holds at most {max_cells} cells; \
         the full data is in staging.sqlite and staging.xlsx"
    )
}

/// `A`, `B`, ..., `Z`, `AA`, ... for 1-based column `n`.
pub(crate) fn column_letters(mut n: usize) -> String {
    let mut out = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        out.push(b'A' + rem as u8);
        n = (n - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// A sheet title as A1 notation wants it: always quoted, quotes doubled.
pub(crate) fn quoted(title: &str) -> String {
    format!("'{}'", title.replace('\'', "''"))
}

/// `'title'!A<first>:<last col><last>` for 1-based rows.
pub(crate) fn range(title: &str, first: usize, last: usize, cols: usize) -> String {
    format!(
        "{}!A{first}:{}{last}",
        quoted(title),
        column_letters(cols.max(1))
    )
}

/// A sheet as the spreadsheet has it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Existing {
    pub sheet_id: i32,
    pub title: String,
    pub rows: u64,
    pub cols: u64,
}

/// The requests of the one structural `batchUpdate`: first every shrink (each dimension
/// down to the smaller of now and wanted), then grows and new sheets. Google applies them
/// in order, so the cell count never passes the final total on the way.
/// `wanted` is (title, rows, cols); `existing[i]` is the sheet of that title, if any.
pub(crate) fn resize_requests(
    wanted: &[(&str, u64, u64)],
    existing: &[Option<&Existing>],
) -> Vec<Request> {
    let resize = |sheet_id: i32, rows: u64, cols: u64| Request {
        update_sheet_properties: Some(UpdateSheetPropertiesRequest {
            properties: Some(SheetProperties {
                sheet_id: Some(sheet_id),
                grid_properties: Some(grid(rows, cols)),
                ..Default::default()
            }),
            fields: Some(RESIZE_FIELDS.parse::<FieldMask>().unwrap_or_default()),
        }),
        ..Default::default()
    };
    let mut shrinks = Vec::new();
    let mut grows = Vec::new();
    for (&(title, rows, cols), now) in wanted.iter().zip(existing) {
        match now {
            Some(now) => {
                let (r, c) = (now.rows.min(rows), now.cols.min(cols));
                if (r, c) != (now.rows, now.cols) {
                    shrinks.push(resize(now.sheet_id, r, c));
                }
                if (r, c) != (rows, cols) {
                    grows.push(resize(now.sheet_id, rows, cols));
                }
            }
            None => grows.push(Request {
                add_sheet: Some(AddSheetRequest {
                    properties: Some(SheetProperties {
                        title: Some(title.to_owned()),
                        grid_properties: Some(grid(rows, cols)),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
        }
    }
    shrinks.extend(grows);
    shrinks
}

fn grid(rows: u64, cols: u64) -> GridProperties {
    GridProperties {
        row_count: Some(i32::try_from(rows).unwrap_or(i32::MAX)),
        column_count: Some(i32::try_from(cols).unwrap_or(i32::MAX)),
        ..Default::default()
    }
}

/// Rows `first..end` (0-based, end exclusive) of sheet `sheet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Part {
    pub sheet: usize,
    pub first: usize,
    pub end: usize,
}

/// Splits all rows of all sheets, in order, into requests whose values stay under
/// `max_bytes` of JSON; one request may hold parts of several sheets, so small sheets share
/// a request. A single row larger than `max_bytes` goes alone.
pub(crate) fn chunks(sheets: &[Planned<'_>], max_bytes: usize) -> Vec<Vec<Part>> {
    let mut out = Vec::new();
    let mut current: Vec<Part> = Vec::new();
    let mut bytes = 0usize;
    for (s, sheet) in sheets.iter().enumerate() {
        let opening = RANGE_OVERHEAD + 2 * quoted(&sheet.grid.title).len();
        for i in 0..sheet.grid_rows() {
            let row = sheet.row_bytes(i) + 1;
            let opens = current.last().is_none_or(|p| p.sheet != s);
            let mut cost = row + if opens { opening } else { 0 };
            if !current.is_empty() && bytes + cost > max_bytes {
                out.push(std::mem::take(&mut current));
                bytes = 0;
                cost = row + opening;
            }
            match current.last_mut() {
                Some(p) if p.sheet == s => p.end = i + 1,
                _ => current.push(Part {
                    sheet: s,
                    first: i,
                    end: i + 1,
                }),
            }
            bytes += cost;
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(title: &str, cols: usize, rows: usize) -> Grid {
        Grid {
            title: title.into(),
            header: (0..cols).map(|c| format!("h{c}")).collect(),
            rows: (0..rows)
                .map(|r| (0..cols).map(|c| format!("r{r}c{c}")).collect())
                .collect(),
            kinds: Vec::new(),
        }
    }

    #[test]
    fn column_letters_roll_over() {
        assert_eq!(column_letters(1), "A");
        assert_eq!(column_letters(26), "Z");
        assert_eq!(column_letters(27), "AA");
        assert_eq!(column_letters(52), "AZ");
        assert_eq!(column_letters(703), "AAA");
    }

    #[test]
    fn ranges_quote_titles() {
        assert_eq!(range("ventas", 1, 10, 3), "'ventas'!A1:C10");
        assert_eq!(range("it's", 2, 2, 28), "'it''s'!A2:AB2");
    }

    #[test]
    fn shrinks_come_before_grows_and_adds() {
        let a = Existing {
            sheet_id: 1,
            title: "a".into(),
            rows: 100,
            cols: 2,
        };
        let b = Existing {
            sheet_id: 2,
            title: "b".into(),
            rows: 10,
            cols: 10,
        };
        let reqs = resize_requests(
            &[("a", 10, 5), ("new", 3, 3), ("b", 10, 10)],
            &[Some(&a), None, Some(&b)],
        );
        let json: Vec<serde_json::Value> = reqs
            .iter()
            .map(|r| serde_json::to_value(r).expect("json"))
            .collect();
        assert_eq!(json.len(), 3, "{json:?}");
        let props = |i: usize| &json[i]["updateSheetProperties"]["properties"];
        assert_eq!(props(0)["gridProperties"]["rowCount"], 10);
        assert_eq!(props(0)["gridProperties"]["columnCount"], 2);
        assert_eq!(json[0]["updateSheetProperties"]["fields"], RESIZE_FIELDS);
        assert_eq!(props(1)["gridProperties"]["columnCount"], 5);
        assert_eq!(json[2]["addSheet"]["properties"]["title"], "new");
    }

    #[test]
    fn chunks_cover_every_row_once_and_respect_the_size() {
        let (g1, g2, g3) = (grid("a", 3, 50), grid("b", 1, 2), grid("c", 2, 40));
        let sheets = [
            Planned {
                grid: &g1,
                cols: 3,
                written: 50,
                marker: None,
            },
            Planned {
                grid: &g2,
                cols: 1,
                written: 2,
                marker: None,
            },
            Planned {
                grid: &g3,
                cols: 2,
                written: 30,
                marker: Some(marker(10, 500)),
            },
        ];
        let max = 600;
        let chunks = chunks(&sheets, max);
        assert!(chunks.len() > 3, "{}", chunks.len());
        let mut seen = vec![Vec::new(); 3];
        for chunk in &chunks {
            let mut bytes = 0;
            for p in chunk {
                seen[p.sheet].extend(p.first..p.end);
                let values: Vec<_> = (p.first..p.end).map(|i| sheets[p.sheet].row(i)).collect();
                bytes += serde_json::to_string(&values).expect("json").len();
            }
            assert!(bytes <= max, "{bytes}");
        }
        assert_eq!(seen[0], (0..51).collect::<Vec<_>>());
        assert_eq!(seen[1], (0..3).collect::<Vec<_>>());
        assert_eq!(seen[2], (0..32).collect::<Vec<_>>());
        // Small sheet b shares a request with its neighbours.
        assert!(chunks.iter().any(|c| c.len() > 1));
    }

    #[test]
    fn rows_are_neutralised_and_the_marker_is_last() {
        let g = Grid {
            title: "t".into(),
            header: vec!["=h".into()],
            rows: vec![vec!["+1".into()], vec!["ok".into()]],
            kinds: Vec::new(),
        };
        let p = Planned {
            grid: &g,
            cols: 1,
            written: 1,
            marker: Some(marker(1, 500)),
        };
        assert_eq!(p.grid_rows(), 3);
        assert_eq!(p.row(0), [serde_json::json!("'=h")]);
        assert_eq!(p.row(1), [serde_json::json!("'+1")]);
        assert!(p.row(2)[0]
            .as_str()
            .unwrap_or("")
            .starts_with("… 1 more rows"));
        assert_eq!(p.overlong(), 0);
    }

    #[test]
    fn overlong_cells_are_cut_to_googles_limit() {
        let long = "ñ".repeat(MAX_CELL_CHARS + 10);
        let g = Grid {
            title: "t".into(),
            header: vec!["h".into()],
            rows: vec![vec![long.clone()], vec!["ñ".repeat(MAX_CELL_CHARS)]],
            kinds: Vec::new(),
        };
        let p = Planned {
            grid: &g,
            cols: 1,
            written: 2,
            marker: None,
        };
        assert_eq!(p.overlong(), 1);
        let sent = p.row(1)[0].as_str().unwrap_or("").to_owned();
        assert_eq!(sent.chars().count(), MAX_CELL_CHARS);
        assert!(sent.ends_with("ñ…"));
        assert_eq!(
            p.row(2)[0].as_str().map(|s| s.chars().count()),
            Some(MAX_CELL_CHARS)
        );
        assert_eq!(cell(&format!("={long}")).chars().count(), MAX_CELL_CHARS);
    }

    #[test]
    fn typed_columns_go_as_numbers_with_formats_over_the_rows_written() {
        let g = Grid {
            title: "ventas".into(),
            header: vec!["id".into(), "importe".into(), "fecha".into(), "km".into()],
            rows: vec![
                vec![
                    "007".into(),
                    "40850171.87".into(),
                    "2019-12-06".into(),
                    "35400".into(),
                ],
                vec![
                    "008".into(),
                    "12345678901234.56".into(),
                    "2019-12-06 18:00:00".into(),
                    "".into(),
                ],
            ],
            kinds: vec![
                None,
                Some(CellKind::Amount { scale: 2 }),
                Some(CellKind::DateTime),
                Some(CellKind::Integer),
            ],
        };
        let p = Planned {
            grid: &g,
            cols: 4,
            written: 2,
            marker: None,
        };
        assert_eq!(
            p.row(0)[1],
            serde_json::json!("importe"),
            "the header is text"
        );
        assert_eq!(
            p.row(1),
            serde_json::json!(["007", 40850171.87, 43805, 35400])
                .as_array()
                .unwrap()
                .clone()
        );
        let second = p.row(2);
        assert_eq!(
            second[1],
            serde_json::json!("12345678901234.56"),
            "16 digits stay text"
        );
        assert_eq!(second[2], serde_json::json!(43805.75));
        assert_eq!(second[3], serde_json::json!(""));
        let requests = format_requests(&[p], &[Some(9)]);
        let requests = serde_json::to_value(&requests).unwrap();
        assert_eq!(
            requests.as_array().unwrap().len(),
            2,
            "amount and datetime; not km"
        );
        assert_eq!(
            requests[0]["repeatCell"]["range"],
            serde_json::json!({"sheetId": 9, "startRowIndex": 1, "endRowIndex": 3,
                "startColumnIndex": 1, "endColumnIndex": 2})
        );
        assert_eq!(
            requests[1]["repeatCell"]["cell"]["userEnteredFormat"]["numberFormat"],
            serde_json::json!({"type": "DATE_TIME", "pattern": "yyyy-mm-dd hh:mm:ss"})
        );
        assert_eq!(format_requests(&[], &[]).len(), 0);
    }
}
