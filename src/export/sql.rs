//! SQL text: literals for MariaDB (session `sql_mode` set by the export, so
//! backslash escapes are on) and multi-row INSERT statements.
//!
//! Values are fitted to their column before they are written, so the server
//! never has to adjust one silently: an integer outside the column's range is
//! clamped, text longer than the column is cut at a character boundary, an
//! ENUM value outside the list becomes `''` (the mirror's "unset"). Each
//! adjustment is counted and reported by the export.

use std::fmt::Write as _;

use rusqlite::types::Value;

use super::schema::{Col, Table, Ty};

/// Appends `v` as a literal for a column of type `ty`; returns true if the
/// value had to be adjusted to fit.
pub fn literal(v: &Value, ty: Ty, out: &mut String) -> bool {
    match v {
        Value::Null => {
            out.push_str("NULL");
            false
        }
        Value::Integer(i) => {
            let (clamped, adjusted) = match ty.int_range() {
                Some((lo, hi)) => {
                    let c = (*i).clamp(lo, hi);
                    (c, c != *i)
                }
                None => (*i, false),
            };
            let _ = write!(out, "{clamped}");
            adjusted
        }
        Value::Real(r) => {
            let _ = write!(out, "{r}");
            false
        }
        Value::Text(s) => text(s, ty, out),
        Value::Blob(b) => {
            let (b, adjusted) = match ty.max_len() {
                Some((n, false)) if b.len() > n => (&b[..n], true),
                _ => (&b[..], false),
            };
            hex(b, out);
            adjusted
        }
    }
}

fn text(s: &str, ty: Ty, out: &mut String) -> bool {
    if let Ty::Enum(values) = ty
        && !s.is_empty()
        && !values.contains(&s)
    {
        quote("", out);
        return true;
    }
    let (s, adjusted) = match ty.max_len() {
        Some((n, true)) => match s.char_indices().nth(n) {
            Some((at, _)) => (&s[..at], true),
            None => (s, false),
        },
        Some((n, false)) if s.len() > n => {
            let mut at = n;
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            (&s[..at], true)
        }
        _ => (s, false),
    };
    quote(s, out);
    adjusted
}

/// A string literal with MariaDB's backslash escapes: the MySQL driver's
/// own quoting (`mysql_async::Value::as_sql`; it also escapes `"`, which
/// means the same inside '...').
pub fn quote(s: &str, out: &mut String) {
    out.push_str(&mysql_async::Value::Bytes(s.as_bytes().to_vec()).as_sql(false));
}

/// A binary literal `X'..'` (the empty blob is `X''`).
pub fn hex(b: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(b.len() * 2 + 3);
    out.push_str("X'");
    for byte in b {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 15)] as char);
    }
    out.push('\'');
}

/// Appends one row `(v1,v2,...)`; returns the number of adjusted values.
pub fn row(values: &[Value], cols: &[Col], out: &mut String) -> u64 {
    let mut adjusted = 0;
    out.push('(');
    for (i, (v, col)) in values.iter().zip(cols).enumerate() {
        if i > 0 {
            out.push(',');
        }
        adjusted += u64::from(literal(v, col.ty, out));
    }
    out.push(')');
    adjusted
}

/// `INSERT INTO t (cols) VALUES ` for `table`.
pub fn insert_head(table: &Table) -> String {
    format!(
        "INSERT INTO `{}` ({}) VALUES ",
        table.name,
        table.column_list()
    )
}

/// ` ON DUPLICATE KEY UPDATE c = VALUES(c), ...` over every column except the
/// primary key and `skip`.
pub fn upsert_tail(table: &Table, skip: &[&str]) -> String {
    let sets: Vec<String> = table
        .cols
        .iter()
        .filter(|c| !table.primary_key.contains(&c.name) && !skip.contains(&c.name))
        .map(|c| format!("`{0}` = VALUES(`{0}`)", c.name))
        .collect();
    format!(" ON DUPLICATE KEY UPDATE {}", sets.join(", "))
}

/// A backquoted identifier; names are checked before they get here, this is
/// only the second line of defence.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(v: Value, ty: Ty) -> (String, bool) {
        let mut s = String::new();
        let adjusted = literal(&v, ty, &mut s);
        (s, adjusted)
    }

    #[test]
    fn literals() {
        assert_eq!(lit(Value::Null, Ty::U32), ("NULL".into(), false));
        assert_eq!(lit(Value::Integer(7), Ty::U32), ("7".into(), false));
        assert_eq!(
            lit(Value::Integer(5_000_000_000), Ty::U32),
            ("4294967295".into(), true)
        );
        assert_eq!(lit(Value::Integer(-1), Ty::I32), ("-1".into(), false));
        assert_eq!(
            lit(Value::Text("a'b\\c\n\0".into()), Ty::Text),
            ("'a\\'b\\\\c\\n\\0'".into(), false)
        );
        // Every character MariaDB's backslash mode treats specially, as the
        // hand-written quoting had them; `"` is escaped too now (the
        // driver's rule), which reads back as the same `"`.
        assert_eq!(
            lit(Value::Text("\r\u{1a}\"x\"".into()), Ty::Text),
            ("'\\r\\Z\\\"x\\\"'".into(), false)
        );
        assert_eq!(
            lit(Value::Text("é€".into()), Ty::Text),
            ("'é€'".into(), false)
        );
        assert_eq!(
            lit(Value::Blob(vec![0, 0xab]), Ty::Blob),
            ("X'00ab'".into(), false)
        );
        assert_eq!(lit(Value::Blob(vec![]), Ty::Blob), ("X''".into(), false));
        assert_eq!(
            lit(Value::Text("abc".into()), Ty::Char(2)),
            ("'ab'".into(), true)
        );
        assert_eq!(
            lit(Value::Text("ééé".into()), Ty::Char(2)),
            ("'éé'".into(), true)
        );
        let states: &'static [&'static str] = &["online"];
        assert_eq!(
            lit(Value::Text("".into()), Ty::Enum(states)),
            ("''".into(), false)
        );
        assert_eq!(
            lit(Value::Text("bogus".into()), Ty::Enum(states)),
            ("''".into(), true)
        );
    }
}
