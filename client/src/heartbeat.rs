//! The node agent's heartbeat loop: a heartbeat every interval, for as long as the agent runs,
//! through server restarts and outages.
//!
//! - Every transient failure ([`ClientError::is_retryable`]: unreachable, connection refused,
//!   CANCELLED, UNAVAILABLE, OVERLOADED, no answer within the per-call deadline) is retried
//!   with the capped, jittered exponential backoff of [`Backoff`], starting at
//!   [`HeartbeatConfig::first_retry`] and never waiting longer than
//!   [`HeartbeatConfig::retry_cap`] (by default the interval itself). So once the server is
//!   back, a heartbeat reaches it within one interval, as it would have without the outage:
//!   a server that restarts gives every monitored node one full heartbeat timeout, and a node
//!   whose agent beats more often than that timeout does not go DOWN.
//! - Each call has a deadline ([`HeartbeatConfig::call_timeout`]), so a hung server or a
//!   black-holed connection cannot stall the loop.
//! - Changes of state are reported once through [`Event`]: the first accepted heartbeat, the
//!   first failure of an outage, and the first heartbeat accepted after it. Not every attempt.
//! - The loop ends when `stop` resolves (the caller's signal handling), or with
//!   [`HeartbeatError`] on a refusal no retry cures (an unknown node, a bad request, a missing
//!   or refused credential).
//! - With [`HeartbeatConfig::login`], it logs in before the first heartbeat (retrying like a
//!   heartbeat while the server is away) and again when the session token is refused later
//!   (sessions expire).
//!
//! ```no_run
//! # async fn demo() -> Result<(), arbiter_client::heartbeat::HeartbeatError> {
//! use arbiter_client::heartbeat::{self, HeartbeatConfig};
//! let client = arbiter_client::Client::connect_lazy("127.0.0.1:2135", Some("agent".into()))
//!     .expect("a valid endpoint");
//! let config = HeartbeatConfig::new(7, std::time::Duration::from_secs(5));
//! let stop = async {
//!     let _ = tokio::signal::ctrl_c().await;
//! };
//! heartbeat::run(&client, &config, stop, |event| eprintln!("{event:?}")).await?;
//! # Ok(()) }
//! ```

use crate::retry::Backoff;
use crate::{Client, ClientError};
use std::future::Future;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// The shortest per-call deadline [`HeartbeatConfig::new`] picks (for short intervals).
pub const MIN_CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest per-call deadline [`HeartbeatConfig::new`] picks (for long intervals).
pub const MAX_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What to send and how often.
#[derive(Debug, Clone)]
pub struct HeartbeatConfig {
    /// The node the heartbeats are for.
    pub node_id: u32,
    /// The node's software version, sent with every heartbeat.
    pub version: Option<String>,
    /// When the node's process started, sent with every heartbeat.
    pub start_time: Option<SystemTime>,
    /// The time between two heartbeats while the server answers.
    pub interval: Duration,
    /// How long one call (a heartbeat, a login) may take before it counts as failed.
    pub call_timeout: Duration,
    /// The first delay after a failure.
    pub first_retry: Duration,
    /// The longest delay between two attempts while they fail.
    pub retry_cap: Duration,
    /// Log in with this user and password (Ydb.Auth Login) and send the session token.
    pub login: Option<Login>,
}

/// A user and password for [`HeartbeatConfig::login`].
#[derive(Clone)]
pub struct Login {
    /// The user.
    pub user: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

impl HeartbeatConfig {
    /// Heartbeats for `node_id` every `interval`: each call may take the interval, but at
    /// least [`MIN_CALL_TIMEOUT`] and at most [`MAX_CALL_TIMEOUT`]; retries start at a tenth
    /// of the interval (50 ms to 1 s) and are never further apart than the interval.
    pub fn new(node_id: u32, interval: Duration) -> HeartbeatConfig {
        HeartbeatConfig {
            node_id,
            version: None,
            start_time: None,
            interval,
            call_timeout: interval.clamp(MIN_CALL_TIMEOUT, MAX_CALL_TIMEOUT),
            first_retry: (interval / 10)
                .clamp(Duration::from_millis(50), Duration::from_secs(1))
                .min(interval),
            retry_cap: interval,
            login: None,
        }
    }
}

/// A change of the loop's state, reported once.
#[derive(Debug)]
pub enum Event<'a> {
    /// The first heartbeat was accepted (also when it took retries to get there).
    Accepted,
    /// A heartbeat failed with a transient error after the server had answered (or at the
    /// start); the loop retries, and says nothing more until one is accepted again.
    Retrying {
        /// The first failure of this outage.
        error: &'a ClientError,
        /// The longest time between two attempts from now on.
        at_most_every: Duration,
    },
    /// Heartbeats are accepted again after an outage.
    Recovered {
        /// How long the outage lasted (from its first failed attempt).
        outage: Duration,
        /// How many attempts failed in it.
        failed_attempts: u32,
    },
}

