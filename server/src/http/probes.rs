//! `/healthz` and `/readyz`: whether this instance serves, and whether it decides.

use super::Api;
use crate::cluster::Role;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

/// The probe routes.
pub fn routes() -> Router<Api> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// 200 while the process serves.
async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 when this instance decides (a single instance, or the leader on etcd); 503 otherwise,
/// naming who leads, so that a load balancer sends calls to the leader.
async fn readyz(State(api): State<Api>) -> (StatusCode, String) {
    match api.ctx.membership.role() {
        Role::Leader { .. } => (StatusCode::OK, "leader\n".into()),
        Role::Follower {
            leader: Some(leader),
        } => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "follower: the leader is {} at {}\n",
                leader.id, leader.address
            ),
        ),
        Role::Follower { leader: None } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "follower: no leader known\n".into(),
        ),
        Role::Starting => (StatusCode::SERVICE_UNAVAILABLE, "starting\n".into()),
    }
}
