//! Fencing you can verify, and owners you can see, end to end through the real server and the
//! real `arbiter` CLI: `fence check` in every state (and its exit codes), the token of a
//! performed action the same in `task show -o json`, on YDB's wire (ActionState field 10001) and
//! in arbiter.v1's watch stream; the OWNER of every task in `arbiter tasks`; the caller's role in
//! `arbiter whoami`.

use arbiter_e2e::proto::arbiter::v1::arbiter_service_client::ArbiterServiceClient;
use arbiter_e2e::proto::arbiter::v1::{
    FenceState, ValidateFenceRequest, WatchMaintenanceTaskRequest,
};
use arbiter_e2e::proto::ydb::maintenance::GetMaintenanceTaskResult;
use arbiter_e2e::{Files, ServerProcess, cli_binary, example_inventory, success};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ALICE: &str = "alice-token-000000000001";
const BOB: &str = "bob-token-00000000000002";
const VIC: &str = "vic-token-00000000000003";
const ROOT: &str = "root-token-0000000000004";

const USERS: &str = r#"
[[users]]
name = "alice"
token = "alice-token-000000000001"
role = "operator"

[[users]]
name = "bob"
token = "bob-token-00000000000002"
role = "operator"

[[users]]
name = "vic"
token = "vic-token-00000000000003"
role = "viewer"

[[users]]
name = "root"
token = "root-token-0000000000004"
role = "admin"
"#;

/// What one CLI run printed, and how it exited.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the CLI against `server` with `args` (no `ARBITER_*` variable inherited).
fn arbiter(server: &ServerProcess, args: &[&str]) -> Run {
    let mut cmd = Command::new(cli_binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ARBITER_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .arg("--endpoint")
        .arg(server.addr().to_string())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run arbiter");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `args` with `--output json`, asserts exit 0 and parses the stdout.
fn json(server: &ServerProcess, args: &[&str]) -> Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let r = arbiter(server, &all);
    assert_eq!(r.code, Some(0), "arbiter {all:?}: {r:#?}");
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("arbiter {all:?}: {e}: {r:#?}"))
}

/// The fencing token of the first action of a task's JSON.
fn token_of(task: &Value) -> u64 {
    task["action_groups"][0]["actions"][0]["fencing_token"]
        .as_u64()
        .unwrap_or_else(|| panic!("no fencing_token in {task}"))
}

/// `fence check` on a node (or disk) for `token`: the exit code and the JSON answer's state.
fn check(server: &ServerProcess, node: u32, pdisk: Option<u32>, token: u64) -> (i32, String) {
    let (node, token) = (node.to_string(), token.to_string());
    let pdisk = pdisk.map(|p| p.to_string());
    let mut args = vec!["--output", "json", "fence", "check", "--node", &node];
    if let Some(p) = &pdisk {
        args.extend(["--pdisk", p]);
    }
    args.extend(["--fencing-token", &token]);
    let r = arbiter(server, &args);
    let answer: Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("arbiter {args:?}: {e}: {r:#?}"));
    let code = r.code.expect("exited");
    if code != 0 {
        assert!(r.stderr.starts_with("error: "), "{r:#?}");
    }
    (
        code,
        answer["state"].as_str().unwrap_or_default().to_owned(),
    )
}

fn live(code_state: (i32, String)) {
    assert_eq!(code_state, (0, "LIVE".to_owned()));
}

fn not_live(code_state: (i32, String), state: &str) {
    assert_eq!(code_state, (1, state.to_owned()));
}

