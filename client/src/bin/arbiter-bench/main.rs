//! `arbiter-bench`: a load generator for Arbiter over gRPC, on loopback.
//!
//! N clients, each on its own HTTP/2 connection, first call the health check back to back (the
//! ceiling of this transport on this machine: the same connections, runtime and codecs, no
//! engine and no disk), then run maintenance cycles back to back on disjoint nodes
//! (CreateMaintenanceTask -> RefreshMaintenanceTask until performed -> CompleteAction, each
//! change durable before its reply). It prints throughput, p50, p99 and max for both, and
//! their ratio.
//!
//! The two kinds run in separate phases rather than interleaved on each client: interleaved,
//! every client waits for its cycle before its next health check, so the health rate would
//! equal the cycle rate and say nothing about the transport's ceiling.
//!
//! By default it spawns the real `arbiter-server` (found next to this binary) on a free port
//! with a generated inventory and a fresh data directory, and stops it with SIGTERM at the end.
//! `--store etcd` starts a one-member etcd first and runs the server on it (waiting until it
//! leads); after the server's phases it stops the server and measures etcd's own lock service
//! on the same etcd at the same concurrency (`locks.rs`). `--store both` runs redb, then etcd,
//! and prints them side by side. `--scale NODES` measures a large cluster instead (`scale.rs`).

mod cli;
mod etcd_metrics;
mod fsync;
mod locks;
mod machine;
mod report;
mod scale;
mod spawn;
mod stats;
mod workload;

use anyhow::{Context as _, bail};
use clap::Parser;
use cli::{Args, Store};
use machine::{CpuUse, Watched};
use report::{Measured, Run};
use stats::{Phase, Samples, Window};
use std::future::Future;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// How long a spawned server on etcd may take to win its first campaign.
const LEADER_WAIT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the whole benchmark; false when any call failed.
fn run(args: &Args) -> anyhow::Result<bool> {
    args.check()?;
    if let Some(nodes) = args.scale {
        return scale::run(args, nodes, args.scale_tasks, args.scale_watchers);
    }
    // Before any load, so that nothing else competes for the disk.
    let floor_dir = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    let floor = fsync::measure(&floor_dir, fsync::SAMPLES, fsync::SPACED_SAMPLES)
        .map_err(|e| format!("{}: {e}", floor_dir.display()));
    let runs = match &args.endpoint {
        Some(url) => vec![external(args, url)?],
        None => args
            .stores()
            .iter()
            .map(|&store| spawned(args, store))
            .collect::<anyhow::Result<_>>()?,
    };
    Ok(report::print(args, &runs, &floor))
}

fn runtime() -> anyhow::Result<Runtime> {
    Runtime::new().context("cannot start the async runtime")
}

/// A server someone else runs (and, with --etcd-endpoint, its etcd).
fn external(args: &Args, url: &str) -> anyhow::Result<Run> {
    let endpoint = cli::loopback_endpoint("--endpoint", url)?;
    let etcd = args
        .etcd_endpoint
        .as_deref()
        .map(|e| cli::loopback_endpoint("--etcd-endpoint", e))
        .transpose()?;
    let rt = runtime()?;
    let mut phases = rt.block_on(arbiter_phases(args, &endpoint, Watched::default()))?;
    if let Some(etcd) = &etcd {
        phases.push(rt.block_on(etcd_phase(args, etcd, Watched::default()))?);
    }
    Ok(Run {
        label: "server".into(),
        server: endpoint,
        etcd: etcd.map(|e| format!("etcd at {e}")),
        phases,
        warning: None,
    })
}

