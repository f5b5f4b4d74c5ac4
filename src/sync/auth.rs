//! Peer authentication: per-link keys, request signatures, replay defence.
//!
//! Each link (one parent pulling from one child) has its own 32-byte secret,
//! made on the child by `lumpy peer add` and shown once. The secret is an
//! Ed25519 seed: the parent keeps it (mode 0600) and signs every request;
//! the child keeps only the public key, which is all it needs to verify, so
//! a child's disk never holds anything that could forge a request.
//! The signature covers the method, the path with query, the blake3 of the
//! body, a timestamp (accepted within ±300 s) and a random nonce (each
//! accepted once), and the link name (docs/PROTOCOL.md §2).
//! Owns key handling and the check; knows nothing of HTTP frameworks.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::signature::{self, Ed25519KeyPair, KeyPair};

use super::protocol::REPLAY_WINDOW_SECS;

/// Prefix of the textual secret, so a stray secret is recognisable. The
/// text is `lumpy-link-v1:<link name>:<base64url of 32 bytes>`.
pub const SECRET_PREFIX: &str = "lumpy-link-v1:";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing authentication")]
    Missing,
    #[error("malformed authentication header")]
    Malformed,
    /// Same text as `BadSignature`: an answer must not tell a stranger
    /// which link names exist.
    #[error("unknown link or bad signature")]
    UnknownLink,
    #[error("request time is outside the accepted window")]
    Expired,
    #[error("unknown link or bad signature")]
    BadSignature,
    #[error("replayed request")]
    Replayed,
    #[error("source address not allowed for this link")]
    Forbidden,
    #[error("not a lumpy link secret (expected {SECRET_PREFIX}...)")]
    BadSecret,
    /// The operating system gave no random bytes (getrandom).
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// A link secret: the link's name (as the child knows the parent) and 32
/// random bytes.
pub struct Secret {
    pub link: String,
    seed: [u8; 32],
}

impl Secret {
    pub fn generate(link: &str) -> Result<Secret, AuthError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| AuthError::Random(e.to_string()))?;
        Ok(Secret {
            link: link.to_string(),
            seed,
        })
    }

    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}:{}", self.link, B64.encode(self.seed))
    }

    pub fn parse(text: &str) -> Result<Secret, AuthError> {
        let body = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(AuthError::BadSecret)?;
        let (link, key) = body.split_once(':').ok_or(AuthError::BadSecret)?;
        let raw = B64.decode(key).map_err(|_| AuthError::BadSecret)?;
        let seed: [u8; 32] = raw.try_into().map_err(|_| AuthError::BadSecret)?;
        if link.is_empty() || link.contains(' ') {
            return Err(AuthError::BadSecret);
        }
        Ok(Secret {
            link: link.to_string(),
            seed,
        })
    }

    fn key_pair(&self) -> Result<Ed25519KeyPair, AuthError> {
        Ed25519KeyPair::from_seed_unchecked(&self.seed).map_err(|_| AuthError::BadSecret)
    }

    /// The public key (base64url) that the child stores to verify.
    pub fn public_key(&self) -> Result<String, AuthError> {
        Ok(B64.encode(self.key_pair()?.public_key().as_ref()))
    }
}

/// Prefix of a link token: a secret with the child's certificate pinned.
/// The text is `lumpy-link-v2:<link name>:<base64url of 32 bytes>:<sha256
/// hex of the child's certificate DER>`.
pub const TOKEN_PREFIX: &str = "lumpy-link-v2:";

/// What `lumpy peer add` prints and `lumpy child add` takes: the link
/// secret and, unless the child serves plain HTTP, the fingerprint of the
/// certificate its peer API presents (the parent pins it).
pub struct LinkToken {
    pub secret: Secret,
    /// SHA-256 of the child's certificate (lowercase hex); `None` for a
    /// bare secret (a plain-HTTP child, or a secret of before tokens).
    pub cert_sha256: Option<String>,
}

impl LinkToken {
    pub fn to_text(&self) -> String {
        match &self.cert_sha256 {
            Some(f) => format!(
                "{TOKEN_PREFIX}{}:{}:{f}",
                self.secret.link,
                B64.encode(self.secret.seed)
            ),
            None => self.secret.to_text(),
        }
    }

