use super::*;
use crate::engine::Cluster;
use crate::engine::inventory::{Format, parse as parse_inventory};
use std::sync::Arc;
use std::time::Duration;

const INVENTORY: &str = r#"
[[nodes]]
id = 1
host = "fcos-1"
machine_id = "0a2e25d88a604d8c9873cd6079cd2a28"
data_center = "dc-a"

[[nodes]]
id = 2
host = "fcos-2"
data_center = "dc-a"

[[nodes]]
id = 3
host = "db-3"
data_center = "dc-b"

[fleetlock.groups.default]
slots = 1
lock_duration = "10m"
data_center = "dc-a"

[fleetlock.groups.pair]
slots = 2
unauthenticated = true
"#;

fn state(text: &str) -> State {
    let c: Cluster = parse_inventory(text, Format::Toml).expect("valid inventory");
    State::new(Arc::new(c))
}

fn params(id: &str, group: &str) -> ClientParams {
    ClientParams {
        id: id.into(),
        group: group.into(),
    }
}

fn open() -> Who {
    Who::Caller(Caller {
        user: OWNER.into(),
        role: Role::Admin,
    })
}

const NOW: Timestamp = Timestamp(1_800_000_000_000);
const MAX: Duration = Duration::from_secs(7 * 86400);

fn lock(s: &mut State, id: &str, group: &str, who: &Who) -> Result<Held, FleetError> {
    let mut changes = Vec::new();
    lock_on(s, NOW, &params(id, group), who, MAX, &mut changes).map(|(_, g)| g.held)
}

fn unlock(s: &mut State, id: &str, group: &str) -> Result<Released, FleetError> {
    let mut changes = Vec::new();
    unlock_on(s, NOW, &params(id, group), &open(), &mut changes).map(|(_, r)| r)
}

fn headers(value: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(v) = value {
        h.insert(PROTOCOL_HEADER, v.parse().expect("header value"));
    }
    h
}

#[test]
fn reads_zincatis_pretty_body_without_a_content_type() {
    let body = b"{\n  \"client_params\": {\n    \"id\": \"0a2e25d88a604d8c9873cd6079cd2a28\",\n    \"group\": \"default\"\n  }\n}";
    let p = parse(&headers(Some("true")), body).expect("parsed");
    assert_eq!(p, params("0a2e25d88a604d8c9873cd6079cd2a28", "default"));
    // Early Zincati named the id node_uuid.
    let old = br#"{"client_params": {"node_uuid": "abc", "group": "g-1.x"}}"#;
    assert_eq!(
        parse(&headers(Some("true")), old).expect("parsed"),
        params("abc", "g-1.x")
    );
}

