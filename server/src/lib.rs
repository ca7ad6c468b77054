//! Arbiter's server: the decision engine, the store, the single writer, identity, and the
//! YDB-compatible gRPC services.
//!
//! # Layout
//! - [`engine`]: the pure, synchronous decision engine. Everything that decides whether a
//!   maintenance lock may be granted lives there; it reads no clock and does no I/O.
//! - [`store`]: the `Store` trait over the engine's change records, its backends (in memory and
//!   redb) and the conformance suite every backend must pass.
//! - [`writer`]: the one thread that owns the state: requests in arrival order, group commit,
//!   the expiry timer.
//! - [`watches`]: open task watches, and whether a task's owner is among them.
//! - [`identity`]: tickets, the auth file, roles, Login sessions.
//! - [`service`]: the gRPC services, thin shells around the writer.
//! - [`http`]: the HTTP listener (probes, metrics, dashboard, REST, FleetLock), a thin shell
//!   over the same service calls.
//! - [`tls`]: TLS on both listeners (rustls, ring), reloaded on SIGHUP.
//! - [`metrics`]: the Prometheus instruments and the scrape-time gauges of the state.
//! - [`inventory_file`]: reading the inventory file, at start and on reload.
//! - [`config`], [`app`]: the command line and the wiring the binary runs.

pub mod agents;
pub mod app;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod http;
pub mod identity;
pub mod inventory_file;
pub mod metrics;
pub mod service;
pub mod store;
pub mod tls;
pub mod watches;
pub mod writer;
