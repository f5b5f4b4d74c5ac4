//! `serve`, `pull`, `peer` and `child`: running a node and linking nodes.

use std::path::PathBuf;

use anyhow::{Context, bail};

use super::{DataDir, Status};
use crate::config::{ChildConfig, Config, PcapMode, PeerConfig};
use crate::node;
use crate::sync::auth::{LinkToken, Secret};
use crate::sync::client::pull_child;
use crate::sync::links::{load_state, valid_name, write_secret};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// Address of the peer API (default: serve.listen from lumpy.toml).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Address of the web UI (default: ui.listen from lumpy.toml).
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "no_ui")]
    pub ui_listen: Option<String>,
    /// Do not serve the web UI.
    #[arg(long)]
    pub no_ui: bool,
}

#[derive(clap::Args, Debug)]
pub struct PullArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// Only this child (default: every child).
    #[arg(long)]
    pub child: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum PeerCmd {
    /// Let a parent pull from this node: makes the link secret and prints
    /// the link token once (the secret and this node's certificate fingerprint).
    Add {
        #[command(flatten)]
        dir: DataDir,
        /// The parent's name on this link.
        name: String,
        /// Source network the parent connects from (CIDR), repeatable; default any.
        #[arg(long = "allow", value_name = "CIDR")]
        allow: Vec<String>,
        /// Only these sensors are shown to the parent (comma-separated ids); default all.
        #[arg(long, value_name = "ID,...", value_delimiter = ',')]
        sensors: Vec<u32>,
    },
    /// Replace a parent's link secret (its limits kept) and print the new
    /// token once; the old secret is refused from the next request.
    Rotate {
        #[command(flatten)]
        dir: DataDir,
        /// The name given when the link was added.
        name: String,
    },
    /// List the parents allowed to pull, and this node's certificate fingerprint.
    List(DataDir),
    /// Revoke a parent's link.
    Remove {
        #[command(flatten)]
        dir: DataDir,
        /// The name given when the link was added.
        name: String,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum ChildCmd {
    /// Pull from a child node (a roo or a lumpy).
    Add {
        #[command(flatten)]
        dir: DataDir,
        /// The child's name on this node.
        name: String,
        /// The child's peer API, e.g. https://10.1.2.3:7700.
        url: String,
        /// File holding the link token the child's `lumpy peer add` printed
        /// (its secret and the child's certificate fingerprint, pinned here).
        #[arg(long, visible_alias = "token-file", value_name = "FILE")]
        secret_file: PathBuf,
        /// Plain HTTP (an http:// URL, the child's serve.peer_plain): for
        /// loopback tests only, nothing on the link is private or authenticated.
        #[arg(long)]
        plain: bool,
        /// proxy: pcap stays at the child; mirror: copy its pcap here too.
        #[arg(long, value_enum, default_value_t = PcapMode::Proxy)]
        pcap: PcapMode,
        /// Pull interval: seconds, or with a unit (90s, 5m, 1h).
        #[arg(long, default_value = "60s", value_parser = parse_interval)]
        interval: u64,
        /// PEM CA certificate to trust for an https:// child.
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
        /// Only these sensors are taken from the child (comma-separated ids);
        /// default: a child with nothing below it only for the sensors it originated.
        #[arg(long, value_name = "ID,...", value_delimiter = ',')]
        sensors: Vec<u32>,
    },
    /// Take a new link token from the child (after its `lumpy peer rotate`,
    /// or a new certificate): replaces the secret and the pinned fingerprint.
    Rotate {
        #[command(flatten)]
        dir: DataDir,
        /// The child's name on this node.
        name: String,
        /// File holding the new link token.
        #[arg(long, visible_alias = "token-file", value_name = "FILE")]
        secret_file: PathBuf,
    },
    /// Forget the conflicts recorded for a child, so its sensors are merged
    /// again (under the same checks) from the next pull.
    ClearConflicts {
        #[command(flatten)]
        dir: DataDir,
        /// The child whose recorded conflicts are cleared.
        name: String,
    },
    /// List children with their health.
    List(DataDir),
    /// Stop pulling from a child (what was pulled stays).
    Remove {
        #[command(flatten)]
        dir: DataDir,
        /// The name given when the link was added.
        name: String,
    },
}

pub fn parse_interval(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 's')) => (&t[..i], 1),
        Some((i, 'm')) => (&t[..i], 60),
        Some((i, 'h')) => (&t[..i], 3600),
        _ => (t, 1),
    };
    match num.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n * mult),
        _ => Err(format!(
            "'{s}' is not an interval: use seconds or 90s, 5m, 1h"
        )),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn serve(a: ServeArgs) -> anyhow::Result<Status> {
    crate::serve::run(
        &a.dir.data,
        a.listen,
        crate::serve::UiChoice {
            listen: a.ui_listen,
            off: a.no_ui,
        },
        super::run_forwarded,
    )?;
    Ok(Status::Ok)
}

