//! A V1 prediction, one shape per task whatever the framework (the same parts as `predict`'s
//! CSV, [`slipway_core::manifest::answer`]): binary `{"probability": p, "label": "good"}`,
//! multiclass `{"probabilities": [p₀, p₁, …], "label": "…"}` in the package's class order,
//! regression `{"prediction": y}`. Scores are read from the output the manifest names and
//! labels follow the manifest's one rule, so a native package and an imported ONNX graph of the
//! same task answer alike.

use serde_json::{Map, Value as Json, json};
use slipway_core::manifest::answer::{LABEL, PREDICTION, PROBABILITIES, PROBABILITY};
use slipway_core::{Manifest, Task, Tensor};

use crate::ApiError;

/// The predictions for `rows` records: `{"predictions": [{…}, …]}`, one object per record.
pub fn predictions(manifest: &Manifest, outputs: &[Tensor], rows: usize) -> Result<Json, ApiError> {
    let scores = slipway_runtime::tabular::read_scores(manifest, outputs, rows)
        .map_err(ApiError::Internal)?;
    let threshold = manifest.threshold();
    let list: Vec<Json> = scores
        .rows()
        .into_iter()
        .map(|row| {
            let row = row.to_vec();
            let mut one = Map::with_capacity(2);
            match manifest.task {
                Task::BinaryClassification => {
                    one.insert(PROBABILITY.into(), json!(row[0]));
                }
                Task::MulticlassClassification => {
                    one.insert(PROBABILITIES.into(), json!(row));
                }
                Task::Regression => {
                    one.insert(PREDICTION.into(), json!(row[0]));
                }
            }
            if manifest.task != Task::Regression {
                one.insert(LABEL.into(), json!(manifest.label(&row, threshold)));
            }
            Json::Object(one)
        })
        .collect();
    Ok(json!({ "predictions": list }))
}
