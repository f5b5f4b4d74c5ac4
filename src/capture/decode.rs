//! Packet decoding: link layer to transport ports, without allocation or panics.
//!
//! Owns turning one captured frame (link type + bytes) into a `PacketInfo`: IP
//! addresses, transport protocol and ports, TCP flags, IPv4 flags, fragment and
//! ICMP details (including the flow an ICMP error quotes), and where the IP
//! header and the transport header lie in the frame (for `p0f`). It runs once per packet
//! at hundreds of MB/s: it borrows, never allocates on success, and never panics.
//! Must not touch: reading files (`reader`), flows, storage or anything stateful;
//! it does not reassemble fragments or validate checksums.
//!
//! IP headers and IPv6 extension headers are read with etherparse's header
//! slices. Link headers and transport ports are read by hand: etherparse's SLL
//! slice rejects hardware types real `-i any` captures contain (loopback, tun),
//! it has no SLL2, and its TCP slice needs the whole header with options while
//! the ports are wanted even when the snaplen cut the rest.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::err::{LenError, ipv4, ipv6};
use etherparse::{
    Ethernet2HeaderSlice, IpAuthHeaderSlice, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice,
    Ipv6HeaderSlice, Ipv6RawExtHeaderSlice, SingleVlanHeaderSlice,
};

/// IPv4 or IPv6 fragment information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// IPv4 identification or IPv6 fragment header identification.
    pub id: u32,
    /// Fragment offset in bytes.
    pub offset: u32,
    pub more_fragments: bool,
}

/// The flow an ICMP error quotes (from the embedded IP header and first 8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedFlow {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// 0 when the quoted protocol has no ports or the quote is too short.
    pub src_port: u16,
    pub dst_port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpInfo {
    pub icmp_type: u8,
    pub code: u8,
    /// True for error messages (v4: 3, 4, 5, 11, 12; v6: 1-4).
    pub is_error: bool,
    /// The quoted flow of an error message, when its IP header was quoted whole.
    pub quoted: Option<QuotedFlow>,
}

/// Network and transport summary of an IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetInfo {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Transport protocol number (after IPv6 extension headers). When the
    /// capture ends inside an extension header, the number of that header.
    pub proto: u8,
    /// 0 when the protocol has no ports (ICMP included), this is a non-first
    /// fragment, or the capture ends before the ports.
    pub src_port: u16,
    pub dst_port: u16,
    /// TCP flags byte, 0 when not TCP.
    pub tcp_flags: u8,
    /// IPv4 flags (bit 1 DF = 0x2, bit 0 MF = 0x1 as in the 3-bit field >> 13), 0 for IPv6.
    pub ip_flags: u8,
    /// Set when more fragments follow or the fragment offset is not 0 (an IPv6
    /// atomic fragment, offset 0 without M, is a whole packet: RFC 6946).
    pub fragment: Option<Fragment>,
    /// Set for ICMP and ICMPv6 when the type and code were captured.
    pub icmp: Option<IcmpInfo>,
    /// Where the transport header and its payload (the IP payload, cut at
    /// the IP length or the capture end) lie in the decoded frame: `None`
    /// for non-first fragments and cut extension headers.
    pub transport: Option<Span>,
    /// Where the IP header (IPv4 with options; IPv6 with its extension
    /// headers) lies in the frame, up to the transport header: set exactly
    /// when `transport` is. Passive OS fingerprinting (`p0f`) reads TTL, ID,
    /// flags and options from it.
    pub ip_header: Option<Span>,
}

/// A byte range of the decoded frame: `frame.get(span.range())` is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub offset: u32,
    pub len: u32,
}

impl Span {
    pub fn range(self) -> std::ops::Range<usize> {
        let start = self.offset as usize;
        start..start.saturating_add(self.len as usize)
    }

    /// The span of `sub` inside `frame`, when `sub` really is a part of it
    /// (an empty default slice elsewhere in memory is not).
    fn within(frame: &[u8], sub: &[u8]) -> Option<Span> {
        let offset = (sub.as_ptr() as usize).checked_sub(frame.as_ptr() as usize)?;
        let end = offset.checked_add(sub.len())?;
        if end > frame.len() {
            return None;
        }
        Some(Span {
            offset: u32::try_from(offset).ok()?,
            len: u32::try_from(sub.len()).ok()?,
        })
    }
}

/// Result of decoding one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketInfo {
    /// None for non-IP frames (ARP, LLDP, ...).
    pub net: Option<NetInfo>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("unsupported link type {0}")]
    UnsupportedLinkType(u32),
    /// The frame ends inside, or contradicts, a link or IP header.
    #[error("malformed {layer} header: {reason}")]
    Malformed { layer: &'static str, reason: String },
}

// Link types (LINKTYPE_* values as stored in capture files).
const LINKTYPE_NULL: u32 = 0;
const LINKTYPE_ETHERNET: u32 = 1;
const DLT_RAW_COMMON: u32 = 12;
const DLT_RAW_OPENBSD: u32 = 14;
const LINKTYPE_RAW: u32 = 101;
const LINKTYPE_LOOP: u32 = 108;
const LINKTYPE_LINUX_SLL: u32 = 113;
const LINKTYPE_IPV4: u32 = 228;
const LINKTYPE_IPV6: u32 = 229;
const LINKTYPE_LINUX_SLL2: u32 = 276;

// Ethertypes.
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
const ETHERTYPE_QINQ_OLD2: u16 = 0x9200;
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;

const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

/// Linux ARPHRD_NETLINK: SLL frames of this hardware type carry netlink, not ethertypes.
const ARPHRD_NETLINK: u16 = 824;

// IP protocol numbers.
const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_DCCP: u8 = 33;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_DSTOPTS: u8 = 60;
const IPPROTO_MOBILITY: u8 = 135;
const IPPROTO_HIP: u8 = 139;
const IPPROTO_SHIM6: u8 = 140;
const IPPROTO_SCTP: u8 = 132;
const IPPROTO_UDPLITE: u8 = 136;

