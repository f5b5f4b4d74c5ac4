//! The peer API's error answer: a status and `{"error": "..."}`
//! ([`ErrorBody`]), shared by `server` and `pcap_http` (which `server`
//! routes to), so neither needs the other for it.

use warp::http::{Response, StatusCode};

use super::protocol::ErrorBody;

type Reply = warp::reply::Response;

/// A JSON error answer with `status`.
pub fn error_reply(status: StatusCode, message: &str) -> Reply {
    let body = serde_json::to_vec(&ErrorBody {
        error: message.to_string(),
    })
    .unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap_or_else(|_| Response::new(Vec::new().into()))
}
