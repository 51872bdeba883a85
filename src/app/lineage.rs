//! OpenLineage run events: what a run read and what it wrote, told to a lineage backend
//! (Marquez, DataHub, a cloud catalogue) in the open standard, so the CRM's tables trace back
//! to the dealer's export files and the run that moved them.
//!
//! A run sends `START` before it reads anything and `COMPLETE` (it reached its end, held or
//! not) or `FAIL` when it ends, both with the same UUID run ID. The end event names the
//! inputs (each export file, as `file://HOST` + its absolute path, with the rows read and the
//! entity's counts) and the outputs (each entity's CRM table, named as the target locates it,
//! with the rows written), and dropsync's own run ID, status and exit code in a custom facet.
//! Delivered like the Pushgateway push (`support::deliver`): retried, a failure only warns.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::config::specs::{TargetKind, TargetSpec};
use crate::config::Recipes;
use crate::model::{EntityStatus, RunReport};
use crate::support::deliver::{self, Delivery, DeliveryError};

/// The RunEvent schema these events follow.
pub const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
/// The job namespace: the scheduler's name for its jobs, here dropsync's.
pub const NAMESPACE: &str = "dropsync";
/// Path of the HTTP transport's endpoint under the configured URL (OpenLineage's default).
pub const ENDPOINT: &str = "api/v1/lineage";

const JOB_TYPE_SCHEMA: &str =
    "https://openlineage.io/spec/facets/2-0-3/JobTypeJobFacet.json#/$defs/JobTypeJobFacet";
const ERROR_SCHEMA: &str = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";
const QUALITY_SCHEMA: &str = "https://openlineage.io/spec/facets/1-0-2/DataQualityMetricsInputDatasetFacet.json#/$defs/DataQualityMetricsInputDatasetFacet";
const OUTPUT_STATS_SCHEMA: &str = "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet";
/// dropsync's own facets (`dropsync_run`, `dropsync_entity`, `dropsync_changes`).
const OWN_FACETS_SCHEMA: &str = "urn:dropsync:facets:1";

/// Who emitted the events (a URI, as the spec asks).
pub fn producer() -> String {
    format!("urn:dropsync:{}", env!("CARGO_PKG_VERSION"))
}

/// One run as lineage sees it: its UUID, its job (the tenant), where its files were.
#[derive(Debug, Clone)]
pub struct LineageRun {
    pub run_uuid: String,
    /// The job's name: the tenant (`default` for the single folder).
    pub job: String,
    pub inbox: PathBuf,
}

/// Where a target keeps the CRM's tables, as OpenLineage names datasets: a namespace for the
/// data source and, per CRM object, the dataset's name in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmPlace {
    pub namespace: String,
    /// Prepended to each object's name (`db.schema.` for PostgreSQL).
    pub prefix: String,
}

/// How a run ended, for its end event.
pub struct Ending<'a> {
    pub report: Option<&'a RunReport>,
    pub exit_code: i32,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// Where the CRM's tables are (the recipes may not have compiled).
    pub crm: Option<CrmPlace>,
    pub recipes: Option<&'a Recipes>,
}

