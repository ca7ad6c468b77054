//! The REST API (`/v1/`) of the real binary over real HTTP (a few lines of HTTP/1.1 on a
//! `TcpStream`: no client library), next to the gRPC API it shares its logic with.
//!
//! A task created over REST is the task YDB's GetMaintenanceTask answers; a node's
//! `maintenance_on` waits (`queued`, the cluster's node limit naming the node that holds it) while
//! another node is in maintenance and is `completed` by the GET that tracks it once that node's
//! `maintenance_off` released its lock; errors are `{code, message}` with their HTTP status.

use arbiter_e2e::proto::ydb::maintenance::GetMaintenanceTaskResult;
use arbiter_e2e::{Client, Files, ServerProcess, states, success};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const THREE_NODES: &str = r#"
[limits]
max_unavailable_nodes = 1
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

/// One request; answers the status and the JSON body (`Null` when empty).
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    let text = String::from_utf8(out).expect("utf-8");
    let (head, rest) = text.split_once("\r\n\r\n").expect("a head");
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let payload = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    let value = if payload.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&payload).unwrap_or_else(|e| panic!("{e}: {payload}"))
    };
    (status, value)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn error(answer: &(u16, Value), status: u16, code: &str) -> String {
    assert_eq!(answer.0, status, "{answer:?}");
    assert_eq!(answer.1["code"], code, "{answer:?}");
    answer.1["message"].as_str().expect("a message").to_owned()
}

#[tokio::test]
async fn a_rest_task_is_the_grpc_task() {
    let files = Files::new();
    let inventory = files.write("inventory.toml", THREE_NODES);
    let server = ServerProcess::start_with(&inventory, &["--http-listen", "127.0.0.1:0"]);
    let h = server.http_addr();
    let body = json!({"uid": "r1", "description": "kernel", "groups": [
        {"locks": [{"node": 1, "duration": "90s"}]}]});
    let (status, task) = http(h, "POST", "/v1/tasks", Some(&body.to_string()));
    assert_eq!(status, 200, "{task}");
    let action = &task["groups"][0]["actions"][0];
    assert_eq!(action["status"], "performed");
    assert_eq!(action["duration"], "1m 30s");

    let grpc = Client::new(server.channel().await, None);
    let got: GetMaintenanceTaskResult = success(&grpc.get("r1").await);
    let st = states(&got.action_group_states);
    assert_eq!(st.len(), 1);
    assert_eq!(
        st[0].fencing_token,
        action["fencing_token"].as_u64().expect("token")
    );
    assert_eq!(
        got.task_options.expect("options").description,
        task["description"]
    );

    let m = error(
        &http(h, "POST", "/v1/tasks", Some(&body.to_string())),
        409,
        "ALREADY_EXISTS",
    );
    assert!(m.contains("already exists"), "{m}");
    let m = error(
        &http(
            h,
            "POST",
            "/v1/tasks",
            Some(r#"{"uid": "r2", "groups": [], "x": 1}"#),
        ),
        400,
        "BAD_REQUEST",
    );
    assert!(m.contains("unknown field `x`"), "{m}");
    error(&http(h, "GET", "/v1/tasks/none", None), 404, "NOT_FOUND");
    assert_eq!(http(h, "DELETE", "/v1/tasks/r1", None).0, 204);
}

#[test]
fn maintenance_on_waits_for_the_node_limit() {
    let files = Files::new();
    let inventory = files.write("inventory.toml", THREE_NODES);
    let server = ServerProcess::start_with(&inventory, &["--http-listen", "127.0.0.1:0"]);
    let h = server.http_addr();
    let (status, one) = http(h, "POST", "/v1/nodes/1/actions/maintenance_on", None);
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["status"], "completed");
    assert_eq!(one["task_id"], "maintenance-node-1");

    let (status, two) = http(
        h,
        "POST",
        "/v1/nodes/2/actions/maintenance_on",
        Some(r#"{"duration": "5m"}"#),
    );
    assert_eq!(status, 200, "{two}");
    assert_eq!(two["status"], "queued", "{two}");
    assert_eq!(two["reason"], "disabled_nodes_limit_reached", "{two}");
    assert!(
        two["details"].as_str().expect("details").contains("node 1"),
        "{two}"
    );
    // Repeating the POST answers the same task.
    let (_, again) = http(h, "POST", "/v1/nodes/2/actions/maintenance_on", None);
    assert_eq!(again["task_id"], "maintenance-node-2");
    assert_eq!(again["status"], "queued");

    let (status, off) = http(h, "POST", "/v1/nodes/1/actions/maintenance_off", None);
    assert_eq!(status, 200, "{off}");
    assert_eq!(off["released"], true);
    let (status, two) = http(h, "GET", "/v1/nodes/2/actions/maintenance_on", None);
    assert_eq!(status, 200, "{two}");
    assert_eq!(two["status"], "completed", "{two}");
    assert!(two["fencing_token"].as_u64().expect("token") > 0);
    let m = error(
        &http(h, "GET", "/v1/nodes/1/actions/maintenance_on", None),
        404,
        "NOT_FOUND",
    );
    assert!(m.contains("maintenance-node-1"), "{m}");
    let (_, doc) = http(h, "GET", "/v1/openapi.json", None);
    assert!(doc["paths"]["/v1/nodes/{id}/actions/maintenance_on"]["post"].is_object());
}
