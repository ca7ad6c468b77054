//! Key-value calls (range, put, delete, txn, compact) and builders for txn compares and
//! operations.

use crate::client::{Etcd, Retry};
use crate::error::EtcdError;
use crate::lease::LeaseId;
use crate::pb::etcdserverpb::compare::CompareResult;
use crate::pb::etcdserverpb::compare::{CompareTarget, TargetUnion};
use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse,
    RequestOp, TxnRequest, TxnResponse,
};
use crate::pb::mvccpb::KeyValue;

impl Etcd {
    /// One Range request, as given. Retried freely (a read).
    ///
    /// # Errors
    /// [`EtcdError::RevisionCompacted`] for a compacted `revision`; see the crate docs.
    pub async fn range(&self, request: RangeRequest) -> Result<RangeResponse, EtcdError> {
        let revision = request.revision;
        self.call("range", Retry::Always, |a| {
            let request = a.request(request.clone());
            let mut kv = a.kv();
            async move { Ok(kv.range(request).await?.into_inner()) }
        })
        .await
        .map_err(|e| match e {
            EtcdError::RevisionCompacted { .. } => EtcdError::RevisionCompacted { revision },
            e => e,
        })
    }

    /// The key's current value, if it exists (a linearizable read).
    ///
    /// # Errors
    /// See the crate docs.
    pub async fn get(&self, key: impl Into<Vec<u8>>) -> Result<Option<KeyValue>, EtcdError> {
        let response = self
            .range(RangeRequest {
                key: key.into(),
                ..RangeRequest::default()
            })
            .await?;
        Ok(response.kvs.into_iter().next())
    }

    /// Every key under `prefix` at one revision, in key order, and that revision.
    ///
    /// `revision <= 0` reads at the latest revision: the first page's header revision, which
    /// is then used for every further page, so the whole result is one snapshot. Pages hold
    /// [`EtcdOptions::page_size`](crate::EtcdOptions::page_size) keys. The revision returned
    /// is the one read at (`revision` itself when positive); watch from it + 1 to follow
    /// changes.
    ///
    /// # Errors
    /// [`EtcdError::RevisionCompacted`] if the revision is (or, between pages, becomes)
    /// compacted: read again at the latest revision. See the crate docs.
    pub async fn range_prefix(
        &self,
        prefix: impl Into<Vec<u8>>,
        revision: i64,
    ) -> Result<(Vec<KeyValue>, i64), EtcdError> {
        let key = prefix.into();
        let range_end = prefix_end(&key);
        let limit = self.options().page_size.max(1);
        self.range_paged(key, range_end, revision, limit).await
    }

    /// Every key in `[key, range_end)` at one revision, in pages of `limit` keys (for large
    /// values, a small page), and that revision; as [`Etcd::range_prefix`] otherwise.
    ///
    /// # Errors
    /// As [`Etcd::range_prefix`].
    pub async fn range_paged(
        &self,
        key: impl Into<Vec<u8>>,
        range_end: impl Into<Vec<u8>>,
        revision: i64,
        limit: i64,
    ) -> Result<(Vec<KeyValue>, i64), EtcdError> {
        let mut key = key.into();
        let range_end = range_end.into();
        let limit = limit.max(1);
        let mut revision = revision;
        let mut kvs = Vec::new();
        loop {
            let page = self
                .range(RangeRequest {
                    key: key.clone(),
                    range_end: range_end.clone(),
                    limit,
                    revision,
                    ..RangeRequest::default()
                })
                .await?;
            if revision <= 0 {
                revision = page.header.as_ref().map_or(0, |h| h.revision);
                if revision <= 0 {
                    return Err(EtcdError::Protocol {
                        call: "range",
                        detail: "a range response without a header revision".to_owned(),
                    });
                }
            }
            let Some(last) = page.kvs.last() else {
                break;
            };
            // The next page starts just after the last key of this one.
            key = last.key.clone();
            key.push(0);
            kvs.extend(page.kvs);
            if !page.more {
                break;
            }
        }
        Ok((kvs, revision))
    }

