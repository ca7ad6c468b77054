use super::*;
use crate::engine::cluster::{Erasure, InitialState, PDiskKey};
use std::time::Duration;

const EXAMPLE: &str = r#"
[defaults]
lock_duration = "10m"
retry_after = "1m"

[limits]
max_unavailable_nodes = 0
max_unavailable_ratio = 13

[tenants."/Root/db1"]
max_unavailable_ratio = 25

[[nodes]]
id = 1
host = "storage-1"
port = 19001
data_center = "dc-a"
pdisks = [ { id = 1, path = "/dev/nvme0n1" } ]

[[nodes]]
id = 2
host = "storage-2"
data_center = "dc-b"
state = "down"
pdisks = [ { id = 1, path = "/dev/nvme0n1" } ]

[[nodes]]
id = 3
host = "storage-3"
data_center = "dc-c"
pdisks = [ { id = 1, path = "/dev/nvme0n1" }, { id = 2, path = "/dev/nvme1n1" } ]

[[nodes]]
id = 4
host = "compute-1"
tenant = "/Root/db1"
version = "24.4.1"

[[storage_groups]]
id = 100
erasure = "mirror-3-dc"
vdisks = [ { node = 1, pdisk = 1 }, { node = 2, pdisk = 1 }, { node = 3, pdisk = 2 } ]

[[storage_groups]]
id = 101
erasure = "quorum"
nodes = [1, 2, 3]

[state_storage]
nto_select = 3
rings = [ [1], [2], [3] ]
disabled_rings = [2]

[[sys_tablets]]
type = "HIVE"
nodes = [1, 2, 3]
"#;

#[test]
fn loads_the_design_example() {
    let c = parse(EXAMPLE, Format::Toml).expect("valid");
    assert_eq!(c.node_count(), 4);
    assert_eq!(c.defaults().lock_duration, Duration::from_secs(600));
    assert_eq!(c.defaults().retry_after, Duration::from_secs(60));
    assert_eq!(c.node(2).map(|n| n.initial_state), Some(InitialState::Down));
    assert_eq!(
        c.tenant("/Root/db1")
            .map(|t| (t.limits.max_unavailable_ratio, t.nodes.clone())),
        Some((25, vec![4]))
    );
    let g = c.group(100).expect("group 100");
    assert_eq!(g.erasure, Erasure::Mirror3Dc);
    assert_eq!(g.realms, vec![0, 1, 2]);
    // `nodes = [...]` puts one vdisk on each node's first pdisk.
    assert_eq!(c.vdisks_on(PDiskKey { node: 3, pdisk: 1 }), &[(101, 2)]);
    assert_eq!(c.vdisks_on(PDiskKey { node: 3, pdisk: 2 }), &[(100, 2)]);
    assert_eq!(
        c.pdisk_at("storage-3", "/dev/nvme1n1"),
        Some(PDiskKey { node: 3, pdisk: 2 })
    );
    assert_eq!(c.state_storage().disabled, vec![false, false, true]);
    assert_eq!(c.host_nodes("compute-1"), &[4]);
}

#[test]
fn json_with_the_same_keys_loads_the_same_cluster() {
    let toml_value: toml::Table = toml::from_str(EXAMPLE).expect("toml");
    let json = serde_json::to_string(&toml_value).expect("json");
    let a = parse(EXAMPLE, Format::Toml).expect("toml");
    let b = parse(&json, Format::Json).expect("json");
    assert_eq!(a.nodes, b.nodes);
    assert_eq!(a.groups, b.groups);
    assert_eq!(a.tenants, b.tenants);
    assert_eq!(a.state_storage, b.state_storage);
}

#[test]
fn defaults_apply_when_sections_are_absent() {
    let c = parse("[[nodes]]\nid = 1\nhost = \"h\"\n", Format::Toml).expect("valid");
    assert_eq!(c.limits(), Limits::default());
    assert_eq!(c.limits().max_unavailable_ratio, 13);
    assert_eq!(c.defaults().lock_duration, Duration::from_secs(300));
}

