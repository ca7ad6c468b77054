//! A harness that runs real `etcd` members on loopback, for tests (this crate's, the
//! server's and the end-to-end suite's).
//!
//! ```no_run
//! # async fn demo() {
//! use arbiter_etcd::testing::EtcdCluster;
//! let mut cluster = EtcdCluster::start(3);
//! let etcd = cluster.client();
//! etcd.put("k", "v", None).await.expect("put");
//! cluster.kill9(0);
//! # }
//! ```
//!
//! The binary is `$ETCD_BIN`, or `etcd` on `PATH` (Debian: `apt-get install etcd-server`).
//! Each member gets free loopback ports (found by binding port 0 and releasing it; the whole
//! start is retried once should another process take one meanwhile), its own data directory
//! under one temporary directory, `--unsafe-no-fsync` (unless [`Setup::fsync`]), and a log file
//! (`<dir>/<name>.log`, quoted in panic messages). Every wait is bounded and polls, and every
//! member is killed when the cluster is dropped.
//!
//! The methods block while they wait (for a member to answer its health check or to exit).
//! Inside a multi-threaded Tokio runtime they use [`tokio::task::block_in_place`], so other
//! tasks (a watcher, say) keep running; use `#[tokio::test(flavor = "multi_thread")]`.
//! All methods panic on failure: this is test code.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Etcd, EtcdOptions};

/// How long a member may take to answer its health check after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a member may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The polling interval of every wait.
const POLL: Duration = Duration::from_millis(50);

/// A running etcd cluster of 1 or more members on loopback.
#[derive(Debug)]
pub struct EtcdCluster {
    root: PathBuf,
    binary: PathBuf,
    token: String,
    members: Vec<Member>,
    fsync: bool,
}

/// How [`EtcdCluster::start_with`] runs its members; [`Default`] is what
/// [`EtcdCluster::start`] does.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// fsync etcd's write-ahead log and backend as in production. Default false:
    /// `--unsafe-no-fsync`, which tests want (a benchmark of durable writes does not).
    pub fsync: bool,
    /// The directory the cluster's temporary directory is made in (e.g. `/dev/shm`).
    /// Default: the system temp directory.
    pub parent_dir: Option<PathBuf>,
}

#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Member {
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }
}

impl EtcdCluster {
    /// Starts a cluster of `size` members (1 or 3, typically) and waits until every member
    /// answers its health check (it has a leader and serves reads).
    ///
    /// # Panics
    /// If the etcd binary is missing (the message says how to install it) or the cluster
    /// does not come up, twice.
    pub fn start(size: usize) -> EtcdCluster {
        EtcdCluster::start_with(size, &Setup::default())
    }

    /// [`EtcdCluster::start`] with `setup`.
    ///
    /// # Panics
    /// As [`EtcdCluster::start`].
    pub fn start_with(size: usize, setup: &Setup) -> EtcdCluster {
        assert!(size > 0, "an etcd cluster needs at least one member");
        let binary = etcd_binary();
        blocking(|| {
            match EtcdCluster::try_start(&binary, size, setup) {
                Ok(cluster) => cluster,
                // Most likely a port was taken between choosing and binding it: once more,
                // with new ports.
                Err(first) => match EtcdCluster::try_start(&binary, size, setup) {
                    Ok(cluster) => cluster,
                    Err(second) => panic!(
                        "etcd cluster of {size} did not start:\nfirst try: {first}\nsecond try: {second}"
                    ),
                },
            }
        })
    }

