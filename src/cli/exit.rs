//! Exit codes, a documented contract that cron jobs and wrappers branch on: 0 the run
//! completed (rejected rows are data, not a failure), 1 any other failure, 2 a configuration
//! or recipe error (fix a file, don't retry), 3 the run was held by the delete guard.
//!
//! Each error type that can reach the command line names its own code ([`ExitCode`]), so the
//! decision sits beside the variants and a new variant cannot be added without one.

use crate::app::bench::BenchError;
use crate::app::check::Verdict;
use crate::app::deploy::DeployError;
use crate::app::explain::ExplainError;
use crate::app::gen::GenError;
use crate::app::run::PipelineError;
use crate::app::serve::ServeError;
use crate::app::watch::WatchError;
use crate::config::sources::ConfigError;
use crate::config::tenants::TenantError;
use crate::config::RecipeError;
use crate::model::RunStatus;
use crate::sinks::SinkError;
use crate::sources::SourceError;
use crate::stage::store::StoreError;
use crate::stage::StageError;
use crate::state::lock::LockError;
use crate::state::StateError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Failure = 1,
    Config = 2,
    Held = 3,
    /// The inbox held no file any recipe takes: nothing was read.
    NothingFound = 4,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

/// A run that completed: held deletes are the one outcome an operator must act on.
impl From<RunStatus> for Exit {
    fn from(s: RunStatus) -> Exit {
        match s {
            RunStatus::Ok => Exit::Ok,
            RunStatus::Held => Exit::Held,
        }
    }
}

/// `check`'s verdicts: the recipes come first, and nothing else can be trusted without them.
pub fn for_verdicts(verdicts: &[Verdict]) -> Exit {
    let recipes_ok = verdicts.first().is_some_and(|v| v.ok);
    if !recipes_ok {
        Exit::Config
    } else if verdicts.iter().all(|v| v.ok) {
        Exit::Ok
    } else {
        Exit::Failure
    }
}

/// The code a process ends with when this error stops it.
pub trait ExitCode {
    fn exit_code(&self) -> Exit;
}

/// The code for an error that ended a command: the first error in its chain that knows its
/// code decides; anything else (I/O on the command line's own files, JSON output) is 1.
pub fn exit_for(e: &anyhow::Error) -> Exit {
    e.chain().find_map(known).unwrap_or(Exit::Failure)
}

