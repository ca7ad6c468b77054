//! Who is calling, and what they may do.
//!
//! A caller presents a ticket in YDB's `x-ydb-auth-ticket` header or as `authorization: Bearer`.
//! Without an auth file the server is open: every caller is an admin and their user name is the
//! ticket itself ("anonymous" without one), which is what YDB's CMS records as a task's owner.
//! With an auth file ([`auth_file`]), a ticket must be a user's static token or a session token
//! that Login issued, and the user's role limits what they may do.

pub mod auth_file;
pub mod sessions;

use auth_file::{Secret, Users};
use sessions::{Sessions, constant_time_eq};
use std::fmt;
use std::time::SystemTime;
use tonic::metadata::MetadataMap;

/// The user name of a caller who presents no ticket in open mode.
pub const ANONYMOUS: &str = "anonymous";

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read only.
    Viewer,
    /// Creates tasks and manages their own.
    Operator,
    /// Everything, including other users' tasks.
    Admin,
}

impl Role {
    /// Parses the auth file's spelling.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl Role {
    /// The role with its indefinite article: "a viewer", "an operator", "an admin".
    pub fn with_article(self) -> &'static str {
        match self {
            Role::Viewer => "a viewer",
            Role::Operator => "an operator",
            Role::Admin => "an admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        })
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user name; the owner of the tasks it creates.
    pub user: String,
    /// What it may do.
    pub role: Role,
}

/// Why a caller was turned away. Every variant is YDB's UNAUTHORIZED.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No ticket, while the server requires one.
    #[error("Access denied: no auth ticket (send x-ydb-auth-ticket or authorization: Bearer)")]
    MissingTicket,
    /// A ticket that matches no token and no live session.
    #[error("Access denied: unknown or expired auth ticket")]
    UnknownTicket,
    /// A header that is not valid text, or an authorization header of another scheme.
    #[error(
        "Access denied: malformed auth header (x-ydb-auth-ticket: TOKEN or authorization: Bearer TOKEN)"
    )]
    MalformedTicket,
    /// Login with a wrong user or password.
    #[error("Invalid user or password")]
    BadCredentials,
    /// The caller's role does not allow the call.
    #[error("Access denied: '{user}' is {} and may not {action}", .role.with_article())]
    Forbidden {
        /// Who.
        user: String,
        /// Their role.
        role: Role,
        /// What they tried.
        action: &'static str,
    },
    /// An operator touching another user's task.
    #[error("Access denied: task '{task}' belongs to '{owner}', not to '{user}'")]
    NotOwner {
        /// Who.
        user: String,
        /// The task.
        task: String,
        /// Its owner.
        owner: String,
    },
}

impl AuthError {
    /// Whether the caller is known and may not do this (as opposed to not being known at all).
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            AuthError::Forbidden { .. } | AuthError::NotOwner { .. }
        )
    }
}

/// Why a Login was refused, for the server's log only: the caller is told
/// [`AuthError::BadCredentials`] whatever the reason, so that the reply does not tell which user
/// names exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoginFailure {
    /// No user of that name.
    #[error("unknown user")]
    UnknownUser,
    /// The user exists and the password is wrong.
    #[error("wrong password")]
    WrongPassword,
    /// The user exists but has only a token, no password.
    #[error("the user has no password (token only)")]
    NoPassword,
    /// An empty user name (open mode).
    #[error("empty user name")]
    EmptyUser,
}

impl From<LoginFailure> for AuthError {
    fn from(_: LoginFailure) -> AuthError {
        AuthError::BadCredentials
    }
}

/// A successful Login: the session token and the role it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The session token (at least 20 characters).
    pub token: String,
    /// The user's role.
    pub role: Role,
}

impl Caller {
    /// Allows tasks to be created and nodes to be marked (operators and admins).
    pub fn require_operator(&self, action: &'static str) -> Result<(), AuthError> {
        if self.role >= Role::Operator {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                user: self.user.clone(),
                role: self.role,
                action,
            })
        }
    }

    /// Allows what only an admin may do.
    pub fn require_admin(&self, action: &'static str) -> Result<(), AuthError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                user: self.user.clone(),
                role: self.role,
                action,
            })
        }
    }

    /// Allows a task to be refreshed, completed or dropped: its owner, or an admin.
    pub fn require_owner(&self, task: &str, owner: &str) -> Result<(), AuthError> {
        self.require_operator("manage tasks")?;
        if self.role == Role::Admin || self.user == owner {
            Ok(())
        } else {
            Err(AuthError::NotOwner {
                user: self.user.clone(),
                task: task.to_owned(),
                owner: owner.to_owned(),
            })
        }
    }
}

