//! TLS on both listeners (`--tls-cert`, `--tls-key`; `--tls-client-ca` for mutual TLS): rustls
//! with the ring provider.
//!
//! [`Tls`] holds the current rustls configurations, one per listener (they differ only in ALPN:
//! `h2` for gRPC, `http/1.1` for HTTP), built from the files. Every connection takes the
//! configuration current when it arrives, so [`Tls::reload`] (on SIGHUP) changes what new
//! connections see and leaves open ones alone; a new certificate, key or CA that does not load
//! is refused and the old configuration kept.
//!
//! With `--store etcd` a follower relays calls to the leader over TLS too: [`Tls::peer`] gives
//! the client side of it (tonic's `ClientTlsConfig`: `--tls-peer-ca`, else `--tls-client-ca`,
//! to verify the leader's certificate, and with mutual TLS this instance's own certificate as
//! its client identity), loaded and reloaded with the rest; [`Tls::generation`] counts the
//! loads, so the forward layer drops channels built from an older one.
//!
//! [`accept`] runs a listener's accept loop: each handshake runs in its own task (bounded by
//! [`HANDSHAKE_TIMEOUT`]), so a slow or silent client holds up no one, and the finished
//! connections come out of a channel: as a stream for tonic ([`grpc_incoming`]) and as an
//! [`axum::serve::Listener`] for the HTTP side ([`HttpsListener`]).

use crate::app::AppError;
use crate::config::{Config, StoreKind};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_stream::Stream;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// How long a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a follower waits for the leader's side of a TLS handshake when it relays.
pub const PEER_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The files TLS is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `--tls-cert`: the server's certificate chain (PEM), its own certificate first.
    pub cert: PathBuf,
    /// `--tls-key`: the certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// `--tls-client-ca`: the CA certificates (PEM) client certificates must chain to.
    pub client_ca: Option<PathBuf>,
    /// With `--store etcd`: the CA certificates (PEM) the leader's certificate must chain to
    /// when a follower relays a call (`--tls-peer-ca`, else `--tls-client-ca`); `None` on a
    /// single instance, which relays nothing.
    pub peer_ca: Option<PathBuf>,
}

/// Why TLS could not be set up (at start-up: exit 1; on SIGHUP: the old one is kept).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or does not hold what it should.
    #[error("{flag} {}: {message}", path.display())]
    File {
        /// The option that names it.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The options do not go together.
    #[error("{0}")]
    Options(String),
}

impl From<TlsError> for AppError {
    fn from(e: TlsError) -> AppError {
        match e {
            TlsError::Options(message) => AppError::Options(message),
            file => AppError::Io {
                what: "cannot set up TLS".into(),
                source: std::io::Error::other(file.to_string()),
            },
        }
    }
}

/// Which listener a connection arrives on: it decides the ALPN protocol offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// gRPC: HTTP/2 (`h2`).
    Grpc,
    /// The HTTP side: HTTP/1.1 (`http/1.1`).
    Http,
}

/// The server's TLS: the files and the configurations loaded from them.
#[derive(Debug)]
pub struct Tls {
    files: TlsFiles,
    current: RwLock<Loaded>,
    /// How many times the files were loaded (1 after the start; +1 per successful reload).
    generation: AtomicU64,
}

/// One load of the files.
#[derive(Debug)]
struct Loaded {
    grpc: Arc<ServerConfig>,
    http: Arc<ServerConfig>,
    /// The SHA-256 fingerprint of the server's certificate (as `openssl x509 -fingerprint
    /// -sha256` prints it), for the log.
    fingerprint: String,
    /// The client side for relaying to the leader (with `peer_ca`), without the domain name,
    /// which is the leader's.
    peer: Option<ClientTlsConfig>,
}

