//! The open-flow table of one sensor, in a fixed memory budget.
//!
//! A honeywall's traffic is written by its attackers: a spoofed-source SYN
//! flood makes every packet a flow of its own, so the number of open flows
//! is the attacker's to choose. The table therefore has a byte budget
//! (`capture.flow_table_mib`) and, when it is full, closes the flows idle
//! the longest ("evicted": their last row says so), as flow meters do under
//! pressure (argus, Zeek and nProbe all cap their flow caches).
//!
//! Layout, chosen so that a one-packet flow costs at most 64 bytes of the
//! budget: every flow is a 48-byte [`Slot`] in one vector, found through a
//! hash table of 4-byte slot numbers (keyed with a per-process random seed,
//! so crafted addresses cannot make the table degrade into a list). What
//! most flows of a flood never need (a second direction, ICMP error
//! counters, counts beyond 32 bits, IPv6 addresses, an ICMP flow's first
//! type and code) lives in a 128-byte
//! [`Ext`] that a flow gets the first time it needs it.
//!
//! Which flows expire, which are evicted and which rows are published
//! depend only on the set of flows and the packets, never on where a flow
//! sits in memory, so a table restored from persisted flows behaves as the
//! one that was persisted.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr};

use hashbrown::{DefaultHashBuilder, HashTable};

use super::{
    DEFAULT_TIMEOUT_NS, DirState, ESTABLISHED_TIMEOUT_NS, Endpoint, FRAGMENT_TIMEOUT_NS, FlowKey,
    FlowState, TableCounters, icmp_bit,
};
use crate::capture::NetInfo;
use crate::net::IpNet;
use crate::records::{FlowRecord, IcmpFirst};

const TCP: u8 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// No slot / no extension.
const NONE: u32 = u32::MAX;

/// `Slot::bits`: the initiator is inside a honeypot network.
const LOCAL: u8 = 1;
/// `Slot::bits`: changed since the last published row.
const DIRTY: u8 = 2;

/// Bytes the budget charges for a flow's slot.
pub const SLOT_BYTES: usize = std::mem::size_of::<Slot>();
/// Bytes the budget charges for a flow's extension.
pub const EXT_BYTES: usize = std::mem::size_of::<Ext>();
/// The most budget a flow may cost (slot and its share of the hash index);
/// the index is sized for `budget / FLOW_BYTES_MAX` flows.
pub const FLOW_BYTES_MAX: usize = 64;
/// Bytes per bucket of the hash index (a 4-byte slot number and a control
/// byte).
const INDEX_BUCKET_BYTES: usize = 5;
/// At most this many fragment ids are remembered at once: a flood of first
/// fragments cannot grow the table beyond it (later fragments of ids not
/// remembered are counted in a flow of their own addresses).
pub const MAX_FRAGMENTS: usize = 16_384;
/// At most this many flows are closed (timed out or evicted) between two
/// record segments, so that one segment, and the memory that builds it,
/// stays bounded however many flows time out at once.
pub const MAX_CLOSED_PER_SEGMENT: usize = 16_384;
/// Rows waiting for a record segment (changed and closed flows) after which
/// ingest seals one, whatever the size of its pcap segment: in a flood every
/// packet is a new flow, and each row is held in memory until the mirror has
/// it, in every segment between the packet thread and the mirror.
pub const MAX_ROWS_PER_SEGMENT: usize = 16_384;
/// An eviction pass closes about this fraction (1/N) of the open flows.
const EVICT_FRACTION: usize = 64;
/// Flows sampled to find an eviction pass's idle-time threshold.
const EVICT_SAMPLES: usize = 1024;

/// One open flow, compactly: the key of an IPv4 flow and the initiator's
/// counters inline; everything else in `ext`.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// Initiator's first and last packet (when `ext` is NONE).
    first_ns: u64,
    last_ns: u64,
    /// IPv4 endpoints (when `ext` is NONE; an IPv6 flow always has an ext).
    src_ip: u32,
    dst_ip: u32,
    src_port: u16,
    dst_port: u16,
    /// 0: the slot is free.
    flow_id: u32,
    /// Initiator's packets and bytes (when `ext` is NONE).
    packets: u32,
    bytes: u32,
    ext: u32,
    proto: u8,
    ip_flags: u8,
    tcp_flags: u8,
    bits: u8,
}

