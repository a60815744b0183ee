//! ONNX models: decoded once, planned on Slipway's interpreter when it has every operator of
//! the graph (all of `ai.onnx.ml` that exporters emit and the standard operators tabular models
//! use), on tract otherwise; warmed with one row before they are handed out.

// Operators accept a subset of element types; their catch-all arm is the type error, and a new
// element type must fall into it until an operator learns it.
#![allow(clippy::wildcard_enum_match_arm)]

mod attr;
mod classes;
mod graph;
mod ml;
mod ops;
mod trees;
mod value;
mod wire;

use std::collections::{BTreeMap, HashMap};

use prost::Message;
use slipway_core::{CoreError, DataType, Model, Signature, Tensor, TensorData, TensorSpec};
use tract_onnx::pb::{self, ModelProto, tensor_proto::DataType as PbType};
use tract_onnx::prelude::{
    Datum, Framework, InferenceFact, InferenceModelExt, IntoRunnable, TDim, TValue,
    TypedRunnableModel, tvec,
};

use graph::{Plan, PlanError};
pub use value::{MAX_ELEMENTS, Value, bounded_elements};

/// Why an ONNX model does not load.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The bytes are not an ONNX model (or are cut short).
    #[error("not a valid ONNX file: {0}")]
    NotOnnx(String),
    /// An operator neither the interpreter nor tract has.
    #[error(
        "operator {domain}::{op} ({node}) is not supported by Slipway yet; \
         re-export the model without it or open an issue naming the operator"
    )]
    Unsupported {
        domain: String,
        op: String,
        node: String,
    },
    /// The graph is malformed or does not type-check.
    #[error("the model does not load: {0}")]
    Invalid(String),
}

impl OnnxError {
    fn printable(self) -> OnnxError {
        match self {
            OnnxError::NotOnnx(m) => OnnxError::NotOnnx(printable(&m)),
            OnnxError::Invalid(m) => OnnxError::Invalid(printable(&m)),
            OnnxError::Unsupported { domain, op, node } => OnnxError::Unsupported {
                domain: printable(&domain),
                op: printable(&op),
                node: printable(&node),
            },
        }
    }
}

pub use slipway_core::printable;

/// Which engine runs a graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineChoice {
    /// Slipway's interpreter when it has every operator, tract otherwise.
    #[default]
    Auto,
    /// Only the interpreter.
    Interpreter,
    /// Only tract.
    Tract,
}

/// What was learned about a graph while loading it.
#[derive(Debug, Clone)]
pub struct OnnxInfo {
    pub producer: String,
    pub opsets: BTreeMap<String, i64>,
    /// `slipway` (the interpreter) or `tract`.
    pub engine: &'static str,
    /// Class labels from the graph's classifier or ZipMap, in score-column order.
    pub classes: Option<Vec<String>>,
    /// Operators of the graph, `domain::Op`, sorted.
    pub operators: Vec<String>,
    /// Output name → the class labels of a ZipMap output (exposed as a [rows, classes] matrix).
    pub zipmap: HashMap<String, Vec<String>>,
}

/// What runs a planned graph (private; `slipway_engine::Engine` is the serving core).
enum Backend {
    Interp(Plan),
    Tract(std::sync::Arc<TypedRunnableModel>),
}

/// A loaded ONNX model.
pub struct OnnxModel {
    signature: Signature,
    engine: Backend,
    pub info: OnnxInfo,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("signature", &self.signature)
            .field("info", &self.info)
            .finish()
    }
}

fn datatype(elem: i32, what: &str) -> Result<DataType, OnnxError> {
    match PbType::try_from(elem) {
        Ok(PbType::Float) => Ok(DataType::Fp32),
        Ok(PbType::Double) => Ok(DataType::Fp64),
        Ok(PbType::Int64) => Ok(DataType::Int64),
        Ok(PbType::String) => Ok(DataType::Bytes),
        Ok(PbType::Bool) => Ok(DataType::Bool),
        Ok(other) => Err(OnnxError::Invalid(format!(
            "{what} is tensor({}), which Slipway cannot exchange yet (it takes float, double, int64, string and bool)",
            other.as_str_name().to_lowercase()
        ))),
        Err(_) => Err(OnnxError::Invalid(format!(
            "{what} has unknown element type {elem}"
        ))),
    }
}

