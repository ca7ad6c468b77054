//! The command line of `arbiter rolling-restart`, and the parsers behind its flags.

use crate::durations::{duration, positive_duration};
use crate::proto::ydb::maintenance::AvailabilityMode;
use std::time::Duration;

/// The arguments of `arbiter rolling-restart`.
///
/// Filters combine: `--storage` and `--tenant` add kinds of nodes (none given: every kind),
/// `--dc` and `--nodes` narrow them, `--exclude` removes nodes. Run again with the same
/// `--task-uid` to resume an interrupted rollout: the task's remaining nodes are the work, and
/// the filters are not needed.
#[derive(Debug, Clone, clap::Args)]
pub struct RollingArgs {
    /// Every node of the cluster.
    #[arg(long, help_heading = "Which nodes", conflicts_with_all = ["storage", "tenant", "dc", "nodes"])]
    pub all: bool,

    /// The storage nodes (nodes without a tenant).
    #[arg(long, help_heading = "Which nodes")]
    pub storage: bool,

    /// The dynamic nodes of this tenant (repeatable).
    #[arg(long, value_name = "TENANT", help_heading = "Which nodes")]
    pub tenant: Vec<String>,

    /// Only nodes in this data center (repeatable).
    #[arg(
        long = "dc",
        visible_alias = "data-center",
        value_name = "DC",
        help_heading = "Which nodes"
    )]
    pub dc: Vec<String>,

    /// Only these node ids, e.g. `1,2,7-9` (repeatable).
    #[arg(long, value_name = "IDS", value_parser = parse_ids, help_heading = "Which nodes")]
    pub nodes: Vec<IdList>,

    /// Leave these node ids out, e.g. `4,10-12` (repeatable).
    #[arg(long, value_name = "IDS", value_parser = parse_ids, help_heading = "Which nodes")]
    pub exclude: Vec<IdList>,

    /// Also restart nodes that are not up at the start (by default they are skipped).
    #[arg(long, help_heading = "Which nodes")]
    pub include_down: bool,

    /// The command that restarts one node, run with `sh -c`. `{id}`, `{host}` and `{port}` are
    /// replaced by the node's values; the environment has ARBITER_NODE_ID, ARBITER_NODE_HOST,
    /// ARBITER_NODE_PORT, ARBITER_TASK_UID and ARBITER_ATTEMPT. Exit status 0 means restarted.
    #[arg(
        long,
        value_name = "COMMAND",
        required_unless_present = "dry_run",
        help_heading = "Restarting"
    )]
    pub exec: Option<String>,

    /// How many nodes may be restarting (or coming back up) at once.
    #[arg(
        long,
        default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(1..=10_000),
        help_heading = "Restarting"
    )]
    pub inflight: u32,

    /// How many times a failed command is tried again (on the same node, under the same lock).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=100), help_heading = "Restarting")]
    pub retries: u32,

    /// The pause before a failed command is tried again.
    #[arg(long, default_value = "5s", value_parser = duration, help_heading = "Restarting")]
    pub retry_delay: Duration,

    /// A command still running after this long is killed (and counts as failed).
    #[arg(long, default_value = "10m", value_parser = positive_duration, help_heading = "Restarting")]
    pub command_timeout: Duration,

    /// After its command, a node must be seen up again within this long, or the rollout stops
    /// (the node keeps its lock).
    #[arg(long, default_value = "10m", value_parser = positive_duration, help_heading = "Restarting")]
    pub up_timeout: Duration,

    /// How often to ask the arbiter whether restarted nodes are up again.
    #[arg(long, default_value = "1s", value_parser = positive_duration, help_heading = "Restarting")]
    pub poll_interval: Duration,

    /// When a node's command fails (after its retries), go on with the other nodes instead of
    /// stopping. The failed node keeps its lock.
    #[arg(long, help_heading = "Restarting")]
    pub keep_going: bool,

    /// The task's uid [default: rolling-restart-<unix time>]. If the task exists, the rollout
    /// resumes it.
    #[arg(long, value_name = "UID", help_heading = "Task")]
    pub task_uid: Option<String>,

    /// Availability mode: how much of the failure model the rollout may use.
    #[arg(long, value_enum, default_value_t = Mode::Strong, help_heading = "Task")]
    pub mode: Mode,

    /// Task priority, -100 to 100; a lower value is more important.
    #[arg(
        long,
        default_value_t = 0,
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(i32).range(-100..=100),
        help_heading = "Task"
    )]
    pub priority: i32,

    /// Ask the arbiter to drain each node through its agent (`arbiter agent --on-drain`) before
    /// its lock counts as granted: the command runs only once the node is drained, and the
    /// agent takes work back once the node is seen healthy again.
    #[arg(long, help_heading = "Task")]
    pub drain: bool,

    /// How long each node's lock lasts; longer than one node's restart (with retries) plus
    /// --up-timeout.
    #[arg(long, default_value = "1h", value_parser = positive_duration, help_heading = "Task")]
    pub lock_duration: Duration,

    /// On Ctrl-C (or SIGTERM), keep the task (and its locks) for a later resume instead of
    /// dropping it.
    #[arg(long, help_heading = "Task")]
    pub keep_task: bool,

    /// Only show the plan under the current state: every wave, the nodes that can never be
    /// granted and why, and an estimate (waves × --time-per-node). Nothing is stored.
    #[arg(long, help_heading = "Task")]
    pub dry_run: bool,

    /// For --dry-run's estimate: how long one node takes, from its grant until it is back up
    /// (the plan's waves × this).
    #[arg(long, default_value = "5m", value_parser = positive_duration, help_heading = "Task")]
    pub time_per_node: Duration,

    /// Print --dry-run's plan as JSON (the CLI sets it from `--output json`).
    #[arg(skip)]
    pub json: bool,

    /// Progress display: a bar on a terminal, plain lines otherwise (auto), or either.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, value_name = "HOW")]
    pub progress: ProgressMode,
}

