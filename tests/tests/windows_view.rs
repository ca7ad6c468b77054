//! Maintenance windows where a user looks at nodes: `arbiter nodes` (its WINDOW column and its
//! JSON) and `arbiter.v1.ListNodes`, through the real binaries.
//!
//! The inventory's windows are chosen against the real clock so that nothing depends on when
//! the test runs: `always` is open every day 00:00-24:00 UTC (it never closes); `later` is the
//! same, with every UTC date from three days before today to three days after excluded, so it
//! is closed now and next opens at 00:00 UTC four days after today, whichever of those days the
//! server's clock is on (a run that crosses midnight included). Node 3 has no window.

use arbiter_e2e::proto::arbiter::v1::ListNodesRequest;
use arbiter_e2e::proto::arbiter::v1::arbiter_service_client::ArbiterServiceClient;
use arbiter_e2e::{Files, ServerProcess, civil, cli, cli_ok as ok, unix_now_secs};
use serde_json::Value;
use std::process::Output;

/// The civil date (year, month, day) of a day number since 1970-01-01 (H. Hinnant's algorithm).
fn date(days: i64) -> String {
    let (y, m, d) = civil(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn today() -> i64 {
    unix_now_secs() / 86_400
}

fn inventory(today: i64) -> String {
    let excluded: Vec<String> = (-3..=3)
        .map(|d| format!("\"{}\"", date(today + d)))
        .collect();
    format!(
        r#"
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

[[windows]]
name = "always"
zone = "UTC"
start = "00:00"
end = "24:00"
nodes = [1, 2]

[[windows]]
name = "later"
zone = "UTC"
start = "00:00"
end = "24:00"
exclude = [{}]
nodes = [2]
cut = false
"#,
        excluded.join(", ")
    )
}

/// The same inventory with node 2 only in `later`.
fn closed_inventory(today: i64) -> String {
    inventory(today).replace("nodes = [1, 2]", "nodes = [1]")
}

fn arbiter(server: &ServerProcess, args: &[&str]) -> Output {
    cli(server, None, args)
}

/// The cells of the row whose first cell is `key` (columns are two spaces or more apart).
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

#[tokio::test(flavor = "multi_thread")]
async fn nodes_show_their_windows_open_closed_or_none() {
    let today = today();
    let opens = date(today + 4);
    let files = Files::new();
    let path = files.write("windows.toml", &closed_inventory(today));
    let server = ServerProcess::start(&path);

    // The table: a WINDOW column before DETAIL.
    let table = ok(&arbiter(&server, &["nodes"]));
    let header = table.lines().next().expect("header");
    assert!(header.contains("HEARTBEAT  WINDOW"), "{table}");
    assert!(header.ends_with("DETAIL"), "{table}");
    let one = row(&table, "1");
    assert!(
        one[9].starts_with("open until ") && one[9].ends_with(" UTC"),
        "{table}"
    );
    assert_eq!(
        row(&table, "2")[9],
        format!("opens {opens} 00:00 UTC"),
        "{table}"
    );
    // Node 3 has no window: its WINDOW cell is empty, DETAIL follows.
    let three = row(&table, "3");
    assert_eq!(three.len(), 10, "{table}");
    assert_eq!(three[9], "-", "{table}");

    // The JSON.
    let out = ok(&arbiter(&server, &["--output", "json", "nodes"]));
    let nodes: Value = serde_json::from_str(&out).expect("JSON");
    let n1 = &nodes[0];
    assert_eq!(n1["windows"], serde_json::json!(["always"]), "{n1}");
    assert_eq!(n1["window_open"], true, "{n1}");
    assert!(n1["window_open_until"].is_string(), "{n1}");
    assert_eq!(n1["window_next_open"], Value::Null, "{n1}");
    assert_eq!(n1["window_zone"], "UTC", "{n1}");
    let n2 = &nodes[1];
    assert_eq!(n2["windows"], serde_json::json!(["later"]), "{n2}");
    assert_eq!(n2["window_open"], false, "{n2}");
    assert_eq!(n2["window_open_until"], Value::Null, "{n2}");
    assert_eq!(n2["window_next_open"], format!("{opens}T00:00:00Z"), "{n2}");
    assert_eq!(
        n2["window_local"],
        format!("{opens}T00:00:00+00:00"),
        "{n2}"
    );
    let n3 = &nodes[2];
    assert_eq!(n3["windows"], serde_json::json!([]), "{n3}");
    assert_eq!(n3["window_open"], Value::Null, "{n3}");
    assert_eq!(n3["window_zone"], Value::Null, "{n3}");

    // ListNodes itself.
    let mut c = ArbiterServiceClient::new(server.channel().await);
    let nodes = c
        .list_nodes(ListNodesRequest {})
        .await
        .expect("ListNodes")
        .into_inner()
        .nodes;
    assert_eq!(nodes[0].windows, vec!["always".to_owned()]);
    assert!(nodes[0].window_open);
    assert!(nodes[0].window_open_until.is_some() && nodes[0].window_next_open.is_none());
    assert_eq!(nodes[1].windows, vec!["later".to_owned()]);
    assert!(!nodes[1].window_open);
    assert!(nodes[1].window_open_until.is_none());
    assert_eq!(nodes[1].window_zone, "UTC");
    let next = nodes[1].window_next_open.expect("next opening");
    assert_eq!(next.seconds, (today + 4) * 86_400, "{next:?}");
    assert!(nodes[2].windows.is_empty() && !nodes[2].window_open);
    assert!(nodes[2].window_open_until.is_none() && nodes[2].window_next_open.is_none());
    assert!(nodes[2].window_zone.is_empty() && nodes[2].window_local.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_in_an_open_and_a_closed_window_is_open() {
    let today = today();
    let files = Files::new();
    let path = files.write("windows.toml", &inventory(today));
    let server = ServerProcess::start(&path);
    let table = ok(&arbiter(&server, &["nodes"]));
    let two = row(&table, "2");
    assert!(two[9].starts_with("open until "), "{table}");
    let out = ok(&arbiter(&server, &["--output", "json", "nodes"]));
    let nodes: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        nodes[1]["windows"],
        serde_json::json!(["always", "later"]),
        "{out}"
    );
    assert_eq!(nodes[1]["window_open"], true, "{out}");
}
