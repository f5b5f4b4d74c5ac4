//! The pcap of a flow, or of a filter, from the store: the distributed
//! successor of Walleye's pcap_api.pl (docs/PROTOCOL.md §6).
//!
//! Owns the query language (pcap_api's parameters and semantics), planning
//! where a request is answered (here, or proxied to the child nearest the
//! sensor's origin), and writing classic pcap: a flow's packets come straight
//! from the flow index, never from a scan of a time window.
//! Reads the store only; never writes.

use std::io::Write;
use std::net::IpAddr;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::capture::decode;
use crate::net::IpNet;
use crate::store::segment::packet_items;
use crate::store::{Kind, SegmentId, Store, StoreError};

/// Snapshot length written when the source capture's is unknown (pcapng).
pub const DEFAULT_SNAPLEN: u32 = 262_144;
/// MIME type of a pcap answer.
pub const PCAP_MIME: &str = "application/vnd.tcpdump.pcap";

#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("parameter {name}: {reason}")]
    BadParam { name: String, reason: String },
    #[error("unknown sensor {0}")]
    UnknownSensor(u32),
    #[error("no flow {flow} for sensor {sensor}")]
    UnknownFlow { sensor: u32, flow: u32 },
    #[error("the pcap of sensor {0} has aged out at every node that held it")]
    AgedOut(u32),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the pcap: {0}")]
    Write(#[from] std::io::Error),
}

/// pcap_api's parameters: keys are ANDed, repeats of a key are ORed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PcapQuery {
    pub sensor: u32,
    pub con_id: Option<u32>,
    pub st: Option<u64>,
    pub et: Option<u64>,
    pub ip: Vec<IpAddr>,
    pub net: Vec<IpNet>,
    pub sip: Vec<IpAddr>,
    pub dip: Vec<IpAddr>,
    pub snet: Vec<IpNet>,
    pub dnet: Vec<IpNet>,
    pub ip_proto: Vec<u8>,
    pub port: Vec<u16>,
    pub sport: Vec<u16>,
    pub dport: Vec<u16>,
}

fn bad(name: &str, reason: impl Into<String>) -> PcapError {
    PcapError::BadParam {
        name: name.to_string(),
        reason: reason.into(),
    }
}

fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, PcapError> {
    v.parse().map_err(|_| {
        bad(
            name,
            format!(
                "'{}' is not a valid number",
                v.chars().take(40).collect::<String>()
            ),
        )
    })
}

fn addr(name: &str, v: &str) -> Result<IpAddr, PcapError> {
    v.parse().map_err(|_| bad(name, "not an IP address"))
}

fn net(name: &str, v: &str) -> Result<IpNet, PcapError> {
    crate::net::parse(v).map_err(|_| bad(name, "not an address or CIDR network"))
}

/// What [`query_value`] escapes: what would end or split a pcap_api value
/// (`&`, `;`, `=`, `+`, `#`, `%`, space), `/` and `:` (nets and IPv6
/// addresses, as pcap_api's clients wrote them), and control bytes.
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'=');

/// One value percent-encoded for a pcap_api query string.
pub fn query_value(v: &str) -> String {
    utf8_percent_encode(v, QUERY_VALUE).to_string()
}

