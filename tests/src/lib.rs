//! End-to-end test support: the real `arbiter-server` binary on an ephemeral port, driven by
//! the generated gRPC clients.
//!
//! - [`ServerProcess`] starts the binary with `--listen 127.0.0.1:0` on a fresh data directory,
//!   learns its address from the first stdout line (`listening on ADDR`, the readiness signal),
//!   and can stop it gracefully ([`ServerProcess::terminate`]), crash it
//!   ([`ServerProcess::kill9`]) and start it again on the same data ([`ServerProcess::restart`],
//!   or [`ServerProcess::restart_on_same_port`] for clients that keep their address).
//!   [`ServerProcess::start_at`] starts it on a given address (see [`free_addr`]), for clients
//!   started before the server. The server's stderr goes to a file that is printed when a
//!   test panics.
//! - [`Client`] wraps every call the server serves; it asserts that the gRPC call itself
//!   succeeded and that the YDB operation is `ready`, and hands back the operation.
//! - [`unpack`], [`success`] and [`refusal`] read the operation's packed result and issues.
//! - [`lock`], [`task`] and friends build requests.
//!
//! The binaries (`arbiter-server`, and the `arbiter` CLI for the tests that drive it) are
//! `ARBITER_SERVER_BIN` and `ARBITER_CLI_BIN` when set. Otherwise the harness builds them, once
//! per test process, with the Cargo that runs the tests (`$CARGO build --bins -p ...`, the same
//! profile and target directory as the test itself), so `cargo test` on a fresh clone needs no
//! build step first, and a binary is never older than the sources. Cargo's lock on the target
//! directory serialises test processes that build at once; when everything is fresh the build
//! is a no-op. `ARBITER_E2E_NO_BUILD=1` skips the build and uses what is there.

pub mod certs;

use arbiter_proto::ydb::auth::v1::auth_service_client::AuthServiceClient;
use arbiter_proto::ydb::auth::{LoginRequest, LoginResponse};
use arbiter_proto::ydb::cms::v1::cms_service_client::CmsServiceClient;
use arbiter_proto::ydb::cms::{ListDatabasesRequest, ListDatabasesResponse};
use arbiter_proto::ydb::discovery::v1::discovery_service_client::DiscoveryServiceClient;
use arbiter_proto::ydb::discovery::{WhoAmIRequest, WhoAmIResponse};
use arbiter_proto::ydb::maintenance::v1::maintenance_service_client::MaintenanceServiceClient;
use arbiter_proto::ydb::maintenance::{
    Action, ActionGroup, ActionScope, ActionState, ActionUid, AvailabilityMode,
    CompleteActionRequest, CreateMaintenanceTaskRequest, DropMaintenanceTaskRequest,
    GetMaintenanceTaskRequest, ListClusterNodesRequest, ListMaintenanceTasksRequest, LockAction,
    MaintenanceTaskOptions, RefreshMaintenanceTaskRequest, action, action_scope,
};
use arbiter_proto::ydb::operations::Operation;
use arbiter_proto::ydb::status_ids::StatusCode;
use prost::bytes::{Buf, BufMut};
use prost::{Message, Name};
use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::Duration;
use tempfile::TempDir;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

pub use arbiter_proto as proto;

/// How long the server may take to print its address.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server may take to exit once told to (or once it failed to start).
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// YDB's issue severity for errors.
pub const SEVERITY_ERROR: u32 = 1;

/// The workspace root (the parent of this crate).
pub fn workspace_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The example inventory: 9 storage nodes, 3 dynamic nodes of `/Root/db1`, and a cluster
/// limit of one unavailable node.
pub fn example_inventory() -> PathBuf {
    workspace_dir().join("examples").join("cluster-12.toml")
}

/// An inventory of five nodes with no failure domains and at most two unavailable at once;
/// locks last 10 minutes unless asked otherwise.
pub const FIVE_NODES: &str = r#"
[defaults]
lock_duration = "10m"
retry_after = "1m"

[limits]
max_unavailable_nodes = 2
max_unavailable_ratio = 0

[[nodes]]
id = 1
host = "node-1.example"
port = 19001

[[nodes]]
id = 2
host = "node-2.example"
port = 19001

[[nodes]]
id = 3
host = "node-3.example"
port = 19001

[[nodes]]
id = 4
host = "node-4.example"
port = 19001

[[nodes]]
id = 5
host = "node-5.example"
port = 19001
"#;

/// The workspace binaries the end-to-end tests start: name, the variable that overrides it, and
/// its package.
const BINARIES: [(&str, &str, &str); 2] = [
    ("arbiter-server", "ARBITER_SERVER_BIN", "arbiter-server"),
    ("arbiter", "ARBITER_CLI_BIN", "arbiter-client"),
];

