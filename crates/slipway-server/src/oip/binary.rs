//! The binary tensor data extension, both ways: a block (REST) or raw contents (gRPC) decoded
//! to the held type of its wire datatype ([`binary_data`]), and a tensor written as its block
//! ([`binary_block`]). Little-endian, row-major; BYTES elements each a u32 length and the
//! bytes. No parsing and no per-element branching beyond the range check of narrow integers:
//! the 256-row binary body is what serve.sh's 2.63 M rows/s figure is measured on.

use slipway_core::{DataType, TensorData};

use super::datatype::narrow;
use super::{BadRequest, bad};

/// Decodes one binary block (REST) or raw content (gRPC) of `count` elements of wire type
/// `dt`: little-endian, row-major, BYTES elements each a u32 length and the bytes.
pub fn binary_data(
    name: &str,
    dt: DataType,
    block: &[u8],
    count: usize,
) -> Result<TensorData, BadRequest> {
    let Some(width) = dt.width() else {
        return bytes_elements(name, block, count);
    };
    if count.checked_mul(width) != Some(block.len()) {
        return bad(format!(
            "input `{name}`: {} bytes of {dt} data, its shape needs {count} × {width}",
            block.len()
        ));
    }
    let words = |c: &[u8]| -> [u8; 8] {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        w
    };
    let ints = |f: fn([u8; 8]) -> i128| -> Result<TensorData, BadRequest> {
        block
            .chunks_exact(width)
            .enumerate()
            .map(|(i, c)| narrow(name, dt, i, f(words(c))))
            .collect::<Result<_, _>>()
            .map(TensorData::Int64)
    };
    Ok(match dt {
        DataType::Fp32 => TensorData::Fp32(
            block
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        DataType::Fp16 => TensorData::Fp32(
            block
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        ),
        DataType::Bf16 => TensorData::Fp32(
            block
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        ),
        DataType::Fp64 => TensorData::Fp64(
            block
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(words(c)))
                .collect(),
        ),
        DataType::Int64 => TensorData::Int64(
            block
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(words(c)))
                .collect(),
        ),
        DataType::Bool => TensorData::Bool(block.iter().map(|&b| b != 0).collect()),
        DataType::Int8 => ints(|w| i8::from_le_bytes([w[0]]).into())?,
        DataType::Int16 => ints(|w| i16::from_le_bytes([w[0], w[1]]).into())?,
        DataType::Int32 => ints(|w| i32::from_le_bytes([w[0], w[1], w[2], w[3]]).into())?,
        DataType::Uint8 => ints(|w| w[0].into())?,
        DataType::Uint16 => ints(|w| u16::from_le_bytes([w[0], w[1]]).into())?,
        DataType::Uint32 => ints(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]).into())?,
        DataType::Uint64 => ints(|w| u64::from_le_bytes(w).into())?,
        // BYTES has no width: read above.
        other @ DataType::Bytes => return bad(format!("datatype {other} is not supported")),
    })
}

/// Length-prefixed BYTES elements.
fn bytes_elements(name: &str, block: &[u8], count: usize) -> Result<TensorData, BadRequest> {
    let mut out = Vec::with_capacity(count.min(block.len() / 4 + 1));
    let mut rest = block;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return bad(format!(
                "input `{name}`: a BYTES length prefix is cut short"
            ));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        if rest.len() < len {
            return bad(format!(
                "input `{name}`: a BYTES element declares {len} bytes, {} remain",
                rest.len()
            ));
        }
        out.push(rest[..len].to_vec());
        rest = &rest[len..];
    }
    if out.len() != count {
        return bad(format!(
            "input `{name}`: {} BYTES elements, its shape needs {count}",
            out.len()
        ));
    }
    Ok(TensorData::Bytes(out))
}

/// The binary block of a tensor.
pub fn binary_block(d: &TensorData) -> Vec<u8> {
    match d {
        TensorData::Bool(v) => v.iter().map(|&b| u8::from(b)).collect(),
        TensorData::Int64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::Fp32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::Fp64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::Bytes(v) => {
            let mut out = Vec::with_capacity(v.iter().map(|b| b.len() + 4).sum());
            for b in v {
                out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_le_bytes());
                out.extend_from_slice(b);
            }
            out
        }
    }
}

/// Tensors of every held type and small shapes (empty ones included), for the round trips.
#[cfg(test)]
pub(super) fn tensor_strategy() -> impl proptest::strategy::Strategy<Value = slipway_core::Tensor> {
    use proptest::prelude::*;
    let shape = prop::collection::vec(0usize..4, 1..3);
    shape.prop_flat_map(|shape| {
        let n: usize = shape.iter().product();
        let data = prop_oneof![
            prop::collection::vec(any::<bool>(), n).prop_map(TensorData::Bool),
            prop::collection::vec(any::<i64>(), n).prop_map(TensorData::Int64),
            prop::collection::vec(-1e6f32..1e6, n).prop_map(TensorData::Fp32),
            prop::collection::vec(-1e12f64..1e12, n).prop_map(TensorData::Fp64),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..6), n)
                .prop_map(TensorData::Bytes),
        ];
        (Just(shape), data).prop_map(|(shape, data)| slipway_core::Tensor {
            name: "x".into(),
            shape,
            data,
        })
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{binary_block, binary_data, tensor_strategy};

    proptest! {
        /// A tensor sent as a binary block decodes to itself.
        #[test]
        fn binary_blocks_round_trip(t in tensor_strategy()) {
            let block = binary_block(&t.data);
            let count = t.shape.iter().product();
            let back = binary_data("x", t.data.datatype(), &block, count).unwrap();
            prop_assert_eq!(back, t.data);
        }
    }
}
