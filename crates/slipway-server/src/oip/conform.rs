//! Fitting decoded inputs to the model's input types: a tensor sent in a type that converts
//! exactly, for every value, to the model's (FP16 to FP32, INT32 to INT64, FP32 to FP64…) is
//! converted; any other is refused, naming what to send. REST and gRPC both call [`conform`]
//! after decoding, so the rule is written once.

use slipway_core::{DataType, Tensor, TensorData};

use super::{BadRequest, bad};

/// The wire datatypes that convert exactly, for every value, to a model's input type.
pub fn converts_to(model: DataType) -> &'static [DataType] {
    use DataType::*;
    match model {
        Fp32 => &[Fp16, Bf16, Int8, Int16, Uint8, Uint16],
        Fp64 => &[Fp16, Bf16, Fp32, Int8, Int16, Int32, Uint8, Uint16, Uint32],
        Int64 => &[Int8, Int16, Int32, Uint8, Uint16, Uint32, Uint64],
        Bool | Uint8 | Uint16 | Uint32 | Uint64 | Int8 | Int16 | Int32 | Fp16 | Bf16 | Bytes => &[],
    }
}

/// Fits decoded inputs to the model's input types. A tensor sent in the model's own type is
/// left as it is; one sent in a type that converts exactly (FP16 to an FP32 input, INT32 to an
/// INT64 one, FP32 to FP64, …) is converted; any other is refused, saying what to send.
/// Inputs the model does not know are left for the signature check to name.
pub fn conform(
    inputs: &mut [Tensor],
    wire: &[DataType],
    signature: &slipway_core::Signature,
) -> Result<(), BadRequest> {
    for (t, &sent) in inputs.iter_mut().zip(wire) {
        let Some(spec) = signature.inputs.iter().find(|s| s.name == t.name) else {
            continue;
        };
        let want = spec.datatype;
        if sent == want {
            continue;
        }
        if !converts_to(want).contains(&sent) {
            let also: Vec<&str> = converts_to(want).iter().map(|d| d.as_str()).collect();
            let hint = if also.is_empty() {
                String::new()
            } else {
                format!(", or one that converts to it exactly: {}", also.join(", "))
            };
            return bad(format!(
                "input `{}` must be {want}{hint}; got {sent}",
                t.name
            ));
        }
        let data = std::mem::replace(&mut t.data, TensorData::Bool(Vec::new()));
        t.data = match (want, data) {
            (DataType::Fp32, TensorData::Int64(v)) => {
                TensorData::Fp32(v.into_iter().map(|x| x as f32).collect())
            }
            (DataType::Fp64, TensorData::Int64(v)) => {
                TensorData::Fp64(v.into_iter().map(|x| x as f64).collect())
            }
            (DataType::Fp64, TensorData::Fp32(v)) => {
                TensorData::Fp64(v.into_iter().map(f64::from).collect())
            }
            // Already held as the model's type (FP16 and BF16 as FP32, narrow integers as INT64).
            (_, same) => same,
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use slipway_core::{DataType, TensorData};

    use super::conform;
    use crate::oip::{admit_all, parse_request};

    #[test]
    fn conform_converts_exactly_or_says_what_to_send() {
        use slipway_core::{Signature, TensorSpec};
        let spec = |name: &str, datatype| TensorSpec {
            name: name.into(),
            datatype,
            shape: vec![-1],
        };
        let sig = Signature {
            inputs: vec![
                spec("f32", DataType::Fp32),
                spec("f64", DataType::Fp64),
                spec("i64", DataType::Int64),
            ],
            outputs: vec![],
        };
        let body = br#"{"inputs":[
            {"name":"f32","shape":[2],"datatype":"UINT16","data":[1,65535]},
            {"name":"f64","shape":[2],"datatype":"FP16","data":[0.1,2]},
            {"name":"i64","shape":[2],"datatype":"INT32","data":[-5,7]}]}"#;
        let mut r = parse_request(body, None, admit_all).unwrap();
        conform(&mut r.inputs, &r.wire, &sig).unwrap();
        assert_eq!(r.inputs[0].data, TensorData::Fp32(vec![1.0, 65535.0]));
        let tenth = f64::from(half::f16::from_f64(0.1).to_f32());
        assert_eq!(r.inputs[1].data, TensorData::Fp64(vec![tenth, 2.0]));
        assert_eq!(r.inputs[2].data, TensorData::Int64(vec![-5, 7]));
        sig.check_inputs(&r.inputs).unwrap();

        // Lossy conversions are refused, naming what would do.
        for (input, sent, want) in [
            (
                "f32",
                "FP64",
                "must be FP32, or one that converts to it exactly: FP16, BF16",
            ),
            ("f32", "INT32", "got INT32"),
            ("i64", "FP32", "must be INT64"),
            ("f64", "INT64", "got INT64"),
        ] {
            let body = format!(
                r#"{{"inputs":[{{"name":"{input}","shape":[1],"datatype":"{sent}","data":[1]}}]}}"#
            );
            let mut r = parse_request(body.as_bytes(), None, admit_all).unwrap();
            let err = conform(&mut r.inputs, &r.wire, &sig).unwrap_err();
            assert!(err.0.contains(want), "{input} {sent}: {err}");
        }
    }
}
