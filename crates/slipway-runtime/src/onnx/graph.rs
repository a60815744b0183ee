//! The interpreter: an ONNX graph planned once (nodes in topological order, constants decoded,
//! every value given a slot) and run per batch.

use std::collections::HashMap;

use tract_onnx::pb::{GraphProto, NodeProto};

use super::attr::{Attrs, tensor_value};
use super::ops::{self, Op};
use super::value::Value;
use super::{ml, trees};

/// Why a graph cannot be planned.
#[derive(Debug)]
pub enum PlanError {
    /// An operator this interpreter lacks: (domain, op type, node name).
    Unsupported {
        domain: String,
        op: String,
        node: String,
    },
    /// A graph or node that is malformed.
    Invalid(String),
}

#[derive(Debug)]
struct Step {
    op: Box<dyn Op>,
    inputs: Vec<Option<usize>>,
    outputs: Vec<usize>,
    label: String,
    /// After this step, these slots are not read again and are dropped.
    free: Vec<usize>,
}

/// A planned graph.
#[derive(Debug)]
pub struct Plan {
    consts: Vec<Option<Value>>,
    steps: Vec<Step>,
    inputs: Vec<usize>,
    outputs: Vec<usize>,
    slots: usize,
}

/// `node_label` for error messages: `node "name" (Op)`.
pub fn node_label(node: &NodeProto, index: usize) -> String {
    if node.name.is_empty() {
        format!("node #{index} ({})", node.op_type)
    } else {
        format!("node `{}` ({})", node.name, node.op_type)
    }
}

fn is_ml(domain: &str) -> bool {
    domain == "ai.onnx.ml"
}

impl Plan {
    /// Plans `graph`. `opsets` maps domain ("" for the default) to version.
    pub fn new(
        graph: &GraphProto,
        input_names: &[String],
        opsets: &HashMap<String, i64>,
    ) -> Result<Plan, PlanError> {
        let mut slot_of: HashMap<String, usize> = HashMap::new();
        let mut consts: Vec<Option<Value>> = Vec::new();
        let slot = |name: &str,
                    slot_of: &mut HashMap<String, usize>,
                    consts: &mut Vec<Option<Value>>|
         -> usize {
            if let Some(&s) = slot_of.get(name) {
                return s;
            }
            consts.push(None);
            slot_of.insert(name.to_string(), consts.len() - 1);
            consts.len() - 1
        };
        for init in &graph.initializer {
            // An element type the interpreter lacks (FLOAT16, BFLOAT16, …) is an unsupported
            // feature, not a broken graph: a graph of standard operators can go to tract.
            if !super::attr::supported_type(init.data_type) {
                return Err(PlanError::Unsupported {
                    domain: "ai.onnx".into(),
                    op: format!("initializer of element type {}", init.data_type),
                    node: format!("initializer `{}`", init.name),
                });
            }
            let v = tensor_value(init)
                .map_err(|e| PlanError::Invalid(format!("initializer `{}`: {e}", init.name)))?;
            let s = slot(&init.name, &mut slot_of, &mut consts);
            consts[s] = Some(v);
        }
        let inputs: Vec<usize> = input_names
            .iter()
            .map(|n| slot(n, &mut slot_of, &mut consts))
            .collect();
        let default_opset = opsets
            .get("")
            .or_else(|| opsets.get("ai.onnx"))
            .copied()
            .unwrap_or(1);
        let ml_opset = opsets.get("ai.onnx.ml").copied().unwrap_or(1);

        // Topological order by Kahn's algorithm (linear, whatever order the file lists nodes in);
        // among ready nodes the earliest listed goes first, so a sorted file keeps its order.
        let mut produced: std::collections::HashSet<&str> =
            slot_of.keys().map(String::as_str).collect();
        let mut waiting = vec![0usize; graph.node.len()];
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            let mut needs: Vec<&str> = n
                .input
                .iter()
                .map(String::as_str)
                .filter(|x| !x.is_empty() && !produced.contains(x))
                .collect();
            needs.sort_unstable();
            needs.dedup();
            waiting[i] = needs.len();
            for x in needs {
                consumers.entry(x).or_default().push(i);
            }
        }
        let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> =
            (0..graph.node.len())
                .filter(|&i| waiting[i] == 0)
                .map(std::cmp::Reverse)
                .collect();
        let mut order = Vec::with_capacity(graph.node.len());
        while let Some(std::cmp::Reverse(i)) = ready.pop() {
            let n = &graph.node[i];
            order.push((i, n));
            for o in &n.output {
                if o.is_empty() || !produced.insert(o.as_str()) {
                    continue;
                }
                for &c in consumers.get(o.as_str()).map_or(&[][..], Vec::as_slice) {
                    waiting[c] -= 1;
                    if waiting[c] == 0 {
                        ready.push(std::cmp::Reverse(c));
                    }
                }
            }
        }
        if order.len() < graph.node.len() {
            let (i, n) = graph
                .node
                .iter()
                .enumerate()
                .find(|(i, _)| waiting[*i] > 0)
                .unwrap_or((0, &graph.node[0]));
            let missing: Vec<&String> = n
                .input
                .iter()
                .filter(|x| !x.is_empty() && !produced.contains(x.as_str()))
                .collect();
            return Err(PlanError::Invalid(format!(
                "{} reads {missing:?}, which no node, input or initializer provides (or the graph has a cycle)",
                node_label(n, i)
            )));
        }

