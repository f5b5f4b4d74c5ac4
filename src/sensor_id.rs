//! Sensor ids: the 32-bit identity of one roo incarnation.
//!
//! Owns the makesensor_id rule of the distributed honeynet howto, the parsing of
//! Honeywall `HwSENSOR_ID` files (decimal or dotted quad) and the textual forms.
//! Does no I/O beyond reading the one file it is asked to read.
//!
//! Layout of a generated id (bit 31 most significant):
//!
//! | bits  | content                                         |
//! |-------|-------------------------------------------------|
//! | 31    | 0 (ids with bit 31 set are assigned by hand)    |
//! | 30-16 | days since the Unix epoch, mod 32768            |
//! | 15-8  | ((ip * 241) mod 251) mod 256, ip = management address |
//! | 7-0   | a random byte                                   |
//!
//! An IPv6 management address is folded to 32 bits before hashing: an
//! IPv4-mapped address (`::ffff:a.b.c.d`) folds to its IPv4 address, any other
//! to the XOR of its four big-endian 32-bit words. The fold keeps every bit of
//! the address in play, so two hosts that differ anywhere in their address
//! usually get different hashes, as two IPv4 hosts do.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A sensor id (one roo incarnation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct SensorId(pub u32);

#[derive(Debug, thiserror::Error)]
pub enum SensorIdError {
    #[error("'{0}' is not a sensor id: expected a decimal number 0..=4294967295 or a dotted quad")]
    Invalid(String),
    #[error("date {0} is before the Unix epoch")]
    BeforeEpoch(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    #[error("no random byte available from the operating system: {0}")]
    Random(String),
}

impl SensorId {
    /// True for ids with bit 31 set, which the generator never makes.
    pub fn is_manual(self) -> bool {
        self.0 & 0x8000_0000 != 0
    }

    /// The day field (bits 30-16) of a generated id.
    pub fn day_field(self) -> u32 {
        (self.0 >> 16) & 0x7fff
    }

    /// The management address hash field (bits 15-8).
    pub fn ip_hash_field(self) -> u8 {
        ((self.0 >> 8) & 0xff) as u8
    }
}

impl fmt::Display for SensorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for SensorId {
    type Err = SensorIdError;

    /// Accepts the decimal form and the dotted-quad form of early
    /// makesensor_id.pl versions (`inet_ntoa(id)`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.contains('.') {
            return t
                .parse::<Ipv4Addr>()
                .map(|a| SensorId(u32::from(a)))
                .map_err(|_| SensorIdError::Invalid(s.to_string()));
        }
        t.parse::<u32>()
            .map(SensorId)
            .map_err(|_| SensorIdError::Invalid(s.to_string()))
    }
}

/// Folds a management address to the 32-bit value the hash takes.
pub fn fold_address(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u32::from(v4),
            None => {
                let o = v6.octets();
                o.chunks_exact(4)
                    .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
                    .fold(0, |acc, w| acc ^ w)
            }
        },
    }
}

/// The "linear hash" of makesensor_id.pl: ((ip * 241) mod 251) mod 256.
pub fn ip_hash(ip: IpAddr) -> u8 {
    let folded = u64::from(fold_address(ip));
    // The value is below 251, so the final mod 256 never changes it; it is
    // kept to state the rule exactly as the original script does.
    (((folded * 241) % 251) % 256) as u8
}

/// Composes an id from its fields; `days` is taken mod 32768.
pub fn compose(days_since_epoch: u64, ip: IpAddr, random: u8) -> SensorId {
    let days = (days_since_epoch % 32768) as u32;
    SensorId(days * 65536 + u32::from(ip_hash(ip)) * 256 + u32::from(random))
}

/// Days since the Unix epoch of a `YYYY-MM-DD` date (proleptic Gregorian).
pub fn days_from_date(date: &str) -> Result<u64, SensorIdError> {
    let bad = || SensorIdError::Invalid(date.to_string());
    let mut parts = date.trim().splitn(3, '-');
    let y: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let m: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let d: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    // Years outside 0..=9999 are no install date, and would overflow the
    // day arithmetic below (the input comes from files and forms).
    if !(0..=9999).contains(&y) {
        return Err(bad());
    }
    // The calendar (month lengths, leap years) is the time crate's.
    let valid = (|| {
        let month = time::Month::try_from(u8::try_from(m).ok()?).ok()?;
        time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?).ok()
    })()
    .ok_or_else(bad)?;
    let days = i64::from(valid.to_julian_day()) - i64::from(EPOCH_JULIAN_DAY);
    u64::try_from(days).map_err(|_| SensorIdError::BeforeEpoch(date.to_string()))
}

/// The Julian day number of 1970-01-01.
const EPOCH_JULIAN_DAY: i32 = 2_440_588;

/// Generates a new id for a roo managed at `ip`, on `days_since_epoch`.
pub fn generate(days_since_epoch: u64, ip: IpAddr) -> Result<SensorId, SensorIdError> {
    let mut byte = [0u8; 1];
    getrandom::fill(&mut byte).map_err(|e| SensorIdError::Random(e.to_string()))?;
    Ok(compose(days_since_epoch, ip, byte[0]))
}

