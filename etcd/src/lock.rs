//! etcd's own lock service (`v3lockpb.Lock`): lock and unlock.
//!
//! Arbiter does not lock through it; `arbiter-bench` measures it beside Arbiter on etcd, as
//! the cost of a durable lock decision that etcd itself makes.

use crate::client::{Etcd, Retry};
use crate::error::EtcdError;
use crate::lease::LeaseId;
use crate::pb::v3lockpb::{LockRequest, UnlockRequest};

/// The ownership key etcd answers for a held lock (`<name>/<lease in hex>`): it exists while
/// the lock is held, and [`Etcd::unlock`] releases the lock by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LockKey(pub Vec<u8>);

impl Etcd {
    /// Acquires the lock `name` for `lease` (granted by the caller, see
    /// [`Etcd::lease_grant`]), waiting while another lease holds it, and returns the
    /// ownership key. The lock is held until [`Etcd::unlock`] or until the lease ends.
    ///
    /// etcd treats locking twice with the same lease as one acquisition, so the call is
    /// retried freely. Each attempt's wait is bounded by
    /// [`EtcdOptions::request_timeout`](crate::EtcdOptions::request_timeout): a lock held by
    /// another lease for longer than the retry deadline fails with
    /// [`EtcdError::Unavailable`].
    ///
    /// # Errors
    /// [`EtcdError::LeaseNotFound`] for a lease that does not exist; see the crate docs.
    pub async fn lock(
        &self,
        name: impl Into<Vec<u8>>,
        lease: LeaseId,
    ) -> Result<LockKey, EtcdError> {
        let request = LockRequest {
            name: name.into(),
            lease: lease.0,
        };
        let response = self
            .call("lock", Retry::Always, |a| {
                let request = a.request(request.clone());
                let mut lock = a.lock();
                async move { Ok(lock.lock(request).await?.into_inner()) }
            })
            .await
            .map_err(|e| match e {
                // The lock service runs an in-process client, whose errors reach us as
                // `Unknown` with etcd's message.
                EtcdError::LeaseNotFound { .. } => EtcdError::LeaseNotFound { id: lease.0 },
                EtcdError::Refused { message, .. } if message.contains("lease not found") => {
                    EtcdError::LeaseNotFound { id: lease.0 }
                }
                e => e,
            })?;
        if response.key.is_empty() {
            return Err(EtcdError::Protocol {
                call: "lock",
                detail: "a lock response without a key".to_owned(),
            });
        }
        Ok(LockKey(response.key))
    }

    /// Releases the lock held by `key` (deletes the ownership key; the next waiter gets the
    /// lock). Releasing a lock that is no longer held succeeds. Retried freely.
    ///
    /// # Errors
    /// See the crate docs.
    pub async fn unlock(&self, key: &LockKey) -> Result<(), EtcdError> {
        let request = UnlockRequest { key: key.0.clone() };
        self.call("unlock", Retry::Always, |a| {
            let request = a.request(request.clone());
            let mut lock = a.lock();
            async move { Ok(lock.unlock(request).await?.into_inner()) }
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::EtcdOptions;
    use crate::testing::EtcdCluster;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lock_is_held_by_its_key_until_unlocked() {
        let cluster = EtcdCluster::single();
        let etcd = cluster.client();
        let a = etcd
            .lease_grant(Duration::from_secs(30))
            .await
            .expect("grant");
        let key = etcd.lock("locks/x", a).await.expect("lock");
        assert!(key.0.starts_with(b"locks/x/"), "{:?}", key.0);
        let kv = etcd.get(key.0.clone()).await.expect("get").expect("held");
        assert_eq!(kv.lease, a.0);
        assert_eq!(
            etcd.lock("locks/x", a).await.expect("again"),
            key,
            "the same lease locks once"
        );

        // Another lease waits while `a` holds the lock: with short deadlines it gives up.
        let impatient = cluster.client_with(EtcdOptions {
            request_timeout: Duration::from_millis(300),
            retry_deadline: Duration::from_millis(700),
            ..EtcdOptions::default()
        });
        let b = etcd
            .lease_grant(Duration::from_secs(30))
            .await
            .expect("grant");
        assert!(impatient.lock("locks/x", b).await.is_err());

        etcd.unlock(&key).await.expect("unlock");
        assert!(etcd.get(key.0.clone()).await.expect("get").is_none());
        etcd.unlock(&key).await.expect("unlocking twice is fine");
        let other = etcd.lock("locks/x", b).await.expect("free now");
        assert_ne!(other, key);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unknown_lease_is_refused() {
        let cluster = EtcdCluster::single();
        let etcd = cluster.client();
        let err = etcd.lock("locks/y", crate::LeaseId(12345)).await.err();
        assert!(
            matches!(err, Some(crate::EtcdError::LeaseNotFound { id: 12345 })),
            "{err:?}"
        );
    }
}
