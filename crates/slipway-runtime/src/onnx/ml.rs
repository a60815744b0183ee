//! The `ai.onnx.ml` operators other than tree ensembles (those are in `trees`), following the
//! ONNX operator specification and, where it is vague, onnxruntime's behaviour (the reference
//! the conformance suite checks against).

use std::collections::HashMap;

use tract_onnx::pb::NodeProto;

use super::attr::Attrs;
use super::ops::{Op, input};
use super::value::{Arr, Value};

/// Post transforms of the classifier and regressor operators, computed in `f32` as onnxruntime
/// does (including its approximation of the inverse error function for PROBIT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Post {
    None,
    Softmax,
    Logistic,
    SoftmaxZero,
    Probit,
}

impl Post {
    pub fn parse(s: &str) -> Result<Post, String> {
        Ok(match s {
            "NONE" | "" => Post::None,
            "SOFTMAX" => Post::Softmax,
            "LOGISTIC" => Post::Logistic,
            "SOFTMAX_ZERO" => Post::SoftmaxZero,
            "PROBIT" => Post::Probit,
            other => return Err(format!("unknown post_transform `{other}`")),
        })
    }

    pub fn from_code(c: i64) -> Result<Post, String> {
        Ok(match c {
            0 => Post::None,
            1 => Post::Softmax,
            2 => Post::Logistic,
            3 => Post::SoftmaxZero,
            4 => Post::Probit,
            other => return Err(format!("unknown post_transform {other}")),
        })
    }

    /// Applies the transform to one row of scores, as the tree ensembles do.
    pub fn apply(self, row: &mut [f32]) {
        match self {
            Post::None => {}
            Post::Logistic => row.iter_mut().for_each(|v| *v = logistic(*v)),
            Post::Probit => row.iter_mut().for_each(|v| *v = probit(*v)),
            Post::Softmax => softmax(row),
            Post::SoftmaxZero => softmax_zero(row),
        }
    }
}

/// The logistic function as onnxruntime's MLAS computes it for the linear operators and
/// `Sigmoid`: a rational approximation on [-18, 18] (its tails differ from the exact value by
/// up to 1 % at 1e-6, and models' outputs are compared with onnxruntime's).
#[allow(clippy::excessive_precision)] // MLAS's constants, as written there
pub fn logistic_exact(v: f32) -> f32 {
    let x = v.clamp(-18.0, 18.0);
    let x2 = x * x;
    let mut p = x2 * 4.370_310_1e-11 + 1.156_273_2e-7;
    p = p * x2 + 6.085_748_6e-5;
    p = p * x2 + 8.513_771e-3;
    p = p * x2 + 2.482_879_5e-1;
    p *= x;
    let mut q = x2 * 6.102_474e-13 + 5.761_021_4e-9;
    q = q * x2 + 6.291_067_8e-6;
    q = q * x2 + 1.701_988_2e-3;
    q = q * x2 + 1.168_176_6e-1;
    q = q * x2 + 9.931_519e-1;
    p / q + 0.5
}

/// tanh as onnxruntime's MLAS (and Eigen) compute it: a rational approximation on [-9, 9],
/// within a few ulps, several times faster than the libm call.
#[allow(clippy::excessive_precision)] // MLAS's constants, as written there
pub fn tanh_fast(v: f32) -> f32 {
    let x = v.clamp(-9.0, 9.0);
    let x2 = x * x;
    let mut p = x2 * -2.760_768_477_423_55e-16 + 2.000_187_904_824_77e-13;
    p = p * x2 + -8.604_671_522_137_35e-11;
    p = p * x2 + 5.122_297_090_371_14e-8;
    p = p * x2 + 1.485_722_357_179_79e-5;
    p = p * x2 + 6.372_619_288_754_36e-4;
    p = p * x2 + 4.893_524_558_917_86e-3;
    p *= x;
    let mut q = x2 * 1.198_258_394_667_02e-6 + 1.185_347_056_866_54e-4;
    q = q * x2 + 2.268_434_632_439e-3;
    q = q * x2 + 4.893_525_185_543_85e-3;
    if v.is_nan() { v } else { p / q }
}

