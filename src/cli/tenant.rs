//! `--tenant NAME`: the dealer's places, read from the tenants file, put in place of the
//! single-folder options before a command runs, so the app layer sees paths as it always has.

use super::args::Workspace;
use super::exit::Usage;
use crate::config::tenants::{self, Tenant, TenantError};
use crate::state::cluster_lock::ClusterLock;
use crate::state::remote::RemoteState;

impl Workspace {
    /// The tenant `--tenant` names, read from `--tenants`; `None` without `--tenant`.
    pub fn tenant(&self) -> Result<Option<Tenant>, TenantError> {
        match &self.tenant {
            None => Ok(None),
            Some(name) => Ok(Some(tenants::load(&self.tenants)?.get(name)?.clone())),
        }
    }

    /// Puts the tenant's recipes and workspace in place of `--recipes` and `--out` (clap
    /// refuses both beside `--tenant`), returning the tenant for its other places.
    pub fn resolve(&mut self) -> Result<Option<Tenant>, TenantError> {
        let tenant = self.tenant()?;
        if let Some(t) = &tenant {
            self.recipes = t.recipes.clone();
            self.out = t.out.clone();
        }
        Ok(tenant)
    }
}

/// The tenant's cluster-wide lock, when the tenants file has `[lock]` (or `[state]`): the
/// URL read from the variable it names (a secret, never in the file).
pub fn cluster_lock(tenant: Option<&Tenant>) -> Result<Option<ClusterLock>, Usage> {
    let Some((t, var)) = tenant.and_then(|t| t.lock_url_env.as_ref().map(|v| (t, v))) else {
        return Ok(None);
    };
    Ok(Some(ClusterLock::new(
        url_from(var, "lock")?,
        t.name.clone(),
    )))
}

/// Where the tenant's state is published, when the tenants file has `[state]`.
pub fn remote_state(tenant: Option<&Tenant>) -> Result<Option<RemoteState>, Usage> {
    let Some((t, var)) = tenant.and_then(|t| t.state_url_env.as_ref().map(|v| (t, v))) else {
        return Ok(None);
    };
    Ok(Some(RemoteState::new(
        url_from(var, "state")?,
        t.name.clone(),
    )))
}

/// Before a command that reads a workspace (`runs`, `explain`): with `[state]`, this
/// folder is brought to the published state first, so any worker reads what the tenant's
/// runs left. A run working in this folder holds its lock and its copy is the newest: then
/// the folder is read as it is.
/// Where the tenant's runs store their files, when the tenants file says.
pub fn outputs(
    tenant: Option<&Tenant>,
) -> anyhow::Result<Option<crate::stage::store::OutputStore>> {
    Ok(tenant
        .and_then(|t| t.outputs.as_deref())
        .map(crate::stage::store::OutputStore::open)
        .transpose()?)
}

pub fn fetch_state(tenant: Option<&Tenant>, out: &std::path::Path) -> anyhow::Result<()> {
    if let Some(remote) = remote_state(tenant)? {
        remote.fetch_for_reading(out)?;
    }
    Ok(())
}

fn url_from(var: &str, section: &str) -> Result<String, Usage> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Ok(url),
        _ => Err(Usage(format!(
            "environment variable {var} is not set: the tenants file's [{section}] postgres_url_env names it for a PostgreSQL URL"
        ))),
    }
}

/// The `tenant` label of metrics: the dealer's name, or `default` for the single folder.
pub fn label(tenant: Option<&Tenant>) -> &str {
    tenant.map_or(crate::app::metrics::DEFAULT_TENANT, |t| t.name.as_str())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::args::{Cli, Command};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("dropsync").chain(args.iter().copied()))
    }

    #[test]
    fn a_tenant_takes_the_place_of_the_folder_options() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tenants.toml");
        std::fs::write(
            &file,
            "[defaults]\nrecipes = \"r\"\ninbox = \"{tenant}/in\"\nout = \"w/{tenant}\"\n[tenants.norte]\n",
        )
        .unwrap();
        let cli = parse(&[
            "runs",
            "--tenant",
            "norte",
            "--tenants",
            file.to_str().unwrap(),
        ])
        .unwrap();
        let Command::Runs(mut a) = cli.command else {
            panic!()
        };
        let t = a.ws.resolve().unwrap().unwrap();
        assert_eq!(a.ws.out, dir.path().join("w/norte"));
        assert_eq!(a.ws.recipes, dir.path().join("r"));
        assert_eq!(t.inbox, dir.path().join("norte/in"));
        assert_eq!(super::label(Some(&t)), "norte");
        assert_eq!(super::label(None), "default");
    }

    #[test]
    fn a_tenant_beside_an_explicit_folder_is_refused_by_clap() {
        for args in [
            &["run", "--tenant", "a", "--out", "x"][..],
            &["run", "--tenant", "a", "--inbox", "x"],
            &["approve", "R", "--tenant", "a", "--recipes", "x"],
            &["watch", "--tenant", "a", "--config", "x"],
            &["serve", "--all-tenants", "--tenant", "a"],
            &["serve", "--all-tenants", "--out", "x"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{args:?}"
            );
        }
        // Defaults do not conflict: `--tenant` alone is fine.
        assert!(parse(&["run", "--tenant", "a"]).is_ok());
        assert!(parse(&["serve", "--all-tenants"]).is_ok());
    }
}
