//! dropsync: full-snapshot file drops in, a clean CRM out.
//!
//! The tree is five layers and imports only run down them (`tests/layers.rs` fails on one
//! that runs back up):
//!
//! - **model**: the vocabulary every layer shares (`model`: issues, statuses, the run report)
//!   and `support` (crash points for fault tests, progress, frames read row by row and written
//!   to SQLite, the shared Google client).
//! - **config**: `recipes/*.toml` and `pipeline.toml` deserialized, compiled and diagnosed,
//!   with every spec (targets, alerts, sheets).
//! - **stages**, in the order data meets them: `sources` (which files are in the drop) →
//!   `read` (bytes → raw text columns with line numbers) → `transform` (a compiled recipe as
//!   one polars plan) → `validate` (IDs, references, rules → accepted rows and rejects) →
//!   `diff` (against the last accepted snapshot, with the delete guard) → `stage` (staging
//!   database, workbook, Google Sheets) → `sinks` (the CRM) → `state` (runs, snapshots, the
//!   intent journal). A stage may use only the stages before it.
//! - **app**: what an operator asks for, built from the stages: `run`, `watch`, `alerts`,
//!   `explain`, `check`, `serve`, `bench`, `gen`.
//! - **cli**: the only place that knows about processes, exit codes and `anyhow`.

pub mod app;
pub mod cli;
pub mod config;
pub mod diff;
pub mod model;
pub mod read;
pub mod sinks;
pub mod sources;
pub mod stage;
pub mod state;
pub mod support;
pub mod transform;
pub mod validate;
