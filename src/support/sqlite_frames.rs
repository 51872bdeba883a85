//! Moving polars frames into SQLite tables: column types and batched multi-row statements
//! (hundreds of rows per statement inside one transaction), shared by the staging tables and
//! the embedded CRM so both write the same way.

use polars::prelude::*;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{params_from_iter, Connection};

use super::frame_rows::ColumnView;

/// SQLite declared type for a frame column. Dates are ISO text; exact decimals are their
/// canonical text (`40850171.87`) in a TEXT column, because every numeric affinity would turn
/// that text into a double on insert.
pub fn sql_type(dtype: &DataType) -> &'static str {
    match dtype {
        DataType::Int64 | DataType::Int32 | DataType::UInt32 | DataType::UInt64 => "INTEGER",
        DataType::Float64 | DataType::Float32 => "REAL",
        DataType::Boolean => "INTEGER",
        _ => "TEXT",
    }
}

/// Quotes an identifier for SQL (field names come from recipes; quoting keeps them inert).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Inserts every row of `df` (columns in `df` order, then `extra` constant values) with
/// `head` = `INSERT INTO t (cols...)` and optional `tail` (e.g. an upsert clause).
/// Returns the number of rows changed as SQLite reports it.
pub fn insert_frame(
    conn: &Connection,
    head: &str,
    tail: &str,
    df: &DataFrame,
    extra: &[Value],
) -> Result<usize, rusqlite::Error> {
    let views: Vec<ColumnView> = df
        .columns()
        .iter()
        .map(ColumnView::new)
        .collect::<PolarsResult<_>>()
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let width = views.len() + extra.len();
    if width == 0 {
        return Ok(0);
    }
    let batch = (30_000 / width).clamp(1, 500);
    let row = format!("({})", vec!["?"; width].join(","));
    let sql_for = |n: usize| format!("{head} VALUES {} {tail}", vec![row.as_str(); n].join(","));
    let full = sql_for(batch);
    let mut changed = 0;
    let mut params: Vec<ToSqlOutput> = Vec::with_capacity(batch * width);
    let height = df.height();
    let mut start = 0;
    while start < height {
        let n = batch.min(height - start);
        params.clear();
        for i in start..start + n {
            for v in &views {
                params.push(v.value(i));
            }
            params.extend(
                extra
                    .iter()
                    .map(|x| ToSqlOutput::Borrowed(ValueRef::from(x))),
            );
        }
        let mut stmt = if n == batch {
            conn.prepare_cached(&full)?
        } else {
            conn.prepare_cached(&sql_for(n))?
        };
        changed += stmt.execute(params_from_iter(params.iter()))?;
        start += n;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_in_batches_with_nulls_and_types() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (id TEXT, n INTEGER, x REAL, b INTEGER, run TEXT)")
            .unwrap();
        let n = 1234;
        let df = df!(
            "id" => (0..n).map(|i| format!("r{i}")).collect::<Vec<_>>(),
            "n" => (0..n).map(|i| if i % 7 == 0 { None } else { Some(i as i64) }).collect::<Vec<_>>(),
            "x" => (0..n).map(|i| i as f64 / 2.0).collect::<Vec<_>>(),
            "b" => (0..n).map(|i| i % 2 == 0).collect::<Vec<_>>()
        )
        .unwrap();
        let written = insert_frame(
            &conn,
            "INSERT INTO t (id, n, x, b, run)",
            "",
            &df,
            &[Value::Text("R1".into())],
        )
        .unwrap();
        assert_eq!(written, n);
        let (count, nulls, sum_b): (i64, i64, i64) = conn
            .query_row(
                "SELECT count(*), sum(n IS NULL), sum(b) FROM t WHERE run = 'R1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(count, n as i64);
        assert_eq!(nulls, (0..n).filter(|i| i % 7 == 0).count() as i64);
        assert_eq!(sum_b, (n as i64 + 1) / 2);
    }
}
