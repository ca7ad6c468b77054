//! The server's command line (a user-facing contract; see the design's "Server command line").
//! Every option can also come from an environment variable.

use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Arbiter: a maintenance lock arbiter that speaks YDB's maintenance API.
#[derive(Debug, Clone, Parser)]
#[command(name = "arbiter-server", version, about, long_about = None, subcommand_negates_reqs = true)]
pub struct Config {
    /// Without a command the server runs; `export` and `import` move the state between stores.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The cluster inventory (.toml or .json).
    #[arg(
        long,
        env = "ARBITER_INVENTORY",
        required_unless_present = "hash_password"
    )]
    pub inventory: Option<PathBuf>,

    /// Address to serve gRPC on (IP:PORT; port 0 picks a free one).
    #[arg(long, env = "ARBITER_LISTEN", default_value = "127.0.0.1:2135")]
    pub listen: SocketAddr,

    /// Address to serve HTTP on (metrics, dashboard, REST, FleetLock): IP:PORT (port 0 picks a
    /// free one), or `off`.
    #[arg(long, env = "ARBITER_HTTP_LISTEN", default_value = "off", value_parser = http_listen)]
    pub http_listen: HttpListen,

    /// TLS on the gRPC and HTTP listeners: the server's certificate chain (PEM, its own
    /// certificate first), with --tls-key. Read again on SIGHUP: new connections get the new
    /// certificate; one that does not load is refused and the old one kept.
    #[arg(
        long,
        env = "ARBITER_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "ARBITER_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Mutual TLS: CA certificates (PEM) that every client's certificate must chain to; a
    /// client without one is refused in the handshake. Needs --tls-cert. Read again on SIGHUP.
    #[arg(
        long,
        env = "ARBITER_TLS_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,

    /// With --store etcd: CA certificates (PEM) the leader's certificate must chain to when a
    /// follower relays a call to it over TLS (verified for the host of the leader's advertise
    /// address); default: --tls-client-ca. Needs --tls-cert. Read again on SIGHUP.
    #[arg(
        long,
        env = "ARBITER_TLS_PEER_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_peer_ca: Option<PathBuf>,

    /// Directory for the durable store (created if missing).
    #[arg(long, env = "ARBITER_DATA_DIR", default_value = "./arbiter-data")]
    pub data_dir: PathBuf,

    /// Start even if the store in --data-dir is damaged, missing, emptied, replaced or an older
    /// copy: the file is moved aside (renamed *.lost-<time>, never deleted) and the server starts
    /// with an empty store, forgetting every task and lock it held. Without it such a store is
    /// refused (exit 1). Use it once, after deciding that the old state is lost.
    #[arg(
        long,
        env = "ARBITER_ACCEPT_STORE_LOSS",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub accept_store_loss: bool,

    /// Where the state lives: `redb` (one file in --data-dir: a single instance) or `etcd`
    /// (shared by every instance on --etcd-endpoints, one of which leads).
    #[arg(long, env = "ARBITER_STORE", value_enum, default_value_t = StoreKind::Redb)]
    pub store: StoreKind,

    /// etcd's client URLs, comma-separated (with --store etcd), e.g.
    /// http://10.0.0.1:2379,http://10.0.0.2:2379,http://10.0.0.3:2379.
    #[arg(long, env = "ARBITER_ETCD_ENDPOINTS", value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,

    /// The etcd key prefix of this arbiter's state; several arbiters may share one etcd.
    #[arg(long, env = "ARBITER_ETCD_PREFIX", default_value = "/arbiter/default")]
    pub etcd_prefix: String,

    /// The address other instances forward calls to (HOST:PORT); default: the listen address.
    #[arg(long, env = "ARBITER_ADVERTISE")]
    pub advertise: Option<String>,

    /// This instance's name among the instances; default: its advertise address.
    #[arg(long, env = "ARBITER_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// The leader's lease: a leader that cannot renew it stops deciding before it runs out, and
    /// another instance takes over within about this long after a leader dies (whole seconds,
    /// at least 2s: etcd's shortest lease).
    #[arg(long, env = "ARBITER_LEADER_LEASE", default_value = "10s", value_parser = lease)]
    pub leader_lease: Duration,

    /// Users, tokens and roles (TOML). Without it the server is open to everyone.
    #[arg(long, env = "ARBITER_AUTH")]
    pub auth: Option<PathBuf>,

    /// The longest lock a client may ask for.
    #[arg(long, env = "ARBITER_MAX_LOCK_DURATION", default_value = "7d", value_parser = duration)]
    pub max_lock_duration: Duration,

    /// The most task watch streams (WatchMaintenanceTask) open at once.
    #[arg(long, env = "ARBITER_MAX_WATCHES", default_value_t = 4096,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_watches: u32,

    /// The most task watch streams one user may hold open at once (so that one user cannot
    /// take every slot).
    #[arg(long, env = "ARBITER_MAX_WATCHES_PER_USER", default_value_t = 256,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_watches_per_user: u32,

    /// Lock duration for actions that ask for none (overrides the inventory's [defaults]).
    #[arg(long, env = "ARBITER_DEFAULT_LOCK_DURATION", value_parser = duration)]
    pub default_lock_duration: Option<Duration>,

    /// Retry hint for tasks that got nothing (overrides the inventory's [defaults]).
    #[arg(long, env = "ARBITER_DEFAULT_RETRY_AFTER", value_parser = duration)]
    pub default_retry_after: Option<Duration>,

    /// A node agent that has sent heartbeats and then stays silent this long makes its node
    /// DOWN (unset: heartbeats never time out).
    #[arg(long, env = "ARBITER_HEARTBEAT_TIMEOUT", value_parser = duration)]
    pub heartbeat_timeout: Option<Duration>,

    /// After a node comes back up (or, for a node without an agent, after its lock is
    /// released) it counts as unavailable for this long.
    #[arg(long, env = "ARBITER_SETTLE_TIME", default_value = "0s", value_parser = settle)]
    pub settle_time: Duration,

    /// A state-storage replica that came up less than this long ago makes its ring count as
    /// unavailable (YDB's "recently started" rule; YDB fixes it at 2 minutes).
    #[arg(long, env = "ARBITER_RING_SETTLE_TIME", default_value = "2m", value_parser = settle)]
    pub ring_settle_time: Duration,

    /// The audit trail keeps at most this many entries; the oldest are dropped first.
    #[arg(long, env = "ARBITER_AUDIT_MAX_ENTRIES", default_value_t = 100_000,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub audit_max_entries: u64,

    /// Audit entries older than this are dropped (the newest is always kept).
    #[arg(long, env = "ARBITER_AUDIT_MAX_AGE", default_value = "90d", value_parser = duration)]
    pub audit_max_age: Duration,

    /// At most this many refusals (refused mutating calls, failed logins) are recorded per
    /// --audit-refusal-window; the rest are counted in one "refusals_suppressed" entry.
    #[arg(long, env = "ARBITER_AUDIT_MAX_REFUSALS", default_value_t = 60)]
    pub audit_max_refusals: u32,

    /// The window of --audit-max-refusals.
    #[arg(long, env = "ARBITER_AUDIT_REFUSAL_WINDOW", default_value = "1m", value_parser = duration)]
    pub audit_refusal_window: Duration,

    /// How long calls in flight get to finish after SIGINT/SIGTERM before the server exits.
    #[arg(long, env = "ARBITER_SHUTDOWN_GRACE", default_value = "10s", value_parser = duration)]
    pub shutdown_grace: Duration,

    /// Log line format.
    #[arg(long, env = "ARBITER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter, in tracing's EnvFilter syntax (e.g. "info", "arbiter_server=debug").
    #[arg(long, env = "ARBITER_LOG", default_value = "info")]
    pub log: String,

    /// Read a password from stdin, print its argon2 hash for the auth file, and exit.
    #[arg(long)]
    pub hash_password: bool,
}

