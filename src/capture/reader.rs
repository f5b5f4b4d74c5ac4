//! Capture file reader: libpcap (both byte orders, micro- and nanosecond) and pcapng.
//! A gzip or zstd file is read through `input`; offsets are then offsets in
//! its decompressed bytes.
//!
//! Owns turning the bytes of one capture file into packet records in file order,
//! with their byte offsets, so ingest can resume at a record boundary and follow a
//! file that tcpdump is still writing. It streams through one bounded buffer and
//! hands out borrowed packet bytes: no per-packet allocation.
//! Must not touch: decoding of packet contents (`decode`), finding files (`layout`),
//! and anything that writes. It never writes to the capture file.

use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use super::input::{CaptureInput, read_up_to};

use pcap_parser::pcapng::{
    OptionCode, PcapNGOption, parse_interfacedescriptionblock_be,
    parse_interfacedescriptionblock_le, parse_sectionheaderblock,
};

/// Largest captured length accepted in one record (libpcap's and Wireshark's
/// maximum snapshot length); anything bigger is a corrupt record header.
pub const MAX_CAPLEN: u32 = 262_144;

/// Size of the read buffer. It is also the largest pcapng block that is buffered:
/// bigger blocks are only acceptable for kinds we skip, which are skipped by seeking.
const BUF_SIZE: usize = 1 << 20;

/// Largest pcapng block held in memory (SHB, IDB, packet blocks, small others).
const MAX_BUFFERED_BLOCK: u32 = BUF_SIZE as u32;

/// A pcapng section with more interfaces than this is treated as corrupt, so a
/// hostile file cannot make the interface table grow without bound.
const MAX_INTERFACES: usize = 65_536;

const PCAP_HEADER_LEN: usize = 24;
const PCAP_RECORD_HEADER_LEN: usize = 16;

const PCAP_MAGIC_USEC: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NSEC: u32 = 0xa1b2_3c4d;

/// libpcap's LT_LINKTYPE mask: the upper bits of the header's link type hold FCS info.
const PCAP_LINKTYPE_MASK: u32 = 0x03ff_ffff;

const NG_SHB: u32 = 0x0a0d_0d0a;
const NG_IDB: u32 = 0x0000_0001;
const NG_PB: u32 = 0x0000_0002;
const NG_SPB: u32 = 0x0000_0003;
const NG_EPB: u32 = 0x0000_0006;
const NG_BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;

/// One packet record as read from a capture file.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Capture time, seconds since the epoch.
    pub ts_sec: u64,
    /// Nanoseconds within the second (microsecond files are scaled up).
    /// pcapng Simple Packet Blocks carry no time: they read as 0.0.
    pub ts_nsec: u32,
    /// Length on the wire.
    pub orig_len: u32,
    /// Link type (LINKTYPE_* number) of the interface this packet came from.
    pub link_type: u32,
    /// The captured bytes (`caplen` = `data.len()`).
    pub data: &'a [u8],
    /// Byte offset of this packet's record in the file.
    pub offset: u64,
    /// Byte offset just past this packet's record: a safe resume point.
    pub next_offset: u64,
}

/// What kind of capture file this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    Pcap {
        nanosecond: bool,
        big_endian: bool,
        snaplen: u32,
        link_type: u32,
    },
    PcapNg,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a capture at all (checked by `open` only).
    #[error("{path}: not a capture file: {reason}")]
    NotACapture { path: PathBuf, reason: String },
    /// The file ends inside the record starting at `offset`. Every whole record
    /// before it has been returned; calling `next_packet` again once the file has
    /// grown resumes at `offset`.
    #[error("{path}: truncated at byte offset {offset}: {reason}")]
    Truncated {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The record at `offset` is corrupt (or a `seek_to` target is unusable).
    /// The reader stays at `offset`: calling `next_packet` again repeats the error.
    #[error("{path}: malformed at byte offset {offset}: {reason}")]
    Malformed {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

/// Byte order of multi-byte fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u32_at(self, bytes: &[u8], at: usize) -> u32 {
        let mut word = [0u8; 4];
        if let Some(src) = bytes.get(at..at + 4) {
            word.copy_from_slice(src);
        }
        match self {
            Endian::Little => u32::from_le_bytes(word),
            Endian::Big => u32::from_be_bytes(word),
        }
    }

    fn u16_at(self, bytes: &[u8], at: usize) -> u16 {
        let mut word = [0u8; 2];
        if let Some(src) = bytes.get(at..at + 2) {
            word.copy_from_slice(src);
        }
        match self {
            Endian::Little => u16::from_le_bytes(word),
            Endian::Big => u16::from_be_bytes(word),
        }
    }
}

/// Classic pcap parameters from the global header.
#[derive(Debug, Clone, Copy)]
struct PcapParams {
    endian: Endian,
    /// Units per second of the fractional timestamp field.
    frac_per_sec: u32,
    link_type: u32,
}

/// One pcapng interface (IDB) of the current section.
#[derive(Debug, Clone, Copy)]
struct Interface {
    link_type: u32,
    snaplen: u32,
    /// Timestamp units per second (if_tsresol).
    units_per_sec: u64,
    /// Seconds added to every timestamp (if_tsoffset).
    ts_offset: i64,
}

/// pcapng state: what the blocks before the current position established.
#[derive(Debug, Clone, Default)]
struct NgState {
    endian: Option<Endian>,
    interfaces: Vec<Interface>,
}

/// Where a packet lies in the buffer, plus its metadata. Indices rather than a
/// slice so the buffer can be borrowed again after the record is found.
#[derive(Debug, Clone, Copy)]
struct Record {
    data_start: usize,
    data_len: usize,
    ts_sec: u64,
    ts_nsec: u32,
    orig_len: u32,
    link_type: u32,
    offset: u64,
    next_offset: u64,
}

/// What one pcapng block turned out to be.
enum BlockOutcome {
    Packet(Record),
    Other,
}

/// Streaming reader over one capture file.
///
/// Invariant: `buf[start..end]` holds the file bytes from `base + start`, and the
/// file cursor sits at `base + end`. `base + start` is always a record boundary.
pub struct CaptureReader {
    path: PathBuf,
    file: CaptureInput,
    format: CaptureFormat,
    /// Set for classic pcap; None for pcapng, whose state is in `ng`.
    pcap: Option<PcapParams>,
    /// pcapng section state (unused for classic pcap).
    ng: NgState,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    base: u64,
}

impl std::fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureReader")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("position", &self.position())
            .finish()
    }
}

