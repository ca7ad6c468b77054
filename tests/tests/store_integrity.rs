//! A store never lies about what it holds: a data directory that was in use never comes back
//! empty, damaged or rolled back without an explicit request. Each case starts the real server,
//! creates live tasks, stops it, damages the store on disk, and starts it again: it must refuse
//! (exit 1, a message naming the file, the problem and what to do, no panic), and start with
//! `--accept-store-loss`, the file moved aside.

use arbiter_e2e::proto::ydb::maintenance::{ListMaintenanceTasksResult, MaintenanceTaskResult};
use arbiter_e2e::{
    Client, EXIT_TIMEOUT, FIVE_NODES, Files, START_TIMEOUT, ServerProcess, node_locks,
    server_command, success,
};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use tonic::transport::Channel;

const STORE: &str = "arbiter.redb";
const TASKS: usize = 30;

/// How a start on a given data directory ended.
enum Start {
    /// It announced `listening on ADDR`.
    Listening(Running),
    /// It exited first.
    Exited { code: Option<i32>, stderr: String },
}

/// A server started by this file (on a data directory a [`ServerProcess`] made), killed on drop.
struct Running {
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
}

impl Running {
    async fn client(&self) -> Client {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .expect("a valid uri")
            .connect()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.addr));
        Client::new(channel, Some("e2e-user"))
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and the exit code.
    fn terminate(mut self) -> Option<i32> {
        let child = self.child.take().expect("running");
        signal(&child, rustix::process::Signal::TERM);
        wait_bounded(child).code()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- arbiter-server stderr ---\n{}", self.stderr());
        }
    }
}

fn signal(child: &Child, sig: rustix::process::Signal) {
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("a valid pid");
    let _ = rustix::process::kill_process(pid, sig);
}

fn wait_bounded(mut child: Child) -> std::process::ExitStatus {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    match rx.recv_timeout(EXIT_TIMEOUT) {
        Ok(status) => status.expect("wait"),
        Err(_) => {
            if let Some(pid) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            panic!("arbiter-server did not exit within {EXIT_TIMEOUT:?}");
        }
    }
}

/// Starts the server on `data` and `inventory` with `extra` options and `env`, and waits until
/// it either listens or exits.
fn start(
    data: &Path,
    inventory: &Path,
    logs: &Files,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Start {
    let n = std::fs::read_dir(logs.path())
        .map(|d| d.count())
        .unwrap_or(0);
    let log = logs.path().join(format!("stderr-{n}.log"));
    let mut cmd = server_command();
    cmd.arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(data)
        .arg("--inventory")
        .arg(inventory)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(File::create(&log).expect("log file")));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn arbiter-server");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let first = reader.read_line(&mut line).map(|_| line);
        let _ = tx.send(first);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let first = match rx.recv_timeout(START_TIMEOUT) {
        Ok(first) => first.unwrap_or_default(),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("arbiter-server neither listened nor exited within {START_TIMEOUT:?}");
        }
    };
    let addr = first
        .trim_end()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok());
    match addr {
        Some(addr) => Start::Listening(Running {
            child: Some(child),
            addr,
            log,
        }),
        None => {
            let status = wait_bounded(child);
            Start::Exited {
                code: status.code(),
                stderr: std::fs::read_to_string(&log).unwrap_or_default(),
            }
        }
    }
}

/// A server with [`TASKS`] live tasks (two granted, the rest waiting on the limit), stopped.
async fn stopped_server_with_tasks(files: &Files, kill9: bool) -> ServerProcess {
    let inventory = files.write("five.toml", FIVE_NODES);
    let mut server = ServerProcess::start(&inventory);
    let c = server.client(Some("e2e-user")).await;
    create_tasks(&c, "t", TASKS).await;
    drop(c);
    if kill9 {
        assert!(!server.kill9().success());
    } else {
        assert_eq!(server.terminate().code(), Some(0));
    }
    server
}

async fn create_tasks(c: &Client, prefix: &str, n: usize) {
    for i in 0..n {
        let node = u32::try_from(i % 5).expect("small") + 1;
        success::<MaintenanceTaskResult>(
            &c.create(node_locks(&format!("{prefix}-{i}"), &[node]))
                .await,
        );
    }
}

async fn task_count(c: &Client) -> usize {
    success::<ListMaintenanceTasksResult>(&c.list(None).await)
        .tasks_uids
        .len()
}

