//! Tensors as the Open Inference Protocol v2 names them.

use serde::{Deserialize, Serialize};

/// A tensor element type, spelled as in the Open Inference Protocol v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DataType {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Fp32,
    Fp64,
    Bytes,
    /// bfloat16: the upper 16 bits of an IEEE float32.
    Bf16,
}

/// What a datatype's values are, whatever their width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// FP16, BF16, FP32, FP64.
    Float,
    /// Signed and unsigned integers of every width.
    Integer,
    Bool,
    Bytes,
}

impl DataType {
    /// What its values are.
    pub fn family(self) -> Family {
        match self {
            DataType::Fp16 | DataType::Bf16 | DataType::Fp32 | DataType::Fp64 => Family::Float,
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Uint8
            | DataType::Uint16
            | DataType::Uint32
            | DataType::Uint64 => Family::Integer,
            DataType::Bool => Family::Bool,
            DataType::Bytes => Family::Bytes,
        }
    }

    /// Every datatype, in the protocol's order.
    pub const ALL: [DataType; 14] = [
        DataType::Bool,
        DataType::Uint8,
        DataType::Uint16,
        DataType::Uint32,
        DataType::Uint64,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Fp16,
        DataType::Fp32,
        DataType::Fp64,
        DataType::Bytes,
        DataType::Bf16,
    ];

    /// The type named `name` (`FP32`, `BYTES`, …; exact and case-sensitive, as on the wire).
    pub fn parse(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// Bytes per element in a binary block, or `None` for BYTES (length-prefixed elements).
    pub fn width(self) -> Option<usize> {
        match self {
            DataType::Bool | DataType::Uint8 | DataType::Int8 => Some(1),
            DataType::Uint16 | DataType::Int16 | DataType::Fp16 | DataType::Bf16 => Some(2),
            DataType::Uint32 | DataType::Int32 | DataType::Fp32 => Some(4),
            DataType::Uint64 | DataType::Int64 | DataType::Fp64 => Some(8),
            DataType::Bytes => None,
        }
    }

    /// The protocol's name for the type (`FP64`, `BYTES`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Uint8 => "UINT8",
            DataType::Uint16 => "UINT16",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Int8 => "INT8",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Fp16 => "FP16",
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
            DataType::Bytes => "BYTES",
            DataType::Bf16 => "BF16",
        }
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One input or output of a model: name, element type and shape (`-1` for a variable dimension).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<i64>,
}

/// The inputs and outputs of a model.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Signature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

impl Signature {
    /// Checks a request's tensors against the inputs: every name known and given once, every
    /// input present, datatypes equal, ranks equal, fixed dimensions matched, and as many
    /// elements as the shape says.
    pub fn check_inputs(&self, inputs: &[Tensor]) -> Result<(), crate::CoreError> {
        let bad = |m: String| Err(crate::CoreError::InvalidInput(m));
        // Clients usually send the inputs in the signature's order: then each name is found at
        // its own position, and no name can be repeated or missing.
        let in_order = inputs.len() == self.inputs.len()
            && inputs
                .iter()
                .zip(&self.inputs)
                .all(|(t, s)| t.name == s.name);
        for (i, t) in inputs.iter().enumerate() {
            let spec = if in_order {
                Some(&self.inputs[i])
            } else {
                self.inputs.iter().find(|s| s.name == t.name)
            };
            let Some(spec) = spec else {
                let names: Vec<String> = self
                    .inputs
                    .iter()
                    .map(|s| format!("`{}`", s.name))
                    .collect();
                return bad(format!(
                    "unknown input `{}`; the model takes {}",
                    t.name,
                    names.join(", ")
                ));
            };
            if !in_order && inputs[..i].iter().any(|o| o.name == t.name) {
                return bad(format!("input `{}` is given twice", t.name));
            }
            if t.data.datatype() != spec.datatype {
                return bad(format!(
                    "input `{}` must be {}, got {}",
                    spec.name,
                    spec.datatype,
                    t.data.datatype()
                ));
            }
            let fits = t.shape.len() == spec.shape.len()
                && t.shape
                    .iter()
                    .zip(&spec.shape)
                    .all(|(&d, &s)| s < 0 || i64::try_from(d) == Ok(s));
            if !fits {
                return bad(format!(
                    "input `{}` must have shape {:?}, got {:?}",
                    spec.name, spec.shape, t.shape
                ));
            }
            let count = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if count != Some(t.data.len()) {
                return bad(format!(
                    "input `{}` has shape {:?} but {} elements",
                    t.name,
                    t.shape,
                    t.data.len()
                ));
            }
        }
        for spec in self.inputs.iter().filter(|_| !in_order) {
            if !inputs.iter().any(|t| t.name == spec.name) {
                return bad(format!(
                    "missing input `{}` ({} {:?})",
                    spec.name, spec.datatype, spec.shape
                ));
            }
        }
        Ok(())
    }
}

/// The elements of a tensor, in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    Int64(Vec<i64>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bytes(Vec<Vec<u8>>),
}

impl TensorData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::Bool(v) => v.len(),
            TensorData::Int64(v) => v.len(),
            TensorData::Fp32(v) => v.len(),
            TensorData::Fp64(v) => v.len(),
            TensorData::Bytes(v) => v.len(),
        }
    }

    /// True when the tensor holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn datatype(&self) -> DataType {
        match self {
            TensorData::Bool(_) => DataType::Bool,
            TensorData::Int64(_) => DataType::Int64,
            TensorData::Fp32(_) => DataType::Fp32,
            TensorData::Fp64(_) => DataType::Fp64,
            TensorData::Bytes(_) => DataType::Bytes,
        }
    }
}

/// A named tensor with its shape and data.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Tensor {
    /// A one-dimensional tensor.
    pub fn vector(name: impl Into<String>, data: TensorData) -> Self {
        Tensor {
            name: name.into(),
            shape: vec![data.len()],
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datatype_names_round_trip_through_json() {
        for dt in [
            DataType::Fp64,
            DataType::Bytes,
            DataType::Uint16,
            DataType::Fp16,
        ] {
            let json = serde_json::to_string(&dt).unwrap();
            assert_eq!(json, format!("\"{}\"", dt.as_str()));
            assert_eq!(serde_json::from_str::<DataType>(&json).unwrap(), dt);
        }
    }

    #[test]
    fn vector_shape_follows_data() {
        let t = Tensor::vector("x", TensorData::Fp64(vec![1.0, 2.0, 3.0]));
        assert_eq!(t.shape, vec![3]);
        assert_eq!(t.data.datatype(), DataType::Fp64);
    }
}