/// Applies a transform to one row of a linear model's scores.
pub fn apply_linear(post: Post, row: &mut [f32]) {
    if post == Post::Logistic {
        row.iter_mut().for_each(|v| *v = logistic_exact(*v));
    } else {
        post.apply(row);
    }
}

/// The logistic function as the tree ensembles compute it.
pub fn logistic(v: f32) -> f32 {
    let e = 1.0 / (1.0 + (-v.abs()).exp());
    if v < 0.0 { 1.0 - e } else { e }
}

fn erf_inv(x: f32) -> f32 {
    let sgn = if x < 0.0 { -1.0 } else { 1.0 };
    let x = (1.0 - x) * (1.0 + x);
    let log = x.ln();
    let v = 2.0 / (std::f32::consts::PI * 0.147) + 0.5 * log;
    let v2 = 1.0 / 0.147 * log;
    let v3 = -v + (v * v - v2).sqrt();
    sgn * v3.sqrt()
}

pub fn probit(v: f32) -> f32 {
    std::f32::consts::SQRT_2 * erf_inv(2.0 * v - 1.0)
}

pub fn softmax(row: &mut [f32]) {
    let max = row
        .iter()
        .fold(-f32::MAX, |m, &v| if v > m { v } else { m });
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    row.iter_mut().for_each(|v| *v /= sum);
}

pub fn softmax_zero(row: &mut [f32]) {
    let max = row
        .iter()
        .fold(-f32::MAX, |m, &v| if v > m { v } else { m });
    let exp_neg_max = (-max).exp();
    let mut sum = 0.0;
    for v in row.iter_mut() {
        if *v > 0.000_000_1 || *v < -0.000_000_1 {
            *v = (*v - max).exp();
            sum += *v;
        } else {
            *v *= exp_neg_max;
        }
    }
    row.iter_mut().for_each(|v| *v /= sum);
}

/// Class labels of a classifier: strings or integers.
#[derive(Debug, Clone)]
pub enum Labels {
    Strings(Vec<String>),
    Ints(Vec<i64>),
}

impl Labels {
    pub fn from_attrs(a: &Attrs<'_>, ints_name: &str) -> Labels {
        let strings = a.strings("classlabels_strings");
        if strings.is_empty() {
            Labels::Ints(a.ints(ints_name))
        } else {
            Labels::Strings(strings)
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Labels::Strings(v) => v.len(),
            Labels::Ints(v) => v.len(),
        }
    }

    /// The label output for class indices (`-1` and `-2` stand for the "0" and "1" fallbacks).
    pub fn pick(&self, index: &[i64]) -> Result<Value, String> {
        let n = index.len();
        let bad = |i: i64| format!("class index {i} is out of range for {} labels", self.len());
        Ok(match self {
            Labels::Strings(v) => Value::Str(Arr::new(
                vec![n],
                index
                    .iter()
                    .map(|&i| match i {
                        -1 => Ok("0".to_string()),
                        -2 => Ok("1".to_string()),
                        i => usize::try_from(i)
                            .ok()
                            .and_then(|i| v.get(i))
                            .cloned()
                            .ok_or_else(|| bad(i)),
                    })
                    .collect::<Result<_, String>>()?,
            )),
            Labels::Ints(v) => Value::I64(Arr::new(
                vec![n],
                index
                    .iter()
                    .map(|&i| match i {
                        -1 => Ok(0),
                        -2 => Ok(1),
                        i => usize::try_from(i)
                            .ok()
                            .and_then(|i| v.get(i))
                            .copied()
                            .ok_or_else(|| bad(i)),
                    })
                    .collect::<Result<_, String>>()?,
            )),
        })
    }
}