/// More stacked VLAN tags than this is treated as garbage, not walked forever.
const MAX_VLAN_TAGS: usize = 8;
/// Bound on IPv6 extension headers followed (each is at least 8 bytes anyway).
const MAX_IPV6_EXTENSIONS: usize = 16;

/// Decodes one captured frame of the given link type.
///
/// Errors only when the link or IP header itself is cut or invalid; a transport
/// header cut by the snaplen still gives addresses, with ports 0.
pub fn decode(link_type: u32, data: &[u8]) -> Result<PacketInfo, DecodeError> {
    let net = match link_type {
        LINKTYPE_ETHERNET => decode_ethernet(data)?,
        LINKTYPE_LINUX_SLL => decode_sll(data)?,
        LINKTYPE_LINUX_SLL2 => decode_sll2(data)?,
        LINKTYPE_RAW | DLT_RAW_COMMON | DLT_RAW_OPENBSD => Some(decode_raw_ip(data)?),
        LINKTYPE_IPV4 => Some(net_info(ipv4_layer(data)?)),
        LINKTYPE_IPV6 => Some(net_info(ipv6_layer(data)?)),
        LINKTYPE_NULL => decode_null(data)?,
        LINKTYPE_LOOP => decode_loop(data)?,
        other => return Err(DecodeError::UnsupportedLinkType(other)),
    };
    Ok(PacketInfo {
        net: net.map(|raw| raw.locate(data)),
    })
}

fn malformed(layer: &'static str, reason: impl std::fmt::Display) -> DecodeError {
    DecodeError::Malformed {
        layer,
        reason: reason.to_string(),
    }
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    let bytes = data.get(at..at + 2)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

/// A header the capture ends inside (etherparse reports the lengths).
fn cut(layer: &'static str, e: &LenError) -> DecodeError {
    malformed(
        layer,
        format_args!(
            "captured bytes end inside the header ({} of {} bytes)",
            e.len, e.required_len
        ),
    )
}

fn too_short(layer: &'static str, need: usize, have: usize) -> DecodeError {
    malformed(
        layer,
        format_args!("frame of {have} bytes is shorter than the {need}-byte header"),
    )
}

// ----- link layer ----------------------------------------------------------

fn decode_ethernet(data: &[u8]) -> Result<Option<Raw<'_>>, DecodeError> {
    let eth = Ethernet2HeaderSlice::from_slice(data).map_err(|e| cut("ethernet", &e))?;
    let rest = data.get(eth.slice().len()..).unwrap_or_default();
    decode_ethertype(eth.ether_type().0, rest)
}

/// Linux cooked v1: 16 bytes, protocol (an ethertype) at offset 14.
fn decode_sll(data: &[u8]) -> Result<Option<Raw<'_>>, DecodeError> {
    const LEN: usize = 16;
    let (Some(hatype), Some(protocol), Some(rest)) =
        (be16(data, 2), be16(data, 14), data.get(LEN..))
    else {
        return Err(too_short("linux cooked (SLL)", LEN, data.len()));
    };
    if hatype == ARPHRD_NETLINK {
        return Ok(None);
    }
    decode_ethertype(protocol, rest)
}

/// Linux cooked v2: 20 bytes, protocol at offset 0, hardware type at offset 8.
fn decode_sll2(data: &[u8]) -> Result<Option<Raw<'_>>, DecodeError> {
    const LEN: usize = 20;
    let (Some(protocol), Some(hatype), Some(rest)) =
        (be16(data, 0), be16(data, 8), data.get(LEN..))
    else {
        return Err(too_short("linux cooked v2 (SLL2)", LEN, data.len()));
    };
    if hatype == ARPHRD_NETLINK {
        return Ok(None);
    }
    decode_ethertype(protocol, rest)
}

/// Follows VLAN tags (802.1Q, 802.1ad, old QinQ) and PPPoE to IPv4 or IPv6.
/// Any other ethertype (ARP, LLDP, 802.3 lengths, ...) is not IP: `None`.
fn decode_ethertype(mut ethertype: u16, mut data: &[u8]) -> Result<Option<Raw<'_>>, DecodeError> {
    for _ in 0..=MAX_VLAN_TAGS {
        match ethertype {
            ETHERTYPE_IPV4 => return ipv4_layer(data).map(|ip| Some(net_info(ip))),
            ETHERTYPE_IPV6 => return ipv6_layer(data).map(|ip| Some(net_info(ip))),
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD | ETHERTYPE_QINQ_OLD2 => {
                let tag = SingleVlanHeaderSlice::from_slice(data).map_err(|e| cut("vlan", &e))?;
                ethertype = tag.ether_type().0;
                data = data.get(tag.slice().len()..).unwrap_or_default();
            }
            ETHERTYPE_PPPOE_SESSION => return decode_pppoe(data),
            _ => return Ok(None),
        }
    }
    Err(malformed(
        "vlan",
        format_args!("more than {MAX_VLAN_TAGS} stacked VLAN tags"),
    ))
}

/// PPPoE session: 6-byte PPPoE header, then the 2-byte PPP protocol.
fn decode_pppoe(data: &[u8]) -> Result<Option<Raw<'_>>, DecodeError> {
    const LEN: usize = 8;
    let (Some(protocol), Some(rest)) = (be16(data, 6), data.get(LEN..)) else {
        return Err(too_short("pppoe", LEN, data.len()));
    };
    match protocol {
        PPP_IPV4 => ipv4_layer(rest).map(|ip| Some(net_info(ip))),
        PPP_IPV6 => ipv6_layer(rest).map(|ip| Some(net_info(ip))),
        _ => Ok(None),
    }
}

