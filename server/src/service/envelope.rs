//! YDB's response envelope: `Operation{ready, status, issues, result}`.
//!
//! ydbops unpacks `result` before it looks at `status`, so a refusal still packs an empty
//! result of the call's result type; only DropMaintenanceTask packs none, as YDB does. The gRPC
//! status of these calls is always OK.

use super::error::ServiceError;
use arbiter_proto::ydb::issue::IssueMessage;
use arbiter_proto::ydb::operations::Operation;
use arbiter_proto::ydb::status_ids::StatusCode;
use prost::{Message, Name};

/// YDB's issue severity for errors.
const SEVERITY_ERROR: u32 = 1;

/// The envelope of a call whose result is `R`.
pub fn operation<R: Message + Name + Default>(result: Result<R, ServiceError>) -> Operation {
    match result {
        Ok(r) => Operation {
            ready: true,
            status: StatusCode::Success as i32,
            result: Some(pack(&r)),
            ..Operation::default()
        },
        Err(e) => Operation {
            result: Some(pack(&R::default())),
            ..refusal(&e)
        },
    }
}

/// The envelope of a call that has no result (DropMaintenanceTask).
pub fn bare(result: Result<(), ServiceError>) -> Operation {
    match result {
        Ok(()) => Operation {
            ready: true,
            status: StatusCode::Success as i32,
            ..Operation::default()
        },
        Err(e) => refusal(&e),
    }
}

fn refusal(e: &ServiceError) -> Operation {
    Operation {
        ready: true,
        status: e.status() as i32,
        issues: vec![IssueMessage {
            message: e.to_string(),
            severity: SEVERITY_ERROR,
            ..IssueMessage::default()
        }],
        ..Operation::default()
    }
}

fn pack<R: Message + Name>(r: &R) -> prost_types::Any {
    prost_types::Any {
        type_url: R::type_url(),
        value: r.encode_to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineError;
    use arbiter_proto::ydb::maintenance::MaintenanceTaskResult;

    #[test]
    fn a_refusal_still_packs_an_empty_result_of_the_right_type() {
        let op = operation::<MaintenanceTaskResult>(Err(EngineError::TaskNotFound.into()));
        assert!(op.ready);
        assert_eq!(op.status, StatusCode::BadRequest as i32);
        assert_eq!(op.issues.len(), 1);
        assert_eq!(op.issues[0].message, "Task not found");
        let any = op.result.expect("packed");
        assert_eq!(
            any.type_url,
            "type.googleapis.com/Ydb.Maintenance.MaintenanceTaskResult"
        );
        assert!(any.value.is_empty());
    }

    #[test]
    fn a_bare_reply_packs_nothing() {
        assert!(bare(Ok(())).result.is_none());
        assert!(bare(Err(EngineError::TaskNotFound.into())).result.is_none());
    }
}