/// Percent-decoding of one query component (`+` is a space). Strict, as
/// pcap_api was: a `%` not followed by two hex digits, or bytes that are
/// not UTF-8 after decoding, refuse the query.
fn unescape(s: &str) -> Result<String, PcapError> {
    let b = s.as_bytes();
    let escapes_ok = b.iter().enumerate().all(|(i, c)| {
        *c != b'%'
            || b.get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if !escapes_ok {
        return Err(bad("query", "bad % escape"));
    }
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| bad("query", "not UTF-8"))
}

impl PcapQuery {
    /// Parses `sensor=S&con_id=F&...`; a repeated key adds an alternative.
    pub fn parse(query: &str) -> Result<PcapQuery, PcapError> {
        let mut q = PcapQuery::default();
        let mut sensor = None;
        for pair in query.split(['&', ';']).filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (unescape(k)?, unescape(v)?);
            let v = v.as_str();
            match k.as_str() {
                "sensor" => sensor = Some(num::<u32>("sensor", v)?),
                "con_id" => q.con_id = Some(num("con_id", v)?),
                "st" => q.st = Some(num("st", v)?),
                "et" => q.et = Some(num("et", v)?),
                "ip" => q.ip.push(addr("ip", v)?),
                "sip" => q.sip.push(addr("sip", v)?),
                "dip" => q.dip.push(addr("dip", v)?),
                "net" => q.net.push(net("net", v)?),
                "snet" => q.snet.push(net("snet", v)?),
                "dnet" => q.dnet.push(net("dnet", v)?),
                "ip_proto" => q.ip_proto.push(num("ip_proto", v)?),
                "port" => q.port.push(num("port", v)?),
                "sport" => q.sport.push(num("sport", v)?),
                "dport" => q.dport.push(num("dport", v)?),
                other => {
                    return Err(bad(
                        &other.chars().take(40).collect::<String>(),
                        "unknown parameter",
                    ));
                }
            }
        }
        q.sensor = sensor.ok_or_else(|| bad("sensor", "missing"))?;
        if q.con_id.is_none() && q.st.is_none() && q.et.is_none() && q.is_unfiltered() {
            return Err(bad(
                "con_id",
                "give con_id, or at least one filter (st, et, ip, net, ...)",
            ));
        }
        if let (Some(st), Some(et)) = (q.st, q.et)
            && st > et
        {
            return Err(bad("et", "before st"));
        }
        Ok(q)
    }

    fn is_unfiltered(&self) -> bool {
        self.ip.is_empty()
            && self.net.is_empty()
            && self.sip.is_empty()
            && self.dip.is_empty()
            && self.snet.is_empty()
            && self.dnet.is_empty()
            && self.ip_proto.is_empty()
            && self.port.is_empty()
            && self.sport.is_empty()
            && self.dport.is_empty()
    }

    /// The query string that asks a child for the same thing.
    pub fn to_query(&self) -> String {
        let mut parts = vec![format!("sensor={}", self.sensor)];
        let mut add = |k: &str, v: String| parts.push(format!("{k}={v}"));
        if let Some(c) = self.con_id {
            add("con_id", c.to_string());
        }
        if let Some(v) = self.st {
            add("st", v.to_string());
        }
        if let Some(v) = self.et {
            add("et", v.to_string());
        }
        let net_text = |n: &IpNet| query_value(&format!("{}/{}", n.addr(), n.prefix_len()));
        let ip_text = |a: &IpAddr| query_value(&a.to_string());
        for a in &self.ip {
            add("ip", ip_text(a));
        }
        for a in &self.sip {
            add("sip", ip_text(a));
        }
        for a in &self.dip {
            add("dip", ip_text(a));
        }
        for n in &self.net {
            add("net", net_text(n));
        }
        for n in &self.snet {
            add("snet", net_text(n));
        }
        for n in &self.dnet {
            add("dnet", net_text(n));
        }
        for p in &self.ip_proto {
            add("ip_proto", p.to_string());
        }
        for p in &self.port {
            add("port", p.to_string());
        }
        for p in &self.sport {
            add("sport", p.to_string());
        }
        for p in &self.dport {
            add("dport", p.to_string());
        }
        parts.join("&")
    }

    /// Port filters apply only to TCP and UDP queries, as in pcap_api.pl.
    fn ports_apply(&self) -> bool {
        self.ip_proto.iter().any(|p| *p == 6 || *p == 17)
    }

    /// Does a decoded packet at `ts_ns` match every given filter?
    pub fn matches(&self, ts_ns: u64, net: Option<&crate::capture::NetInfo>) -> bool {
        let secs = ts_ns / 1_000_000_000;
        if self.st.is_some_and(|st| secs < st) || self.et.is_some_and(|et| secs > et) {
            return false;
        }
        if self.is_unfiltered() {
            return true;
        }
        let Some(n) = net else { return false };
        let any_ip =
            |list: &[IpAddr], f: &dyn Fn(&IpAddr) -> bool| list.is_empty() || list.iter().any(f);
        let any_net =
            |list: &[IpNet], f: &dyn Fn(&IpNet) -> bool| list.is_empty() || list.iter().any(f);
        let any_port = |list: &[u16], f: &dyn Fn(u16) -> bool| {
            list.is_empty() || !self.ports_apply() || list.iter().any(|p| f(*p))
        };
        any_ip(&self.ip, &|a| *a == n.src || *a == n.dst)
            && any_ip(&self.sip, &|a| *a == n.src)
            && any_ip(&self.dip, &|a| *a == n.dst)
            && any_net(&self.net, &|x| x.contains(&n.src) || x.contains(&n.dst))
            && any_net(&self.snet, &|x| x.contains(&n.src))
            && any_net(&self.dnet, &|x| x.contains(&n.dst))
            && (self.ip_proto.is_empty() || self.ip_proto.contains(&n.proto))
            && any_port(&self.port, &|p| p == n.src_port || p == n.dst_port)
            && any_port(&self.sport, &|p| p == n.src_port)
            && any_port(&self.dport, &|p| p == n.dst_port)
    }

    /// Attachment file name for the answer.
    pub fn filename(&self) -> String {
        match self.con_id {
            Some(f) => format!("sensor{}-flow{f}.pcap", self.sensor),
            None => format!("sensor{}-{}.pcap", self.sensor, self.st.unwrap_or(0)),
        }
    }
}