/// Where the `arbiter-server` binary is: `ARBITER_SERVER_BIN`, else built (see the crate
/// docs). Panics with what went wrong when it cannot be had.
pub fn server_binary() -> PathBuf {
    binary("arbiter-server", "ARBITER_SERVER_BIN")
}

/// Where the `arbiter` CLI is: `ARBITER_CLI_BIN`, else built (see the crate docs). Panics
/// with what went wrong when it cannot be had.
pub fn cli_binary() -> PathBuf {
    binary("arbiter", "ARBITER_CLI_BIN")
}

/// Runs the real `arbiter` CLI against `server`, as `token` (none: no token), with its
/// environment cleared of `ARBITER_TOKEN` and `ARBITER_OUTPUT`.
pub fn cli<S: AsRef<std::ffi::OsStr>>(
    server: &ServerProcess,
    token: Option<&str>,
    args: &[S],
) -> Output {
    let mut cmd = Command::new(cli_binary());
    cmd.env_remove("ARBITER_TOKEN")
        .env_remove("ARBITER_OUTPUT")
        .args(["--endpoint", &server.addr().to_string()]);
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    cmd.args(args).output().expect("run arbiter")
}

/// The `arbiter` CLI with every `ARBITER_*` variable of the test's environment removed.
pub fn cli_command() -> Command {
    let mut cmd = Command::new(cli_binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ARBITER_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// What a long-running child prints, collected as it comes: stdout by line, stderr whole.
pub type Collected = (
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    std::sync::Arc<std::sync::Mutex<String>>,
);

/// Spawns `cmd` (stdin closed, stdout and stderr piped) and collects its output on two threads.
pub fn spawn_collecting(cmd: &mut Command, what: &str) -> (Child, Collected) {
    use std::io::Read as _;
    use std::sync::{Arc, Mutex};
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(String::new()));
    let (out, lines) = (child.stdout.take().expect("piped"), stdout.clone());
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            lines
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(line);
        }
    });
    let (mut err, text) = (child.stderr.take().expect("piped"), stderr.clone());
    std::thread::spawn(move || {
        let mut all = String::new();
        let _ = err.read_to_string(&mut all);
        text.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_str(&all);
    });
    (child, (stdout, stderr))
}

/// How long a [`NodeProcess`] wait may take.
pub const NODE_PROCESS_BOUND: Duration = Duration::from_secs(20);

