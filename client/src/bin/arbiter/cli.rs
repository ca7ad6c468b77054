//! The command line: every subcommand and flag, and the parsers that turn flag text into typed
//! values, so that a malformed flag is a usage error (exit 2) before anything is sent.

use arbiter_client::durations::{duration, positive_duration};
use arbiter_client::rolling::RollingArgs;
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// Where the flags every subcommand takes are listed in `--help`.
const GLOBAL: &str = "Global options";

/// The operator's tool for Arbiter, the maintenance-lock arbiter: nodes, tasks, locks.
#[derive(Debug, Parser)]
#[command(name = "arbiter", version)]
pub(crate) struct Cli {
    /// The server: host:port, grpc://host:port or http://host:port; for TLS
    /// https://host:port or grpcs://host:port.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "ARBITER_ENDPOINT",
        default_value = "127.0.0.1:2135",
        value_name = "ADDR"
    )]
    pub(crate) endpoint: String,

    /// An auth token, sent as the ticket (x-ydb-auth-ticket). In open mode it names the caller.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "ARBITER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        conflicts_with = "user"
    )]
    pub(crate) token: Option<String>,

    /// Log in as this user first (Ydb.Auth Login) and use the session token it returns.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "ARBITER_USER",
        value_name = "NAME"
    )]
    pub(crate) user: Option<String>,

    /// The file holding the password for --user (one trailing newline is ignored); `-` reads
    /// standard input. Without it the password comes from ARBITER_PASSWORD.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "ARBITER_PASSWORD_FILE",
        value_name = "FILE",
        requires = "user"
    )]
    pub(crate) password_file: Option<PathBuf>,

    /// TLS: the CA certificates (PEM) the server's certificate must chain to (a self-signed
    /// CA). Without it an https:// or grpcs:// endpoint is checked against the system's roots.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "ARBITER_CA_FILE",
        value_name = "FILE"
    )]
    pub(crate) ca_file: Option<PathBuf>,

    /// Mutual TLS: the client certificate (PEM) to present, with --key-file.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "ARBITER_CERT_FILE",
        value_name = "FILE",
        requires = "key_file"
    )]
    pub(crate) cert_file: Option<PathBuf>,

    /// Mutual TLS: the private key (PEM) of --cert-file.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "ARBITER_KEY_FILE",
        value_name = "FILE",
        requires = "cert_file"
    )]
    pub(crate) key_file: Option<PathBuf>,

    /// How to print results: readable tables, or one JSON document for scripts.
    #[arg(
        long,
        short = 'o',
        global = true,
        help_heading = GLOBAL,
        value_enum,
        default_value_t = Format::Table,
        env = "ARBITER_OUTPUT"
    )]
    pub(crate) output: Format,

    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    /// The TLS options the flags give.
    pub(crate) fn tls(&self) -> arbiter_client::TlsOptions {
        arbiter_client::TlsOptions {
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
        }
    }
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns for people.
    Table,
    /// JSON for scripts (one document; `task watch` prints one object per line).
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Every node: state, availability, lock, last heartbeat, and why it is unavailable.
    Nodes,
    /// One node: mark it up or down by hand, or send heartbeats for it.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Maintenance tasks, one line each.
    Tasks(TasksArgs),
    /// One maintenance task: show, create, refresh, complete, drop, watch.
    #[command(subcommand)]
    Task(TaskCommand),
    /// The inventory the server was started with.
    #[command(subcommand)]
    Inventory(InventoryCommand),
    /// Who the server thinks you are.
    Whoami,
    /// Every arbiter-server instance serving this cluster: id, address, role, the leader's
    /// epoch, last renewal, version (one line for a single instance on redb).
    Instances,
    /// Saves a consistent copy of the whole state of a running server (admins) to a file, for
    /// `arbiter-server restore --in FILE`.
    Backup {
        /// The file to write (replaced whole, never half-written).
        #[arg(long)]
        out: PathBuf,
    },
    /// Restart nodes one batch at a time, each only when the arbiter grants its lock.
    RollingRestart(RollingArgs),
    /// The node agent: heartbeats for one node while it is healthy (`--health`), through server
    /// restarts and outages, until SIGINT or SIGTERM. Run one per node, e.g. under systemd.
    Agent(AgentArgs),
    /// The audit trail: who created, was granted, completed, dropped, set, reloaded or was
    /// refused what, when and why (oldest first).
    Audit(AuditArgs),
    /// Fencing tokens: check that a token is still the live lock before a destructive step.
    #[command(subcommand)]
    Fence(FenceCommand),
    /// Change freezes: no new grants in the cluster, a tenant or a data center (releases still
    /// work; new tasks wait).
    #[command(subcommand)]
    Freeze(FreezeCommand),
    /// Read-only mode of the arbiter itself (admins): every change is refused, reads and
    /// heartbeats keep working.
    #[command(subcommand)]
    ReadOnly(ReadOnlyCommand),
}

