//! Time arguments (CLI flags and web UI filters): epoch seconds, `YYYY-MM-DD`, or `YYYY-MM-DD[T ]HH:MM[:SS][Z]` (UTC).

use crate::sensor_id::days_from_date;

/// A time argument that is none of the accepted forms (the text given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a time: use epoch seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)")]
pub struct TimeError(pub String);

/// Parses a time argument to epoch seconds (UTC).
pub fn parse_time(s: &str) -> Result<u32, TimeError> {
    let t = s.trim();
    if let Ok(n) = t.parse::<u32>() {
        return Ok(n);
    }
    let bad = || TimeError(s.to_string());
    let t = t.strip_suffix('Z').unwrap_or(t);
    let (date, clock) = match t.split_once(['T', ' ']) {
        Some((d, c)) => (d, Some(c)),
        None => (t, None),
    };
    let days = days_from_date(date).map_err(|_| bad())?;
    let mut secs = 0u64;
    if let Some(c) = clock {
        let parts: Vec<&str> = c.split(':').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(bad());
        }
        let mut mult = 3600;
        for p in parts {
            let v: u64 = p.parse().map_err(|_| bad())?;
            if v >= 60 && mult != 3600 || v >= 24 && mult == 3600 {
                return Err(bad());
            }
            secs += v * mult;
            mult /= 60;
        }
    }
    days.checked_mul(86400)
        .and_then(|d| d.checked_add(secs))
        .and_then(|t| u32::try_from(t).ok())
        .ok_or_else(bad)
}

/// Like `parse_time`, but a fraction of a second is allowed (`1700000000.25`,
/// `2026-12-01T10:00:05.5Z`) and dropped: the second that contains the
/// instant. Used where the consumer's resolution is whole seconds (pcap_api's
/// `st`/`et`), so a window given with fractions becomes the whole seconds
/// that cover it.
pub fn parse_time_floor(s: &str) -> Result<u32, TimeError> {
    let t = s.trim();
    let t = t.strip_suffix('Z').unwrap_or(t);
    match t.rsplit_once('.') {
        Some((whole, frac))
            if !frac.is_empty()
                && frac.len() <= 9
                && frac.bytes().all(|b| b.is_ascii_digit())
                && !whole.is_empty() =>
        {
            parse_time(whole)
        }
        _ => parse_time(s),
    }
}

/// `YYYY-MM-DD HH:MM:SS` of epoch seconds, UTC: the one formatter of the
/// CLI's times and sbk_ks_log.pl's `gmtime` lines.
pub fn utc_text(secs: u32) -> String {
    let days = i64::from(secs) / 86_400;
    let rem = i64::from(secs) % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's civil_from_days.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000);
        assert_eq!(parse_time("1970-01-02").unwrap(), 86400);
        assert_eq!(parse_time("1970-01-01T01:02:03Z").unwrap(), 3723);
        assert_eq!(parse_time("1970-01-01 01:02").unwrap(), 3720);
        assert!(parse_time("1970-01-01T25:00").is_err());
        assert!(parse_time("tomorrow").is_err());
        assert!(parse_time("9999-12-31T23:59:59Z").is_err());
        assert!(parse_time("99999999999999999999-01-01").is_err());
    }

    #[test]
    fn fractions_floor_to_the_second() {
        assert_eq!(parse_time_floor("1700000000.75").unwrap(), 1_700_000_000);
        assert_eq!(parse_time_floor("1700000000").unwrap(), 1_700_000_000);
        assert_eq!(parse_time_floor("1970-01-01T01:02:03.5Z").unwrap(), 3723);
        assert_eq!(parse_time_floor("1970-01-02").unwrap(), 86400);
        assert!(parse_time_floor("1700000000.").is_err());
        assert!(parse_time_floor("1700000000.x").is_err());
        assert!(parse_time_floor(".5").is_err());
    }
}