impl CaptureReader {
    /// Opens `path` and identifies its format from the magic number.
    ///
    /// A file too short to identify (e.g. one tcpdump has just created and not
    /// yet flushed) is `NotACapture`; callers following a live file retry later.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let mut file = CaptureInput::open(path).map_err(|source| io_err(path, source))?;
        let mut head = [0u8; PCAP_HEADER_LEN];
        let have = read_up_to(&mut file, &mut head).map_err(|source| io_err(path, source))?;
        let (format, pcap, first_record) =
            identify(&head[..have]).map_err(|e| CaptureError::NotACapture {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let mut reader = CaptureReader {
            path: path.to_path_buf(),
            file,
            format,
            pcap,
            ng: NgState::default(),
            buf: vec![0; BUF_SIZE],
            start: 0,
            end: 0,
            base: 0,
        };
        reader.reposition(first_record)?;
        Ok(reader)
    }

    /// The format found by `open`.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// The path this reader was opened on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Byte offset of the next record to be read: the `next_offset` of the last
    /// packet returned (or past skipped non-packet blocks). A safe resume point.
    pub fn position(&self) -> u64 {
        self.base + self.start as u64
    }

    /// Resumes reading at `offset`, which must be a record boundary previously
    /// returned as `next_offset` (or `position()`).
    ///
    /// For pcapng the interface descriptions in force at `offset` are needed, so a
    /// backward seek rescans block headers from the start of the file (packet
    /// blocks are skipped, not decoded); a forward seek scans from the current
    /// position. A target that is not a block boundary or lies past the end of the
    /// file is `Malformed` at the target offset.
    pub fn seek_to(&mut self, offset: u64) -> Result<(), CaptureError> {
        match self.pcap {
            Some(_) => self.seek_pcap(offset),
            None => self.seek_pcapng(offset),
        }
    }

    /// Returns the next packet in file order, `Ok(None)` at a clean end of file.
    ///
    /// After `Ok(None)` or `Truncated`, calling again picks up records appended
    /// since (the reader never skips past an incomplete record).
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        let record = match self.pcap {
            Some(params) => self.next_pcap_record(params)?,
            None => self.next_pcapng_packet()?,
        };
        Ok(record.map(|r| Packet {
            ts_sec: r.ts_sec,
            ts_nsec: r.ts_nsec,
            orig_len: r.orig_len,
            link_type: r.link_type,
            data: self
                .buf
                .get(r.data_start..r.data_start + r.data_len)
                .unwrap_or(&[]),
            offset: r.offset,
            next_offset: r.next_offset,
        }))
    }

    // ----- buffer management -------------------------------------------------

    /// Drops buffered bytes and moves the file cursor to `offset`; `false` when
    /// a compressed stream ends before it (the cursor is then at its end).
    fn reposition(&mut self, offset: u64) -> Result<bool, CaptureError> {
        let reached = self
            .file
            .seek_to(offset)
            .map_err(|source| self.read_err(source))?;
        self.base = reached;
        self.start = 0;
        self.end = 0;
        Ok(reached == offset)
    }