/// Pcap segments to read, each with the blocks to read (all when None).
pub type SegmentPlan = Vec<(SegmentId, Option<Vec<u32>>)>;

/// Where a request is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// This node holds the packets: these pcap segments, in order, with the
    /// blocks to read (all blocks when None).
    Local(SegmentPlan),
    /// Ask this child, the nearest to the sensor's origin that holds pcap.
    Proxy { child: String },
}

/// Which child holds a sensor's pcap nearest its origin (the sync layer's
/// knowledge: `sync::links::nearest_pcap_holder`), handed in so this module
/// stays below `sync`.
pub type NearestHolder<'a> = &'a dyn Fn(u32) -> Result<Option<String>, StoreError>;

/// Decides where a query is answered.
pub fn plan(
    store: &Store,
    q: &PcapQuery,
    nearest_holder: NearestHolder,
) -> Result<Plan, PcapError> {
    if !store.known_sensors()?.contains(&q.sensor) {
        return Err(PcapError::UnknownSensor(q.sensor));
    }
    let (local, indexed_here) = match q.con_id {
        Some(flow) => flow_segments(store, q.sensor, flow)?,
        None => (window_segments(store, q)?, false),
    };
    if !local.is_empty() {
        return Ok(Plan::Local(local));
    }
    if let Some(child) = nearest_holder(q.sensor)? {
        return Ok(Plan::Proxy { child });
    }
    match q.con_id {
        // The flow index names its segments, but they were pruned here and
        // no child holds them: aged out, not missing.
        Some(_) if indexed_here => Err(PcapError::AgedOut(q.sensor)),
        // This node should hold the sensor's pcap and holds none of it.
        Some(_) if !holds_any_pcap(store, q.sensor)? && knows_pcap(store, q.sensor)? => {
            Err(PcapError::AgedOut(q.sensor))
        }
        Some(flow) => Err(PcapError::UnknownFlow {
            sensor: q.sensor,
            flow,
        }),
        None => Ok(Plan::Local(Vec::new())),
    }
}

/// The held segments of a flow, and whether the flow index names any.
fn flow_segments(store: &Store, sensor: u32, flow: u32) -> Result<(SegmentPlan, bool), PcapError> {
    let mut out = Vec::new();
    let entries = store.flow_blocks(sensor, flow)?;
    let indexed = !entries.is_empty();
    for (seq, blocks) in entries {
        let Some(id) = store.segment_at(sensor, seq)? else {
            continue;
        };
        out.push((id, Some(blocks)));
    }
    Ok((out, indexed))
}

