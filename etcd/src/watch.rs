//! [`Watcher`]: a prefix watch that survives member failures.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::{Etcd, request};
use crate::error::{EtcdError, Failure, classify};
use crate::kv::prefix_end;
use crate::pb::etcdserverpb::watch_client::WatchClient;
use crate::pb::etcdserverpb::watch_request::RequestUnion;
use crate::pb::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use crate::pb::mvccpb::Event;

/// Batches buffered between the watch task and the consumer.
const BUFFER: usize = 64;

/// The events of one or more consecutive revisions, in revision order.
#[derive(Debug, Clone)]
pub struct WatchBatch {
    /// The store revision of etcd's response header (at least the last event's revision).
    pub revision: i64,
    /// The events, in revision order; never empty.
    pub events: Vec<Event>,
}

/// A running watch of a key prefix (see [`Etcd::watch_prefix`]). Dropping it cancels it.
#[derive(Debug)]
pub struct Watcher {
    batches: mpsc::Receiver<Result<WatchBatch, EtcdError>>,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    next_revision: AtomicI64,
    endpoint: Mutex<String>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watcher {
    /// The next batch; `None` only after an error was returned (the watch has ended).
    ///
    /// Errors end the watch: [`EtcdError::Compacted`] (reload, then watch from the reload's
    /// revision + 1), [`EtcdError::Unavailable`] (no endpoint could be reached for the
    /// retry deadline; watch again from [`Watcher::next_revision`]),
    /// [`EtcdError::WatchCanceled`] or another refusal.
    pub async fn next(&mut self) -> Option<Result<WatchBatch, EtcdError>> {
        self.batches.recv().await
    }

    /// The revision the watch continues from: the last delivered event's revision + 1 (or
    /// the start revision).
    pub fn next_revision(&self) -> i64 {
        self.shared.next_revision.load(Ordering::SeqCst)
    }

    /// The endpoint the watch stream is (or was last) open on.
    pub fn endpoint(&self) -> String {
        self.shared
            .endpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// How one watch stream ended.
enum End {
    /// The consumer dropped the watcher.
    Closed,
    /// A transport failure; `created` says whether the stream got as far as a created watch.
    Failed { error: String, created: bool },
    /// The watch cannot go on.
    Fatal(EtcdError),
}

impl Etcd {
    /// Watches every key under `prefix` from `start_revision` (inclusive).
    ///
    /// Pass an explicit revision, normally the revision of the read the caller's state came
    /// from + 1 ([`Etcd::range_prefix`] returns it): in etcd a start revision of 0 means
    /// "from now", so changes between the read and the watch would be missed. (With 0, the
    /// watcher takes the revision etcd reports at creation + 1 for its reconnects.)
    ///
    /// The watch runs in a task on the current Tokio runtime. On a transport failure (the
    /// member dies, is stopped, loses its leader, or the stream breaks) it reconnects to the
    /// next endpoint from the last delivered revision + 1, so every revision is delivered
    /// exactly once and in order; it gives up with [`EtcdError::Unavailable`] after failing
    /// to re-create the watch for [`EtcdOptions::retry_deadline`](crate::EtcdOptions).
    /// A compacted start revision ends it with [`EtcdError::Compacted`].
    pub fn watch_prefix(&self, prefix: impl Into<Vec<u8>>, start_revision: i64) -> Watcher {
        let key = prefix.into();
        let range_end = prefix_end(&key);
        let (tx, rx) = mpsc::channel(BUFFER);
        let shared = Arc::new(Shared {
            next_revision: AtomicI64::new(start_revision),
            endpoint: Mutex::new(self.current_endpoint()),
        });
        let task = tokio::spawn(run(self.clone(), key, range_end, Arc::clone(&shared), tx));
        Watcher {
            batches: rx,
            shared,
            task,
        }
    }
}

/// The watch task: (re)opens streams until the watch ends.
async fn run(
    etcd: Etcd,
    key: Vec<u8>,
    range_end: Vec<u8>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Result<WatchBatch, EtcdError>>,
) {
    let n = etcd.endpoint_count() as u32;
    let mut failing_since: Option<Instant> = None;
    let mut failures = 0u32;
    loop {
        let index = etcd.current();
        *shared
            .endpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = etcd.url(index).to_owned();
        let end = stream(&etcd, index, &key, &range_end, &shared, &tx).await;
        let (error, created) = match end {
            End::Closed => return,
            End::Fatal(err) => {
                let _ = tx.send(Err(err)).await;
                return;
            }
            End::Failed { error, created } => (error, created),
        };
        let url = etcd.url(index).to_owned();
        tracing::debug!(endpoint = %url, %error, "etcd watch stream failed; reconnecting");
        etcd.mark_failed(index);
        if created {
            failing_since = None;
            failures = 0;
        }
        let since = *failing_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= etcd.options().retry_deadline {
            let _ = tx
                .send(Err(etcd.unavailable(format!("{url}: {error}"))))
                .await;
            return;
        }
        failures += 1;
        if failures.is_multiple_of(n) {
            tokio::time::sleep(etcd.backoff(failures / n)).await;
        }
    }
}

/// One watch stream on endpoint `index`, from `shared.next_revision`.
async fn stream(
    etcd: &Etcd,
    index: usize,
    key: &[u8],
    range_end: &[u8],
    shared: &Shared,
    tx: &mpsc::Sender<Result<WatchBatch, EtcdError>>,
) -> End {
    let failed = |error: String, created: bool| End::Failed { error, created };
    let start_revision = shared.next_revision.load(Ordering::SeqCst);
    let (requests, requests_rx) = mpsc::channel(1);
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: key.to_vec(),
            range_end: range_end.to_vec(),
            start_revision,
            ..WatchCreateRequest::default()
        })),
    };
    if requests.send(create).await.is_err() {
        return failed("watch request channel closed".to_owned(), false);
    }
    let mut client = WatchClient::new(etcd.channel(index))
        .max_decoding_message_size(etcd.options().max_response_bytes);
    let timeout = etcd.options().request_timeout;

    // Open the stream and wait for the created answer, within one request timeout.
    let opened = tokio::time::timeout(timeout, async {
        let mut responses = client
            .watch(request(ReceiverStream::new(requests_rx)))
            .await?
            .into_inner();
        loop {
            match responses.message().await? {
                Some(response) if response.created || response.canceled => {
                    return Ok((responses, response));
                }
                Some(_) => continue,
                None => {
                    return Err(tonic::Status::unavailable(
                        "watch stream closed before created",
                    ));
                }
            }
        }
    })
    .await;
    let (mut responses, first) = match opened {
        Err(_) => return failed(format!("watch not created within {timeout:?}"), false),
        Ok(Err(status)) => {
            return match classify("watch", status) {
                Failure::Refused(err) => End::Fatal(err),
                Failure::NotSent(error) | Failure::MaybeSent(error) => failed(error, false),
            };
        }
        Ok(Ok(opened)) => opened,
    };
    etcd.mark_ok(index);
    if start_revision <= 0 {
        // "From now": pin "now" so that a reconnect neither misses nor repeats events.
        let now = first.header.as_ref().map_or(0, |h| h.revision);
        shared.next_revision.store(now + 1, Ordering::SeqCst);
    }
    if let Some(end) = cancellation(&first) {
        return end;
    }

    let mut fragments: Vec<Event> = Vec::new();
    loop {
        let response = match responses.message().await {
            Ok(Some(response)) => response,
            Ok(None) => return failed("watch stream closed by etcd".to_owned(), true),
            Err(status) => {
                return match classify("watch", status) {
                    Failure::Refused(err) => End::Fatal(err),
                    Failure::NotSent(error) | Failure::MaybeSent(error) => failed(error, true),
                };
            }
        };
        if let Some(end) = cancellation(&response) {
            return end;
        }
        let mut events = response.events;
        if response.fragment {
            fragments.append(&mut events);
            continue;
        }
        if !fragments.is_empty() {
            fragments.append(&mut events);
            events = std::mem::take(&mut fragments);
        }
        // Anything before the resume point was delivered by an earlier stream.
        let next = shared.next_revision.load(Ordering::SeqCst);
        events.retain(|e| e.kv.as_ref().is_some_and(|kv| kv.mod_revision >= next));
        let Some(last) = events
            .last()
            .and_then(|e| e.kv.as_ref())
            .map(|kv| kv.mod_revision)
        else {
            continue;
        };
        shared.next_revision.store(last + 1, Ordering::SeqCst);
        let revision = response.header.map_or(last, |h| h.revision.max(last));
        if tx.send(Ok(WatchBatch { revision, events })).await.is_err() {
            return End::Closed;
        }
    }
}

/// The end a canceled (or compacted) watch response means, if any.
fn cancellation(response: &WatchResponse) -> Option<End> {
    if response.compact_revision > 0 {
        return Some(End::Fatal(EtcdError::Compacted {
            compact_revision: response.compact_revision,
        }));
    }
    if response.canceled {
        let reason = if response.cancel_reason.is_empty() {
            "no reason given".to_owned()
        } else {
            response.cancel_reason.clone()
        };
        return Some(End::Fatal(EtcdError::WatchCanceled { reason }));
    }
    None
}
