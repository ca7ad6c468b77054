//! The spawned server: the real `arbiter-server` binary on a free loopback port, over a
//! generated inventory and a fresh data directory, so that one command gives a full,
//! reproducible run.
//!
//! The port is learned from the server's first stdout line (`listening on ADDR`), which it
//! prints once it is bound and serving: no polling, no sleeps. The server is stopped with
//! SIGTERM (its graceful shutdown) and killed if the bench fails before that.

use crate::cli::Args;
use anyhow::{Context as _, bail};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use tempfile::TempDir;

/// A running `arbiter-server` child process.
pub(crate) struct Server {
    child: Child,
    addr: SocketAddr,
    bin: PathBuf,
    /// The inventory file and the data directory; removed when the server is dropped.
    dir: TempDir,
    /// Kept open: the server may write to stdout again and must not get EPIPE.
    _stdout: BufReader<ChildStdout>,
    stopped: bool,
}

impl Server {
    /// Writes the inventory, starts the server and waits for its `listening on` line.
    pub(crate) fn start(args: &Args) -> anyhow::Result<Server> {
        let bin = match &args.server_bin {
            Some(p) => p.clone(),
            None => default_server_bin()?,
        };
        let dir = match &args.data_dir {
            Some(parent) => tempfile::Builder::new()
                .prefix("arbiter-bench-")
                .tempdir_in(parent),
            None => tempfile::Builder::new().prefix("arbiter-bench-").tempdir(),
        }
        .context("cannot create a temporary directory")?;
        let inventory = match &args.inventory {
            Some(p) => p.clone(),
            None => {
                let p = dir.path().join("inventory.toml");
                std::fs::write(&p, inventory(args.clients.saturating_mul(2)))
                    .with_context(|| format!("cannot write {}", p.display()))?;
                p
            }
        };
        let mut child = Command::new(&bin)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--inventory")
            .arg(&inventory)
            .arg("--log")
            .arg("warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} (build it: cargo build --release -p arbiter-server)",
                    bin.display()
                )
            })?;
        let Some(stdout) = child.stdout.take() else {
            bail!("the server's stdout was not captured");
        };
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let read = stdout.read_line(&mut line);
        let addr = match read.ok().and_then(|_| listening_addr(&line)) {
            Some(addr) => addr,
            None => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                bail!(
                    "{} did not announce its address (first line {line:?}; {status})",
                    bin.display()
                );
            }
        };
        Ok(Server {
            child,
            addr,
            bin,
            dir,
            _stdout: stdout,
            stopped: false,
        })
    }

    /// The address the server listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's process id (for its CPU time).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The binary that was started.
    pub(crate) fn bin(&self) -> &Path {
        &self.bin
    }

    /// The directory holding the inventory and the store.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sends SIGTERM and waits for the server to exit; the inner error is a failing exit.
    pub(crate) fn stop(&mut self) -> anyhow::Result<Result<(), ExitStatus>> {
        terminate(&mut self.child).context("cannot signal the server")?;
        let status = self.child.wait().context("cannot wait for the server")?;
        self.stopped = true;
        Ok(if status.success() {
            Ok(())
        } else {
            Err(status)
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(unix)]
fn terminate(child: &mut Child) -> std::io::Result<()> {
    use rustix::process::{Pid, Signal, kill_process};
    kill_process(Pid::from_child(child), Signal::TERM).map_err(std::io::Error::from)
}

#[cfg(not(unix))]
fn terminate(child: &mut Child) -> std::io::Result<()> {
    child.kill()
}

/// `arbiter-server` in the directory of this very binary (`target/release` after a build).
fn default_server_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this binary's path")?;
    let dir = exe.parent().context("this binary has no directory")?;
    Ok(dir.join(format!("arbiter-server{}", std::env::consts::EXE_SUFFIX)))
}

/// The address in a `listening on ADDR` line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    line.trim().strip_prefix("listening on ")?.parse().ok()
}

/// `nodes` storage nodes, one per host, no storage groups and no limits: every lock on a free
/// node is granted at once, so a cycle costs exactly what the arbiter itself costs.
fn inventory(nodes: u32) -> String {
    let mut s = String::from(
        "# Generated by arbiter-bench: no groups, limits off.\n\
         [limits]\nmax_unavailable_nodes = 0\nmax_unavailable_ratio = 0\n",
    );
    for id in 1..=nodes {
        let _ = write!(
            s,
            "\n[[nodes]]\nid = {id}\nhost = \"bench-{id}\"\nport = 19001\n"
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_announced_address_is_read() {
        let a = listening_addr("listening on 127.0.0.1:40123\n");
        assert_eq!(a, Some(SocketAddr::from(([127, 0, 0, 1], 40123))));
        assert_eq!(listening_addr("error: inventory x.toml: ..."), None);
    }

    #[test]
    fn the_generated_inventory_has_one_node_per_id() {
        let text = inventory(3);
        assert_eq!(text.matches("[[nodes]]").count(), 3);
        assert!(text.contains("id = 3\nhost = \"bench-3\""));
        assert!(text.contains("max_unavailable_ratio = 0"));
    }
}
