//! The command line, and the one rule about where the load may go: loopback only, so that the
//! figures measure Arbiter (and etcd) on this machine, never a network, and nobody loads a
//! live server by a typo.

use anyhow::{Context as _, bail};
use arbiter_client::durations::positive_duration;
use clap::{Parser, ValueEnum};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Load generator for Arbiter: durable maintenance decisions against the health-check ceiling,
/// on redb or on etcd (beside etcd's own lock+unlock).
#[derive(Debug, Clone, Parser)]
#[command(name = "arbiter-bench", version, about, long_about = None)]
pub(crate) struct Args {
    /// A running server to load (http://HOST:PORT on a loopback address). Without it the bench
    /// spawns its own server (--spawn).
    #[arg(
        long,
        conflicts_with_all = ["spawn", "server_bin", "inventory", "store", "etcd_unsafe_no_fsync"]
    )]
    pub(crate) endpoint: Option<String>,

    /// With --endpoint: also measure etcd's own lock+unlock on this etcd (http://HOST:PORT on
    /// a loopback address), e.g. the one the server leads on.
    #[arg(long, value_name = "URL", requires = "endpoint")]
    pub(crate) etcd_endpoint: Option<String>,

    /// Spawn a server with a generated inventory in a temporary data directory (the default).
    #[arg(long)]
    pub(crate) spawn: bool,

    /// The store of the spawned server: `redb` (one file in the data directory), `etcd` (a
    /// one-member etcd the bench starts on loopback; then etcd's own lock+unlock is measured on
    /// that etcd too), or `both` (redb, then etcd, in one run and one table).
    #[arg(long, value_enum, default_value_t = StoreChoice::Redb)]
    pub(crate) store: StoreChoice,

    /// Start the bench's etcd with --unsafe-no-fsync. By default etcd fsyncs its log like a
    /// production member: the comparison is of durable decisions.
    #[arg(long)]
    pub(crate) etcd_unsafe_no_fsync: bool,

    /// The server binary to spawn [default: arbiter-server next to this binary].
    #[arg(long, value_name = "PATH")]
    pub(crate) server_bin: Option<PathBuf>,

    /// Serve this inventory instead of a generated one (it needs at least --clients nodes).
    #[arg(long, value_name = "FILE")]
    pub(crate) inventory: Option<PathBuf>,

    /// Put the spawned server's store (and the bench's etcd) in a fresh directory under DIR
    /// (e.g. /dev/shm, to take fsync out of the picture) [default: the system temp directory].
    /// The bench times fdatasync there first (the floor of the one-client bound); with
    /// --endpoint, name the running server's data directory here for the same.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// Concurrent clients, each on its own HTTP/2 connection.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) clients: u32,

    /// How long each phase is measured.
    #[arg(long, default_value = "10s", value_parser = positive_duration)]
    pub(crate) duration: Duration,

    /// How long each phase runs before it is measured.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub(crate) warmup: Duration,

    /// Auth ticket, sent as x-ydb-auth-ticket (needs the operator role on a server with --auth).
    #[arg(long, value_name = "T")]
    pub(crate) ticket: Option<String>,

    /// Instead of the throughput phases: a cluster of this many nodes (block-4-2 groups of 8),
    /// `--scale-tasks` live tasks on it, and its start and restart times, memory and store
    /// size (redb).
    #[arg(long, value_name = "NODES", conflicts_with_all = ["endpoint", "store", "inventory"])]
    pub(crate) scale: Option<u32>,

    /// With --scale: how many live tasks to create (one lock each, on distinct groups).
    #[arg(long, default_value_t = 10_000, requires = "scale")]
    pub(crate) scale_tasks: u32,

    /// With --scale: how many watches of one task to open for the fan-out (0: none).
    #[arg(long, default_value_t = 10_000, requires = "scale",
        value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub(crate) scale_watchers: u32,

    /// Refreshes a cycle may make while its lock is pending before it gives up (an error).
    #[arg(long, default_value_t = 1000)]
    pub(crate) max_refreshes: u32,
}

/// `--store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StoreChoice {
    /// One redb file in the data directory.
    Redb,
    /// A one-member etcd started by the bench.
    Etcd,
    /// redb, then etcd.
    Both,
}

/// The store of one spawned server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    Redb,
    Etcd,
}

impl Store {
    /// Its name in the report (and on arbiter-server's command line).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Store::Redb => "redb",
            Store::Etcd => "etcd",
        }
    }
}

