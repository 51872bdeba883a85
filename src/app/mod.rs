//! The application: what an operator asks of dropsync, each built from the stages below.
//! `run` is one run told as the pipeline's stages, with `meter` timing each stage and
//! `quarantine` setting unreadable files aside; `apply` is the CRM stage through the intent
//! journal and the recovery of interrupted runs, shared with `approve`; `reuse` lets an entity
//! whose inputs did not change stand on its last full pass; `staging` writes what
//! analysts read; `work` holds the types they hand each other; `error` is what stops a run. `watch` drives runs from drops and a schedule;
//! `pull` takes what SFTP and Drive sources hold, for `watch` and for `run --pull`;
//! `alerts` is the one policy both use; `drift` tells an export's columns from its recipe's; `metrics` is what Prometheus scrapes from `serve` and
//! what a scheduled run pushes to a Pushgateway; `lineage` the OpenLineage events of a run; `explain`, `check`, `serve` and `bench` read or
//! exercise what runs leave; `gen` makes synthetic drops for tests and benchmarks; `deploy`
//! writes the Kubernetes manifests that schedule every tenant's runs.

pub mod alerts;
mod apply;
mod approve;
pub mod bench;
pub mod check;
pub mod deploy;
mod drift;
mod error;
pub mod explain;
pub mod gen;
pub mod lineage;
mod meter;
pub mod metrics;
mod prefetch;
pub mod pull;
mod quarantine;
mod records;
mod reuse;
pub mod run;
pub mod serve;
mod staging;
pub mod watch;
mod work;
