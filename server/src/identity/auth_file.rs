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
use argon2::password_hash::{
    ParamsString, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
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
        (None, Some(h)) => match check_hash(&h) {
            Ok(()) => Secret::Hash(h),
            Err(why) => {
                let who = match &name {
                    Some(n) => format!("user '{n}'"),
                    None => "this user".to_owned(),
                };
                problems.push(format!("{at}.password_hash: unusable for {who}: {why}"));
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

/// The most memory a hash may ask for, in KiB (1 GiB). Verifying allocates all of it; much more
/// and a Login would fail to allocate and abort the server instead of answering.
const MAX_M_COST: u32 = 1024 * 1024;

/// Checks at load everything a Login with this hash would need: a PHC string, an argon2 variant
/// and version, parameters that build an [`Argon2`] instance, a salt argon2 accepts and a hash.
/// Without this a broken hash is found only at the user's first Login, as a wrong password.
fn check_hash(phc: &str) -> Result<(), String> {
    let hash = PasswordHash::new(phc).map_err(|e| {
        format!(
            "not a PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash): {}",
            phc_problem(e)
        )
    })?;
    let algorithm = Algorithm::try_from(hash.algorithm).map_err(|_| {
        format!(
            "algorithm '{}' is not argon2 (argon2id, argon2i or argon2d)",
            hash.algorithm
        )
    })?;
    let version = match hash.version {
        None => Version::default(),
        Some(v) => Version::try_from(v)
            .map_err(|_| format!("version v={v} is not one of argon2's (v=19 or v=16)"))?,
    };
    let mut names = std::collections::BTreeSet::new();
    for (name, _) in hash.params.iter() {
        if !names.insert(name) {
            // Argon2 would silently take the last one, as JSON does with a duplicate key.
            return Err(format!("parameter '{name}' is given twice"));
        }
    }
    let params = Params::try_from(&hash).map_err(|e| {
        let why = params_problem(&hash.params).unwrap_or_else(|| e.to_string());
        format!(
            "parameters '{}' do not build an argon2 instance: {why}",
            hash.params
        )
    })?;
    if params.m_cost() > MAX_M_COST {
        return Err(format!(
            "m={} asks for more than {MAX_M_COST} KiB (1 GiB) of memory per Login",
            params.m_cost()
        ));
    }
    let Some(salt) = hash.salt else {
        return Err("no salt".into());
    };
    // A salt string is at most 64 characters, so it decodes to at most 48 bytes.
    let mut buf = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut buf)
        .map_err(|e| format!("the salt '{salt}' is not unpadded base64 ({e})"))?;
    if salt_bytes.len() < argon2::MIN_SALT_LEN {
        return Err(format!(
            "the salt is {} bytes; argon2 needs at least {}",
            salt_bytes.len(),
            argon2::MIN_SALT_LEN
        ));
    }
    if hash.hash.is_none() {
        return Err("no hash after the salt".into());
    }
    // What a Login builds to verify; `Argon2::new` itself cannot fail once `Params` did not.
    let _argon2 = Argon2::new(algorithm, version, params);
    Ok(())
}

/// Why argon2 refuses these parameters, in words; `None` when argon2's own error says it best.
fn params_problem(params: &ParamsString) -> Option<String> {
    const KNOWN: [&str; 5] = ["m", "t", "p", "keyid", "data"];
    if let Some((name, _)) = params.iter().find(|(n, _)| !KNOWN.contains(&n.as_str())) {
        return Some(format!(
            "unknown parameter '{name}' (argon2 takes m, t, p, keyid and data)"
        ));
    }
    // Absent ones take argon2's defaults, as verification does.
    let number = |key: &str, default: u32| match params.get_str(key) {
        None => Some(default),
        Some(v) => v.parse::<u32>().ok(),
    };
    let m = number("m", Params::DEFAULT_M_COST)?;
    let t = number("t", Params::DEFAULT_T_COST)?;
    let p = number("p", Params::DEFAULT_P_COST)?;
    if t < Params::MIN_T_COST {
        return Some(format!("t={t}: the time cost must be at least 1"));
    }
    if !(Params::MIN_P_COST..=Params::MAX_P_COST).contains(&p) {
        return Some(format!(
            "p={p}: the parallelism must be 1 to {}",
            Params::MAX_P_COST
        ));
    }
    // p is at most 2^24 - 1, so 8 × p fits.
    let min_m = 8 * p;
    if m < min_m {
        return Some(format!(
            "m={m}: the memory cost must be at least 8 KiB per lane (8 × p = {min_m})"
        ));
    }
    None
}

/// What is wrong with a string the PHC parser refused, in words.
fn phc_problem(e: argon2::password_hash::Error) -> String {
    use argon2::password_hash::Error;
    match e {
        Error::OutputSize { .. } | Error::B64Encoding(_) => {
            format!("the hash must be 10 to 64 bytes of unpadded base64 ({e})")
        }
        Error::SaltInvalid(_) => {
            format!("the salt must be 4 to 64 characters of unpadded base64 ({e})")
        }
        other => other.to_string(),
    }
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
            "users[1].password_hash: unusable for user 'a': not a PHC string",
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

    /// A valid argon2id hash (of an unknown password), the base of the broken ones below.
    const GOOD: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                        oq4Jp7wKSNcoc8y4oMgA6mFkbcJb9AmQ4sJNqNjYqWM";

    fn with_hash(hash: &str) -> Result<Users, AuthFileError> {
        parse(&format!(
            "[[users]]\nname = \"ok\"\nrole = \"admin\"\ntoken = \"tok\"\n\
             [[users]]\nname = \"yves\"\nrole = \"operator\"\npassword_hash = '{hash}'\n"
        ))
    }

    #[test]
    fn a_good_hash_still_loads() {
        let users = with_hash(GOOD).expect("valid");
        assert_eq!(
            users.by_name("yves").map(|u| u.secret.clone()),
            Some(Secret::Hash(GOOD.to_owned()))
        );
        // Other variants, the older version and the optional keys argon2 knows load too.
        for h in [
            GOOD.replace("argon2id", "argon2i"),
            GOOD.replace("argon2id", "argon2d"),
            GOOD.replace("v=19", "v=16"),
            GOOD.replace("$v=19", ""),
            GOOD.replace("p=1", "p=1,keyid=AAAA"),
            GOOD.replace("m=19456,t=2,p=1", "m=8,t=1,p=1"),
        ] {
            assert!(with_hash(&h).is_ok(), "{h}: {:?}", with_hash(&h));
        }
        // Whatever argon2 itself writes passes, and verifies.
        let salt = SaltString::encode_b64(b"saltsalt").expect("salt");
        for (algorithm, version) in [
            (Algorithm::Argon2id, Version::V0x13),
            (Algorithm::Argon2i, Version::V0x10),
            (Algorithm::Argon2d, Version::V0x13),
        ] {
            let params = Params::new(8, 1, 1, Some(12)).expect("params");
            let h = Argon2::new(algorithm, version, params)
                .hash_password(b"pw", &salt)
                .expect("hash")
                .to_string();
            assert_eq!(check_hash(&h), Ok(()), "{h}");
            assert!(verify_hash(&h, "pw"), "{h}");
            assert!(!verify_hash(&h, "pW"), "{h}");
        }
    }

    #[test]
    fn a_hash_that_cannot_be_verified_is_refused_naming_the_user() {
        let cases = [
            // Parameters that do not build an Argon2 instance.
            (
                GOOD.replace("m=19456", "m=0"),
                "parameters 'm=0,t=2,p=1' do not build an argon2 instance: m=0: the memory cost must be at least 8 KiB",
            ),
            (
                GOOD.replace("t=2", "t=0"),
                "parameters 'm=19456,t=0,p=1' do not build an argon2 instance: t=0: the time cost",
            ),
            (
                GOOD.replace("p=1", "p=0"),
                "parameters 'm=19456,t=2,p=0' do not build an argon2 instance: p=0: the parallelism",
            ),
            (
                GOOD.replace("m=19456,t=2,p=1", "m=8,t=2,p=2"),
                "parameters 'm=8,t=2,p=2' do not build an argon2 instance: m=8: the memory cost must be at least 8 KiB per lane (8 × p = 16)",
            ),
            (
                GOOD.replace("t=2", "t=2,t=3"),
                "parameter 't' is given twice",
            ),
            (
                GOOD.replace("p=1", "p=1,x=1"),
                "parameters 'm=19456,t=2,p=1,x=1' do not build an argon2 instance: unknown parameter 'x'",
            ),
            (
                GOOD.replace("m=19456", "m=4294967295"),
                "more than 1048576 KiB",
            ),
            // Salts argon2 refuses.
            (
                GOOD.replace("c29tZXNhbHRzb21lc2FsdA", "c2FsdA"),
                "the salt is 4 bytes; argon2 needs at least 8",
            ),
            (
                GOOD.replace("c29tZXNhbHRzb21lc2FsdA", "c29tZXNh.HRzb21lc2FsdA"),
                "is not unpadded base64",
            ),
            // A hash of the wrong length, or none.
            (
                GOOD.replace("oq4Jp7wKSNcoc8y4oMgA6mFkbcJb9AmQ4sJNqNjYqWM", "oq4Jp7wKSNc"),
                "the hash must be 10 to 64 bytes",
            ),
            (
                GOOD.replace("$oq4Jp7wKSNcoc8y4oMgA6mFkbcJb9AmQ4sJNqNjYqWM", ""),
                "no hash after the salt",
            ),
            // Not argon2, or not a version of it.
            (
                GOOD.replace("argon2id", "argon2x"),
                "algorithm 'argon2x' is not argon2",
            ),
            (GOOD.replace("v=19", "v=18"), "version v=18"),
            // Garbage after the prefix.
            ("$argon2id$garbage".to_owned(), "the salt 'garbage' is not"),
            (
                "$argon2id$v=19$!!".to_owned(),
                "not a PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash): the salt must be 4 to 64",
            ),
            (
                "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$oq4Jp7wKSNc$x".to_owned(),
                "not a PHC string",
            ),
        ];
        for (hash, needle) in cases {
            let err = with_hash(&hash).expect_err(&hash);
            let all = err.problems.join("\n");
            assert_eq!(err.problems.len(), 1, "{hash}: {all}");
            assert!(
                all.starts_with("users[1].password_hash: unusable for user 'yves': "),
                "{hash}: {all}"
            );
            assert!(all.contains(needle), "{hash}: {needle:?} not in {all}");
        }
    }

    #[test]
    fn the_decoy_fallback_is_a_usable_hash() {
        // `decoy_hash` falls back to this string (the same as GOOD) without OS randomness.
        assert_eq!(check_hash(GOOD), Ok(()));
        assert_eq!(check_hash(decoy_hash()), Ok(()));
    }

    #[test]
    fn an_empty_file_is_refused() {
        assert!(parse("").is_err());
        assert!(parse("not toml [").is_err());
    }
}
