//! [`Etcd`]: endpoints, channels, and the retry loop every call runs in.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tonic::Request;
use tonic::codegen::http::Uri;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::backoff::Jitter;
use crate::error::{EtcdError, Failure, classify};
use crate::options::{EtcdOptions, MIN_KEEPALIVE_INTERVAL};
use crate::pb::etcdserverpb::kv_client::KvClient;
use crate::pb::etcdserverpb::lease_client::LeaseClient;
use crate::pb::v3lockpb::lock_client::LockClient;

/// How long an endpoint that failed is passed over when choosing the next one (unless every
/// other endpoint failed too).
const FAILURE_MEMORY: Duration = Duration::from_secs(5);

/// The least deadline of one attempt, even when the call's retry deadline is nearly spent.
const MIN_ATTEMPT: Duration = Duration::from_millis(50);

/// An etcd v3 client over one lazily connected channel per endpoint.
///
/// Cheap to clone (an [`Arc`]); clones share the channels and the current endpoint. See the
/// crate docs for the retry policy.
#[derive(Clone, Debug)]
pub struct Etcd {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    members: Vec<Member>,
    /// Index into `members` of the endpoint calls go to.
    current: AtomicUsize,
    options: EtcdOptions,
    jitter: Jitter,
}

#[derive(Debug)]
struct Member {
    url: String,
    channel: Channel,
    /// When the endpoint last failed, until it next succeeds.
    failed_at: Mutex<Option<Instant>>,
}

impl Member {
    fn recently_failed(&self, now: Instant) -> bool {
        self.failed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| now.duration_since(at) < FAILURE_MEMORY)
    }
}

/// Which failures of an attempt a call retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Every transport-level failure (reads and idempotent calls).
    Always,
    /// Every transport-level failure (a write the caller guarantees can pass at most once);
    /// but if the retry deadline passes after an attempt that may have reached etcd, the
    /// outcome is [`EtcdError::Unknown`], not [`EtcdError::Unavailable`].
    ResendSafe,
    /// Only failures that provably happened before the request was sent; any other
    /// transport failure is [`EtcdError::Unknown`].
    IfNotSent,
}

/// One attempt of a call: the endpoint's channel and the attempt's deadline.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    channel: Channel,
    max_response_bytes: usize,
    /// The attempt's deadline (sent to etcd as the gRPC deadline of unary calls).
    pub(crate) timeout: Duration,
    /// 0 for the first attempt of a call.
    pub(crate) number: u32,
}

impl Attempt {
    pub(crate) fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel.clone()).max_decoding_message_size(self.max_response_bytes)
    }

    pub(crate) fn lease(&self) -> LeaseClient<Channel> {
        LeaseClient::new(self.channel.clone()).max_decoding_message_size(self.max_response_bytes)
    }

    pub(crate) fn lock(&self) -> LockClient<Channel> {
        LockClient::new(self.channel.clone()).max_decoding_message_size(self.max_response_bytes)
    }

    /// A unary request with this attempt's deadline.
    pub(crate) fn request<T>(&self, message: T) -> Request<T> {
        let mut request = request(message);
        request.set_timeout(self.timeout);
        request
    }
}

/// A request with `hasleader: true`: etcd then refuses it up front with "etcdserver: no
/// leader" when the member has no leader (instead of accepting it and timing out), and cancels
/// a stream when its member loses the leader.
pub(crate) fn request<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("hasleader", MetadataValue::from_static("true"));
    request
}

