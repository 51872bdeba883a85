//! Drift: the export's columns against what its recipe reads. A dealer's system upgraded
//! overnight renames `Nro Cliente` to `Nro. de Cliente`, drops a column or adds one; read
//! blindly, a renamed optional column turns into a wave of empty fields and a renamed required
//! one into a quarantined file. This says what changed and proposes the recipe edit.
//!
//! Names are compared as the reader matches them (case, accents and spacing folded), so
//! what is reported is exactly what the reader did not find. A missing column is matched to
//! a column no field reads when their names, reduced to letters and digits, are alike
//! (normalized Levenshtein at least [`MIN_SIMILARITY`]); each pair at most once, best first.
//! Pure like the rest of validation: the caller reads the recipe file for the patch.

use std::path::Path;

use crate::config::Recipe;
use crate::model::{Drift, Renamed};
use crate::read::sniff::normalize_header;

/// Names this alike are taken for a rename: `nrocliente`/`nrodecliente` is 0.83,
/// `email`/`mail` 0.8, `celular`/`telefono` 0.25.
pub const MIN_SIMILARITY: f64 = 0.7;

/// How `header` differs from what `recipe` reads; empty when it does not. `complete` says
/// whether `header` is the file's whole header (CSV) or only the recipe's columns it found
/// (XML is streamed for those): then no column counts as added.
pub fn detect(recipe: &Recipe, header: &[String], complete: bool) -> Drift {
    let folded: Vec<String> = header.iter().map(|h| normalize_header(h)).collect();
    let wanted = recipe.source_columns();
    let wanted_folded: Vec<String> = wanted.iter().map(|w| normalize_header(w)).collect();
    let missing: Vec<&str> = wanted
        .iter()
        .zip(&wanted_folded)
        .filter(|(_, f)| !folded.contains(f))
        .map(|(w, _)| *w)
        .collect();
    let added: Vec<&str> = if complete {
        header
            .iter()
            .zip(&folded)
            .filter(|(h, f)| !wanted_folded.contains(f) && !h.trim().is_empty())
            .map(|(h, _)| h.as_str())
            .collect()
    } else {
        Vec::new()
    };
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (i, m) in missing.iter().enumerate() {
        for (j, a) in added.iter().enumerate() {
            let score = strsim::normalized_levenshtein(&squash(m), &squash(a));
            if score >= MIN_SIMILARITY {
                pairs.push((score, i, j));
            }
        }
    }
    pairs.sort_by(|x, y| y.0.total_cmp(&x.0).then((x.1, x.2).cmp(&(y.1, y.2))));
    let (mut used_m, mut used_a) = (vec![false; missing.len()], vec![false; added.len()]);
    let mut renamed = Vec::new();
    for (score, i, j) in pairs {
        if used_m[i] || used_a[j] {
            continue;
        }
        used_m[i] = true;
        used_a[j] = true;
        renamed.push(Renamed {
            recipe: missing[i].to_string(),
            file: added[j].to_string(),
            similarity: (score * 100.0).round() / 100.0,
        });
    }
    renamed.sort_by(|a, b| a.recipe.cmp(&b.recipe));
    Drift {
        missing: keep(&missing, &used_m),
        added: keep(&added, &used_a),
        renamed,
        patch: None,
    }
}

fn keep(names: &[&str], used: &[bool]) -> Vec<String> {
    names
        .iter()
        .zip(used)
        .filter(|(_, u)| !**u)
        .map(|(n, _)| n.to_string())
        .collect()
}