        let mut steps = Vec::with_capacity(order.len());
        for (i, node) in order {
            let label = node_label(node, i);
            if node.op_type == "Constant" && (node.domain.is_empty() || node.domain == "ai.onnx") {
                let a = Attrs::new(node);
                let v = if let Some(v) = a
                    .tensor("value")
                    .map_err(|e| PlanError::Invalid(format!("{label}: {e}")))?
                {
                    v
                } else if a.has("value_float") {
                    Value::F32(super::value::Arr::new(
                        vec![],
                        vec![a.float("value_float", 0.0)],
                    ))
                } else if a.has("value_int") {
                    Value::I64(super::value::Arr::new(vec![], vec![a.int("value_int", 0)]))
                } else if a.has("value_ints") {
                    let v = a.ints("value_ints");
                    Value::I64(super::value::Arr::new(vec![v.len()], v))
                } else if a.has("value_floats") {
                    let v = a.floats("value_floats");
                    Value::F32(super::value::Arr::new(vec![v.len()], v))
                } else {
                    return Err(PlanError::Invalid(format!(
                        "{label}: Constant without a value"
                    )));
                };
                let Some(out) = node.output.first() else {
                    return Err(PlanError::Invalid(format!(
                        "{label}: Constant without an output"
                    )));
                };
                let s = slot(out, &mut slot_of, &mut consts);
                consts[s] = Some(v);
                continue;
            }
            let built = if is_ml(&node.domain) {
                match node.op_type.as_str() {
                    "TreeEnsembleClassifier" => trees::TreeEnsemble::from_legacy(node, true)
                        .map(|t| Some(Box::new(t) as Box<dyn Op>)),
                    "TreeEnsembleRegressor" => trees::TreeEnsemble::from_legacy(node, false)
                        .map(|t| Some(Box::new(t) as Box<dyn Op>)),
                    "TreeEnsemble" => {
                        trees::TreeEnsemble::from_v5(node).map(|t| Some(Box::new(t) as Box<dyn Op>))
                    }
                    _ => ml::build(node, ml_opset),
                }
            } else if node.domain.is_empty() || node.domain == "ai.onnx" {
                ops::build(node, default_opset)
            } else {
                Ok(None)
            };
            let op = match built {
                Ok(Some(op)) => op,
                Ok(None) => {
                    return Err(PlanError::Unsupported {
                        domain: if node.domain.is_empty() {
                            "ai.onnx".into()
                        } else {
                            node.domain.clone()
                        },
                        op: node.op_type.clone(),
                        node: label,
                    });
                }
                Err(e) => return Err(PlanError::Invalid(format!("{label}: {e}"))),
            };
            let ins = node
                .input
                .iter()
                .map(|x| (!x.is_empty()).then(|| slot(x, &mut slot_of, &mut consts)))
                .collect();
            let outs = node
                .output
                .iter()
                .map(|x| slot(x, &mut slot_of, &mut consts))
                .collect();
            steps.push(Step {
                op,
                inputs: ins,
                outputs: outs,
                label,
                free: Vec::new(),
            });
        }
        let mut outputs = Vec::with_capacity(graph.output.len());
        for o in &graph.output {
            let s = *slot_of.get(&o.name).ok_or_else(|| {
                PlanError::Invalid(format!("graph output `{}` is produced by no node", o.name))
            })?;
            outputs.push(s);
        }
        // Liveness: drop each runtime value after its last reader (graph outputs are kept).
        let mut last_use: HashMap<usize, usize> = HashMap::new();
        for (k, step) in steps.iter().enumerate() {
            for s in step.inputs.iter().flatten() {
                last_use.insert(*s, k);
            }
        }
        for (s, k) in last_use {
            if consts[s].is_none() && !outputs.contains(&s) && !inputs.contains(&s) {
                steps[k].free.push(s);
            }
        }
        Ok(Plan {
            slots: consts.len(),
            consts,
            steps,
            inputs,
            outputs,
        })
    }

    /// Runs the graph on `inputs` (in the order given to `new`); returns the graph outputs.
    pub fn run(&self, inputs: Vec<Value>) -> Result<Vec<Value>, String> {
        let mut values: Vec<Option<Value>> = Vec::with_capacity(self.slots);
        values.resize_with(self.slots, || None);
        for (&s, v) in self.inputs.iter().zip(inputs) {
            values[s] = Some(v);
        }
        for step in &self.steps {
            let args: Vec<Option<&Value>> = step
                .inputs
                .iter()
                .map(|s| s.and_then(|s| self.consts[s].as_ref().or(values[s].as_ref())))
                .collect();
            if let Some(k) = step.inputs.iter().position(
                |s| matches!(s, Some(s) if self.consts[*s].is_none() && values[*s].is_none()),
            ) {
                return Err(format!("{}: input {k} was not computed", step.label));
            }
            let out = step
                .op
                .run(&args)
                .map_err(|e| format!("{}: {e}", step.label))?;
            for (&s, v) in step.outputs.iter().zip(out) {
                values[s] = Some(v);
            }
            for &s in &step.free {
                values[s] = None;
            }
        }
        self.outputs
            .iter()
            .map(|&s| {
                self.consts[s]
                    .clone()
                    .or_else(|| values[s].take())
                    .ok_or_else(|| "a graph output was not computed".to_string())
            })
            .collect()
    }
}
