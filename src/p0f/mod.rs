//! p0f v3 passive OS fingerprinting.
//!
//! Owns the parser of p0f v3's signature database (`p0f.fp`, the format of
//! p0f 3.09b; `db`). Pure: parses the text it is given, no I/O.
//! Status: the TCP signature database is parsed and validated; matching SYN
//! and SYN+ACK packets against it, filling `os` and the flows' OS ids, and
//! importing a running p0f's log are not implemented yet.

pub mod db;

pub use db::{Database, DbError, Label, Quirk, TcpSignature, Ttl, WindowSize};
