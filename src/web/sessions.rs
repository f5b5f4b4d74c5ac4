//! UI sessions: random 256-bit tokens held in memory, with idle and absolute
//! expiry, closed by logout; and the failed-login throttle.
//!
//! Owns only in-memory state: a restart of `lumpy serve` logs everyone out.
//! Knows nothing of peer link secrets or signatures: a session never
//! authenticates a peer request and a signature never opens a session.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Name of the session cookie.
pub const COOKIE: &str = "lumpy_session";

struct Session {
    user: String,
    created: Instant,
    last_used: Instant,
}

/// Failed logins of one client address within the current window.
struct Failures {
    count: u32,
    window_start: Instant,
}

/// Failed logins allowed per address per window before answering 429.
pub const MAX_FAILURES: u32 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(300);

pub struct Sessions {
    idle: Duration,
    max: Duration,
    map: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

/// 32 random bytes as 64 hex digits.
fn new_token() -> Option<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).ok()?;
    Some(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Sessions {
    pub fn new(idle: Duration, max: Duration) -> Sessions {
        Sessions {
            idle,
            max,
            map: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Opens a session for `user`; None if the system has no randomness.
    pub fn open(&self, user: &str) -> Option<String> {
        let token = new_token()?;
        let now = Instant::now();
        let mut map = self.map.lock().ok()?;
        map.retain(|_, s| !self.expired(s, now));
        map.insert(
            token.clone(),
            Session {
                user: user.to_string(),
                created: now,
                last_used: now,
            },
        );
        Some(token)
    }

    fn expired(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_used) > self.idle || now.duration_since(s.created) > self.max
    }

    /// The user of a live session, refreshing its idle timer.
    pub fn check(&self, token: &str) -> Option<String> {
        let now = Instant::now();
        let mut map = self.map.lock().ok()?;
        let live = match map.get_mut(token) {
            Some(s) if !self.expired(s, now) => {
                s.last_used = now;
                return Some(s.user.clone());
            }
            Some(_) => false,
            None => return None,
        };
        if !live {
            map.remove(token);
        }
        None
    }

    /// Closes a session (logout).
    pub fn close(&self, token: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(token);
        }
    }

    /// Closes every session of `user` (the account was removed).
    pub fn close_user(&self, user: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.retain(|_, s| s.user != user);
        }
    }

    /// True if `ip` has failed too often lately.
    pub fn throttled(&self, ip: Option<IpAddr>) -> bool {
        let (Some(ip), Ok(mut f)) = (ip, self.failures.lock()) else {
            return false;
        };
        let now = Instant::now();
        f.retain(|_, v| now.duration_since(v.window_start) < FAILURE_WINDOW);
        f.get(&ip).is_some_and(|v| v.count >= MAX_FAILURES)
    }

    pub fn note_failure(&self, ip: Option<IpAddr>) {
        let (Some(ip), Ok(mut f)) = (ip, self.failures.lock()) else {
            return;
        };
        let e = f.entry(ip).or_insert(Failures {
            count: 0,
            window_start: Instant::now(),
        });
        e.count += 1;
    }
}

/// The session token in a Cookie header, if any.
pub fn token_from_cookie(header: &str) -> Option<&str> {
    header
        .split(';')
        .map(str::trim)
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_close() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(3600));
        let t = s.open("alice").unwrap();
        assert_eq!(t.len(), 64);
        assert_eq!(s.check(&t).as_deref(), Some("alice"));
        s.close(&t);
        assert_eq!(s.check(&t), None);
        let idle = Sessions::new(Duration::ZERO, Duration::from_secs(3600));
        let t = idle.open("bob").unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(idle.check(&t), None);
        let max = Sessions::new(Duration::from_secs(60), Duration::ZERO);
        let t = max.open("carol").unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(max.check(&t), None);
    }

    #[test]
    fn cookie_parsing_takes_only_well_formed_tokens() {
        let tok = "a".repeat(64);
        assert_eq!(
            token_from_cookie(&format!("x=1; {COOKIE}={tok}; y=2")),
            Some(tok.as_str())
        );
        assert_eq!(token_from_cookie(&format!("{COOKIE}=abc")), None);
        assert_eq!(token_from_cookie("other=1"), None);
    }

    #[test]
    fn failures_throttle_per_address() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(60));
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        for _ in 0..MAX_FAILURES {
            assert!(!s.throttled(ip));
            s.note_failure(ip);
        }
        assert!(s.throttled(ip));
        assert!(!s.throttled(Some(IpAddr::from([127, 0, 0, 2]))));
    }
}