impl LineageRun {
    /// A new run with a random (version 4) UUID.
    pub fn new(job: &str, inbox: &Path) -> Result<LineageRun, String> {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).map_err(|e| format!("cannot draw a run UUID: {e}"))?;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        Ok(LineageRun {
            run_uuid: format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            ),
            job: job.to_string(),
            inbox: inbox.canonicalize().unwrap_or_else(|_| inbox.to_path_buf()),
        })
    }

    fn event(
        &self,
        kind: &str,
        run_facets: Value,
        inputs: Vec<Value>,
        outputs: Vec<Value>,
    ) -> Value {
        json!({
            "eventType": kind,
            "eventTime": crate::state::now(),
            "producer": producer(),
            "schemaURL": SCHEMA_URL,
            "run": { "runId": self.run_uuid, "facets": run_facets },
            "job": {
                "namespace": NAMESPACE,
                "name": self.job,
                "facets": { "jobType": facet(JOB_TYPE_SCHEMA, json!({
                    "processingType": "BATCH", "integration": "DROPSYNC", "jobType": "JOB",
                })) },
            },
            "inputs": inputs,
            "outputs": outputs,
        })
    }

    /// Sent before the run reads anything.
    pub fn start(&self) -> Value {
        self.event("START", json!({}), Vec::new(), Vec::new())
    }

    /// Sent when the run ended: COMPLETE with what it read and wrote, or FAIL with why.
    pub fn end(&self, e: &Ending) -> Value {
        let host = crate::support::host::name();
        let mut run_facets = Map::new();
        let mut own = json!({ "exit_code": e.exit_code });
        if let Some(r) = e.report {
            own["run_id"] = json!(r.run_id);
            own["status"] = json!(r.status.as_str());
            own["crm_rows_written"] = json!(r.crm_rows_written);
        }
        run_facets.insert("dropsync_run".into(), facet(OWN_FACETS_SCHEMA, own));
        if let Some(message) = &e.error {
            run_facets.insert(
                "errorMessage".into(),
                facet(
                    ERROR_SCHEMA,
                    json!({ "message": message, "programmingLanguage": "Rust" }),
                ),
            );
        }
        let (mut inputs, mut outputs) = (Vec::new(), Vec::new());
        for (entity, s) in e.report.map(|r| r.entities.as_slice()).unwrap_or_default() {
            let Some(file) = &s.file else { continue };
            inputs.push(json!({
                "namespace": format!("file://{host}"),
                "name": self.inbox.join(file).display().to_string(),
                "facets": { "dropsync_entity": facet(OWN_FACETS_SCHEMA, json!({
                    "entity": entity, "status": s.status.as_str(), "encoding": s.encoding,
                    "accepted": s.accepted, "rejected": s.rejected, "skipped": s.skipped,
                    "warnings": s.warnings,
                })) },
                "inputFacets": { "dataQualityMetrics": facet(QUALITY_SCHEMA, json!({
                    "rowCount": s.read, "columnMetrics": {},
                })) },
            }));
            let object = e
                .recipes
                .and_then(|r| r.entities.iter().find(|x| &x.entity == entity))
                .map(|x| x.crm_object.as_str())
                .unwrap_or(entity);
            let (Some(crm), false) = (&e.crm, s.status == EntityStatus::Quarantined) else {
                continue;
            };
            outputs.push(json!({
                "namespace": crm.namespace,
                "name": format!("{}{object}", crm.prefix),
                "facets": { "dropsync_changes": facet(OWN_FACETS_SCHEMA, json!({
                    "entity": entity, "inserted": s.inserted, "updated": s.updated,
                    "deleted": s.deleted, "held_deletes": s.held_deletes,
                    "crm_refused": s.crm_refused,
                })) },
                "outputFacets": { "outputStatistics": facet(OUTPUT_STATS_SCHEMA, json!({
                    "rowCount": s.inserted + s.updated + s.deleted,
                })) },
            }));
        }
        let kind = if e.report.is_some() {
            "COMPLETE"
        } else {
            "FAIL"
        };
        self.event(kind, Value::Object(run_facets), inputs, outputs)
    }
}

/// A facet: its fields with the `_producer` and `_schemaURL` every facet carries.
fn facet(schema: &str, mut fields: Value) -> Value {
    fields["_producer"] = json!(producer());
    fields["_schemaURL"] = json!(schema);
    fields
}

/// Where the workspace's target keeps the CRM's tables, following OpenLineage's naming:
/// PostgreSQL `postgres://HOST:PORT` with `DB.SCHEMA.TABLE`; the embedded SQLite CRM as
/// `sqlite://HOST/PATH`; a REST CRM as its base URL (without credentials) and the object.
pub fn crm_place(target: &TargetSpec, out: &Path) -> CrmPlace {
    match (target.kind, &target.postgres, &target.rest) {
        (TargetKind::Postgres, Some(pg), _) => {
            let parsed = std::env::var(&pg.url_env)
                .ok()
                .and_then(|u| u.parse::<postgres::Config>().ok());
            let (host, port, db) = parsed
                .map(|c| {
                    let host = match c.get_hosts().first() {
                        Some(postgres::config::Host::Tcp(h)) => h.clone(),
                        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
                        None => "localhost".into(),
                    };
                    let port = c.get_ports().first().copied().unwrap_or(5432);
                    let db = c
                        .get_dbname()
                        .or(c.get_user())
                        .unwrap_or("postgres")
                        .to_string();
                    (host, port, db)
                })
                .unwrap_or_else(|| ("unknown".into(), 5432, "unknown".into()));
            CrmPlace {
                namespace: format!("postgres://{host}:{port}"),
                prefix: format!("{db}.{}.", pg.schema),
            }
        }
        (TargetKind::Rest, _, Some(rest)) => CrmPlace {
            namespace: deliver::hide_credentials(rest.base_url.trim_end_matches('/')),
            prefix: String::new(),
        },
        _ => {
            let db = out.join("crm.sqlite");
            let db = std::path::absolute(&db).unwrap_or(db);
            CrmPlace {
                namespace: format!("sqlite://{}{}", crate::support::host::name(), db.display()),
                prefix: String::new(),
            }
        }
    }
}

