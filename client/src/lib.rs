//! Arbiter's typed client library.
//!
//! Empty until the gRPC service exists: the client, the `arbiter` CLI and the rolling-restart
//! orchestrator land with their own issue.