/// What a flow needs beyond a slot: both directions in full and any
/// address family.
#[derive(Clone, Copy, Debug)]
struct Ext {
    src: Endpoint,
    dst: Endpoint,
    from_src: DirState,
    from_dst: DirState,
    /// ICMP type and code of the flow's first packet.
    icmp_first: Option<IcmpFirst>,
}

/// A closed flow waiting for the next record segment.
#[derive(Clone, Debug)]
struct Closed {
    flow: FlowState,
    evicted: bool,
}

/// The output of [`FlowTable::take_changes`].
#[derive(Default, Debug)]
pub struct Changes {
    /// Row versions to publish, by flow id.
    pub records: Vec<FlowRecord>,
}

/// Key of a fragmented datagram: (src, dst, protocol, id).
pub type FragKey = (IpAddr, IpAddr, u8, u32);

/// What `observe` did with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    pub flow_id: u32,
}

/// The flows of one sensor.
pub struct FlowTable {
    sensor_id: u32,
    local_nets: Vec<IpNet>,
    next_flow_id: u32,
    latest_ns: u64,
    budget_bytes: usize,
    max_flows: usize,
    hasher: DefaultHashBuilder,
    index: HashTable<u32>,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    exts: Vec<Ext>,
    free_exts: Vec<u32>,
    live: usize,
    fragments: BTreeMap<FragKey, (FlowKey, u64)>,
    dirty: Vec<u32>,
    closed: Vec<Closed>,
    /// No open flow expires before this time (a lower bound, kept exact
    /// enough that `expire` scans only when something may have expired).
    next_expiry_ns: u64,
    /// Flows evicted under pressure, since the sensor's first packet.
    evicted: u64,
}

impl FlowTable {
    /// An empty table holding at most `budget_bytes` of open flows.
    pub fn new(sensor_id: u32, local_nets: Vec<IpNet>, budget_bytes: usize) -> Self {
        let budget_bytes = budget_bytes.max(FLOW_BYTES_MAX * 16);
        FlowTable {
            sensor_id,
            local_nets,
            next_flow_id: 1,
            latest_ns: 0,
            budget_bytes,
            max_flows: budget_bytes / FLOW_BYTES_MAX,
            hasher: DefaultHashBuilder::default(),
            index: HashTable::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            exts: Vec::new(),
            free_exts: Vec::new(),
            live: 0,
            fragments: BTreeMap::new(),
            dirty: Vec::new(),
            closed: Vec::new(),
            next_expiry_ns: u64::MAX,
            evicted: 0,
        }
    }

    /// Restores a table from its persisted counters and open flows.
    pub fn restore(
        sensor_id: u32,
        local_nets: Vec<IpNet>,
        budget_bytes: usize,
        counters: TableCounters,
        flows: impl IntoIterator<Item = FlowState>,
    ) -> Self {
        let mut t = FlowTable::new(sensor_id, local_nets, budget_bytes);
        t.next_flow_id = counters.next_flow_id.max(1);
        t.latest_ns = counters.latest_ns;
        t.evicted = counters.evicted;
        for (k, f, ts) in counters.fragments {
            if t.fragments.len() < MAX_FRAGMENTS {
                t.fragments.insert(k, (f, ts));
            }
        }
        for f in flows {
            t.insert_state(&f);
        }
        t
    }

    /// The persisted part of the table besides its open flows.
    pub fn counters(&self) -> TableCounters {
        TableCounters {
            next_flow_id: self.next_flow_id,
            latest_ns: self.latest_ns,
            fragments: self
                .fragments
                .iter()
                .map(|(k, (f, ts))| (*k, *f, *ts))
                .collect(),
            evicted: self.evicted,
        }
    }

    /// The highest flow id this table has assigned (0: none yet).
    pub fn last_flow_id(&self) -> u32 {
        self.next_flow_id.saturating_sub(1)
    }

    /// Makes flows created from now on take ids above `max` (ids that a
    /// legacy import keeps for its own rows).
    pub fn reserve_ids(&mut self, max: u32) {
        if self.next_flow_id <= max {
            self.next_flow_id = max.saturating_add(1);
        }
    }

    pub fn open_count(&self) -> usize {
        self.live
    }

    pub fn latest_ns(&self) -> u64 {
        self.latest_ns
    }

