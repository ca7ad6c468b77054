//! [`EtcdError`], and the classification of a failed attempt (see the crate docs' retry
//! policy).

use tonic::{Code, Status};

/// What a call of [`Etcd`](crate::Etcd) can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// [`Etcd::connect`](crate::Etcd::connect) got an empty endpoint list.
    #[error("no etcd endpoints given")]
    NoEndpoints,
    /// An endpoint is not an `http://host:port` URL.
    #[error("invalid etcd endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An `https://` endpoint: TLS is not supported yet.
    #[error(
        "etcd endpoint {endpoint:?}: https is not supported yet; use http:// (etcd on a trusted network)"
    )]
    TlsNotSupported {
        /// The endpoint as given.
        endpoint: String,
    },
    /// [`Etcd::connect`](crate::Etcd::connect) was called outside a Tokio runtime.
    #[error("the etcd client must be created inside a Tokio runtime")]
    NoRuntime,
    /// No endpoint answered within the retry deadline. Retryable.
    #[error(
        "etcd unavailable: no answer from {} within the retry deadline; last error: {last_error}",
        endpoints.join(", ")
    )]
    Unavailable {
        /// Every endpoint of the client.
        endpoints: Vec<String>,
        /// The last failure, prefixed with its endpoint.
        last_error: String,
    },
    /// A write that is not safe to resend failed after it may have reached etcd: it may or
    /// may not have been applied. Read back to find out.
    #[error(
        "outcome unknown: the {call} request may or may not have been applied ({endpoint}: {error})"
    )]
    Unknown {
        /// The call (`txn`, `put`, `delete_range`).
        call: &'static str,
        /// The endpoint the request went to.
        endpoint: String,
        /// The failure.
        error: String,
    },
    /// etcd refused a txn with more operations than its `--max-txn-ops` (128 by default).
    #[error(
        "etcd refused the txn: too many operations in txn request (etcd's --max-txn-ops, 128 by default)"
    )]
    TooManyOps,
    /// etcd refused a request larger than its `--max-request-bytes` (1.5 MiB by default).
    #[error(
        "etcd refused the request as too large (etcd's --max-request-bytes, 1.5 MiB by default): {message}"
    )]
    RequestTooLarge {
        /// etcd's message.
        message: String,
    },
    /// etcd refused a txn that writes one key twice.
    #[error(
        "etcd refused the txn: duplicate key given in txn request (a txn may write a key only once)"
    )]
    DuplicateKey,
    /// etcd's space quota is exhausted (alarm NOSPACE): writes are refused until the history
    /// is compacted, the members are defragmented and the alarm is disarmed.
    #[error(
        "etcd is out of space (alarm NOSPACE, database space exceeded); compact, defragment and disarm the alarm: {message}"
    )]
    NoSpace {
        /// etcd's message.
        message: String,
    },
    /// A watch's start revision has been compacted: reload the state and watch from a newer
    /// revision.
    #[error(
        "watch start revision has been compacted (oldest available revision {compact_revision}); reload and watch again"
    )]
    Compacted {
        /// The compaction revision etcd reported: the oldest revision still watchable.
        compact_revision: i64,
    },
    /// A read at a revision that has been compacted.
    #[error("etcd refused a read at revision {revision}: the revision has been compacted")]
    RevisionCompacted {
        /// The revision asked for.
        revision: i64,
    },
    /// etcd does not know the lease.
    #[error("etcd lease {id:#x} not found")]
    LeaseNotFound {
        /// The lease.
        id: i64,
    },
    /// etcd canceled a watch for a reason other than compaction.
    #[error("etcd canceled the watch: {reason}")]
    WatchCanceled {
        /// etcd's `cancel_reason`.
        reason: String,
    },
    /// Any other refusal by etcd. Not retryable.
    #[error("etcd refused {call}: {code:?}: {message}")]
    Refused {
        /// The call.
        call: &'static str,
        /// The gRPC status code.
        code: Code,
        /// etcd's message.
        message: String,
    },
    /// etcd answered something this client cannot use.
    #[error("unexpected answer from etcd to {call}: {detail}")]
    Protocol {
        /// The call.
        call: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl EtcdError {
    /// Whether trying the same call again later may succeed ([`EtcdError::Unavailable`]).
    /// [`EtcdError::Unknown`] is not: resend only what is safe to apply twice.
    pub fn is_retryable(&self) -> bool {
        matches!(self, EtcdError::Unavailable { .. })
    }

    /// Whether the outcome of a write is unknown ([`EtcdError::Unknown`]).
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, EtcdError::Unknown { .. })
    }

    /// Whether the data asked for has been compacted away ([`EtcdError::Compacted`],
    /// [`EtcdError::RevisionCompacted`]): reload at the latest revision.
    pub fn is_compacted(&self) -> bool {
        matches!(
            self,
            EtcdError::Compacted { .. } | EtcdError::RevisionCompacted { .. }
        )
    }
}

/// How one failed attempt is handled.
#[derive(Debug)]
pub(crate) enum Failure {
    /// etcd provably did not act on the request: safe to resend anything.
    NotSent(String),
    /// A transport-level failure after the request may have reached etcd.
    MaybeSent(String),
    /// etcd refused the request: returned as it is.
    Refused(EtcdError),
}

