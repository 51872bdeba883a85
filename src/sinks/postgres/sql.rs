//! SQL text for the target: identifier quoting, the closed set of column types and the
//! statements `PgTarget` runs. Everything that comes from a recipe (table and column names)
//! goes through [`quote_ident`]; values never go into SQL text, they travel as COPY data or
//! bound parameters.

use super::{PgColumn, PgError};

/// PostgreSQL silently truncates longer identifiers (NAMEDATALEN - 1 bytes), which would make
/// two recipe names collide or make a migration look for a column that never appears.
const MAX_IDENT_BYTES: usize = 63;

/// Bookkeeping columns of every CRM table, in table order, with their definitions.
pub(crate) const BOOKKEEPING: [(&str, &str); 4] = [
    ("_created_run", "TEXT"),
    ("_updated_run", "TEXT"),
    ("_deleted", "BOOLEAN NOT NULL DEFAULT false"),
    ("_deleted_run", "TEXT"),
];

/// Name of the per-transaction temp table `upsert_copy` loads into. `ON COMMIT DROP` (and a
/// rollback) removes it, so one fixed name per session is enough.
pub(crate) const TEMP_TABLE: &str = "_dropsync_copy";

/// The column types a recipe may use. A closed set because the type is spliced into DDL and
/// because both bulk paths rely on PostgreSQL's text input functions to parse the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SqlType {
    Text,
    BigInt,
    /// Kept so tables written before amounts were exact can be recognised and migrated.
    Double,
    /// Exact decimal: `NUMERIC(precision, scale)`, how decimal fields are stored.
    Numeric {
        precision: u8,
        scale: u8,
    },
    Boolean,
    Date,
    Timestamp,
}

impl SqlType {
    /// The accepted spellings, for error messages.
    pub(crate) const ALLOWED: &'static str =
        "TEXT, BIGINT, NUMERIC(p,s), DOUBLE PRECISION, BOOLEAN, DATE, TIMESTAMP";

    pub(crate) fn parse(sql_type: &str) -> Option<SqlType> {
        let normalized = sql_type
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_uppercase();
        Some(match normalized.as_str() {
            "TEXT" => SqlType::Text,
            "BIGINT" => SqlType::BigInt,
            "DOUBLE PRECISION" => SqlType::Double,
            "BOOLEAN" => SqlType::Boolean,
            "DATE" => SqlType::Date,
            "TIMESTAMP" => SqlType::Timestamp,
            other => {
                let args = other.strip_prefix("NUMERIC(")?.strip_suffix(')')?;
                let (p, s) = args.split_once(',')?;
                let precision: u8 = p.trim().parse().ok()?;
                let scale: u8 = s.trim().parse().ok()?;
                // PostgreSQL's own limits are wider; polars' (38 digits) are the ones that
                // matter here.
                if !(1..=38).contains(&precision) || scale > precision {
                    return None;
                }
                SqlType::Numeric { precision, scale }
            }
        })
    }

    /// The type as written in DDL and casts.
    pub(crate) fn ddl(self) -> String {
        match self {
            SqlType::Text => "TEXT".into(),
            SqlType::BigInt => "BIGINT".into(),
            SqlType::Double => "DOUBLE PRECISION".into(),
            SqlType::Numeric { precision, scale } => format!("NUMERIC({precision},{scale})"),
            SqlType::Boolean => "BOOLEAN".into(),
            SqlType::Date => "DATE".into(),
            SqlType::Timestamp => "TIMESTAMP".into(),
        }
    }

    /// The type as `format_type()` reports it, to compare an existing table with the recipe.
    pub(crate) fn catalog_name(self) -> String {
        match self {
            SqlType::Text => "text".into(),
            SqlType::BigInt => "bigint".into(),
            SqlType::Double => "double precision".into(),
            SqlType::Numeric { precision, scale } => format!("numeric({precision},{scale})"),
            SqlType::Boolean => "boolean".into(),
            SqlType::Date => "date".into(),
            SqlType::Timestamp => "timestamp without time zone".into(),
        }
    }

    /// How an existing column of catalog type `existing` becomes this type in place, as the
    /// `USING` expression of `ALTER COLUMN … TYPE` over column `quoted`; `None` when it cannot
    /// without losing data (and the migration is refused with a type mismatch instead).
    ///
    /// A double goes through its text: since PostgreSQL 12 a `float8` prints as the shortest
    /// text that reads back as the same double, so `40850171.87` stays `40850171.87`, while a
    /// direct `::numeric` cast keeps only 15 significant digits.
    pub(crate) fn migration_from(self, existing: &str, quoted: &str) -> Option<String> {
        let SqlType::Numeric { scale, .. } = self else {
            return None;
        };
        if existing == "double precision" || existing == "real" {
            Some(format!("round({quoted}::text::numeric, {scale})"))
        } else if existing.starts_with("numeric") {
            Some(format!("round({quoted}, {scale})"))
        } else {
            None
        }
    }
}