#[test]
fn fence_check_exits_0_only_for_a_live_token_in_every_state() {
    let mut server = ServerProcess::start(example_inventory());
    let t1 = token_of(&json(
        &server,
        &["task", "create", "t1", "--nodes", "1", "--mode", "force"],
    ));
    live(check(&server, 1, None, t1));
    // A node lock takes the node's disks too.
    live(check(&server, 1, Some(1), t1));
    not_live(check(&server, 2, None, t1), "UNKNOWN");
    not_live(check(&server, 1, None, t1 + 100), "UNKNOWN");
    // The table view names the state and the task.
    let (n, t) = ("1".to_owned(), t1.to_string());
    let r = arbiter(
        &server,
        &["fence", "check", "--node", &n, "--fencing-token", &t],
    );
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert!(
        r.stdout.contains("LIVE") && r.stdout.contains("t1"),
        "{r:#?}"
    );

    json(&server, &["task", "complete", "t1", "--all-performed"]);
    not_live(check(&server, 1, None, t1), "RELEASED");

    let t2 = token_of(&json(
        &server,
        &["task", "create", "t2", "--nodes", "1", "--mode", "force"],
    ));
    assert!(t2 > t1);
    not_live(check(&server, 1, None, t1), "SUPERSEDED");
    live(check(&server, 1, None, t2));

    // A disk lock: live on its disk only; expired after its deadline.
    let d = token_of(&json(
        &server,
        &[
            "task",
            "create",
            "d",
            "--pdisk",
            "2:1",
            "--mode",
            "force",
            "--duration",
            "1s",
        ],
    ));
    live(check(&server, 2, Some(1), d));
    not_live(check(&server, 2, None, d), "UNKNOWN");
    not_live(check(&server, 2, Some(2), d), "UNKNOWN");
    let until = Instant::now() + Duration::from_secs(20);
    while check(&server, 2, Some(1), d).1 == "LIVE" {
        assert!(Instant::now() < until, "the disk lock never expired");
        std::thread::sleep(Duration::from_millis(200));
    }
    not_live(check(&server, 2, Some(1), d), "EXPIRED");

    // The answers come from the store: the same after a restart.
    server.terminate();
    server.restart();
    not_live(check(&server, 1, None, t1), "SUPERSEDED");
    live(check(&server, 1, None, t2));
    not_live(check(&server, 2, Some(1), d), "EXPIRED");
    json(&server, &["task", "drop", "t2"]);
    not_live(check(&server, 1, None, t2), "RELEASED");

    // Usage errors exit 2.
    for bad in [
        vec!["fence", "check", "--node", "1"],
        vec!["fence", "check", "--node", "1", "--fencing-token", "x"],
        vec![
            "fence",
            "check",
            "--node",
            "1",
            "--fencing-token",
            "1",
            "--pdisk",
            "0",
        ],
        vec!["fence", "check", "--fencing-token", "1"],
    ] {
        let r = arbiter(&server, &bad);
        assert_eq!(r.code, Some(2), "arbiter {bad:?}: {r:#?}");
    }
}

#[tokio::test]
async fn the_token_is_the_same_in_task_show_on_the_ydb_wire_and_in_the_watch() {
    let (_files, server) = server_with(USERS);
    let created = json(
        &server,
        &[
            "--token", ALICE, "task", "create", "w1", "--nodes", "3", "--mode", "force",
        ],
    );
    let shown = json(&server, &["--token", ALICE, "task", "show", "w1"]);
    let token = token_of(&shown);
    assert_eq!(token, token_of(&created));
    assert!(token > 0);
    // YDB's wire: GetMaintenanceTask's ActionState carries it in field 10001.
    let client = server.client(Some(ALICE)).await;
    let got = success::<GetMaintenanceTaskResult>(&client.get("w1").await);
    assert_eq!(
        got.action_group_states[0].action_states[0].fencing_token,
        token
    );
    // The table view has a TOKEN column with it.
    let r = arbiter(&server, &["--token", ALICE, "task", "show", "w1"]);
    assert!(r.stdout.contains("TOKEN"), "{r:#?}");
    assert!(
        r.stdout
            .lines()
            .any(|l| l.contains("PERFORMED") && l.contains(&format!("  {token}  "))),
        "{r:#?}"
    );
    // arbiter.v1: the watch stream's result carries it, and the owner.
    let mut v1 = ArbiterServiceClient::new(server.channel().await);
    let mut stream = v1
        .watch_maintenance_task(client.request(WatchMaintenanceTaskRequest {
            task_uid: "w1".into(),
        }))
        .await
        .expect("watch")
        .into_inner();
    let first = stream.message().await.expect("stream").expect("an update");
    assert_eq!(first.owner, "alice");
    let result = first.result.expect("result");
    assert_eq!(
        result.action_group_states[0].action_states[0].fencing_token,
        token
    );
    // ValidateFence agrees, for a viewer too.
    let viewer = server.client(Some(VIC)).await;
    let answer = v1
        .validate_fence(viewer.request(ValidateFenceRequest {
            node_id: 3,
            pdisk_id: 0,
            token,
        }))
        .await
        .expect("validate")
        .into_inner();
    assert_eq!(answer.state, FenceState::Live as i32);
    assert_eq!((answer.task_uid.as_str(), answer.live_token), ("w1", token));
    assert!(answer.deadline.is_some());
}