    fn try_start(binary: &Path, size: usize, setup: &Setup) -> Result<EtcdCluster, String> {
        let tag = format!("{:016x}", getrandom::u64().unwrap_or(0));
        let parent = setup.parent_dir.clone().unwrap_or_else(std::env::temp_dir);
        let root = parent.join(format!("arbiter-etcd-{}-{tag}", std::process::id()));
        fs::create_dir_all(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
        let ports = free_ports(2 * size)?;
        let members = (0..size)
            .map(|i| {
                let name = format!("m{i}");
                Member {
                    data_dir: root.join(&name),
                    log: root.join(format!("{name}.log")),
                    name,
                    client_port: ports[2 * i],
                    peer_port: ports[2 * i + 1],
                    child: None,
                }
            })
            .collect();
        let mut cluster = EtcdCluster {
            root,
            binary: binary.to_owned(),
            token: format!("arbiter-test-{tag}"),
            members,
            fsync: setup.fsync,
        };
        // On error, dropping `cluster` kills what started and removes the directory.
        for i in 0..size {
            cluster.spawn(i)?;
        }
        for i in 0..size {
            cluster.wait_ready(i)?;
        }
        Ok(cluster)
    }

    /// A one-member cluster.
    pub fn single() -> EtcdCluster {
        EtcdCluster::start(1)
    }

    /// A three-member cluster.
    pub fn three() -> EtcdCluster {
        EtcdCluster::start(3)
    }

    /// The number of members.
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// Every member's client URL (`http://127.0.0.1:PORT`), in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::endpoint).collect()
    }

    /// Member `member`'s client URL.
    pub fn endpoint(&self, member: usize) -> String {
        self.members[member].endpoint()
    }

    /// The member whose client URL is `endpoint`.
    pub fn member_of(&self, endpoint: &str) -> Option<usize> {
        let endpoint = endpoint.trim_end_matches('/');
        self.members.iter().position(|m| m.endpoint() == endpoint)
    }

    /// Member `member`'s data directory.
    pub fn data_dir(&self, member: usize) -> &Path {
        &self.members[member].data_dir
    }

    /// A client of every member with short deadlines for tests (retry deadline 5 s,
    /// attempts 2 s). Call inside a Tokio runtime.
    pub fn client(&self) -> Etcd {
        self.client_with(EtcdOptions {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(2),
            retry_deadline: Duration::from_secs(5),
            ..EtcdOptions::default()
        })
    }

    /// A client of every member with `options`. Call inside a Tokio runtime.
    pub fn client_with(&self, options: EtcdOptions) -> Etcd {
        Etcd::connect(&self.endpoints(), options).expect("the harness's endpoints are valid")
    }

    /// Member `member`'s process id, while it runs.
    pub fn pid(&self, member: usize) -> Option<u32> {
        self.members[member].child.as_ref().map(Child::id)
    }

