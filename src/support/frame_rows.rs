//! Reading a polars frame cell by cell, typed: what every row-wise writer (the SQLite tables,
//! PostgreSQL's COPY text, REST records, the workbook and Google Sheets) needs from a column,
//! without each matching on polars dtypes itself.

use polars::prelude::*;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};

use super::decimal;

/// Typed access to one column, by row.
pub enum ColumnView {
    Str(StringChunked),
    I64(Int64Chunked),
    F64(Float64Chunked),
    /// An exact decimal: units of `10^-scale`.
    Dec(Int128Chunked, usize),
    Bool(BooleanChunked),
}

impl ColumnView {
    pub fn new(c: &Column) -> PolarsResult<ColumnView> {
        let s = c.as_materialized_series().rechunk();
        Ok(match s.dtype() {
            DataType::Int64 => ColumnView::I64(s.i64()?.clone()),
            DataType::Int32 | DataType::UInt32 | DataType::UInt64 => {
                ColumnView::I64(s.cast(&DataType::Int64)?.i64()?.clone())
            }
            DataType::Float64 | DataType::Float32 => {
                ColumnView::F64(s.cast(&DataType::Float64)?.f64()?.clone())
            }
            DataType::Decimal(_, scale) => ColumnView::Dec(s.decimal()?.physical().clone(), *scale),
            DataType::Boolean => ColumnView::Bool(s.bool()?.clone()),
            DataType::String => ColumnView::Str(s.str()?.clone()),
            _ => ColumnView::Str(s.cast(&DataType::String)?.str()?.clone()),
        })
    }

    /// The cell as SQLite binds it. Text is borrowed from the frame, not copied: a first
    /// load binds tens of millions of cells.
    pub fn value(&self, i: usize) -> ToSqlOutput<'_> {
        match self {
            ColumnView::Str(c) => c
                .get(i)
                .map(|s| ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))),
            ColumnView::I64(c) => c.get(i).map(|v| ToSqlOutput::Owned(Value::Integer(v))),
            ColumnView::F64(c) => c.get(i).map(|v| ToSqlOutput::Owned(Value::Real(v))),
            // SQLite has no exact decimal type (REAL is a double); the canonical text is
            // exact and reads like the export.
            ColumnView::Dec(c, scale) => c
                .get(i)
                .map(|v| ToSqlOutput::Owned(Value::Text(decimal::to_text(v, *scale)))),
            ColumnView::Bool(c) => c
                .get(i)
                .map(|b| ToSqlOutput::Owned(Value::Integer(b as i64))),
        }
        .unwrap_or(ToSqlOutput::Owned(Value::Null))
    }

    /// Display form for spreadsheets and logs.
    pub fn text(&self, i: usize) -> Option<String> {
        match self {
            ColumnView::Str(c) => c.get(i).map(str::to_string),
            ColumnView::I64(c) => c.get(i).map(|v| v.to_string()),
            ColumnView::F64(c) => c.get(i).map(|v| v.to_string()),
            ColumnView::Dec(c, scale) => c.get(i).map(|v| decimal::to_text(v, *scale)),
            ColumnView::Bool(c) => c.get(i).map(|b| if b { "true" } else { "false" }.into()),
        }
    }
}

/// One cell as a person reads it: text as is, numbers as plain decimals. polars' own
/// `Display` writes large floats in scientific notation (`8.0729e7`), which no one can read a
/// price from; Rust's shortest round-trip form never does (`80729000`, `40850171.87`).
/// `None` for a missing value.
pub fn display(v: &AnyValue) -> Option<String> {
    Some(match v {
        AnyValue::Null => return None,
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        AnyValue::Float64(f) => f.to_string(),
        AnyValue::Float32(f) => f.to_string(),
        AnyValue::Decimal(units, _, scale) => decimal::to_text(*units, *scale),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_as_plain_decimals() {
        assert_eq!(
            display(&AnyValue::Float64(80_729_000.0)).as_deref(),
            Some("80729000")
        );
        assert_eq!(
            display(&AnyValue::Float64(40_850_171.87)).as_deref(),
            Some("40850171.87")
        );
        assert_eq!(
            display(&AnyValue::Float64(23_793_000.5)).as_deref(),
            Some("23793000.5")
        );
        // Whatever polars would print, never an exponent.
        for v in [1e13, 9_999_999_999_999.99, 0.01, 1e-7] {
            let text = display(&AnyValue::Float64(v)).unwrap();
            assert!(!text.contains('e'), "{v}: {text}");
            assert_eq!(text.parse::<f64>().unwrap(), v);
        }
        assert_eq!(
            display(&AnyValue::Decimal(4_085_017_187, 18, 2)).as_deref(),
            Some("40850171.87")
        );
        assert_eq!(
            display(&AnyValue::Decimal(1_000_000_000_000_000, 18, 2)).as_deref(),
            Some("10000000000000.00")
        );
        assert_eq!(display(&AnyValue::Null), None);
        assert_eq!(display(&AnyValue::Int64(7)).as_deref(), Some("7"));
        assert_eq!(display(&AnyValue::String("a")).as_deref(), Some("a"));
    }
}
