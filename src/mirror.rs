//! Walleye mirror: SQLite copy of the hflow/walleye tables, derived from record segments.
//!
//! SKELETON: to be implemented.

use std::net::IpAddr;
use std::path::Path;

use crate::records::{FlowRecord, Record};
use crate::store::SegmentId;

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("mirror database {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
}

/// Filters of `lumpy flows`, with Walleye's semantics.
#[derive(Debug, Clone, Default)]
pub struct FlowQuery {
    pub sensor: Option<u32>,
    /// Address and prefix length: matches src or dst.
    pub host: Option<(IpAddr, u8)>,
    /// Matches src or dst port.
    pub port: Option<u16>,
    pub proto: Option<u8>,
    /// Flow end (GREATEST(src_end_sec, dst_end_sec)) >= since.
    pub since: Option<u32>,
    /// src_start_sec <= until.
    pub until: Option<u32>,
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    pub rows_written: u64,
    pub rows_skipped_older: u64,
}

pub struct Mirror {}

impl Mirror {
    pub fn open(_path: &Path) -> Result<Self, MirrorError> {
        todo!()
    }
    pub fn is_applied(&self, _segment: &SegmentId) -> Result<bool, MirrorError> {
        todo!()
    }
    pub fn apply(
        &mut self,
        _segment: &SegmentId,
        _records: &[Record],
    ) -> Result<ApplyStats, MirrorError> {
        todo!()
    }
    pub fn flows(&self, _q: &FlowQuery) -> Result<Vec<FlowRecord>, MirrorError> {
        todo!()
    }
    pub fn flow_count(&self) -> Result<u64, MirrorError> {
        todo!()
    }
}