    /// Whether member `member`'s process is running (possibly stopped by SIGSTOP).
    pub fn is_running(&mut self, member: usize) -> bool {
        let m = &mut self.members[member];
        match m.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills member `member` with SIGKILL and waits for it to exit.
    pub fn kill9(&mut self, member: usize) {
        let m = &mut self.members[member];
        if let Some(mut child) = m.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops member `member`'s process with SIGSTOP (it keeps its sockets but answers
    /// nothing).
    pub fn sigstop(&self, member: usize) {
        self.signal(member, "-STOP");
    }

    /// Resumes member `member` after [`EtcdCluster::sigstop`].
    pub fn sigcont(&self, member: usize) {
        self.signal(member, "-CONT");
    }

    fn signal(&self, member: usize, signal: &str) {
        let m = &self.members[member];
        let Some(child) = m.child.as_ref() else {
            panic!("etcd member {} is not running", m.name);
        };
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .unwrap_or_else(|e| panic!("run kill {signal}: {e}"));
        assert!(
            status.success(),
            "kill {signal} {} failed: {status}",
            child.id()
        );
    }

    /// Kills member `member` (if it runs), starts it again on the same ports and data
    /// directory, and waits until it answers its health check (which needs a quorum).
    pub fn restart(&mut self, member: usize) {
        self.kill9(member);
        self.start_member(member);
    }

    /// Starts member `member` (which must not be running) and waits until it answers.
    pub fn start_member(&mut self, member: usize) {
        assert!(
            self.members[member].child.is_none(),
            "etcd member {member} is already running"
        );
        blocking(|| {
            self.spawn(member).unwrap_or_else(|e| panic!("{e}"));
            self.wait_ready(member).unwrap_or_else(|e| panic!("{e}"));
        });
    }

    /// Stops every member: SIGCONT (in case it was stopped), SIGTERM, then SIGKILL if it has
    /// not exited within a bound.
    pub fn stop_all(&mut self) {
        blocking(|| {
            for i in 0..self.members.len() {
                if self.members[i].child.is_some() {
                    self.signal(i, "-CONT");
                    self.signal(i, "-TERM");
                }
            }
            let deadline = Instant::now() + STOP_TIMEOUT;
            for m in &mut self.members {
                if let Some(mut child) = m.child.take() {
                    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                        std::thread::sleep(POLL);
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        });
    }

    /// Starts every member that is not running and waits until all answer.
    pub fn start_all(&mut self) {
        blocking(|| {
            let stopped: Vec<usize> = (0..self.members.len())
                .filter(|&i| self.members[i].child.is_none())
                .collect();
            for &i in &stopped {
                self.spawn(i).unwrap_or_else(|e| panic!("{e}"));
            }
            for i in 0..self.members.len() {
                self.wait_ready(i).unwrap_or_else(|e| panic!("{e}"));
            }
        });
    }

    /// The last lines of member `member`'s log.
    pub fn log_tail(&self, member: usize) -> String {
        tail(&self.members[member].log, 30)
    }

    /// Starts member `index`'s process.
    fn spawn(&mut self, index: usize) -> Result<(), String> {
        let initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let m = &mut self.members[index];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .map_err(|e| format!("open {}: {e}", m.log.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("open {}: {e}", m.log.display()))?;
        let client = m.endpoint();
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let mut command = Command::new(&self.binary);
        // etcd reads every ETCD_* variable as a flag: keep the caller's out.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ETCD") {
                command.env_remove(name);
            }
        }
        command
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(&initial_cluster)
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg(&self.token);
        if !self.fsync {
            command.arg("--unsafe-no-fsync");
        }
        command
            .arg("--heartbeat-interval")
            .arg("100")
            .arg("--election-timeout")
            .arg("1000")
            .arg("--logger")
            .arg("zap")
            .arg("--log-outputs")
            .arg("stderr")
            .arg("--log-level")
            .arg("warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = command
            .spawn()
            .map_err(|e| format!("start {}: {e}", self.binary.display()))?;
        m.child = Some(child);
        Ok(())
    }

    /// Polls member `index`'s `/health` until it says true, its process exits, or the bound.
    fn wait_ready(&mut self, index: usize) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let port = self.members[index].client_port;
        loop {
            let m = &mut self.members[index];
            let Some(child) = m.child.as_mut() else {
                return Err(format!("etcd member {} is not running", m.name));
            };
            if let Ok(Some(status)) = child.try_wait() {
                m.child = None;
                return Err(format!(
                    "etcd member {} exited ({status}) during start; log {}:\n{}",
                    m.name,
                    m.log.display(),
                    tail(&m.log, 30)
                ));
            }
            if healthy(port) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "etcd member {} not healthy within {READY_TIMEOUT:?}; log {}:\n{}",
                    m.name,
                    m.log.display(),
                    tail(&m.log, 30)
                ));
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut child) = m.child.take() {
                // SIGKILL works on a stopped process too.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Runs blocking harness code without stalling other tasks of a multi-threaded runtime.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// `$ETCD_BIN` or `etcd` on `PATH`, checked by running `--version`.
fn etcd_binary() -> PathBuf {
    let binary = std::env::var_os("ETCD_BIN").map_or_else(|| PathBuf::from("etcd"), PathBuf::from);
    match Command::new(&binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => binary,
        Ok(status) => panic!(
            "`{} --version` failed ({status}): is it etcd?",
            binary.display()
        ),
        Err(e) => panic!(
            "cannot run etcd ({}: {e}): these tests need a real etcd server; install it \
             (Debian/Ubuntu: `apt-get install etcd-server`) or set ETCD_BIN to its path",
            binary.display()
        ),
    }
}

/// `count` distinct free loopback ports: bound to port 0, then released.
fn free_ports(count: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bind a loopback port: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("local address: {e}"))
}

/// Whether `GET /health` on the loopback port answers `"health":"true"` (bounded by
/// short socket timeouts).
fn healthy(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(2));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    let request = format!("GET /health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.take(64 * 1024).read_to_string(&mut answer);
    answer.starts_with("HTTP/1.")
        && answer.contains(" 200 ")
        && answer.contains("\"health\":\"true\"")
}

/// The last `lines` lines of a file (empty if unreadable).
fn tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