/// A long-running CLI process for one node (`arbiter agent`, `arbiter node heartbeat`), its output
/// collected as it comes. Killed when dropped; a test that panics prints what it wrote.
pub struct NodeProcess {
    /// The node it serves.
    pub id: u32,
    child: Option<Child>,
    stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl NodeProcess {
    /// Spawns `cmd` ([`spawn_collecting`]) for node `id`; `what` names it in a failure.
    pub fn spawn(cmd: &mut Command, what: &str, id: u32) -> NodeProcess {
        let (child, (stdout, stderr)) = spawn_collecting(cmd, what);
        NodeProcess {
            id,
            child: Some(child),
            stdout,
            stderr,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the process was started").id()
    }

    /// Its stdout lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.stdout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// How many stdout lines so far contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Asserts that it still runs.
    pub fn alive(&mut self) {
        assert!(
            self.running(),
            "node {}: the agent exited: {}",
            self.id,
            self.report()
        );
    }

    /// Waits until `n` stdout lines contain `needle` (bounded; it must stay up meanwhile).
    pub fn wait_lines(&mut self, needle: &str, n: usize) {
        let start = std::time::Instant::now();
        while self.count(needle) < n {
            assert!(
                self.running(),
                "node {}: the agent exited before printing {needle:?} {n}x: {}",
                self.id,
                self.report()
            );
            assert!(
                start.elapsed() < NODE_PROCESS_BOUND,
                "node {}: not {n} {needle:?} lines within {NODE_PROCESS_BOUND:?}: {}",
                self.id,
                self.report()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until some stdout line contains `needle`.
    pub fn wait_line(&mut self, needle: &str) {
        self.wait_lines(needle, 1);
    }

    /// Sends `sig`.
    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = i32::try_from(self.pid())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .expect("a valid pid");
        let _ = rustix::process::kill_process(pid, sig);
    }

    /// SIGKILL: nothing of its own shutdown runs.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("the process runs");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    /// Waits for the exit (bounded); the status and everything it wrote to stderr.
    pub fn exit(&mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("the process was started");
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if start.elapsed() > NODE_PROCESS_BOUND {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "node {}: the agent did not exit within {NODE_PROCESS_BOUND:?}: {}",
                    self.id,
                    self.report()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader threads finish once the pipes close.
        let start = std::time::Instant::now();
        while (std::sync::Arc::strong_count(&self.stderr) > 1
            || std::sync::Arc::strong_count(&self.stdout) > 1)
            && start.elapsed() < NODE_PROCESS_BOUND
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let stderr = self
            .stderr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        (status, stderr)
    }

    /// Everything it wrote so far, for a failure message.
    pub fn report(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.lines().join("\n"),
            self.stderr
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        )
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- agent for node {} ---\n{}", self.id, self.report());
        }
    }
}

/// The stdout of a CLI run that must have succeeded.
pub fn cli_ok(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The stderr of a CLI run that must have failed with exit status 1.
pub fn cli_failed(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The civil date (year, month, day) of a day number since 1970-01-01 (H. Hinnant's algorithm).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).expect("day");
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).expect("month");
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Whole seconds since the Unix epoch, now.
pub fn unix_now_secs() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    i64::try_from(secs).expect("seconds")
}

/// A workspace binary: the path in `var`, else the one [`build_binaries`] made.
fn binary(name: &str, var: &str) -> PathBuf {
    if let Some(bin) = std::env::var_os(var) {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "{var}={} is not a file", bin.display());
        return bin;
    }
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = match BUILT.get_or_init(build_binaries) {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    };
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing (built with `cargo build --workspace --bins`, or point {var} at the binary)",
        bin.display()
    );
    bin
}

/// Where this test's Cargo puts binaries: the profile directory above the test executable
/// (`<target-dir>[/<triple>]/<profile>/deps/<test>`), its profile and target directory.
#[derive(Debug)]
struct Layout {
    bin_dir: PathBuf,
    profile: String,
    target_dir: PathBuf,
    triple: Option<String>,
}

impl Layout {
    fn of_this_test() -> Result<Layout, String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot tell where this test runs from: {e}"))?;
        let bin_dir = exe
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| format!("{} is not in a Cargo target directory", exe.display()))?
            .to_path_buf();
        let dir_name = bin_dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{} is not a profile directory", bin_dir.display()))?;
        // The dev profile (and the test profile, which inherits it) builds into `debug`.
        let profile = match dir_name {
            "debug" => "dev".to_owned(),
            other => other.to_owned(),
        };
        let above = bin_dir
            .parent()
            .ok_or_else(|| format!("{} has no target directory", bin_dir.display()))?;
        // With --target TRIPLE, profiles live in `<target-dir>/<triple>/`; Cargo marks only the
        // target directory itself with CACHEDIR.TAG.
        let tagged = |dir: &Path| dir.join("CACHEDIR.TAG").is_file();
        let (target_dir, triple) = match above.parent() {
            Some(root) if !tagged(above) && tagged(root) => (
                root.to_path_buf(),
                above.file_name().map(|n| n.to_string_lossy().into_owned()),
            ),
            _ => (above.to_path_buf(), None),
        };
        Ok(Layout {
            bin_dir,
            profile,
            target_dir,
            triple,
        })
    }
}

/// Builds the binaries of [`BINARIES`] whose variable is not set, with `$CARGO` into this
/// test's profile directory; returns that directory. Cargo only rebuilds what changed, and its
/// lock on the target directory makes concurrent test processes wait for each other.
fn build_binaries() -> Result<PathBuf, String> {
    let layout = Layout::of_this_test()?;
    let wanted: Vec<(&str, &str)> = BINARIES
        .iter()
        .filter(|(_, var, _)| std::env::var_os(var).is_none())
        .map(|(name, _, package)| (*name, *package))
        .collect();
    if wanted.is_empty() || std::env::var_os("ARBITER_E2E_NO_BUILD").is_some() {
        return Ok(layout.bin_dir);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_dir())
        .args(["build", "--quiet", "--profile", &layout.profile])
        .arg("--target-dir")
        .arg(&layout.target_dir);
    if let Some(triple) = &layout.triple {
        cmd.args(["--target", triple]);
    }
    for (name, package) in &wanted {
        cmd.args(["-p", package, "--bin", name]);
    }
    // Cargo's diagnostics go straight to the terminal; its stdout (nothing, with --quiet) too.
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the binaries the end-to-end tests start failed ({status}): {cmd:?}; \
             fix the build, or point ARBITER_SERVER_BIN / ARBITER_CLI_BIN at binaries"
        ));
    }
    Ok(layout.bin_dir)
}