/// Builds an `ai.onnx.ml` operator (other than the tree ensembles), or `None` when unknown.
pub fn build(node: &NodeProto, ml_opset: i64) -> Result<Option<Box<dyn Op>>, String> {
    let a = Attrs::new(node);
    let op: Box<dyn Op> = match node.op_type.as_str() {
        "Scaler" => Box::new(Scaler {
            offset: a.floats("offset"),
            scale: a.floats("scale"),
        }),
        "Normalizer" => Box::new(Normalizer {
            norm: match a.string("norm", "MAX").as_str() {
                "MAX" => Norm::Max,
                "L1" => Norm::L1,
                "L2" => Norm::L2,
                other => return Err(format!("unknown norm `{other}`")),
            },
        }),
        "Binarizer" => Box::new(Binarizer {
            threshold: a.float("threshold", 0.0),
        }),
        "Imputer" => Box::new(Imputer {
            floats: a.floats("imputed_value_floats"),
            replaced_float: a.float("replaced_value_float", 0.0),
            ints: a.ints("imputed_value_int64s"),
            replaced_int: a.int("replaced_value_int64", 0),
        }),
        "LinearClassifier" => {
            let labels = Labels::from_attrs(&a, "classlabels_ints");
            let rows = match a.floats("intercepts").len() {
                0 => labels.len().max(1),
                n => n,
            };
            let linear = Linear::from_attrs(&a, rows, "classes")?;
            if rows > 1 && labels.len() != rows {
                return Err(format!(
                    "{rows} score rows but {} class labels",
                    labels.len()
                ));
            }
            Box::new(LinearClassifier {
                linear,
                labels,
                post: Post::parse(&a.string("post_transform", "NONE"))?,
            })
        }
        "LinearRegressor" => {
            let targets = usize::try_from(a.int("targets", 1)).map_err(|_| "negative targets")?;
            Box::new(LinearRegressor {
                linear: Linear::from_attrs(&a, targets, "targets")?,
                post: Post::parse(&a.string("post_transform", "NONE"))?,
            })
        }
        "ArrayFeatureExtractor" => Box::new(ArrayFeatureExtractor),
        "ZipMap" => Box::new(ZipMap {
            classes: Labels::from_attrs(&a, "classlabels_int64s").len(),
        }),
        "OneHotEncoder" => Box::new(OneHotEncoder {
            strings: a.strings("cats_strings"),
            ints: a.ints("cats_int64s"),
            zeros: a.int("zeros", 1) != 0,
        }),
        "LabelEncoder" if ml_opset < 2 || a.has("classes_strings") => {
            let classes = a.strings("classes_strings");
            Box::new(LabelEncoderV1 {
                index: classes
                    .iter()
                    .cloned()
                    .enumerate()
                    .map(|(i, s)| (s, i))
                    .collect(),
                classes,
                default_int: a.int("default_int64", -1),
                default_string: a.string("default_string", "_Unused"),
            })
        }
        "LabelEncoder" => Box::new(LabelEncoder::new(&a)?),
        "CategoryMapper" => {
            let strings = a.strings("cats_strings");
            let ints = a.ints("cats_int64s");
            if strings.len() != ints.len() {
                return Err("cats_strings and cats_int64s differ in length".into());
            }
            Box::new(CategoryMapper {
                to_int: strings.iter().cloned().zip(ints.iter().copied()).collect(),
                to_string: ints.into_iter().zip(strings).collect(),
                default_int: a.int("default_int64", -1),
                default_string: a.string("default_string", "_Unused"),
            })
        }
        "FeatureVectorizer" => Box::new(FeatureVectorizer {
            dims: a
                .ints("inputdimensions")
                .into_iter()
                .map(|d| usize::try_from(d).map_err(|_| format!("negative input dimension {d}")))
                .collect::<Result<_, _>>()?,
        }),
        _ => return Ok(None),
    };
    Ok(Some(op))
}

/// The linear part of LinearClassifier and LinearRegressor: `rows` rows of `features`
/// coefficients, and one intercept per row.
#[derive(Debug)]
struct Linear {
    features: usize,
    rows: usize,
    coefficients: Vec<f32>,
    intercepts: Vec<f32>,
}

impl Linear {
    /// Splits `coefficients` into `rows` rows; absent `intercepts` are zeros.
    fn from_attrs(a: &Attrs<'_>, rows: usize, what: &str) -> Result<Linear, String> {
        let coefficients = a.floats("coefficients");
        if rows == 0 || coefficients.is_empty() || coefficients.len() % rows != 0 {
            return Err(format!(
                "{} coefficients do not split into {rows} {what}",
                coefficients.len()
            ));
        }
        let intercepts = match a.floats("intercepts") {
            v if v.is_empty() => vec![0.0; rows],
            v if v.len() == rows => v,
            v => return Err(format!("{} intercepts for {rows} {what}", v.len())),
        };
        Ok(Linear {
            features: coefficients.len() / rows,
            rows,
            coefficients,
            intercepts,
        })
    }