fn problems(text: &str) -> Vec<String> {
    match parse(text, Format::Toml) {
        Ok(_) => panic!("expected problems"),
        Err(e) => e
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect(),
    }
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let got = problems(
        r#"
[limits]
max_unavailable_ratio = 130
max_unavailable_nodez = 1

[defaults]
lock_duration = "soon"

[[nodes]]
id = 1
host = "a"
pdisks = [ { id = 1, path = "/dev/x" }, { id = 1, path = "/dev/y" } ]

[[nodes]]
id = 1
host = "b"

[[nodes]]
id = 2
host = "a"
pdisks = [ { id = 1, path = "/dev/x" } ]
state = "sleeping"

[[storage_groups]]
id = 7
erasure = "block-4-2"
nodes = [1, 2]

[[storage_groups]]
id = 8
erasure = "mirror-9"
nodes = [1, 99]

[state_storage]
nto_select = 4
rings = [ [1], [1] ]
"#,
    );
    let expected = [
        "limits.max_unavailable_ratio: 130 is over 100",
        "limits.max_unavailable_nodez: unknown key",
        "defaults.lock_duration: invalid duration 'soon'",
        "nodes[0] (id 1).pdisks[1] (id 1).id: duplicate pdisk id 1",
        "nodes[1] (id 1).id: duplicate node id 1",
        "nodes[2] (id 2).state: unknown state 'sleeping'",
        "nodes[2] (id 2).pdisks[0] (id 1).path: device path '/dev/x' on host 'a' is also used by node 1",
        "storage_groups[0] (id 7): a block-4-2 group needs 6 to 8 members",
        "storage_groups[1] (id 8).erasure: unknown erasure 'mirror-9'",
        "storage_groups[1] (id 8).nodes[1]: unknown node 99",
        "state_storage.rings[1]: node 1 is already a replica of ring 0",
        "state_storage.nto_select: must be between 1 and the number of rings (2)",
    ];
    for e in expected {
        assert!(
            got.iter().any(|g| g.starts_with(e)),
            "missing '{e}' in {got:#?}"
        );
    }
    assert_eq!(got.len(), expected.len(), "{got:#?}");
}

#[test]
fn mirror3dc_needs_three_data_centers() {
    let mut text = String::new();
    for id in 1..=3 {
        text.push_str(&format!(
            "[[nodes]]\nid = {id}\nhost = \"h{id}\"\ndata_center = \"{}\"\npdisks = [{{ id = 1, path = \"/d\" }}]\n",
            if id == 3 { "dc-2" } else { "dc-1" }
        ));
    }
    text.push_str("[[storage_groups]]\nid = 1\nerasure = \"mirror-3-dc\"\nnodes = [1, 2, 3]\n");
    let got = problems(&text);
    assert!(got[0].contains("exactly 3 data centers"), "{got:?}");
}

#[test]
fn syntax_errors_name_the_format() {
    let e = parse("[[nodes]\nid = 1", Format::Toml).expect_err("bad toml");
    assert!(e.to_string().contains("invalid TOML"), "{e}");
    let e = parse("{\"nodes\": [}", Format::Json).expect_err("bad json");
    assert!(e.to_string().contains("invalid JSON"), "{e}");
    let e = parse("{\"nodes\": 5}", Format::Json).expect_err("bad type");
    assert!(
        e.to_string()
            .contains("nodes: expected an array, found a number"),
        "{e}"
    );
}

#[test]
fn references_to_unknown_nodes_are_reported() {
    let got = problems(
        "[[nodes]]\nid = 1\nhost = \"h\"\n[[sys_tablets]]\ntype = \"HIVE\"\nnodes = [1, 5]\n[state_storage]\nnto_select = 1\nrings = [[3]]\ndisabled_rings = [4]\n",
    );
    assert!(
        got.iter()
            .any(|g| g.starts_with("sys_tablets[0].nodes[1]: unknown node 5")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|g| g.starts_with("state_storage.rings[0][0]: unknown node 3")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|g| g.starts_with("state_storage.disabled_rings[0]: ring index 4")),
        "{got:?}"
    );
}

#[test]
fn a_node_listed_twice_is_reported_at_its_second_place() {
    let got = problems(
        "[[nodes]]\nid = 1\nhost = \"h1\"\n[[nodes]]\nid = 2\nhost = \"h2\"\n\
         [[sys_tablets]]\ntype = \"HIVE\"\nnodes = [1, 2, 1, 2]\n",
    );
    assert_eq!(
        got,
        vec![
            "sys_tablets[0].nodes[2]: node 1 is listed twice".to_string(),
            "sys_tablets[0].nodes[3]: node 2 is listed twice".to_string(),
        ]
    );
}

