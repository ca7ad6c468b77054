//! A small etcd v3 client for Arbiter: KV, Txn, Lease, Watch (and Lock) over tonic, with an
//! endpoint-failover retry policy, plus a harness that runs real `etcd` members for tests.
//!
//! # Wire types
//!
//! [`pb`] holds prost messages and tonic clients generated at build time from our own
//! `.proto` files (`etcd/proto/`): a wire-compatible subset of etcd's v3 API with etcd's package
//! (`etcdserverpb`, `mvccpb`), service, message and field names and numbers, so the gRPC paths
//! (`/etcdserverpb.KV/Txn`, ...) and encodings are etcd's. No system `protoc`, no
//! `etcd-client` crate.
//!
//! # Client
//!
//! [`Etcd::connect`] takes the member URLs (`http://host:port`) and [`EtcdOptions`]. It opens
//! one lazily connected channel per endpoint; every call goes to the *current* endpoint, and a
//! transport failure moves the client to the next endpoint and retries under the policy below,
//! until [`EtcdOptions::retry_deadline`].
//!
//! # Retry policy
//!
//! A failure of one attempt is classified as
//! - **not sent** — provably before etcd could act on it: a connect error (tonic's
//!   [`tonic::ConnectError`] in the error chain), or an etcd refusal that is issued before a
//!   request is proposed (`etcdserver: no leader`, which etcd's interceptor answers because this
//!   client sends `hasleader: true`; `etcdserver: too many requests`; `raft proposal dropped`);
//! - **maybe sent** — any other transport-level failure: a status produced locally from a
//!   transport error (reset connection, GOAWAY, broken stream), `Unavailable` from etcd
//!   (`request timed out`, `leader changed`, ...), `Cancelled`, `DeadlineExceeded`, or no answer
//!   within the attempt's deadline ([`EtcdOptions::request_timeout`]);
//! - **refused** — any other status from etcd: mapped to a non-retryable [`EtcdError`]
//!   variant ([`EtcdError::TooManyOps`], [`EtcdError::RequestTooLarge`],
//!   [`EtcdError::DuplicateKey`], [`EtcdError::NoSpace`], [`EtcdError::RevisionCompacted`],
//!   [`EtcdError::Refused`], ...) and returned at once.
//!
//! After a not-sent or maybe-sent failure the endpoint is marked failing and the client moves
//! to the next endpoint (skipping endpoints that failed in the last few seconds while others
//! have not). Once every endpoint has failed in a round, it pauses with capped, jittered,
//! exponential backoff. When the retry deadline has passed, the call fails with
//! [`EtcdError::Unavailable`], which names the endpoints and the last error and is retryable.
//!
//! Which failures are retried depends on the call:
//! - reads and lease calls ([`Etcd::get`], [`Etcd::range`], [`Etcd::range_prefix`],
//!   [`Etcd::lease_grant`], [`Etcd::lease_revoke`], [`Etcd::keep_alive_once`],
//!   [`Etcd::lease_time_to_live`], [`Etcd::compact`]) and [`Etcd::txn`] with
//!   `resend_safe = true` retry on both not-sent and maybe-sent failures (a resend-safe txn
//!   whose deadline passes after an attempt that may have reached etcd ends with
//!   [`EtcdError::Unknown`], not [`EtcdError::Unavailable`]);
//! - writes that are not known to be safe to repeat ([`Etcd::put`], [`Etcd::delete_prefix`],
//!   [`Etcd::txn`] with `resend_safe = false`) retry only not-sent failures; a maybe-sent
//!   failure is returned as [`EtcdError::Unknown`]: the outcome is unknown, and the caller must
//!   read back to find out.
//!
//! # Lock
//!
//! [`Etcd::lock`] and [`Etcd::unlock`] call etcd's own lock service (`v3lockpb.Lock`, the
//! server-side `concurrency.Mutex`), with a lease the caller granted. Arbiter itself does not
//! use them; `arbiter-bench` measures them as the yardstick of a durable lock on etcd.
//!
//! # Watch
//!
//! [`Etcd::watch_prefix`] gives a [`Watcher`] that yields [`WatchBatch`]es in revision order,
//! reconnecting (from the last delivered revision + 1, across endpoints) on transport
//! failures, and ending with [`EtcdError::Compacted`] when its start revision is compacted.
//!
//! # Tests
//!
//! [`testing::EtcdCluster`] starts 1 or 3 real `etcd` members on loopback for tests.
//!
//! All calls need a Tokio runtime (multi-threaded or not); [`Etcd::connect`] must be called
//! inside one, and the client is bound to it.

mod backoff;
mod client;
mod error;
mod kv;
mod lease;
mod lock;
mod options;
pub mod testing;
mod watch;

/// Generated wire types: etcd's `etcdserverpb`, `mvccpb` and `v3lockpb` packages (our subset).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    /// Package `etcdserverpb`: the KV, Watch and Lease services and their messages.
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
    /// Package `mvccpb`: [`KeyValue`](mvccpb::KeyValue) and [`Event`](mvccpb::Event).
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    /// Package `v3lockpb`: etcd's Lock service (server-side locks).
    pub mod v3lockpb {
        tonic::include_proto!("v3lockpb");
    }
}

pub use client::Etcd;
pub use error::EtcdError;
pub use kv::{
    cmp_create_revision, cmp_lease, cmp_mod_revision, cmp_value, cmp_version, op_delete,
    op_delete_prefix, op_get, op_put, prefix_end,
};
pub use lease::LeaseId;
pub use lock::LockKey;
pub use options::EtcdOptions;
pub use pb::etcdserverpb::compare::CompareResult;
pub use pb::etcdserverpb::{Compare, RequestOp, ResponseOp, TxnRequest, TxnResponse};
pub use pb::mvccpb::event::EventType;
pub use pb::mvccpb::{Event, KeyValue};
pub use watch::{WatchBatch, Watcher};
