//! `/metrics`: Prometheus' scrape, in the OpenMetrics text format, on every instance.
//!
//! Unauthenticated, as Prometheus scrapers expect: it says counts, states, reasons and
//! durations, never a token, a user, a task uid or a text. The instruments counted where things
//! happen come from [`crate::metrics::global`]; the state's gauges are read by one query on the
//! writer when this instance leads (bounded by [`STATE_READ_TIMEOUT`]: a stalled writer leaves
//! `arbiter_state_read_ok 0` and every other series intact, so alerts still see it).
//!
//! [`count`] is the middleware that counts every HTTP request by route template.

use super::Api;
use crate::cluster::Role;
use crate::metrics::state::StateGauges;
use crate::metrics::{CONTENT_TYPE, RouteLabels, global};
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::time::Duration;

/// How long a scrape waits for the writer to read the state.
pub const STATE_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// The routes of this module.
pub fn routes() -> Router<Api> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(api): State<Api>) -> Response {
    let (leader, epoch) = match api.ctx.membership.role() {
        Role::Leader { epoch, .. } => (true, epoch),
        _ => (false, 0),
    };
    let read = if leader {
        let query = api
            .ctx
            .query(|state, now| Ok(StateGauges::read(state, now)));
        match tokio::time::timeout(STATE_READ_TIMEOUT, query).await {
            Ok(Ok(g)) => Some(g),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "metrics: the state could not be read");
                None
            }
            Err(_) => {
                tracing::warn!("metrics: the writer did not answer within {STATE_READ_TIMEOUT:?}");
                None
            }
        }
    } else {
        None
    };
    let extra = StateGauges::registry(read.as_ref(), leader, epoch);
    let body = global().render(&extra);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

/// The method label: the standard ones, else `other` (bounded).
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: counts every request in `arbiter_http_requests_total` by route template
/// (`unmatched` for paths no route serves), method and status.
pub async fn count(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let response = next.run(request).await;
    global()
        .http_requests
        .get_or_create(&RouteLabels {
            route,
            method,
            code: response.status().as_u16(),
        })
        .inc();
    response
}
