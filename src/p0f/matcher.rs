//! p0f 3.09b's TCP signature matching (its `fp_tcp.c` rules), over a parsed
//! [`Database`].
//!
//! Signatures are grouped by TCP option layout, as p0f's buckets are, and
//! tried in file order: the first specific exact match wins; else the first
//! generic (`g:`) exact match; else the first fuzzy match (quirks differing
//! only by `df`/`id+` gone or `id-`/`ecn` added, or a TTL out of range),
//! except that a fuzzy match is never reported for a userland tool (class
//! `!`). Window sizes `mss*N` / `mtu*N` use p0f's multiplier detection,
//! including the peer's SYN MSS for SYN+ACKs.
//! Pure: no I/O; matching allocates nothing.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::db::{Database, Label, Quirk, TcpSignature, Ttl, WindowSize};
use super::sig::{self, PacketSig, quirk};

/// p0f's MAX_DIST: the largest TTL distance an exact match allows.
pub const MAX_DIST: u8 = 35;

const MIN_TCP4: i32 = 40;
const MIN_TCP6: i32 = 60;

/// One compiled signature.
#[derive(Debug, Clone)]
struct Sig {
    label: usize,
    /// Only `*` matters to p0f 3.09b: it drops the other version's quirks
    /// from the signature; a `4` or `6` is not compared with the packet.
    ver: Option<u8>,
    ttl: u8,
    bad_ttl: bool,
    olen: u8,
    mss: Option<u16>,
    win: WindowSize,
    scale: Option<u8>,
    eol_pad: u8,
    quirks: u32,
    payload: Option<bool>,
}

/// The outcome of matching one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// Index into [`Matcher::labels`].
    pub label: usize,
    pub fuzzy: bool,
    pub generic: bool,
    /// The signature's TTL is a maximum (`NN-`): distance is "<= dist".
    pub bad_ttl: bool,
}

/// The verdict on one packet: its match (if any) and TTL distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub matched: Option<Match>,
    pub dist: u8,
}

/// A database ready for matching.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    pub labels: Vec<Label>,
    /// `[tcp:request]` and `[tcp:response]`, by option layout, file order.
    syn: HashMap<Box<[u8]>, Vec<Sig>>,
    syn_ack: HashMap<Box<[u8]>, Vec<Sig>>,
}

fn quirk_bit(q: Quirk) -> u32 {
    match q {
        Quirk::Df => quirk::DF,
        Quirk::IdPlus => quirk::NZ_ID,
        Quirk::IdMinus => quirk::ZERO_ID,
        Quirk::Ecn => quirk::ECN,
        Quirk::ZeroPlus => quirk::NZ_MBZ,
        Quirk::Flow => quirk::FLOW,
        Quirk::SeqMinus => quirk::ZERO_SEQ,
        Quirk::AckPlus => quirk::NZ_ACK,
        Quirk::AckMinus => quirk::ZERO_ACK,
        Quirk::UptrPlus => quirk::NZ_URG,
        Quirk::UrgfPlus => quirk::URG,
        Quirk::PushfPlus => quirk::PUSH,
        Quirk::Ts1Minus => quirk::OPT_ZERO_TS1,
        Quirk::Ts2Plus => quirk::OPT_NZ_TS2,
        Quirk::OptPlus => quirk::OPT_EOL_NZ,
        Quirk::Exws => quirk::OPT_EXWS,
        Quirk::Bad => quirk::OPT_BAD,
    }
}

/// The option layout of a signature as option kinds, and its EOL padding.
/// The parser accepted every name; an unknown one cannot occur, but would
/// make a layout no packet has.
fn layout(options: &[String]) -> (Box<[u8]>, u8) {
    let mut kinds = Vec::with_capacity(options.len());
    let mut pad = 0u8;
    for o in options {
        let kind = match o.as_str() {
            "nop" => sig::OPT_NOP,
            "mss" => sig::OPT_MSS,
            "ws" => sig::OPT_WS,
            "sok" => sig::OPT_SACKOK,
            "sack" => sig::OPT_SACK,
            "ts" => sig::OPT_TS,
            other => {
                if let Some(n) = other.strip_prefix("eol+") {
                    pad = n.parse().unwrap_or(u8::MAX);
                    sig::OPT_EOL
                } else if let Some(n) = other.strip_prefix('?') {
                    n.parse().unwrap_or(u8::MAX)
                } else {
                    u8::MAX
                }
            }
        };
        kinds.push(kind);
    }
    (kinds.into_boxed_slice(), pad)
}