    /// A token, or a bare secret (`lumpy-link-v1:`) with no fingerprint.
    pub fn parse(text: &str) -> Result<LinkToken, AuthError> {
        let text = text.trim();
        let Some(body) = text.strip_prefix(TOKEN_PREFIX) else {
            return Ok(LinkToken {
                secret: Secret::parse(text)?,
                cert_sha256: None,
            });
        };
        let (secret, fp) = body.rsplit_once(':').ok_or(AuthError::BadSecret)?;
        let fp = crate::sync::tls::parse_fingerprint(fp).map_err(|_| AuthError::BadSecret)?;
        Ok(LinkToken {
            secret: Secret::parse(&format!("{SECRET_PREFIX}{secret}"))?,
            cert_sha256: Some(fp),
        })
    }
}

/// The bytes a request signature covers.
pub fn signing_input(
    link: &str,
    method: &str,
    path_and_query: &str,
    ts: i64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    format!(
        "LUMPY-PEER-1\n{link}\n{method}\n{path_and_query}\n{ts}\n{nonce}\n{}",
        blake3::hash(body).to_hex()
    )
    .into_bytes()
}

/// The value of the `x-lumpy-auth` header for one request.
pub fn sign(
    secret: &Secret,
    method: &str,
    path_and_query: &str,
    ts: i64,
    body: &[u8],
) -> Result<String, AuthError> {
    let mut n = [0u8; 12];
    getrandom::fill(&mut n).map_err(|e| AuthError::Random(e.to_string()))?;
    let nonce = B64.encode(n);
    let link = &secret.link;
    let sig = secret.key_pair()?.sign(&signing_input(
        link,
        method,
        path_and_query,
        ts,
        &nonce,
        body,
    ));
    Ok(format!("{link} {ts} {nonce} {}", B64.encode(sig.as_ref())))
}

/// A parsed `x-lumpy-auth` header.
pub struct Presented<'a> {
    pub link: &'a str,
    pub ts: i64,
    pub nonce: &'a str,
    pub signature: Vec<u8>,
}

pub fn parse_header(value: &str) -> Result<Presented<'_>, AuthError> {
    let mut parts = value.split(' ');
    let (Some(link), Some(ts), Some(nonce), Some(sig), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(AuthError::Malformed);
    };
    if link.is_empty() || link.len() > 64 || nonce.len() > 32 || nonce.is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok(Presented {
        link,
        ts: ts.parse().map_err(|_| AuthError::Malformed)?,
        nonce,
        signature: B64.decode(sig).map_err(|_| AuthError::Malformed)?,
    })
}

/// Remembers accepted nonces for twice the window, so none is accepted twice.
#[derive(Default)]
pub struct ReplayGuard {
    seen: Mutex<HashMap<(String, String), i64>>,
}

impl ReplayGuard {
    /// Records (link, nonce); false when it was seen already.
    pub fn first_use(&self, link: &str, nonce: &str, now: i64) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        if seen.len() > 4096 {
            seen.retain(|_, t| now.abs_diff(*t) <= 2 * REPLAY_WINDOW_SECS.unsigned_abs());
        }
        seen.insert((link.to_string(), nonce.to_string()), now)
            .is_none()
    }
}

/// True when a request made at `ts` may be accepted at `now` (within
/// `REPLAY_WINDOW_SECS` either way; a timestamp so far off that the
/// difference overflows is outside).
pub fn within_window(ts: i64, now: i64) -> bool {
    now.abs_diff(ts) <= REPLAY_WINDOW_SECS.unsigned_abs()
}

/// A public key no secret matches: an unknown link's request is checked
/// against it, so it costs what a known link's bad signature costs.
pub const NO_LINK_PUBLIC_KEY: &str = "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik";