/// Why the loop gave up: a refusal that no retry cures.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    /// The server refused the heartbeat itself (an unknown node, a bad request, no permission).
    #[error("node {node_id}: the server refused the heartbeat: {source}")]
    Refused {
        /// The node.
        node_id: u32,
        /// The refusal.
        source: ClientError,
    },
    /// The login was refused (an unknown user, a wrong password).
    #[error("login as {user} was refused: {source}")]
    Login {
        /// The user.
        user: String,
        /// The refusal.
        source: ClientError,
    },
}

impl HeartbeatError {
    /// The underlying refusal.
    pub fn client_error(&self) -> &ClientError {
        match self {
            HeartbeatError::Refused { source, .. } | HeartbeatError::Login { source, .. } => source,
        }
    }
}

/// How one attempt failed.
enum Failure {
    /// The heartbeat (or the call's deadline).
    Heartbeat(ClientError),
    /// The login.
    Login(ClientError),
    /// The session token was refused: log in again at once.
    Relogin,
}

/// Sends heartbeats with `client` as `config` says until `stop` resolves (then its value is
/// returned), reporting changes of state to `on_event`. Ends early only on a refusal no retry
/// cures.
pub async fn run<S>(
    client: &Client,
    config: &HeartbeatConfig,
    stop: impl Future<Output = S>,
    mut on_event: impl FnMut(Event<'_>),
) -> Result<S, HeartbeatError> {
    let mut stop = std::pin::pin!(stop);
    let mut backoff = Backoff::new(config.first_retry, config.retry_cap);
    let mut client = client.clone();
    let mut need_login = config.login.is_some();
    // Whether the ticket in use came from a login since the last accepted heartbeat: then a
    // refusal of it is final, not an expired session.
    let mut fresh_login = false;
    let mut accepted_once = false;
    let mut outage_since: Option<Instant> = None;
    let mut next = Instant::now();
    loop {
        tokio::select! {
            biased;
            s = &mut stop => return Ok(s),
            () = tokio::time::sleep_until(next) => {}
        }
        let started = Instant::now();
        let attempt = async {
            if need_login && let Some(login) = &config.login {
                let token = deadline(
                    config.call_timeout,
                    client.login(&login.user, &login.password),
                )
                .await
                .map_err(Failure::Login)?;
                client = client.with_ticket(Some(token));
                need_login = false;
                fresh_login = true;
            }
            match deadline(
                config.call_timeout,
                client.heartbeat(config.node_id, config.version.clone(), config.start_time),
            )
            .await
            {
                Err(ClientError::Rpc(s))
                    if s.code() == tonic::Code::Unauthenticated
                        && config.login.is_some()
                        && !fresh_login =>
                {
                    need_login = true;
                    Err(Failure::Relogin)
                }
                r => r.map_err(Failure::Heartbeat),
            }
        };
        let result = tokio::select! {
            biased;
            s = &mut stop => return Ok(s),
            r = attempt => r,
        };
        match result {
            Ok(()) => {
                match outage_since.take() {
                    Some(since) if accepted_once => on_event(Event::Recovered {
                        outage: since.elapsed(),
                        failed_attempts: backoff.failures(),
                    }),
                    _ if !accepted_once => on_event(Event::Accepted),
                    _ => {}
                }
                accepted_once = true;
                fresh_login = false;
                backoff.reset();
                next = started + config.interval;
            }
            // An expired session: log in again now, without counting a failure.
            Err(Failure::Relogin) => next = Instant::now(),
            Err(Failure::Login(source)) if !source.is_retryable() => {
                return Err(HeartbeatError::Login {
                    user: config
                        .login
                        .as_ref()
                        .map(|l| l.user.clone())
                        .unwrap_or_default(),
                    source,
                });
            }
            Err(Failure::Heartbeat(source)) if !source.is_retryable() => {
                return Err(HeartbeatError::Refused {
                    node_id: config.node_id,
                    source,
                });
            }
            Err(Failure::Login(e) | Failure::Heartbeat(e)) => {
                let delay = backoff.next_delay();
                if outage_since.is_none() {
                    outage_since = Some(started);
                    on_event(Event::Retrying {
                        error: &e,
                        at_most_every: backoff.cap(),
                    });
                }
                next = Instant::now() + delay;
            }
        }
    }
}

/// `call`, or [`ClientError::Timeout`] when it takes longer than `limit`.
async fn deadline<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or(Err(ClientError::Timeout { after: limit }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_follow_the_interval() {
        let c = HeartbeatConfig::new(1, Duration::from_secs(5));
        assert_eq!(c.call_timeout, Duration::from_secs(5));
        assert_eq!(c.first_retry, Duration::from_millis(500));
        assert_eq!(c.retry_cap, Duration::from_secs(5));
        let fast = HeartbeatConfig::new(1, Duration::from_millis(100));
        assert_eq!(fast.call_timeout, MIN_CALL_TIMEOUT);
        assert_eq!(fast.first_retry, Duration::from_millis(50));
        assert_eq!(fast.retry_cap, Duration::from_millis(100));
        let tiny = HeartbeatConfig::new(1, Duration::from_millis(10));
        assert_eq!(
            tiny.first_retry,
            Duration::from_millis(10),
            "never above the cap"
        );
        let slow = HeartbeatConfig::new(1, Duration::from_secs(60));
        assert_eq!(slow.call_timeout, MAX_CALL_TIMEOUT);
        assert_eq!(slow.first_retry, Duration::from_secs(1));
        assert_eq!(slow.retry_cap, Duration::from_secs(60));
    }

    #[test]
    fn a_password_does_not_print() {
        let login = Login {
            user: "agent".into(),
            password: "s3cret".into(),
        };
        let shown = format!("{login:?}");
        assert!(
            shown.contains("agent") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    /// Nothing listens on port 1: every attempt fails with a retryable error, the loop keeps
    /// going (one `Retrying` event, not one per attempt) until `stop`.
    #[tokio::test]
    async fn an_unreachable_server_is_retried_until_stopped() {
        let client = Client::connect_lazy("127.0.0.1:1", None).expect("a valid endpoint");
        let mut config = HeartbeatConfig::new(3, Duration::from_millis(40));
        config.first_retry = Duration::from_millis(5);
        let mut events = Vec::new();
        let stop = tokio::time::sleep(Duration::from_millis(400));
        let r = run(&client, &config, stop, |e| {
            events.push(match e {
                Event::Retrying { error, .. } => {
                    assert!(error.is_retryable(), "{error}");
                    "retrying"
                }
                Event::Accepted => "accepted",
                Event::Recovered { .. } => "recovered",
            });
        })
        .await;
        assert!(r.is_ok(), "stopped, not given up");
        assert_eq!(events, ["retrying"]);
    }

    /// A hung server (it accepts the connection and never answers) costs one deadline per
    /// attempt, not the loop.
    #[tokio::test]
    async fn a_hung_server_times_out_each_call() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("an address");
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let client = Client::connect_lazy(&addr.to_string(), None).expect("a valid endpoint");
        let mut config = HeartbeatConfig::new(3, Duration::from_millis(50));
        config.call_timeout = Duration::from_millis(100);
        let mut first_error = None;
        let stop = tokio::time::sleep(Duration::from_millis(600));
        let r = run(&client, &config, stop, |e| {
            if let Event::Retrying { error, .. } = e {
                first_error.get_or_insert_with(|| error.to_string());
            }
        })
        .await;
        hold.abort();
        assert!(r.is_ok());
        assert_eq!(first_error.as_deref(), Some("no answer within 100ms"));
    }
}
