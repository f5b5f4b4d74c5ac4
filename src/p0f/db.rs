//! Parser of the p0f v3 signature database (`p0f.fp`): the `[tcp:request]`
//! (SYN) and `[tcp:response]` (SYN+ACK) sections, whose signatures are
//! `ver:ittl:olen:mss:wsize,scale:olayout:quirks:pclass` under a
//! `label = type:class:name:flavor` line. Other sections (`[mtu]`, `[http:*]`)
//! are skipped. Every defect is a [`DbError`] naming the line.

/// A `label =` line: `s` (specific) or `g` (generic), the OS class (`win`,
/// `unix`, `other`, or `!` for applications), name and flavor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub generic: bool,
    pub class: String,
    /// The OS genre (walleye's `os.genre`), e.g. `Linux`.
    pub name: String,
    /// The version detail (walleye's `os.detail`), e.g. `3.11 and newer`.
    pub flavor: String,
}

/// Initial TTL: a value, with the way the signature treats distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// `NN`: the TTL seen may be up to the maximum distance below NN.
    Guess(u8),
    /// `NN+D`: exactly NN, at distance D.
    Distance(u8, u8),
    /// `NN+?`: NN at an unknown distance.
    Unknown(u8),
    /// `NN-`: a TTL that does not fit any usual initial value.
    Bad(u8),
}

/// Window size: any, exact, a multiple of MSS or MTU, or a modulus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSize {
    Any,
    Exact(u16),
    Mss(u16),
    Mtu(u16),
    Modulo(u16),
}

/// p0f's quirks (packet oddities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quirk {
    Df,
    IdPlus,
    IdMinus,
    Ecn,
    ZeroPlus,
    Flow,
    SeqMinus,
    AckPlus,
    AckMinus,
    UptrPlus,
    UrgfPlus,
    PushfPlus,
    Ts1Minus,
    Ts2Plus,
    OptPlus,
    Exws,
    Bad,
}

impl Quirk {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "df" => Quirk::Df,
            "id+" => Quirk::IdPlus,
            "id-" => Quirk::IdMinus,
            "ecn" => Quirk::Ecn,
            "0+" => Quirk::ZeroPlus,
            "flow" => Quirk::Flow,
            "seq-" => Quirk::SeqMinus,
            "ack+" => Quirk::AckPlus,
            "ack-" => Quirk::AckMinus,
            "uptr+" => Quirk::UptrPlus,
            "urgf+" => Quirk::UrgfPlus,
            "pushf+" => Quirk::PushfPlus,
            "ts1-" => Quirk::Ts1Minus,
            "ts2+" => Quirk::Ts2Plus,
            "opt+" => Quirk::OptPlus,
            "exws" => Quirk::Exws,
            "bad" => Quirk::Bad,
            _ => return None,
        })
    }
}

/// One `sig =` line of a TCP section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSignature {
    /// Index into [`Database::labels`].
    pub label: usize,
    /// IP version: `None` for `*`.
    pub version: Option<u8>,
    pub ttl: Ttl,
    /// Length of IPv4 options or IPv6 extension headers.
    pub olen: u8,
    /// `None` for `*`.
    pub mss: Option<u16>,
    pub window: WindowSize,
    /// `None` for `*`.
    pub scale: Option<u8>,
    /// TCP option layout, e.g. `mss,sok,ts,nop,ws` (`eol+N` keeps its padding).
    pub options: Vec<String>,
    /// Sorted.
    pub quirks: Vec<Quirk>,
    /// Payload class: `None` any, `Some(false)` empty, `Some(true)` non-empty.
    pub payload: Option<bool>,
}

/// The TCP part of a p0f database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Database {
    pub labels: Vec<Label>,
    /// `[tcp:request]`: SYN signatures.
    pub syn: Vec<TcpSignature>,
    /// `[tcp:response]`: SYN+ACK signatures.
    pub syn_ack: Vec<TcpSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbError {
    #[error("p0f database line {line}: {reason}")]
    Line { line: usize, reason: String },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Other,
    Syn,
    SynAck,
}

fn bad(line: usize, reason: impl Into<String>) -> DbError {
    DbError::Line {
        line,
        reason: reason.into(),
    }
}

fn number<T: std::str::FromStr>(s: &str, what: &str, line: usize) -> Result<T, DbError> {
    s.parse()
        .map_err(|_| bad(line, format!("{what} '{s}' is not a valid number")))
}

