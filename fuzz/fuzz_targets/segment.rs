//! The segment decoder: header, trailer, block table, every block, and the
//! packet items or record lines inside.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lumpy::store::segment::{SegmentView, packet_items};
use lumpy::store::Kind;

fuzz_target!(|data: &[u8]| {
    let Ok(view) = SegmentView::parse(data) else {
        return;
    };
    for i in 0..view.blocks.len() as u32 {
        let Ok(block) = view.block(i) else { continue };
        match view.header.kind {
            Kind::Pcap => {
                for item in packet_items(&block) {
                    if item.is_err() {
                        break;
                    }
                }
            }
            Kind::Records => {
                let _ = lumpy::records::decode_lines(&block);
            }
        }
    }
    let id = lumpy::store::SegmentId::of(data);
    let _ = lumpy::node::decode_record_segment(&id, data);
});
