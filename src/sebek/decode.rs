//! Pure parsing of one sebek v3 UDP payload: the 56-byte header and the
//! record after it (reference: walleye-hflow.md §5). No I/O, no allocation,
//! no panics: every field is read with bounds checks and every defect is a
//! typed [`SebekError`].

/// Length of the packed `sbk_h` header.
pub const HEADER_LEN: usize = 56;
/// The header up to and including `com`: what a record cut by a capture
/// must still hold to be kept (its `length` is then known from the UDP
/// length, see [`parse_captured`]).
pub const CUT_HEADER_LEN: usize = 52;
/// Length of the packed `sbk_sock_rec` socket record.
pub const SOCKET_RECORD_LEN: usize = 15;
/// The only version this decoder (and hflow2) accepts.
pub const VERSION: u16 = 3;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SebekError {
    #[error("sebek payload of {have} bytes is shorter than the 56-byte header")]
    Short { have: usize },
    #[error("sebek version {0}, only 3 is understood")]
    BadVersion(u16),
    #[error("sebek record type {0} is unknown")]
    UnknownType(u16),
    #[error("sebek record claims {length} data bytes, the packet holds {available}")]
    LengthPastEnd { length: u32, available: usize },
    #[error("sebek socket record of {have} bytes, 15 expected")]
    BadSocketRecord { have: usize },
}

/// Record type (`sbk_h.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Read,
    Write,
    Socket,
    Open,
}

impl RecordKind {
    fn from_wire(t: u16) -> Result<Self, SebekError> {
        match t {
            0 => Ok(RecordKind::Read),
            1 => Ok(RecordKind::Write),
            2 => Ok(RecordKind::Socket),
            3 => Ok(RecordKind::Open),
            other => Err(SebekError::UnknownType(other)),
        }
    }

    pub fn to_wire(self) -> u16 {
        match self {
            RecordKind::Read => 0,
            RecordKind::Write => 1,
            RecordKind::Socket => 2,
            RecordKind::Open => 3,
        }
    }
}

/// The sebek header, all fields in host order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub magic: u32,
    pub version: u16,
    pub kind: RecordKind,
    pub counter: u32,
    pub time_sec: u32,
    pub time_usec: u32,
    pub parent_pid: u32,
    pub pid: u32,
    pub uid: u32,
    pub fd: u32,
    pub inode: u32,
    /// `current->comm`, NUL padded.
    pub com: [u8; 12],
    pub length: u32,
}

impl Header {
    /// The command name: `com` up to its first NUL.
    pub fn command(&self) -> &[u8] {
        let end = self.com.iter().position(|b| *b == 0).unwrap_or(12);
        self.com.get(..end).unwrap_or_default()
    }
}

/// One decoded record: its header and `length` data bytes (fewer when the
/// capture cut the datagram: then `truncated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SebekRecord<'a> {
    pub header: Header,
    pub data: &'a [u8],
    /// The capture's snaplen cut the record: `data` holds the bytes that
    /// were captured, fewer than `header.length`.
    pub truncated: bool,
}

/// The 15-byte socket record: `dip u32, dport u16, sip u32, sport u16,
/// call u16, proto u8`; `sip`/`sport` are the local end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketRecord {
    pub remote_ip: u32,
    pub remote_port: u16,
    pub local_ip: u32,
    pub local_port: u16,
    pub call: u16,
    pub proto: u8,
}

impl SocketRecord {
    pub fn parse(data: &[u8]) -> Result<Self, SebekError> {
        let bad = || SebekError::BadSocketRecord { have: data.len() };
        if data.len() != SOCKET_RECORD_LEN {
            return Err(bad());
        }
        Ok(SocketRecord {
            remote_ip: be32(data, 0).ok_or_else(bad)?,
            remote_port: be16(data, 4).ok_or_else(bad)?,
            local_ip: be32(data, 6).ok_or_else(bad)?,
            local_port: be16(data, 10).ok_or_else(bad)?,
            call: be16(data, 12).ok_or_else(bad)?,
            proto: *data.get(14).ok_or_else(bad)?,
        })
    }

