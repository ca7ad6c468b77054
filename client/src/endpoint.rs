//! Endpoints as users write them: `host:port`, `http://host:port`, or YDB's `grpc://host:port`;
//! `https://host:port` or `grpcs://host:port` for TLS, with [`TlsOptions`]: the CA to trust
//! (`--ca-file`; the system's roots without one) and a client certificate for mutual TLS.

use crate::ClientError;
use std::path::PathBuf;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// How a TLS endpoint is trusted and whom the client presents itself as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// CA certificates (PEM) the server's certificate must chain to; `None`: the system's.
    pub ca_file: Option<PathBuf>,
    /// The client's certificate chain (PEM), for servers that require one (mutual TLS).
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file` (PEM).
    pub key_file: Option<PathBuf>,
}

impl TlsOptions {
    /// Whether any option is set (they only mean something for a TLS endpoint).
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()
    }

    /// tonic's TLS configuration for `endpoint`, the files read now.
    pub(crate) fn client_config(&self, endpoint: &str) -> Result<ClientTlsConfig, ClientError> {
        let bad = |reason: String| ClientError::Endpoint {
            endpoint: endpoint.to_owned(),
            reason,
        };
        let read = |flag: &str, path: &PathBuf| {
            std::fs::read(path)
                .map_err(|e| bad(format!("cannot read the {flag} {}: {e}", path.display())))
        };
        let mut config = ClientTlsConfig::new();
        config = match &self.ca_file {
            Some(path) => {
                let pem = read("CA file", path)?;
                if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                    return Err(bad(format!(
                        "the CA file {} holds no PEM certificate",
                        path.display()
                    )));
                }
                config.ca_certificate(Certificate::from_pem(pem))
            }
            None => config.with_native_roots(),
        };
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let identity = Identity::from_pem(
                    read("client certificate file", cert)?,
                    read("client key file", key)?,
                );
                config = config.identity(identity);
            }
            (None, None) => {}
            _ => {
                return Err(bad(
                    "a client certificate needs both --cert-file and --key-file".into(),
                ));
            }
        }
        Ok(config)
    }
}

/// A parsed endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`.
    pub authority: String,
    /// Whether the connection must use TLS.
    pub tls: bool,
}

impl Endpoint {
    /// Parses an endpoint; the port defaults to 2135, YDB's.
    pub fn parse(s: &str) -> Result<Endpoint, ClientError> {
        let bad = |reason: &str| ClientError::Endpoint {
            endpoint: s.to_owned(),
            reason: reason.to_owned(),
        };
        let (tls, rest) = match s.split_once("://") {
            None => (false, s),
            Some(("http" | "grpc", rest)) => (false, rest),
            Some(("https" | "grpcs", rest)) => (true, rest),
            Some((scheme, _)) => {
                return Err(bad(&format!(
                    "unknown scheme '{scheme}' (use grpc://, http://, host:port, or for TLS \
                     grpcs:// or https://)"
                )));
            }
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') {
            return Err(bad("expected host:port"));
        }
        let has_port = match rest.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') => {
                port.parse::<u16>()
                    .map_err(|_| bad("the port is not a number"))?;
                true
            }
            _ => false,
        };
        let authority = if has_port {
            rest.to_owned()
        } else {
            format!("{rest}:2135")
        };
        Ok(Endpoint { authority, tls })
    }

    /// The URI tonic connects to.
    pub fn uri(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.authority
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_ydb_users_write() {
        for (input, authority, tls) in [
            ("127.0.0.1:2135", "127.0.0.1:2135", false),
            ("grpc://arbiter:7000", "arbiter:7000", false),
            ("http://arbiter", "arbiter:2135", false),
            ("grpcs://arbiter:7000/", "arbiter:7000", true),
        ] {
            let e = Endpoint::parse(input).expect(input);
            assert_eq!((e.authority.as_str(), e.tls), (authority, tls), "{input}");
        }
        for bad in ["ftp://x:1", "grpc://", "x:notaport", "grpc://a:1/path"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
