//! `dropsync bench`: dealer-scale runs measured side by side with a near-limit baseline.
//!
//! For each size N it generates a seeded drop (UTF-8 with BOM and `unidades.csv`, so the
//! baseline can read every file) and its next snapshot with 1% of rows changed, then times,
//! each in a fresh child process of this binary (so peak RSS is per run): the first full
//! load, an identical rerun, and the rerun on the 1% snapshot. The baseline is polars' own
//! CSV reader on the same next-snapshot files, with `;`, decimal comma and date parsing of the
//! columns the recipes type. Timings are printed, never asserted. With `--dealers N`, each
//! size is also run as N tenants at once (`dealers`): the capacity of an installation.

mod dealers;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use polars::prelude::*;
use serde_json::{json, Value};

use crate::app::gen::{self, ChangeSpec, GenEncoding, GenOptions, UnitFormat};
use crate::config::{self, FieldInput, FieldType};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bench: {0}")]
    Failed(String),
}

fn fail(e: impl std::fmt::Display) -> BenchError {
    BenchError::Failed(e.to_string())
}

pub struct BenchOptions {
    pub sizes: Vec<usize>,
    pub dir: PathBuf,
    pub recipes: PathBuf,
    pub seed: u64,
    pub report: Option<PathBuf>,
    /// Env var with a PostgreSQL URL: also measure the PostgreSQL apply (COPY path vs a
    /// naive row-by-row upsert of the same rows).
    pub pg_url_env: Option<String>,
    /// Also run each size as this many tenants at once (0: not measured).
    pub dealers: usize,
}

/// One measured run.
struct Measure {
    label: &'static str,
    seconds: f64,
    json: Value,
}

