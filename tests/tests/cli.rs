//! The `arbiter` command-line tool, end to end: the real binary against the real server. Each
//! test starts its own server and asserts on what the CLI prints and how it exits: tables for
//! people, `--output json` for scripts, `error: ...` with exit code 1 for a refused or failed
//! command, 2 for a usage error.
//!
//! The binary is `ARBITER_CLI_BIN`, else the harness builds it (and the server) on first use,
//! so a plain `cargo test` works on a fresh clone (see `arbiter_e2e`'s docs).

use arbiter_e2e::{Files, ServerProcess, cli_binary, example_inventory};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long one CLI command may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The CLI with no `ARBITER_*` variable inherited (every global flag also reads one).
fn cli() -> Command {
    let mut cmd = Command::new(cli_binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ARBITER_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// The CLI aimed at `server`, with `args`.
fn at(server: &ServerProcess, args: &[&str]) -> Command {
    let mut cmd = cli();
    cmd.arg("--endpoint")
        .arg(server.addr().to_string())
        .args(args);
    cmd
}

/// What one run printed, and how it exited.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` to its exit, at most [`TIMEOUT`].
fn run(mut cmd: Command) -> Run {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn arbiter");
    let out = wait_bounded(child);
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn wait_bounded(child: Child) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(out) => out.expect("wait for arbiter"),
        Err(_) => {
            kill(pid);
            panic!("arbiter did not exit within {TIMEOUT:?}");
        }
    }
}

fn kill(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// Runs `args` against `server` and asserts exit 0; the stdout.
fn ok(server: &ServerProcess, args: &[&str]) -> String {
    let r = run(at(server, args));
    assert_eq!(r.code, Some(0), "arbiter {args:?}: {r:#?}");
    assert!(r.stderr.is_empty(), "arbiter {args:?}: {r:#?}");
    r.stdout
}

/// Runs `args` with `--output json` against `server`, asserts exit 0, and parses the stdout.
fn json(server: &ServerProcess, args: &[&str]) -> Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = ok(server, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("arbiter {args:?}: {e}: {out}"))
}

/// Runs `args` against `server` and asserts exit 1 with one line `error: ...` on stderr that
/// contains `needle`; the line.
fn fails(server: &ServerProcess, args: &[&str], needle: &str) -> String {
    let r = run(at(server, args));
    assert_eq!(r.code, Some(1), "arbiter {args:?}: {r:#?}");
    assert!(r.stdout.is_empty(), "arbiter {args:?}: {r:#?}");
    let line = r.stderr.trim_end();
    assert!(
        line.starts_with("error: ") && !line.contains('\n') && line.contains(needle),
        "arbiter {args:?}: expected one `error:` line with {needle:?}: {r:#?}"
    );
    line.to_owned()
}

/// The table row whose first column is `key`, split into its cells (columns are separated by
/// at least two spaces; cells themselves hold single spaces at most).
fn row(table: &str, key: &str) -> Vec<String> {
    table
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.first().is_some_and(|c| c == key))
        .unwrap_or_else(|| panic!("no row {key:?} in:\n{table}"))
}

/// Every action of a task's JSON, in group order.
fn actions(task: &Value) -> Vec<&Value> {
    task["action_groups"]
        .as_array()
        .expect("action_groups")
        .iter()
        .flat_map(|g| g["actions"].as_array().expect("actions"))
        .collect()
}