    /// Flows evicted under pressure so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Budget bytes in use: live slots and extensions, and the hash index.
    pub fn bytes_used(&self) -> usize {
        self.live * SLOT_BYTES
            + (self.exts.len() - self.free_exts.len()) * EXT_BYTES
            + self.index_bytes()
    }

    fn index_bytes(&self) -> usize {
        // hashbrown keeps at least 1/8 of its buckets empty.
        let buckets = (self.max_flows * 8 / 7).next_power_of_two();
        buckets * INDEX_BUCKET_BYTES
    }

    /// Newest packet time (seconds), for the sensor's `last_upd_sec`.
    pub fn newest_end_sec(&self) -> u32 {
        (self.latest_ns / 1_000_000_000) as u32
    }

    /// Rows the next record segment would hold (an upper bound).
    pub fn pending_rows(&self) -> usize {
        self.dirty.len() + self.closed.len()
    }

    pub fn has_changes(&self) -> bool {
        !self.dirty.is_empty() || !self.closed.is_empty()
    }

    /// Accounts one IP packet and returns the flow it belongs to.
    pub fn observe(&mut self, ts_ns: u64, wire_len: u32, net: &NetInfo) -> Observed {
        self.latest_ns = self.latest_ns.max(ts_ns);
        self.note_icmp_error(ts_ns, net);
        let key = self.key_for(ts_ns, net);
        let sender = Endpoint {
            ip: net.src,
            port: net.src_port,
        };
        let receiver = Endpoint {
            ip: net.dst,
            port: net.dst_port,
        };
        let later_fragment = net.fragment.is_some_and(|f| f.offset > 0);
        let (slot, created) = self.flow_for(key, sender, receiver, ts_ns);
        let (src, dst) = self.endpoints(slot);
        // Later fragments carry no ports: their address says the direction.
        let from_src = if later_fragment && src.ip != dst.ip {
            src.ip == sender.ip
        } else {
            src == sender
        };
        let icmp = net.icmp.map(|i| icmp_bit(i.icmp_type));
        self.count(
            slot,
            from_src,
            ts_ns,
            wire_len,
            net.ip_flags,
            net.tcp_flags,
            icmp,
        );
        // The first packet's ICMP type and code name the flow's Community
        // ID (an ICMP packet is always counted in the extension).
        if let Some(i) = net.icmp.filter(|_| created && matches!(net.proto, 1 | 58)) {
            let ext = self.ext_of(slot);
            self.exts[ext as usize].icmp_first = Some(IcmpFirst {
                icmp_type: i.icmp_type,
                code: i.code,
            });
        }
        self.mark_dirty(slot);
        let expiry = self.expiry_ns(slot);
        self.next_expiry_ns = self.next_expiry_ns.min(expiry);
        Observed {
            flow_id: self.slots[slot as usize].flow_id,
        }
    }

    /// Adds one packet to a direction of the flow in `slot`.
    #[allow(clippy::too_many_arguments)]
    fn count(
        &mut self,
        slot: u32,
        from_src: bool,
        ts_ns: u64,
        wire_len: u32,
        ip_flags: u8,
        tcp_flags: u8,
        icmp: Option<u16>,
    ) {
        let s = self.slots[slot as usize];
        let inline_fits = from_src
            && icmp.is_none()
            && s.packets < u32::MAX
            && u64::from(s.bytes) + u64::from(wire_len) <= u64::from(u32::MAX);
        if s.ext == NONE && inline_fits {
            let s = &mut self.slots[slot as usize];
            if s.packets == 0 || ts_ns < s.first_ns {
                s.first_ns = ts_ns;
            }
            s.last_ns = s.last_ns.max(ts_ns);
            s.packets += 1;
            s.bytes += wire_len;
            s.ip_flags |= ip_flags;
            s.tcp_flags |= tcp_flags;
            return;
        }
        let ext = self.ext_of(slot);
        let e = &mut self.exts[ext as usize];
        let dir = if from_src {
            &mut e.from_src
        } else {
            &mut e.from_dst
        };
        dir.add(ts_ns, u64::from(wire_len));
        dir.ip_flags |= ip_flags;
        dir.tcp_flags |= tcp_flags;
        if let Some(bit) = icmp {
            dir.icmp_packets = dir.icmp_packets.saturating_add(1);
            dir.icmp_seen |= bit;
        }
    }

