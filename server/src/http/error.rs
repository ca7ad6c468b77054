//! The one mapping from refusals to HTTP: a status and a JSON body
//! `{"code": "BAD_REQUEST", "message": "..."}` whose `code` is stable (scripts match on it) and
//! whose message says what was wrong, as the gRPC answers do.

use crate::service::error::ServiceError;
use arbiter_proto::ydb::status_ids::StatusCode as YdbStatus;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A refusal on the HTTP side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code: YDB's status names (`BAD_REQUEST`, `NOT_FOUND`, `UNAUTHORIZED`,
    /// `UNAVAILABLE`, `OVERLOADED`, `UNSUPPORTED`) plus `NOT_LEADER` and `FORBIDDEN`.
    pub code: &'static str,
    /// What was wrong, in words.
    pub message: String,
}

/// The JSON body of a refusal.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// The stable code.
    pub code: &'static str,
    /// What was wrong.
    pub message: String,
}

impl ApiError {
    /// A refusal with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// A malformed request (a bad path parameter, an unreadable body).
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    /// Something that does not exist.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        let message = e.to_string();
        if let ServiceError::NotLeader(_) = &e {
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "NOT_LEADER", message);
        }
        if let ServiceError::Auth(a) = &e {
            // Who the caller is not (401) versus what they may not do (403).
            return if a.is_forbidden() {
                ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
            } else {
                ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
            };
        }
        let (status, code) = match e.status() {
            YdbStatus::BadRequest => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            YdbStatus::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            YdbStatus::Unauthorized => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            YdbStatus::Unsupported => (StatusCode::NOT_IMPLEMENTED, "UNSUPPORTED"),
            YdbStatus::Overloaded => (StatusCode::TOO_MANY_REQUESTS, "OVERLOADED"),
            YdbStatus::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
        };
        ApiError::new(status, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code,
            message: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}
