//! The wall clock in Unix seconds: the one "now" of every time lumpy
//! records or compares against a stored time (link signatures and their
//! replay window, UI sessions and accounts, pull health, watermarks,
//! bundles). A clock set before 1970 reads as 0; past the range of the
//! narrower forms, they saturate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since 1970-01-01 UTC (0 for a clock before it).
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// [`now_secs`] as the signed seconds of link signatures.
pub fn now_secs_i64() -> i64 {
    i64::try_from(now_secs()).unwrap_or(i64::MAX)
}

/// [`now_secs`] as the mirror's 32-bit seconds (`u32::MAX` after 2106).
pub fn now_secs_u32() -> u32 {
    u32::try_from(now_secs()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_agree() {
        let (a, b, c) = (now_secs(), now_secs_i64(), now_secs_u32());
        // 2026 or later, and the three read the same second (or the next).
        assert!(a >= 1_767_225_600, "{a}");
        assert!(u64::try_from(b).unwrap() - a <= 1);
        assert!(u64::from(c) - a <= 1);
    }
}
