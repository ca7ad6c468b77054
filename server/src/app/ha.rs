//! Starting an instance of a highly available arbiter on etcd: connect, agree with the other
//! instances on the inventory, share the key that signs login tokens, and campaign.

use super::AppError;
use crate::cluster::instances::{Registry, now_ms};
use crate::cluster::leadership::{Campaign, StartWriter};
use crate::cluster::{Membership, Peer};
use crate::config::Config;
use crate::engine::{Cluster, HealthConfig, State};
use crate::identity::sessions::Sessions;
use crate::inventory_file::InventoryFile;
use crate::store::etcd::EtcdStore;
use crate::store::etcd::layout::Keys;
use crate::writer::Writer;
use arbiter_etcd::{CompareResult, Etcd, EtcdOptions};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What `<prefix>/inventory` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryRecord {
    /// The digest of the inventory file and the options that change it.
    pub digest: String,
    /// How many nodes it has (for the message when it differs).
    pub nodes: usize,
    /// The instance that wrote it.
    pub by: String,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
}

/// A running member of the cluster.
#[derive(Debug)]
pub struct Member {
    /// Its role.
    pub membership: Membership,
    /// The instance registry.
    pub registry: Registry,
    /// The key that signs login tokens, shared by every instance.
    pub sessions: Sessions,
    /// The campaign: ends after `stop` turns true (the leader key and the lease released).
    pub campaign: tokio::task::JoinHandle<()>,
}

