//! The command line as clap parses it: one struct per subcommand, so each command function
//! takes exactly its own options. Values clap can check alone (counts, shares) are checked
//! here and refused with exit 2 before anything runs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::exit::Usage;
use crate::app::gen::{ChangeSpec, GenOptions};

#[derive(Parser, Debug)]
#[command(
    name = "dropsync",
    version,
    about = "Full-snapshot file drops in, a clean CRM out"
)]
pub struct Cli {
    /// Only warnings and errors on stderr, no progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Also write logs (info and up, whatever --quiet says) to a daily file
    /// `DIR/dropsync.log.YYYY-MM-DD`; the record an operator reads after a nightly run.
    #[arg(long, global = true, env = "DROPSYNC_LOG_DIR", value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Process the files present in the inbox once (exit 0 done, 1 failed, 2 configuration,
    /// 3 deletes held, 4 no export found).
    Run(RunArgs),
    /// Watch the drop folder (and pull remote sources on schedule); run each complete drop.
    Watch(WatchArgs),
    /// What a run would do, per entity, with samples of each kind of change; creates and
    /// writes nothing.
    Plan(PlanArgs),
    /// A row's history: the runs that inserted, updated, deleted, held or rejected it, and
    /// why. Reads the workspace at --out.
    Explain(ExplainArgs),
    /// Apply the deletes that the guard held in a run.
    Approve(ApproveArgs),
    /// List recent runs with status and counts (`+` inserted, `~` updated, `-` deleted, `!`
    /// rejected). Reads the workspace at --out.
    Runs(RunsArgs),
    /// Run the shipped samples: the first drop, then the next day's snapshot, into a fresh
    /// folder (default `demo/`, wiped first).
    Demo(DemoArgs),
    /// Write a seeded dealer drop (and optionally the next day's snapshot) with a
    /// manifest.json of the counts a correct run must find.
    Gen(GenArgs),
    /// Benchmark at dealer scale: generate drops of N clients, time the first load, an
    /// identical rerun and a 1% rerun, next to polars reading the same files.
    Bench(BenchArgs),
    /// The benchmark's baseline: polars reads and parses the drop's CSVs (prints JSON).
    #[command(hide = true)]
    BenchBaseline(BenchBaselineArgs),
    /// The status web page: runs, rejects, changes, held deletes (with Approve), recipes and
    /// a row's history. Listens on 127.0.0.1 unless told otherwise (then a token is required).
    Serve(ServeArgs),
    /// Check recipes and sources config, test each SFTP and Drive source (connect, host key,
    /// list; nothing taken), the target and the Google Sheets spreadsheet, and with --inbox
    /// each waiting export's columns against its recipe; writes nothing.
    Check(CheckArgs),
    /// Kubernetes manifests for the tenants file: a CronJob per dealer, the status page, the
    /// shared volume (image: src/app/deploy/Dockerfile).
    Deploy(DeployArgs),
}

#[derive(Args, Debug)]
pub struct Workspace {
    /// Folder with `<entity>.toml` recipes and `pipeline.toml`.
    #[arg(long, value_name = "DIR", default_value = "recipes")]
    pub recipes: PathBuf,
    /// Where staging.sqlite, staging.xlsx, crm.sqlite and state/ live.
    #[arg(long, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
    /// One dealer of the tenants file: its recipes, drop folder, workspace and sources take
    /// the place of --recipes, --out, --inbox and --config (which it conflicts with).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["recipes", "out"])]
    pub tenant: Option<String>,
    /// The tenants file that --tenant reads.
    #[arg(
        long,
        value_name = "FILE",
        env = "DROPSYNC_TENANTS",
        default_value = "watch/tenants.toml"
    )]
    pub tenants: PathBuf,
}

