//! The decision engine: pure, synchronous and deterministic.
//!
//! It decides, for every lock a maintenance task asks for, whether taking that component down
//! now keeps the cluster within its failure model and its unavailable-node limits. It never
//! reads a clock (every command takes `now`), never does I/O and never spawns: its result
//! depends only on (state, command, now). The server wraps it; tests drive it directly.
//!
//! # Layout
//! - [`cluster`]: the immutable cluster model and its lookup indexes.
//! - [`inventory`]: the TOML/JSON inventory loader that builds a [`Cluster`].
//! - [`task`]: requests and the tasks the engine keeps.
//! - [`state`]: the mutable state and its commands (create, refresh, complete, drop, expire).
//! - `check`: one check of a task's pending actions against the failure model, with temporary
//!   locks so later actions of the same check see earlier grants.
//! - `rules`: the per-erasure, state-storage and system-tablet tolerance rules.
//! - [`liveness`]: heartbeats, manual node state, heartbeat timeouts, and a node's way back
//!   (restarting, settling) after its lock is released.
//! - [`record`]: the change records the store persists, and the snapshot they rebuild.
//! - [`fence`]: whether a fencing token is the live lock on a node or disk (ValidateFence).
//! - [`reload`]: swapping the inventory without stranding a live lock.
//! - [`report`]: the views that queries and commands answer with.
//! - [`plan`]: a whole rolling restart simulated on a copy of the state (PlanRollout).
//! - [`windows`]: maintenance windows (time zone, days, daily hours, holidays) and the
//!   deadline cut at a window's end.
//! - [`audit`]: the audit trail's entries, their bounds (refusals, retention) and queries.
//! - [`freeze`]: change freezes (cluster, tenant, data center) and read-only mode.
//! - [`budget`]: rate budgets on new grants (cluster, tenant) and the durable log they count.
//! - `check::fairness`: aging within a priority (an old task reserves against newer ones).
//! - [`drain`]: drain and cordon done by a node's agent (kinds of action, work states, the
//!   agent's orders and reports).

pub mod audit;
pub mod budget;
mod check;
pub mod cluster;
pub mod drain;
pub mod error;
pub mod fence;
pub mod freeze;
pub mod inventory;
pub mod liveness;
mod locks;
pub mod plan;
pub mod record;
pub mod reload;
pub mod report;
mod rules;
pub mod state;
pub mod task;
pub mod time;
mod views;
pub mod windows;

pub use cluster::{Cluster, NodeId, PDiskKey};
pub use error::{EngineError, ErrorKind};
pub use liveness::{DEFAULT_RING_SETTLE, HealthConfig, Heartbeat};
pub use record::{Change, Snapshot};
pub use report::{ActionView, NodeCondition, NodeState, NodeView, TaskView};
pub use state::{Outcome, State};
pub use task::{LockRequest, Mode, Reason, Scope, TaskRequest};
pub use time::Timestamp;