/// Raw IP: the version nibble decides.
fn decode_raw_ip(data: &[u8]) -> Result<Raw<'_>, DecodeError> {
    match data.first().map(|b| b >> 4) {
        Some(4) => ipv4_layer(data).map(net_info),
        Some(6) => ipv6_layer(data).map(net_info),
        Some(v) => Err(malformed("ip", format_args!("unknown IP version {v}"))),
        None => Err(malformed("ip", "empty packet")),
    }
}

/// BSD loopback: a 4-byte address family in the capturing host's byte order,
/// so both orders are tried.
fn decode_null(data: &[u8]) -> Result<Option<Raw<'_>>, DecodeError> {
    let Some(word) = data.get(..4) else {
        return Err(too_short("null/loopback", 4, data.len()));
    };
    let word = [word[0], word[1], word[2], word[3]];
    let family = match (u32::from_le_bytes(word), u32::from_be_bytes(word)) {
        (le, _) if family_is_ip(le) => le,
        (_, be) => be,
    };
    decode_family(family, data.get(4..).unwrap_or_default())
}

/// OpenBSD loopback: the address family in network byte order.
fn decode_loop(data: &[u8]) -> Result<Option<Raw<'_>>, DecodeError> {
    let Some(word) = data.get(..4) else {
        return Err(too_short("loop", 4, data.len()));
    };
    let family = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
    decode_family(family, data.get(4..).unwrap_or_default())
}

const AF_INET: u32 = 2;
/// AF_INET6 differs per OS: Linux 10, OpenBSD/NetBSD 24, FreeBSD 28, macOS 30.
const AF_INET6: [u32; 4] = [10, 24, 28, 30];

fn family_is_ip(family: u32) -> bool {
    family == AF_INET || AF_INET6.contains(&family)
}

fn decode_family(family: u32, data: &[u8]) -> Result<Option<Raw<'_>>, DecodeError> {
    if family == AF_INET {
        ipv4_layer(data).map(|ip| Some(net_info(ip)))
    } else if AF_INET6.contains(&family) {
        ipv6_layer(data).map(|ip| Some(net_info(ip)))
    } else {
        Ok(None)
    }
}

// ----- network layer -------------------------------------------------------

/// What the IP layer tells, with the bytes after its headers.
struct IpLayer<'a> {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ip_flags: u8,
    fragment: Option<Fragment>,
    /// False for non-first fragments and cut extension headers: the bytes
    /// after the headers are not the start of a transport header.
    transport_follows: bool,
    payload: &'a [u8],
    /// The IP packet from its first header byte.
    packet: &'a [u8],
}

/// IPv4 header with options. The payload ends at the total length when the
/// frame holds more (Ethernet padding) and at the capture end when it holds
/// less (snaplen); a total length below the header length (0 from TSO) is
/// ignored in favour of the captured length.
fn ipv4_layer(data: &[u8]) -> Result<IpLayer<'_>, DecodeError> {
    let header = Ipv4HeaderSlice::from_slice(data).map_err(|e| match e {
        ipv4::HeaderSliceError::Len(e) => cut("ipv4", &e),
        ipv4::HeaderSliceError::Content(e) => malformed("ipv4", e),
    })?;
    let header_len = header.slice().len();
    let total = usize::from(header.total_len());
    let end = if total >= header_len && total <= data.len() {
        total
    } else {
        data.len()
    };
    let payload = data.get(header_len..end).unwrap_or_default();
    let frag_offset = u32::from(header.fragments_offset().value()) * 8;
    let more_fragments = header.more_fragments();
    let fragment = (more_fragments || frag_offset != 0).then(|| Fragment {
        id: u32::from(header.identification()),
        offset: frag_offset,
        more_fragments,
    });
    Ok(IpLayer {
        src: IpAddr::V4(Ipv4Addr::from(header.source())),
        dst: IpAddr::V4(Ipv4Addr::from(header.destination())),
        proto: header.protocol().0,
        // The 3-bit flags field sits in the top bits of byte 6.
        ip_flags: header.slice().get(6).map_or(0, |b| b >> 5),
        fragment,
        transport_follows: frag_offset == 0,
        payload,
        packet: data,
    })
}

/// IPv6 header and its extension headers up to the transport protocol.
fn ipv6_layer(data: &[u8]) -> Result<IpLayer<'_>, DecodeError> {
    let header = Ipv6HeaderSlice::from_slice(data).map_err(|e| match e {
        ipv6::HeaderSliceError::Len(e) => cut("ipv6", &e),
        ipv6::HeaderSliceError::Content(e) => malformed("ipv6", e),
    })?;
    let header_len = header.slice().len();
    let payload_len = usize::from(header.payload_length());
    // Payload length 0 means a jumbogram or TSO: use what was captured.
    let end = match header_len + payload_len {
        end if payload_len != 0 && end <= data.len() => end,
        _ => data.len(),
    };
    let after_header = data.get(header_len..end).unwrap_or_default();
    let chain = walk_ipv6_extensions(header.next_header().0, after_header);
    Ok(IpLayer {
        src: IpAddr::V6(Ipv6Addr::from(header.source())),
        dst: IpAddr::V6(Ipv6Addr::from(header.destination())),
        proto: chain.proto,
        ip_flags: 0,
        fragment: chain.fragment,
        transport_follows: chain.transport_follows,
        payload: chain.payload,
        packet: data,
    })
}

/// Where an IPv6 extension header chain ends.
struct ExtensionChain<'a> {
    proto: u8,
    fragment: Option<Fragment>,
    transport_follows: bool,
    payload: &'a [u8],
}