/// Every type that implements [`ExitCode`] is asked here; one left out would exit 1.
fn known(e: &(dyn std::error::Error + 'static)) -> Option<Exit> {
    macro_rules! ask {
        ($($t:ty),* $(,)?) => {
            $(if let Some(e) = e.downcast_ref::<$t>() {
                return Some(e.exit_code());
            })*
        };
    }
    ask!(
        Usage,
        PipelineError,
        WatchError,
        ExplainError,
        ServeError,
        GenError,
        BenchError,
        RecipeError,
        ConfigError,
        TenantError,
        DeployError,
        SourceError,
        StateError,
        StageError,
        StoreError,
        LockError,
        SinkError,
    );
    None
}

/// A value clap accepted as text but the command cannot use (an unknown `--encoding`): the
/// operator fixes the command line, so it is a configuration error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

impl ExitCode for Usage {
    fn exit_code(&self) -> Exit {
        Exit::Config
    }
}

/// An output location that cannot be opened is the tenants file's to fix; a store that
/// refused a write may take the next.
impl ExitCode for StoreError {
    fn exit_code(&self) -> Exit {
        match self {
            StoreError::Config { .. } => Exit::Config,
            StoreError::Put { .. } | StoreError::Read { .. } => Exit::Failure,
        }
    }
}

/// A tenants file that is missing, wrong, or lacks the named dealer: fix the file or the
/// command line, don't retry.
impl ExitCode for TenantError {
    fn exit_code(&self) -> Exit {
        Exit::Config
    }
}

/// Options or a tenants file that cannot make manifests: fix the command line or the file.
impl ExitCode for DeployError {
    fn exit_code(&self) -> Exit {
        match self {
            DeployError::Tenants(e) => e.exit_code(),
            DeployError::Sources(e) => e.exit_code(),
            DeployError::Invalid(_) => Exit::Config,
        }
    }
}

impl ExitCode for PipelineError {
    fn exit_code(&self) -> Exit {
        match self {
            PipelineError::Recipe(e) => e.exit_code(),
            PipelineError::Source(e) => e.exit_code(),
            PipelineError::State(e) => e.exit_code(),
            PipelineError::Stage(e) => e.exit_code(),
            PipelineError::Busy(e) => e.exit_code(),
            PipelineError::Sink { error, .. } => error.exit_code(),
            // An approval of a run that has nothing to approve, or journaled CRM writes for
            // an entity whose recipe is gone: the operator fixes the command or the recipes.
            PipelineError::Usage(_) => Exit::Config,
            // The CRM and snapshots committed; whatever failed after that is not the
            // operator's configuration, whatever the inner error was.
            PipelineError::StagingAfterCommit { .. } | PipelineError::Outputs { .. } => {
                Exit::Failure
            }
            // A source down or a download broken: the next job may find it well.
            PipelineError::Pull { .. }
            | PipelineError::Stopped { .. }
            | PipelineError::Frame { .. }
            | PipelineError::Io(_) => Exit::Failure,
        }
    }
}

impl ExitCode for RecipeError {
    fn exit_code(&self) -> Exit {
        // An unreadable recipes folder is a wrong `--recipes` as much as a bad recipe is.
        match self {
            RecipeError::Io { .. } | RecipeError::Empty(_) | RecipeError::Invalid(_) => {
                Exit::Config
            }
        }
    }
}

impl ExitCode for ConfigError {
    fn exit_code(&self) -> Exit {
        // The sources config (`watch/sources.toml`): unreadable or invalid, the operator
        // fixes the file.
        match self {
            ConfigError::Io { .. } | ConfigError::Invalid(_) => Exit::Config,
        }
    }
}

impl ExitCode for SourceError {
    fn exit_code(&self) -> Exit {
        match self {
            SourceError::Inbox { .. } | SourceError::Pattern { .. } => Exit::Failure,
        }
    }
}

impl ExitCode for StateError {
    fn exit_code(&self) -> Exit {
        match self {
            StateError::Db { .. }
            | StateError::Snapshot { .. }
            | StateError::CorruptSnapshot { .. }
            | StateError::CorruptDelta { .. }
            | StateError::Journal { .. }
            | StateError::Remote { .. }
            | StateError::Io { .. } => Exit::Failure,
            StateError::NoWorkspace { .. } => Exit::Config,
        }
    }
}

impl ExitCode for StageError {
    fn exit_code(&self) -> Exit {
        match self {
            StageError::Sqlite { .. } | StageError::Xlsx { .. } => Exit::Failure,
        }
    }
}

impl ExitCode for LockError {
    fn exit_code(&self) -> Exit {
        // Another dropsync at work: retrying later succeeds, nothing to fix.
        match self {
            LockError::Busy { .. }
            | LockError::Io { .. }
            | LockError::ClusterBusy { .. }
            | LockError::ClusterUnavailable { .. }
            | LockError::ClusterLost { .. } => Exit::Failure,
        }
    }
}

impl ExitCode for SinkError {
    fn exit_code(&self) -> Exit {
        // Transient or not, 1: the message says whether to retry, and a wrapper that retries
        // on 1 is right for the transient kind.
        match self {
            SinkError::Transient { .. } | SinkError::Write { .. } => Exit::Failure,
        }
    }
}

impl ExitCode for WatchError {
    fn exit_code(&self) -> Exit {
        match self {
            WatchError::Config(e) => e.exit_code(),
            WatchError::Pipeline(e) => e.exit_code(),
            WatchError::Io { .. } | WatchError::Notify(_) | WatchError::Source(_) => Exit::Failure,
        }
    }
}

impl ExitCode for ExplainError {
    fn exit_code(&self) -> Exit {
        match self {
            ExplainError::Recipe(e) => e.exit_code(),
            ExplainError::UnknownEntity { .. } => Exit::Config,
            ExplainError::Db { .. } => Exit::Failure,
            ExplainError::Workspace(e) => e.exit_code(),
        }
    }
}

impl ExitCode for ServeError {
    fn exit_code(&self) -> Exit {
        match self {
            // Listening beyond loopback without a token is refused by configuration, not
            // by accident: the operator sets the token or the address.
            ServeError::TokenRequired(_) => Exit::Config,
            ServeError::Bind { .. } | ServeError::Io(_) | ServeError::Random(_) => Exit::Failure,
            ServeError::Workspace(e) => e.exit_code(),
        }
    }
}

impl ExitCode for GenError {
    fn exit_code(&self) -> Exit {
        match self {
            GenError::Clients { .. }
            | GenError::ChangeSpec { .. }
            | GenError::Io { .. }
            | GenError::Unencodable { .. }
            | GenError::Manifest { .. } => Exit::Failure,
        }
    }
}

impl ExitCode for BenchError {
    fn exit_code(&self) -> Exit {
        match self {
            BenchError::Failed(_) => Exit::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::Diagnostic;

    fn io() -> std::io::Error {
        std::io::Error::other("disk on fire")
    }
    fn sqlite() -> rusqlite::Error {
        rusqlite::Error::QueryReturnedNoRows
    }
    fn polars() -> polars::prelude::PolarsError {
        polars::prelude::PolarsError::NoData("empty".into())
    }
    fn path() -> PathBuf {
        PathBuf::from("x")
    }
    fn diagnostic() -> Diagnostic {
        Diagnostic {
            file: path(),
            line: 1,
            column: 1,
            key: None,
            message: "bad".into(),
            help: None,
            suggestion: None,
        }
    }
    fn recipe() -> RecipeError {
        RecipeError::Empty(path())
    }
    fn sink() -> SinkError {
        SinkError::Write {
            target: "t".into(),
            message: "m".into(),
        }
    }
    fn s() -> String {
        "x".into()
    }

    /// Every variant with the code it exits with: the table the README documents.
    #[test]
    fn each_variant_has_its_code() {
        macro_rules! pin {
            ($($code:ident => $e:expr),* $(,)?) => {
                $(assert_eq!($e.exit_code(), Exit::$code, "{}", stringify!($e));)*
            };
        }
        pin! {
            Config => Usage(s()),
            Config => RecipeError::Io { path: path(), source: io() },
            Config => RecipeError::Empty(path()),
            Config => RecipeError::Invalid(vec![diagnostic()]),
            Config => ConfigError::Io { path: path(), source: io() },
            Config => ConfigError::Invalid(vec![diagnostic()]),
            Failure => SourceError::Inbox { path: path(), source: io() },
            Failure => SourceError::Pattern { recipe: path(), pattern: s(), message: s() },
            Failure => StateError::Db { path: path(), source: sqlite() },
            Failure => StateError::Snapshot { path: path(), source: polars() },
            Failure => StateError::CorruptSnapshot { path: path(), source: polars() },
            Failure => StateError::CorruptDelta { path: path(), source: polars() },
            Failure => StateError::Journal { run_id: s(), message: s() },
            Failure => StateError::Remote { tenant: s(), message: s() },
            Failure => StateError::Io { path: path(), source: io() },
            Failure => StageError::Sqlite { path: s(), message: s() },
            Failure => StageError::Xlsx { path: s(), message: s() },
            Failure => LockError::Busy { dir: path(), holder: s() },
            Failure => LockError::Io { path: path(), source: io() },
            Failure => LockError::ClusterBusy { tenant: s(), holder: s() },
            Failure => LockError::ClusterUnavailable { tenant: s(), message: s() },
            Failure => LockError::ClusterLost { tenant: s(), message: s() },
            Failure => SinkError::Transient { target: s(), message: s() },
            Failure => sink(),
            Config => PipelineError::Recipe(recipe()),
            Failure => PipelineError::Source(SourceError::Inbox { path: path(), source: io() }),
            Failure => PipelineError::State(StateError::Journal { run_id: s(), message: s() }),
            Failure => PipelineError::Stage(StageError::Xlsx { path: s(), message: s() }),
            Failure => PipelineError::Busy(LockError::Busy { dir: path(), holder: s() }),
            Failure => PipelineError::Stopped { run_id: s(), entity: s() },
            Failure => PipelineError::Sink { run_id: s(), entity: s(), error: sink() },
            Failure => PipelineError::Frame { run_id: s(), entity: s(), error: polars() },
            // Even around a recipe error: the run had committed.
            Failure => PipelineError::StagingAfterCommit {
                run_id: s(),
                error: Box::new(PipelineError::Recipe(recipe())),
            },
            Failure => PipelineError::Io(s()),
            Config => PipelineError::Usage(s()),
            Config => WatchError::Config(ConfigError::Invalid(vec![diagnostic()])),
            Config => WatchError::Pipeline(PipelineError::Recipe(recipe())),
            Failure => WatchError::Pipeline(PipelineError::Io(s())),
            Failure => WatchError::Io { path: path(), source: io() },
            Failure => WatchError::Notify(s()),
            Failure => WatchError::Source(s()),
            Config => ExplainError::Recipe(recipe()),
            Config => ExplainError::UnknownEntity { asked: s(), nearest: None, known: vec![] },
            Config => ExplainError::Workspace(StateError::NoWorkspace { out: path() }),
            Config => ServeError::Workspace(StateError::NoWorkspace { out: path() }),
            Config => StateError::NoWorkspace { out: path() },
            Failure => ExplainError::Db { path: s(), source: sqlite() },
            Config => ServeError::TokenRequired(([0, 0, 0, 0], 80).into()),
            Failure => ServeError::Bind { addr: ([127, 0, 0, 1], 80).into(), source: io() },
            Failure => ServeError::Io(io()),
            Failure => ServeError::Random(s()),
            Failure => GenError::Clients { got: 0, min: 1, max: 2 },
            Failure => GenError::ChangeSpec { name: "deleted", value: 0.5, reason: "r" },
            Failure => GenError::Io { path: path(), source: io() },
            Failure => GenError::Unencodable { path: path(), ch: '€' },
            Failure => GenError::Manifest {
                path: path(),
                source: serde_json::from_str::<u8>("x").unwrap_err(),
            },
            Failure => BenchError::Failed(s()),
        }
    }

    #[test]
    fn the_first_error_in_the_chain_that_knows_its_code_decides() {
        let e = anyhow::Error::from(PipelineError::Recipe(recipe()));
        assert_eq!(exit_for(&e), Exit::Config);
        let e = anyhow::Error::from(WatchError::Pipeline(PipelineError::Usage(s())));
        assert_eq!(exit_for(&e), Exit::Config);
        let e = anyhow::Error::from(ServeError::TokenRequired(([0, 0, 0, 0], 80).into()));
        assert_eq!(exit_for(&e), Exit::Config);
        let e = anyhow::Error::from(Usage(s()));
        assert_eq!(exit_for(&e), Exit::Config);
        let e = anyhow::Error::from(GenError::Clients {
            got: 0,
            min: 1,
            max: 2,
        });
        assert_eq!(exit_for(&e), Exit::Failure);
        // Context on top does not hide the code underneath.
        let e = anyhow::Error::from(RecipeError::Empty(path())).context("loading");
        assert_eq!(exit_for(&e), Exit::Config);
    }

    #[test]
    fn errors_that_know_no_code_are_failures() {
        assert_eq!(exit_for(&anyhow::Error::from(io())), Exit::Failure);
        assert_eq!(exit_for(&anyhow::anyhow!("anything")), Exit::Failure);
    }

    #[test]
    fn held_runs_exit_3() {
        assert_eq!(Exit::from(RunStatus::Ok), Exit::Ok);
        assert_eq!(Exit::from(RunStatus::Held), Exit::Held);
    }

    #[test]
    fn check_exits_2_for_recipes_1_for_anything_else() {
        let v = |ok: bool| Verdict {
            item: s(),
            ok,
            detail: s(),
        };
        assert_eq!(for_verdicts(&[v(true), v(true)]), Exit::Ok);
        assert_eq!(for_verdicts(&[v(true), v(false)]), Exit::Failure);
        assert_eq!(for_verdicts(&[v(false), v(true)]), Exit::Config);
        assert_eq!(for_verdicts(&[]), Exit::Config);
    }

    #[test]
    fn codes_are_the_documented_numbers() {
        assert_eq!(
            [Exit::Ok, Exit::Failure, Exit::Config, Exit::Held].map(|e| e as u8),
            [0, 1, 2, 3]
        );
    }
}