fn compile(s: &TcpSignature) -> (Box<[u8]>, Sig) {
    let (ttl, bad_ttl) = match s.ttl {
        Ttl::Guess(t) | Ttl::Unknown(t) => (t, false),
        Ttl::Distance(t, d) => (t.saturating_add(d), false),
        Ttl::Bad(t) => (t, true),
    };
    let (kinds, eol_pad) = layout(&s.options);
    let sig = Sig {
        label: s.label,
        ver: s.version,
        ttl,
        bad_ttl,
        olen: s.olen,
        mss: s.mss,
        win: s.window,
        scale: s.scale,
        eol_pad,
        quirks: s.quirks.iter().map(|q| quirk_bit(*q)).fold(0, |a, b| a | b),
        payload: s.payload,
    };
    (kinds, sig)
}

/// p0f's `guess_dist`: distance to the next usual initial TTL.
pub fn guess_dist(ttl: u8) -> u8 {
    match ttl {
        0..=32 => 32 - ttl,
        33..=64 => 64 - ttl,
        65..=128 => 128 - ttl,
        _ => 255 - ttl,
    }
}

/// p0f's `detect_win_multi`: (multiplier, uses MTU) when the window is a
/// multiple of the MSS or MTU in one of the ways stacks derive it.
pub fn win_multi(p: &PacketSig, syn_mss: u16) -> Option<(u32, bool)> {
    let win = i32::from(p.win);
    let mss = i32::from(p.mss);
    if win == 0 || mss < 100 {
        return None;
    }
    let mut tries: [(i32, bool); 12] = [(0, false); 12];
    let mut n = 0;
    let mut push = |d: i32, mtu: bool| {
        if let Some(slot) = tries.get_mut(n) {
            *slot = (d, mtu);
            n += 1;
        }
    };
    push(mss, false);
    if p.ts1 != 0 {
        push(mss - 12, false);
    }
    push(1500 - MIN_TCP4, false);
    push(1500 - MIN_TCP4 - 12, false);
    if p.ip_ver == 6 {
        push(1500 - MIN_TCP6, false);
        push(1500 - MIN_TCP6 - 12, false);
    }
    push(mss + MIN_TCP4, true);
    push(mss + i32::from(p.tot_hdr), true);
    if p.ip_ver == 6 {
        push(mss + MIN_TCP6, true);
    }
    push(1500, true);
    if syn_mss != 0 {
        push(i32::from(syn_mss), false);
        push(i32::from(syn_mss) - 12, false);
    }
    tries
        .iter()
        .take(n)
        .find(|(d, _)| *d > 0 && win % d == 0)
        .map(|(d, mtu)| ((win / d) as u32, *mtu))
}

impl Matcher {
    pub fn new(db: &Database) -> Self {
        let mut m = Matcher {
            labels: db.labels.clone(),
            ..Matcher::default()
        };
        for (sigs, map) in [(&db.syn, &mut m.syn), (&db.syn_ack, &mut m.syn_ack)] {
            for s in sigs {
                let (kinds, sig) = compile(s);
                map.entry(kinds).or_default().push(sig);
            }
        }
        m
    }

    /// Parses and compiles the text of a `p0f.fp` file.
    pub fn parse(text: &str) -> Result<Self, super::DbError> {
        Ok(Matcher::new(&Database::parse(text)?))
    }

    /// Matches a SYN (`to_server`) or SYN+ACK. `syn_mss` is the MSS of the
    /// connection's SYN, for SYN+ACKs (0 when unknown).
    pub fn find(&self, to_server: bool, p: &PacketSig, syn_mss: u16) -> Verdict {
        let map = if to_server { &self.syn } else { &self.syn_ack };
        let mut fmatch: Option<&Sig> = None;
        let mut gmatch: Option<&Sig> = None;
        let multi = win_multi(p, syn_mss);
        for r in map.get(p.options()).map(Vec::as_slice).unwrap_or_default() {
            let mut fuzzy = false;
            let mut ref_quirks = r.quirks;
            if r.ver.is_none() {
                ref_quirks &= if p.ip_ver == 4 {
                    !quirk::FLOW
                } else {
                    !(quirk::DF | quirk::NZ_ID | quirk::ZERO_ID)
                };
            }
            if ref_quirks != p.quirks {
                let deleted = (ref_quirks ^ p.quirks) & ref_quirks;
                let added = (ref_quirks ^ p.quirks) & p.quirks;
                if fmatch.is_some()
                    || deleted & !(quirk::DF | quirk::NZ_ID) != 0
                    || added & !(quirk::ZERO_ID | quirk::ECN) != 0
                {
                    continue;
                }
                fuzzy = true;
            }
            if r.eol_pad != p.eol_pad || r.olen != p.ip_opt_len {
                continue;
            }
            if r.bad_ttl {
                if r.ttl < p.ttl {
                    continue;
                }
            } else if r.ttl < p.ttl || r.ttl - p.ttl > MAX_DIST {
                fuzzy = true;
            }
            if r.mss.is_some_and(|m| m != p.mss)
                || r.scale.is_some_and(|s| s != p.wscale)
                || r.payload.is_some_and(|pl| pl != p.has_payload)
            {
                continue;
            }
            let window_ok = match r.win {
                WindowSize::Any => true,
                WindowSize::Exact(w) => w == p.win,
                WindowSize::Modulo(m) => m != 0 && p.win.is_multiple_of(m),
                WindowSize::Mss(n) => multi == Some((u32::from(n), false)),
                WindowSize::Mtu(n) => multi == Some((u32::from(n), true)),
            };
            if !window_ok {
                continue;
            }
            let generic = self.labels.get(r.label).is_some_and(|l| l.generic);
            if !fuzzy {
                if !generic {
                    return self.verdict(r, false, p);
                } else if gmatch.is_none() {
                    gmatch = Some(r);
                }
            } else if fmatch.is_none() {
                fmatch = Some(r);
            }
        }
        if let Some(g) = gmatch {
            return self.verdict(g, false, p);
        }
        match fmatch {
            Some(f) if self.labels.get(f.label).is_some_and(|l| l.class == "!") => Verdict {
                matched: None,
                dist: guess_dist(p.ttl),
            },
            Some(f) => {
                let dist = if f.ttl < p.ttl || (!f.bad_ttl && f.ttl - p.ttl > MAX_DIST) {
                    guess_dist(p.ttl)
                } else {
                    f.ttl - p.ttl
                };
                Verdict {
                    matched: Some(self.matched(f, true)),
                    dist,
                }
            }
            None => Verdict {
                matched: None,
                dist: guess_dist(p.ttl),
            },
        }
    }

