//! Lease calls: grant, revoke, keep-alive, time to live.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};

use crate::client::{Etcd, Retry, request};
use crate::error::EtcdError;
use crate::pb::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest,
};

/// An etcd lease ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub i64);

impl std::fmt::Display for LeaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // etcdctl prints lease IDs in hex.
        write!(f, "{:x}", self.0)
    }
}

/// A TTL in whole seconds, rounded up, at least 1.
fn ttl_seconds(ttl: Duration) -> i64 {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
}

/// A TTL from etcd: `None` when it is not positive (the lease is gone).
fn remaining(ttl: i64) -> Option<Duration> {
    u64::try_from(ttl)
        .ok()
        .filter(|&s| s > 0)
        .map(Duration::from_secs)
}

impl Etcd {
    /// Grants a lease of `ttl` (rounded up to whole seconds; etcd may raise it to its
    /// minimum TTL, 1.5 election timeouts).
    ///
    /// The lease ID is chosen here at random, so a grant resent after an unknown outcome is
    /// idempotent: etcd's "lease already exists" on a resend means the earlier copy was
    /// applied. Retried freely.
    ///
    /// # Errors
    /// See the crate docs.
    pub async fn lease_grant(&self, ttl: Duration) -> Result<LeaseId, EtcdError> {
        // etcd's own IDs are positive 63-bit numbers; 0 asks etcd to choose.
        let id = loop {
            let id = (self.random() & (i64::MAX as u64)) as i64;
            if id != 0 {
                break id;
            }
        };
        let grant = LeaseGrantRequest {
            ttl: ttl_seconds(ttl),
            id,
        };
        self.call("lease_grant", Retry::Always, |a| {
            let request = a.request(grant);
            let mut lease = a.lease();
            let resend = a.number > 0;
            async move {
                match lease.lease_grant(request).await {
                    Ok(response) => {
                        let response = response.into_inner();
                        if response.error.is_empty() {
                            Ok(LeaseId(response.id))
                        } else {
                            Err(Status::internal(format!(
                                "lease grant refused: {}",
                                response.error
                            )))
                        }
                    }
                    Err(status)
                        if resend
                            && status.code() == Code::FailedPrecondition
                            && status.message().contains("lease already exists") =>
                    {
                        Ok(LeaseId(id))
                    }
                    Err(status) => Err(status),
                }
            }
        })
        .await
    }

    /// Revokes a lease, deleting the keys attached to it. A lease that is already gone
    /// (expired, revoked, or revoked by an earlier copy of this call) counts as success.
    /// Retried freely.
    ///
    /// # Errors
    /// See the crate docs.
    pub async fn lease_revoke(&self, id: LeaseId) -> Result<(), EtcdError> {
        let revoke = LeaseRevokeRequest { id: id.0 };
        match self
            .call("lease_revoke", Retry::Always, |a| {
                let request = a.request(revoke);
                let mut lease = a.lease();
                async move { Ok(lease.lease_revoke(request).await?.into_inner()) }
            })
            .await
        {
            Ok(_) | Err(EtcdError::LeaseNotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Renews a lease once and returns its new TTL, or `None` if the lease is gone (etcd
    /// answered a TTL <= 0: expired or revoked; keys attached to it are deleted).
    ///
    /// Each call opens a LeaseKeepAlive stream on the current endpoint, sends one request
    /// and waits for its answer; a failure re-opens it on the next endpoint (retried freely).
    /// Call it every third or so of the TTL.
    ///
    /// # Errors
    /// See the crate docs.
    pub async fn keep_alive_once(&self, id: LeaseId) -> Result<Option<Duration>, EtcdError> {
        let response = self
            .call("lease_keep_alive", Retry::Always, |a| {
                let mut lease = a.lease();
                async move {
                    let (tx, rx) = mpsc::channel(1);
                    tx.send(LeaseKeepAliveRequest { id: id.0 })
                        .await
                        .map_err(|_| Status::internal("keep-alive request channel closed"))?;
                    let mut answers = lease
                        .lease_keep_alive(request(ReceiverStream::new(rx)))
                        .await?
                        .into_inner();
                    let answer = answers.message().await?;
                    // Closing the request stream ends the call.
                    drop(tx);
                    answer.ok_or_else(|| {
                        Status::unavailable("keep-alive stream closed before an answer")
                    })
                }
            })
            .await?;
        if response.id != id.0 && response.ttl > 0 {
            return Err(EtcdError::Protocol {
                call: "lease_keep_alive",
                detail: format!("answer for lease {:x}, not {id}", response.id),
            });
        }
        Ok(remaining(response.ttl))
    }

    /// The lease's remaining TTL, or `None` if it is gone. Retried freely.
    ///
    /// # Errors
    /// See the crate docs.
    pub async fn lease_time_to_live(&self, id: LeaseId) -> Result<Option<Duration>, EtcdError> {
        let query = LeaseTimeToLiveRequest {
            id: id.0,
            keys: false,
        };
        match self
            .call("lease_time_to_live", Retry::Always, |a| {
                let request = a.request(query);
                let mut lease = a.lease();
                async move { Ok(lease.lease_time_to_live(request).await?.into_inner()) }
            })
            .await
        {
            Ok(response) => Ok(remaining(response.ttl)),
            Err(EtcdError::LeaseNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_and_non_positive_means_gone() {
        assert_eq!(ttl_seconds(Duration::from_millis(1)), 1);
        assert_eq!(ttl_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(ttl_seconds(Duration::from_secs(3)), 3);
        assert_eq!(ttl_seconds(Duration::ZERO), 1);
        assert_eq!(remaining(0), None);
        assert_eq!(remaining(-1), None);
        assert_eq!(remaining(4), Some(Duration::from_secs(4)));
    }
}