fn window_segments(store: &Store, q: &PcapQuery) -> Result<SegmentPlan, PcapError> {
    let st = q.st.unwrap_or(0).saturating_mul(1_000_000_000);
    let et = q.et.map_or(u64::MAX, |e| {
        e.saturating_add(1).saturating_mul(1_000_000_000)
    });
    let mut metas: Vec<_> = store
        .all_segments()?
        .into_iter()
        .filter(|m| {
            m.sensor_id == q.sensor
                && m.kind == Kind::Pcap
                && m.time_last_ns >= st
                && m.time_first_ns < et
        })
        .collect();
    metas.sort_by_key(|m| m.origin_seq);
    Ok(metas.into_iter().map(|m| (m.id, None)).collect())
}

fn holds_any_pcap(store: &Store, sensor: u32) -> Result<bool, PcapError> {
    Ok(store
        .all_segments()?
        .iter()
        .any(|m| m.sensor_id == sensor && m.kind == Kind::Pcap))
}

fn knows_pcap(store: &Store, sensor: u32) -> Result<bool, PcapError> {
    Ok(store
        .sequence_after(sensor, 0, usize::MAX)?
        .iter()
        .any(|e| e.kind == Kind::Pcap))
}

/// The classic pcap global header tcpdump writes (microsecond, native order).
pub fn global_header(snaplen: u32, link_type: u32) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    h[16..20].copy_from_slice(&snaplen.to_le_bytes());
    h[20..24].copy_from_slice(&link_type.to_le_bytes());
    h
}

/// Writes the answer of a local plan as classic pcap; returns the packets.
pub fn write_local(
    store: &Store,
    q: &PcapQuery,
    segments: &[(SegmentId, Option<Vec<u32>>)],
    out: &mut dyn Write,
) -> Result<u64, PcapError> {
    let mut header_written = false;
    let mut packets = 0;
    let mut link = 0;
    for (id, blocks) in segments {
        let mut seg = store.open_segment(id)?;
        if !header_written {
            link = seg.header.link_type;
            let snap = if seg.header.snaplen == 0 {
                DEFAULT_SNAPLEN
            } else {
                seg.header.snaplen
            };
            out.write_all(&global_header(snap, link))?;
            header_written = true;
        }
        if seg.header.link_type != link {
            // A classic pcap has one link type; later segments of another are left out.
            tracing::warn!(segment = %id, "skipping packets of another link type");
            continue;
        }
        let list: Vec<u32> = match blocks {
            Some(b) => b.clone(),
            None => (0..seg.blocks.len() as u32).collect(),
        };
        for b in list {
            let raw = seg.block(b).map_err(|source| StoreError::Segment {
                id: *id,
                path: store.segment_path(id),
                source,
            })?;
            for item in packet_items(&raw) {
                let item = item.map_err(|source| StoreError::Segment {
                    id: *id,
                    path: store.segment_path(id),
                    source,
                })?;
                let keep = match q.con_id {
                    Some(f) => item.flow_id == f,
                    None => {
                        let info = decode(link, item.data).ok().and_then(|i| i.net);
                        q.matches(item.ts_ns, info.as_ref())
                    }
                };
                if keep {
                    write_record(out, item.ts_ns, item.orig_len, item.data)?;
                    packets += 1;
                }
            }
        }
    }
    if !header_written {
        out.write_all(&global_header(DEFAULT_SNAPLEN, 1))?;
    }
    Ok(packets)
}

