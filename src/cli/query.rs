//! `flows`: Walleye's connection table on the command line.

use std::net::IpAddr;

use anyhow::Context;

use super::{DataDir, Status, parse_time};
use crate::community_id;
use crate::mirror::FlowQuery;
use crate::records::FlowRecord;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct FlowsArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// Only this sensor.
    #[arg(long)]
    pub sensor: Option<u32>,
    /// Source or destination address, or network (ADDR/MASK).
    #[arg(long, value_name = "IP[/MASK]")]
    pub host: Option<String>,
    /// Source or destination port.
    #[arg(long)]
    pub port: Option<u16>,
    /// IP protocol: a number or tcp, udp, icmp, icmp6.
    #[arg(long)]
    pub proto: Option<String>,
    /// Flows that end at or after this time (epoch seconds or UTC date/time).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<u32>,
    /// Flows that start at or before this time.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<u32>,
    /// At most this many flows.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Only the flow(s) with this Community ID (v1, e.g. from Zeek, Suricata or Arkime).
    #[arg(long, value_name = "ID")]
    pub community_id: Option<String>,
    /// The Community ID seed (as configured in Zeek, Suricata or Arkime).
    #[arg(long, default_value_t = crate::community_id::DEFAULT_SEED)]
    pub community_id_seed: u16,
    /// Output: an aligned table, CSV with a header line, or a JSON array.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub fn parse_proto(s: &str) -> anyhow::Result<u8> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "icmp6" | "icmpv6" | "ipv6-icmp" => 58,
        "sctp" => 132,
        n => n.parse().with_context(|| {
            format!("--proto '{s}': use a number 0-255 or tcp, udp, icmp, icmp6, sctp")
        })?,
    })
}

pub fn parse_host(s: &str) -> anyhow::Result<(IpAddr, u8)> {
    match crate::net::parse(s) {
        Ok(n) => Ok((n.addr(), n.prefix_len())),
        Err(crate::net::NetError::Address(a)) => {
            anyhow::bail!("--host '{s}': '{a}' is not an IP address")
        }
        Err(crate::net::NetError::Prefix { max }) => {
            anyhow::bail!("--host '{s}': mask must be 0-{max}")
        }
    }
}

pub fn fmt_epoch(secs: u32) -> String {
    crate::time_arg::utc_text(secs)
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmp6".into(),
        132 => "sctp".into(),
        n => n.to_string(),
    }
}

fn endpoint(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(_) => format!("{ip}:{port}"),
        IpAddr::V6(_) => format!("[{ip}]:{port}"),
    }
}

fn duration_ms(f: &FlowRecord) -> i64 {
    let start = i64::from(f.src.start_sec) * 1000 + i64::from(f.src.start_msec);
    let (es, em) = if (f.dst.end_sec, f.dst.end_msec) > (f.src.end_sec, f.src.end_msec) {
        (f.dst.end_sec, f.dst.end_msec)
    } else {
        (f.src.end_sec, f.src.end_msec)
    };
    (i64::from(es) * 1000 + i64::from(em) - start).max(0)
}

pub fn flows(a: FlowsArgs) -> anyhow::Result<Status> {
    let q = FlowQuery {
        sensor: a.sensor,
        host: a.host.as_deref().map(parse_host).transpose()?,
        host_side: crate::mirror::HostSide::Either,
        port: a.port,
        proto: a.proto.as_deref().map(parse_proto).transpose()?,
        since: a.since,
        until: a.until,
        // The ID is a hash: every flow of the other filters is hashed, and
        // the limit applies to the flows that match.
        limit: if a.community_id.is_some() {
            None
        } else {
            a.limit
        },
    };
    let seed = a.community_id_seed;
    let mirror = super::reading_mirror(&a.dir.data)?;
    let mut rows = mirror.flows(&q)?;
    if let Some(want) = &a.community_id {
        rows.retain(|f| community_id::of_flow(f, seed).as_deref() == Some(want.as_str()));
        if let Some(n) = a.limit {
            rows.truncate(usize::try_from(n).unwrap_or(usize::MAX));
        }
    }
    match a.format {
        Format::Json => {
            let out: Vec<serde_json::Value> = rows
                .iter()
                .map(|f| {
                    let mut v = serde_json::to_value(f)?;
                    if let Some(o) = v.as_object_mut() {
                        o.insert(
                            "community_id".into(),
                            serde_json::json!(community_id::of_flow(f, seed)),
                        );
                    }
                    Ok(v)
                })
                .collect::<Result<_, serde_json::Error>>()?;
            outln!("{}", serde_json::to_string_pretty(&out)?)
        }
        Format::Csv => print_csv(&rows, seed)?,
        Format::Table => print_table(&rows)?,
    }
    Ok(Status::Ok)
}

const CSV_HEADER: &str = "sensor_id,flow_id,start,duration_ms,ip_proto,src_ip,src_port,dst_ip,dst_port,src_packets,src_bytes,dst_packets,dst_bytes,src_tcp_flags,dst_tcp_flags,is_local,closed,community_id";

fn print_csv(rows: &[FlowRecord], seed: u16) -> std::io::Result<()> {
    outln!("{CSV_HEADER}");
    for f in rows {
        outln!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            f.sensor_id,
            f.flow_id,
            f.src.start_sec,
            duration_ms(f),
            f.ip_proto,
            f.src_ip,
            f.src_port,
            f.dst_ip,
            f.dst_port,
            f.src.packets,
            f.src.bytes,
            f.dst.packets,
            f.dst.bytes,
            f.src.tcp_flags,
            f.dst.tcp_flags,
            u8::from(f.is_local),
            u8::from(f.closed),
            community_id::of_flow(f, seed).unwrap_or_default()
        );
    }
    Ok(())
}

pub(super) fn print_table(rows: &[FlowRecord]) -> std::io::Result<()> {
    outln!(
        "{:<19} {:>9} {:>10} {:>7} {:<5} {:>41}    {:<41} {:>14} {:>14}",
        "start (UTC)",
        "duration",
        "sensor",
        "flow",
        "proto",
        "client",
        "server",
        "client pkts/B",
        "server pkts/B"
    );
    for f in rows {
        outln!(
            "{:<19} {:>8.3}s {:>10} {:>7} {:<5} {:>41} -> {:<41} {:>14} {:>14}",
            fmt_epoch(f.src.start_sec),
            duration_ms(f) as f64 / 1000.0,
            f.sensor_id,
            f.flow_id,
            proto_name(f.ip_proto),
            endpoint(f.src_ip, f.src_port),
            endpoint(f.dst_ip, f.dst_port),
            format!("{}/{}", f.src.packets, f.src.bytes),
            format!("{}/{}", f.dst.packets, f.dst.bytes),
        );
    }
    outln!("{} flows", rows.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_protos() {
        assert_eq!(parse_host("192.0.2.0/24").unwrap().1, 24);
        assert_eq!(parse_host("2001:db8::1").unwrap().1, 128);
        assert!(parse_host("192.0.2.0/33").is_err());
        assert!(parse_host("nope").is_err());
        assert_eq!(parse_proto("TCP").unwrap(), 6);
        assert_eq!(parse_proto("47").unwrap(), 47);
        assert!(parse_proto("bogus").is_err());
    }

    #[test]
    fn epoch_formatting() {
        assert_eq!(fmt_epoch(0), "1970-01-01 00:00:00");
        assert_eq!(fmt_epoch(1_795_651_200), "2026-11-26 00:00:00");
    }
}