/// Classifies a failed attempt's status (the crate docs' retry policy).
pub(crate) fn classify(call: &'static str, status: Status) -> Failure {
    let text = describe(&status);
    if has_connect_error(&status) {
        return Failure::NotSent(text);
    }
    // A status with a source was made by tonic from a transport error on this side (a
    // status that etcd sent carries none).
    if std::error::Error::source(&status).is_some() {
        return Failure::MaybeSent(text);
    }
    let message = status.message();
    match status.code() {
        Code::Unavailable if message.contains("no leader") => Failure::NotSent(text),
        Code::ResourceExhausted if message.contains("too many requests") => Failure::NotSent(text),
        Code::Unknown if message.contains("raft proposal dropped") => Failure::NotSent(text),
        Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded => Failure::MaybeSent(text),
        _ => Failure::Refused(refusal(call, status)),
    }
}

/// Maps etcd's refusals to their variants.
fn refusal(call: &'static str, status: Status) -> EtcdError {
    let message = status.message();
    match status.code() {
        Code::InvalidArgument if message.contains("too many operations in txn request") => {
            EtcdError::TooManyOps
        }
        Code::InvalidArgument if message.contains("duplicate key given in txn request") => {
            EtcdError::DuplicateKey
        }
        Code::InvalidArgument if message.contains("request is too large") => {
            EtcdError::RequestTooLarge {
                message: message.to_owned(),
            }
        }
        // gRPC's own limit (etcd's request limit plus 512 KiB of overhead).
        Code::ResourceExhausted if message.contains("larger than max") => {
            EtcdError::RequestTooLarge {
                message: message.to_owned(),
            }
        }
        Code::ResourceExhausted if message.contains("space exceeded") => EtcdError::NoSpace {
            message: message.to_owned(),
        },
        // The revision is filled in by the caller, who knows it.
        Code::OutOfRange if message.contains("compacted") => {
            EtcdError::RevisionCompacted { revision: 0 }
        }
        Code::NotFound if message.contains("lease not found") => EtcdError::LeaseNotFound { id: 0 },
        code => EtcdError::Refused {
            call,
            code,
            message: message.to_owned(),
        },
    }
}

/// Whether the status' error chain holds tonic's [`tonic::ConnectError`]: the connection
/// could not be established, so no request was sent.
fn has_connect_error(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        if err.is::<tonic::ConnectError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// The status' code and message, plus its innermost cause when it has one (for example
/// "tcp connect error: Connection refused").
fn describe(status: &Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let mut source = std::error::Error::source(status);
    let mut innermost = None;
    while let Some(err) = source {
        innermost = Some(err);
        source = err.source();
    }
    if let Some(err) = innermost {
        let cause = err.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: Status) -> EtcdError {
        match classify("txn", status) {
            Failure::Refused(e) => e,
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[test]
    fn connect_errors_are_not_sent() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let status = Status::from_error(Box::new(tonic::ConnectError(Box::new(io))));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(matches!(classify("txn", status), Failure::NotSent(_)));
    }

    #[test]
    fn local_transport_errors_and_server_unavailable_may_be_sent() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let status = Status::from_error(Box::new(io));
        assert!(matches!(classify("txn", status), Failure::MaybeSent(_)));
        for status in [
            Status::unavailable("etcdserver: request timed out"),
            Status::unavailable("etcdserver: leader changed"),
            Status::cancelled("context canceled"),
            Status::deadline_exceeded("context deadline exceeded"),
        ] {
            assert!(matches!(classify("txn", status), Failure::MaybeSent(_)));
        }
        for status in [
            Status::unavailable("etcdserver: no leader"),
            Status::resource_exhausted("etcdserver: too many requests"),
        ] {
            assert!(matches!(classify("txn", status), Failure::NotSent(_)));
        }
    }

    #[test]
    fn etcd_refusals_map_to_their_variants() {
        assert!(matches!(
            refused(Status::invalid_argument(
                "etcdserver: too many operations in txn request"
            )),
            EtcdError::TooManyOps
        ));
        assert!(matches!(
            refused(Status::invalid_argument(
                "etcdserver: duplicate key given in txn request"
            )),
            EtcdError::DuplicateKey
        ));
        assert!(matches!(
            refused(Status::invalid_argument("etcdserver: request is too large")),
            EtcdError::RequestTooLarge { .. }
        ));
        assert!(matches!(
            refused(Status::resource_exhausted(
                "etcdserver: mvcc: database space exceeded"
            )),
            EtcdError::NoSpace { .. }
        ));
        assert!(matches!(
            refused(Status::out_of_range(
                "etcdserver: mvcc: required revision has been compacted"
            )),
            EtcdError::RevisionCompacted { .. }
        ));
        assert!(matches!(
            refused(Status::permission_denied("etcdserver: permission denied")),
            EtcdError::Refused {
                code: Code::PermissionDenied,
                ..
            }
        ));
    }

    #[test]
    fn unavailable_names_every_endpoint() {
        let err = EtcdError::Unavailable {
            endpoints: vec!["http://a:1".into(), "http://b:2".into()],
            last_error: "http://b:2: tcp connect error".into(),
        };
        let text = err.to_string();
        assert!(text.contains("http://a:1, http://b:2"), "{text}");
        assert!(err.is_retryable());
    }
}
