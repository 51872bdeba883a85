//! The README's command table, drawn from clap's own definitions: the synopsis of each
//! subcommand (its arguments, options and defaults) and the first line of its help. A test
//! holds the README to it, so the two cannot drift apart again.

use clap::{Arg, ArgAction, Command, CommandFactory};

use super::args::Cli;

/// One markdown table row per visible subcommand, in clap's order.
pub fn markdown_table() -> String {
    let cli = Cli::command();
    let mut out = String::from("| command | what it does |\n|---|---|\n");
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        let about = sub
            .get_about()
            .map(|a| a.to_string())
            .unwrap_or_default()
            .replace('\n', " ");
        out.push_str(&format!("| `{}` | {} |\n", synopsis(sub), about.trim()));
    }
    out
}

/// `dropsync NAME POSITIONAL... [--option VALUE] [--flag]`, defaults written in.
fn synopsis(sub: &Command) -> String {
    let mut words = vec![format!("dropsync {}", sub.get_name())];
    let args: Vec<&Arg> = sub
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_global_set())
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
        .collect();
    for a in args.iter().filter(|a| a.is_positional()) {
        let name = value_name(a);
        words.push(if a.is_required_set() {
            name
        } else {
            format!("[{name}]")
        });
    }
    for a in args.iter().filter(|a| !a.is_positional()) {
        let Some(long) = a.get_long() else { continue };
        let flag = matches!(a.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
        let mut word = format!("--{long}");
        if !flag {
            word.push(' ');
            word.push_str(&value_name(a));
            let defaults: Vec<String> = a
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            if !defaults.is_empty() {
                word.push_str(&format!("={}", defaults.join(",")));
            }
        }
        words.push(if a.is_required_set() {
            word
        } else {
            format!("[{word}]")
        });
    }
    words.join(" ")
}

fn value_name(a: &Arg) -> String {
    a.get_value_names()
        .and_then(|n| n.first())
        .map(|n| n.to_string())
        .unwrap_or_else(|| a.get_id().as_str().to_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_table_is_claps() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        let table = markdown_table();
        assert!(
            readme.contains(&table),
            "README.md's command table differs from the CLI's own definitions; replace it with:\n\n{table}"
        );
    }

    #[test]
    fn synopses_show_positionals_options_and_defaults() {
        let table = markdown_table();
        assert!(
            table.contains(
                "| `dropsync explain ENTITY ID [--recipes DIR=recipes] [--out DIR=out] [--tenant NAME] [--tenants FILE=watch/tenants.toml] [--json]` |"
            ),
            "{table}"
        );
        // Hidden commands stay out; every visible one is in.
        assert!(!table.contains("bench-baseline"), "{table}");
        let visible = Cli::command()
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .count();
        assert_eq!(table.lines().count(), visible + 2, "{table}");
    }
}
