//! `--scale NODES`: a large cluster instead of the throughput phases. It writes an inventory of
//! NODES storage nodes in block-4-2 groups of eight (one pdisk each, three data centers),
//! starts the server on it, creates `--scale-tasks` live tasks (one lock each, on distinct
//! groups), and reports: the inventory's size, the time from spawning the server to its
//! `listening on` line (the inventory's parse included), the rate of the creates, the server's
//! resident memory (and per node), the store's size, one dry-run check over gRPC, and the
//! time to `listening on` again after `kill -9` and a restart on the same store.

use crate::cli::{Args, Store};
use crate::machine::{CpuUse, Times, Watched};
use crate::spawn;
use anyhow::{Context as _, bail};
use arbiter_client::Client;
use arbiter_client::proto::ydb::maintenance::{
    Action, ActionGroup, ActionScope, AvailabilityMode, CreateMaintenanceTaskRequest, LockAction,
    MaintenanceTaskOptions, action, action_scope,
};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// Nodes per storage group.
const GROUP: u32 = 8;
/// Creates in flight at once.
const IN_FLIGHT: usize = 64;
/// Dry-run checks timed.
const CHECKS: usize = 20;
/// Watch streams per connection in the fan-out.
const WATCHES_PER_CONNECTION: usize = 50;

