//! Arbiter's server: the decision engine, the store, and (with the gRPC issue) the services.
//!
//! # Layout
//! - [`engine`]: the pure, synchronous decision engine. Everything that decides whether a
//!   maintenance lock may be granted lives there; it reads no clock and does no I/O.
//! - [`store`]: the `Store` trait over the engine's change records, its backends (in memory and
//!   redb) and the conformance suite every backend must pass.

pub mod engine;
pub mod store;
