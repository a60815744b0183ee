//! The standard (`ai.onnx`) operators that tabular models use: what scikit-learn, XGBoost and
//! LightGBM exporters and small PyTorch networks emit around the `ai.onnx.ml` operators.

use ndarray::{ArrayView2, ArrayViewMut2, linalg::general_mat_mul};
use tract_onnx::pb::NodeProto;

use super::attr::Attrs;
use super::value::{Arr, Value};

/// One operator of a planned graph. `inputs` follow the node's inputs; `None` marks an omitted
/// optional input.
pub trait Op: Send + Sync + std::fmt::Debug {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String>;
}

/// The `n`th input, which must be present.
pub fn input<'a>(inputs: &[Option<&'a Value>], n: usize) -> Result<&'a Value, String> {
    inputs
        .get(n)
        .copied()
        .flatten()
        .ok_or_else(|| format!("input {n} is missing"))
}

/// Builds a standard operator, or `None` when this interpreter does not have it.
pub fn build(node: &NodeProto, opset: i64) -> Result<Option<Box<dyn Op>>, String> {
    let a = Attrs::new(node);
    let op: Box<dyn Op> = match node.op_type.as_str() {
        "Identity" => Box::new(Identity),
        "Cast" => Box::new(Cast { to: a.int("to", 1) }),
        "MatMul" => Box::new(Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: false,
            matmul: true,
        }),
        "Gemm" => Box::new(Gemm {
            alpha: a.float("alpha", 1.0),
            beta: a.float("beta", 1.0),
            trans_a: a.int("transA", 0) != 0,
            trans_b: a.int("transB", 0) != 0,
            matmul: false,
        }),
        "Add" => Box::new(Binary(BinOp::Add)),
        "Sub" => Box::new(Binary(BinOp::Sub)),
        "Mul" => Box::new(Binary(BinOp::Mul)),
        "Div" => Box::new(Binary(BinOp::Div)),
        "Relu" => Box::new(Unary(UnOp::Relu)),
        "Sigmoid" => Box::new(Unary(UnOp::Sigmoid)),
        "Tanh" => Box::new(Unary(UnOp::Tanh)),
        "Exp" => Box::new(Unary(UnOp::Exp)),
        "Log" => Box::new(Unary(UnOp::Log)),
        "Abs" => Box::new(Unary(UnOp::Abs)),
        "Neg" => Box::new(Unary(UnOp::Neg)),
        "Sqrt" => Box::new(Unary(UnOp::Sqrt)),
        "Reciprocal" => Box::new(Unary(UnOp::Reciprocal)),
        "Floor" => Box::new(Unary(UnOp::Floor)),
        "Ceil" => Box::new(Unary(UnOp::Ceil)),
        "Softmax" => Box::new(Softmax {
            axis: a.int("axis", if opset >= 13 { -1 } else { 1 }),
            coerce_2d: opset < 13,
        }),
        "ArgMax" => Box::new(ArgMax {
            axis: a.int("axis", 0),
            keepdims: a.int("keepdims", 1) != 0,
            last: a.int("select_last_index", 0) != 0,
        }),
        "Reshape" => Box::new(Reshape {
            allowzero: a.int("allowzero", 0) != 0,
        }),
        "Flatten" => Box::new(Flatten {
            axis: a.int("axis", 1),
        }),
        "Concat" => Box::new(Concat {
            axis: a.int("axis", 0),
        }),
        "ReduceSum" => Box::new(ReduceSum {
            axes: a.has("axes").then(|| a.ints("axes")),
            keepdims: a.int("keepdims", 1) != 0,
            noop_with_empty_axes: a.int("noop_with_empty_axes", 0) != 0,
        }),
        "Squeeze" => Box::new(Squeeze {
            axes: a.has("axes").then(|| a.ints("axes")),
        }),
        "Unsqueeze" => Box::new(Unsqueeze {
            axes: a.has("axes").then(|| a.ints("axes")),
        }),
        "Clip" => Box::new(Clip {
            min: a.has("min").then(|| a.float("min", f32::MIN)),
            max: a.has("max").then(|| a.float("max", f32::MAX)),
        }),
        _ => return Ok(None),
    };
    Ok(Some(op))
}