/// What a freeze covers: exactly one of these.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("scope").args(["cluster", "tenant", "dc"]).required(true)))]
pub(crate) struct FreezeScopeArgs {
    /// The whole cluster.
    #[arg(long)]
    pub(crate) cluster: bool,
    /// The nodes of this tenant.
    #[arg(long, value_name = "NAME")]
    pub(crate) tenant: Option<String>,
    /// The nodes of this data center.
    #[arg(long, value_name = "NAME")]
    pub(crate) dc: Option<String>,
}

/// `arbiter freeze ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum FreezeCommand {
    /// Freeze a scope: nothing in it is newly granted until `off` (or until --for is up).
    On {
        #[command(flatten)]
        scope: FreezeScopeArgs,
        /// Why (required): pending tasks show it.
        #[arg(long)]
        reason: String,
        /// Lift it by itself after this long (e.g. 2h); without it, until `off`.
        #[arg(long = "for", value_parser = positive_duration, value_name = "DURATION")]
        for_: Option<Duration>,
    },
    /// Lift a freeze: yours, or (admins, with --force) someone else's.
    Off {
        #[command(flatten)]
        scope: FreezeScopeArgs,
        /// Lift a freeze someone else set (admins).
        #[arg(long)]
        force: bool,
    },
    /// The freezes in force (and read-only mode, if on).
    Status,
}

/// `arbiter read-only ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ReadOnlyCommand {
    /// Turn read-only mode on.
    On {
        /// Why (required): every refused call names it.
        #[arg(long)]
        reason: String,
    },
    /// Turn read-only mode off (--force: someone else turned it on).
    Off {
        /// Turn off what someone else turned on.
        #[arg(long)]
        force: bool,
    },
    /// Whether read-only mode is on, since when, by whom and why.
    Status,
}

/// `arbiter fence ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum FenceCommand {
    /// Whether TOKEN is the live lock on the node (or on its disk PDISK) now; prints the answer
    /// (LIVE, SUPERSEDED, RELEASED, EXPIRED or UNKNOWN). Exits 0 only for LIVE, 1 otherwise.
    Check {
        /// The node id.
        #[arg(long, value_name = "ID")]
        node: u32,
        /// A disk of the node (its pdisk id); without it, the whole node.
        #[arg(long, value_name = "ID", value_parser = clap::value_parser!(u32).range(1..))]
        pdisk: Option<u32>,
        /// The fencing token the lock was granted with (`--token` stays the auth ticket).
        #[arg(long, value_name = "N")]
        fencing_token: u64,
    },
}

/// `arbiter audit`.
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Only entries about this task.
    #[arg(long, value_name = "UID")]
    pub(crate) task: Option<String>,
    /// Only entries about this node.
    #[arg(long, value_name = "ID")]
    pub(crate) node: Option<u32>,
    /// Only entries by this user ("arbiter" for what time did). (`--user` is the global
    /// option that logs in.)
    #[arg(long, value_name = "USER")]
    pub(crate) by: Option<String>,
    /// Only entries of this kind: task_created, lock_granted, action_completed, task_dropped,
    /// lock_expired, node_state_set, heartbeat_timeout, inventory_reloaded, refused,
    /// login_failed, refusals_suppressed, freeze_set, read_only_set, work_reported.
    #[arg(long, value_name = "KIND")]
    pub(crate) kind: Option<String>,
    /// Only entries at or after this time: RFC 3339 (2026-01-01T00:00:00Z) or a duration ago
    /// (10m, 2h, 7d).
    #[arg(long, value_parser = crate::audit::parse_since, value_name = "TIME|DURATION")]
    pub(crate) since: Option<crate::audit::Since>,
    /// Keep printing new entries as they come (one line each), until Ctrl-C.
    #[arg(long)]
    pub(crate) follow: bool,
    /// With --follow: how often to ask for new entries (100ms to 1m).
    #[arg(long, default_value = "1s", value_parser = crate::audit::parse_poll, value_name = "DURATION")]
    pub(crate) poll: Duration,
}