/// A command for the server binary with no `ARBITER_*` variable inherited from the caller
/// (every option also reads one).
pub fn server_command() -> Command {
    let mut cmd = Command::new(server_binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ARBITER_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs the server binary with `args` and `stdin` to its exit (bounded by [`EXIT_TIMEOUT`]).
pub fn run_to_exit(args: &[&std::ffi::OsStr], stdin: &str) -> Output {
    use std::io::Write as _;
    let mut child = server_command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn arbiter-server");
    if let Some(mut input) = child.stdin.take() {
        // The process may exit without reading: a broken pipe is fine then.
        let _ = input.write_all(stdin.as_bytes());
    }
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(EXIT_TIMEOUT) {
        Ok(out) => out.expect("wait for arbiter-server"),
        Err(_) => {
            signal(pid, rustix::process::Signal::KILL);
            panic!("arbiter-server {args:?} did not exit within {EXIT_TIMEOUT:?}");
        }
    }
}

/// Hashes a password with `arbiter-server --hash-password` (the PHC string it prints).
pub fn hash_password(password: &str) -> String {
    let out = run_to_exit(&["--hash-password".as_ref()], &format!("{password}\n"));
    assert!(
        out.status.success(),
        "--hash-password failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).expect("utf-8 hash");
    let hash = hash.trim().to_owned();
    assert!(hash.starts_with("$argon2"), "not a PHC string: {hash:?}");
    hash
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("a valid pid");
    // The process may have exited already; then there is nothing to signal.
    let _ = rustix::process::kill_process(pid, sig);
}

/// Waits for `child` to exit, at most [`EXIT_TIMEOUT`]; kills it and panics after that.
fn wait_bounded(mut child: Child, what: &str) -> ExitStatus {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    match rx.recv_timeout(EXIT_TIMEOUT) {
        Ok(status) => status.expect("wait for arbiter-server"),
        Err(_) => {
            signal(pid, rustix::process::Signal::KILL);
            panic!("arbiter-server did not exit within {EXIT_TIMEOUT:?} after {what}");
        }
    }
}

/// A temporary directory for the files a test hands the server (inventories, auth files).
#[derive(Debug)]
pub struct Files {
    dir: TempDir,
}

impl Files {
    /// A fresh, empty directory.
    pub fn new() -> Files {
        Files {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Writes `contents` to `name` in the directory and returns the path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write test file");
        path
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for Files {
    fn default() -> Files {
        Files::new()
    }
}

/// A running (or stopped) `arbiter-server` process with its own data directory.
#[derive(Debug)]
pub struct ServerProcess {
    child: Option<Child>,
    addr: SocketAddr,
    /// What `--listen` gets: port 0 (any free port) unless started at or restarted on a port.
    listen: SocketAddr,
    /// Holds `data/` and one `stderr-N.log` per start.
    dir: TempDir,
    inventory: PathBuf,
    extra: Vec<OsString>,
    logs: Vec<PathBuf>,
    /// The HTTP address it announced (with `--http-listen`).
    http_addr: Option<SocketAddr>,
}

impl ServerProcess {
    /// Starts the server on `inventory` with no extra options.
    pub fn start(inventory: impl AsRef<Path>) -> ServerProcess {
        ServerProcess::start_with::<&str>(inventory, &[])
    }

    /// Starts the server on `inventory` with `extra` options (e.g. `["--auth", path]`).
    pub fn start_with<S: AsRef<std::ffi::OsStr>>(
        inventory: impl AsRef<Path>,
        extra: &[S],
    ) -> ServerProcess {
        ServerProcess::start_at(inventory, extra, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Starts the server on `inventory` with `extra` options, listening on `listen` (e.g. an
    /// address from [`free_addr`] that clients were pointed at before the server started).
    pub fn start_at<S: AsRef<std::ffi::OsStr>>(
        inventory: impl AsRef<Path>,
        extra: &[S],
        listen: SocketAddr,
    ) -> ServerProcess {
        let mut server = ServerProcess {
            child: None,
            addr: listen,
            listen,
            dir: tempfile::tempdir().expect("temp dir"),
            inventory: inventory.as_ref().to_path_buf(),
            extra: extra.iter().map(|s| s.as_ref().to_os_string()).collect(),
            logs: Vec::new(),
            http_addr: None,
        };
        server.spawn();
        server
    }

    /// The data directory (the same across restarts).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The address of the running server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The HTTP address of the running server (started with `--http-listen`).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
            .expect("the server was started with --http-listen and announced its HTTP address")
    }

    /// A new connection to the server.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("a valid uri")
            .connect()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.addr))
    }

    /// A [`Client`] that sends `ticket` in `x-ydb-auth-ticket` (none: no ticket).
    pub async fn client(&self, ticket: Option<&str>) -> Client {
        Client::new(self.channel().await, ticket)
    }

    /// Everything the server wrote to stderr, over all its starts.
    pub fn stderr(&self) -> String {
        let mut all = String::new();
        for (i, log) in self.logs.iter().enumerate() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            all.push_str(&format!(
                "--- arbiter-server stderr, start #{} ---\n",
                i + 1
            ));
            all.push_str(&text);
        }
        all
    }

    /// Sends SIGTERM and waits for the exit (bounded).
    pub fn terminate(&mut self) -> ExitStatus {
        let child = self.child.take().expect("the server is running");
        signal(child.id(), rustix::process::Signal::TERM);
        wait_bounded(child, "SIGTERM")
    }

    /// Sends SIGTERM and waits at most `timeout` for the exit; `None` (after a SIGKILL) when
    /// the server did not exit in time.
    pub fn terminate_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take().expect("the server is running");
        signal(child.id(), rustix::process::Signal::TERM);
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(timeout) {
            Ok(status) => Some(status.expect("wait for arbiter-server")),
            Err(_) => {
                signal(pid, rustix::process::Signal::KILL);
                let _ = rx.recv_timeout(EXIT_TIMEOUT);
                None
            }
        }
    }

    /// Sends `sig` to the running server and returns at once.
    pub fn send_signal(&self, sig: rustix::process::Signal) {
        let child = self.child.as_ref().expect("the server is running");
        signal(child.id(), sig);
    }

    /// Kills the server with SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        child.kill().expect("SIGKILL");
        wait_bounded(child, "SIGKILL")
    }

    /// Starts the server again on the same data directory, inventory and options. Stop it
    /// first ([`ServerProcess::terminate`] or [`ServerProcess::kill9`]). The port changes
    /// (unless the server was started at a fixed one).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the server before restarting it");
        self.spawn();
    }

    /// As [`ServerProcess::restart`], on the address the server had, so that clients holding
    /// that address (node agents) reach the new process. The listener binds with
    /// SO_REUSEADDR, so connections of the old process in TIME_WAIT do not block the port.
    pub fn restart_on_same_port(&mut self) {
        self.listen = self.addr;
        self.restart();
    }

    fn spawn(&mut self) {
        let log_path = self
            .dir
            .path()
            .join(format!("stderr-{}.log", self.logs.len() + 1));
        let log = File::create(&log_path).expect("create the stderr log");
        self.logs.push(log_path);
        let mut child = server_command()
            .arg("--listen")
            .arg(self.listen.to_string())
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--inventory")
            .arg(&self.inventory)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn arbiter-server");
        let stdout = child.stdout.take().expect("piped stdout");
        // With `--http-listen ADDR`, the second line announces the HTTP address.
        let http = self
            .extra
            .iter()
            .position(|a| a == "--http-listen")
            .and_then(|i| self.extra.get(i + 1))
            .is_some_and(|v| v != "off");
        let (tx, rx) = mpsc::channel();
        let (http_tx, http_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let first = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send(first);
            if http {
                let mut second = String::new();
                let _ = reader.read_line(&mut second);
                let _ = http_tx.send(second);
            }
            // Keep the pipe open and drained for as long as the process lives.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let first = rx.recv_timeout(START_TIMEOUT);
        self.http_addr = if http {
            http_rx.recv_timeout(START_TIMEOUT).ok().and_then(|l| {
                l.trim_end()
                    .strip_prefix("http listening on ")
                    .and_then(|a| a.parse::<SocketAddr>().ok())
            })
        } else {
            None
        };
        let addr = match &first {
            Ok(Ok(line)) => line
                .trim_end()
                .strip_prefix("listening on ")
                .and_then(|a| a.parse::<SocketAddr>().ok()),
            _ => None,
        };
        self.child = Some(child);
        match addr {
            Some(addr) => self.addr = addr,
            None => {
                if let Some(mut child) = self.child.take() {
                    let _ = child.kill();
                    let _ = wait_bounded(child, "a failed start");
                }
                // Drop prints the server's stderr.
                panic!("arbiter-server did not announce `listening on ADDR` (got {first:?})");
            }
        }
    }
}

/// A loopback address with a port that was free a moment ago (the OS picked it; the listener is
/// closed again), for a server that has to start after its clients.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.stderr());
        }
    }
}

