//! IP networks as operators write them: `ADDR` (one host) or `ADDR/PREFIX`,
//! spaces around either part allowed. One parser for every place that takes
//! a network: `capture.honeypot_nets` and a peer's `allow` list in
//! lumpy.toml, `--host` and `--allow` on the command line, the web UI's `ip`
//! filter and pcap_api's `net`/`snet`/`dnet`. The networks themselves are
//! `ipnet::IpNet` (containment, display). Pure; no I/O.

use std::net::IpAddr;

pub use ipnet::IpNet;

/// Why a network does not parse. Callers word it for their own parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    #[error("'{0}' is not an IP address")]
    Address(String),
    #[error("prefix length must be 0 to {max}")]
    Prefix { max: u8 },
}

/// Parses `ADDR` or `ADDR/PREFIX`; a bare address is a host network (/32 or
/// /128). Host bits after the prefix are kept (`10.0.0.1/8` is accepted and
/// contains what `10.0.0.0/8` contains).
pub fn parse(s: &str) -> Result<IpNet, NetError> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a.trim(), Some(p.trim())),
        None => (s.trim(), None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| NetError::Address(addr.to_string()))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or(NetError::Prefix { max })?,
    };
    IpNet::new(ip, prefix).map_err(|_| NetError::Prefix { max })
}

/// Inclusive bounds of a network as the mirror stores addresses: IPv4 as
/// integers, IPv6 as 16 big-endian bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    V4(u32, u32),
    V6([u8; 16], [u8; 16]),
}

/// The first and last address of `addr/prefix` (host bits of `addr`
/// ignored), for range scans of the mirror's address columns.
pub fn range(addr: IpAddr, prefix: u8) -> Result<Range, NetError> {
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let net = IpNet::new(addr, prefix).map_err(|_| NetError::Prefix { max })?;
    Ok(match net {
        IpNet::V4(n) => Range::V4(n.network().into(), n.broadcast().into()),
        IpNet::V6(n) => Range::V6(n.network().octets(), n.broadcast().octets()),
    })
}

/// Whether any of `nets` contains `ip` (an IPv4 address is never in an IPv6
/// network, nor the reverse).
pub fn any_contains(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nets() {
        let n = parse("192.0.2.0/24").unwrap();
        assert!(n.contains(&ip("192.0.2.200")));
        assert!(!n.contains(&ip("192.0.3.1")));
        let n6 = parse("2001:db8:1::/64").unwrap();
        assert!(n6.contains(&ip("2001:db8:1::5")));
        assert!(!n6.contains(&ip("2001:db8:2::5")));
        assert!(!n6.contains(&ip("192.0.2.1")));
        assert!(!n.contains(&ip("::ffff:192.0.2.1")));
        assert!(parse("0.0.0.0/0").unwrap().contains(&ip("8.8.8.8")));
        assert!(parse("::/0").unwrap().contains(&ip("2001:db8::1")));
    }

    #[test]
    fn ranges() {
        let r = |s: &str, p| range(ip(s), p).unwrap();
        assert_eq!(r("10.1.2.3", 8), Range::V4(0x0a00_0000, 0x0aff_ffff));
        assert_eq!(r("10.1.2.3", 32), Range::V4(0x0a01_0203, 0x0a01_0203));
        assert_eq!(r("10.1.2.3", 0), Range::V4(0, u32::MAX));
        assert_eq!(r("::", 0), Range::V6([0; 16], [0xff; 16]));
        let Range::V6(lo, hi) = r("2001:db8::1", 32) else {
            panic!("v6")
        };
        assert_eq!(lo[..4], [0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(lo[4..], [0; 12]);
        assert_eq!(hi[4..], [0xff; 12]);
        assert_eq!(range(ip("10.0.0.0"), 33), Err(NetError::Prefix { max: 32 }));
        assert_eq!(range(ip("::"), 129), Err(NetError::Prefix { max: 128 }));
    }

    /// The edge cases where the four hand-written copies (flows, web::api,
    /// cli::query, pcap_service) were compared: the answers kept.
    #[test]
    fn edge_cases() {
        // A bare address is a host.
        let h = parse("192.0.2.7").unwrap();
        assert_eq!((h.addr(), h.prefix_len()), (ip("192.0.2.7"), 32));
        assert_eq!(parse("2001:db8::1").unwrap().prefix_len(), 128);
        // Host bits are kept, containment is by the prefix.
        let n = parse("10.1.2.3/8").unwrap();
        assert_eq!((n.addr(), n.prefix_len()), (ip("10.1.2.3"), 8));
        assert!(n.contains(&ip("10.200.0.1")));
        // Prefix bounds per family.
        assert_eq!(parse("10.0.0.0/33"), Err(NetError::Prefix { max: 32 }));
        assert_eq!(parse("::/129"), Err(NetError::Prefix { max: 128 }));
        assert!(parse("::/128").is_ok());
        assert_eq!(parse("10.0.0.0/"), Err(NetError::Prefix { max: 32 }));
        assert_eq!(parse("10.0.0.0/x"), Err(NetError::Prefix { max: 32 }));
        assert_eq!(parse("10.0.0.0/-1"), Err(NetError::Prefix { max: 32 }));
        // Spaces around the parts (lumpy.toml lists were always read so).
        assert_eq!(parse(" 10.0.0.0 / 8 ").unwrap().prefix_len(), 8);
        // Not addresses.
        assert_eq!(parse("host/8"), Err(NetError::Address("host".into())));
        assert_eq!(parse(""), Err(NetError::Address(String::new())));
        assert!(parse("10.0.0.0/8/8").is_err());
        assert!(parse("[::1]").is_err());
        // Display is ADDR/PREFIX, as pcap_api queries are re-sent.
        assert_eq!(parse("2001:db8::/32").unwrap().to_string(), "2001:db8::/32");
    }
}
