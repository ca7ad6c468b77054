//! TLS end to end: the real server with `--tls-cert`/`--tls-key` (and `--tls-client-ca` for
//! mutual TLS), the real `arbiter` CLI over `https://` with `--ca-file`, curl on the HTTP
//! listener, a certificate reloaded on SIGHUP, and bad TLS files refused at start-up.
//!
//! Certificates come from the `openssl` command line (as the README's TLS section makes them): a
//! CA, a server certificate for 127.0.0.1 and localhost, a client certificate, and a second,
//! unrelated CA that signs nothing the server trusts.

use arbiter_e2e::certs::{ca, issue};
use arbiter_e2e::{Files, ServerProcess, cli_binary, example_inventory, server_command};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SERVER_EXT: &str = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n";
const CLIENT_EXT: &str = "extendedKeyUsage=clientAuth\n";

/// Every certificate the tests use.
struct Pki {
    files: Files,
    ca: PathBuf,
    wrong_ca: PathBuf,
    server: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
    /// A client certificate from the wrong CA.
    stranger: (PathBuf, PathBuf),
}

impl Pki {
    fn new() -> Pki {
        let files = Files::new();
        let dir = files.path().to_owned();
        let wrong_ca = ca(&dir, "wrong-ca");
        let ca = ca(&dir, "ca");
        let server = issue(&dir, "ca", "server", "arbiter-one", 1001, SERVER_EXT);
        let client = issue(&dir, "ca", "client", "operator", 2001, CLIENT_EXT);
        let stranger = issue(&dir, "wrong-ca", "stranger", "stranger", 3001, CLIENT_EXT);
        Pki {
            files,
            ca,
            wrong_ca,
            server,
            client,
            stranger,
        }
    }

    fn dir(&self) -> &Path {
        self.files.path()
    }

    /// The server options for TLS (and mutual TLS with `mtls`), with HTTP on a free port.
    fn server_args(&self, mtls: bool) -> Vec<std::ffi::OsString> {
        let mut args = vec![
            "--http-listen".into(),
            "127.0.0.1:0".into(),
            "--tls-cert".into(),
            self.server.0.clone().into(),
            "--tls-key".into(),
            self.server.1.clone().into(),
        ];
        if mtls {
            args.push("--tls-client-ca".into());
            args.push(self.ca.clone().into());
        }
        args
    }
}

/// Runs the CLI (no `ARBITER_*` variable inherited) with `args`, at most 30 s.
fn cli(args: &[&std::ffi::OsStr]) -> Output {
    let mut cmd = Command::new(cli_binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ARBITER_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args).stdin(Stdio::null());
    bounded(cmd, "arbiter")
}

/// Runs `cmd` to its exit, at most 30 s (then it is killed and the test fails).
fn bounded(mut cmd: Command, what: &str) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            if let Some(pid) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            panic!("{what} did not exit within 30s");
        }
    }
}

/// `arbiter --endpoint ENDPOINT [TLS args] nodes`.
fn nodes(endpoint: &str, tls: &[&Path]) -> Output {
    nodes_with(endpoint, &[], tls)
}

/// `arbiter --endpoint ENDPOINT FLAGS... nodes`, where each flag in `flags` is followed by
/// the path in `paths` at the same position.
fn nodes_with(endpoint: &str, flags: &[&str], paths: &[&Path]) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec!["--endpoint".as_ref(), endpoint.as_ref()];
    let default_flags = ["--ca-file", "--cert-file", "--key-file"];
    for (i, path) in paths.iter().enumerate() {
        let flag = flags.get(i).copied().unwrap_or(default_flags[i]);
        args.push(std::ffi::OsStr::new(flag));
        args.push(path.as_os_str());
    }
    args.push(std::ffi::OsStr::new("nodes"));
    cli(&args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts the command worked and listed the example's nodes.
fn listed(out: &Output) {
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    assert!(stdout.contains("storage-1.dc1.example"), "{stdout}");
}

/// Asserts the command failed (exit 1) with one `error:` line that contains `needle`.
fn refused(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains(needle),
        "expected an error with {needle:?}: {stderr}"
    );
}

/// curl on `url` with `args`; the exit code and the body.
fn curl(url: &str, args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10"]).args(args).arg(url);
    let out = bounded(cmd, "curl");
    (out.status.code(), text(&out.stdout) + &text(&out.stderr))
}