    /// Marks an ICMP error sent by one end of the flow it quotes in that
    /// flow's ICMP counters (hflow's `*_icmp_packets`, `*_icmp_seen`). The
    /// packet itself is counted in its own ICMP flow, as argus counts it, so
    /// every packet is counted in exactly one flow's packets and bytes.
    fn note_icmp_error(&mut self, ts_ns: u64, net: &NetInfo) {
        let Some(icmp) = net.icmp else { return };
        let Some(q) = icmp.quoted.filter(|_| icmp.is_error) else {
            return;
        };
        let quoted_src = Endpoint {
            ip: q.src,
            port: q.src_port,
        };
        let quoted_dst = Endpoint {
            ip: q.dst,
            port: q.dst_port,
        };
        let key = FlowKey::new(q.proto, quoted_src, quoted_dst);
        let Some(slot) = self.find(&key) else {
            return;
        };
        let (src, dst) = self.endpoints(slot);
        // Errors from routers in between are not the flow's (hflow README).
        if (net.src != src.ip && net.src != dst.ip) || self.expired_at(slot, ts_ns) {
            return;
        }
        // When both ends share an address, the end the quoted packet was
        // sent to is the one that answered.
        let from_dst = if src.ip == dst.ip {
            quoted_dst == dst
        } else {
            net.src == dst.ip
        };
        let ext = self.ext_of(slot);
        let e = &mut self.exts[ext as usize];
        let dir = if from_dst {
            &mut e.from_dst
        } else {
            &mut e.from_src
        };
        dir.icmp_packets = dir.icmp_packets.saturating_add(1);
        dir.icmp_seen |= icmp_bit(icmp.icmp_type);
        self.mark_dirty(slot);
    }

    /// The flow key of a packet, following fragments to their first fragment.
    fn key_for(&mut self, ts_ns: u64, net: &NetInfo) -> FlowKey {
        let own = FlowKey::new(
            net.proto,
            Endpoint {
                ip: net.src,
                port: net.src_port,
            },
            Endpoint {
                ip: net.dst,
                port: net.dst_port,
            },
        );
        let Some(frag) = net.fragment else {
            return own;
        };
        let fk: FragKey = (net.src, net.dst, net.proto, frag.id);
        if frag.offset == 0 {
            if self.fragments.len() < MAX_FRAGMENTS || self.fragments.contains_key(&fk) {
                self.fragments.insert(fk, (own, ts_ns));
            }
            return own;
        }
        match self.fragments.get(&fk) {
            Some((key, first)) if ts_ns.saturating_sub(*first) <= FRAGMENT_TIMEOUT_NS => *key,
            _ => own,
        }
    }

    /// The open flow for `key`, starting a new one when none is open or the
    /// open one has been idle past its timeout; true when it is new.
    fn flow_for(
        &mut self,
        key: FlowKey,
        sender: Endpoint,
        receiver: Endpoint,
        ts_ns: u64,
    ) -> (u32, bool) {
        if let Some(slot) = self.find(&key) {
            if !self.expired_at(slot, ts_ns) {
                return (slot, false);
            }
            self.close(slot, false);
        }
        if self.live >= self.max_flows || self.bytes_used() + SLOT_BYTES > self.budget_bytes {
            self.evict_idlest(NONE);
        }
        let flow_id = self.next_flow_id;
        self.next_flow_id = self.next_flow_id.wrapping_add(1).max(1);
        let is_local = crate::net::any_contains(&self.local_nets, sender.ip);
        let state = FlowState {
            flow_id,
            proto: key.proto,
            src: sender,
            dst: receiver,
            from_src: DirState::default(),
            from_dst: DirState::default(),
            is_local,
            icmp_first: None,
        };
        (self.insert_state(&state), true)
    }

