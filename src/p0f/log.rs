//! p0f 3.09b's log format (`p0f -o FILE`), both ways: parsing the lines a
//! running p0f wrote (for `lumpy import p0f-log`), and writing native
//! fingerprints in the same format (`lumpy fingerprint`), so the two can be
//! compared line by line.
//!
//! A line is `[YYYY/MM/DD HH:MM:SS] mod=syn|cli=IP/PORT|srv=IP/PORT|subj=cli|
//! os=NAME FLAVOR|dist=N|params=...|raw_sig=...`; SYN+ACKs have
//! `mod=syn+ack` and `subj=srv`; userland tools have `app=` instead of
//! `os=`; an unknown fingerprint is `os=???`. Other modules (`mtu`,
//! `uptime`, `http request`, `host change`, ...) are not fingerprints.
//! The time is read as UTC (p0f writes its local time: run it with TZ=UTC).
//! Pure: no I/O.

use std::net::IpAddr;

use crate::sensor_id::days_from_date;

use super::matcher::{self, Matcher};
use super::observer::Observation;

/// A fingerprint line of a p0f log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Epoch seconds (the bracketed time read as UTC).
    pub time: u32,
    /// True for `mod=syn` (the client), false for `mod=syn+ack`.
    pub client: bool,
    pub cli: (IpAddr, u16),
    pub srv: (IpAddr, u16),
    /// The `os=` or `app=` text; `None` for `???`.
    pub label: Option<String>,
    /// True when the label came as `app=` (a userland tool).
    pub app: bool,
    /// `dist=N` or `dist=<= N`.
    pub dist: u8,
    pub params: String,
    pub raw_sig: String,
}

/// Why a line is not a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogLineError {
    /// A line of another p0f module: not an error, just not ours.
    #[error("not a TCP fingerprint line (module {0})")]
    OtherModule(String),
    #[error("{0}")]
    Malformed(String),
}

fn bad(why: impl Into<String>) -> LogLineError {
    LogLineError::Malformed(why.into())
}

fn endpoint(v: &str, what: &str) -> Result<(IpAddr, u16), LogLineError> {
    let (ip, port) = v
        .rsplit_once('/')
        .ok_or_else(|| bad(format!("{what}='{v}' is not ADDRESS/PORT")))?;
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| bad(format!("{what}='{v}': '{ip}' is not an IP address")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad(format!("{what}='{v}': '{port}' is not a port")))?;
    Ok((ip, port))
}

/// Parses `[YYYY/MM/DD HH:MM:SS]` as UTC.
fn stamp(s: &str) -> Result<u32, LogLineError> {
    let err = || bad(format!("'[{s}]' is not a time as [YYYY/MM/DD HH:MM:SS]"));
    let (date, clock) = s.split_once(' ').ok_or_else(err)?;
    let days = days_from_date(&date.replace('/', "-")).map_err(|_| err())?;
    let mut hms = clock.split(':').map(|p| p.parse::<u64>());
    let (Some(Ok(h)), Some(Ok(m)), Some(Ok(sec)), None) =
        (hms.next(), hms.next(), hms.next(), hms.next())
    else {
        return Err(err());
    };
    if h > 23 || m > 59 || sec > 60 {
        return Err(err());
    }
    u32::try_from(days * 86400 + h * 3600 + m * 60 + sec).map_err(|_| err())
}

/// Parses one line of a p0f log.
pub fn parse_line(line: &str) -> Result<LogEntry, LogLineError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let rest = line
        .strip_prefix('[')
        .ok_or_else(|| bad("does not start with '[time]'"))?;
    let (when, fields) = rest
        .split_once("] ")
        .ok_or_else(|| bad("no '] ' after the time"))?;
    let time = stamp(when)?;
    let mut module = None;
    let (mut cli, mut srv, mut subj) = (None, None, None);
    let (mut label, mut app, mut dist, mut params, mut raw_sig) =
        (None, false, None, String::new(), None);
    for field in fields.split('|') {
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| bad(format!("field '{field}' is not key=value")))?;
        match k {
            "mod" => module = Some(v),
            "cli" => cli = Some(endpoint(v, "cli")?),
            "srv" => srv = Some(endpoint(v, "srv")?),
            "subj" => subj = Some(v),
            "os" | "app" => {
                app = k == "app";
                label = Some(v);
            }
            "dist" => {
                let n = v.strip_prefix("<= ").unwrap_or(v);
                dist = Some(
                    n.parse::<u8>()
                        .map_err(|_| bad(format!("dist='{v}' is not a distance")))?,
                );
            }
            "params" => params = v.to_string(),
            "raw_sig" => raw_sig = Some(v.to_string()),
            _ => {}
        }
    }
    let module = module.ok_or_else(|| bad("no mod= field"))?;
    let client = match module {
        "syn" => true,
        "syn+ack" => false,
        other => return Err(LogLineError::OtherModule(other.to_string())),
    };
    let expected = if client { "cli" } else { "srv" };
    match subj {
        Some(s) if s == expected => {}
        Some(s) => return Err(bad(format!("mod={module} with subj={s}"))),
        None => return Err(bad("no subj= field")),
    }
    let label = label.ok_or_else(|| bad("no os= or app= field"))?;
    Ok(LogEntry {
        time,
        client,
        cli: cli.ok_or_else(|| bad("no cli= field"))?,
        srv: srv.ok_or_else(|| bad("no srv= field"))?,
        label: (label != "???").then(|| label.to_string()),
        app,
        dist: dist.ok_or_else(|| bad("no dist= field"))?,
        params,
        raw_sig: raw_sig.ok_or_else(|| bad("no raw_sig= field"))?,
    })
}

