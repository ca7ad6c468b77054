//! [`EtcdOptions`]: timeouts, retry deadline, keepalive and paging.

use std::time::Duration;

/// The least HTTP/2 keepalive ping interval the client uses: etcd answers pings more
/// frequent than every 5 s with GOAWAY `too_many_pings`.
pub(crate) const MIN_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// How the client connects, times out and retries. [`Default`] gives values for a LAN.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Bound on establishing a TCP connection to one endpoint (default 1 s).
    pub connect_timeout: Duration,
    /// Deadline of one attempt of a call on one endpoint (default 3 s); also sent to etcd as
    /// the gRPC deadline. An attempt never outlives the call's retry deadline either.
    pub request_timeout: Duration,
    /// Overall deadline of one call, across all its attempts and endpoints (default 5 s);
    /// after it, the call fails with [`EtcdError::Unavailable`](crate::EtcdError::Unavailable).
    /// A [`Watcher`](crate::Watcher) gives up after failing to reconnect for this long.
    pub retry_deadline: Duration,
    /// HTTP/2 keepalive ping interval while a call or stream is open (default and minimum
    /// 10 s; smaller values are raised to 10 s). Idle connections are not pinged: etcd counts
    /// pings without open streams against the client.
    pub keepalive_interval: Duration,
    /// How long a keepalive ping may go unanswered before the connection is dropped
    /// (default 5 s).
    pub keepalive_timeout: Duration,
    /// Keys per page in [`Etcd::range_prefix`](crate::Etcd::range_prefix) (default 1000).
    pub page_size: i64,
    /// Largest response message accepted (default 64 MiB).
    pub max_response_bytes: usize,
    /// First backoff pause after a round of failures over every endpoint (default 50 ms);
    /// doubled per round, jittered to between half and all of it.
    pub backoff_base: Duration,
    /// Cap of the backoff pause (default 1 s).
    pub backoff_max: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(3),
            retry_deadline: Duration::from_secs(5),
            keepalive_interval: MIN_KEEPALIVE_INTERVAL,
            keepalive_timeout: Duration::from_secs(5),
            page_size: 1000,
            max_response_bytes: 64 << 20,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
        }
    }
}
