//! `bench --dealers N`: many dealers at once, as an installation runs its night. For a size,
//! N tenants each get their own generated drop (their own seed) and next snapshot; every
//! tenant's run is a child process `run --tenant`, as many at a time as the machine has
//! cores, process start included. Three waves: first loads, the 1% reruns, then the same
//! exports again. Reported per wave: wall time, runs per core-hour, CRM rows written (exact:
//! the sum the generator's manifests promise).

use std::collections::VecDeque;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{fail, BenchError};
use crate::app::gen::{GenEncoding, GenOptions, Manifest, UnitFormat};

/// One wave over every tenant.
pub struct Wave {
    pub seconds: f64,
    pub crm_rows_written: u64,
}

/// The three waves of one size.
pub struct Dealers {
    pub tenants: usize,
    pub workers: usize,
    pub first: Wave,
    pub rerun: Wave,
    pub identical: Wave,
    /// Rows the 1% snapshots change, by the generator's manifests.
    pub expected_changes: u64,
}

/// Generates `tenants` dealers of `clients` under `root` and runs the three waves.
pub fn measure(
    exe: &Path,
    recipes: &Path,
    root: &Path,
    clients: usize,
    tenants: usize,
    seed: u64,
) -> Result<Dealers, BenchError> {
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root).map_err(fail)?;
    let recipes = std::path::absolute(recipes).map_err(fail)?;
    let mut file = format!(
        "[defaults]\nrecipes = {}\ninbox = \"{{tenant}}/inbox\"\nout = \"{{tenant}}/out\"\n",
        toml_string(&recipes.display().to_string())
    );
    let names: Vec<String> = (0..tenants).map(|i| format!("dealer-{i:03}")).collect();
    let mut expected_changes = 0u64;
    for (i, name) in names.iter().enumerate() {
        file.push_str(&format!("[tenants.{name}]\n"));
        let g = GenOptions {
            clients,
            seed: seed + i as u64,
            encoding: GenEncoding::Utf8Bom,
            unidades: UnitFormat::Csv,
            dirty: false,
        };
        let dir = root.join(name);
        super::drop_and_next(&g, &dir.join("day1"), &dir.join("day2"))?;
        let m = Manifest::load(&dir.join("day2")).map_err(fail)?;
        expected_changes += m
            .changes
            .unwrap_or_default()
            .values()
            .map(|c| (c.inserted + c.updated + c.deleted) as u64)
            .sum::<u64>();
    }
    let tenants_file = root.join("tenants.toml");
    std::fs::write(&tenants_file, file).map_err(fail)?;
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let wave = |day: &str| -> Result<Wave, BenchError> {
        for name in &names {
            let inbox = root.join(name).join("inbox");
            let _ = std::fs::remove_dir_all(&inbox);
            copy_exports(&root.join(name).join(day), &inbox)?;
        }
        run_wave(exe, &tenants_file, &names, workers)
    };
    let first = wave("day1")?;
    let rerun = wave("day2")?;
    let identical = wave("day2")?;
    Ok(Dealers {
        tenants,
        workers,
        first,
        rerun,
        identical,
        expected_changes,
    })
}

/// Every tenant's run, `workers` at a time.
fn run_wave(
    exe: &Path,
    tenants_file: &Path,
    names: &[String],
    workers: usize,
) -> Result<Wave, BenchError> {
    let start = Instant::now();
    let mut waiting: VecDeque<&String> = names.iter().collect();
    let mut running: Vec<(String, Child)> = Vec::new();
    let mut written = 0u64;
    while !waiting.is_empty() || !running.is_empty() {
        while running.len() < workers {
            let Some(name) = waiting.pop_front() else {
                break;
            };
            let child = Command::new(exe)
                .args(["-q", "run", "--json", "--tenant", name, "--tenants"])
                .arg(tenants_file)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(fail)?;
            running.push((name.clone(), child));
        }
        let mut i = 0;
        while i < running.len() {
            if running[i].1.try_wait().map_err(fail)?.is_some() {
                let (name, child) = running.swap_remove(i);
                let o = child.wait_with_output().map_err(fail)?;
                let json: Value = serde_json::from_slice(&o.stdout).map_err(|e| {
                    fail(format!(
                        "{name}: no JSON ({e}); stderr: {}",
                        String::from_utf8_lossy(&o.stderr)
                    ))
                })?;
                written += json["crm_rows_written"].as_u64().unwrap_or(0);
            } else {
                i += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(Wave {
        seconds: start.elapsed().as_secs_f64(),
        crm_rows_written: written,
    })
}

fn copy_exports(from: &Path, to: &Path) -> Result<(), BenchError> {
    std::fs::create_dir_all(to).map_err(fail)?;
    for e in std::fs::read_dir(from).map_err(fail)? {
        let p = e.map_err(fail)?.path();
        if p.extension().is_some_and(|x| x == "csv" || x == "xml") {
            std::fs::copy(&p, to.join(p.file_name().unwrap_or_default())).map_err(fail)?;
        }
    }
    Ok(())
}

/// A TOML basic string (a path may hold quotes or backslashes).
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl Dealers {
    /// Runs per core-hour of a wave: the machine's cores all busy for its wall time.
    pub fn per_core_hour(&self, w: &Wave) -> f64 {
        self.tenants as f64 / (w.seconds * self.workers as f64 / 3600.0)
    }
}