#[test]
fn nodes_lists_every_node_of_the_inventory() {
    let server = ServerProcess::start(example_inventory());
    let table = ok(&server, &["nodes"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 13, "a header and 12 nodes:\n{table}");
    assert!(lines[0].starts_with("ID  HOST"), "{table}");
    for id in 1..=12 {
        let cells = row(&table, &id.to_string());
        let tenant = if id <= 9 { "storage" } else { "/Root/db1" };
        assert_eq!(cells[3], tenant, "{table}");
        assert_eq!(cells[4], "UP", "{table}");
        assert_eq!(cells[5], "UP", "condition: {table}");
        assert_eq!(cells[6], "yes", "{table}");
    }
    let nodes = json(&server, &["nodes"]);
    let nodes = nodes.as_array().expect("an array");
    assert_eq!(nodes.len(), 12);
    assert_eq!(nodes[0]["node_id"], 1);
    assert_eq!(nodes[0]["host"], "storage-1.dc1.example");
    assert_eq!(nodes[0]["kind"], "storage");
    assert_eq!(nodes[11]["tenant"], "/Root/db1");
    assert!(
        nodes
            .iter()
            .all(|n| n["state"] == "UP" && n["available"] == true)
    );

    // In open mode everyone is an admin, and the ticket names the caller.
    assert_eq!(
        ok(&server, &["inventory", "reload"]),
        "inventory reloaded: nodes 12 -> 12, storage groups 4 -> 4\n"
    );
    assert_eq!(
        json(&server, &["--token", "carol", "whoami"])["user"],
        "carol"
    );
}

#[test]
fn a_task_round_trip_create_show_refresh_complete_drop() {
    let server = ServerProcess::start(example_inventory());
    let created = ok(
        &server,
        &[
            "task",
            "create",
            "kernel-1",
            "--nodes",
            "1,2",
            "--duration",
            "10m",
            "--description",
            "kernel 6.1",
        ],
    );
    assert!(created.starts_with("task kernel-1\n"), "{created}");
    // One node at a time (13% of 12 nodes): node 1 is granted, node 2 waits and says why.
    let first = row(&created, "0");
    assert_eq!(first[1..4], ["a-1", "node 1", "PERFORMED"], "{created}");
    let second = row(&created, "1");
    assert_eq!(second[1..4], ["a-2", "node 2", "PENDING"], "{created}");
    assert!(
        created.contains("DISABLED_NODES_LIMIT_REACHED")
            && created.contains("too many unavailable nodes"),
        "{created}"
    );

    let shown = ok(&server, &["task", "show", "kernel-1"]);
    assert!(
        shown.contains("kernel 6.1") && shown.contains("STRONG"),
        "{shown}"
    );
    let task = json(&server, &["task", "show", "kernel-1"]);
    assert_eq!(task["task_uid"], "kernel-1");
    assert_eq!(task["options"]["description"], "kernel 6.1");
    assert_eq!(task["options"]["availability_mode"], "STRONG");
    assert_eq!(
        (task["performed"].clone(), task["pending"].clone()),
        (1.into(), 1.into())
    );
    let acts = actions(&task);
    assert_eq!(acts[0]["scope"]["node_id"], 1);
    assert_eq!(acts[0]["status"], "PERFORMED");
    assert_eq!(acts[0]["duration_seconds"], 600);
    assert!(
        acts[0]["deadline"]
            .as_str()
            .is_some_and(|d| d.ends_with('Z'))
    );
    assert_eq!(acts[1]["status"], "PENDING");
    assert_eq!(acts[1]["deadline"], Value::Null);

    let list = json(&server, &["tasks"]);
    assert_eq!(list[0]["task_uid"], "kernel-1");
    assert_eq!(
        (list[0]["performed"].clone(), list[0]["pending"].clone()),
        (1.into(), 1.into())
    );
    let table = ok(&server, &["tasks"]);
    assert_eq!(
        row(&table, "kernel-1")[1..6],
        ["anonymous", "STRONG", "0", "1", "1"],
        "{table}"
    );

    // Node 1 is done: completing it releases the lock, and a refresh grants node 2.
    let done = json(&server, &["task", "complete", "kernel-1", "--nodes", "1"]);
    assert_eq!(done["actions"][0]["action_id"], "a-1");
    assert_eq!(done["actions"][0]["status"], "SUCCESS");
    let refreshed = ok(&server, &["task", "refresh", "kernel-1"]);
    assert_eq!(
        row(&refreshed, "1")[1..4],
        ["a-2", "node 2", "PERFORMED"],
        "{refreshed}"
    );
    let refreshed = json(&server, &["task", "refresh", "kernel-1"]);
    assert_eq!(refreshed["options"]["description"], "kernel 6.1");
    assert_eq!(actions(&refreshed).len(), 1, "the completed action is gone");

    let done = ok(
        &server,
        &["task", "complete", "kernel-1", "--all-performed"],
    );
    assert!(done.contains("a-2") && done.contains("SUCCESS"), "{done}");
    // Every action completed: the task is gone.
    fails(
        &server,
        &["task", "show", "kernel-1"],
        "BAD_REQUEST: Task not found",
    );
    assert_eq!(json(&server, &["tasks"]), Value::Array(vec![]));

    // Drop releases whatever a task holds.
    ok(&server, &["task", "create", "kernel-2", "--nodes", "3"]);
    assert_eq!(
        row(&ok(&server, &["nodes"]), "3")[7].split(' ').next(),
        Some("kernel-2")
    );
    let dropped = json(&server, &["task", "drop", "kernel-2"]);
    assert_eq!(dropped["dropped"], true);
    fails(&server, &["task", "show", "kernel-2"], "Task not found");
    assert_eq!(row(&ok(&server, &["nodes"]), "3")[7], "-");
}

#[test]
fn create_flags_reach_the_request() {
    let server = ServerProcess::start(example_inventory());
    let task = json(
        &server,
        &[
            "task",
            "create",
            "disks",
            "--pdisk",
            "3:2",
            "--pdisk",
            "storage-4.dc2.example:/dev/nvme0n1",
            "--hosts",
            "compute-1.dc1.example",
            "--mode",
            "weak",
            "--priority",
            "-5",
            "--dry-run",
        ],
    );
    assert_eq!(task["options"]["dry_run"], true);
    assert_eq!(task["options"]["availability_mode"], "WEAK");
    assert_eq!(task["options"]["priority"], -5);
    let acts = actions(&task);
    assert_eq!(acts.len(), 3);
    assert_eq!(acts[0]["scope"]["host"], "compute-1.dc1.example");
    assert_eq!(acts[1]["scope"]["pdisk"]["node_id"], 3);
    assert_eq!(acts[1]["scope"]["pdisk"]["pdisk_id"], 2);
    assert_eq!(acts[2]["scope"]["pdisk"]["path"], "/dev/nvme0n1");
    assert_eq!(
        json(&server, &["tasks"]),
        Value::Array(vec![]),
        "a dry run stores nothing"
    );

    // --composite: one group holding every action, granted together (force skips the limits).
    let task = json(
        &server,
        &[
            "task",
            "create",
            "pair",
            "--nodes",
            "10,1",
            "--composite",
            "--mode",
            "force",
        ],
    );
    assert_eq!(task["action_groups"].as_array().map(Vec::len), Some(1));
    assert_eq!(actions(&task).len(), 2);
    assert!(actions(&task).iter().all(|a| a["status"] == "PERFORMED"));
}

#[test]
fn node_down_and_up_show_in_nodes() {
    let server = ServerProcess::start(example_inventory());
    let out = ok(&server, &["node", "down", "5", "--reason", "disk failure"]);
    assert_eq!(out, "node 5 marked DOWN: disk failure\n");
    let table = ok(&server, &["nodes"]);
    let cells = row(&table, "5");
    assert_eq!(
        (cells[4].as_str(), cells[6].as_str()),
        ("DOWN", "no"),
        "{table}"
    );
    assert!(
        cells.last().is_some_and(|d| d.contains("disk failure")),
        "{table}"
    );
    let nodes = json(&server, &["nodes"]);
    assert_eq!(nodes[4]["state"], "DOWN");
    assert!(
        nodes[4]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("disk failure"))
    );

    // A down node counts against the limit: nothing else may go now.
    let task = json(&server, &["task", "create", "t", "--nodes", "1"]);
    assert!(
        actions(&task)[0]["details"]
            .as_str()
            .is_some_and(|d| d.contains("down 1")),
        "{task}"
    );

    ok(&server, &["node", "up", "5"]);
    assert_eq!(json(&server, &["nodes"])[4]["state"], "UP");
}