/// Connects to etcd, waiting (and saying so) while it is unreachable.
pub async fn connect(config: &Config) -> Result<(Etcd, Keys), AppError> {
    if config.etcd_endpoints.is_empty() {
        return Err(AppError::Options(
            "--store etcd needs --etcd-endpoints (or ARBITER_ETCD_ENDPOINTS), e.g. http://127.0.0.1:2379".into(),
        ));
    }
    Keys::check_prefix(&config.etcd_prefix)
        .map_err(|e| AppError::Options(format!("--etcd-prefix {e}")))?;
    // A call to etcd gives up within the lease (at most 5 s): a leader must not sit on a
    // commit longer than it may lead.
    let defaults = EtcdOptions::default();
    let retry_deadline = defaults.retry_deadline.min(config.leader_lease);
    let options = EtcdOptions {
        retry_deadline,
        request_timeout: defaults.request_timeout.min(retry_deadline),
        ..defaults
    };
    let etcd = Etcd::connect(&config.etcd_endpoints, options)
        .map_err(|e| AppError::Options(format!("--etcd-endpoints: {e}")))?;
    let keys = Keys::new(&config.etcd_prefix);
    let mut said = false;
    let mut pause = Duration::from_millis(200);
    loop {
        match etcd.get(keys.leader()).await {
            Ok(_) => break,
            Err(e) if e.is_retryable() => {
                if !said {
                    tracing::warn!(endpoints = ?config.etcd_endpoints, error = %e,
                        "etcd unreachable; retrying until it answers");
                    said = true;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                return Err(AppError::Options(format!(
                    "etcd at {} refused: {e}",
                    config.etcd_endpoints.join(",")
                )));
            }
        }
    }
    if said {
        tracing::info!("etcd reachable");
    }
    Ok((etcd, keys))
}

/// Creates `key` with `value` unless it exists; answers what it holds then.
async fn create_or_get(etcd: &Etcd, key: Vec<u8>, value: Vec<u8>) -> Result<Vec<u8>, AppError> {
    let txn = arbiter_etcd::TxnRequest {
        compare: vec![arbiter_etcd::cmp_version(
            key.clone(),
            CompareResult::Equal,
            0,
        )],
        success: vec![arbiter_etcd::op_put(key.clone(), value.clone(), None)],
        failure: vec![arbiter_etcd::op_get(key.clone())],
    };
    let fail = |e: arbiter_etcd::EtcdError| AppError::Io {
        what: format!("cannot read {} in etcd", String::from_utf8_lossy(&key)),
        source: std::io::Error::other(e.to_string()),
    };
    let r = etcd.txn(txn, true).await.map_err(fail)?;
    if r.succeeded {
        return Ok(value);
    }
    let held = r.responses.into_iter().find_map(|op| match op.response {
        Some(arbiter_etcd::pb::etcdserverpb::response_op::Response::ResponseRange(rr)) => {
            rr.kvs.into_iter().next().map(|kv| kv.value)
        }
        _ => None,
    });
    Ok(held.unwrap_or(value))
}

/// Refuses an inventory that differs from the one the other instances decide on; the first
/// instance records its own.
pub async fn agree_on_inventory(
    etcd: &Etcd,
    keys: &Keys,
    inventory: &InventoryFile,
    digest: &str,
    cluster: &Cluster,
    me: &str,
) -> Result<(), AppError> {
    let mine = InventoryRecord {
        digest: digest.to_owned(),
        nodes: cluster.node_count(),
        by: me.to_owned(),
        at_ms: now_ms(),
    };
    let value = serde_json::to_vec(&mine).map_err(|e| AppError::Options(e.to_string()))?;
    let held = create_or_get(etcd, keys.inventory(), value).await?;
    let theirs: InventoryRecord = serde_json::from_slice(&held).map_err(|e| AppError::Io {
        what: "the inventory record in etcd is unreadable".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    if theirs.digest != digest {
        return Err(AppError::Inventory {
            path: inventory.path.clone(),
            message: mismatch(&theirs, cluster.node_count()),
        });
    }
    Ok(())
}

/// The text for an inventory that is not the cluster's.
pub fn mismatch(theirs: &InventoryRecord, my_nodes: usize) -> String {
    format!(
        "differs from the inventory the other instances decide on ({} nodes here, {} there; \
         recorded by instance '{}', digest {}…): start every instance with the same file and \
         the same --default-* options, or reload the new file on every instance",
        my_nodes,
        theirs.nodes,
        theirs.by,
        &theirs.digest[..theirs.digest.len().min(12)]
    )
}

/// Makes sure no live instance uses this `--instance-id`. A record with our own address is our
/// previous run (we hold its port now): it is removed at once. Another address waits for that
/// record's lease to run out, and is refused if it does not.
async fn claim_instance_id(
    etcd: &Etcd,
    keys: &Keys,
    me: &Peer,
    lease: Duration,
) -> Result<(), AppError> {
    let deadline = tokio::time::Instant::now() + lease * 2 + Duration::from_secs(1);
    let mut said = false;
    loop {
        let held = etcd
            .get(keys.instance(&me.id))
            .await
            .map_err(|e| AppError::Io {
                what: "cannot read the instance registry in etcd".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let Some(kv) = held else {
            return Ok(());
        };
        let record: Option<crate::cluster::instances::InstanceRecord> =
            serde_json::from_slice(&kv.value).ok();
        let address = record.map(|r| r.address).unwrap_or_default();
        if address == me.address {
            let _ = etcd
                .txn(
                    arbiter_etcd::TxnRequest {
                        compare: vec![arbiter_etcd::cmp_mod_revision(
                            keys.instance(&me.id),
                            CompareResult::Equal,
                            kv.mod_revision,
                        )],
                        success: vec![arbiter_etcd::op_delete(keys.instance(&me.id))],
                        failure: Vec::new(),
                    },
                    true,
                )
                .await;
            tracing::info!(instance = %me.id, "removed the registration of this instance's previous run");
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(AppError::Options(format!(
                "--instance-id {} is already used by a live instance at {address}: give every \
                 instance its own id",
                me.id
            )));
        }
        if !said {
            tracing::warn!(instance = %me.id, other = %address,
                "another instance is registered with this id; waiting for its lease to run out");
            said = true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The key that signs login tokens: created by the first instance, read by the others.
pub async fn shared_sessions(etcd: &Etcd, keys: &Keys) -> Result<Sessions, AppError> {
    let mut fresh = [0u8; 32];
    getrandom::fill(&mut fresh).map_err(|e| AppError::Io {
        what: "no randomness for the session key".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let held = create_or_get(etcd, keys.session_key(), fresh.to_vec()).await?;
    let key: [u8; 32] = held.as_slice().try_into().map_err(|_| AppError::Io {
        what: "the session key in etcd is not 32 bytes".into(),
        source: std::io::Error::other("bad session key"),
    })?;
    Ok(Sessions::with_key(key))
}

/// Joins the cluster: agrees on the inventory, shares the session key, starts campaigning.
#[allow(clippy::too_many_arguments)]
pub async fn join(
    config: &Config,
    etcd: Etcd,
    keys: Keys,
    inventory: Arc<InventoryFile>,
    me: Peer,
    health: HealthConfig,
    stop: watch::Receiver<bool>,
) -> Result<Member, AppError> {
    let (cluster, digest) = inventory.load_with_digest()?;
    agree_on_inventory(&etcd, &keys, &inventory, &digest, &cluster, &me.id).await?;
    claim_instance_id(&etcd, &keys, &me, config.leader_lease).await?;
    let sessions = shared_sessions(&etcd, &keys).await?;
    let (membership, setter) = Membership::new(me.clone());
    let runtime = tokio::runtime::Handle::current();
    let audit = config.audit();
    let start_writer: StartWriter = {
        let (etcd, keys) = (etcd.clone(), keys.clone());
        Box::new(move |epoch, replica, cluster: Arc<Cluster>| {
            let stranded = State::stranded_locks(&cluster, &replica.snapshot);
            if !stranded.is_empty() {
                return Err(format!(
                    "the state holds live locks that this instance's inventory would lose or change: {}",
                    stranded.join(", ")
                ));
            }
            let mut state = State::restore(cluster, replica.snapshot.clone());
            state.set_health(health);
            state.set_audit(audit);
            super::transfer::warn_if_read_only(&state);
            let store = EtcdStore::leading(
                etcd.clone(),
                keys.clone(),
                epoch,
                replica.clone(),
                runtime.clone(),
            );
            Writer::start(state, Box::new(store))
                .map_err(|e| format!("cannot start the writer: {e}"))
        })
    };
    let campaign = Campaign {
        etcd: etcd.clone(),
        keys: keys.clone(),
        me,
        lease_ttl: config.leader_lease,
        setter,
        start_writer,
        inventory,
        started_ms: now_ms(),
    };
    let campaign = tokio::spawn(campaign.run(stop));
    Ok(Member {
        membership,
        registry: Registry { etcd, keys },
        sessions,
        campaign,
    })
}
