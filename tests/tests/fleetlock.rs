//! FleetLock over HTTP, driven by `curl` exactly as Zincati sends its requests: POST, the header
//! `fleet-lock-protocol: true`, no Content-Type, and a pretty-printed JSON body
//! `{"client_params": {"id": <machine id>, "group": "default"}}`.

use arbiter_e2e::{Files, ServerProcess};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Zincati's app-specific machine ids of the two Fedora CoreOS nodes.
const A: &str = "0a2e25d88a604d8c9873cd6079cd2a28";
const B: &str = "5c9f0e3b1d2a4e6f8a7b9c0d1e2f3a4b";

const INVENTORY: &str = r#"
[limits]
max_unavailable_ratio = 50

[[nodes]]
id = 1
host = "fcos-a"
machine_id = "0a2e25d88a604d8c9873cd6079cd2a28"
data_center = "dc-1"

[[nodes]]
id = 2
host = "fcos-b"
machine_id = "5c9f0e3b1d2a4e6f8a7b9c0d1e2f3a4b"
data_center = "dc-1"

[[nodes]]
id = 3
host = "quick-1"
data_center = "dc-2"

[[nodes]]
id = 4
host = "quick-2"
data_center = "dc-2"

[fleetlock.groups.default]
slots = 1
lock_duration = "10m"
data_center = "dc-1"

[fleetlock.groups.quick]
slots = 1
lock_duration = "1s"
unauthenticated = true
data_center = "dc-2"
"#;

/// The longest a 1 s lock may take to free its slot.
const EXPIRY_BOUND: Duration = Duration::from_secs(10);

/// The body Zincati sends (serde_json's pretty printer).
fn body(id: &str, group: &str) -> String {
    format!(
        "{{\n  \"client_params\": {{\n    \"id\": \"{id}\",\n    \"group\": \"{group}\"\n  }}\n}}"
    )
}

/// One POST with curl; `extra` are more curl arguments. Answers the status and the JSON body.
fn curl(addr: SocketAddr, path: &str, body: &str, extra: &[&str]) -> (u16, Value) {
    let mut child = Command::new("curl")
        .args(["-sS", "-X", "POST", "--max-time", "20"])
        // Zincati sends no Content-Type (curl would say form-urlencoded): drop it.
        .args(["-H", "Content-Type:", "--data-binary", "@-"])
        .args(["-w", "\n%{http_code}"])
        .args(extra)
        .arg(format!("http://{addr}{path}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl is installed");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(body.as_bytes()).expect("write the body");
    }
    let out = child.wait_with_output().expect("curl ran");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let (json, code) = text.rsplit_once('\n').expect("the status line");
    let code: u16 = code.trim().parse().expect("a status code");
    let json = if json.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"))
    };
    (code, json)
}

/// As Zincati: POST `/v1/<call>` with the protocol header.
fn zincati(addr: SocketAddr, call: &str, id: &str, group: &str) -> (u16, Value) {
    curl(
        addr,
        &format!("/v1/{call}"),
        &body(id, group),
        &["-H", "fleet-lock-protocol: true"],
    )
}

fn with_token(addr: SocketAddr, call: &str, id: &str, group: &str, token: &str) -> (u16, Value) {
    let auth = format!("Authorization: Bearer {token}");
    curl(
        addr,
        &format!("/v1/{call}"),
        &body(id, group),
        &["-H", "fleet-lock-protocol: true", "-H", auth.as_str()],
    )
}

/// A refusal in the protocol's shape: a non-2xx status and `{"kind", "value"}`.
fn refusal(answer: &(u16, Value), status: u16, kind: &str) -> String {
    let (code, json) = answer;
    assert_eq!(*code, status, "{json}");
    assert_eq!(json["kind"], kind, "{json}");
    json["value"].as_str().expect("a value text").to_owned()
}

fn server(files: &Files, extra: &[&str]) -> ServerProcess {
    let inventory = files.write("inventory.toml", INVENTORY);
    let mut args = vec!["--http-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    ServerProcess::start_with(inventory, &args)
}

#[test]
fn two_nodes_one_slot_the_second_waits_until_the_first_reports_steady_state() {
    let files = Files::new();
    let server = server(&files, &[]);
    let http = server.http_addr();

    // Zincati's first call on start: steady-state, while holding nothing.
    let (code, json) = zincati(http, "steady-state", A, "default");
    assert_eq!(code, 200, "{json}");
    assert_eq!(json["status"], "not_held");

    let (code, a) = zincati(http, "pre-reboot", A, "default");
    assert_eq!(code, 200, "{a}");
    assert_eq!(a["status"], "locked");
    assert_eq!(a["node"], 1);
    assert_eq!(a["task_uid"], "fleetlock:default:1");

    let text = refusal(
        &zincati(http, "pre-reboot", B, "default"),
        423,
        "failed_lock_semaphore_full",
    );
    assert!(text.contains("node 1 (host 'fcos-a')"), "{text}");

    // Recursive: A asks again (every 5 minutes while its update is staged).
    let (code, again) = zincati(http, "pre-reboot", A, "default");
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["status"], "held");
    assert_eq!(again["fencing_token"], a["fencing_token"]);

    // B still waits, however often it asks.
    refusal(
        &zincati(http, "pre-reboot", B, "default"),
        423,
        "failed_lock_semaphore_full",
    );

    // A rebooted and reports steady-state: the slot is B's.
    let (code, json) = zincati(http, "steady-state", A, "default");
    assert_eq!(code, 200, "{json}");
    assert_eq!(json["status"], "released");
    let (code, b) = zincati(http, "pre-reboot", B, "default");
    assert_eq!(code, 200, "{b}");
    assert_eq!((&b["status"], &b["node"]), (&"locked".into(), &2.into()));
    refusal(
        &zincati(http, "pre-reboot", A, "default"),
        423,
        "failed_lock_semaphore_full",
    );

    // Unlock if held: A holds nothing, a success again.
    let (code, json) = zincati(http, "steady-state", A, "default");
    assert_eq!(code, 200, "{json}");
    assert_eq!(json["status"], "not_held");
    let (code, _) = zincati(http, "steady-state", B, "default");
    assert_eq!(code, 200);
}

