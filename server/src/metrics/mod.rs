//! Prometheus metrics: the process's instruments, counted where things happen, and the gauges
//! that come from the engine's state, computed at scrape time.
//!
//! Two kinds, so that the engine stays pure (it knows nothing of metrics):
//! - Events are counted where they happen, on the process-wide [`Metrics`] ([`global`]): the
//!   gRPC layer ([`grpc`]) and the HTTP middleware count requests; the writer counts batches,
//!   commits and grants and keeps its queue depth, the earliest lock deadline and the open
//!   watches current after every batch; the services count refusals.
//! - What the state holds (nodes by state, pending actions by reason, tasks, freezes, windows,
//!   heartbeat ages) is read at scrape time by one query on the writer ([`state::StateGauges`]),
//!   whose cost is one walk over the nodes and the tasks.
//!
//! One process serves one arbiter, and a writer may be started more than once in it (every time
//! this instance wins an election on etcd), so the instruments are process-wide rather than
//! handed to every writer. Labels are bounded: gRPC method names from the descriptors served,
//! route templates, status codes, reasons and states; never a task uid, a user or a token.

pub mod grpc;
pub mod state;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The content type of [`Metrics::render`]'s text (OpenMetrics, which Prometheus negotiates).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A gRPC call and how it ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// `Service/Method` (e.g. `Ydb.Maintenance.V1.MaintenanceService/CreateMaintenanceTask`),
    /// or `unknown` for a path this server does not serve.
    pub call: String,
    /// The gRPC status name (`OK`, `INVALID_ARGUMENT`, ...).
    pub code: &'static str,
}

/// An HTTP request and its answer.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route's template (`/v1/tasks/{id}`), or `unmatched`.
    pub route: String,
    /// The method (`GET`, `POST`, ... or `other`).
    pub method: &'static str,
    /// The HTTP status code.
    pub code: u16,
}

/// Why a change was refused.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// `bad_request`, `unsupported`, `read_only`, `unauthenticated`, `permission_denied`.
    pub reason: &'static str,
}

/// How a store commit ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: &'static str,
}

/// Every instrument counted where things happen.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `arbiter_grpc_requests_total{call, code}`.
    pub grpc_requests: Family<CallLabels, Counter>,
    /// `arbiter_http_requests_total{route, method, code}`.
    pub http_requests: Family<RouteLabels, Counter>,
    /// `arbiter_grants_total`: locks granted (fencing tokens issued), counted after the commit.
    pub grants: Counter,
    /// `arbiter_refusals_total{reason}`: changes the engine or the identity layer refused.
    pub refusals: Family<ReasonLabel, Counter>,
    /// `arbiter_store_commits_total{result}`.
    pub commits: Family<ResultLabel, Counter>,
    /// `arbiter_store_commit_seconds`: one store commit until the batch is durable (redb: the
    /// log's fsync; etcd: the fenced transaction), which is when its replies go out.
    pub commit_seconds: Histogram,
    /// `arbiter_writer_batch_size`: jobs per batch.
    pub batch_size: Histogram,
    /// `arbiter_writer_batch_seconds`: one batch, from taking its jobs to its replies.
    pub batch_seconds: Histogram,
    /// `arbiter_writer_queue_depth`: jobs queued or running on the writer.
    pub queue_depth: Gauge,
    /// `arbiter_writer_last_batch_timestamp_seconds`: when the writer last finished a batch.
    pub last_batch: Gauge<f64, AtomicU64>,
    /// `arbiter_live_locks`: after the last batch.
    pub live_locks: Gauge,
    /// `arbiter_lock_earliest_deadline_timestamp_seconds`: the earliest live lock's deadline
    /// after the last batch (0: no live lock).
    pub earliest_deadline: Gauge<f64, AtomicU64>,
    /// `arbiter_open_watches`: open WatchTask streams, after the last batch.
    pub open_watches: Gauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's instruments.
pub fn global() -> &'static Metrics {
    &METRICS
}