/// Follows hop-by-hop, routing, destination options, mobility, HIP, shim6,
/// fragment and AH headers. Stops at a non-first fragment (its payload is the
/// middle of the upper-layer packet) or where the capture cuts a header.
fn walk_ipv6_extensions(mut next: u8, mut rest: &[u8]) -> ExtensionChain<'_> {
    let mut fragment = None;
    for _ in 0..MAX_IPV6_EXTENSIONS {
        let (header_len, following) = match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_MOBILITY
            | IPPROTO_HIP | IPPROTO_SHIM6 => match Ipv6RawExtHeaderSlice::from_slice(rest) {
                Ok(ext) => (ext.slice().len(), ext.next_header().0),
                Err(_) => break,
            },
            IPPROTO_AH => match IpAuthHeaderSlice::from_slice(rest) {
                Ok(ah) => (ah.slice().len(), ah.next_header().0),
                Err(_) => break,
            },
            IPPROTO_FRAGMENT => match Ipv6FragmentHeaderSlice::from_slice(rest) {
                Ok(frag) => {
                    let offset = u32::from(frag.fragment_offset().value()) * 8;
                    let more_fragments = frag.more_fragments();
                    if more_fragments || offset != 0 {
                        fragment = Some(Fragment {
                            id: frag.identification(),
                            offset,
                            more_fragments,
                        });
                    }
                    if offset != 0 {
                        let payload = rest.get(frag.slice().len()..).unwrap_or_default();
                        let proto = frag.next_header().0;
                        return ExtensionChain {
                            proto,
                            fragment,
                            transport_follows: false,
                            payload,
                        };
                    }
                    (frag.slice().len(), frag.next_header().0)
                }
                Err(_) => break,
            },
            _ => {
                return ExtensionChain {
                    proto: next,
                    fragment,
                    transport_follows: true,
                    payload: rest,
                };
            }
        };
        next = following;
        rest = rest.get(header_len..).unwrap_or_default();
    }
    // Cut (or absurdly long) extension chain: the transport header is unknown.
    ExtensionChain {
        proto: next,
        fragment,
        transport_follows: false,
        payload: &[],
    }
}

// ----- transport layer -----------------------------------------------------

/// Protocols whose header starts with 16-bit source and destination ports.
fn has_ports(proto: u8) -> bool {
    matches!(
        proto,
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP | IPPROTO_DCCP | IPPROTO_UDPLITE
    )
}

/// Source and destination ports from the first 4 bytes, (0, 0) when not captured.
fn ports(payload: &[u8]) -> (u16, u16) {
    match (be16(payload, 0), be16(payload, 2)) {
        (Some(src), Some(dst)) => (src, dst),
        _ => (0, 0),
    }
}

fn net_info(ip: IpLayer<'_>) -> Raw<'_> {
    let mut info = NetInfo {
        transport: None,
        ip_header: None,
        src: ip.src,
        dst: ip.dst,
        proto: ip.proto,
        src_port: 0,
        dst_port: 0,
        tcp_flags: 0,
        ip_flags: ip.ip_flags,
        fragment: ip.fragment,
        icmp: None,
    };
    if !ip.transport_follows {
        return Raw {
            info,
            payload: None,
            packet: ip.packet,
        };
    }
    if has_ports(ip.proto) {
        (info.src_port, info.dst_port) = ports(ip.payload);
        if ip.proto == IPPROTO_TCP {
            info.tcp_flags = ip.payload.get(13).copied().unwrap_or(0);
        }
    } else if ip.proto == IPPROTO_ICMP || ip.proto == IPPROTO_ICMPV6 {
        info.icmp = icmp_info(ip.proto == IPPROTO_ICMPV6, ip.payload);
    }
    Raw {
        info,
        payload: Some(ip.payload),
        packet: ip.packet,
    }
}

/// A decoded packet before its transport bytes are located in the frame.
struct Raw<'a> {
    info: NetInfo,
    payload: Option<&'a [u8]>,
    packet: &'a [u8],
}

impl Raw<'_> {
    fn locate(self, frame: &[u8]) -> NetInfo {
        let mut info = self.info;
        info.transport = self.payload.and_then(|p| Span::within(frame, p));
        info.ip_header = info.transport.and_then(|t| {
            let ip = Span::within(frame, self.packet)?;
            Some(Span {
                offset: ip.offset,
                len: t.offset.checked_sub(ip.offset)?,
            })
        });
        info
    }
}

fn icmp_is_error(v6: bool, icmp_type: u8) -> bool {
    if v6 {
        (1..=4).contains(&icmp_type)
    } else {
        matches!(icmp_type, 3 | 4 | 5 | 11 | 12)
    }
}

/// ICMP or ICMPv6 type and code; for errors, the quoted flow, which starts
/// after the 8-byte ICMP header in every error type of both versions.
fn icmp_info(v6: bool, payload: &[u8]) -> Option<IcmpInfo> {
    let (&icmp_type, &code) = (payload.first()?, payload.get(1)?);
    let is_error = icmp_is_error(v6, icmp_type);
    let quoted = if is_error {
        payload.get(8..).and_then(quoted_flow)
    } else {
        None
    };
    Some(IcmpInfo {
        icmp_type,
        code,
        is_error,
        quoted,
    })
}