impl Config {
    /// The audit trail's bounds these options set.
    pub fn audit(&self) -> crate::engine::audit::AuditConfig {
        crate::engine::audit::AuditConfig {
            max_entries: usize::try_from(self.audit_max_entries).unwrap_or(usize::MAX),
            max_age: self.audit_max_age,
            refusals_per_window: self.audit_max_refusals,
            refusal_window: self.audit_refusal_window,
        }
    }
}

/// Where the state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// One redb file in --data-dir.
    Redb,
    /// etcd, shared by every instance.
    Etcd,
}

impl StoreKind {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Redb => "redb",
            StoreKind::Etcd => "etcd",
        }
    }
}

/// `arbiter-server <command>`: work on the state, offline.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Writes the state held by the store (--store, --data-dir or --etcd-*) to a file: a
    /// versioned, checksummed JSON document. Run it with the server stopped (redb), or at any
    /// time (etcd: it reads one consistent revision).
    Export {
        /// The file to write ("-": standard output).
        #[arg(long)]
        out: PathBuf,
    },
    /// Replaces the state of the store (--store, --data-dir or --etcd-*) with a file written
    /// by `export`. Refuses a store that holds anything unless --force, and (etcd) while an
    /// arbiter instance leads.
    Import {
        /// The file to read.
        #[arg(long = "in")]
        input: PathBuf,
        /// Overwrite a store that is not empty.
        #[arg(long)]
        force: bool,
    },
    /// Restores a backup (`arbiter backup --out FILE`, or an `export` file) into the store
    /// (--data-dir, or --store etcd --etcd-*), offline: run it with the server stopped. Refuses
    /// a store that holds anything unless --force, and a truncated, damaged or foreign file.
    Restore {
        /// The backup file.
        #[arg(long = "in")]
        input: PathBuf,
        /// Overwrite a store that is not empty.
        #[arg(long)]
        force: bool,
    },
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// The longest duration any option takes: longer is surely a typo, and times must stay
/// printable.
const LONGEST: Duration = Duration::from_secs(100 * 31_557_600); // "100y" (years of 365.25 days)