pub fn run(opts: &BenchOptions) -> Result<String, BenchError> {
    let exe = std::env::current_exe().map_err(fail)?;
    let mut table = String::new();
    table.push_str(&format!(
        "Machine: {} cores, {}; dropsync {} ({} build); seed {}.\n\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        memory_total(),
        env!("CARGO_PKG_VERSION"),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        opts.seed
    ));
    table.push_str("| N clients | rows | input MiB | run | wall s | rows/s | peak RSS MiB | RSS / input | CRM rows written | read | transform | validate | diff | stage sqlite | stage xlsx | CRM | snapshot |\n");
    table.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let mut ratios = String::from("\n| N clients | baseline (polars read+parse) s | baseline rows/s | baseline RSS MiB | identical rerun s | ratio identical / baseline | 1% rerun s | ratio rerun / baseline | first load rows/s | first load RSS / input |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for &n in &opts.sizes {
        let root = opts.dir.join(format!("n{n}"));
        let _ = std::fs::remove_dir_all(&root);
        let (day1, day2, out) = (root.join("day1"), root.join("day2"), root.join("out"));
        let g = GenOptions {
            clients: n,
            seed: opts.seed,
            encoding: GenEncoding::Utf8Bom,
            unidades: UnitFormat::Csv,
            dirty: false,
        };
        let t = Instant::now();
        let m = drop_and_next(&g, &day1, &day2)?;
        tracing::info!(n, seconds = t.elapsed().as_secs_f64(), "generated");
        let rows: usize = m.entities.values().map(|e| e.rows).sum();
        let bytes = dir_bytes(&day1);
        let runs = [
            ("first load", &day1),
            ("identical rerun", &day1),
            ("1% changes", &day2),
        ];
        let mut measured = Vec::new();
        for (label, inbox) in runs {
            measured.push(measure_run(&exe, &opts.recipes, inbox, &out, label)?);
        }
        let base = measure_baseline(&exe, &opts.recipes, &day2)?;
        for m in &measured {
            let t = &m.json["timings"];
            let rss = m.json["peak_rss_mb"].as_f64().unwrap_or(0.0);
            table.push_str(&format!(
                "| {n} | {rows} | {:.1} | {} | {:.2} | {:.0} | {:.0} | {:.2} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
                bytes as f64 / 1048576.0,
                m.label,
                m.seconds,
                rows as f64 / m.seconds,
                rss,
                rss / (bytes as f64 / 1048576.0),
                m.json["crm_rows_written"],
                f(t, "read"),
                f(t, "transform"),
                f(t, "validate"),
                f(t, "diff"),
                f(t, "stage_sqlite"),
                f(t, "stage_xlsx"),
                f(t, "crm"),
                f(t, "snapshot"),
            ));
        }
        let (first, identical, rerun) = (&measured[0], measured[1].seconds, measured[2].seconds);
        let first_rss = first.json["peak_rss_mb"].as_f64().unwrap_or(0.0);
        ratios.push_str(&format!(
            "| {n} | {:.2} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.2} |\n",
            base.0,
            rows as f64 / base.0,
            base.1,
            identical,
            identical / base.0,
            rerun,
            rerun / base.0,
            rows as f64 / first.seconds,
            first_rss / (bytes as f64 / 1048576.0),
        ));
    }
    let mut pg = String::new();
    if let Some(var) = &opts.pg_url_env {
        pg.push_str("\n| rows (clientes) | PostgreSQL COPY + ON CONFLICT rows/s | row-by-row INSERT … ON CONFLICT rows/s | speed-up |\n|---|---|---|---|\n");
        for &n in &opts.sizes {
            let day1 = opts.dir.join(format!("n{n}")).join("day1");
            let (copy, naive, rows) = measure_pg(&opts.recipes, &day1, var)?;
            pg.push_str(&format!(
                "| {rows} | {copy:.0} | {naive:.0} | {:.1}x |\n",
                copy / naive
            ));
        }
    }
    let mut many = String::new();
    if opts.dealers > 0 {
        many.push_str("\n| N clients | tenants | runs at a time | first loads s | first loads per core-hour | 1% reruns s | 1% reruns per core-hour | identical s | identical per core-hour | CRM rows written (first / 1% / identical) | 1% rows expected |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
        for &n in &opts.sizes {
            let d = dealers::measure(
                &exe,
                &opts.recipes,
                &opts.dir.join(format!("dealers-n{n}")),
                n,
                opts.dealers,
                opts.seed,
            )?;
            many.push_str(&format!(
                "| {n} | {} | {} | {:.2} | {:.0} | {:.2} | {:.0} | {:.2} | {:.0} | {} / {} / {} | {} |\n",
                d.tenants,
                d.workers,
                d.first.seconds,
                d.per_core_hour(&d.first),
                d.rerun.seconds,
                d.per_core_hour(&d.rerun),
                d.identical.seconds,
                d.per_core_hour(&d.identical),
                d.first.crm_rows_written,
                d.rerun.crm_rows_written,
                d.identical.crm_rows_written,
                d.expected_changes,
            ));
        }
    }
    let report = format!("{table}{ratios}{pg}{many}");
    if let Some(path) = &opts.report {
        std::fs::write(path, &report).map_err(fail)?;
    }
    Ok(report)
}

/// The night the benchmark measures: 0.8% of rows updated, 0.1% added, 0.1% deleted.
const ONE_PERCENT: ChangeSpec = ChangeSpec {
    changed: 0.008,
    added: 0.001,
    deleted: 0.001,
};

/// A seeded drop in `day1` and its next snapshot, [`ONE_PERCENT`] changed, in `day2`; the
/// first drop's manifest.
fn drop_and_next(g: &GenOptions, day1: &Path, day2: &Path) -> Result<gen::Manifest, BenchError> {
    let m = gen::generate(g, day1).map_err(fail)?;
    gen::generate_next(g, &ONE_PERCENT, day2).map_err(fail)?;
    Ok(m)
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(0.0)
}

fn memory_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| format!("{:.0} GiB RAM", kb / 1048576.0))
        .unwrap_or_else(|| "RAM unknown".into())
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name() != "manifest.json")
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn measure_run(
    exe: &Path,
    recipes: &Path,
    inbox: &Path,
    out: &Path,
    label: &'static str,
) -> Result<Measure, BenchError> {
    let mut cmd = Command::new(exe);
    cmd.args(["-q", "run", "--json", "--recipes"])
        .arg(recipes)
        .arg("--inbox")
        .arg(inbox)
        .arg("--out")
        .arg(out);
    let (seconds, json) = timed_json(cmd, label)?;
    tracing::info!(label, seconds, "measured");
    Ok(Measure {
        label,
        seconds,
        json,
    })
}

/// (seconds, peak RSS MB) of the baseline in a child process.
fn measure_baseline(exe: &Path, recipes: &Path, inbox: &Path) -> Result<(f64, f64), BenchError> {
    let mut cmd = Command::new(exe);
    cmd.args(["-q", "bench-baseline", "--recipes"])
        .arg(recipes)
        .arg("--inbox")
        .arg(inbox);
    let (seconds, json) = timed_json(cmd, "baseline")?;
    Ok((seconds, json["peak_rss_mb"].as_f64().unwrap_or(0.0)))
}

/// Runs a child that prints one JSON object; (its wall seconds, the object).
fn timed_json(mut cmd: Command, label: &str) -> Result<(f64, Value), BenchError> {
    let t = Instant::now();
    let o = cmd.output().map_err(fail)?;
    let seconds = t.elapsed().as_secs_f64();
    let json: Value = serde_json::from_slice(&o.stdout).map_err(|e| {
        fail(format!(
            "{label}: no JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&o.stderr)
        ))
    })?;
    Ok((seconds, json))
}

