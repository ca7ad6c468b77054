//! `arbiter backup` of a running server and `arbiter-server restore` into a new data directory,
//! through the real binaries: a round trip (backup, restore, restart) gives the same state byte
//! for byte, fencing counter included, so tokens keep growing; only admins take backups; a
//! truncated or damaged backup is refused and changes nothing.

use arbiter_e2e::proto::ydb::maintenance::MaintenanceTaskResult;
use arbiter_e2e::{
    Files, ServerProcess, cli_binary, is_performed, node_locks, run_to_exit, states, success,
};
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

const THREE_NODES: &str = r#"
[limits]
max_unavailable_ratio = 0

[[nodes]]
id = 1
host = "node-1"
port = 1

[[nodes]]
id = 2
host = "node-2"
port = 1

[[nodes]]
id = 3
host = "node-3"
port = 1
"#;

const USERS: &str = r#"
[[users]]
name = "root"
token = "root-token-0000000000001"
role = "admin"

[[users]]
name = "vera"
token = "vera-token-0000000000001"
role = "viewer"
"#;

fn arbiter(server: &ServerProcess, token: &str, args: &[&OsStr]) -> Output {
    Command::new(cli_binary())
        .env_remove("ARBITER_TOKEN")
        .args(["--endpoint", &server.addr().to_string(), "--token", token])
        .args(args)
        .output()
        .expect("run arbiter")
}

fn backup(server: &ServerProcess, token: &str, out: &Path) -> Output {
    arbiter(
        server,
        token,
        &[OsStr::new("backup"), OsStr::new("--out"), out.as_os_str()],
    )
}

fn restore(dir: &Path, file: &Path) -> Output {
    run_to_exit(
        &[
            OsStr::new("--data-dir"),
            dir.as_os_str(),
            OsStr::new("restore"),
            OsStr::new("--in"),
            file.as_os_str(),
        ],
        "",
    )
}

/// The state inside a backup file, as the exact text the checksum covers.
fn state_of(file: &Path) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).expect("backup")).expect("JSON");
    v["state"].as_str().expect("state").to_owned()
}

fn token_of(t: &MaintenanceTaskResult) -> u64 {
    states(&t.action_group_states)[0].fencing_token
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_restores_to_the_same_state_and_tokens_keep_growing() {
    let files = Files::new();
    let inventory = files.write("three.toml", THREE_NODES);
    let auth = files.write("users.toml", USERS);
    let auth_args = [OsStr::new("--auth"), auth.as_os_str()];
    let a = ServerProcess::start_with(&inventory, &auth_args);
    let c = a.client(Some("root-token-0000000000001")).await;
    let t: MaintenanceTaskResult = success(&c.create(node_locks("kept", &[1])).await);
    assert!(is_performed(states(&t.action_group_states)[0]), "{t:?}");
    let t: MaintenanceTaskResult = success(&c.create(node_locks("gone", &[2])).await);
    let last_token = token_of(&t);
    assert!(last_token > 0, "{t:?}");
    let _ = c.drop_task("gone").await;

    // Only admins take backups.
    let denied = files.path().join("denied.json");
    let out = backup(&a, "vera-token-0000000000001", &denied);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("viewer"),
        "{out:?}"
    );
    assert!(!denied.exists());

    // A backup of the running server.
    let first = files.path().join("first.json");
    let out = backup(&a, "root-token-0000000000001", &first);
    assert!(out.status.success(), "{out:?}");

    // Restored into a new data directory (a server started there once, then stopped), and
    // started: the same state, byte for byte.
    let mut b = ServerProcess::start_with(&inventory, &auth_args);
    b.terminate();
    let out = restore(&b.data_dir(), &first);
    assert!(out.status.success(), "{out:?}");
    // Not twice without --force.
    let out = restore(&b.data_dir(), &first);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    b.restart();
    let second = files.path().join("second.json");
    let out = backup(&b, "root-token-0000000000001", &second);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        state_of(&first),
        state_of(&second),
        "the round trip changed the state"
    );

    // The restored lock is live, and the fencing counter went along: the next token is above
    // every token issued before the backup.
    let c = b.client(Some("root-token-0000000000001")).await;
    let t: MaintenanceTaskResult = success(&c.create(node_locks("again", &[1])).await);
    assert!(
        !is_performed(states(&t.action_group_states)[0]),
        "node 1 is still held: {t:?}"
    );
    let t: MaintenanceTaskResult = success(&c.create(node_locks("next", &[3])).await);
    assert!(
        token_of(&t) > last_token,
        "{} after {last_token}",
        token_of(&t)
    );

    // A truncated or damaged backup is refused, and the store is unchanged.
    let text = std::fs::read_to_string(&first).expect("backup");
    let truncated = files.write("truncated.json", &text[..text.len() * 2 / 3]);
    let damaged = files.write("damaged.json", &text.replacen("kept", "kepT", 1));
    b.terminate();
    for file in [&truncated, &damaged] {
        let out = run_to_exit(
            &[
                OsStr::new("--data-dir"),
                b.data_dir().as_os_str(),
                OsStr::new("restore"),
                OsStr::new("--in"),
                file.as_os_str(),
                OsStr::new("--force"),
            ],
            "",
        );
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("nothing was changed"),
            "{out:?}"
        );
    }
    b.restart();
    let third = files.path().join("third.json");
    assert!(
        backup(&b, "root-token-0000000000001", &third)
            .status
            .success()
    );
    let v: serde_json::Value = serde_json::from_str(&state_of(&third)).expect("state");
    assert!(v["tasks"]["kept"].is_object(), "{v}");
    assert!(v["tasks"]["next"].is_object(), "{v}");
}
