//! The JSON REST API under `/v1/`, and its OpenAPI document at `/v1/openapi.json` (derived from
//! these handlers and types by utoipa: the document is the code).
//!
//! Every route is a thin shell over the calls the gRPC services make: it names the caller with
//! [`Call::of`] (the token in `Authorization: Bearer`), runs the same service method, and answers
//! JSON. Conventions, the same on every route:
//!
//! - JSON in and out, snake_case names; a body that is not JSON, lacks a required field or has an
//!   unknown one is refused with 400 `BAD_REQUEST` naming the problem (any content type is read
//!   as JSON, so `curl -d` works as it is).
//! - Times are RFC 3339 strings in UTC (`2026-12-01T12:00:00.5Z`); durations are strings in
//!   human units (`"90s"`, `"10m"`, `"1h 30m"`), in and out.
//! - Refusals are [`ApiError`]s: `{"code": ..., "message": ...}` with the HTTP status; on top
//!   of its mapping, a task or action that does not exist is 404 `NOT_FOUND` and a task uid in
//!   use is 409 `ALREADY_EXISTS`. A refused call that would change something goes to the audit
//!   trail, as over gRPC.
//!
//! Resources: [`nodes`] (and [`actions`], the node actions `maintenance_on`/`maintenance_off`),
//! [`tasks`], [`holds`] (freezes, the audit trail, fences).

pub mod actions;
pub mod holds;
pub mod nodes;
pub mod tasks;

use super::error::ApiError;
use super::{Api, Call};
use crate::engine::EngineError;
use crate::service::error::ServiceError;
use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The routes of the REST API.
pub fn routes() -> Router<Api> {
    Router::new()
        .route("/v1/openapi.json", get(openapi_json))
        .route("/v1/nodes", get(nodes::list))
        .route("/v1/nodes/{id}", get(nodes::get_one))
        .route(
            "/v1/nodes/{id}/actions/maintenance_on",
            post(actions::maintenance_on).get(actions::maintenance_status),
        )
        .route(
            "/v1/nodes/{id}/actions/maintenance_off",
            post(actions::maintenance_off),
        )
        .route("/v1/tasks", get(tasks::list).post(tasks::create))
        .route(
            "/v1/tasks/{uid}",
            get(tasks::get_one).delete(tasks::drop_one),
        )
        .route("/v1/tasks/{uid}/refresh", post(tasks::refresh))
        .route("/v1/tasks/{uid}/complete", post(tasks::complete))
        .route("/v1/freezes", get(holds::freezes).post(holds::set_freeze))
        .route("/v1/audit", get(holds::audit))
        .route("/v1/fences/validate", post(holds::validate_fence))
}

/// The OpenAPI document of the REST API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Arbiter REST API",
        description = "Maintenance locks for YDB clusters: nodes, tasks, node actions, freezes, \
                       the audit trail and fences. Times are RFC 3339 (UTC); durations are strings \
                       in human units (\"90s\", \"10m\", \"1h 30m\"). Errors are \
                       {\"code\", \"message\"}. Authenticate with `Authorization: Bearer <token>` \
                       when the server runs with --auth."
    ),
    paths(
        nodes::list,
        nodes::get_one,
        actions::maintenance_on,
        actions::maintenance_status,
        actions::maintenance_off,
        tasks::list,
        tasks::create,
        tasks::get_one,
        tasks::drop_one,
        tasks::refresh,
        tasks::complete,
        holds::freezes,
        holds::set_freeze,
        holds::audit,
        holds::validate_fence,
    ),
    components(schemas(ErrorSchema)),
    modifiers(&Bearer),
    security(("bearer" = []), ()),
    tags(
        (name = "nodes", description = "The cluster's nodes and what Arbiter knows of them."),
        (name = "node actions", description = "Redis-Enterprise-style maintenance_on/maintenance_off."),
        (name = "tasks", description = "Maintenance tasks: create, follow, complete, drop."),
        (name = "holds", description = "Change freezes, the audit trail, fencing tokens."),
    )
)]
pub struct ApiDoc;

