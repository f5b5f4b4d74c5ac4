//! Node configuration: `DIR/lumpy.toml`.
//!
//! Owns the file's schema, its defaults and its validation. Every setting is
//! documented here and in docs/CONFIG.md, and each can be changed with a CLI
//! command (`lumpy config set`). Does not touch the store or the mirror.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::net::IpNet;

/// Name of the configuration file inside a data directory.
pub const CONFIG_FILE: &str = "lumpy.toml";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub capture: CaptureConfig,
    pub store: StoreConfig,
    pub serve: ServeConfig,
    /// The web UI of `lumpy serve` (docs/UI.md).
    pub ui: UiConfig,
    /// `GET /metrics` of `lumpy serve` (Prometheus).
    pub metrics: MetricsConfig,
    /// Parents allowed to pull from this node (`lumpy peer add`).
    #[serde(rename = "peer")]
    pub peers: Vec<PeerConfig>,
    /// Children this node pulls from (`lumpy child add`).
    #[serde(rename = "child")]
    pub children: Vec<ChildConfig>,
    /// Sensors whose pcap this node keeps (it is their pcap repository),
    /// whatever the link they come through; set by `lumpy decommission`.
    pub pcap_repository: Vec<u32>,
    /// Sensors retired with `lumpy decommission`: no new data is expected.
    pub decommissioned: Vec<u32>,
    /// Analytics targets `lumpy serve` keeps current (docs/CLICKHOUSE.md).
    #[serde(rename = "export", skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<ExportConfig>,
}

// --- [[export]]: targets serve keeps current (branch clickhouse) ---

/// What an `[[export]]` writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportKind {
    Clickhouse,
}

fn default_export_name() -> String {
    "clickhouse".into()
}
fn default_export_database() -> String {
    "lumpy".into()
}
fn default_export_user() -> String {
    "default".into()
}
fn default_export_interval() -> u64 {
    60
}

/// One target `lumpy serve` exports into every `interval_secs` (as
/// `lumpy export clickhouse` would), on a thread of its own: a dead or slow
/// target never holds up ingest, pulls or the UI. Its state (last success,
/// last error) is in `DIR/export-<name>.json`, shown by `status` and the UI's
/// DAG API. The password lives in `password_file`, never here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Names the state file and the status line (letters, digits, - and _).
    #[serde(default = "default_export_name")]
    pub name: String,
    pub kind: ExportKind,
    /// ClickHouse's HTTP interface: http(s)://HOST[:PORT].
    pub url: String,
    #[serde(default = "default_export_database")]
    pub database: String,
    #[serde(default = "default_export_user")]
    pub user: String,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default = "default_export_interval")]
    pub interval_secs: u64,
    /// Only these sensors; empty: every sensor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensors: Vec<u32>,
    /// Scale out (as `export clickhouse --cluster`): a cluster of the
    /// servers' `<remote_servers>`; local tables on every shard and a
    /// Distributed table over them, sharded by sensor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The HTTP interface of every shard of `cluster` (`--shard`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<String>,
}

impl ExportConfig {
    fn check(&self) -> Result<(), (&'static str, String)> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err((
                "export.name",
                format!("'{}': letters, digits, - and _ only", self.name),
            ));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err((
                "export.url",
                format!("'{}' must start with http:// or https://", self.url),
            ));
        }
        if self.interval_secs == 0 {
            return Err(("export.interval_secs", "must be at least 1".into()));
        }
        match &self.cluster {
            Some(c)
                if c.is_empty()
                    || !c
                        .chars()
                        .all(|x| x.is_ascii_alphanumeric() || x == '-' || x == '_') =>
            {
                return Err((
                    "export.cluster",
                    format!("'{c}': letters, digits, - and _ only"),
                ));
            }
            Some(_) if self.shards.is_empty() => {
                return Err((
                    "export.shards",
                    "a cluster needs the HTTP URL of every shard".into(),
                ));
            }
            None if !self.shards.is_empty() => {
                return Err(("export.shards", "shards without a cluster".into()));
            }
            _ => {}
        }
        for u in &self.shards {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err((
                    "export.shards",
                    format!("'{u}' must start with http:// or https://"),
                ));
            }
        }
        Ok(())
    }
}

