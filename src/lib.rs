//! lumpy: one binary that turns honeynet sensors into a distributed archive.
//!
//! # Layout
//!
//! Data flows one way: ingest -> store -> index/mirror -> serve/sync/export;
//! modules import only modules of a lower layer (docs/ARCHITECTURE.md,
//! "Layers", checked by the `layers` test).
//!
//! - [`clock`]: the wall clock in Unix seconds, the one "now" of every stored or compared time.
//! - [`decommission`]: retire a sensor: pull all of it, pcap included, verify, mark it offline.
//! - [`archive`]: offline bundles of one sensor's segments (create, verify, import).
//! - [`sensor_id`]: the 32-bit identity of a roo incarnation (makesensor_id).
//! - [`capture`]: reading pcap/pcapng files and decoding packet headers.
//! - [`flows`]: hflow2-style bidirectional flows from decoded packets, and the
//!   open-flow table that holds them in a fixed memory budget.
//! - [`net`]: IP networks (`ADDR[/PREFIX]`) as every option, setting and query parameter takes them.
//! - [`records`]: the typed rows (flows, sensors) that move between nodes.
//! - [`sebek`]: sebek v3 records (host data of honeypots) into process tables,
//!   and keystroke lines as sbk_ks_log.pl prints them.
//! - [`community_id`]: the Community ID v1 of a flow (Zeek, Suricata, Arkime).
//! - [`p0f`]: passive OS fingerprinting with p0f 3.09b's signatures and matching.
//! - [`durable`]: the one atomic, fsynced write path of every file lumpy writes.
//! - [`store`]: content-addressed segments and their redb index; `verify`.
//! - [`metrics`]: `GET /metrics` of serve (Prometheus text): counters kept while serving, the node's state read at each scrape.
//! - [`mirror`]: the SQLite copy of the walleye/hflow tables.
//! - [`config`]: the node configuration file, `lumpy.toml`.
//! - [`node`]: one data directory: identity, store, config and mirror together.
//! - [`ingest`]: capture files in, segments and records out; open-flow checkpoints.
//! - [`pcap_service`]: a flow's (or a filter's) packets as pcap, here or via a child.
//! - [`prune`]: retention (pcap and flow rows older than N days), never losing what a mirroring parent lacks.
//! - [`mysql`]: MariaDB/MySQL connections (URL, password rules, errors) of `export` and `legacy`.
//! - [`export`]: the walleye tables into MariaDB (hflow or walleye_0_3), incrementally.
//! - [`sync`]: the peer protocol: parents pull what they lack from children.
//! - [`control`]: the control socket: every command run by the `serve` that holds its data directory.
//! - [`serve`]: the node daemon (peer API, pull loops, follow ingest, web UI).
//! - [`web`]: the web UI: login, sessions, JSON API and the embedded page.
//!
//! See docs/ARCHITECTURE.md for the map and docs/STORAGE.md for the formats.

// Nothing read from input or the network may panic the library.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod archive;
pub mod capture;
pub mod cli;
pub mod clock;
pub mod community_id;
pub mod config;
pub mod control;
pub mod decommission;
pub mod durable;
pub mod export;
pub mod flows;
pub mod ingest;
#[cfg(test)]
mod layers;
pub mod legacy;
pub mod metrics;
pub mod mirror;
pub mod mysql;
pub mod net;
pub mod node;
pub mod p0f;
pub mod pcap_service;
pub mod prune;
pub mod records;
pub mod repair;
pub mod sebek;
pub mod sensor_id;
pub mod serve;
pub mod store;
pub mod sync;
pub mod time_arg;
pub mod web;
