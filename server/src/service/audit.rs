//! The audit log: who was refused, and who reloaded the inventory; and the entries of the
//! durable audit trail ([`crate::engine::audit`]) with who asked: [`Audit::entry`].
//!
//! Accepted changes are logged where they are made (task created, lock granted, task dropped,
//! node state set: `info`). This module logs, in the same style, what the log must also tell:
//! refusals because of who the caller is (`warn`: an unknown or missing ticket, a role that may
//! not do the call, a task that belongs to someone else, a failed Login), refused and accepted
//! inventory reloads (SIGHUP or `arbiter.v1.ReloadInventory`), and accepted Logins (`info`).
//!
//! Every line carries `call` (the gRPC method, or `SIGHUP`), `user` and `role` when they are
//! known, `peer` (the client's address, `-` when unknown), `outcome` and, for a refusal,
//! `reason`. Passwords and tickets are never logged. A user name that did not authenticate (a
//! failed Login's) is logged quoted and escaped, as it is whatever the client sent.

use super::error::ServiceError;
use crate::engine::audit::{AuditEntry, AuditKind};
use crate::engine::reload::Reloaded;
use crate::identity::{AuthError, Caller, LoginFailure, Role};
use std::fmt;
use std::net::SocketAddr;

/// The user named in the log of a reload that SIGHUP asked for: a signal carries no identity.
pub const SIGNAL_USER: &str = "(signal)";

/// One call, as the log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audit {
    /// The gRPC method (`CreateMaintenanceTask`), or `SIGHUP`.
    pub call: &'static str,
    /// The client's address, when the transport knows it.
    pub peer: Option<SocketAddr>,
}

/// Who asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initiator<'a> {
    /// An authenticated caller of `arbiter.v1.ReloadInventory`.
    Caller(&'a Caller),
    /// SIGHUP: a local process allowed to signal the server.
    Signal,
}

impl Audit {
    /// An audit-trail entry of `kind` made by `caller` (user and role; empty when unknown) on
    /// this call, with its peer address.
    pub fn entry(&self, kind: AuditKind, caller: Option<&Caller>) -> AuditEntry {
        AuditEntry {
            user: caller.map(|c| c.user.clone()).unwrap_or_default(),
            role: caller.map(|c| c.role.to_string()).unwrap_or_default(),
            peer: Peer(self.peer).to_string(),
            ..AuditEntry::new(kind)
        }
    }

    /// An audit-trail entry of `kind` asked for by `by` (a caller, or SIGHUP).
    pub fn entry_by(&self, kind: AuditKind, by: Initiator<'_>) -> AuditEntry {
        match by {
            Initiator::Caller(c) => self.entry(kind, Some(c)),
            Initiator::Signal => AuditEntry {
                user: SIGNAL_USER.into(),
                ..self.entry(kind, None)
            },
        }
    }

    /// The call `call` of `request` (its peer address from the connection).
    pub fn of<T>(call: &'static str, request: &tonic::Request<T>) -> Audit {
        Audit {
            call,
            peer: request.remote_addr(),
        }
    }

    /// A call over HTTP from `peer`.
    pub fn http(call: &'static str, peer: std::net::SocketAddr) -> Audit {
        Audit {
            call,
            peer: Some(peer),
        }
    }

    /// A reload asked for by SIGHUP.
    pub fn sighup() -> Audit {
        Audit {
            call: "SIGHUP",
            peer: None,
        }
    }

    /// Logs `result` if it is a refusal because of who the caller is (or is not); returns it.
    /// `caller` is who the call was made as, once known.
    pub fn check<T>(
        &self,
        caller: Option<&Caller>,
        result: Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        if let Err(ServiceError::Auth(e)) = &result {
            self.denied(caller, e);
        }
        result
    }

    /// Logs an identity or permission refusal.
    pub fn denied(&self, caller: Option<&Caller>, e: &AuthError) {
        let peer = Peer(self.peer);
        match e {
            AuthError::Forbidden { user, role, .. } => {
                tracing::warn!(call = self.call, user = %user, role = %role, %peer,
                    outcome = "refused", reason = %e, "permission denied");
            }
            AuthError::NotOwner { user, .. } => {
                let role = caller.map_or(Role::Operator, |c| c.role);
                tracing::warn!(call = self.call, user = %user, role = %role, %peer,
                    outcome = "refused", reason = %e, "permission denied");
            }
            AuthError::MissingTicket | AuthError::UnknownTicket | AuthError::MalformedTicket => {
                tracing::warn!(call = self.call, %peer, outcome = "refused", reason = %e,
                    "not authenticated");
            }
            AuthError::BadCredentials => {
                tracing::warn!(call = self.call, %peer, outcome = "refused", reason = %e,
                    "login refused");
            }
        }
    }

    /// Logs a failed Login: the name tried (quoted, as sent) and why, never the password.
    pub fn login_failed(&self, user: &str, why: LoginFailure) {
        tracing::warn!(call = self.call, user = ?user, peer = %Peer(self.peer),
            outcome = "refused", reason = %why, "login refused");
    }

    /// Logs a Login that issued a session.
    pub fn login_accepted(&self, user: &str, role: Role) {
        tracing::info!(call = self.call, user = ?user, role = %role, peer = %Peer(self.peer),
            outcome = "logged in", "login accepted");
    }

    /// Logs an inventory reload that `by` asked for.
    pub fn reloaded(&self, by: Initiator<'_>, r: &Reloaded) {
        let (user, role) = who(by);
        tracing::info!(call = self.call, user = %user, role = %role, peer = %Peer(self.peer),
            outcome = "reloaded", nodes_before = r.nodes.0, nodes_after = r.nodes.1,
            groups_before = r.groups.0, groups_after = r.groups.1,
            "inventory reloaded: {} -> {}, {} -> {}",
            count(r.nodes.0, "node"), count(r.nodes.1, "node"),
            count(r.groups.0, "storage group"), count(r.groups.1, "storage group"));
    }

    /// Logs a reload that was refused (an invalid file, a live lock it would strand) or that
    /// failed (the writer could not take it).
    pub fn reload_refused(&self, by: Initiator<'_>, e: &ServiceError) {
        let (user, role) = who(by);
        let peer = Peer(self.peer);
        match e {
            ServiceError::Writer(_) => {
                tracing::error!(call = self.call, user = %user, role = %role, %peer,
                    outcome = "failed", reason = %e, "inventory reload failed");
            }
            _ => {
                tracing::warn!(call = self.call, user = %user, role = %role, %peer,
                    outcome = "refused", reason = %e, "inventory reload refused");
            }
        }
    }
}

fn who(by: Initiator<'_>) -> (&str, String) {
    match by {
        Initiator::Caller(c) => (&c.user, c.role.to_string()),
        Initiator::Signal => (SIGNAL_USER, "-".to_owned()),
    }
}

/// `n` and `noun`, plural unless `n` is 1: "1 node", "5 nodes".
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A peer address in the log; `-` when the transport does not know it.
#[derive(Debug, Clone, Copy)]
struct Peer(Option<SocketAddr>);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_singular_for_one() {
        assert_eq!(count(1, "node"), "1 node");
        assert_eq!(count(0, "node"), "0 nodes");
        assert_eq!(count(5, "storage group"), "5 storage groups");
    }

    #[test]
    fn an_unknown_peer_is_a_dash() {
        assert_eq!(Peer(None).to_string(), "-");
        let a: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        assert_eq!(Peer(Some(a)).to_string(), "127.0.0.1:9");
    }
}
