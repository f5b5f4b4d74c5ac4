//! What p0f 3.09b reads from one TCP packet: the fields of its signature
//! (`ver:ittl:olen:mss:wsize,scale:olayout:quirks:pclass`), taken from the
//! IP and TCP headers the capture decoder located.
//!
//! Pure and allocation-free: [`PacketSig::parse`] borrows the frame and
//! fills a fixed-size value. It applies p0f's own sanity rules (fragments,
//! packets cut by the snaplen, IPv6 extension headers and silly flag
//! combinations are not fingerprinted) so that the same packets are
//! fingerprinted as p0f would.

use crate::capture::NetInfo;

/// Quirk bits (p0f's `QUIRK_*`), in the order p0f prints them.
pub mod quirk {
    pub const DF: u32 = 1 << 0;
    pub const NZ_ID: u32 = 1 << 1;
    pub const ZERO_ID: u32 = 1 << 2;
    pub const ECN: u32 = 1 << 3;
    pub const NZ_MBZ: u32 = 1 << 4;
    pub const FLOW: u32 = 1 << 5;
    pub const ZERO_SEQ: u32 = 1 << 6;
    pub const NZ_ACK: u32 = 1 << 7;
    pub const ZERO_ACK: u32 = 1 << 8;
    pub const NZ_URG: u32 = 1 << 9;
    pub const URG: u32 = 1 << 10;
    pub const PUSH: u32 = 1 << 11;
    pub const OPT_ZERO_TS1: u32 = 1 << 12;
    pub const OPT_NZ_TS2: u32 = 1 << 13;
    pub const OPT_EOL_NZ: u32 = 1 << 14;
    pub const OPT_EXWS: u32 = 1 << 15;
    pub const OPT_BAD: u32 = 1 << 16;

    /// Names as p0f prints them, bit order.
    pub const NAMES: [(u32, &str); 17] = [
        (DF, "df"),
        (NZ_ID, "id+"),
        (ZERO_ID, "id-"),
        (ECN, "ecn"),
        (NZ_MBZ, "0+"),
        (FLOW, "flow"),
        (ZERO_SEQ, "seq-"),
        (NZ_ACK, "ack+"),
        (ZERO_ACK, "ack-"),
        (NZ_URG, "uptr+"),
        (URG, "urgf+"),
        (PUSH, "pushf+"),
        (OPT_ZERO_TS1, "ts1-"),
        (OPT_NZ_TS2, "ts2+"),
        (OPT_EOL_NZ, "opt+"),
        (OPT_EXWS, "exws"),
        (OPT_BAD, "bad"),
    ];
}

// TCP option kinds.
pub const OPT_EOL: u8 = 0;
pub const OPT_NOP: u8 = 1;
pub const OPT_MSS: u8 = 2;
pub const OPT_WS: u8 = 3;
pub const OPT_SACKOK: u8 = 4;
pub const OPT_SACK: u8 = 5;
pub const OPT_TS: u8 = 8;

/// p0f's MAX_TCP_OPT: options beyond this many are not recorded.
pub const MAX_TCP_OPT: usize = 24;

// TCP flags.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;
pub const ECE: u8 = 0x40;
pub const CWR: u8 = 0x80;

/// The signature-relevant fields of one TCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketSig {
    /// 4 or 6.
    pub ip_ver: u8,
    pub ttl: u8,
    /// IPv4 options length (always 0 for IPv6, as in p0f).
    pub ip_opt_len: u8,
    /// DSCP (the TOS byte without its ECN bits).
    pub tos: u8,
    /// 0 when there is no MSS option.
    pub mss: u16,
    pub win: u16,
    /// 0 when there is no window scale option.
    pub wscale: u8,
    opt_layout: [u8; MAX_TCP_OPT],
    opt_cnt: u8,
    /// Bytes after an EOL option.
    pub eol_pad: u8,
    pub quirks: u32,
    pub has_payload: bool,
    /// IP plus TCP header bytes.
    pub tot_hdr: u16,
    /// Own timestamp (0 when absent).
    pub ts1: u32,
    /// Flags & (SYN | ACK | FIN | RST).
    pub tcp_type: u8,
    pub seq: u32,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

impl PacketSig {
    /// The TCP option kinds in order, as p0f records them.
    pub fn options(&self) -> &[u8] {
        self.opt_layout
            .get(..usize::from(self.opt_cnt))
            .unwrap_or_default()
    }

    /// The TCP flags of a decoded TCP packet without parsing it further.
    pub fn tcp_type(net: &NetInfo) -> u8 {
        net.tcp_flags & (SYN | ACK | FIN | RST)
    }