/// The flow of the IP packet an ICMP error quotes. Needs the quoted IP header
/// whole; ports come from the quoted first 8 bytes when present. A quoted
/// ICMP message is not followed further (flows of ICMP have ports 0).
fn quoted_flow(quote: &[u8]) -> Option<QuotedFlow> {
    let ip = match quote.first()? >> 4 {
        4 => ipv4_layer(quote).ok()?,
        6 => ipv6_layer(quote).ok()?,
        _ => return None,
    };
    let (src_port, dst_port) = if ip.transport_follows && has_ports(ip.proto) {
        ports(ip.payload)
    } else {
        (0, 0)
    };
    Some(QuotedFlow {
        src: ip.src,
        dst: ip.dst,
        proto: ip.proto,
        src_port,
        dst_port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // ----- fixture builders --------------------------------------------------

    const SRC4: [u8; 4] = [192, 0, 2, 1];
    const DST4: [u8; 4] = [198, 51, 100, 7];

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(a))
    }

    fn v6(last: u8) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[0] = 0x20;
        a[1] = 0x01;
        a[2] = 0x0d;
        a[3] = 0xb8;
        a[15] = last;
        a
    }

    /// IPv4 header (with `options`, a multiple of 4 bytes) followed by `payload`.
    fn ipv4(proto: u8, flags_frag: u16, id: u16, options: &[u8], payload: &[u8]) -> Vec<u8> {
        let ihl = 5 + options.len() / 4;
        let total = (ihl * 4 + payload.len()) as u16;
        let mut out = vec![0x40 | ihl as u8, 0];
        out.extend_from_slice(&total.to_be_bytes());
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&flags_frag.to_be_bytes());
        out.extend_from_slice(&[64, proto, 0, 0]);
        out.extend_from_slice(&SRC4);
        out.extend_from_slice(&DST4);
        out.extend_from_slice(options);
        out.extend_from_slice(payload);
        out
    }

    /// IPv6 header followed by `rest` (extension headers and payload).
    fn ipv6(next: u8, src: [u8; 16], dst: [u8; 16], rest: &[u8]) -> Vec<u8> {
        let mut out = vec![0x60, 0, 0, 0];
        out.extend_from_slice(&(rest.len() as u16).to_be_bytes());
        out.extend_from_slice(&[next, 64]);
        out.extend_from_slice(&src);
        out.extend_from_slice(&dst);
        out.extend_from_slice(rest);
        out
    }

    fn tcp(src: u16, dst: u16, flags: u8) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&src.to_be_bytes());
        out.extend_from_slice(&dst.to_be_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        out
    }

    fn udp(src: u16, dst: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&src.to_be_bytes());
        out.extend_from_slice(&dst.to_be_bytes());
        out.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(payload);
        out
    }

    fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        out.extend_from_slice(&ethertype.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// One tag as it follows a VLAN TPID: TCI (VLAN id), then the next ethertype.
    fn vlan_tag(next_ethertype: u16, vid: u16) -> Vec<u8> {
        let mut out = vid.to_be_bytes().to_vec();
        out.extend_from_slice(&next_ethertype.to_be_bytes());
        out
    }

    fn net(link_type: u32, data: &[u8]) -> NetInfo {
        decode(link_type, data).unwrap().net.unwrap()
    }

    fn tcp_v4_packet() -> Vec<u8> {
        ipv4(IPPROTO_TCP, 0x4000, 1, &[], &tcp(40000, 22, 0x12))
    }

    fn assert_tcp_v4(info: NetInfo) {
        assert_eq!(info.src, v4(SRC4));
        assert_eq!(info.dst, v4(DST4));
        assert_eq!((info.proto, info.src_port, info.dst_port), (6, 40000, 22));
        assert_eq!(info.tcp_flags, 0x12);
        assert_eq!(info.ip_flags, 0x2, "DF");
        assert_eq!(info.fragment, None);
        assert_eq!(info.icmp, None);
    }

    // ----- transport span ------------------------------------------------------

    #[test]
    fn transport_span_is_the_udp_segment_without_padding() {
        let seg = udp(1101, 1101, b"sebek!");
        let mut ip = ipv4(IPPROTO_UDP, 0, 1, &[], &seg);
        ip.extend_from_slice(&[0; 6]);
        let frame = ethernet(ETHERTYPE_IPV4, &ip);
        let info = net(1, &frame);
        let span = info.transport.unwrap();
        assert_eq!(frame.get(span.range()), Some(&seg[..]));
    }

    #[test]
    fn transport_span_in_vlan_and_ipv6_frames() {
        let seg = tcp(40000, 22, 0x02);
        let mut frame = vlan_tag(ETHERTYPE_IPV4, 7);
        frame.extend_from_slice(&ipv4(IPPROTO_TCP, 0, 1, &[], &seg));
        let frame = ethernet(ETHERTYPE_VLAN, &frame);
        let span = net(1, &frame).transport.unwrap();
        assert_eq!(frame.get(span.range()), Some(&seg[..]));
        let v6 = ipv6(IPPROTO_TCP, v6(1), v6(2), &seg);
        let span = net(LINKTYPE_IPV6, &v6).transport.unwrap();
        assert_eq!(v6.get(span.range()), Some(&seg[..]));
    }

    #[test]
    fn no_transport_span_for_non_first_fragments() {
        let ip = ipv4(IPPROTO_UDP, 3, 9, &[], &[0; 16]);
        assert_eq!(net(LINKTYPE_IPV4, &ip).transport, None);
    }

    // ----- link types ----------------------------------------------------------

    #[test]
    fn ethernet_ipv4_tcp() {
        assert_tcp_v4(net(1, &ethernet(ETHERTYPE_IPV4, &tcp_v4_packet())));
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        // A 2-byte UDP header fragment plus Ethernet padding must not yield ports.
        let mut ip = ipv4(IPPROTO_UDP, 0, 1, &[], &[0x12, 0x34]);
        ip.extend_from_slice(&[0xaa; 20]);
        let info = net(1, &ethernet(ETHERTYPE_IPV4, &ip));
        assert_eq!((info.proto, info.src_port, info.dst_port), (17, 0, 0));
    }

    #[test]
    fn vlan_and_qinq() {
        let ip = tcp_v4_packet();
        let mut single = vlan_tag(ETHERTYPE_IPV4, 100);
        single.extend_from_slice(&ip);
        assert_tcp_v4(net(1, &ethernet(ETHERTYPE_VLAN, &single)));
        for outer in [ETHERTYPE_QINQ, ETHERTYPE_QINQ_OLD, ETHERTYPE_VLAN] {
            let mut stacked = vlan_tag(ETHERTYPE_VLAN, 10);
            stacked.extend(vlan_tag(ETHERTYPE_IPV4, 20));
            stacked.extend_from_slice(&ip);
            assert_tcp_v4(net(1, &ethernet(outer, &stacked)));
        }
        // A tag cut short is malformed; endless tags are refused.
        let err = decode(1, &ethernet(ETHERTYPE_VLAN, &[0, 100])).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed { layer: "vlan", .. }));
        let mut tags = Vec::new();
        for _ in 0..20 {
            tags.extend(vlan_tag(ETHERTYPE_VLAN, 1));
        }
        assert!(decode(1, &ethernet(ETHERTYPE_VLAN, &tags)).is_err());
    }

    #[test]
    fn pppoe_session() {
        let mut pppoe = vec![0x11, 0, 0, 1, 0, 0];
        pppoe.extend_from_slice(&PPP_IPV4.to_be_bytes());
        pppoe.extend(tcp_v4_packet());
        assert_tcp_v4(net(1, &ethernet(ETHERTYPE_PPPOE_SESSION, &pppoe)));
    }

    #[test]
    fn linux_cooked_v1_and_v2() {
        let ip = tcp_v4_packet();
        // SLL: packet type 4 (outgoing), ARPHRD_LOOPBACK (772), which
        // etherparse's own SLL slice would refuse.
        let mut sll = vec![0, 4, 0x03, 0x04, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0];
        sll.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        sll.extend_from_slice(&ip);
        assert_tcp_v4(net(113, &sll));
        // SLL2: protocol first, then reserved, ifindex, hatype, pkttype, addrlen, addr.
        let mut sll2 = ETHERTYPE_IPV4.to_be_bytes().to_vec();
        sll2.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0]);
        sll2.extend_from_slice(&ip);
        assert_tcp_v4(net(276, &sll2));
        // Netlink and ARP are not IP.
        let mut netlink = sll.clone();
        netlink[2..4].copy_from_slice(&ARPHRD_NETLINK.to_be_bytes());
        assert_eq!(decode(113, &netlink).unwrap().net, None);
        assert!(matches!(
            decode(276, &sll2[..10]),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            decode(113, &sll[..15]),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn raw_ip_link_types() {
        let ip4 = tcp_v4_packet();
        let ip6 = ipv6(IPPROTO_UDP, v6(1), v6(2), &udp(53, 5353, b"q"));
        for lt in [101, 12, 14] {
            assert_tcp_v4(net(lt, &ip4));
            assert_eq!(net(lt, &ip6).dst_port, 5353);
        }
        assert_tcp_v4(net(228, &ip4));
        assert_eq!(net(229, &ip6).src, IpAddr::V6(Ipv6Addr::from(v6(1))));
        // Wrong version for the link type, unknown version, empty.
        assert!(matches!(
            decode(228, &ip6),
            Err(DecodeError::Malformed { layer: "ipv4", .. })
        ));
        assert!(matches!(
            decode(229, &ip4),
            Err(DecodeError::Malformed { layer: "ipv6", .. })
        ));
        assert!(matches!(
            decode(101, &[0x50; 30]),
            Err(DecodeError::Malformed { layer: "ip", .. })
        ));
        assert!(matches!(
            decode(101, &[]),
            Err(DecodeError::Malformed { layer: "ip", .. })
        ));
    }

    #[test]
    fn null_and_loop_families() {
        let ip4 = tcp_v4_packet();
        let ip6 = ipv6(IPPROTO_TCP, v6(1), v6(2), &tcp(1, 2, 0x02));
        for family in [2u32] {
            for bytes in [family.to_le_bytes(), family.to_be_bytes()] {
                let mut frame = bytes.to_vec();
                frame.extend_from_slice(&ip4);
                assert_tcp_v4(net(0, &frame));
            }
        }
        for family in AF_INET6 {
            for bytes in [family.to_le_bytes(), family.to_be_bytes()] {
                let mut frame = bytes.to_vec();
                frame.extend_from_slice(&ip6);
                assert_eq!(net(0, &frame).dst_port, 2);
            }
            let mut frame = family.to_be_bytes().to_vec();
            frame.extend_from_slice(&ip6);
            assert_eq!(net(108, &frame).dst_port, 2);
        }
        let mut frame = 2u32.to_be_bytes().to_vec();
        frame.extend_from_slice(&ip4);
        assert_tcp_v4(net(108, &frame));
        // Unknown family: not IP. Short header: malformed.
        assert_eq!(decode(0, &[7, 0, 0, 0, 1, 2]).unwrap().net, None);
        assert!(matches!(
            decode(0, &[2, 0]),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            decode(108, &[0, 0, 0]),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn unsupported_link_type() {
        assert_eq!(
            decode(147, &[0; 40]),
            Err(DecodeError::UnsupportedLinkType(147))
        );
    }

    #[test]
    fn non_ip_frames_have_no_net() {
        let arp = ethernet(0x0806, &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(decode(1, &arp), Ok(PacketInfo { net: None }));
        let llc = ethernet(0x0030, &[0xaa, 0xaa, 3]);
        assert_eq!(decode(1, &llc).unwrap().net, None);
        let mut tagged_arp = vlan_tag(0x0806, 5);
        tagged_arp.extend_from_slice(&[0, 1]);
        assert_eq!(
            decode(1, &ethernet(ETHERTYPE_VLAN, &tagged_arp))
                .unwrap()
                .net,
            None
        );
        assert!(matches!(
            decode(1, &[0; 13]),
            Err(DecodeError::Malformed {
                layer: "ethernet",
                ..
            })
        ));
    }

    // ----- IPv4 ------------------------------------------------------------------

    #[test]
    fn ipv4_options_and_protocols() {
        let options = [1, 1, 1, 0]; // NOP NOP NOP EOL
        let udp4 = ipv4(IPPROTO_UDP, 0, 9, &options, &udp(1234, 53, b"dns"));
        let info = net(101, &udp4);
        assert_eq!(
            (info.proto, info.src_port, info.dst_port, info.tcp_flags),
            (17, 1234, 53, 0)
        );
        let sctp = ipv4(
            IPPROTO_SCTP,
            0,
            9,
            &[],
            &[0x0b, 0xb8, 0x0b, 0xb9, 0, 0, 0, 0],
        );
        assert_eq!(
            (net(101, &sctp).src_port, net(101, &sctp).dst_port),
            (3000, 3001)
        );
        let gre = ipv4(47, 0, 9, &[], &[0; 8]);
        let info = net(101, &gre);
        assert_eq!(
            (info.proto, info.src_port, info.dst_port, info.icmp),
            (47, 0, 0, None)
        );
    }

    #[test]
    fn ipv4_tso_zero_total_length_uses_captured_bytes() {
        let mut ip = tcp_v4_packet();
        ip[2] = 0;
        ip[3] = 0;
        assert_tcp_v4(net(101, &ip));
    }

    #[test]
    fn ipv4_first_and_non_first_fragments() {
        let payload = udp(5000, 6000, &[0; 32]);
        // First fragment: MF set, offset 0 -> ports readable.
        let first = ipv4(IPPROTO_UDP, 0x2000, 0xbeef, &[], &payload[..24]);
        let info = net(101, &first);
        assert_eq!(
            info.fragment,
            Some(Fragment {
                id: 0xbeef,
                offset: 0,
                more_fragments: true
            })
        );
        assert_eq!(info.ip_flags, 0x1, "MF");
        assert_eq!((info.src_port, info.dst_port), (5000, 6000));
        // Last fragment: offset 3 units = 24 bytes, no MF -> no ports.
        let last = ipv4(IPPROTO_UDP, 3, 0xbeef, &[], &payload[24..]);
        let info = net(101, &last);
        assert_eq!(
            info.fragment,
            Some(Fragment {
                id: 0xbeef,
                offset: 24,
                more_fragments: false
            })
        );
        assert_eq!(
            (info.proto, info.src_port, info.dst_port, info.ip_flags),
            (17, 0, 0, 0)
        );
        // A non-first fragment of ICMP has no ICMP header either.
        let icmp_tail = ipv4(IPPROTO_ICMP, 0x2001, 1, &[], &[3, 3, 0, 0, 0, 0, 0, 0]);
        assert_eq!(net(101, &icmp_tail).icmp, None);
    }

    #[test]
    fn truncated_ip_header_is_malformed() {
        let ip = tcp_v4_packet();
        let err = decode(1, &ethernet(ETHERTYPE_IPV4, &ip[..12])).unwrap_err();
        assert!(
            matches!(err, DecodeError::Malformed { layer: "ipv4", .. }),
            "{err}"
        );
        // Options announced by the IHL but cut.
        let with_options = ipv4(IPPROTO_TCP, 0, 1, &[1; 8], &[]);
        assert!(decode(101, &with_options[..24]).is_err());
        // IHL below 5.
        let mut bad_ihl = ip.clone();
        bad_ihl[0] = 0x44;
        assert!(decode(101, &bad_ihl).is_err());
        let ip6 = ipv6(IPPROTO_TCP, v6(1), v6(2), &tcp(1, 2, 0));
        let err = decode(229, &ip6[..39]).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed { layer: "ipv6", .. }));
    }

    #[test]
    fn truncated_transport_keeps_addresses() {
        let ip = tcp_v4_packet();
        // Only 3 bytes of TCP: no ports, no flags, but still Ok.
        let info = net(101, &ip[..23]);
        assert_eq!(
            (
                info.src,
                info.proto,
                info.src_port,
                info.dst_port,
                info.tcp_flags
            ),
            (v4(SRC4), 6, 0, 0, 0)
        );
        // Ports but not the flags byte.
        let info = net(101, &ip[..26]);
        assert_eq!(
            (info.src_port, info.dst_port, info.tcp_flags),
            (40000, 22, 0)
        );
        // ICMP with only the type byte.
        let icmp = ipv4(IPPROTO_ICMP, 0, 1, &[], &[8]);
        assert_eq!(net(101, &icmp).icmp, None);
    }

    // ----- IPv6 ------------------------------------------------------------------

    /// Hop-by-hop (8 bytes) -> fragment header -> `inner`.
    fn v6_hbh_fragment(frag_units: u16, more: bool, inner_proto: u8, inner: &[u8]) -> Vec<u8> {
        let mut rest = vec![IPPROTO_FRAGMENT, 0, 1, 4, 0, 0, 0, 0]; // HBH: PadN
        let offset_flags = (frag_units << 3) | u16::from(more);
        rest.extend_from_slice(&[inner_proto, 0]);
        rest.extend_from_slice(&offset_flags.to_be_bytes());
        rest.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        rest.extend_from_slice(inner);
        ipv6(IPPROTO_HOPOPTS, v6(1), v6(2), &rest)
    }

    #[test]
    fn ipv6_hop_by_hop_and_fragments() {
        let payload = udp(7000, 8000, &[0; 40]);
        let first = v6_hbh_fragment(0, true, IPPROTO_UDP, &payload[..16]);
        let info = net(229, &first);
        assert_eq!(info.proto, IPPROTO_UDP);
        assert_eq!(
            info.fragment,
            Some(Fragment {
                id: 0x1234_5678,
                offset: 0,
                more_fragments: true
            })
        );
        assert_eq!(
            (info.src_port, info.dst_port, info.ip_flags),
            (7000, 8000, 0)
        );
        let later = v6_hbh_fragment(2, false, IPPROTO_UDP, &payload[16..]);
        let info = net(229, &later);
        assert_eq!(info.proto, IPPROTO_UDP);
        assert_eq!(
            info.fragment,
            Some(Fragment {
                id: 0x1234_5678,
                offset: 16,
                more_fragments: false
            })
        );
        assert_eq!((info.src_port, info.dst_port), (0, 0));
        // Atomic fragment: a whole packet with a fragment header.
        let atomic = v6_hbh_fragment(0, false, IPPROTO_UDP, &payload);
        let info = net(229, &atomic);
        assert_eq!((info.fragment, info.dst_port), (None, 8000));
    }

    #[test]
    fn ipv6_routing_destination_and_ah() {
        let mut rest = vec![IPPROTO_DSTOPTS, 0, 0, 0, 0, 0, 0, 0]; // routing, 8 bytes
        rest.extend_from_slice(&[IPPROTO_AH, 0, 1, 4, 0, 0, 0, 0]); // dest opts
        rest.extend_from_slice(&[IPPROTO_TCP, 4, 0, 0]); // AH: (4+2)*4 = 24 bytes
        rest.extend_from_slice(&[0; 20]);
        rest.extend(tcp(443, 50000, 0x10));
        let info = net(229, &ipv6(IPPROTO_ROUTING, v6(1), v6(2), &rest));
        assert_eq!(
            (info.proto, info.src_port, info.dst_port, info.tcp_flags),
            (6, 443, 50000, 0x10)
        );
        // Cut inside the AH: addresses, the AH's number, no ports.
        let cut = ipv6(IPPROTO_ROUTING, v6(1), v6(2), &rest[..20]);
        let info = net(229, &cut);
        assert_eq!(
            (info.proto, info.src_port, info.dst, info.fragment),
            (IPPROTO_AH, 0, IpAddr::V6(Ipv6Addr::from(v6(2))), None)
        );
    }

    // ----- ICMP ------------------------------------------------------------------

    #[test]
    fn icmpv4_echo_and_port_unreachable_quoting_udp() {
        let echo = ipv4(IPPROTO_ICMP, 0, 1, &[], &[8, 0, 0, 0, 0, 1, 0, 1, b'p']);
        let info = net(101, &echo);
        assert_eq!((info.src_port, info.dst_port), (0, 0));
        assert_eq!(
            info.icmp,
            Some(IcmpInfo {
                icmp_type: 8,
                code: 0,
                is_error: false,
                quoted: None
            })
        );

        // DST4 sent UDP 33434 -> SRC4:53... the error comes back from SRC4.
        let original = ipv4(IPPROTO_UDP, 0, 7, &[], &udp(33434, 53, &[0; 40]));
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&original[..28]); // IP header + 8 bytes, as RFC 792 asks
        let info = net(
            1,
            &ethernet(ETHERTYPE_IPV4, &ipv4(IPPROTO_ICMP, 0, 2, &[], &icmp)),
        );
        assert_eq!((info.proto, info.src_port, info.dst_port), (1, 0, 0));
        let icmp_info = info.icmp.unwrap();
        assert_eq!(
            (icmp_info.icmp_type, icmp_info.code, icmp_info.is_error),
            (3, 3, true)
        );
        assert_eq!(
            icmp_info.quoted,
            Some(QuotedFlow {
                src: v4(SRC4),
                dst: v4(DST4),
                proto: 17,
                src_port: 33434,
                dst_port: 53
            })
        );
        // Quote cut inside the ports: flow without ports. Cut inside the IP header: none.
        icmp.truncate(8 + 22);
        let info = net(101, &ipv4(IPPROTO_ICMP, 0, 2, &[], &icmp));
        assert_eq!(
            info.icmp.unwrap().quoted.map(|q| (q.proto, q.src_port)),
            Some((17, 0))
        );
        icmp.truncate(8 + 12);
        let info = net(101, &ipv4(IPPROTO_ICMP, 0, 2, &[], &icmp));
        assert_eq!(info.icmp.unwrap().quoted, None);
        assert!(info.icmp.unwrap().is_error);
    }

    #[test]
    fn icmpv6_port_unreachable_quoting_udp() {
        let original = ipv6(IPPROTO_UDP, v6(2), v6(9), &udp(40001, 123, &[0; 48]));
        let mut icmp = vec![1, 4, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&original);
        let info = net(229, &ipv6(IPPROTO_ICMPV6, v6(9), v6(2), &icmp));
        assert_eq!((info.proto, info.src_port), (IPPROTO_ICMPV6, 0));
        let icmp_info = info.icmp.unwrap();
        assert_eq!(
            (icmp_info.icmp_type, icmp_info.code, icmp_info.is_error),
            (1, 4, true)
        );
        assert_eq!(
            icmp_info.quoted,
            Some(QuotedFlow {
                src: IpAddr::V6(Ipv6Addr::from(v6(2))),
                dst: IpAddr::V6(Ipv6Addr::from(v6(9))),
                proto: 17,
                src_port: 40001,
                dst_port: 123,
            })
        );
        // Echo request is not an error.
        let echo = ipv6(IPPROTO_ICMPV6, v6(1), v6(2), &[128, 0, 0, 0, 0, 1, 0, 1]);
        let icmp_info = net(229, &echo).icmp.unwrap();
        assert_eq!(
            (icmp_info.icmp_type, icmp_info.is_error, icmp_info.quoted),
            (128, false, None)
        );
    }

    #[test]
    fn never_panics_on_prefixes_and_noise() {
        // Every prefix of a set of valid frames, under every link type, plus
        // pseudo-random bytes: errors are fine, panics are not.
        let mut frames = vec![
            ethernet(ETHERTYPE_IPV4, &tcp_v4_packet()),
            ethernet(
                ETHERTYPE_IPV6,
                &v6_hbh_fragment(0, true, IPPROTO_UDP, &udp(1, 2, &[0; 8])),
            ),
        ];
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend(ipv6(
            IPPROTO_HOPOPTS,
            v6(1),
            v6(2),
            &[IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0, 0, 1, 0, 2],
        ));
        frames.push(ipv4(IPPROTO_ICMP, 0, 1, &[], &icmp));
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200 {
            let noise: Vec<u8> = (0..80)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            frames.push(noise);
        }
        for frame in &frames {
            for end in 0..=frame.len() {
                for lt in [0, 1, 12, 14, 101, 108, 113, 228, 229, 276] {
                    let _ = decode(lt, &frame[..end]);
                }
            }
        }
    }
}