/// Every call the server serves, with an optional ticket. Each method asserts that the gRPC
/// call succeeded and that the operation is ready, and returns the operation.
#[derive(Debug, Clone)]
pub struct Client {
    channel: Channel,
    ticket: Option<(&'static str, String)>,
}

/// Every live process with `var=value` in its environment, but `except`: its pid and command
/// line (Linux `/proc`). Zombies have no environment left, so they do not count. Tests mark the
/// processes they start this way to find what those left running.
pub fn marked_processes(var: &str, value: &str, except: Option<u32>) -> Vec<(u32, String)> {
    let want = format!("{var}={value}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if Some(pid) == except {
            continue;
        }
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if !env.split(|&b| b == 0).any(|v| v == want.as_bytes()) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline)
            .split('\0')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        found.push((pid, cmdline));
    }
    found
}

/// Every node as `arbiter.v1.ListNodes` reports it, ascending by id.
pub async fn list_nodes(c: &Client) -> Vec<arbiter_proto::arbiter::v1::NodeStatus> {
    use arbiter_proto::arbiter::v1::ListNodesRequest;
    use arbiter_proto::arbiter::v1::arbiter_service_client::ArbiterServiceClient;
    ArbiterServiceClient::new(c.channel())
        .list_nodes(c.request(ListNodesRequest {}))
        .await
        .expect("ListNodes")
        .into_inner()
        .nodes
}

