//! The auth file: users, their static tokens, passwords and roles (a user-facing contract).
//!
//! ```toml
//! [[users]]
//! name = "alice"
//! token = "alice-token-000000000001"   # optional static API token
//! password_hash = "$argon2id$v=19$..."  # optional, for Login (or `password`, plain text)
//! role = "operator"                     # viewer | operator | admin
//! ```
//! Loading reports every problem with the key that holds it, like the inventory does.

use super::Role;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::collections::HashMap;
use std::fmt;

/// How a user proves who they are at Login.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// No password: static token only.
    None,
    /// A plain-text password from the file.
    Plain(String),
    /// An argon2 hash in PHC format, validated at load.
    Hash(String),
}

impl fmt::Debug for Secret {
    /// Never prints a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Secret::None => "None",
            Secret::Plain(_) => "Plain(..)",
            Secret::Hash(_) => "Hash(..)",
        })
    }
}

/// One user of the auth file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Unique name; the owner of their tasks.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// For Login.
    pub secret: Secret,
}

/// The users of an auth file, indexed by name and by static token.
#[derive(Debug, Clone, Default)]
pub struct Users {
    users: Vec<User>,
    by_name: HashMap<String, usize>,
    by_token: HashMap<String, usize>,
}

impl Users {
    /// A user by name.
    pub fn by_name(&self, name: &str) -> Option<&User> {
        self.by_name.get(name).map(|&i| &self.users[i])
    }

    /// A user by static token.
    pub fn by_token(&self, token: &str) -> Option<&User> {
        self.by_token.get(token).map(|&i| &self.users[i])
    }

    /// How many users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Everything wrong with an auth file, each with its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("; "))]
pub struct AuthFileError {
    /// "users[1].role: unknown role 'root' (viewer, operator, admin)", ...
    pub problems: Vec<String>,
}

/// Parses an auth file's text.
pub fn parse(text: &str) -> Result<Users, AuthFileError> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| AuthFileError {
        problems: vec![format!("invalid TOML: {}", e.message())],
    })?;
    let mut problems = Vec::new();
    for key in doc.keys().filter(|k| k.as_str() != "users") {
        problems.push(format!(
            "{key}: unknown key (the file holds [[users]] only)"
        ));
    }
    let entries = match doc.get("users") {
        None => {
            problems.push("users: missing; an auth file needs at least one [[users]]".into());
            &Vec::new()
        }
        Some(toml::Value::Array(a)) => a,
        Some(_) => {
            problems.push("users: must be an array of tables ([[users]])".into());
            &Vec::new()
        }
    };
    let mut users = Users::default();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("users[{i}]");
        let Some(t) = entry.as_table() else {
            problems.push(format!("{at}: must be a table"));
            continue;
        };
        if let Some(u) = user(t, &at, &mut problems) {
            let idx = users.users.len();
            if users.by_name.insert(u.name.clone(), idx).is_some() {
                problems.push(format!("{at}.name: duplicate user '{}'", u.name));
            }
            if let Some(token) = t.get("token").and_then(toml::Value::as_str)
                && users.by_token.insert(token.to_owned(), idx).is_some()
            {
                problems.push(format!(
                    "{at}.token: the same token is given to another user"
                ));
            }
            users.users.push(u);
        }
    }
    if problems.is_empty() {
        Ok(users)
    } else {
        Err(AuthFileError { problems })
    }
}