/// Resolves tickets to callers, and issues session tokens.
#[derive(Debug)]
pub struct Identity {
    /// `None`: open mode.
    users: Option<Users>,
    sessions: Sessions,
}

impl Identity {
    /// Open mode: no auth file.
    pub fn open(sessions: Sessions) -> Identity {
        Identity {
            users: None,
            sessions,
        }
    }

    /// Enforcing mode, with the users of an auth file.
    pub fn with_users(users: Users, sessions: Sessions) -> Identity {
        Identity {
            users: Some(users),
            sessions,
        }
    }

    /// Whether an auth file is enforced.
    pub fn is_enforcing(&self) -> bool {
        self.users.is_some()
    }

    /// Who sent these request headers.
    pub fn resolve(&self, metadata: &MetadataMap) -> Result<Caller, AuthError> {
        let ticket = ticket(metadata)?;
        if let Some(t) = ticket
            && let Some(user) = self.session_user(t)
        {
            let role = match &self.users {
                Some(users) => users.by_name(&user).ok_or(AuthError::UnknownTicket)?.role,
                None => Role::Admin,
            };
            return Ok(Caller { user, role });
        }
        match (&self.users, ticket) {
            (None, t) => Ok(Caller {
                user: t.unwrap_or(ANONYMOUS).to_owned(),
                role: Role::Admin,
            }),
            (Some(_), None) => Err(AuthError::MissingTicket),
            (Some(users), Some(t)) => users
                .by_token(t)
                .map(|u| Caller {
                    user: u.name.clone(),
                    role: u.role,
                })
                .ok_or(AuthError::UnknownTicket),
        }
    }

    /// Checks a user's password and issues a session token (at least 20 characters). In open
    /// mode any user name is accepted and the token stands for that name.
    ///
    /// Verifying an argon2 hash takes tens of milliseconds: call this off the async workers.
    pub fn login(&self, user: &str, password: &str) -> Result<String, AuthError> {
        Ok(self.login_session(user, password)?.token)
    }

    /// [`Identity::login`] with the role on success and, on failure, why (for the log; the
    /// caller must only be told [`AuthError::BadCredentials`]).
    pub fn login_session(&self, user: &str, password: &str) -> Result<Session, LoginFailure> {
        let role = if let Some(users) = &self.users {
            let found = users.by_name(user);
            let ok = match found.map(|u| &u.secret) {
                Some(Secret::Plain(p)) => constant_time_eq(p.as_bytes(), password.as_bytes()),
                Some(Secret::Hash(h)) => auth_file::verify_hash(h, password),
                // As slow as a wrong password, so that the time of a refusal does not tell
                // which user names exist.
                None | Some(Secret::None) => {
                    auth_file::verify_hash(auth_file::decoy_hash(), password);
                    false
                }
            };
            match found {
                None => return Err(LoginFailure::UnknownUser),
                Some(u) if matches!(u.secret, Secret::None) => {
                    return Err(LoginFailure::NoPassword);
                }
                Some(_) if !ok => return Err(LoginFailure::WrongPassword),
                Some(u) => u.role,
            }
        } else if user.is_empty() {
            return Err(LoginFailure::EmptyUser);
        } else {
            Role::Admin
        };
        Ok(Session {
            token: self.sessions.issue(user, SystemTime::now()),
            role,
        })
    }

    fn session_user(&self, token: &str) -> Option<String> {
        self.sessions.user(token, SystemTime::now())
    }
}

