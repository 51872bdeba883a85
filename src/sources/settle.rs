//! Deciding when files in a drop folder are complete, without trusting the writer to say so.
//! Pure (time is passed in), so the rules are unit-tested without sleeping.
//!
//! A file counts as arrived when its name is not a temporary one, its size and mtime stayed
//! the same for the settle window, and it opens. A drop is ready when every arrived file is
//! settled and nothing changed in the folder for the quiet period (entity files may arrive
//! minutes apart). In marker mode a drop is ready only when a `*.done` file exists; if it
//! lists file names, those are the drop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::is_temporary;

/// What one listing saw of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub size: u64,
    pub mtime_ms: i128,
}

#[derive(Debug, Clone)]
struct Track {
    seen: Seen,
    /// When it last changed (or was first seen).
    since: Instant,
}

#[derive(Debug, Clone)]
pub struct SettleRules {
    pub settle: Duration,
    pub quiet: Duration,
    pub marker: bool,
}

/// Remembers what each listing saw.
#[derive(Debug, Default)]
pub struct Settler {
    files: BTreeMap<String, Track>,
    last_change: Option<Instant>,
}

/// A drop that is ready to process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub files: Vec<PathBuf>,
    /// The marker file, moved along with the drop.
    pub marker: Option<PathBuf>,
}

impl Settler {
    /// Feeds one listing of `dir` (name → size/mtime) taken at `now`; returns a ready drop when
    /// the rules hold.
    pub fn observe(
        &mut self,
        dir: &Path,
        listing: &BTreeMap<String, Seen>,
        now: Instant,
        rules: &SettleRules,
    ) -> Option<Ready> {
        let mut changed = false;
        self.files.retain(|name, _| listing.contains_key(name));
        for (name, seen) in listing {
            if is_temporary(name) {
                continue;
            }
            match self.files.get_mut(name) {
                Some(t) if t.seen == *seen => {}
                Some(t) => {
                    t.seen = *seen;
                    t.since = now;
                    changed = true;
                }
                None => {
                    self.files.insert(
                        name.clone(),
                        Track {
                            seen: *seen,
                            since: now,
                        },
                    );
                    changed = true;
                }
            }
        }
        if changed {
            self.last_change = Some(now);
        }
        let last = self.last_change?;
        if now.duration_since(last) < rules.quiet {
            return None;
        }
        let marker = self
            .files
            .keys()
            .find(|n| n.to_lowercase().ends_with(".done"))
            .cloned();
        if rules.marker && marker.is_none() {
            return None;
        }
        let wanted: Option<Vec<String>> = match (&marker, rules.marker) {
            (Some(m), true) => std::fs::read_to_string(dir.join(m)).ok().map(|s| {
                s.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            }),
            _ => None,
        }
        .filter(|v| !v.is_empty());
        let mut files = Vec::new();
        for (name, t) in &self.files {
            if Some(name) == marker.as_ref() {
                continue;
            }
            if let Some(w) = &wanted {
                if !w.iter().any(|x| x.eq_ignore_ascii_case(name)) {
                    continue;
                }
            }
            if now.duration_since(t.since) < rules.settle {
                return None;
            }
            let path = dir.join(name);
            if std::fs::File::open(&path).is_err() {
                return None;
            }
            files.push(path);
        }
        if let Some(w) = &wanted {
            // Every file the marker names must be here and settled.
            if w.len() != files.len() {
                return None;
            }
        }
        if files.is_empty() {
            return None;
        }
        Some(Ready {
            files,
            marker: marker.map(|m| dir.join(m)),
        })
    }

    /// Files are being tracked (so the folder needs looking at again soon).
    pub fn is_tracking(&self) -> bool {
        !self.files.is_empty()
    }

    /// Forget everything (after a drop was taken out of the folder).
    pub fn reset(&mut self) {
        self.files.clear();
        self.last_change = None;
    }
}