#[derive(Debug)]
struct Identity;

impl Op for Identity {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        Ok(vec![input(inputs, 0)?.clone()])
    }
}

#[derive(Debug)]
struct Cast {
    to: i64,
}

impl Op for Cast {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = input(inputs, 0)?;
        let shape = x.shape().to_vec();
        let parse = |s: &String| s.trim().parse::<f64>().unwrap_or(f64::NAN);
        let out = match self.to {
            1 => Value::F32(Arr::new(
                shape,
                match x {
                    Value::Str(a) => a.data.iter().map(|s| parse(s) as f32).collect(),
                    other => other.as_f32()?.into_owned(),
                },
            )),
            11 => Value::F64(Arr::new(
                shape,
                match x {
                    Value::Str(a) => a.data.iter().map(parse).collect(),
                    other => other.as_f64()?.into_owned(),
                },
            )),
            to @ (6 | 7 | 2 | 3 | 4 | 5 | 12 | 13) => {
                let wide: Vec<i64> = match x {
                    Value::I64(a) => a.data.clone(),
                    Value::Str(a) => a
                        .data
                        .iter()
                        .map(|s| {
                            s.trim()
                                .parse::<f64>()
                                .map(|v| v as i64)
                                .map_err(|_| format!("cannot cast `{s}` to an integer"))
                        })
                        .collect::<Result<_, _>>()?,
                    other => other.as_f64()?.iter().map(|&v| v as i64).collect(),
                };
                // Narrower integer types wrap, as a C cast does.
                let narrow = |v: i64| match to {
                    2 => i64::from(v as u8),
                    3 => i64::from(v as i8),
                    4 => i64::from(v as u16),
                    5 => i64::from(v as i16),
                    6 => i64::from(v as i32),
                    12 => i64::from(v as u32),
                    _ => v,
                };
                Value::I64(Arr::new(shape, wide.into_iter().map(narrow).collect()))
            }
            9 => Value::Bool(Arr::new(
                shape,
                match x {
                    Value::Bool(a) => a.data.clone(),
                    other => other.as_f64()?.iter().map(|&v| v != 0.0).collect(),
                },
            )),
            8 => Value::Str(Arr::new(
                shape,
                match x {
                    Value::Str(a) => a.data.clone(),
                    Value::I64(a) => a.data.iter().map(ToString::to_string).collect(),
                    Value::Bool(a) => a
                        .data
                        .iter()
                        .map(|&b| if b { "1" } else { "0" }.to_string())
                        .collect(),
                    Value::F32(a) => a.data.iter().map(ToString::to_string).collect(),
                    Value::F64(a) => a.data.iter().map(ToString::to_string).collect(),
                },
            )),
            other => return Err(format!("Cast to ONNX data type {other} is not supported")),
        };
        Ok(vec![out])
    }
}

/// MatMul and Gemm on 2-D operands (MatMul also takes a 1-D right operand).
#[derive(Debug)]
struct Gemm {
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
    matmul: bool,
}

fn view2<'a, T>(a: &'a Arr<T>, what: &str) -> Result<ArrayView2<'a, T>, String> {
    match *a.shape {
        [r, c] => ArrayView2::from_shape((r, c), &a.data).map_err(|e| e.to_string()),
        [c] if what == "B" => ArrayView2::from_shape((c, 1), &a.data).map_err(|e| e.to_string()),
        [c] => ArrayView2::from_shape((1, c), &a.data).map_err(|e| e.to_string()),
        ref s => Err(format!("operand {what} must be 2-D, got shape {s:?}")),
    }
}

