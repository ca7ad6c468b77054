//! The audit trail, through the real binary and the `arbiter audit` CLI: every change (task
//! created, lock granted, action completed, task dropped, lock expired, node state set,
//! heartbeat timeout, inventory reloaded) and every refusal of a mutating call or failed Login
//! leaves one durable entry with who (user, role, peer), when and why; filters and paging work;
//! `--follow` sees new entries; entries survive kill -9; retention drops the oldest; a flood
//! of refusals is bounded.

use arbiter_e2e::proto::arbiter::v1::arbiter_service_client::ArbiterServiceClient;
use arbiter_e2e::proto::arbiter::v1::{AuditEntry, ListAuditRequest};
use arbiter_e2e::{FIVE_NODES, Files, ServerProcess, cli_binary, node_locks};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ROOT: &str = "root-token-0000000000004";
const OLGA: &str = "olga-token-0000000000001";
const VIC: &str = "vic-token-00000000000003";

const USERS: &str = r#"
[[users]]
name = "root"
token = "root-token-0000000000004"
password = "root-password"
role = "admin"

[[users]]
name = "olga"
token = "olga-token-0000000000001"
role = "operator"

[[users]]
name = "vic"
token = "vic-token-00000000000003"
role = "viewer"
"#;

/// Within this, anything the test waits for happens.
const BOUND: Duration = Duration::from_secs(20);

/// The CLI aimed at `server` as `token`, with `args`, no `ARBITER_*` variable inherited.
fn cli(server: &ServerProcess, token: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(cli_binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ARBITER_") {
            cmd.env_remove(key);
        }
    }
    cmd.arg("--endpoint")
        .arg(server.addr().to_string())
        .arg("--token")
        .arg(token)
        .args(args)
        .stdin(Stdio::null());
    cmd
}

/// Runs the CLI to its exit (bounded).
fn run(mut cmd: Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn arbiter");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(BOUND)
        .expect("arbiter exits in time")
        .expect("wait for arbiter")
}

/// Runs the CLI and requires success.
fn ok(server: &ServerProcess, token: &str, args: &[&str]) -> String {
    let out = run(cli(server, token, args));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "arbiter {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `arbiter audit -o json ARGS` as the admin: every entry, oldest first.
fn audit(server: &ServerProcess, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit", "-o", "json"];
    all.extend_from_slice(args);
    let text = ok(server, ROOT, &all);
    match serde_json::from_str(&text) {
        Ok(Value::Array(entries)) => entries,
        other => panic!("not a JSON array: {other:?}\n{text}"),
    }
}

fn kinds(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect()
}

fn find<'a>(entries: &'a [Value], kind: &str, task: &str) -> &'a Value {
    entries
        .iter()
        .find(|e| e["kind"] == kind && e["task_uid"] == task)
        .unwrap_or_else(|| panic!("no {kind} entry for task '{task}' in {entries:#?}"))
}