pub fn pull(a: PullArgs) -> anyhow::Result<Status> {
    let ctx = super::pull_context(&a.dir.data, "pull")?;
    // From the file: a running serve's copy may predate a `child add`.
    let children: Vec<ChildConfig> = Config::load(&a.dir.data)?
        .children
        .iter()
        .filter(|c| a.child.as_deref().is_none_or(|n| n == c.name))
        .cloned()
        .collect();
    if children.is_empty() {
        match &a.child {
            Some(n) => bail!("no child named '{n}' (see `lumpy child list`)"),
            None => {
                bail!("this node has no children to pull from (add one with `lumpy child add`)")
            }
        }
    }
    let rt = runtime()?;
    let mut status = Status::Ok;
    for child in &children {
        ctx.progress.set_message(format!("pull {}", child.name));
        let result = rt.block_on(pull_child(&ctx, child));
        ctx.progress.finish_and_clear();
        match result {
            Ok(s) if s.unchanged => {
                outln!("{}: nothing new ({} round trip)", child.name, s.round_trips)
            }
            Ok(s) => outln!(
                "{}: {} segments, {} bytes in, {} bytes out, {} round trips",
                child.name,
                s.segments,
                s.bytes_in,
                s.bytes_out,
                s.round_trips
            ),
            Err(e) => {
                errln!("{e}");
                status = Status::Problems;
            }
        }
        if let Ok(state) = load_state(&ctx.store, &child.name) {
            for c in &state.conflicts {
                errln!("{}: {c}", child.name);
                status = Status::Problems;
            }
        }
    }
    Ok(status)
}

fn require_node(dir: &std::path::Path) -> anyhow::Result<()> {
    if !dir.join("index.redb").exists() {
        bail!(
            "{} is not a lumpy data directory; run `lumpy init` first",
            dir.display()
        );
    }
    Ok(())
}

