//! The gRPC messages to and from tensors: inputs from `raw_input_contents` (the binary
//! tensor encoding REST uses too) or typed `contents`, outputs always in
//! `raw_output_contents`, which every client reads.

use slipway_core::{DataType, Tensor, TensorData};
use slipway_engine::Served;

use super::pb;
use crate::ApiError;
use crate::error::clip;
use crate::oip::{self, BadRequest};

/// Decodes a request's inputs, from `raw_input_contents` or from typed `contents`, into
/// tensors and the datatypes they were sent as.
///
/// `rows` hears the request's rows (the first input's first dimension, or one) before any
/// input's data is copied out of the message.
pub fn decode_inputs<E: From<BadRequest>>(
    req: &pb::ModelInferRequest,
    mut rows: impl FnMut(usize) -> Result<(), E>,
) -> Result<(Vec<Tensor>, Vec<DataType>), E> {
    let raw = !req.raw_input_contents.is_empty();
    if raw && req.inputs.iter().any(|i| i.contents.is_some()) {
        return Err(BadRequest(
            "contents field must not be specified when using raw_input_contents".into(),
        )
        .into());
    }
    if raw && req.raw_input_contents.len() != req.inputs.len() {
        return Err(BadRequest(format!(
            "{} inputs but {} raw_input_contents entries; send one per input, in order",
            req.inputs.len(),
            req.raw_input_contents.len()
        ))
        .into());
    }
    let mut tensors = Vec::with_capacity(req.inputs.len());
    let mut wire = Vec::with_capacity(req.inputs.len());
    for (k, input) in req.inputs.iter().enumerate() {
        let name = &input.name;
        let dt = oip::datatype(&input.datatype)?;
        let shape = oip::shape_of(name, &input.shape)?;
        let count = oip::element_count(name, &shape)?;
        if k == 0 {
            rows(shape.first().copied().unwrap_or(1))?;
        }
        let data = if raw {
            oip::binary_data(name, dt, &req.raw_input_contents[k], count)?
        } else {
            let Some(c) = &input.contents else {
                return Err(BadRequest(format!(
                    "input `{name}` has no data: set its `contents` or send raw_input_contents"
                ))
                .into());
            };
            typed_data(name, dt, c, count)?
        };
        tensors.push(Tensor {
            name: name.clone(),
            shape,
            data,
        });
        wire.push(dt);
    }
    Ok((tensors, wire))
}

/// Typed `contents`: each datatype in its field, INT8/16 and UINT8/16 widened to 32 bits by
/// the protocol and narrowed back here with a range check.
fn typed_data(
    name: &str,
    dt: DataType,
    c: &pb::InferTensorContents,
    count: usize,
) -> Result<TensorData, BadRequest> {
    let got = match dt {
        DataType::Bool => c.bool_contents.len(),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => c.int_contents.len(),
        DataType::Int64 => c.int64_contents.len(),
        DataType::Uint8 | DataType::Uint16 | DataType::Uint32 => c.uint_contents.len(),
        DataType::Uint64 => c.uint64_contents.len(),
        DataType::Fp32 => c.fp32_contents.len(),
        DataType::Fp64 => c.fp64_contents.len(),
        DataType::Bytes => c.bytes_contents.len(),
        DataType::Fp16 | DataType::Bf16 => {
            return Err(BadRequest(format!(
                "input `{name}`: {dt} has no typed contents field; send it in raw_input_contents"
            )));
        }
    };
    if got != count {
        return Err(BadRequest(format!(
            "input `{name}` has {got} {dt} elements in `contents`, its shape needs {count}"
        )));
    }
    Ok(match dt {
        DataType::Bool => TensorData::Bool(c.bool_contents.clone()),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => TensorData::Int64(
            c.int_contents
                .iter()
                .enumerate()
                .map(|(i, &v)| oip::narrow(name, dt, i, v.into()))
                .collect::<Result<_, _>>()?,
        ),
        DataType::Uint8 | DataType::Uint16 | DataType::Uint32 => TensorData::Int64(
            c.uint_contents
                .iter()
                .enumerate()
                .map(|(i, &v)| oip::narrow(name, dt, i, v.into()))
                .collect::<Result<_, _>>()?,
        ),
        DataType::Uint64 => TensorData::Int64(
            c.uint64_contents
                .iter()
                .enumerate()
                .map(|(i, &v)| oip::narrow(name, dt, i, v.into()))
                .collect::<Result<_, _>>()?,
        ),
        DataType::Int64 => TensorData::Int64(c.int64_contents.clone()),
        DataType::Fp32 => TensorData::Fp32(c.fp32_contents.clone()),
        DataType::Fp64 => TensorData::Fp64(c.fp64_contents.clone()),
        DataType::Bytes => TensorData::Bytes(c.bytes_contents.clone()),
        DataType::Fp16 | DataType::Bf16 => {
            return Err(BadRequest(format!("datatype {dt} is not supported")));
        }
    })
}

/// The response: the requested outputs (all of them when none is named), in the order asked,
/// each with its data in `raw_output_contents`.
pub(super) fn encode(
    served: &Served,
    id: String,
    requested: &[pb::model_infer_request::InferRequestedOutputTensor],
    outputs: Vec<Tensor>,
) -> Result<pb::ModelInferResponse, ApiError> {
    let chosen = if requested.is_empty() {
        outputs
    } else {
        let mut all = outputs;
        let mut chosen: Vec<Tensor> = Vec::with_capacity(requested.len());
        for r in requested {
            if chosen.iter().any(|t| t.name == r.name) {
                return Err(ApiError::BadRequest(format!(
                    "output \"{}\" is requested twice",
                    clip(&r.name, 64)
                )));
            }
            let Some(i) = all.iter().position(|t| t.name == r.name) else {
                return Err(ApiError::BadRequest(format!(
                    "the model has no output `{}`",
                    clip(&r.name, 64)
                )));
            };
            chosen.push(all.swap_remove(i));
        }
        chosen
    };
    let mut resp = pb::ModelInferResponse {
        model_name: served.name.clone(),
        model_version: served.version.clone(),
        id,
        ..Default::default()
    };
    for t in chosen {
        resp.raw_output_contents.push(oip::binary_block(&t.data));
        resp.outputs
            .push(pb::model_infer_response::InferOutputTensor {
                name: t.name,
                datatype: t.data.datatype().as_str().to_string(),
                shape: t.shape.iter().map(|&d| d as i64).collect(),
                ..Default::default()
            });
    }
    Ok(resp)
}