fn write_record(
    out: &mut dyn Write,
    ts_ns: u64,
    orig_len: u32,
    data: &[u8],
) -> std::io::Result<()> {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&((ts_ns / 1_000_000_000) as u32).to_le_bytes());
    // Microseconds, truncated, as libpcap converts nanosecond captures.
    h[4..8].copy_from_slice(&(((ts_ns % 1_000_000_000) / 1000) as u32).to_le_bytes());
    h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
    h[12..16].copy_from_slice(&orig_len.to_le_bytes());
    out.write_all(&h)?;
    out.write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The strict decoding pcap_api had, now over percent-encoding.
    #[test]
    fn query_components_decode_strictly() {
        assert_eq!(unescape("a%2Fb").unwrap(), "a/b");
        assert_eq!(unescape("a%2fb").unwrap(), "a/b");
        assert_eq!(unescape("a+b").unwrap(), "a b");
        assert_eq!(unescape("%2B").unwrap(), "+");
        assert_eq!(unescape("%C3%A9").unwrap(), "\u{e9}");
        assert_eq!(unescape("").unwrap(), "");
        for bad in ["%", "%4", "%zz", "a%g1", "100%"] {
            assert!(unescape(bad).is_err(), "{bad}");
        }
        assert!(unescape("%ff").is_err(), "not UTF-8");
    }

    /// What the CLI and a proxying node put in a query: the characters
    /// both old encoders escaped (`%`, `/`, `:`, `&`) and the ones that
    /// would end or split a value.
    #[test]
    fn query_values_encode_what_would_split_them() {
        assert_eq!(query_value("2001:db8::/32"), "2001%3Adb8%3A%3A%2F32");
        assert_eq!(query_value("10.0.0.0/8"), "10.0.0.0%2F8");
        assert_eq!(query_value("192.0.2.1"), "192.0.2.1");
        assert_eq!(
            query_value("a%b&c;d=e f+g#"),
            "a%25b%26c%3Bd%3De%20f%2Bg%23"
        );
        for v in ["2001:db8::/32", "a%b&c;d=e f+g#", "\u{e9}"] {
            assert_eq!(unescape(&query_value(v)).unwrap(), v);
        }
    }

    #[test]
    fn parses_pcap_api_parameters() {
        let q = PcapQuery::parse("sensor=5&con_id=7").unwrap();
        assert_eq!((q.sensor, q.con_id), (5, Some(7)));
        let q = PcapQuery::parse(
            "sensor=5;st=10;et=20;ip=192.0.2.1;ip=192.0.2.2;net=10.0.0.0%2F8;ip_proto=6;port=22",
        )
        .unwrap();
        assert_eq!(q.ip.len(), 2);
        assert_eq!(q.net[0].prefix_len(), 8);
        assert_eq!(PcapQuery::parse(&q.to_query()).unwrap(), q);
        for (bad_query, name) in [
            ("con_id=1", "sensor"),
            ("sensor=x&con_id=1", "sensor"),
            ("sensor=1&ip=nope", "ip"),
            ("sensor=1&net=1.2.3.4/40", "net"),
            ("sensor=1&st=9&et=3", "et"),
            ("sensor=1&bogus=1", "bogus"),
            ("sensor=1", "con_id"),
            ("sensor=1&ip=%zz", "query"),
        ] {
            match PcapQuery::parse(bad_query) {
                Err(PcapError::BadParam { name: n, .. }) => assert_eq!(n, name, "{bad_query}"),
                other => panic!("{bad_query}: {other:?}"),
            }
        }
    }

    #[test]
    fn ports_only_filter_tcp_and_udp_queries() {
        let q = PcapQuery::parse("sensor=1&port=22").unwrap();
        let n = crate::capture::NetInfo {
            src: "192.0.2.1".parse().unwrap(),
            dst: "192.0.2.2".parse().unwrap(),
            proto: 6,
            src_port: 1000,
            dst_port: 80,
            tcp_flags: 0,
            ip_flags: 0,
            fragment: None,
            icmp: None,
            transport: None,
            ip_header: None,
        };
        assert!(
            q.matches(0, Some(&n)),
            "port is dropped without ip_proto 6 or 17"
        );
        let q = PcapQuery::parse("sensor=1&port=22&ip_proto=6").unwrap();
        assert!(!q.matches(0, Some(&n)));
        let q = PcapQuery::parse("sensor=1&port=80&ip_proto=6&sip=192.0.2.1").unwrap();
        assert!(q.matches(0, Some(&n)));
    }
}