/// Waits (bounded) until `audit ARGS` answers with an entry of `kind`.
fn wait_for(server: &ServerProcess, kind: &str, args: &[&str]) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let entries = audit(server, args);
        if kinds(&entries).contains(&kind) {
            return entries;
        }
        assert!(
            start.elapsed() < BOUND,
            "no {kind} entry within {BOUND:?}: {entries:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start(extra: &[&str]) -> (Files, ServerProcess) {
    let files = Files::new();
    let inventory = files.write("inventory.toml", FIVE_NODES);
    let auth = files.write("auth.toml", USERS);
    let mut args = vec!["--auth", auth.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    let server = ServerProcess::start_with(&inventory, &args);
    (files, server)
}

async fn list_audit(server: &ServerProcess, req: ListAuditRequest) -> (Vec<AuditEntry>, u64) {
    let client = server.client(Some(ROOT)).await;
    let r = ArbiterServiceClient::new(client.channel())
        .list_audit(client.request(req))
        .await
        .expect("ListAudit")
        .into_inner();
    (r.entries, r.next_after_seq)
}

#[test]
fn every_change_and_refusal_is_audited_with_who_when_and_why() {
    let (_files, mut server) = start(&["--heartbeat-timeout", "2s"]);
    let before = std::time::SystemTime::now();
    ok(
        &server,
        OLGA,
        &[
            "task",
            "create",
            "t1",
            "--nodes",
            "1",
            "--duration",
            "2s",
            "--description",
            "kernel upgrade",
        ],
    );
    ok(
        &server,
        OLGA,
        &["task", "create", "t2", "--nodes", "2", "--mode", "force"],
    );
    ok(
        &server,
        OLGA,
        &["task", "complete", "t2", "--all-performed"],
    );
    ok(&server, OLGA, &["task", "create", "t3", "--nodes", "3"]);
    ok(&server, OLGA, &["task", "drop", "t3"]);
    ok(
        &server,
        ROOT,
        &["node", "down", "5", "--reason", "disk failure"],
    );
    ok(&server, OLGA, &["node", "heartbeat", "4"]);
    ok(&server, ROOT, &["inventory", "reload"]);
    let refused = run(cli(&server, VIC, &["task", "create", "t4", "--nodes", "4"]));
    assert!(!refused.status.success(), "a viewer may not create tasks");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        server
            .client(None)
            .await
            .login("root", "not-the-password")
            .await;
    });

    // Time acts too: t1's 2s lock lapses and node 4's heartbeats stop.
    wait_for(&server, "lock_expired", &[]);
    let all = wait_for(&server, "heartbeat_timeout", &[]);

    let created = find(&all, "task_created", "t1");
    assert_eq!(created["user"], "olga");
    assert_eq!(created["role"], "operator");
    assert!(
        created["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{created}"
    );
    let detail = created["detail"].as_str().expect("detail");
    for part in [
        "node 1 for 2s",
        "mode strong",
        "priority 0",
        "description: kernel upgrade",
    ] {
        assert!(detail.contains(part), "{part} in {detail}");
    }
    assert!(
        created["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{created}"
    );
    assert_eq!(created["node_ids"], serde_json::json!([1]));

    let granted = find(&all, "lock_granted", "t1");
    assert!(granted["fencing_token"].as_u64().is_some_and(|t| t > 0));
    assert_eq!(granted["force"], false);
    assert!(granted["detail"].as_str().expect("d").contains("until"));
    let forced = find(&all, "lock_granted", "t2");
    assert_eq!(forced["force"], true, "{forced}");
    let completed = find(&all, "action_completed", "t2");
    assert_eq!(completed["user"], "olga");
    assert!(completed["detail"].as_str().expect("d").contains("node 2"));
    let dropped = find(&all, "task_dropped", "t3");
    assert_eq!(dropped["node_ids"], serde_json::json!([3]));
    let expired = find(&all, "lock_expired", "t1");
    assert_eq!(expired["user"], "arbiter");
    let node = all
        .iter()
        .find(|e| e["kind"] == "node_state_set")
        .expect("node_state_set");
    assert_eq!(node["user"], "root");
    assert_eq!(node["role"], "admin");
    assert!(node["detail"].as_str().expect("d").contains("disk failure"));
    let timeout = all
        .iter()
        .find(|e| e["kind"] == "heartbeat_timeout")
        .expect("timeout");
    assert_eq!(timeout["node_ids"], serde_json::json!([4]));
    let reload = all
        .iter()
        .find(|e| e["kind"] == "inventory_reloaded")
        .expect("reload");
    assert_eq!(reload["user"], "root");
    assert!(reload["detail"].as_str().expect("d").contains("5 nodes"));
    let refusal = find(&all, "refused", "t4");
    assert_eq!(refusal["user"], "vic");
    assert_eq!(refusal["role"], "viewer");
    assert!(
        refusal["detail"]
            .as_str()
            .expect("d")
            .contains("CreateMaintenanceTask"),
        "{refusal}"
    );
    let login = all
        .iter()
        .find(|e| e["kind"] == "login_failed")
        .expect("login_failed");
    assert_eq!(login["user"], "root");
    assert!(
        login["detail"]
            .as_str()
            .expect("d")
            .contains("wrong password")
    );
    let seqs: Vec<u64> = all
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    // Filters.
    let t1 = audit(&server, &["--task", "t1"]);
    assert_eq!(
        kinds(&t1),
        vec!["task_created", "lock_granted", "lock_expired"]
    );
    let n5 = audit(&server, &["--node", "5"]);
    assert_eq!(kinds(&n5), vec!["node_state_set"]);
    let olga = audit(&server, &["--by", "olga"]);
    assert!(olga.iter().all(|e| e["user"] == "olga") && !olga.is_empty());
    let grants = audit(&server, &["--kind", "lock_granted"]);
    assert_eq!(grants.len(), 3, "{grants:#?}");
    assert_eq!(audit(&server, &["--since", "1h"]).len(), all.len());
    assert!(audit(&server, &["--since", "2999-01-01T00:00:00Z"]).is_empty());
    let bad = run(cli(&server, ROOT, &["audit", "--kind", "nonsense"]));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("lock_granted"));
    let table = ok(&server, ROOT, &["audit", "--task", "t1"]);
    assert!(
        table.contains("SEQ") && table.contains("task_created"),
        "{table}"
    );

    // Paging: pages of 2 give every entry once, in order.
    let paged = rt.block_on(async {
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let (entries, next) = list_audit(
                &server,
                ListAuditRequest {
                    after_seq: after,
                    limit: 2,
                    ..ListAuditRequest::default()
                },
            )
            .await;
            assert!(entries.len() <= 2);
            seen.extend(entries.iter().map(|e| e.seq));
            if next == 0 {
                break seen;
            }
            after = next;
        }
    });
    assert_eq!(paged, seqs);
    // Every entry's time is when it happened: after the test started, not in the future.
    let (entries, _) = rt.block_on(list_audit(&server, ListAuditRequest::default()));
    let secs = |t: std::time::SystemTime| {
        i64::try_from(
            t.duration_since(std::time::UNIX_EPOCH)
                .expect("after the epoch")
                .as_secs(),
        )
        .expect("small")
    };
    let (low, high) = (secs(before) - 1, secs(std::time::SystemTime::now()) + 1);
    for e in &entries {
        let t = e.time.as_ref().expect("time").seconds;
        assert!(
            (low..=high).contains(&t),
            "{e:?} at {t}, not in {low}..={high}"
        );
    }

    // --follow sees a new entry.
    let mut follow = cli(
        &server,
        ROOT,
        &[
            "audit",
            "--follow",
            "--poll",
            "200ms",
            "-o",
            "json",
            "--kind",
            "task_created",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn audit --follow");
    let stdout = follow.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The existing task_created entries (t1, t2, t3) come first.
    for _ in 0..3 {
        rx.recv_timeout(BOUND).expect("an existing entry");
    }
    ok(&server, OLGA, &["task", "create", "t5", "--nodes", "4"]);
    let line = rx.recv_timeout(BOUND).expect("the new entry, followed");
    let v: Value = serde_json::from_str(&line).expect("one JSON object per line");
    assert_eq!(v["task_uid"], "t5", "{line}");
    let pid =
        rustix::process::Pid::from_raw(i32::try_from(follow.id()).expect("pid")).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
    let status = follow.wait().expect("wait");
    assert!(status.success(), "Ctrl-C ends --follow cleanly: {status:?}");

    // kill -9 and restart: every entry is still there, and numbering goes on.
    let before_kill = audit(&server, &[]);
    server.kill9();
    server.restart();
    let after = audit(&server, &[]);
    assert_eq!(after, before_kill, "entries survive kill -9");
    ok(&server, OLGA, &["task", "drop", "t5"]);
    let last = audit(&server, &[]).last().cloned().expect("an entry");
    assert_eq!(last["kind"], "task_dropped");
    assert!(last["seq"].as_u64() > before_kill.last().and_then(|e| e["seq"].as_u64()));
}

#[test]
fn retention_drops_the_oldest_entries_first() {
    let (_files, server) = start(&["--audit-max-entries", "5"]);
    // Each task: task_created and lock_granted (nodes 1 and 2 only: the limit is 2).
    for (i, node) in [(1, "1"), (2, "2")] {
        ok(
            &server,
            OLGA,
            &["task", "create", &format!("t{i}"), "--nodes", node],
        );
        ok(&server, OLGA, &["task", "drop", &format!("t{i}")]);
    }
    ok(&server, OLGA, &["task", "create", "t3", "--nodes", "3"]);
    // 8 entries written, 5 kept: the newest.
    let entries = audit(&server, &[]);
    let seqs: Vec<u64> = entries
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, vec![4, 5, 6, 7, 8], "{entries:#?}");
    assert_eq!(
        kinds(&entries),
        vec![
            "task_created",
            "lock_granted",
            "task_dropped",
            "task_created",
            "lock_granted"
        ]
    );
}

#[test]
fn a_flood_of_refusals_is_bounded() {
    let (_files, server) = start(&["--audit-max-refusals", "3", "--audit-refusal-window", "2s"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let vic = server.client(Some(VIC)).await;
        for i in 0..30 {
            vic.create(node_locks(&format!("x{i}"), &[1])).await;
        }
    });
    let entries = wait_for(&server, "refusals_suppressed", &[]);
    assert_eq!(
        kinds(&entries),
        vec!["refused", "refused", "refused", "refusals_suppressed"],
        "{entries:#?}"
    );
    let summary = &entries[3];
    assert!(
        summary["detail"]
            .as_str()
            .expect("d")
            .starts_with("27 more refusals suppressed"),
        "{summary}"
    );
}