// --- end [[export]] ---

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address of the peer API (and later the web UI) for `lumpy serve`.
    pub listen: String,
    /// PEM certificate chain and key of the peer API; when unset, the node
    /// makes its own (`DIR/tls/`) at first need. Either way the peer API
    /// speaks TLS (rustls) only, unless `peer_plain`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Serve the peer API as plain HTTP (no TLS): for loopback tests only;
    /// the parent must ask for it too (`lumpy child add --plain`).
    pub peer_plain: bool,
    /// A sensor whose newest data is older than this is flagged silent.
    pub silent_after_secs: u64,
    /// Connections the peer API serves at once; past it a new one is
    /// answered 503 and closed.
    pub max_connections: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:7700".into(),
            tls_cert: None,
            tls_key: None,
            peer_plain: false,
            silent_after_secs: 3600,
            max_connections: 256,
        }
    }
}

/// The web UI: its own listener, apart from the peer API, so the peer port
/// can face the network while the UI stays on localhost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    /// Serve the UI at all.
    pub enabled: bool,
    /// Address of the UI listener (localhost only by default).
    pub listen: String,
    /// A session unused this long is closed.
    pub session_idle_secs: u64,
    /// A session is closed this long after login, used or not.
    pub session_max_secs: u64,
    /// Connections the UI serves at once; past it a new one is answered 503
    /// and closed.
    pub max_connections: usize,
    /// Host header values the UI answers (with or without a port); any other
    /// is refused 421, so a DNS-rebound name cannot reach it. Empty: the
    /// localhost forms only.
    pub allowed_hosts: Vec<String>,
    /// Mirror queries run at once (each on its own read connection).
    pub query_workers: usize,
    /// Page cache of each query connection, in MiB (workers x this is the
    /// queries' share of memory).
    pub query_cache_mib: u32,
    /// A query still running after this long is interrupted (503).
    pub query_timeout_secs: u64,
    /// Heavy views (aggregates, plots, the connections graph) run at once:
    /// each also takes one of `query_workers`, so the others stay free for
    /// the connection table and the detail views.
    pub heavy_workers: usize,
    /// Rows a heavy view's queries may read, about (SQLite virtual-machine
    /// steps, `HEAVY_STEPS_PER_ROW` per row); past it the view is stopped
    /// and answered 503 asking for a narrower filter.
    pub heavy_rows: u64,
    /// Largest "pcap of these results" download, in MiB: refused (413) when
    /// the matching flows hold more, cut off when the packets exceed it.
    pub pcap_max_mib: u64,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            enabled: true,
            listen: "127.0.0.1:7780".into(),
            session_idle_secs: 30 * 60,
            session_max_secs: 12 * 3600,
            max_connections: 1024,
            allowed_hosts: Vec::new(),
            query_workers: 4,
            query_cache_mib: 16,
            query_timeout_secs: 10,
            heavy_workers: 1,
            heavy_rows: 2_000_000,
            pcap_max_mib: 256,
        }
    }
}

/// The metrics listener: its own address, so Prometheus can be let in
/// without the peer API or the UI. Off (empty) by default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the metrics listener (e.g. 127.0.0.1:7781); empty: off.
    pub listen: String,
}

/// One parent that may pull from this node. The link secret is not stored
/// here, only the public key that verifies its signatures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub name: String,
    pub public_key: String,
    /// Source networks the parent may connect from (CIDR); empty = any.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Sensors this parent is shown and may fetch; empty = every sensor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensors: Vec<u32>,
}

/// How a link treats pcap: proxy requests down, or copy the segments up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PcapMode {
    Proxy,
    Mirror,
}