#[test]
fn the_cli_and_curl_over_tls() {
    let pki = Pki::new();
    let server = ServerProcess::start_with(example_inventory(), &pki.server_args(false));
    let https = format!("https://{}", server.addr());
    let grpcs = format!("grpcs://{}", server.addr());

    listed(&nodes(&https, &[&pki.ca]));
    listed(&nodes(&grpcs, &[&pki.ca]));
    // localhost is in the certificate too.
    listed(&nodes(
        &format!("https://localhost:{}", server.addr().port()),
        &[&pki.ca],
    ));
    // Untrusted: the system's roots do not know this CA; nor does the wrong CA.
    refused(&nodes(&https, &[]), "certificate");
    refused(&nodes(&https, &[&pki.wrong_ca]), "certificate");
    // Plaintext against a TLS port fails (and does not hang).
    let plain = nodes(&server.addr().to_string(), &[]);
    assert_eq!(plain.status.code(), Some(1), "{plain:?}");
    // --ca-file means TLS: a plaintext endpoint with it is a mistake, said so.
    refused(
        &nodes(&server.addr().to_string(), &[&pki.ca]),
        "write the endpoint as https://",
    );
    refused(
        &nodes(&https, &[&pki.dir().join("missing.pem")]),
        "missing.pem",
    );

    // The node agent's loop (lazy connection) over TLS: its first line says it is beating.
    let mut agent = Command::new(cli_binary())
        .args(["--endpoint", &https, "--ca-file"])
        .arg(&pki.ca)
        .args(["-o", "json", "node", "heartbeat", "3", "--every", "100ms"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the agent");
    let stdout = agent.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        let _ = tx.send(line);
    });
    let first = rx.recv_timeout(Duration::from_secs(30));
    let _ = agent.kill();
    let _ = agent.wait();
    let first = first.expect("the agent's first line");
    assert!(first.contains("beating"), "{first}");

    // HTTP over TLS.
    let healthz = format!("https://{}/healthz", server.http_addr());
    let ca = pki.ca.as_os_str();
    let (code, body) = curl(&healthz, &[std::ffi::OsStr::new("--cacert"), ca]);
    assert_eq!(code, Some(0), "{body}");
    let (code, body) = curl(&healthz, &[]);
    assert_eq!(code, Some(60), "curl without the CA: {body}");
    let (code, body) = curl(
        &healthz,
        &[std::ffi::OsStr::new("--cacert"), pki.wrong_ca.as_os_str()],
    );
    assert_eq!(code, Some(60), "curl with the wrong CA: {body}");
    let (code, _) = curl(&format!("http://{}/healthz", server.http_addr()), &[]);
    assert_ne!(code, Some(0), "plain HTTP on the TLS port");
}

#[test]
fn mutual_tls_refuses_clients_without_a_trusted_certificate() {
    let pki = Pki::new();
    let server = ServerProcess::start_with(example_inventory(), &pki.server_args(true));
    let https = format!("https://{}", server.addr());

    listed(&nodes(&https, &[&pki.ca, &pki.client.0, &pki.client.1]));
    // No certificate, or one from another CA: refused in the handshake.
    let none = nodes(&https, &[&pki.ca]);
    assert_eq!(none.status.code(), Some(1), "{none:?}");
    let stranger = nodes(&https, &[&pki.ca, &pki.stranger.0, &pki.stranger.1]);
    assert_eq!(stranger.status.code(), Some(1), "{stranger:?}");
    // The right client certificate with the wrong CA for the server: still refused.
    refused(
        &nodes(&https, &[&pki.wrong_ca, &pki.client.0, &pki.client.1]),
        "certificate",
    );
    // --cert-file without --key-file is a usage error.
    let half = nodes_with(
        &https,
        &["--ca-file", "--cert-file"],
        &[&pki.ca, &pki.client.0],
    );
    assert_eq!(half.status.code(), Some(2), "{half:?}");

    let healthz = format!("https://{}/healthz", server.http_addr());
    let o = std::ffi::OsStr::new;
    let (code, body) = curl(
        &healthz,
        &[
            o("--cacert"),
            pki.ca.as_os_str(),
            o("--cert"),
            pki.client.0.as_os_str(),
            o("--key"),
            pki.client.1.as_os_str(),
        ],
    );
    assert_eq!(code, Some(0), "{body}");
    let (code, body) = curl(&healthz, &[o("--cacert"), pki.ca.as_os_str()]);
    assert_ne!(code, Some(0), "curl without a client certificate: {body}");
    assert!(
        server.stderr().contains("TLS handshake failed"),
        "{}",
        server.stderr()
    );
}

/// The subject and serial of the certificate a new connection to `addr` sees, offering ALPN
/// `alpn` (`h2` for gRPC, `http/1.1` for HTTP).
fn presented_alpn(addr: std::net::SocketAddr, ca: &Path, alpn: &str) -> String {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(
            "openssl s_client -connect \"$1\" -CAfile \"$2\" -alpn \"$3\" </dev/null 2>/dev/null \
             | openssl x509 -noout -subject -serial",
        )
        .arg("sh")
        .arg(addr.to_string())
        .arg(ca)
        .arg(alpn);
    let out = bounded(cmd, "openssl s_client");
    text(&out.stdout)
}

