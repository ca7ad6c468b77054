//! TLS with high availability, end to end: a real etcd member on loopback and real
//! `arbiter-server` instances on it (`--store etcd`, `--leader-lease 2s`) with `--tls-cert` /
//! `--tls-key` (and `--tls-client-ca` for mutual TLS), driven by the real `arbiter` CLI over
//! `https://` with `--ca-file`.
//!
//! - `a_follower_relays_to_the_leader_over_tls_and_mutual_tls`: a task created through the
//!   follower is decided by the leader (`arbiter tasks` on the leader lists it), with TLS and,
//!   on a second prefix of the same etcd, with mutual TLS (the follower presents its own
//!   certificate to the leader).
//! - `a_follower_that_does_not_trust_the_leader_answers_unavailable`: a follower whose
//!   `--tls-peer-ca` is an unrelated CA answers a relayed call with UNAVAILABLE naming the
//!   leader's address, within seconds; after the right CA is put in its file and SIGHUP, the
//!   same follower relays.
//! - `tls_on_etcd_without_a_peer_ca_is_refused`: exit 2, naming the flags.
//!
//! Certificates come from the `openssl` command line, as in `tls.rs`: one CA, one certificate
//! for 127.0.0.1 (serverAuth and clientAuth) that every instance uses, a CLI client
//! certificate, and an unrelated CA.

use arbiter_e2e::certs::ca;
use arbiter_e2e::{FIVE_NODES, Files, ServerProcess, cli_binary, run_to_exit};
use arbiter_etcd::testing::EtcdCluster;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `--leader-lease`.
const LEASE: &str = "2s";
/// The CLI's ticket (open mode: it is the user).
const TOKEN: &str = "ha-tls-e2e";
/// How long a CLI run may take before the test fails.
const CLI_LIMIT: Duration = Duration::from_secs(30);

/// One test at a time: each starts etcd and several servers on a small machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ----- certificates --------------------------------------------------------------------------

/// A certificate `NAME.pem` (key `NAME.key`, subject CN=`NAME`) signed by the CA `ca`.
fn issue(dir: &Path, ca: &str, name: &str, serial: u32, ext: &str) -> (PathBuf, PathBuf) {
    arbiter_e2e::certs::issue(dir, ca, name, name, serial, ext)
}

/// The instances' certificate: served to clients and presented to the leader when relaying.
const INSTANCE_EXT: &str =
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n";
const CLIENT_EXT: &str = "extendedKeyUsage=clientAuth\n";

struct Pki {
    files: Files,
    ca: PathBuf,
    wrong_ca: PathBuf,
    instance: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
}

impl Pki {
    fn new() -> Pki {
        let files = Files::new();
        let dir = files.path().to_owned();
        let wrong_ca = ca(&dir, "wrong-ca");
        let ca = ca(&dir, "ca");
        let instance = issue(&dir, "ca", "instance", 1001, INSTANCE_EXT);
        let client = issue(&dir, "ca", "client", 2001, CLIENT_EXT);
        Pki {
            files,
            ca,
            wrong_ca,
            instance,
            client,
        }
    }
}

// ----- the CLI -------------------------------------------------------------------------------

/// Runs the CLI (no `ARBITER_*` variable inherited) with `args`, at most [`CLI_LIMIT`].
fn run_cli(args: &[OsString]) -> Output {
    let mut cmd = Command::new(cli_binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ARBITER_") {
            cmd.env_remove(key);
        }
    }
    let child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn arbiter");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(CLI_LIMIT) {
        Ok(out) => out.expect("wait for arbiter"),
        Err(_) => {
            if let Some(pid) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            panic!("arbiter {args:?} did not exit within {CLI_LIMIT:?}");
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ----- the cluster ---------------------------------------------------------------------------

/// Instances `i0`, `i1`, ... on one etcd prefix, all with the same TLS options.
struct Ha<'a> {
    pki: &'a Pki,
    endpoints: String,
    prefix: String,
    inventory: PathBuf,
    mtls: bool,
    servers: Vec<ServerProcess>,
}

