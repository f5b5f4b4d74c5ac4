//! `sensor-id`, `init`, `status`, `verify` and `config`: creating and inspecting a node.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::{DataDir, Status, progress_bar};
use crate::config::Config;
use crate::ingest::Ingestor;
use crate::node::{self, InitOutcome};
use crate::sensor_id::{self, SensorId};
use crate::store::verify::verify_with as verify_store;

#[derive(clap::Args, Debug)]
pub struct SensorIdArgs {
    /// Management address of the roo (IPv4, or IPv6 folded as documented).
    #[arg(long, required_unless_present = "hw_file", conflicts_with = "hw_file")]
    pub ip: Option<IpAddr>,
    /// Day to use instead of today (YYYY-MM-DD, UTC).
    #[arg(long, requires = "ip")]
    pub date: Option<String>,
    /// Read and normalise an existing HwSENSOR_ID file instead (decimal or dotted quad).
    #[arg(long, value_name = "FILE")]
    pub hw_file: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("identity").required(true).multiple(true).args(["sensor_id", "manager_ip", "hw_conf"])))]
pub struct InitArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// Use this sensor id (decimal or dotted quad; bit 31 set = assigned by hand).
    #[arg(long)]
    pub sensor_id: Option<String>,
    /// The roo's management address: generates the sensor id from it
    /// (makesensor_id rule) unless --sensor-id gives one, and is recorded
    /// with the sensor, so reinstalls at this address are recognised.
    #[arg(long)]
    pub manager_ip: Option<IpAddr>,
    /// Read a Honeywall configuration directory (/hw/conf): HwSENSOR_ID, else
    /// HwMANAGE_IP to generate one; HwLAN_IP_RANGE sets the honeypot network.
    #[arg(long, value_name = "DIR")]
    pub hw_conf: Option<PathBuf>,
    /// Honeypot network (CIDR), repeatable; flows started inside are outbound.
    #[arg(long = "honeypot-net", value_name = "CIDR")]
    pub honeypot_nets: Vec<String>,
    /// Sensor name (default "Honeywall: <id>").
    #[arg(long)]
    pub name: Option<String>,
    /// Install time of this incarnation (epoch seconds or UTC date/time;
    /// default now), e.g. when archiving a honeywall installed long ago.
    #[arg(long, value_parser = super::parse_time)]
    pub installed: Option<u32>,
}