    /// Makes sure `need` bytes are buffered from `start`. Returns false when the
    /// file ends first; the partial bytes stay buffered so a later call (after
    /// the file has grown) continues where this one stopped.
    ///
    /// `need` must already be checked against the maximum record size.
    fn fill(&mut self, need: usize) -> Result<bool, CaptureError> {
        if self.end - self.start >= need {
            return Ok(true);
        }
        if self.start + need > self.buf.len() {
            self.compact(need);
        }
        while self.end - self.start < need {
            match self.file.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => return Err(self.read_err(source)),
            }
        }
        Ok(true)
    }

    /// Moves the unconsumed bytes to the front, growing the buffer only when one
    /// record is bigger than it (bounded by the callers' length checks).
    fn compact(&mut self, need: usize) {
        self.buf.copy_within(self.start..self.end, 0);
        self.base += self.start as u64;
        self.end -= self.start;
        self.start = 0;
        if need > self.buf.len() {
            self.buf.resize(need, 0);
        }
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The result when the file ends at `position()`: clean if nothing of the
    /// next record was written yet, else `Truncated` at the record's start.
    fn end_of_data(&self, what: &str) -> Result<Option<Record>, CaptureError> {
        let have = self.end - self.start;
        if have == 0 {
            return Ok(None);
        }
        Err(CaptureError::Truncated {
            path: self.path.clone(),
            offset: self.position(),
            reason: format!("file ends {have} bytes into {what}"),
        })
    }

    fn malformed(&self, offset: u64, reason: String) -> CaptureError {
        CaptureError::Malformed {
            path: self.path.clone(),
            offset,
            reason,
        }
    }

    /// A failed read: damaged compressed data is a damaged file at the
    /// offset reached; anything else is an I/O error.
    fn read_err(&self, source: std::io::Error) -> CaptureError {
        if source.kind() == ErrorKind::InvalidData {
            return self.malformed(self.base + self.end as u64, source.to_string());
        }
        io_err(&self.path, source)
    }

    /// The file's length when known without reading it (None for a
    /// compressed file: its end is found by reading).
    fn file_len(&self) -> Result<Option<u64>, CaptureError> {
        self.file
            .known_len()
            .map_err(|source| io_err(&self.path, source))
    }

    fn past_the_end(&self, offset: u64) -> CaptureError {
        let len = match self.file_len() {
            Ok(Some(len)) => format!("{len} bytes"),
            _ => format!("{} bytes decompressed", self.file.position()),
        };
        self.malformed(
            offset,
            format!("seek target is past the end of the file ({len})"),
        )
    }

    // ----- classic pcap ------------------------------------------------------

    fn seek_pcap(&mut self, offset: u64) -> Result<(), CaptureError> {
        if offset < PCAP_HEADER_LEN as u64 {
            return Err(self.malformed(
                offset,
                format!("seek target lies inside the {PCAP_HEADER_LEN}-byte pcap header"),
            ));
        }
        if self.file_len()?.is_some_and(|len| offset > len) || !self.reposition(offset)? {
            return Err(self.past_the_end(offset));
        }
        Ok(())
    }

    /// Parses one 16-byte record header and its data by hand: it is trivial and
    /// this is the hot loop.
    fn next_pcap_record(&mut self, params: PcapParams) -> Result<Option<Record>, CaptureError> {
        if !self.fill(PCAP_RECORD_HEADER_LEN)? {
            return self.end_of_data("a 16-byte pcap record header");
        }
        let header = self.buffered();
        let e = params.endian;
        let ts_sec = e.u32_at(header, 0);
        let ts_frac = e.u32_at(header, 4);
        let caplen = e.u32_at(header, 8);
        let orig_len = e.u32_at(header, 12);
        let offset = self.position();
        // As in libpcap: a caplen above the sane maximum is a corrupt header; one
        // above the header's snaplen but within the maximum is tolerated (some
        // writers record a wrong snaplen), and its bytes are kept.
        if caplen > MAX_CAPLEN {
            return Err(self.malformed(
                offset,
                format!(
                    "record claims {caplen} captured bytes, more than the maximum of {MAX_CAPLEN}"
                ),
            ));
        }
        let total = PCAP_RECORD_HEADER_LEN + caplen as usize;
        if !self.fill(total)? {
            return self.end_of_data(&format!("a {total}-byte pcap record"));
        }
        let data_start = self.start + PCAP_RECORD_HEADER_LEN;
        self.start += total;
        // Some writers put a full second into the fraction; carry it rather than
        // returning an out-of-range nanosecond value.
        let per_sec = params.frac_per_sec;
        let ts_sec = u64::from(ts_sec) + u64::from(ts_frac / per_sec);
        let ts_nsec = (ts_frac % per_sec) * (1_000_000_000 / per_sec);
        Ok(Some(Record {
            data_start,
            data_len: caplen as usize,
            ts_sec,
            ts_nsec,
            orig_len,
            link_type: params.link_type,
            offset,
            next_offset: offset + total as u64,
        }))
    }

    // ----- pcapng ------------------------------------------------------------

    fn next_pcapng_packet(&mut self) -> Result<Option<Record>, CaptureError> {
        loop {
            match self.next_block(true)? {
                None => return Ok(None),
                Some(BlockOutcome::Packet(record)) => return Ok(Some(record)),
                Some(BlockOutcome::Other) => {}
            }
        }
    }

    fn seek_pcapng(&mut self, offset: u64) -> Result<(), CaptureError> {
        if offset < self.position() {
            self.ng = NgState::default();
            self.reposition(0)?;
        }
        while self.position() < offset {
            if self.next_block(false)?.is_none() {
                return Err(self.past_the_end(offset));
            }
        }
        if self.position() != offset {
            let next = self.position();
            return Err(self.malformed(
                offset,
                format!(
                    "seek target is not a block boundary (a block spans it up to offset {next})"
                ),
            ));
        }
        Ok(())
    }

    /// Frames and handles one block. Section and interface blocks update the
    /// state; packet blocks become records when `want_packets`, else are skipped
    /// like every other kind.
    fn next_block(&mut self, want_packets: bool) -> Result<Option<BlockOutcome>, CaptureError> {
        if !self.fill(8)? {
            return self.end_of_data("a pcapng block header").map(|_| None);
        }
        let offset = self.position();
        let raw_type = u32::from_le_bytes(first4(self.buffered()));
        // The section header's type reads the same in both orders; its byte-order
        // magic decides how to read its length (and everything after it).
        let endian = if raw_type == NG_SHB {
            if !self.fill(12)? {
                return self.end_of_data("a pcapng section header").map(|_| None);
            }
            section_endian(self.buffered()).ok_or_else(|| {
                self.malformed(offset, "section header has a bad byte-order magic".into())
            })?
        } else {
            self.ng.endian.unwrap_or(Endian::Little)
        };
        let block_type = endian.u32_at(self.buffered(), 0);
        let len = endian.u32_at(self.buffered(), 4);
        self.check_block_len(offset, block_type, len)?;
        if len > MAX_BUFFERED_BLOCK {
            // Only kinds we skip may be this big (checked above): skip unread.
            self.skip_unbuffered(u64::from(len))?;
            return Ok(Some(BlockOutcome::Other));
        }
        let len = len as usize;
        if !self.fill(len)? {
            return self
                .end_of_data(&format!("a {len}-byte pcapng block"))
                .map(|_| None);
        }
        let trailer = endian.u32_at(self.buffered(), len - 4);
        if trailer as usize != len {
            return Err(self.malformed(
                offset,
                format!("block trailer length {trailer} does not match its header length {len}"),
            ));
        }
        let outcome = self.handle_block(block_type, endian, len, want_packets)?;
        self.start += len;
        Ok(Some(outcome))
    }

    /// Rejects impossible lengths before anything is buffered for them.
    fn check_block_len(&self, offset: u64, block_type: u32, len: u32) -> Result<(), CaptureError> {
        let minimum = match block_type {
            NG_SHB => 28,
            NG_IDB => 20,
            NG_EPB | NG_PB => 32,
            NG_SPB => 16,
            _ => 12,
        };
        if len < minimum {
            return Err(self.malformed(
                offset,
                format!(
                    "block type 0x{block_type:08x} has length {len}, below its minimum of {minimum}"
                ),
            ));
        }
        if !len.is_multiple_of(4) {
            return Err(
                self.malformed(offset, format!("block length {len} is not a multiple of 4"))
            );
        }
        let must_buffer = matches!(block_type, NG_SHB | NG_IDB | NG_EPB | NG_PB | NG_SPB);
        if must_buffer && len > MAX_BUFFERED_BLOCK {
            return Err(self.malformed(
                offset,
                format!("block type 0x{block_type:08x} has length {len}, more than the maximum of {MAX_BUFFERED_BLOCK}"),
            ));
        }
        Ok(())
    }

    /// Skips a big block of a kind we ignore without reading it, if the file
    /// already holds all of it.
    fn skip_unbuffered(&mut self, len: u64) -> Result<(), CaptureError> {
        let offset = self.position();
        let path = self.path.clone();
        let short = |file_len: u64| CaptureError::Truncated {
            path: path.clone(),
            offset,
            reason: format!(
                "file ends {} bytes into a {len}-byte pcapng block",
                file_len.saturating_sub(offset)
            ),
        };
        if let Some(file_len) = self.file_len()?
            && offset + len > file_len
        {
            return Err(short(file_len));
        }
        if !self.reposition(offset + len)? {
            let reached = self.file.position();
            // Back to the block's start, so a later call sees it whole or cut
            // the same way (the reader never skips past an incomplete record).
            self.reposition(offset)?;
            return Err(short(reached));
        }
        Ok(())
    }

    fn handle_block(
        &mut self,
        block_type: u32,
        endian: Endian,
        len: usize,
        want_packets: bool,
    ) -> Result<BlockOutcome, CaptureError> {
        match block_type {
            NG_SHB => self.handle_section(len).map(|()| BlockOutcome::Other),
            NG_IDB => self
                .handle_interface(endian, len)
                .map(|()| BlockOutcome::Other),
            NG_EPB | NG_PB | NG_SPB if want_packets => self
                .packet_block(block_type, endian, len)
                .map(BlockOutcome::Packet),
            _ => Ok(BlockOutcome::Other),
        }
    }

    /// A section header starts a new section: new byte order, no interfaces yet.
    fn handle_section(&mut self, len: usize) -> Result<(), CaptureError> {
        let offset = self.position();
        let block = &self.buf[self.start..self.start + len];
        let endian = match parse_sectionheaderblock(block) {
            Ok((_, shb)) if shb.major_version != 1 => {
                return Err(self.malformed(
                    offset,
                    format!("unsupported pcapng major version {}", shb.major_version),
                ));
            }
            Ok((_, shb)) if shb.big_endian() => Endian::Big,
            Ok(_) => Endian::Little,
            Err(e) => {
                return Err(self.malformed(offset, format!("invalid section header block: {e:?}")));
            }
        };
        self.ng.endian = Some(endian);
        self.ng.interfaces.clear();
        Ok(())
    }

    fn handle_interface(&mut self, endian: Endian, len: usize) -> Result<(), CaptureError> {
        let offset = self.position();
        let interface = self.parse_interface(endian, len)?;
        if self.ng.interfaces.len() >= MAX_INTERFACES {
            return Err(self.malformed(
                offset,
                format!("more than {MAX_INTERFACES} interfaces in one section"),
            ));
        }
        self.ng.interfaces.push(interface);
        Ok(())
    }

    /// Reads an IDB with pcap-parser. Time options are read here rather than
    /// from pcap-parser's derived fields: it reads if_tsoffset as little-endian
    /// in every section and rejects binary (2^-n) resolutions.
    fn parse_interface(&self, endian: Endian, len: usize) -> Result<Interface, CaptureError> {
        let offset = self.position();
        let block = &self.buf[self.start..self.start + len];
        let parsed = match endian {
            Endian::Little => parse_interfacedescriptionblock_le(block),
            Endian::Big => parse_interfacedescriptionblock_be(block),
        };
        let idb = match parsed {
            Ok((_, idb)) => idb,
            Err(e) => {
                return Err(self.malformed(
                    offset,
                    format!("invalid interface description block: {e:?}"),
                ));
            }
        };
        let (tsresol, ts_offset) = interface_time_options(&idb.options, endian);
        let units_per_sec = units_per_sec(tsresol).ok_or_else(|| {
            self.malformed(offset, format!("unsupported if_tsresol 0x{tsresol:02x}"))
        })?;
        Ok(Interface {
            link_type: u32::from(idb.linktype.0 as u16),
            snaplen: idb.snaplen,
            units_per_sec,
            ts_offset,
        })
    }

    /// Reads the fixed fields of an EPB, SPB or obsolete PB by hand: pcap-parser
    /// builds a Vec of options for every EPB that has any, i.e. an allocation
    /// per packet, and its nom framing is slower than these few loads.
    fn packet_block(
        &self,
        block_type: u32,
        endian: Endian,
        len: usize,
    ) -> Result<Record, CaptureError> {
        let offset = self.position();
        let block = &self.buf[self.start..self.start + len];
        let fields = match block_type {
            NG_SPB => self.simple_packet_fields(block, endian)?,
            NG_PB => PacketFields {
                if_id: u32::from(endian.u16_at(block, 8)),
                ts: ng_timestamp(endian, block, 12),
                caplen: endian.u32_at(block, 20),
                orig_len: endian.u32_at(block, 24),
                has_ts: true,
            },
            _ => PacketFields {
                if_id: endian.u32_at(block, 8),
                ts: ng_timestamp(endian, block, 12),
                caplen: endian.u32_at(block, 20),
                orig_len: endian.u32_at(block, 24),
                has_ts: true,
            },
        };
        let data_offset = if block_type == NG_SPB { 12 } else { 28 };
        if fields.caplen > MAX_CAPLEN {
            return Err(self.malformed(
                offset,
                format!(
                    "packet claims {} captured bytes, more than the maximum of {MAX_CAPLEN}",
                    fields.caplen
                ),
            ));
        }
        // Data plus the 4-byte trailer must fit in the block.
        if data_offset + fields.caplen as usize + 4 > len {
            return Err(self.malformed(
                offset,
                format!(
                    "packet claims {} captured bytes but its {len}-byte block cannot hold them",
                    fields.caplen
                ),
            ));
        }
        let interface = self.interface(offset, fields.if_id)?;
        let (ts_sec, ts_nsec) = if fields.has_ts {
            to_sec_nsec(fields.ts, interface.units_per_sec, interface.ts_offset)
        } else {
            (0, 0)
        };
        Ok(Record {
            data_start: self.start + data_offset,
            data_len: fields.caplen as usize,
            ts_sec,
            ts_nsec,
            orig_len: fields.orig_len,
            link_type: interface.link_type,
            offset,
            next_offset: offset + len as u64,
        })
    }

    /// An SPB has no interface id (always interface 0), no timestamp and no
    /// caplen: the captured length is the original length cut to the snaplen
    /// and to what the block holds.
    fn simple_packet_fields(
        &self,
        block: &[u8],
        endian: Endian,
    ) -> Result<PacketFields, CaptureError> {
        let interface = self.interface(self.position(), 0)?;
        let orig_len = endian.u32_at(block, 8);
        let room = (block.len() - 16) as u32;
        let mut caplen = orig_len.min(room);
        if interface.snaplen != 0 {
            caplen = caplen.min(interface.snaplen);
        }
        Ok(PacketFields {
            if_id: 0,
            ts: 0,
            caplen,
            orig_len,
            has_ts: false,
        })
    }

    fn interface(&self, offset: u64, if_id: u32) -> Result<Interface, CaptureError> {
        let interfaces = &self.ng.interfaces;
        interfaces.get(if_id as usize).copied().ok_or_else(|| {
            self.malformed(
                offset,
                format!(
                    "packet refers to interface {if_id} but the section describes {}",
                    interfaces.len()
                ),
            )
        })
    }
}

