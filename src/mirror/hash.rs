//! Row hashes: one blake3 digest per (table, sensor), to compare mirrors
//! across nodes and against a MariaDB copy of the same hflow tables.
//!
//! Canonical encoding, chosen so a MariaDB `SELECT * ... ORDER BY <primary key>`
//! can reproduce it byte for byte:
//! - rows in primary-key order ([`TableSpec::order_by`]), columns in table
//!   order (`SELECT *`);
//! - fields separated by one TAB, each row ended by one LF;
//! - NULL is `\N`; an integer is its decimal form (`-` for negatives, no `+`,
//!   no leading zeros); a real is Rust's shortest round-trip form (no hflow
//!   column is real);
//! - text is its bytes with `\` `TAB` `LF` `CR` `NUL` written as `\\` `\t`
//!   `\n` `\r` `\0` (MySQL's `SELECT ... INTO OUTFILE` escapes);
//! - a blob is `0x` followed by lowercase hex (MySQL: `LOWER(HEX(col))`).
//!
//! An empty selection hashes the empty string.

use std::io::Write;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Result};

use super::schema::TableSpec;

/// Hashes the rows of `spec` (only those of `sensor_id` when given and the
/// table is per sensor).
pub(super) fn row_hash(
    conn: &Connection,
    spec: &TableSpec,
    sensor_id: Option<u32>,
) -> Result<[u8; 32]> {
    let filter = sensor_id.filter(|_| spec.per_sensor);
    let sql = format!(
        "SELECT * FROM {}{} ORDER BY {}",
        spec.name,
        if filter.is_some() {
            " WHERE sensor_id = ?1"
        } else {
            ""
        },
        spec.order_by
    );
    let mut stmt = conn.prepare(&sql)?;
    let columns = stmt.column_count();
    let mut rows = match filter {
        Some(s) => stmt.query([s])?,
        None => stmt.query([])?,
    };
    let mut hasher = blake3::Hasher::new();
    let mut line = Vec::with_capacity(512);
    while let Some(row) = rows.next()? {
        line.clear();
        for i in 0..columns {
            if i > 0 {
                line.push(b'\t');
            }
            encode(row.get_ref(i)?, &mut line);
        }
        line.push(b'\n');
        hasher.update(&line);
    }
    Ok(*hasher.finalize().as_bytes())
}

/// Appends the canonical text of one value (see the module doc).
pub(super) fn encode(v: ValueRef<'_>, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail.
    match v {
        ValueRef::Null => out.extend_from_slice(b"\\N"),
        ValueRef::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        ValueRef::Real(r) => {
            let _ = write!(out, "{r}");
        }
        ValueRef::Text(t) => escape_text(t, out),
        ValueRef::Blob(b) => {
            out.extend_from_slice(b"0x");
            for byte in b {
                let _ = write!(out, "{byte:02x}");
            }
        }
    }
}

fn escape_text(t: &[u8], out: &mut Vec<u8>) {
    for &b in t {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0 => out.extend_from_slice(b"\\0"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: ValueRef<'_>) -> String {
        let mut out = Vec::new();
        encode(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn canonical_encoding() {
        assert_eq!(enc(ValueRef::Null), "\\N");
        assert_eq!(enc(ValueRef::Integer(-42)), "-42");
        assert_eq!(enc(ValueRef::Integer(4_294_967_295)), "4294967295");
        assert_eq!(enc(ValueRef::Text(b"a\tb\nc\\d\0")), "a\\tb\\nc\\\\d\\0");
        assert_eq!(enc(ValueRef::Blob(&[0x00, 0xab, 0x10])), "0x00ab10");
        assert_eq!(enc(ValueRef::Text(b"")), "");
    }
}
