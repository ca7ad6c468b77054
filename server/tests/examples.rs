//! Every inventory in `examples/` loads, and a first lock on it is granted: the files a new user
//! starts from must work.

use arbiter_server::engine::inventory::{self, Format};
use arbiter_server::engine::{LockRequest, Mode, Scope, State, TaskRequest, Timestamp};
use std::path::PathBuf;
use std::sync::Arc;

#[test]
fn example_inventories_load_and_grant_a_first_lock() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/ exists") {
        let path = entry.expect("dir entry").path();
        let name = path.to_string_lossy().into_owned();
        let Some(format) = Format::from_file_name(&name) else {
            continue;
        };
        let text = std::fs::read_to_string(&path).expect("readable");
        let cluster = inventory::parse(&text, format).unwrap_or_else(|e| panic!("{name}: {e}"));
        let first = cluster.nodes().next().expect("a node").id;
        let mut state = State::new(Arc::new(cluster));
        let req = TaskRequest {
            uid: "first".into(),
            owner: "test".into(),
            description: String::new(),
            mode: Mode::Strong,
            priority: 0,
            dry_run: false,
            override_holds: false,
            groups: vec![vec![LockRequest {
                scope: Scope::Node(first),
                duration: None,
                kind: Default::default(),
            }]],
        };
        let out = state
            .create(req, Timestamp(0))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            out.value.actions().all(|a| a.is_performed()),
            "{name}: {:?}",
            out.value
        );
        seen += 1;
    }
    assert!(seen > 0, "no inventories in {}", dir.display());
}

/// An example named `cluster-N` holds N nodes: the name is what a new user picks it by.
#[test]
fn example_names_match_their_node_counts() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for entry in std::fs::read_dir(&dir).expect("examples/ exists") {
        let path = entry.expect("dir entry").path();
        let name = path.to_string_lossy().into_owned();
        let Some(format) = Format::from_file_name(&name) else {
            continue;
        };
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let Some(count) = stem.strip_prefix("cluster-") else {
            continue;
        };
        let named: usize = count
            .split('-')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name}: cluster-<node count>"));
        let text = std::fs::read_to_string(&path).expect("readable");
        let cluster = inventory::parse(&text, format).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(cluster.node_count(), named, "{name}");
    }
}