/// The sources config, for `watch` and `run --pull` (a tenant's comes from the tenants file).
#[derive(Args, Debug)]
pub struct SourcesArg {
    /// Sources config: drop folder, settle rules, schedule, SFTP and Drive sources (`run`
    /// reads it with --pull only).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "watch/sources.toml",
        conflicts_with = "tenant"
    )]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub ws: Workspace,
    /// Folder holding this drop's exports.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "watch/inbox",
        conflicts_with = "tenant"
    )]
    pub inbox: PathBuf,
    /// Plan only: counts and a sample of changes; nothing is written.
    #[arg(long)]
    pub dry_run: bool,
    /// First take what the sources config's SFTP and Drive sources hold that is new into the
    /// inbox (an SFTP file once unchanged over `settle`), then run; remembered and moved to
    /// `processed/` only once the run ended. Nothing new: no run, exit 0. For schedulers.
    #[arg(long, conflicts_with = "dry_run")]
    pub pull: bool,
    #[command(flatten)]
    pub sources: SourcesArg,
    /// Recompute every entity, even one whose file, recipe and parents are those of its last
    /// pass (which otherwise stands).
    #[arg(long)]
    pub full: bool,
    /// Print exactly one JSON object on stdout (logs stay on stderr).
    #[arg(long)]
    pub json: bool,
    /// Push the run's metrics to this Prometheus Pushgateway when it ends, failed runs
    /// included (base URL, e.g. http://pushgateway:9091); a push that fails is a warning.
    #[arg(
        long,
        value_name = "URL",
        env = "DROPSYNC_PUSHGATEWAY_URL",
        hide_env_values = true
    )]
    pub pushgateway: Option<String>,
    /// Send the run's OpenLineage events (START, then COMPLETE or FAIL: the files read, the
    /// CRM tables written) to this collector, at URL/api/v1/lineage; the API key, if any, in
    /// DROPSYNC_OPENLINEAGE_API_KEY.
    #[arg(
        long,
        value_name = "URL",
        env = "DROPSYNC_OPENLINEAGE_URL",
        hide_env_values = true
    )]
    pub openlineage: Option<String>,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    #[command(flatten)]
    pub ws: Workspace,
    #[command(flatten)]
    pub sources: SourcesArg,
    /// Process what is in the folder once it settles, then exit.
    #[arg(long)]
    pub once: bool,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub ws: Workspace,
    #[arg(
        long,
        value_name = "DIR",
        default_value = "watch/inbox",
        conflicts_with = "tenant"
    )]
    pub inbox: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    pub entity: String,
    pub id: String,
    #[command(flatten)]
    pub ws: Workspace,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ApproveArgs {
    pub run_id: String,
    #[command(flatten)]
    pub ws: Workspace,
}

#[derive(Args, Debug)]
pub struct RunsArgs {
    #[command(flatten)]
    pub ws: Workspace,
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[arg(long, value_name = "DIR", default_value = "recipes")]
    pub recipes: PathBuf,
    /// Folder with one sub-folder per drop, processed in name order.
    #[arg(long, value_name = "DIR", default_value = "samples")]
    pub samples: PathBuf,
    #[arg(long, value_name = "DIR", default_value = "demo")]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct GenArgs {
    /// Number of clients (at least 1); the other entities scale from it.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = at_least_one)]
    pub clients: usize,
    #[arg(long, value_name = "N", default_value_t = 7)]
    pub seed: u64,
    /// Folder for the drop.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// windows-1252 | utf-8-bom | utf-8
    #[arg(long, value_name = "ENCODING", default_value = "windows-1252")]
    pub encoding: String,
    /// xml | csv
    #[arg(long, value_name = "FORMAT", default_value = "xml")]
    pub unidades: String,
    /// Inject the documented dirty rows.
    #[arg(long)]
    pub dirty: bool,
    /// Also write the next snapshot into this folder.
    #[arg(long, value_name = "DIR")]
    pub next: Option<PathBuf>,
    /// Share of rows changed / added / deleted in the next snapshot (0 to 1).
    #[arg(long, value_name = "SHARE", default_value_t = 0.01, value_parser = share)]
    pub changed: f64,
    #[arg(long, value_name = "SHARE", default_value_t = 0.005, value_parser = share)]
    pub added: f64,
    #[arg(long, value_name = "SHARE", default_value_t = 0.005, value_parser = share)]
    pub deleted: f64,
}

impl GenArgs {
    /// The generator's options. `--encoding` and `--unidades` take the generator's own
    /// spellings (its serde names), so they are checked against those rather than by clap.
    pub fn options(&self) -> Result<GenOptions, Usage> {
        Ok(GenOptions {
            clients: self.clients,
            seed: self.seed,
            encoding: by_name(&self.encoding).map_err(|_| {
                Usage(format!(
                    "unknown encoding `{}`: windows-1252, utf-8-bom or utf-8",
                    self.encoding
                ))
            })?,
            unidades: by_name(&self.unidades).map_err(|_| {
                Usage(format!(
                    "unknown unidades format `{}`: xml or csv",
                    self.unidades
                ))
            })?,
            dirty: self.dirty,
        })
    }

    pub fn change_spec(&self) -> ChangeSpec {
        ChangeSpec {
            changed: self.changed,
            added: self.added,
            deleted: self.deleted,
        }
    }
}

/// A unit variant by its serde name.
fn by_name<T: serde::de::DeserializeOwned>(name: &str) -> Result<T, serde::de::value::Error> {
    use serde::de::IntoDeserializer;
    T::deserialize(name.into_deserializer())
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Comma-separated client counts.
    #[arg(long, value_name = "N,N,...", default_value = "10000,100000,1000000", value_delimiter = ',', value_parser = at_least_one)]
    pub sizes: Vec<usize>,
    /// Scratch folder for the generated drops and outputs.
    #[arg(long, value_name = "DIR", default_value = "bench-work")]
    pub dir: PathBuf,
    #[arg(long, value_name = "DIR", default_value = "recipes")]
    pub recipes: PathBuf,
    #[arg(long, value_name = "N", default_value_t = 7)]
    pub seed: u64,
    /// Also write the result table here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Env var holding a PostgreSQL URL: also measure the PostgreSQL apply.
    #[arg(long, value_name = "VAR")]
    pub pg_url_env: Option<String>,
    /// Also run each size as N tenants at once, one run per core (the capacity of an
    /// installation serving many dealers).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub dealers: usize,
}