fn tensor_type(v: &pb::ValueInfoProto) -> Option<&pb::type_proto::Tensor> {
    match v.r#type.as_ref()?.value.as_ref()? {
        pb::type_proto::Value::TensorType(t) => Some(t),
    }
}

/// Declared shape: known sizes, `-1` for named, unnamed or missing dimensions.
fn declared_shape(t: &pb::type_proto::Tensor) -> Option<Vec<i64>> {
    let shape = t.shape.as_ref()?;
    Some(
        shape
            .dim
            .iter()
            .map(|d| match d.value {
                Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => v,
                Some(_) | None => -1,
            })
            .collect(),
    )
}

/// Refuses a declared shape that describes more than [`MAX_ELEMENTS`] elements, with its open
/// dimensions (`-1`) counted as 1: a graph declaring a width of 2^40 is refused here, before
/// anything allocates for it.
fn declared_bounded(shape: &[i64], what: &str) -> Result<(), OnnxError> {
    let dims: Vec<usize> = shape
        .iter()
        .map(|&d| usize::try_from(d).unwrap_or(1))
        .collect();
    value::bounded_elements(&dims).map(|_| ()).map_err(|_| {
        OnnxError::Invalid(format!(
            "{what} declares shape {shape:?}, more than the {MAX_ELEMENTS} elements Slipway accepts"
        ))
    })
}

impl OnnxModel {
    /// Decodes, plans and warms a model.
    pub fn from_bytes(bytes: &[u8], choice: EngineChoice) -> Result<OnnxModel, OnnxError> {
        Self::from_bytes_with_inputs(bytes, choice, &[])
    }

    /// [`from_bytes`](Self::from_bytes), with input shapes taken from `inputs` where they name
    /// a graph input: a package's signature (or `import --input-shape`) can make a batch
    /// dimension the exporter fixed (a PyTorch export with batch 1) variable. Datatypes must
    /// agree, ranks must agree, and only a dimension the graph leaves open, or the batch
    /// dimension, may change.
    pub fn from_bytes_with_inputs(
        bytes: &[u8],
        choice: EngineChoice,
        overrides: &[TensorSpec],
    ) -> Result<OnnxModel, OnnxError> {
        // Messages quote names from the file: control characters in them are escaped.
        Self::load(bytes, choice, overrides).map_err(OnnxError::printable)
    }

