//! Raw CSV fields → `pipeline::RowEncoder::encode`, the per-row encoder used by batch scoring
//! and serving. The input is split on 0x00 into fields. Errors are fine; a panic is a bug.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ndarray::Array1;
use slipway_core::manifest::Profile;
use slipway_core::{FeatureKind, FeatureSpec};
use slipway_learn::pipeline::RowEncoder;

fn profile() -> Profile {
    Profile {
        missing: 0.0,
        edges: Vec::new(),
        shares: Vec::new(),
    }
}

fn encoder() -> &'static RowEncoder {
    static ENCODER: OnceLock<RowEncoder> = OnceLock::new();
    ENCODER.get_or_init(|| {
        RowEncoder::new(&[
            FeatureSpec {
                name: "age".into(),
                kind: FeatureKind::Numeric {
                    median: 35.0,
                    mean: 36.5,
                    std: 11.25,
                },
                profile: profile(),
            },
            FeatureSpec {
                name: "housing".into(),
                kind: FeatureKind::Categorical {
                    categories: vec!["for free".into(), "own".into(), "rent".into()],
                    most_frequent: "own".into(),
                },
                profile: profile(),
            },
        ])
    })
}

fuzz_target!(|bytes: &[u8]| {
    let encoder = encoder();
    assert_eq!(encoder.width(), 4);
    let mut out = Array1::zeros(encoder.width());
    let fields = bytes.split(|b| *b == 0);
    let n_fields = bytes.split(|b| *b == 0).count();
    let Ok(unseen) = encoder.encode(fields, out.view_mut()) else {
        return;
    };
    assert!(unseen <= 1, "one categorical feature, {unseen} unseen");
    assert!(out[0].is_finite(), "numeric input encoded as {}", out[0]);
    let ones = out.iter().skip(1).filter(|v| **v == 1.0).count();
    let zeros = out.iter().skip(1).filter(|v| **v == 0.0).count();
    assert_eq!(ones + zeros, 3, "one-hot holds only 0 and 1: {out}");
    assert!(ones <= 1, "one-hot sets at most one column: {out}");
    if n_fields >= 2 {
        // Present and known, or missing and filled with the most frequent: one column set.
        // Present and unknown: none set, one unseen.
        assert_eq!(ones + unseen as usize, 1, "{out}, {unseen} unseen");
    }
});
