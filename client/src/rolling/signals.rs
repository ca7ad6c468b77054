//! Ctrl-C and SIGTERM. The handlers are installed when the rollout starts, so that from then on
//! a signal stops the rollout in order (its task is dropped or kept) instead of killing the
//! process.

use super::RollingError;

/// The signals that stop a rollout.
#[derive(Debug)]
pub(crate) struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers.
    pub(crate) fn listen() -> Result<Signals, RollingError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let setup =
                |e: std::io::Error| RollingError::Local(format!("cannot listen for Ctrl-C: {e}"));
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt()).map_err(setup)?,
                terminate: signal(SignalKind::terminate()).map_err(setup)?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// The next signal, by name.
    pub(crate) async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => "Ctrl-C",
                _ = self.terminate.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
