//! CSV bytes → `data::read_csv` → `dataset::load` (target: the first column) → the feature
//! pipeline's `fit` and `transform`. Errors are fine; a panic is a bug.

#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_learn::data::{self, Column, ReadOptions};
use slipway_learn::dataset::{self, DatasetSpec};
use slipway_learn::pipeline;

fuzz_target!(|bytes: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("input.csv");
    std::fs::write(&path, bytes).expect("write the input");

    let Ok(frame) = data::read_csv(&path, &ReadOptions::default()) else {
        return;
    };
    // A frame that read_csv returns is rectangular.
    assert_eq!(frame.names.len(), frame.columns.len());
    for column in &frame.columns {
        assert_eq!(column.len(), frame.n_rows);
        if let Column::Categorical { codes, levels } = column {
            assert!(
                codes
                    .iter()
                    .all(|c| *c == data::MISSING_CODE || (*c as usize) < levels.len())
            );
        }
    }

    let spec = DatasetSpec {
        target: frame.names[0].clone(),
        ..Default::default()
    };
    let Ok(ds) = dataset::load(&path, &spec, None) else {
        return;
    };
    let rows = ds.rows();
    let Ok(features) = pipeline::fit(&ds.frame, &ds.feature_columns, &rows) else {
        return;
    };
    let _ = pipeline::transform(&features, &ds.frame, &rows);
});