/// Fixed fields common to the pcapng packet block kinds.
struct PacketFields {
    if_id: u32,
    ts: u64,
    caplen: u32,
    orig_len: u32,
    has_ts: bool,
}

fn io_err(path: &Path, source: std::io::Error) -> CaptureError {
    CaptureError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn first4(bytes: &[u8]) -> [u8; 4] {
    let mut word = [0u8; 4];
    if let Some(src) = bytes.get(..4) {
        word.copy_from_slice(src);
    }
    word
}

/// Byte order of a section from the byte-order magic at offset 8 of its SHB.
fn section_endian(shb_start: &[u8]) -> Option<Endian> {
    match Endian::Little.u32_at(shb_start, 8) {
        NG_BYTE_ORDER_MAGIC => Some(Endian::Little),
        m if m.swap_bytes() == NG_BYTE_ORDER_MAGIC => Some(Endian::Big),
        _ => None,
    }
}

/// Why the first bytes of a file are not a capture this reader knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifyError {
    #[error("empty file")]
    Empty,
    #[error("file is {0} bytes, shorter than a 4-byte magic number")]
    NoMagic(usize),
    #[error("unknown magic 0x{0:08x} at offset 0")]
    UnknownMagic(u32),
    #[error("file is {0} bytes, shorter than the {PCAP_HEADER_LEN}-byte pcap header")]
    ShortPcapHeader(usize),
    #[error("invalid pcap header: {0}")]
    PcapHeader(String),
    #[error("unsupported pcap version {0}.{1}")]
    Version(u16, u16),
    #[error("file is {0} bytes, shorter than the 12 bytes that identify a pcapng section header")]
    ShortPcapng(usize),
    #[error("pcapng section header has a bad byte-order magic 0x{0:08x}")]
    ByteOrder(u32),
}

