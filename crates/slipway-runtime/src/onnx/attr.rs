//! Reading node attributes and tensor constants from the ONNX protobuf.

use tract_onnx::pb::{AttributeProto, NodeProto, TensorProto, tensor_proto::DataType as PbType};

use super::value::{Arr, Value};

/// The attributes of one node, with typed getters that name the attribute in their errors.
pub struct Attrs<'a> {
    node: &'a NodeProto,
}

impl<'a> Attrs<'a> {
    pub fn new(node: &'a NodeProto) -> Self {
        Attrs { node }
    }

    pub fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).map_or(default, |a| a.i)
    }

    pub fn float(&self, name: &str, default: f32) -> f32 {
        self.get(name).map_or(default, |a| a.f)
    }

    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name).map_or(default.to_string(), |a| {
            String::from_utf8_lossy(&a.s).into_owned()
        })
    }

    pub fn ints(&self, name: &str) -> Vec<i64> {
        self.get(name).map_or_else(Vec::new, |a| a.ints.clone())
    }

    pub fn floats(&self, name: &str) -> Vec<f32> {
        self.get(name).map_or_else(Vec::new, |a| a.floats.clone())
    }

    pub fn strings(&self, name: &str) -> Vec<String> {
        self.get(name).map_or_else(Vec::new, |a| {
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
    }

    pub fn tensor(&self, name: &str) -> Result<Option<Value>, String> {
        match self.get(name).and_then(|a| a.t.as_ref()) {
            Some(t) => tensor_value(t)
                .map(Some)
                .map_err(|e| format!("attribute `{name}`: {e}")),
            None => Ok(None),
        }
    }

    /// A list of numbers given either as `NAME` (floats) or `NAME_as_tensor` (a double tensor,
    /// ml opset 3), as f64.
    pub fn floats_or_tensor(&self, name: &str) -> Result<Vec<f64>, String> {
        if let Some(v) = self.tensor(&format!("{name}_as_tensor"))? {
            return Ok(v.as_f64()?.into_owned());
        }
        Ok(self.floats(name).into_iter().map(f64::from).collect())
    }

    /// Ints, required non-empty.
    pub fn required_ints(&self, name: &str) -> Result<Vec<i64>, String> {
        let v = self.ints(name);
        if v.is_empty() {
            return Err(format!("attribute `{name}` is missing"));
        }
        Ok(v)
    }
}

fn read_le<const N: usize, T>(raw: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    raw.chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunk of N bytes")))
        .collect()
}

/// True for the element types [`tensor_value`] decodes.
pub fn supported_type(data_type: i32) -> bool {
    matches!(
        PbType::try_from(data_type),
        Ok(PbType::Float
            | PbType::Double
            | PbType::Int64
            | PbType::Int32
            | PbType::Int16
            | PbType::Int8
            | PbType::Uint16
            | PbType::Uint8
            | PbType::Uint32
            | PbType::Uint64
            | PbType::Bool
            | PbType::String)
    )
}

/// Decodes a constant tensor (an initializer or an attribute).
pub fn tensor_value(t: &TensorProto) -> Result<Value, String> {
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        shape.push(usize::try_from(d).map_err(|_| format!("negative dimension {d}"))?);
    }
    let n =
        super::value::bounded_elements(&shape).map_err(|e| format!("tensor `{}`: {e}", t.name))?;
    if !t.external_data.is_empty() {
        return Err(format!(
            "tensor `{}` keeps its data in an external file, which Slipway does not load; \
             save the model with its weights inside the .onnx file",
            t.name
        ));
    }
    let raw = &t.raw_data;
    let ty =
        PbType::try_from(t.data_type).map_err(|_| format!("unknown data type {}", t.data_type))?;
    let value = match ty {
        PbType::Float => Value::F32(Arr {
            shape,
            data: if raw.is_empty() {
                t.float_data.clone()
            } else {
                read_le(raw, f32::from_le_bytes)
            },
        }),
        PbType::Double => Value::F64(Arr {
            shape,
            data: if raw.is_empty() {
                t.double_data.clone()
            } else {
                read_le(raw, f64::from_le_bytes)
            },
        }),
        PbType::Int64 => Value::I64(Arr {
            shape,
            data: if raw.is_empty() {
                t.int64_data.clone()
            } else {
                read_le(raw, i64::from_le_bytes)
            },
        }),
        PbType::Int32 | PbType::Int16 | PbType::Int8 | PbType::Uint16 | PbType::Uint8 => {
            let data = if raw.is_empty() {
                t.int32_data.iter().map(|&v| i64::from(v)).collect()
            } else {
                match ty {
                    PbType::Int32 => read_le(raw, |b: [u8; 4]| i64::from(i32::from_le_bytes(b))),
                    PbType::Int16 => read_le(raw, |b: [u8; 2]| i64::from(i16::from_le_bytes(b))),
                    PbType::Uint16 => read_le(raw, |b: [u8; 2]| i64::from(u16::from_le_bytes(b))),
                    PbType::Int8 => raw.iter().map(|&b| i64::from(b as i8)).collect(),
                    _ => raw.iter().map(|&b| i64::from(b)).collect(),
                }
            };
            Value::I64(Arr { shape, data })
        }
        PbType::Uint32 | PbType::Uint64 => {
            let data = if raw.is_empty() {
                t.uint64_data.iter().map(|&v| v as i64).collect()
            } else if ty == PbType::Uint32 {
                read_le(raw, |b: [u8; 4]| i64::from(u32::from_le_bytes(b)))
            } else {
                read_le(raw, |b: [u8; 8]| u64::from_le_bytes(b) as i64)
            };
            Value::I64(Arr { shape, data })
        }
        PbType::Bool => Value::Bool(Arr {
            shape,
            data: if raw.is_empty() {
                t.int32_data.iter().map(|&v| v != 0).collect()
            } else {
                raw.iter().map(|&b| b != 0).collect()
            },
        }),
        PbType::String => Value::Str(Arr {
            shape,
            data: t
                .string_data
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        }),
        other => {
            return Err(format!(
                "tensors of type {} are not supported",
                other.as_str_name()
            ));
        }
    };
    if value.len() != n || elements(&value) != n {
        return Err(format!(
            "tensor `{}` has shape {:?} ({n} elements) but holds {}",
            t.name,
            t.dims,
            elements(&value)
        ));
    }
    Ok(value)
}

fn elements(v: &Value) -> usize {
    match v {
        Value::F32(a) => a.data.len(),
        Value::F64(a) => a.data.len(),
        Value::I64(a) => a.data.len(),
        Value::Str(a) => a.data.len(),
        Value::Bool(a) => a.data.len(),
    }
}