macro_rules! gemm_impl {
    ($self:ident, $a:ident, $b:ident, $c:expr, $t:ty, $variant:ident) => {{
        let mut av = view2($a, "A")?;
        let mut bv = view2($b, "B")?;
        if $self.trans_a {
            av = av.reversed_axes();
        }
        if $self.trans_b {
            bv = bv.reversed_axes();
        }
        let (m, k) = av.dim();
        let (k2, n) = bv.dim();
        if k != k2 {
            return Err(format!(
                "inner dimensions differ: A is {m}×{k}, B is {k2}×{n}"
            ));
        }
        let size = m
            .checked_mul(n)
            .filter(|&s| s <= super::value::MAX_ELEMENTS)
            .ok_or_else(|| format!("a {m}×{n} result is larger than Slipway accepts"))?;
        let mut out = vec![0 as $t; size];
        let mut beta = 0 as $t;
        if let Some(c) = $c {
            let Value::$variant(c) = c else {
                return Err(format!(
                    "C must be {}, got {}",
                    stringify!($t),
                    c.type_name()
                ));
            };
            fill_broadcast(&mut out, m, n, c)?;
            beta = $self.beta as $t;
        }
        {
            let mut ov = ArrayViewMut2::from_shape((m, n), &mut out).map_err(|e| e.to_string())?;
            general_mat_mul($self.alpha as $t, &av, &bv, beta, &mut ov);
        }
        let shape = if $self.matmul && $b.shape.len() == 1 {
            vec![m]
        } else {
            vec![m, n]
        };
        let shape = if $self.matmul && $a.shape.len() == 1 {
            vec![n]
        } else {
            shape
        };
        Value::$variant(Arr::new(shape, out))
    }};
}

fn fill_broadcast<T: Copy>(out: &mut [T], m: usize, n: usize, c: &Arr<T>) -> Result<(), String> {
    match *c.shape {
        [] | [1] | [1, 1] => out.fill(c.data[0]),
        [k] | [1, k] if k == n => out
            .chunks_exact_mut(n)
            .for_each(|r| r.copy_from_slice(&c.data)),
        [r, 1] if r == m => {
            for (row, &v) in out.chunks_exact_mut(n).zip(&c.data) {
                row.fill(v);
            }
        }
        [r, k] if r == m && k == n => out.copy_from_slice(&c.data),
        ref s => return Err(format!("C of shape {s:?} does not broadcast to {m}×{n}")),
    }
    Ok(())
}

impl Op for Gemm {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let c = if self.matmul {
            None
        } else {
            inputs.get(2).copied().flatten()
        };
        let out = match (input(inputs, 0)?, input(inputs, 1)?) {
            (Value::F32(a), Value::F32(b)) => gemm_impl!(self, a, b, c, f32, F32),
            (Value::F64(a), Value::F64(b)) => gemm_impl!(self, a, b, c, f64, F64),
            (a, b) => {
                return Err(format!(
                    "operands must both be float or both double, got {} and {}",
                    a.type_name(),
                    b.type_name()
                ));
            }
        };
        Ok(vec![out])
    }
}

#[derive(Debug, Clone, Copy)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Debug)]
struct Binary(BinOp);

/// Numpy broadcasting of two shapes.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        };
    }
    Ok(out)
}

/// Strides of `shape` seen as broadcast to `out` (0 along broadcast axes).
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; out.len()];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        let o = i + out.len() - shape.len();
        strides[o] = if shape[i] == 1 { 0 } else { s };
        s *= shape[i];
    }
    strides
}

