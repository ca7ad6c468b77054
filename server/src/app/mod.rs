//! Wiring: load the inventory and the auth file, restore the state from the store, start the
//! writer, serve every gRPC service, and shut down gracefully.

pub mod ha;
pub mod transfer;

use crate::cluster::forward::ForwardLayer;
use crate::cluster::{Membership, Peer, Role};
use crate::config::{Config, HttpListen, StoreKind};
use crate::engine::{HealthConfig, State};
use crate::identity::sessions::Sessions;
use crate::identity::{Identity, auth_file};
use crate::inventory_file::{InventoryFile, InventoryFileError};
use crate::service::Context;
use crate::service::arbiter_v1::ArbiterApi;
use crate::service::audit::{Audit, Initiator};
use crate::service::decode::RequestLimits;
use crate::service::maintenance::Maintenance;
use crate::service::ydb_extras::YdbExtras;
use crate::store::{Recovery, RedbStore, Store, StoreError};
use crate::writer::Writer;
use arbiter_proto::arbiter::v1::arbiter_service_server::ArbiterServiceServer;
use arbiter_proto::ydb::auth::v1::auth_service_server::AuthServiceServer;
use arbiter_proto::ydb::cms::v1::cms_service_server::CmsServiceServer;
use arbiter_proto::ydb::discovery::v1::discovery_service_server::DiscoveryServiceServer;
use arbiter_proto::ydb::maintenance::v1::maintenance_service_server::MaintenanceServiceServer;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::ServingStatus;

/// The largest request the server decodes. A task of 100 000 single-node groups fits.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;
/// The store's file inside the data directory.
pub use crate::store::STORE_FILE;

/// Why the server did not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The inventory could not be read or is invalid.
    #[error("inventory {path}: {message}")]
    Inventory {
        /// The file.
        path: PathBuf,
        /// Every problem, with its key.
        message: String,
    },
    /// The auth file could not be read or is invalid.
    #[error("auth file {path}: {message}")]
    AuthFile {
        /// The file.
        path: PathBuf,
        /// Every problem, with its key.
        message: String,
    },
    /// Options that contradict each other or the inventory.
    #[error("{0}")]
    Options(String),
    /// The data directory or the store could not be opened or read.
    #[error("store in {path}: {source}")]
    Store {
        /// The data directory.
        path: PathBuf,
        /// What failed.
        source: StoreError,
    },
    /// The store is not what the data directory last committed (damaged, missing, emptied,
    /// replaced, rolled back): refused rather than started without what it held.
    #[error(
        "refusing to start: {source}. To fix it, {}; or, to give up what it held, start once \
         with --accept-store-loss (or ARBITER_ACCEPT_STORE_LOSS=true), {}",
        remedy(source),
        accepting(source)
    )]
    StoreUntrusted {
        /// What is wrong, naming the file and what to do ([`StoreError::Untrusted`]).
        source: StoreError,
    },
    /// Anything of the operating system: binding the port, creating a directory, a thread.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

impl AppError {
    /// 2 for bad input the user can fix in a file or an option; 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Inventory { .. } | AppError::AuthFile { .. } | AppError::Options(_) => 2,
            AppError::Store { .. } | AppError::StoreUntrusted { .. } | AppError::Io { .. } => 1,
        }
    }
}

/// The inventory file as the command line describes it.
pub fn inventory_file(config: &Config) -> Result<InventoryFile, AppError> {
    let path = config
        .inventory
        .clone()
        .ok_or_else(|| AppError::Options("--inventory is required".into()))?;
    Ok(InventoryFile {
        path,
        lock_duration: config.default_lock_duration,
        retry_after: config.default_retry_after,
        max_lock_duration: config.max_lock_duration,
    })
}

impl From<InventoryFileError> for AppError {
    fn from(e: InventoryFileError) -> AppError {
        match e {
            InventoryFileError::Invalid { path, message } => AppError::Inventory { path, message },
            InventoryFileError::Options(message) => AppError::Options(message),
        }
    }
}