    /// `scores[N, rows] = x · coefficientsᵀ + intercepts`, in f32.
    fn scores(&self, x: &Value) -> Result<(usize, Vec<f32>), String> {
        let (n, c) = x.matrix_dims()?;
        if c != self.features {
            return Err(format!(
                "the model takes {} features, the input has {c}",
                self.features
            ));
        }
        let data = x.as_f32()?;
        let mut scores = Vec::with_capacity(n * self.rows);
        for row in data.chunks_exact(c.max(1)).take(n) {
            for (w, b) in self
                .coefficients
                .chunks_exact(self.features)
                .zip(&self.intercepts)
            {
                let dot: f32 = row.iter().zip(w).map(|(a, b)| a * b).sum();
                scores.push(dot + b);
            }
        }
        Ok((n, scores))
    }
}

/// Per-column parameters of length 1 (every column) or C.
fn per_column(v: &[f32], c: usize, what: &str) -> Result<(), String> {
    if v.len() == 1 || v.len() == c {
        Ok(())
    } else {
        Err(format!("{what} has {} values for {c} columns", v.len()))
    }
}

#[derive(Debug)]
struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

impl Op for Scaler {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = input(inputs, 0)?;
        let (_, c) = x.matrix_dims()?;
        per_column(&self.offset, c, "offset")?;
        per_column(&self.scale, c, "scale")?;
        let data = x.as_f32()?;
        let mut out = Vec::with_capacity(data.len());
        if self.offset.len() == c && self.scale.len() == c {
            for row in data.chunks_exact(c.max(1)) {
                out.extend(
                    row.iter()
                        .zip(&self.offset)
                        .zip(&self.scale)
                        .map(|((&v, &o), &s)| (v - o) * s),
                );
            }
        } else {
            for (i, &v) in data.iter().enumerate() {
                let j = i % c.max(1);
                let o = self.offset[if self.offset.len() == 1 { 0 } else { j }];
                let s = self.scale[if self.scale.len() == 1 { 0 } else { j }];
                out.push((v - o) * s);
            }
        }
        Ok(vec![Value::F32(Arr::new(x.shape().to_vec(), out))])
    }
}

#[derive(Debug, Clone, Copy)]
enum Norm {
    Max,
    L1,
    L2,
}

#[derive(Debug)]
struct Normalizer {
    norm: Norm,
}

impl Op for Normalizer {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = input(inputs, 0)?;
        let (_, c) = x.matrix_dims()?;
        let mut out = x.as_f32()?.into_owned();
        for row in out.chunks_exact_mut(c.max(1)) {
            let norm = match self.norm {
                Norm::Max => row.iter().fold(f32::MIN, |m, &v| m.max(v)),
                Norm::L1 => row.iter().map(|v| v.abs()).sum(),
                Norm::L2 => row.iter().map(|v| v * v).sum::<f32>().sqrt(),
            };
            if norm != 0.0 {
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        Ok(vec![Value::F32(Arr::new(x.shape().to_vec(), out))])
    }
}

#[derive(Debug)]
struct Binarizer {
    threshold: f32,
}

impl Op for Binarizer {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let out = match input(inputs, 0)? {
            Value::F32(a) => Value::F32(Arr::new(
                a.shape.clone(),
                a.data
                    .iter()
                    .map(|&v| if v > self.threshold { 1.0 } else { 0.0 })
                    .collect(),
            )),
            Value::F64(a) => Value::F64(Arr::new(
                a.shape.clone(),
                a.data
                    .iter()
                    .map(|&v| {
                        if v > f64::from(self.threshold) {
                            1.0
                        } else {
                            0.0
                        }
                    })
                    .collect(),
            )),
            Value::I64(a) => Value::I64(Arr::new(
                a.shape.clone(),
                a.data
                    .iter()
                    .map(|&v| i64::from((v as f32) > self.threshold))
                    .collect(),
            )),
            other => return Err(format!("Binarizer does not take {}", other.type_name())),
        };
        Ok(vec![out])
    }
}

