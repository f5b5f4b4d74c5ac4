//! Sync: parents pull from children over an authenticated HTTP API, moving
//! only the segments they lack (docs/PROTOCOL.md).
//!
//! `protocol` (the messages), `auth` (link keys and signatures), `summary`
//! (what a node holds, per sensor), `links` (link secrets and health),
//! `server` (the peer API), `pcap_http` (its `/pcap`), `reply` (the
//! API's error answer), `client` (the pull) and `tls` (each node's
//! certificate and the pinning verifier).
//! Owns nothing on disk but the link secrets and link states; segments are
//! written by `store`, records applied by `mirror`.

pub mod auth;
pub mod client;
pub mod links;
pub mod pcap_http;
pub mod protocol;
pub mod reply;
pub mod server;
pub mod summary;
pub mod tls;
