//! Reading a polars frame cell by cell, typed: what every row-wise writer (the SQLite tables,
//! PostgreSQL's COPY text, REST records, the workbook and Google Sheets) needs from a column,
//! without each matching on polars dtypes itself.

use polars::prelude::*;
use rusqlite::types::Value;

/// Typed access to one column, by row.
pub enum ColumnView {
    Str(StringChunked),
    I64(Int64Chunked),
    F64(Float64Chunked),
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
            DataType::Boolean => ColumnView::Bool(s.bool()?.clone()),
            DataType::String => ColumnView::Str(s.str()?.clone()),
            _ => ColumnView::Str(s.cast(&DataType::String)?.str()?.clone()),
        })
    }

    pub fn value(&self, i: usize) -> Value {
        match self {
            ColumnView::Str(c) => c.get(i).map(|s| Value::Text(s.to_string())),
            ColumnView::I64(c) => c.get(i).map(Value::Integer),
            ColumnView::F64(c) => c.get(i).map(Value::Real),
            ColumnView::Bool(c) => c.get(i).map(|b| Value::Integer(b as i64)),
        }
        .unwrap_or(Value::Null)
    }

    /// Display form for spreadsheets and logs.
    pub fn text(&self, i: usize) -> Option<String> {
        match self {
            ColumnView::Str(c) => c.get(i).map(str::to_string),
            ColumnView::I64(c) => c.get(i).map(|v| v.to_string()),
            ColumnView::F64(c) => c.get(i).map(|v| v.to_string()),
            ColumnView::Bool(c) => c.get(i).map(|b| if b { "true" } else { "false" }.into()),
        }
    }
}
