//! `arbiter-server export` and `import` through the real binary: a state moves between data
//! directories unchanged (tasks, locks, fencing counter), a store that holds anything is not
//! overwritten without --force, and a damaged, truncated or foreign file is refused with a
//! clear message and changes nothing. `arbiter instances` on a single instance.

use arbiter_e2e::proto::ydb::maintenance::MaintenanceTaskResult;
use arbiter_e2e::{
    Files, ServerProcess, cli_binary, is_performed, node_locks, run_to_exit, states, success,
};
use std::ffi::OsStr;
use std::path::Path;

const TWO_NODES: &str = r#"
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
"#;

fn run(args: &[&OsStr]) -> (Option<i32>, String) {
    let out = run_to_exit(args, "");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn export(dir: &Path, file: &Path) -> (Option<i32>, String) {
    run(&[
        OsStr::new("--data-dir"),
        dir.as_os_str(),
        OsStr::new("export"),
        OsStr::new("--out"),
        file.as_os_str(),
    ])
}

fn import(dir: &Path, file: &Path, force: bool) -> (Option<i32>, String) {
    let mut args = vec![
        OsStr::new("--data-dir"),
        dir.as_os_str(),
        OsStr::new("import"),
        OsStr::new("--in"),
        file.as_os_str(),
    ];
    if force {
        args.push(OsStr::new("--force"));
    }
    run(&args)
}

fn state_of(file: &Path) -> String {
    let text = std::fs::read_to_string(file).expect("export file");
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    v["state"].as_str().expect("state").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_moves_between_data_dirs_unchanged_and_bad_files_change_nothing() {
    let files = Files::new();
    let inventory = files.write("two.toml", TWO_NODES);
    let mut server = ServerProcess::start(&inventory);
    let c = server.client(Some("alice")).await;
    let t: MaintenanceTaskResult = success(&c.create(node_locks("kernel-1", &[1])).await);
    assert!(is_performed(states(&t.action_group_states)[0]), "{t:?}");
    let t: MaintenanceTaskResult = success(&c.create(node_locks("kernel-2", &[2])).await);
    assert!(is_performed(states(&t.action_group_states)[0]), "{t:?}");
    let _ = c.drop_task("kernel-2").await;
    // Exporting needs the store to itself: refused while the server runs.
    let first = files.path().join("first.json");
    let (code, err) = export(&server.data_dir(), &first);
    assert_eq!(code, Some(1), "{err}");
    assert!(!first.exists());
    server.terminate();

    let (code, err) = export(&server.data_dir(), &first);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("exported 1 tasks"), "{err}");

    // Into a new data directory, and out again: the same state.
    let other = files.path().join("other");
    let (code, err) = import(&other, &first, false);
    assert_eq!(code, Some(0), "{err}");
    let second = files.path().join("second.json");
    let (code, err) = export(&other, &second);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(state_of(&first), state_of(&second));

    // A store that holds anything is not overwritten without --force.
    let (code, err) = import(&other, &first, false);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("refusing to overwrite") && err.contains("--force"),
        "{err}"
    );
    let (code, err) = import(&other, &first, true);
    assert_eq!(code, Some(0), "{err}");

    // Damaged, truncated and foreign files are refused, naming the problem; nothing changes.
    let text = std::fs::read_to_string(&first).expect("export");
    let damaged = files.write("damaged.json", &text.replacen("kernel-1", "kernel-9", 1));
    let truncated = files.write("truncated.json", &text[..text.len() / 2]);
    let foreign = files.write("foreign.json", r#"{"hello": "world"}"#);
    let newer = files.write(
        "newer.json",
        &text.replacen("\"version\": 1", "\"version\": 7", 1),
    );
    for (file, needle) in [
        (&damaged, "checksum does not match"),
        (&truncated, "not an arbiter state file"),
        (&foreign, "not an arbiter state file"),
        (&newer, "version 7"),
    ] {
        let (code, err) = import(&other, file, true);
        assert_eq!(code, Some(2), "{file:?}: {err}");
        assert!(
            err.contains(needle) && err.contains("nothing was changed"),
            "{err}"
        );
    }
    let third = files.path().join("third.json");
    assert_eq!(export(&other, &third).0, Some(0));
    assert_eq!(state_of(&first), state_of(&third));

    // A server started on an imported directory has the lock.
    let mut moved = ServerProcess::start(&inventory);
    moved.terminate();
    let (code, err) = import(&moved.data_dir(), &first, false);
    assert_eq!(code, Some(0), "an empty store takes an import: {err}");
    moved.restart();
    let c = moved.client(Some("alice")).await;
    let t: MaintenanceTaskResult = success(&c.create(node_locks("kernel-3", &[1])).await);
    let s = states(&t.action_group_states);
    assert!(
        !is_performed(s[0]),
        "node 1 is still locked by kernel-1: {t:?}"
    );
    assert!(s[0].details.contains("kernel-1"), "{:?}", s[0]);

    // `arbiter instances` on a single instance: one line, the leader, on redb.
    let out = std::process::Command::new(cli_binary())
        .env_remove("ARBITER_TOKEN")
        .args([
            "--endpoint",
            &moved.addr().to_string(),
            "-o",
            "json",
            "instances",
        ])
        .output()
        .expect("arbiter instances");
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["store"], "redb");
    assert_eq!(v["instances"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["instances"][0]["role"], "leader", "{v}");
    assert_eq!(v["instances"][0]["answered"], true, "{v}");
}