    /// Puts a flow into a free slot (with an extension when it needs one)
    /// and indexes it; returns its slot.
    fn insert_state(&mut self, f: &FlowState) -> u32 {
        self.ensure_capacity();
        let mut slot = Slot {
            flow_id: f.flow_id,
            proto: f.proto,
            ext: NONE,
            bits: if f.is_local { LOCAL } else { 0 },
            ..Slot::default()
        };
        let inline_v4 = match (f.src.ip, f.dst.ip) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Some((s, d)),
            _ => None,
        };
        let fits_inline = f.from_dst == DirState::default()
            && f.icmp_first.is_none()
            && f.from_src.icmp_packets == 0
            && f.from_src.icmp_seen == 0
            && u32::try_from(f.from_src.packets).is_ok()
            && u32::try_from(f.from_src.bytes).is_ok();
        match inline_v4.filter(|_| fits_inline) {
            Some((s, d)) => {
                slot.src_ip = u32::from(s);
                slot.dst_ip = u32::from(d);
                slot.src_port = f.src.port;
                slot.dst_port = f.dst.port;
                slot.first_ns = f.from_src.first_ns;
                slot.last_ns = f.from_src.last_ns;
                slot.packets = f.from_src.packets as u32;
                slot.bytes = f.from_src.bytes as u32;
                slot.ip_flags = f.from_src.ip_flags;
                slot.tcp_flags = f.from_src.tcp_flags;
            }
            None => {
                slot.ext = self.new_ext(Ext {
                    src: f.src,
                    dst: f.dst,
                    from_src: f.from_src,
                    from_dst: f.from_dst,
                    icmp_first: f.icmp_first,
                });
            }
        }
        let index = match self.free_slots.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        let hash = self.hasher.hash_one(FlowKey::new(f.proto, f.src, f.dst));
        let hasher = &self.hasher;
        let slots = &self.slots;
        let exts = &self.exts;
        self.index.insert_unique(hash, index, |&i| {
            hasher.hash_one(key_of(&slots[i as usize], exts))
        });
        self.live += 1;
        let expiry = self.expiry_ns(index);
        self.next_expiry_ns = self.next_expiry_ns.min(expiry);
        index
    }

    /// Reserves the slot vector and the index for the whole budget at the
    /// first flow, so neither ever grows by copying (untouched pages cost no
    /// memory).
    fn ensure_capacity(&mut self) {
        if self.slots.capacity() == 0 {
            self.slots.reserve_exact(self.max_flows);
            let hasher = &self.hasher;
            let slots = &self.slots;
            let exts = &self.exts;
            self.index.reserve(self.max_flows, |&i| {
                hasher.hash_one(key_of(&slots[i as usize], exts))
            });
        }
    }

    fn new_ext(&mut self, e: Ext) -> u32 {
        match self.free_exts.pop() {
            Some(i) => {
                self.exts[i as usize] = e;
                i
            }
            None => {
                self.exts.push(e);
                (self.exts.len() - 1) as u32
            }
        }
    }

    /// The extension of `slot`, made from its inline state when it has none
    /// (evicting others first when the budget is full).
    fn ext_of(&mut self, slot: u32) -> u32 {
        let s = self.slots[slot as usize];
        if s.ext != NONE {
            return s.ext;
        }
        if self.bytes_used() + EXT_BYTES > self.budget_bytes {
            self.evict_idlest(slot);
        }
        let src = Endpoint {
            ip: IpAddr::V4(Ipv4Addr::from(s.src_ip)),
            port: s.src_port,
        };
        let dst = Endpoint {
            ip: IpAddr::V4(Ipv4Addr::from(s.dst_ip)),
            port: s.dst_port,
        };
        let ext = self.new_ext(Ext {
            src,
            dst,
            from_src: inline_dir(&s),
            from_dst: DirState::default(),
            icmp_first: None,
        });
        self.slots[slot as usize].ext = ext;
        ext
    }

    fn find(&self, key: &FlowKey) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        self.index
            .find(hash, |&i| {
                key_of(&self.slots[i as usize], &self.exts) == *key
            })
            .copied()
    }

    fn endpoints(&self, slot: u32) -> (Endpoint, Endpoint) {
        let s = &self.slots[slot as usize];
        match s.ext {
            NONE => (
                Endpoint {
                    ip: IpAddr::V4(Ipv4Addr::from(s.src_ip)),
                    port: s.src_port,
                },
                Endpoint {
                    ip: IpAddr::V4(Ipv4Addr::from(s.dst_ip)),
                    port: s.dst_port,
                },
            ),
            e => (self.exts[e as usize].src, self.exts[e as usize].dst),
        }
    }

    /// The flow in `slot` in its wide form.
    fn state(&self, slot: u32) -> FlowState {
        let s = &self.slots[slot as usize];
        let (src, dst) = self.endpoints(slot);
        let (from_src, from_dst, icmp_first) = match s.ext {
            NONE => (inline_dir(s), DirState::default(), None),
            e => (
                self.exts[e as usize].from_src,
                self.exts[e as usize].from_dst,
                self.exts[e as usize].icmp_first,
            ),
        };
        FlowState {
            flow_id: s.flow_id,
            proto: s.proto,
            src,
            dst,
            from_src,
            from_dst,
            is_local: s.bits & LOCAL != 0,
            icmp_first,
        }
    }

    fn last_ns(&self, slot: u32) -> u64 {
        let s = &self.slots[slot as usize];
        match s.ext {
            NONE => s.last_ns,
            e => {
                let e = &self.exts[e as usize];
                e.from_src.last_ns.max(e.from_dst.last_ns)
            }
        }
    }

    /// hflow's class 1: TCP, no FIN or RST seen, and an ACK seen from dst.
    fn is_established(&self, slot: u32) -> bool {
        let s = &self.slots[slot as usize];
        if s.proto != TCP || s.ext == NONE {
            // Without an extension the responder has sent nothing.
            return false;
        }
        let e = &self.exts[s.ext as usize];
        let flags = e.from_src.tcp_flags | e.from_dst.tcp_flags;
        flags & (TCP_FIN | TCP_RST) == 0 && e.from_dst.tcp_flags & TCP_ACK != 0
    }

    /// The time after which the flow in `slot` has timed out.
    fn expiry_ns(&self, slot: u32) -> u64 {
        let timeout = if self.is_established(slot) {
            ESTABLISHED_TIMEOUT_NS
        } else {
            DEFAULT_TIMEOUT_NS
        };
        self.last_ns(slot).saturating_add(timeout)
    }

    fn expired_at(&self, slot: u32, now_ns: u64) -> bool {
        now_ns > self.expiry_ns(slot)
    }

    fn mark_dirty(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        if s.bits & DIRTY == 0 {
            s.bits |= DIRTY;
            self.dirty.push(slot);
        }
    }

    /// Removes the flow in `slot` and queues its last row.
    fn close(&mut self, slot: u32, evicted: bool) {
        let flow = self.state(slot);
        let key = FlowKey::new(flow.proto, flow.src, flow.dst);
        let hash = self.hasher.hash_one(key);
        if let Ok(entry) = self.index.find_entry(hash, |&i| i == slot) {
            entry.remove();
        }
        let s = self.slots[slot as usize];
        if s.ext != NONE {
            self.free_exts.push(s.ext);
        }
        // A dirty slot's entry in `dirty` is skipped once the slot is free.
        self.slots[slot as usize] = Slot {
            ext: NONE,
            ..Slot::default()
        };
        self.free_slots.push(slot);
        self.live -= 1;
        if evicted {
            self.evicted += 1;
        }
        self.closed.push(Closed { flow, evicted });
    }

    /// Closes the open flows idle the longest (about 1/64 of the table),
    /// never `protect`.
    fn evict_idlest(&mut self, protect: u32) {
        let Some(threshold) = self.idle_threshold(protect) else {
            return;
        };
        for slot in 0..self.slots.len() as u32 {
            if slot != protect
                && self.slots[slot as usize].flow_id != 0
                && self.last_ns(slot) <= threshold
            {
                self.close(slot, true);
            }
        }
    }

    /// The last-packet time at or below which about 1/64 of the open flows
    /// lie, estimated from flows sampled by flow id (so the choice depends
    /// on the flows, not on where they sit in memory).
    fn idle_threshold(&self, protect: u32) -> Option<u64> {
        let mut step = (self.live / EVICT_SAMPLES).max(1) as u32;
        loop {
            let mut sample: Vec<u64> = self
                .slots
                .iter()
                .enumerate()
                .filter(|(i, s)| {
                    s.flow_id != 0 && *i as u32 != protect && s.flow_id.is_multiple_of(step)
                })
                .map(|(i, _)| self.last_ns(i as u32))
                .collect();
            if sample.is_empty() {
                if step == 1 {
                    return None;
                }
                step = 1;
                continue;
            }
            sample.sort_unstable();
            return Some(sample[(sample.len() - 1) / EVICT_FRACTION]);
        }
    }

    /// Closes every flow idle past its timeout at the newest packet time
    /// (at most [`MAX_CLOSED_PER_SEGMENT`] waiting at once: see
    /// [`FlowTable::more_to_expire`]), and forgets fragment ids that can no
    /// longer matter.
    pub fn expire(&mut self) {
        let now = self.latest_ns;
        self.fragments
            .retain(|_, (_, first)| now.saturating_sub(*first) <= FRAGMENT_TIMEOUT_NS);
        if now <= self.next_expiry_ns {
            return;
        }
        let mut next = u64::MAX;
        for slot in 0..self.slots.len() as u32 {
            if self.slots[slot as usize].flow_id == 0 {
                continue;
            }
            let expiry = self.expiry_ns(slot);
            if now > expiry && self.closed.len() < MAX_CLOSED_PER_SEGMENT {
                self.close(slot, false);
            } else {
                next = next.min(expiry);
            }
        }
        self.next_expiry_ns = next;
    }

    /// True when flows that have timed out are still open because
    /// [`FlowTable::expire`] stopped at its limit: another record segment
    /// should follow at once.
    pub fn more_to_expire(&self) -> bool {
        self.latest_ns > self.next_expiry_ns
    }

    /// Adds an open flow read back from a checkpoint.
    pub fn insert_restored(&mut self, f: &FlowState) {
        if self.find(&FlowKey::new(f.proto, f.src, f.dst)).is_none() {
            self.insert_state(f);
        }
    }

    /// Sets the remembered fragment ids (from a checkpoint).
    pub fn restore_fragments(&mut self, fragments: Vec<(FragKey, FlowKey, u64)>) {
        self.fragments = fragments
            .into_iter()
            .take(MAX_FRAGMENTS)
            .map(|(k, f, ts)| (k, (f, ts)))
            .collect();
    }

    /// Calls `f` with every open flow, by flow id.
    pub fn for_each_open(&self, mut f: impl FnMut(&FlowState)) {
        let mut order: Vec<(u32, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.flow_id != 0)
            .map(|(i, s)| (s.flow_id, i as u32))
            .collect();
        order.sort_unstable();
        for (_, slot) in order {
            f(&self.state(slot));
        }
    }

    /// Forgets what changed without building rows: for replaying packets
    /// whose rows were published before.
    pub fn discard_changes(&mut self) {
        for slot in std::mem::take(&mut self.dirty) {
            self.slots[slot as usize].bits &= !DIRTY;
        }
        self.closed.clear();
    }

    /// Takes what changed since the last call: the row versions to publish.
    pub fn take_changes(&mut self, version: u64) -> Changes {
        let mut changes = Changes::default();
        for c in self.closed.drain(..) {
            let mut row = c.flow.to_record(self.sensor_id, version, true);
            row.evicted = c.evicted;
            changes.records.push(row);
        }
        let dirty = std::mem::take(&mut self.dirty);
        for slot in dirty {
            let s = &mut self.slots[slot as usize];
            if s.flow_id == 0 || s.bits & DIRTY == 0 {
                continue;
            }
            s.bits &= !DIRTY;
            let f = self.state(slot);
            changes
                .records
                .push(f.to_record(self.sensor_id, version, false));
        }
        changes.records.sort_by_key(|r| (r.flow_id, r.closed));
        changes
    }
}