    /// Puts `value` at `key` (attached to `lease`, if any) and returns the new revision.
    ///
    /// Not resent after it may have reached etcd (a blind put could overwrite a later write).
    ///
    /// # Errors
    /// [`EtcdError::Unknown`] when the outcome is unknown; see the crate docs.
    pub async fn put(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        lease: Option<LeaseId>,
    ) -> Result<i64, EtcdError> {
        let request = PutRequest {
            key: key.into(),
            value: value.into(),
            lease: lease.map_or(0, |l| l.0),
            ..PutRequest::default()
        };
        let response = self
            .call("put", Retry::IfNotSent, |a| {
                let request = a.request(request.clone());
                let mut kv = a.kv();
                async move { Ok(kv.put(request).await?.into_inner()) }
            })
            .await?;
        Ok(response.header.map_or(0, |h| h.revision))
    }

    /// Deletes every key under `prefix` and returns how many there were.
    ///
    /// Not resent after it may have reached etcd.
    ///
    /// # Errors
    /// [`EtcdError::Unknown`] when the outcome is unknown; see the crate docs.
    pub async fn delete_prefix(&self, prefix: impl Into<Vec<u8>>) -> Result<i64, EtcdError> {
        let key = prefix.into();
        let request = DeleteRangeRequest {
            range_end: prefix_end(&key),
            key,
            prev_kv: false,
        };
        let response = self
            .call("delete_range", Retry::IfNotSent, |a| {
                let request = a.request(request.clone());
                let mut kv = a.kv();
                async move { Ok(kv.delete_range(request).await?.into_inner()) }
            })
            .await?;
        Ok(response.deleted)
    }

    /// Runs a transaction.
    ///
    /// `resend_safe`: the caller guarantees that at most one copy of this txn can pass its
    /// compares (for example a guard on a key's mod revision that the txn itself changes), so
    /// it is resent on any transport failure until the retry deadline; if that passes after an
    /// attempt that may have reached etcd, the result is [`EtcdError::Unknown`] (the caller may
    /// resend it again, or read back), else [`EtcdError::Unavailable`]. Without that guarantee
    /// (`false`) it is resent only after failures that provably happened before sending, and
    /// any other failure is [`EtcdError::Unknown`] at once.
    ///
    /// # Errors
    /// [`EtcdError::TooManyOps`], [`EtcdError::DuplicateKey`],
    /// [`EtcdError::RequestTooLarge`], [`EtcdError::NoSpace`], [`EtcdError::Unknown`],
    /// [`EtcdError::Unavailable`]; see the crate docs.
    pub async fn txn(&self, txn: TxnRequest, resend_safe: bool) -> Result<TxnResponse, EtcdError> {
        let retry = if resend_safe {
            Retry::ResendSafe
        } else {
            Retry::IfNotSent
        };
        self.call("txn", retry, |a| {
            let request = a.request(txn.clone());
            let mut kv = a.kv();
            async move { Ok(kv.txn(request).await?.into_inner()) }
        })
        .await
    }