/// A column after validation: quoted name and parsed type.
#[derive(Debug, Clone)]
pub(crate) struct Col {
    pub(crate) name: String,
    pub(crate) quoted: String,
    pub(crate) ty: SqlType,
    pub(crate) create_only: bool,
}

/// Quotes an identifier for PostgreSQL: double quotes around it, inner double quotes doubled.
/// Quoting keeps the recipe's exact spelling (case included) and makes keywords and odd
/// characters safe.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Checks a recipe identifier before it reaches SQL.
pub(crate) fn check_ident(name: &str) -> Result<(), PgError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.contains('\0') {
        "it contains a NUL character, which PostgreSQL identifiers cannot hold"
    } else if name.len() > MAX_IDENT_BYTES {
        "it is longer than 63 bytes and PostgreSQL would silently truncate it"
    } else {
        return Ok(());
    };
    Err(PgError::InvalidIdentifier {
        name: name.to_string(),
        reason,
    })
}

/// Validates the recipe's columns for `table`: identifiers, types, no duplicates and none of
/// the `reserved` names (`id` always; the bookkeeping columns for CRM tables).
pub(crate) fn check_columns(
    table: &str,
    columns: &[PgColumn],
    reserved: &[&str],
) -> Result<Vec<Col>, PgError> {
    check_ident(table)?;
    let mut out: Vec<Col> = Vec::with_capacity(columns.len());
    for column in columns {
        check_ident(&column.name)?;
        if reserved.contains(&column.name.as_str()) {
            return Err(PgError::ReservedColumn {
                table: table.to_string(),
                column: column.name.clone(),
            });
        }
        if out.iter().any(|c| c.name == column.name) {
            return Err(PgError::DuplicateColumn {
                table: table.to_string(),
                column: column.name.clone(),
            });
        }
        let ty = SqlType::parse(&column.sql_type).ok_or_else(|| PgError::UnsupportedType {
            table: table.to_string(),
            column: column.name.clone(),
            sql_type: column.sql_type.to_string(),
        })?;
        out.push(Col {
            name: column.name.clone(),
            quoted: quote_ident(&column.name),
            ty,
            create_only: column.create_only,
        });
    }
    Ok(out)
}

/// Reserved names of a CRM table: `id` plus the bookkeeping columns.
pub(crate) fn crm_reserved() -> Vec<&'static str> {
    let mut names = vec!["id"];
    names.extend(BOOKKEEPING.iter().map(|(name, _)| *name));
    names
}

/// `"id" TEXT PRIMARY KEY, "a" BIGINT, ...` (the layout shared by CRM and staging tables).
pub(crate) fn column_defs(cols: &[Col]) -> Vec<String> {
    let mut defs = vec!["\"id\" TEXT PRIMARY KEY".to_string()];
    defs.extend(cols.iter().map(|c| format!("{} {}", c.quoted, c.ty.ddl())));
    defs
}

/// `"id", "a", "b"`: the COPY column list (id first, then the recipe order).
pub(crate) fn copy_column_list(cols: &[Col]) -> String {
    let mut names = vec!["\"id\"".to_string()];
    names.extend(cols.iter().map(|c| c.quoted.clone()));
    names.join(", ")
}

/// The temp table `upsert_copy` loads: same types as the target so COPY parses the values,
/// `id NOT NULL` so a missing id fails on its line.
pub(crate) fn create_temp_table(cols: &[Col]) -> String {
    let mut defs = vec!["\"id\" TEXT NOT NULL".to_string()];
    defs.extend(cols.iter().map(|c| format!("{} {}", c.quoted, c.ty.ddl())));
    format!(
        "CREATE TEMP TABLE {} ({}) ON COMMIT DROP",
        quote_ident(TEMP_TABLE),
        defs.join(", ")
    )
}

/// The `ON CONFLICT` tail shared by both upsert paths: update the non create-only columns and
/// the bookkeeping, but only when a compared value differs or the row was soft-deleted, so an
/// identical row is not rewritten (and keeps its `_updated_run`).
fn on_conflict(cols: &[Col]) -> String {
    let updated: Vec<&Col> = cols.iter().filter(|c| !c.create_only).collect();
    let mut set: Vec<String> = updated
        .iter()
        .map(|c| format!("{0} = EXCLUDED.{0}", c.quoted))
        .collect();
    set.push("\"_updated_run\" = EXCLUDED.\"_updated_run\"".to_string());
    set.push("\"_deleted\" = false".to_string());
    set.push("\"_deleted_run\" = NULL".to_string());
    let condition = if updated.is_empty() {
        "cur.\"_deleted\"".to_string()
    } else {
        let current: Vec<String> = updated
            .iter()
            .map(|c| format!("cur.{}", c.quoted))
            .collect();
        let incoming: Vec<String> = updated
            .iter()
            .map(|c| format!("EXCLUDED.{}", c.quoted))
            .collect();
        format!(
            "ROW({}) IS DISTINCT FROM ROW({}) OR cur.\"_deleted\"",
            current.join(", "),
            incoming.join(", ")
        )
    };
    format!(
        "ON CONFLICT (\"id\") DO UPDATE SET {} WHERE {}",
        set.join(", "),
        condition
    )
}

