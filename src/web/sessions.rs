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

/// Failed logins counted against one key within the current window.
struct Failures {
    count: u32,
    window_start: Instant,
}

/// Failed logins allowed per (address, user name) per window before 429:
/// one client guessing one account.
pub const MAX_FAILURES: u32 = 10;
/// Failed logins allowed per address, whatever the user names: one client
/// trying many accounts.
pub const MAX_ADDRESS_FAILURES: u32 = 100;
/// Failed logins allowed per user name, whatever the addresses: many
/// clients guessing one account.
pub const MAX_USER_FAILURES: u32 = 100;
/// Failed logins allowed in all, the ceiling of password-hashing work spent
/// on failures (and of the entries these maps hold).
pub const MAX_TOTAL_FAILURES: u32 = 1000;
/// How long failures are remembered.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(300);
/// User names longer than this are counted by their first this many chars
/// (no valid name is longer).
const NAME_KEY_CHARS: usize = 64;

/// The failure counters: each attempt is counted before its password is
/// checked (a reservation), so parallel attempts cannot pass a limit while
/// their checks run; a login that succeeds gives its count back.
#[derive(Default)]
struct Throttle {
    pairs: HashMap<(IpAddr, String), Failures>,
    addresses: HashMap<IpAddr, Failures>,
    users: HashMap<String, Failures>,
    total: Option<Failures>,
}

/// Which limit refused a login attempt, and for how long it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub what: &'static str,
    pub retry_after: Duration,
}

fn live(f: &Failures, now: Instant) -> bool {
    now.duration_since(f.window_start) < FAILURE_WINDOW
}

fn retry_after(f: Option<&Failures>, now: Instant) -> Duration {
    f.map(|f| FAILURE_WINDOW.saturating_sub(now.duration_since(f.window_start)))
        .unwrap_or(FAILURE_WINDOW)
}

fn bump<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Failures>, key: K, now: Instant, by: i32) {
    let f = map.entry(key).or_insert(Failures {
        count: 0,
        window_start: now,
    });
    f.count = f.count.saturating_add_signed(by);
}

impl Throttle {
    fn forget_old(&mut self, now: Instant) {
        self.pairs.retain(|_, f| live(f, now));
        self.addresses.retain(|_, f| live(f, now));
        self.users.retain(|_, f| live(f, now));
        if self.total.as_ref().is_some_and(|f| !live(f, now)) {
            self.total = None;
        }
    }

    /// The first limit `ip`/`user` has reached, if any.
    fn refusal(&self, ip: IpAddr, user: &str, now: Instant) -> Option<Throttled> {
        let over = |f: Option<&Failures>, max: u32| f.is_some_and(|f| f.count >= max);
        let pair = self.pairs.get(&(ip, user.to_string()));
        let checks = [
            (pair, MAX_FAILURES, "this user name from this address"),
            (
                self.addresses.get(&ip),
                MAX_ADDRESS_FAILURES,
                "this address",
            ),
            (self.users.get(user), MAX_USER_FAILURES, "this user name"),
            (self.total.as_ref(), MAX_TOTAL_FAILURES, "this node"),
        ];
        checks
            .into_iter()
            .find(|(f, max, _)| over(*f, *max))
            .map(|(f, _, what)| Throttled {
                what,
                retry_after: retry_after(f, now),
            })
    }

    fn count(&mut self, ip: IpAddr, user: &str, now: Instant, by: i32) {
        bump(&mut self.pairs, (ip, user.to_string()), now, by);
        bump(&mut self.addresses, ip, now, by);
        bump(&mut self.users, user.to_string(), now, by);
        let total = self.total.get_or_insert(Failures {
            count: 0,
            window_start: now,
        });
        total.count = total.count.saturating_add_signed(by);
    }
}

/// A login attempt counted as a failure until [`LoginAttempt::succeeded`]
/// gives the count back (a dropped attempt stays a failure).
pub struct LoginAttempt<'a> {
    sessions: &'a Sessions,
    ip: IpAddr,
    user: String,
}

impl LoginAttempt<'_> {
    /// The password was right: the attempt is not a failure.
    pub fn succeeded(self) {
        if let Ok(mut t) = self.sessions.throttle.lock() {
            t.count(self.ip, &self.user, Instant::now(), -1);
        }
    }
}

pub struct Sessions {
    idle: Duration,
    max: Duration,
    map: Mutex<HashMap<String, Session>>,
    throttle: Mutex<Throttle>,
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
            throttle: Mutex::new(Throttle::default()),
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

    /// Counts a login attempt of `user` from `ip` as a failure before its
    /// password is checked; refused when a limit is reached already.
    pub fn begin_login(&self, ip: IpAddr, user: &str) -> Result<LoginAttempt<'_>, Throttled> {
        let user: String = user.chars().take(NAME_KEY_CHARS).collect();
        let now = Instant::now();
        let Ok(mut t) = self.throttle.lock() else {
            return Err(Throttled {
                what: "this node",
                retry_after: FAILURE_WINDOW,
            });
        };
        t.forget_old(now);
        if let Some(refused) = t.refusal(ip, &user, now) {
            return Err(refused);
        }
        t.count(ip, &user, now, 1);
        Ok(LoginAttempt {
            sessions: self,
            ip,
            user,
        })
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
    fn failures_are_counted_before_the_check_per_address_and_user() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(60));
        let ip = IpAddr::from([127, 0, 0, 1]);
        // Reservations held at once (parallel checks) count already.
        let held: Vec<_> = (0..MAX_FAILURES)
            .map(|_| s.begin_login(ip, "alice").unwrap())
            .collect();
        let refused = s.begin_login(ip, "alice").err().unwrap();
        assert_eq!(refused.what, "this user name from this address");
        assert!(refused.retry_after > Duration::ZERO);
        // Another user at the same address (a shared tunnel) still may try.
        s.begin_login(ip, "bob").unwrap().succeeded();
        // A success gives its count back.
        let mut held = held;
        held.pop().unwrap().succeeded();
        s.begin_login(ip, "alice").unwrap();
        assert!(s.begin_login(ip, "alice").is_err());
        drop(held);
    }

    #[test]
    fn one_address_trying_many_names_is_stopped_before_the_node_is() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(60));
        let ip = IpAddr::from([127, 0, 0, 1]);
        let mut n = 0;
        while s.begin_login(ip, &format!("user{n}")).is_ok() {
            n += 1;
        }
        assert_eq!(n, MAX_ADDRESS_FAILURES);
        assert!(s.begin_login(IpAddr::from([127, 0, 0, 2]), "user0").is_ok());
    }
}
