use super::*;
use crate::engine::cluster::{Erasure, InitialState};
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
        "nodes[0].pdisks[1].id: duplicate pdisk id 1",
        "nodes[1].id: duplicate node id 1",
        "nodes[2].state: unknown state 'sleeping'",
        "nodes[2].pdisks[0].path: device path '/dev/x' on host 'a' is also used by node 1",
        "storage_groups[0]: a block-4-2 group needs 6 to 8 members",
        "storage_groups[1].erasure: unknown erasure 'mirror-9'",
        "storage_groups[1].nodes[1]: unknown node 99",
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
fn format_follows_the_extension() {
    assert_eq!(Format::from_file_name("a/inv.TOML"), Some(Format::Toml));
    assert_eq!(Format::from_file_name("inv.json"), Some(Format::Json));
    assert_eq!(Format::from_file_name("inv.yaml"), None);
}