    fn matched(&self, r: &Sig, fuzzy: bool) -> Match {
        Match {
            label: r.label,
            fuzzy,
            generic: self.labels.get(r.label).is_some_and(|l| l.generic),
            bad_ttl: r.bad_ttl,
        }
    }

    fn verdict(&self, r: &Sig, fuzzy: bool, p: &PacketSig) -> Verdict {
        Verdict {
            matched: Some(self.matched(r, fuzzy)),
            dist: r.ttl.wrapping_sub(p.ttl),
        }
    }

    pub fn label(&self, m: &Match) -> Option<&Label> {
        self.labels.get(m.label)
    }
}

/// p0f's `raw_sig`: the packet written as a signature line.
pub fn raw_sig(p: &PacketSig, syn_mss: u16) -> String {
    let mut out = String::with_capacity(64);
    let dist = guess_dist(p.ttl);
    if dist > MAX_DIST {
        let _ = write!(out, "{}:{}+?:{}:", p.ip_ver, p.ttl, p.ip_opt_len);
    } else {
        let _ = write!(out, "{}:{}+{}:{}:", p.ip_ver, p.ttl, dist, p.ip_opt_len);
    }
    // p0f-sendsyn's MSS echoed in a SYN+ACK is shown as a wildcard.
    if p.mss == 1331 && p.tcp_type == (sig::SYN | sig::ACK) {
        out.push_str("*:");
    } else {
        let _ = write!(out, "{}:", p.mss);
    }
    match win_multi(p, syn_mss) {
        Some((m, mtu)) if m > 0 => {
            let _ = write!(out, "{}*{}", if mtu { "mtu" } else { "mss" }, m);
        }
        _ => {
            let _ = write!(out, "{}", p.win);
        }
    }
    let _ = write!(out, ",{}:", p.wscale);
    for (i, kind) in p.options().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = match *kind {
            sig::OPT_EOL => write!(out, "eol+{}", p.eol_pad),
            sig::OPT_NOP => write!(out, "nop"),
            sig::OPT_MSS => write!(out, "mss"),
            sig::OPT_WS => write!(out, "ws"),
            sig::OPT_SACKOK => write!(out, "sok"),
            sig::OPT_SACK => write!(out, "sack"),
            sig::OPT_TS => write!(out, "ts"),
            other => write!(out, "?{other}"),
        };
    }
    out.push(':');
    let mut first = true;
    for (bit, name) in quirk::NAMES {
        if p.quirks & bit != 0 {
            if !first {
                out.push(',');
            }
            out.push_str(name);
            first = false;
        }
    }
    out.push_str(if p.has_payload { ":+" } else { ":0" });
    out
}

/// p0f's `params`: `generic`, `fuzzy`, `random_ttl`, `excess_dist`,
/// `tos:0xNN`, or `none`.
pub fn params(p: &PacketSig, v: &Verdict) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = v.matched {
        if m.generic {
            parts.push("generic".into());
        }
        if m.fuzzy {
            parts.push("fuzzy".into());
        }
        if m.bad_ttl {
            parts.push("random_ttl".into());
        }
    }
    if v.dist > MAX_DIST {
        parts.push("excess_dist".into());
    }
    if p.tos != 0 {
        parts.push(format!("tos:0x{:02x}", p.tos));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(" ")
    }
}
