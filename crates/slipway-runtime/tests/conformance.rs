//! The conformance suite: every case in `conformance/cases` (made by `conformance/make.py`
//! with scikit-learn, XGBoost, LightGBM and `onnx.helper`, answered by onnxruntime) runs on the
//! runtime; floating outputs must agree within 1e-5 relative, labels exactly.
//!
//! One allowance: a probability is computed as `0.5 + r` in f32 (by onnxruntime's logistic as
//! by ours), so below 0.5 its absolute precision is one ulp of 0.5, 6e-8, whatever the
//! relative target. Values under 1e-2 may therefore differ by up to 2 such ulps (1.2e-7).

use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use slipway_core::{Model, Tensor, TensorData};
use slipway_runtime::{EngineChoice, OnnxError, OnnxModel};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conformance/cases")
}

fn tensor(j: &Json) -> Tensor {
    let name = j["name"].as_str().unwrap().to_string();
    let shape: Vec<usize> = j["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data = j["data"].as_array().unwrap();
    let f = |v: &Json| v.as_f64().unwrap_or(f64::NAN);
    let data = match j["datatype"].as_str().unwrap() {
        "FP32" => TensorData::Fp32(data.iter().map(|v| f(v) as f32).collect()),
        "FP64" => TensorData::Fp64(data.iter().map(f).collect()),
        "INT64" => TensorData::Int64(data.iter().map(|v| v.as_i64().unwrap()).collect()),
        "BOOL" => TensorData::Bool(data.iter().map(|v| v.as_bool().unwrap()).collect()),
        "BYTES" => TensorData::Bytes(
            data.iter()
                .map(|v| v.as_str().unwrap().as_bytes().to_vec())
                .collect(),
        ),
        other => panic!("fixture datatype {other}"),
    };
    Tensor { name, shape, data }
}

fn close(got: f64, want: f64, rtol: f64) -> bool {
    let d = (got - want).abs();
    (got.is_nan() && want.is_nan()) || d <= rtol * want.abs() || (want.abs() < 1e-2 && d <= 1.2e-7)
}

/// Compares one output; returns a description of the first difference.
fn compare(got: &Tensor, want: &Tensor, rtol: f64) -> Result<(), String> {
    if got.data.len() != want.data.len() {
        return Err(format!(
            "{} elements, onnxruntime gives {}",
            got.data.len(),
            want.data.len()
        ));
    }
    let as_f64 = |d: &TensorData| -> Option<Vec<f64>> {
        match d {
            TensorData::Fp32(v) => Some(v.iter().map(|&x| f64::from(x)).collect()),
            TensorData::Fp64(v) => Some(v.clone()),
            TensorData::Bool(_) | TensorData::Int64(_) | TensorData::Bytes(_) => None,
        }
    };
    match (as_f64(&got.data), as_f64(&want.data)) {
        (Some(g), Some(w)) => {
            if got.data.datatype() != want.data.datatype() {
                return Err(format!(
                    "datatype {} vs {}",
                    got.data.datatype(),
                    want.data.datatype()
                ));
            }
            for (i, (a, b)) in g.iter().zip(&w).enumerate() {
                if !close(*a, *b, rtol) {
                    return Err(format!("element {i}: {a} vs onnxruntime {b}"));
                }
            }
            Ok(())
        }
        _ if got.data == want.data => Ok(()),
        _ => Err(format!("{:?}\n   vs onnxruntime {:?}", got.data, want.data)),
    }
}

fn run_case(path: &Path, choice: EngineChoice) -> Result<(), String> {
    let fixture: Json = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let model: Box<dyn Model> = match fixture.get("package").and_then(Json::as_str) {
        // A native package: loaded as every server loads it.
        Some(package) => {
            let loaded = slipway_runtime::load(&cases_dir().join("..").join(package))
                .map_err(|e| format!("load: {e}"))?;
            Box::new(ArcModel(loaded.model))
        }
        None => {
            let bytes = std::fs::read(path.with_extension("onnx")).unwrap();
            Box::new(OnnxModel::from_bytes(&bytes, choice).map_err(|e| format!("load: {e}"))?)
        }
    };
    let inputs: Vec<Tensor> = fixture["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(tensor)
        .collect();
    let outputs = model.infer(&inputs).map_err(|e| format!("infer: {e}"))?;
    let rtol = fixture["rtol"].as_f64().unwrap_or(1e-5);
    for want in fixture["outputs"].as_array().unwrap() {
        let want_t = tensor(want);
        let got = outputs
            .iter()
            .find(|t| t.name == want_t.name)
            .ok_or_else(|| format!("no output `{}`", want_t.name))?;
        compare(got, &want_t, rtol).map_err(|e| format!("output `{}`: {e}", want_t.name))?;
        if let Some(classes) = want.get("zipmap_classes") {
            let spec = model
                .signature()
                .outputs
                .iter()
                .find(|s| s.name == want_t.name)
                .unwrap();
            assert_eq!(
                spec.shape,
                vec![-1, classes.as_array().unwrap().len() as i64]
            );
        }
    }
    Ok(())
}

struct ArcModel(std::sync::Arc<dyn Model>);

impl Model for ArcModel {
    fn signature(&self) -> &slipway_core::Signature {
        self.0.signature()
    }
    fn infer(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, slipway_core::CoreError> {
        self.0.infer(inputs)
    }
}

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("conformance/cases exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_case_matches_onnxruntime() {
    let cases = cases();
    assert!(cases.len() >= 75, "only {} cases found", cases.len());
    assert!(
        cases
            .iter()
            .filter(|c| c.to_string_lossy().contains("native_"))
            .count()
            >= 3
    );
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|p| {
            run_case(p, EngineChoice::Auto)
                .err()
                .map(|e| format!("{}: {e}", p.file_stem().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_exporter_case_runs_on_the_interpreter() {
    // The interpreter, not tract, must run every real exporter's model.
    for p in cases() {
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        if name.starts_with("op_") || name.starts_with("native_") {
            continue;
        }
        let bytes = std::fs::read(p.with_extension("onnx")).unwrap();
        let model = OnnxModel::from_bytes(&bytes, EngineChoice::Interpreter)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(model.info.engine, "slipway", "{name}");
    }
}

#[test]
fn standard_operator_graphs_also_run_on_tract() {
    for case in ["torch_style_mlp", "torch_style_mlp_unnamed_batch"] {
        let p = cases_dir().join(format!("{case}.json"));
        run_case(&p, EngineChoice::Tract).unwrap_or_else(|e| panic!("{case} on tract: {e}"));
    }
}

#[test]
fn an_unnamed_batch_dimension_becomes_variable() {
    let bytes = std::fs::read(cases_dir().join("torch_style_mlp_unnamed_batch.onnx")).unwrap();
    for choice in [EngineChoice::Interpreter, EngineChoice::Tract] {
        let model = OnnxModel::from_bytes(&bytes, choice).unwrap();
        assert_eq!(model.signature().inputs[0].shape, vec![-1, 6]);
        assert_eq!(model.signature().outputs[0].shape, vec![-1, 3]);
        for rows in [1usize, 7, 256] {
            let x = Tensor {
                name: "input".into(),
                shape: vec![rows, 6],
                data: TensorData::Fp32(vec![0.5; rows * 6]),
            };
            let out = model.infer(&[x]).unwrap();
            assert_eq!(out[0].shape, vec![rows, 3]);
        }
    }
}

#[test]
fn a_fixed_batch_of_one_can_be_opened_by_the_signature() {
    let bytes = std::fs::read(cases_dir().join("torch_style_mlp_batch1.onnx")).unwrap();
    let reference = OnnxModel::from_bytes(
        &std::fs::read(cases_dir().join("torch_style_mlp.onnx")).unwrap(),
        EngineChoice::Auto,
    )
    .unwrap();
    let rows = 5;
    let x = Tensor {
        name: "input".into(),
        shape: vec![rows, 6],
        data: TensorData::Fp32((0..rows * 6).map(|i| i as f32 / 7.0).collect()),
    };
    // As exported: one row only.
    let fixed = OnnxModel::from_bytes(&bytes, EngineChoice::Auto).unwrap();
    assert_eq!(fixed.signature().inputs[0].shape, vec![1, 6]);
    let err = fixed.infer(std::slice::from_ref(&x)).unwrap_err();
    assert!(err.to_string().contains("[1, 6]"), "{err}");
    // With the batch opened, on both engines, the answers are the named-batch network's.
    let open = slipway_core::TensorSpec {
        name: "input".into(),
        datatype: slipway_core::DataType::Fp32,
        shape: vec![-1, 6],
    };
    let want = reference.infer(std::slice::from_ref(&x)).unwrap();
    for choice in [EngineChoice::Auto, EngineChoice::Tract] {
        let model =
            OnnxModel::from_bytes_with_inputs(&bytes, choice, std::slice::from_ref(&open)).unwrap();
        let got = model.infer(std::slice::from_ref(&x)).unwrap();
        compare(&got[0], &want[0], 1e-5).unwrap();
    }
    // Only the batch dimension or open dimensions may change, and never the datatype.
    for bad in [
        slipway_core::TensorSpec {
            name: "input".into(),
            datatype: slipway_core::DataType::Fp32,
            shape: vec![-1, 7],
        },
        slipway_core::TensorSpec {
            name: "input".into(),
            datatype: slipway_core::DataType::Fp64,
            shape: vec![-1, 6],
        },
        slipway_core::TensorSpec {
            name: "other".into(),
            datatype: slipway_core::DataType::Fp32,
            shape: vec![-1, 6],
        },
    ] {
        let err =
            OnnxModel::from_bytes_with_inputs(&bytes, EngineChoice::Auto, &[bad]).unwrap_err();
        assert!(matches!(err, OnnxError::Invalid(_)), "{err}");
    }
}

#[test]
fn nodes_listed_in_any_order_are_planned() {
    use prost::Message;
    for case in ["sk_mlp_binary", "sk_logistic_scaler_zipmap"] {
        let bytes = std::fs::read(cases_dir().join(format!("{case}.onnx"))).unwrap();
        let mut proto = tract_onnx::pb::ModelProto::decode(&bytes[..]).unwrap();
        proto.graph.as_mut().unwrap().node.reverse();
        let reversed = proto.encode_to_vec();
        let a = OnnxModel::from_bytes(&bytes, EngineChoice::Auto).unwrap();
        let b = OnnxModel::from_bytes(&reversed, EngineChoice::Auto).unwrap();
        let x = Tensor {
            name: "X".into(),
            shape: vec![3, 30],
            data: TensorData::Fp32((0..90).map(|i| i as f32).collect()),
        };
        assert_eq!(
            a.infer(std::slice::from_ref(&x)).unwrap(),
            b.infer(std::slice::from_ref(&x)).unwrap(),
            "{case}"
        );
    }
}

#[test]
fn a_missing_operator_is_named_at_load() {
    let bytes = std::fs::read(cases_dir().join("unsupported_svm.onnx")).unwrap();
    let err = OnnxModel::from_bytes(&bytes, EngineChoice::Auto).unwrap_err();
    assert!(matches!(err, OnnxError::Unsupported { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("ai.onnx.ml::SVMClassifier"), "{msg}");
}

#[test]
fn a_graph_that_does_not_type_check_is_refused_at_load_naming_the_node() {
    let bytes = std::fs::read(cases_dir().join("broken_shapes.onnx")).unwrap();
    for choice in [EngineChoice::Auto, EngineChoice::Tract] {
        let err = OnnxModel::from_bytes(&bytes, choice).unwrap_err();
        assert!(matches!(err, OnnxError::Invalid(_)), "{err}");
        if choice == EngineChoice::Auto {
            let msg = err.to_string();
            assert!(msg.contains("dense_1") && msg.contains("MatMul"), "{msg}");
        }
    }
}

#[test]
fn truncated_and_foreign_files_are_refused_with_a_position() {
    let bytes = std::fs::read(cases_dir().join("sk_random_forest.onnx")).unwrap();
    for cut in [bytes.len() / 3, bytes.len() - 1] {
        let err = OnnxModel::from_bytes(&bytes[..cut], EngineChoice::Auto).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, OnnxError::NotOnnx(_)), "{msg}");
        assert!(msg.contains("byte "), "{msg}");
    }
    for junk in [
        &b"age,income\n41,5000\n"[..],
        b"",
        b"\x00\x01\x02",
        b"PK\x03\x04 this is a zip",
    ] {
        let err = OnnxModel::from_bytes(junk, EngineChoice::Auto).unwrap_err();
        assert!(matches!(err, OnnxError::NotOnnx(_)), "{junk:?}: {err}");
    }
}

#[test]
fn bad_requests_are_refused_not_run() {
    let bytes = std::fs::read(cases_dir().join("sk_gradient_boosting.onnx")).unwrap();
    let model = OnnxModel::from_bytes(&bytes, EngineChoice::Auto).unwrap();
    let cases = [
        Tensor {
            name: "X".into(),
            shape: vec![2, 29],
            data: TensorData::Fp32(vec![0.0; 58]),
        },
        Tensor {
            name: "X".into(),
            shape: vec![2, 30],
            data: TensorData::Fp64(vec![0.0; 60]),
        },
        Tensor {
            name: "X".into(),
            shape: vec![2, 30],
            data: TensorData::Fp32(vec![0.0; 59]),
        },
        Tensor {
            name: "Y".into(),
            shape: vec![1, 30],
            data: TensorData::Fp32(vec![0.0; 30]),
        },
        Tensor {
            name: "X".into(),
            shape: vec![60],
            data: TensorData::Fp32(vec![0.0; 60]),
        },
    ];
    for bad in cases {
        let err = model.infer(std::slice::from_ref(&bad)).unwrap_err();
        assert!(err.to_string().contains("input"), "{bad:?}: {err}");
    }
    // Unknown and repeated names, shapes past any sane size (with no data), and text that is
    // not UTF-8 are refused before anything runs.
    let x = Tensor {
        name: "X".into(),
        shape: vec![1, 30],
        data: TensorData::Fp32(vec![0.0; 30]),
    };
    let stray = Tensor {
        name: "Z".into(),
        ..x.clone()
    };
    let err = model.infer(&[x.clone(), stray]).unwrap_err();
    assert!(err.to_string().contains("unknown input `Z`"), "{err}");
    let err = model.infer(&[x.clone(), x.clone()]).unwrap_err();
    assert!(err.to_string().contains("given twice"), "{err}");
    let huge = Tensor {
        name: "X".into(),
        shape: vec![1 << 62, 30],
        data: TensorData::Fp32(vec![]),
    };
    let err = model.infer(&[huge]).unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
    let zero_rows_huge = Tensor {
        name: "X".into(),
        shape: vec![usize::MAX, 0],
        data: TensorData::Fp32(vec![]),
    };
    assert!(model.infer(&[zero_rows_huge]).is_err());
    let text = OnnxModel::from_bytes(
        &std::fs::read(cases_dir().join("op_label_encoder_string_to_int.onnx")).unwrap(),
        EngineChoice::Auto,
    )
    .unwrap();
    let bad_utf8 = Tensor {
        name: "x".into(),
        shape: vec![1],
        data: TensorData::Bytes(vec![vec![0xff, 0xfe]]),
    };
    let err = text.infer(&[bad_utf8]).unwrap_err();
    assert!(err.to_string().contains("UTF-8"), "{err}");

    // An empty batch is fine.
    let out = model
        .infer(&[Tensor {
            name: "X".into(),
            shape: vec![0, 30],
            data: TensorData::Fp32(vec![]),
        }])
        .unwrap();
    assert_eq!(out[0].data.len(), 0);
}

#[test]
fn declared_sizes_past_the_bound_are_refused_at_load() {
    use prost::Message;
    use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
    let bytes = std::fs::read(cases_dir().join("torch_style_mlp.onnx")).unwrap();
    for width in [(1i64 << 28) + 1, 1 << 40, 1 << 62] {
        let mut proto = tract_onnx::pb::ModelProto::decode(&bytes[..]).unwrap();
        let input = &mut proto.graph.as_mut().unwrap().input[0];
        let Some(tract_onnx::pb::type_proto::Value::TensorType(t)) =
            input.r#type.as_mut().unwrap().value.as_mut()
        else {
            panic!("a tensor input")
        };
        t.shape.as_mut().unwrap().dim[1].value = Some(Dim::DimValue(width));
        let err = OnnxModel::from_bytes(&proto.encode_to_vec(), EngineChoice::Auto).unwrap_err();
        assert!(matches!(err, OnnxError::Invalid(_)), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&width.to_string()) && msg.contains("268435456 elements"),
            "{msg}"
        );
    }
}
