//! The packet and payload view of one flow (`GET /api/v1/flows/{sensor}/{flow}/packets`),
//! like Arkime's session view: each packet's decoded headers (time,
//! direction, addresses, ports, TTL, lengths, TCP flags, sequence numbers)
//! and the payload of each direction as hex, per packet and reassembled.
//!
//! Owns reading a flow's pcap as the pcap service answers it (the same
//! service, and so the same path, as the pcap download: read here, or
//! proxied down the DAG to the child that holds the packets) and turning
//! it into JSON. Never opens a pcap file or a segment itself, and never
//! reads more than it shows: it stops after the first `packets` packets
//! (and after `READ_MAX` bytes of pcap), and keeps at most `kib` KiB of
//! payload per direction. Payload is attacker-written: it leaves here as
//! hex only, and the page draws it as text nodes.

use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;
use warp::http::StatusCode;

use super::api::{BadParam, json, mirror_error, num, num_in, params};
use super::{Reply, Web, error};
use crate::capture::decode::{NetInfo, decode};

/// Packets shown when the request does not say, and the most it may ask.
pub const DEFAULT_PACKETS: u32 = 200;
pub const MAX_PACKETS: u32 = 2000;
/// Payload KiB kept per direction when the request does not say, and the most.
pub const DEFAULT_KIB: u32 = 4;
pub const MAX_KIB: u32 = 64;
/// Bytes of pcap read at most, whatever the packet count (jumbo frames).
pub const READ_MAX: usize = 64 * 1024 * 1024;

/// How much of a flow to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub packets: u32,
    /// Payload bytes kept per direction.
    pub bytes: usize,
}

/// One packet as the view shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PacketView {
    /// 1 for the flow's first packet.
    pub n: u32,
    pub sec: u32,
    /// Microseconds (nanosecond captures are cut to them).
    pub usec: u32,
    /// `client` (sent by the flow's source) or `server`.
    pub from: &'static str,
    pub src: String,
    pub dst: String,
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: Option<u8>,
    /// IP length (header and payload) as the header says.
    pub ip_len: Option<u32>,
    /// Bytes captured and bytes on the wire.
    pub caplen: u32,
    pub len: u32,
    /// TCP flags as names (`SYN ACK`), empty when not TCP.
    pub flags: String,
    pub seq: Option<u32>,
    pub ack: Option<u32>,
    pub window: Option<u16>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    /// A fragment (its transport header is not decoded).
    pub fragment: bool,
    /// Transport payload bytes captured in this packet.
    pub payload_len: u32,
    /// The part of the payload within its direction's budget, as hex.
    pub payload: String,
    /// Why the packet was not decoded, if it was not.
    pub note: Option<String>,
}

/// One direction's payload, in order.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StreamView {
    pub from: &'static str,
    /// TCP: placed by sequence number (retransmissions once, reordering
    /// undone); other protocols: datagrams in capture order.
    pub reassembled: bool,
    /// Payload bytes seen in the packets read (retransmissions included).
    pub payload_bytes: u64,
    /// The first bytes, at most the budget, as hex (TCP: up to the first
    /// sequence hole).
    pub hex: String,
    /// More payload followed than the budget keeps.
    pub cut: bool,
    /// TCP: a sequence hole (a packet not captured) ends `hex` early.
    pub hole: bool,
}

/// The whole answer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PacketsView {
    pub link_type: u32,
    pub packets: Vec<PacketView>,
    /// The flow has more packets than were read (`limit_packets`).
    pub more_packets: bool,
    pub limit_packets: u32,
    /// Payload bytes kept per direction.
    pub limit_bytes: usize,
    /// Client, then server.
    pub streams: [StreamView; 2],
}