/// Checks a presented header against the link's public key.
pub fn verify(
    presented: &Presented<'_>,
    public_key_b64: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now: i64,
    guard: &ReplayGuard,
) -> Result<(), AuthError> {
    // `ts` is unauthenticated here: i64::MIN or MAX must be refused, not
    // overflow.
    if !within_window(presented.ts, now) {
        return Err(AuthError::Expired);
    }
    let key = B64
        .decode(public_key_b64)
        .map_err(|_| AuthError::BadSignature)?;
    let input = signing_input(
        presented.link,
        method,
        path_and_query,
        presented.ts,
        presented.nonce,
        body,
    );
    signature::UnparsedPublicKey::new(&signature::ED25519, key)
        .verify(&input, &presented.signature)
        .map_err(|_| AuthError::BadSignature)?;
    if !guard.first_use(presented.link, presented.nonce, now) {
        return Err(AuthError::Replayed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let s = Secret::generate("top").unwrap();
        let pk = s.public_key().unwrap();
        let g = ReplayGuard::default();
        let h = sign(&s, "GET", "/v1/summary", 1000, b"").unwrap();
        let p = parse_header(&h).unwrap();
        assert_eq!(verify(&p, &pk, "GET", "/v1/summary", b"", 1000, &g), Ok(()));
        // The same header again is a replay.
        assert_eq!(
            verify(&p, &pk, "GET", "/v1/summary", b"", 1001, &g),
            Err(AuthError::Replayed)
        );
        let h2 = sign(&s, "GET", "/v1/summary", 1000, b"").unwrap();
        let p2 = parse_header(&h2).unwrap();
        assert_eq!(
            verify(&p2, &pk, "GET", "/v1/other", b"", 1000, &g),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(&p2, &pk, "GET", "/v1/summary", b"", 1400, &g),
            Err(AuthError::Expired)
        );
        let other = Secret::generate("top").unwrap().public_key().unwrap();
        assert_eq!(
            verify(&p2, &other, "GET", "/v1/summary", b"", 1000, &g),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn timestamps_far_off_never_pass_the_window() {
        assert!(within_window(1000, 1000));
        assert!(within_window(1300, 1000) && within_window(700, 1000));
        assert!(!within_window(1301, 1000) && !within_window(699, 1000));
        // now - ts overflows: wrapped, it once looked like a small difference.
        assert!(!within_window(i64::MIN, 1_700_000_000));
        assert!(!within_window(i64::MIN + 1, 0));
        assert!(!within_window(i64::MAX, -2));
        assert!(!within_window(i64::MAX, 1_700_000_000));
        let s = Secret::generate("top").unwrap();
        let h = sign(&s, "GET", "/v1/summary", i64::MIN, b"").unwrap();
        let p = parse_header(&h).unwrap();
        let g = ReplayGuard::default();
        assert_eq!(
            verify(
                &p,
                &s.public_key().unwrap(),
                "GET",
                "/v1/summary",
                b"",
                1_700_000_000,
                &g
            ),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn the_no_link_key_is_a_key_and_matches_nothing() {
        let s = Secret::generate("top").unwrap();
        let h = sign(&s, "GET", "/v1/summary", 1000, b"").unwrap();
        let p = parse_header(&h).unwrap();
        let g = ReplayGuard::default();
        assert_eq!(
            verify(&p, NO_LINK_PUBLIC_KEY, "GET", "/v1/summary", b"", 1000, &g),
            Err(AuthError::BadSignature)
        );
        assert_eq!(B64.decode(NO_LINK_PUBLIC_KEY).unwrap().len(), 32);
    }

    #[test]
    fn extreme_timestamps_are_expired_not_overflowed() {
        let s = Secret::generate("top").unwrap();
        let pk = s.public_key().unwrap();
        let g = ReplayGuard::default();
        for (ts, now) in [(i64::MIN, i64::MAX), (i64::MAX, i64::MIN), (i64::MIN, 0)] {
            let h = sign(&s, "GET", "/v1/summary", ts, b"").unwrap();
            let p = parse_header(&h).unwrap();
            assert_eq!(
                verify(&p, &pk, "GET", "/v1/summary", b"", now, &g),
                Err(AuthError::Expired)
            );
        }
    }

    #[test]
    fn secrets_round_trip_and_reject_junk() {
        let s = Secret::generate("top").unwrap();
        let t = s.to_text();
        assert_eq!(
            Secret::parse(&t).unwrap().public_key().unwrap(),
            s.public_key().unwrap()
        );
        assert!(Secret::parse("hunter2").is_err());
        let fp = "0f".repeat(32);
        let token = LinkToken {
            secret: Secret::generate("top").unwrap(),
            cert_sha256: Some(fp.clone()),
        };
        let back = LinkToken::parse(&token.to_text()).unwrap();
        assert_eq!(back.cert_sha256.as_deref(), Some(fp.as_str()));
        assert_eq!(back.secret.to_text(), token.secret.to_text());
        let bare = LinkToken::parse(&s.to_text()).unwrap();
        assert!(bare.cert_sha256.is_none());
        assert!(LinkToken::parse(&format!("{TOKEN_PREFIX}top:abc")).is_err());
        assert!(parse_header("a b c").is_err());
        assert!(parse_header("a notanumber c d").is_err());
    }
}