/// Identifies the format from the first (up to 24) bytes of the file. Returns
/// the format, the initial parser state and the offset of the first record.
fn identify(head: &[u8]) -> Result<(CaptureFormat, Option<PcapParams>, u64), IdentifyError> {
    if head.is_empty() {
        return Err(IdentifyError::Empty);
    }
    if head.len() < 4 {
        return Err(IdentifyError::NoMagic(head.len()));
    }
    let magic = first4(head);
    if u32::from_le_bytes(magic) == NG_SHB {
        return identify_pcapng(head);
    }
    let le = u32::from_le_bytes(magic);
    let be = u32::from_be_bytes(magic);
    let endian = match (le, be) {
        (PCAP_MAGIC_USEC | PCAP_MAGIC_NSEC, _) => Endian::Little,
        (_, PCAP_MAGIC_USEC | PCAP_MAGIC_NSEC) => Endian::Big,
        _ => return Err(IdentifyError::UnknownMagic(be)),
    };
    identify_pcap(head, endian)
}

/// Reads the classic pcap global header with pcap-parser.
fn identify_pcap(
    head: &[u8],
    endian: Endian,
) -> Result<(CaptureFormat, Option<PcapParams>, u64), IdentifyError> {
    if head.len() < PCAP_HEADER_LEN {
        return Err(IdentifyError::ShortPcapHeader(head.len()));
    }
    let header = match pcap_parser::pcap::parse_pcap_header(head) {
        Ok((_, header)) => header,
        Err(e) => return Err(IdentifyError::PcapHeader(format!("{e:?}"))),
    };
    if header.version_major != 2 {
        return Err(IdentifyError::Version(
            header.version_major,
            header.version_minor,
        ));
    }
    let nanosecond = header.is_nanosecond_precision();
    let link_type = (header.network.0 as u32) & PCAP_LINKTYPE_MASK;
    let format = CaptureFormat::Pcap {
        nanosecond,
        big_endian: endian == Endian::Big,
        snaplen: header.snaplen,
        link_type,
    };
    let params = PcapParams {
        endian,
        frac_per_sec: if nanosecond { 1_000_000_000 } else { 1_000_000 },
        link_type,
    };
    Ok((format, Some(params), PCAP_HEADER_LEN as u64))
}

/// A pcapng file starts with a section header whose byte-order magic must be
/// valid; the block itself is read like any other by `next_packet`.
fn identify_pcapng(head: &[u8]) -> Result<(CaptureFormat, Option<PcapParams>, u64), IdentifyError> {
    if head.len() < 12 {
        return Err(IdentifyError::ShortPcapng(head.len()));
    }
    if section_endian(head).is_none() {
        let bom = Endian::Little.u32_at(head, 8);
        return Err(IdentifyError::ByteOrder(bom));
    }
    Ok((CaptureFormat::PcapNg, None, 0))
}

/// if_tsresol (default 6: microseconds) and if_tsoffset (default 0) of an IDB.
fn interface_time_options(options: &[PcapNGOption<'_>], endian: Endian) -> (u8, i64) {
    let mut tsresol = 6;
    let mut ts_offset = 0;
    for option in options {
        let value = option.value();
        if option.code == OptionCode::IfTsresol
            && let Some(&v) = value.first()
        {
            tsresol = v;
        } else if option.code == OptionCode::IfTsoffset
            && let Some(bytes) = value.get(..8)
        {
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes);
            ts_offset = match endian {
                Endian::Little => i64::from_le_bytes(word),
                Endian::Big => i64::from_be_bytes(word),
            };
        }
    }
    (tsresol, ts_offset)
}

/// Units per second for an if_tsresol value: 10^n, or 2^n when the top bit is set.
fn units_per_sec(tsresol: u8) -> Option<u64> {
    let exponent = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 == 0 {
        10u64.checked_pow(exponent)
    } else {
        1u64.checked_shl(exponent).filter(|_| exponent < 64)
    }
}

/// The 64-bit timestamp of a pcapng packet block: high word then low word.
fn ng_timestamp(endian: Endian, block: &[u8], at: usize) -> u64 {
    (u64::from(endian.u32_at(block, at)) << 32) | u64::from(endian.u32_at(block, at + 4))
}

