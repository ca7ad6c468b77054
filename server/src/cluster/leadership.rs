//! The campaign for the leader key, on etcd.
//!
//! Every instance holds a lease (`--leader-lease`, renewed every third of it) that carries its
//! registry record. It campaigns by creating `<prefix>/leader` on that lease only if the key
//! does not exist; the key's create revision is the leader's epoch, and every write of the
//! leader's store is fenced by it ([`crate::store::etcd`]).
//!
//! The leader:
//! - reads the state (its warm copy caught up after winning, so it holds every entry committed
//!   before its epoch), starts the writer on it, and decides;
//! - stops answering as the leader before its lease can have expired: leadership lasts until
//!   the last renewal's send time plus the TTL minus a safety margin, and without a renewal by
//!   then it demotes itself (a paused process finds on waking that its time has passed);
//! - steps down at once when its writer stops (a commit that failed its fence, or a store it
//!   could not reload): the writer answers what it had queued with a retryable error;
//! - on shutdown deletes the leader key and revokes its lease, so that another instance takes
//!   over at once rather than after the TTL.
//!
//! A follower watches the prefix: new log entries keep its warm copy current, and the leader
//! key's deletion starts a new campaign at once.

use super::instances::InstanceRecord;
use super::{Peer, Role, RoleSetter};
use crate::engine::Cluster;
use crate::inventory_file::InventoryFile;
use crate::store::etcd::layout::Keys;
use crate::store::etcd::replica::Replica;
use crate::writer::Writer;
use arbiter_etcd::{CompareResult, Etcd, LeaseId};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Starts the writer of a new leader: the epoch it won, the state it read, and the inventory
/// it decides on.
pub type StartWriter = Box<
    dyn Fn(i64, &Replica, Arc<Cluster>) -> Result<(Writer, JoinHandle<()>), String> + Send + Sync,
>;

/// One instance's campaign, for as long as the server runs.
pub struct Campaign {
    /// The etcd client.
    pub etcd: Etcd,
    /// The keys under `--etcd-prefix`.
    pub keys: Keys,
    /// This instance.
    pub me: Peer,
    /// The lease TTL (`--leader-lease`).
    pub lease_ttl: Duration,
    /// Changes this instance's role.
    pub setter: RoleSetter,
    /// Starts the writer on winning.
    pub start_writer: StartWriter,
    /// The inventory file: read again on winning, and refused if it is not the cluster's.
    pub inventory: Arc<InventoryFile>,
    /// When this instance started (ms since the Unix epoch).
    pub started_ms: u64,
}

impl std::fmt::Debug for Campaign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Campaign")
            .field("me", &self.me)
            .field("lease_ttl", &self.lease_ttl)
            .finish_non_exhaustive()
    }
}

/// How a campaign round ended.
enum Round {
    Won(i64, i64),
    Lost(Peer, i64),
}

/// Why a leading or following phase ended.
enum Ended {
    /// Campaign again with the same lease.
    Again,
    /// The lease is gone: get a new one.
    LeaseLost,
    /// The server is stopping.
    Shutdown,
}

impl Campaign {
    /// How often the lease is renewed.
    fn renew_every(&self) -> Duration {
        (self.lease_ttl / 3).max(Duration::from_millis(100))
    }

    /// How long before the lease's earliest possible expiry the leader stops answering.
    fn margin(&self) -> Duration {
        (self.lease_ttl / 5).max(Duration::from_millis(200))
    }

