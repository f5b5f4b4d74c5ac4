//! Segment file format, version 1: building, parsing and block access.
//!
//! Owns the byte layout of a segment (docs/STORAGE.md §2): a fixed header,
//! independently decodable zstd blocks of at most 64 KiB of raw items, a block
//! table and a trailer. A segment's id is the blake3 hash of all its bytes.
//! Does not touch the filesystem layout or the index: `store` places files,
//! this module only turns items into bytes and bytes back into items.

use std::io::{Read, Seek, SeekFrom};

use super::SegmentId;

/// File magic at offset 0 (docs/STORAGE.md §2.1).
pub const MAGIC: &[u8; 8] = b"LUMPYSEG";
/// Trailer magic, the last 8 bytes of every segment (§2.4).
pub const END_MAGIC: &[u8; 8] = b"LUMPYEND";
/// Segment format version written by this code (§2.1).
pub const FORMAT_VERSION: u16 = 1;
/// Size of the fixed header (§2.1).
pub const HEADER_LEN: usize = 64;
/// Size of one block table entry (§2.3).
pub const BLOCK_ENTRY_LEN: usize = 24;
/// Size of the trailer (§2.4).
pub const TRAILER_LEN: usize = 32;
/// Raw bytes a block holds at most, unless one item alone is larger (§2.2).
pub const BLOCK_RAW_TARGET: usize = 64 * 1024;
/// Largest raw size of one block a reader accepts: one maximal packet item.
pub const BLOCK_RAW_MAX: usize = 256 * 1024 + PCAP_ITEM_HEADER_LEN;
/// Largest number of blocks a reader accepts in one segment.
pub const MAX_BLOCKS: u32 = 1 << 20;
/// Codec id of zstd (§2.1).
pub const CODEC_ZSTD: u8 = 1;
/// Length of the per-packet header inside a pcap block (§3).
pub const PCAP_ITEM_HEADER_LEN: usize = 20;

/// What a segment holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Packets of one sensor, one link type (§3).
    Pcap = 1,
    /// Records as JSON lines (§4).
    Records = 2,
}

impl Kind {
    pub fn from_u8(v: u8) -> Option<Kind> {
        match v {
            1 => Some(Kind::Pcap),
            2 => Some(Kind::Records),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Pcap => "pcap",
            Kind::Records => "records",
        }
    }
}

/// The fixed header fields of a segment (§2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub sensor_id: u32,
    pub link_type: u32,
    /// Pcap: the snapshot length of the capture the packets came from
    /// (0 when unknown); records: 0.
    pub snaplen: u32,
    pub origin_seq: u64,
    pub time_first_ns: u64,
    pub time_last_ns: u64,
    pub item_count: u64,
}

/// One block table entry (§2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockEntry {
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
    pub first_item: u32,
    pub item_count: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("segment is {len} bytes, shorter than header and trailer")]
    TooShort { len: u64 },
    #[error("bad magic: not a lumpy segment")]
    BadMagic,
    #[error("segment format version {0} is not supported (this lumpy reads version 1)")]
    UnsupportedVersion(u16),
    #[error("unknown segment kind {0}")]
    UnknownKind(u8),
    #[error("unknown codec {0}")]
    UnknownCodec(u8),
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("block {index} does not exist (segment has {count})")]
    NoSuchBlock { index: u32, count: u32 },
    #[error("block {index}: zstd: {detail}")]
    Decompress { index: u32, detail: String },
    #[error("compressing a block: {0}")]
    Compress(std::io::Error),
    #[error("reading segment: {0}")]
    Io(#[from] std::io::Error),
}

fn corrupt(what: &'static str, detail: impl Into<String>) -> SegmentError {
    SegmentError::Corrupt {
        what,
        detail: detail.into(),
    }
}