    /// The fields of a socket record cut by the capture: those wholly
    /// present are read, the rest are 0.
    pub fn parse_cut(data: &[u8]) -> Self {
        SocketRecord {
            remote_ip: be32(data, 0).unwrap_or(0),
            remote_port: be16(data, 4).unwrap_or(0),
            local_ip: be32(data, 6).unwrap_or(0),
            local_port: be16(data, 10).unwrap_or(0),
            call: be16(data, 12).unwrap_or(0),
            proto: data.get(14).copied().unwrap_or(0),
        }
    }

    pub fn encode(&self) -> [u8; SOCKET_RECORD_LEN] {
        let mut out = [0u8; SOCKET_RECORD_LEN];
        out[0..4].copy_from_slice(&self.remote_ip.to_be_bytes());
        out[4..6].copy_from_slice(&self.remote_port.to_be_bytes());
        out[6..10].copy_from_slice(&self.local_ip.to_be_bytes());
        out[10..12].copy_from_slice(&self.local_port.to_be_bytes());
        out[12..14].copy_from_slice(&self.call.to_be_bytes());
        out[14] = self.proto;
        out
    }
}

fn be16(d: &[u8], at: usize) -> Option<u16> {
    let b = d.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

fn be32(d: &[u8], at: usize) -> Option<u32> {
    let b = d.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Parses the UDP payload of one sebek packet. Bytes after the record's data
/// (padding) are ignored.
pub fn parse(payload: &[u8]) -> Result<SebekRecord<'_>, SebekError> {
    parse_captured(payload, None)
}

/// Parses a sebek payload that a capture may have cut. `wire_len` is the
/// payload's length on the wire (the UDP length less its 8-byte header);
/// when it exceeds the bytes captured, the snaplen cut the record: it keeps
/// its header fields and the data bytes captured and is marked `truncated`,
/// as Wireshark still decodes such records. A cut record needs its header up
/// to `com` (`CUT_HEADER_LEN`); its `length`, when cut too, is the wire
/// length less the header. Uncut, a record whose length runs past the
/// payload is malformed (`LengthPastEnd`).
pub fn parse_captured(
    payload: &[u8],
    wire_len: Option<usize>,
) -> Result<SebekRecord<'_>, SebekError> {
    let cut = wire_len.is_some_and(|w| w > payload.len());
    let short = SebekError::Short {
        have: payload.len(),
    };
    let field = |at| be32(payload, at).ok_or_else(|| short.clone());
    let length = match (be32(payload, 52), wire_len) {
        (Some(l), _) => l,
        (None, Some(w)) if cut && payload.len() >= CUT_HEADER_LEN => {
            u32::try_from(w.saturating_sub(HEADER_LEN)).unwrap_or(u32::MAX)
        }
        _ => return Err(short),
    };
    let version = be16(payload, 4).ok_or_else(|| short.clone())?;
    if version != VERSION {
        return Err(SebekError::BadVersion(version));
    }
    let kind = RecordKind::from_wire(be16(payload, 6).ok_or_else(|| short.clone())?)?;
    let mut com = [0u8; 12];
    com.copy_from_slice(payload.get(40..52).ok_or_else(|| short.clone())?);
    let header = Header {
        magic: field(0)?,
        version,
        kind,
        counter: field(8)?,
        time_sec: field(12)?,
        time_usec: field(16)?,
        parent_pid: field(20)?,
        pid: field(24)?,
        uid: field(28)?,
        fd: field(32)?,
        inode: field(36)?,
        com,
        length,
    };
    let available = payload.len().saturating_sub(HEADER_LEN);
    let whole = usize::try_from(length)
        .ok()
        .and_then(|n| payload.get(HEADER_LEN..HEADER_LEN.checked_add(n)?));
    match whole {
        Some(data) => Ok(SebekRecord {
            header,
            data,
            truncated: false,
        }),
        None if cut => Ok(SebekRecord {
            header,
            data: payload.get(HEADER_LEN..).unwrap_or_default(),
            truncated: true,
        }),
        None => Err(SebekError::LengthPastEnd { length, available }),
    }
}

