//! The UI's sebek views: a honeypot's sessions (processes with their parent
//! chain, sockets, bytes read and keystroke lines, searchable) and a
//! session's keystroke log (a process and its descendants, one line per
//! command as sbk_ks_log.pl groups them).
//!
//! Owns the parameter checks and JSON shape of `/api/v1/sessions` and
//! `/api/v1/processes/{sensor}/{process}/keystrokes`; the queries are the
//! mirror's (`sebek_query`). Writes nothing.

use std::net::Ipv4Addr;
use std::sync::Arc;

use warp::http::StatusCode;

use super::api::{BadParam, clip, json, mirror_error, num, params};
use super::{Reply, Web, error};
use crate::mirror::SessionQuery;

/// Processes listed when the request does not say.
pub const DEFAULT_SESSIONS: usize = 200;
/// The most a request may ask for.
pub const MAX_SESSIONS: usize = 1000;
/// Longest search text accepted.
const MAX_SEARCH_CHARS: usize = 200;

/// The sessions view's parameters; a bad one is the 400 message naming it.
fn session_query(query: &str) -> Result<SessionQuery, BadParam> {
    let mut q = SessionQuery {
        limit: DEFAULT_SESSIONS,
        ..SessionQuery::default()
    };
    for (k, v) in params(query) {
        match k.as_str() {
            "sensor" => q.sensor = Some(num("sensor", &v)?),
            "host" => {
                let ip = v.parse::<Ipv4Addr>().map_err(|_| {
                    BadParam::new(
                        "host",
                        &format!(
                            "'{}' is not an IPv4 address (sebek honeypots are IPv4)",
                            clip(&v)
                        ),
                    )
                })?;
                q.host = Some(ip);
            }
            "q" => {
                if v.chars().count() > MAX_SEARCH_CHARS {
                    return Err(BadParam::new(
                        "q",
                        &format!("at most {MAX_SEARCH_CHARS} characters"),
                    ));
                }
                q.search = Some(v);
            }
            "limit" => {
                let n: usize = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_SESSIONS).contains(n))
                    .ok_or_else(|| {
                        BadParam::new(
                            "limit",
                            &format!("'{}' is not a number from 1 to {MAX_SESSIONS}", clip(&v)),
                        )
                    })?;
                q.limit = n;
            }
            other => return Err(BadParam::new(other, "unknown parameter")),
        }
    }
    Ok(q)
}

/// `GET /api/v1/sessions?sensor=&host=&q=&limit=`.
pub async fn sessions(web: &Arc<Web>, query: &str) -> Reply {
    let q = match session_query(query) {
        Ok(q) => q,
        Err(why) => return error(StatusCode::BAD_REQUEST, &why.to_string()),
    };
    let echo = serde_json::json!({
        "sensor": q.sensor,
        "host": q.host,
        "q": q.search,
        "limit": q.limit,
    });
    match web.with_mirror(move |m| m.sessions(&q)).await {
        Ok(list) => json(&serde_json::json!({
            "query": echo,
            "matched": list.matched,
            "cut": list.cut,
            "sessions": list.sessions,
        })),
        Err(e) => mirror_error(e),
    }
}

/// `GET /api/v1/processes/{sensor}/{process}/keystrokes`: the keystroke
/// lines of the process and its descendants.
pub async fn keystrokes(web: &Arc<Web>, s: &str, p: &str) -> Reply {
    let (sensor, process) = match (num::<u32>("sensor", s), num::<u32>("process", p)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match web
        .with_mirror(move |m| m.session_log(sensor, process))
        .await
    {
        Ok(lines) => json(&serde_json::json!({
            "sensor_id": sensor,
            "process_id": process,
            "lines": lines,
        })),
        Err(e) => mirror_error(e),
    }
}
