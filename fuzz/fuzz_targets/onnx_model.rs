//! Bytes → `OnnxModel::from_bytes` on Slipway's interpreter, then one request of zeros shaped by
//! the signature it reports. Refusals are fine; a panic, an abort or a hang is a bug.
//!
//! Seed it with the conformance models: `cp ../conformance/cases/*.onnx corpus/onnx_model/`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_core::{DataType, Model, Tensor, TensorData};
use slipway_runtime::{EngineChoice, OnnxModel};

fuzz_target!(|bytes: &[u8]| {
    let Ok(model) = OnnxModel::from_bytes(bytes, EngineChoice::Interpreter) else {
        return;
    };
    let mut inputs = Vec::new();
    for spec in &model.signature().inputs {
        let shape: Vec<usize> = spec.shape.iter().map(|&d| if d < 0 { 2 } else { d.min(64) as usize }).collect();
        let n: usize = shape.iter().product();
        let data = match spec.datatype {
            DataType::Fp32 => TensorData::Fp32(vec![0.5; n]),
            DataType::Fp64 => TensorData::Fp64(vec![f64::NAN; n]),
            DataType::Int64 => TensorData::Int64(vec![1; n]),
            DataType::Bool => TensorData::Bool(vec![true; n]),
            _ => TensorData::Bytes(vec![b"x".to_vec(); n]),
        };
        inputs.push(Tensor { name: spec.name.clone(), shape, data });
    }
    let _ = model.infer(&inputs);
});