/// One child this node pulls from. Its secret lives in
/// `DIR/children/<name>.secret` (mode 0600), never in this file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildConfig {
    pub name: String,
    pub url: String,
    pub pcap: PcapMode,
    pub interval_secs: u64,
    /// PEM CA certificate to trust for an https:// child whose link token
    /// pins no certificate (an operator's own CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// SHA-256 (hex) of the child's certificate, from its link token: the
    /// only certificate this node accepts from it (docs/SECURITY.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<String>,
    /// The link is plain HTTP, asked for with `lumpy child add --plain`
    /// (loopback tests only); an http:// URL needs it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plain: bool,
    /// Sensors this child may speak for; empty: those it originated
    /// (hops 0) when nothing is below it, else any (docs/SECURITY.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensors: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureConfig {
    /// Honeypot networks (CIDR). A flow whose initiator is inside is
    /// outbound (`is_local = 1`), as hflow's `-n/-b` from HwLAN_IP_RANGE.
    pub honeypot_nets: Vec<String>,
    /// Capture directories that `lumpy ingest --follow` and `lumpy serve`
    /// watch when none is named on the command line.
    pub follow: Vec<PathBuf>,
    /// Seconds a capture file must stay unchanged before follow mode treats
    /// it as complete (a newer file in its directory completes it at once).
    pub settle_secs: u64,
    /// UDP port of sebek packets (both source and destination), hflow's `-k`.
    pub sebek_port: u16,
    /// p0f v3 signature database for passive OS fingerprinting; empty: off.
    pub p0f_fp: PathBuf,
    /// UDP address (`IP:PORT`) where `lumpy serve` receives sebek v3
    /// datagrams sent straight to this node; empty (the default): no
    /// listener, sebek is read from the captures.
    pub sebek_listen: String,
    /// Seconds between commits of datagrams received by the sebek listener.
    pub sebek_flush_secs: u64,
    /// Memory budget (MiB) of each sensor's open-flow table. When it is
    /// full, the flows idle the longest are closed early ("evicted"), so a
    /// flood of spoofed sources cannot exhaust memory. A one-packet flow
    /// costs at most 64 bytes: the default holds over a million.
    pub flow_table_mib: u64,
}

impl CaptureConfig {
    /// The open-flow table's budget in bytes.
    pub fn flow_table_bytes(&self) -> usize {
        usize::try_from(self.flow_table_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// zstd level for segment blocks (1 is fast; 3 compresses ~2% better at
    /// half the speed).
    pub zstd_level: i32,
    /// Raw packet bytes after which a pcap segment is sealed.
    pub segment_target_bytes: u64,
    /// Record version of the record segments ingest writes: 4 (flows as
    /// binary items) or 3 (JSON lines only, for parents whose lumpy is
    /// older than record version 4).
    pub record_version: u8,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            honeypot_nets: Vec::new(),
            follow: Vec::new(),
            settle_secs: 10,
            sebek_port: crate::sebek::DEFAULT_PORT,
            p0f_fp: PathBuf::from("/etc/p0f/p0f.fp"),
            sebek_listen: String::new(),
            sebek_flush_secs: 5,
            flow_table_mib: 64,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            zstd_level: 1,
            segment_target_bytes: 4 * 1024 * 1024,
            record_version: crate::records::RECORD_VERSION_BINARY,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("unknown setting '{0}' (known: {known})", known = SETTABLE_KEYS.join(", "))]
    UnknownKey(String),
}

/// Every key `lumpy config set` takes, in the order `Config::set` handles
/// them (its unknown-key message lists them all; a unit test holds the two equal).
pub const SETTABLE_KEYS: &[&str] = &[
    "capture.honeypot_nets",
    "capture.follow",
    "capture.settle_secs",
    "capture.sebek_port",
    "capture.p0f_fp",
    "capture.sebek_listen",
    "capture.sebek_flush_secs",
    "capture.flow_table_mib",
    "store.zstd_level",
    "store.segment_target_bytes",
    "store.record_version",
    "serve.listen",
    "serve.tls_cert",
    "serve.tls_key",
    "serve.peer_plain",
    "serve.silent_after_secs",
    "ui.enabled",
    "ui.listen",
    "metrics.listen",
    "ui.session_idle_secs",
    "ui.session_max_secs",
    "serve.max_connections",
    "ui.max_connections",
    "ui.allowed_hosts",
    "ui.query_workers",
    "ui.query_cache_mib",
    "ui.query_timeout_secs",
    "ui.heavy_workers",
    "ui.heavy_rows",
    "ui.pcap_max_mib",
];

impl Config {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(CONFIG_FILE)
    }