/// A list of node ids as written on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdList(pub Vec<u32>);

/// Availability modes, as YDB names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// At most one unavailable part of every storage group and state-storage ring.
    Strong,
    /// Use the failure model's whole tolerance (e.g. two vdisks of a block-4-2 group).
    Weak,
    /// Strong rules, falling back to weak ones.
    Smart,
    /// No availability checks (lock conflicts still apply).
    Force,
}

impl Mode {
    /// The wire value.
    pub fn wire(self) -> AvailabilityMode {
        match self {
            Mode::Strong => AvailabilityMode::Strong,
            Mode::Weak => AvailabilityMode::Weak,
            Mode::Smart => AvailabilityMode::Smart,
            Mode::Force => AvailabilityMode::Force,
        }
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar when standard output is a terminal, plain lines otherwise.
    Auto,
    /// A one-line bar, redrawn in place.
    Bar,
    /// One line per event.
    Lines,
}

impl RollingArgs {
    /// The task uid: the given one, or `rolling-restart-<unix time>`.
    pub(crate) fn task_uid(&self) -> String {
        match &self.task_uid {
            Some(uid) => uid.clone(),
            None => {
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                format!("rolling-restart-{secs}")
            }
        }
    }

    /// Whether any node filter was given.
    pub(crate) fn has_selection(&self) -> bool {
        self.all
            || self.storage
            || !self.tenant.is_empty()
            || !self.dc.is_empty()
            || !self.nodes.is_empty()
    }

    /// The longest one node may take: every attempt at its longest, the pauses between them,
    /// and the wait for it to come back.
    pub(crate) fn worst_case_per_node(&self) -> Duration {
        let attempts = self.retries.saturating_add(1);
        self.command_timeout
            .saturating_mul(attempts)
            .saturating_add(self.retry_delay.saturating_mul(self.retries))
            .saturating_add(self.up_timeout)
    }
}

/// Parses `1,2,7-9` (spaces allowed) into ids.
pub(crate) fn parse_ids(s: &str) -> Result<IdList, String> {
    let mut ids = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let one = |t: &str| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| format!("'{t}' is not a node id (expected e.g. 1,2,7-9)"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (one(a)?, one(b)?);
                if a > b {
                    return Err(format!("the range {part} is empty"));
                }
                if b - a >= 100_000 {
                    return Err(format!("the range {part} is too long"));
                }
                ids.extend(a..=b);
            }
            None => ids.push(one(part)?),
        }
    }
    if ids.is_empty() {
        return Err("no node ids given".into());
    }
    Ok(IdList(ids))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: RollingArgs,
    }

    fn parse(argv: &[&str]) -> Result<RollingArgs, clap::Error> {
        let mut all = vec!["arbiter"];
        all.extend_from_slice(argv);
        Cli::try_parse_from(all).map(|c| c.args)
    }

    #[test]
    fn id_lists_take_ranges() {
        assert_eq!(parse_ids("1, 2,7-9").expect("ok").0, vec![1, 2, 7, 8, 9]);
        for bad in ["", "x", "3-1", "1-", "-1", "1,,x"] {
            assert!(parse_ids(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn defaults_and_requirements() {
        let a = parse(&["--all", "--exec", "true"]).expect("ok");
        assert_eq!(a.mode, Mode::Strong);
        assert_eq!(a.inflight, 1);
        assert_eq!(a.retries, 2);
        assert_eq!(a.up_timeout, Duration::from_secs(600));
        assert!(a.task_uid().starts_with("rolling-restart-"));
        assert!(parse(&["--all"]).is_err(), "--exec is needed");
        assert!(
            parse(&["--all", "--dry-run"]).is_ok(),
            "but not for a dry run"
        );
        assert!(parse(&["--all", "--dc", "a", "--exec", "x"]).is_err());
        assert!(parse(&["--all", "--exec", "x", "--inflight", "0"]).is_err());
        let a = parse(&["--storage", "--exec", "x", "--priority", "-5"]).expect("ok");
        assert_eq!(a.priority, -5);
        assert!(parse(&["--all", "--exec", "x", "--priority", "101"]).is_err());
        assert!(parse(&["--all", "--exec", "x", "--up-timeout", "0s"]).is_err());
    }
}
