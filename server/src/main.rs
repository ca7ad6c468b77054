//! `arbiter-server`: parses the command line, sets up logging, and runs the server until
//! SIGINT or SIGTERM. Bad input (inventory, auth file, options) exits with code 2.

use anyhow::Context as _;
use arbiter_server::app::{self, AppError};
use arbiter_server::config::{Command, Config, LogFormat};
use arbiter_server::identity::auth_file;
use clap::Parser;
use std::io::BufRead;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let config = Config::parse();
    if config.hash_password {
        return match hash_password() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    if let Err(e) = init_logging(&config) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // Entering the runtime first lets the signal handlers be installed before anything listens.
    let shutdown = {
        let _entered = runtime.enter();
        shutdown_signal()
    };
    if let Some(command) = config.command.clone() {
        let done = runtime.block_on(async {
            match command {
                Command::Export { out } => app::transfer::export(&config, &out).await,
                Command::Import { input, force } => {
                    let surgery = app::transfer::Surgery::Import;
                    app::transfer::import(&config, &input, force, surgery).await
                }
                Command::Restore { input, force } => {
                    let surgery = app::transfer::Surgery::Restore;
                    app::transfer::import(&config, &input, force, surgery).await
                }
            }
        });
        return match done {
            Ok(summary) => {
                eprintln!("{summary}");
                ExitCode::SUCCESS
            }
            Err(e) => report(&e),
        };
    }
    match runtime.block_on(app::run(config, app::announce, shutdown)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

fn report(e: &AppError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(e.exit_code())
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log)
        .with_context(|| format!("--log {:?} is not a valid log filter", config.log))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => builder.with_ansi(false).init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

fn hash_password() -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!password.is_empty(), "the password on stdin is empty");
    let hash = auth_file::hash_password(password).map_err(anyhow::Error::msg)?;
    println!("{hash}");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled: a supervisor may signal as soon as it reads `listening on`, and a
/// signal with no handler yet would kill the process without a clean shutdown.
fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            let (mut interrupt, mut terminate) = match (interrupt, terminate) {
                (Ok(i), Ok(t)) => (i, t),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "cannot listen for SIGINT/SIGTERM");
                    return std::future::pending().await;
                }
            };
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
