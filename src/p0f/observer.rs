//! Which packets p0f 3.09b fingerprints: the first SYN of each connection
//! (a retransmission with the same sequence number is not fingerprinted
//! again; a new SYN resets the connection) and the first SYN+ACK answering
//! a SYN it saw (stray SYN+ACKs are not). A connection whose SYN matched a
//! userland tool (class `!`, e.g. an NMap scan) is forgotten at once, so its
//! SYN+ACK is not fingerprinted, as in p0f. FIN and RST end a connection;
//! connections older than 30 s of capture time are forgotten (p0f's
//! default `-t`). A SYN with p0f-sendsyn's window 1337 and MSS 1331 is a
//! probe: it and its answer are fingerprinted as p0f's `sendsyn probe` /
//! `sendsyn response` (any SYN+ACK answers it, then the connection ends).

//!
//! Owns that per-sensor handshake state and nothing else: no I/O. Only TCP
//! packets with SYN, FIN or RST reach the hash map; everything else returns
//! after a flag test.

use std::net::IpAddr;

// foldhash, seeded per process, instead of std's SipHash: on a SYN flood
// every packet is an insert here, and SipHash was the packet thread's
// largest hashing cost (docs/BENCHMARKS.md). Which connections are kept
// does not depend on the hash.
use hashbrown::HashMap;

use crate::capture::NetInfo;

use super::matcher::{Matcher, Verdict};
use super::sig::{ACK, FIN, PacketSig, RST, SYN};

/// p0f-sendsyn's window and MSS (p0f's SPECIAL_WIN, SPECIAL_MSS).
pub const SENDSYN_WIN: u16 = 1337;
pub const SENDSYN_MSS: u16 = 1331;

/// p0f's default connection age limit (`-t`), seconds.
pub const CONN_MAX_AGE: u32 = 30;
/// Above this many half-tracked connections the table is cleared (p0f
/// prunes at 1000 by default; a bigger bound keeps more handshakes).
pub const MAX_CONNECTIONS: usize = 100_000;

type Key = (IpAddr, u16, IpAddr, u16);

#[derive(Debug, Clone, Copy)]
struct Conn {
    next_cli_seq: u32,
    syn_mss: u16,
    acked: bool,
    sendsyn: bool,
    created: u32,
}

/// One fingerprinted packet.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    /// True for a SYN (the client), false for a SYN+ACK (the server).
    pub client: bool,
    pub host: (IpAddr, u16),
    pub peer: (IpAddr, u16),
    pub sig: PacketSig,
    pub verdict: Verdict,
    /// The connection's SYN MSS (for SYN+ACKs; 0 for SYNs).
    pub syn_mss: u16,
    /// A p0f-sendsyn probe or its answer: not a fingerprint of a host.
    pub sendsyn: bool,
}

/// Per-sensor handshake state.
#[derive(Debug, Default)]
pub struct Observer {
    conns: HashMap<Key, Conn>,
    last_sweep: u32,
}

impl Observer {
    /// Looks at one decoded packet captured at `sec`; returns the
    /// fingerprint when p0f would take one.
    pub fn observe(
        &mut self,
        m: &Matcher,
        sec: u32,
        frame: &[u8],
        net: &NetInfo,
    ) -> Option<Observation> {
        if net.proto != 6 || net.tcp_flags & (SYN | FIN | RST) == 0 {
            return None;
        }
        self.sweep(sec);
        let sig = PacketSig::parse(frame, net)?;
        let fwd = (net.src, net.src_port, net.dst, net.dst_port);
        let rev = (net.dst, net.dst_port, net.src, net.src_port);
        match sig.tcp_type {
            SYN => {
                if let Some(c) = self.conns.get(&fwd)
                    && c.next_cli_seq.wrapping_sub(1) == sig.seq
                {
                    return None;
                }
                self.conns.remove(&fwd);
                self.conns.remove(&rev);
                let verdict = m.find(true, &sig, 0);
                let sendsyn = sig.win == SENDSYN_WIN && sig.mss == SENDSYN_MSS;
                let tool = verdict
                    .matched
                    .and_then(|x| m.label(&x))
                    .is_some_and(|l| l.class == "!");
                if !tool || sendsyn {
                    if self.conns.len() >= MAX_CONNECTIONS {
                        self.conns.clear();
                    }
                    self.conns.insert(
                        fwd,
                        Conn {
                            next_cli_seq: sig.seq.wrapping_add(1),
                            syn_mss: sig.mss,
                            acked: false,
                            sendsyn,
                            created: sec,
                        },
                    );
                }
                Some(Observation {
                    client: true,
                    host: (net.src, net.src_port),
                    peer: (net.dst, net.dst_port),
                    sig,
                    verdict,
                    syn_mss: 0,
                    sendsyn,
                })
            }
            t if t == SYN | ACK => {
                let key = if self.conns.contains_key(&rev) {
                    rev
                } else {
                    fwd
                };
                let c = self.conns.get_mut(&key)?;
                if c.sendsyn {
                    let syn_mss = c.syn_mss;
                    self.conns.remove(&key);
                    return Some(Observation {
                        client: false,
                        host: (net.src, net.src_port),
                        peer: (net.dst, net.dst_port),
                        verdict: m.find(false, &sig, syn_mss),
                        sig,
                        syn_mss,
                        sendsyn: true,
                    });
                }
                // A SYN+ACK from the client's side ("trippy" to p0f).
                if key == fwd {
                    return None;
                }
                if c.acked {
                    return None;
                }
                c.acked = true;
                let syn_mss = c.syn_mss;
                let verdict = m.find(false, &sig, syn_mss);
                let tool = verdict
                    .matched
                    .and_then(|x| m.label(&x))
                    .is_some_and(|l| l.class == "!");
                if tool {
                    self.conns.remove(&rev);
                }
                Some(Observation {
                    client: false,
                    host: (net.src, net.src_port),
                    peer: (net.dst, net.dst_port),
                    sig,
                    verdict,
                    syn_mss,
                    sendsyn: false,
                })
            }
            t if t & (FIN | RST) != 0 => {
                if self.conns.remove(&fwd).is_none() {
                    self.conns.remove(&rev);
                }
                None
            }
            _ => None,
        }
    }

    /// Forgets connections older than [`CONN_MAX_AGE`], at most once per
    /// second of capture time.
    fn sweep(&mut self, sec: u32) {
        if sec == self.last_sweep || self.conns.is_empty() {
            self.last_sweep = sec;
            return;
        }
        self.last_sweep = sec;
        self.conns
            .retain(|_, c| sec.saturating_sub(c.created) <= CONN_MAX_AGE);
    }
}