/// Posts one event to `URL/api/v1/lineage` (with `Authorization: Bearer` when an API key
/// is given).
pub fn send(base: &str, api_key: Option<&str>, event: &Value) -> Result<(), DeliveryError> {
    let url = format!("{}/{ENDPOINT}", base.trim_end_matches('/'));
    deliver::send(Delivery {
        method: reqwest::Method::POST,
        url: &url,
        content_type: "application/json",
        bearer: api_key,
        body: event.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EntitySummary, RunStatus};

    fn report() -> RunReport {
        let mut s = EntitySummary {
            file: Some("clientes.csv".into()),
            read: 10,
            accepted: 8,
            rejected: 2,
            inserted: 5,
            updated: 2,
            deleted: 1,
            ..Default::default()
        };
        s.status = EntityStatus::Ok;
        let none = EntitySummary {
            status: EntityStatus::NoFile,
            ..Default::default()
        };
        RunReport {
            run_id: "20261202T020000Z-abc123".into(),
            status: RunStatus::Ok,
            dry_run: false,
            entities: vec![("clientes".into(), s), ("ventas".into(), none)],
            samples: Vec::new(),
            issues: Vec::new(),
            timings: Default::default(),
            crm_rows_written: 8,
            peak_rss_mb: 0.0,
            gsheets: None,
        }
    }

    #[test]
    fn run_ids_are_version_4_uuids_and_differ() {
        let a = LineageRun::new("norte", Path::new("/in")).unwrap();
        let b = LineageRun::new("norte", Path::new("/in")).unwrap();
        assert_ne!(a.run_uuid, b.run_uuid);
        let parts: Vec<&str> = a.run_uuid.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!("89ab".contains(&parts[3][..1]));
    }

    #[test]
    fn the_end_event_names_each_file_read_and_table_written() {
        let run = LineageRun::new("norte", Path::new("/drops/norte")).unwrap();
        let r = report();
        let crm = CrmPlace {
            namespace: "postgres://db.example:5432".into(),
            prefix: "crm.public.".into(),
        };
        let end = run.end(&Ending {
            report: Some(&r),
            exit_code: 0,
            error: None,
            crm: Some(crm),
            recipes: None,
        });
        assert_eq!(end["eventType"], "COMPLETE");
        assert_eq!(end["run"]["runId"], run.run_uuid);
        assert_eq!(end["job"]["name"], "norte");
        assert_eq!(end["schemaURL"], SCHEMA_URL);
        // The entity without a file this run read and wrote nothing.
        assert_eq!(end["inputs"].as_array().unwrap().len(), 1);
        let input = &end["inputs"][0];
        assert_eq!(input["name"], "/drops/norte/clientes.csv");
        assert_eq!(input["inputFacets"]["dataQualityMetrics"]["rowCount"], 10);
        assert_eq!(input["facets"]["dropsync_entity"]["rejected"], 2);
        let output = &end["outputs"][0];
        assert_eq!(output["namespace"], "postgres://db.example:5432");
        assert_eq!(output["name"], "crm.public.clientes");
        assert_eq!(output["outputFacets"]["outputStatistics"]["rowCount"], 8);
        let own = &end["run"]["facets"]["dropsync_run"];
        assert_eq!(own["run_id"], "20261202T020000Z-abc123");
        assert_eq!(own["status"], "ok");
        // Every facet says who made it and against which schema.
        for f in [
            &end["job"]["facets"]["jobType"],
            own,
            &input["inputFacets"]["dataQualityMetrics"],
            &output["outputFacets"]["outputStatistics"],
        ] {
            assert_eq!(f["_producer"], producer());
            assert!(f["_schemaURL"].as_str().unwrap().contains(':'), "{f}");
        }
    }

    #[test]
    fn a_failed_run_says_why() {
        let run = LineageRun::new("default", Path::new("/in")).unwrap();
        let end = run.end(&Ending {
            report: None,
            exit_code: 2,
            error: Some("1 problem(s) in the recipes".into()),
            crm: None,
            recipes: None,
        });
        assert_eq!(end["eventType"], "FAIL");
        assert_eq!(
            end["run"]["facets"]["errorMessage"]["message"],
            "1 problem(s) in the recipes"
        );
        assert_eq!(end["run"]["facets"]["dropsync_run"]["exit_code"], 2);
        assert_eq!(end["inputs"], json!([]));
    }

    #[test]
    fn targets_are_located_as_openlineage_names_them() {
        let target = |text: &str| -> TargetSpec { toml::from_str(text).unwrap() };
        std::env::set_var(
            "DROPSYNC_TEST_LINEAGE_PG",
            "postgres://u:secret@db.example:6543/dealers",
        );
        let pg = crm_place(
            &target("kind = \"postgres\"\n[postgres]\nurl_env = \"DROPSYNC_TEST_LINEAGE_PG\"\nschema = \"crm\"\n"),
            Path::new("out"),
        );
        assert_eq!(pg.namespace, "postgres://db.example:6543");
        assert_eq!(pg.prefix, "dealers.crm.");
        let rest = crm_place(
            &target("kind = \"rest\"\n[rest]\nbase_url = \"https://u:pw@api.crm.example.com/\"\ntoken_env = \"T\"\n"),
            Path::new("out"),
        );
        assert_eq!(rest.namespace, "https://api.crm.example.com/");
        let sqlite = crm_place(&TargetSpec::default(), Path::new("/w/out"));
        assert!(sqlite.namespace.starts_with("sqlite://"));
        assert!(sqlite.namespace.ends_with("/w/out/crm.sqlite"));
    }
}