/// Loads the auth file (or open mode without one) and the session key in the data directory.
pub fn load_identity(config: &Config) -> Result<Identity, AppError> {
    let sessions = Sessions::load_or_create(&config.data_dir).map_err(|source| AppError::Io {
        what: format!(
            "cannot use the session key in {}",
            config.data_dir.display()
        ),
        source,
    })?;
    identity_with(config, sessions)
}

/// Loads the auth file (or open mode without one), with `sessions` for login tokens.
pub fn identity_with(config: &Config, sessions: Sessions) -> Result<Identity, AppError> {
    let Some(path) = &config.auth else {
        return Ok(Identity::open(sessions));
    };
    let fail = |message: String| AppError::AuthFile {
        path: path.clone(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let users = auth_file::parse(&text).map_err(|e| fail(e.to_string()))?;
    Ok(Identity::with_users(users, sessions))
}

/// Opens the store in the data directory. A store that is not what the directory last
/// committed is refused ([`AppError::StoreUntrusted`]) unless `recovery` accepts the loss.
pub fn open_store(dir: &Path, recovery: Recovery) -> Result<RedbStore, AppError> {
    std::fs::create_dir_all(dir).map_err(|source| AppError::Io {
        what: format!("cannot create the data directory {}", dir.display()),
        source,
    })?;
    RedbStore::open(dir, recovery).map_err(|source| store_error(dir, source))
}

/// A store error at start-up; an untrusted store gets what to do about it.
fn store_error(dir: &Path, source: StoreError) -> AppError {
    match source {
        StoreError::Untrusted { .. } => AppError::StoreUntrusted { source },
        _ => AppError::Store {
            path: dir.to_owned(),
            source,
        },
    }
}

/// The backend's advice for an untrusted store.
fn remedy(e: &StoreError) -> &str {
    match e {
        StoreError::Untrusted { remedy, .. } => remedy,
        _ => "see the error",
    }
}

/// What `--accept-store-loss` would do about it.
fn accepting(e: &StoreError) -> &'static str {
    match e {
        StoreError::Untrusted { problem, .. } if problem.keeps_the_store() => {
            "which moves that file aside and keeps the store as it is"
        }
        _ => {
            "which moves the file aside (it is kept, renamed *.lost-<time>) and starts with an \
             empty store"
        }
    }
}

/// Runs the server until `shutdown` resolves: on one redb file (`--store redb`, a single
/// instance that always leads) or as one instance of several on etcd (`--store etcd`).
pub async fn run(
    config: Config,
    on_listening: impl FnOnce(SocketAddr, Option<SocketAddr>),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let inventory = Arc::new(inventory_file(&config)?);
    let health = HealthConfig {
        heartbeat_timeout: config.heartbeat_timeout,
        settle: config.settle_time,
        ring_settle: config.ring_settle_time,
    };
    // Every TLS file is read and checked before anything listens.
    let tls = crate::tls::Tls::from_config(&config)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| AppError::Io {
            what: format!("cannot listen on {}", config.listen),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| AppError::Io {
        what: "cannot read the bound address".into(),
        source,
    })?;
    let http_listener =
        match config.http_listen {
            HttpListen::Off => None,
            HttpListen::On(at) => Some(tokio::net::TcpListener::bind(at).await.map_err(
                |source| AppError::Io {
                    what: format!("cannot listen for HTTP on {at}"),
                    source,
                },
            )?),
        };
    let http_addr = match &http_listener {
        Some(l) => Some(l.local_addr().map_err(|source| AppError::Io {
            what: "cannot read the bound HTTP address".into(),
            source,
        })?),
        None => None,
    };
    let advertise = config.advertise.clone().unwrap_or_else(|| addr.to_string());
    let me = Peer {
        id: config
            .instance_id
            .clone()
            .unwrap_or_else(|| advertise.clone()),
        address: advertise,
        epoch: 0,
    };
    // The campaign stops after the last call was answered (or the grace ran out).
    let (leave_tx, leave_rx) = tokio::sync::watch::channel(false);
    let (membership, registry, identity, writer_thread, campaign) = match config.store {
        StoreKind::Redb => {
            let (writer, thread, identity) = start_solo(&config, &inventory, health)?;
            (
                Membership::solo(writer, me),
                None,
                identity,
                Some(thread),
                None,
            )
        }
        StoreKind::Etcd => {
            let (etcd, keys) = ha::connect(&config).await?;
            let member =
                ha::join(&config, etcd, keys, inventory.clone(), me, health, leave_rx).await?;
            let identity = Arc::new(identity_with(&config, member.sessions)?);
            tracing::info!(instance = %member.membership.me().id,
                address = %member.membership.me().address, prefix = %config.etcd_prefix,
                auth = identity.is_enforcing(), "joined the cluster on etcd");
            (
                member.membership,
                Some(member.registry),
                identity,
                None,
                Some(member.campaign),
            )
        }
    };

    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
    let ctx = Context {
        membership: membership.clone(),
        registry,
        identity,
        limits: RequestLimits {
            max_lock_duration: config.max_lock_duration,
            max_watches: config.max_watches as usize,
            max_watches_per_user: config.max_watches_per_user as usize,
        },
        inventory,
        shutdown: stopping_rx,
    };
    let extras = YdbExtras::new(ctx.clone());
    let (health, health_service) = tonic_health::server::health_reporter();
    let reporter = tokio::spawn(report_health(health.clone(), membership.clone()));
    let reflection = |e: tonic_reflection::server::Error| AppError::Io {
        what: "cannot build the reflection service".into(),
        source: std::io::Error::other(e.to_string()),
    };
    // Both reflection versions serve the same descriptors: grpcurl 1.8 asks v1alpha, newer
    // tools v1.
    let descriptors = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(arbiter_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = descriptors().build_v1().map_err(reflection)?;
    let reflection_v1alpha = descriptors().build_v1alpha().map_err(reflection)?;

    let router = tonic::transport::Server::builder()
        // Counts every call this instance answers (relayed ones too), by method and status.
        .layer(crate::metrics::grpc::MetricsLayer)
        // A follower relays what it cannot decide to the leader.
        .layer(ForwardLayer::new(
            membership.clone(),
            LEADER_WAIT,
            tls.clone(),
        ))
        .add_service(
            MaintenanceServiceServer::new(Maintenance::new(ctx.clone()))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(
            DiscoveryServiceServer::new(extras.clone())
                .max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(
            CmsServiceServer::new(extras.clone()).max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(AuthServiceServer::new(extras).max_decoding_message_size(MAX_REQUEST_BYTES))
        .add_service(
            ArbiterServiceServer::new(ArbiterApi::new(ctx.clone()))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    // Installed before the address is announced, so an early SIGHUP reloads instead of killing.
    let reloader = tokio::spawn(reload_on_sighup(ctx.clone(), hangup_signal(), tls.clone()));
    let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let http = http_listener.map(|l| {
        let router = crate::http::router(crate::http::Api::new(ctx.clone()));
        tokio::spawn(crate::http::serve(l, tls.clone(), router, async move {
            let _ = http_stop_rx.await;
        }))
    });
    drop(ctx);

    on_listening(addr, http_addr);
    tracing::info!(%addr, http = ?http_addr, "serving");

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: health NOT_SERVING, finishing in-flight calls");
        reporter.abort();
        for name in SERVICES.iter().chain([&LEADER_SERVICE]) {
            health
                .set_service_status(*name, ServingStatus::NotServing)
                .await;
        }
        // Watch streams end now, so that they do not hold the shutdown up.
        let _ = stopping_tx.send(true);
        let _ = http_stop_tx.send(());
        let _ = stop_tx.send(());
    };
    type Serving =
        std::pin::Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>>;
    let serve: Serving = if let Some(tls) = &tls {
        let incoming = crate::tls::grpc_incoming(listener, tls.clone());
        Box::pin(router.serve_with_incoming_shutdown(incoming, signal))
    } else {
        // Small replies must not wait for Nagle's algorithm (40 ms stalls with delayed ACKs).
        let incoming = TcpListenerStream::new(listener).map(|conn| {
            conn.inspect(|s| {
                if let Err(e) = s.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                }
            })
        });
        Box::pin(router.serve_with_incoming_shutdown(incoming, signal))
    };
    let shutdown_grace = config.shutdown_grace;
    let grace = async {
        let _ = stop_rx.await;
        tokio::time::sleep(shutdown_grace).await;
    };
    // A single instance's writer that ends on its own (a panic, or a store it could not reload
    // after a failed commit) leaves a server that can only answer UNAVAILABLE: exit instead, so
    // that a supervisor restarts it and clients fail over. On etcd the campaign handles it.
    let mut writer_done = writer_thread.map(|t| tokio::task::spawn_blocking(move || t.join()));
    let writer_stopped = async {
        match writer_done.as_mut() {
            Some(handle) => {
                let _ = handle.await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = writer_stopped => {
            tracing::error!("the writer stopped unexpectedly; exiting");
            return Err(AppError::Io {
                what: "the writer thread stopped (see the log above)".into(),
                source: std::io::Error::other("writer stopped"),
            });
        }
        r = serve => r.map_err(|e| AppError::Io {
            what: "the gRPC server failed".into(),
            source: std::io::Error::other(e.to_string()),
        })?,
        () = grace => tracing::warn!(
            "connections still open after {shutdown_grace:?}; stopping anyway"
        ),
    }
    // The writer finishes the batch it is running (committed and answered) and stops; anything
    // still queued is answered UNAVAILABLE, which clients retry. A leader on etcd then hands
    // its key over at once.
    reloader.abort();
    if let Some(h) = http {
        // Its in-flight requests had the same grace as the gRPC calls.
        match tokio::time::timeout(std::time::Duration::from_secs(1), h).await {
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "the HTTP server failed"),
            Ok(_) => {}
            Err(_) => tracing::warn!("HTTP requests still running at shutdown; stopping anyway"),
        }
    }
    membership.stop_writer();
    let _ = leave_tx.send(true);
    if let Some(c) = campaign {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), c).await;
    }
    if let Some(handle) = writer_done {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), handle).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// A single instance on redb: the store opened, the state restored, the writer started.
fn start_solo(
    config: &Config,
    inventory: &InventoryFile,
    health: HealthConfig,
) -> Result<(Writer, std::thread::JoinHandle<()>, Arc<Identity>), AppError> {
    let started = std::time::Instant::now();
    let recovery = if config.accept_store_loss {
        Recovery::AcceptLoss
    } else {
        Recovery::Refuse
    };
    let load_store = || -> Result<_, AppError> {
        let store = open_store(&config.data_dir, recovery)?;
        let snapshot = store
            .load()
            .map_err(|source| store_error(&config.data_dir, source))?;
        Ok((store, snapshot))
    };
    // On a restart (a store is there and nothing is to be moved aside) the inventory is read on
    // a thread of its own while the store loads: at scale each takes a good part of the start.
    // Otherwise the inventory comes first, so that a bad one leaves the data directory as it
    // was. (Opening an existing store may finish redb's recovery from a crash, which any later
    // start would do too.) An inventory error is reported before a store error either way.
    let restart =
        !config.accept_store_loss && config.data_dir.join(crate::store::STORE_FILE).exists();
    let (cluster, inventory_loaded, (store, snapshot)) = if restart {
        std::thread::scope(|scope| {
            let parse = scope.spawn(|| (inventory.load(), started.elapsed()));
            let loaded = load_store();
            let (cluster, took) = parse
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Ok::<_, AppError>((cluster?, took, loaded?))
        })?
    } else {
        let cluster = inventory.load()?;
        let took = started.elapsed();
        (cluster, took, load_store()?)
    };
    let cluster = Arc::new(cluster);
    let store_loaded = started.elapsed();
    let identity = Arc::new(load_identity(config)?);
    let stranded = State::stranded_locks(&cluster, &snapshot);
    if !stranded.is_empty() {
        return Err(AppError::Inventory {
            path: inventory.path.clone(),
            message: format!(
                "the store in {} holds live locks that this inventory would lose or change: {}; \
                 start with the old inventory and complete or drop those tasks first",
                config.data_dir.display(),
                stranded.join(", ")
            ),
        });
    }
    let mut state = State::restore(cluster.clone(), snapshot);
    state.set_health(health);
    state.set_audit(config.audit());
    tracing::info!(
        nodes = cluster.node_count(),
        tasks = state.task_uids(None).len(),
        locks = state.lock_count(),
        auth = identity.is_enforcing(),
        inventory_ms = inventory_loaded.as_millis(),
        inventory_and_store_ms = store_loaded.as_millis(),
        total_ms = started.elapsed().as_millis(),
        "state restored"
    );
    transfer::warn_if_read_only(&state);
    let (writer, thread) =
        Writer::start(state, Box::new(store)).map_err(|source| AppError::Io {
            what: "cannot start the writer thread".into(),
            source,
        })?;
    Ok((writer, thread, identity))
}

/// How long a call on a follower waits for a leader to be known before it is refused.
pub const LEADER_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The health service name that is SERVING only on the leader, for load balancers that want
/// to reach it directly.
pub const LEADER_SERVICE: &str = "arbiter.v1.Leader";

/// Keeps the health service in step with the role: every service is SERVING on an instance
/// that can serve (the leader, or a follower that knows the leader), and
/// [`LEADER_SERVICE`] only on the leader.
async fn report_health(health: tonic_health::server::HealthReporter, membership: Membership) {
    let mut changes = membership.changes();
    loop {
        let role = changes.borrow_and_update().clone();
        let now = std::time::Instant::now();
        let (serving, leading) = match &role {
            Role::Leader { .. } => (role.leads_at(now), role.leads_at(now)),
            Role::Follower { leader } => (leader.is_some(), false),
            Role::Starting => (false, false),
        };
        let status = |on: bool| {
            if on {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            }
        };
        for name in SERVICES {
            health.set_service_status(name, status(serving)).await;
        }
        health
            .set_service_status(LEADER_SERVICE, status(leading))
            .await;
        // A leader whose lease runs out without a renewal stops serving then, even before the
        // campaign notices.
        let expiry = match role {
            Role::Leader {
                valid_until: Some(t),
                ..
            } if t > now => Some(t),
            _ => None,
        };
        let changed = match expiry {
            Some(t) => tokio::select! {
                c = changes.changed() => c,
                () = tokio::time::sleep_until(t.into()) => Ok(()),
            },
            None => changes.changed().await,
        };
        if changed.is_err() {
            return;
        }
    }
}

/// Every service the health service reports on ("" is the server as a whole).
const SERVICES: [&str; 7] = [
    "",
    "Ydb.Maintenance.V1.MaintenanceService",
    "Ydb.Discovery.V1.DiscoveryService",
    "Ydb.Cms.V1.CmsService",
    "Ydb.Auth.V1.AuthService",
    "arbiter.v1.ArbiterService",
    "grpc.health.v1.Health",
];

#[cfg(unix)]
type Hangup = std::io::Result<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

/// Installs the SIGHUP handler now, replacing the default action (terminate).
fn hangup_signal() -> Hangup {
    #[cfg(unix)]
    return tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
}

/// Reloads the inventory (and the TLS files) on every SIGHUP, as daemons do.
async fn reload_on_sighup(ctx: Context, hup: Hangup, tls: Option<Arc<crate::tls::Tls>>) {
    #[cfg(unix)]
    {
        let mut hup = match hup {
            Ok(hup) => hup,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with arbiter.v1.ReloadInventory");
                return;
            }
        };
        while hup.recv().await.is_some() {
            if let Some(tls) = &tls {
                tls.reload_logged();
            }
            // Accepted or refused, the reload is logged there (call SIGHUP), like the RPC's.
            let _ = ctx
                .reload_inventory(Audit::sighup(), Initiator::Signal)
                .await;
        }
    }
    #[cfg(not(unix))]
    let _ = (ctx, hup, tls);
}

/// Writes the lines a supervisor or test reads to learn the addresses: `listening on ADDR`
/// first (the readiness signal), then `http listening on ADDR` when HTTP is served.
pub fn announce(addr: SocketAddr, http: Option<SocketAddr>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {addr}");
    if let Some(h) = http {
        let _ = writeln!(out, "http listening on {h}");
    }
    let _ = out.flush();
}