pub fn peer(c: PeerCmd) -> anyhow::Result<Status> {
    match c {
        PeerCmd::Add {
            dir,
            name,
            allow,
            sensors,
        } => {
            require_node(&dir.data)?;
            if !valid_name(&name) {
                bail!("'{name}' is not a link name: use letters, digits, '-', '_' and '.'");
            }
            for n in &allow {
                if crate::net::parse(n).is_err() {
                    bail!("--allow '{n}' is not an address or CIDR network");
                }
            }
            let mut cfg = Config::load(&dir.data)?;
            if cfg.peers.iter().any(|p| p.name == name) {
                bail!(
                    "a parent named '{name}' already exists; remove it first to make a new secret"
                );
            }
            let secret = Secret::generate(&name)?;
            let token = token_for(&dir.data, &cfg, secret)?;
            cfg.peers.push(PeerConfig {
                name: name.clone(),
                public_key: token.secret.public_key()?,
                allow,
                sensors,
            });
            cfg.save(&dir.data)?;
            super::daemon_config_changed(&dir.data);
            print_token(&name, &token)?;
        }
        PeerCmd::Rotate { dir, name } => {
            require_node(&dir.data)?;
            let mut cfg = Config::load(&dir.data)?;
            let token = token_for(&dir.data, &cfg, Secret::generate(&name)?)?;
            let public_key = token.secret.public_key()?;
            let Some(peer) = cfg.peers.iter_mut().find(|p| p.name == name) else {
                bail!("no parent named '{name}'");
            };
            peer.public_key = public_key;
            cfg.save(&dir.data)?;
            super::daemon_config_changed(&dir.data);
            print_token(&name, &token)?;
        }
        PeerCmd::List(dir) => {
            let cfg = Config::load(&dir.data)?;
            if cfg.serve.peer_plain {
                errln!("this node serves plain HTTP (serve.peer_plain): no certificate");
            } else {
                let id = crate::sync::tls::ensure_identity(&dir.data, &cfg.serve)?;
                errln!("this node's certificate: sha256 {}", id.fingerprint);
            }
            for p in &cfg.peers {
                let allow = if p.allow.is_empty() {
                    "any".to_string()
                } else {
                    p.allow.join(",")
                };
                let sensors = if p.sensors.is_empty() {
                    "all".to_string()
                } else {
                    join_ids(&p.sensors)
                };
                outln!("{}\tallow {allow}\tsensors {sensors}", p.name);
            }
        }
        PeerCmd::Remove { dir, name } => {
            let mut cfg = Config::load(&dir.data)?;
            let before = cfg.peers.len();
            cfg.peers.retain(|p| p.name != name);
            if cfg.peers.len() == before {
                bail!("no parent named '{name}'");
            }
            cfg.save(&dir.data)?;
            super::daemon_config_changed(&dir.data);
            outln!(
                "removed parent '{name}'; a running `lumpy serve` refuses it from its next request"
            );
        }
    }
    Ok(Status::Ok)
}

/// The token a parent is given: the secret, and this node's certificate
/// fingerprint unless it serves plain HTTP (the certificate is made now if
/// `lumpy serve` has not made it yet).
fn token_for(dir: &std::path::Path, cfg: &Config, secret: Secret) -> anyhow::Result<LinkToken> {
    let cert_sha256 = if cfg.serve.peer_plain {
        None
    } else {
        Some(crate::sync::tls::ensure_identity(dir, &cfg.serve)?.fingerprint)
    };
    Ok(LinkToken {
        secret,
        cert_sha256,
    })
}

fn print_token(name: &str, token: &LinkToken) -> anyhow::Result<()> {
    match &token.cert_sha256 {
        Some(f) => errln!(
            "link token for parent '{name}' (shown once; give it to the parent's `lumpy child add --secret-file`; it pins this node's certificate, sha256 {f}):"
        ),
        None => errln!(
            "link secret for parent '{name}' (shown once; this node serves plain HTTP, so the parent needs `lumpy child add --plain`):"
        ),
    }
    outln!("{}", token.to_text());
    Ok(())
}

/// Reads a link token file given to `child add` or `child rotate`.
fn read_token(file: &std::path::Path) -> anyhow::Result<LinkToken> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    LinkToken::parse(&text).with_context(|| format!("{}", file.display()))
}

/// Contacts a new child once: refuses a link that would close a cycle or
/// whose secret the child rejects; an unreachable child is only a warning
/// (every pull checks again).
fn check_reachable_child(
    dir: &std::path::Path,
    child: Option<&ChildConfig>,
    secret: &Secret,
) -> anyhow::Result<()> {
    let Some(child) = child else { return Ok(()) };
    let own_id = super::with_store(dir, |s| Ok(s.node_id()?))?;
    match runtime()?.block_on(crate::sync::client::fetch_summary(child, secret)) {
        Ok(summary) if summary.below.contains(&own_id) => bail!(
            "refusing child '{}': this node is already below it, so the link would close a cycle",
            child.name
        ),
        Ok(_) => Ok(()),
        Err(crate::sync::client::SyncError::Refused {
            status, message, ..
        }) => {
            bail!(
                "child '{}' refused the link secret ({status}: {message})",
                child.name
            )
        }
        Err(e) => {
            errln!("warning: {e}; the link is added and checked at every pull");
            Ok(())
        }
    }
}