/// `arbiter tasks`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("whose").args(["owner", "mine"])))]
pub(crate) struct TasksArgs {
    /// Only the tasks of this user.
    #[arg(long, value_name = "USER")]
    pub(crate) owner: Option<String>,
    /// Only my own tasks (the user WhoAmI names).
    #[arg(long)]
    pub(crate) mine: bool,
}

/// `arbiter task ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum TaskCommand {
    /// A task's options and every action: status, deadline, and what blocks it.
    Show {
        /// The task uid.
        uid: String,
    },
    /// Ask for locks: one group per node, host or disk (all-or-nothing with --composite).
    Create(CreateArgs),
    /// Re-check a task's pending actions now.
    Refresh {
        /// The task uid.
        uid: String,
    },
    /// Complete performed actions (releasing their locks) or withdraw pending ones.
    Complete(CompleteArgs),
    /// Drop a task, releasing all its locks.
    Drop {
        /// The task uid.
        uid: String,
    },
    /// Print the task now and after every change; exits 0 once the task is gone.
    Watch {
        /// The task uid.
        uid: String,
    },
}

/// `arbiter task create`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("targets").args(["nodes", "hosts", "pdisks"]).required(true).multiple(true)))]
pub(crate) struct CreateArgs {
    /// The task uid (chosen by you; unique).
    pub(crate) uid: String,
    /// Lock these nodes (comma-separated ids).
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    pub(crate) nodes: Vec<u32>,
    /// Lock every node of these hosts (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "HOST,...")]
    pub(crate) hosts: Vec<String>,
    /// Lock a disk: NODE:PDISK (ids) or HOST:PATH; repeat or comma-separate for several.
    #[arg(
        long = "pdisk",
        value_delimiter = ',',
        value_name = "NODE:PDISK",
        value_parser = parse_pdisk
    )]
    pub(crate) pdisks: Vec<Pdisk>,
    /// How much availability the cluster must keep.
    #[arg(long, value_enum, default_value_t = Mode::Strong)]
    pub(crate) mode: Mode,
    /// A lower number goes first; a task never overtakes a pending task of higher priority.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub(crate) priority: i32,
    /// How long each lock lasts once granted (e.g. 90s, 10m). Without it, or with 0s, each
    /// lock gets the inventory's default lock duration (its `[defaults] lock_duration`, or the
    /// server's --default-lock-duration), as the server gives any lock that asks for none.
    #[arg(long, value_parser = duration, value_name = "DURATION")]
    pub(crate) duration: Option<Duration>,
    /// Free text kept with the task.
    #[arg(long, default_value = "", value_name = "TEXT")]
    pub(crate) description: String,
    /// Only check what would be granted; nothing is stored.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// One group with every action: all granted together or none.
    #[arg(long)]
    pub(crate) composite: bool,
    /// Drain each node through its agent (`arbiter agent --on-drain`) before its lock counts
    /// as performed: IN_PROGRESS with the drain's progress until then. `--nodes` only.
    #[arg(long, conflicts_with_all = ["pdisks", "hosts"])]
    pub(crate) drain: bool,
    /// Admins only, for emergencies: freezes, maintenance windows and rate budgets do not hold
    /// this task back (the failure model and the node limits still do). Logged and audited.
    #[arg(long)]
    pub(crate) override_holds: bool,
}

/// YDB's availability modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// At most one unavailable member per storage group, ring or tablet set.
    Strong,
    /// Up to what the erasure tolerates.
    Weak,
    /// No availability checks at all.
    Force,
    /// Strong, then weak when strong cannot grant (YDB's smart mode).
    Smart,
}

/// A disk as `--pdisk` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pdisk {
    /// `NODE:PDISK`.
    Id {
        /// The node id.
        node: u32,
        /// The pdisk id on that node.
        pdisk: u32,
    },
    /// `HOST:PATH`.
    Location {
        /// The host.
        host: String,
        /// The device path.
        path: String,
    },
}

