//! The capture reader (pcap both byte orders and precisions, pcapng) and
//! the link-layer decoder on whatever it yields.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The reader works on files (it follows growing captures): one per process.
    let path = std::env::temp_dir().join(format!("lumpy-fuzz-capture-{}", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(mut reader) = lumpy::capture::reader::CaptureReader::open(&path) {
        for _ in 0..100_000 {
            match reader.next_packet() {
                Ok(Some(p)) => {
                    let _ = lumpy::capture::decode::decode(p.link_type, p.data);
                }
                _ => break,
            }
        }
    }
});