#[derive(clap::Args, Debug)]
pub struct DataArg {
    #[command(flatten)]
    pub dir: DataDir,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// Also decode every pcap segment and check the flow index against its
    /// packets (decompresses everything: slower).
    #[arg(long)]
    pub deep: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum ConfigCmd {
    /// Print the effective configuration.
    Show(DataDir),
    /// Set one key (lists are comma-separated), e.g. `capture.honeypot_nets 192.0.2.0/24`.
    Set {
        #[command(flatten)]
        dir: DataDir,
        /// The setting, as `section.name` (see `lumpy config show` and docs/CONFIG.md).
        key: String,
        /// Its new value (checked before lumpy.toml is written).
        value: String,
    },
}

use crate::clock::now_secs;

pub fn sensor_id(a: SensorIdArgs) -> anyhow::Result<Status> {
    if let Some(file) = a.hw_file {
        let id = sensor_id::read_hw_sensor_id(&file)?;
        outln!("{id}");
        return Ok(Status::Ok);
    }
    let Some(ip) = a.ip else {
        bail!("give --ip ADDRESS or --hw-file FILE");
    };
    let days = match &a.date {
        Some(d) => sensor_id::days_from_date(d)?,
        None => now_secs() / 86400,
    };
    outln!("{}", sensor_id::generate(days, ip)?);
    Ok(Status::Ok)
}

/// Reads one Honeywall configuration variable file, if present and non-empty.
fn hw_var(dir: &Path, name: &str) -> anyhow::Result<Option<String>> {
    let p = dir.join(name);
    match std::fs::read_to_string(&p) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

fn resolve_identity(a: &InitArgs, config: &mut Config) -> anyhow::Result<SensorId> {
    if let Some(s) = &a.sensor_id {
        return Ok(s.parse()?);
    }
    if let Some(ip) = a.manager_ip {
        return Ok(sensor_id::generate(now_secs() / 86400, ip)?);
    }
    let Some(dir) = &a.hw_conf else {
        bail!("give --sensor-id, --manager-ip or --hw-conf");
    };
    if let Some(range) = hw_var(dir, "HwLAN_IP_RANGE")? {
        config.capture.honeypot_nets.push(range);
    }
    if dir.join("HwSENSOR_ID").exists() && hw_var(dir, "HwSENSOR_ID")?.is_some() {
        return Ok(sensor_id::read_hw_sensor_id(&dir.join("HwSENSOR_ID"))?);
    }
    match hw_var(dir, "HwMANAGE_IP")? {
        Some(ip) => {
            let ip: IpAddr = ip.parse().with_context(|| {
                format!(
                    "{}: '{ip}' is not an address",
                    dir.join("HwMANAGE_IP").display()
                )
            })?;
            Ok(sensor_id::generate(now_secs() / 86400, ip)?)
        }
        None => bail!(
            "{}: neither HwSENSOR_ID nor HwMANAGE_IP is set, so no sensor id can be read or made",
            dir.display()
        ),
    }
}

pub fn init(a: InitArgs) -> anyhow::Result<Status> {
    let mut config = Config::load(&a.dir.data).unwrap_or_default();
    config
        .capture
        .honeypot_nets
        .extend(a.honeypot_nets.iter().cloned());
    let id = resolve_identity(&a, &mut config)?;
    let manage_ip = match (a.manager_ip, &a.hw_conf) {
        (Some(ip), _) => Some(ip),
        (None, Some(dir)) => hw_var(dir, "HwMANAGE_IP")?.and_then(|s| s.parse().ok()),
        (None, None) => None,
    };
    config.capture.honeypot_nets.dedup();
    let install = a.installed.map_or_else(now_secs, u64::from);
    let (mut node, outcome) = node::init(&a.dir.data, id.0, install, &config)?;
    if outcome == InitOutcome::AlreadyInitialised {
        outln!(
            "{} is already sensor {id}; nothing changed",
            a.dir.data.display()
        );
        return Ok(Status::Ok);
    }
    let name = a.name.clone().unwrap_or_else(|| format!("Honeywall: {id}"));
    let mut ingestor = Ingestor::new(&mut node, None);
    ingestor.ensure_sensor_at(id.0, install as u32, &name, manage_ip)?;
    ingestor.flush_mirror()?;
    outln!("initialised {} as sensor {id}", a.dir.data.display());
    if id.is_manual() {
        outln!("note: bit 31 is set: this id was assigned by hand");
    }
    Ok(Status::Ok)
}

fn fmt_time(ns: Option<u64>) -> String {
    match ns {
        Some(ns) => super::query::fmt_epoch((ns / 1_000_000_000) as u32),
        None => "-".into(),
    }
}

/// The word `status` and `sensors` both use for a sensor that sent nothing
/// for `serve.silent_after_secs` (its state may still say online: silence
/// is what the node observes, the state what the sensor row says).
fn silence(after_secs: u64) -> String {
    format!("silent (no new data for more than {after_secs} s)")
}

/// Per-sensor health line data: (sensor, max seq, hops, newest secs, silent).
fn sensor_health(node: &node::Node) -> anyhow::Result<Vec<serde_json::Value>> {
    let (hops, _) = crate::sync::links::children_view(&node.store)?;
    let now = now_secs();
    let incarnations = node.mirror.incarnations()?;
    let mut out = Vec::new();
    for sensor in node.store.known_sensors()? {
        let h = if node.store.is_origin_of(sensor)? {
            0
        } else {
            hops.get(&sensor).map_or(u32::MAX, |h| h.saturating_add(1))
        };
        let s = crate::sync::summary::sensor_summary(&node.store, sensor, h)?;
        let newest = s.newest_ns / 1_000_000_000;
        let retired = node.config.decommissioned.contains(&sensor);
        let silent = !retired && now.saturating_sub(newest) > node.config.serve.silent_after_secs;
        let flow_table = crate::ingest::flow_table_report(&node.store, sensor)?;
        out.push(serde_json::json!({
            "sensor_id": sensor,
            "segments_known": s.max_seq,
            "root": s.chain,
            "hops": if h == u32::MAX { serde_json::Value::Null } else { h.into() },
            "newest_record": newest,
            "silent": silent,
            "decommissioned": retired,
            "incarnation": incarnations.iter().find(|i| i.sensor_id == sensor),
            "flows_evicted": flow_table.as_ref().map(|t| t.evicted),
        }));
    }
    Ok(out)
}

fn link_health(node: &node::Node) -> anyhow::Result<Vec<serde_json::Value>> {
    let now = now_secs();
    let mut out = Vec::new();
    for c in &node.config.children {
        let st = crate::sync::links::load_state(&node.store, &c.name)?;
        out.push(serde_json::json!({
            "name": c.name,
            "url": c.url,
            "pcap": format!("{:?}", c.pcap).to_lowercase(),
            "interval_secs": c.interval_secs,
            "last_success": st.last_success,
            "lag_secs": if st.last_success == 0 { serde_json::Value::Null } else { now.saturating_sub(st.last_success).into() },
            "bytes_in": st.bytes_in,
            "bytes_out": st.bytes_out,
            "segments_fetched": st.segments_fetched,
            "last_error": st.last_error,
            "conflicts": st.conflicts,
            "sensors": c.sensors,
        }));
    }
    Ok(out)
}

/// `lumpy sensors`: each incarnation and its neighbours at the same address.
pub fn sensors(a: DataArg) -> anyhow::Result<Status> {
    let mirror = super::reading_mirror(&a.dir.data)?;
    let all = mirror.incarnations()?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(Status::Ok);
    }
    let when = |s: u32| super::query::fmt_epoch(s);
    // The same rule as `status`: no data for serve.silent_after_secs.
    let silent_after = crate::config::Config::load(&a.dir.data)
        .map(|c| c.serve.silent_after_secs)
        .unwrap_or(crate::config::Config::default().serve.silent_after_secs);
    let now = now_secs();
    for i in &all {
        let silent =
            i.state == "online" && now.saturating_sub(u64::from(i.last_upd_sec)) > silent_after;
        outln!(
            "sensor {}  installed {}  last update {}  {}{}  address {}  {:?}",
            i.sensor_id,
            when(i.install_sec),
            when(i.last_upd_sec),
            if i.state.is_empty() { "-" } else { &i.state },
            if silent {
                format!(", {}", silence(silent_after))
            } else {
                String::new()
            },
            i.manage_ip.as_deref().unwrap_or("unknown"),
            i.name
        );
        for (what, list) in [("earlier", &i.earlier), ("later", &i.later)] {
            for n in list {
                outln!(
                    "  {what} incarnation at this address: sensor {} installed {} (by {})",
                    n.sensor_id,
                    when(n.install_sec),
                    n.by
                );
            }
        }
    }
    outln!("{} sensors", all.len());
    Ok(Status::Ok)
}

pub fn status(a: DataArg) -> anyhow::Result<Status> {
    let dir = a.dir.data.clone();
    // Without the catch-up: status answers at once and shows the lag.
    super::with_node_opened(&dir, node::open_lagging, |node| status_of(node, &a))
}

fn status_of(node: &node::Node, a: &DataArg) -> anyhow::Result<Status> {
    let mirror_lag = node.mirror_lag()?;
    let totals = node.store.totals()?;
    let flows = node.mirror.flow_count()?;
    let sensors = sensor_health(node)?;
    let links = link_health(node)?;
    let exports: Vec<serde_json::Value> = node
        .config
        .exports
        .iter()
        .map(|e| crate::export::clickhouse_live::status_json(&a.dir.data, e, now_secs()))
        .collect();
    let quarantined: Vec<serde_json::Value> = node
        .store
        .quarantined()?
        .into_iter()
        .map(|(id, why)| {
            serde_json::json!({
                "id": id.to_hex(),
                "path": node.store.segment_path(&id),
                "reason": why,
            })
        })
        .collect();
    if a.json {
        let v = serde_json::json!({
            "sensor_id": node.identity.sensor_id,
            "install_sec": node.identity.install_sec,
            "segments": totals.segments,
            "pcap_segments": totals.pcap_segments,
            "record_segments": totals.record_segments,
            "record_versions": totals.records,
            "packets": totals.packets,
            "bytes_raw": totals.raw_bytes,
            "bytes_records": totals.record_bytes,
            "bytes_stored": totals.stored_bytes,
            "flows": flows,
            "mirror_lag_segments": mirror_lag,
            "time_first": totals.time_first_ns.map(|n| n / 1_000_000_000),
            "time_last": totals.time_last_ns.map(|n| n / 1_000_000_000),
            "sensors": sensors,
            "children": links,
            "exports": exports,
            "quarantined": quarantined,
        });
        outln!("{v:#}");
        return Ok(Status::Ok);
    }
    let raw_all = totals.raw_bytes + totals.record_bytes;
    let ratio = if raw_all > 0 {
        totals.stored_bytes as f64 / raw_all as f64
    } else {
        0.0
    };
    outln!("data directory  {}", a.dir.data.display());
    outln!("sensor id       {}", node.identity.sensor_id);
    outln!(
        "installed       {}",
        super::query::fmt_epoch(node.identity.install_sec as u32)
    );
    outln!(
        "segments        {} ({} pcap, {} records)",
        totals.segments,
        totals.pcap_segments,
        totals.record_segments
    );
    outln!("packets         {}", totals.packets);
    outln!(
        "bytes raw       {} of packets (as pcap records), {} of records",
        totals.raw_bytes,
        totals.record_bytes
    );
    outln!(
        "bytes stored    {} ({:.3} of raw)",
        totals.stored_bytes,
        ratio
    );
    outln!("flows           {flows}");
    if mirror_lag > 0 {
        outln!(
            "mirror lag      {mirror_lag} record segments not yet in the mirror (the next command that opens the node, or serve, applies them)"
        );
    } else {
        outln!("mirror lag      0 (up to date)");
    }
    outln!(
        "time span       {} .. {}",
        fmt_time(totals.time_first_ns),
        fmt_time(totals.time_last_ns)
    );
    for s in &sensors {
        let inc = &s["incarnation"];
        let ids = |v: &serde_json::Value| -> String {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .map(|n| n["sensor_id"].to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        };
        let mut same = String::new();
        if !ids(&inc["earlier"]).is_empty() {
            same.push_str(&format!("  reinstall of {}", ids(&inc["earlier"])));
        }
        if !ids(&inc["later"]).is_empty() {
            same.push_str(&format!("  reinstalled as {}", ids(&inc["later"])));
        }
        let evicted = match s["flows_evicted"].as_u64() {
            Some(n) if n > 0 => format!("  {n} flows evicted (open-flow table full)"),
            _ => String::new(),
        };
        outln!(
            "sensor {:<10} segments {:<8} hops {:<4} newest record {}  installed {}{}{}{}",
            s["sensor_id"],
            s["segments_known"],
            s["hops"],
            super::query::fmt_epoch(s["newest_record"].as_u64().unwrap_or(0) as u32),
            inc["install_sec"]
                .as_u64()
                .map_or_else(|| "-".to_string(), |t| super::query::fmt_epoch(t as u32)),
            if s["silent"].as_bool() == Some(true) {
                format!("  {}", silence(node.config.serve.silent_after_secs))
            } else {
                String::new()
            },
            same,
            evicted
        );
    }
    for l in &links {
        outln!(
            "child {:<12} {} last success {} lag {}s, {} bytes in{}",
            l["name"].as_str().unwrap_or(""),
            l["url"].as_str().unwrap_or(""),
            l["last_success"],
            l["lag_secs"],
            l["bytes_in"],
            match l["last_error"].as_str() {
                Some(e) if !e.is_empty() => format!(", last error: {e}"),
                _ => String::new(),
            }
        );
        for c in l["conflicts"].as_array().into_iter().flatten() {
            outln!("  conflict: {}", c.as_str().unwrap_or(""));
        }
    }
    for e in &exports {
        outln!(
            "export {:<11} clickhouse {} database {} last success {} lag {}{}",
            e["name"].as_str().unwrap_or(""),
            e["url"].as_str().unwrap_or(""),
            e["database"].as_str().unwrap_or(""),
            e["last_success"],
            match e["lag_secs"].as_u64() {
                Some(s) => format!("{s}s"),
                None => "never exported".to_string(),
            },
            match e["last_error"].as_str() {
                Some(m) if !m.is_empty() => format!(", last error: {m}"),
                _ => String::new(),
            }
        );
    }
    for q in &quarantined {
        outln!(
            "QUARANTINED segment {} ({}): {}",
            q["id"].as_str().unwrap_or(""),
            q["path"].as_str().unwrap_or(""),
            q["reason"].as_str().unwrap_or("")
        );
    }
    Ok(Status::Ok)
}

pub fn verify(a: VerifyArgs) -> anyhow::Result<Status> {
    if let Some(ctx) = crate::control::attached_node() {
        return verify_store_of(&ctx.store, &a);
    }
    let store = match crate::store::Store::open(&a.dir.data, false) {
        Ok(s) => s,
        Err(
            e @ (crate::store::StoreError::IndexDamaged { .. }
            | crate::store::StoreError::Index { .. }),
        ) => {
            outln!("DAMAGED {e}");
            if let Some(why) = crate::store::seal::damage(&a.dir.data) {
                outln!("DAMAGED {}: {why}", a.dir.data.join("index.redb").display());
            }
            outln!(
                "the index cannot be opened, so nothing else was checked; each segment file can still be checked by hand: its name is its b3sum"
            );
            return Ok(Status::Problems);
        }
        Err(e) => return Err(e.into()),
    };
    verify_store_of(&store, &a)
}

fn verify_store_of(store: &crate::store::Store, a: &VerifyArgs) -> anyhow::Result<Status> {
    let total = store
        .guarded(|| store.totals())
        .map(|t| t.stored_bytes)
        .unwrap_or(0);
    let bar = progress_bar(total, "verify");
    let report = verify_store(
        store,
        crate::store::verify::Options { deep: a.deep },
        |done| bar.set_position(done),
    )?;
    bar.finish_and_clear();
    for p in &report.problems {
        outln!("DAMAGED {p}");
    }
    for u in &report.unindexed {
        outln!(
            "note: {} is not indexed (left by an interrupted write; harmless)",
            u.display()
        );
    }
    if let Some(crate::store::seal::SealCheck::Unsealed) = report.index_seal {
        outln!(
            "note: {} had no seal (a new store, or its last user did not close it cleanly): its entries were checked, not its unused pages",
            store.index_path().display()
        );
    }
    if a.deep {
        outln!(
            "deep: decoded the packets of {} pcap segments and compared {} flow index entries with the flows they hold",
            report.deep_pcap_segments,
            report.deep_flow_entries
        );
    }
    outln!(
        "{} segments, {} bytes hashed, {} index entries checked: {}",
        report.segments_checked,
        report.bytes_hashed,
        report.index_entries_checked,
        if report.is_clean() {
            "no problems".to_string()
        } else {
            format!("{} problems", report.problems.len())
        }
    );
    Ok(if report.is_clean() {
        Status::Ok
    } else {
        Status::Problems
    })
}

pub fn config(c: ConfigCmd) -> anyhow::Result<Status> {
    match c {
        ConfigCmd::Show(d) => {
            let cfg = Config::load(&d.data)?;
            out!("{}", toml::to_string_pretty(&cfg)?);
        }
        ConfigCmd::Set { dir, key, value } => {
            if !dir.data.join("index.redb").exists() {
                bail!("{} is not a lumpy data directory", dir.data.display());
            }
            let mut cfg = Config::load(&dir.data)?;
            cfg.set(&key, &value, &Config::path(&dir.data))?;
            cfg.save(&dir.data)?;
            super::daemon_config_changed(&dir.data);
            outln!("{key} = {value}");
        }
    }
    Ok(Status::Ok)
}
