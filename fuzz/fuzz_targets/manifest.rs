//! `slipway.json` text → `Manifest::from_json`. Errors are fine; a panic is a bug.
//!
//! Also checks that a manifest Slipway accepts survives the trip `package::write` makes it take
//! (serialised with serde_json, then read back): one that does not would be a package that
//! trains but never loads.

#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_core::Manifest;

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    let Ok(manifest) = Manifest::from_json(&text) else {
        return;
    };
    let json = serde_json::to_string_pretty(&manifest).expect("a manifest serialises");
    if let Err(e) = Manifest::from_json(&json) {
        panic!("an accepted manifest does not read back: {e}\n{json}");
    }
});
