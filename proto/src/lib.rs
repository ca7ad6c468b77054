//! Arbiter's wire types.
//!
//! This crate will hold the `.proto` files that are wire-compatible with YDB's public
//! maintenance API and the generated prost/tonic code. It is empty until the gRPC service
//! lands; it exists now so that the workspace has its final shape.