/// Lists the regular files of `dir` with size and mtime.
pub fn list(dir: &Path) -> std::io::Result<BTreeMap<String, Seen>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let meta = match e.metadata() {
            Ok(m) if m.is_file() => m,
            _ => continue,
        };
        let mtime_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i128)
            .unwrap_or(0);
        out.insert(
            e.file_name().to_string_lossy().into_owned(),
            Seen {
                size: meta.len(),
                mtime_ms,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(marker: bool) -> SettleRules {
        SettleRules {
            settle: Duration::from_secs(5),
            quiet: Duration::from_secs(10),
            marker,
        }
    }

    fn seen(size: u64) -> Seen {
        Seen {
            size,
            mtime_ms: size as i128,
        }
    }

    #[test]
    fn a_growing_file_is_not_ready_until_it_settles_and_the_folder_is_quiet() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clientes.csv"), "x").unwrap();
        let t0 = Instant::now();
        let mut s = Settler::default();
        let r = rules(false);
        let mut l = BTreeMap::from([("clientes.csv".to_string(), seen(10))]);
        assert_eq!(s.observe(dir.path(), &l, t0, &r), None);
        // Still growing at +8 s: the clock restarts.
        l.insert("clientes.csv".into(), seen(20));
        assert_eq!(
            s.observe(dir.path(), &l, t0 + Duration::from_secs(8), &r),
            None
        );
        // Settled but the folder changed 9 s ago: not quiet yet.
        assert_eq!(
            s.observe(dir.path(), &l, t0 + Duration::from_secs(17), &r),
            None
        );
        let ready = s
            .observe(dir.path(), &l, t0 + Duration::from_secs(18), &r)
            .unwrap();
        assert_eq!(ready.files, vec![dir.path().join("clientes.csv")]);
    }

    #[test]
    fn temporary_names_are_ignored_and_a_late_entity_restarts_the_quiet_period() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["clientes.csv", "ventas.csv"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let t0 = Instant::now();
        let mut s = Settler::default();
        let r = rules(false);
        let mut l = BTreeMap::from([
            ("clientes.csv".to_string(), seen(10)),
            ("ventas.csv.part".to_string(), seen(5)),
        ]);
        assert_eq!(s.observe(dir.path(), &l, t0, &r), None);
        // The .part grows, but it does not count as a change.
        l.insert("ventas.csv.part".into(), seen(50));
        let ready = s.observe(dir.path(), &l, t0 + Duration::from_secs(11), &r);
        assert_eq!(ready.unwrap().files.len(), 1);
        // The writer renames its .part: a new file, the quiet period starts again.
        let mut s = Settler::default();
        s.observe(dir.path(), &l, t0, &r);
        l.remove("ventas.csv.part");
        l.insert("ventas.csv".into(), seen(50));
        assert_eq!(
            s.observe(dir.path(), &l, t0 + Duration::from_secs(9), &r),
            None
        );
        assert_eq!(
            s.observe(dir.path(), &l, t0 + Duration::from_secs(15), &r),
            None
        );
        assert_eq!(
            s.observe(dir.path(), &l, t0 + Duration::from_secs(19), &r)
                .unwrap()
                .files
                .len(),
            2
        );
    }

    #[test]
    fn marker_mode_waits_for_the_done_file_and_takes_what_it_names() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["clientes.csv", "ventas.csv", "otro.csv"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let t0 = Instant::now();
        let r = rules(true);
        let mut s = Settler::default();
        let mut l: BTreeMap<String, Seen> = ["clientes.csv", "ventas.csv", "otro.csv"]
            .iter()
            .map(|n| (n.to_string(), seen(1)))
            .collect();
        assert_eq!(s.observe(dir.path(), &l, t0, &r), None);
        assert_eq!(
            s.observe(dir.path(), &l, t0 + Duration::from_secs(60), &r),
            None
        );
        std::fs::write(dir.path().join("drop.done"), "clientes.csv\nventas.csv\n").unwrap();
        l.insert("drop.done".into(), seen(2));
        s.observe(dir.path(), &l, t0 + Duration::from_secs(61), &r);
        let ready = s
            .observe(dir.path(), &l, t0 + Duration::from_secs(80), &r)
            .unwrap();
        assert_eq!(
            ready.files,
            vec![
                dir.path().join("clientes.csv"),
                dir.path().join("ventas.csv")
            ]
        );
        assert_eq!(ready.marker, Some(dir.path().join("drop.done")));
    }
}