/// The key of the flow in a slot.
fn key_of(s: &Slot, exts: &[Ext]) -> FlowKey {
    match s.ext {
        NONE => FlowKey::new(
            s.proto,
            Endpoint {
                ip: IpAddr::V4(Ipv4Addr::from(s.src_ip)),
                port: s.src_port,
            },
            Endpoint {
                ip: IpAddr::V4(Ipv4Addr::from(s.dst_ip)),
                port: s.dst_port,
            },
        ),
        e => {
            let e = &exts[e as usize];
            FlowKey::new(s.proto, e.src, e.dst)
        }
    }
}

/// The initiator's direction of a slot without extension.
fn inline_dir(s: &Slot) -> DirState {
    DirState {
        first_ns: s.first_ns,
        last_ns: s.last_ns,
        packets: u64::from(s.packets),
        bytes: u64::from(s.bytes),
        ip_flags: s.ip_flags,
        tcp_flags: s.tcp_flags,
        icmp_packets: 0,
        icmp_seen: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_packet_flow_costs_at_most_64_bytes_of_the_budget() {
        assert_eq!(SLOT_BYTES, 48);
        let t = FlowTable::new(1, vec![], 64 << 20);
        assert!(t.max_flows >= 1_000_000);
        assert!(t.index_bytes() / t.max_flows + SLOT_BYTES <= FLOW_BYTES_MAX);
    }
}
