//! The command line: the only place that knows about processes, exit codes and `anyhow`.
//!
//! `args` is what clap parses, one struct per subcommand; `pipeline`, `inspect` and `tools`
//! hold one function per subcommand, each calling the app layer, printing through `print`
//! and returning its [`Exit`]; `exit` maps every error that can end a command to its code
//! (0 the run completed, rejected rows are data, not a failure; 1 any other failure; 2 a
//! configuration or recipe error; 3 the run was held by the delete guard).

/// `println!` for a command's output. A reader that went away (`dropsync runs | head -1`) is
/// not an error: the command's work is done and its exit code says how it went, while
/// `println!` would panic and exit 101 after a run that completed. Any other write error
/// still fails loudly.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                panic!("failed printing to stdout: {e}");
            }
        }
    }};
}

mod args;
mod exit;
mod inspect;
mod logs;
mod pipeline;
mod print;
pub mod synopsis;
mod tenant;
mod tools;

use clap::Parser;

pub use args::Cli;
pub use exit::{Exit, ExitCode};
pub use print::printable;

use args::Command;

pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _log_guard = match logs::init(cli.quiet, cli.log_dir.as_deref()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!(
                "error: cannot log to {}: {e}",
                cli.log_dir
                    .as_deref()
                    .unwrap_or(std::path::Path::new("?"))
                    .display()
            );
            return Exit::Config.into();
        }
    };
    let quiet = cli.quiet;
    let result = match cli.command {
        Command::Run(a) => pipeline::run(a, quiet),
        Command::Watch(a) => pipeline::watch(a),
        Command::Plan(a) => pipeline::plan(a),
        Command::Explain(a) => inspect::explain(a),
        Command::Approve(a) => pipeline::approve(a),
        Command::Runs(a) => inspect::runs(a),
        Command::Demo(a) => pipeline::demo(a, quiet),
        Command::Gen(a) => tools::gen(a),
        Command::Bench(a) => tools::bench(a),
        Command::BenchBaseline(a) => tools::bench_baseline(a),
        Command::Serve(a) => inspect::serve(a),
        Command::Check(a) => inspect::check(a),
        Command::Deploy(a) => tools::deploy(a),
    };
    match result {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("error: {}", printable(&print::error_message(&e)));
            exit::exit_for(&e).into()
        }
    }
}