/// The ticket of a request: `x-ydb-auth-ticket`, else `authorization: Bearer`.
fn ticket(metadata: &MetadataMap) -> Result<Option<&str>, AuthError> {
    if let Some(v) = metadata.get("x-ydb-auth-ticket") {
        let t = v.to_str().map_err(|_| AuthError::MalformedTicket)?;
        return Ok(Some(t).filter(|t| !t.is_empty()));
    }
    if let Some(v) = metadata.get("authorization") {
        let v = v.to_str().map_err(|_| AuthError::MalformedTicket)?;
        let t = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .ok_or(AuthError::MalformedTicket)?
            .trim();
        return Ok(Some(t).filter(|t| !t.is_empty()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Sessions {
        Sessions::with_key([1; 32])
    }

    fn headers(pairs: &[(&'static str, &str)]) -> MetadataMap {
        let mut m = MetadataMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().expect("ascii"));
        }
        m
    }

    fn users() -> Users {
        auth_file::parse(
            r#"
            [[users]]
            name = "alice"
            token = "alice-token-000000000001"
            role = "operator"
            [[users]]
            name = "vic"
            token = "vic-token"
            password = "secret"
            role = "viewer"
            "#,
        )
        .expect("auth file")
    }

    #[test]
    fn open_mode_names_the_caller_after_the_ticket() {
        let id = Identity::open(key());
        let c = id
            .resolve(&headers(&[("x-ydb-auth-ticket", "bob")]))
            .expect("caller");
        assert_eq!((c.user.as_str(), c.role), ("bob", Role::Admin));
        let c = id
            .resolve(&headers(&[("authorization", "Bearer carol")]))
            .expect("caller");
        assert_eq!(c.user, "carol");
        assert_eq!(id.resolve(&headers(&[])).expect("caller").user, ANONYMOUS);
        assert_eq!(
            id.resolve(&headers(&[("authorization", "Basic abc")])),
            Err(AuthError::MalformedTicket)
        );
    }

    #[test]
    fn open_mode_login_maps_the_token_to_the_user() {
        let id = Identity::open(key());
        let token = id.login("dave", "anything").expect("token");
        assert!(token.len() >= 20);
        let c = id
            .resolve(&headers(&[("x-ydb-auth-ticket", &token)]))
            .expect("caller");
        assert_eq!(c.user, "dave");
    }

    #[test]
    fn enforcing_mode_needs_a_known_ticket() {
        let id = Identity::with_users(users(), key());
        assert_eq!(id.resolve(&headers(&[])), Err(AuthError::MissingTicket));
        assert_eq!(
            id.resolve(&headers(&[("x-ydb-auth-ticket", "nope")])),
            Err(AuthError::UnknownTicket)
        );
        let c = id
            .resolve(&headers(&[(
                "x-ydb-auth-ticket",
                "alice-token-000000000001",
            )]))
            .expect("alice");
        assert_eq!((c.user.as_str(), c.role), ("alice", Role::Operator));
    }

    #[test]
    fn login_checks_the_password() {
        let id = Identity::with_users(users(), key());
        assert_eq!(id.login("vic", "wrong"), Err(AuthError::BadCredentials));
        assert_eq!(
            id.login("alice", "x"),
            Err(AuthError::BadCredentials),
            "no password set"
        );
        assert_eq!(id.login("nobody", "x"), Err(AuthError::BadCredentials));
        // The log is told why; the caller is not.
        assert_eq!(
            id.login_session("vic", "wrong"),
            Err(LoginFailure::WrongPassword)
        );
        assert_eq!(
            id.login_session("alice", "x"),
            Err(LoginFailure::NoPassword)
        );
        assert_eq!(
            id.login_session("nobody", "x"),
            Err(LoginFailure::UnknownUser)
        );
        assert_eq!(
            id.login_session("vic", "secret").map(|s| s.role),
            Ok(Role::Viewer)
        );
        let token = id.login("vic", "secret").expect("token");
        let c = id
            .resolve(&headers(&[("x-ydb-auth-ticket", &token)]))
            .expect("vic");
        assert_eq!((c.user.as_str(), c.role), ("vic", Role::Viewer));
    }

    #[test]
    fn roles_limit_what_a_caller_may_do() {
        let viewer = Caller {
            user: "v".into(),
            role: Role::Viewer,
        };
        let op = Caller {
            user: "o".into(),
            role: Role::Operator,
        };
        let admin = Caller {
            user: "a".into(),
            role: Role::Admin,
        };
        assert_eq!(
            viewer
                .require_operator("create tasks")
                .expect_err("a viewer")
                .to_string(),
            "Access denied: 'v' is a viewer and may not create tasks"
        );
        let forbidden = AuthError::Forbidden {
            user: "o".into(),
            role: op.role,
            action: "reload the inventory",
        };
        assert_eq!(
            forbidden.to_string(),
            "Access denied: 'o' is an operator and may not reload the inventory"
        );
        assert!(op.require_operator("create tasks").is_ok());
        assert!(op.require_owner("t", "o").is_ok());
        assert!(matches!(
            op.require_owner("t", "x"),
            Err(AuthError::NotOwner { .. })
        ));
        assert!(admin.require_owner("t", "x").is_ok());
    }
}