    fn load(
        bytes: &[u8],
        choice: EngineChoice,
        overrides: &[TensorSpec],
    ) -> Result<OnnxModel, OnnxError> {
        let proto = ModelProto::decode(bytes).map_err(|e| {
            OnnxError::NotOnnx(wire::first_problem(bytes).unwrap_or_else(|| e.to_string()))
        })?;
        // (The structural walk that locates a problem runs only when decoding failed.)
        let Some(graph) = proto.graph.as_ref() else {
            return Err(OnnxError::NotOnnx(
                "the file has no graph; is it an ONNX model?".into(),
            ));
        };
        if proto.ir_version <= 0 || graph.node.is_empty() {
            return Err(OnnxError::NotOnnx(format!(
                "ir_version {} and {} nodes; is it an ONNX model?",
                proto.ir_version,
                graph.node.len()
            )));
        }
        let mut opsets: BTreeMap<String, i64> = BTreeMap::new();
        for o in &proto.opset_import {
            let d = if o.domain == "ai.onnx" {
                String::new()
            } else {
                o.domain.clone()
            };
            opsets.insert(d, o.version);
        }
        let operators: Vec<String> = {
            let mut ops: Vec<String> = graph
                .node
                .iter()
                .map(|n| {
                    format!(
                        "{}::{}",
                        if n.domain.is_empty() {
                            "ai.onnx"
                        } else {
                            &n.domain
                        },
                        n.op_type
                    )
                })
                .collect();
            ops.sort();
            ops.dedup();
            ops
        };
        let has_ml = graph.node.iter().any(|n| n.domain == "ai.onnx.ml");
        let classes = classes::of_graph(graph);
        let mut zipmap = HashMap::new();
        for n in graph.node.iter().filter(|n| n.op_type == "ZipMap") {
            if let (Some(o), Some(c)) = (n.output.first(), classes::of_node(n)) {
                zipmap.insert(o.clone(), c);
            }
        }

        // Inputs: graph inputs that are not initializers.
        let inits: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|i| i.name.as_str()).collect();
        let mut inputs = Vec::new();
        for v in graph
            .input
            .iter()
            .filter(|v| !inits.contains(v.name.as_str()))
        {
            let what = format!("input `{}`", v.name);
            let t = tensor_type(v)
                .ok_or_else(|| OnnxError::Invalid(format!("{what} is not a tensor")))?;
            let mut shape = declared_shape(t).unwrap_or_else(|| vec![-1]);
            if shape.is_empty() {
                shape = vec![-1];
            }
            inputs.push(TensorSpec {
                name: v.name.clone(),
                datatype: datatype(t.elem_type, &what)?,
                shape,
            });
        }
        if inputs.is_empty() {
            return Err(OnnxError::Invalid("the graph has no input".into()));
        }
        for o in overrides {
            let Some(spec) = inputs.iter_mut().find(|i| i.name == o.name) else {
                return Err(OnnxError::Invalid(format!(
                    "the signature names input `{}`, which the graph does not have",
                    o.name
                )));
            };
            if o.datatype != spec.datatype {
                return Err(OnnxError::Invalid(format!(
                    "input `{}` is {} in the graph, not {}",
                    o.name, spec.datatype, o.datatype
                )));
            }
            let fits = o.shape.len() == spec.shape.len()
                && o.shape
                    .iter()
                    .zip(&spec.shape)
                    .enumerate()
                    .all(|(axis, (&want, &have))| {
                        have < 0 || want == have || (axis == 0 && want == -1)
                    });
            if !fits {
                return Err(OnnxError::Invalid(format!(
                    "input `{}` has shape {:?} in the graph; {:?} does not fit it (only open \
                     dimensions and the batch dimension can change)",
                    o.name, spec.shape, o.shape
                )));
            }
            spec.shape.clone_from(&o.shape);
        }
        // Every size the graph declares is bounded before anything is sized from it (feature
        // names at import, warm-up rows, the engines' plans).
        for spec in &inputs {
            declared_bounded(&spec.shape, &format!("input `{}`", spec.name))?;
        }
        for o in &graph.output {
            if let Some(shape) = tensor_type(o).and_then(declared_shape) {
                declared_bounded(&shape, &format!("output `{}`", o.name))?;
            }
        }
        let input_names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
        let opset_map: HashMap<String, i64> = opsets.iter().map(|(k, v)| (k.clone(), *v)).collect();

        let (engine, engine_name) = match choice {
            EngineChoice::Tract => (Self::tract(bytes, &inputs)?, "tract"),
            EngineChoice::Auto | EngineChoice::Interpreter => {
                match Plan::new(graph, &input_names, &opset_map) {
                    Ok(plan) => (Backend::Interp(plan), "slipway"),
                    Err(PlanError::Unsupported { domain, op, node }) => {
                        if has_ml || choice == EngineChoice::Interpreter {
                            return Err(OnnxError::Unsupported { domain, op, node });
                        }
                        (Self::tract(bytes, &inputs)?, "tract")
                    }
                    Err(PlanError::Invalid(m)) => return Err(OnnxError::Invalid(m)),
                }
            }
        };

