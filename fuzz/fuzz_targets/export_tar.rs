//! `slipway import` reads tars from anywhere: reading one must never panic, and whatever it
//! accepts must hold a manifest and payload that match their digests.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("in.tar");
    std::fs::write(&path, data).expect("write input");
    let _ = slipway_registry::read_export(&path);
});
