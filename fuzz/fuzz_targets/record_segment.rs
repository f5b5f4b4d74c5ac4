//! What a parent does with a segment a child sent, past its hash: the
//! structure, every record decoded, every record's sensor against the
//! header's (`node::check_segment`), and the mirror-side decoder. Crafted
//! counts (an item count of 2^50) must be errors, never an abort.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lumpy::store::SegmentId;

fuzz_target!(|data: &[u8]| {
    let id = SegmentId::of(data);
    if let Ok((header, records)) = lumpy::node::check_segment(&id, data) {
        assert!(records.iter().all(|r| r.sensor_id() == header.sensor_id));
    }
    let _ = lumpy::node::decode_record_segment(&id, data);
    // The JSON lines of one block on their own, as a block would hold them.
    let _ = lumpy::records::decode_lines(data);
});
