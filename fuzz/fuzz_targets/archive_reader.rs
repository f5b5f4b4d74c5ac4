//! The archive bundle reader (`lumpy archive verify`/`import`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("lumpy-fuzz-bundle-{}", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let _ = lumpy::archive::verify(&path, &indicatif::ProgressBar::hidden());
});
