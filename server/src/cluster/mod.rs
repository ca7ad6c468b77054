//! High availability: several instances serving one cluster, on etcd, with one fenced leader.
//! The engine never learns any of this; it lives in the shell.
//!
//! - [`Membership`]: what this instance is right now (the leader, with its writer; a follower,
//!   knowing the leader or not), read by the services and the forwarding layer. A single
//!   instance on redb is always the leader.
//! - [`leadership`]: the campaign for the leader key, the lease, self-demotion, and the
//!   writer's lifecycle on etcd.
//! - [`forward`]: the tower layer that relays a follower's calls to the leader.
//! - [`instances`]: the registry of live instances (ListInstances).

pub mod forward;
pub mod instances;
pub mod leadership;

use crate::writer::Writer;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Another instance, as this one knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Peer {
    /// Its `--instance-id`.
    pub id: String,
    /// Where other instances reach it (`--advertise`).
    pub address: String,
    /// The leader epoch it won (0 when it does not lead).
    #[serde(default)]
    pub epoch: i64,
}

/// What this instance is now.
#[derive(Debug, Clone, PartialEq)]
pub enum Role {
    /// Not yet decided (starting, or etcd unreachable).
    Starting,
    /// The leader: it decides. `valid_until` is when its lease may be gone (`None`: a single
    /// instance, whose leadership never expires).
    Leader {
        /// The leader key's create revision.
        epoch: i64,
        /// Past this instant it must not answer as the leader.
        valid_until: Option<Instant>,
    },
    /// A follower, which relays calls to the leader when it knows one.
    Follower {
        /// The leader, if known.
        leader: Option<Peer>,
    },
}

impl Role {
    /// Whether the role allows deciding at `now`.
    pub fn leads_at(&self, now: Instant) -> bool {
        match self {
            Role::Leader { valid_until, .. } => valid_until.is_none_or(|t| now < t),
            _ => false,
        }
    }

    /// Its name in logs and ListInstances.
    pub fn name(&self) -> &'static str {
        match self {
            Role::Starting => "starting",
            Role::Leader { .. } => "leader",
            Role::Follower { .. } => "follower",
        }
    }
}

/// Why a call cannot be decided here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotLeader {
    /// No leader is known (an election is under way, or etcd is unreachable).
    #[error(
        "no arbiter instance leads right now (an election is under way or etcd is unreachable); retry shortly"
    )]
    NoLeader,
    /// Another instance leads.
    #[error("this instance does not lead; the leader is {0}")]
    Elsewhere(String),
}

/// This instance's role and, while it leads, its writer.
#[derive(Debug, Clone)]
pub struct Membership {
    role: watch::Receiver<Role>,
    writer: Arc<RwLock<Option<Writer>>>,
    me: Arc<Peer>,
}

/// The side that changes the role: [`leadership`] (or nothing, for a single instance).
#[derive(Debug)]
pub struct RoleSetter {
    role: watch::Sender<Role>,
    writer: Arc<RwLock<Option<Writer>>>,
}

impl Membership {
    /// A single instance: the leader for good, with `writer`.
    pub fn solo(writer: Writer, me: Peer) -> Membership {
        let (m, setter) = Membership::new(me);
        setter.lead(0, None, writer);
        // The sender lives as long as any receiver needs a value: keep it alive forever.
        std::mem::forget(setter.role);
        m
    }

    /// A member that starts undecided, and the handle that decides.
    pub fn new(me: Peer) -> (Membership, RoleSetter) {
        let (tx, rx) = watch::channel(Role::Starting);
        let writer = Arc::new(RwLock::new(None));
        (
            Membership {
                role: rx,
                writer: writer.clone(),
                me: Arc::new(me),
            },
            RoleSetter { role: tx, writer },
        )
    }

    /// This instance.
    pub fn me(&self) -> &Peer {
        &self.me
    }

    /// The role now.
    pub fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    /// The writer, if this instance leads now.
    pub fn writer(&self) -> Result<Writer, NotLeader> {
        let role = self.role();
        if role.leads_at(Instant::now()) {
            let w = self
                .writer
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(w) = w.as_ref() {
                return Ok(w.clone());
            }
        }
        Err(match role {
            Role::Follower { leader: Some(p) } => {
                NotLeader::Elsewhere(format!("{} at {}", p.id, p.address))
            }
            _ => NotLeader::NoLeader,
        })
    }

    /// Waits until this instance leads or knows a leader, at most `limit`; the role then.
    pub async fn settled(&self, limit: Duration) -> Role {
        let mut rx = self.role.clone();
        let wait = rx.wait_for(|r| match r {
            Role::Leader { .. } => r.leads_at(Instant::now()),
            Role::Follower { leader } => leader.is_some(),
            Role::Starting => false,
        });
        match tokio::time::timeout(limit, wait).await {
            Ok(Ok(r)) => r.clone(),
            _ => self.role(),
        }
    }

    /// A receiver that sees every role change.
    pub fn changes(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }

    /// Stops the writer if there is one (shutdown).
    pub fn stop_writer(&self) {
        let w = self
            .writer
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(w) = w.as_ref() {
            w.stop();
        }
    }
}

impl RoleSetter {
    /// This instance leads from now on with `writer`.
    pub fn lead(&self, epoch: i64, valid_until: Option<Instant>, writer: Writer) {
        *self
            .writer
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(writer);
        self.role.send_replace(Role::Leader { epoch, valid_until });
    }

    /// The lease was renewed: leadership now lasts until `valid_until`.
    pub fn extend(&self, valid_until: Instant) {
        self.role.send_modify(|r| {
            if let Role::Leader { valid_until: v, .. } = r {
                *v = Some(valid_until);
            }
        });
    }

    /// This instance follows (`leader` if known); a writer it had is stopped, so that calls it
    /// had queued are answered with a retryable error and nothing more is committed.
    pub fn follow(&self, leader: Option<Peer>) {
        let old = self
            .writer
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        self.role.send_replace(Role::Follower { leader });
        if let Some(w) = old {
            w.stop();
        }
    }

    /// Undecided again (etcd unreachable).
    pub fn unsure(&self) {
        let old = self
            .writer
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        self.role.send_replace(Role::Starting);
        if let Some(w) = old {
            w.stop();
        }
    }

    /// The role now.
    pub fn role(&self) -> Role {
        self.role.borrow().clone()
    }
}
