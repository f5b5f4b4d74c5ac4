//! The decoders of index values (docs/STORAGE.md §5): segment metadata and
//! per-file ingest progress.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lumpy::store::{SegmentId, SegmentMeta, SourceProgress};

fuzz_target!(|data: &[u8]| {
    let _ = SegmentMeta::decode(SegmentId([7; 32]), data);
    let _ = SourceProgress::decode(data);
});
