//! The Open Inference Protocol v2 REST codec: inference requests in JSON (flat or nested data)
//! and in the binary tensor data extension, and responses in either form.

// Datatypes and JSON values: the catch-all arm is the refusal of every other kind.
#![allow(clippy::wildcard_enum_match_arm)]

use serde_json::{Map, Value as Json, json};
use slipway_core::{DataType, Tensor, TensorData};

/// A bad request, with the text the client sees in `{"error": …}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

fn bad<T>(m: impl Into<String>) -> Result<T, BadRequest> {
    Err(BadRequest(m.into()))
}

/// One requested output: its name and whether it goes back as binary.
#[derive(Debug, Clone, PartialEq)]
pub struct Requested {
    pub name: String,
    pub binary: bool,
}

/// A decoded inference request.
#[derive(Debug, Clone, PartialEq)]
pub struct InferRequest {
    pub id: Option<String>,
    pub inputs: Vec<Tensor>,
    /// The outputs asked for, or `None` for all of them.
    pub outputs: Option<Vec<Requested>>,
    /// `parameters.binary_data_output`: all outputs binary unless one says otherwise.
    pub binary_output: bool,
}

fn datatype(name: &str) -> Result<DataType, BadRequest> {
    Ok(match name {
        "BOOL" => DataType::Bool,
        "INT64" => DataType::Int64,
        "FP32" => DataType::Fp32,
        "FP64" => DataType::Fp64,
        "BYTES" => DataType::Bytes,
        "UINT8" | "UINT16" | "UINT32" | "UINT64" | "INT8" | "INT16" | "INT32" | "FP16" | "BF16" => {
            return bad(format!(
                "datatype {name} is not one Slipway's models take (they take BOOL, INT64, FP32, FP64 and BYTES; see the model's metadata)"
            ));
        }
        other => return bad(format!("unknown datatype `{other}`")),
    })
}

/// Flattens nested JSON arrays (depth ≤ 100), in row-major order.
fn flatten<'a>(v: &'a Json, out: &mut Vec<&'a Json>, depth: usize) -> Result<(), BadRequest> {
    if depth > 100 {
        return bad("`data` is nested more than 100 deep");
    }
    match v {
        Json::Array(items) => {
            for i in items {
                flatten(i, out, depth + 1)?;
            }
        }
        other => out.push(other),
    }
    Ok(())
}

fn json_data(
    name: &str,
    dt: DataType,
    data: &Json,
    count: usize,
) -> Result<TensorData, BadRequest> {
    let mut flat = Vec::with_capacity(count.min(1 << 20));
    flatten(data, &mut flat, 0)?;
    if flat.len() != count {
        return bad(format!(
            "input `{name}` has {} elements in `data`, its shape needs {count}",
            flat.len()
        ));
    }
    let wrong =
        |i: usize, want: &str| BadRequest(format!("input `{name}` element {i} is not {want}"));
    Ok(match dt {
        DataType::Fp32 => TensorData::Fp32(
            flat.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_f64()
                        .map(|x| x as f32)
                        .ok_or_else(|| wrong(i, "a number"))
                })
                .collect::<Result<_, _>>()?,
        ),
        DataType::Fp64 => TensorData::Fp64(
            flat.iter()
                .enumerate()
                .map(|(i, v)| v.as_f64().ok_or_else(|| wrong(i, "a number")))
                .collect::<Result<_, _>>()?,
        ),
        DataType::Int64 => TensorData::Int64(
            flat.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_i64()
                        .or_else(|| {
                            v.as_f64()
                                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                                .map(|f| f as i64)
                        })
                        .ok_or_else(|| wrong(i, "an integer"))
                })
                .collect::<Result<_, _>>()?,
        ),
        DataType::Bool => TensorData::Bool(
            flat.iter()
                .enumerate()
                .map(|(i, v)| v.as_bool().ok_or_else(|| wrong(i, "true or false")))
                .collect::<Result<_, _>>()?,
        ),
        DataType::Bytes => TensorData::Bytes(
            flat.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str()
                        .map(|s| s.as_bytes().to_vec())
                        .ok_or_else(|| wrong(i, "a string"))
                })
                .collect::<Result<_, _>>()?,
        ),
        other => return bad(format!("datatype {other} is not supported")),
    })
}

