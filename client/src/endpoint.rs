//! Endpoints as users write them: `host:port`, `http://host:port`, or YDB's `grpc://host:port`.
//!
//! TLS (`https://`, `grpcs://`) is recognised and refused with a clear message until the server
//! and the client gain it; the parsing already keeps the distinction.

use crate::ClientError;

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
                    "unknown scheme '{scheme}' (use grpc://, http://, or host:port)"
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