fn settle(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 0s, 30s, 2m)"))?;
    at_most_longest(d)
}

fn duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 90s, 10m, 7d)"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    at_most_longest(d)
}

/// `--http-listen`: an address, or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpListen {
    /// No HTTP listener.
    Off,
    /// Serve HTTP here.
    On(SocketAddr),
}

fn http_listen(s: &str) -> Result<HttpListen, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(HttpListen::Off);
    }
    s.parse()
        .map(HttpListen::On)
        .map_err(|e| format!("{e}: write IP:PORT (e.g. 127.0.0.1:8080) or off"))
}

fn lease(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 5s, 10s, 30s)"))?;
    if d < Duration::from_secs(2) {
        return Err("must be at least 2s (etcd's shortest lease)".into());
    }
    if d.subsec_nanos() != 0 {
        return Err("must be whole seconds (etcd leases count seconds)".into());
    }
    if d > Duration::from_secs(3600) {
        return Err("must be at most 1h".into());
    }
    Ok(d)
}

fn at_most_longest(d: Duration) -> Result<Duration, String> {
    if d > LONGEST {
        return Err("must be at most 100y".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_design() {
        let c = Config::try_parse_from(["arbiter-server", "--inventory", "x.toml"]).expect("ok");
        assert_eq!(c.listen.to_string(), "127.0.0.1:2135");
        assert_eq!(c.data_dir, PathBuf::from("./arbiter-data"));
        assert_eq!(c.max_lock_duration, Duration::from_secs(7 * 86400));
        assert!(c.auth.is_none());
        assert_eq!(c.ring_settle_time, Duration::from_secs(120));
        assert_eq!(c.settle_time, Duration::ZERO);
        assert!(!c.accept_store_loss);
        assert_eq!(c.store, StoreKind::Redb);
        assert_eq!(c.etcd_prefix, "/arbiter/default");
        assert_eq!(c.leader_lease, Duration::from_secs(10));
        assert_eq!((c.max_watches, c.max_watches_per_user), (4096, 256));
        let zero = [
            "arbiter-server",
            "--inventory",
            "x.toml",
            "--max-watches",
            "0",
        ];
        assert!(Config::try_parse_from(zero).is_err(), "at least one watch");
        let c = Config::try_parse_from([
            "arbiter-server",
            "--store",
            "etcd",
            "--etcd-endpoints",
            "http://a:2379,http://b:2379",
            "export",
            "--out",
            "-",
        ])
        .expect("a command needs no inventory");
        assert_eq!(c.etcd_endpoints.len(), 2);
        assert!(matches!(c.command, Some(Command::Export { .. })));
        let c = Config::try_parse_from([
            "arbiter-server",
            "--inventory",
            "x.toml",
            "--accept-store-loss",
        ])
        .expect("ok");
        assert!(c.accept_store_loss);
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(
            Config::try_parse_from(["arbiter-server"]).is_err(),
            "inventory is required"
        );
        for bad in [
            ["--max-lock-duration", "0s"],
            ["--max-lock-duration", "soon"],
            ["--listen", "nowhere"],
            ["--log-format", "xml"],
            ["--ring-settle-time", "a while"],
            ["--max-lock-duration", "20000y"],
            ["--settle-time", "101y"],
            ["--settle-time", "-1s"],
        ] {
            let args = ["arbiter-server", "--inventory", "x.toml", bad[0], bad[1]];
            assert!(Config::try_parse_from(args).is_err(), "{bad:?}");
        }
        for bad in [
            ["--store", "sqlite"],
            ["--leader-lease", "1s"],
            ["--leader-lease", "2500ms"],
            ["--leader-lease", "2h"],
        ] {
            let args = ["arbiter-server", "--inventory", "x.toml", bad[0], bad[1]];
            assert!(Config::try_parse_from(args).is_err(), "{bad:?}");
        }
        for bad in [
            &["--tls-cert", "c.pem"][..],
            &["--tls-key", "k.pem"],
            &["--tls-client-ca", "ca.pem"],
        ] {
            let mut args = vec!["arbiter-server", "--inventory", "x.toml"];
            args.extend_from_slice(bad);
            assert!(Config::try_parse_from(args).is_err(), "{bad:?}");
        }
        let c = Config::try_parse_from([
            "arbiter-server",
            "--inventory",
            "x.toml",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--tls-client-ca",
            "ca.pem",
        ])
        .expect("TLS flags together");
        assert_eq!(c.tls_client_ca, Some(PathBuf::from("ca.pem")));
        for good in [
            ["--store", "etcd"],
            ["--leader-lease", "3s"],
            ["--max-lock-duration", "100y"],
            ["--ring-settle-time", "0s"],
        ] {
            let args = ["arbiter-server", "--inventory", "x.toml", good[0], good[1]];
            assert!(Config::try_parse_from(args).is_ok(), "{good:?}");
        }
    }
}