/// Adds the bearer scheme (the same tokens as gRPC).
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /v1/openapi.json`: the document, generated from the code.
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// A refusal, as every route answers it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorSchema {
    /// Stable: `BAD_REQUEST`, `NOT_FOUND`, `ALREADY_EXISTS`, `UNAUTHORIZED`, `FORBIDDEN`,
    /// `UNAVAILABLE`, `OVERLOADED`, `UNSUPPORTED`, `NOT_LEADER`, `INTERNAL_ERROR`.
    pub code: String,
    /// What was wrong, in words.
    pub message: String,
}

/// A JSON answer or a refusal.
pub type Answer<T> = Result<Json<T>, ApiError>;

/// A refusal as REST answers it: the shared mapping, with the REST statuses for what does not
/// exist (404) and what already does (409).
pub fn rest_error(e: ServiceError) -> ApiError {
    match &e {
        ServiceError::Engine(EngineError::TaskNotFound | EngineError::ActionNotFound) => {
            ApiError::not_found(e.to_string())
        }
        ServiceError::Engine(EngineError::TaskExists) => {
            ApiError::new(StatusCode::CONFLICT, "ALREADY_EXISTS", e.to_string())
        }
        _ => ApiError::from(e),
    }
}

/// A refused mutating call: recorded in the audit trail (as the gRPC services do), then
/// answered. `task` and `nodes` are what the call named.
pub fn refused(
    api: &Api,
    call: &Call,
    task: &str,
    nodes: &[crate::engine::NodeId],
    e: ServiceError,
) -> ApiError {
    api.ctx.refused(&call.audit, &call.meta, task, nodes, &e);
    rest_error(e)
}

/// A JSON body as `T`; an empty body is refused.
pub fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request needs a JSON body (an object)",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// A JSON body as `T`, or `T::default()` when the body is empty.
pub fn optional_body<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    body(bytes)
}

/// A path parameter, or 400 naming what was wrong with it.
pub fn path<T>(
    p: Result<axum::extract::Path<T>, axum::extract::rejection::PathRejection>,
) -> Result<T, ApiError> {
    p.map(|axum::extract::Path(v)| v)
        .map_err(|r| ApiError::bad_request(format!("bad path parameter: {}", r.body_text())))
}

/// A wire time as RFC 3339.
pub fn time(t: Option<&prost_types::Timestamp>) -> Option<String> {
    let t = t?;
    jiff::Timestamp::new(t.seconds, t.nanos)
        .ok()
        .map(|t| t.to_string())
}

/// An RFC 3339 time from a request, for `field`.
pub fn parse_time(field: &str, text: &str) -> Result<prost_types::Timestamp, ApiError> {
    let t: jiff::Timestamp = text.parse().map_err(|e| {
        ApiError::bad_request(format!(
            "{field}: '{text}' is not an RFC 3339 time (like 2026-12-01T12:00:00Z): {e}"
        ))
    })?;
    Ok(prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: t.subsec_nanosecond(),
    })
}

/// A duration from a request ("90s", "10m", "1h 30m"), for `field`.
pub fn parse_duration(field: &str, text: &str) -> Result<prost_types::Duration, ApiError> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        ApiError::bad_request(format!(
            "{field}: '{text}' is not a duration (like \"90s\", \"10m\" or \"1h 30m\"): {e}"
        ))
    })?;
    Ok(prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    })
}

/// A wire duration in human units.
pub fn duration(d: Option<&prost_types::Duration>) -> Option<String> {
    let d = d?;
    let d = Duration::new(
        u64::try_from(d.seconds).unwrap_or(0),
        u32::try_from(d.nanos).unwrap_or(0),
    );
    Some(humantime::format_duration(d).to_string())
}

/// `s`, or `None` when empty.
pub fn nonempty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_every_route() {
        let doc = ApiDoc::openapi();
        let paths: Vec<&String> = doc.paths.paths.keys().collect();
        for p in [
            "/v1/nodes",
            "/v1/nodes/{id}",
            "/v1/nodes/{id}/actions/maintenance_on",
            "/v1/nodes/{id}/actions/maintenance_off",
            "/v1/tasks",
            "/v1/tasks/{uid}",
            "/v1/tasks/{uid}/refresh",
            "/v1/tasks/{uid}/complete",
            "/v1/freezes",
            "/v1/audit",
            "/v1/fences/validate",
        ] {
            assert!(
                paths.iter().any(|k| k.as_str() == p),
                "{p} missing: {paths:?}"
            );
        }
    }

    #[test]
    fn times_and_durations_round_trip() {
        let t = parse_time("since", "2026-12-01T12:00:00.5Z").expect("time");
        assert_eq!(time(Some(&t)).as_deref(), Some("2026-12-01T12:00:00.5Z"));
        let d = parse_duration("duration", "1h 30m").expect("duration");
        assert_eq!(d.seconds, 5400);
        assert_eq!(duration(Some(&d)).as_deref(), Some("1h 30m"));
        assert!(parse_duration("duration", "soon").is_err());
        assert!(parse_time("since", "yesterday").is_err());
    }

    #[test]
    fn bodies_name_their_problem() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct B {
            a: u32,
        }
        let e = body::<B>(br#"{"a": 1, "b": 2}"#).expect_err("unknown field");
        assert_eq!(e.code, "BAD_REQUEST");
        assert!(e.message.contains("unknown field `b`"), "{}", e.message);
        let e = body::<B>(b"{nope").expect_err("not json");
        assert!(e.message.starts_with("invalid JSON body"), "{}", e.message);
        assert!(body::<B>(b"").is_err());
    }
}