#[test]
fn format_follows_the_extension() {
    assert_eq!(Format::from_file_name("a/inv.TOML"), Some(Format::Toml));
    assert_eq!(Format::from_file_name("inv.json"), Some(Format::Json));
    assert_eq!(Format::from_file_name("inv.yaml"), None);
}

fn json_problems(text: &str) -> Vec<String> {
    match parse(text, Format::Json) {
        Ok(_) => panic!("expected problems"),
        Err(e) => e
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect(),
    }
}

/// Four nodes in JSON; `node3` is spliced in as the fourth.
fn json_nodes(node3: &str) -> String {
    format!(
        r#"{{"nodes": [
            {{"id": 1, "host": "h1"}},
            {{"id": 2, "host": "h2"}},
            {{"id": 3, "host": "h3"}},
            {node3}
        ]}}"#
    )
}

#[test]
fn a_duplicate_json_key_is_refused_with_its_path() {
    let got = json_problems(&json_nodes(r#"{"id": 4, "host": "h4", "host": "h5"}"#));
    assert_eq!(got, vec!["nodes[3] (id 4).host: duplicate key"]);
    // The error names it as every other inventory problem.
    let e = parse(
        &json_nodes(r#"{"id": 4, "host": "h4", "host": "h5"}"#),
        Format::Json,
    )
    .expect_err("duplicate");
    assert_eq!(
        e.to_string(),
        "1 problem in the inventory:\n  nodes[3] (id 4).host: duplicate key"
    );
}

#[test]
fn nested_and_top_level_duplicates_are_all_reported() {
    let got = json_problems(
        r#"{
            "limits": {"max_unavailable_ratio": 13},
            "tenants": {"/Root/db1": {"max_unavailable_ratio": 20, "max_unavailable_ratio": 30}},
            "nodes": [
                {"id": 1, "host": "h1",
                 "pdisks": [{"id": 1, "path": "/a"}, {"id": 2, "path": "/b", "path": "/c"}]},
                {"host": "h2", "host": "h2"}
            ],
            "state_storage": {"nto_select": 1, "rings": [[1]], "rings": [[1]]},
            "limits": {"max_unavailable_ratio": 14}
        }"#,
    );
    assert_eq!(
        got,
        vec![
            "tenants.\"/Root/db1\".max_unavailable_ratio: duplicate key",
            "nodes[0] (id 1).pdisks[1] (id 2).path: duplicate key",
            // No id to name: the index alone.
            "nodes[1].host: duplicate key",
            "state_storage.rings: duplicate key",
            "limits: duplicate key",
        ]
    );
}

#[test]
fn a_duplicate_id_key_is_refused_too() {
    let got = json_problems(&json_nodes(r#"{"id": 4, "host": "h4", "id": 5}"#));
    assert_eq!(got, vec!["nodes[3] (id 4).id: duplicate key"]);
}

#[test]
fn good_json_reads_as_serde_json_reads_it() {
    let text = r#"{"a": [1, -2, 3.5, 1e300, null, true, false, "x\u00e9\n", [], {}],
                   "b": {"c": {"d": [[18446744073709551615]]}}, "": 0, "nodes": []}"#;
    let expected: Value = serde_json::from_str(text).expect("serde_json");
    let got = json::parse(text).expect("reads");
    assert_eq!(got, expected);
    // Same-named keys in different tables are not duplicates.
    let c = parse(
        r#"{"nodes": [{"id": 1, "host": "h", "pdisks": [{"id": 1, "path": "/d"}]},
                      {"id": 2, "host": "h", "pdisks": [{"id": 1, "path": "/e"}]}]}"#,
        Format::Json,
    )
    .expect("valid");
    assert_eq!(c.node_count(), 2);
}

#[test]
fn json_syntax_errors_still_win_over_duplicates() {
    let e = parse(r#"{"nodes": [], "nodes": []} trailing"#, Format::Json).expect_err("bad");
    assert!(e.to_string().contains("invalid JSON"), "{e}");
}

#[test]
fn entry_paths_name_the_index_and_the_id() {
    let mut text = String::new();
    for id in 1..=37 {
        text.push_str(&format!("[[nodes]]\nid = {id}\nhost = \"h{id}\"\n"));
    }
    text.push_str("state = \"asleep\"\n");
    text.push_str("[[nodes]]\nhost = \"no-id\"\n");
    let got = problems(&text);
    assert_eq!(
        got,
        vec![
            "nodes[36] (id 37).state: unknown state 'asleep' (up | down)",
            "nodes[37].id: missing required key",
        ]
    );
}

#[test]
fn a_device_path_conflict_names_the_entry_as_the_file_has_it() {
    // Node 2's second pdisk entry is refused (duplicate id), so its third is the second kept:
    // the conflict must still name the third entry of the file.
    let got = problems(
        r#"
[[nodes]]
id = 1
host = "a"
pdisks = [ { id = 1, path = "/dev/x" } ]

[[nodes]]
id = 2
host = "a"
pdisks = [ { id = 1, path = "/dev/y" }, { id = 1, path = "/dev/z" }, { id = 2, path = "/dev/x" } ]
"#,
    );
    assert_eq!(
        got,
        vec![
            "nodes[1] (id 2).pdisks[1] (id 1).id: duplicate pdisk id 1 on this node",
            "nodes[1] (id 2).pdisks[2] (id 2).path: device path '/dev/x' on host 'a' is also used by node 1",
        ]
    );
}

#[test]
fn counts_take_the_right_number() {
    let e = parse(
        "[[nodes]]\nid = 1\nhost = \"h\"\ncolour = 1\n",
        Format::Toml,
    )
    .expect_err("bad");
    assert!(
        e.to_string().starts_with("1 problem in the inventory:"),
        "{e}"
    );
    let e = parse(
        "[[nodes]]\nid = 1\nhost = \"h\"\ncolour = 1\nshape = 2\n",
        Format::Toml,
    )
    .expect_err("bad");
    assert!(
        e.to_string().starts_with("2 problems in the inventory:"),
        "{e}"
    );

    let got = problems(
        "[[nodes]]\nid = 1\nhost = \"h\"\n[state_storage]\nnto_select = 1\nrings = [[1]]\ndisabled_rings = [3]\n",
    );
    assert_eq!(
        got,
        vec!["state_storage.disabled_rings[0]: ring index 3 is out of range (there is 1 ring)"]
    );

    let mut text = String::new();
    for (id, dc) in [(1, "dc-1"), (2, "dc-1"), (3, "dc-2")] {
        text.push_str(&format!(
            "[[nodes]]\nid = {id}\nhost = \"h{id}\"\ndata_center = \"{dc}\"\npdisks = [{{ id = 1, path = \"/d\" }}]\n"
        ));
    }
    let one_dc = format!(
        "{}[[storage_groups]]\nid = 1\nerasure = \"mirror-3-dc\"\nnodes = [1, 2, 3]\n",
        text.replace("\"dc-2\"", "\"dc-1\"")
    );
    let got = problems(&one_dc);
    assert!(
        got[0].ends_with("found 1 data center: 'dc-1' with 3 members"),
        "{got:?}"
    );
    text.push_str("[[storage_groups]]\nid = 1\nerasure = \"mirror-3-dc\"\nnodes = [1, 2, 3]\n");
    let got = problems(&text);
    assert!(
        got[0].ends_with("found 2 data centers: 'dc-1' with 2 members, 'dc-2' with 1 member"),
        "{got:?}"
    );
}

#[test]
fn deeply_nested_json_is_refused_not_a_stack_overflow() {
    let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let e = parse(&text, Format::Json).expect_err("too deep");
    assert!(e.to_string().contains("recursion limit"), "{e}");
}

const FLEET_NODES: &str = "[[nodes]]\nid = 1\nhost = \"a\"\nmachine_id = \"m1\"\ndata_center = \"dc-a\"\n[[nodes]]\nid = 2\nhost = \"b\"\ntenant = \"/Root/db\"\n";

#[test]
fn loads_machine_ids_and_fleetlock_groups() {
    let text = format!(
        "{FLEET_NODES}[fleetlock.groups.default]\nslots = 2\nlock_duration = \"30m\"\nmode = \"weak\"\nunauthenticated = true\ndata_center = \"dc-a\"\n[fleetlock.groups.\"db.tier-1\"]\ntenant = \"/Root/db\"\n"
    );
    let c = parse(&text, Format::Toml).expect("valid");
    assert_eq!(
        c.node(1).and_then(|n| n.machine_id.clone()).as_deref(),
        Some("m1")
    );
    assert_eq!(c.node(2).and_then(|n| n.machine_id.clone()), None);
    assert_eq!(c.fleetlock_node("m1"), Some(1));
    assert_eq!(c.fleetlock_node("b"), Some(2));
    let g = c.fleetlock_group("default").expect("default");
    assert_eq!(g.slots, 2);
    assert_eq!(g.lock_duration, Duration::from_secs(1800));
    assert_eq!(g.mode, crate::engine::task::Mode::Weak);
    assert!(g.unauthenticated);
    assert_eq!(
        g.scope,
        crate::engine::windows::WindowScope::DataCenter("dc-a".into())
    );
    let t = c.fleetlock_group("db.tier-1").expect("tier");
    assert_eq!((t.slots, t.unauthenticated), (1, false));
    assert_eq!(
        t.lock_duration,
        crate::engine::cluster::FleetLockGroup::DEFAULT_LOCK_DURATION
    );
    assert_eq!(t.mode, crate::engine::task::Mode::Strong);
    assert_eq!(c.fleetlock_groups().count(), 2);

    // No [fleetlock] table: one default group over every node; an empty one: no groups.
    let c = parse(FLEET_NODES, Format::Toml).expect("valid");
    let d = c.fleetlock_group("default").expect("implicit default");
    assert_eq!(
        (d.slots, &d.scope),
        (1, &crate::engine::windows::WindowScope::All)
    );
    let c = parse(&format!("{FLEET_NODES}[fleetlock]\n"), Format::Toml).expect("valid");
    assert_eq!(c.fleetlock_groups().count(), 0);
}

#[test]
fn reports_fleetlock_problems_with_their_key_paths() {
    let got = problems(&format!(
        "{FLEET_NODES}[[nodes]]\nid = 3\nhost = \"c\"\nmachine_id = \"m1\"\n[[nodes]]\nid = 4\nhost = \"d\"\nmachine_id = \"\"\n\
         [fleetlock]\nsurprise = 1\n[fleetlock.groups.\"bad/name\"]\n[fleetlock.groups.g]\nslots = 0\nlock_duration = \"0s\"\nmode = \"force\"\nunauthenticated = \"yes\"\nnodes = [9]\ncolour = \"red\"\n\
         [fleetlock.groups.h]\nslots = -1\nlock_duration = \"soon\"\ntenant = \"/nope\"\ndata_center = \"dc-a\"\n"
    ));
    let expected = [
        "nodes[2] (id 3).machine_id: machine id 'm1' is also node 1's",
        "nodes[3] (id 4).machine_id: a machine id must not be empty",
        "fleetlock.groups.\"bad/name\": invalid group name 'bad/name'",
        "fleetlock.groups.\"g\".slots: must be at least 1",
        "fleetlock.groups.\"g\".lock_duration: must be longer than zero",
        "fleetlock.groups.\"g\".mode: unknown mode 'force' (strong | weak | smart)",
        "fleetlock.groups.\"g\".unauthenticated: expected true or false",
        "fleetlock.groups.\"g\".nodes[0]: unknown node 9",
        "fleetlock.groups.\"g\".colour: unknown key",
        "fleetlock.groups.\"h\".slots: -1 is not an integer",
        "fleetlock.groups.\"h\".lock_duration: invalid duration 'soon'",
        "fleetlock.groups.\"h\": give one of `all`, `nodes`, `tenant` or `data_center`, not several",
        "fleetlock.surprise: unknown key",
    ];
    for e in expected {
        assert!(
            got.iter().any(|g| g.starts_with(e)),
            "missing {e:?} in {got:#?}"
        );
    }
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    let got = problems(&format!("{FLEET_NODES}[fleetlock]\ngroups = 3\n"));
    assert_eq!(
        got,
        vec!["fleetlock.groups: expected a table of group names"]
    );
}

/// The example as JSON with its top-level keys in the given order (the rest after them).
fn example_json_in_order(first: &[&str]) -> String {
    let toml_value: toml::Table = toml::from_str(EXAMPLE).expect("toml");
    let doc = serde_json::to_value(&toml_value).expect("json");
    let map = doc.as_object().expect("a table");
    let mut keys: Vec<&str> = first.to_vec();
    keys.extend(
        map.keys()
            .map(String::as_str)
            .filter(|k| !first.contains(k)),
    );
    let parts: Vec<String> = keys
        .iter()
        .map(|k| format!("{:?}: {}", k, map[*k]))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

#[test]
fn groups_before_nodes_load_the_same_cluster() {
    let a = parse(&example_json_in_order(&["nodes"]), Format::Json).expect("nodes first");
    let b = parse(
        &example_json_in_order(&["storage_groups", "sys_tablets", "nodes"]),
        Format::Json,
    )
    .expect("groups first");
    assert!(!a.groups.is_empty());
    assert_eq!(a.nodes, b.nodes);
    assert_eq!(a.groups, b.groups);
    assert_eq!(a.tenants, b.tenants);
    assert_eq!(a.sys_tablets, b.sys_tablets);
}

#[test]
fn problems_come_in_one_order_whatever_the_key_order() {
    let nodes = r#""nodes": [{"id": 1, "host": "h1", "colour": "red"}, {"id": 1, "host": "h2"}]"#;
    let groups = r#""storage_groups": [{"id": 7, "erasure": "none", "nodes": [9]}]"#;
    let limits = r#""limits": {"max_unavailable_ratio": 101}"#;
    let a = json_problems(&format!("{{{limits}, {nodes}, {groups}}}"));
    let b = json_problems(&format!("{{{groups}, {nodes}, {limits}}}"));
    assert_eq!(a, b);
    assert_eq!(
        a[0],
        "limits.max_unavailable_ratio: 101 is over 100 (the ratio is a percentage)"
    );
    assert_eq!(a[1], "nodes[0] (id 1).colour: unknown key");
    assert_eq!(a[2], "nodes[1] (id 1).id: duplicate node id 1");
    assert!(a[3].starts_with("storage_groups[0] (id 7)"), "{a:?}");
}

#[test]
fn streamed_keys_that_are_not_arrays_are_reported() {
    assert_eq!(
        json_problems(r#"{"nodes": 5}"#),
        vec![
            "nodes: expected an array, found a number",
            "nodes: the inventory has no nodes",
        ]
    );
    let got = json_problems(r#"{"nodes": [{"id": 1, "host": "h"}], "storage_groups": {"id": 1}}"#);
    assert_eq!(
        got,
        vec!["storage_groups: expected an array, found a table"]
    );
}

#[test]
fn a_duplicate_in_a_streamed_entry_names_an_id_given_after_it() {
    let got = json_problems(&json_nodes(r#"{"host": "h4", "host": "h5", "id": 4}"#));
    assert_eq!(got, vec!["nodes[3] (id 4).host: duplicate key"]);
}

#[test]
fn a_second_nodes_array_is_a_duplicate_and_the_first_counts() {
    let text = r#"{"nodes": [{"id": 1, "host": "h1"}], "nodes": [{"id": 2, "host": "h2"}]}"#;
    assert_eq!(json_problems(text), vec!["nodes: duplicate key"]);
    // Its syntax is still checked.
    let e = parse(
        r#"{"nodes": [{"id": 1, "host": "h1"}], "nodes": [}"#,
        Format::Json,
    )
    .expect_err("bad");
    assert!(e.to_string().contains("invalid JSON"), "{e}");
}

#[test]
fn streamed_arrays_reach_the_sink_entry_by_entry_and_stay_out_of_the_document() {
    let text = r#"{"a": 1, "nodes": [{"id": 1}, {"id": 2}], "b": [3], "storage_groups": []}"#;
    let mut seen = Vec::new();
    let doc = json::parse_streaming(text, &STREAMED, &mut |item| {
        seen.push(match item {
            json::Streamed::Entry { key, index, value } => format!("{key}[{index}] = {value}"),
            json::Streamed::End { key } => format!("end of {key}"),
        })
    })
    .expect("reads");
    assert_eq!(
        seen,
        vec![
            "nodes[0] = {\"id\":1}",
            "nodes[1] = {\"id\":2}",
            "end of nodes",
            "end of storage_groups",
        ]
    );
    assert_eq!(doc, serde_json::json!({"a": 1, "b": [3]}));
}
