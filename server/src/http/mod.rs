//! The HTTP side: one listener beside the gRPC one (`--http-listen`), on the same runtime, state
//! and identity. Every route is a thin shell over the calls the gRPC services make: it names the
//! caller from `Authorization: Bearer` (the same tokens; open mode without `--auth`), runs the
//! same service method, and answers JSON (errors through [`error::ApiError`], the one mapping
//! from refusals to HTTP).
//!
//! - [`error`]: refusals as `{"code": ..., "message": ...}` with an HTTP status.
//! - [`probes`]: `/healthz` (serving) and `/readyz` (this instance decides: a load balancer
//!   sends writes to the leader with it).
//! - [`metrics`]: `/metrics` in Prometheus' text format.
//! - [`rest`]: the JSON API under `/v1/` and its OpenAPI document.
//! - [`fleetlock`]: FleetLock's `/v1/pre-reboot` and `/v1/steady-state`.
//! - [`dashboard`]: the live web page at `/`.
//!
//! On an instance that does not lead (high availability on etcd), calls that need the engine
//! answer 503 with code `NOT_LEADER`, naming the leader: HTTP is not relayed the way gRPC is.

pub mod dashboard;
pub mod error;
pub mod fleetlock;
pub mod metrics;
pub mod probes;
pub mod rest;

use crate::service::Context;
use crate::service::arbiter_v1::ArbiterApi;
use crate::service::audit::Audit;
use crate::service::maintenance::Maintenance;
use axum::Router;
use axum::http::HeaderMap;
use std::net::SocketAddr;
use tonic::metadata::MetadataMap;

/// What every route shares: the services' context and the services themselves.
#[derive(Debug, Clone)]
pub struct Api {
    /// The context the gRPC services share.
    pub ctx: Context,
    /// `Ydb.Maintenance.V1.MaintenanceService`.
    pub maintenance: Maintenance,
    /// `arbiter.v1.ArbiterService`.
    pub arbiter: ArbiterApi,
}

impl Api {
    /// The routes over `ctx`.
    pub fn new(ctx: Context) -> Api {
        Api {
            maintenance: Maintenance::new(ctx.clone()),
            arbiter: ArbiterApi::new(ctx.clone()),
            ctx,
        }
    }
}

/// A request's identity as the gRPC services read it: its headers as metadata (the token in
/// `Authorization: Bearer`), and the audit record of the call with the peer's address.
#[derive(Debug)]
pub struct Call {
    /// The request's headers, as gRPC metadata.
    pub meta: MetadataMap,
    /// Who called what, for the log and the audit trail.
    pub audit: Audit,
}

impl Call {
    /// The call `name` (e.g. "http CreateTask") from `peer` with `headers`.
    pub fn of(name: &'static str, peer: SocketAddr, headers: &HeaderMap) -> Call {
        Call {
            meta: MetadataMap::from_headers(headers.clone()),
            audit: Audit::http(name, peer),
        }
    }
}

/// Every route, ready to serve.
pub fn router(api: Api) -> Router {
    Router::new()
        .merge(probes::routes())
        .merge(metrics::routes())
        .merge(rest::routes())
        .merge(fleetlock::routes())
        .merge(dashboard::routes())
        .with_state(api)
        // Counts every request by route template (after routing: the template is known).
        .layer(axum::middleware::from_fn(metrics::count))
}

/// Serves `router` on `listener` (over TLS with `tls`: HTTPS, see [`crate::tls`]) until
/// `shutdown` resolves (in-flight requests finish).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<std::sync::Arc<crate::tls::Tls>>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(tls) => {
            use axum::serve::ListenerExt as _;
            // tap_io: axum gives any listener wrapped so its address as the ConnectInfo.
            let listener = crate::tls::HttpsListener::new(listener, tls)?.tap_io(|_| {});
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}