/// Starting is refused: exit 1 (not a panic's 101), a message that names the store file, says
/// `problem`, tells what to do, and shows no panic or backtrace.
fn assert_refused(outcome: Start, file: &Path, problem: &str) -> String {
    let (code, stderr) = match outcome {
        Start::Exited { code, stderr } => (code, stderr),
        Start::Listening(running) => {
            let stderr = running.stderr();
            drop(running);
            panic!("the server started on a store it must refuse ({problem}):\n{stderr}");
        }
    };
    assert_eq!(code, Some(1), "exit code:\n{stderr}");
    let file = file.display().to_string();
    assert!(stderr.contains(&file), "names {file}:\n{stderr}");
    assert!(stderr.contains(problem), "says {problem:?}:\n{stderr}");
    assert!(
        stderr.contains("--accept-store-loss"),
        "tells the way out:\n{stderr}"
    );
    for panic_text in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        assert!(!stderr.contains(panic_text), "{panic_text:?} in:\n{stderr}");
    }
    stderr
}

/// The files `arbiter.redb.lost-*` in `data`.
fn moved_aside(data: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(data)
        .expect("data dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{STORE}.lost-")))
        })
        .collect();
    found.sort();
    found
}

/// Deterministic bytes that look random (xorshift).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed.to_le_bytes()[0]
        })
        .collect()
}

/// Accepting the loss starts an empty store, the old file kept beside it; the next plain start
/// takes the new store.
async fn accept_loss_and_restart(
    data: &Path,
    inventory: &Path,
    logs: &Files,
    extra: &[&str],
    env: &[(&str, &str)],
) {
    let running = match start(data, inventory, logs, extra, env) {
        Start::Listening(running) => running,
        Start::Exited { code, stderr } => {
            panic!("accepting the loss must start (exit {code:?}):\n{stderr}")
        }
    };
    let c = running.client().await;
    assert_eq!(task_count(&c).await, 0, "an accepted loss starts empty");
    create_tasks(&c, "after", 1).await;
    drop(c);
    let stderr = running.stderr();
    assert!(
        stderr.contains("accepting store loss"),
        "a warning:\n{stderr}"
    );
    assert_eq!(running.terminate(), Some(0));

    let running = match start(data, inventory, logs, &[], &[]) {
        Start::Listening(running) => running,
        Start::Exited { code, stderr } => {
            panic!("the new store must start without the flag (exit {code:?}):\n{stderr}")
        }
    };
    let c = running.client().await;
    assert_eq!(task_count(&c).await, 1);
    drop(c);
    assert_eq!(running.terminate(), Some(0));
}

/// After a clean stop redb trusts the file; the old server panicked in redb (exit 101).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_damaged_store_is_refused_without_a_panic() {
    damaged_store_is_refused(false).await;
}

/// After `kill -9` redb repairs the file on open, and finds the damage.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_damaged_store_is_refused_after_a_crash() {
    damaged_store_is_refused(true).await;
}