#[test]
fn refuses_what_the_protocol_refuses() {
    let body = br#"{"client_params": {"id": "a", "group": "default"}}"#;
    for h in [None, Some("false"), Some("1")] {
        let e = parse(&headers(h), body).expect_err("no header");
        assert_eq!(
            (e.status, e.kind),
            (StatusCode::BAD_REQUEST, "missing_header")
        );
    }
    let e = parse(&headers(Some("true")), b"{not json").expect_err("bad json");
    assert_eq!(e.kind, "decode_error");
    let e =
        parse(&headers(Some("true")), br#"{"client_params": {"id": "a"}}"#).expect_err("no group");
    assert_eq!(e.kind, "decode_error");
    let e = parse(
        &headers(Some("true")),
        br#"{"client_params": {"id": "", "group": "default"}}"#,
    )
    .expect_err("empty id");
    assert_eq!(e.kind, "invalid_client_params");
    let e = parse(
        &headers(Some("true")),
        br#"{"client_params": {"id": "a", "group": "no/slash"}}"#,
    )
    .expect_err("bad group");
    assert_eq!(e.kind, "invalid_client_params");
}

#[test]
fn one_slot_holds_the_second_node_until_the_first_reports_steady_state() {
    let mut s = state(INVENTORY);
    let a = lock(
        &mut s,
        "0a2e25d88a604d8c9873cd6079cd2a28",
        "default",
        &open(),
    )
    .expect("A");
    assert_eq!((a.status, a.node), ("locked", 1));
    assert_eq!(a.task_uid, "fleetlock:default:1");
    assert_eq!(s.task_owner("fleetlock:default:1"), Some(OWNER));
    // The host name names node 2 (it has no machine_id).
    let e = lock(&mut s, "fcos-2", "default", &open()).expect_err("B waits");
    assert_eq!(
        (e.status, e.kind),
        (StatusCode::LOCKED, "failed_lock_semaphore_full")
    );
    assert!(e.value.contains("node 1 (host 'fcos-1')"), "{}", e.value);
    assert!(s.task("fleetlock:default:2").is_none());
    // Recursive: A again is a success, the same lock.
    let again = lock(
        &mut s,
        "0a2e25d88a604d8c9873cd6079cd2a28",
        "default",
        &open(),
    )
    .expect("A");
    assert_eq!(again.status, "held");
    assert_eq!(again.fencing_token, a.fencing_token);
    let r = unlock(&mut s, "0a2e25d88a604d8c9873cd6079cd2a28", "default").expect("released");
    assert_eq!(r.status, "released");
    assert!(s.task("fleetlock:default:1").is_none());
    assert_eq!(s.lock_count(), 0);
    let b = lock(&mut s, "fcos-2", "default", &open()).expect("B now");
    assert_eq!((b.status, b.node), ("locked", 2));
    // Unlock if held: A holds nothing now.
    let r = unlock(&mut s, "0a2e25d88a604d8c9873cd6079cd2a28", "default").expect("ok");
    assert_eq!((r.status, r.task_uid), ("not_held", None));
}

#[test]
fn a_lock_never_released_lapses_at_the_groups_lock_duration() {
    let mut s = state(INVENTORY);
    let a = lock(&mut s, "fcos-1", "default", &open()).expect("A");
    assert_eq!(a.deadline, NOW.plus(Duration::from_secs(600)).to_string());
    s.expire(NOW.plus(Duration::from_secs(600)));
    assert!(s.task("fleetlock:default:1").is_none());
    let mut changes = Vec::new();
    let later = NOW.plus(Duration::from_secs(601));
    let b = lock_on(
        &mut s,
        later,
        &params("fcos-2", "default"),
        &open(),
        MAX,
        &mut changes,
    )
    .expect("B");
    assert_eq!(b.1.held.node, 2);
}

#[test]
fn the_lock_duration_is_capped_by_max_lock_duration() {
    let mut s = state(INVENTORY);
    let mut changes = Vec::new();
    let (_, g) = lock_on(
        &mut s,
        NOW,
        &params("fcos-1", "default"),
        &open(),
        Duration::from_secs(60),
        &mut changes,
    )
    .expect("A");
    assert_eq!(
        g.held.deadline,
        NOW.plus(Duration::from_secs(60)).to_string()
    );
}

#[test]
fn names_what_it_cannot_find() {
    let mut s = state(INVENTORY);
    let e = lock(&mut s, "fcos-1", "nightly", &open()).expect_err("no group");
    assert_eq!((e.status, e.kind), (StatusCode::NOT_FOUND, "unknown_group"));
    assert!(e.value.contains("default, pair"), "{}", e.value);
    let e = lock(&mut s, "ffff", "default", &open()).expect_err("no node");
    assert_eq!((e.status, e.kind), (StatusCode::NOT_FOUND, "unknown_id"));
    let e = unlock(&mut s, "ffff", "default").expect_err("no node");
    assert_eq!(e.kind, "unknown_id");
    let e = lock(&mut s, "db-3", "default", &open()).expect_err("dc-b");
    assert_eq!((e.status, e.kind), (StatusCode::FORBIDDEN, "not_in_group"));
}

#[test]
fn a_host_of_several_nodes_names_none() {
    let text = INVENTORY.replace("host = \"fcos-2\"", "host = \"fcos-1\"");
    let mut s = state(&text);
    // The machine id still names node 1; the shared host names neither.
    assert_eq!(s.cluster().fleetlock_node("fcos-1"), None);
    assert_eq!(
        s.cluster()
            .fleetlock_node("0a2e25d88a604d8c9873cd6079cd2a28"),
        Some(1)
    );
    assert_eq!(
        lock(&mut s, "fcos-1", "default", &open())
            .expect_err("x")
            .kind,
        "unknown_id"
    );
}

#[test]
fn every_normal_check_holds_and_a_waiting_lock_keeps_nothing() {
    let text = format!("[limits]\nmax_unavailable_nodes = 1\n{INVENTORY}");
    let mut s = state(&text);
    lock(&mut s, "fcos-1", "pair", &open()).expect("first of two slots");
    let e = lock(&mut s, "db-3", "pair", &open()).expect_err("the cluster limit");
    assert_eq!((e.status, e.kind), (StatusCode::LOCKED, "failed_lock"));
    assert!(
        e.value.contains("DISABLED_NODES_LIMIT_REACHED"),
        "{}",
        e.value
    );
    assert!(s.task("fleetlock:pair:3").is_none());
    assert_eq!(s.task_uids(None), vec!["fleetlock:pair:1".to_owned()]);
}

#[test]
fn without_a_token_under_auth_only_an_unauthenticated_group_serves() {
    let mut s = state(INVENTORY);
    let e = lock(&mut s, "fcos-1", "default", &Who::NoToken).expect_err("tokens required");
    assert_eq!(
        (e.status, e.kind),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    assert!(e.value.contains("unauthenticated = true"), "{}", e.value);
    let h = lock(&mut s, "fcos-1", "pair", &Who::NoToken).expect("pair accepts");
    assert_eq!(s.task_owner(&h.task_uid), Some(OWNER));
    // A viewer's token may not take a lock.
    let viewer = Who::Caller(Caller {
        user: "v".into(),
        role: Role::Viewer,
    });
    let e = lock(&mut s, "fcos-2", "pair", &viewer).expect_err("viewer");
    assert_eq!((e.status, e.kind), (StatusCode::FORBIDDEN, "forbidden"));
    // Another operator may not release or take over fleetlock's lock.
    let other = Who::Caller(Caller {
        user: "alice".into(),
        role: Role::Operator,
    });
    let e = lock(&mut s, "fcos-1", "pair", &other).expect_err("not the owner");
    assert_eq!(e.kind, "forbidden");
}

#[test]
fn without_a_fleetlock_table_one_default_group_covers_every_node() {
    let text = INVENTORY
        .split("[fleetlock")
        .next()
        .expect("head")
        .to_owned();
    let mut s = state(&text);
    lock(&mut s, "db-3", "default", &open()).expect("db-3");
    let e = lock(&mut s, "fcos-2", "default", &open()).expect_err("one slot");
    assert_eq!(e.kind, "failed_lock_semaphore_full");
    let g = s.cluster().fleetlock_group("default").expect("default");
    assert_eq!(g.lock_duration, FleetLockGroup::DEFAULT_LOCK_DURATION);
}

#[test]
fn uids_of_one_group_do_not_count_in_another() {
    // "default" is a prefix of "default-2" as text, not as a uid prefix.
    let text = format!("[limits]\nmax_unavailable_ratio = 100\n{INVENTORY}")
        .replace("[fleetlock.groups.pair]", "[fleetlock.groups.default-2]");
    let mut s = state(&text);
    lock(&mut s, "fcos-1", "default-2", &open()).expect("in default-2");
    lock(&mut s, "fcos-2", "default", &open()).expect("default is free");
}
