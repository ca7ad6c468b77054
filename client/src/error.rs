//! What can go wrong talking to Arbiter, and which failures are worth retrying.

use arbiter_proto::ydb::status_ids::StatusCode;
use std::error::Error as _;
use std::time::Duration;

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
    /// No answer came within the caller's deadline (the server may be hung or the network
    /// may drop packets).
    #[error("no answer within {}", humantime::format_duration(*after))]
    Timeout {
        /// The deadline the call had.
        after: Duration,
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

    /// Whether trying again later may succeed: the server is unreachable, restarting, busy or
    /// slow, or the connection broke. What no retry cures is not: a bad request (an unknown
    /// node, a malformed endpoint), a missing or refused credential, a call the server does
    /// not implement, a reply that does not decode.
    ///
    /// gRPC codes: UNAVAILABLE (unreachable, connection refused, shutting down),
    /// RESOURCE_EXHAUSTED (overloaded), CANCELLED (the connection closed under the call, e.g.
    /// a server restart), DEADLINE_EXCEEDED and ABORTED are retryable; so are UNKNOWN and
    /// INTERNAL when they come from this side's transport (a status with a source error)
    /// rather than from the server. YDB statuses: UNAVAILABLE, OVERLOADED and TIMEOUT.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Connect { .. } | ClientError::Timeout { .. } => true,
            ClientError::Rpc(s) => match s.code() {
                tonic::Code::Unavailable
                | tonic::Code::ResourceExhausted
                | tonic::Code::Cancelled
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Aborted => true,
                // A status the server sent has no source; one built from a broken connection
                // (an HTTP/2 reset, a closed socket) carries the transport error.
                tonic::Code::Unknown | tonic::Code::Internal => s.source().is_some(),
                _ => false,
            },
            ClientError::Refused { status, .. } => matches!(
                status,
                StatusCode::Unavailable | StatusCode::Overloaded | StatusCode::Timeout
            ),
            ClientError::Endpoint { .. } | ClientError::Decode(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpc(code: tonic::Code) -> ClientError {
        ClientError::Rpc(tonic::Status::new(code, "from the server"))
    }

    #[test]
    fn transient_failures_are_retryable() {
        for code in [
            tonic::Code::Unavailable,
            tonic::Code::ResourceExhausted,
            tonic::Code::Cancelled,
            tonic::Code::DeadlineExceeded,
            tonic::Code::Aborted,
        ] {
            assert!(rpc(code).is_retryable(), "{code:?}");
        }
        for status in [
            StatusCode::Unavailable,
            StatusCode::Overloaded,
            StatusCode::Timeout,
        ] {
            let e = ClientError::Refused {
                status,
                message: String::new(),
            };
            assert!(e.is_retryable(), "{status:?}");
        }
        let timeout = ClientError::Timeout {
            after: Duration::from_secs(2),
        };
        assert!(timeout.is_retryable());
        assert_eq!(timeout.to_string(), "no answer within 2s");
        // A broken connection, as tonic reports it: UNKNOWN with the transport error inside.
        let broken = tonic::Status::from_error(Box::new(std::io::Error::other(
            "connection closed before message completed",
        )));
        assert_eq!(broken.code(), tonic::Code::Unknown);
        assert!(ClientError::Rpc(broken).is_retryable());
    }

    #[test]
    fn refusals_no_retry_cures_are_not_retryable() {
        for code in [
            tonic::Code::InvalidArgument,
            tonic::Code::Unauthenticated,
            tonic::Code::PermissionDenied,
            tonic::Code::Unimplemented,
            tonic::Code::FailedPrecondition,
            tonic::Code::NotFound,
            // Sent by the server itself (no transport error inside): a bug, not a hiccup.
            tonic::Code::Unknown,
            tonic::Code::Internal,
        ] {
            assert!(!rpc(code).is_retryable(), "{code:?}");
        }
        for status in [
            StatusCode::BadRequest,
            StatusCode::Unauthorized,
            StatusCode::Unsupported,
            StatusCode::GenericError,
        ] {
            let e = ClientError::Refused {
                status,
                message: String::new(),
            };
            assert!(!e.is_retryable(), "{status:?}");
        }
        let bad = ClientError::Endpoint {
            endpoint: "ftp://x".into(),
            reason: "unknown scheme".into(),
        };
        assert!(!bad.is_retryable());
        assert!(!ClientError::Decode("garbage".into()).is_retryable());
    }
}
