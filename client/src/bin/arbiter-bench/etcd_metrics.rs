//! What the bench's etcd did during a phase, from its Prometheus `/metrics` (served on the
//! client port): raft proposals committed, write-ahead-log fsyncs and their mean time, and
//! backend commits. Proposals against durable writes says how many decisions share one etcd
//! write, i.e. how much group commit there was; fsyncs say how busy etcd's disk was.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Bound on one scrape.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// Per second of the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EtcdLoad {
    /// Raft proposals committed (each Txn, Put, DeleteRange, lease grant/revoke is one).
    pub(crate) proposals: f64,
    /// fsyncs of etcd's write-ahead log.
    pub(crate) wal_fsyncs: f64,
    /// Mean duration of one WAL fsync.
    pub(crate) wal_fsync_mean: Option<Duration>,
    /// Commits of etcd's bbolt backend.
    pub(crate) backend_commits: f64,
    /// Bytes etcd received from gRPC clients.
    pub(crate) received_bytes: f64,
}

/// Counter values at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Counters {
    proposals: f64,
    wal_fsyncs: f64,
    wal_fsync_seconds: f64,
    backend_commits: f64,
    received_bytes: f64,
}

/// Scrapes at `start` and at `end`; None if etcd's metrics could not be read.
pub(crate) async fn sample(addr: SocketAddr, start: Instant, end: Instant) -> Option<EtcdLoad> {
    tokio::time::sleep_until(start.into()).await;
    let before = scrape(addr).await?;
    let t0 = Instant::now();
    tokio::time::sleep_until(end.into()).await;
    let after = scrape(addr).await?;
    let wall = t0.elapsed().as_secs_f64();
    (wall > 0.0).then(|| load(&before, &after, wall))
}

fn load(before: &Counters, after: &Counters, wall: f64) -> EtcdLoad {
    let fsyncs = after.wal_fsyncs - before.wal_fsyncs;
    EtcdLoad {
        proposals: (after.proposals - before.proposals) / wall,
        wal_fsyncs: fsyncs / wall,
        wal_fsync_mean: (fsyncs > 0.0).then(|| {
            Duration::from_secs_f64(
                ((after.wal_fsync_seconds - before.wal_fsync_seconds) / fsyncs).max(0.0),
            )
        }),
        backend_commits: (after.backend_commits - before.backend_commits) / wall,
        received_bytes: (after.received_bytes - before.received_bytes) / wall,
    }
}

async fn scrape(addr: SocketAddr) -> Option<Counters> {
    tokio::task::spawn_blocking(move || fetch(addr).map(|t| parse(&t)))
        .await
        .ok()
        .flatten()
}

/// `GET /metrics` over HTTP/1.0 (the body ends with the connection).
fn fetch(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(SCRAPE_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(SCRAPE_TIMEOUT)).ok()?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.take(16 << 20).read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.contains(" 200 ").then(|| body.to_owned())
}

/// The counters in Prometheus' text format (unlabelled series only, as etcd writes them).
fn parse(text: &str) -> Counters {
    let mut c = Counters::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.split_once(' ') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        match name {
            "etcd_server_proposals_committed_total" => c.proposals = value,
            "etcd_disk_wal_fsync_duration_seconds_count" => c.wal_fsyncs = value,
            "etcd_disk_wal_fsync_duration_seconds_sum" => c.wal_fsync_seconds = value,
            "etcd_disk_backend_commit_duration_seconds_count" => c.backend_commits = value,
            "etcd_network_client_grpc_received_bytes_total" => c.received_bytes = value,
            _ => {}
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counters_are_read_and_turned_into_rates() {
        let text = "# HELP etcd_server_proposals_committed_total x\n\
                    # TYPE etcd_server_proposals_committed_total gauge\n\
                    etcd_server_proposals_committed_total 1200\n\
                    etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 7\n\
                    etcd_disk_wal_fsync_duration_seconds_sum 0.5\n\
                    etcd_disk_wal_fsync_duration_seconds_count 1000\n\
                    etcd_disk_backend_commit_duration_seconds_count 30\n\
                    etcd_network_client_grpc_received_bytes_total 4096\n";
        let after = parse(text);
        assert_eq!(
            after,
            Counters {
                proposals: 1200.0,
                wal_fsyncs: 1000.0,
                wal_fsync_seconds: 0.5,
                backend_commits: 30.0,
                received_bytes: 4096.0,
            }
        );
        let before = Counters {
            proposals: 200.0,
            wal_fsyncs: 0.0,
            wal_fsync_seconds: 0.0,
            backend_commits: 10.0,
            received_bytes: 0.0,
        };
        let l = load(&before, &after, 2.0);
        assert_eq!(
            (l.proposals, l.wal_fsyncs, l.backend_commits),
            (500.0, 500.0, 10.0)
        );
        assert_eq!(l.wal_fsync_mean, Some(Duration::from_micros(500)));
        assert_eq!(l.received_bytes, 2048.0);
        assert_eq!(load(&before, &before, 1.0).wal_fsync_mean, None);
    }
}