/// Converts a timestamp in `units` per second to seconds and nanoseconds.
fn to_sec_nsec(ts: u64, units: u64, offset: i64) -> (u64, u32) {
    let sec = (ts / units).saturating_add_signed(offset);
    let frac = ts % units;
    // The common resolutions avoid the 128-bit division.
    let nsec = match units {
        1_000_000 => frac * 1_000,
        1_000_000_000 => frac,
        _ => (u128::from(frac) * 1_000_000_000 / u128::from(units)) as u64,
    };
    (sec, nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    // ----- fixture builders --------------------------------------------------

    fn pcap_header(magic: u32, big_endian: bool, snaplen: u32, link_type: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let fields: [u32; 6] = [magic, 0x0004_0002, 0, 0, snaplen, link_type];
        for (i, v) in fields.iter().enumerate() {
            if i == 1 {
                // version 2.4 as two u16s
                let (maj, min) = (2u16, 4u16);
                if big_endian {
                    out.extend_from_slice(&maj.to_be_bytes());
                    out.extend_from_slice(&min.to_be_bytes());
                } else {
                    out.extend_from_slice(&maj.to_le_bytes());
                    out.extend_from_slice(&min.to_le_bytes());
                }
                continue;
            }
            out.extend_from_slice(&if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            });
        }
        out
    }

    fn pcap_record(big_endian: bool, sec: u32, frac: u32, data: &[u8], orig_len: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for v in [sec, frac, data.len() as u32, orig_len] {
            out.extend_from_slice(&if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            });
        }
        out.extend_from_slice(data);
        out
    }

    fn put32(out: &mut Vec<u8>, be: bool, v: u32) {
        out.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
    }

    fn put16(out: &mut Vec<u8>, be: bool, v: u16) {
        out.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
    }

    /// Wraps a block body with type and both lengths, padding to 4 bytes.
    fn ng_block(be: bool, block_type: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let len = body.len() as u32 + 12;
        let mut out = Vec::new();
        put32(&mut out, be, block_type);
        put32(&mut out, be, len);
        out.extend_from_slice(&body);
        put32(&mut out, be, len);
        out
    }

    fn ng_shb(be: bool) -> Vec<u8> {
        let mut body = Vec::new();
        put32(&mut body, be, NG_BYTE_ORDER_MAGIC);
        put16(&mut body, be, 1);
        put16(&mut body, be, 0);
        body.extend_from_slice(&[0xff; 8]); // section length unknown
        ng_block(be, NG_SHB, &body)
    }

    fn ng_idb(be: bool, link_type: u16, snaplen: u32, tsresol: Option<u8>) -> Vec<u8> {
        let mut body = Vec::new();
        put16(&mut body, be, link_type);
        put16(&mut body, be, 0);
        put32(&mut body, be, snaplen);
        if let Some(r) = tsresol {
            put16(&mut body, be, 9);
            put16(&mut body, be, 1);
            body.extend_from_slice(&[r, 0, 0, 0]);
            put32(&mut body, be, 0); // opt_endofopt
        }
        ng_block(be, NG_IDB, &body)
    }

    fn ng_epb(be: bool, if_id: u32, ts: u64, data: &[u8], orig_len: u32) -> Vec<u8> {
        let mut body = Vec::new();
        put32(&mut body, be, if_id);
        put32(&mut body, be, (ts >> 32) as u32);
        put32(&mut body, be, ts as u32);
        put32(&mut body, be, data.len() as u32);
        put32(&mut body, be, orig_len);
        body.extend_from_slice(data);
        ng_block(be, NG_EPB, &body)
    }

    fn ng_spb(be: bool, data: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        put32(&mut body, be, data.len() as u32);
        body.extend_from_slice(data);
        ng_block(be, NG_SPB, &body)
    }

    fn write_file(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f.flush().unwrap();
        f
    }

    /// Owned copy of a packet, to collect whole files in tests.
    #[derive(Debug, PartialEq)]
    struct Owned {
        ts: (u64, u32),
        orig_len: u32,
        link_type: u32,
        data: Vec<u8>,
        offset: u64,
        next_offset: u64,
    }

    fn own(p: Packet<'_>) -> Owned {
        Owned {
            ts: (p.ts_sec, p.ts_nsec),
            orig_len: p.orig_len,
            link_type: p.link_type,
            data: p.data.to_vec(),
            offset: p.offset,
            next_offset: p.next_offset,
        }
    }

    fn read_all(reader: &mut CaptureReader) -> Vec<Owned> {
        let mut out = Vec::new();
        while let Some(p) = reader.next_packet().unwrap() {
            out.push(own(p));
        }
        out
    }

    fn classic_file(big_endian: bool, magic: u32) -> Vec<u8> {
        let mut bytes = pcap_header(magic, big_endian, 65535, 1);
        bytes.extend(pcap_record(big_endian, 100, 5, b"first packet", 60));
        bytes.extend(pcap_record(big_endian, 101, 999_999, b"second", 6));
        bytes.extend(pcap_record(big_endian, 102, 0, b"", 0));
        bytes
    }

    // ----- classic pcap ------------------------------------------------------

    #[test]
    fn reads_little_endian_microsecond_pcap() {
        let f = write_file(&classic_file(false, PCAP_MAGIC_USEC));
        let mut r = CaptureReader::open(f.path()).unwrap();
        assert_eq!(
            r.format(),
            CaptureFormat::Pcap {
                nanosecond: false,
                big_endian: false,
                snaplen: 65535,
                link_type: 1
            }
        );
        let packets = read_all(&mut r);
        assert_eq!(packets.len(), 3);
        assert_eq!(packets[0].ts, (100, 5_000));
        assert_eq!(packets[0].data, b"first packet");
        assert_eq!(packets[0].orig_len, 60);
        assert_eq!(packets[0].link_type, 1);
        assert_eq!(packets[0].offset, 24);
        assert_eq!(packets[0].next_offset, 24 + 16 + 12);
        assert_eq!(packets[1].offset, packets[0].next_offset);
        assert_eq!(packets[1].ts, (101, 999_999_000));
        assert_eq!(packets[2].data, b"");
        assert_eq!(
            packets[2].next_offset,
            f.as_file().metadata().unwrap().len()
        );
        // A clean end stays clean.
        assert!(r.next_packet().unwrap().is_none());
    }

    #[test]
    fn reads_big_endian_pcap_like_little_endian() {
        let le = write_file(&classic_file(false, PCAP_MAGIC_USEC));
        let be = write_file(&classic_file(true, PCAP_MAGIC_USEC));
        let mut rb = CaptureReader::open(be.path()).unwrap();
        assert!(matches!(
            rb.format(),
            CaptureFormat::Pcap {
                big_endian: true,
                nanosecond: false,
                ..
            }
        ));
        let from_be = read_all(&mut rb);
        let from_le = read_all(&mut CaptureReader::open(le.path()).unwrap());
        assert_eq!(from_be, from_le);
    }

    #[test]
    fn reads_nanosecond_pcap_in_both_orders() {
        for big_endian in [false, true] {
            let mut bytes = pcap_header(PCAP_MAGIC_NSEC, big_endian, 262144, 101);
            bytes.extend(pcap_record(big_endian, 7, 123_456_789, b"x", 1));
            // A fraction holding more than a second is carried into the seconds.
            bytes.extend(pcap_record(big_endian, 7, 1_000_000_001, b"y", 1));
            let f = write_file(&bytes);
            let mut r = CaptureReader::open(f.path()).unwrap();
            assert!(matches!(
                r.format(),
                CaptureFormat::Pcap {
                    nanosecond: true,
                    link_type: 101,
                    ..
                }
            ));
            let packets = read_all(&mut r);
            assert_eq!(packets[0].ts, (7, 123_456_789));
            assert_eq!(packets[1].ts, (8, 1));
            assert_eq!(packets[0].link_type, 101);
        }
    }

    #[test]
    fn link_type_fcs_bits_are_masked() {
        let mut bytes = pcap_header(PCAP_MAGIC_USEC, false, 65535, 0x1000_0000 | 1);
        bytes.extend(pcap_record(false, 1, 0, b"a", 1));
        let f = write_file(&bytes);
        let mut r = CaptureReader::open(f.path()).unwrap();
        assert_eq!(r.next_packet().unwrap().unwrap().link_type, 1);
    }

    #[test]
    fn truncated_file_returns_whole_packets_then_truncated() {
        let full = classic_file(false, PCAP_MAGIC_USEC);
        let third_start = 24 + 16 + 12 + 16 + 6;
        // Cut inside the second record's data, then inside the third's header.
        for (cut, whole, at) in [
            (24 + 16 + 12 + 16 + 3, 1, 24 + 16 + 12),
            (third_start + 5, 2, third_start),
        ] {
            let f = write_file(&full[..cut]);
            let mut r = CaptureReader::open(f.path()).unwrap();
            for _ in 0..whole {
                assert!(r.next_packet().unwrap().is_some());
            }
            match r.next_packet() {
                Err(CaptureError::Truncated { offset, .. }) => assert_eq!(offset, at as u64),
                other => panic!("expected Truncated, got {other:?}"),
            }
            // Not poisoned: asking again gives the same answer.
            assert!(matches!(
                r.next_packet(),
                Err(CaptureError::Truncated { .. })
            ));
            assert_eq!(r.position(), at as u64);
        }
    }

    #[test]
    fn growing_file_is_followed() {
        let full = classic_file(false, PCAP_MAGIC_USEC);
        let cut = 24 + 16 + 12 + 10; // inside the second record
        let mut f = write_file(&full[..cut]);
        let mut r = CaptureReader::open(f.path()).unwrap();
        assert_eq!(r.next_packet().unwrap().unwrap().data, b"first packet");
        assert!(matches!(
            r.next_packet(),
            Err(CaptureError::Truncated { offset: 52, .. })
        ));
        // tcpdump writes the rest.
        f.write_all(&full[cut..]).unwrap();
        f.flush().unwrap();
        assert_eq!(r.next_packet().unwrap().unwrap().data, b"second");
        assert_eq!(r.next_packet().unwrap().unwrap().data, b"");
        assert!(r.next_packet().unwrap().is_none());
        // And after a clean end, too.
        f.write_all(&pcap_record(false, 200, 0, b"late", 4))
            .unwrap();
        f.flush().unwrap();
        let late = r.next_packet().unwrap().unwrap();
        assert_eq!((late.data, late.ts_sec), (&b"late"[..], 200));
        assert!(r.next_packet().unwrap().is_none());
    }

    #[test]
    fn seek_to_resumes_classic_pcap() {
        let f = write_file(&classic_file(true, PCAP_MAGIC_USEC));
        let mut r = CaptureReader::open(f.path()).unwrap();
        let all = read_all(&mut r);
        let mut r = CaptureReader::open(f.path()).unwrap();
        r.seek_to(all[0].next_offset).unwrap();
        assert_eq!(read_all(&mut r), all[1..]);
        // Backwards too.
        r.seek_to(24).unwrap();
        assert_eq!(read_all(&mut r), all);
        assert!(matches!(
            r.seek_to(3),
            Err(CaptureError::Malformed { offset: 3, .. })
        ));
        assert!(matches!(
            r.seek_to(1 << 40),
            Err(CaptureError::Malformed { .. })
        ));
    }

    #[test]
    fn huge_caplen_is_malformed_after_good_packets() {
        let mut bytes = pcap_header(PCAP_MAGIC_USEC, false, 65535, 1);
        bytes.extend(pcap_record(false, 1, 0, b"ok", 2));
        let bad_at = bytes.len() as u64;
        for v in [1u32, 0, MAX_CAPLEN + 1, 60] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes.extend_from_slice(&[0; 64]);
        let f = write_file(&bytes);
        let mut r = CaptureReader::open(f.path()).unwrap();
        assert!(r.next_packet().unwrap().is_some());
        match r.next_packet() {
            Err(CaptureError::Malformed { offset, reason, .. }) => {
                assert_eq!(offset, bad_at);
                assert!(reason.contains("262145"), "{reason}");
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn max_caplen_record_is_read() {
        let data = vec![0xabu8; MAX_CAPLEN as usize];
        let mut bytes = pcap_header(PCAP_MAGIC_USEC, false, MAX_CAPLEN, 1);
        for i in 0..6 {
            bytes.extend(pcap_record(false, i, 0, &data, MAX_CAPLEN));
        }
        let f = write_file(&bytes);
        let packets = read_all(&mut CaptureReader::open(f.path()).unwrap());
        assert_eq!(packets.len(), 6);
        assert!(packets.iter().all(|p| p.data.len() == MAX_CAPLEN as usize));
    }

    #[test]
    fn spans_many_buffer_refills() {
        // ~3 MiB of odd-sized packets crosses the 1 MiB buffer several times.
        let mut bytes = pcap_header(PCAP_MAGIC_USEC, false, 65535, 1);
        let mut expected = Vec::new();
        for i in 0..3000u32 {
            let data: Vec<u8> = (0..(i % 1500) + 1).map(|b| (b ^ i) as u8).collect();
            bytes.extend(pcap_record(false, i, 0, &data, data.len() as u32));
            expected.push(data);
        }
        let f = write_file(&bytes);
        let packets = read_all(&mut CaptureReader::open(f.path()).unwrap());
        assert_eq!(packets.len(), expected.len());
        for (p, e) in packets.iter().zip(&expected) {
            assert_eq!(&p.data, e);
        }
    }

    #[test]
    fn garbage_is_not_a_capture() {
        let cases: [(&[u8], &str); 5] = [
            (b"", "empty file"),
            (b"ab", "shorter than a 4-byte magic"),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                "unknown magic 0x47455420 at offset 0",
            ),
            (
                &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0],
                "shorter than the 24-byte pcap header",
            ),
            (
                &[0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 1, 2, 3, 4],
                "bad byte-order magic",
            ),
        ];
        for (bytes, want) in cases {
            let f = write_file(bytes);
            match CaptureReader::open(f.path()) {
                Err(CaptureError::NotACapture { reason, path }) => {
                    assert!(reason.contains(want), "{reason:?} lacks {want:?}");
                    assert_eq!(path, f.path());
                }
                other => panic!("expected NotACapture for {bytes:?}, got {other:?}"),
            }
        }
    }

    #[test]
    fn missing_file_is_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pcap");
        assert!(matches!(
            CaptureReader::open(&missing),
            Err(CaptureError::Io { .. })
        ));
    }

    // ----- pcapng ------------------------------------------------------------

    /// SHB, Ethernet IDB (µs default), raw-IP IDB with ns resolution, an NRB to
    /// skip, EPBs on both interfaces and an SPB.
    fn two_interface_pcapng(be: bool) -> Vec<u8> {
        let mut bytes = ng_shb(be);
        bytes.extend(ng_idb(be, 1, 65535, None));
        bytes.extend(ng_idb(be, 101, 0, Some(9)));
        bytes.extend(ng_block(be, 4, &[0, 0, 0, 0])); // name resolution block
        bytes.extend(ng_epb(be, 0, 1_500_000_000_250_000, b"ether frame", 100));
        bytes.extend(ng_epb(be, 1, 1_500_000_001_000_000_007, b"raw ip", 6));
        bytes.extend(ng_spb(be, b"simple"));
        bytes
    }

    #[test]
    fn reads_pcapng_with_two_interfaces_in_both_orders() {
        for be in [false, true] {
            let bytes = two_interface_pcapng(be);
            let f = write_file(&bytes);
            let mut r = CaptureReader::open(f.path()).unwrap();
            assert_eq!(r.format(), CaptureFormat::PcapNg);
            let packets = read_all(&mut r);
            assert_eq!(packets.len(), 3, "big endian: {be}");
            assert_eq!(packets[0].link_type, 1);
            assert_eq!(packets[0].ts, (1_500_000_000, 250_000_000));
            assert_eq!(packets[0].data, b"ether frame");
            assert_eq!(packets[0].orig_len, 100);
            assert_eq!(packets[1].link_type, 101);
            assert_eq!(packets[1].ts, (1_500_000_001, 7));
            assert_eq!(packets[1].data, b"raw ip");
            assert_eq!(packets[2].link_type, 1);
            assert_eq!(packets[2].data, b"simple");
            assert_eq!(packets[2].ts, (0, 0));
            assert_eq!(packets[1].offset, packets[0].next_offset);
            assert_eq!(packets[2].next_offset, bytes.len() as u64);
        }
    }

    #[test]
    fn pcapng_binary_resolution_and_offset() {
        let mut bytes = ng_shb(false);
        // 2^-10 s units, and if_tsoffset of 1000 s.
        let mut body = Vec::new();
        put16(&mut body, false, 1);
        put16(&mut body, false, 0);
        put32(&mut body, false, 0);
        body.extend_from_slice(&[9, 0, 1, 0, 0x8a, 0, 0, 0]);
        body.extend_from_slice(&[14, 0, 8, 0]);
        body.extend_from_slice(&1000i64.to_le_bytes());
        body.extend_from_slice(&[0, 0, 0, 0]);
        bytes.extend(ng_block(false, NG_IDB, &body));
        bytes.extend(ng_epb(false, 0, 5 * 1024 + 512, b"p", 1));
        let f = write_file(&bytes);
        let packets = read_all(&mut CaptureReader::open(f.path()).unwrap());
        assert_eq!(packets[0].ts, (1005, 500_000_000));
    }

    #[test]
    fn pcapng_new_section_resets_interfaces_and_order() {
        let mut bytes = two_interface_pcapng(false);
        bytes.extend(ng_shb(true));
        bytes.extend(ng_idb(true, 113, 0, None));
        bytes.extend(ng_epb(true, 0, 3_000_000, b"cooked", 6));
        let f = write_file(&bytes);
        let packets = read_all(&mut CaptureReader::open(f.path()).unwrap());
        assert_eq!(packets.len(), 4);
        assert_eq!((packets[3].link_type, packets[3].ts), (113, (3, 0)));
    }

    #[test]
    fn pcapng_truncated_and_growing() {
        let bytes = two_interface_pcapng(false);
        let f = write_file(&bytes);
        let all = read_all(&mut CaptureReader::open(f.path()).unwrap());
        // Cut in the middle of the second EPB.
        let cut = all[1].offset as usize + 20;
        let mut f = write_file(&bytes[..cut]);
        let mut r = CaptureReader::open(f.path()).unwrap();
        assert_eq!(own(r.next_packet().unwrap().unwrap()), all[0]);
        match r.next_packet() {
            Err(CaptureError::Truncated { offset, .. }) => assert_eq!(offset, all[1].offset),
            other => panic!("expected Truncated, got {other:?}"),
        }
        f.write_all(&bytes[cut..]).unwrap();
        f.flush().unwrap();
        assert_eq!(read_all(&mut r), all[1..]);
    }

    #[test]
    fn pcapng_seek_to_rescans_interfaces() {
        let bytes = two_interface_pcapng(true);
        let f = write_file(&bytes);
        let all = read_all(&mut CaptureReader::open(f.path()).unwrap());
        // A fresh reader must learn both IDBs before the resume point.
        let mut r = CaptureReader::open(f.path()).unwrap();
        r.seek_to(all[0].next_offset).unwrap();
        assert_eq!(read_all(&mut r), all[1..]);
        // Backwards after reading to the end.
        r.seek_to(all[1].offset).unwrap();
        assert_eq!(read_all(&mut r), all[1..]);
        // Not a boundary, and past the end.
        assert!(matches!(
            r.seek_to(all[1].offset + 4),
            Err(CaptureError::Malformed { .. })
        ));
        assert!(matches!(
            r.seek_to(bytes.len() as u64 + 8),
            Err(CaptureError::Malformed { .. })
        ));
        // Still usable after a failed seek.
        r.seek_to(0).unwrap();
        assert_eq!(read_all(&mut r), all);
    }

    #[test]
    fn pcapng_corrupt_blocks_are_malformed() {
        let good = two_interface_pcapng(false);
        let epb_at =
            good.len() - ng_spb(false, b"simple").len() - ng_epb(false, 1, 0, b"raw ip", 6).len();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            // Length not a multiple of 4.
            (
                {
                    let mut b = good.clone();
                    b[epb_at + 4] += 1;
                    b
                },
                "multiple of 4",
            ),
            // Trailer differs from header length.
            (
                {
                    let mut b = good.clone();
                    let len =
                        u32::from_le_bytes(b[epb_at + 4..epb_at + 8].try_into().unwrap()) as usize;
                    b[epb_at + len - 4] ^= 0x40;
                    b
                },
                "trailer",
            ),
            // caplen larger than the block.
            (
                {
                    let mut b = good.clone();
                    b[epb_at + 20..epb_at + 24].copy_from_slice(&200u32.to_le_bytes());
                    b
                },
                "cannot hold",
            ),
            // caplen above the maximum.
            (
                {
                    let mut b = good.clone();
                    b[epb_at + 20..epb_at + 24].copy_from_slice(&(MAX_CAPLEN + 1).to_le_bytes());
                    b
                },
                "maximum",
            ),
            // Unknown interface.
            (
                {
                    let mut b = good.clone();
                    b[epb_at + 8] = 7;
                    b
                },
                "interface 7",
            ),
            // Huge length claimed for a packet block.
            (
                {
                    let mut b = good.clone();
                    b[epb_at + 4..epb_at + 8].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
                    b
                },
                "more than the maximum",
            ),
        ];
        for (bytes, want) in cases {
            let f = write_file(&bytes);
            let mut r = CaptureReader::open(f.path()).unwrap();
            assert!(r.next_packet().unwrap().is_some());
            match r.next_packet() {
                Err(CaptureError::Malformed { offset, reason, .. }) => {
                    assert_eq!(offset, epb_at as u64);
                    assert!(reason.contains(want), "{reason:?} lacks {want:?}");
                }
                other => panic!("expected Malformed ({want}), got {other:?}"),
            }
        }
    }

    #[test]
    fn pcapng_huge_unknown_block_is_skipped_or_truncated() {
        let mut bytes = ng_shb(false);
        bytes.extend(ng_idb(false, 1, 0, None));
        bytes.extend(ng_block(false, 0x0bad, &vec![7u8; 2 * BUF_SIZE]));
        bytes.extend(ng_epb(false, 0, 0, b"after", 5));
        let f = write_file(&bytes);
        let packets = read_all(&mut CaptureReader::open(f.path()).unwrap());
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0].data, b"after");
        // The same block cut short is Truncated, not skipped.
        let cut = bytes.len() - 100 - ng_epb(false, 0, 0, b"after", 5).len();
        let f = write_file(&bytes[..cut]);
        let mut r = CaptureReader::open(f.path()).unwrap();
        assert!(matches!(
            r.next_packet(),
            Err(CaptureError::Truncated { .. })
        ));
    }

    #[test]
    fn pcapng_packet_before_interface_is_malformed() {
        let mut bytes = ng_shb(false);
        bytes.extend(ng_epb(false, 0, 0, b"x", 1));
        let f = write_file(&bytes);
        let mut r = CaptureReader::open(f.path()).unwrap();
        assert!(matches!(
            r.next_packet(),
            Err(CaptureError::Malformed { offset: 28, .. })
        ));
    }

    #[test]
    fn ts_conversion() {
        assert_eq!(to_sec_nsec(1_000_001, 1_000_000, 0), (1, 1_000));
        assert_eq!(to_sec_nsec(3, 10, -1), (0, 300_000_000));
        assert_eq!(to_sec_nsec(u64::MAX, 1 << 63, 0), (1, 999_999_999));
        assert_eq!(units_per_sec(6), Some(1_000_000));
        assert_eq!(units_per_sec(20), None);
        assert_eq!(units_per_sec(0x80 | 63), Some(1 << 63));
    }
}