/// A server the bench spawns on `store` (and on etcd, the etcd it starts first).
fn spawned(args: &Args, store: Store) -> anyhow::Result<Run> {
    let mut etcd = match store {
        Store::Redb => None,
        Store::Etcd => Some(spawn::Etcd::start(args)?),
    };
    let mut server = spawn::Server::start(args, store, etcd.as_ref().map(spawn::Etcd::endpoint))?;
    let endpoint = format!("http://{}", server.addr());
    let pids = Watched {
        server: Some(server.pid()),
        etcd: etcd.as_ref().and_then(spawn::Etcd::pid),
        etcd_addr: etcd.as_ref().and_then(spawn::Etcd::addr),
    };
    let mut description = format!(
        "spawned {} at {endpoint}, store {} ",
        server.bin().display(),
        store.name()
    );
    let rt = runtime()?;
    let mut phases = rt.block_on(async {
        if store == Store::Etcd {
            let waited = workload::wait_for_leader(&endpoint, LEADER_WAIT).await?;
            description.push_str(&format!(
                "under {} (leading after {:.2} s), data dir {}",
                spawn::ETCD_PREFIX,
                waited.as_secs_f64(),
                server.dir().display()
            ));
        } else {
            description.push_str(&format!("in {}", server.dir().display()));
        }
        description.push_str(" (removed at exit)");
        arbiter_phases(args, &endpoint, pids).await
    })?;
    // Drop every connection before stopping the server, so its graceful shutdown has nothing
    // to wait for.
    drop(rt);
    let warning = match server.stop()? {
        Ok(()) => None,
        Err(status) => Some(format!("the spawned server exited with {status}")),
    };
    let mut etcd_line = None;
    if let Some(etcd) = etcd.as_mut() {
        // The server is stopped: etcd's own locks run on the same etcd with nobody else on it.
        let rt = runtime()?;
        let pids = Watched {
            server: None,
            etcd: etcd.pid(),
            etcd_addr: etcd.addr(),
        };
        phases.push(rt.block_on(etcd_phase(args, etcd.endpoint(), pids))?);
        drop(rt);
        etcd_line = Some(etcd.describe());
        etcd.stop();
    }
    Ok(Run {
        label: store.name().into(),
        server: description,
        etcd: etcd_line,
        phases,
        warning,
    })
}

/// Connects the arbiter clients, then runs the health phase and the cycle phase.
async fn arbiter_phases(
    args: &Args,
    endpoint: &str,
    pids: Watched,
) -> anyhow::Result<Vec<Measured>> {
    let mut clients = workload::connect(args, endpoint).await?;
    let mut out = Vec::new();
    for phase in [Phase::Health, Phase::Cycles] {
        out.push(measure(args, phase, &mut clients, pids, workload::Client::run).await?);
    }
    Ok(out)
}

/// Connects the etcd lock clients (a lease each) and runs the etcd lock phase.
async fn etcd_phase(args: &Args, url: &str, pids: Watched) -> anyhow::Result<Measured> {
    let mut clients = locks::connect(args.clients, url, args.warmup + args.duration).await?;
    measure(
        args,
        Phase::EtcdLocks,
        &mut clients,
        pids,
        locks::Locker::run,
    )
    .await
}

/// One phase: every client runs `work` in its own task until the window ends, and is given
/// back for the next phase; the CPU times of `pids` are read over the window.
async fn measure<C, F, Fut>(
    args: &Args,
    phase: Phase,
    clients: &mut Vec<C>,
    pids: Watched,
    work: F,
) -> anyhow::Result<Measured>
where
    C: Send + 'static,
    F: Fn(C, Phase, Window) -> Fut,
    Fut: Future<Output = (C, Samples)> + Send + 'static,
{
    let start = Instant::now() + args.warmup;
    let window = Window {
        start,
        end: start + args.duration,
    };
    let cpu = tokio::spawn(CpuUse::sample(pids, window.start, window.end));
    let etcd = pids
        .etcd_addr
        .map(|addr| tokio::spawn(etcd_metrics::sample(addr, window.start, window.end)));
    let tasks: Vec<_> = clients
        .drain(..)
        .map(|c| tokio::spawn(work(c, phase, window)))
        .collect();
    let mut samples = Samples::default();
    for task in tasks {
        let (client, s) = task.await.context("a client task panicked")?;
        samples.merge(s);
        clients.push(client);
    }
    if clients.is_empty() {
        bail!("no clients");
    }
    let cpu = cpu.await.context("the CPU sampler panicked")?;
    let etcd = match etcd {
        Some(task) => task.await.context("the etcd sampler panicked")?,
        None => None,
    };
    Ok(Measured {
        phase,
        samples,
        cpu,
        etcd,
    })
}