/// One node as ListNodes reports it; panics when it is not listed.
pub async fn node_status(c: &Client, id: u32) -> arbiter_proto::arbiter::v1::NodeStatus {
    list_nodes(c)
        .await
        .into_iter()
        .find(|n| n.node_id == id)
        .unwrap_or_else(|| panic!("node {id} is listed"))
}

/// A node's condition as the enum (UNSPECIFIED for a value this build does not know).
pub fn node_condition(
    n: &arbiter_proto::arbiter::v1::NodeStatus,
) -> arbiter_proto::arbiter::v1::NodeCondition {
    arbiter_proto::arbiter::v1::NodeCondition::try_from(n.condition)
        .unwrap_or(arbiter_proto::arbiter::v1::NodeCondition::Unspecified)
}

impl Client {
    /// A client on `channel` that sends `ticket` in `x-ydb-auth-ticket`.
    pub fn new(channel: Channel, ticket: Option<&str>) -> Client {
        Client {
            channel,
            ticket: ticket.map(|t| ("x-ydb-auth-ticket", t.to_owned())),
        }
    }

    /// The same connection, sending `authorization: Bearer TOKEN` instead.
    pub fn with_bearer(&self, token: &str) -> Client {
        Client {
            channel: self.channel.clone(),
            ticket: Some(("authorization", format!("Bearer {token}"))),
        }
    }

    /// The same connection with another ticket in `x-ydb-auth-ticket` (none: no ticket).
    pub fn with_ticket(&self, ticket: Option<&str>) -> Client {
        Client::new(self.channel.clone(), ticket)
    }

