//! The sebek v3 record decoder and its socket record.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = lumpy::sebek::decode::parse(data) {
        let _ = lumpy::sebek::decode::SocketRecord::parse(r.data);
    }
    let _ = lumpy::sebek::decode::SocketRecord::parse(data);
});
