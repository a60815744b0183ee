//! Class labels a graph carries, in score-column order, so that an import needs no
//! `--classes` when the exporter wrote them down.
//!
//! Exporters put them in three places: a classifier's or ZipMap's `classlabels_*` attributes
//! (linear models, trees, SVMs), or, for networks (scikit-learn's MLPClassifier through
//! skl2onnx), a constant the label output is gathered from:
//! `label = ArrayFeatureExtractor(classes, ArgMax(probabilities))`, or `Gather` in place of the
//! extractor, with casts and reshapes in between.

use std::collections::HashMap;

use tract_onnx::pb::{GraphProto, NodeProto, TensorProto};

use super::attr::{Attrs, tensor_value};
use super::value::Value;

/// Operators that pass a value through without changing which element is which.
const PASS_THROUGH: &[&str] = &[
    "Identity",
    "Cast",
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
];

/// The labels of a classifier or ZipMap node's `classlabels_*` attributes.
pub fn of_node(node: &NodeProto) -> Option<Vec<String>> {
    let a = Attrs::new(node);
    let strings = a.strings("classlabels_strings");
    if !strings.is_empty() {
        return Some(strings);
    }
    for name in ["classlabels_int64s", "classlabels_ints"] {
        let ints = a.ints(name);
        if !ints.is_empty() {
            return Some(ints.iter().map(ToString::to_string).collect());
        }
    }
    None
}

/// The class labels of `graph`, from wherever it holds them; `None` when it names none.
pub fn of_graph(graph: &GraphProto) -> Option<Vec<String>> {
    graph
        .node
        .iter()
        .filter(|n| {
            matches!(
                n.op_type.as_str(),
                "LinearClassifier" | "TreeEnsembleClassifier" | "ZipMap" | "SVMClassifier"
            )
        })
        .find_map(of_node)
        .or_else(|| gathered(graph))
}

/// Labels gathered from a constant by the index of the largest score.
fn gathered(graph: &GraphProto) -> Option<Vec<String>> {
    let mut producer: HashMap<&str, &NodeProto> = HashMap::new();
    for n in &graph.node {
        for o in &n.output {
            producer.insert(o.as_str(), n);
        }
    }
    let constants: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .chain(
            graph
                .node
                .iter()
                .filter(|n| n.op_type == "Constant")
                .filter_map(|n| {
                    let t = Attrs::new(n).get("value")?.t.as_ref()?;
                    Some((n.output.first()?.as_str(), t))
                }),
        )
        .collect();
    graph
        .node
        .iter()
        .filter(|n| matches!(n.op_type.as_str(), "ArrayFeatureExtractor" | "Gather"))
        .find_map(|n| {
            let (data, index) = (n.input.first()?, n.input.get(1)?);
            if origin(&producer, index, graph.node.len())?.op_type != "ArgMax" {
                return None;
            }
            let labels = match tensor_value(constants.get(data.as_str())?).ok()? {
                Value::Str(a) if a.shape.len() == 1 => a.data,
                Value::I64(a) if a.shape.len() == 1 => {
                    a.data.iter().map(ToString::to_string).collect()
                }
                Value::Str(_) | Value::I64(_) | Value::F32(_) | Value::F64(_) | Value::Bool(_) => {
                    return None;
                }
            };
            (labels.len() >= 2).then_some(labels)
        })
}

/// The node that made `name`, looking back through pass-through operators (at most `limit`
/// steps, so a cycle ends).
fn origin<'g>(
    producer: &HashMap<&'g str, &'g NodeProto>,
    mut name: &'g str,
    limit: usize,
) -> Option<&'g NodeProto> {
    for _ in 0..=limit {
        let node = *producer.get(name)?;
        if !PASS_THROUGH.contains(&node.op_type.as_str()) {
            return Some(node);
        }
        name = node.input.first()?;
    }
    None
}
