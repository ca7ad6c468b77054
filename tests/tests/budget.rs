//! Rate budgets, an admin's override of holds, and wake-ups at freed budget slots, through the
//! real binaries: `arbiter-server` on an inventory with `max_grants`, tasks over YDB's API and
//! the `arbiter` CLI.
//!
//! - A used-up cluster budget holds back a grant in every mode (force too): PENDING, YDB reason
//!   GENERIC, the budget named in the details with the nodes that used it and the time the next
//!   slot frees (which is retry_after), and Arbiter's `hold` field RATE_BUDGET; completing a
//!   lock frees capacity, not budget. `arbiter task show` shows RATE_BUDGET in REASON and
//!   `"hold": "RATE_BUDGET"` in its JSON. The counts survive a restart.
//! - `--override-holds` is refused to an operator (nothing created); an admin's task passes a
//!   cluster freeze and a used-up budget (node limits still apply), the audit trail's created
//!   entry says OVERRIDES, and the server logs a warning.
//! - A watched task held back by a budget of 1 node per 3s is granted when the slot frees, with
//!   no Refresh from anyone: the watch delivers PERFORMED.

use arbiter_e2e::proto::arbiter::v1::arbiter_service_client::ArbiterServiceClient;
use arbiter_e2e::proto::arbiter::v1::{WatchMaintenanceTaskRequest, WatchMaintenanceTaskResponse};
use arbiter_e2e::proto::ydb::maintenance::action_state::ActionReason;
use arbiter_e2e::proto::ydb::maintenance::{
    ActionState, AvailabilityMode, GetMaintenanceTaskResult, MaintenanceTaskResult,
    ManageActionResult,
};
use arbiter_e2e::proto::ydb::status_ids::StatusCode;
use arbiter_e2e::{
    Files, ServerProcess, civil, cli, cli_failed as failed, cli_ok as ok, is_pending, is_performed,
    lock, node_locks, node_of, refusal, states, success, task, uid_of, unix_now_secs,
};
use serde_json::Value;
use std::process::Output;
use std::time::{Duration, Instant};

const USERS: &str = r#"
[[users]]
name = "root"
token = "root-token-0000000000001"
role = "admin"

[[users]]
name = "alice"
token = "alice-token-000000000001"
role = "operator"
"#;

const ROOT: &str = "root-token-0000000000001";
const ALICE: &str = "alice-token-000000000001";

/// Five nodes, 1h locks, room for every node at once, and the given `[limits]` line.
fn five_nodes(limits: &str) -> String {
    let mut text = format!(
        "[defaults]\nlock_duration = \"1h\"\nretry_after = \"1m\"\n\n[limits]\nmax_unavailable_ratio = 0\n{limits}\n"
    );
    for id in 1..=5 {
        text.push_str(&format!(
            "\n[[nodes]]\nid = {id}\nhost = \"node-{id}\"\nport = 1\n"
        ));
    }
    text
}

fn arbiter(server: &ServerProcess, token: &str, args: &[&str]) -> Output {
    cli(server, Some(token), args)
}

