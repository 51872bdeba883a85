//! `dropsync check`: like a connector's "test connection". Validates the recipes and the
//! sources config, then tries each configured source (SFTP: connect, verify the host key,
//! list; Drive: token + list) without taking any file, opens the CRM target and, when
//! configured, reads the Google Sheets spreadsheet (nothing written). One verdict
//! per item, so an operator sees at once what is broken before the nightly run.

use std::path::Path;

use crate::config::sources as sources_file;
use crate::sources::gdrive::GdriveSource;
use crate::sources::sftp::SftpSource;

/// One checked item and what happened.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verdict {
    pub item: String,
    pub ok: bool,
    pub detail: String,
}

fn verdict(item: impl Into<String>, r: Result<String, String>) -> Verdict {
    match r {
        Ok(detail) => Verdict {
            item: item.into(),
            ok: true,
            detail,
        },
        Err(detail) => Verdict {
            item: item.into(),
            ok: false,
            detail,
        },
    }
}

pub fn check(recipes_dir: &Path, sources: &Path, out: &Path, inbox: Option<&Path>) -> Vec<Verdict> {
    let mut v = Vec::new();
    let recipes = crate::config::load_dir(recipes_dir);
    v.push(verdict(
        format!("recipes {}", recipes_dir.display()),
        recipes
            .as_ref()
            .map(|r| {
                format!(
                    "load order {}",
                    r.entities
                        .iter()
                        .map(|e| e.entity.as_str())
                        .collect::<Vec<_>>()
                        .join(" -> ")
                )
            })
            .map_err(|e| e.to_string()),
    ));
    match sources_file::load(sources) {
        Err(e) => v.push(verdict(
            format!("sources {}", sources.display()),
            Err(e.to_string()),
        )),
        Ok(cfg) => {
            v.push(verdict(
                format!("sources {}", sources.display()),
                Ok(format!(
                    "inbox {}, {} SFTP, {} Drive source(s)",
                    cfg.watch.inbox.display(),
                    cfg.sftp.len(),
                    cfg.gdrive.len()
                )),
            ));
            let scratch = tempfile::tempdir();
            for s in &cfg.sftp {
                let r = scratch.as_ref().map_err(|e| e.to_string()).and_then(|dir| {
                    let mut src = SftpSource::new(s.clone()).map_err(|e| e.to_string())?;
                    // A first look only records what it sees: nothing is downloaded.
                    src.poll(dir.path(), &|_, _, _| true)
                        .map(|_| {
                            format!(
                                "connected to {}:{}, host key verified, {} listed",
                                s.host, s.port, s.remote_dir
                            )
                        })
                        .map_err(|e| e.to_string())
                });
                v.push(verdict(format!("source sftp `{}`", s.name), r));
            }
            for g in &cfg.gdrive {
                let r = scratch.as_ref().map_err(|e| e.to_string()).and_then(|dir| {
                    let mut src = GdriveSource::new(g.clone()).map_err(|e| e.to_string())?;
                    // Everything counts as already taken: the folder is listed, nothing fetched.
                    src.poll(dir.path(), &|_, _| true)
                        .map(|_| format!("token granted, folder {} listed", g.folder_id))
                        .map_err(|e| e.to_string())
                });
                v.push(verdict(format!("source gdrive `{}`", g.name), r));
            }
        }
    }
    if let Ok(r) = &recipes {
        let kind = format!("{:?}", r.pipeline.target.kind).to_lowercase();
        v.push(verdict(
            format!("target {kind}"),
            crate::sinks::probe(&r.pipeline.target, out).map_err(|e| e.to_string()),
        ));
        if let Some(spec) = &r.pipeline.staging.gsheets {
            v.push(verdict(
                "staging google sheets",
                crate::stage::gsheets::probe(spec).map_err(|e| e.to_string()),
            ));
        }
        if let Some(dir) = inbox {
            v.extend(inbox_drift(r, dir));
        }
    }
    v
}

/// `check --inbox DIR`: each waiting export's columns against its recipe, before any run.
/// A file with drift fails its verdict, which says what changed and the recipe patch.
fn inbox_drift(recipes: &crate::config::Recipes, dir: &Path) -> Vec<Verdict> {
    let files = match crate::sources::scan_inbox(dir, recipes) {
        Ok((files, _)) => files,
        Err(e) => {
            return vec![verdict(
                format!("inbox {}", dir.display()),
                Err(e.to_string()),
            )]
        }
    };
    if files.is_empty() {
        return vec![verdict(
            format!("inbox {}", dir.display()),
            Err("no file there matches a recipe's [source] files".into()),
        )];
    }
    let mut v = Vec::new();
    for f in files {
        let Some(recipe) = recipes.entities.iter().find(|r| r.entity == f.entity) else {
            continue;
        };
        let name = f.path.file_name().unwrap_or_default().to_string_lossy();
        let told = |d: crate::model::Drift| {
            let mut text = d.to_string();
            if let Some(p) = &d.patch {
                text.push_str(&format!(
                    "\nproposed recipe patch (save it and apply with `patch -p0 < FILE`):\n{p}"
                ));
            }
            text
        };
        let r = match crate::read::read_file(&f.path, recipe) {
            Ok(raw) => match super::drift::drift_of(recipe, &raw.header, raw.header_complete) {
                None => Ok(format!(
                    "{} column(s), as the recipe reads them",
                    raw.header.len()
                )),
                Some(d) => Err(told(d)),
            },
            Err(e) => Err(match super::drift::drift_of_error(recipe, &e) {
                Some(d) => told(d),
                None => e.to_string(),
            }),
        };
        v.push(verdict(format!("drift {name} ({})", f.entity), r));
    }
    v
}