#[test]
fn a_heartbeat_shows_in_nodes() {
    let server = ServerProcess::start(example_inventory());
    assert_eq!(
        row(&ok(&server, &["nodes"]), "7")[8],
        "-",
        "no heartbeat yet"
    );
    let out = ok(&server, &["node", "heartbeat", "7", "--version", "25.1.0"]);
    assert_eq!(out, "heartbeat sent for node 7\n");
    let table = ok(&server, &["nodes"]);
    assert!(row(&table, "7")[8].ends_with("s ago"), "{table}");
    let node = json(&server, &["nodes"])[6].clone();
    assert_eq!(node["monitored"], true);
    assert_eq!(node["version"], "25.1.0");
    assert!(node["last_heartbeat"].is_string(), "{node}");

    // With --every it is a node agent: it says once that its heartbeats are accepted, then
    // keeps sending until stopped.
    let mut agent = at(
        &server,
        &["-o", "json", "node", "heartbeat", "8", "--every", "100ms"],
    );
    let mut agent = agent
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the heartbeat agent");
    let stdout = agent.stdout.take().expect("piped stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let first = lines.recv_timeout(TIMEOUT);
    kill(agent.id());
    let _ = agent.wait();
    let first: Value =
        serde_json::from_str(&first.expect("the agent's first line")).expect("a JSON line");
    assert_eq!(
        (first["node_id"].clone(), first["agent"].clone()),
        (8.into(), "beating".into())
    );
    assert_eq!(json(&server, &["nodes"])[7]["monitored"], true);
}

#[test]
fn task_watch_follows_the_task_until_it_is_dropped() {
    let server = ServerProcess::start(example_inventory());
    ok(&server, &["task", "create", "w-1", "--nodes", "4"]);
    let mut watch = at(&server, &["--output", "json", "task", "watch", "w-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn arbiter task watch");
    let stdout = watch.stdout.take().expect("piped stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| -> Value {
        let line = lines.recv_timeout(TIMEOUT).unwrap_or_else(|_| {
            kill(watch.id());
            panic!("no {what} line from the watch within {TIMEOUT:?}")
        });
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{what}: {e}: {line}"))
    };
    // The current state comes first, as soon as the watch is open.
    let first = next("first");
    assert_eq!(first["task_uid"], "w-1");
    assert_eq!(actions(&first)[0]["status"], "PERFORMED");

    ok(&server, &["task", "drop", "w-1"]);
    let last = next("gone");
    assert_eq!(last["gone"], true, "{last}");
    assert!(
        last["message"].as_str().is_some_and(|m| m.contains("w-1")),
        "{last}"
    );
    let out = wait_bounded(watch);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Watching a task that does not exist is an error.
    fails(&server, &["task", "watch", "nope"], "Task not found");
}

#[test]
fn refusals_exit_1_with_the_servers_words_and_usage_errors_exit_2() {
    let server = ServerProcess::start(example_inventory());
    let line = fails(
        &server,
        &["task", "create", "t", "--nodes", "99"],
        "Unknown node 99",
    );
    assert_eq!(line, "error: BAD_REQUEST: Unknown node 99");
    fails(
        &server,
        &["task", "show", "nope"],
        "BAD_REQUEST: Task not found",
    );
    fails(
        &server,
        &["node", "down", "99", "--reason", "x"],
        "Unknown node 99",
    );
    fails(
        &server,
        &["task", "complete", "nope", "--all-performed"],
        "Task not found",
    );
    ok(&server, &["task", "create", "t", "--nodes", "1"]);
    fails(
        &server,
        &["task", "complete", "t", "--actions", "a-9"],
        "task t has no action a-9",
    );
    fails(
        &server,
        &["task", "complete", "t", "--nodes", "2"],
        "task t has no action on node 2",
    );
    // Nothing was completed by the refused commands.
    assert_eq!(json(&server, &["task", "show", "t"])["performed"], 1);

    for args in [
        &["--bogus", "nodes"][..],
        &["nodes", "--output", "yaml"],
        &["task", "create", "t"],
        &["task", "create", "t", "--pdisk", "x"],
        &["task", "create", "t", "--duration", "soon", "--nodes", "1"],
        &["node", "heartbeat", "1", "--every", "0s"],
        &["task", "complete", "t"],
        &["node", "down", "1"],
        &["tasks", "--owner", "a", "--mine"],
    ] {
        let r = run(at(&server, args));
        assert_eq!(r.code, Some(2), "arbiter {args:?}: {r:#?}");
        assert!(r.stdout.is_empty(), "arbiter {args:?}: {r:#?}");
    }

    // Nobody listening.
    let r = run({
        let mut c = cli();
        c.args(["--endpoint", "127.0.0.1:1", "nodes"]);
        c
    });
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert!(
        r.stderr.starts_with("error: cannot connect to 127.0.0.1:1"),
        "{r:#?}"
    );
}

/// `--duration 0s` means what it means to the server: the inventory's default lock duration
/// (10 minutes in the example inventory), exactly as no `--duration` does.
#[test]
fn a_zero_duration_gets_the_inventorys_default_lock_duration() {
    use arbiter_e2e::proto::ydb::maintenance::GetMaintenanceTaskResult;
    let server = ServerProcess::start(example_inventory());
    let zero = json(
        &server,
        &[
            "task",
            "create",
            "zero",
            "--nodes",
            "1",
            "--duration",
            "0s",
            "--mode",
            "force",
        ],
    );
    let none = json(
        &server,
        &["task", "create", "none", "--nodes", "2", "--mode", "force"],
    );
    for task in [&zero, &none] {
        let a = actions(task)[0];
        assert_eq!(a["status"], "PERFORMED", "{task}");
        assert_eq!(
            a["duration_seconds"],
            Value::Null,
            "no duration is sent: {task}"
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let now = i64::try_from(now).expect("a sane clock");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let deadlines = runtime.block_on(async {
        let c = server.client(None).await;
        let mut out = Vec::new();
        for uid in ["zero", "none"] {
            let got: GetMaintenanceTaskResult = arbiter_e2e::success(&c.get(uid).await);
            let s = &got.action_group_states[0].action_states[0];
            out.push(
                s.deadline
                    .as_ref()
                    .expect("a granted lock has a deadline")
                    .seconds,
            );
        }
        out
    });
    for d in &deadlines {
        let left = d - now;
        assert!(
            (590..=601).contains(&left),
            "the default 10m lock: {left}s left ({deadlines:?})"
        );
    }
}

const USERS: &str = r#"
[[users]]
name = "alice"
token = "alice-token-000000000001"
password = "alice-password"
role = "operator"

[[users]]
name = "vic"
token = "vic-token-00000000000003"
role = "viewer"
"#;

#[test]
fn tokens_and_logins_decide_what_the_cli_may_do() {
    let files = Files::new();
    let auth = files.write("auth.toml", USERS);
    let server =
        ServerProcess::start_with(example_inventory(), &["--auth".as_ref(), auth.as_os_str()]);

    fails(&server, &["nodes"], "UNAUTHENTICATED");
    // `tasks` reads arbiter.v1 ListTasks (for the owners): a gRPC status, as `nodes`.
    fails(&server, &["tasks"], "UNAUTHENTICATED");

    let vic = ["--token", "vic-token-00000000000003"];
    assert_eq!(
        json(&server, &[&vic[..], &["whoami"]].concat())["user"],
        "vic"
    );
    assert_eq!(
        ok(&server, &[&vic[..], &["nodes"]].concat())
            .lines()
            .count(),
        13,
        "a viewer may read"
    );
    fails(
        &server,
        &[&vic[..], &["task", "create", "t", "--nodes", "1"]].concat(),
        "UNAUTHORIZED",
    );
    fails(
        &server,
        &[&vic[..], &["node", "down", "1", "--reason", "x"]].concat(),
        "PERMISSION_DENIED",
    );

    // The token from the environment, as scripts pass it.
    let r = run({
        let mut c = at(&server, &["task", "create", "t", "--nodes", "1"]);
        c.env("ARBITER_TOKEN", "alice-token-000000000001");
        c
    });
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert!(r.stdout.contains("PERFORMED"), "{r:#?}");

    // A password login; the session token then names alice.
    let password = files.write("password", "alice-password\n");
    let login = [
        "--user",
        "alice",
        "--password-file",
        password.to_str().expect("a UTF-8 path"),
    ];
    let me = json(&server, &[&login[..], &["whoami"]].concat());
    assert_eq!(me["user"], "alice");
    let mine = json(&server, &[&login[..], &["tasks", "--mine"]].concat());
    assert_eq!(mine[0]["task_uid"], "t");
    assert_eq!(mine[0]["owner"], "alice");
    let r = run({
        let mut c = at(&server, &["--user", "alice", "whoami"]);
        c.env("ARBITER_PASSWORD", "wrong");
        c
    });
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert!(
        r.stderr.starts_with("error: login as alice failed"),
        "{r:#?}"
    );
}