/// Decodes one binary block of `count` elements.
pub fn binary_data(
    name: &str,
    dt: DataType,
    block: &[u8],
    count: usize,
) -> Result<TensorData, BadRequest> {
    let fixed = |width: usize| -> Result<(), BadRequest> {
        match count.checked_mul(width) {
            Some(n) if n == block.len() => Ok(()),
            _ => bad(format!(
                "input `{name}`: {} bytes of binary data, its shape needs {count} × {width}",
                block.len()
            )),
        }
    };
    Ok(match dt {
        DataType::Fp32 => {
            fixed(4)?;
            TensorData::Fp32(
                block
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        }
        DataType::Fp64 => {
            fixed(8)?;
            TensorData::Fp64(
                block
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect(),
            )
        }
        DataType::Int64 => {
            fixed(8)?;
            TensorData::Int64(
                block
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect(),
            )
        }
        DataType::Bool => {
            fixed(1)?;
            TensorData::Bool(block.iter().map(|&b| b != 0).collect())
        }
        DataType::Bytes => {
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
            TensorData::Bytes(out)
        }
        other => return bad(format!("datatype {other} is not supported")),
    })
}

/// Parses `/infer`'s body. `header_len` is `Inference-Header-Content-Length`, if sent.
pub fn parse_request(body: &[u8], header_len: Option<usize>) -> Result<InferRequest, BadRequest> {
    let header_len = header_len.unwrap_or(body.len());
    if header_len > body.len() {
        return bad(format!(
            "Inference-Header-Content-Length is {header_len} but the body has {} bytes",
            body.len()
        ));
    }
    if header_len == 0 {
        return bad(
            "a raw binary request (Inference-Header-Content-Length: 0) is not supported; send a JSON header",
        );
    }
    let header: Json = serde_json::from_slice(&body[..header_len])
        .map_err(|e| BadRequest(format!("the request is not valid JSON: {e}")))?;
    let Some(obj) = header.as_object() else {
        return bad("the request must be a JSON object");
    };
    let id = obj
        .get("id")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let Some(inputs_json) = obj.get("inputs").and_then(Json::as_array) else {
        return bad("the request has no `inputs` array");
    };
    let mut rest = &body[header_len..];
    let mut inputs = Vec::with_capacity(inputs_json.len());
    for (k, input) in inputs_json.iter().enumerate() {
        let name = input
            .get("name")
            .and_then(Json::as_str)
            .ok_or_else(|| BadRequest(format!("input {k} has no `name`")))?
            .to_string();
        let dt = datatype(
            input
                .get("datatype")
                .and_then(Json::as_str)
                .ok_or_else(|| BadRequest(format!("input `{name}` has no `datatype`")))?,
        )?;
        let shape: Vec<usize> = input
            .get("shape")
            .and_then(Json::as_array)
            .ok_or_else(|| BadRequest(format!("input `{name}` has no `shape`")))?
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                BadRequest(format!(
                    "input `{name}`: `shape` must hold non-negative integers"
                ))
            })?;
        let count = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&c| c <= 1 << 28)
            .ok_or_else(|| BadRequest(format!("input `{name}`: shape {shape:?} is too large")))?;
        let binary_size = input
            .get("parameters")
            .and_then(|p| p.get("binary_data_size"));
        let data = input.get("data");
        let data = match (data, binary_size) {
            (Some(d), None) => json_data(&name, dt, d, count)?,
            (None, Some(n)) => {
                let n = n
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| {
                        BadRequest(format!(
                            "input `{name}`: binary_data_size must be a non-negative integer"
                        ))
                    })?;
                if rest.len() < n {
                    return bad(format!(
                        "unexpected size for input `{name}`, expecting {n} additional bytes, {} remain",
                        rest.len()
                    ));
                }
                let (block, tail) = rest.split_at(n);
                rest = tail;
                binary_data(&name, dt, block, count)?
            }
            (Some(_), Some(_)) | (None, None) => {
                return bad(format!(
                    "input `{name}` must set exactly one of `data` and `parameters.binary_data_size`"
                ));
            }
        };
        inputs.push(Tensor { name, shape, data });
    }
    if !rest.is_empty() {
        return bad(format!(
            "{} bytes of binary data follow the last input that asked for some",
            rest.len()
        ));
    }
    let binary_output = obj
        .get("parameters")
        .and_then(|p| p.get("binary_data_output"))
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let outputs = match obj.get("outputs") {
        None | Some(Json::Null) => None,
        Some(Json::Array(list)) => Some(
            list.iter()
                .enumerate()
                .map(|(k, o)| {
                    let name = o
                        .get("name")
                        .and_then(Json::as_str)
                        .ok_or_else(|| BadRequest(format!("requested output {k} has no `name`")))?;
                    let binary = o
                        .get("parameters")
                        .and_then(|p| p.get("binary_data"))
                        .and_then(Json::as_bool)
                        .unwrap_or(binary_output);
                    Ok(Requested {
                        name: name.to_string(),
                        binary,
                    })
                })
                .collect::<Result<_, BadRequest>>()?,
        ),
        Some(_) => return bad("`outputs` must be an array"),
    };
    Ok(InferRequest {
        id,
        inputs,
        outputs,
        binary_output,
    })
}

