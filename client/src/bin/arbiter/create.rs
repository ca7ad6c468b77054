//! `arbiter task create`: turns `--nodes`, `--hosts` and `--pdisk` into lock actions, one group
//! each (partial grants: each group is decided on its own) or, with `--composite`, one group
//! holding them all (granted together or not at all).

use crate::Ctx;
use crate::cli::{CreateArgs, Format, Mode, Pdisk};
use crate::error::Failure;
use crate::output::{emit, emit_json};
use crate::task_view::TaskView;
use arbiter_client::proto::ydb::maintenance::action_scope::{PDisk, PDiskId, PDiskLocation};
use arbiter_client::proto::ydb::maintenance::action_scope::{Scope, p_disk};
use arbiter_client::proto::ydb::maintenance::{
    Action, ActionGroup, ActionScope, AvailabilityMode, CreateMaintenanceTaskRequest, LockAction,
    MaintenanceTaskOptions, action,
};
use std::time::{Duration, SystemTime};

/// Creates (or, with `--dry-run`, checks) the task and prints it as `task show` does.
pub(crate) async fn run(ctx: &Ctx, args: &CreateArgs) -> Result<(), Failure> {
    let req = request(args);
    let options = req.task_options.clone();
    let result = ctx.client.create_task(req).await?;
    let view = TaskView::of_result(&result, options.as_ref());
    match ctx.format {
        Format::Table => emit(&view.table(SystemTime::now())),
        Format::Json => emit_json(&view.json()),
    }
    Ok(())
}

/// The CreateMaintenanceTask request the flags describe: nodes, then hosts, then disks, in the
/// order given. `--duration 0s` sends no duration, as leaving the flag out does: the server
/// gives either the inventory's default lock duration.
pub(crate) fn request(args: &CreateArgs) -> CreateMaintenanceTaskRequest {
    let duration = args.duration.filter(|d| !d.is_zero()).map(proto_duration);
    let scopes = args
        .nodes
        .iter()
        .map(|n| Scope::NodeId(*n))
        .chain(args.hosts.iter().map(|h| Scope::Host(h.clone())))
        .chain(args.pdisks.iter().map(pdisk_scope));
    let actions: Vec<Action> = scopes
        .map(|scope| Action {
            action: Some(action::Action::LockAction(LockAction {
                scope: Some(ActionScope { scope: Some(scope) }),
                duration,
                drain: args.drain,
            })),
        })
        .collect();
    let action_groups = if args.composite {
        vec![ActionGroup { actions }]
    } else {
        actions
            .into_iter()
            .map(|a| ActionGroup { actions: vec![a] })
            .collect()
    };
    CreateMaintenanceTaskRequest {
        operation_params: None,
        task_options: Some(MaintenanceTaskOptions {
            task_uid: args.uid.clone(),
            description: args.description.clone(),
            availability_mode: match args.mode {
                Mode::Strong => AvailabilityMode::Strong,
                Mode::Weak => AvailabilityMode::Weak,
                Mode::Force => AvailabilityMode::Force,
                Mode::Smart => AvailabilityMode::Smart,
            } as i32,
            dry_run: args.dry_run,
            priority: args.priority,
            override_holds: args.override_holds,
        }),
        action_groups,
    }
}

fn pdisk_scope(p: &Pdisk) -> Scope {
    let pdisk = match p {
        Pdisk::Id { node, pdisk } => p_disk::Pdisk::PdiskId(PDiskId {
            node_id: *node,
            pdisk_id: *pdisk,
        }),
        Pdisk::Location { host, path } => p_disk::Pdisk::PdiskLocation(PDiskLocation {
            host: host.clone(),
            path: path.clone(),
        }),
    };
    Scope::Pdisk(PDisk { pdisk: Some(pdisk) })
}

/// Whole seconds and nanos; a duration too long for the wire saturates (the server then
/// refuses it as longer than its maximum lock).
fn proto_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command, TaskCommand};
    use clap::Parser;

    fn parse(args: &[&str]) -> CreateArgs {
        let cli = Cli::try_parse_from(args).expect("valid arguments");
        match cli.command {
            Command::Task(TaskCommand::Create(c)) => c,
            other => panic!("not task create: {other:?}"),
        }
    }

    #[test]
    fn one_group_per_target_unless_composite() {
        let args = parse(&[
            "arbiter", "task", "create", "t", "--nodes", "1,2", "--hosts", "h", "--pdisk", "3:2",
        ]);
        let req = request(&args);
        assert_eq!(req.action_groups.len(), 4);
        assert!(req.action_groups.iter().all(|g| g.actions.len() == 1));
        let composite = request(&parse(&[
            "arbiter",
            "task",
            "create",
            "t",
            "--nodes",
            "1,2",
            "--composite",
            "--duration",
            "10m",
            "--mode",
            "weak",
        ]));
        assert_eq!(composite.action_groups.len(), 1);
        assert_eq!(composite.action_groups[0].actions.len(), 2);
        let options = composite.task_options.expect("options");
        assert_eq!(options.availability_mode, AvailabilityMode::Weak as i32);
        match &composite.action_groups[0].actions[0].action {
            Some(action::Action::LockAction(l)) => {
                assert_eq!(l.duration.map(|d| d.seconds), Some(600));
            }
            other => panic!("not a lock: {other:?}"),
        }
    }

    #[test]
    fn zero_or_no_duration_asks_for_the_default() {
        for args in [
            &["arbiter", "task", "create", "t", "--nodes", "1"][..],
            &[
                "arbiter",
                "task",
                "create",
                "t",
                "--nodes",
                "1",
                "--duration",
                "0s",
            ],
        ] {
            let req = request(&parse(args));
            match &req.action_groups[0].actions[0].action {
                Some(action::Action::LockAction(l)) => assert_eq!(l.duration, None, "{args:?}"),
                other => panic!("not a lock: {other:?}"),
            }
        }
    }

    #[test]
    fn a_task_needs_a_target() {
        assert!(Cli::try_parse_from(["arbiter", "task", "create", "t"]).is_err());
    }
}
