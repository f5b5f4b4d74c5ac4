//! `pcap`: a flow's (or a filter's) packets as a pcap file, from a local
//! store or from a running node.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};

use super::Status;
use crate::config::ChildConfig;
use crate::pcap_service::{PcapQuery, Plan, plan, write_local};
use crate::sync::auth::{self, LinkToken};
use crate::sync::client::{child_client, net_error};
use crate::sync::protocol::{AUTH_HEADER, ErrorBody};
use crate::time_arg::parse_time_floor;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["data", "node"])))]
pub struct PcapArgs {
    /// Read from this node's data directory.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Ask a running node (its peer API URL) instead.
    #[arg(long, value_name = "URL", requires = "secret_file")]
    pub node: Option<String>,
    /// Link token for --node (as `lumpy peer add` printed it): its secret
    /// signs the request, its fingerprint pins the node's certificate.
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// --node is plain HTTP (an http:// URL, for loopback tests only).
    #[arg(long, requires = "node")]
    pub plain: bool,
    /// The sensor (roo incarnation) whose packets are wanted.
    #[arg(long)]
    pub sensor: u32,
    /// The flow (con_id).
    #[arg(long)]
    pub flow: Option<u32>,
    /// Packets at or after this time: epoch seconds (fractions allowed), YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS[.frac]]Z (UTC); a fraction widens the window to the whole second, pcap_api's resolution.
    #[arg(long, value_parser = parse_time_floor)]
    pub st: Option<u32>,
    /// Packets at or before this time (same forms as --st).
    #[arg(long, value_parser = parse_time_floor)]
    pub et: Option<u32>,
    /// Packets to or from this address (IPv4 or IPv6). Repeat a filter to allow any of its values; different filters must all match.
    #[arg(long)]
    pub ip: Vec<String>,
    /// Packets to or from this network (CIDR, e.g. 10.0.0.0/8 or 2001:db8::/32; a bare address is a /32 or /128).
    #[arg(long)]
    pub net: Vec<String>,
    /// Packets from this source address.
    #[arg(long)]
    pub sip: Vec<String>,
    /// Packets to this destination address.
    #[arg(long)]
    pub dip: Vec<String>,
    /// Packets from this source network (CIDR).
    #[arg(long)]
    pub snet: Vec<String>,
    /// Packets to this destination network (CIDR).
    #[arg(long)]
    pub dnet: Vec<String>,
    /// Packets of this IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmp6).
    #[arg(long)]
    pub ip_proto: Vec<u8>,
    /// Packets with this source or destination port (TCP, UDP, SCTP).
    #[arg(long)]
    pub port: Vec<u16>,
    /// Packets with this source port.
    #[arg(long)]
    pub sport: Vec<u16>,
    /// Packets with this destination port.
    #[arg(long)]
    pub dport: Vec<u16>,
    /// Output file ("-" for standard output).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
}

use crate::pcap_service::query_value as enc;

fn query_of(a: &PcapArgs) -> String {
    let mut q = vec![format!("sensor={}", a.sensor)];
    if let Some(f) = a.flow {
        q.push(format!("con_id={f}"));
    }
    if let Some(v) = a.st {
        q.push(format!("st={v}"));
    }
    if let Some(v) = a.et {
        q.push(format!("et={v}"));
    }
    for (k, list) in [
        ("ip", &a.ip),
        ("net", &a.net),
        ("sip", &a.sip),
        ("dip", &a.dip),
        ("snet", &a.snet),
        ("dnet", &a.dnet),
    ] {
        q.extend(list.iter().map(|v| format!("{k}={}", enc(v))));
    }
    q.extend(a.ip_proto.iter().map(|v| format!("ip_proto={v}")));
    for (k, list) in [("port", &a.port), ("sport", &a.sport), ("dport", &a.dport)] {
        q.extend(list.iter().map(|v| format!("{k}={v}")));
    }
    q.join("&")
}

fn open_output(path: &PathBuf) -> anyhow::Result<Box<dyn Write>> {
    if path.as_os_str() == "-" {
        return Ok(super::stdout_writer());
    }
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(Box::new(std::io::BufWriter::new(f)))
}

pub fn run(a: PcapArgs) -> anyhow::Result<Status> {
    let query = PcapQuery::parse(&query_of(&a))?;
    match (&a.data, &a.node) {
        (Some(dir), _) => local(dir, &query, &a.output),
        (None, Some(url)) => remote(url, a.secret_file.as_ref(), a.plain, &query, &a.output),
        _ => bail!("give --data DIR or --node URL"),
    }
}

fn local(dir: &std::path::Path, q: &PcapQuery, out: &PathBuf) -> anyhow::Result<Status> {
    super::with_store(dir, |store| local_from(store, q, out))
}

fn local_from(store: &crate::store::Store, q: &PcapQuery, out: &PathBuf) -> anyhow::Result<Status> {
    match plan(store, q, &|s| {
        crate::sync::links::nearest_pcap_holder(store, s)
    })? {
        Plan::Local(segments) => {
            let mut w = open_output(out)?;
            let n = write_local(store, q, &segments, &mut *w)?;
            w.flush()?;
            errln!("{n} packets");
            Ok(Status::Ok)
        }
        Plan::Proxy { child } => bail!(
            "this node does not hold that pcap; child '{child}' does: ask the running node with --node, or pull with a mirror link"
        ),
    }
}

fn remote(
    url: &str,
    secret_file: Option<&PathBuf>,
    plain: bool,
    q: &PcapQuery,
    out: &PathBuf,
) -> anyhow::Result<Status> {
    let Some(file) = secret_file else {
        bail!("--node needs --secret-file");
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let token = LinkToken::parse(&text).with_context(|| file.display().to_string())?;
    let secret = token.secret;
    // The node is reached as a child is: its certificate pinned by the token.
    let link = ChildConfig {
        name: url.to_string(),
        url: url.to_string(),
        pcap: crate::config::PcapMode::Proxy,
        interval_secs: 1,
        ca_file: None,
        cert_sha256: token.cert_sha256,
        plain,
        sensors: Vec::new(),
    };
    let client = child_client(&link, reqwest::Client::builder())?;
    let path = format!("/pcap?{}", q.to_query());
    let now = crate::clock::now_secs_i64();
    let header = auth::sign(&secret, "GET", &path, now, b"")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        use futures::StreamExt;
        let resp = client
            .get(format!("{}{path}", url.trim_end_matches('/')))
            .header(AUTH_HEADER, header)
            .send()
            .await
            .map_err(|e| net_error(&link, &e))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let msg = resp
                .json::<ErrorBody>()
                .await
                .map(|b| b.error)
                .unwrap_or_default();
            bail!("{url}: {status}: {msg}");
        }
        let mut w = open_output(out)?;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            w.write_all(&chunk.context("the pcap stream broke off")?)?;
        }
        w.flush()?;
        Ok(Status::Ok)
    })
}
