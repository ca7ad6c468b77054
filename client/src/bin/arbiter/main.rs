//! `arbiter`: the operator's command-line tool for an Arbiter server.
//!
//! Nodes (`nodes`, `node up|down|heartbeat`), tasks (`tasks`, `task
//! show|create|refresh|complete|drop|watch`), `inventory reload`, `whoami` and
//! `rolling-restart`, `freeze on|off|status`, `read-only on|off|status`. Tables for people by default; `--output json` prints one JSON document
//! (a stream of one-line objects for `task watch` and the heartbeat agent) for scripts.
//!
//! Exit codes: 0 done, 1 the command failed (`error: ...` on stderr, with the server's own text
//! when it refused), 2 a usage error (clap's). The heartbeat agent (`node heartbeat --every`)
//! runs until SIGINT or SIGTERM (exit 0) and fails (exit 1) only on a refusal no retry cures.
//! `fence check` exits 0 only when the token is the live lock (`fence`), 1 otherwise.
//!
//! Modules: `cli` the flags; `output` tables, JSON and time formats; `task_view` how a task
//! prints; one module per group of commands (`nodes`, `tasks`, `task`, `create`, `complete`,
//! `admin`); `error` the error line.

mod admin;
mod agent;
mod agent_work;
mod audit;
mod cli;
mod complete;
mod create;
mod error;
mod fence;
mod freeze;
mod hook;
mod nodes;
mod output;
mod task;
mod task_view;
mod tasks;

use arbiter_client::Client;
use clap::{CommandFactory, Parser};
use cli::{Cli, Command, Format, InventoryCommand, NodeCommand};
use error::Failure;
use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;

/// What every command needs: the connection (with the caller's ticket) and the output format.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// The connected client.
    pub(crate) client: Client,
    /// Tables or JSON.
    pub(crate) format: Format,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let password = match password(&cli) {
        Ok(p) => p,
        Err(message) => Cli::command()
            .error(clap::error::ErrorKind::MissingRequiredArgument, message)
            .exit(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli, password)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// The password for `--user`: from `--password-file` (`-`: standard input), else from
/// `ARBITER_PASSWORD`. An `Err` is a usage error.
fn password(cli: &Cli) -> Result<Option<String>, String> {
    if cli.user.is_none() {
        return Ok(None);
    }
    let Some(path) = &cli.password_file else {
        return match std::env::var("ARBITER_PASSWORD") {
            Ok(p) => Ok(Some(p)),
            Err(_) => Err("--user needs --password-file FILE or ARBITER_PASSWORD".into()),
        };
    };
    let mut text = String::new();
    let read = if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    read.map_err(|e| format!("cannot read the password file {}: {e}", path.display()))?;
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    Ok(Some(text.to_owned()))
}

/// Connects (logging in first with `--user`) and runs the command.
async fn run(cli: Cli, password: Option<String>) -> Result<(), Failure> {
    // The node agent outlives the server: it connects (and logs in) inside its retry loop.
    if let Command::Node(NodeCommand::Heartbeat {
        id,
        version,
        every: Some(every),
    }) = &cli.command
    {
        let client = Client::connect_lazy_tls(&cli.endpoint, cli.token.clone(), &cli.tls())?;
        let login = cli.user.clone().zip(password);
        return nodes::agent(client, cli.output, *id, version.clone(), *every, login).await;
    }
    if let Command::Agent(args) = &cli.command {
        let client = Client::connect_lazy_tls(&cli.endpoint, cli.token.clone(), &cli.tls())?;
        let login = cli.user.clone().zip(password);
        return agent::run(client, cli.output, args, login).await;
    }
    let mut client = Client::connect_tls(&cli.endpoint, cli.token.clone(), &cli.tls()).await?;
    if let (Some(user), Some(password)) = (&cli.user, &password) {
        let token = client
            .login(user, password)
            .await
            .map_err(|e| Failure(format!("login as {user} failed: {}", error::describe(&e))))?;
        client = client.with_ticket(Some(token));
    }
    let ctx = Ctx {
        client,
        format: cli.output,
    };
    match cli.command {
        Command::Nodes => nodes::list(&ctx).await,
        Command::Node(c) => nodes::run(&ctx, &c).await,
        Command::Tasks(args) => tasks::run(&ctx, &args).await,
        Command::Task(c) => task::run(&ctx, &c).await,
        Command::Inventory(InventoryCommand::Reload) => admin::reload_inventory(&ctx).await,
        Command::Whoami => admin::whoami(&ctx).await,
        Command::Instances => admin::instances(&ctx).await,
        Command::Fence(c) => fence::run(&ctx, &c).await,
        Command::Freeze(c) => freeze::freeze(&ctx, &c).await,
        Command::ReadOnly(c) => freeze::read_only(&ctx, &c).await,
        Command::Backup { out } => admin::backup(&ctx, &out).await,
        Command::Audit(args) => audit::run(&ctx, &args).await,
        // Handled above: the agent connects inside its own retry loop.
        Command::Agent(_) => Err(Failure("the agent is started before connecting".into())),
        Command::RollingRestart(mut args) => {
            args.json = ctx.format == Format::Json;
            arbiter_client::rolling::run(ctx.client, args)
                .await
                .map_err(|e| Failure(format!("rolling restart stopped: {e}")))
        }
    }
}
