//! The commands that look without running the pipeline: `runs`, `explain`, `check` and the
//! status page, `serve`.

use std::io::Write;

use super::args::{CheckArgs, ExplainArgs, RunsArgs, ServeArgs};
use super::exit::{self, Exit};
use super::print;
use crate::app::{check, explain, serve};
use crate::state::State;

pub fn runs(mut args: RunsArgs) -> anyhow::Result<Exit> {
    let tenant = args.ws.resolve()?;
    super::tenant::fetch_state(tenant.as_ref(), &args.ws.out)?;
    crate::state::require_workspace(&args.ws.out)?;
    let runs = State::open(&args.ws.out)?.runs(args.limit)?;
    if args.json {
        outln!("{}", serde_json::to_string(&runs)?);
    } else {
        print::runs(&runs);
    }
    Ok(Exit::Ok)
}

pub fn explain(mut args: ExplainArgs) -> anyhow::Result<Exit> {
    let tenant = args.ws.resolve()?;
    super::tenant::fetch_state(tenant.as_ref(), &args.ws.out)?;
    let remote = super::tenant::remote_state(tenant.as_ref())?;
    let events = explain::explain(
        &args.ws.recipes,
        &args.ws.out,
        remote.as_ref(),
        &args.entity,
        &args.id,
    )?;
    if args.json {
        outln!("{}", serde_json::to_string(&events)?);
    } else {
        print::events(&args.entity, &args.id, &events);
    }
    Ok(Exit::Ok)
}

pub fn check(mut args: CheckArgs) -> anyhow::Result<Exit> {
    let config = args
        .ws
        .resolve()?
        .map_or(args.sources.config, |t| t.sources);
    let verdicts = check::check(
        &args.ws.recipes,
        &config,
        &args.ws.out,
        args.inbox.as_deref(),
    );
    if args.json {
        outln!("{}", serde_json::to_string(&verdicts)?);
    } else {
        print::verdicts(&verdicts);
    }
    Ok(exit::for_verdicts(&verdicts))
}

pub fn serve(mut args: ServeArgs) -> anyhow::Result<Exit> {
    let token = std::env::var(&args.token_env)
        .ok()
        .filter(|t| !t.is_empty());
    let sites = if args.all_tenants {
        let mut sites = Vec::new();
        for t in crate::config::tenants::load(&args.ws.tenants)?.list {
            sites.push(serve::Site {
                cluster: super::tenant::cluster_lock(Some(&t))?,
                remote: super::tenant::remote_state(Some(&t))?,
                name: t.name,
                recipes: t.recipes,
                out: t.out,
            });
        }
        sites
    } else {
        let tenant = args.ws.resolve()?;
        vec![serve::Site {
            name: super::tenant::label(tenant.as_ref()).to_string(),
            cluster: super::tenant::cluster_lock(tenant.as_ref())?,
            remote: super::tenant::remote_state(tenant.as_ref())?,
            recipes: args.ws.recipes,
            out: args.ws.out,
        }]
    };
    let opts = serve::ServeOptions {
        listen: args.listen,
        token,
        sites,
        all_tenants: args.all_tenants,
    };
    serve::serve(opts, |addr| {
        // Flushed at once: a script started the server and waits on this line for the port.
        outln!("dropsync status page: http://{addr}/");
        let _ = std::io::stdout().flush();
    })?;
    Ok(Exit::Ok)
}
