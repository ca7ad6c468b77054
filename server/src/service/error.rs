//! The one mapping from everything that can refuse a request to YDB's status codes.

use crate::engine::{EngineError, ErrorKind};
use crate::identity::AuthError;
use crate::writer::WriterError;
use arbiter_proto::ydb::status_ids::StatusCode;

/// Why a request was refused. Each becomes `operation.status` plus one issue with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The engine refused the command.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The request is malformed in a way only the wire can be (an unset oneof, a bad enum...).
    #[error("{0}")]
    BadRequest(String),
    /// A well-formed request for something Arbiter does not do (yet).
    #[error("{0}")]
    Unsupported(String),
    /// Identity or permission.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Too many calls of one kind at once; the caller should back off and retry.
    #[error("{0}")]
    Overloaded(String),
    /// The single writer could not take or persist the request.
    #[error(transparent)]
    Writer(#[from] WriterError),
    /// This instance does not decide now (high availability: no leader known, or a call that
    /// reached it although another instance leads).
    #[error(transparent)]
    NotLeader(#[from] crate::cluster::NotLeader),
}

impl ServiceError {
    /// YDB's status code for this refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            ServiceError::Engine(e) => match e.kind() {
                ErrorKind::BadRequest => StatusCode::BadRequest,
                ErrorKind::Unsupported => StatusCode::Unsupported,
                // Read-only mode: nothing was applied, and a retry later may succeed.
                ErrorKind::Unavailable => StatusCode::Unavailable,
            },
            ServiceError::BadRequest(_) => StatusCode::BadRequest,
            ServiceError::Unsupported(_) => StatusCode::Unsupported,
            ServiceError::Auth(_) => StatusCode::Unauthorized,
            ServiceError::Overloaded(_) => StatusCode::Overloaded,
            ServiceError::Writer(WriterError::Overloaded) => StatusCode::Overloaded,
            // Nothing of the request was applied, so a retry is safe: clients retry UNAVAILABLE.
            ServiceError::Writer(WriterError::Stopped | WriterError::Store(_))
            | ServiceError::NotLeader(_) => StatusCode::Unavailable,
        }
    }

    /// The same refusal as a plain gRPC status, for Arbiter's own API.
    pub fn to_grpc(&self) -> tonic::Status {
        let msg = self.to_string();
        match self.status() {
            StatusCode::Unauthorized => match self {
                ServiceError::Auth(AuthError::Forbidden { .. } | AuthError::NotOwner { .. }) => {
                    tonic::Status::permission_denied(msg)
                }
                _ => tonic::Status::unauthenticated(msg),
            },
            StatusCode::Unsupported => tonic::Status::unimplemented(msg),
            StatusCode::Overloaded => tonic::Status::resource_exhausted(msg),
            StatusCode::Unavailable => tonic::Status::unavailable(msg),
            _ => tonic::Status::invalid_argument(msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ydb_never_sees_not_found_or_already_exists() {
        assert_eq!(
            ServiceError::from(EngineError::TaskNotFound).status(),
            StatusCode::BadRequest
        );
        assert_eq!(
            ServiceError::from(EngineError::TaskExists).status(),
            StatusCode::BadRequest
        );
        assert_eq!(
            ServiceError::from(EngineError::MultipleOwners).status(),
            StatusCode::Unsupported
        );
        assert_eq!(
            ServiceError::from(AuthError::MissingTicket).status(),
            StatusCode::Unauthorized
        );
        assert_eq!(
            ServiceError::from(WriterError::Store("x".into())).status(),
            StatusCode::Unavailable
        );
    }
}
