//! Bytes → a protobuf `ModelInferRequest` → `grpc::decode_inputs` → `oip::conform` against a
//! signature with an FP32, an FP64 and an INT64 input: what every gRPC `ModelInfer` goes
//! through before the engine. Refusals are fine; a panic, an abort or a hang is a bug.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use slipway_core::{DataType, Signature, TensorSpec};
use slipway_server::{grpc, oip};

fuzz_target!(|bytes: &[u8]| {
    let Ok(request) = grpc::pb::ModelInferRequest::decode(bytes) else {
        return;
    };
    let spec = |name: &str, datatype| TensorSpec {
        name: name.into(),
        datatype,
        shape: vec![-1, -1],
    };
    let signature = Signature {
        inputs: vec![
            spec("a", DataType::Fp32),
            spec("b", DataType::Fp64),
            spec("c", DataType::Int64),
        ],
        outputs: vec![],
    };
    if let Ok((mut inputs, wire)) = grpc::decode_inputs(&request)
        && oip::conform(&mut inputs, &wire, &signature).is_ok()
    {
        let _ = signature.check_inputs(&inputs);
    }
});
