//! The command line, and the one rule about where the load may go: loopback only, so that the
//! figures measure Arbiter and this machine, never a network, and nobody loads a live server by
//! a typo.

use anyhow::{Context as _, bail};
use arbiter_client::durations::positive_duration;
use clap::Parser;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Load generator for Arbiter: durable maintenance decisions against the health-check ceiling.
#[derive(Debug, Clone, Parser)]
#[command(name = "arbiter-bench", version, about, long_about = None)]
pub(crate) struct Args {
    /// A running server to load (http://HOST:PORT on a loopback address). Without it the bench
    /// spawns its own server (--spawn).
    #[arg(long, conflicts_with_all = ["spawn", "server_bin", "inventory", "data_dir"])]
    pub(crate) endpoint: Option<String>,

    /// Spawn a server with a generated inventory in a temporary data directory (the default).
    #[arg(long)]
    pub(crate) spawn: bool,

    /// The server binary to spawn [default: arbiter-server next to this binary].
    #[arg(long, value_name = "PATH")]
    pub(crate) server_bin: Option<PathBuf>,

    /// Serve this inventory instead of a generated one (it needs at least --clients nodes).
    #[arg(long, value_name = "FILE")]
    pub(crate) inventory: Option<PathBuf>,

    /// Put the spawned server's store in a fresh directory under DIR (e.g. /dev/shm, to take
    /// fsync out of the picture) [default: the system temp directory].
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

    /// Refreshes a cycle may make while its lock is pending before it gives up (an error).
    #[arg(long, default_value_t = 1000)]
    pub(crate) max_refreshes: u32,
}

/// The endpoint as tonic takes it, or an error if it is not plain HTTP on a loopback address.
pub(crate) fn loopback_endpoint(url: &str) -> anyhow::Result<String> {
    let uri: tonic::transport::Uri = url
        .parse()
        .with_context(|| format!("--endpoint {url:?} is not a URL like http://127.0.0.1:2135"))?;
    if uri.scheme_str() != Some("http") {
        bail!("--endpoint {url:?}: only http:// (plaintext, loopback) is supported");
    }
    let Some(host) = uri.host() else {
        bail!("--endpoint {url:?} names no host");
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("--endpoint {url:?}: the bench only loads loopback addresses (127.0.0.0/8, ::1)");
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_endpoints_are_accepted() {
        for ok in [
            "http://127.0.0.1:2135",
            "http://127.1.2.3:1",
            "http://[::1]:2135",
            "http://localhost:2135",
        ] {
            assert!(loopback_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:2135",
            "http://example.com:2135",
            "https://127.0.0.1:2135",
            "127.0.0.1:2135",
            "http://[::2]:2135",
        ] {
            assert!(loopback_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn spawn_is_the_default_and_endpoint_excludes_its_options() {
        let a = Args::try_parse_from(["arbiter-bench"]).expect("defaults");
        assert!(a.endpoint.is_none());
        assert_eq!(a.clients, 64);
        assert_eq!(a.duration, Duration::from_secs(10));
        assert_eq!(a.warmup, Duration::from_secs(2));
        let both = [
            "arbiter-bench",
            "--endpoint",
            "http://127.0.0.1:1",
            "--spawn",
        ];
        assert!(Args::try_parse_from(both).is_err());
        assert!(Args::try_parse_from(["arbiter-bench", "--clients", "0"]).is_err());
        assert!(Args::try_parse_from(["arbiter-bench", "--duration", "0s"]).is_err());
    }
}