    /// Reads the signature of a decoded TCP packet; `None` when p0f would
    /// not look at it (not TCP, fragment, cut by the snaplen, IPv6 with
    /// extension headers, or a nonsensical flag combination).
    pub fn parse(frame: &[u8], net: &NetInfo) -> Option<PacketSig> {
        if net.proto != 6 || net.fragment.is_some() {
            return None;
        }
        let ip = frame.get(net.ip_header?.range())?;
        let tcp = frame.get(net.transport?.range())?;
        let mut quirks = 0u32;
        let (ip_ver, ttl, ip_opt_len, tos) = match ip.first()? >> 4 {
            4 => {
                let hdr_len = usize::from(ip.first()? & 0x0f) * 4;
                if hdr_len < 20 || hdr_len != ip.len() {
                    return None;
                }
                let tot_len = usize::from(be16(ip, 2)?);
                // p0f refuses packets the capture cut short.
                if tot_len > ip.len() + tcp.len() {
                    return None;
                }
                let flags_off = be16(ip, 6)?;
                if flags_off & !(0x4000 | 0x8000) != 0 {
                    return None;
                }
                let tos_ecn = *ip.get(1)?;
                if tos_ecn & 0x03 != 0 {
                    quirks |= quirk::ECN;
                }
                if flags_off & 0x8000 != 0 {
                    quirks |= quirk::NZ_MBZ;
                }
                let id = be16(ip, 4)?;
                if flags_off & 0x4000 != 0 {
                    quirks |= quirk::DF;
                    if id != 0 {
                        quirks |= quirk::NZ_ID;
                    }
                } else if id == 0 {
                    quirks |= quirk::ZERO_ID;
                }
                (
                    4,
                    *ip.get(8)?,
                    u8::try_from(hdr_len - 20).ok()?,
                    tos_ecn >> 2,
                )
            }
            6 => {
                // p0f reads only TCP directly after the fixed header.
                if ip.len() != 40 || *ip.get(6)? != 6 {
                    return None;
                }
                let tot_len = usize::from(be16(ip, 4)?) + 40;
                if tot_len > ip.len() + tcp.len() {
                    return None;
                }
                let ver_tos = be32(ip, 0)?;
                if ver_tos & 0xF_FFFF != 0 {
                    quirks |= quirk::FLOW;
                }
                if (ver_tos >> 20) & 0x03 != 0 {
                    quirks |= quirk::ECN;
                }
                (6, *ip.get(7)?, 0, ((ver_tos >> 22) & 0x3f) as u8)
            }
            _ => return None,
        };
        let doff = usize::from(tcp.get(12)? >> 4) * 4;
        if doff < 20 || doff > tcp.len() {
            return None;
        }
        let flags = *tcp.get(13)?;
        let tcp_type = flags & (SYN | ACK | FIN | RST);
        if (flags & SYN != 0 && flags & (FIN | RST) != 0)
            || (flags & FIN != 0 && flags & RST != 0)
            || tcp_type == 0
        {
            return None;
        }
        let seq = be32(tcp, 4)?;
        if flags & (ECE | CWR) != 0 || tcp.get(12)? & 0x0f != 0 {
            quirks |= quirk::ECN;
        }
        if seq == 0 {
            quirks |= quirk::ZERO_SEQ;
        }
        let ack_bytes = tcp.get(8..12)?;
        if flags & ACK != 0 {
            if ack_bytes.iter().all(|b| *b == 0) {
                quirks |= quirk::ZERO_ACK;
            }
        } else if flags & RST == 0 && ack_raw_low_bit(ack_bytes) {
            quirks |= quirk::NZ_ACK;
        }
        if flags & URG != 0 {
            quirks |= quirk::URG;
        } else if be16(tcp, 18)? != 0 {
            quirks |= quirk::NZ_URG;
        }
        if flags & PSH != 0 {
            quirks |= quirk::PUSH;
        }
        let mut sig = PacketSig {
            ip_ver,
            ttl,
            ip_opt_len,
            tos,
            mss: 0,
            win: be16(tcp, 14)?,
            wscale: 0,
            opt_layout: [0; MAX_TCP_OPT],
            opt_cnt: 0,
            eol_pad: 0,
            quirks,
            has_payload: tcp.len() > doff,
            tot_hdr: u16::try_from(ip.len() + doff).ok()?,
            ts1: 0,
            tcp_type,
            seq,
        };
        sig.parse_options(tcp.get(20..doff)?);
        Some(sig)
    }

