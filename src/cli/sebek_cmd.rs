//! Host-data commands: `processes`, `keystrokes` and `hosts` read the
//! mirror's sebek and OS tables; `gen-sebek` (hidden) writes the sebek
//! generator's scripted session as a pcap file, for fixtures
//! (fixtures/README.md).

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;

use super::query::{fmt_epoch, print_table};
use super::{DataDir, Status};
use crate::mirror::{FlowQuery, HostSide, ProcessQuery, ProcessView};
use crate::sebek::generate::{shell_session, write_pcap};

#[derive(clap::Args, Debug)]
pub struct GenSebekArgs {
    /// The pcap file to write.
    pub out: PathBuf,
    /// Sebek UDP port.
    #[arg(long, default_value_t = crate::sebek::DEFAULT_PORT)]
    pub port: u16,
}

pub fn gen_sebek(a: GenSebekArgs) -> anyhow::Result<Status> {
    let bytes = write_pcap(&shell_session(a.port));
    std::fs::write(&a.out, bytes).with_context(|| format!("writing {}", a.out.display()))?;
    Ok(Status::Ok)
}

#[derive(clap::Args, Debug)]
pub struct ProcessesArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// Only this sensor.
    #[arg(long)]
    pub sensor: Option<u32>,
    /// Processes with a socket on this flow, with their ancestors and descendants.
    #[arg(long)]
    pub flow: Option<u32>,
    /// Only processes with this OS pid.
    #[arg(long)]
    pub pid: Option<u32>,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct KeystrokesArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// The process (process_id of `lumpy processes`).
    #[arg(long)]
    pub process: u32,
    /// The sensor, when several have this process id.
    #[arg(long)]
    pub sensor: Option<u32>,
    /// JSON (one object per read) instead of the typed text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct HostsArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// The host's address (IPv4 or IPv6).
    #[arg(long)]
    pub ip: IpAddr,
    /// At most this many flows each way (as client, as server), the earliest first.
    #[arg(long, default_value_t = 20)]
    pub limit: u64,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn clock(secs: i64) -> String {
    fmt_epoch(u32::try_from(secs).unwrap_or(0))
}

fn print_process(p: &ProcessView) -> std::io::Result<()> {
    outln!(
        "process {} (sensor {}) pid {} on {}: {} .. {} (honeypot clock {} .. {})",
        p.process_id,
        p.sensor_id,
        p.pid,
        p.src_ip,
        clock(p.pcap_time_min),
        clock(p.pcap_time_max),
        clock(p.time_min),
        clock(p.time_max)
    );
    outln!("  commands: {}", p.commands.join(", "));
    outln!("  parents: {:?}  children: {:?}", p.parents, p.children);
    for o in &p.opens {
        outln!("  open fd {} {} at {}", o.filed, o.filename, clock(o.time));
    }
    for s in &p.sockets {
        outln!(
            "  socket {} call {} flow {} at {}",
            s.sys_socket_id,
            s.call,
            s.flow_id,
            clock(s.time)
        );
    }
    Ok(())
}

pub fn processes(a: ProcessesArgs) -> anyhow::Result<Status> {
    let mirror = super::reading_mirror(&a.dir.data)?;
    let rows = mirror.processes(&ProcessQuery {
        sensor: a.sensor,
        flow: a.flow,
        pid: a.pid,
        process: None,
    })?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        rows.iter().try_for_each(print_process)?;
        outln!("{} processes", rows.len());
    }
    Ok(Status::Ok)
}

/// Bytes as typed text: printable ASCII and newlines as is, the rest escaped.
pub fn typed(data: &[u8], out: &mut String) {
    for b in data {
        match b {
            b'\n' | b'\t' | 0x20..=0x7e => out.push(char::from(*b)),
            b'\r' => out.push_str("\\r"),
            0x7f | 0x08 => out.push_str("<BS>"),
            other => out.push_str(&format!("\\x{other:02x}")),
        }
    }
}

pub fn keystrokes(a: KeystrokesArgs) -> anyhow::Result<Status> {
    let mirror = super::reading_mirror(&a.dir.data)?;
    let reads = mirror.reads(a.sensor, a.process)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&reads)?);
        return Ok(Status::Ok);
    }
    let mut text = String::new();
    for r in reads.iter().filter(|r| r.filed == 0) {
        typed(&r.data, &mut text);
    }
    out!("{text}");
    if !text.ends_with('\n') && !text.is_empty() {
        outln!();
    }
    Ok(Status::Ok)
}

pub fn hosts(a: HostsArgs) -> anyhow::Result<Status> {
    let mirror = super::reading_mirror(&a.dir.data)?;
    let os = mirror.os_history_of(a.ip)?;
    let prefix = if a.ip.is_ipv4() { 32 } else { 128 };
    let side = |host_side| {
        mirror.flows(&FlowQuery {
            host: Some((a.ip, prefix)),
            host_side,
            limit: Some(a.limit),
            ..FlowQuery::default()
        })
    };
    let as_client = side(HostSide::Client)?;
    let as_server = side(HostSide::Server)?;
    if a.json {
        let v = serde_json::json!({
            "ip": a.ip,
            "os": os,
            "limit": a.limit,
            "flows_as_client": as_client,
            "flows_as_server": as_server,
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(Status::Ok);
    }
    outln!("host {}", a.ip);
    if os.is_empty() {
        outln!("  no OS fingerprint");
    }
    for o in &os {
        // p0f's `!` class is a tool (nmap, ...), not an operating system.
        let what = if o.application {
            "application (p0f class !)"
        } else {
            "OS"
        };
        outln!(
            "  sensor {} {what}: {} {} ({} flows as {}, {} .. {})",
            o.sensor_id,
            o.genre,
            o.detail,
            o.flows,
            o.role,
            clock(o.first_sec),
            clock(o.last_sec)
        );
    }
    for (role, flows) in [("client", &as_client), ("server", &as_server)] {
        let more = if flows.len() as u64 >= a.limit {
            format!(" (the first {}; --limit for more)", a.limit)
        } else {
            String::new()
        };
        outln!();
        outln!("as {role}{more}:");
        print_table(flows)?;
    }
    Ok(Status::Ok)
}
