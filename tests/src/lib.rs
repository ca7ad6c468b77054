//! End-to-end test support: starting the real `arbiter-server` binary on an ephemeral port.
//!
//! Empty until the server serves gRPC; the engine is tested inside `arbiter-server` meanwhile.