fn json_elements(d: &TensorData) -> Json {
    match d {
        TensorData::Bool(v) => json!(v),
        TensorData::Int64(v) => json!(v),
        // NaN and infinities have no JSON form: they become null.
        TensorData::Fp32(v) => Json::Array(
            v.iter()
                .map(|&x| {
                    serde_json::Number::from_f64(f64::from(x)).map_or(Json::Null, Json::Number)
                })
                .collect(),
        ),
        TensorData::Fp64(v) => Json::Array(
            v.iter()
                .map(|&x| serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number))
                .collect(),
        ),
        TensorData::Bytes(v) => Json::Array(
            v.iter()
                .map(|b| Json::String(String::from_utf8_lossy(b).into_owned()))
                .collect(),
        ),
    }
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

/// An encoded response: the body, and the JSON header's length when binary blocks follow.
pub struct Encoded {
    pub body: Vec<u8>,
    pub header_len: Option<usize>,
}

/// Encodes the model's outputs, selecting and ordering them as requested.
pub fn encode_response(
    model: &str,
    version: &str,
    request: &InferRequest,
    outputs: Vec<Tensor>,
) -> Result<Encoded, BadRequest> {
    let chosen: Vec<(Tensor, bool)> = match &request.outputs {
        None => outputs
            .into_iter()
            .map(|t| (t, request.binary_output))
            .collect(),
        Some(list) => {
            let mut all = outputs;
            let mut chosen = Vec::with_capacity(list.len());
            for r in list {
                let Some(i) = all.iter().position(|t| t.name == r.name) else {
                    return bad(format!("the model has no output `{}`", r.name));
                };
                chosen.push((all.swap_remove(i), r.binary));
            }
            chosen
        }
    };
    let mut blocks = Vec::new();
    let mut outs = Vec::with_capacity(chosen.len());
    for (t, binary) in chosen {
        let mut o = Map::new();
        o.insert("name".into(), json!(t.name));
        o.insert("datatype".into(), json!(t.data.datatype().as_str()));
        o.insert("shape".into(), json!(t.shape));
        if binary {
            let block = binary_block(&t.data);
            o.insert(
                "parameters".into(),
                json!({"binary_data_size": block.len()}),
            );
            blocks.push(block);
        } else {
            o.insert("data".into(), json_elements(&t.data));
        }
        outs.push(Json::Object(o));
    }
    let mut head = Map::new();
    head.insert("model_name".into(), json!(model));
    head.insert("model_version".into(), json!(version));
    if let Some(id) = &request.id {
        head.insert("id".into(), json!(id));
    }
    head.insert("outputs".into(), Json::Array(outs));
    let mut body =
        serde_json::to_vec(&Json::Object(head)).map_err(|e| BadRequest(e.to_string()))?;
    let header_len = body.len();
    let binary = blocks.iter().any(|b| !b.is_empty());
    for b in blocks {
        body.extend_from_slice(&b);
    }
    Ok(Encoded {
        body,
        header_len: binary.then_some(header_len),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn tensor_strategy() -> impl Strategy<Value = Tensor> {
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
            (Just(shape), data).prop_map(|(shape, data)| Tensor {
                name: "x".into(),
                shape,
                data,
            })
        })
    }

    proptest! {
        /// A tensor sent as a binary block decodes to itself.
        #[test]
        fn binary_blocks_round_trip(t in tensor_strategy()) {
            let block = binary_block(&t.data);
            let count = t.shape.iter().product();
            let back = binary_data("x", t.data.datatype(), &block, count).unwrap();
            prop_assert_eq!(back, t.data);
        }

        /// A request built from tensors (binary or JSON per input) parses back to them.
        #[test]
        fn requests_round_trip(ts in prop::collection::vec(tensor_strategy(), 1..4), binary in prop::collection::vec(any::<bool>(), 4)) {
            let mut inputs = Vec::new();
            let mut blocks = Vec::new();
            for (i, t) in ts.iter().enumerate() {
                let mut v = json!({"name": format!("in{i}"), "datatype": t.data.datatype().as_str(), "shape": t.shape});
                let utf8 = match &t.data { TensorData::Bytes(b) => b.iter().all(|e| std::str::from_utf8(e).is_ok()), _ => true };
                if binary[i] || !utf8 {
                    let b = binary_block(&t.data);
                    v["parameters"] = json!({"binary_data_size": b.len()});
                    blocks.push(b);
                } else {
                    v["data"] = json_elements(&t.data);
                }
                inputs.push(v);
            }
            let header = serde_json::to_vec(&json!({"inputs": inputs})).unwrap();
            let mut body = header.clone();
            for b in &blocks { body.extend_from_slice(b); }
            let parsed = parse_request(&body, Some(header.len())).unwrap();
            for (i, (got, want)) in parsed.inputs.iter().zip(&ts).enumerate() {
                prop_assert_eq!(&got.name, &format!("in{i}"));
                prop_assert_eq!(&got.shape, &want.shape);
                match (&got.data, &want.data) {
                    (TensorData::Fp32(a), TensorData::Fp32(b)) => prop_assert!(a.iter().zip(b).all(|(x, y)| x == y)),
                    (a, b) => prop_assert_eq!(a, b),
                }
            }
        }

        /// Arbitrary bodies and header lengths never panic the parser.
        #[test]
        fn any_body_is_answered(body in prop::collection::vec(any::<u8>(), 0..200), cut in prop::option::of(0usize..250)) {
            let _ = parse_request(&body, cut);
        }
    }

    #[test]
    fn nested_and_flat_data_are_the_same() {
        let flat = br#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP64","data":[1,2,3,4]}]}"#;
        let nested =
            br#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP64","data":[[1,2],[3,4]]}]}"#;
        assert_eq!(
            parse_request(flat, None).unwrap(),
            parse_request(nested, None).unwrap()
        );
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let cases: [(&[u8], &str); 7] = [
            (b"{", "not valid JSON"),
            (br#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1,2]}]}"#, "needs 3"),
            (br#"{"inputs":[{"name":"x","shape":[1],"datatype":"INT64","data":[1.5]}]}"#, "not an integer"),
            (br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP16","data":[1]}]}"#, "FP16"),
            (br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}"#, "exactly one"),
            (br#"{"inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[1]}]}"#, "non-negative"),
            (br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}"#, "expecting 4 additional bytes"),
        ];
        for (body, want) in cases {
            let err = parse_request(body, None).unwrap_err();
            assert!(
                err.0.contains(want),
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
