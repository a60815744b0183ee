//! Bytes → `oip::parse_request`, the decoder every `/infer` body goes through. The first two
//! bytes pick the `Inference-Header-Content-Length` (absent when both are zero). Refusals are
//! fine; a panic, an abort or a hang is a bug. A request that parses must encode back, and the
//! one-pass reader must read every body exactly as serde does (the same request or the same
//! error, and the same row count for admission).

#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_server::oip;

fuzz_target!(|bytes: &[u8]| {
    let (head, body) = match bytes {
        [a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]), rest),
        _ => return,
    };
    let header_len = (head != 0).then_some(usize::from(head));
    // Admission hears one row count, however many times it is asked.
    let mut heard = Vec::new();
    let admit = |n| {
        heard.push(n);
        Ok::<(), oip::BadRequest>(())
    };
    let parsed = oip::parse_request(body, header_len, admit);
    assert_eq!(
        parsed,
        oip::parse_request_serde(body, header_len, |n| {
            heard.push(n);
            Ok::<(), oip::BadRequest>(())
        })
    );
    assert!(heard.iter().all(|&n| n == heard[0]));
    if let Ok(request) = parsed {
        let outputs = request.inputs.clone();
        let _ = oip::encode_response("m", "1", &request, outputs);
    }
});