/// Accumulates items into raw blocks and produces the bytes of one segment.
///
/// Filling and sealing are split on purpose: filling only copies bytes (block
/// numbers are fixed as items arrive, so a flow index can name them at once),
/// and all compression and hashing happen in [`SegmentBuilder::seal_with`],
/// which ingest runs on another thread than the packet decoder.
pub struct SegmentBuilder {
    kind: Kind,
    sensor_id: u32,
    link_type: u32,
    snaplen: u32,
    level: i32,
    /// Closed raw blocks with (first item, item count).
    raw_blocks: Vec<RawBlock>,
    current: Vec<u8>,
    current_items: u32,
    item_count: u64,
    raw_total: u64,
    time_first_ns: u64,
    time_last_ns: u64,
}

/// A raw block of a builder: its bytes, first item and item count.
type RawBlock = (Vec<u8>, u32, u32);

/// A reusable zstd context at one level: making one per block costs more than
/// compressing a small block, so a sealer keeps one across segments.
pub struct BlockCompressor {
    level: i32,
    zstd: zstd::bulk::Compressor<'static>,
    scratch: Vec<u8>,
}

impl BlockCompressor {
    pub fn new(level: i32) -> Result<Self, SegmentError> {
        Ok(BlockCompressor {
            level,
            zstd: zstd::bulk::Compressor::new(level).map_err(SegmentError::Compress)?,
            scratch: Vec::new(),
        })
    }

    pub fn level(&self) -> i32 {
        self.level
    }

    /// Appends every block, compressed and in order, to `out` and returns
    /// their table entries (offsets are positions in `out`).
    fn compress_blocks(
        &mut self,
        raw: &[RawBlock],
        out: &mut Vec<u8>,
    ) -> Result<Vec<BlockEntry>, SegmentError> {
        let mut entries = Vec::with_capacity(raw.len());
        for (bytes, first_item, item_count) in raw {
            self.scratch.clear();
            self.scratch
                .reserve(zstd::zstd_safe::compress_bound(bytes.len()));
            self.zstd
                .compress_to_buffer(bytes, &mut self.scratch)
                .map_err(SegmentError::Compress)?;
            entries.push(BlockEntry {
                offset: out.len() as u64,
                stored_len: self.scratch.len() as u32,
                raw_len: bytes.len() as u32,
                first_item: *first_item,
                item_count: *item_count,
            });
            out.extend_from_slice(&self.scratch);
        }
        Ok(entries)
    }
}

/// A finished segment: its id, bytes and header.
pub struct SealedSegment {
    pub id: SegmentId,
    pub bytes: Vec<u8>,
    pub header: Header,
    pub raw_bytes: u64,
    pub block_count: u32,
}

impl SegmentBuilder {
    pub fn new(kind: Kind, sensor_id: u32, link_type: u32, level: i32) -> Self {
        SegmentBuilder {
            kind,
            sensor_id,
            link_type,
            snaplen: 0,
            level,
            raw_blocks: Vec::new(),
            current: Vec::with_capacity(BLOCK_RAW_TARGET),
            current_items: 0,
            item_count: 0,
            raw_total: 0,
            time_first_ns: u64::MAX,
            time_last_ns: 0,
        }
    }

    /// Records the capture's snapshot length in the header (pcap segments).
    pub fn with_snaplen(mut self, snaplen: u32) -> Self {
        self.snaplen = snaplen;
        self
    }

    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn link_type(&self) -> u32 {
        self.link_type
    }

    pub fn is_empty(&self) -> bool {
        self.item_count == 0
    }

    pub fn item_count(&self) -> u64 {
        self.item_count
    }

    /// Raw bytes added so far.
    pub fn raw_len(&self) -> u64 {
        self.raw_total
    }

    /// Index of the block the next item of `len` bytes will land in.
    fn block_for(&mut self, len: usize) -> Result<u32, SegmentError> {
        if !self.current.is_empty() && self.current.len() + len > BLOCK_RAW_TARGET {
            self.flush_block()?;
        }
        Ok(self.raw_blocks.len() as u32)
    }

