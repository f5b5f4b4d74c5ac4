//! Honeywall capture layout: finding capture files and their sensor.
//!
//! SKELETON: to be implemented.

use std::path::{Path, PathBuf};

/// One capture file to ingest, with the sensor its directory names (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSource {
    pub path: PathBuf,
    /// Set when the file lies below a `sensor_<id>` directory.
    pub sensor_id: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub fn discover(_path: &Path) -> Result<Vec<CaptureSource>, LayoutError> {
    todo!()
}
