//! Session tokens issued by Login: random, bounded in number and lifetime, kept in memory only
//! (a restart logs everyone out; static tokens in the auth file survive it).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a session token stays valid.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// The most live sessions; the oldest goes when a new one would exceed it.
pub(crate) const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_token: HashMap<String, (String, Instant)>,
}

impl Sessions {
    /// A new token for `user`: "arb-" and 48 hex digits of OS randomness.
    pub(crate) fn issue(&mut self, user: &str, now: Instant) -> String {
        self.by_token.retain(|_, (_, expires)| *expires > now);
        if self.by_token.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .by_token
                .iter()
                .min_by_key(|(_, (_, e))| *e)
                .map(|(t, _)| t.clone())
        {
            self.by_token.remove(&oldest);
        }
        let token = new_token();
        self.by_token
            .insert(token.clone(), (user.to_owned(), now + SESSION_TTL));
        token
    }

    /// The user of a live token.
    pub(crate) fn user(&self, token: &str, now: Instant) -> Option<String> {
        self.by_token
            .get(token)
            .filter(|(_, expires)| *expires > now)
            .map(|(user, _)| user.clone())
    }
}

fn new_token() -> String {
    let mut bytes = [0u8; 24];
    // Without OS randomness no token can be safe; the process cannot serve logins at all then.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the OS random source is unavailable");
    let mut s = String::from("arb-");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_unique_and_expire() {
        let mut s = Sessions::default();
        let t0 = Instant::now();
        let a = s.issue("alice", t0);
        let b = s.issue("alice", t0);
        assert_ne!(a, b);
        assert!(a.len() >= 20);
        assert_eq!(s.user(&a, t0).as_deref(), Some("alice"));
        assert_eq!(s.user(&a, t0 + SESSION_TTL), None);
        assert_eq!(s.user("arb-guess", t0), None);
    }
}