    /// Compacts etcd's history up to `revision` (`physical`: wait until it is applied to the
    /// backend). A revision that is already compacted counts as success, so this is
    /// retried freely.
    ///
    /// # Errors
    /// See the crate docs; a future revision is [`EtcdError::Refused`].
    pub async fn compact(&self, revision: i64, physical: bool) -> Result<(), EtcdError> {
        let request = CompactionRequest { revision, physical };
        match self
            .call("compact", Retry::Always, |a| {
                let request = a.request(request);
                let mut kv = a.kv();
                async move { Ok(kv.compact(request).await?.into_inner()) }
            })
            .await
        {
            Ok(_) | Err(EtcdError::RevisionCompacted { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The end of the range of keys that start with `prefix` (etcd's `range_end`): `prefix`
/// with its last byte below `0xff` incremented and what follows dropped; `"\0"` (every key
/// from `prefix` on) when there is no such byte, for example for an empty prefix.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.iter().rposition(|&b| b < 0xff) {
        Some(i) => {
            let mut end = prefix[..=i].to_vec();
            end[i] += 1;
            end
        }
        None => vec![0],
    }
}

fn compare(
    key: impl Into<Vec<u8>>,
    result: CompareResult,
    target: CompareTarget,
    value: TargetUnion,
) -> Compare {
    Compare {
        result: result as i32,
        target: target as i32,
        key: key.into(),
        range_end: Vec::new(),
        target_union: Some(value),
    }
}

/// Compares `key`'s create revision (0: the key does not exist).
pub fn cmp_create_revision(
    key: impl Into<Vec<u8>>,
    result: CompareResult,
    revision: i64,
) -> Compare {
    compare(
        key,
        result,
        CompareTarget::Create,
        TargetUnion::CreateRevision(revision),
    )
}

/// Compares `key`'s mod revision (0: the key does not exist).
pub fn cmp_mod_revision(key: impl Into<Vec<u8>>, result: CompareResult, revision: i64) -> Compare {
    compare(
        key,
        result,
        CompareTarget::Mod,
        TargetUnion::ModRevision(revision),
    )
}

/// Compares `key`'s version (writes since creation; 0: the key does not exist).
pub fn cmp_version(key: impl Into<Vec<u8>>, result: CompareResult, version: i64) -> Compare {
    compare(
        key,
        result,
        CompareTarget::Version,
        TargetUnion::Version(version),
    )
}

/// Compares `key`'s value.
pub fn cmp_value(
    key: impl Into<Vec<u8>>,
    result: CompareResult,
    value: impl Into<Vec<u8>>,
) -> Compare {
    compare(
        key,
        result,
        CompareTarget::Value,
        TargetUnion::Value(value.into()),
    )
}

/// Compares the lease `key` is attached to (`None`: no lease).
pub fn cmp_lease(
    key: impl Into<Vec<u8>>,
    result: CompareResult,
    lease: Option<LeaseId>,
) -> Compare {
    compare(
        key,
        result,
        CompareTarget::Lease,
        TargetUnion::Lease(lease.map_or(0, |l| l.0)),
    )
}

/// A txn operation that puts `value` at `key`, attached to `lease` if any.
pub fn op_put(
    key: impl Into<Vec<u8>>,
    value: impl Into<Vec<u8>>,
    lease: Option<LeaseId>,
) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: key.into(),
            value: value.into(),
            lease: lease.map_or(0, |l| l.0),
            ..PutRequest::default()
        })),
    }
}

/// A txn operation that reads `key`.
pub fn op_get(key: impl Into<Vec<u8>>) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(RangeRequest {
            key: key.into(),
            ..RangeRequest::default()
        })),
    }
}

/// A txn operation that deletes `key`.
pub fn op_delete(key: impl Into<Vec<u8>>) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
            key: key.into(),
            ..DeleteRangeRequest::default()
        })),
    }
}

/// A txn operation that deletes every key under `prefix`.
pub fn op_delete_prefix(prefix: impl Into<Vec<u8>>) -> RequestOp {
    let key = prefix.into();
    RequestOp {
        request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
            range_end: prefix_end(&key),
            key,
            prev_kv: false,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn prefix_end_follows_etcd() {
        assert_eq!(prefix_end(b"a"), b"b");
        assert_eq!(prefix_end(b"abc/"), b"abc0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"a\xfe\xff\xff"), b"a\xff");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }

    #[test]
    fn wire_encoding_matches_etcd_field_numbers() {
        // Compare{result: NOT_EQUAL(3), target: CREATE(1), key: "k", create_revision: 5}
        let c = cmp_create_revision("k", CompareResult::NotEqual, 5);
        assert_eq!(
            c.encode_to_vec(),
            [0x08, 3, 0x10, 1, 0x1a, 1, b'k', 0x28, 5]
        );
        // lease (field 8) and the mod revision (field 6)
        let c = cmp_lease("k", CompareResult::Equal, Some(LeaseId(7)));
        assert_eq!(c.encode_to_vec(), [0x10, 4, 0x1a, 1, b'k', 0x40, 7]);
        let c = cmp_mod_revision("k", CompareResult::Less, 2);
        assert_eq!(
            c.encode_to_vec(),
            [0x08, 2, 0x10, 2, 0x1a, 1, b'k', 0x30, 2]
        );
        // RequestOp.request_put (2) { key (1), value (2), lease (3) }
        let op = op_put("k", "v", Some(LeaseId(1)));
        assert_eq!(
            op.encode_to_vec(),
            [0x12, 8, 0x0a, 1, b'k', 0x12, 1, b'v', 0x18, 1]
        );
        // RequestOp.request_delete_range (3) { key (1), range_end (2) }
        let op = op_delete_prefix("a");
        assert_eq!(op.encode_to_vec(), [0x1a, 6, 0x0a, 1, b'a', 0x12, 1, b'b']);
    }
}
