//! Followers serve every client: a tower layer in front of all gRPC services relays a call that
//! this instance cannot decide to the leader, unary or streaming alike, with the caller's
//! headers (auth, `grpc-timeout`) unchanged, and relays the answer back. ydbops and most tools
//! talk to one endpoint, so a refusal with a leader hint would not help them.
//!
//! - A call that this instance can answer alone (health, reflection, ListInstances) is never
//!   relayed.
//! - A relayed call carries [`FORWARDED`]; an instance that receives one and does not lead
//!   refuses it (UNAVAILABLE), so a call is relayed at most once and never loops.
//! - With no leader known, a call waits up to [`ForwardLayer::wait`] for an election, then gets
//!   UNAVAILABLE, which clients retry.
//! - With TLS (`--tls-cert`) the relay goes over TLS too: `https://` to the leader's advertise
//!   address, its certificate verified for that address's host against `--tls-peer-ca` (else
//!   `--tls-client-ca`), with this instance's certificate as the client's under mutual TLS. A
//!   certificate reload (SIGHUP) drops the cached channels, so new ones use the new files.

use super::{Membership, NotLeader, Role};
use crate::tls::Tls;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};

/// The header a relayed call carries: the id of the instance that relayed it.
pub const FORWARDED: &str = "x-arbiter-forwarded-by";

/// Calls every instance answers itself.
fn is_local(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.")
        || path == "/arbiter.v1.ArbiterService/ListInstances"
}

/// The layer: one per server.
#[derive(Debug, Clone)]
pub struct ForwardLayer {
    membership: Membership,
    channels: Arc<Mutex<Channels>>,
    wait: Duration,
    tls: Option<Arc<Tls>>,
}

/// The cached channels, by leader address, and the TLS load they were built from.
#[derive(Debug, Default)]
struct Channels {
    generation: u64,
    by_address: HashMap<String, Channel>,
}

impl ForwardLayer {
    /// Relays for `membership`; a call waits at most `wait` for a leader to be known. With
    /// `tls`, relayed calls go over TLS.
    pub fn new(membership: Membership, wait: Duration, tls: Option<Arc<Tls>>) -> ForwardLayer {
        ForwardLayer {
            membership,
            channels: Arc::new(Mutex::new(Channels::default())),
            wait,
            tls,
        }
    }

    /// `https` with TLS, else `http`.
    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// How long a call waits for a leader.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    fn channel(&self, address: &str) -> Result<Channel, String> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A reloaded certificate or CA: channels built from the old files go.
        let generation = self.tls.as_ref().map_or(0, |t| t.generation());
        if channels.generation != generation {
            channels.by_address.clear();
            channels.generation = generation;
        }
        if let Some(c) = channels.by_address.get(address) {
            return Ok(c.clone());
        }
        let mut endpoint = Endpoint::from_shared(format!("{}://{address}", self.scheme()))
            .map_err(|e| format!("the leader's address '{address}' is not usable: {e}"))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        if let Some(config) = self.tls.as_ref().and_then(|t| t.peer(address)) {
            endpoint = endpoint.tls_config(config).map_err(|e| {
                format!(
                    "cannot set up TLS towards the leader at {address}: {}",
                    chain(&e)
                )
            })?;
        }
        let channel = endpoint.connect_lazy();
        // Leaders change rarely; keep a few.
        if channels.by_address.len() > 16 {
            channels.by_address.clear();
        }
        channels
            .by_address
            .insert(address.to_owned(), channel.clone());
        Ok(channel)
    }
}

impl<S> tower::Layer<S> for ForwardLayer {
    type Service = Forward<S>;

    fn layer(&self, inner: S) -> Forward<S> {
        Forward {
            inner,
            layer: self.clone(),
        }
    }
}

/// The layer's service around the gRPC routes.
#[derive(Debug, Clone)]
pub struct Forward<S> {
    inner: S,
    layer: ForwardLayer,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Reply = Pin<Box<dyn Future<Output = Result<http::Response<Body>, BoxError>> + Send>>;

/// An error with its sources (tonic's transport errors say little at the top: the TLS
/// failure, e.g. an untrusted certificate, is further down).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

fn refuse(message: String) -> http::Response<Body> {
    tonic::Status::unavailable(message).into_http()
}

impl<S> tower::Service<http::Request<Body>> for Forward<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Reply;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The inner service was made ready for this call; a fresh clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        let local =
            is_local(request.uri().path()) || layer.membership.role().leads_at(Instant::now());
        if local {
            let fut = inner.call(request);
            return Box::pin(async move { fut.await.map_err(Into::into) });
        }
        Box::pin(async move {
            if request.headers().contains_key(FORWARDED) {
                let from = request
                    .headers()
                    .get(FORWARDED)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("?")
                    .to_owned();
                return Ok(refuse(format!(
                    "instance {} does not lead; a call relayed by {from} is not relayed again (the leader changed meanwhile); retry",
                    layer.membership.me().id
                )));
            }
            match layer.membership.settled(layer.wait).await {
                r @ Role::Leader { .. } if r.leads_at(Instant::now()) => {
                    inner.call(request).await.map_err(Into::into)
                }
                Role::Follower { leader: Some(peer) } => relay(&layer, peer.address, request).await,
                _ => Ok(refuse(NotLeader::NoLeader.to_string())),
            }
        })
    }
}

/// "The leader could not be reached" with `e` and, when it is about the leader's certificate,
/// which option decides what this instance trusts.
fn unreachable(
    layer: &ForwardLayer,
    address: &str,
    e: &(dyn std::error::Error + 'static),
) -> String {
    let e = chain(e);
    let hint = if layer.tls.is_some() && e.contains("certificate") {
        " (this instance verifies the leader's certificate against --tls-peer-ca, else \
         --tls-client-ca, for the host of its advertise address)"
    } else {
        ""
    };
    format!("the leader at {address} could not be reached: {e}{hint}; retry")
}

async fn relay(
    layer: &ForwardLayer,
    address: String,
    request: http::Request<Body>,
) -> Result<http::Response<Body>, BoxError> {
    let mut channel = match layer.channel(&address) {
        Ok(c) => c,
        Err(e) => return Ok(refuse(e)),
    };
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| String::from("/"));
    parts.uri = match format!("{}://{address}{path}", layer.scheme()).parse() {
        Ok(u) => u,
        Err(e) => {
            return Ok(refuse(format!(
                "cannot relay to the leader at {address}: {e}"
            )));
        }
    };
    if let Ok(v) = http::HeaderValue::from_str(&layer.membership.me().id) {
        parts.headers.insert(FORWARDED, v);
    }
    let relayed = http::Request::from_parts(parts, body);
    if let Err(e) = std::future::poll_fn(|cx| tower::Service::poll_ready(&mut channel, cx)).await {
        return Ok(refuse(unreachable(layer, &address, &e)));
    }
    match tower::Service::call(&mut channel, relayed).await {
        Ok(response) => Ok(response),
        Err(e) => Ok(refuse(unreachable(layer, &address, &e))),
    }
}
