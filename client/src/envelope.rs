//! Unwrapping YDB's `Operation` envelope into a result or a [`ClientError`].

use crate::ClientError;
use arbiter_proto::ydb::operations::Operation;
use arbiter_proto::ydb::status_ids::StatusCode;
use prost::{Message, Name};

/// The status of an operation, as an error when it is not SUCCESS.
pub(crate) fn check(op: &Operation) -> Result<(), ClientError> {
    let status = StatusCode::try_from(op.status).unwrap_or(StatusCode::Unspecified);
    if status == StatusCode::Success {
        return Ok(());
    }
    let message = op
        .issues
        .iter()
        .map(|i| i.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Err(ClientError::Refused { status, message })
}

/// The result of a successful operation, unpacked as `R`.
pub(crate) fn unpack<R: Message + Name + Default>(op: Option<Operation>) -> Result<R, ClientError> {
    let op = op.ok_or_else(|| ClientError::Decode("the reply has no operation".into()))?;
    check(&op)?;
    let any = op
        .result
        .ok_or_else(|| ClientError::Decode(format!("no result (expected {})", R::full_name())))?;
    if any.type_url != R::type_url() {
        return Err(ClientError::Decode(format!(
            "result is {}, expected {}",
            any.type_url,
            R::type_url()
        )));
    }
    R::decode(any.value.as_slice()).map_err(|e| ClientError::Decode(e.to_string()))
}