/// Reads a Honeywall `HwSENSOR_ID` file (decimal or dotted quad).
pub fn read_hw_sensor_id(path: &Path) -> Result<SensorId, SensorIdError> {
    let text = std::fs::read_to_string(path).map_err(|source| SensorIdError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(SensorIdError::BadFile {
            path: path.to_path_buf(),
            reason: "file is empty".into(),
        });
    }
    value.parse().map_err(|_| SensorIdError::BadFile {
        path: path.to_path_buf(),
        reason: format!("'{value}' is neither a decimal id nor a dotted quad"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn hash_matches_hand_computed_values() {
        // 10.0.0.1 = 167772161; 167772161 * 241 = 40433090801; mod 251 = 40.
        assert_eq!(ip_hash(v4("10.0.0.1")), 40);
        // 192.168.1.1 = 3232235777; * 241 = 778968822257; mod 251 = 64.
        assert_eq!(ip_hash(v4("192.168.1.1")), 64);
        // 0.0.0.0 hashes to 0.
        assert_eq!(ip_hash(v4("0.0.0.0")), 0);
    }

    #[test]
    fn compose_follows_the_rule() {
        // 2026-11-26 is day 20783; 20783 mod 32768 = 20783.
        let days = days_from_date("2026-11-26").unwrap();
        assert_eq!(days, 20783);
        let id = compose(days, v4("10.0.0.1"), 7);
        assert_eq!(id.0, 20783 * 65536 + 40 * 256 + 7);
        assert_eq!(id.0, 1_362_044_935);
        assert!(!id.is_manual());
        assert_eq!(id.day_field(), 20783);
        assert_eq!(id.ip_hash_field(), 40);
    }

    #[test]
    fn days_wrap_at_32768() {
        let id = compose(32768 + 5, v4("10.0.0.1"), 0);
        assert_eq!(id.day_field(), 5);
        assert!(!id.is_manual());
    }

    #[test]
    fn absurd_years_are_refused_not_overflowed() {
        for date in [
            "9223372036854775807-12-31",
            "-9223372036854775808-01-01",
            "10000-01-01",
        ] {
            assert!(days_from_date(date).is_err(), "{date}");
        }
        assert!(days_from_date("9999-12-31").is_ok());
    }

    /// The leap-year rules and month ends, as the hand-written calendar
    /// had them before the time crate's took over.
    #[test]
    fn calendar_edges() {
        assert_eq!(days_from_date("2000-02-29").unwrap(), 11016);
        assert_eq!(days_from_date("2024-02-29").unwrap(), 19782);
        assert!(days_from_date("1900-02-29").is_err());
        assert!(days_from_date("2100-02-29").is_err());
        assert!(days_from_date("2023-02-29").is_err());
        assert!(days_from_date("2026-04-31").is_err());
        assert!(days_from_date("2026-13-01").is_err());
        assert!(days_from_date("2026-00-10").is_err());
        assert!(days_from_date("2026-01-00").is_err());
        assert_eq!(days_from_date("9999-12-31").unwrap(), 2_932_896);
        assert_eq!(days_from_date(" 2026-1-5 ").unwrap(), 20458);
        assert!(matches!(
            days_from_date("0000-03-01"),
            Err(SensorIdError::BeforeEpoch(_))
        ));
        assert!(days_from_date("2026-01-01-01").is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(days_from_date("1970-01-01").unwrap(), 0);
        assert_eq!(days_from_date("2000-03-01").unwrap(), 11017);
        assert!(days_from_date("2026-02-30").is_err());
        assert!(days_from_date("1969-12-31").is_err());
        assert!(days_from_date("yesterday").is_err());
    }

    #[test]
    fn parses_both_file_forms() {
        assert_eq!("1362044935".parse::<SensorId>().unwrap().0, 1_362_044_935);
        // inet_ntoa(1362044935) = 81.47.40.7
        assert_eq!("81.47.40.7".parse::<SensorId>().unwrap().0, 1_362_044_935);
        assert_eq!(" 4294967295\n".parse::<SensorId>().unwrap().0, u32::MAX);
        assert!("4294967296".parse::<SensorId>().is_err());
        assert!("1.2.3".parse::<SensorId>().is_err());
        assert!("abc".parse::<SensorId>().is_err());
    }

    #[test]
    fn manual_ids_have_bit_31() {
        assert!(SensorId(0x8000_0001).is_manual());
    }

    #[test]
    fn ipv6_folds() {
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(ip_hash(mapped), 40);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        // 0x20010db8 ^ 0 ^ 0 ^ 1 = 0x20010db9 = 536939961; * 241 mod 251 = 171.
        assert_eq!(fold_address(a), 0x2001_0db9);
        assert_eq!(ip_hash(a), ((536_939_961u64 * 241) % 251) as u8);
    }

    #[test]
    fn reads_hw_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("HwSENSOR_ID");
        std::fs::write(&p, "0.1.2.3\n").unwrap();
        assert_eq!(read_hw_sensor_id(&p).unwrap().0, 0x0001_0203);
        std::fs::write(&p, "").unwrap();
        assert!(read_hw_sensor_id(&p).is_err());
    }
}