/// The generated inventory (JSON: the loader's fast path) of `nodes` nodes.
pub(crate) fn inventory(nodes: u32) -> String {
    let mut json = String::with_capacity(nodes as usize * 160);
    json.push_str(
        r#"{"defaults":{"lock_duration":"1h"},"limits":{"max_unavailable_ratio":20},"nodes":["#,
    );
    for id in 1..=nodes {
        let sep = if id > 1 { "," } else { "" };
        let dc = id % 3 + 1;
        let _ = write!(
            json,
            r#"{sep}{{"id":{id},"host":"scale-{id}","port":19001,"data_center":"dc-{dc}","pdisks":[{{"id":1,"path":"/dev/disk1"}}]}}"#
        );
    }
    json.push_str(r#"],"storage_groups":["#);
    for g in 0..nodes / GROUP {
        let sep = if g > 0 { "," } else { "" };
        let _ = write!(
            json,
            r#"{sep}{{"id":{},"erasure":"block-4-2","vdisks":["#,
            g + 1
        );
        for k in 0..GROUP {
            let sep = if k > 0 { "," } else { "" };
            let _ = write!(json, r#"{sep}{{"node":{},"pdisk":1}}"#, g * GROUP + k + 1);
        }
        json.push_str("]}");
    }
    json.push_str("]}");
    json
}

/// A lock on one node for an hour, or a dry run of it.
fn lock(uid: &str, node: u32, dry_run: bool) -> CreateMaintenanceTaskRequest {
    CreateMaintenanceTaskRequest {
        operation_params: None,
        task_options: Some(MaintenanceTaskOptions {
            task_uid: uid.to_owned(),
            description: "arbiter-bench --scale".into(),
            availability_mode: AvailabilityMode::Strong as i32,
            dry_run,
            priority: 0,
            override_holds: false,
        }),
        action_groups: vec![ActionGroup {
            actions: vec![Action {
                action: Some(action::Action::LockAction(LockAction {
                    scope: Some(ActionScope {
                        scope: Some(action_scope::Scope::NodeId(node)),
                    }),
                    duration: Some(prost_types::Duration {
                        seconds: 3600,
                        nanos: 0,
                    }),
                    drain: false,
                })),
            }],
        }],
    }
}

/// The resident set of a process, in bytes (Linux).
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The bytes of every file under `dir`.
fn size_of(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => size_of(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Runs the scale mode; false when a call failed.
pub(crate) fn run(args: &Args, nodes: u32, tasks: u32, watchers: u32) -> anyhow::Result<bool> {
    if nodes < GROUP {
        bail!("--scale needs at least {GROUP} nodes (one storage group)");
    }
    let groups = nodes / GROUP;
    if tasks > groups {
        bail!("--scale-tasks {tasks}: at most one live task per storage group ({groups} here)");
    }
    if watchers > 0 && tasks == 0 {
        bail!("--scale-watchers needs a task to watch (--scale-tasks at least 1)");
    }
    let dir = tempfile::Builder::new()
        .prefix("arbiter-bench-scale-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let path = dir.path().join("inventory.json");
    let text = inventory(nodes);
    std::fs::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "arbiter-bench --scale: {nodes} nodes in {groups} block-4-2 groups, inventory {} (JSON)",
        mb(text.len() as u64)
    );
    drop(text);
    let mut with_inventory = args.clone();
    with_inventory.inventory = Some(path);
    let started = Instant::now();
    let limit = (watchers + 1).to_string();
    let mut server = spawn::Server::start_with(
        &with_inventory,
        Store::Redb,
        None,
        &["--max-watches", &limit, "--max-watches-per-user", &limit],
    )?;
    let start = started.elapsed();
    let pid = server.pid();
    let rss_start = rss(pid).unwrap_or(0);
    println!(
        "start to `listening on` (the inventory's parse included): {:.2} s; RSS {} ({:.1} KB per node)",
        start.as_secs_f64(),
        mb(rss_start),
        rss_start as f64 / 1e3 / f64::from(nodes)
    );
    let endpoint = format!("http://{}", server.addr());
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let ok = rt.block_on(async {
        let client = Client::connect(&endpoint, args.ticket.clone()).await?;
        let created = Instant::now();
        let mut failures = 0u32;
        let mut running = tokio::task::JoinSet::new();
        for t in 0..tasks {
            if running.len() >= IN_FLIGHT
                && let Some(done) = running.join_next().await
                && !matches!(done, Ok(Ok(_)))
            {
                failures += 1;
            }
            let c = client.clone();
            // The first node of group t+1: every task on a group of its own.
            let req = lock(&format!("scale-{t}"), t * GROUP + 1, false);
            running.spawn(async move { c.create_task(req).await });
        }
        while let Some(done) = running.join_next().await {
            if !matches!(done, Ok(Ok(_))) {
                failures += 1;
            }
        }
        let took = created.elapsed();
        println!(
            "{tasks} tasks created (one lock each) in {:.2} s ({:.0}/s), {failures} failed",
            took.as_secs_f64(),
            f64::from(tasks) / took.as_secs_f64().max(1e-9)
        );
        let rss_tasks = rss(pid).unwrap_or(0);
        println!(
            "RSS with the tasks: {} ({:.1} KB per node, {:.1} KB per task above the start)",
            mb(rss_tasks),
            rss_tasks as f64 / 1e3 / f64::from(nodes),
            rss_tasks.saturating_sub(rss_start) as f64 / 1e3 / f64::from(tasks.max(1))
        );
        let mut times = Vec::with_capacity(CHECKS);
        for i in 0..CHECKS {
            // A free node of a group with no task (or, with every group taken, a locked one).
            let node = (tasks + u32::try_from(i).unwrap_or(0)) % groups * GROUP + 2;
            let t = Instant::now();
            client
                .create_task(lock(&format!("scale-dry-{i}"), node, true))
                .await?;
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "one dry-run check over gRPC: p50 {:.2} ms, max {:.2} ms ({CHECKS} calls)",
            times[CHECKS / 2].as_secs_f64() * 1e3,
            times[CHECKS - 1].as_secs_f64() * 1e3
        );
        if watchers > 0 {
            fan_out(&endpoint, args.ticket.clone(), &client, watchers, pid).await?;
        }
        Ok::<_, anyhow::Error>(failures == 0)
    })?;
    drop(rt);
    println!("store: {}", mb(size_of(&server.dir().join("data"))));
    let restart = server.kill_and_restart()?;
    let rss_restart = rss(server.pid()).unwrap_or(0);
    println!(
        "restart after kill -9 to `listening on`: {:.2} s; RSS {}",
        restart.as_secs_f64(),
        mb(rss_restart)
    );
    println!(
        "aims: restart to serving within 0.5 s: {}; RSS under 200 MB: {}",
        met(restart <= Duration::from_millis(500)),
        met(rss_restart.max(rss_start) < 200_000_000),
    );
    let _ = server.stop();
    Ok(ok)
}

/// Opens `watchers` watches of task `scale-0` (over connections of
/// `WATCHES_PER_CONNECTION` streams each), makes one change to it (a refresh), and reports the
/// time until the last watcher has it, and where the CPU went meanwhile (server `pid`).
async fn fan_out(
    endpoint: &str,
    ticket: Option<String>,
    client: &Client,
    watchers: u32,
    pid: u32,
) -> anyhow::Result<()> {
    let n = watchers as usize;
    let connections = n.div_ceil(WATCHES_PER_CONNECTION);
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        clients.push(Client::connect(endpoint, ticket.clone()).await?);
    }
    let opened = Instant::now();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(n);
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let mut running = tokio::task::JoinSet::new();
    for i in 0..n {
        let c = clients[i / WATCHES_PER_CONNECTION].clone();
        let ready = ready_tx.clone();
        let mut go = go_rx.clone();
        running.spawn(async move {
            let mut watch = c.watch_task("scale-0").await?;
            // The state when the watch opened.
            watch.next().await.context("the watch closed at once")??;
            let _ = ready.send(()).await;
            let _ = go.wait_for(|g| *g).await;
            watch.next().await.context("the watch closed")??;
            Ok::<Instant, anyhow::Error>(Instant::now())
        });
    }
    drop(ready_tx);
    for _ in 0..n {
        if ready_rx.recv().await.is_none() {
            break;
        }
    }
    let open = opened.elapsed();
    let _ = go_tx.send(true);
    let watched = Watched {
        server: Some(pid),
        ..Watched::default()
    };
    let cpu_before = Times::now(watched);
    let changed = Instant::now();
    client.refresh_task("scale-0").await?;
    let mut last = changed;
    let mut seen = 0usize;
    while let Some(done) = running.join_next().await {
        if let Ok(Ok(at)) = done {
            seen += 1;
            last = last.max(at);
        }
    }
    let cpu = CpuUse::since(&cpu_before, &Times::now(watched));
    let took = last.saturating_duration_since(changed);
    println!(
        "watch fan-out: {seen} of {n} watchers ({connections} connections) had the change {:.1} ms after it was made (opening them took {:.2} s)",
        took.as_secs_f64() * 1e3,
        open.as_secs_f64()
    );
    // Ticks are 10 ms: a rough split, but it tells the server's share from the bench's.
    println!("cpu during the fan-out: {}", crate::report::cpu_line(&cpu));
    println!(
        "aim: fan-out to 10,000 watchers within 100 ms: {}",
        if n >= 10_000 {
            met(seen == n && took <= Duration::from_millis(100))
        } else {
            "not measured at 10,000"
        }
    );
    Ok(())
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_inventory_is_valid_json_with_every_node_in_one_group() {
        let v: serde_json::Value = serde_json::from_str(&inventory(24)).expect("JSON");
        assert_eq!(v["nodes"].as_array().map(Vec::len), Some(24));
        let groups = v["storage_groups"].as_array().expect("groups");
        assert_eq!(groups.len(), 3);
        let mut seen: Vec<u64> = groups
            .iter()
            .flat_map(|g| g["vdisks"].as_array().expect("vdisks").iter())
            .map(|d| d["node"].as_u64().expect("node"))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (1..=24).collect::<Vec<u64>>());
    }
}
