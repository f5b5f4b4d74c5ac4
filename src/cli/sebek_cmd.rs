//! Host-data commands: `processes`, `keystrokes` and `hosts` read the
//! mirror's sebek and OS tables; `gen-sebek` (hidden) writes the sebek
//! generator's scripted session as a pcap file, for fixtures
//! (fixtures/README.md).

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;

use super::parse_time;
use super::query::{fmt_epoch, print_table};
use super::{DataDir, Status};
use crate::mirror::{FlowQuery, HostSide, KeystrokeQuery, ProcessQuery, ProcessView};
use crate::sebek::generate::{paste_session, shell_session, typing_session, write_pcap};

#[derive(clap::Args, Debug)]
pub struct GenSebekArgs {
    /// The pcap file to write.
    pub out: PathBuf,
    /// Sebek UDP port.
    #[arg(long, default_value_t = crate::sebek::DEFAULT_PORT)]
    pub port: u16,
    /// Which scripted session: `shell` (fixtures/sebek.pcap), `typing`
    /// (backspaces and passwords, for keystroke logs) or `paste` (a
    /// command line of 85 bytes read at once).
    #[arg(long, default_value = "shell")]
    pub script: String,
}

pub fn gen_sebek(a: GenSebekArgs) -> anyhow::Result<Status> {
    let frames = match a.script.as_str() {
        "shell" => shell_session(a.port),
        "typing" => typing_session(a.port),
        "paste" => paste_session(a.port),
        other => anyhow::bail!("--script '{other}': use shell, typing or paste"),
    };
    let bytes = write_pcap(&frames);
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
    /// Show the honeypot's clock (sebek headers) beside the capture clock.
    #[arg(long)]
    pub both_clocks: bool,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct KeystrokesArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// Only this sensor.
    #[arg(long)]
    pub sensor: Option<u32>,
    /// Only this honeypot (the IPv4 address its sebek records come from).
    #[arg(long, value_name = "IP")]
    pub host: Option<std::net::Ipv4Addr>,
    /// Only this process (process_id of `lumpy processes`).
    #[arg(long)]
    pub process: Option<u32>,
    /// Lines whose time (the honeypot clock printed) is at or after this
    /// (epoch seconds or UTC date/time).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<u32>,
    /// Apply backspaces (and Ctrl-U, Ctrl-W) instead of showing them as [BS].
    #[arg(long, conflicts_with = "raw")]
    pub cooked: bool,
    /// One process's reads as bytes, non-printable ones escaped (needs --process).
    #[arg(long, requires = "process")]
    pub raw: bool,
    /// JSON (one object per line, all three renderings) instead of text.
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

/// A time on the capture clock, and the honeypot's beside it with `both`.
fn when(pcap: i64, honeypot: i64, both: bool) -> String {
    if both {
        format!("{} (honeypot clock {})", clock(pcap), clock(honeypot))
    } else {
        clock(pcap)
    }
}

/// `ADDR:PORT`, or `?` when unknown.
fn end(ip: Option<std::net::Ipv4Addr>, port: Option<u16>) -> String {
    match (ip, port) {
        (Some(ip), Some(port)) => format!("{ip}:{port}"),
        _ => "?".into(),
    }
}

fn print_process(p: &ProcessView, both: bool) -> std::io::Result<()> {
    let span = if both {
        format!(
            "{} .. {} (honeypot clock {} .. {})",
            clock(p.pcap_time_min),
            clock(p.pcap_time_max),
            clock(p.time_min),
            clock(p.time_max)
        )
    } else {
        format!("{} .. {}", clock(p.pcap_time_min), clock(p.pcap_time_max))
    };
    let ppid = p.ppid.map_or("?".to_string(), |v| v.to_string());
    let uids: Vec<String> = p.uids.iter().map(u32::to_string).collect();
    outln!(
        "process {} (sensor {}) pid {} ppid {} uid {} on {}: {span}",
        p.process_id,
        p.sensor_id,
        p.pid,
        ppid,
        if uids.is_empty() {
            "?".into()
        } else {
            uids.join(",")
        },
        p.src_ip,
    );
    outln!("  commands: {}", p.commands.join(", "));
    if p.truncated > 0 {
        outln!(
            "  {} of its records cut by the capture's snaplen (kept with their header fields, marked [truncated])",
            p.truncated
        );
    }
    let parent = match (p.parents.as_slice(), p.ppid) {
        ([], Some(ppid)) => format!("pid {ppid} (sent no record)"),
        ([], None) => "none seen".into(),
        (ids, _) => format!("process {}", join_ids(ids)),
    };
    outln!("  parent: {parent}  children: {}", join_ids(&p.children));
    for o in &p.opens {
        outln!(
            "  open fd {} {} at {}{}",
            o.filed,
            o.filename,
            when(o.pcap_time, o.time, both),
            cut(o.truncated)
        );
    }
    for s in &p.sockets {
        let proto = s.proto.map_or("?".to_string(), proto_name);
        let flow = if s.flow_id == 0 {
            "no flow seen".to_string()
        } else {
            format!("flow {}", s.flow_id)
        };
        outln!(
            "  socket {} {} {proto} {} -> {} uid {} {flow} at {}{}",
            s.sys_socket_id,
            s.call_name,
            end(s.local_ip, s.local_port),
            end(s.remote_ip, s.remote_port),
            s.uid,
            when(s.pcap_time, s.time, both),
            cut(s.truncated)
        );
    }
    Ok(())
}

/// The mark of a record the capture's snaplen cut.
pub const TRUNCATED_MARK: &str = " [truncated]";

fn cut(truncated: bool) -> &'static str {
    if truncated { TRUNCATED_MARK } else { "" }
}