impl Args {
    /// The stores to run, in order.
    pub(crate) fn stores(&self) -> &'static [Store] {
        match self.store {
            StoreChoice::Redb => &[Store::Redb],
            StoreChoice::Etcd => &[Store::Etcd],
            StoreChoice::Both => &[Store::Redb, Store::Etcd],
        }
    }

    /// What clap cannot say: an etcd option without etcd.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        if self.etcd_unsafe_no_fsync && self.store == StoreChoice::Redb {
            bail!("--etcd-unsafe-no-fsync needs --store etcd or --store both");
        }
        Ok(())
    }
}

/// The URL as tonic takes it, or an error if it is not plain HTTP on a loopback address;
/// `option` names where it came from (`--endpoint`, `--etcd-endpoint`, ...).
pub(crate) fn loopback_endpoint(option: &str, url: &str) -> anyhow::Result<String> {
    let uri: tonic::transport::Uri = url
        .parse()
        .with_context(|| format!("{option} {url:?} is not a URL like http://127.0.0.1:2135"))?;
    if uri.scheme_str() != Some("http") {
        bail!("{option} {url:?}: only http:// (plaintext, loopback) is supported");
    }
    let Some(host) = uri.host() else {
        bail!("{option} {url:?} names no host");
    };
    if uri.port_u16().is_none() {
        bail!("{option} {url:?} names no port");
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("{option} {url:?}: the bench only loads loopback addresses (127.0.0.0/8, ::1)");
    }
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("arbiter-bench").chain(extra.iter().copied()))
    }

    #[test]
    fn only_loopback_endpoints_are_accepted() {
        for option in ["--endpoint", "--etcd-endpoint"] {
            for ok in [
                "http://127.0.0.1:2135",
                "http://127.1.2.3:1",
                "http://[::1]:2379",
                "http://localhost:2379",
            ] {
                assert!(loopback_endpoint(option, ok).is_ok(), "{ok}");
            }
            for bad in [
                "http://10.0.0.1:2379",
                "http://etcd-1.example:2379",
                "https://127.0.0.1:2379",
                "127.0.0.1:2379",
                "http://[::2]:2379",
                "http://127.0.0.1",
            ] {
                let err = loopback_endpoint(option, bad).expect_err(bad);
                assert!(err.to_string().starts_with(option), "{err}");
            }
        }
        assert_eq!(
            loopback_endpoint("--etcd-endpoint", "http://127.0.0.1:2379/").ok(),
            Some("http://127.0.0.1:2379".to_owned())
        );
    }

    #[test]
    fn spawn_is_the_default_and_endpoint_excludes_its_options() {
        let a = parse(&[]).expect("defaults");
        assert!(a.endpoint.is_none());
        assert_eq!(a.clients, 64);
        assert_eq!(a.duration, Duration::from_secs(10));
        assert_eq!(a.warmup, Duration::from_secs(2));
        assert_eq!(a.store, StoreChoice::Redb);
        assert_eq!(a.stores(), &[Store::Redb]);
        assert!(!a.etcd_unsafe_no_fsync, "etcd fsyncs by default");
        assert!(parse(&["--endpoint", "http://127.0.0.1:1", "--spawn"]).is_err());
        assert!(parse(&["--endpoint", "http://127.0.0.1:1", "--store", "etcd"]).is_err());
        assert!(parse(&["--clients", "0"]).is_err());
        assert!(parse(&["--duration", "0s"]).is_err());
    }

    #[test]
    fn stores_are_chosen_and_etcd_options_need_etcd() {
        let a = parse(&["--store", "both"]).expect("both");
        assert_eq!(a.stores(), &[Store::Redb, Store::Etcd]);
        assert!(a.check().is_ok());
        let a = parse(&["--store", "etcd", "--etcd-unsafe-no-fsync"]).expect("no fsync");
        assert_eq!(a.stores(), &[Store::Etcd]);
        assert!(a.etcd_unsafe_no_fsync && a.check().is_ok());
        let a = parse(&["--etcd-unsafe-no-fsync"]).expect("parses");
        assert!(a.check().is_err(), "no etcd to run without fsync");
        assert!(parse(&["--store", "sqlite"]).is_err());
        assert!(
            parse(&["--etcd-endpoint", "http://127.0.0.1:2379"]).is_err(),
            "--etcd-endpoint goes with --endpoint"
        );
        let a = parse(&[
            "--endpoint",
            "http://127.0.0.1:2135",
            "--etcd-endpoint",
            "http://127.0.0.1:2379",
        ])
        .expect("an external server and its etcd");
        assert_eq!(a.etcd_endpoint.as_deref(), Some("http://127.0.0.1:2379"));
    }
}