fn json(server: &ServerProcess, token: &str, args: &[&str]) -> Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = ok(&arbiter(server, token, &all));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Unix seconds as RFC 3339 in UTC, to the second (`2026-01-01T00:10:00Z`).
fn rfc3339(secs: i64) -> String {
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

fn now_secs() -> i64 {
    unix_now_secs()
}

fn generic(s: &ActionState) -> bool {
    s.reason == ActionReason::Generic as i32
}

/// Asserts a pending action held back by a rate budget; returns its details.
fn budget_held(s: &ActionState) -> &str {
    assert!(is_pending(s), "{s:?}");
    assert!(generic(s), "YDB sees GENERIC: {s:?}");
    assert_eq!(s.hold, "RATE_BUDGET", "{s:?}");
    &s.details
}

/// The only action of a task's JSON (`arbiter -o json task show`).
fn only_action(v: &Value) -> &Value {
    let groups = v["action_groups"].as_array().expect("action_groups");
    assert_eq!(groups.len(), 1, "{v}");
    let actions = groups[0]["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 1, "{v}");
    &actions[0]
}

/// The action rows of `arbiter task show` (the lines after the REASON header).
fn action_rows(table: &str) -> Vec<&str> {
    let mut lines = table.lines();
    let header = lines.by_ref().find(|l| l.contains("REASON"));
    assert!(header.is_some(), "no action table: {table}");
    lines.filter(|l| !l.trim().is_empty()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_used_up_rate_budget_holds_back_grants_in_every_mode_across_a_restart() {
    let files = Files::new();
    let inventory = files.write(
        "budget.toml",
        &five_nodes("max_unavailable_nodes = 5\nmax_grants = { count = 2, every = \"10m\" }"),
    );
    let auth = files.write("users.toml", USERS);
    let mut server =
        ServerProcess::start_with(&inventory, &["--auth", auth.to_str().expect("utf-8")]);
    let c = server.client(Some(ALICE)).await;

    // Two grants use the budget up; the first one's time decides when a slot frees.
    let before = now_secs();
    let t1: MaintenanceTaskResult = success(&c.create(node_locks("b-1", &[1])).await);
    let after = now_secs();
    let first = states(&t1.action_group_states)[0].clone();
    assert!(is_performed(&first), "{t1:?}");
    assert_eq!(first.hold, "", "a grant has no hold: {first:?}");
    let t2: MaintenanceTaskResult = success(&c.create(node_locks("b-2", &[2])).await);
    assert!(is_performed(states(&t2.action_group_states)[0]), "{t2:?}");

    // The third waits: GENERIC for YDB, RATE_BUDGET in Arbiter's field, retry_after the slot.
    let t3: MaintenanceTaskResult = success(&c.create(node_locks("b-3", &[3])).await);
    let retry = t3.retry_after.expect("retry_after").seconds;
    assert!(
        (before + 600..=after + 601).contains(&retry),
        "retry_after {retry} is not 10m after the first grant ({before}..{after})"
    );
    let want = format!(
        "rate budget of the cluster used up: at most 2 nodes newly granted per 10m; \
         2 granted in the last 10m (nodes 1, 2); the next slot frees at {}",
        rfc3339(retry)
    );
    assert_eq!(budget_held(states(&t3.action_group_states)[0]), want);

    // Releasing a lock frees capacity, not budget.
    let r: ManageActionResult = success(&c.complete(vec![uid_of(&first)]).await);
    assert_eq!(r.action_statuses.len(), 1, "{r:?}");
    let t3: MaintenanceTaskResult = success(&c.refresh("b-3").await);
    assert_eq!(budget_held(states(&t3.action_group_states)[0]), want);
    assert_eq!(t3.retry_after.expect("retry_after").seconds, retry);

    // Force mode is paced too.
    let t4: MaintenanceTaskResult = success(
        &c.create(task(
            "b-4",
            AvailabilityMode::Force,
            vec![vec![lock(4, None)]],
        ))
        .await,
    );
    assert_eq!(budget_held(states(&t4.action_group_states)[0]), want);

    // The CLI: RATE_BUDGET instead of GENERIC in REASON; "hold" in the JSON.
    let table = ok(&arbiter(&server, ALICE, &["task", "show", "b-3"]));
    let rows = action_rows(&table);
    assert_eq!(rows.len(), 1, "{table}");
    assert!(rows[0].contains("RATE_BUDGET"), "{table}");
    assert!(!rows[0].contains("GENERIC"), "{table}");
    assert!(
        rows[0].contains("rate budget of the cluster used up"),
        "{table}"
    );
    let table = ok(&arbiter(&server, ALICE, &["task", "show", "b-2"]));
    assert!(
        !table.contains("RATE_BUDGET"),
        "a grant shows no hold: {table}"
    );
    let v = json(&server, ALICE, &["task", "show", "b-3"]);
    let a = only_action(&v);
    assert_eq!(a["hold"], "RATE_BUDGET", "{v}");
    assert_eq!(a["reason"], "GENERIC", "{v}");
    assert_eq!(a["status"], "PENDING", "{v}");
    assert_eq!(a["details"], want.as_str(), "{v}");
    let v = json(&server, ALICE, &["task", "show", "b-2"]);
    assert_eq!(only_action(&v)["hold"], Value::Null, "{v}");

    // The counts are durable: after a restart the budget is still used up.
    server.terminate();
    server.restart();
    let c = server.client(Some(ALICE)).await;
    let t3: MaintenanceTaskResult = success(&c.refresh("b-3").await);
    assert_eq!(budget_held(states(&t3.action_group_states)[0]), want);
    assert_eq!(t3.retry_after.expect("retry_after").seconds, retry);
    let t4: MaintenanceTaskResult = success(&c.refresh("b-4").await);
    assert_eq!(budget_held(states(&t4.action_group_states)[0]), want);
    let t5: MaintenanceTaskResult = success(&c.create(node_locks("b-5", &[5])).await);
    assert_eq!(budget_held(states(&t5.action_group_states)[0]), want);
    let v = json(&server, ALICE, &["task", "show", "b-5"]);
    assert_eq!(only_action(&v)["hold"], "RATE_BUDGET", "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admins_override_passes_a_freeze_and_a_used_up_budget_and_is_audited() {
    let files = Files::new();
    let inventory = files.write(
        "budget.toml",
        &five_nodes("max_unavailable_nodes = 2\nmax_grants = { count = 1, every = \"1h\" }"),
    );
    let auth = files.write("users.toml", USERS);
    let server = ServerProcess::start_with(&inventory, &["--auth", auth.to_str().expect("utf-8")]);
    let c = server.client(Some(ALICE)).await;

    // Node 1 uses the budget up; then alice freezes the cluster.
    let t1: MaintenanceTaskResult = success(&c.create(node_locks("o-1", &[1])).await);
    assert!(is_performed(states(&t1.action_group_states)[0]), "{t1:?}");
    ok(&arbiter(
        &server,
        ALICE,
        &["freeze", "on", "--cluster", "--reason", "incident 4711"],
    ));

    // Without the override a task waits, the freeze its hold.
    let t2: MaintenanceTaskResult = success(&c.create(node_locks("o-2", &[2])).await);
    let s = states(&t2.action_group_states)[0];
    assert!(is_pending(s) && generic(s), "{t2:?}");
    assert_eq!(s.hold, "FROZEN", "{s:?}");
    assert!(s.details.contains("frozen by alice"), "{s:?}");
    let table = ok(&arbiter(&server, ALICE, &["task", "show", "o-2"]));
    let rows = action_rows(&table);
    assert!(
        rows.len() == 1 && rows[0].contains("FROZEN") && !rows[0].contains("GENERIC"),
        "{table}"
    );

    // An operator may not override: refused, nothing created (CLI and wire alike).
    let denied = "Access denied: 'alice' is an operator and may not override freezes, windows and rate budgets";
    let err = failed(&arbiter(
        &server,
        ALICE,
        &[
            "task",
            "create",
            "o-alice",
            "--nodes",
            "3",
            "--override-holds",
        ],
    ));
    assert!(err.contains(denied), "{err}");
    let mut req = node_locks("o-alice-wire", &[3]);
    req.task_options.as_mut().expect("options").override_holds = true;
    let msg = refusal(&c.create(req).await, StatusCode::Unauthorized);
    assert!(msg.contains(denied), "{msg}");
    let root = c.with_ticket(Some(ROOT));
    for uid in ["o-alice", "o-alice-wire"] {
        let msg = refusal(&root.get(uid).await, StatusCode::BadRequest);
        assert!(msg.contains("not found"), "{uid}: {msg}");
    }

    // An admin's task passes the freeze and the budget; the node limit (2) still applies.
    let out = ok(&arbiter(
        &server,
        ROOT,
        &[
            "task",
            "create",
            "o-root",
            "--nodes",
            "3,4",
            "--override-holds",
        ],
    ));
    assert!(out.contains("o-root"), "{out}");
    let got: GetMaintenanceTaskResult = success(&root.get("o-root").await);
    let s = states(&got.action_group_states);
    assert_eq!(s.len(), 2, "{got:?}");
    assert!(is_performed(s[0]) && node_of(s[0]) == 3, "{got:?}");
    assert_eq!(s[0].hold, "", "{got:?}");
    assert!(is_pending(s[1]) && node_of(s[1]) == 4, "{got:?}");
    assert_eq!(
        s[1].reason,
        ActionReason::DisabledNodesLimitReached as i32,
        "{got:?}"
    );
    assert_eq!(s[1].hold, "", "node limits are no hold: {got:?}");

    // The override is the task's own: alice's task still waits for the freeze.
    let t2: MaintenanceTaskResult = success(&c.refresh("o-2").await);
    assert_eq!(states(&t2.action_group_states)[0].hold, "FROZEN", "{t2:?}");

    // Audited: the created entry says OVERRIDES, by root; alice's task's does not.
    let created = |uid: &str| -> Vec<Value> {
        let v = json(&server, ROOT, &["audit", "--task", uid]);
        v.as_array()
            .expect("an array of entries")
            .iter()
            .filter(|e| e["kind"] == "task_created")
            .cloned()
            .collect()
    };
    let entries = created("o-root");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["user"], "root", "{entries:?}");
    let detail = entries[0]["detail"].as_str().expect("detail");
    assert!(
        detail.contains("OVERRIDES freezes, windows and rate budgets"),
        "{detail}"
    );
    let entries = created("o-2");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(
        !entries[0]["detail"]
            .as_str()
            .expect("detail")
            .contains("OVERRIDES"),
        "{entries:?}"
    );
    assert!(created("o-alice").is_empty(), "a refused create is no task");

    // And logged: one warning, for root's task.
    let log = server.stderr();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("task overrides freezes, maintenance windows and rate budgets"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("WARN")
            && warnings[0].contains("o-root")
            && warnings[0].contains("root"),
        "{log}"
    );
}

/// The longest the freed slot's grant may take to reach the watch.
const WATCH_BOUND: Duration = Duration::from_secs(20);

async fn next(
    stream: &mut tonic::Streaming<WatchMaintenanceTaskResponse>,
) -> MaintenanceTaskResult {
    let update = tokio::time::timeout(WATCH_BOUND, stream.message())
        .await
        .expect("an update in time")
        .expect("the stream is fine")
        .expect("the stream is open");
    assert_eq!(update.status, StatusCode::Success as i32, "{update:?}");
    update.result.expect("a state")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watched_task_is_granted_when_its_budget_slot_frees_without_any_refresh() {
    let files = Files::new();
    let inventory = files.write(
        "budget.toml",
        &five_nodes("max_unavailable_nodes = 5\nmax_grants = { count = 1, every = \"3s\" }"),
    );
    let server = ServerProcess::start(&inventory);
    let c = server.client(Some("alice")).await;

    let start = Instant::now();
    let t1: MaintenanceTaskResult = success(&c.create(node_locks("w-1", &[1])).await);
    assert!(is_performed(states(&t1.action_group_states)[0]), "{t1:?}");
    let t2: MaintenanceTaskResult = success(&c.create(node_locks("w-2", &[2])).await);
    let details = budget_held(states(&t2.action_group_states)[0]);
    assert!(
        details.contains("at most 1 node newly granted per 3s; 1 granted in the last 3s (node 1)"),
        "{details}"
    );

    let mut stream = ArbiterServiceClient::new(c.channel())
        .watch_maintenance_task(c.request(WatchMaintenanceTaskRequest {
            task_uid: "w-2".into(),
        }))
        .await
        .expect("WatchMaintenanceTask")
        .into_inner();
    // The watch opened while the slot was still used: its first state is the hold.
    let now = next(&mut stream).await;
    budget_held(states(&now.action_group_states)[0]);
    assert!(
        start.elapsed() < Duration::from_millis(2900),
        "too slow to see the wake-up: {:?}",
        start.elapsed()
    );

    // Nobody refreshes: the server re-checks the watched task when the slot frees.
    let granted = loop {
        let update = next(&mut stream).await;
        let s = states(&update.action_group_states)[0].clone();
        if is_performed(&s) {
            break s;
        }
        budget_held(&s);
    };
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(2900),
        "granted before the slot freed: {took:?}"
    );
    // A wake-up at the slot, not some slow sweep (it arrives within milliseconds).
    assert!(took < Duration::from_secs(10), "granted late: {took:?}");
    assert_eq!(node_of(&granted), 2);
    assert_eq!(granted.hold, "", "{granted:?}");
    eprintln!("w-2 granted {took:?} after w-1 was created (slot: 3s)");
    // The grant is the server's state (Get re-checks nothing).
    let got: GetMaintenanceTaskResult = success(&c.get("w-2").await);
    assert!(is_performed(states(&got.action_group_states)[0]), "{got:?}");
}
