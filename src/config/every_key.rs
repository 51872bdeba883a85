//! Deserializing one TOML file so that every unknown key in it is reported in one pass.
//!
//! serde stops at the first error, so a recipe with two typos used to show one, and the
//! second only after the first was fixed. Here the file is parsed once into a spanned tree;
//! each time deserializing it stops at an unknown key (or an unknown value of a closed set),
//! that key is reported with its own span and removed from the tree, and deserializing runs
//! again. Spans always point into the original text, because the tree is never re-rendered.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, Deserializer};
use toml::Spanned;

use super::diagnostic::{Diagnostic, SourceMap};

/// A file with more unknown keys than this is not a recipe; the rest would be noise.
const MAX_REPORTED: usize = 50;

/// One file, deserialized as far as it goes.
#[derive(Debug)]
pub struct Loaded<T> {
    /// The file's value once its unknown keys are set aside: a file whose only mistakes are
    /// unknown keys still goes on to be compiled, so its other mistakes show in the same pass.
    pub value: Option<T>,
    /// Every mistake found, in reading order; empty when the file is right.
    pub diagnostics: Vec<Diagnostic>,
    /// Its top-level `entity = "…"`, when it has one, so that when the file has no value,
    /// references to that entity from other files are not reported as "unknown entity".
    pub entity: Option<String>,
}

/// Deserializes `map.text` as `T`, reporting every unknown key.
pub fn deserialize<T: DeserializeOwned>(map: &SourceMap) -> Loaded<T> {
    let mut root = match DeTable::parse(map.text) {
        Ok(root) => root,
        Err(e) => {
            return Loaded {
                value: None,
                diagnostics: vec![map.from_toml(&e)],
                entity: None,
            }
        }
    };
    let entity = root
        .get_ref()
        .get("entity")
        .and_then(|v| match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => None,
        });
    let mut diagnostics = Vec::new();
    // Keys removed after an unknown value: a "missing field" for them is a follow-on.
    let mut removed_values: Vec<String> = Vec::new();
    // Keys an unknown key was taken for (`sorce` → `source`): their "missing field" is the
    // same mistake seen from the other side.
    let mut meant: Vec<String> = Vec::new();
    let mut value = None;
    loop {
        let err = match T::deserialize(Deserializer::from(root.clone())) {
            // A value set aside would make the file compile with its default, and its
            // meaning checks would then speak of a value nobody wrote.
            Ok(v) => {
                value = removed_values.is_empty().then_some(v);
                break;
            }
            Err(e) => e,
        };
        let diag = map.from_toml(&err);
        let follow_on = err.message().contains("missing field")
            && diag
                .key
                .as_ref()
                .is_some_and(|k| removed_values.contains(k) || meant.contains(k));
        if follow_on {
            break;
        }
        let unknown_key = err.message().contains("unknown field");
        let unknown_value = err.message().contains("unknown variant");
        if unknown_key {
            meant.extend(diag.suggestion.clone());
        }
        diagnostics.push(diag);
        let Some(span) = err.span() else { break };
        let removed = if unknown_key {
            remove_where(root.get_mut(), &span, Part::Key)
        } else if unknown_value {
            remove_where(root.get_mut(), &span, Part::Value)
        } else {
            None
        };
        match removed {
            Some(key) if diagnostics.len() < MAX_REPORTED => {
                if unknown_value {
                    removed_values.push(key);
                }
            }
            _ => break,
        }
    }
    // The tree's tables are ordered by key, not by line: report in reading order.
    diagnostics.sort_by_key(|d| (d.line, d.column));
    Loaded {
        value,
        diagnostics,
        entity,
    }
}

/// Which part of a key/value pair an error's span covers.
#[derive(Clone, Copy)]
enum Part {
    Key,
    Value,
}