/// A label text (`NAME FLAVOR`) split into p0f's name and flavor with the
/// database's labels, and the label's class (`None` when the database has
/// no such label: then the first word is the name).
pub fn split_label(m: &Matcher, text: &str, app: bool) -> (String, String, Option<String>) {
    let found = m
        .labels
        .iter()
        .filter(|l| (l.class == "!") == app)
        .find(|l| {
            if l.flavor.is_empty() {
                l.name == text
            } else {
                text.strip_prefix(l.name.as_str())
                    .and_then(|r| r.strip_prefix(' '))
                    .is_some_and(|r| r == l.flavor)
            }
        });
    match found {
        Some(l) => (l.name.clone(), l.flavor.clone(), Some(l.class.clone())),
        None => match text.split_once(' ') {
            Some((name, flavor)) => (name.to_string(), flavor.to_string(), None),
            None => (text.to_string(), String::new(), None),
        },
    }
}

/// `[YYYY/MM/DD HH:MM:SS]` of epoch seconds (UTC).
pub fn format_time(sec: u32) -> String {
    let (y, mo, d, h, mi, s) = crate::time_arg::utc_fields(sec);
    format!("[{y:04}/{mo:02}/{d:02} {h:02}:{mi:02}:{s:02}]")
}

fn addr(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        // p0f writes all eight groups, without `::`.
        IpAddr::V6(v6) => v6
            .segments()
            .iter()
            .map(|g| format!("{g:x}"))
            .collect::<Vec<_>>()
            .join(":"),
    }
}

/// One observation as p0f would log it.
pub fn format_line(m: &Matcher, sec: u32, o: &Observation) -> String {
    let (cli, srv) = if o.client {
        (o.host, o.peer)
    } else {
        (o.peer, o.host)
    };
    let label = o.verdict.matched.and_then(|x| m.label(&x));
    let (key, text) = match label {
        Some(l) => (
            if l.class == "!" || o.sendsyn {
                "app"
            } else {
                "os"
            },
            if l.flavor.is_empty() {
                l.name.clone()
            } else {
                format!("{} {}", l.name, l.flavor)
            },
        ),
        None => ("os", "???".to_string()),
    };
    let dist = match o.verdict.matched {
        Some(x) if x.bad_ttl => format!("<= {}", o.verdict.dist),
        _ => o.verdict.dist.to_string(),
    };
    format!(
        "{} mod={}|cli={}/{}|srv={}/{}|subj={}|{key}={text}|dist={dist}|params={}|raw_sig={}",
        format_time(sec),
        match (o.client, o.sendsyn) {
            (true, false) => "syn",
            (false, false) => "syn+ack",
            (true, true) => "sendsyn probe",
            (false, true) => "sendsyn response",
        },
        addr(&cli.0),
        cli.1,
        addr(&srv.0),
        srv.1,
        if o.client { "cli" } else { "srv" },
        matcher::params(&o.sig, &o.verdict),
        matcher::raw_sig(&o.sig, o.syn_mss),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let e = parse_line(
            "[2026/11/26 12:00:00] mod=syn|cli=1.2.3.4/1234|srv=5.6.7.8/80|subj=cli|\
             os=Linux 3.11 and newer|dist=0|params=none|raw_sig=4:64+0:0:1460:mss*20,7:mss,sok,ts,nop,ws:df,id+:0",
        )
        .unwrap();
        assert_eq!(e.time, 1_795_694_400);
        assert!(e.client && !e.app);
        assert_eq!(e.cli, ("1.2.3.4".parse().unwrap(), 1234));
        assert_eq!(e.label.as_deref(), Some("Linux 3.11 and newer"));
        let e = parse_line(
            "[2026/11/26 23:40:11] mod=syn|cli=198.51.100.20/51925|srv=192.0.2.10/199|subj=cli|\
             app=NMap SYN scan|dist=<= 10|params=random_ttl|raw_sig=4:54+10:0:1460:1024,0:mss::0",
        )
        .unwrap();
        assert!(e.app);
        assert_eq!(e.dist, 10);
        assert_eq!(format_time(e.time), "[2026/11/26 23:40:11]");
        assert!(matches!(
            parse_line(
                "[2026/11/26 23:40:11] mod=mtu|cli=1.2.3.4/1|srv=1.2.3.5/2|subj=cli|link=Ethernet|raw_mtu=1500"
            ),
            Err(LogLineError::OtherModule(_))
        ));
        for broken in [
            "mod=syn|cli=1.2.3.4/1",
            "[2026/13/26 23:40:11] mod=syn",
            "[2026/11/26 23:40:11] mod=syn|cli=1.2.3.400/1|srv=1.2.3.5/2|subj=cli|os=???|dist=0|params=none|raw_sig=x",
            "[2026/11/26 23:40:11] mod=syn|cli=1.2.3.4/1|srv=1.2.3.5/2|subj=srv|os=???|dist=0|params=none|raw_sig=x",
        ] {
            assert!(
                matches!(parse_line(broken), Err(LogLineError::Malformed(_))),
                "{broken}"
            );
        }
    }
}
