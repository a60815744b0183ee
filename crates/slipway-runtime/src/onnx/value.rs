//! Values flowing through an ONNX graph in the interpreter.

use std::borrow::Cow;

use slipway_core::{DataType, Tensor, TensorData};

/// The most elements (counting each zero-sized dimension as 1) a shape may describe: bounds
/// every allocation a model or a request can ask for (2^28 = 268 M elements).
pub const MAX_ELEMENTS: usize = 1 << 28;

/// Elements of `shape`, or an error when it is (or, with its zero dimensions taken as 1, could
/// make an operator allocate) more than [`MAX_ELEMENTS`].
pub fn bounded_elements(shape: &[usize]) -> Result<usize, String> {
    let mut bound = 1usize;
    for &d in shape {
        bound = bound
            .checked_mul(d.max(1))
            .filter(|&b| b <= MAX_ELEMENTS)
            .ok_or_else(|| {
                format!("shape {shape:?} is larger than Slipway accepts ({MAX_ELEMENTS} elements)")
            })?;
    }
    Ok(shape.iter().product())
}

/// A dense tensor: shape and row-major elements.
#[derive(Debug, Clone, PartialEq)]
pub struct Arr<T> {
    pub shape: Vec<usize>,
    pub data: Vec<T>,
}

impl<T> Arr<T> {
    pub fn new(shape: Vec<usize>, data: Vec<T>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Arr { shape, data }
    }
}

/// A value of the graph. Element types are the ones tabular models use.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    F32(Arr<f32>),
    F64(Arr<f64>),
    I64(Arr<i64>),
    Str(Arr<String>),
    Bool(Arr<bool>),
}

impl Value {
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::F32(a) => &a.shape,
            Value::F64(a) => &a.shape,
            Value::I64(a) => &a.shape,
            Value::Str(a) => &a.shape,
            Value::Bool(a) => &a.shape,
        }
    }

    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::F32(_) => "tensor(float)",
            Value::F64(_) => "tensor(double)",
            Value::I64(_) => "tensor(int64)",
            Value::Str(_) => "tensor(string)",
            Value::Bool(_) => "tensor(bool)",
        }
    }

    /// The same elements under another shape (the caller checked the element count).
    pub fn reshaped(self, shape: Vec<usize>) -> Value {
        match self {
            Value::F32(a) => Value::F32(Arr::new(shape, a.data)),
            Value::F64(a) => Value::F64(Arr::new(shape, a.data)),
            Value::I64(a) => Value::I64(Arr::new(shape, a.data)),
            Value::Str(a) => Value::Str(Arr::new(shape, a.data)),
            Value::Bool(a) => Value::Bool(Arr::new(shape, a.data)),
        }
    }

    /// Numeric elements as `f32` (borrowed when they already are).
    pub fn as_f32(&self) -> Result<Cow<'_, [f32]>, String> {
        Ok(match self {
            Value::F32(a) => Cow::Borrowed(&a.data),
            Value::F64(a) => Cow::Owned(a.data.iter().map(|&v| v as f32).collect()),
            Value::I64(a) => Cow::Owned(a.data.iter().map(|&v| v as f32).collect()),
            Value::Bool(a) => Cow::Owned(a.data.iter().map(|&v| f32::from(u8::from(v))).collect()),
            Value::Str(_) => return Err("expected a numeric tensor, got tensor(string)".into()),
        })
    }

    /// Numeric elements as `f64`.
    pub fn as_f64(&self) -> Result<Cow<'_, [f64]>, String> {
        Ok(match self {
            Value::F64(a) => Cow::Borrowed(&a.data),
            Value::F32(a) => Cow::Owned(a.data.iter().map(|&v| f64::from(v)).collect()),
            Value::I64(a) => Cow::Owned(a.data.iter().map(|&v| v as f64).collect()),
            Value::Bool(a) => Cow::Owned(a.data.iter().map(|&v| f64::from(u8::from(v))).collect()),
            Value::Str(_) => return Err("expected a numeric tensor, got tensor(string)".into()),
        })
    }

    /// Integer elements (indices, shapes, axes).
    pub fn as_i64(&self) -> Result<Cow<'_, [i64]>, String> {
        match self {
            Value::I64(a) => Ok(Cow::Borrowed(&a.data)),
            other => Err(format!("expected tensor(int64), got {}", other.type_name())),
        }
    }

    /// Rows and columns of a value read as a matrix: `[N, C]`, or `[C]` as one row.
    pub fn matrix_dims(&self) -> Result<(usize, usize), String> {
        match *self.shape() {
            [c] => Ok((1, c)),
            [n, c] => Ok((n, c)),
            ref s => Err(format!("expected a 1-D or 2-D tensor, got shape {s:?}")),
        }
    }

    /// Converts a wire tensor into a graph value. BYTES must be UTF-8, as ONNX strings are.
    pub fn from_tensor(t: &Tensor) -> Result<Value, String> {
        let shape = t.shape.clone();
        Ok(match &t.data {
            TensorData::Fp32(v) => Value::F32(Arr::new(shape, v.clone())),
            TensorData::Fp64(v) => Value::F64(Arr::new(shape, v.clone())),
            TensorData::Int64(v) => Value::I64(Arr::new(shape, v.clone())),
            TensorData::Bool(v) => Value::Bool(Arr::new(shape, v.clone())),
            TensorData::Bytes(v) => Value::Str(Arr::new(
                shape,
                v.iter()
                    .enumerate()
                    .map(|(i, b)| {
                        String::from_utf8(b.clone()).map_err(|_| {
                            format!("input `{}` element {i} is not UTF-8 text", t.name)
                        })
                    })
                    .collect::<Result<_, _>>()?,
            )),
        })
    }

    /// Converts a graph value into a wire tensor.
    pub fn into_tensor(self, name: &str) -> Tensor {
        let (shape, data) = match self {
            Value::F32(a) => (a.shape, TensorData::Fp32(a.data)),
            Value::F64(a) => (a.shape, TensorData::Fp64(a.data)),
            Value::I64(a) => (a.shape, TensorData::Int64(a.data)),
            Value::Bool(a) => (a.shape, TensorData::Bool(a.data)),
            Value::Str(a) => (
                a.shape,
                TensorData::Bytes(a.data.into_iter().map(String::into_bytes).collect()),
            ),
        };
        Tensor {
            name: name.to_string(),
            shape,
            data,
        }
    }

    /// A value of zeros (or empty strings) of a type and shape: the warm-up input.
    pub fn zeros(datatype: DataType, shape: Vec<usize>) -> Option<Value> {
        let n = shape.iter().product();
        Some(match datatype {
            DataType::Fp32 => Value::F32(Arr::new(shape, vec![0.0; n])),
            DataType::Fp64 => Value::F64(Arr::new(shape, vec![0.0; n])),
            DataType::Int64 => Value::I64(Arr::new(shape, vec![0; n])),
            DataType::Bool => Value::Bool(Arr::new(shape, vec![false; n])),
            DataType::Bytes => Value::Str(Arr::new(shape, vec![String::new(); n])),
            DataType::Uint8
            | DataType::Uint16
            | DataType::Uint32
            | DataType::Uint64
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Fp16
            | DataType::Bf16 => return None,
        })
    }
}