#[test]
fn tasks_show_the_owner_of_every_task() {
    let (_files, server) = server_with(USERS);
    json(
        &server,
        &[
            "--token", ALICE, "task", "create", "ta", "--nodes", "1", "--mode", "force",
        ],
    );
    json(
        &server,
        &[
            "--token", BOB, "task", "create", "tb", "--nodes", "2", "--mode", "force",
        ],
    );
    let r = arbiter(&server, &["--token", VIC, "tasks"]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    let header = r.stdout.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("UID") && header.contains("OWNER"),
        "{r:#?}"
    );
    let cells = |uid: &str| -> Vec<String> {
        r.stdout
            .lines()
            .map(|l| {
                l.split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .find(|c| c.first().is_some_and(|c| c == uid))
            .unwrap_or_else(|| panic!("no row {uid}: {r:#?}"))
    };
    assert_eq!(cells("ta")[1], "alice");
    assert_eq!(cells("tb")[1], "bob");
    let all = json(&server, &["--token", ROOT, "tasks"]);
    let owners: Vec<(String, String)> = all
        .as_array()
        .expect("a list")
        .iter()
        .map(|t| {
            (
                t["task_uid"].as_str().unwrap_or_default().to_owned(),
                t["owner"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        owners,
        vec![("ta".into(), "alice".into()), ("tb".into(), "bob".into())]
    );
    assert_eq!(all[0]["performed"], 1);
    let mine = json(&server, &["--token", BOB, "tasks", "--mine"]);
    assert_eq!(mine.as_array().map(Vec::len), Some(1));
    assert_eq!(mine[0]["owner"], "bob");
    let alices = json(&server, &["--token", BOB, "tasks", "--owner", "alice"]);
    assert_eq!(alices[0]["task_uid"], "ta");
    assert_eq!(alices.as_array().map(Vec::len), Some(1));
}

#[test]
fn whoami_shows_the_role() {
    let (_files, server) = server_with(USERS);
    for (ticket, user, role) in [
        (VIC, "vic", "viewer"),
        (ALICE, "alice", "operator"),
        (ROOT, "root", "admin"),
    ] {
        let j = json(&server, &["--token", ticket, "whoami"]);
        assert_eq!(
            (j["user"].as_str(), j["role"].as_str()),
            (Some(user), Some(role))
        );
        let r = arbiter(&server, &["--token", ticket, "whoami"]);
        assert_eq!(r.code, Some(0), "{r:#?}");
        assert!(
            r.stdout
                .lines()
                .any(|l| l.trim_start().starts_with("role") && l.trim_end().ends_with(role)),
            "{r:#?}"
        );
    }
    // Open mode: everyone is an admin.
    let open = ServerProcess::start(example_inventory());
    assert_eq!(json(&open, &["whoami"])["role"], "admin");
}

/// A server on the example inventory with `auth` as its auth file.
fn server_with(auth: &str) -> (Files, ServerProcess) {
    let files = Files::new();
    let path = files.write("auth.toml", auth);
    let server =
        ServerProcess::start_with(example_inventory(), &["--auth".as_ref(), path.as_os_str()]);
    (files, server)
}
