//! etcd's own lock service as the yardstick: N clients, each on its own connection to the
//! etcd member with its own lease (granted once) and its own lock name, loop
//! `v3lockpb.Lock/Lock` -> `Unlock` back to back. Like Arbiter's cycles these are durable
//! decisions (each Lock and each Unlock is a raft proposal, fsynced by etcd before it answers)
//! and uncontended (nobody waits for another client's lock), so the two rates compare what a
//! lock costs on the same etcd.

use crate::stats::{Kind, Phase, Samples, Window};
use anyhow::Context as _;
use arbiter_etcd::{Etcd, EtcdOptions, LeaseId};
use std::time::{Duration, Instant};

/// Lease time beyond the phase, so no lease expires while it runs.
const LEASE_MARGIN: Duration = Duration::from_secs(60);

/// One client of etcd's lock service.
pub(crate) struct Locker {
    id: u32,
    etcd: Etcd,
    lease: LeaseId,
    name: String,
}

/// The lock name of client `id`.
fn lock_name(id: u32) -> String {
    format!("/arbiter-bench-locks/{id}")
}

/// Opens `clients` connections to the etcd at `url` (one `Etcd` client each, so one HTTP/2
/// connection each) and grants each client a lease that outlives `phase`.
pub(crate) async fn connect(
    clients: u32,
    url: &str,
    phase: Duration,
) -> anyhow::Result<Vec<Locker>> {
    let mut out = Vec::new();
    for id in 0..clients {
        let etcd = Etcd::connect(&[url.to_owned()], EtcdOptions::default())
            .with_context(|| format!("bad etcd endpoint {url:?}"))?;
        let lease = etcd
            .lease_grant(phase + LEASE_MARGIN)
            .await
            .with_context(|| format!("cannot grant a lease on etcd at {url}"))?;
        out.push(Locker {
            id,
            etcd,
            lease,
            name: lock_name(id),
        });
    }
    Ok(out)
}

impl Locker {
    /// Locks and unlocks back to back until the window ends; a failed call stops this client
    /// (counted as an error).
    pub(crate) async fn run(self, phase: Phase, window: Window) -> (Locker, Samples) {
        let mut out = Samples::default();
        if phase != Phase::EtcdLocks {
            out.errors.add(format!(
                "an etcd client cannot run the {} phase",
                phase.name()
            ));
            return (self, out);
        }
        while Instant::now() < window.end {
            if let Err(e) = self.cycle(&mut out, &window).await {
                out.errors
                    .add(format!("etcd client {} stopped: {e}", self.id));
                break;
            }
        }
        (self, out)
    }

    async fn cycle(&self, out: &mut Samples, window: &Window) -> anyhow::Result<()> {
        let started = Instant::now();
        let key = self.etcd.lock(self.name.as_bytes(), self.lease).await?;
        out.record(Kind::Lock, started, window);
        let unlocking = Instant::now();
        self.etcd.unlock(&key).await?;
        out.record(Kind::Unlock, unlocking, window);
        out.record(Kind::EtcdCycle, started, window);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_has_its_own_lock() {
        assert_ne!(lock_name(0), lock_name(1));
        assert!(lock_name(7).ends_with("/7"));
    }
}