fn user(t: &toml::Table, at: &str, problems: &mut Vec<String>) -> Option<User> {
    const KEYS: [&str; 5] = ["name", "token", "password", "password_hash", "role"];
    for key in t.keys().filter(|k| !KEYS.contains(&k.as_str())) {
        problems.push(format!(
            "{at}.{key}: unknown key (expected one of {})",
            KEYS.join(", ")
        ));
    }
    let text = |key: &str, problems: &mut Vec<String>| match t.get(key) {
        None => None,
        Some(toml::Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => {
            problems.push(format!("{at}.{key}: must be a non-empty string"));
            None
        }
    };
    let name = text("name", problems);
    if name.is_none() && !t.contains_key("name") {
        problems.push(format!("{at}.name: missing"));
    }
    let _ = text("token", problems);
    let role = match text("role", problems) {
        None => {
            if !t.contains_key("role") {
                problems.push(format!("{at}.role: missing (viewer, operator or admin)"));
            }
            None
        }
        Some(r) => {
            let role = Role::parse(&r);
            if role.is_none() {
                problems.push(format!(
                    "{at}.role: unknown role '{r}' (viewer, operator, admin)"
                ));
            }
            role
        }
    };
    let secret = match (text("password", problems), text("password_hash", problems)) {
        (Some(_), Some(_)) => {
            problems.push(format!("{at}: give password or password_hash, not both"));
            Secret::None
        }
        (Some(p), None) => Secret::Plain(p),
        (None, Some(h)) => match PasswordHash::new(&h) {
            Ok(_) => Secret::Hash(h),
            Err(e) => {
                problems.push(format!(
                    "{at}.password_hash: not an argon2 PHC string ({e})"
                ));
                Secret::None
            }
        },
        (None, None) => Secret::None,
    };
    Some(User {
        name: name?,
        role: role?,
        secret,
    })
}

/// Whether `password` matches a PHC hash (validated at load).
pub(crate) fn verify_hash(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash that no password is known to match, verified against for unknown users so that their
/// refusal takes as long as a wrong password. Made once, on first use.
pub(crate) fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let mut secret = [0u8; 32];
        let _ = getrandom::fill(&mut secret);
        let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        // Without OS randomness, a fixed salt still costs the same time.
        hash_password(&secret).unwrap_or_else(|_| {
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
             oq4Jp7wKSNcoc8y4oMgA6mFkbcJb9AmQ4sJNqNjYqWM"
                .to_owned()
        })
    })
}

/// An argon2id PHC hash of `password` with a random salt, for `arbiter-server --hash-password`.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no OS randomness: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_users_and_their_secrets() {
        let hash = hash_password("pw").expect("hash");
        let users = parse(&format!(
            "[[users]]\nname = \"a\"\nrole = \"admin\"\npassword_hash = \"{hash}\"\n\
             [[users]]\nname = \"b\"\nrole = \"viewer\"\ntoken = \"tok\"\n"
        ))
        .expect("valid");
        assert_eq!(users.len(), 2);
        assert_eq!(users.by_token("tok").map(|u| u.name.as_str()), Some("b"));
        let Some(Secret::Hash(h)) = users.by_name("a").map(|u| u.secret.clone()) else {
            panic!("a has a hash");
        };
        assert!(verify_hash(&h, "pw"));
        assert!(!verify_hash(&h, "pW"));
    }

    #[test]
    fn reports_every_problem_with_its_key() {
        let err = parse(
            "extra = 1\n[[users]]\nname = \"a\"\nrole = \"root\"\n\
             [[users]]\nname = \"a\"\nrole = \"viewer\"\ntoken = \"t\"\npassword_hash = \"nope\"\n\
             [[users]]\nrole = \"viewer\"\ntoken = \"t\"\ncolour = \"red\"\n",
        )
        .expect_err("invalid");
        let all = err.problems.join("\n");
        for needle in [
            "extra: unknown key",
            "users[0].role: unknown role 'root'",
            "users[1].password_hash: not an argon2 PHC string",
            "users[2].name: missing",
            "users[2].colour: unknown key",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
    }

    #[test]
    fn duplicates_are_refused() {
        let err = parse(
            "[[users]]\nname = \"a\"\nrole = \"viewer\"\ntoken = \"t\"\n\
             [[users]]\nname = \"a\"\nrole = \"viewer\"\ntoken = \"t\"\n",
        )
        .expect_err("invalid");
        let all = err.problems.join("\n");
        assert!(all.contains("users[1].name: duplicate user 'a'"), "{all}");
        assert!(all.contains("users[1].token: the same token"), "{all}");
    }

    #[test]
    fn an_empty_file_is_refused() {
        assert!(parse("").is_err());
        assert!(parse("not toml [").is_err());
    }
}
