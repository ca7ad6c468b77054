//! What can go wrong talking to Arbiter.

use arbiter_proto::ydb::status_ids::StatusCode;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint string is not usable.
    #[error("bad endpoint '{endpoint}': {reason}")]
    Endpoint {
        /// What was given.
        endpoint: String,
        /// Why it does not work.
        reason: String,
    },
    /// The connection failed.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// Where.
        endpoint: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// The call failed at the gRPC level (unreachable, unimplemented, permission denied...).
    #[error("{}: {}", .0.code(), .0.message())]
    Rpc(#[from] tonic::Status),
    /// The server answered with a YDB status other than SUCCESS.
    #[error("{}: {message}", status.as_str_name())]
    Refused {
        /// YDB's status code.
        status: StatusCode,
        /// The issues' messages, joined.
        message: String,
    },
    /// The reply could not be decoded.
    #[error("malformed reply: {0}")]
    Decode(String),
}

impl ClientError {
    /// YDB's status code, when the server refused the call.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether trying again later may succeed (the server is busy, restarting or unreachable).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Connect { .. } => true,
            ClientError::Rpc(s) => matches!(
                s.code(),
                tonic::Code::Unavailable | tonic::Code::ResourceExhausted
            ),
            ClientError::Refused { status, .. } => {
                matches!(status, StatusCode::Unavailable | StatusCode::Overloaded)
            }
            _ => false,
        }
    }
}