fn any<T>(s: &str, what: &str, line: usize) -> Result<Option<T>, DbError>
where
    T: std::str::FromStr,
{
    if s == "*" {
        Ok(None)
    } else {
        number(s, what, line).map(Some)
    }
}

fn parse_label(v: &str, line: usize) -> Result<Label, DbError> {
    let mut parts = v.splitn(4, ':');
    let (Some(kind), Some(class), Some(name), Some(flavor)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(line, "label needs type:class:name:flavor"));
    };
    let generic = match kind {
        "s" => false,
        "g" => true,
        other => return Err(bad(line, format!("label type '{other}' is not s or g"))),
    };
    Ok(Label {
        generic,
        class: class.to_string(),
        name: name.to_string(),
        flavor: flavor.to_string(),
    })
}

fn parse_ttl(s: &str, line: usize) -> Result<Ttl, DbError> {
    if let Some(v) = s.strip_suffix('-') {
        return Ok(Ttl::Bad(number(v, "ttl", line)?));
    }
    match s.split_once('+') {
        Some((v, "?")) => Ok(Ttl::Unknown(number(v, "ttl", line)?)),
        Some((v, d)) => Ok(Ttl::Distance(
            number(v, "ttl", line)?,
            number(d, "distance", line)?,
        )),
        None => Ok(Ttl::Guess(number(s, "ttl", line)?)),
    }
}

fn parse_window(s: &str, line: usize) -> Result<WindowSize, DbError> {
    Ok(if s == "*" {
        WindowSize::Any
    } else if let Some(n) = s.strip_prefix("mss*") {
        WindowSize::Mss(number(n, "window multiple", line)?)
    } else if let Some(n) = s.strip_prefix("mtu*") {
        WindowSize::Mtu(number(n, "window multiple", line)?)
    } else if let Some(n) = s.strip_prefix('%') {
        WindowSize::Modulo(number(n, "window modulus", line)?)
    } else {
        WindowSize::Exact(number(s, "window", line)?)
    })
}

fn parse_sig(v: &str, label: usize, line: usize) -> Result<TcpSignature, DbError> {
    let f: Vec<&str> = v.split(':').collect();
    let [ver, ttl, olen, mss, win, layout, quirks, pclass] = f.as_slice() else {
        return Err(bad(
            line,
            format!("signature has {} fields, 8 expected", f.len()),
        ));
    };
    let (wsize, scale) = win
        .split_once(',')
        .ok_or_else(|| bad(line, "window field needs wsize,scale"))?;
    let mut q = Vec::new();
    for name in quirks.split(',').filter(|s| !s.is_empty()) {
        q.push(Quirk::parse(name).ok_or_else(|| bad(line, format!("unknown quirk '{name}'")))?);
    }
    q.sort();
    Ok(TcpSignature {
        label,
        version: match *ver {
            "*" => None,
            "4" => Some(4),
            "6" => Some(6),
            other => return Err(bad(line, format!("IP version '{other}'"))),
        },
        ttl: parse_ttl(ttl, line)?,
        olen: number(olen, "olen", line)?,
        mss: any(mss, "mss", line)?,
        window: parse_window(wsize, line)?,
        scale: any(scale, "scale", line)?,
        options: layout
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        quirks: q,
        payload: match *pclass {
            "*" => None,
            "0" => Some(false),
            "+" => Some(true),
            other => return Err(bad(line, format!("payload class '{other}'"))),
        },
    })
}