impl Etcd {
    /// A client of the etcd members at `endpoints` (`http://host:port` each).
    ///
    /// Nothing is connected yet: each endpoint gets a lazily connected channel, so this
    /// succeeds while members are down. Must be called inside a Tokio runtime (the channels'
    /// workers run on it).
    ///
    /// # Errors
    /// [`EtcdError::NoEndpoints`], [`EtcdError::InvalidEndpoint`] (naming the endpoint),
    /// [`EtcdError::TlsNotSupported`] for `https://`, [`EtcdError::NoRuntime`].
    pub fn connect(endpoints: &[String], options: EtcdOptions) -> Result<Etcd, EtcdError> {
        if endpoints.is_empty() {
            return Err(EtcdError::NoEndpoints);
        }
        let urls = endpoints
            .iter()
            .map(|e| validate(e))
            .collect::<Result<Vec<_>, _>>()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(EtcdError::NoRuntime);
        }
        let mut members = Vec::with_capacity(urls.len());
        for url in urls {
            let endpoint = Endpoint::from_shared(url.clone())
                .map_err(|e| EtcdError::InvalidEndpoint {
                    endpoint: url.clone(),
                    reason: e.to_string(),
                })?
                .connect_timeout(options.connect_timeout)
                .http2_keep_alive_interval(options.keepalive_interval.max(MIN_KEEPALIVE_INTERVAL))
                .keep_alive_timeout(options.keepalive_timeout)
                .keep_alive_while_idle(false)
                .tcp_nodelay(true);
            members.push(Member {
                channel: endpoint.connect_lazy(),
                url,
                failed_at: Mutex::new(None),
            });
        }
        Ok(Etcd {
            inner: Arc::new(Inner {
                members,
                current: AtomicUsize::new(0),
                options,
                jitter: Jitter::new(),
            }),
        })
    }

    /// The endpoints, normalized (no trailing `/`), in the order given.
    pub fn endpoints(&self) -> Vec<String> {
        self.inner.members.iter().map(|m| m.url.clone()).collect()
    }

    /// The endpoint calls currently go to.
    pub fn current_endpoint(&self) -> String {
        self.inner.members[self.current()].url.clone()
    }

    /// The options this client was made with.
    pub fn options(&self) -> &EtcdOptions {
        &self.inner.options
    }

    pub(crate) fn current(&self) -> usize {
        self.inner.current.load(Ordering::SeqCst) % self.inner.members.len()
    }

    pub(crate) fn endpoint_count(&self) -> usize {
        self.inner.members.len()
    }

    pub(crate) fn url(&self, index: usize) -> &str {
        &self.inner.members[index].url
    }

    pub(crate) fn channel(&self, index: usize) -> Channel {
        self.inner.members[index].channel.clone()
    }

    /// Records a success of `index`.
    pub(crate) fn mark_ok(&self, index: usize) {
        let mut failed = self.inner.members[index]
            .failed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *failed = None;
    }

    /// Records a failure of `index`, and moves the current endpoint on if it still is
    /// `index`: to the next endpoint that has not failed recently, or else simply the next.
    pub(crate) fn mark_failed(&self, index: usize) {
        let now = Instant::now();
        *self.inner.members[index]
            .failed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(now);
        let n = self.inner.members.len();
        let next = (1..n)
            .map(|k| (index + k) % n)
            .find(|&j| !self.inner.members[j].recently_failed(now))
            .unwrap_or((index + 1) % n);
        let _ =
            self.inner
                .current
                .compare_exchange(index, next, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// A pseudo-random number (lease IDs).
    pub(crate) fn random(&self) -> u64 {
        self.inner.jitter.next_u64()
    }

    /// The pause after failed round `round` over all endpoints.
    pub(crate) fn backoff(&self, round: u32) -> Duration {
        let o = &self.inner.options;
        self.inner
            .jitter
            .backoff(round, o.backoff_base, o.backoff_max)
    }

    /// The error after the retry deadline.
    pub(crate) fn unavailable(&self, last_error: String) -> EtcdError {
        EtcdError::Unavailable {
            endpoints: self.endpoints(),
            last_error,
        }
    }

    /// Runs `attempt` on the current endpoint, and on a transport-level failure on the next
    /// ones, under `retry` and the retry deadline (the crate docs' retry policy).
    pub(crate) async fn call<T, F, Fut>(
        &self,
        call: &'static str,
        retry: Retry,
        mut attempt: F,
    ) -> Result<T, EtcdError>
    where
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let options = &self.inner.options;
        let n = self.endpoint_count() as u32;
        let deadline = Instant::now() + options.retry_deadline;
        let mut failures = 0u32;
        // The endpoint of the last attempt that may have reached etcd.
        let mut maybe_sent: Option<String> = None;
        loop {
            let index = self.current();
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeout = options.request_timeout.min(remaining.max(MIN_ATTEMPT));
            let this = Attempt {
                channel: self.channel(index),
                max_response_bytes: options.max_response_bytes,
                timeout,
                number: failures,
            };
            let failure = match tokio::time::timeout(timeout, attempt(this)).await {
                Ok(Ok(value)) => {
                    self.mark_ok(index);
                    return Ok(value);
                }
                Ok(Err(status)) => classify(call, status),
                Err(_) => Failure::MaybeSent(format!("no answer within {timeout:?}")),
            };
            let (sent, error) = match failure {
                Failure::Refused(err) => return Err(err),
                Failure::NotSent(error) => (false, error),
                Failure::MaybeSent(error) => (true, error),
            };
            let url = self.url(index).to_owned();
            self.mark_failed(index);
            if sent && retry == Retry::IfNotSent {
                tracing::warn!(call, endpoint = %url, %error, "etcd call failed after it may have been sent: outcome unknown");
                return Err(EtcdError::Unknown {
                    call,
                    endpoint: url,
                    error,
                });
            }
            if sent {
                maybe_sent = Some(url.clone());
            }
            tracing::debug!(call, endpoint = %url, %error, "etcd call failed; trying the next endpoint");
            failures += 1;
            if failures.is_multiple_of(n) {
                let pause = self
                    .backoff(failures / n)
                    .min(deadline.saturating_duration_since(Instant::now()));
                tokio::time::sleep(pause).await;
            }
            if Instant::now() >= deadline {
                return Err(match maybe_sent {
                    Some(endpoint) if retry == Retry::ResendSafe => EtcdError::Unknown {
                        call,
                        error: format!(
                            "no answer within the retry deadline, and an attempt on {endpoint} \
                             may have been applied; last error: {url}: {error}"
                        ),
                        endpoint,
                    },
                    _ => self.unavailable(format!("{url}: {error}")),
                });
            }
        }
    }
}