        // Warm-up with one row of zeros: checks that the graph runs end to end and gives the
        // output types.
        let warm_inputs: Option<Vec<Tensor>> = inputs
            .iter()
            .map(|spec| {
                let shape: Vec<usize> = spec
                    .shape
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| {
                        if d > 0 {
                            usize::try_from(d).ok()
                        } else if i == 0 {
                            Some(1)
                        } else {
                            None
                        }
                    })
                    .collect::<Option<_>>()?;
                // A declared shape too large to warm with is left to its first request.
                if shape
                    .iter()
                    .try_fold(1usize, |a, &d| a.checked_mul(d))
                    .is_none_or(|n| n > 1 << 22)
                {
                    return None;
                }
                let v = Value::zeros(spec.datatype, shape)?;
                Some(v.into_tensor(&spec.name))
            })
            .collect();
        let mut model = OnnxModel {
            signature: Signature {
                inputs,
                outputs: Vec::new(),
            },
            engine,
            info: OnnxInfo {
                producer: format!("{} {}", proto.producer_name, proto.producer_version)
                    .trim()
                    .to_string(),
                opsets,
                engine: engine_name,
                classes,
                operators,
                zipmap,
            },
        };
        let warm = match &warm_inputs {
            Some(w) => Some(
                model
                    .run_engine(&w.iter().collect::<Vec<_>>())
                    .map_err(OnnxError::Invalid)?,
            ),
            None => None,
        };
        let mut outputs = Vec::new();
        for (k, o) in graph.output.iter().enumerate() {
            let declared = tensor_type(o);
            let from_run = warm.as_ref().and_then(|w| w.get(k));
            let datatype = match (from_run, declared) {
                (Some(t), _) => t.data.datatype(),
                (None, Some(t)) => datatype(t.elem_type, &format!("output `{}`", o.name))?,
                (None, None) if model.info.zipmap.contains_key(&o.name) => DataType::Fp32,
                (None, None) => {
                    return Err(OnnxError::Invalid(format!(
                        "output `{}` has no declared type",
                        o.name
                    )));
                }
            };
            let shape = if let Some(c) = model.info.zipmap.get(&o.name) {
                vec![-1, i64::try_from(c.len()).unwrap_or(-1)]
            } else {
                match (declared.and_then(declared_shape), from_run) {
                    (Some(s), Some(t)) if s.len() == t.shape.len() => s,
                    (_, Some(t)) => t
                        .shape
                        .iter()
                        .enumerate()
                        .map(|(i, &d)| {
                            if i == 0 {
                                -1
                            } else {
                                i64::try_from(d).unwrap_or(-1)
                            }
                        })
                        .collect(),
                    (Some(s), None) => s,
                    (None, None) => vec![-1],
                }
            };
            outputs.push(TensorSpec {
                name: o.name.clone(),
                datatype,
                shape,
            });
        }
        model.signature.outputs = outputs;
        Ok(model)
    }

    fn tract(bytes: &[u8], inputs: &[TensorSpec]) -> Result<Backend, OnnxError> {
        // tract is a dependency: a panic while it reads or plans a hostile graph is a load error.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Self::tract_unguarded(bytes, inputs)
        }))
        .map_err(|_| {
            OnnxError::Invalid("the tract engine failed on this graph (it panicked)".into())
        })?
    }

    fn tract_unguarded(bytes: &[u8], inputs: &[TensorSpec]) -> Result<Backend, OnnxError> {
        let onnx = tract_onnx::onnx();
        let mut model = onnx
            .model_for_read(&mut &bytes[..])
            .map_err(|e| OnnxError::Invalid(format!("{e:#}")))?;
        let batch = model.symbols.sym("N");
        for (i, spec) in inputs.iter().enumerate() {
            let dims: Vec<TDim> = spec
                .shape
                .iter()
                .map(|&d| {
                    if d > 0 {
                        TDim::from(d)
                    } else {
                        TDim::Sym(batch.clone())
                    }
                })
                .collect();
            let dt = match spec.datatype {
                DataType::Fp32 => f32::datum_type(),
                DataType::Fp64 => f64::datum_type(),
                DataType::Int64 => i64::datum_type(),
                DataType::Bool => bool::datum_type(),
                other => {
                    return Err(OnnxError::Invalid(format!(
                        "tract cannot take {other} input `{}`",
                        spec.name
                    )));
                }
            };
            model = model
                .with_input_fact(i, InferenceFact::dt_shape(dt, dims))
                .map_err(|e| OnnxError::Invalid(format!("{e:#}")))?;
        }
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| OnnxError::Invalid(format!("{e:#}")))?;
        Ok(Backend::Tract(plan))
    }

    /// Runs the engine on inputs already in signature order.
    fn run_engine(&self, inputs: &[&Tensor]) -> Result<Vec<Tensor>, String> {
        match &self.engine {
            Backend::Interp(plan) => {
                let values = inputs
                    .iter()
                    .map(|t| Value::from_tensor(t))
                    .collect::<Result<_, _>>()?;
                let out = plan.run(values)?;
                Ok(out
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| v.into_tensor(&format!("{i}")))
                    .collect())
            }
            Backend::Tract(plan) => {
                let mut tv = tvec!();
                for t in inputs {
                    let tensor = match &t.data {
                        TensorData::Fp32(v) => tract_onnx::prelude::Tensor::from_shape(&t.shape, v),
                        TensorData::Fp64(v) => tract_onnx::prelude::Tensor::from_shape(&t.shape, v),
                        TensorData::Int64(v) => {
                            tract_onnx::prelude::Tensor::from_shape(&t.shape, v)
                        }
                        TensorData::Bool(v) => tract_onnx::prelude::Tensor::from_shape(&t.shape, v),
                        TensorData::Bytes(_) => {
                            return Err("tract models take no BYTES input".into());
                        }
                    }
                    .map_err(|e| format!("{e:#}"))?;
                    tv.push(TValue::from(tensor));
                }
                // tract is a dependency: a panic inside it is turned into an error for this
                // request, so it can never take a server down.
                let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| plan.run(tv)))
                    .map_err(|_| "the tract engine failed on this input (it panicked)".to_string())?
                    .map_err(|e| format!("{e:#}"))?;
                out.into_iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let shape = t.shape().to_vec();
                        let t = t.try_as_plain_ram().map_err(|e| format!("{e:#}"))?;
                        let data = if let Ok(v) = t.as_slice::<f32>() {
                            TensorData::Fp32(v.to_vec())
                        } else if let Ok(v) = t.as_slice::<f64>() {
                            TensorData::Fp64(v.to_vec())
                        } else if let Ok(v) = t.as_slice::<i64>() {
                            TensorData::Int64(v.to_vec())
                        } else if let Ok(v) = t.as_slice::<bool>() {
                            TensorData::Bool(v.to_vec())
                        } else {
                            return Err(format!(
                                "output {i} has type {:?}, which Slipway cannot return",
                                t.datum_type()
                            ));
                        };
                        Ok(Tensor {
                            name: format!("{i}"),
                            shape,
                            data,
                        })
                    })
                    .collect()
            }
        }
    }
}

impl Model for OnnxModel {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn infer(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, CoreError> {
        // Shapes past what Slipway accepts are refused before anything counts their elements.
        for t in inputs {
            value::bounded_elements(&t.shape).map_err(CoreError::InvalidInput)?;
        }
        self.signature.check_inputs(inputs)?;
        let mut ordered = Vec::with_capacity(self.signature.inputs.len());
        let mut batch = None;
        for spec in &self.signature.inputs {
            let Some(t) = inputs.iter().find(|t| t.name == spec.name) else {
                return Err(CoreError::InvalidInput(format!(
                    "missing input `{}`",
                    spec.name
                )));
            };
            if spec.shape.first() == Some(&-1) {
                let n = t.shape[0];
                if *batch.get_or_insert(n) != n {
                    return Err(CoreError::InvalidInput(format!(
                        "inputs disagree on the batch size ({} and {n})",
                        batch.unwrap_or(0)
                    )));
                }
            }
            ordered.push(t);
        }
        let out = self.run_engine(&ordered).map_err(CoreError::InvalidInput)?;
        Ok(out
            .into_iter()
            .zip(&self.signature.outputs)
            .map(|(mut t, spec)| {
                t.name.clone_from(&spec.name);
                t
            })
            .collect())
    }
}