    /// Adds one pcap item (§3) and returns the block it lands in.
    pub fn push_packet(
        &mut self,
        ts_ns: u64,
        flow_id: u32,
        orig_len: u32,
        data: &[u8],
    ) -> Result<u32, SegmentError> {
        let block = self.block_for(PCAP_ITEM_HEADER_LEN + data.len())?;
        self.current.extend_from_slice(&ts_ns.to_le_bytes());
        self.current.extend_from_slice(&flow_id.to_le_bytes());
        self.current.extend_from_slice(&orig_len.to_le_bytes());
        self.current
            .extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.current.extend_from_slice(data);
        self.note_item(ts_ns, PCAP_ITEM_HEADER_LEN + data.len());
        Ok(block)
    }

    /// Adds one record item (a JSON line, newline included) (§4).
    pub fn push_record_line(&mut self, ts_ns: u64, line: &[u8]) -> Result<u32, SegmentError> {
        let block = self.block_for(line.len())?;
        self.current.extend_from_slice(line);
        self.note_item(ts_ns, line.len());
        Ok(block)
    }

    fn note_item(&mut self, ts_ns: u64, len: usize) {
        self.current_items += 1;
        self.item_count += 1;
        self.raw_total += len as u64;
        self.time_first_ns = self.time_first_ns.min(ts_ns);
        self.time_last_ns = self.time_last_ns.max(ts_ns);
    }

    fn flush_block(&mut self) -> Result<(), SegmentError> {
        if self.current.is_empty() {
            return Ok(());
        }
        let first_item = (self.item_count - u64::from(self.current_items)) as u32;
        let raw = std::mem::replace(&mut self.current, Vec::with_capacity(BLOCK_RAW_TARGET));
        self.raw_blocks.push((raw, first_item, self.current_items));
        self.current_items = 0;
        Ok(())
    }

    /// Closes the last block and lays out the file with origin sequence `seq`.
    pub fn seal(self, origin_seq: u64) -> Result<SealedSegment, SegmentError> {
        let mut compressor = BlockCompressor::new(self.level)?;
        self.seal_with(origin_seq, &mut compressor)
    }