    /// The connection.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// `msg` as a request carrying this client's ticket.
    pub fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        if let Some((header, value)) = &self.ticket {
            req.metadata_mut()
                .insert(*header, value.parse().expect("an ASCII ticket"));
        }
        req
    }

    /// The generated maintenance client on this connection.
    pub fn maintenance(&self) -> MaintenanceServiceClient<Channel> {
        MaintenanceServiceClient::new(self.channel.clone())
    }

    /// ListClusterNodes.
    pub async fn list_nodes(&self) -> Operation {
        let r = self
            .maintenance()
            .list_cluster_nodes(self.request(ListClusterNodesRequest::default()))
            .await;
        ready(r.map(|r| r.into_inner().operation), "ListClusterNodes")
    }

    /// CreateMaintenanceTask.
    pub async fn create(&self, req: CreateMaintenanceTaskRequest) -> Operation {
        let r = self
            .maintenance()
            .create_maintenance_task(self.request(req))
            .await;
        ready(r.map(|r| r.into_inner().operation), "CreateMaintenanceTask")
    }

    /// RefreshMaintenanceTask.
    pub async fn refresh(&self, uid: &str) -> Operation {
        let req = RefreshMaintenanceTaskRequest {
            task_uid: uid.to_owned(),
            ..Default::default()
        };
        let r = self
            .maintenance()
            .refresh_maintenance_task(self.request(req))
            .await;
        ready(
            r.map(|r| r.into_inner().operation),
            "RefreshMaintenanceTask",
        )
    }

    /// GetMaintenanceTask.
    pub async fn get(&self, uid: &str) -> Operation {
        let req = GetMaintenanceTaskRequest {
            task_uid: uid.to_owned(),
            ..Default::default()
        };
        let r = self
            .maintenance()
            .get_maintenance_task(self.request(req))
            .await;
        ready(r.map(|r| r.into_inner().operation), "GetMaintenanceTask")
    }

    /// ListMaintenanceTasks, all tasks or one user's.
    pub async fn list(&self, user: Option<&str>) -> Operation {
        let req = ListMaintenanceTasksRequest {
            user: user.map(str::to_owned),
            ..Default::default()
        };
        let r = self
            .maintenance()
            .list_maintenance_tasks(self.request(req))
            .await;
        ready(r.map(|r| r.into_inner().operation), "ListMaintenanceTasks")
    }

    /// DropMaintenanceTask.
    pub async fn drop_task(&self, uid: &str) -> Operation {
        let req = DropMaintenanceTaskRequest {
            task_uid: uid.to_owned(),
            ..Default::default()
        };
        let r = self
            .maintenance()
            .drop_maintenance_task(self.request(req))
            .await;
        ready(r.map(|r| r.into_inner().operation), "DropMaintenanceTask")
    }

    /// CompleteAction.
    pub async fn complete(&self, uids: Vec<ActionUid>) -> Operation {
        let req = CompleteActionRequest {
            action_uids: uids,
            ..Default::default()
        };
        let r = self.maintenance().complete_action(self.request(req)).await;
        ready(r.map(|r| r.into_inner().operation), "CompleteAction")
    }

    /// Ydb.Discovery WhoAmI.
    pub async fn who_am_i(&self) -> Operation {
        let r = DiscoveryServiceClient::new(self.channel.clone())
            .who_am_i(self.request(WhoAmIRequest::default()))
            .await;
        ready(
            r.map(|r: tonic::Response<WhoAmIResponse>| r.into_inner().operation),
            "WhoAmI",
        )
    }

    /// Ydb.Cms ListDatabases.
    pub async fn list_databases(&self) -> Operation {
        let r = CmsServiceClient::new(self.channel.clone())
            .list_databases(self.request(ListDatabasesRequest::default()))
            .await;
        ready(
            r.map(|r: tonic::Response<ListDatabasesResponse>| r.into_inner().operation),
            "ListDatabases",
        )
    }

    /// Ydb.Auth Login.
    pub async fn login(&self, user: &str, password: &str) -> Operation {
        let req = LoginRequest {
            user: user.to_owned(),
            password: password.to_owned(),
            ..Default::default()
        };
        let r = AuthServiceClient::new(self.channel.clone())
            .login(self.request(req))
            .await;
        ready(
            r.map(|r: tonic::Response<LoginResponse>| r.into_inner().operation),
            "Login",
        )
    }
}

fn ready(r: Result<Option<Operation>, tonic::Status>, call: &str) -> Operation {
    let op = r
        .unwrap_or_else(|s| panic!("{call}: gRPC status {s:?}, want OK"))
        .unwrap_or_else(|| panic!("{call}: the response has no operation"));
    assert!(op.ready, "{call}: operation.ready must be true: {op:?}");
    assert!(
        op.id.is_empty(),
        "{call}: operation.id must be empty: {op:?}"
    );
    op
}

/// The operation's status code.
pub fn status(op: &Operation) -> StatusCode {
    StatusCode::try_from(op.status)
        .unwrap_or_else(|_| panic!("unknown status code {} in {op:?}", op.status))
}

/// The full type URL of `M`, e.g. `type.googleapis.com/Ydb.Maintenance.MaintenanceTaskResult`.
pub fn type_url<M: Name>() -> String {
    format!("type.googleapis.com/{}", M::full_name())
}

/// The packed result as raw bytes, after checking that its type URL is exactly `M`'s.
pub fn result_bytes<M: Name>(op: &Operation) -> Vec<u8> {
    let any = op
        .result
        .as_ref()
        .unwrap_or_else(|| panic!("no packed result in {op:?}"));
    assert_eq!(any.type_url, type_url::<M>(), "type URL of the result");
    any.value.clone()
}

/// The packed result decoded as `M`, after checking its type URL.
pub fn unpack<M: Message + Name + Default>(op: &Operation) -> M {
    M::decode(result_bytes::<M>(op).as_slice()).expect("the result decodes")
}

/// Asserts SUCCESS without issues and returns the result decoded as `M`.
pub fn success<M: Message + Name + Default>(op: &Operation) -> M {
    assert_eq!(status(op), StatusCode::Success, "{op:?}");
    assert!(op.issues.is_empty(), "a success carries no issues: {op:?}");
    unpack(op)
}