#[derive(Debug)]
struct Imputer {
    floats: Vec<f32>,
    replaced_float: f32,
    ints: Vec<i64>,
    replaced_int: i64,
}

impl Op for Imputer {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = input(inputs, 0)?;
        let (_, c) = x.matrix_dims()?;
        let c = c.max(1);
        let out = match x {
            Value::F32(a) => {
                per_column(&self.floats, c, "imputed_value_floats")?;
                let pick = |j: usize| self.floats[if self.floats.len() == 1 { 0 } else { j }];
                let nan = self.replaced_float.is_nan();
                let out = a
                    .data
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        let hit = if nan {
                            v.is_nan()
                        } else {
                            v == self.replaced_float
                        };
                        if hit { pick(i % c) } else { v }
                    })
                    .collect();
                Value::F32(Arr::new(a.shape.clone(), out))
            }
            // The output keeps the input's type, as the specification says.
            Value::F64(a) => {
                per_column(&self.floats, c, "imputed_value_floats")?;
                let pick =
                    |j: usize| f64::from(self.floats[if self.floats.len() == 1 { 0 } else { j }]);
                let replaced = f64::from(self.replaced_float);
                let out = a
                    .data
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        let hit = if replaced.is_nan() {
                            v.is_nan()
                        } else {
                            v == replaced
                        };
                        if hit { pick(i % c) } else { v }
                    })
                    .collect();
                Value::F64(Arr::new(a.shape.clone(), out))
            }
            Value::I64(a) => {
                if self.ints.len() != 1 && self.ints.len() != c {
                    return Err(format!(
                        "imputed_value_int64s has {} values for {c} columns",
                        self.ints.len()
                    ));
                }
                let pick = |j: usize| self.ints[if self.ints.len() == 1 { 0 } else { j }];
                Value::I64(Arr::new(
                    a.shape.clone(),
                    a.data
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| {
                            if v == self.replaced_int {
                                pick(i % c)
                            } else {
                                v
                            }
                        })
                        .collect(),
                ))
            }
            other => return Err(format!("Imputer does not take {}", other.type_name())),
        };
        Ok(vec![out])
    }
}

#[derive(Debug)]
struct LinearClassifier {
    linear: Linear,
    labels: Labels,
    post: Post,
}

impl Op for LinearClassifier {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = input(inputs, 0)?;
        let (n, mut scores) = self.linear.scores(x)?;
        let classes = self.linear.rows;
        let mut label = Vec::with_capacity(n);
        if classes == 1 {
            let two = self.labels.len() == 2;
            for &s in &scores {
                label.push(match (s > 0.0, two) {
                    (true, true) => 1,
                    (false, true) => 0,
                    (true, false) => -2,
                    (false, false) => -1,
                });
            }
            if two {
                let mut out = Vec::with_capacity(2 * n);
                for &s in &scores {
                    match self.post {
                        Post::Probit => out.extend([probit(-s), probit(s)]),
                        Post::Logistic => {
                            let p = logistic_exact(s);
                            out.extend([1.0 - p, p]);
                        }
                        Post::None | Post::Softmax | Post::SoftmaxZero => out.extend([1.0 - s, s]),
                    }
                }
                let labels = self.labels.pick(&label)?;
                return Ok(vec![labels, Value::F32(Arr::new(vec![n, 2], out))]);
            }
        } else {
            for row in scores.chunks_exact(classes) {
                let mut best = 0;
                for j in 1..row.len() {
                    if row[j] > row[best] {
                        best = j;
                    }
                }
                label.push(i64::try_from(best).unwrap_or(0));
            }
        }
        for row in scores.chunks_exact_mut(classes) {
            apply_linear(self.post, row);
        }
        Ok(vec![
            self.labels.pick(&label)?,
            Value::F32(Arr::new(vec![n, classes], scores)),
        ])
    }
}

#[derive(Debug)]
struct LinearRegressor {
    linear: Linear,
    post: Post,
}