/// `arbiter task complete`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").args(["actions", "nodes", "all_performed"]).required(true)))]
pub(crate) struct CompleteArgs {
    /// The task uid.
    pub(crate) uid: String,
    /// These action ids (comma-separated, e.g. a-1,a-2).
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    pub(crate) actions: Vec<String>,
    /// The task's actions on these nodes (comma-separated ids).
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    pub(crate) nodes: Vec<u32>,
    /// Every action of the task that is performed now.
    #[arg(long)]
    pub(crate) all_performed: bool,
}

/// `arbiter node ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Mark a node up (it counts as available again).
    Up {
        /// The node id.
        id: u32,
        /// Why; kept for operators.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Mark a node down (it counts as unavailable, as a locked node does).
    Down {
        /// The node id.
        id: u32,
        /// Why; shown by `arbiter nodes`.
        #[arg(long)]
        reason: String,
    },
    /// Report that a node is alive: once, or every DURATION until stopped (a node agent).
    Heartbeat {
        /// The node id.
        id: u32,
        /// The node's software version.
        #[arg(long, value_name = "V")]
        version: Option<String>,
        /// Keep sending, this often (e.g. 5s): a node agent. It outlasts the server: while the
        /// server is unreachable, restarting, overloaded or not answering (each call may take
        /// DURATION, 2s to 10s), it retries with a growing, jittered delay that never exceeds
        /// DURATION, and says so once; once the server answers again it says so once. It stops
        /// on SIGINT or SIGTERM (exit 0) or on a refusal no retry cures, such as an unknown
        /// node or a refused token (exit 1).
        #[arg(long, value_parser = positive_duration, value_name = "DURATION")]
        every: Option<Duration>,
    },
}

/// `arbiter agent`.
#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    /// The node this agent runs on (its id in the inventory).
    #[arg(long, value_name = "ID")]
    pub(crate) node: u32,
    /// How often to send a heartbeat and to run the health command.
    #[arg(long, value_parser = positive_duration, default_value = "5s", value_name = "DURATION")]
    pub(crate) every: Duration,
    /// A command (run with `sh -c`, with ARBITER_NODE_ID set) that must succeed before the node
    /// is reported up, e.g. a readiness probe: heartbeats pause while it fails, so the node is
    /// seen up again after a restart only once it is healthy.
    #[arg(long, value_name = "CMD")]
    pub(crate) health: Option<String>,
    /// How long one run of the health command may take before it counts as failed (killed).
    #[arg(long, value_parser = positive_duration, default_value = "10s", value_name = "DURATION")]
    pub(crate) health_timeout: Duration,
    /// The node's software version, sent with every heartbeat.
    #[arg(long, value_name = "V")]
    pub(crate) version: Option<String>,
    /// Run when the arbiter asks this node to drain (move its work away), with `sh -c`. The
    /// placeholders {node}, {host}, {task} and {action} are replaced (shell-quoted), and
    /// ARBITER_NODE_ID, ARBITER_HOST, ARBITER_TASK_UID, ARBITER_ACTION_ID and ARBITER_ACTION
    /// are set. A stdout line `progress 42` reports 42%. Exit 0: drained. With any hook the
    /// agent keeps the node's order stream open, and the arbiter grants drains to it.
    #[arg(long, value_name = "CMD")]
    pub(crate) on_drain: Option<String>,
    /// Run when the drain is no longer needed (its action completed or dropped; after a lock,
    /// once the node is seen healthy again): take work back.
    #[arg(long, value_name = "CMD")]
    pub(crate) on_undrain: Option<String>,
    /// Run when the arbiter asks this node to cordon (no new work there).
    #[arg(long, value_name = "CMD")]
    pub(crate) on_cordon: Option<String>,
    /// Run when the cordon is no longer needed.
    #[arg(long, value_name = "CMD")]
    pub(crate) on_uncordon: Option<String>,
    /// How long one run of the drain hook may take before it counts as failed (killed).
    #[arg(long, value_parser = positive_duration, default_value = "30m", value_name = "DURATION")]
    pub(crate) drain_timeout: Duration,
    /// How long one run of the undrain hook may take.
    #[arg(long, value_parser = positive_duration, default_value = "10m", value_name = "DURATION")]
    pub(crate) undrain_timeout: Duration,
    /// How long one run of the cordon hook may take.
    #[arg(long, value_parser = positive_duration, default_value = "5m", value_name = "DURATION")]
    pub(crate) cordon_timeout: Duration,
    /// How long one run of the uncordon hook may take.
    #[arg(long, value_parser = positive_duration, default_value = "5m", value_name = "DURATION")]
    pub(crate) uncordon_timeout: Duration,
    /// How long to wait before running a failed hook again (while the arbiter still asks).
    #[arg(long, value_parser = positive_duration, default_value = "30s", value_name = "DURATION")]
    pub(crate) hook_retry_delay: Duration,
}

