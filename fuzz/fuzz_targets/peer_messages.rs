//! Every peer protocol message a node parses from the network: the auth
//! header, the summary, a catalogue page, a fetch request, an error body,
//! the segment frame stream, and the pcap_api query string.
#![no_main]
use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use lumpy::store::SegmentId;
use lumpy::sync::protocol::{CatalogPage, ErrorBody, FetchRequest, Summary};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = lumpy::sync::auth::parse_header(text);
        let _ = lumpy::pcap_service::PcapQuery::parse(text);
    }
    let _ = serde_json::from_slice::<Summary>(data);
    let _ = serde_json::from_slice::<CatalogPage>(data);
    let _ = serde_json::from_slice::<FetchRequest>(data);
    let _ = serde_json::from_slice::<ErrorBody>(data);
    // Frames: the first 32 bytes (when present) name the one requested id,
    // so the parser gets past the "not asked for" check.
    let mut requested = HashSet::new();
    if data.len() >= 32 {
        let mut id = [0u8; 32];
        id.copy_from_slice(&data[..32]);
        requested.insert(SegmentId(id));
    }
    let mut frames = lumpy::sync::client::FrameReader::default();
    for mut chunk in data.chunks(97) {
        loop {
            match frames.step(chunk, &requested) {
                Ok((used, event)) => {
                    chunk = &chunk[used..];
                    if event.is_none() && chunk.is_empty() {
                        break;
                    }
                }
                Err(_) => return,
            }
        }
    }
});