impl Op for LinearRegressor {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = input(inputs, 0)?;
        let (n, mut scores) = self.linear.scores(x)?;
        let targets = self.linear.rows;
        if targets > 1 || self.post == Post::Probit {
            for row in scores.chunks_exact_mut(targets) {
                apply_linear(self.post, row);
            }
        }
        Ok(vec![Value::F32(Arr::new(vec![n, targets], scores))])
    }
}

#[derive(Debug)]
struct ArrayFeatureExtractor;

fn gather_last<T: Clone>(a: &Arr<T>, idx: &[usize]) -> Arr<T> {
    let c = *a.shape.last().unwrap_or(&1);
    let mut shape = a.shape.clone();
    if shape.len() == 1 {
        shape = vec![1, idx.len()];
    } else if let Some(last) = shape.last_mut() {
        *last = idx.len();
    }
    let mut data = Vec::with_capacity(shape.iter().product());
    for row in a.data.chunks_exact(c.max(1)) {
        data.extend(idx.iter().map(|&i| row[i].clone()));
    }
    Arr::new(shape, data)
}

impl Op for ArrayFeatureExtractor {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = input(inputs, 0)?;
        let c = *x
            .shape()
            .last()
            .ok_or("ArrayFeatureExtractor needs at least 1-D input")?;
        let idx = input(inputs, 1)?.as_i64()?;
        let idx: Vec<usize> = idx
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .filter(|&i| i < c)
                    .ok_or_else(|| format!("index {i} is out of range for {c} columns"))
            })
            .collect::<Result<_, _>>()?;
        let out = match x {
            Value::F32(a) => Value::F32(gather_last(a, &idx)),
            Value::F64(a) => Value::F64(gather_last(a, &idx)),
            Value::I64(a) => Value::I64(gather_last(a, &idx)),
            Value::Str(a) => Value::Str(gather_last(a, &idx)),
            Value::Bool(a) => Value::Bool(gather_last(a, &idx)),
        };
        Ok(vec![out])
    }
}

/// ZipMap turns a probability matrix into a list of {class: probability} maps. Slipway keeps
/// the matrix (the class order is in the signature): that is what a tensor protocol can carry.
#[derive(Debug)]
struct ZipMap {
    classes: usize,
}

impl Op for ZipMap {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        match input(inputs, 0)? {
            v @ Value::F32(_) if v.matrix_dims()?.1 != self.classes => Err(format!(
                "ZipMap has {} class labels but its input has {} columns",
                self.classes,
                v.matrix_dims()?.1
            )),
            v @ Value::F32(_) => Ok(vec![v.clone()]),
            other => Err(format!(
                "ZipMap takes tensor(float), got {}",
                other.type_name()
            )),
        }
    }
}

#[derive(Debug)]
struct OneHotEncoder {
    strings: Vec<String>,
    ints: Vec<i64>,
    zeros: bool,
}

impl Op for OneHotEncoder {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = input(inputs, 0)?;
        let width = if self.strings.is_empty() {
            self.ints.len()
        } else {
            self.strings.len()
        };
        let mut positions: Vec<Option<usize>> = Vec::with_capacity(x.len());
        match x {
            Value::Str(a) => {
                let map: HashMap<&str, usize> = self
                    .strings
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.as_str(), i))
                    .collect();
                positions.extend(a.data.iter().map(|s| map.get(s.as_str()).copied()));
            }
            other => {
                let map: HashMap<i64, usize> =
                    self.ints.iter().enumerate().map(|(i, &v)| (v, i)).collect();
                let vals: Vec<i64> = match other {
                    Value::I64(a) => a.data.clone(),
                    v => v.as_f64()?.iter().map(|&f| f as i64).collect(),
                };
                positions.extend(vals.iter().map(|v| map.get(v).copied()));
            }
        }
        let size = positions
            .len()
            .checked_mul(width)
            .filter(|&s| s <= super::value::MAX_ELEMENTS)
            .ok_or("the one-hot output is larger than Slipway accepts")?;
        let mut out = vec![0.0f32; size];
        for (i, p) in positions.iter().enumerate() {
            match p {
                Some(j) => out[i * width + j] = 1.0,
                None if !self.zeros => {
                    return Err("a value is not one of the categories and zeros=0".into());
                }
                None => {}
            }
        }
        let mut shape = x.shape().to_vec();
        shape.push(width);
        Ok(vec![Value::F32(Arr::new(shape, out))])
    }
}