/// Checks that `endpoint` is `http://host:port` and returns it without a trailing `/`.
fn validate(endpoint: &str) -> Result<String, EtcdError> {
    let invalid = |reason: &str| EtcdError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = endpoint
        .parse()
        .map_err(|e: tonic::codegen::http::uri::InvalidUri| invalid(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(EtcdError::TlsNotSupported {
                endpoint: endpoint.to_owned(),
            });
        }
        Some(other) => {
            return Err(invalid(&format!(
                "unsupported scheme {other:?}, expected http://host:port"
            )));
        }
        None => return Err(invalid("expected http://host:port")),
    }
    let Some(authority) = uri.authority() else {
        return Err(invalid("no host, expected http://host:port"));
    };
    if authority.host().is_empty() {
        return Err(invalid("no host, expected http://host:port"));
    }
    if authority.port_u16().is_none() {
        return Err(invalid(
            "no port, expected http://host:port (etcd's client port is usually 2379)",
        ));
    }
    if authority.as_str().contains('@') {
        return Err(invalid("user info is not supported"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid(
            "a path or query is not allowed, expected http://host:port",
        ));
    }
    Ok(format!("http://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_validated() {
        assert_eq!(
            validate("http://127.0.0.1:2379/").ok(),
            Some("http://127.0.0.1:2379".to_owned())
        );
        assert_eq!(
            validate("http://etcd-1.example:2379").ok(),
            Some("http://etcd-1.example:2379".to_owned())
        );
        for bad in [
            "127.0.0.1:2379",
            "http://127.0.0.1",
            "ftp://h:1",
            "http://h:1/x",
            "not a url",
            "",
        ] {
            match validate(bad) {
                Err(EtcdError::InvalidEndpoint { endpoint, .. }) => assert_eq!(endpoint, bad),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let err = validate("https://h:2379").err();
        assert!(
            matches!(err, Some(EtcdError::TlsNotSupported { .. })),
            "{err:?}"
        );
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("https is not supported"), "{text}");
    }

    #[test]
    fn connect_needs_endpoints_and_a_runtime() {
        assert!(matches!(
            Etcd::connect(&[], EtcdOptions::default()),
            Err(EtcdError::NoEndpoints)
        ));
        assert!(matches!(
            Etcd::connect(&["http://127.0.0.1:1".to_owned()], EtcdOptions::default()),
            Err(EtcdError::NoRuntime)
        ));
    }

    #[tokio::test]
    async fn failures_move_the_current_endpoint_past_recently_failed_ones() {
        let urls: Vec<String> = (1..=3).map(|p| format!("http://127.0.0.1:{p}")).collect();
        let etcd = Etcd::connect(&urls, EtcdOptions::default()).expect("valid endpoints");
        assert_eq!(etcd.current(), 0);
        etcd.mark_failed(1);
        etcd.mark_failed(0);
        assert_eq!(etcd.current(), 2, "skips endpoint 1, which failed recently");
        etcd.mark_failed(2);
        assert_eq!(etcd.current(), 0, "all failed: simply the next");
        etcd.mark_ok(1);
        etcd.mark_failed(0);
        assert_eq!(etcd.current(), 1);
    }

    #[test]
    fn the_client_is_clone_send_and_sync() {
        fn check<T: Clone + Send + Sync + 'static>() {}
        check::<Etcd>();
        fn send<T: Send + 'static>() {}
        send::<crate::Watcher>();
    }

    #[tokio::test]
    async fn a_silent_endpoint_makes_writes_unknown_and_reads_unavailable() {
        // Accepts connections (in the kernel's backlog) and never answers: a stalled member.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let options = EtcdOptions {
            request_timeout: Duration::from_millis(200),
            retry_deadline: Duration::from_millis(600),
            ..EtcdOptions::default()
        };
        let etcd = Etcd::connect(std::slice::from_ref(&url), options).expect("valid endpoint");

        let err = etcd.get("k").await.err();
        assert!(
            matches!(err, Some(EtcdError::Unavailable { .. })),
            "{err:?}"
        );

        let started = Instant::now();
        let err = etcd.put("k", "v", None).await.err();
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "not retried"
        );
        match err {
            Some(EtcdError::Unknown { call, endpoint, .. }) => {
                assert_eq!((call, endpoint), ("put", url.clone()));
            }
            other => panic!("{other:?}"),
        }

        let txn = crate::TxnRequest::default();
        let err = etcd.txn(txn.clone(), false).await.err();
        assert!(matches!(err, Some(EtcdError::Unknown { .. })), "{err:?}");
        // Resent until the deadline, and then still unknown: a copy may have been applied.
        let started = Instant::now();
        let err = etcd.txn(txn, true).await.err();
        assert!(started.elapsed() >= Duration::from_millis(600));
        assert!(matches!(err, Some(EtcdError::Unknown { .. })), "{err:?}");
        drop(listener);
    }

    #[tokio::test]
    async fn dead_endpoints_give_unavailable_naming_them_within_the_deadline() {
        // Port 1 on loopback refuses connections.
        let urls = vec![
            "http://127.0.0.1:1".to_owned(),
            "http://127.0.0.1:2".to_owned(),
        ];
        let options = EtcdOptions {
            retry_deadline: Duration::from_millis(400),
            ..EtcdOptions::default()
        };
        let etcd = Etcd::connect(&urls, options).expect("valid endpoints");
        let started = Instant::now();
        let err = etcd.get("k").await.err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        match err {
            Some(EtcdError::Unavailable {
                endpoints,
                last_error,
            }) => {
                assert_eq!(endpoints, urls);
                assert!(last_error.contains("connect"), "{last_error}");
            }
            other => panic!("{other:?}"),
        }
        // A write that is not resend-safe is retried too: nothing was sent.
        let err = etcd.put("k", "v", None).await.err();
        assert!(
            matches!(err, Some(EtcdError::Unavailable { .. })),
            "{err:?}"
        );
    }
}
