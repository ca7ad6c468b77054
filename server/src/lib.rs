//! Arbiter's server: the decision engine, and (with the gRPC issue) the store and the services.
//!
//! # Layout
//! - [`engine`]: the pure, synchronous decision engine. Everything that decides whether a
//!   maintenance lock may be granted lives there; it reads no clock and does no I/O.

pub mod engine;
