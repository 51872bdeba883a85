//! The commands that make test data and measure: `gen`, `bench` and the hidden
//! `bench-baseline` that `bench` runs as a child process; and `deploy`, which writes the
//! Kubernetes manifests.

use super::args::{BenchArgs, BenchBaselineArgs, DeployArgs, GenArgs};
use super::exit::Exit;
use crate::app::{bench, deploy, gen};

pub fn gen(args: GenArgs) -> anyhow::Result<Exit> {
    let opts = args.options()?;
    let m = gen::generate(&opts, &args.out)?;
    let rows: usize = m.entities.values().map(|e| e.rows).sum();
    outln!(
        "{}: {rows} rows in {} files",
        args.out.display(),
        m.entities.len()
    );
    if let Some(next) = &args.next {
        let m = gen::generate_next(&opts, &args.change_spec(), next)?;
        let rows: usize = m.entities.values().map(|e| e.rows).sum();
        outln!("{}: {rows} rows (next snapshot)", next.display());
    }
    Ok(Exit::Ok)
}

pub fn bench(args: BenchArgs) -> anyhow::Result<Exit> {
    let table = bench::run(&bench::BenchOptions {
        sizes: args.sizes,
        dir: args.dir,
        recipes: args.recipes,
        seed: args.seed,
        report: args.report,
        pg_url_env: args.pg_url_env,
        dealers: args.dealers,
    })?;
    outln!("{table}");
    Ok(Exit::Ok)
}

pub fn bench_baseline(args: BenchBaselineArgs) -> anyhow::Result<Exit> {
    outln!("{}", bench::baseline(&args.recipes, &args.inbox)?);
    Ok(Exit::Ok)
}

pub fn deploy(args: DeployArgs) -> anyhow::Result<Exit> {
    let opts = deploy::DeployOptions {
        tenants: args.tenants,
        image: args.image,
        namespace: args.namespace,
        schedule: args.schedule,
        time_zone: args.time_zone,
        cpu: args.cpu,
        memory: args.memory,
        memory_limit: args.memory_limit,
        deadline_secs: args.deadline,
        claim: args.claim,
        storage: args.storage,
        pushgateway: args.pushgateway,
        openlineage: args.openlineage,
    };
    let docs = deploy::manifests(&opts)?;
    let text = deploy::render(&opts, &docs);
    match &args.write {
        Some(path) => std::fs::write(path, text)?,
        None => outln!("{}", text.trim_end()),
    }
    Ok(Exit::Ok)
}