async fn damaged_store_is_refused(kill9: bool) {
    let files = Files::new();
    let logs = Files::new();
    let server = stopped_server_with_tasks(&files, kill9).await;
    let data = server.data_dir();
    let inventory = files.path().join("five.toml");
    let file = data.join(STORE);

    let mut bytes = std::fs::read(&file).expect("store");
    assert!(bytes.len() > 4096, "the store has {} bytes", bytes.len());
    let tail = bytes.len() - 4096;
    bytes[4096..].copy_from_slice(&noise(tail, 0x5eed));
    std::fs::write(&file, &bytes).expect("damage the store");

    assert_refused(start(&data, &inventory, &logs, &[], &[]), &file, "damaged");
    // Refusing changed nothing.
    assert!(
        std::fs::read(&file).expect("store") == bytes,
        "the refused file changed"
    );

    accept_loss_and_restart(&data, &inventory, &logs, &["--accept-store-loss"], &[]).await;
    let moved = moved_aside(&data);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert!(
        std::fs::read(&moved[0]).expect("moved") == bytes,
        "the damaged file is kept, unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_truncated_store_is_refused() {
    let files = Files::new();
    let logs = Files::new();
    let server = stopped_server_with_tasks(&files, false).await;
    let data = server.data_dir();
    let inventory = files.path().join("five.toml");
    let file = data.join(STORE);
    File::options()
        .write(true)
        .open(&file)
        .expect("store")
        .set_len(0)
        .expect("truncate");

    assert_refused(start(&data, &inventory, &logs, &[], &[]), &file, "empty");
    assert_eq!(std::fs::metadata(&file).expect("store").len(), 0);

    accept_loss_and_restart(&data, &inventory, &logs, &["--accept-store-loss"], &[]).await;
    assert_eq!(moved_aside(&data).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_deleted_store_is_refused() {
    let files = Files::new();
    let logs = Files::new();
    let server = stopped_server_with_tasks(&files, true).await;
    let data = server.data_dir();
    let inventory = files.path().join("five.toml");
    let file = data.join(STORE);
    std::fs::remove_file(&file).expect("delete the store");

    assert_refused(start(&data, &inventory, &logs, &[], &[]), &file, "missing");
    assert!(!file.exists(), "refusing creates no store");

    // The variable works as the flag does.
    accept_loss_and_restart(
        &data,
        &inventory,
        &logs,
        &[],
        &[("ARBITER_ACCEPT_STORE_LOSS", "true")],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn an_older_copy_of_the_store_is_refused() {
    let files = Files::new();
    let logs = Files::new();
    let mut server = stopped_server_with_tasks(&files, false).await;
    let data = server.data_dir();
    let inventory = files.path().join("five.toml");
    let file = data.join(STORE);
    let older = std::fs::read(&file).expect("copy the store");

    server.restart();
    let c = server.client(Some("e2e-user")).await;
    assert_eq!(task_count(&c).await, TASKS);
    create_tasks(&c, "later", 3).await;
    drop(c);
    assert_eq!(server.terminate().code(), Some(0));

    std::fs::write(&file, &older).expect("put the older copy back");
    assert_refused(
        start(&data, &inventory, &logs, &[], &[]),
        &file,
        "rolled back",
    );

    accept_loss_and_restart(&data, &inventory, &logs, &["--accept-store-loss"], &[]).await;
    // Kept beside the new store (redb's open records itself in the file, so not byte for byte).
    let moved = moved_aside(&data);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert!(std::fs::metadata(&moved[0]).expect("moved").len() > 0);
}

/// The seal is written before each reply (flushed only now and then: a power loss may take its
/// last records back, a crash of the process does not). So after `kill -9`, a copy of the store
/// and its log taken one answered commit earlier is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn after_kill_9_a_copy_lacking_only_the_last_answer_is_refused() {
    let files = Files::new();
    let logs = Files::new();
    let inventory = files.write("five.toml", FIVE_NODES);
    let mut server = ServerProcess::start(&inventory);
    let data = server.data_dir();
    let c = server.client(Some("e2e-user")).await;
    create_tasks(&c, "t", 3).await;
    // Between two answers nothing is being written: the copy is what a crash would leave.
    let copies: Vec<(PathBuf, Vec<u8>)> = [STORE, "arbiter.wal"]
        .iter()
        .map(|name| {
            let path = data.join(name);
            let bytes = std::fs::read(&path).expect("copy");
            (path, bytes)
        })
        .collect();
    create_tasks(&c, "last", 1).await;
    drop(c);
    assert!(!server.kill9().success());
    let crashed: Vec<Vec<u8>> = copies
        .iter()
        .map(|(path, _)| std::fs::read(path).expect("read"))
        .collect();

    for (path, bytes) in &copies {
        std::fs::write(path, bytes).expect("put the copy back");
    }
    let stderr = assert_refused(
        start(&data, &inventory, &logs, &[], &[]),
        &data.join(STORE),
        "rolled back",
    );
    assert!(stderr.contains("an older copy"), "{stderr}");

    // The files the crash left start, with every task answered before it.
    for ((path, _), bytes) in copies.iter().zip(&crashed) {
        std::fs::write(path, bytes).expect("put the crashed files back");
    }
    let running = match start(&data, &inventory, &logs, &[], &[]) {
        Start::Listening(running) => running,
        Start::Exited { code, stderr } => panic!("exit {code:?}:\n{stderr}"),
    };
    assert_eq!(task_count(&running.client().await).await, 4);
    assert_eq!(running.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn an_intact_store_starts_with_every_task() {
    let files = Files::new();
    let logs = Files::new();
    let server = stopped_server_with_tasks(&files, true).await;
    let data = server.data_dir();
    let inventory = files.path().join("five.toml");
    // The flag changes nothing when nothing is wrong.
    for extra in [&[][..], &["--accept-store-loss"][..]] {
        let running = match start(&data, &inventory, &logs, extra, &[]) {
            Start::Listening(running) => running,
            Start::Exited { code, stderr } => panic!("exit {code:?}:\n{stderr}"),
        };
        let c = running.client().await;
        assert_eq!(task_count(&c).await, TASKS);
        drop(c);
        assert_eq!(running.terminate(), Some(0));
    }
    assert!(moved_aside(&data).is_empty());
}