/// Encodes a header and its data as a sebek UDP payload (`length` is taken
/// from `data`). The inverse of [`parse`]; used by the generator and tests.
pub fn encode(h: &Header, data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&h.magic.to_be_bytes());
    out.extend_from_slice(&h.version.to_be_bytes());
    out.extend_from_slice(&h.kind.to_wire().to_be_bytes());
    for v in [
        h.counter,
        h.time_sec,
        h.time_usec,
        h.parent_pid,
        h.pid,
        h.uid,
        h.fd,
        h.inode,
    ] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&h.com);
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: RecordKind) -> Header {
        let mut com = [0u8; 12];
        com[..4].copy_from_slice(b"bash");
        Header {
            magic: 0xd0d0_d0d0,
            version: 3,
            kind,
            counter: 7,
            time_sec: 1_100_000_000,
            time_usec: 5,
            parent_pid: 1,
            pid: 4242,
            uid: 0,
            fd: 0,
            inode: 99,
            com,
            length: 0,
        }
    }

    #[test]
    fn round_trip_read() {
        let mut buf = Vec::new();
        encode(&header(RecordKind::Read), b"ls -la\n", &mut buf);
        assert_eq!(buf.len(), HEADER_LEN + 7);
        let r = parse(&buf).unwrap();
        assert_eq!(r.data, b"ls -la\n");
        assert_eq!(r.header.length, 7);
        assert_eq!(r.header.command(), b"bash");
        assert_eq!(r.header.pid, 4242);
        assert_eq!(r.header.kind, RecordKind::Read);
    }

    #[test]
    fn socket_record_round_trip() {
        let s = SocketRecord {
            remote_ip: 0x0a00_0001,
            remote_port: 80,
            local_ip: 0xc000_020a,
            local_port: 40000,
            call: 3,
            proto: 6,
        };
        assert_eq!(SocketRecord::parse(&s.encode()), Ok(s));
        assert!(SocketRecord::parse(&s.encode()[..14]).is_err());
    }

    #[test]
    fn hostile_payloads_are_rejected() {
        let mut buf = Vec::new();
        encode(&header(RecordKind::Open), b"/etc/passwd", &mut buf);
        // Length past the packet end.
        let mut long = buf.clone();
        long[52..56].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            parse(&long),
            Err(SebekError::LengthPastEnd { .. })
        ));
        // Cut data.
        assert!(matches!(
            parse(&buf[..buf.len() - 1]),
            Err(SebekError::LengthPastEnd { .. })
        ));
        // Bad version.
        let mut v2 = buf.clone();
        v2[5] = 2;
        assert_eq!(parse(&v2), Err(SebekError::BadVersion(2)));
        // Unknown type.
        let mut t9 = buf.clone();
        t9[7] = 9;
        assert_eq!(parse(&t9), Err(SebekError::UnknownType(9)));
        // Every prefix shorter than the header.
        for n in 0..HEADER_LEN {
            assert!(matches!(parse(&buf[..n]), Err(SebekError::Short { .. })));
        }
    }

    #[test]
    fn a_record_cut_by_the_capture_keeps_its_header() {
        let mut whole = Vec::new();
        encode(&header(RecordKind::Read), b"uname -a\n", &mut whole);
        let wire = Some(whole.len());
        // Cut after 3 data bytes: header kept, the bytes present, truncated.
        let r = parse_captured(&whole[..HEADER_LEN + 3], wire).unwrap();
        assert!(r.truncated);
        assert_eq!(r.data, b"una");
        assert_eq!(r.header.length, 9);
        assert_eq!(r.header.command(), b"bash");
        // Cut inside `length`: it is the wire length less the header.
        let r = parse_captured(&whole[..CUT_HEADER_LEN + 2], wire).unwrap();
        assert!(r.truncated && r.data.is_empty());
        assert_eq!(r.header.length, 9);
        assert_eq!(r.header.pid, header(RecordKind::Read).pid);
        // Cut inside `com`: rejected.
        assert!(matches!(
            parse_captured(&whole[..CUT_HEADER_LEN - 1], wire),
            Err(SebekError::Short { .. })
        ));
        // Not cut (the wire length is what was captured): a short record
        // is malformed, as before.
        assert!(matches!(
            parse_captured(&whole[..HEADER_LEN + 3], Some(HEADER_LEN + 3)),
            Err(SebekError::LengthPastEnd { .. })
        ));
        assert_eq!(
            parse_captured(&whole, wire).unwrap(),
            parse(&whole).unwrap()
        );
        assert!(!parse(&whole).unwrap().truncated);
    }

    #[test]
    fn never_panics_on_noise() {
        let mut x: u32 = 12345;
        for len in 0..300usize {
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                buf.push((x >> 16) as u8);
            }
            if buf.len() > 6 {
                buf[4] = 0;
                buf[5] = 3;
            }
            let _ = parse(&buf);
        }
    }
}
