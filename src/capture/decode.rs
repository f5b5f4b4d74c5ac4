//! Packet decoding: link layer to transport ports, without allocation or panics.
//!
//! SKELETON: to be implemented.

use std::net::IpAddr;

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
    pub src_port: u16,
    pub dst_port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpInfo {
    pub icmp_type: u8,
    pub code: u8,
    /// True for error messages (v4: 3, 4, 5, 11, 12; v6: 1-4).
    pub is_error: bool,
    pub quoted: Option<QuotedFlow>,
}

/// Network and transport summary of an IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetInfo {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Transport protocol number (after IPv6 extension headers).
    pub proto: u8,
    /// 0 when the protocol has no ports or this is a non-first fragment.
    pub src_port: u16,
    pub dst_port: u16,
    /// TCP flags byte, 0 when not TCP.
    pub tcp_flags: u8,
    /// IPv4 flags (bit 1 DF = 0x2, bit 0 MF = 0x1 as in the 3-bit field >> 13), 0 for IPv6.
    pub ip_flags: u8,
    pub fragment: Option<Fragment>,
    pub icmp: Option<IcmpInfo>,
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
    #[error("malformed {layer} header: {reason}")]
    Malformed { layer: &'static str, reason: String },
}

pub fn decode(_link_type: u32, _data: &[u8]) -> Result<PacketInfo, DecodeError> {
    todo!()
}