/// TLS unless both sides asked for plain HTTP: an http:// URL only with
/// `--plain`, and an https:// one only with a pinned certificate (or a CA).
fn check_scheme(
    name: &str,
    url: &str,
    plain: bool,
    token: &LinkToken,
    has_ca: bool,
) -> anyhow::Result<()> {
    match (
        url.starts_with("http://"),
        url.starts_with("https://"),
        plain,
    ) {
        (true, _, false) => bail!(
            "child '{name}': {url} is plain HTTP; peer links use TLS (https://) by default. \
             For a loopback test link, pass --plain (and set serve.peer_plain on the child)"
        ),
        (_, true, true) => bail!("child '{name}': --plain needs an http:// URL, not {url}"),
        (_, true, false) if token.cert_sha256.is_none() && !has_ca => bail!(
            "child '{name}': the token carries no certificate fingerprint (a plain-HTTP child's, \
             or an old secret); ask the child for a new one with `lumpy peer rotate`"
        ),
        (false, false, _) => {
            bail!("child '{name}': '{url}' must start with https:// (or http:// with --plain)")
        }
        _ => Ok(()),
    }
}

fn join_ids(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

fn fmt_age(now: u64, t: u64) -> String {
    if t == 0 {
        "never".into()
    } else {
        format!("{}s ago", now.saturating_sub(t))
    }
}

pub fn child(c: ChildCmd) -> anyhow::Result<Status> {
    match c {
        ChildCmd::Add {
            dir,
            name,
            url,
            secret_file,
            plain,
            pcap,
            interval,
            ca_file,
            sensors,
        } => {
            require_node(&dir.data)?;
            if !valid_name(&name) {
                bail!("'{name}' is not a child name: use letters, digits, '-', '_' and '.'");
            }
            let token = read_token(&secret_file)?;
            check_scheme(&name, &url, plain, &token, ca_file.is_some())?;
            let mut cfg = Config::load(&dir.data)?;
            if cfg.children.iter().any(|c| c.name == name) {
                bail!("a child named '{name}' already exists");
            }
            cfg.children.push(ChildConfig {
                name: name.clone(),
                url: url.trim_end_matches('/').to_string(),
                pcap,
                interval_secs: interval,
                ca_file,
                cert_sha256: if plain { None } else { token.cert_sha256 },
                plain,
                sensors,
            });
            cfg.validate(&Config::path(&dir.data))?;
            let secret = token.secret;
            check_reachable_child(&dir.data, cfg.children.last(), &secret)?;
            write_secret(&dir.data, &name, &secret).context("storing the link secret")?;
            cfg.save(&dir.data)?;
            super::daemon_config_changed(&dir.data);
            outln!("added child '{name}' at {url} (pcap {pcap:?}, every {interval}s)");
        }
        ChildCmd::List(dir) => super::with_node(&dir.data, |node| {
            let now = crate::clock::now_secs();
            for c in &node.config.children {
                let s = load_state(&node.store, &c.name)?;
                let tls = match (&c.cert_sha256, c.plain) {
                    (_, true) => "plain HTTP".to_string(),
                    (Some(f), _) => format!("pinned sha256 {}", f.get(..16).unwrap_or(f)),
                    (None, _) => "CA file".to_string(),
                };
                outln!(
                    "{}\t{}\t{tls}\tpcap {:?}\tevery {}s\tlast success {}\t{} bytes in{}",
                    c.name,
                    c.url,
                    c.pcap,
                    c.interval_secs,
                    fmt_age(now, s.last_success),
                    s.bytes_in,
                    if s.last_error.is_empty() {
                        String::new()
                    } else {
                        format!("\tlast error: {}", s.last_error)
                    }
                );
            }
            Ok(())
        })?,
        ChildCmd::Remove { dir, name } => super::with_node(&dir.data, |node| {
            let mut cfg = node.config.clone();
            let before = cfg.children.len();
            cfg.children.retain(|c| c.name != name);
            if cfg.children.len() == before {
                bail!("no child named '{name}'");
            }
            cfg.save(&dir.data)?;
            node.store.remove_link_state(&name)?;
            node.store.clear_conflicts(&name)?;
            let _ = std::fs::remove_file(crate::sync::links::secret_path(&dir.data, &name));
            outln!("removed child '{name}'");
            Ok(())
        })
        .map(|()| super::daemon_config_changed(&dir.data))?,
        ChildCmd::Rotate {
            dir,
            name,
            secret_file,
        } => {
            require_node(&dir.data)?;
            let token = read_token(&secret_file)?;
            let mut cfg = Config::load(&dir.data)?;
            let Some(child) = cfg.children.iter_mut().find(|c| c.name == name) else {
                bail!("no child named '{name}'");
            };
            check_scheme(
                &name,
                &child.url,
                child.plain,
                &token,
                child.ca_file.is_some(),
            )?;
            if !child.plain {
                child.cert_sha256 = token.cert_sha256;
            }
            let updated = child.clone();
            cfg.validate(&Config::path(&dir.data))?;
            check_reachable_child(&dir.data, Some(&updated), &token.secret)?;
            write_secret(&dir.data, &name, &token.secret).context("storing the link secret")?;
            cfg.save(&dir.data)?;
            super::daemon_config_changed(&dir.data);
            outln!(
                "child '{name}': new link secret stored{}; the next pull uses it",
                match &updated.cert_sha256 {
                    Some(f) => format!(", certificate sha256 {f} pinned"),
                    None => String::new(),
                }
            );
        }
        ChildCmd::ClearConflicts { dir, name } => super::with_node(&dir.data, |node| {
            if !node.config.children.iter().any(|c| c.name == name) {
                bail!("no child named '{name}'");
            }
            let n = node.store.clear_conflicts(&name)?;
            outln!(
                "cleared {n} conflicts of child '{name}'; its next pull checks everything again"
            );
            Ok(())
        })?,
    }
    Ok(Status::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("60s").unwrap(), 60);
        assert_eq!(parse_interval("5m").unwrap(), 300);
        assert_eq!(parse_interval("2h").unwrap(), 7200);
        assert_eq!(parse_interval("45").unwrap(), 45);
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("soon").is_err());
    }
}

