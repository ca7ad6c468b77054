//! Wiring: load the inventory and the auth file, restore the state from the store, start the
//! writer, serve every gRPC service, and shut down gracefully.

use crate::config::Config;
use crate::engine::cluster::Defaults;
use crate::engine::inventory::{self, Format};
use crate::engine::{Cluster, State};
use crate::identity::{Identity, auth_file};
use crate::service::Context;
use crate::service::arbiter_v1::ArbiterApi;
use crate::service::decode::RequestLimits;
use crate::service::maintenance::Maintenance;
use crate::service::ydb_extras::YdbExtras;
use crate::store::{RedbStore, Store, StoreError};
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
use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::ServingStatus;

/// The largest request the server decodes. A task of 100 000 single-node groups fits.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;
/// The store's file inside the data directory.
pub const STORE_FILE: &str = "arbiter.redb";

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
            AppError::Store { .. } | AppError::Io { .. } => 1,
        }
    }
}

/// Loads the inventory, with the command line's default durations applied.
pub fn load_cluster(config: &Config) -> Result<Cluster, AppError> {
    let path = config
        .inventory
        .clone()
        .ok_or_else(|| AppError::Options("--inventory is required".into()))?;
    let fail = |message: String| AppError::Inventory {
        path: path.clone(),
        message,
    };
    let format = Format::from_file_name(&path.to_string_lossy())
        .ok_or_else(|| fail("unknown file type: name it *.toml or *.json".into()))?;
    let text = std::fs::read_to_string(&path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let mut cluster = inventory::parse(&text, format).map_err(|e| fail(e.to_string()))?;
    let inv = cluster.defaults();
    let defaults = Defaults {
        lock_duration: config.default_lock_duration.unwrap_or(inv.lock_duration),
        retry_after: config.default_retry_after.unwrap_or(inv.retry_after),
    };
    if defaults.lock_duration > config.max_lock_duration {
        let source = if config.default_lock_duration.is_some() {
            "--default-lock-duration".to_owned()
        } else {
            format!("{}: defaults.lock_duration", path.display())
        };
        return Err(AppError::Options(format!(
            "{source} ({}) exceeds --max-lock-duration ({})",
            humantime::format_duration(defaults.lock_duration),
            humantime::format_duration(config.max_lock_duration)
        )));
    }
    cluster.set_defaults(defaults);
    Ok(cluster)
}

/// Loads the auth file, or open mode without one.
pub fn load_identity(config: &Config) -> Result<Identity, AppError> {
    let Some(path) = &config.auth else {
        return Ok(Identity::open());
    };
    let fail = |message: String| AppError::AuthFile {
        path: path.clone(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let users = auth_file::parse(&text).map_err(|e| fail(e.to_string()))?;
    Ok(Identity::with_users(users))
}

/// Opens the store in the data directory.
pub fn open_store(dir: &Path) -> Result<RedbStore, AppError> {
    std::fs::create_dir_all(dir).map_err(|source| AppError::Io {
        what: format!("cannot create the data directory {}", dir.display()),
        source,
    })?;
    RedbStore::open(&dir.join(STORE_FILE)).map_err(|source| AppError::Store {
        path: dir.to_owned(),
        source,
    })
}

/// Runs the server until `shutdown` resolves. `on_listening` learns the bound address (the
/// binary prints it, so that a caller who asked for port 0 learns the port). After `shutdown`,
/// calls in flight get `--shutdown-grace` to finish; then the writer stops regardless of
/// connections that are still open.
pub async fn run(
    config: Config,
    on_listening: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let cluster = Arc::new(load_cluster(&config)?);
    let identity = Arc::new(load_identity(&config)?);
    let store = open_store(&config.data_dir)?;
    let snapshot = store.load().map_err(|source| AppError::Store {
        path: config.data_dir.clone(),
        source,
    })?;
    let state = State::restore(cluster.clone(), snapshot);
    tracing::info!(
        nodes = cluster.node_count(),
        tasks = state.task_uids(None).len(),
        locks = state.lock_count(),
        auth = identity.is_enforcing(),
        "state restored"
    );
    let (writer, writer_thread) =
        Writer::start(state, Box::new(store)).map_err(|source| AppError::Io {
            what: "cannot start the writer thread".into(),
            source,
        })?;

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

    let ctx = Context {
        writer,
        identity,
        limits: RequestLimits {
            max_lock_duration: config.max_lock_duration,
        },
    };
    let tenants = cluster.tenants().map(|t| t.name.clone()).collect();
    let extras = YdbExtras::new(ctx.clone(), tenants);
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", ServingStatus::Serving).await;
    let reflection = |e: tonic_reflection::server::Error| AppError::Io {
        what: "cannot build the reflection service".into(),
        source: std::io::Error::other(e.to_string()),
    };
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(arbiter_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(reflection)?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(arbiter_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(reflection)?;

    let router = tonic::transport::Server::builder()
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
    // Shutdown must not wait for handles that stalled connections may keep alive.
    let stopper = ctx.writer.clone();
    drop(ctx);

    on_listening(addr);
    tracing::info!(%addr, "serving");

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: health NOT_SERVING, finishing in-flight calls");
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        let _ = stop_tx.send(());
    };
    let serve = router.serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal);
    let shutdown_grace = config.shutdown_grace;
    let grace = async {
        let _ = stop_rx.await;
        tokio::time::sleep(shutdown_grace).await;
    };
    tokio::select! {
        r = serve => r.map_err(|e| AppError::Io {
            what: "the gRPC server failed".into(),
            source: std::io::Error::other(e.to_string()),
        })?,
        () = grace => tracing::warn!(
            "connections still open after {shutdown_grace:?}; stopping anyway"
        ),
    }
    // The writer finishes the batch it is running (committed and answered) and stops; anything
    // still queued is answered UNAVAILABLE, which clients retry.
    stopper.stop();
    tokio::task::spawn_blocking(move || writer_thread.join())
        .await
        .ok();
    tracing::info!("stopped");
    Ok(())
}

/// Writes the line a supervisor or test reads to learn the address: `listening on ADDR`.
pub fn announce(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
}