/// Asserts a refusal with `code` and exactly one error issue; returns the issue's message.
pub fn refusal(op: &Operation, code: StatusCode) -> String {
    assert_eq!(status(op), code, "{op:?}");
    assert_eq!(op.issues.len(), 1, "exactly one issue: {op:?}");
    assert_eq!(op.issues[0].severity, SEVERITY_ERROR, "severity: {op:?}");
    op.issues[0].message.clone()
}

/// Asserts a refusal with `code`, one issue, and an EMPTY packed result of type `M`; returns
/// the issue's message.
pub fn refusal_of<M: Name>(op: &Operation, code: StatusCode) -> String {
    let message = refusal(op, code);
    assert!(
        result_bytes::<M>(op).is_empty(),
        "a refusal packs an empty result: {op:?}"
    );
    message
}

/// A lock on node `node`, for `seconds` (none: the default duration).
pub fn lock(node: u32, seconds: Option<i64>) -> Action {
    Action {
        action: Some(action::Action::LockAction(LockAction {
            scope: Some(ActionScope {
                scope: Some(action_scope::Scope::NodeId(node)),
            }),
            duration: seconds.map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
            drain: false,
        })),
    }
}

/// A CreateMaintenanceTask request with `groups` of actions.
pub fn task(
    uid: &str,
    mode: AvailabilityMode,
    groups: Vec<Vec<Action>>,
) -> CreateMaintenanceTaskRequest {
    CreateMaintenanceTaskRequest {
        operation_params: None,
        task_options: Some(MaintenanceTaskOptions {
            task_uid: uid.to_owned(),
            description: format!("e2e task {uid}"),
            availability_mode: mode as i32,
            dry_run: false,
            priority: 0,
            override_holds: false,
        }),
        action_groups: groups
            .into_iter()
            .map(|actions| ActionGroup { actions })
            .collect(),
    }
}

/// A strong-mode task with one group per node, each a lock of the default duration.
pub fn node_locks(uid: &str, nodes: &[u32]) -> CreateMaintenanceTaskRequest {
    task(
        uid,
        AvailabilityMode::Strong,
        nodes.iter().map(|&n| vec![lock(n, None)]).collect(),
    )
}

/// Every action state of a result, in group order.
pub fn states<'a>(
    groups: impl IntoIterator<Item = &'a arbiter_proto::ydb::maintenance::ActionGroupStates>,
) -> Vec<&'a ActionState> {
    groups
        .into_iter()
        .flat_map(|g| g.action_states.iter())
        .collect()
}

/// The node an action state locks (its echoed lock action's node id).
pub fn node_of(state: &ActionState) -> u32 {
    match state.action.as_ref().and_then(|a| a.action.as_ref()) {
        Some(action::Action::LockAction(LockAction {
            scope:
                Some(ActionScope {
                    scope: Some(action_scope::Scope::NodeId(n)),
                }),
            ..
        })) => *n,
        other => panic!("not a node lock: {other:?}"),
    }
}

/// The action uid of a state (every non-dry-run action has one).
pub fn uid_of(state: &ActionState) -> ActionUid {
    state
        .action_uid
        .clone()
        .unwrap_or_else(|| panic!("an action without a uid: {state:?}"))
}

/// The number N of an action id `a-N`.
pub fn action_number(state: &ActionState) -> u64 {
    let id = uid_of(state).action_id;
    id.strip_prefix("a-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("action id {id:?} is not a-N"))
}

/// Whether an action state is PERFORMED.
pub fn is_performed(state: &ActionState) -> bool {
    state.status == arbiter_proto::ydb::maintenance::action_state::ActionStatus::Performed as i32
}

/// Whether an action state is PENDING.
pub fn is_pending(state: &ActionState) -> bool {
    state.status == arbiter_proto::ydb::maintenance::action_state::ActionStatus::Pending as i32
}

/// A codec that sends and receives message bodies as raw bytes: for requests that are not
/// valid protobuf.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

/// [`RawCodec`]'s encoder and decoder.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawBytes;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawBytes;
    type Decoder = RawBytes;

    fn encoder(&mut self) -> RawBytes {
        RawBytes
    }

    fn decoder(&mut self) -> RawBytes {
        RawBytes
    }
}

impl Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

/// Sends `body` as the message of a unary call to `path` (e.g.
/// `/Ydb.Maintenance.V1.MaintenanceService/CreateMaintenanceTask`); the reply's raw bytes.
pub async fn raw_unary(
    channel: Channel,
    path: &'static str,
    body: Vec<u8>,
) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    grpc.unary(tonic::Request::new(body), path, RawCodec)
        .await
        .map(tonic::Response::into_inner)
}
