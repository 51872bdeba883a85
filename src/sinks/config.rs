//! `[target]` in `recipes/pipeline.toml`: which CRM a run writes to. The settings live in the
//! config layer (`recipe::specs`); this names them where the sinks look for them.

pub use crate::recipe::specs::{PostgresSpec, TargetKind, TargetSpec};
