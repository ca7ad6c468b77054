//! Why a command failed, as the one line `error: ...` the user reads. A server refusal keeps
//! the server's words (`BAD_REQUEST: Task not found`); a gRPC failure gets its code's name in
//! the same SCREAMING_CASE, so every error line starts with what kind of failure it is.

use arbiter_client::ClientError;
use std::error::Error as _;

/// A failed command (exit code 1).
#[derive(Debug)]
pub(crate) struct Failure(pub(crate) String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        Failure(describe(&e))
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure(message)
    }
}

/// The text of a client error, with the causes a transport error hides in its source chain
/// (`cannot connect to X: transport error: ... Connection refused`).
pub(crate) fn describe(e: &ClientError) -> String {
    let mut text = match e {
        ClientError::Rpc(status) => {
            let message = status.message();
            if message.is_empty() {
                grpc_code_name(status.code()).to_owned()
            } else {
                format!("{}: {message}", grpc_code_name(status.code()))
            }
        }
        other => other.to_string(),
    };
    let mut source = match e {
        ClientError::Rpc(status) => status.source(),
        other => other.source(),
    };
    // Only this client's own connection gets the hint: a server relaying for a leader it does
    // not trust says so in its message, and --ca-file would not help there.
    let mut untrusted = false;
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        untrusted |= cause_text.contains("invalid peer certificate");
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    if untrusted {
        text.push_str(
            " (the server's TLS certificate is not signed by a CA this client trusts: give that \
             CA with --ca-file)",
        );
    }
    text
}

/// The canonical name of a gRPC status code (`INVALID_ARGUMENT`).
fn grpc_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbiter_client::proto::ydb::status_ids::StatusCode;

    #[test]
    fn refusals_and_statuses_read_alike() {
        let refused = ClientError::Refused {
            status: StatusCode::BadRequest,
            message: "Task not found".into(),
        };
        assert_eq!(describe(&refused), "BAD_REQUEST: Task not found");
        let rpc = ClientError::Rpc(tonic::Status::invalid_argument("Unknown node 99"));
        assert_eq!(describe(&rpc), "INVALID_ARGUMENT: Unknown node 99");
    }
}