/// A name reduced to its letters and digits, folded as the reader folds headers.
fn squash(name: &str) -> String {
    normalize_header(name)
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// The recipe file's text with the renames made: each `from = "…"` or `column = "…"` (as a
/// line or inside an inline table) naming an old column names the new one (`None` when no line changed: the column is
/// written some other way and is the operator's to edit).
pub fn patched(text: &str, renamed: &[Renamed]) -> Option<String> {
    let mut new = text.to_string();
    for r in renamed {
        let pattern = format!(
            r#"(\b(?:from|column)\s*=\s*)"{}""#,
            regex::escape(&toml_escape(&r.recipe))
        );
        let Ok(re) = regex::Regex::new(&pattern) else {
            continue;
        };
        let replacement = format!("${{1}}\"{}\"", toml_escape(&r.file).replace('$', "$$"));
        new = re.replace_all(&new, replacement.as_str()).into_owned();
    }
    (new != text).then_some(new)
}

/// [`patched`] as a unified diff of `recipe_file`, what `patch -p0` or a reviewer reads.
pub fn propose(recipe_file: &Path, text: &str, renamed: &[Renamed]) -> Option<String> {
    let new = patched(text, renamed)?;
    let name = recipe_file.display().to_string();
    Some(
        similar::TextDiff::from_lines(text, &new)
            .unified_diff()
            .context_radius(2)
            .header(&name, &name)
            .to_string(),
    )
}

/// A name as it appears inside a basic TOML string.
fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe() -> (tempfile::TempDir, Recipe) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("clientes.toml"),
            "entity = \"clientes\"\n[source]\nfiles = [\"clientes.csv\"]\n\
             [id]\ncolumn = \"Nro Cliente\"\n\
             [[field]]\nname = \"email\"\nfrom = \"Email\"\n\
             [[field]]\nname = \"celular\"\nfrom = \"Celular\"   # mobile\n\
             [[field]]\nname = \"ciudad\"\nfrom = \"Localidad\"\n",
        )
        .unwrap();
        let r = crate::config::load_dir(dir.path())
            .unwrap()
            .entities
            .remove(0);
        (dir, r)
    }

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_matching_header_has_no_drift_whatever_its_case_accents_and_order() {
        let (_d, r) = recipe();
        let h = header(&["LOCALIDAD", "email", " Nro  Cliente ", "Celular"]);
        assert!(detect(&r, &h, true).is_empty());
    }

    #[test]
    fn renamed_removed_and_added_columns_are_told_apart() {
        let (_d, r) = recipe();
        let h = header(&["Nro. de Cliente", "E-mail", "Celular", "Fecha Alta"]);
        let d = detect(&r, &h, true);
        assert_eq!(d.missing, ["Localidad"]);
        assert_eq!(d.added, ["Fecha Alta"]);
        let pairs: Vec<(&str, &str)> = d
            .renamed
            .iter()
            .map(|x| (x.recipe.as_str(), x.file.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [("Email", "E-mail"), ("Nro Cliente", "Nro. de Cliente")]
        );
        // XML gives only the columns it found: nothing is "added" there.
        let d = detect(&r, &header(&["Nro Cliente", "Email"]), false);
        assert_eq!(d.missing, ["Celular", "Localidad"]);
        assert!(d.added.is_empty() && d.renamed.is_empty());
    }

    #[test]
    fn the_patch_renames_the_recipe_lines_and_applies_cleanly() {
        let (dir, r) = recipe();
        let h = header(&["Nro. de Cliente", "Email", "Celular 1", "Localidad"]);
        let text = std::fs::read_to_string(&r.file).unwrap();
        let d = detect(&r, &h, true);
        let patch = propose(&r.file, &text, &d.renamed).unwrap();
        assert!(patch.contains("-column = \"Nro Cliente\""), "{patch}");
        assert!(patch.contains("+column = \"Nro. de Cliente\""), "{patch}");
        assert!(
            patch.contains("+from = \"Celular 1\"   # mobile"),
            "{patch}"
        );
        // The patched recipe reads the new header without drift.
        std::fs::write(&r.file, patched(&text, &d.renamed).unwrap()).unwrap();
        let r2 = crate::config::load_dir(dir.path())
            .unwrap()
            .entities
            .remove(0);
        assert!(detect(&r2, &h, true).is_empty());
    }

    #[test]
    fn unlike_names_are_not_taken_for_a_rename() {
        let (_d, r) = recipe();
        let d = detect(
            &r,
            &header(&["Nro Cliente", "Email", "Telefono", "Localidad"]),
            true,
        );
        assert_eq!(d.missing, ["Celular"]);
        assert_eq!(d.added, ["Telefono"]);
        assert!(d.renamed.is_empty());
    }
}
