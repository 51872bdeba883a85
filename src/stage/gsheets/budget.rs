//! How many rows of each sheet fit in the spreadsheet's cell limit.
//!
//! Google counts *grid* cells (rows × columns of every tab, filled or not) against one limit
//! per spreadsheet, so a sheet's cost is its whole grid: header, data rows and, when rows
//! are left out, one marker row saying so. Pure arithmetic, so it is tested without a server.

/// What one managed sheet would like to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Need {
    /// Data rows, without the header.
    pub rows: u64,
    /// Grid width (at least 1).
    pub cols: u64,
    /// `rejects` and `summary`: kept whole while the entity sheets can still shrink.
    pub keep_whole: bool,
}

impl Need {
    fn whole(&self) -> u64 {
        (1 + self.rows) * self.cols
    }

    /// Header plus marker row; a sheet without data rows never needs the marker.
    fn least(&self) -> u64 {
        if self.rows == 0 {
            self.cols
        } else {
            2 * self.cols
        }
    }
}

/// Not even headers (and marker rows) fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NoRoom {
    pub least: u64,
    pub available: u64,
}

/// Data rows to write per sheet, in the order of `needs`. A sheet whose count is below its
/// `rows` is truncated and gets a marker row, which the count leaves room for.
///
/// `other_cells` are the grids of tabs we do not manage; they stay as they are. When
/// everything fits, every sheet is whole. Otherwise `keep_whole` sheets stay whole if the
/// entity sheets can still get at least header and marker, and the entity sheets share what
/// is left in proportion to their data cells, each keeping its top rows; rows lost to
/// rounding go to the first sheets that can use them. If the `keep_whole` sheets cannot stay
/// whole, every sheet is shared the same way.
pub(crate) fn allot(needs: &[Need], other_cells: u64, max_cells: u64) -> Result<Vec<u64>, NoRoom> {
    let available = max_cells.saturating_sub(other_cells);
    let whole: u64 = needs.iter().map(Need::whole).sum();
    if whole <= available {
        return Ok(needs.iter().map(|n| n.rows).collect());
    }
    let least: u64 = needs.iter().map(Need::least).sum();
    if least > available {
        return Err(NoRoom { least, available });
    }
    let kept: u64 = needs
        .iter()
        .map(|n| if n.keep_whole { n.whole() } else { n.least() })
        .sum();
    let shared: Vec<bool> = needs
        .iter()
        .map(|n| !n.keep_whole || kept > available)
        .collect();
    let fixed: u64 = needs
        .iter()
        .zip(&shared)
        .map(|(n, &s)| if s { n.least() } else { n.whole() })
        .sum();
    let spare = available - fixed;
    let data_cells: u64 = needs
        .iter()
        .zip(&shared)
        .filter(|&(_, &s)| s)
        .map(|(n, _)| n.rows * n.cols)
        .sum();

    let mut rows: Vec<u64> = needs
        .iter()
        .zip(&shared)
        .map(|(n, &s)| {
            if !s {
                n.rows
            } else if data_cells == 0 {
                0
            } else {
                // u128: rows × cols × spare can pass u64 for very large inputs.
                let cells =
                    u128::from(spare) * u128::from(n.rows * n.cols) / u128::from(data_cells);
                (cells as u64 / n.cols).min(n.rows)
            }
        })
        .collect();
    let given: u64 = rows
        .iter()
        .zip(needs)
        .zip(&shared)
        .filter(|&(_, &s)| s)
        .map(|((r, n), _)| r * n.cols)
        .sum();
    let mut left = spare - given;
    for ((r, n), &s) in rows.iter_mut().zip(needs).zip(&shared) {
        if s && *r < n.rows {
            let more = (left / n.cols).min(n.rows - *r);
            *r += more;
            left -= more * n.cols;
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Grid rows a sheet takes when `written` of its `need.rows` data rows are written: header,
    /// data and the marker row of a truncated sheet.
    fn grid_rows(need: &Need, written: u64) -> u64 {
        1 + written + u64::from(written < need.rows)
    }

    fn entity(rows: u64, cols: u64) -> Need {
        Need {
            rows,
            cols,
            keep_whole: false,
        }
    }

    fn kept(rows: u64, cols: u64) -> Need {
        Need {
            rows,
            cols,
            keep_whole: true,
        }
    }

    fn cells(needs: &[Need], rows: &[u64]) -> u64 {
        needs
            .iter()
            .zip(rows)
            .map(|(n, &r)| grid_rows(n, r) * n.cols)
            .sum()
    }

    #[test]
    fn everything_fits_exactly() {
        let needs = [entity(9, 10), kept(4, 5)];
        // (1+9)*10 + (1+4)*5 = 125
        assert_eq!(allot(&needs, 25, 150), Ok(vec![9, 4]));
    }

    #[test]
    fn entities_share_proportionally_and_kept_sheets_stay_whole() {
        let needs = [entity(300, 2), entity(100, 2), kept(10, 5), kept(3, 4)];
        let rows = allot(&needs, 20, 500).expect("fits");
        assert_eq!(&rows[2..], &[10, 3]);
        // Kept sheets: 55 + 16 = 71; headers and markers of entities: 8; spare 401 cells
        // → 3:1, rounded down to whole rows.
        assert_eq!(rows[..2], [150, 50]);
        assert!(cells(&needs, &rows) <= 480);
        assert!(480 - cells(&needs, &rows) < 2, "no usable row left over");
    }

    #[test]
    fn a_sheet_without_rows_costs_only_its_header() {
        let needs = [entity(0, 7), entity(1000, 1)];
        let rows = allot(&needs, 0, 100).expect("fits");
        assert_eq!(rows, [0, 91]);
        assert_eq!(cells(&needs, &rows), 100);
    }

    #[test]
    fn kept_sheets_are_shared_too_when_they_alone_do_not_fit() {
        let needs = [entity(100, 1), kept(100, 1)];
        let rows = allot(&needs, 0, 60).expect("fits");
        assert!(rows[0] < 100 && rows[1] < 100, "{rows:?}");
        assert!(cells(&needs, &rows) <= 60);
    }

    #[test]
    fn no_room_for_headers_is_an_error() {
        let needs = [entity(10, 30), kept(1, 30)];
        assert_eq!(
            allot(&needs, 950, 1000),
            Err(NoRoom {
                least: 120,
                available: 50
            })
        );
        assert!(allot(&needs, 2000, 1000).is_err());
    }

    #[test]
    fn stays_within_budget_over_many_shapes() {
        for max in [50u64, 97, 500, 1234, 10_000] {
            for a in [0u64, 1, 7, 400] {
                for c in [1u64, 3, 26] {
                    let needs = [entity(a, c), entity(a * 3 + 1, 2), kept(5, 4), kept(2, 3)];
                    if let Ok(rows) = allot(&needs, 13, max) {
                        assert!(cells(&needs, &rows) <= max - 13, "{max} {a} {c} {rows:?}");
                        for (n, r) in needs.iter().zip(&rows) {
                            assert!(*r <= n.rows);
                        }
                    }
                }
            }
        }
    }
}
