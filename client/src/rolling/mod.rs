//! `arbiter rolling-restart`: restarts a set of nodes, each only when the arbiter grants its
//! lock, and completes a node's lock only once the node is seen up again.
//!
//! One task holds a group per node (a lock on the node). The rollout watches the task (the
//! arbiter re-checks it whenever anything changes while its owner watches), runs `--exec` for
//! granted nodes (at most `--inflight` at once, retrying a failed command `--retries` times),
//! waits until the arbiter sees the node up again (bounded by `--up-timeout`, after which the
//! rollout stops and the node keeps its lock), and completes the lock. Run it again with the
//! same `--task-uid` to resume: an existing task's remaining groups are the remaining nodes.
//! Ctrl-C lets the nodes in progress finish, then drops the task (or keeps it with
//! `--keep-task`). `--dry-run` shows which nodes could go first and why the others wait.
//!
//! Modules: `args` the command line; `select` the node filters; `plan` the task (create,
//! resume, dry run); `task` reading action states; `feed` the task's changes (watch, refresh);
//! `executor` the commands; `rollout` the state machine; `progress` and `summary` the output;
//! `signals` Ctrl-C.

mod args;
mod executor;
mod feed;
mod node_run;
mod plan;
mod progress;
mod rollout;
mod select;
mod signals;
mod summary;
mod task;

pub use args::{IdList, Mode, ProgressMode, RollingArgs};

use crate::Client;

/// Why a rolling restart stopped.
#[derive(Debug, thiserror::Error)]
pub enum RollingError {
    /// A call to the arbiter failed.
    #[error(transparent)]
    Client(#[from] crate::ClientError),
    /// The command line asks for something that cannot be done (no nodes selected, an unknown
    /// node id, ...).
    #[error("{0}")]
    Usage(String),
    /// Something on this machine failed (e.g. installing the Ctrl-C handler).
    #[error("{0}")]
    Local(String),
    /// A restarted node was not seen up within `--up-timeout`; the rollout stopped there and
    /// the node keeps its lock.
    #[error("{0}")]
    Stalled(String),
    /// A node's command failed on every attempt (without `--keep-going`); the rollout stopped
    /// there and the node keeps its lock.
    #[error("{0}")]
    CommandFailed(String),
    /// The rollout went through, but some nodes were not restarted (`--keep-going`).
    #[error("{0}")]
    Incomplete(String),
    /// Ctrl-C or SIGTERM: the task was dropped, or kept with `--keep-task`.
    #[error("{0}")]
    Interrupted(String),
    /// The task disappeared before the rollout finished.
    #[error("{0}")]
    TaskGone(String),
}

/// Runs a rolling restart to the end (or until it stops with an error). Progress and a summary
/// go to standard output.
pub async fn run(client: Client, args: RollingArgs) -> Result<(), RollingError> {
    if args.dry_run {
        return plan::dry_run(&client, &args).await;
    }
    if args.exec.as_deref().is_none_or(|e| e.trim().is_empty()) {
        return Err(RollingError::Usage(
            "--exec COMMAND is needed: the command that restarts one node".into(),
        ));
    }
    // From here on Ctrl-C stops the rollout in order instead of killing the process.
    let mut signals = signals::Signals::listen()?;
    let plan = plan::prepare(&client, &args).await?;
    rollout::drive(client, args, plan, &mut signals).await
}