    /// Campaigns, leads or follows until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut replica = Replica::default();
        let mut etcd_down = false;
        let mut backoff = Duration::from_millis(100);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let sent = Instant::now();
            let lease = match self.etcd.lease_grant(self.lease_ttl).await {
                Ok(l) => l,
                Err(e) => {
                    if !etcd_down {
                        tracing::error!(error = %e, endpoints = ?self.etcd.endpoints(),
                            "etcd unreachable: not serving as the leader; retrying");
                        etcd_down = true;
                    }
                    self.setter.unsure();
                    if wait_or_stop(&mut shutdown, backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            if etcd_down {
                tracing::info!("etcd reachable again");
                etcd_down = false;
            }
            backoff = Duration::from_millis(100);
            let mut renewed = sent;
            loop {
                let ended = match self.campaign(lease).await {
                    Ok(Round::Won(epoch, revision)) => {
                        self.lead(
                            lease,
                            epoch,
                            revision,
                            &mut renewed,
                            &mut replica,
                            &mut shutdown,
                        )
                        .await
                    }
                    Ok(Round::Lost(leader, revision)) => {
                        self.follow(
                            lease,
                            leader,
                            revision,
                            &mut renewed,
                            &mut replica,
                            &mut shutdown,
                        )
                        .await
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "campaign failed; retrying");
                        self.setter.unsure();
                        if wait_or_stop(&mut shutdown, self.renew_every()).await {
                            Ended::Shutdown
                        } else if sent_too_long_ago(renewed, self.lease_ttl) {
                            Ended::LeaseLost
                        } else {
                            Ended::Again
                        }
                    }
                };
                match ended {
                    Ended::Again => continue,
                    Ended::LeaseLost => {
                        // Without a lease this instance neither leads nor knows who does.
                        self.setter.unsure();
                        break;
                    }
                    Ended::Shutdown => {
                        // Leaves the leader key to whoever is next, and the registry.
                        let _ = self.etcd.lease_revoke(lease).await;
                        tracing::info!("left the cluster: lease revoked");
                        return;
                    }
                }
            }
        }
    }

    /// Tries to create the leader key; answers who leads.
    async fn campaign(&self, lease: LeaseId) -> Result<Round, String> {
        let record = Peer {
            epoch: 0,
            ..self.me.clone()
        };
        let value = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        let txn = arbiter_etcd::TxnRequest {
            compare: vec![arbiter_etcd::cmp_create_revision(
                self.keys.leader(),
                CompareResult::Equal,
                0,
            )],
            success: vec![arbiter_etcd::op_put(self.keys.leader(), value, Some(lease))],
            failure: vec![arbiter_etcd::op_get(self.keys.leader())],
        };
        // Resending is safe: a second copy fails its compare and shows the key as ours.
        let r = self.etcd.txn(txn, true).await.map_err(|e| e.to_string())?;
        let revision = r.header.as_ref().map_or(0, |h| h.revision);
        if r.succeeded {
            return Ok(Round::Won(revision, revision));
        }
        let kv = r.responses.into_iter().find_map(|op| match op.response {
            Some(arbiter_etcd::pb::etcdserverpb::response_op::Response::ResponseRange(rr)) => {
                rr.kvs.into_iter().next()
            }
            _ => None,
        });
        let Some(kv) = kv else {
            // Deleted between the compare and the read: try again.
            return Err(String::from("the leader key vanished during the campaign"));
        };
        let mut leader: Peer = serde_json::from_slice(&kv.value)
            .map_err(|e| format!("the leader key holds no instance record: {e}"))?;
        leader.epoch = kv.create_revision;
        if leader.id == self.me.id {
            if kv.lease == lease.0 {
                // An earlier copy of this Txn won.
                return Ok(Round::Won(kv.create_revision, revision));
            }
            // Our own key from a lease we lost (etcd was unreachable): never follow ourselves;
            // drop it and campaign again.
            self.resign(kv.create_revision).await;
            return Err(String::from(
                "found this instance's own leader key from an earlier lease; removed it",
            ));
        }
        Ok(Round::Lost(leader, revision))
    }

    /// Renews the lease once; `false` when the lease is gone. Updates `renewed` to the send
    /// time of a successful renewal.
    /// A renewal that does not answer within one renewal period is a failure: the loop must
    /// keep its own deadlines (self-demotion, forgetting a leader) while etcd is unreachable.
    async fn renew(&self, lease: LeaseId, renewed: &mut Instant) -> Result<bool, String> {
        let sent = Instant::now();
        let bound = self.renew_every();
        match tokio::time::timeout(bound, self.etcd.keep_alive_once(lease)).await {
            Ok(Ok(Some(_))) => {
                *renewed = sent;
                Ok(true)
            }
            Ok(Ok(None)) => Ok(false),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer from etcd within {bound:?}")),
        }
    }