    /// [`SegmentBuilder::seal`] with a caller's compressor (which must be at
    /// this builder's level: the bytes, hence the id, depend on it).
    pub fn seal_with(
        mut self,
        origin_seq: u64,
        compressor: &mut BlockCompressor,
    ) -> Result<SealedSegment, SegmentError> {
        if compressor.level() != self.level {
            *compressor = BlockCompressor::new(self.level)?;
        }
        self.flush_block()?;
        let header = Header {
            kind: self.kind,
            sensor_id: self.sensor_id,
            link_type: self.link_type,
            snaplen: self.snaplen,
            origin_seq,
            time_first_ns: if self.item_count == 0 {
                0
            } else {
                self.time_first_ns
            },
            time_last_ns: self.time_last_ns,
            item_count: self.item_count,
        };
        // Header, blocks, table and trailer go straight into one buffer
        // (the header does not depend on the compressed sizes).
        let table_len = self.raw_blocks.len() * BLOCK_ENTRY_LEN;
        let mut bytes =
            Vec::with_capacity(HEADER_LEN + self.raw_total as usize / 2 + table_len + TRAILER_LEN);
        write_header(&header, &mut bytes);
        let blocks = compressor.compress_blocks(&self.raw_blocks, &mut bytes)?;
        let table_offset = bytes.len() as u64;
        for b in &blocks {
            bytes.extend_from_slice(&b.offset.to_le_bytes());
            bytes.extend_from_slice(&b.stored_len.to_le_bytes());
            bytes.extend_from_slice(&b.raw_len.to_le_bytes());
            bytes.extend_from_slice(&b.first_item.to_le_bytes());
            bytes.extend_from_slice(&b.item_count.to_le_bytes());
        }
        bytes.extend_from_slice(&(blocks.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&[0u8; 4]);
        bytes.extend_from_slice(&table_offset.to_le_bytes());
        bytes.extend_from_slice(&self.raw_total.to_le_bytes());
        bytes.extend_from_slice(END_MAGIC);
        Ok(SealedSegment {
            id: SegmentId::of(&bytes),
            block_count: blocks.len() as u32,
            raw_bytes: self.raw_total,
            header,
            bytes,
        })
    }
}

fn write_header(h: &Header, out: &mut Vec<u8>) {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.push(h.kind as u8);
    out.push(CODEC_ZSTD);
    out.extend_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    out.extend_from_slice(&h.sensor_id.to_le_bytes());
    out.extend_from_slice(&h.link_type.to_le_bytes());
    out.extend_from_slice(&h.origin_seq.to_le_bytes());
    out.extend_from_slice(&h.time_first_ns.to_le_bytes());
    out.extend_from_slice(&h.time_last_ns.to_le_bytes());
    out.extend_from_slice(&h.item_count.to_le_bytes());
    out.extend_from_slice(&h.snaplen.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Parses and checks the 64-byte header.
pub fn parse_header(b: &[u8]) -> Result<Header, SegmentError> {
    if b.len() < HEADER_LEN {
        return Err(SegmentError::TooShort {
            len: b.len() as u64,
        });
    }
    if &b[0..8] != MAGIC {
        return Err(SegmentError::BadMagic);
    }
    let version = le_u16(b, 8);
    if version != FORMAT_VERSION {
        return Err(SegmentError::UnsupportedVersion(version));
    }
    let kind = Kind::from_u8(b[10]).ok_or(SegmentError::UnknownKind(b[10]))?;
    if b[11] != CODEC_ZSTD {
        return Err(SegmentError::UnknownCodec(b[11]));
    }
    if le_u32(b, 12) as usize != HEADER_LEN {
        return Err(corrupt(
            "header",
            format!("header length {}", le_u32(b, 12)),
        ));
    }
    if b[60..64].iter().any(|x| *x != 0) {
        return Err(corrupt("header", "reserved bytes are not zero"));
    }
    Ok(Header {
        kind,
        sensor_id: le_u32(b, 16),
        link_type: le_u32(b, 20),
        origin_seq: le_u64(b, 24),
        time_first_ns: le_u64(b, 32),
        time_last_ns: le_u64(b, 40),
        item_count: le_u64(b, 48),
        snaplen: le_u32(b, 56),
    })
}

/// Trailer fields (§2.4).
#[derive(Clone, Copy, Debug)]
struct Trailer {
    block_count: u32,
    table_offset: u64,
    raw_total: u64,
}

fn parse_trailer(t: &[u8], file_len: u64) -> Result<Trailer, SegmentError> {
    if &t[24..32] != END_MAGIC {
        return Err(corrupt("trailer", "end magic missing"));
    }
    let block_count = le_u32(t, 0);
    let table_offset = le_u64(t, 8);
    let raw_total = le_u64(t, 16);
    if block_count > MAX_BLOCKS {
        return Err(corrupt("trailer", format!("{block_count} blocks")));
    }
    // Checked: a table offset near u64::MAX must not wrap around to a
    // length that fits (found by the `segment` fuzz target).
    let file_end = table_offset
        .checked_add(u64::from(block_count) * BLOCK_ENTRY_LEN as u64)
        .and_then(|end| end.checked_add(TRAILER_LEN as u64))
        .ok_or_else(|| corrupt("trailer", "table offset overflows"))?;
    if table_offset < HEADER_LEN as u64 || file_end != file_len {
        return Err(corrupt(
            "trailer",
            format!(
                "block table at {table_offset} with {block_count} entries does not fit a {file_len}-byte file"
            ),
        ));
    }
    Ok(Trailer {
        block_count,
        table_offset,
        raw_total,
    })
}

fn parse_table(table: &[u8], table_offset: u64) -> Result<Vec<BlockEntry>, SegmentError> {
    let mut blocks = Vec::with_capacity(table.len() / BLOCK_ENTRY_LEN);
    let mut expected_offset = HEADER_LEN as u64;
    let mut expected_item = 0u64;
    for (i, e) in table.chunks_exact(BLOCK_ENTRY_LEN).enumerate() {
        let entry = BlockEntry {
            offset: le_u64(e, 0),
            stored_len: le_u32(e, 8),
            raw_len: le_u32(e, 12),
            first_item: le_u32(e, 16),
            item_count: le_u32(e, 20),
        };
        // Blocks are contiguous and in item order; anything else is damage.
        if entry.offset != expected_offset
            || u64::from(entry.first_item) != expected_item
            || entry.raw_len as usize > BLOCK_RAW_MAX
            || entry.item_count == 0
        {
            return Err(corrupt("block table", format!("entry {i} is inconsistent")));
        }
        expected_offset += u64::from(entry.stored_len);
        expected_item += u64::from(entry.item_count);
        blocks.push(entry);
    }
    if expected_offset != table_offset {
        return Err(corrupt(
            "block table",
            "blocks do not end where the table starts",
        ));
    }
    Ok(blocks)
}

/// A parsed segment held in memory.
pub struct SegmentView<'a> {
    bytes: &'a [u8],
    pub header: Header,
    pub blocks: Vec<BlockEntry>,
    pub raw_total: u64,
}

impl<'a> SegmentView<'a> {
    /// Checks the structure (header, trailer, block table); not the hash.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, SegmentError> {
        let len = bytes.len() as u64;
        if bytes.len() < HEADER_LEN + TRAILER_LEN {
            return Err(SegmentError::TooShort { len });
        }
        let header = parse_header(bytes)?;
        let trailer = parse_trailer(&bytes[bytes.len() - TRAILER_LEN..], len)?;
        let start = trailer.table_offset as usize;
        let end = bytes.len() - TRAILER_LEN;
        let blocks = parse_table(&bytes[start..end], trailer.table_offset)?;
        check_counts(&header, &blocks, trailer.block_count)?;
        Ok(SegmentView {
            bytes,
            header,
            blocks,
            raw_total: trailer.raw_total,
        })
    }

    /// Decompresses block `index`.
    pub fn block(&self, index: u32) -> Result<Vec<u8>, SegmentError> {
        let entry = self.entry(index)?;
        let start = entry.offset as usize;
        let stored = &self.bytes[start..start + entry.stored_len as usize];
        decompress_block(index, stored, entry.raw_len)
    }

    fn entry(&self, index: u32) -> Result<BlockEntry, SegmentError> {
        self.blocks
            .get(index as usize)
            .copied()
            .ok_or(SegmentError::NoSuchBlock {
                index,
                count: self.blocks.len() as u32,
            })
    }
}

fn check_counts(header: &Header, blocks: &[BlockEntry], count: u32) -> Result<(), SegmentError> {
    let items: u64 = blocks.iter().map(|b| u64::from(b.item_count)).sum();
    if blocks.len() as u32 != count || items != header.item_count {
        return Err(corrupt("block table", "item count differs from the header"));
    }
    Ok(())
}

/// Decompresses one stored block and checks its raw length.
pub fn decompress_block(index: u32, stored: &[u8], raw_len: u32) -> Result<Vec<u8>, SegmentError> {
    thread_local! {
        /// One zstd context per thread: making one per block cost more than
        /// decompressing a small segment's block (a first sync of many
        /// small segments).
        static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let raw = DCTX
        .with(|cell| {
            let mut slot = cell.try_borrow_mut().map_err(std::io::Error::other)?;
            let dctx = match slot.as_mut() {
                Some(d) => d,
                None => slot.insert(zstd::bulk::Decompressor::new()?),
            };
            dctx.decompress(stored, raw_len as usize)
        })
        .map_err(|e| SegmentError::Decompress {
            index,
            detail: e.to_string(),
        })?;
    if raw.len() != raw_len as usize {
        return Err(SegmentError::Decompress {
            index,
            detail: format!("{} bytes instead of {raw_len}", raw.len()),
        });
    }
    Ok(raw)
}

/// Random access to the blocks of a segment file without reading all of it.
pub struct SegmentFile {
    file: std::fs::File,
    pub header: Header,
    pub blocks: Vec<BlockEntry>,
    /// Bytes of the items before compression (the trailer's total).
    pub raw_total: u64,
}

impl SegmentFile {
    pub fn open(mut file: std::fs::File) -> Result<Self, SegmentError> {
        let len = file.metadata()?.len();
        if len < (HEADER_LEN + TRAILER_LEN) as u64 {
            return Err(SegmentError::TooShort { len });
        }
        let mut head = [0u8; HEADER_LEN];
        file.read_exact(&mut head)?;
        let header = parse_header(&head)?;
        let mut tail = [0u8; TRAILER_LEN];
        file.seek(SeekFrom::Start(len - TRAILER_LEN as u64))?;
        file.read_exact(&mut tail)?;
        let trailer = parse_trailer(&tail, len)?;
        let mut table = vec![0u8; trailer.block_count as usize * BLOCK_ENTRY_LEN];
        file.seek(SeekFrom::Start(trailer.table_offset))?;
        file.read_exact(&mut table)?;
        let blocks = parse_table(&table, trailer.table_offset)?;
        check_counts(&header, &blocks, trailer.block_count)?;
        Ok(SegmentFile {
            file,
            header,
            blocks,
            raw_total: trailer.raw_total,
        })
    }

    /// Reads and decompresses block `index` alone.
    pub fn block(&mut self, index: u32) -> Result<Vec<u8>, SegmentError> {
        let entry = *self
            .blocks
            .get(index as usize)
            .ok_or(SegmentError::NoSuchBlock {
                index,
                count: self.blocks.len() as u32,
            })?;
        let mut stored = vec![0u8; entry.stored_len as usize];
        self.file.seek(SeekFrom::Start(entry.offset))?;
        self.file.read_exact(&mut stored)?;
        decompress_block(index, &stored, entry.raw_len)
    }
}

/// One packet item of a pcap block (§3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketItem<'a> {
    pub ts_ns: u64,
    pub flow_id: u32,
    pub orig_len: u32,
    pub data: &'a [u8],
}

/// Iterates over the packet items of a decompressed pcap block.
pub fn packet_items(block: &[u8]) -> impl Iterator<Item = Result<PacketItem<'_>, SegmentError>> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if at >= block.len() {
            return None;
        }
        let rest = &block[at..];
        if rest.len() < PCAP_ITEM_HEADER_LEN {
            at = block.len();
            return Some(Err(corrupt("pcap block", "item header cut short")));
        }
        let cap_len = le_u32(rest, 16) as usize;
        if rest.len() < PCAP_ITEM_HEADER_LEN + cap_len {
            at = block.len();
            return Some(Err(corrupt("pcap block", "item data cut short")));
        }
        let item = PacketItem {
            ts_ns: le_u64(rest, 0),
            flow_id: le_u32(rest, 8),
            orig_len: le_u32(rest, 12),
            data: &rest[PCAP_ITEM_HEADER_LEN..PCAP_ITEM_HEADER_LEN + cap_len],
        };
        at += PCAP_ITEM_HEADER_LEN + cap_len;
        Some(Ok(item))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SealedSegment {
        let mut b = SegmentBuilder::new(Kind::Pcap, 42, 1, 1);
        for i in 0..5000u32 {
            let data = vec![(i % 251) as u8; 60 + (i as usize % 200)];
            b.push_packet(1_000_000_000 * u64::from(i), i % 7, 1500, &data)
                .unwrap();
        }
        b.seal(9).unwrap()
    }

    #[test]
    fn round_trip_and_blocks_stay_small() {
        let s = sample();
        assert_eq!(s.id, SegmentId::of(&s.bytes));
        let v = SegmentView::parse(&s.bytes).unwrap();
        assert_eq!(v.header.sensor_id, 42);
        assert_eq!(v.header.origin_seq, 9);
        assert_eq!(v.header.item_count, 5000);
        assert!(v.blocks.len() > 1);
        let mut n = 0;
        for (i, e) in v.blocks.iter().enumerate() {
            assert!(e.raw_len as usize <= BLOCK_RAW_TARGET);
            let raw = v.block(i as u32).unwrap();
            for item in packet_items(&raw) {
                let item = item.unwrap();
                assert_eq!(item.ts_ns, 1_000_000_000 * n);
                assert_eq!(item.flow_id, (n % 7) as u32);
                n += 1;
            }
        }
        assert_eq!(n, 5000);
    }

    #[test]
    fn a_table_offset_near_the_end_of_u64_is_damage_not_a_panic() {
        // The `segment` fuzz target's finding: offset + table + trailer wrapped.
        let mut bytes = sample().bytes;
        let n = bytes.len();
        let t = &mut bytes[n - TRAILER_LEN..];
        t[0..4].copy_from_slice(&1u32.to_le_bytes());
        t[8..16].copy_from_slice(&(u64::MAX - 40).to_le_bytes());
        assert!(SegmentView::parse(&bytes).is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("seg");
        std::fs::write(&p, &bytes).unwrap();
        assert!(SegmentFile::open(std::fs::File::open(&p).unwrap()).is_err());
    }

    #[test]
    fn same_items_same_id() {
        assert_eq!(sample().id, sample().id);
    }

    #[test]
    fn file_access_reads_one_block() {
        let s = sample();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("seg");
        std::fs::write(&p, &s.bytes).unwrap();
        let mut f = SegmentFile::open(std::fs::File::open(&p).unwrap()).unwrap();
        let last = f.blocks.len() as u32 - 1;
        let raw = f.block(last).unwrap();
        assert!(packet_items(&raw).all(|r| r.is_ok()));
        assert!(matches!(
            f.block(last + 1),
            Err(SegmentError::NoSuchBlock { .. })
        ));
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let s = sample();
        for pos in [
            0usize,
            9,
            10,
            20,
            70,
            s.bytes.len() / 2,
            s.bytes.len() - 40,
            s.bytes.len() - 1,
        ] {
            let mut b = s.bytes.clone();
            b[pos] ^= 0x40;
            // Either the structure check or a block decode must notice, or the
            // flipped byte is inside a field that only the hash protects.
            if let Ok(v) = SegmentView::parse(&b) {
                for i in 0..v.blocks.len() as u32 {
                    let _ = v.block(i);
                }
            }
            assert_ne!(SegmentId::of(&b), s.id);
        }
        for cut in [0usize, 10, 63, 64, 100, s.bytes.len() - 1] {
            assert!(SegmentView::parse(&s.bytes[..cut]).is_err());
        }
    }

    #[test]
    fn oversized_item_gets_its_own_block() {
        let mut b = SegmentBuilder::new(Kind::Pcap, 1, 1, 1);
        b.push_packet(0, 1, 100, &[1u8; 100]).unwrap();
        let big = vec![2u8; 200_000];
        assert_eq!(b.push_packet(1, 1, 200_000, &big).unwrap(), 1);
        assert_eq!(b.push_packet(2, 1, 100, &[3u8; 100]).unwrap(), 2);
        let s = b.seal(1).unwrap();
        let v = SegmentView::parse(&s.bytes).unwrap();
        assert_eq!(v.blocks.len(), 3);
        assert_eq!(v.blocks[1].item_count, 1);
    }
}