/// Seconds since the Unix epoch.
pub fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            grpc_requests: Family::default(),
            http_requests: Family::default(),
            grants: Counter::default(),
            refusals: Family::default(),
            commits: Family::default(),
            // 0.25 ms .. ~8 s.
            commit_seconds: Histogram::new(exponential_buckets(0.00025, 2.0, 16)),
            // 1 .. 512 (MAX_BATCH).
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            batch_seconds: Histogram::new(exponential_buckets(0.00025, 2.0, 16)),
            queue_depth: Gauge::default(),
            last_batch: Gauge::default(),
            live_locks: Gauge::default(),
            earliest_deadline: Gauge::default(),
            open_watches: Gauge::default(),
        };
        let mut r = Registry::default();
        r.register(
            "arbiter_grpc_requests",
            "gRPC calls answered by this instance, by call and status",
            m.grpc_requests.clone(),
        );
        r.register(
            "arbiter_http_requests",
            "HTTP requests answered by this instance, by route template, method and status",
            m.http_requests.clone(),
        );
        r.register(
            "arbiter_grants",
            "Locks granted (fencing tokens issued), counted once committed",
            m.grants.clone(),
        );
        r.register(
            "arbiter_refusals",
            "Changes refused (nothing applied), by reason",
            m.refusals.clone(),
        );
        r.register(
            "arbiter_store_commits",
            "Store commits (one per batch with changes), by result",
            m.commits.clone(),
        );
        r.register(
            "arbiter_store_commit_seconds",
            "Time of one store commit until the batch is durable (redb: the write-ahead log's fsync; etcd: the fenced transaction)",
            m.commit_seconds.clone(),
        );
        r.register(
            "arbiter_writer_batch_size",
            "Jobs (requests) per writer batch",
            m.batch_size.clone(),
        );
        r.register(
            "arbiter_writer_batch_seconds",
            "Time of one writer batch: tick, jobs, re-checks, commit, replies",
            m.batch_seconds.clone(),
        );
        r.register(
            "arbiter_writer_queue_depth",
            "Jobs queued on the writer or running",
            m.queue_depth.clone(),
        );
        r.register(
            "arbiter_writer_last_batch_timestamp_seconds",
            "When the writer last finished a batch (a scrape of the leader runs one)",
            m.last_batch.clone(),
        );
        r.register(
            "arbiter_live_locks",
            "Live locks (performed actions), after the writer's last batch",
            m.live_locks.clone(),
        );
        r.register(
            "arbiter_lock_earliest_deadline_timestamp_seconds",
            "Deadline of the earliest live lock after the writer's last batch (0: no lock)",
            m.earliest_deadline.clone(),
        );
        r.register(
            "arbiter_open_watches",
            "Open WatchTask streams",
            m.open_watches.clone(),
        );
        Metrics { registry: r, ..m }
    }

    /// Counts a refused change.
    pub fn refused(&self, reason: &'static str) {
        self.refusals.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// One store commit that started at `started` has its outcome (`ok`): timed and counted.
    pub fn committed(&self, started: Instant, ok: bool) {
        self.commit_seconds.observe(started.elapsed().as_secs_f64());
        let result = if ok { "ok" } else { "error" };
        self.commits.get_or_create(&ResultLabel { result }).inc();
    }

    /// A batch of `jobs` that started at `started` was committed: `granted` locks were granted
    /// in it; the state and the watches are as it left them.
    pub fn batch_done(
        &self,
        state: &crate::engine::State,
        jobs: usize,
        granted: u64,
        watches: usize,
        started: Instant,
    ) {
        if jobs > 0 {
            self.batch_size.observe(jobs as f64);
        }
        self.batch_seconds.observe(started.elapsed().as_secs_f64());
        self.grants.inc_by(granted);
        self.live_locks
            .set(i64::try_from(state.lock_count()).unwrap_or(i64::MAX));
        let earliest = state
            .deadlines
            .first()
            .map(|(d, _, _)| d.as_millis() as f64 / 1000.0);
        self.earliest_deadline.set(earliest.unwrap_or(0.0));
        self.open_watches
            .set(i64::try_from(watches).unwrap_or(i64::MAX));
        self.last_batch.set(unix_seconds());
    }

    /// A job was queued on the writer; the depth goes down when the guard is dropped (the job
    /// ran, or was refused or discarded).
    pub fn queued(&'static self) -> Queued {
        self.queue_depth.inc();
        Queued(self)
    }

    /// The text Prometheus scrapes: every instrument, then `extra` (the scrape-time gauges).
    pub fn render(&self, extra: &Registry) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, extra);
        let _ = encode_eof(&mut out);
        out
    }
}

/// A job's place on the writer's queue ([`Metrics::queued`]).
#[derive(Debug)]
pub struct Queued(&'static Metrics);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.queue_depth.dec();
    }
}

/// The label of a refused change ([`Metrics::refusals`]); `None` for what decided nothing.
pub fn refusal_reason(e: &crate::service::error::ServiceError) -> Option<&'static str> {
    use crate::engine::error::ErrorKind;
    use crate::identity::AuthError;
    use crate::service::error::ServiceError;
    Some(match e {
        ServiceError::Engine(e) => match e.kind() {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Unavailable => "read_only",
        },
        ServiceError::BadRequest(_) => "bad_request",
        ServiceError::Unsupported(_) => "unsupported",
        ServiceError::Auth(AuthError::Forbidden { .. } | AuthError::NotOwner { .. }) => {
            "permission_denied"
        }
        ServiceError::Auth(_) => "unauthenticated",
        ServiceError::Overloaded(_) | ServiceError::Writer(_) | ServiceError::NotLeader(_) => {
            return None;
        }
    })
}