#[derive(Args, Debug)]
pub struct BenchBaselineArgs {
    #[arg(long, value_name = "DIR", default_value = "recipes")]
    pub recipes: PathBuf,
    #[arg(long, value_name = "DIR")]
    pub inbox: PathBuf,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub ws: Workspace,
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Environment variable holding the access token; required beyond loopback, and
    /// enforced whenever it is set.
    #[arg(long, value_name = "VAR", default_value = "DROPSYNC_SERVE_TOKEN")]
    pub token_env: String,
    /// Serve every dealer of the tenants file: a list of them at `/`, each one's pages
    /// under `/t/NAME/`, and all of them on `/metrics`.
    #[arg(long, conflicts_with_all = ["tenant", "recipes", "out"])]
    pub all_tenants: bool,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub ws: Workspace,
    #[command(flatten)]
    pub sources: SourcesArg,
    /// Also compare each export waiting in this folder with its recipe (columns missing,
    /// added or renamed, and the recipe patch a rename calls for), before any run.
    #[arg(long, value_name = "DIR")]
    pub inbox: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The tenants file: one CronJob per dealer in it.
    #[arg(
        long,
        value_name = "FILE",
        env = "DROPSYNC_TENANTS",
        default_value = "watch/tenants.toml"
    )]
    pub tenants: PathBuf,
    /// The image built from src/app/deploy/Dockerfile.
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    #[arg(long, value_name = "NAME", default_value = "dropsync")]
    pub namespace: String,
    /// When each dealer's run starts (five-field cron).
    #[arg(long, value_name = "CRON", default_value = "30 2 * * *")]
    pub schedule: String,
    /// Time zone of --schedule (IANA name); the cluster's (UTC) otherwise.
    #[arg(long, value_name = "TZ")]
    pub time_zone: Option<String>,
    /// CPU a run requests.
    #[arg(long, value_name = "QTY", default_value = "1")]
    pub cpu: String,
    /// Memory a run requests, and its limit (the defaults fit a dealer of up to ~1M clients:
    /// see the README's benchmark).
    #[arg(long, value_name = "QTY", default_value = "1Gi")]
    pub memory: String,
    #[arg(long, value_name = "QTY", default_value = "2Gi")]
    pub memory_limit: String,
    /// Seconds a run may take before Kubernetes stops it.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub deadline: u64,
    /// The shared volume's claim name and size.
    #[arg(long, value_name = "NAME", default_value = "dropsync-data")]
    pub claim: String,
    #[arg(long, value_name = "QTY", default_value = "50Gi")]
    pub storage: String,
    /// Pushgateway base URL each run pushes its outcome to.
    #[arg(long, value_name = "URL")]
    pub pushgateway: Option<String>,
    /// OpenLineage collector each run sends its events to.
    #[arg(long, value_name = "URL")]
    pub openlineage: Option<String>,
    /// Write the manifests to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
}

/// A count that must be at least 1 (clap reports anything else as a usage error, exit 2).
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A share between 0 and 1.
fn share(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        Ok(_) => Err("must be between 0 and 1".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::gen::{GenEncoding, UnitFormat};

    #[test]
    fn counts_below_one_are_refused() {
        assert_eq!(at_least_one("3"), Ok(3));
        assert_eq!(at_least_one(" 1 "), Ok(1));
        assert!(at_least_one("0").is_err());
        assert!(at_least_one("-1").is_err());
    }

    #[test]
    fn shares_outside_zero_to_one_are_refused() {
        assert_eq!(share("0"), Ok(0.0));
        assert_eq!(share("1"), Ok(1.0));
        assert!(share("1.5").is_err());
        assert!(share("-0.1").is_err());
        assert!(share("x").is_err());
    }

    #[test]
    fn gen_names_are_the_generators_own() {
        let gen = |encoding: &str, unidades: &str| {
            Cli::try_parse_from([
                "dropsync",
                "gen",
                "--out",
                "x",
                "--encoding",
                encoding,
                "--unidades",
                unidades,
            ])
            .map(|cli| match cli.command {
                Command::Gen(g) => g.options(),
                other => panic!("{other:?}"),
            })
            .unwrap()
        };
        let o = gen("utf-8-bom", "csv").unwrap();
        assert_eq!(o.encoding, GenEncoding::Utf8Bom);
        assert_eq!(o.unidades, UnitFormat::Csv);
        assert_eq!(
            gen("windows-1252", "xml").unwrap().encoding,
            GenEncoding::Cp1252
        );
        assert_eq!(
            gen("latin1", "xml").unwrap_err().to_string(),
            "unknown encoding `latin1`: windows-1252, utf-8-bom or utf-8"
        );
        assert_eq!(
            gen("utf-8", "json").unwrap_err().to_string(),
            "unknown unidades format `json`: xml or csv"
        );
    }

    #[test]
    fn clap_definitions_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