impl<'a> Ha<'a> {
    fn new(pki: &'a Pki, etcd: &EtcdCluster, prefix: &str, mtls: bool) -> Ha<'a> {
        Ha {
            pki,
            endpoints: etcd.endpoints().join(","),
            prefix: prefix.to_owned(),
            inventory: pki.files.write("five.toml", FIVE_NODES),
            mtls,
            servers: Vec::new(),
        }
    }

    /// Starts the next instance with `extra` options besides the shared ones.
    fn start(&mut self, extra: &[OsString]) -> usize {
        let i = self.servers.len();
        let mut args: Vec<OsString> = vec![
            "--store".into(),
            "etcd".into(),
            "--etcd-endpoints".into(),
            self.endpoints.clone().into(),
            "--etcd-prefix".into(),
            self.prefix.clone().into(),
            "--leader-lease".into(),
            LEASE.into(),
            "--instance-id".into(),
            format!("i{i}").into(),
            "--tls-cert".into(),
            self.pki.instance.0.clone().into(),
            "--tls-key".into(),
            self.pki.instance.1.clone().into(),
        ];
        if self.mtls {
            args.push("--tls-client-ca".into());
            args.push(self.pki.ca.clone().into());
        }
        args.extend(extra.iter().cloned());
        self.servers
            .push(ServerProcess::start_with(&self.inventory, &args));
        i
    }

    fn address(&self, i: usize) -> String {
        self.servers[i].addr().to_string()
    }

    /// `arbiter --endpoint https://INSTANCE --ca-file CA [client certificate] ARGS...`.
    fn cli(&self, i: usize, args: &[&str]) -> Output {
        let mut all: Vec<OsString> = vec![
            "--endpoint".into(),
            format!("https://{}", self.address(i)).into(),
            "--ca-file".into(),
            self.pki.ca.clone().into(),
            "--token".into(),
            TOKEN.into(),
        ];
        if self.mtls {
            all.push("--cert-file".into());
            all.push(self.pki.client.0.clone().into());
            all.push("--key-file".into());
            all.push(self.pki.client.1.clone().into());
        }
        all.extend(args.iter().map(OsString::from));
        run_cli(&all)
    }

    /// The leader's id as instance `i` sees it (`arbiter instances`, never relayed).
    fn leader_seen_by(&self, i: usize) -> Option<String> {
        let out = self.cli(i, &["-o", "json", "instances"]);
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["leader_id"].as_str().map(str::to_owned)
    }

    /// Waits (at most 20 s) until every instance names the same leader; its index.
    fn leader(&self) -> usize {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let seen: Vec<Option<String>> = (0..self.servers.len())
                .map(|i| self.leader_seen_by(i))
                .collect();
            if let Some(Some(first)) = seen.first()
                && seen.iter().all(|s| s.as_deref() == Some(first))
                && let Some(i) = first.strip_prefix('i').and_then(|n| n.parse().ok())
            {
                return i;
            }
            assert!(
                Instant::now() < until,
                "no leader every instance agrees on within 20s: {seen:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn logs(&self) -> String {
        self.servers
            .iter()
            .enumerate()
            .map(|(i, s)| format!("=== i{i} ===\n{}", s.stderr()))
            .collect()
    }
}

/// Creates `uid` (node `node`) through `follower` and checks the leader lists it.
fn relayed_create(ha: &Ha<'_>, follower: usize, leader: usize, uid: &str, node: &str) {
    let out = ha.cli(
        follower,
        &["task", "create", uid, "--nodes", node, "--duration", "10m"],
    );
    assert!(
        out.status.success(),
        "task create through the follower i{follower}: {out:?}\n{}",
        ha.logs()
    );
    let out = ha.cli(leader, &["-o", "json", "tasks"]);
    assert!(out.status.success(), "tasks on the leader: {out:?}");
    let listed = text(&out.stdout);
    assert!(
        listed.contains(uid),
        "the leader i{leader} does not list {uid}: {listed}"
    );
    // The follower relays reads too: it answers with the leader's list.
    let out = ha.cli(follower, &["-o", "json", "tasks"]);
    assert!(
        out.status.success() && text(&out.stdout).contains(uid),
        "tasks on the follower: {out:?}"
    );
}

#[test]
fn a_follower_relays_to_the_leader_over_tls_and_mutual_tls() {
    let _serial = serial();
    let pki = Pki::new();
    let etcd = EtcdCluster::start(1);

    // TLS: the follower verifies the leader against --tls-peer-ca.
    let mut tls = Ha::new(&pki, &etcd, "/arbiter/tls", false);
    let peer_ca: Vec<OsString> = vec!["--tls-peer-ca".into(), pki.ca.clone().into()];
    tls.start(&peer_ca);
    tls.start(&peer_ca);
    let leader = tls.leader();
    let follower = 1 - leader;
    relayed_create(&tls, follower, leader, "over-tls", "1");

    // Mutual TLS: --tls-peer-ca defaults to --tls-client-ca, and the leader, which requires
    // a client certificate, accepts the follower's own.
    let mut mtls = Ha::new(&pki, &etcd, "/arbiter/mtls", true);
    mtls.start(&[]);
    mtls.start(&[]);
    let leader = mtls.leader();
    let follower = 1 - leader;
    relayed_create(&mtls, follower, leader, "over-mtls", "2");
    // A client without a certificate is still refused by the follower itself.
    let out = run_cli(&[
        "--endpoint".into(),
        format!("https://{}", mtls.address(follower)).into(),
        "--ca-file".into(),
        pki.ca.clone().into(),
        "--token".into(),
        TOKEN.into(),
        "tasks".into(),
    ]);
    assert!(!out.status.success(), "no client certificate: {out:?}");
}

#[test]
fn a_follower_that_does_not_trust_the_leader_answers_unavailable() {
    let _serial = serial();
    let pki = Pki::new();
    let etcd = EtcdCluster::start(1);
    let mut ha = Ha::new(&pki, &etcd, "/arbiter/wrong-ca", false);
    ha.start(&["--tls-peer-ca".into(), pki.ca.clone().into()]);
    // i0 leads before i1 starts, so the instance with the wrong CA is the follower.
    let until = Instant::now() + Duration::from_secs(20);
    while ha.leader_seen_by(0).as_deref() != Some("i0") {
        assert!(Instant::now() < until, "i0 does not lead\n{}", ha.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    // The follower's --tls-peer-ca: the wrong CA for now.
    let peer_ca = pki.files.path().join("peer-ca.pem");
    std::fs::copy(&pki.wrong_ca, &peer_ca).expect("copy the wrong CA");
    ha.start(&["--tls-peer-ca".into(), peer_ca.clone().into()]);
    assert_eq!(ha.leader(), 0);

    let started = Instant::now();
    let out = ha.cli(
        1,
        &[
            "task",
            "create",
            "untrusted",
            "--nodes",
            "1",
            "--duration",
            "10m",
        ],
    );
    let took = started.elapsed();
    let stderr = text(&out.stderr);
    eprintln!("the relayed call after {took:?}: {stderr}");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr.contains("UNAVAILABLE") || stderr.contains("Unavailable"),
        "not UNAVAILABLE: {stderr}"
    );
    let leader = ha.address(0);
    assert!(
        stderr.contains(&leader),
        "the error does not name the leader at {leader}: {stderr}"
    );
    assert!(
        took < Duration::from_secs(15),
        "the refusal took {took:?}: {stderr}"
    );
    // The leader decided nothing.
    let out = ha.cli(0, &["-o", "json", "tasks"]);
    assert!(out.status.success(), "{out:?}");
    assert!(!text(&out.stdout).contains("untrusted"), "{out:?}");

    // The right CA in the file and SIGHUP: new channels to the leader use it.
    std::fs::copy(&pki.ca, &peer_ca).expect("copy the CA");
    ha.servers[1].send_signal(rustix::process::Signal::HUP);
    let until = Instant::now() + Duration::from_secs(10);
    while !ha.servers[1].stderr().contains("TLS certificate reloaded") {
        assert!(Instant::now() < until, "no reload logged\n{}", ha.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    relayed_create(&ha, 1, 0, "trusted-after-reload", "1");
}

#[test]
fn tls_on_etcd_without_a_peer_ca_is_refused() {
    let _serial = serial();
    let pki = Pki::new();
    let inventory = pki.files.write("five.toml", FIVE_NODES);
    let out = run_to_exit(
        &[
            OsStr::new("--inventory"),
            inventory.as_os_str(),
            OsStr::new("--listen"),
            OsStr::new("127.0.0.1:0"),
            OsStr::new("--store"),
            OsStr::new("etcd"),
            OsStr::new("--etcd-endpoints"),
            OsStr::new("http://127.0.0.1:1"),
            OsStr::new("--tls-cert"),
            pki.instance.0.as_os_str(),
            OsStr::new("--tls-key"),
            pki.instance.1.as_os_str(),
        ],
        "",
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr.contains("--tls-peer-ca") && stderr.contains("--tls-client-ca"),
        "{stderr}"
    );
}