    async fn register(&self, lease: LeaseId, role: &Role) {
        let record = InstanceRecord::of(&self.me.id, &self.me.address, role, self.started_ms);
        let Ok(value) = serde_json::to_vec(&record) else {
            return;
        };
        let txn = arbiter_etcd::TxnRequest {
            compare: Vec::new(),
            success: vec![arbiter_etcd::op_put(
                self.keys.instance(&self.me.id),
                value,
                Some(lease),
            )],
            failure: Vec::new(),
        };
        match tokio::time::timeout(self.renew_every(), self.etcd.txn(txn, true)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "instance record not renewed"),
            Err(_) => tracing::debug!("instance record not renewed in time"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn lead(
        &self,
        lease: LeaseId,
        epoch: i64,
        revision: i64,
        renewed: &mut Instant,
        replica: &mut Replica,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Ended {
        let _ = revision;
        // Every entry committed before our epoch is visible now.
        if let Err(e) = replica.catch_up(&self.etcd, &self.keys).await {
            tracing::error!(error = %e, "won the leader key but cannot read the state; stepping down");
            self.resign(epoch).await;
            return Ended::Again;
        }
        let cluster = match self.inventory_to_lead().await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "won the leader key but will not decide on this inventory; stepping down");
                self.resign(epoch).await;
                // Leave the key to an instance with the cluster's inventory.
                tokio::time::sleep(self.lease_ttl).await;
                return Ended::Again;
            }
        };
        let (writer, handle) = match (self.start_writer)(epoch, replica, cluster) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the writer; stepping down");
                self.resign(epoch).await;
                return Ended::Again;
            }
        };
        let until = *renewed + self.lease_ttl - self.margin();
        self.setter.lead(epoch, Some(until), writer);
        tracing::info!(epoch, seq = replica.seq, tasks = replica.snapshot.tasks.len(),
            instance = %self.me.id, "leading");
        self.register(lease, &self.setter.role()).await;
        let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let _ = handle.join();
            let _ = done_tx.send(());
        });
        let mut writer_gone = false;
        let ended = loop {
            let until = *renewed + self.lease_ttl - self.margin();
            tokio::select! {
                _ = &mut done_rx => {
                    writer_gone = true;
                    tracing::warn!(epoch, "the writer stopped (deposed, or the store failed); stepping down");
                    break Ended::Again;
                }
                () = tokio::time::sleep_until(until.into()) => {
                    tracing::warn!(epoch, "the lease could not be renewed in time; stepping down before it can expire");
                    break Ended::LeaseLost;
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break Ended::Shutdown;
                    }
                }
                () = tokio::time::sleep(self.renew_every()) => {
                    match self.renew(lease, renewed).await {
                        Ok(true) => {
                            self.setter.extend(*renewed + self.lease_ttl - self.margin());
                            self.register(lease, &self.setter.role()).await;
                        }
                        Ok(false) => {
                            tracing::warn!(epoch, "the lease expired; stepping down");
                            break Ended::LeaseLost;
                        }
                        Err(e) => tracing::warn!(error = %e, epoch, "lease renewal failed; retrying"),
                    }
                }
            }
        };
        // Stop deciding first: queued calls get a retryable error, nothing more commits.
        self.setter.follow(None);
        if !writer_gone {
            let _ = tokio::time::timeout(Duration::from_secs(5), done_rx).await;
        }
        self.resign(epoch).await;
        tracing::info!(epoch, "stepped down");
        ended
    }

    /// The inventory file as it is now, if it is the one the cluster decides on.
    async fn inventory_to_lead(&self) -> Result<Arc<Cluster>, String> {
        let file = self.inventory.clone();
        let (cluster, digest) = tokio::task::spawn_blocking(move || file.load_with_digest())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let held = self
            .etcd
            .get(self.keys.inventory())
            .await
            .map_err(|e| e.to_string())?;
        if let Some(kv) = held {
            let theirs: crate::app::ha::InventoryRecord =
                serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
            if theirs.digest != digest {
                return Err(format!(
                    "inventory {} {}",
                    self.inventory.path.display(),
                    crate::app::ha::mismatch(&theirs, cluster.node_count())
                ));
            }
        }
        Ok(Arc::new(cluster))
    }

    /// Deletes the leader key if it is still the one of `epoch`, so the next election need
    /// not wait for the lease.
    async fn resign(&self, epoch: i64) {
        let txn = arbiter_etcd::TxnRequest {
            compare: vec![arbiter_etcd::cmp_create_revision(
                self.keys.leader(),
                CompareResult::Equal,
                epoch,
            )],
            success: vec![arbiter_etcd::op_delete(self.keys.leader())],
            failure: Vec::new(),
        };
        if let Err(e) = self.etcd.txn(txn, true).await {
            tracing::debug!(error = %e, "leader key not deleted; it goes with the lease");
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn follow(
        &self,
        lease: LeaseId,
        leader: Peer,
        revision: i64,
        renewed: &mut Instant,
        replica: &mut Replica,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Ended {
        let known =
            matches!(self.setter.role(), Role::Follower { leader: Some(ref p) } if *p == leader);
        if !known {
            tracing::info!(leader = %leader.id, address = %leader.address, epoch = leader.epoch,
                "following");
        }
        self.setter.follow(Some(leader.clone()));
        self.register(lease, &self.setter.role()).await;
        if let Err(e) = replica.catch_up(&self.etcd, &self.keys).await {
            tracing::debug!(error = %e, "warm copy not caught up");
        }
        let mut watcher = self.etcd.watch_prefix(self.keys.all(), revision + 1);
        let leader_key = self.keys.leader();
        let log = self.keys.log();
        let snaps = self.keys.snaps();
        // An interval, not a sleep per iteration: a busy log must not starve the renewals.
        let mut renewal = tokio::time::interval(self.renew_every());
        renewal.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        renewal.tick().await;
        loop {
            tokio::select! {
                batch = watcher.next() => match batch {
                    Some(Ok(b)) => {
                        if b.events.iter().any(|e| e.kv.as_ref().is_some_and(|kv| kv.key == leader_key)) {
                            return Ended::Again;
                        }
                        let state = b.events.iter().any(|e| e.kv.as_ref().is_some_and(|kv| {
                            kv.key.starts_with(&log) || kv.key.starts_with(&snaps)
                        }));
                        if state {
                            let bound = self.renew_every();
                            match tokio::time::timeout(bound, replica.catch_up(&self.etcd, &self.keys)).await {
                                Ok(Ok(_)) => {}
                                Ok(Err(e)) => tracing::debug!(error = %e, "warm copy not caught up"),
                                Err(_) => tracing::debug!("warm copy not caught up in time"),
                            }
                        }
                    }
                    // The watch ended (etcd unreachable for a while, or compacted): look again.
                    _ => return Ended::Again,
                },
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return Ended::Shutdown;
                    }
                }
                _ = renewal.tick() => {
                    match self.renew(lease, renewed).await {
                        Ok(true) => self.register(lease, &self.setter.role()).await,
                        Ok(false) => return Ended::LeaseLost,
                        Err(_) if sent_too_long_ago(*renewed, self.lease_ttl) => return Ended::LeaseLost,
                        Err(e) => tracing::debug!(error = %e, "lease renewal failed; retrying"),
                    }
                }
            }
        }
    }
}

fn sent_too_long_ago(renewed: Instant, ttl: Duration) -> bool {
    renewed.elapsed() >= ttl
}

/// Sleeps `d`; true if the server started stopping meanwhile.
async fn wait_or_stop(shutdown: &mut watch::Receiver<bool>, d: Duration) -> bool {
    let stopped = tokio::time::timeout(d, shutdown.wait_for(|s| *s)).await;
    matches!(stopped, Ok(Ok(_)))
}
