//! The spawned server: the real `arbiter-server` binary on a free loopback port, over a
//! generated inventory and a fresh data directory, so that one command gives a full,
//! reproducible run.
//!
//! The port is learned from the server's first stdout line (`listening on ADDR`), which it
//! prints once it is bound and serving: no polling, no sleeps. The server is stopped with
//! SIGTERM (its graceful shutdown) and killed if the bench fails before that.
//!
//! With `--store etcd` the bench first starts its own one-member etcd (arbiter-etcd's test
//! harness: free loopback ports, a temporary data directory, real fsync unless
//! `--etcd-unsafe-no-fsync`), and the server keeps its state there under [`ETCD_PREFIX`].

use crate::cli::{Args, Store, loopback_endpoint};
use anyhow::{Context as _, anyhow, bail};
use arbiter_etcd::testing::{EtcdCluster, Setup};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use tempfile::TempDir;

/// The key prefix of the spawned server's state in the bench's etcd.
pub(crate) const ETCD_PREFIX: &str = "/arbiter-bench";

/// A running `arbiter-server` child process.
pub(crate) struct Server {
    child: Child,
    addr: SocketAddr,
    bin: PathBuf,
    /// Its command line, for a restart.
    args: Vec<std::ffi::OsString>,
    /// The inventory file and the data directory; removed when the server is dropped.
    dir: TempDir,
    /// Kept open: the server may write to stdout again and must not get EPIPE.
    _stdout: BufReader<ChildStdout>,
    stopped: bool,
}

impl Server {
    /// Writes the inventory, starts the server on `store` (on etcd: the member at
    /// `etcd_endpoint`) and waits for its `listening on` line. On etcd the server may not lead
    /// yet when this returns.
    pub(crate) fn start(
        args: &Args,
        store: Store,
        etcd_endpoint: Option<&str>,
    ) -> anyhow::Result<Server> {
        Server::start_with(args, store, etcd_endpoint, &[])
    }

    /// [`Server::start`] with more server options.
    pub(crate) fn start_with(
        args: &Args,
        store: Store,
        etcd_endpoint: Option<&str>,
        extra: &[&str],
    ) -> anyhow::Result<Server> {
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
        let mut server_args: Vec<std::ffi::OsString> = store_args(store, etcd_endpoint)?
            .into_iter()
            .map(Into::into)
            .collect();
        server_args.extend([
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            dir.path().join("data").into_os_string(),
            "--inventory".into(),
            inventory.into_os_string(),
            "--log".into(),
            "warn".into(),
        ]);
        server_args.extend(extra.iter().map(Into::into));
        let (child, addr, stdout) = launch(&bin, &server_args)?;
        Ok(Server {
            child,
            addr,
            bin,
            args: server_args,
            dir,
            _stdout: stdout,
            stopped: false,
        })
    }