fn insert_columns(cols: &[Col]) -> String {
    format!(
        "{}, \"_created_run\", \"_updated_run\"",
        copy_column_list(cols)
    )
}

/// `upsert_copy`: one statement from the temp table. `$1` is the run id.
pub(crate) fn upsert_from_temp(target: &str, cols: &[Col]) -> String {
    format!(
        "INSERT INTO {target} AS cur ({}) SELECT {}, $1::text, $1::text FROM {} {}",
        insert_columns(cols),
        copy_column_list(cols),
        quote_ident(TEMP_TABLE),
        on_conflict(cols)
    )
}

/// `upsert_row_by_row`: one row per execution. `$1` is the run id, `$2` the id, then one
/// text parameter per column cast server-side with the type's input function, the same
/// parser COPY uses, so both paths accept and store exactly the same values.
pub(crate) fn upsert_one_row(target: &str, cols: &[Col]) -> String {
    let mut values = vec!["$2::text".to_string()];
    values.extend(
        cols.iter()
            .enumerate()
            .map(|(i, c)| format!("${}::text::{}", i + 3, c.ty.ddl())),
    );
    format!(
        "INSERT INTO {target} AS cur ({}) VALUES ({}, $1::text, $1::text) {}",
        insert_columns(cols),
        values.join(", "),
        on_conflict(cols)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, sql_type: &str, create_only: bool) -> PgColumn {
        PgColumn {
            name: name.to_string(),
            sql_type: sql_type.to_string(),
            create_only,
        }
    }

    #[test]
    fn quote_ident_doubles_inner_quotes() {
        assert_eq!(quote_ident("name"), "\"name\"");
        assert_eq!(quote_ident("Sales \"2026\""), "\"Sales \"\"2026\"\"\"");
        assert_eq!(quote_ident("a;drop table x"), "\"a;drop table x\"");
    }

    #[test]
    fn check_ident_rejects_what_postgres_would_mangle() {
        assert!(check_ident("clients").is_ok());
        assert!(check_ident("").is_err());
        assert!(check_ident("a\0b").is_err());
        assert!(check_ident(&"x".repeat(63)).is_ok());
        let err = check_ident(&"x".repeat(64)).unwrap_err().to_string();
        assert!(err.contains("63 bytes"), "{err}");
    }

    #[test]
    fn sql_types_are_a_closed_set() {
        assert_eq!(SqlType::parse("double  precision"), Some(SqlType::Double));
        assert_eq!(SqlType::parse("bigint"), Some(SqlType::BigInt));
        assert_eq!(
            SqlType::parse("numeric(18, 2)"),
            Some(SqlType::Numeric {
                precision: 18,
                scale: 2
            })
        );
        assert_eq!(SqlType::parse("NUMERIC(2,3)"), None);
        assert_eq!(SqlType::parse("NUMERIC(18,2); DROP TABLE x"), None);
        assert_eq!(SqlType::parse("INT; DROP TABLE x"), None);
        let err = check_columns("t", &[col("a", "VARCHAR(10)", false)], &["id"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("VARCHAR(10)") && err.contains("DOUBLE PRECISION"),
            "{err}"
        );
    }

    #[test]
    fn check_columns_rejects_reserved_and_duplicates() {
        let reserved = crm_reserved();
        assert!(check_columns("t", &[col("id", "TEXT", false)], &reserved).is_err());
        assert!(check_columns("t", &[col("_deleted", "TEXT", false)], &reserved).is_err());
        assert!(check_columns(
            "t",
            &[col("a", "TEXT", false), col("a", "DATE", false)],
            &reserved
        )
        .is_err());
        // Quoted identifiers are case-sensitive: "ID" is another column than "id".
        assert!(check_columns("t", &[col("ID", "TEXT", false)], &reserved).is_ok());
    }

    #[test]
    fn upsert_skips_create_only_columns_on_update() {
        let cols = check_columns(
            "t",
            &[col("name", "TEXT", false), col("source", "TEXT", true)],
            &crm_reserved(),
        )
        .unwrap();
        let sql = upsert_from_temp("\"s\".\"t\"", &cols);
        assert!(
            sql.contains("SET \"name\" = EXCLUDED.\"name\", \"_updated_run\""),
            "{sql}"
        );
        assert!(!sql.contains("\"source\" = EXCLUDED"), "{sql}");
        assert!(
            sql.contains("WHERE ROW(cur.\"name\") IS DISTINCT FROM ROW(EXCLUDED.\"name\")"),
            "{sql}"
        );
    }

    #[test]
    fn upsert_with_only_create_only_columns_still_undeletes() {
        let cols = check_columns("t", &[col("source", "TEXT", true)], &crm_reserved()).unwrap();
        let sql = upsert_one_row("\"s\".\"t\"", &cols);
        assert!(sql.ends_with("WHERE cur.\"_deleted\""), "{sql}");
        assert!(
            sql.contains("VALUES ($2::text, $3::text::TEXT, $1::text, $1::text)"),
            "{sql}"
        );
    }
}