/// Removes the key/value pair whose key (or value) is at `span`, anywhere in the tree;
/// returns the key's name.
fn remove_where(table: &mut DeTable<'_>, span: &Range<usize>, part: Part) -> Option<String> {
    let hit = table.iter().find_map(|(k, v)| {
        let at = match part {
            Part::Key => k.span(),
            Part::Value => v.span(),
        };
        (at == *span).then(|| k.clone())
    });
    if let Some(key) = hit {
        let name = key.get_ref().to_string();
        table.remove(&key);
        return Some(name);
    }
    for (_, value) in table.iter_mut() {
        if let Some(name) = remove_in_value(value, span, part) {
            return Some(name);
        }
    }
    None
}

fn remove_in_value(
    value: &mut Spanned<DeValue<'_>>,
    span: &Range<usize>,
    part: Part,
) -> Option<String> {
    match value.get_mut() {
        DeValue::Table(t) => remove_where(t, span, part),
        DeValue::Array(items) => items
            .iter_mut()
            .find_map(|item| remove_in_value(item, span, part)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        name: String,
        #[serde(default, rename = "field")]
        fields: Vec<Field>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Field {
        from: String,
        #[serde(default)]
        kind: Kind,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        #[default]
        Text,
        Number,
    }

    fn diags(text: &str) -> Vec<String> {
        let map = SourceMap {
            file: Path::new("r.toml"),
            text,
        };
        let loaded = deserialize::<Doc>(&map);
        let got: Vec<String> = loaded.diagnostics.iter().map(|d| d.to_string()).collect();
        // A value comes back only when every mistake was an unknown key set aside.
        if loaded.value.is_some() {
            assert!(got.iter().all(|d| d.contains("unknown field")), "{got:#?}");
        }
        got
    }

    #[test]
    fn every_unknown_key_is_reported_at_its_own_place() {
        let text = "name = \"x\"\nnmae = 1\n\n[[field]]\nfrom = \"a\"\n\n[[field]]\nfromm = \"b\"\nfrom = \"c\"\nextra = true\n";
        let got = diags(text);
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(got[0].starts_with("r.toml:2:1: key `nmae`"), "{got:#?}");
        assert!(got[1].starts_with("r.toml:8:1: key `fromm`"), "{got:#?}");
        assert!(got[1].contains("did you mean `from`?"), "{got:#?}");
        assert!(got[2].starts_with("r.toml:10:1: key `extra`"), "{got:#?}");
    }

    #[test]
    fn an_unknown_value_is_reported_once_and_the_file_goes_on() {
        let text = "name = \"x\"\n[[field]]\nfrom = \"a\"\nkind = \"numbr\"\n[[field]]\nfrom = \"b\"\ntypo = 1\n";
        let got = diags(text);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].starts_with("r.toml:4:8:"), "{got:#?}");
        assert!(got[0].contains("did you mean `number`?"), "{got:#?}");
        assert!(got[1].starts_with("r.toml:7:1: key `typo`"), "{got:#?}");
    }

    #[test]
    fn a_clean_file_deserializes_and_a_syntax_error_is_one_diagnostic() {
        assert!(diags("name = \"x\"\n[[field]]\nfrom = \"a\"\n").is_empty());
        let got = diags("name = \"x\nfoo = \n");
        assert_eq!(got.len(), 1, "{got:#?}");
    }

    #[test]
    fn a_missing_key_is_reported_but_not_as_a_follow_on_of_a_removed_value() {
        let got = diags("[[field]]\nfrom = \"a\"\n");
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(got[0].contains("missing field `name`"), "{got:#?}");
    }

    #[test]
    fn a_misspelt_required_key_is_one_mistake_not_two() {
        let got = diags("nmae = \"x\"\n");
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(got[0].contains("did you mean `name`?"), "{got:#?}");
    }

    #[test]
    fn the_declared_entity_survives_a_broken_file() {
        let map = SourceMap {
            file: Path::new("r.toml"),
            text: "entity = \"clientes\"\nname = 1\n",
        };
        let loaded = deserialize::<Doc>(&map);
        assert!(loaded.value.is_none());
        assert_eq!(loaded.entity.as_deref(), Some("clientes"));
    }
}
