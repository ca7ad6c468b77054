//! One task as `task show`, `create`, `refresh` and `watch` print it: its options, its times,
//! and every action with its group, id, scope, status, deadline, reason and details. Create,
//! Refresh and the watch answer a `MaintenanceTaskResult` and Get a `GetMaintenanceTaskResult`;
//! both are read through [`TaskView`] so the four commands print the same thing.

use crate::output::{self, Table, fields, or_dash, rfc3339, rfc3339_json};
use arbiter_client::proto::ydb::maintenance::action_scope::{Scope, p_disk};
use arbiter_client::proto::ydb::maintenance::{
    ActionGroupStates, ActionScope, ActionState, GetMaintenanceTaskResult, MaintenanceTaskOptions,
    MaintenanceTaskResult, action,
};
use prost_types::Timestamp;
use serde_json::{Value, json};
use std::time::SystemTime;

/// A task as the server reported it, whichever call reported it.
#[derive(Debug)]
pub(crate) struct TaskView<'a> {
    /// The task uid.
    pub(crate) uid: &'a str,
    /// The options, when the call reports them (Get does; Refresh and the watch do not).
    pub(crate) options: Option<&'a MaintenanceTaskOptions>,
    /// The action groups in request order.
    pub(crate) groups: &'a [ActionGroupStates],
    create_time: Option<&'a Timestamp>,
    last_refresh_time: Option<&'a Timestamp>,
    retry_after: Option<&'a Timestamp>,
}

