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

pub fn check(recipes_dir: &Path, sources: &Path, out: &Path) -> Vec<Verdict> {
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
    }
    v
}