fn zip_broadcast<T: Copy>(a: &Arr<T>, b: &Arr<T>, f: impl Fn(T, T) -> T) -> Result<Arr<T>, String> {
    if a.shape == b.shape {
        return Ok(Arr::new(
            a.shape.clone(),
            a.data.iter().zip(&b.data).map(|(&x, &y)| f(x, y)).collect(),
        ));
    }
    let shape = broadcast_shape(&a.shape, &b.shape)?;
    let n: usize = shape.iter().product();
    if b.data.len() == 1 && a.data.len() == n {
        let y = b.data[0];
        return Ok(Arr::new(shape, a.data.iter().map(|&x| f(x, y)).collect()));
    }
    if a.data.len() == 1 && b.data.len() == n {
        let x = a.data[0];
        return Ok(Arr::new(shape, b.data.iter().map(|&y| f(x, y)).collect()));
    }
    // A row vector broadcast over the rows of a matrix: the common bias case (`[n]` or, as
    // skl2onnx writes it, `[1, n]`).
    let first = b
        .shape
        .iter()
        .position(|&d| d != 1)
        .unwrap_or(b.shape.len());
    if a.data.len() == n && !b.data.is_empty() && shape.ends_with(&b.shape[first..]) {
        let mut out = Vec::with_capacity(n);
        for row in a.data.chunks_exact(b.data.len()) {
            out.extend(row.iter().zip(&b.data).map(|(&x, &y)| f(x, y)));
        }
        return Ok(Arr::new(shape, out));
    }
    let sa = broadcast_strides(&a.shape, &shape);
    let sb = broadcast_strides(&b.shape, &shape);
    let mut index = vec![0usize; shape.len()];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let ia: usize = index.iter().zip(&sa).map(|(i, s)| i * s).sum();
        let ib: usize = index.iter().zip(&sb).map(|(i, s)| i * s).sum();
        out.push(f(a.data[ia], b.data[ib]));
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(Arr::new(shape, out))
}

impl Op for Binary {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let op = self.0;
        // One loop per operator: the operator is not matched per element.
        macro_rules! apply {
            ($a:expr, $b:expr) => {
                match op {
                    BinOp::Add => zip_broadcast($a, $b, |x, y| x + y)?,
                    BinOp::Sub => zip_broadcast($a, $b, |x, y| x - y)?,
                    BinOp::Mul => zip_broadcast($a, $b, |x, y| x * y)?,
                    BinOp::Div => zip_broadcast($a, $b, |x, y| x / y)?,
                }
            };
        }
        let out = match (input(inputs, 0)?, input(inputs, 1)?) {
            (Value::F32(a), Value::F32(b)) => Value::F32(apply!(a, b)),
            (Value::F64(a), Value::F64(b)) => Value::F64(apply!(a, b)),
            (Value::I64(a), Value::I64(b)) => {
                if matches!(op, BinOp::Div) && b.data.contains(&0) {
                    return Err("integer division by zero".into());
                }
                Value::I64(zip_broadcast(a, b, |x, y| match op {
                    BinOp::Add => x.wrapping_add(y),
                    BinOp::Sub => x.wrapping_sub(y),
                    BinOp::Mul => x.wrapping_mul(y),
                    BinOp::Div => x.wrapping_div(y),
                })?)
            }
            (a, b) => {
                return Err(format!(
                    "operands have different or non-numeric types: {} and {}",
                    a.type_name(),
                    b.type_name()
                ));
            }
        };
        Ok(vec![out])
    }
}

#[derive(Debug, Clone, Copy)]
enum UnOp {
    Relu,
    Sigmoid,
    Tanh,
    Exp,
    Log,
    Abs,
    Neg,
    Sqrt,
    Reciprocal,
    Floor,
    Ceil,
}

#[derive(Debug)]
struct Unary(UnOp);

macro_rules! unary_float {
    ($op:expr, $x:expr) => {{
        let x = $x;
        match $op {
            UnOp::Relu => x.max(0.0),
            UnOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            UnOp::Tanh => x.tanh(),
            UnOp::Exp => x.exp(),
            UnOp::Log => x.ln(),
            UnOp::Abs => x.abs(),
            UnOp::Neg => -x,
            UnOp::Sqrt => x.sqrt(),
            UnOp::Reciprocal => 1.0 / x,
            UnOp::Floor => x.floor(),
            UnOp::Ceil => x.ceil(),
        }
    }};
}

