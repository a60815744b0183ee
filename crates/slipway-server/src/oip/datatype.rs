//! Wire datatypes: the protocol's names, the type each decodes to in memory ([`held`]), and the
//! exact range and rounding of every narrower type. JSON, binary blocks and gRPC contents all
//! decode through these, so a value reads the same however it was sent (a proptest below holds
//! binary and JSON to the same INT64 and FP32 values for every integer and half-float type).

use slipway_core::{DataType, Family};

use super::{BadRequest, bad};

/// The datatype named on the wire. Every protocol datatype is accepted here; whether it fits
/// the model's input is [`conform`](super::conform)'s question.
pub fn datatype(name: &str) -> Result<DataType, BadRequest> {
    DataType::parse(name).ok_or_else(|| {
        BadRequest(format!(
            "unknown datatype `{name}` (the protocol's are BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES and BF16)"
        ))
    })
}

/// The in-memory form a wire datatype decodes to: floats of 32 bits or fewer become FP32
/// (exactly), integers INT64 (range-checked), the rest stay as they are.
pub fn held(dt: DataType) -> DataType {
    match dt.family() {
        Family::Float if dt == DataType::Fp64 => DataType::Fp64,
        Family::Float => DataType::Fp32,
        Family::Integer => DataType::Int64,
        Family::Bool | Family::Bytes => dt,
    }
}

/// The range of an integer datatype (INT64's for the others, which are never narrowed).
pub(super) fn int_range(dt: DataType) -> (i128, i128) {
    match dt {
        DataType::Int8 => (i8::MIN.into(), i8::MAX.into()),
        DataType::Int16 => (i16::MIN.into(), i16::MAX.into()),
        DataType::Int32 => (i32::MIN.into(), i32::MAX.into()),
        DataType::Uint8 => (0, u8::MAX.into()),
        DataType::Uint16 => (0, u16::MAX.into()),
        DataType::Uint32 => (0, u32::MAX.into()),
        // UINT64 values are held as INT64, the models' integer type.
        DataType::Uint64 => (0, i64::MAX.into()),
        DataType::Int64
        | DataType::Bool
        | DataType::Fp16
        | DataType::Bf16
        | DataType::Fp32
        | DataType::Fp64
        | DataType::Bytes => (i64::MIN.into(), i64::MAX.into()),
    }
}

/// Element `i` of integer input `name`, checked against the range of its wire type `dt`.
pub fn narrow(name: &str, dt: DataType, i: usize, v: i128) -> Result<i64, BadRequest> {
    let (lo, hi) = int_range(dt);
    if v < lo || v > hi {
        return bad(format!(
            "input `{name}` element {i} is {v}, outside {dt}'s range {lo}..={hi}"
        ));
    }
    i64::try_from(v).map_err(|_| BadRequest(format!("input `{name}` element {i} is too large")))
}

/// A float rounded to what `dt` (FP16, BF16 or FP32) can hold.
pub(super) fn round_float(dt: DataType, x: f64) -> f32 {
    match dt {
        DataType::Fp16 => half::f16::from_f64(x).to_f32(),
        DataType::Bf16 => half::bf16::from_f64(x).to_f32(),
        DataType::Fp32
        | DataType::Fp64
        | DataType::Bool
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Uint8
        | DataType::Uint16
        | DataType::Uint32
        | DataType::Uint64
        | DataType::Bytes => x as f32,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;
    use slipway_core::{DataType, TensorData};

    use super::int_range;
    use crate::oip::{binary_data, parse_request};

    proptest! {
        /// Every integer wire type decodes from its little-endian bytes (binary) and from JSON
        /// to the same INT64 values, and refuses values outside its range.
        #[test]
        fn integer_wire_types_decode(values in prop::collection::vec(any::<i64>(), 0..8), k in 0usize..7) {
            let dt = [DataType::Int8, DataType::Int16, DataType::Int32, DataType::Uint8, DataType::Uint16, DataType::Uint32, DataType::Uint64][k];
            let width = dt.width().unwrap();
            let (lo, hi) = int_range(dt);
            // Fold each value into the type's range, then write it as the type's bytes.
            let span = hi - lo + 1;
            let inside: Vec<i64> = values.iter().map(|&v| i64::try_from(lo + (i128::from(v) - lo).rem_euclid(span)).unwrap_or(i64::MAX)).collect();
            let block: Vec<u8> = inside.iter().flat_map(|&v| v.to_le_bytes()[..width].to_vec()).collect();
            let back = binary_data("x", dt, &block, inside.len()).unwrap();
            prop_assert_eq!(&back, &TensorData::Int64(inside.clone()));
            let body = serde_json::to_vec(&json!({"inputs": [{"name": "x", "datatype": dt.as_str(), "shape": [inside.len()], "data": inside}]})).unwrap();
            prop_assert_eq!(&parse(&body).unwrap().inputs[0].data, &back);
            if dt != DataType::Uint64 {
                let body = serde_json::to_vec(&json!({"inputs": [{"name": "x", "datatype": dt.as_str(), "shape": [1], "data": [hi + 1]}]})).unwrap();
                prop_assert!(parse(&body).unwrap_err().0.contains("range"));
            }
        }

        /// FP16 and BF16 decode exactly to FP32, from bits (binary) and from numbers (JSON,
        /// rounded to the type first).
        #[test]
        fn half_floats_decode(values in prop::collection::vec(-6e4f32..6e4, 0..8)) {
            let h: Vec<u8> = values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
            let b: Vec<u8> = values.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect();
            let want_h = TensorData::Fp32(values.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect());
            let want_b = TensorData::Fp32(values.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect());
            prop_assert_eq!(&binary_data("x", DataType::Fp16, &h, values.len()).unwrap(), &want_h);
            prop_assert_eq!(&binary_data("x", DataType::Bf16, &b, values.len()).unwrap(), &want_b);
            let body = serde_json::to_vec(&json!({"inputs": [{"name": "x", "datatype": "FP16", "shape": [values.len()], "data": values}]})).unwrap();
            prop_assert_eq!(&parse(&body).unwrap().inputs[0].data, &want_h);
        }
    }

    fn parse(body: &[u8]) -> Result<crate::oip::InferRequest, crate::oip::BadRequest> {
        parse_request(body, None, crate::oip::admit_all)
    }
}