    /// Loads `DIR/lumpy.toml`; a missing file means every default.
    pub fn load(dir: &Path) -> Result<Config, ConfigError> {
        let path = Config::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(source) => return Err(ConfigError::Io { path, source }),
        };
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        config.validate(&path)?;
        Ok(config)
    }

    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        for n in &self.capture.honeypot_nets {
            if crate::net::parse(n).is_err() {
                return Err(invalid(
                    "capture.honeypot_nets",
                    format!("'{n}' is not an address or CIDR network"),
                ));
            }
        }
        let listen = self.capture.sebek_listen.trim();
        if !listen.is_empty() && listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "capture.sebek_listen",
                format!("'{listen}' is not IP:PORT (e.g. 0.0.0.0:1101)"),
            ));
        }
        if !(-7..=19).contains(&self.store.zstd_level) {
            return Err(invalid(
                "store.zstd_level",
                format!("{} is outside -7..=19", self.store.zstd_level),
            ));
        }
        for p in &self.peers {
            for n in &p.allow {
                if crate::net::parse(n).is_err() {
                    return Err(invalid(
                        "peer.allow",
                        format!("'{n}' is not an address or CIDR network"),
                    ));
                }
            }
        }
        for e in &self.exports {
            e.check().map_err(|(key, m)| invalid(key, m))?;
        }
        for c in &self.children {
            if !(c.url.starts_with("http://") || c.url.starts_with("https://")) {
                return Err(invalid(
                    "child.url",
                    format!("'{}' must start with http:// or https://", c.url),
                ));
            }
            // An http:// link without `plain`, or an https:// one pinning
            // nothing, is refused by `child add` and by each pull of that
            // link (naming the child), not here: a lumpy.toml written by a
            // release before TLS links must still open the node, serve and
            // pull its other children (docs/SECURITY.md, upgrading).
            if let Some(f) = &c.cert_sha256
                && sha256_fingerprint(f).is_none()
            {
                return Err(invalid(
                    "child.cert_sha256",
                    format!("'{f}' is not a SHA-256 fingerprint (64 hex digits)"),
                ));
            }
            if c.interval_secs == 0 {
                return Err(invalid("child.interval_secs", "must be at least 1".into()));
            }
        }
        if self.serve.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "serve.listen",
                format!("'{}' is not ADDRESS:PORT", self.serve.listen),
            ));
        }
        match self.ui.listen.parse::<std::net::SocketAddr>() {
            Err(_) => {
                return Err(invalid(
                    "ui.listen",
                    format!("'{}' is not ADDRESS:PORT", self.ui.listen),
                ));
            }
            Ok(ui) if self.ui.enabled && Some(ui) == self.serve.listen.parse().ok() => {
                return Err(invalid(
                    "ui.listen",
                    "must differ from serve.listen: the UI has its own listener".into(),
                ));
            }
            Ok(_) => {}
        }
        if !self.metrics.listen.is_empty()
            && self.metrics.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(invalid(
                "metrics.listen",
                format!(
                    "'{}' is not ADDRESS:PORT (or empty: off)",
                    self.metrics.listen
                ),
            ));
        }
        if self.ui.session_idle_secs == 0 || self.ui.session_max_secs == 0 {
            return Err(invalid(
                "ui.session_idle_secs",
                "session lifetimes must be at least 1 second".into(),
            ));
        }
        if self.serve.max_connections == 0 || self.ui.max_connections == 0 {
            return Err(invalid(
                "serve.max_connections",
                "a listener must serve at least 1 connection (serve.max_connections, ui.max_connections)".into(),
            ));
        }
        if !(1..=64).contains(&self.ui.query_workers) {
            return Err(invalid(
                "ui.query_workers",
                format!("{} is outside 1..=64", self.ui.query_workers),
            ));
        }
        if !(1..=self.ui.query_workers).contains(&self.ui.heavy_workers) {
            return Err(invalid(
                "ui.heavy_workers",
                format!(
                    "{} is outside 1..={} (ui.query_workers)",
                    self.ui.heavy_workers, self.ui.query_workers
                ),
            ));
        }
        if !(1_000..=1_000_000_000_000).contains(&self.ui.heavy_rows) {
            return Err(invalid(
                "ui.heavy_rows",
                format!("{} is outside 1000..=10^12", self.ui.heavy_rows),
            ));
        }
        if !(1..=1024).contains(&self.ui.query_cache_mib) {
            return Err(invalid(
                "ui.query_cache_mib",
                format!("{} is outside 1..=1024", self.ui.query_cache_mib),
            ));
        }
        if !(1..=1_048_576).contains(&self.ui.pcap_max_mib) {
            return Err(invalid(
                "ui.pcap_max_mib",
                format!("{} is outside 1..=1048576", self.ui.pcap_max_mib),
            ));
        }
        if self.ui.query_timeout_secs == 0 {
            return Err(invalid(
                "ui.query_timeout_secs",
                "queries need at least 1 second".into(),
            ));
        }
        if !(1..=65_536).contains(&self.capture.flow_table_mib) {
            return Err(invalid(
                "capture.flow_table_mib",
                format!("{} is outside 1..=65536 MiB", self.capture.flow_table_mib),
            ));
        }
        if !(crate::records::RECORD_VERSION_JSON..=crate::records::RECORD_VERSION_BINARY)
            .contains(&self.store.record_version)
        {
            return Err(invalid(
                "store.record_version",
                format!("{} is not 3 or 4", self.store.record_version),
            ));
        }
        if !(64 * 1024..=256 * 1024 * 1024).contains(&self.store.segment_target_bytes) {
            return Err(invalid(
                "store.segment_target_bytes",
                format!(
                    "{} is outside 64 KiB..=256 MiB",
                    self.store.segment_target_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Writes the file atomically (temp file, fsync, rename).
    pub fn save(&self, dir: &Path) -> Result<(), ConfigError> {
        let path = Config::path(dir);
        let body = toml::to_string_pretty(self).map_err(|e| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let text = format!(
            "# lumpy node configuration; every key is described in docs/CONFIG.md.\n\
             # Change it with `lumpy config set --data DIR KEY VALUE` or by hand.\n\n{body}"
        );
        crate::durable::write(&path, text.as_bytes(), None, None)
            .map_err(|source| ConfigError::Io { path, source })
    }

    /// The honeypot networks, parsed.
    pub fn honeypot_nets(&self) -> Vec<IpNet> {
        self.capture
            .honeypot_nets
            .iter()
            .filter_map(|n| crate::net::parse(n).ok())
            .collect()
    }

    /// Sets one key from its textual value (`lumpy config set`); lists take
    /// comma-separated values.
    pub fn set(&mut self, key: &str, value: &str, path: &Path) -> Result<(), ConfigError> {
        let list = || {
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let number = |key: &str| {
            value
                .trim()
                .parse::<i64>()
                .map_err(|_| ConfigError::Invalid {
                    path: path.to_path_buf(),
                    key: key.to_string(),
                    message: format!("'{value}' is not a number"),
                })
        };
        let boolean = |key: &str| match value.trim() {
            "true" | "yes" | "1" | "on" => Ok(true),
            "false" | "no" | "0" | "off" => Ok(false),
            _ => Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                key: key.to_string(),
                message: format!("'{value}' is not true or false"),
            }),
        };
        match key {
            "capture.honeypot_nets" => self.capture.honeypot_nets = list(),
            "capture.follow" => {
                self.capture.follow = list().into_iter().map(PathBuf::from).collect()
            }
            "capture.settle_secs" => self.capture.settle_secs = number(key)?.max(0) as u64,
            "capture.sebek_port" => {
                self.capture.sebek_port =
                    u16::try_from(number(key)?).map_err(|_| ConfigError::Invalid {
                        path: path.to_path_buf(),
                        key: key.to_string(),
                        message: format!("'{value}' is not a UDP port"),
                    })?
            }
            "capture.p0f_fp" => self.capture.p0f_fp = PathBuf::from(value.trim()),
            "capture.sebek_listen" => self.capture.sebek_listen = value.trim().to_string(),
            "capture.sebek_flush_secs" => {
                self.capture.sebek_flush_secs = number(key)?.max(1) as u64
            }
            "capture.flow_table_mib" => self.capture.flow_table_mib = number(key)?.max(0) as u64,
            "store.zstd_level" => self.store.zstd_level = number(key)?.clamp(-100, 100) as i32,
            "store.segment_target_bytes" => {
                self.store.segment_target_bytes = number(key)?.max(0) as u64
            }
            "store.record_version" => self.store.record_version = number(key)?.clamp(0, 255) as u8,
            "serve.listen" => self.serve.listen = value.trim().to_string(),
            "serve.tls_cert" => self.serve.tls_cert = optional_path(value),
            "serve.tls_key" => self.serve.tls_key = optional_path(value),
            "serve.peer_plain" => self.serve.peer_plain = boolean(key)?,
            "serve.silent_after_secs" => self.serve.silent_after_secs = number(key)?.max(1) as u64,
            "ui.enabled" => self.ui.enabled = boolean(key)?,
            "ui.listen" => self.ui.listen = value.trim().to_string(),
            "metrics.listen" => self.metrics.listen = value.trim().to_string(),
            "ui.session_idle_secs" => self.ui.session_idle_secs = number(key)?.max(0) as u64,
            "ui.session_max_secs" => self.ui.session_max_secs = number(key)?.max(0) as u64,
            "serve.max_connections" => self.serve.max_connections = number(key)?.max(0) as usize,
            "ui.max_connections" => self.ui.max_connections = number(key)?.max(0) as usize,
            "ui.allowed_hosts" => self.ui.allowed_hosts = list(),
            "ui.query_workers" => self.ui.query_workers = number(key)?.max(0) as usize,
            "ui.query_cache_mib" => {
                self.ui.query_cache_mib = u32::try_from(number(key)?.max(0)).unwrap_or(u32::MAX)
            }
            "ui.query_timeout_secs" => self.ui.query_timeout_secs = number(key)?.max(0) as u64,
            "ui.heavy_workers" => self.ui.heavy_workers = number(key)?.max(0) as usize,
            "ui.heavy_rows" => self.ui.heavy_rows = number(key)?.max(0) as u64,
            "ui.pcap_max_mib" => self.ui.pcap_max_mib = number(key)?.max(0) as u64,
            other => return Err(ConfigError::UnknownKey(other.to_string())),
        }
        self.validate(path)
    }
}

fn optional_path(value: &str) -> Option<PathBuf> {
    let v = value.trim();
    (!v.is_empty()).then(|| PathBuf::from(v))
}

/// A certificate fingerprint as an operator may paste it (`child.cert_sha256`,
/// link tokens): 64 hex digits, any case, colons allowed (openssl's form).
/// Gives it lowercase, no colons. Defined here, the lowest module that reads
/// one, and used by `sync::tls` for its pins.
pub fn sha256_fingerprint(text: &str) -> Option<String> {
    let clean: String = text
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    (clean.len() == 64 && clean.bytes().all(|b| b.is_ascii_hexdigit())).then_some(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unknown-key message is built from `SETTABLE_KEYS`: every arm of
    /// `Config::set` must be listed there, and nothing else.
    #[test]
    fn the_unknown_key_message_lists_every_settable_key() {
        let source = include_str!("config.rs");
        let body = source
            .split_once("        match key {\n")
            .and_then(|(_, rest)| {
                rest.split_once("            other => return Err(ConfigError::UnknownKey")
            })
            .map(|(arms, _)| arms)
            .unwrap();
        let handled: Vec<&str> = body
            .lines()
            .filter_map(|l| l.strip_prefix("            \""))
            .filter_map(|l| l.split_once("\" =>").map(|(k, _)| k))
            .collect();
        assert_eq!(handled, SETTABLE_KEYS);
        let dir = tempfile::tempdir().unwrap();
        let message = Config::default()
            .set("capture.nope", "1", dir.path())
            .unwrap_err()
            .to_string();
        for key in SETTABLE_KEYS {
            assert!(message.contains(key), "{key} missing from: {message}");
        }
    }

    #[test]
    fn defaults_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), Config::default());
        let mut c = Config::default();
        c.set(
            "capture.honeypot_nets",
            "192.0.2.0/24, 2001:db8:1::/64",
            dir.path(),
        )
        .unwrap();
        c.save(dir.path()).unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), c);
        assert_eq!(c.honeypot_nets().len(), 2);
    }

    #[test]
    fn the_ui_listens_on_localhost_by_default_and_apart_from_the_peer_api() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::default();
        assert!(c.ui.enabled);
        let ui: std::net::SocketAddr = c.ui.listen.parse().unwrap();
        assert!(ui.ip().is_loopback());
        assert_ne!(c.ui.listen, c.serve.listen);
        let mut c = Config::default();
        let e = c
            .set("ui.listen", &c.serve.listen.clone(), dir.path())
            .unwrap_err();
        assert!(e.to_string().contains("ui.listen"), "{e}");
        let mut c = Config::default();
        c.set("ui.enabled", "false", dir.path()).unwrap();
        assert!(!c.ui.enabled);
        assert!(c.set("ui.enabled", "maybe", dir.path()).is_err());
    }

    #[test]
    fn an_export_cluster_needs_its_shards_and_shards_need_a_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[[export]]\nkind = \"clickhouse\"\nurl = \"http://127.0.0.1:8123\"\n\
                    cluster = \"honeynet\"\nshards = [\"http://127.0.0.1:8123\", \"http://127.0.0.2:8123\"]\n";
        std::fs::write(Config::path(dir.path()), text).unwrap();
        let c = Config::load(dir.path()).unwrap();
        assert_eq!(c.exports[0].cluster.as_deref(), Some("honeynet"));
        assert_eq!(c.exports[0].shards.len(), 2);
        let named = |text: &str, key: &str| {
            std::fs::write(Config::path(dir.path()), text).unwrap();
            let e = Config::load(dir.path()).unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        };
        let base = "[[export]]\nkind = \"clickhouse\"\nurl = \"http://127.0.0.1:8123\"\n";
        named(&format!("{base}cluster = \"honeynet\"\n"), "export.shards");
        named(
            &format!("{base}shards = [\"http://127.0.0.1:8123\"]\n"),
            "export.shards",
        );
        named(
            &format!("{base}cluster = \"a b\"\nshards = [\"http://127.0.0.1:8123\"]\n"),
            "export.cluster",
        );
        named(
            &format!("{base}cluster = \"c\"\nshards = [\"ftp://127.0.0.1\"]\n"),
            "export.shards",
        );
    }

    #[test]
    fn bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::default();
        let e = c
            .set("capture.honeypot_nets", "not-a-net", dir.path())
            .unwrap_err();
        assert!(e.to_string().contains("capture.honeypot_nets"));
        assert!(c.set("nope", "1", dir.path()).is_err());
        let mut plain = Config::default();
        plain.set("serve.peer_plain", "yes", dir.path()).unwrap();
        assert!(plain.serve.peer_plain);
        let mut child = ChildConfig {
            name: "a".into(),
            url: "http://127.0.0.1:1".into(),
            pcap: PcapMode::Proxy,
            interval_secs: 1,
            ca_file: None,
            cert_sha256: None,
            plain: false,
            sensors: Vec::new(),
        };
        let mut with = Config::default();
        with.children.push(child.clone());
        // A link an older release wrote (http:// without `plain`, https://
        // pinning nothing) still loads: `child add` and its pulls refuse it.
        with.validate(dir.path()).unwrap();
        child.url = "https://127.0.0.1:1".into();
        with.children = vec![child.clone()];
        with.validate(dir.path()).unwrap();
        child.cert_sha256 = Some("not hex".into());
        with.children = vec![child.clone()];
        let e = with.validate(dir.path()).unwrap_err();
        assert!(e.to_string().contains("SHA-256"), "{e}");
        child.cert_sha256 = Some("ab".repeat(32));
        with.children = vec![child];
        with.validate(dir.path()).unwrap();
        std::fs::write(Config::path(dir.path()), "[capture]\nbogus = 1\n").unwrap();
        let e = Config::load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("lumpy.toml"));
    }
}
