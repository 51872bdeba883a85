//! Reading ahead. Entities go one after the other (a child checks its references against
//! its parents), and most of an entity's time is typing, validating and diffing on one core.
//! Meanwhile the next entity's file is read and hashed on the other core, and, when its
//! bytes differ from those its last recorded pass was computed from (so that pass cannot
//! stand and the file will be parsed anyway), parsed too. Reading has no effect outside
//! memory: a file read ahead is taken exactly as if it had been read in turn.

use std::path::{Path, PathBuf};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Instant;

use rustc_hash::FxHashMap as HashMap;

use crate::config::Recipe;
use crate::read::{load, read_loaded, Loaded, RawTable, ReadError};

/// An entity's file as it reaches its turn.
pub(super) enum Fetched {
    /// Read and hashed; parsed only if the entity's last pass cannot stand.
    Loaded(Result<Loaded, ReadError>),
    /// Read, hashed and parsed ahead: its bytes are not those of the last recorded pass.
    Parsed {
        hash: String,
        bytes: u64,
        raw: Result<RawTable, ReadError>,
    },
}

/// The file being read ahead, if any, for one entity.
pub(super) struct ReadAhead<'scope> {
    /// Per entity, the blake3 of the file its last recorded pass was computed from.
    recorded: HashMap<String, String>,
    pending: Option<(String, ScopedJoinHandle<'scope, (Fetched, f64)>)>,
}

impl<'scope> ReadAhead<'scope> {
    /// `recorded` as in `state::EntityInputs::file_hash`; empty for a full recomputation
    /// (every file read ahead is parsed then).
    pub(super) fn new(recorded: HashMap<String, String>) -> Self {
        ReadAhead {
            recorded,
            pending: None,
        }
    }

    /// Starts reading `path` as `recipe`'s file on another thread.
    pub(super) fn start<'env>(
        &mut self,
        scope: &'scope Scope<'scope, 'env>,
        recipe: &'env Recipe,
        path: PathBuf,
    ) {
        let last = self.recorded.get(&recipe.entity).cloned();
        let handle = scope.spawn(move || {
            let t = Instant::now();
            let fetched = fetch(&path, recipe, last.as_deref());
            (fetched, t.elapsed().as_secs_f64())
        });
        self.pending = Some((recipe.entity.clone(), handle));
    }

    /// `entity`'s file: the one read ahead, or read now. With the seconds it took.
    pub(super) fn take(&mut self, entity: &str, path: &Path) -> (Fetched, f64) {
        if let Some((e, handle)) = self.pending.take() {
            if e == entity {
                if let Ok(done) = handle.join() {
                    return done;
                }
                // A panic while reading ahead: read it again here, where it is reported.
            }
        }
        let t = Instant::now();
        let fetched = Fetched::Loaded(load(path));
        (fetched, t.elapsed().as_secs_f64())
    }
}

/// The file read and hashed, and parsed when its hash is not `last`.
fn fetch(path: &Path, recipe: &Recipe, last: Option<&str>) -> Fetched {
    let loaded = match load(path) {
        Ok(loaded) if Some(loaded.hash.as_str()) != last => loaded,
        other => return Fetched::Loaded(other),
    };
    let hash = loaded.hash.clone();
    let bytes = loaded.bytes.len() as u64;
    Fetched::Parsed {
        hash,
        bytes,
        raw: read_loaded(path, loaded, recipe),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_dir;

    /// The shipped clientes recipe and a sample day's clientes.csv.
    fn sample() -> (Recipe, PathBuf) {
        let recipes = load_dir(Path::new("recipes")).unwrap();
        let clientes = recipes
            .entities
            .into_iter()
            .find(|r| r.entity == "clientes")
            .unwrap();
        let path = Path::new("samples/2026-11-20/clientes.csv").to_path_buf();
        (clientes, path)
    }

    #[test]
    fn a_file_whose_bytes_changed_is_parsed_ahead_and_an_unchanged_one_only_hashed() {
        let (clientes, path) = sample();
        let hash = load(&path).unwrap().hash;
        match fetch(&path, &clientes, Some("another file")) {
            Fetched::Parsed { hash: h, raw, .. } => {
                assert_eq!(h, hash);
                assert!(raw.unwrap().frame.height() > 100);
            }
            Fetched::Loaded(_) => panic!("a changed file is parsed ahead"),
        }
        match fetch(&path, &clientes, Some(&hash)) {
            Fetched::Loaded(Ok(l)) => assert_eq!(l.hash, hash),
            _ => panic!("the file of the last pass is only read and hashed"),
        }
    }

    #[test]
    fn the_file_read_ahead_is_taken_by_its_entity_and_any_other_is_read_in_turn() {
        let (clientes, path) = sample();
        std::thread::scope(|scope| {
            let mut ahead = ReadAhead::new(HashMap::default());
            ahead.start(scope, &clientes, path.clone());
            assert!(matches!(
                ahead.take("clientes", &path).0,
                Fetched::Parsed { raw: Ok(_), .. }
            ));
            // Nothing pending: read now, not parsed.
            assert!(matches!(
                ahead.take("clientes", &path).0,
                Fetched::Loaded(Ok(_))
            ));
            ahead.start(scope, &clientes, path.clone());
            assert!(matches!(
                ahead.take("ventas", &path).0,
                Fetched::Loaded(Ok(_))
            ));
        });
    }
}
