//! What a request names, checked against the inventory before anything is decided: its uid,
//! each action's scope resolved to nodes or a disk, and no two actions of one request taking
//! the same item.

use super::*;

impl State {
    /// The request's own limits: its uid, description, priority and size.
    pub(super) fn validate(&self, req: &TaskRequest) -> Result<(), EngineError> {
        if req.uid.is_empty() {
            return Err(EngineError::EmptyTaskUid);
        }
        if req.uid.len() > MAX_ID_LEN {
            return Err(EngineError::TooLong {
                field: "task_uid",
                max: MAX_ID_LEN,
            });
        }
        if req.description.len() > MAX_ID_LEN {
            return Err(EngineError::TooLong {
                field: "description",
                max: MAX_ID_LEN,
            });
        }
        if !PRIORITY_RANGE.contains(&req.priority) {
            return Err(EngineError::PriorityOutOfRange);
        }
        if req.groups.is_empty() {
            return Err(EngineError::NoGroups);
        }
        if req.groups.iter().any(Vec::is_empty) {
            return Err(EngineError::EmptyActions);
        }
        if req.groups.len() > 1 && req.groups.iter().any(|g| g.len() > 1) {
            return Err(EngineError::MixedGroups);
        }
        let actions: usize = req.groups.iter().map(Vec::len).sum();
        if actions > MAX_ACTIONS_PER_TASK {
            return Err(EngineError::TooManyActions {
                max: MAX_ACTIONS_PER_TASK,
                got: actions,
            });
        }
        if !req.dry_run && self.tasks.len() >= MAX_TASKS && !self.tasks.contains_key(&req.uid) {
            return Err(EngineError::TooManyTasks { max: MAX_TASKS });
        }
        for action in req.groups.iter().flatten() {
            match &action.scope {
                Scope::Host(h) if h.len() > MAX_NAME_LEN => {
                    return Err(EngineError::TooLong {
                        field: "host",
                        max: MAX_NAME_LEN,
                    });
                }
                Scope::PDiskPath { host, path }
                    if host.len() > MAX_NAME_LEN || path.len() > MAX_NAME_LEN =>
                {
                    return Err(EngineError::TooLong {
                        field: "pdisk location",
                        max: MAX_NAME_LEN,
                    });
                }
                _ => {}
            }
        }
        self.refuse_overlaps(req)?;
        if self.tasks.contains_key(&req.uid) {
            return Err(EngineError::TaskExists);
        }
        Ok(())
    }

    /// Resolves every action of a request and refuses one that overlaps an earlier action of
    /// the same request (it could never be granted, and would wait forever).
    pub(super) fn refuse_overlaps(&self, req: &TaskRequest) -> Result<(), EngineError> {
        // Who takes each node whole, and each disk, so far: (group, action, scope).
        let mut nodes: HashMap<NodeId, (usize, usize)> = HashMap::new();
        let mut disks: HashMap<PDiskKey, (usize, usize)> = HashMap::new();
        let mut disk_nodes: HashMap<NodeId, (usize, usize, PDiskKey)> = HashMap::new();
        let name = |gi: usize, ai: usize| {
            let scope = &req.groups[gi][ai].scope;
            format!("action_groups[{gi}].actions[{ai}] ({scope})")
        };
        let refuse = |first: (usize, usize), second: (usize, usize), overlap: String| {
            Err(EngineError::OverlappingActions {
                first: name(first.0, first.1),
                second: name(second.0, second.1),
                overlap,
            })
        };
        for (gi, group) in req.groups.iter().enumerate() {
            for (ai, action) in group.iter().enumerate() {
                match self.resolve(&action.scope)? {
                    Items::Nodes(ns) => {
                        for n in ns {
                            if let Some(first) = nodes.get(&n) {
                                return refuse(*first, (gi, ai), format!("both take node {n}"));
                            }
                            if let Some((g, a, k)) = disk_nodes.get(&n) {
                                let overlap = format!("node {n} holds pdisk {k}");
                                return refuse((*g, *a), (gi, ai), overlap);
                            }
                            nodes.insert(n, (gi, ai));
                        }
                    }
                    Items::PDisk(k) => {
                        if let Some(first) = disks.get(&k) {
                            return refuse(*first, (gi, ai), format!("both take pdisk {k}"));
                        }
                        if let Some(first) = nodes.get(&k.node) {
                            let overlap = format!("pdisk {k} is on node {}", k.node);
                            return refuse(*first, (gi, ai), overlap);
                        }
                        disks.insert(k, (gi, ai));
                        disk_nodes.entry(k.node).or_insert((gi, ai, k));
                    }
                }
            }
        }
        Ok(())
    }

    /// What a scope names in the current inventory.
    pub(crate) fn resolve(&self, scope: &Scope) -> Result<Items, EngineError> {
        resolve(&self.cluster, scope)
    }
}

/// What a scope names in `cluster`.
pub(crate) fn resolve(cluster: &Cluster, scope: &Scope) -> Result<Items, EngineError> {
    match scope {
        Scope::Node(n) => match cluster.node(*n) {
            Some(_) => Ok(Items::Nodes(vec![*n])),
            None => Err(EngineError::UnknownNode(*n)),
        },
        Scope::Host(h) => {
            let nodes = cluster.host_nodes(h);
            if nodes.is_empty() {
                // YDB treats a numeric host as a node id.
                match h.parse::<NodeId>() {
                    Ok(n) if cluster.node(n).is_some() => Ok(Items::Nodes(vec![n])),
                    _ => Err(EngineError::UnknownHost(h.clone())),
                }
            } else {
                Ok(Items::Nodes(nodes.to_vec()))
            }
        }
        Scope::PDisk(k) => {
            if cluster.has_pdisk(*k) {
                Ok(Items::PDisk(*k))
            } else {
                Err(EngineError::UnknownDevice(format!("pdisk {k}")))
            }
        }
        Scope::PDiskPath { host, path } => cluster
            .pdisk_at(host, path)
            .map(Items::PDisk)
            .ok_or_else(|| EngineError::UnknownDevice(format!("{host}:{path}"))),
    }
}