    /// p0f's option walk: records the layout, MSS, scale and timestamp, and
    /// the option quirks; a malformed option stops the walk with `bad`.
    fn parse_options(&mut self, opts: &[u8]) {
        let end = opts.len();
        let mut at = 0usize;
        while at < end && usize::from(self.opt_cnt) < MAX_TCP_OPT {
            let kind = opts[at];
            self.opt_layout[usize::from(self.opt_cnt)] = kind;
            self.opt_cnt += 1;
            at += 1;
            let len_byte = opts.get(at).copied();
            match kind {
                OPT_EOL => {
                    self.eol_pad = u8::try_from(end - at).unwrap_or(u8::MAX);
                    // p0f stops one byte past the first non-zero padding
                    // byte and flags `opt+` unless that is the end.
                    if let Some(i) = opts[at..].iter().position(|b| *b != 0)
                        && at + i + 1 != end
                    {
                        self.quirks |= quirk::OPT_EOL_NZ;
                    }
                    at = end;
                }
                OPT_NOP => {}
                OPT_MSS => {
                    if at + 3 > end {
                        self.quirks |= quirk::OPT_BAD;
                        return;
                    }
                    if len_byte != Some(4) {
                        self.quirks |= quirk::OPT_BAD;
                    }
                    self.mss = be16(opts, at + 1).unwrap_or(0);
                    at += 3;
                }
                OPT_WS => {
                    if at + 2 > end {
                        self.quirks |= quirk::OPT_BAD;
                        return;
                    }
                    if len_byte != Some(3) {
                        self.quirks |= quirk::OPT_BAD;
                    }
                    self.wscale = opts[at + 1];
                    if self.wscale > 14 {
                        self.quirks |= quirk::OPT_EXWS;
                    }
                    at += 2;
                }
                OPT_SACKOK => {
                    if at + 1 > end {
                        self.quirks |= quirk::OPT_BAD;
                        return;
                    }
                    if len_byte != Some(2) {
                        self.quirks |= quirk::OPT_BAD;
                    }
                    at += 1;
                }
                OPT_TS => {
                    if at + 9 > end {
                        self.quirks |= quirk::OPT_BAD;
                        return;
                    }
                    if len_byte != Some(10) {
                        self.quirks |= quirk::OPT_BAD;
                    }
                    self.ts1 = be32(opts, at + 1).unwrap_or(0);
                    if self.ts1 == 0 {
                        self.quirks |= quirk::OPT_ZERO_TS1;
                    }
                    if self.tcp_type == SYN && be32(opts, at + 5).unwrap_or(0) != 0 {
                        self.quirks |= quirk::OPT_NZ_TS2;
                    }
                    at += 9;
                }
                _ => {
                    // SACK (10..=34 bytes) and unknown options (2..=40) carry
                    // their length; anything out of range ends the walk.
                    let (lo, hi) = if kind == OPT_SACK { (10, 34) } else { (2, 40) };
                    match len_byte {
                        Some(len)
                            if (lo..=hi).contains(&len) && at - 1 + usize::from(len) <= end =>
                        {
                            at += usize::from(len) - 1;
                        }
                        _ => {
                            self.quirks |= quirk::OPT_BAD;
                            return;
                        }
                    }
                }
            }
        }
        if at != end {
            self.quirks |= quirk::OPT_BAD;
        }
    }
}

/// p0f 3.09b tests the acknowledgment field of a packet without ACK as
/// `RD32(tcp->ack) & !(flags & RST)`: a bitwise AND with 1 of the field
/// read in host order, so only the lowest bit of the first byte on the
/// little-endian hosts it runs on counts. Kept, so that `ack+` means what
/// p0f.fp's signatures were collected with.
fn ack_raw_low_bit(ack: &[u8]) -> bool {
    ack.first().is_some_and(|b| b & 1 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::decode;

    /// Raw IPv4 + TCP with the given options and flags.
    fn packet(ttl: u8, df: bool, id: u16, flags: u8, win: u16, opts: &[u8]) -> Vec<u8> {
        let doff = 20 + opts.len();
        let total = 20 + doff;
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&(if df { 0x4000u16 } else { 0 }).to_be_bytes());
        p.extend_from_slice(&[ttl, 6, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2]);
        p.extend_from_slice(&[0x30, 0x39, 0, 80]);
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(&0u32.to_be_bytes());
        p.push(((doff / 4) as u8) << 4);
        p.push(flags);
        p.extend_from_slice(&win.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0]);
        p.extend_from_slice(opts);
        p
    }

    fn sig(p: &[u8]) -> Option<PacketSig> {
        let info = decode(101, p).unwrap();
        PacketSig::parse(p, &info.net.unwrap())
    }

    #[test]
    fn linux_syn() {
        let opts = [
            2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 7, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        let s = sig(&packet(61, true, 1234, SYN, 64240, &opts)).unwrap();
        assert_eq!(
            (s.ip_ver, s.ttl, s.mss, s.win, s.wscale, s.ts1),
            (4, 61, 1460, 64240, 7, 7)
        );
        assert_eq!(s.options(), [OPT_MSS, OPT_SACKOK, OPT_TS, OPT_NOP, OPT_WS]);
        assert_eq!(s.quirks, quirk::DF | quirk::NZ_ID);
        assert!(!s.has_payload);
        assert_eq!(s.tot_hdr, 60);
    }

    #[test]
    fn option_quirks() {
        // EOL followed by non-zero padding.
        let s = sig(&packet(64, false, 0, SYN, 1, &[2, 4, 1, 0, 0, 1, 0, 0])).unwrap();
        // (a non-zero byte at the very end is not flagged, as in p0f)
        assert_eq!(s.options(), [OPT_MSS, OPT_EOL]);
        assert_eq!(s.eol_pad, 3);
        assert_eq!(s.quirks, quirk::ZERO_ID | quirk::OPT_EOL_NZ);
        // A window scale above 14, and an option running past the header.
        let s = sig(&packet(64, true, 0, SYN, 1, &[3, 3, 15, 8])).unwrap();
        assert_eq!(s.quirks, quirk::DF | quirk::OPT_EXWS | quirk::OPT_BAD);
        // Silly flags are not fingerprinted.
        assert!(sig(&packet(64, true, 0, SYN | FIN, 1, &[])).is_none());
    }
}