impl Tls {
    /// TLS as the command line asks for it: `None` without `--tls-cert`. Every file is read
    /// and checked now, so a bad one stops the start.
    pub fn from_config(config: &Config) -> Result<Option<Arc<Tls>>, TlsError> {
        let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
            if config.tls_cert.is_some() || config.tls_key.is_some() {
                return Err(TlsError::Options(
                    "--tls-cert and --tls-key go together".into(),
                ));
            }
            if config.tls_client_ca.is_some() {
                return Err(TlsError::Options(
                    "--tls-client-ca needs --tls-cert and --tls-key".into(),
                ));
            }
            if config.tls_peer_ca.is_some() {
                return Err(TlsError::Options(
                    "--tls-peer-ca needs --tls-cert and --tls-key".into(),
                ));
            }
            return Ok(None);
        };
        let peer_ca = match config.store {
            StoreKind::Redb => None,
            StoreKind::Etcd => Some(
                config
                    .tls_peer_ca
                    .clone()
                    .or_else(|| config.tls_client_ca.clone())
                    .ok_or_else(|| {
                        TlsError::Options(
                            "TLS with --store etcd needs --tls-peer-ca FILE (or --tls-client-ca \
                             FILE): followers relay calls to the leader over TLS and verify its \
                             certificate against that CA"
                                .into(),
                        )
                    })?,
            ),
        };
        let tls = Tls::load(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: config.tls_client_ca.clone(),
            peer_ca,
        })?;
        Ok(Some(Arc::new(tls)))
    }

    /// Loads `files`.
    pub fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        let loaded = load(&files)?;
        tracing::info!(cert = %files.cert.display(), sha256 = %loaded.fingerprint,
            client_ca = ?files.client_ca.as_ref().map(|p| p.display().to_string()),
            "TLS on: clients {}",
            if files.client_ca.is_some() { "must present a certificate (mutual TLS)" }
            else { "need no certificate" });
        if let Some(peer_ca) = &files.peer_ca {
            tracing::info!(peer_ca = %peer_ca.display(),
                "calls relayed to the leader go over TLS{}",
                if files.client_ca.is_some() { ", with this certificate as the client's" }
                else { "" });
        }
        Ok(Tls {
            files,
            current: RwLock::new(loaded),
            generation: AtomicU64::new(1),
        })
    }

    /// Reads the files again; new connections get what they hold now. A file that does not
    /// load leaves the current configuration in place.
    pub fn reload(&self) -> Result<(), TlsError> {
        let loaded = load(&self.files)?;
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        *current = loaded;
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// [`Tls::reload`], logged either way (SIGHUP).
    pub fn reload_logged(&self) {
        match self.reload() {
            Ok(()) => tracing::info!(cert = %self.files.cert.display(),
                sha256 = %self.fingerprint(), "TLS certificate reloaded; new connections use it"),
            Err(e) => tracing::error!(error = %e,
                sha256 = %self.fingerprint(),
                "TLS reload refused; keeping the certificate in use"),
        }
    }

    /// The current certificate's SHA-256 fingerprint.
    pub fn fingerprint(&self) -> String {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        current.fingerprint.clone()
    }

    /// How many times the files were loaded; it changes on every successful reload.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The client TLS for relaying a call to the leader at `address` (its advertise address,
    /// HOST:PORT; the certificate is verified for HOST), as loaded now; `None` when this
    /// instance relays nothing (no `peer_ca`: a single instance).
    pub fn peer(&self, address: &str) -> Option<ClientTlsConfig> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        let config = current.peer.clone()?;
        Some(config.domain_name(host_of(address)))
    }

    /// An acceptor with the configuration current now.
    fn acceptor(&self, listener: Listener) -> TlsAcceptor {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        TlsAcceptor::from(match listener {
            Listener::Grpc => current.grpc.clone(),
            Listener::Http => current.http.clone(),
        })
    }
}

/// The host part of HOST:PORT (`[::1]:2135` gives `::1`; no port: all of it).
pub fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(host, _)| host);
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => host,
        _ => address,
    }
}

/// The ring provider (never aws-lc-rs: it needs cmake and more of a C toolchain).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File {
        flag,
        path: path.to_owned(),
        message: format!("cannot read: {e}"),
    })
}