/// Lowercase hex of `data`.
fn hex(data: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(data.len() * 2);
    for &b in data {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn flag_names(flags: u8) -> String {
    const NAMES: [(u8, &str); 8] = [
        (0x02, "SYN"),
        (0x10, "ACK"),
        (0x08, "PSH"),
        (0x01, "FIN"),
        (0x04, "RST"),
        (0x20, "URG"),
        (0x40, "ECE"),
        (0x80, "CWR"),
    ];
    NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(" ")
}

fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

fn be32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

/// One direction being collected.
/// The pcap service's answer did not start with a pcap header.
#[derive(Debug, thiserror::Error)]
#[error("the pcap service answered something that is not pcap")]
pub struct NotPcap;

#[derive(Default)]
struct Stream {
    /// TCP: the sequence number of the first payload byte.
    base: Option<u32>,
    data: Vec<u8>,
    have: Vec<bool>,
    seen: u64,
    cut: bool,
    /// Payload bytes of this direction shown in packets so far.
    shown: usize,
}

impl Stream {
    fn add_tcp(&mut self, seq: u32, syn: bool, payload: &[u8], budget: usize) {
        if syn && self.base.is_none() {
            self.base = Some(seq.wrapping_add(1));
        }
        if payload.is_empty() {
            return;
        }
        self.seen += payload.len() as u64;
        let base = *self.base.get_or_insert(seq);
        let off = seq.wrapping_sub(base);
        if off >= 1 << 31 {
            // Before the first byte: a retransmission of what came before.
            return;
        }
        let off = off as usize;
        for (i, &b) in payload.iter().enumerate() {
            let at = off.saturating_add(i);
            if at >= budget {
                self.cut = true;
                break;
            }
            if at >= self.data.len() {
                self.data.resize(at + 1, 0);
                self.have.resize(at + 1, false);
            }
            if !self.have[at] {
                self.data[at] = b;
                self.have[at] = true;
            }
        }
    }

    fn add_datagram(&mut self, payload: &[u8], budget: usize) {
        self.seen += payload.len() as u64;
        let room = budget.saturating_sub(self.data.len());
        if payload.len() > room {
            self.cut = true;
        }
        let take = payload.len().min(room);
        self.data.extend_from_slice(&payload[..take]);
        self.have.resize(self.data.len(), true);
    }

    fn view(&self, from: &'static str, tcp: bool) -> StreamView {
        let prefix = self.have.iter().position(|h| !h).unwrap_or(self.data.len());
        StreamView {
            from,
            reassembled: tcp,
            payload_bytes: self.seen,
            hex: hex(&self.data[..prefix]),
            cut: self.cut,
            hole: prefix < self.data.len(),
        }
    }
}

/// Reads a classic pcap stream (as the pcap service writes it: either byte
/// order, micro- or nanosecond stamps) packet by packet.
pub struct Decoder {
    client: (IpAddr, u16),
    limits: Limits,
    pending: Vec<u8>,
    read: usize,
    /// Byte order and precision, once the header was read.
    header: Option<(bool, bool)>,
    view: PacketsView,
    streams: [Stream; 2],
    tcp: bool,
    done: bool,
}

impl Decoder {
    /// A decoder for a flow whose source (client) is `client`.
    pub fn new(client: (IpAddr, u16), limits: Limits) -> Decoder {
        let stream = |from| StreamView {
            from,
            reassembled: false,
            payload_bytes: 0,
            hex: String::new(),
            cut: false,
            hole: false,
        };
        Decoder {
            client,
            limits,
            pending: Vec::new(),
            read: 0,
            header: None,
            view: PacketsView {
                link_type: 0,
                packets: Vec::new(),
                more_packets: false,
                limit_packets: limits.packets,
                limit_bytes: limits.bytes,
                streams: [stream("client"), stream("server")],
            },
            streams: [Stream::default(), Stream::default()],
            tcp: false,
            done: false,
        }
    }

    /// Takes the next bytes of the stream; true once no more are wanted.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<bool, NotPcap> {
        if self.done {
            return Ok(true);
        }
        self.read = self.read.saturating_add(chunk.len());
        self.pending.extend_from_slice(chunk);
        let mut at = 0;
        if self.header.is_none() {
            let Some(h) = self.pending.get(..24) else {
                return Ok(false);
            };
            let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            let (big, nano) = match magic {
                0xa1b2_c3d4 => (false, false),
                0xa1b2_3c4d => (false, true),
                0xd4c3_b2a1 => (true, false),
                0x4d3c_b2a1 => (true, true),
                _ => return Err(NotPcap),
            };
            let mut lt = [h[20], h[21], h[22], h[23]];
            if big {
                lt.reverse();
            }
            self.view.link_type = u32::from_le_bytes(lt);
            self.header = Some((big, nano));
            at = 24;
        }
        let Some((big, nano)) = self.header else {
            return Ok(false);
        };
        let word = |b: &[u8]| {
            let a = [b[0], b[1], b[2], b[3]];
            if big {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        };
        while let Some(h) = self.pending.get(at..at + 16) {
            let (sec, frac, caplen, len) = (
                word(&h[0..4]),
                word(&h[4..8]),
                word(&h[8..12]),
                word(&h[12..16]),
            );
            let end = at + 16 + caplen as usize;
            if self.view.packets.len() >= self.limits.packets as usize {
                // One more record exists: say so and stop.
                self.view.more_packets = true;
                self.done = true;
                break;
            }
            let Some(frame) = self.pending.get(at + 16..end) else {
                break;
            };
            let frame = frame.to_vec();
            let usec = if nano { frac / 1000 } else { frac };
            self.packet(sec, usec, caplen, len, &frame);
            at = end;
        }
        self.pending.drain(..at.min(self.pending.len()));
        if self.read >= READ_MAX {
            self.view.more_packets = true;
            self.done = true;
        }
        Ok(self.done)
    }

    fn packet(&mut self, sec: u32, usec: u32, caplen: u32, len: u32, frame: &[u8]) {
        let n = self.view.packets.len() as u32 + 1;
        let mut p = PacketView {
            n,
            sec,
            usec,
            from: "client",
            src: String::new(),
            dst: String::new(),
            src_port: 0,
            dst_port: 0,
            proto: 0,
            ttl: None,
            ip_len: None,
            caplen,
            len,
            flags: String::new(),
            seq: None,
            ack: None,
            window: None,
            icmp_type: None,
            icmp_code: None,
            fragment: false,
            payload_len: 0,
            payload: String::new(),
            note: None,
        };
        let net = match decode(self.view.link_type, frame) {
            Ok(info) => info.net,
            Err(e) => {
                p.note = Some(e.to_string());
                None
            }
        };
        let Some(net) = net else {
            if p.note.is_none() {
                p.note = Some("not an IP packet".into());
            }
            self.view.packets.push(p);
            return;
        };
        self.fill(&mut p, &net, frame);
        self.view.packets.push(p);
    }

    fn fill(&mut self, p: &mut PacketView, net: &NetInfo, frame: &[u8]) {
        p.src = net.src.to_string();
        p.dst = net.dst.to_string();
        p.src_port = net.src_port;
        p.dst_port = net.dst_port;
        p.proto = net.proto;
        p.fragment = net.fragment.is_some();
        let client =
            net.src == self.client.0 && (net.src_port == self.client.1 || net.src_port == 0);
        let dir = usize::from(!client);
        p.from = if client { "client" } else { "server" };
        if let Some(ip) = net.ip_header.and_then(|s| frame.get(s.range())) {
            if net.src.is_ipv4() {
                p.ttl = ip.get(8).copied();
                p.ip_len = be16(ip, 2).map(u32::from);
            } else {
                p.ttl = ip.get(7).copied();
                p.ip_len = be16(ip, 4).map(|l| u32::from(l) + 40);
            }
        }
        if let Some(i) = net.icmp {
            p.icmp_type = Some(i.icmp_type);
            p.icmp_code = Some(i.code);
        }
        let Some(t) = net.transport.and_then(|s| frame.get(s.range())) else {
            return;
        };
        let budget = self.limits.bytes;
        let payload: &[u8] = match net.proto {
            6 => {
                self.tcp = true;
                p.flags = flag_names(net.tcp_flags);
                p.seq = be32(t, 4);
                p.ack = be32(t, 8).filter(|_| net.tcp_flags & 0x10 != 0);
                p.window = be16(t, 14);
                let off = t.get(12).map_or(20, |b| usize::from(b >> 4) * 4);
                let data = t.get(off.max(20)..).unwrap_or_default();
                if let Some(seq) = p.seq {
                    self.streams[dir].add_tcp(seq, net.tcp_flags & 0x02 != 0, data, budget);
                }
                data
            }
            17 | 136 => {
                let data = t.get(8..).unwrap_or_default();
                self.streams[dir].add_datagram(data, budget);
                data
            }
            1 | 58 => {
                let data = t.get(8..).unwrap_or_default();
                self.streams[dir].add_datagram(data, budget);
                data
            }
            _ => {
                self.streams[dir].add_datagram(t, budget);
                t
            }
        };
        p.payload_len = payload.len() as u32;
        let s = &mut self.streams[dir];
        let take = payload.len().min(budget.saturating_sub(s.shown));
        s.shown += take;
        p.payload = hex(&payload[..take]);
    }

    /// The view of what was read.
    pub fn finish(mut self) -> PacketsView {
        let tcp = self.tcp;
        self.view.streams = [
            self.streams[0].view("client", tcp),
            self.streams[1].view("server", tcp),
        ];
        self.view
    }
}

fn limits(query: &str) -> Result<Limits, BadParam> {
    let mut l = Limits {
        packets: DEFAULT_PACKETS,
        bytes: DEFAULT_KIB as usize * 1024,
    };
    for (k, v) in params(query) {
        match k.as_str() {
            "packets" => l.packets = num_in("packets", &v, 1..=MAX_PACKETS, "a packet count")?,
            "kib" => {
                l.bytes =
                    num_in("kib", &v, 1..=MAX_KIB, "a KiB count per direction")? as usize * 1024
            }
            other => return Err(BadParam::new(other, "unknown parameter")),
        }
    }
    Ok(l)
}

/// `GET /api/v1/flows/{sensor}/{flow}/packets?packets=&kib=`.
pub async fn packets(web: &Arc<Web>, s: &str, f: &str, query: &str) -> Reply {
    let (sensor, flow) = match (num::<u32>("sensor", s), num::<u32>("flow", f)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return r.reply(),
    };
    let limits = match limits(query) {
        Ok(l) => l,
        Err(r) => return r.reply(),
    };
    // The flow's source is its client; an unknown flow is a 404 here.
    let row = match web.with_mirror(move |m| m.flow_row(sensor, flow)).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                &format!("no flow {flow} of sensor {sensor}"),
            );
        }
        Err(e) => return mirror_error(e),
    };
    let Ok(src) = row.src_ip.parse::<IpAddr>() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "flow address unreadable");
    };
    // The pcap service decides where the packets are read: here, or
    // proxied down to the child nearest the sensor's origin.
    let reply = crate::sync::pcap_http::pcap(
        &web.peer.store,
        &web.peer.config,
        &format!("sensor={sensor}&con_id={flow}"),
        None,
    )
    .await;
    if !reply.status().is_success() {
        return reply;
    }
    let mut decoder = Decoder::new((src, row.src_port), limits);
    let body = reply.into_body();
    let mut body = std::pin::pin!(body);
    loop {
        use warp::hyper::body::Body as _;
        let frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await;
        let data = match frame {
            None => break,
            Some(Err(e)) => {
                tracing::warn!(error = %e, sensor, flow, "packet view: pcap stream failed");
                return error(
                    StatusCode::BAD_GATEWAY,
                    "the flow's pcap could not be read to its end",
                );
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(d) => d,
                Err(_) => continue,
            },
        };
        match decoder.feed(&data) {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => return error(StatusCode::BAD_GATEWAY, &e.to_string()),
        }
    }
    // Dropping the body stops the pcap service's reading (or the proxy's).
    let view = decoder.finish();
    json(&serde_json::json!({
        "sensor_id": sensor,
        "flow_id": flow,
        "proto": row.ip_proto,
        "client": { "ip": row.src_ip, "port": row.src_port },
        "server": { "ip": row.dst_ip, "port": row.dst_port },
        "link_type": view.link_type,
        "packets": view.packets,
        "more_packets": view.more_packets,
        "limit_packets": view.limit_packets,
        "limit_bytes": view.limit_bytes,
        "streams": view.streams,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic pcap (Ethernet) of `frames`, each (sec, IPv4 TCP packet).
    fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut out = crate::pcap_service::global_header(65535, 1).to_vec();
        for (i, f) in frames.iter().enumerate() {
            let mut eth = vec![0u8; 12];
            eth.extend_from_slice(&[0x08, 0x00]);
            eth.extend_from_slice(f);
            out.extend_from_slice(&(1000 + i as u32).to_le_bytes());
            out.extend_from_slice(&7u32.to_le_bytes());
            out.extend_from_slice(&(eth.len() as u32).to_le_bytes());
            out.extend_from_slice(&(eth.len() as u32).to_le_bytes());
            out.extend_from_slice(&eth);
        }
        out
    }

    fn tcp(
        src: [u8; 4],
        dst: [u8; 4],
        sp: u16,
        dp: u16,
        seq: u32,
        flags: u8,
        data: &[u8],
    ) -> Vec<u8> {
        let total = 20 + 20 + data.len();
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 57, 6, 0, 0];
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&sp.to_be_bytes());
        p.extend_from_slice(&dp.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(&[0x50, flags, 0x20, 0x00, 0, 0, 0, 0]);
        p.extend_from_slice(data);
        p
    }

    #[test]
    fn packets_are_decoded_reassembled_and_bounded() {
        let (c, s) = ([10, 0, 0, 1], [192, 0, 2, 10]);
        let frames = vec![
            tcp(c, s, 4000, 80, 100, 0x02, b""),
            tcp(s, c, 80, 4000, 500, 0x12, b""),
            // Out of order: the second segment first, then a retransmission.
            tcp(c, s, 4000, 80, 105, 0x18, b"world"),
            tcp(c, s, 4000, 80, 101, 0x18, b"GET "),
            tcp(c, s, 4000, 80, 101, 0x18, b"GET "),
            tcp(s, c, 80, 4000, 501, 0x18, b"<script>alert(1)</script>"),
        ];
        let bytes = pcap(&frames);
        let client = ("10.0.0.1".parse().unwrap(), 4000);
        // Fed in small pieces, as a stream arrives.
        let mut d = Decoder::new(
            client,
            Limits {
                packets: 100,
                bytes: 8,
            },
        );
        for piece in bytes.chunks(7) {
            assert!(!d.feed(piece).unwrap());
        }
        let v = d.finish();
        assert_eq!(v.packets.len(), 6);
        assert!(!v.more_packets);
        assert_eq!(v.packets[0].flags, "SYN");
        assert_eq!(v.packets[1].flags, "SYN ACK");
        assert_eq!(v.packets[1].from, "server");
        assert_eq!(v.packets[0].ttl, Some(57));
        assert_eq!(v.packets[0].ip_len, Some(40));
        assert_eq!(v.packets[2].payload_len, 5);
        // Client stream: "GET " at 0, a hole at 4, "world" from 4 (seq 105).
        let cs = &v.streams[0];
        assert!(cs.reassembled);
        assert_eq!(cs.hex, hex(b"GET worl"), "8 bytes kept");
        assert!(cs.cut && !cs.hole);
        assert_eq!(cs.payload_bytes, 13);
        // Per packet, 8 bytes of each direction: "world" then "GET".
        assert_eq!(v.packets[2].payload, hex(b"world"));
        assert_eq!(v.packets[3].payload, hex(b"GET"));
        assert_eq!(v.packets[4].payload, "");
        // The server's payload is hex only, never markup.
        assert_eq!(v.streams[1].hex, hex(b"<script>"));
        assert!(v.streams[1].hex.bytes().all(|b| b.is_ascii_hexdigit()));
        // A packet limit: the first 2, and "more".
        let mut d = Decoder::new(
            client,
            Limits {
                packets: 2,
                bytes: 8,
            },
        );
        assert!(d.feed(&bytes).unwrap());
        let v = d.finish();
        assert_eq!(v.packets.len(), 2);
        assert!(v.more_packets);
        // Not pcap: refused.
        let mut d = Decoder::new(
            client,
            Limits {
                packets: 2,
                bytes: 8,
            },
        );
        assert!(d.feed(&[0u8; 30]).is_err());
    }

    #[test]
    fn a_hole_ends_the_reassembled_stream() {
        let (c, s) = ([10, 0, 0, 1], [192, 0, 2, 10]);
        let frames = vec![
            tcp(c, s, 4000, 80, 100, 0x02, b""),
            tcp(c, s, 4000, 80, 101, 0x18, b"abc"),
            tcp(c, s, 4000, 80, 110, 0x18, b"xyz"),
        ];
        let mut d = Decoder::new(
            ("10.0.0.1".parse().unwrap(), 4000),
            Limits {
                packets: 10,
                bytes: 4096,
            },
        );
        d.feed(&pcap(&frames)).unwrap();
        let v = d.finish();
        assert_eq!(v.streams[0].hex, hex(b"abc"));
        assert!(v.streams[0].hole && !v.streams[0].cut);
    }
}