impl Op for Unary {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let op = self.0;
        let out = match input(inputs, 0)? {
            Value::F32(a) if matches!(op, UnOp::Tanh) => Value::F32(Arr::new(
                a.shape.clone(),
                a.data.iter().map(|&x| super::ml::tanh_fast(x)).collect(),
            )),
            // Relu is most of an MLP's element-wise work: its own loop, which vectorises
            // (the generic arm matches the operator per element). `max` keeps the generic
            // arm's NaN rule (a NaN becomes 0).
            Value::F32(a) if matches!(op, UnOp::Relu) => Value::F32(Arr::new(
                a.shape.clone(),
                a.data.iter().map(|&x| x.max(0.0)).collect(),
            )),
            Value::F64(a) if matches!(op, UnOp::Relu) => Value::F64(Arr::new(
                a.shape.clone(),
                a.data.iter().map(|&x| x.max(0.0)).collect(),
            )),
            Value::F32(a) if matches!(op, UnOp::Sigmoid) => Value::F32(Arr::new(
                a.shape.clone(),
                a.data
                    .iter()
                    .map(|&x| super::ml::logistic_exact(x))
                    .collect(),
            )),
            Value::F32(a) => Value::F32(Arr::new(
                a.shape.clone(),
                a.data.iter().map(|&x| unary_float!(op, x)).collect(),
            )),
            Value::F64(a) => Value::F64(Arr::new(
                a.shape.clone(),
                a.data.iter().map(|&x| unary_float!(op, x)).collect(),
            )),
            Value::I64(a) if matches!(op, UnOp::Abs | UnOp::Neg | UnOp::Relu) => {
                Value::I64(Arr::new(
                    a.shape.clone(),
                    a.data
                        .iter()
                        .map(|&x| match op {
                            UnOp::Abs => x.wrapping_abs(),
                            UnOp::Neg => x.wrapping_neg(),
                            _ => x.max(0),
                        })
                        .collect(),
                ))
            }
            other => return Err(format!("{op:?} does not take {}", other.type_name())),
        };
        Ok(vec![out])
    }
}

/// Resolves a possibly negative axis against a rank.
pub fn axis(axis: i64, rank: usize) -> Result<usize, String> {
    if rank == 0 {
        return Err(format!(
            "axis {axis} of a scalar: the operator needs at least a 1-D tensor"
        ));
    }
    let r = i64::try_from(rank).unwrap_or(i64::MAX);
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(usize::try_from(a).unwrap_or(0))
}

#[derive(Debug)]
struct Softmax {
    axis: i64,
    coerce_2d: bool,
}

fn softmax_in_place<T: num_like::Float>(v: &mut [T], dim: usize, stride: usize) {
    // v holds `outer` blocks of dim × stride elements.
    for block in v.chunks_exact_mut(dim * stride) {
        for s in 0..stride {
            let mut max = T::NEG_INF;
            for d in 0..dim {
                max = max.maxf(block[d * stride + s]);
            }
            let mut sum = T::ZERO;
            for d in 0..dim {
                let e = (block[d * stride + s] - max).expf();
                block[d * stride + s] = e;
                sum = sum + e;
            }
            for d in 0..dim {
                block[d * stride + s] = block[d * stride + s] / sum;
            }
        }
    }
}

impl Op for Softmax {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = input(inputs, 0)?;
        let shape = x.shape();
        let ax = axis(self.axis, shape.len())?;
        let (dim, stride) = if self.coerce_2d {
            (shape[ax..].iter().product(), 1)
        } else {
            (shape[ax], shape[ax + 1..].iter().product())
        };
        let mut out = x.clone();
        if dim * stride == 0 {
            return Ok(vec![out]);
        }
        match &mut out {
            Value::F32(a) => softmax_in_place(&mut a.data, dim, stride),
            Value::F64(a) => softmax_in_place(&mut a.data, dim, stride),
            other => return Err(format!("Softmax does not take {}", other.type_name())),
        }
        Ok(vec![out])
    }
}