impl Database {
    /// Parses the text of a `p0f.fp` file.
    pub fn parse(text: &str) -> Result<Self, DbError> {
        let mut db = Database::default();
        let mut section = Section::Other;
        let mut label: Option<usize> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim();
            if l.is_empty() || l.starts_with(';') {
                continue;
            }
            if l.starts_with('[') {
                section = match l {
                    "[tcp:request]" => Section::Syn,
                    "[tcp:response]" => Section::SynAck,
                    _ => Section::Other,
                };
                label = None;
                continue;
            }
            if section == Section::Other {
                continue;
            }
            let Some((key, value)) = l.split_once('=') else {
                return Err(bad(line, "expected 'key = value'"));
            };
            match key.trim() {
                "label" => {
                    db.labels.push(parse_label(value.trim(), line)?);
                    label = Some(db.labels.len() - 1);
                }
                "sig" => {
                    let at = label.ok_or_else(|| bad(line, "sig before any label"))?;
                    let sig = parse_sig(value.trim(), at, line)?;
                    match section {
                        Section::Syn => db.syn.push(sig),
                        _ => db.syn_ack.push(sig),
                    }
                }
                // `sys = ...` names the systems an application label runs on.
                "sys" => {}
                other => return Err(bad(line, format!("unknown key '{other}'"))),
            }
        }
        Ok(db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
; comment
classes = win,unix,other
[mtu]
label = Ethernet or modem
sig   = 1500
[tcp:request]
label = s:unix:Linux:3.11 and newer
sys   = Linux
sig   = *:64:0:*:mss*20,10:mss,sok,ts,nop,ws:df,id+:0
label = g:win:Windows:XP
sig   = 4:128+2:0:1460:%8192,0:mss,nop,nop,sok:df,id+:+
[tcp:response]
label = s:unix:FreeBSD:9.x
sig   = *:64-:0:*:65535,6:mss,nop,ws,sok,ts,eol+1:df,id+,ts2+:0
[http:request]
label = s:!:nc:
sig   = *:Host:User-Agent
";

    #[test]
    fn sample_database() {
        let db = Database::parse(SAMPLE).unwrap();
        assert_eq!(db.labels.len(), 3);
        assert_eq!(db.syn.len(), 2);
        assert_eq!(db.syn_ack.len(), 1);
        let linux = &db.syn[0];
        assert_eq!(db.labels[linux.label].name, "Linux");
        assert_eq!(db.labels[linux.label].flavor, "3.11 and newer");
        assert_eq!(linux.ttl, Ttl::Guess(64));
        assert_eq!(linux.window, WindowSize::Mss(20));
        assert_eq!(linux.scale, Some(10));
        assert_eq!(linux.mss, None);
        assert_eq!(linux.options, ["mss", "sok", "ts", "nop", "ws"]);
        assert_eq!(linux.quirks, [Quirk::Df, Quirk::IdPlus]);
        assert_eq!(linux.payload, Some(false));
        let win = &db.syn[1];
        assert!(db.labels[win.label].generic);
        assert_eq!(
            (win.version, win.ttl, win.window, win.payload),
            (
                Some(4),
                Ttl::Distance(128, 2),
                WindowSize::Modulo(8192),
                Some(true)
            )
        );
        let bsd = &db.syn_ack[0];
        assert_eq!(bsd.ttl, Ttl::Bad(64));
        assert_eq!(bsd.options.last().map(String::as_str), Some("eol+1"));
    }

    #[test]
    fn defects_name_the_line() {
        for (text, line) in [
            ("[tcp:request]\nsig = *:64:0:*:mss*20,10:mss:df:0\n", 2),
            (
                "[tcp:request]\nlabel = s:unix:X:1\nsig = *:64:0:*:mss*20:mss:df:0\n",
                3,
            ),
            (
                "[tcp:request]\nlabel = s:unix:X:1\nsig = *:64:0:*:1,1:mss:weird:0\n",
                3,
            ),
            ("[tcp:request]\nlabel = q:unix:X:1\n", 2),
            (
                "[tcp:response]\nlabel = s:unix:X:1\nsig = 5:64:0:*:1,1:mss::0\n",
                3,
            ),
            ("[tcp:response]\nbogus\n", 2),
        ] {
            match Database::parse(text) {
                Err(DbError::Line { line: l, .. }) => assert_eq!(l, line, "{text}"),
                Ok(_) => panic!("accepted: {text}"),
            }
        }
    }

    /// The database Debian's p0f package installs (p0f 3.09b): the test
    /// command installs p0f, so a missing file is a failure.
    #[test]
    fn debian_p0f_database_parses() {
        let text = std::fs::read_to_string("/etc/p0f/p0f.fp")
            .expect("/etc/p0f/p0f.fp (install p0f: scripts/test.sh does)");
        let db = Database::parse(&text).unwrap();
        let sigs = text
            .lines()
            .scan(false, |tcp, l| {
                if l.starts_with('[') {
                    *tcp = l.starts_with("[tcp:");
                }
                Some(*tcp && l.trim_start().starts_with("sig"))
            })
            .filter(|x| *x)
            .count();
        assert_eq!(db.syn.len() + db.syn_ack.len(), sigs);
        assert!(db.syn.len() > 50 && !db.syn_ack.is_empty());
        assert!(db.labels.iter().any(|l| l.name == "Windows"));
        assert!(db.labels.iter().any(|l| l.name == "Linux"));
    }
}