/// A key of LabelEncoder's map: string, integer or float (by bits; all NaNs are one key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Str(String),
    Int(i64),
    Float(u64),
}

fn float_key(v: f64) -> Key {
    Key::Float(if v.is_nan() {
        f64::NAN.to_bits()
    } else {
        (v + 0.0).to_bits()
    })
}

#[derive(Debug)]
struct LabelEncoder {
    map: HashMap<Key, usize>,
    values: Value,
    default: Value,
}

fn keys_of(v: &Value) -> Result<Vec<Key>, String> {
    Ok(match v {
        Value::Str(a) => a.data.iter().cloned().map(Key::Str).collect(),
        Value::I64(a) => a.data.iter().copied().map(Key::Int).collect(),
        Value::F32(a) => a.data.iter().map(|&f| float_key(f64::from(f))).collect(),
        Value::F64(a) => a.data.iter().map(|&f| float_key(f)).collect(),
        Value::Bool(_) => return Err("LabelEncoder does not take tensor(bool)".into()),
    })
}

impl LabelEncoder {
    fn new(a: &Attrs<'_>) -> Result<Self, String> {
        let vec1 = |v: Value| v.reshaped(vec![1]);
        let (keys, values, default) = if let Some(k) = a.tensor("keys_tensor")? {
            let v = a
                .tensor("values_tensor")?
                .ok_or("values_tensor is missing")?;
            let d = match a.tensor("default_tensor")? {
                Some(d) => d,
                None => match &v {
                    Value::Str(_) => Value::Str(Arr::new(vec![1], vec!["_Unused".into()])),
                    Value::I64(_) => Value::I64(Arr::new(vec![1], vec![-1])),
                    Value::F32(_) => Value::F32(Arr::new(vec![1], vec![-0.0])),
                    Value::F64(_) => Value::F64(Arr::new(vec![1], vec![-0.0])),
                    Value::Bool(_) => return Err("bool values are not supported".into()),
                },
            };
            (k, v, d)
        } else {
            let keys = if a.has("keys_strings") {
                let s = a.strings("keys_strings");
                Value::Str(Arr::new(vec![s.len()], s))
            } else if a.has("keys_int64s") {
                let s = a.ints("keys_int64s");
                Value::I64(Arr::new(vec![s.len()], s))
            } else {
                let s = a.floats("keys_floats");
                Value::F32(Arr::new(vec![s.len()], s))
            };
            let (values, default) = if a.has("values_strings") {
                let s = a.strings("values_strings");
                (
                    Value::Str(Arr::new(vec![s.len()], s)),
                    vec1(Value::Str(Arr::new(
                        vec![],
                        vec![a.string("default_string", "_Unused")],
                    ))),
                )
            } else if a.has("values_int64s") {
                let s = a.ints("values_int64s");
                (
                    Value::I64(Arr::new(vec![s.len()], s)),
                    vec1(Value::I64(Arr::new(
                        vec![],
                        vec![a.int("default_int64", -1)],
                    ))),
                )
            } else {
                let s = a.floats("values_floats");
                (
                    Value::F32(Arr::new(vec![s.len()], s)),
                    vec1(Value::F32(Arr::new(
                        vec![],
                        vec![a.float("default_float", -0.0)],
                    ))),
                )
            };
            (keys, values, default)
        };
        let keys = keys_of(&keys)?;
        if default.is_empty() {
            return Err("the default value is an empty tensor".into());
        }
        if keys.len() != values.len() {
            return Err(format!("{} keys but {} values", keys.len(), values.len()));
        }
        Ok(LabelEncoder {
            map: keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect(),
            values,
            default,
        })
    }
}

