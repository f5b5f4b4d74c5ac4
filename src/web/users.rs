//! UI accounts: `DIR/ui-users.json` (mode 0600), one argon2id PHC string per
//! user, written atomically (temp file, fsync, rename) so `lumpy user add`
//! works while `lumpy serve` runs; the server re-reads the file when it
//! changes.
//!
//! Owns that file only; never touches the store, the mirror or link secrets
//! (a peer link's secret is not an account and cannot log in).

use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

/// File name of the accounts inside a data directory.
pub const USERS_FILE: &str = "ui-users.json";
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a lumpy accounts file: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error(
        "user name '{0}': use 1 to 64 letters, digits, '.', '-', '_' or '@', not starting with '.'"
    )]
    BadName(String),
    #[error("password: at least {MIN_PASSWORD} characters")]
    ShortPassword,
    #[error("user '{0}' already exists (remove it first to change the password)")]
    Exists(String),
    #[error("no user named '{0}'")]
    Unknown(String),
    #[error("hashing the password: {0}")]
    Hash(String),
    #[error("{path}: encoding the accounts: {source}")]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The operating system gave no random bytes (getrandom).
    #[error("no randomness from the operating system for a salt: {0}")]
    Random(String),
}

/// One account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    /// argon2id PHC string (`$argon2id$v=19$m=...`).
    pub hash: String,
    /// Unix seconds of `user add`.
    pub created: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct UsersFile {
    users: Vec<User>,
}

pub fn users_path(dir: &Path) -> PathBuf {
    dir.join(USERS_FILE)
}

/// A user name: what can appear in a log line and a cookie-free URL safely.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

/// The accounts; an absent file is no accounts.
pub fn load(dir: &Path) -> Result<Vec<User>, UserError> {
    let path = users_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<UsersFile>(&bytes)
            .map(|f| f.users)
            .map_err(|e| UserError::Parse {
                path,
                detail: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(UserError::Io { path, source }),
    }
}

fn save(dir: &Path, users: &[User]) -> Result<(), UserError> {
    let path = users_path(dir);
    let body = serde_json::to_vec_pretty(&UsersFile {
        users: users.to_vec(),
    })
    .map_err(|source| UserError::Encode {
        path: path.clone(),
        source,
    })?;
    crate::durable::write(&path, &body, None, Some(0o600))
        .map_err(|source| UserError::Io { path, source })
}

/// argon2id with the RFC 9106 second recommended option scaled to a sensor:
/// 19 MiB, 2 passes, 1 lane (OWASP's minimum for argon2id).
fn hasher() -> Result<Argon2<'static>, UserError> {
    let params = Params::new(19 * 1024, 2, 1, None).map_err(|e| UserError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

pub fn hash_password(password: &str) -> Result<String, UserError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| UserError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| UserError::Hash(e.to_string()))?;
    hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

/// A hash of a password nobody has, checked when the user is unknown so an
/// unknown name costs the same time as a wrong password.
pub fn dummy_hash() -> String {
    hash_password("lumpy: no such user, no such password").unwrap_or_default()
}

/// True if `password` matches the PHC string `hash`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    // The parameters come from the PHC string itself.
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

pub fn add(dir: &Path, name: &str, password: &str) -> Result<(), UserError> {
    if !valid_name(name) {
        return Err(UserError::BadName(name.chars().take(80).collect()));
    }
    if password.chars().count() < MIN_PASSWORD {
        return Err(UserError::ShortPassword);
    }
    let mut users = load(dir)?;
    if users.iter().any(|u| u.name == name) {
        return Err(UserError::Exists(name.to_string()));
    }
    let created = crate::clock::now_secs();
    users.push(User {
        name: name.to_string(),
        hash: hash_password(password)?,
        created,
    });
    save(dir, &users)
}

pub fn remove(dir: &Path, name: &str) -> Result<(), UserError> {
    let mut users = load(dir)?;
    let before = users.len();
    users.retain(|u| u.name != name);
    if users.len() == before {
        return Err(UserError::Unknown(name.chars().take(80).collect()));
    }
    save(dir, &users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_verify_remove() {
        let dir = tempfile::tempdir().unwrap();
        add(dir.path(), "alice", "correct horse").unwrap();
        assert!(matches!(
            add(dir.path(), "alice", "another one"),
            Err(UserError::Exists(_))
        ));
        assert!(matches!(
            add(dir.path(), "bob", "short"),
            Err(UserError::ShortPassword)
        ));
        assert!(matches!(
            add(dir.path(), "bad name", "long enough"),
            Err(UserError::BadName(_))
        ));
        let users = load(dir.path()).unwrap();
        assert_eq!(users.len(), 1);
        assert!(users[0].hash.starts_with("$argon2id$"));
        assert!(verify_password(&users[0].hash, "correct horse"));
        assert!(!verify_password(&users[0].hash, "correct horse "));
        assert!(!verify_password("not a hash", "correct horse"));
        remove(dir.path(), "alice").unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        assert!(matches!(
            remove(dir.path(), "alice"),
            Err(UserError::Unknown(_))
        ));
    }
}
