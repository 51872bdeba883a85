//! dropsync: full-snapshot file drops in, a clean CRM out.
//!
//! Data flows one way through the modules, in this order:
//! `sources` (which files are in the drop) → `read` (bytes → raw text columns with line numbers)
//! → `recipe` (declarative TOML compiled into a polars plan: types, cleanup, maps)
//! → `validate` (IDs, required fields, references, row rules → accepted rows and rejects)
//! → `stage` (staging.sqlite, staging.xlsx and optionally Google Sheets, for analysts) → `diff` (against the last accepted
//! snapshot) → `sinks` (the CRM) → `state` (runs, snapshots, held deletes).
//! `google` holds what the Drive source and the Sheets staging share (credentials, retries,
//! the HTTP client). `pipeline` wires the stages for one run; `serve` shows runs, rejects and
//! holds on a local web page (reading `state` and `stage`, approving through `pipeline`);
//! `cli` is the only place that knows about processes,
//! exit codes and `anyhow`.

pub mod alerts;
pub mod bench;
pub mod check;
pub mod cli;
pub mod diff;
pub mod explain;
pub mod failpoint;
pub mod gen;
pub mod google;
pub mod model;
pub mod pipeline;
pub mod progress;
pub mod read;
pub mod recipe;
pub mod serve;
pub mod sinks;
pub mod sources;
pub mod stage;
pub mod state;
pub mod table;
pub mod validate;