#[test]
fn refusals_are_the_protocols_json() {
    let files = Files::new();
    let server = server(&files, &[]);
    let http = server.http_addr();

    for call in ["/v1/pre-reboot", "/v1/steady-state"] {
        let text = refusal(
            &curl(http, call, &body(A, "default"), &[]),
            400,
            "missing_header",
        );
        assert!(text.contains("fleet-lock-protocol: true"), "{text}");
    }
    refusal(
        &zincati(
            http,
            "pre-reboot",
            "ffffffffffffffffffffffffffffffff",
            "default",
        ),
        404,
        "unknown_id",
    );
    refusal(
        &zincati(
            http,
            "steady-state",
            "ffffffffffffffffffffffffffffffff",
            "default",
        ),
        404,
        "unknown_id",
    );
    refusal(
        &zincati(http, "pre-reboot", A, "nightly"),
        404,
        "unknown_group",
    );
    refusal(
        &zincati(http, "pre-reboot", A, "no/such"),
        400,
        "invalid_client_params",
    );
    refusal(
        &zincati(http, "pre-reboot", "quick-1", "default"),
        403,
        "not_in_group",
    );
    refusal(
        &curl(
            http,
            "/v1/pre-reboot",
            "{\"client_params\": 3}",
            &["-H", "fleet-lock-protocol: true"],
        ),
        400,
        "decode_error",
    );
    // Not a POST.
    let out = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}"])
        .arg(format!("http://{http}/v1/pre-reboot"))
        .output()
        .expect("curl");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let (json, code) = text.rsplit_once('\n').expect("status");
    assert_eq!(code, "405");
    let json: Value = serde_json::from_str(json).expect("JSON");
    assert_eq!(json["kind"], "method_not_allowed");
    // Nothing of it took a lock.
    let (code, a) = zincati(http, "pre-reboot", A, "default");
    assert_eq!((code, &a["status"]), (200, &"locked".into()));
}

#[test]
fn a_lock_never_released_lapses_at_its_deadline_and_frees_the_slot() {
    let files = Files::new();
    let server = server(&files, &[]);
    let http = server.http_addr();

    // The host name names a node without a machine id.
    let (code, first) = zincati(http, "pre-reboot", "quick-1", "quick");
    assert_eq!(code, 200, "{first}");
    assert_eq!(first["node"], 3);
    refusal(
        &zincati(http, "pre-reboot", "quick-2", "quick"),
        423,
        "failed_lock_semaphore_full",
    );
    // quick-1 never reports steady-state: its 1 s lock lapses and quick-2 gets the slot.
    let start = Instant::now();
    loop {
        let (code, json) = zincati(http, "pre-reboot", "quick-2", "quick");
        if code == 200 {
            assert_eq!(json["node"], 4);
            break;
        }
        assert_eq!(json["kind"], "failed_lock_semaphore_full", "{json}");
        assert!(
            start.elapsed() < EXPIRY_BOUND,
            "quick-1's lock did not lapse within {EXPIRY_BOUND:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // quick-1's late steady-state is still a success.
    let (code, json) = zincati(http, "steady-state", "quick-1", "quick");
    assert_eq!((code, &json["status"]), (200, &"not_held".into()));
}

#[test]
fn under_auth_zincati_is_served_only_by_an_unauthenticated_group() {
    let files = Files::new();
    let auth = files.write(
        "auth.toml",
        "[[users]]\nname = \"ops\"\ntoken = \"ops-token-0000000000001\"\nrole = \"operator\"\n\
         [[users]]\nname = \"vic\"\ntoken = \"vic-token-0000000000002\"\nrole = \"viewer\"\n",
    );
    let auth = auth.to_str().expect("utf-8 path").to_owned();
    let server = server(&files, &["--auth", auth.as_str()]);
    let http = server.http_addr();

    let text = refusal(
        &zincati(http, "pre-reboot", A, "default"),
        401,
        "unauthorized",
    );
    assert!(text.contains("unauthenticated = true"), "{text}");
    refusal(
        &with_token(http, "pre-reboot", A, "default", "wrong-token-000000000000"),
        401,
        "unauthorized",
    );
    refusal(
        &with_token(http, "pre-reboot", A, "default", "vic-token-0000000000002"),
        403,
        "forbidden",
    );
    let (code, json) = with_token(http, "pre-reboot", A, "default", "ops-token-0000000000001");
    assert_eq!(code, 200, "{json}");
    // The lock is ops's: a call without a token may not release it.
    refusal(
        &zincati(http, "steady-state", A, "default"),
        401,
        "unauthorized",
    );
    let (code, _) = with_token(
        http,
        "steady-state",
        A,
        "default",
        "ops-token-0000000000001",
    );
    assert_eq!(code, 200);

    // The quick group takes Zincati as it is.
    let (code, json) = zincati(http, "pre-reboot", "quick-1", "quick");
    assert_eq!(code, 200, "{json}");
    let (code, json) = zincati(http, "steady-state", "quick-1", "quick");
    assert_eq!((code, &json["status"]), (200, &"released".into()));
}