#[derive(clap::Args, Debug)]
pub struct DecommissionArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// The sensor (roo incarnation) to retire.
    #[arg(long)]
    pub sensor: u32,
}

pub fn decommission(a: DecommissionArgs) -> anyhow::Result<Status> {
    let report = match crate::control::attached_node() {
        Some(ctx) => crate::decommission::decommission_in(&ctx, a.sensor)?,
        None => crate::decommission::decommission(node::open(&a.dir.data)?, a.sensor)?,
    };
    for e in &report.errors {
        errln!("warning: {e}");
    }
    outln!(
        "sensor {} decommissioned: {} segments ({} bytes) held and verified here; its pcap is served by this node from now on",
        a.sensor,
        report.segments,
        report.bytes
    );
    Ok(Status::Ok)
}

#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// Drop pcap older than this many days (never what a mirroring parent lacks).
    #[arg(long)]
    pub pcap_days: u32,
    /// Also delete closed flow rows older than this many days from the mirror.
    #[arg(long)]
    pub records_days: Option<u32>,
}

pub fn prune(a: PruneArgs) -> anyhow::Result<Status> {
    let now = crate::clock::now_secs();
    let r = super::with_node(&a.dir.data, |node| {
        Ok(crate::prune::prune(node, now, a.pcap_days, a.records_days)?)
    })?;
    outln!(
        "dropped {} pcap segments ({} bytes)",
        r.segments_dropped,
        r.bytes_dropped
    );
    for (peer, n) in &r.kept_for {
        outln!("kept {n} pcap segments that parent '{peer}' has not pulled yet");
    }
    if a.records_days.is_some() {
        outln!("deleted {} flow rows", r.flow_rows_deleted);
    }
    Ok(Status::Ok)
}
