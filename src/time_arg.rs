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

/// Year, month, day, hour, minute and second (UTC) of epoch seconds, from
/// the time crate's calendar.
pub fn utc_fields(secs: u32) -> (i32, u8, u8, u8, u8, u8) {
    match time::OffsetDateTime::from_unix_timestamp(i64::from(secs)) {
        Ok(t) => (
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
        ),
        // Every u32 of seconds is a date the crate holds (1970 to 2106).
        Err(_) => (1970, 1, 1, 0, 0, 0),
    }
}

/// `YYYY-MM-DD HH:MM:SS` of epoch seconds, UTC: the one formatter of the
/// CLI's times and sbk_ks_log.pl's `gmtime` lines.
pub fn utc_text(secs: u32) -> String {
    let (y, m, d, h, min, s) = utc_fields(secs);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02}:{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_text_at_the_edges() {
        assert_eq!(utc_text(0), "1970-01-01 00:00:00");
        assert_eq!(utc_text(u32::MAX), "2106-02-07 06:28:15");
        assert_eq!(utc_text(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc_text(1_709_251_199), "2024-02-29 23:59:59");
        assert_eq!(utc_text(1_709_251_200), "2024-03-01 00:00:00");
        assert_eq!(utc_text(4_107_542_400), "2100-03-01 00:00:00");
        // Parsing and formatting agree.
        for t in [0, 86_399, 951_782_400, 1_700_000_000, u32::MAX] {
            assert_eq!(parse_time(&utc_text(t)).unwrap(), t);
        }
    }

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