impl<'a> TaskView<'a> {
    /// From Create, Refresh or a watch update; `options` when the caller knows them.
    pub(crate) fn of_result(
        r: &'a MaintenanceTaskResult,
        options: Option<&'a MaintenanceTaskOptions>,
    ) -> TaskView<'a> {
        TaskView {
            uid: &r.task_uid,
            options,
            groups: &r.action_group_states,
            create_time: r.create_time.as_ref(),
            last_refresh_time: r.last_refresh_time.as_ref(),
            retry_after: r.retry_after.as_ref(),
        }
    }

    /// From Get, which names the task only in its options; `uid` is what was asked for.
    pub(crate) fn of_get(r: &'a GetMaintenanceTaskResult, uid: &'a str) -> TaskView<'a> {
        TaskView {
            uid: r.task_options.as_ref().map_or(uid, |o| o.task_uid.as_str()),
            options: r.task_options.as_ref(),
            groups: &r.action_group_states,
            create_time: r.create_time.as_ref(),
            last_refresh_time: r.last_refresh_time.as_ref(),
            retry_after: None,
        }
    }

    /// Every action with its group, in request order.
    pub(crate) fn actions(&self) -> impl Iterator<Item = Row<'a>> + 'a {
        self.groups.iter().enumerate().flat_map(|(gi, g)| {
            g.action_states
                .iter()
                .enumerate()
                .map(move |(ai, state)| Row { gi, ai, state })
        })
    }

    /// (performed, pending) action counts; an action in progress (granted, its drain or
    /// cordon not done) is counted apart by [`TaskView::in_progress`].
    pub(crate) fn counts(&self) -> (usize, usize) {
        let performed = self.actions().filter(|r| r.is_performed()).count();
        let total = self.actions().count();
        (performed, total - performed - self.in_progress())
    }

    /// How many actions are granted with their drain or cordon still running.
    pub(crate) fn in_progress(&self) -> usize {
        self.actions().filter(|r| r.is_in_progress()).count()
    }

    /// The readable form: a header block, then one table row per action.
    pub(crate) fn table(&self, now: SystemTime) -> String {
        let mut pairs = Vec::new();
        if let Some(o) = self.options {
            pairs.push(("description", or_dash(&o.description)));
            pairs.push(("mode", output::mode(o.availability_mode)));
            pairs.push(("priority", o.priority.to_string()));
            if o.dry_run {
                pairs.push(("dry run", "yes: nothing was stored".to_owned()));
            }
        }
        let when = |t: Option<&Timestamp>| match t {
            None => "-".to_owned(),
            Some(_) => format!("{} ({})", rfc3339(t), output::age(t, now)),
        };
        pairs.push(("created", when(self.create_time)));
        pairs.push(("refreshed", when(self.last_refresh_time)));
        if self.retry_after.is_some() {
            pairs.push(("retry after", rfc3339(self.retry_after)));
        }
        let (performed, pending) = self.counts();
        let in_progress = match self.in_progress() {
            0 => String::new(),
            n => format!(", {n} in progress"),
        };
        pairs.push((
            "actions",
            format!("{performed} performed{in_progress}, {pending} pending"),
        ));
        let mut table = Table::new(&[
            "GROUP", "ACTION", "SCOPE", "STATUS", "DEADLINE", "TOKEN", "REASON", "DETAILS",
        ]);
        for row in self.actions() {
            table.row(vec![
                row.group_id(),
                or_dash(&row.action_id()),
                row.scope_text(),
                output::action_status(row.state.status),
                rfc3339(row.state.deadline.as_ref()),
                row.fencing_token()
                    .map_or_else(|| "-".to_owned(), |t| t.to_string()),
                // A hold (a freeze, a window, a budget) says more than YDB's GENERIC.
                if row.state.hold.is_empty() {
                    output::action_reason(row.state.reason)
                } else {
                    row.state.hold.clone()
                },
                or_dash(&row.state.details),
            ]);
        }
        format!(
            "task {}\n{}{}",
            self.uid,
            fields(&pairs),
            if self.groups.is_empty() {
                String::new()
            } else {
                table.render()
            }
        )
    }

    /// The JSON form: the same fields as the table, times in RFC 3339, enums without prefix.
    pub(crate) fn json(&self) -> Value {
        let (performed, pending) = self.counts();
        json!({
            "task_uid": self.uid,
            "options": self.options.map(options_json),
            "create_time": rfc3339_json(self.create_time),
            "last_refresh_time": rfc3339_json(self.last_refresh_time),
            "retry_after": rfc3339_json(self.retry_after),
            "performed": performed,
            "in_progress": self.in_progress(),
            "pending": pending,
            "action_groups": self.groups.iter().enumerate().map(|(gi, g)| json!({
                "actions": g.action_states.iter().enumerate()
                    .map(|(ai, state)| Row { gi, ai, state }.json())
                    .collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}

/// A task's options as JSON.
pub(crate) fn options_json(o: &MaintenanceTaskOptions) -> Value {
    json!({
        "description": o.description,
        "availability_mode": output::mode(o.availability_mode),
        "priority": o.priority,
        "dry_run": o.dry_run,
    })
}

/// One action of a task with its place.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row<'a> {
    gi: usize,
    ai: usize,
    /// The action's state as the server reported it.
    pub(crate) state: &'a ActionState,
}

impl Row<'_> {
    /// The group id from the action uid; the group's index when there is none (a dry run).
    pub(crate) fn group_id(&self) -> String {
        match &self.state.action_uid {
            Some(u) if !u.group_id.is_empty() => u.group_id.clone(),
            _ => self.gi.to_string(),
        }
    }

    /// The action id (`a-3`); empty when the action has no uid (a dry run).
    pub(crate) fn action_id(&self) -> String {
        self.state
            .action_uid
            .as_ref()
            .map(|u| u.action_id.clone())
            .unwrap_or_default()
    }

    /// The fencing token of a granted action (Arbiter's field 10001 of YDB's ActionState),
    /// also while its drain runs.
    pub(crate) fn fencing_token(&self) -> Option<u64> {
        (self.state.fencing_token != 0).then_some(self.state.fencing_token)
    }

    /// Whether the action is granted and its drain or cordon still runs.
    pub(crate) fn is_in_progress(&self) -> bool {
        output::action_status(self.state.status) == "IN_PROGRESS"
    }

    /// Whether the action holds its lock now.
    pub(crate) fn is_performed(&self) -> bool {
        output::action_status(self.state.status) == "PERFORMED"
    }

    /// The scope of the action the state echoes, if it is a lock.
    pub(crate) fn scope(&self) -> Option<&ActionScope> {
        match self.state.action.as_ref()?.action.as_ref()? {
            action::Action::LockAction(l) => l.scope.as_ref(),
            action::Action::DrainAction(d) => d.scope.as_ref(),
            action::Action::CordonAction(c) => c.scope.as_ref(),
        }
    }

    /// The node the action locks as a whole (`None` for host and disk scopes).
    pub(crate) fn node(&self) -> Option<u32> {
        match self.scope()?.scope.as_ref()? {
            Scope::NodeId(n) => Some(*n),
            _ => None,
        }
    }

    /// `node 3`, `host h`, `pdisk 3:2`, `pdisk h:/dev/x`; prefixed with the kind for drain and
    /// cordon actions (which Arbiter refuses, but an echo may carry).
    pub(crate) fn scope_text(&self) -> String {
        let kind = match self.state.action.as_ref().and_then(|a| a.action.as_ref()) {
            Some(action::Action::DrainAction(_)) => "drain ",
            Some(action::Action::CordonAction(_)) => "cordon ",
            Some(action::Action::LockAction(l)) if l.drain => "lock+drain ",
            _ => "",
        };
        let scope = match self.scope().and_then(|s| s.scope.as_ref()) {
            Some(Scope::NodeId(n)) => format!("node {n}"),
            Some(Scope::Host(h)) => format!("host {h}"),
            Some(Scope::Pdisk(p)) => match &p.pdisk {
                Some(p_disk::Pdisk::PdiskId(id)) => format!("pdisk {}:{}", id.node_id, id.pdisk_id),
                Some(p_disk::Pdisk::PdiskLocation(l)) => format!("pdisk {}:{}", l.host, l.path),
                None => "pdisk ?".to_owned(),
            },
            None => "?".to_owned(),
        };
        format!("{kind}{scope}")
    }

    fn scope_json(&self) -> Value {
        match self.scope().and_then(|s| s.scope.as_ref()) {
            Some(Scope::NodeId(n)) => json!({ "node_id": n }),
            Some(Scope::Host(h)) => json!({ "host": h }),
            Some(Scope::Pdisk(p)) => match &p.pdisk {
                Some(p_disk::Pdisk::PdiskId(id)) => {
                    json!({ "pdisk": { "node_id": id.node_id, "pdisk_id": id.pdisk_id } })
                }
                Some(p_disk::Pdisk::PdiskLocation(l)) => {
                    json!({ "pdisk": { "host": l.host, "path": l.path } })
                }
                None => Value::Null,
            },
            None => Value::Null,
        }
    }

    fn json(&self) -> Value {
        let kind = match self.state.action.as_ref().and_then(|a| a.action.as_ref()) {
            Some(action::Action::LockAction(_)) => "lock",
            Some(action::Action::DrainAction(_)) => "drain",
            Some(action::Action::CordonAction(_)) => "cordon",
            None => "unknown",
        };
        let duration = match self.state.action.as_ref().and_then(|a| a.action.as_ref()) {
            Some(action::Action::LockAction(l)) => l.duration.as_ref().map(|d| d.seconds),
            _ => None,
        };
        let drain_first = matches!(
            self.state.action.as_ref().and_then(|a| a.action.as_ref()),
            Some(action::Action::LockAction(l)) if l.drain
        );
        let id = self.action_id();
        json!({
            "group_id": self.group_id(),
            "action_id": if id.is_empty() { Value::Null } else { Value::String(id) },
            "index": self.ai,
            "kind": kind,
            "drain": drain_first,
            "scope": self.scope_json(),
            "duration_seconds": duration,
            "status": output::action_status(self.state.status),
            "reason": output::action_reason(self.state.reason),
            "hold": if self.state.hold.is_empty() { Value::Null } else { Value::String(self.state.hold.clone()) },
            "deadline": rfc3339_json(self.state.deadline.as_ref()),
            "fencing_token": self.fencing_token(),
            "details": self.state.details,
        })
    }
}
