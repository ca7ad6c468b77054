//! `arbiter-bench`: a load generator for Arbiter over gRPC, on loopback.
//!
//! N clients, each on its own HTTP/2 connection, first call the health check back to back (the
//! ceiling of this transport on this machine: the same connections, runtime and codecs, no
//! engine and no disk), then run maintenance cycles back to back on disjoint nodes
//! (CreateMaintenanceTask -> RefreshMaintenanceTask until performed -> CompleteAction, each
//! change fsynced by the server before its reply). It prints throughput, p50, p99 and max for
//! both, and their ratio.
//!
//! The two kinds run in separate phases rather than interleaved on each client: interleaved,
//! every client waits for its cycle before its next health check, so the health rate would
//! equal the cycle rate and say nothing about the transport's ceiling.
//!
//! By default it spawns the real `arbiter-server` (found next to this binary) on a free port
//! with a generated inventory and a fresh data directory, and stops it with SIGTERM at the end.

mod cli;
mod machine;
mod report;
mod spawn;
mod stats;
mod workload;

use anyhow::{Context as _, bail};
use clap::Parser;
use cli::Args;
use stats::{Phase, Samples, Window};
use std::process::ExitCode;
use std::time::Instant;
use workload::Client;

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
    let mut server = match &args.endpoint {
        Some(_) => None,
        None => Some(spawn::Server::start(args)?),
    };
    let endpoint = match (&args.endpoint, &server) {
        (Some(url), _) => cli::loopback_endpoint(url)?,
        (None, Some(s)) => format!("http://{}", s.addr()),
        (None, None) => bail!("neither --endpoint nor a spawned server"),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let server_pid = server.as_ref().map(spawn::Server::pid);
    let results = runtime.block_on(measure(args, &endpoint, server_pid))?;
    // Drop every connection before stopping the server, so its graceful shutdown has nothing
    // to wait for.
    drop(runtime);
    let stopped = server.as_mut().map(spawn::Server::stop).transpose()?;
    let ok = report::print(args, &endpoint, server.as_ref(), &results);
    if let Some(Err(status)) = stopped {
        eprintln!("warning: the spawned server exited with {status}");
    }
    Ok(ok)
}

/// Connects the clients, then runs the health phase and the cycle phase.
async fn measure(
    args: &Args,
    endpoint: &str,
    server_pid: Option<u32>,
) -> anyhow::Result<Vec<(Phase, Samples, machine::CpuUse)>> {
    let mut clients = workload::connect(args, endpoint).await?;
    let mut results = Vec::new();
    for phase in [Phase::Health, Phase::Cycles] {
        let start = Instant::now() + args.warmup;
        let window = Window {
            start,
            end: start + args.duration,
        };
        let cpu = tokio::spawn(machine::CpuUse::sample(
            server_pid,
            window.start,
            window.end,
        ));
        let tasks: Vec<_> = clients
            .drain(..)
            .map(|c| tokio::spawn(c.run(phase, window)))
            .collect();
        let mut samples = Samples::default();
        for task in tasks {
            let (client, s): (Client, Samples) = task.await.context("a client task panicked")?;
            samples.merge(s);
            clients.push(client);
        }
        let cpu = cpu.await.context("the CPU sampler panicked")?;
        results.push((phase, samples, cpu));
    }
    Ok(results)
}