fn join_ids(ids: &[u32]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    ids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn proto_name(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        n => format!("proto {n}"),
    }
}

pub fn processes(a: ProcessesArgs) -> anyhow::Result<Status> {
    let mirror = super::reading_mirror(&a.dir.data)?;
    let rows = mirror.processes(&ProcessQuery {
        sensor: a.sensor,
        flow: a.flow,
        pid: a.pid,
        process: None,
        host: None,
    })?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        rows.iter()
            .try_for_each(|p| print_process(p, a.both_clocks))?;
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
    if a.raw {
        return raw_keystrokes(&mirror, &a);
    }
    let q = KeystrokeQuery {
        sensor: a.sensor,
        host: a.host,
        process: a.process,
    };
    let since = a.since.unwrap_or(0);
    let mut failed = None;
    let mut json = Vec::new();
    mirror.keystroke_lines(&q, &mut |line| {
        if line.time < since {
            return true;
        }
        if a.json {
            json.push(line);
            return true;
        }
        let text = if a.cooked { &line.cooked } else { &line.text };
        // sbk_ks_log.pl's line, and after it the mark of a read the
        // snaplen cut (the script would have printed the bytes it lost).
        match super::write_stdout(format_args!(
            "{}{}\n",
            line.sbk_format(text),
            cut(line.truncated)
        )) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&json)?);
    }
    Ok(Status::Ok)
}

/// The byte view: every terminal (fd 0) read of one process, concatenated.
fn raw_keystrokes(mirror: &crate::mirror::Mirror, a: &KeystrokesArgs) -> anyhow::Result<Status> {
    let Some(process) = a.process else {
        anyhow::bail!("--raw shows one process: give --process");
    };
    let reads = mirror.reads(a.sensor, process)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&reads)?);
        return Ok(Status::Ok);
    }
    let mut text = String::new();
    for r in reads
        .iter()
        .filter(|r| r.filed == 0 && r.time >= i64::from(a.since.unwrap_or(0)))
    {
        typed(&r.data, &mut text);
        text.push_str(cut(r.truncated));
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