/// The little float arithmetic the generic kernels need, for f32 and f64.
pub mod num_like {
    pub trait Float:
        Copy
        + PartialOrd
        + std::ops::Add<Output = Self>
        + std::ops::Sub<Output = Self>
        + std::ops::Div<Output = Self>
    {
        const ZERO: Self;
        const NEG_INF: Self;
        fn expf(self) -> Self;
        fn maxf(self, o: Self) -> Self;
    }
    impl Float for f32 {
        const ZERO: Self = 0.0;
        const NEG_INF: Self = f32::NEG_INFINITY;
        fn expf(self) -> Self {
            self.exp()
        }
        fn maxf(self, o: Self) -> Self {
            self.max(o)
        }
    }
    impl Float for f64 {
        const ZERO: Self = 0.0;
        const NEG_INF: Self = f64::NEG_INFINITY;
        fn expf(self) -> Self {
            self.exp()
        }
        fn maxf(self, o: Self) -> Self {
            self.max(o)
        }
    }
}

#[derive(Debug)]
struct ArgMax {
    axis: i64,
    keepdims: bool,
    last: bool,
}

fn argmax<T: PartialOrd + Copy>(data: &[T], shape: &[usize], ax: usize, last: bool) -> Vec<i64> {
    let dim = shape[ax];
    let stride: usize = shape[ax + 1..].iter().product();
    let outer: usize = shape[..ax].iter().product();
    let mut out = Vec::with_capacity(outer * stride);
    for o in 0..outer {
        for s in 0..stride {
            let mut best = 0usize;
            for d in 1..dim {
                let v = data[(o * dim + d) * stride + s];
                let b = data[(o * dim + best) * stride + s];
                if v > b || (last && v == b) {
                    best = d;
                }
            }
            out.push(i64::try_from(best).unwrap_or(0));
        }
    }
    out
}

impl Op for ArgMax {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = input(inputs, 0)?;
        let shape = x.shape().to_vec();
        let ax = axis(self.axis, shape.len())?;
        if shape[ax] == 0 {
            return Err("ArgMax over an empty axis".into());
        }
        let data = match x {
            Value::F32(a) => argmax(&a.data, &shape, ax, self.last),
            Value::F64(a) => argmax(&a.data, &shape, ax, self.last),
            Value::I64(a) => argmax(&a.data, &shape, ax, self.last),
            other => return Err(format!("ArgMax does not take {}", other.type_name())),
        };
        let mut out_shape = shape.clone();
        if self.keepdims {
            out_shape[ax] = 1;
        } else {
            out_shape.remove(ax);
        }
        Ok(vec![Value::I64(Arr::new(out_shape, data))])
    }
}

#[derive(Debug)]
struct Reshape {
    allowzero: bool,
}

impl Op for Reshape {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = input(inputs, 0)?;
        let spec = input(inputs, 1)?.as_i64()?;
        let total = x.len();
        let mut shape = Vec::with_capacity(spec.len());
        let mut infer = None;
        for (i, &d) in spec.iter().enumerate() {
            match d {
                -1 if infer.is_none() => {
                    infer = Some(i);
                    shape.push(1);
                }
                0 if !self.allowzero => shape.push(*x.shape().get(i).ok_or_else(|| {
                    format!("shape {:?} copies a dimension the input lacks", &spec[..])
                })?),
                d if d >= 0 => shape.push(usize::try_from(d).unwrap_or(0)),
                _ => return Err(format!("invalid shape {:?}", &spec[..])),
            }
        }
        super::value::bounded_elements(&shape)?;
        let known: usize = shape.iter().product();
        if let Some(i) = infer {
            if known == 0 || total % known != 0 {
                return Err(format!(
                    "cannot reshape {:?} into {:?}",
                    x.shape(),
                    &spec[..]
                ));
            }
            shape[i] = total / known;
        } else if known != total {
            return Err(format!(
                "cannot reshape {:?} into {:?}",
                x.shape(),
                &spec[..]
            ));
        }
        Ok(vec![x.clone().reshaped(shape)])
    }
}

#[derive(Debug)]
struct Flatten {
    axis: i64,
}

