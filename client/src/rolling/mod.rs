//! `arbiter rolling-restart`: restarts a set of nodes one batch at a time, each only when the
//! arbiter grants its lock, and completes a node's lock only once the node is seen up again.
//!
//! (Being written: the command-line arguments below are the interface the `arbiter` binary
//! flattens into its `rolling-restart` subcommand.)

use crate::Client;

/// The arguments of `arbiter rolling-restart`.
#[derive(Debug, Clone, clap::Args)]
pub struct RollingArgs {}

/// Why a rolling restart stopped.
#[derive(Debug, thiserror::Error)]
pub enum RollingError {
    /// A call to the arbiter failed.
    #[error(transparent)]
    Client(#[from] crate::ClientError),
}

/// Runs a rolling restart to the end (or until it stops with an error).
pub async fn run(client: Client, args: RollingArgs) -> Result<(), RollingError> {
    let _ = (client, args);
    Ok(())
}