/// `arbiter inventory ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum InventoryCommand {
    /// Make the server re-read its inventory file (refused if a live lock would be stranded).
    Reload,
}

/// `NODE:PDISK` (two numbers) or `HOST:PATH`.
fn parse_pdisk(s: &str) -> Result<Pdisk, String> {
    let (left, right) = s
        .split_once(':')
        .filter(|(l, r)| !l.is_empty() && !r.is_empty())
        .ok_or_else(|| format!("'{s}' is not NODE:PDISK or HOST:PATH"))?;
    match (left.parse::<u32>(), right.parse::<u32>()) {
        (Ok(node), Ok(pdisk)) => Ok(Pdisk::Id { node, pdisk }),
        _ if right.starts_with('/') => Ok(Pdisk::Location {
            host: left.to_owned(),
            path: right.to_owned(),
        }),
        _ => Err(format!(
            "'{s}' is not NODE:PDISK (two numbers) or HOST:PATH (an absolute path)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn pdisks_parse_as_ids_or_locations() {
        assert_eq!(parse_pdisk("3:2"), Ok(Pdisk::Id { node: 3, pdisk: 2 }));
        assert_eq!(
            parse_pdisk("storage-1:/dev/nvme0n1"),
            Ok(Pdisk::Location {
                host: "storage-1".into(),
                path: "/dev/nvme0n1".into()
            })
        );
        for bad in ["3", "3:", ":2", "a:b", "3:x"] {
            assert!(parse_pdisk(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fence_check_takes_the_fencing_token_and_keeps_token_for_the_ticket() {
        let cli = Cli::try_parse_from([
            "arbiter",
            "--token",
            "alice",
            "fence",
            "check",
            "--node",
            "3",
            "--fencing-token",
            "17",
        ])
        .expect("parses");
        assert_eq!(cli.token.as_deref(), Some("alice"));
        match cli.command {
            Command::Fence(FenceCommand::Check {
                node,
                pdisk,
                fencing_token,
            }) => {
                assert_eq!((node, pdisk, fencing_token), (3, None, 17));
            }
            other => panic!("not fence check: {other:?}"),
        }
        for bad in [
            vec!["arbiter", "fence", "check", "--node", "3"],
            vec![
                "arbiter",
                "fence",
                "check",
                "--node",
                "3",
                "--fencing-token",
                "x",
            ],
            vec![
                "arbiter",
                "fence",
                "check",
                "--node",
                "3",
                "--fencing-token",
                "1",
                "--pdisk",
                "0",
            ],
        ] {
            assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_must_be_positive() {
        assert_eq!(positive_duration("10m"), Ok(Duration::from_secs(600)));
        assert!(positive_duration("0s").is_err());
        assert!(positive_duration("soon").is_err());
    }

    #[test]
    fn a_zero_lock_duration_is_accepted_and_a_zero_heartbeat_interval_is_not() {
        let create = Cli::try_parse_from([
            "arbiter",
            "task",
            "create",
            "t",
            "--nodes",
            "1",
            "--duration",
            "0s",
        ])
        .expect("0s means the default lock duration");
        match create.command {
            Command::Task(TaskCommand::Create(c)) => assert_eq!(c.duration, Some(Duration::ZERO)),
            other => panic!("not task create: {other:?}"),
        }
        assert!(
            Cli::try_parse_from(["arbiter", "node", "heartbeat", "1", "--every", "0s"]).is_err()
        );
    }
}
