//! The UI's static files, embedded in the binary with `include_str!`: one
//! HTML shell, one stylesheet, one script, one icon. Nothing is loaded from
//! anywhere else (the Content-Security-Policy forbids it too).
//!
//! Owns only these bytes and their content types; no data passes through here.

use warp::http::{Response, StatusCode};

use super::{Reply, error};

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");
const ICON: &str = include_str!("assets/icon.svg");

fn reply(body: &'static str, content_type: &str, cache: &str) -> Reply {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", content_type)
        .header("cache-control", cache)
        .body(body.into())
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "asset"))
}

/// The page shell for every UI path: the script reads the path and query.
pub fn page() -> Reply {
    reply(INDEX, "text/html; charset=utf-8", "no-store")
}

/// `/assets/{name}`.
pub fn asset(name: &str) -> Reply {
    match name {
        "app.js" => reply(APP_JS, "text/javascript; charset=utf-8", "no-cache"),
        "style.css" => reply(STYLE, "text/css; charset=utf-8", "no-cache"),
        "icon.svg" => reply(ICON, "image/svg+xml", "no-cache"),
        _ => error(StatusCode::NOT_FOUND, "no such asset"),
    }
}