/// Every certificate in a PEM file; none is an error.
fn certificates(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |message: String| TlsError::File {
        flag,
        path: path.to_owned(),
        message,
    };
    let pem = read(flag, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a valid PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            "holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

fn load(files: &TlsFiles) -> Result<Loaded, TlsError> {
    let certs = certificates("--tls-cert", &files.cert)?;
    let key_pem = read("--tls-key", &files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::File {
        flag: "--tls-key",
        path: files.key.clone(),
        message: format!(
            "holds no usable private key (expected PEM: -----BEGIN PRIVATE KEY-----, \
             RSA PRIVATE KEY or EC PRIVATE KEY): {e}"
        ),
    })?;
    let fingerprint = fingerprint(&certs[0]);
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Options(format!("TLS: {e}")))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates("--tls-client-ca", path)? {
                roots.add(cert).map_err(|e| TlsError::File {
                    flag: "--tls-client-ca",
                    path: path.clone(),
                    message: format!("not a usable CA certificate: {e}"),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider())
                .build()
                .map_err(|e| TlsError::File {
                    flag: "--tls-client-ca",
                    path: path.clone(),
                    message: format!("cannot verify clients with it: {e}"),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        let (flag, path, message) = match e {
            rustls::Error::InconsistentKeys(_) => (
                "--tls-key",
                &files.key,
                format!(
                    "does not match the certificate in --tls-cert {}",
                    files.cert.display()
                ),
            ),
            rustls::Error::InvalidCertificate(_) | rustls::Error::InvalidCertRevocationList(_) => (
                "--tls-cert",
                &files.cert,
                format!("not a valid certificate: {e}"),
            ),
            other => (
                "--tls-key",
                &files.key,
                format!("not a usable key for the certificate: {other}"),
            ),
        };
        TlsError::File {
            flag,
            path: path.clone(),
            message,
        }
    })?;
    let with_alpn = |alpn: &[u8]| {
        let mut c = config.clone();
        c.alpn_protocols = vec![alpn.to_vec()];
        Arc::new(c)
    };
    let peer = match &files.peer_ca {
        None => None,
        Some(path) => Some(peer_config(files, path)?),
    };
    Ok(Loaded {
        grpc: with_alpn(b"h2"),
        http: with_alpn(b"http/1.1"),
        fingerprint,
        peer,
    })
}

/// The client side of relaying: the leader's certificate must chain to `peer_ca`; with mutual
/// TLS (`--tls-client-ca`) this instance presents its own certificate and key.
fn peer_config(files: &TlsFiles, peer_ca: &Path) -> Result<ClientTlsConfig, TlsError> {
    let flag = "--tls-peer-ca";
    // Checked here, as the server side checks its CA: tonic reads it only when it connects.
    let mut roots = RootCertStore::empty();
    for cert in certificates(flag, peer_ca)? {
        roots.add(cert).map_err(|e| TlsError::File {
            flag,
            path: peer_ca.to_owned(),
            message: format!("not a usable CA certificate: {e}"),
        })?;
    }
    let mut config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(flag, peer_ca)?))
        .timeout(PEER_HANDSHAKE_TIMEOUT);
    if files.client_ca.is_some() {
        config = config.identity(Identity::from_pem(
            read("--tls-cert", &files.cert)?,
            read("--tls-key", &files.key)?,
        ));
    }
    Ok(config)
}

/// `AB:CD:...`, as `openssl x509 -noout -fingerprint -sha256` prints it.
fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A connection whose handshake is done, and its peer.
pub type Accepted = (TlsStream<TcpStream>, SocketAddr);

/// Accepts connections on `listener` until the receiver is dropped, handshaking each in its
/// own task with the configuration current when it arrived (TCP_NODELAY set: small replies
/// must not wait for Nagle's algorithm). A failed handshake (an untrusted client certificate,
/// none where one is required, plaintext on a TLS port) is logged and the connection closed.
pub fn accept(listener: TcpListener, tls: Arc<Tls>, kind: Listener) -> mpsc::Receiver<Accepted> {
    let (tx, rx) = mpsc::channel::<Accepted>(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                () = tx.closed() => return,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
            let acceptor = tls.acceptor(kind);
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send((stream, peer)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::info!(%peer, listener = ?kind, error = %e, "TLS handshake failed")
                    }
                    Err(_) => tracing::info!(%peer, listener = ?kind, "TLS handshake timed out"),
                }
            });
        }
    });
    rx
}

/// The gRPC listener's connections over TLS, for `serve_with_incoming_shutdown`.
pub fn grpc_incoming(
    listener: TcpListener,
    tls: Arc<Tls>,
) -> impl Stream<Item = std::io::Result<TlsStream<TcpStream>>> + Send + 'static {
    ReceiverStream::new(accept(listener, tls, Listener::Grpc)).map(|(stream, _)| Ok(stream))
}

/// The HTTP listener over TLS, for `axum::serve`.
#[derive(Debug)]
pub struct HttpsListener {
    connections: mpsc::Receiver<Accepted>,
    local: SocketAddr,
}

impl HttpsListener {
    /// TLS on `listener`.
    pub fn new(listener: TcpListener, tls: Arc<Tls>) -> std::io::Result<HttpsListener> {
        let local = listener.local_addr()?;
        Ok(HttpsListener {
            connections: accept(listener, tls, Listener::Http),
            local,
        })
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(c) => c,
            // The accept loop only ends when this receiver is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn the_host_of_an_advertise_address() {
        assert_eq!(host_of("127.0.0.1:2135"), "127.0.0.1");
        assert_eq!(host_of("arbiter-1.example:2135"), "arbiter-1.example");
        assert_eq!(host_of("[::1]:2135"), "::1");
        assert_eq!(host_of("arbiter-1.example"), "arbiter-1.example");
        assert_eq!(host_of("::1"), "::1");
    }
}