    /// Kills the server with SIGKILL and starts it again with the same command line (the same
    /// store; a new ephemeral port); returns the time from the spawn to its `listening on`.
    pub(crate) fn kill_and_restart(&mut self) -> anyhow::Result<std::time::Duration> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let started = std::time::Instant::now();
        let (child, addr, stdout) = launch(&self.bin, &self.args)?;
        let took = started.elapsed();
        self.child = child;
        self.addr = addr;
        self._stdout = stdout;
        Ok(took)
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

/// Spawns `bin` with `args` and waits for its `listening on` line.
fn launch(
    bin: &Path,
    args: &[std::ffi::OsString],
) -> anyhow::Result<(Child, SocketAddr, BufReader<ChildStdout>)> {
    let mut child = Command::new(bin)
        .args(args)
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
    match read.ok().and_then(|_| listening_addr(&line)) {
        Some(addr) => Ok((child, addr, stdout)),
        None => {
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            bail!(
                "{} did not announce its address (first line {line:?}; {status})",
                bin.display()
            )
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

/// The server's store options.
fn store_args(store: Store, etcd_endpoint: Option<&str>) -> anyhow::Result<Vec<String>> {
    let mut v = vec!["--store".to_owned(), store.name().to_owned()];
    if store == Store::Etcd {
        let url = etcd_endpoint.context("no etcd endpoint for the etcd store")?;
        v.extend([
            "--etcd-endpoints".to_owned(),
            loopback_endpoint("the etcd endpoint", url)?,
            "--etcd-prefix".to_owned(),
            ETCD_PREFIX.to_owned(),
        ]);
    }
    Ok(v)
}

/// The bench's own etcd: one member on free loopback ports, stopped (and its directory
/// removed) at the end.
pub(crate) struct Etcd {
    cluster: EtcdCluster,
    endpoint: String,
    fsync: bool,
    version: Option<String>,
}

impl Etcd {
    /// Starts one member (`$ETCD_BIN`, or `etcd` on PATH) and waits until it is healthy.
    pub(crate) fn start(args: &Args) -> anyhow::Result<Etcd> {
        let setup = Setup {
            fsync: !args.etcd_unsafe_no_fsync,
            parent_dir: args.data_dir.clone(),
        };
        // The harness panics on failure (it is test code): its message becomes our error,
        // without the default hook's backtrace noise.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let started = std::panic::catch_unwind(|| EtcdCluster::start_with(1, &setup));
        std::panic::set_hook(hook);
        let cluster = started.map_err(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "no message".into());
            anyhow!("etcd did not start: {message}")
        })?;
        let endpoint = loopback_endpoint("the bench's etcd", &cluster.endpoint(0))?;
        Ok(Etcd {
            cluster,
            endpoint,
            fsync: setup.fsync,
            version: etcd_version(),
        })
    }

    /// Its client URL.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Its client address (for its /metrics).
    pub(crate) fn addr(&self) -> Option<SocketAddr> {
        self.endpoint.strip_prefix("http://")?.parse().ok()
    }

    /// Its process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.cluster.pid(0)
    }

    /// One line for the report.
    pub(crate) fn describe(&self) -> String {
        format!(
            "etcd {}: one member at {}, {}, data in {} (removed at exit)",
            self.version.as_deref().unwrap_or("(version unknown)"),
            self.endpoint,
            if self.fsync {
                "fsync on (as in production)"
            } else {
                "--unsafe-no-fsync"
            },
            self.cluster.data_dir(0).display()
        )
    }

    /// Stops the member (SIGTERM, then SIGKILL after a bound).
    pub(crate) fn stop(&mut self) {
        self.cluster.stop_all();
    }
}

/// "3.4.23" from `etcd --version` (the binary the harness runs).
fn etcd_version() -> Option<String> {
    let bin = std::env::var_os("ETCD_BIN").unwrap_or_else(|| "etcd".into());
    let out = Command::new(bin).arg("--version").output().ok()?;
    parse_etcd_version(&String::from_utf8_lossy(&out.stdout))
}

fn parse_etcd_version(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("etcd Version:"))
        .map(|v| v.trim().to_owned())
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
    fn the_store_options_name_a_loopback_etcd() {
        assert_eq!(
            store_args(Store::Redb, None).expect("redb"),
            ["--store", "redb"]
        );
        assert_eq!(
            store_args(Store::Etcd, Some("http://127.0.0.1:2379")).expect("etcd"),
            [
                "--store",
                "etcd",
                "--etcd-endpoints",
                "http://127.0.0.1:2379",
                "--etcd-prefix",
                ETCD_PREFIX
            ]
        );
        assert!(store_args(Store::Etcd, None).is_err());
        assert!(store_args(Store::Etcd, Some("http://10.0.0.1:2379")).is_err());
    }

    #[test]
    fn the_etcd_version_is_read() {
        let text = "etcd Version: 3.4.23\nGit SHA: Not provided\nGo Version: go1.19.8\n";
        assert_eq!(parse_etcd_version(text).as_deref(), Some("3.4.23"));
        assert_eq!(parse_etcd_version("garbage"), None);
    }

    #[test]
    fn the_generated_inventory_has_one_node_per_id() {
        let text = inventory(3);
        assert_eq!(text.matches("[[nodes]]").count(), 3);
        assert!(text.contains("id = 3\nhost = \"bench-3\""));
        assert!(text.contains("max_unavailable_ratio = 0"));
    }
}