/// [`presented_alpn`] on the gRPC listener.
fn presented(addr: std::net::SocketAddr, ca: &Path) -> String {
    presented_alpn(addr, ca, "h2")
}

#[test]
fn sighup_reloads_the_certificate_for_new_connections() {
    let pki = Pki::new();
    let dir = pki.dir();
    // The server reads copies, so the test can replace them.
    let cert = dir.join("live.pem");
    let key = dir.join("live.key");
    std::fs::copy(&pki.server.0, &cert).expect("copy");
    std::fs::copy(&pki.server.1, &key).expect("copy");
    let args: Vec<std::ffi::OsString> = vec![
        "--http-listen".into(),
        "127.0.0.1:0".into(),
        "--tls-cert".into(),
        cert.clone().into(),
        "--tls-key".into(),
        key.clone().into(),
    ];
    let server = ServerProcess::start_with(example_inventory(), &args);
    let first = presented(server.addr(), &pki.ca);
    assert!(
        first.contains("CN=arbiter-one") || first.contains("CN = arbiter-one"),
        "{first}"
    );
    assert!(first.contains("serial=03E9"), "serial 1001: {first}");

    let (new_cert, new_key) = issue(dir, "ca", "server-two", "arbiter-two", 1002, SERVER_EXT);
    std::fs::copy(&new_cert, &cert).expect("copy");
    std::fs::copy(&new_key, &key).expect("copy");
    server.send_signal(rustix::process::Signal::HUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = String::new();
    while Instant::now() < deadline {
        seen = presented(server.addr(), &pki.ca);
        if seen.contains("arbiter-two") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        seen.contains("serial=03EA"),
        "after SIGHUP: {seen}\n{}",
        server.stderr()
    );
    assert!(presented_alpn(server.http_addr(), &pki.ca, "http/1.1").contains("arbiter-two"));
    listed(&nodes(&format!("https://{}", server.addr()), &[&pki.ca]));

    // A bad new certificate is refused with a log line; the one in use stays.
    std::fs::write(&cert, "not a certificate\n").expect("write");
    server.send_signal(rustix::process::Signal::HUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !server.stderr().contains("TLS reload refused") {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.stderr();
    assert!(log.contains("TLS reload refused"), "{log}");
    assert!(log.contains("live.pem"), "the log names the file: {log}");
    assert!(presented(server.addr(), &pki.ca).contains("arbiter-two"));
    listed(&nodes(&format!("https://{}", server.addr()), &[&pki.ca]));
}

/// Starts the server with `extra` and expects it to exit at once with `code`, naming `needle`.
fn start_fails(extra: &[&std::ffi::OsStr], code: i32, needle: &str) {
    let files = Files::new();
    let mut cmd = server_command();
    cmd.args(["--listen", "127.0.0.1:0", "--inventory"])
        .arg(example_inventory())
        .arg("--data-dir")
        .arg(files.path().join("data"))
        .args(extra)
        .stdin(Stdio::null());
    let out = bounded(cmd, "arbiter-server");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{extra:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{extra:?}: expected {needle:?} in {stderr}"
    );
    assert!(text(&out.stdout).is_empty(), "nothing listened: {out:?}");
}

#[test]
fn bad_tls_files_stop_the_start() {
    let pki = Pki::new();
    let dir = pki.dir();
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "hello\n").expect("write");
    let missing = dir.join("missing.pem");
    let (cert, key) = (pki.server.0.as_os_str(), pki.server.1.as_os_str());
    let o = std::ffi::OsStr::new;
    start_fails(
        &[o("--tls-cert"), missing.as_os_str(), o("--tls-key"), key],
        1,
        "--tls-cert",
    );
    start_fails(
        &[o("--tls-cert"), missing.as_os_str(), o("--tls-key"), key],
        1,
        "missing.pem: cannot read",
    );
    start_fails(
        &[o("--tls-cert"), garbage.as_os_str(), o("--tls-key"), key],
        1,
        "garbage.pem: holds no certificate",
    );
    start_fails(
        &[o("--tls-cert"), cert, o("--tls-key"), garbage.as_os_str()],
        1,
        "--tls-key",
    );
    // Another certificate's key.
    start_fails(
        &[
            o("--tls-cert"),
            cert,
            o("--tls-key"),
            pki.client.1.as_os_str(),
        ],
        1,
        "does not match the certificate",
    );
    start_fails(
        &[
            o("--tls-cert"),
            cert,
            o("--tls-key"),
            key,
            o("--tls-client-ca"),
            garbage.as_os_str(),
        ],
        1,
        "--tls-client-ca",
    );
    // Half the options: a usage error.
    start_fails(&[o("--tls-cert"), cert], 2, "--tls-key");
}
