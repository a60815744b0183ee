//! Encoding a response: the requested outputs (all of them when none is named), in the order
//! asked, each as JSON `data` or as a binary block after the JSON header. The header is
//! serialized straight from the tensors, with no JSON tree in between (commit 3989a16); NaN
//! and infinities, which JSON cannot hold, become `null`. Nothing here indexes into a tensor's
//! elements, so empty outputs (shape `[0]`) encode like any other.

use slipway_core::{Tensor, TensorData};

use super::binary::binary_block;
use super::request::InferRequest;
use super::{BadRequest, bad};

/// A response's JSON header, written straight from the tensors (no JSON tree).
#[derive(serde::Serialize)]
struct OutHead<'a> {
    model_name: &'a str,
    model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    outputs: Vec<OutTensor<'a>>,
}

#[derive(serde::Serialize)]
struct OutTensor<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [usize],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinarySize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Elements<'a>>,
}

#[derive(serde::Serialize)]
struct BinarySize {
    binary_data_size: usize,
}

/// A tensor's elements as a flat JSON array; NaN and infinities, which JSON cannot hold,
/// become `null` (serde_json's rule).
struct Elements<'a>(&'a TensorData);

impl serde::Serialize for Elements<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            TensorData::Bool(v) => v.serialize(s),
            TensorData::Int64(v) => v.serialize(s),
            TensorData::Fp32(v) => v.serialize(s),
            TensorData::Fp64(v) => v.serialize(s),
            TensorData::Bytes(v) => {
                use serde::ser::SerializeSeq;
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for b in v {
                    seq.serialize_element(&String::from_utf8_lossy(b))?;
                }
                seq.end()
            }
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
    for (t, binary) in &chosen {
        if *binary {
            let block = binary_block(&t.data);
            outs.push(OutTensor {
                name: &t.name,
                datatype: t.data.datatype().as_str(),
                shape: &t.shape,
                parameters: Some(BinarySize {
                    binary_data_size: block.len(),
                }),
                data: None,
            });
            blocks.push(block);
        } else {
            outs.push(OutTensor {
                name: &t.name,
                datatype: t.data.datatype().as_str(),
                shape: &t.shape,
                parameters: None,
                data: Some(Elements(&t.data)),
            });
        }
    }
    let head = OutHead {
        model_name: model,
        model_version: version,
        id: request.id.as_deref(),
        outputs: outs,
    };
    let mut body = serde_json::to_vec(&head).map_err(|e| BadRequest(e.to_string()))?;
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
    use slipway_core::{Tensor, TensorData};

    use super::encode_response;
    use crate::oip::{InferRequest, Requested};

    fn request(outputs: Option<Vec<Requested>>, binary_output: bool) -> InferRequest {
        InferRequest {
            id: Some("r".into()),
            inputs: vec![],
            wire: vec![],
            outputs,
            binary_output,
        }
    }

    fn empty() -> Vec<Tensor> {
        vec![
            Tensor {
                name: "label".into(),
                shape: vec![0],
                data: TensorData::Int64(vec![]),
            },
            Tensor {
                name: "p".into(),
                shape: vec![0, 2],
                data: TensorData::Fp32(vec![]),
            },
        ]
    }

    /// Zero-row outputs encode as empty arrays, or as empty blocks with no binary part.
    #[test]
    fn empty_outputs_encode() {
        let json = encode_response("m", "1", &request(None, false), empty()).unwrap();
        assert_eq!(json.header_len, None);
        assert_eq!(
            String::from_utf8(json.body).unwrap(),
            r#"{"model_name":"m","model_version":"1","id":"r","outputs":[{"name":"label","datatype":"INT64","shape":[0],"data":[]},{"name":"p","datatype":"FP32","shape":[0,2],"data":[]}]}"#
        );
        let binary = encode_response("m", "1", &request(None, true), empty()).unwrap();
        assert_eq!(binary.header_len, None);
        assert!(
            String::from_utf8(binary.body)
                .unwrap()
                .contains(r#""shape":[0],"parameters":{"binary_data_size":0}"#)
        );
    }

    /// Outputs go back in the order asked, each JSON or binary as asked; an unknown one is
    /// refused by name.
    #[test]
    fn outputs_go_back_as_asked() {
        let outputs = vec![
            Tensor {
                name: "label".into(),
                shape: vec![1],
                data: TensorData::Int64(vec![1]),
            },
            Tensor {
                name: "p".into(),
                shape: vec![1],
                data: TensorData::Fp32(vec![0.5]),
            },
        ];
        let asked = |name: &str, binary| Requested {
            name: name.into(),
            binary,
        };
        let r = request(Some(vec![asked("p", true), asked("label", false)]), false);
        let encoded = encode_response("m", "1", &r, outputs.clone()).unwrap();
        let header_len = encoded.header_len.unwrap();
        let header = std::str::from_utf8(&encoded.body[..header_len]).unwrap();
        assert!(
            header.ends_with(r#""outputs":[{"name":"p","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4}},{"name":"label","datatype":"INT64","shape":[1],"data":[1]}]}"#),
            "{header}"
        );
        assert_eq!(&encoded.body[header_len..], 0.5f32.to_le_bytes());
        let r = request(Some(vec![asked("q", false)]), false);
        let err = encode_response("m", "1", &r, outputs).err().unwrap();
        assert_eq!(err.0, "the model has no output `q`");
    }
}
