//! Why the engine refuses a command. A refused command changes nothing.

use crate::engine::cluster::NodeId;

/// The wire category of an error; the service maps it to YDB's status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong, or names something that does not exist.
    BadRequest,
    /// The request is well-formed but asks for something this arbiter does not do.
    Unsupported,
    /// The arbiter takes no changes now (read-only mode); a retry later may succeed.
    Unavailable,
}

/// A refused command. Messages follow YDB's texts where clients may match on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// No task has this uid.
    #[error("Task not found")]
    TaskNotFound,
    /// The task uid is taken.
    #[error("Maintenance task already exists")]
    TaskExists,
    /// The task has no such action.
    #[error("Action not found")]
    ActionNotFound,
    /// Empty task uid.
    #[error("A task needs a non-empty task_uid")]
    EmptyTaskUid,
    /// A request field is too long.
    #[error("{field} is longer than {max} bytes")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// More actions in one task than a check may walk.
    #[error("A task may have at most {max} actions; this one has {got}")]
    TooManyActions {
        /// The limit.
        max: usize,
        /// What the request had.
        got: usize,
    },
    /// As many tasks as the arbiter keeps are open.
    #[error("{max} tasks are open, the most the arbiter keeps; complete or drop some first")]
    TooManyTasks {
        /// The limit.
        max: usize,
    },
    /// Priority outside [-100, 100].
    #[error("Priority value is out of range")]
    PriorityOutOfRange,
    /// No action groups.
    #[error("A task needs at least one action group")]
    NoGroups,
    /// A group without actions.
    #[error("Empty actions")]
    EmptyActions,
    /// Several groups, one of them with several actions.
    #[error(
        "A task can have either a single composite action group or many action groups with only one action"
    )]
    MixedGroups,
    /// A scope names a node that is not in the inventory.
    #[error("Unknown node {0}")]
    UnknownNode(NodeId),
    /// A scope names a host that is not in the inventory.
    #[error("Unknown host '{0}'")]
    UnknownHost(String),
    /// A scope names a disk that is not in the inventory.
    #[error("Unknown device {0}")]
    UnknownDevice(String),
    /// A completion that names no action.
    #[error("No action uids to complete")]
    NoActionUids,
    /// Actions of tasks with different owners in one completion.
    #[error("Cannot complete actions of multiple owners at once")]
    MultipleOwners,
    /// Two actions of one task overlap: the same node, disk or host twice, or a node together
    /// with its host or one of its disks. The later could never be granted.
    #[error("{second} overlaps {first}: {overlap}; a task may name each node and disk once")]
    OverlappingActions {
        /// The earlier action, by its place in the request and its scope.
        first: String,
        /// The later action.
        second: String,
        /// What both would lock.
        overlap: String,
    },
    /// The task can never be granted as requested.
    #[error("{0}")]
    Impossible(String),
    /// A freeze (or read-only mode) is on already: the text names who, since when and why.
    #[error("{0}")]
    AlreadyFrozen(String),
    /// Lifting a freeze (or read-only mode) someone else set needs more (admin, --force).
    #[error("{0}")]
    FreezeRefused(String),
    /// Read-only mode is on: the text names why, who and since when.
    #[error("{0}; retry when it is turned off")]
    ReadOnly(String),
}

impl EngineError {
    /// The wire category.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::MixedGroups | EngineError::MultipleOwners => ErrorKind::Unsupported,
            EngineError::ReadOnly(_) => ErrorKind::Unavailable,
            _ => ErrorKind::BadRequest,
        }
    }
}