impl Op for Flatten {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = input(inputs, 0)?;
        let shape = x.shape();
        let r = i64::try_from(shape.len()).unwrap_or(0);
        let a = if self.axis < 0 {
            self.axis + r
        } else {
            self.axis
        };
        if a < 0 || a > r {
            return Err(format!("axis {} is out of range for rank {r}", self.axis));
        }
        let a = usize::try_from(a).unwrap_or(0);
        let new = vec![shape[..a].iter().product(), shape[a..].iter().product()];
        Ok(vec![x.clone().reshaped(new)])
    }
}

#[derive(Debug)]
struct Concat {
    axis: i64,
}

fn concat<T: Clone>(parts: &[&Arr<T>], ax: usize) -> Result<Arr<T>, String> {
    let first = &parts[0].shape;
    let mut shape = first.clone();
    shape[ax] = 0;
    for p in parts {
        if p.shape.len() != first.len()
            || p.shape
                .iter()
                .enumerate()
                .any(|(i, &d)| i != ax && d != first[i])
        {
            return Err(format!(
                "shapes {first:?} and {:?} cannot be joined on axis {ax}",
                p.shape
            ));
        }
        shape[ax] = shape[ax]
            .checked_add(p.shape[ax])
            .ok_or("the joined axis is too long")?;
    }
    let total = super::value::bounded_elements(&shape)?;
    let outer: usize = first[..ax].iter().product();
    let mut data = Vec::with_capacity(total);
    for o in 0..outer {
        for p in parts {
            let chunk: usize = p.shape[ax..].iter().product();
            data.extend_from_slice(&p.data[o * chunk..(o + 1) * chunk]);
        }
    }
    Ok(Arr::new(shape, data))
}

impl Op for Concat {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let values: Vec<&Value> = inputs.iter().flatten().copied().collect();
        let Some(first) = values.first() else {
            return Err("Concat has no input".into());
        };
        let ax = axis(self.axis, first.shape().len())?;
        macro_rules! join {
            ($variant:ident) => {{
                let mut parts = Vec::with_capacity(values.len());
                for v in &values {
                    match v {
                        Value::$variant(a) => parts.push(a),
                        other => {
                            return Err(format!(
                                "Concat mixes {} and {}",
                                first.type_name(),
                                other.type_name()
                            ));
                        }
                    }
                }
                Value::$variant(concat(&parts, ax)?)
            }};
        }
        let out = match first {
            Value::F32(_) => join!(F32),
            Value::F64(_) => join!(F64),
            Value::I64(_) => join!(I64),
            Value::Str(_) => join!(Str),
            Value::Bool(_) => join!(Bool),
        };
        Ok(vec![out])
    }
}

fn axes_from(
    attr: &Option<Vec<i64>>,
    inputs: &[Option<&Value>],
) -> Result<Option<Vec<i64>>, String> {
    if let Some(a) = attr {
        return Ok(Some(a.clone()));
    }
    match inputs.get(1).copied().flatten() {
        Some(v) => Ok(Some(v.as_i64()?.into_owned())),
        None => Ok(None),
    }
}

#[derive(Debug)]
struct ReduceSum {
    axes: Option<Vec<i64>>,
    keepdims: bool,
    noop_with_empty_axes: bool,
}