/// The baseline itself: polars' CSV reader on every CSV of the drop, `;` separated, then the
/// recipe-typed columns parsed (dates `dd/mm/yyyy`, decimal comma, thousands dots).
pub fn baseline(recipes_dir: &Path, inbox: &Path) -> Result<Value, BenchError> {
    let recipes = config::load_dir(recipes_dir).map_err(fail)?;
    let t = Instant::now();
    let mut rows = 0;
    for r in &recipes.entities {
        let Some(path) = r
            .source
            .files
            .iter()
            .map(|f| inbox.join(f))
            .find(|p| p.exists() && p.extension().is_some_and(|e| e == "csv"))
        else {
            continue;
        };
        let df = CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .map_parse_options(|p| p.with_separator(b';'))
            .try_into_reader_with_file_path(Some(path.clone()))
            .map_err(fail)?
            .finish()
            .map_err(fail)?;
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|s| s.trim_start_matches('\u{feff}').to_string())
            .collect();
        let mut exprs = Vec::new();
        for field in &r.fields {
            let FieldInput::Column(c) = &field.input else {
                continue;
            };
            let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(c)) else {
                continue;
            };
            let src = col(df.get_column_names()[i].as_str());
            let e = match field.kind {
                FieldType::Date => src.str().to_date(StrptimeOptions {
                    format: Some("%d/%m/%Y".into()),
                    strict: false,
                    exact: true,
                    cache: true,
                }),
                // The same exact type the pipeline parses amounts into.
                FieldType::Decimal => {
                    let d = field.decimal.unwrap_or(crate::config::DecimalSpec::DEFAULT);
                    src.str()
                        .replace_all(lit("."), lit(""), true)
                        .str()
                        .replace(lit(","), lit("."), true)
                        .cast(DataType::Decimal(d.precision, d.scale))
                }
                FieldType::Integer => src
                    .str()
                    .replace_all(lit("."), lit(""), true)
                    .cast(DataType::Int64),
                _ => continue,
            };
            exprs.push(e.alias(format!("{}_typed", field.name)));
        }
        let out = df.lazy().with_columns(exprs).collect().map_err(fail)?;
        rows += out.height();
    }
    Ok(
        json!({"rows": rows, "seconds": t.elapsed().as_secs_f64(), "peak_rss_mb": crate::support::memory::peak_rss_mb()}),
    )
}

/// Rows/s of the PostgreSQL target's bulk upsert and of a naive row-by-row upsert, on the
/// drop's clients (row-by-row on at most 20,000 of them: it is that slow).
fn measure_pg(
    recipes_dir: &Path,
    day1: &Path,
    url_env: &str,
) -> Result<(f64, f64, usize), BenchError> {
    use crate::sinks::postgres::PgTarget;
    let recipes = config::load_dir(recipes_dir).map_err(fail)?;
    let r = recipes
        .get("clientes")
        .ok_or_else(|| fail("no clientes recipe"))?;
    let raw = crate::read::read_file(&day1.join("clientes.csv"), r).map_err(fail)?;
    let typed = crate::transform::Plan::new(r)
        .apply(raw.frame)
        .map_err(fail)?;
    let rows = typed
        .select(std::iter::once("id").chain(r.fields.iter().map(|f| f.name.as_str())))
        .map_err(fail)?
        .unique_stable(Some(&["id".into()]), UniqueKeepStrategy::First, None)
        .map_err(fail)?;
    let cols = crate::sinks::postgres::sink::columns(r, true);
    let mut pg = PgTarget::connect(url_env, "dropsync_bench").map_err(fail)?;
    for t in ["bench_copy", "bench_rows"] {
        pg.prepare_crm_table(t, &cols).map_err(fail)?;
        pg.delete(t, &[], crate::sinks::postgres::DeleteMode::Hard, "x")
            .map_err(fail)?;
    }
    let t = Instant::now();
    let mut data = crate::sinks::postgres::CopyText::new(&rows).map_err(fail)?;
    pg.upsert_copy("bench_copy", &cols, &mut data, "bench")
        .map_err(fail)?;
    let copy = rows.height() as f64 / t.elapsed().as_secs_f64();
    let few = rows.head(Some(20_000));
    let t = Instant::now();
    let mut data = crate::sinks::postgres::CopyText::new(&few).map_err(fail)?;
    pg.upsert_row_by_row("bench_rows", &cols, &mut data, "bench")
        .map_err(fail)?;
    let naive = few.height() as f64 / t.elapsed().as_secs_f64();
    Ok((copy, naive, rows.height()))
}