impl Op for LabelEncoder {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = input(inputs, 0)?;
        let shape = x.shape().to_vec();
        let keys = keys_of(x)?;
        let idx: Vec<Option<usize>> = keys.iter().map(|k| self.map.get(k).copied()).collect();
        macro_rules! pick {
            ($variant:ident) => {{
                let (Value::$variant(vals), Value::$variant(def)) = (&self.values, &self.default)
                else {
                    return Err("values and default differ in type".into());
                };
                Value::$variant(Arr::new(
                    shape,
                    idx.iter()
                        .map(|i| i.map_or_else(|| def.data[0].clone(), |i| vals.data[i].clone()))
                        .collect(),
                ))
            }};
        }
        Ok(vec![match &self.values {
            Value::Str(_) => pick!(Str),
            Value::I64(_) => pick!(I64),
            Value::F32(_) => pick!(F32),
            Value::F64(_) => pick!(F64),
            Value::Bool(_) => pick!(Bool),
        }])
    }
}

/// LabelEncoder of ml opset 1: `classes_strings` and their indices, in either direction.
#[derive(Debug)]
struct LabelEncoderV1 {
    classes: Vec<String>,
    index: HashMap<String, usize>,
    default_int: i64,
    default_string: String,
}

impl Op for LabelEncoderV1 {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        Ok(vec![match input(inputs, 0)? {
            Value::Str(a) => Value::I64(Arr::new(
                a.shape.clone(),
                a.data
                    .iter()
                    .map(|s| {
                        self.index
                            .get(s)
                            .map_or(self.default_int, |&i| i64::try_from(i).unwrap_or(-1))
                    })
                    .collect(),
            )),
            Value::I64(a) => Value::Str(Arr::new(
                a.shape.clone(),
                a.data
                    .iter()
                    .map(|&i| {
                        usize::try_from(i)
                            .ok()
                            .and_then(|i| self.classes.get(i))
                            .cloned()
                            .unwrap_or_else(|| self.default_string.clone())
                    })
                    .collect(),
            )),
            other => return Err(format!("LabelEncoder does not take {}", other.type_name())),
        }])
    }
}

#[derive(Debug)]
struct CategoryMapper {
    to_int: HashMap<String, i64>,
    to_string: HashMap<i64, String>,
    default_int: i64,
    default_string: String,
}

impl Op for CategoryMapper {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        Ok(vec![match input(inputs, 0)? {
            Value::Str(a) => Value::I64(Arr::new(
                a.shape.clone(),
                a.data
                    .iter()
                    .map(|s| self.to_int.get(s).copied().unwrap_or(self.default_int))
                    .collect(),
            )),
            Value::I64(a) => Value::Str(Arr::new(
                a.shape.clone(),
                a.data
                    .iter()
                    .map(|i| {
                        self.to_string
                            .get(i)
                            .cloned()
                            .unwrap_or_else(|| self.default_string.clone())
                    })
                    .collect(),
            )),
            other => {
                return Err(format!(
                    "CategoryMapper does not take {}",
                    other.type_name()
                ));
            }
        }])
    }
}

#[derive(Debug)]
struct FeatureVectorizer {
    dims: Vec<usize>,
}

impl Op for FeatureVectorizer {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let values: Vec<&Value> = inputs.iter().flatten().copied().collect();
        if values.len() != self.dims.len() {
            return Err(format!(
                "{} inputs but {} input dimensions",
                values.len(),
                self.dims.len()
            ));
        }
        let n = values.first().map_or(Ok(1), |v| {
            v.matrix_dims()
                .map(|d| if v.shape().len() == 1 { 1 } else { d.0 })
        })?;
        let width = self
            .dims
            .iter()
            .try_fold(0usize, |a, &d| a.checked_add(d))
            .filter(|&w| w <= 1 << 24)
            .ok_or("the input dimensions add up to too many columns")?;
        let size = n
            .checked_mul(width)
            .filter(|&s| s <= super::value::MAX_ELEMENTS)
            .ok_or("the output is larger than Slipway accepts")?;
        let mut out = vec![0.0f32; size];
        let mut offset = 0;
        for (v, &d) in values.iter().zip(&self.dims) {
            let (rows, c) = v.matrix_dims()?;
            if rows != n {
                return Err(format!("inputs have {n} and {rows} rows"));
            }
            let data = v.as_f32()?;
            for r in 0..n {
                for j in 0..d.min(c) {
                    out[r * width + offset + j] = data[r * c + j];
                }
            }
            offset += d;
        }
        Ok(vec![Value::F32(Arr::new(vec![n, width], out))])
    }
}