fn reduce_sum<T: Copy + std::ops::Add<Output = T> + Default>(
    a: &Arr<T>,
    reduce: &[bool],
    keepdims: bool,
) -> Arr<T> {
    let out_full: Vec<usize> = a
        .shape
        .iter()
        .zip(reduce)
        .map(|(&d, &r)| if r { 1 } else { d })
        .collect();
    let strides = broadcast_strides(&out_full, &a.shape);
    let mut out = vec![T::default(); out_full.iter().product()];
    let mut index = vec![0usize; a.shape.len()];
    for &v in &a.data {
        let o: usize = index.iter().zip(&strides).map(|(i, s)| i * s).sum();
        out[o] = out[o] + v;
        for d in (0..a.shape.len()).rev() {
            index[d] += 1;
            if index[d] < a.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    let shape = if keepdims {
        out_full
    } else {
        a.shape
            .iter()
            .zip(reduce)
            .filter(|(_, r)| !**r)
            .map(|(&d, _)| d)
            .collect()
    };
    Arr::new(shape, out)
}

impl Op for ReduceSum {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = input(inputs, 0)?;
        let rank = x.shape().len();
        let axes = axes_from(&self.axes, inputs)?.unwrap_or_default();
        if axes.is_empty() && self.noop_with_empty_axes {
            return Ok(vec![x.clone()]);
        }
        let mut reduce = vec![axes.is_empty(); rank];
        for &a in &axes {
            reduce[axis(a, rank)?] = true;
        }
        let out = match x {
            Value::F32(a) => Value::F32(reduce_sum(a, &reduce, self.keepdims)),
            Value::F64(a) => Value::F64(reduce_sum(a, &reduce, self.keepdims)),
            Value::I64(a) => Value::I64(reduce_sum(a, &reduce, self.keepdims)),
            other => return Err(format!("ReduceSum does not take {}", other.type_name())),
        };
        Ok(vec![out])
    }
}

#[derive(Debug)]
struct Squeeze {
    axes: Option<Vec<i64>>,
}

impl Op for Squeeze {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = input(inputs, 0)?;
        let shape = x.shape();
        let new: Vec<usize> = match axes_from(&self.axes, inputs)? {
            None => shape.iter().copied().filter(|&d| d != 1).collect(),
            Some(axes) => {
                let mut drop = vec![false; shape.len()];
                for a in axes {
                    let a = axis(a, shape.len())?;
                    if shape[a] != 1 {
                        return Err(format!("cannot squeeze axis {a} of size {}", shape[a]));
                    }
                    drop[a] = true;
                }
                shape
                    .iter()
                    .zip(&drop)
                    .filter(|(_, d)| !**d)
                    .map(|(&s, _)| s)
                    .collect()
            }
        };
        Ok(vec![x.clone().reshaped(new)])
    }
}

#[derive(Debug)]
struct Unsqueeze {
    axes: Option<Vec<i64>>,
}

impl Op for Unsqueeze {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = input(inputs, 0)?;
        let axes = axes_from(&self.axes, inputs)?.ok_or("Unsqueeze needs axes")?;
        let rank = x.shape().len() + axes.len();
        let mut insert = vec![false; rank];
        for a in axes {
            let a = axis(a, rank)?;
            if insert[a] {
                return Err(format!("axis {a} is given twice"));
            }
            insert[a] = true;
        }
        let mut dims = x.shape().iter();
        let new = insert
            .iter()
            .map(|&i| {
                if i {
                    1
                } else {
                    dims.next().copied().unwrap_or(1)
                }
            })
            .collect();
        Ok(vec![x.clone().reshaped(new)])
    }
}

#[derive(Debug)]
struct Clip {
    min: Option<f32>,
    max: Option<f32>,
}

impl Op for Clip {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = input(inputs, 0)?;
        let bound = |n: usize, attr: Option<f32>| -> Result<Option<f64>, String> {
            match inputs.get(n).copied().flatten() {
                Some(v) => Ok(v.as_f64()?.first().copied()),
                None => Ok(attr.map(f64::from)),
            }
        };
        let lo = bound(1, self.min)?.unwrap_or(f64::NEG_INFINITY);
        let hi = bound(2, self.max)?.unwrap_or(f64::INFINITY);
        let out = match x {
            Value::F32(a) => Value::F32(Arr::new(
                a.shape.clone(),
                a.data
                    .iter()
                    .map(|&v| v.max(lo as f32).min(hi as f32))
                    .collect(),
            )),
            Value::F64(a) => Value::F64(Arr::new(
                a.shape.clone(),
                a.data.iter().map(|&v| v.max(lo).min(hi)).collect(),
            )),
            other => return Err(format!("Clip does not take {}", other.type_name())),
        };
        Ok(vec![out])
    }
}
