//! Tree ensembles: `TreeEnsembleClassifier` and `TreeEnsembleRegressor` (ml opsets 1 and 3:
//! plain and `*_as_tensor` attributes) and `TreeEnsemble` (ml opset 5), evaluated natively.
//!
//! Trees are flattened at load into one array of 12-byte nodes, depth first with each false
//! child right after its parent and leaves inline; each row walks every tree. When every branch
//! uses the same comparison (the usual case: `BRANCH_LEQ`) the walk is specialised for it, with
//! the missing-value rule a flag bit of the node. Aggregation and the binary-classifier conventions follow onnxruntime, the
//! reference the conformance suite compares with.

use std::collections::HashMap;

use tract_onnx::pb::NodeProto;

use super::attr::Attrs;
use super::ml::{Labels, Post, logistic, probit};
use super::ops::{Op, input};
use super::value::{Arr, Value};

const LEAF: u32 = 1 << 31;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    Leq = 0,
    Lt = 1,
    Gte = 2,
    Gt = 3,
    Eq = 4,
    Neq = 5,
    Member = 6,
}

impl Mode {
    fn parse(s: &str) -> Result<Option<Mode>, String> {
        Ok(Some(match s {
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "BRANCH_EQ" => Mode::Eq,
            "BRANCH_NEQ" => Mode::Neq,
            "LEAF" => return Ok(None),
            other => return Err(format!("unknown node mode `{other}`")),
        }))
    }

    fn from_code(c: i64) -> Result<Mode, String> {
        Ok(match c {
            0 => Mode::Leq,
            1 => Mode::Lt,
            2 => Mode::Gte,
            3 => Mode::Gt,
            4 => Mode::Eq,
            5 => Mode::Neq,
            6 => Mode::Member,
            other => return Err(format!("unknown node mode {other}")),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agg {
    Sum,
    Average,
    Min,
    Max,
}

/// A node of the flattened ensemble, 12 bytes for f32 thresholds. Trees are laid out depth
/// first with the false child right after its parent, so a branch stores only `t`, the index of
/// its true child. A leaf holds its weight inline (`thr` is the weight, `t` the target) unless it
/// has several (`MULTI`: `t` indexes `leaf_start`).
#[derive(Debug, Clone, Copy)]
struct Node<T> {
    /// Feature index, plus the `LEAF`, `MISSING_TRUE` and `MULTI` flags.
    ff: u32,
    thr: T,
    t: u32,
}

/// More targets or classes than any tabular model has; the bound keeps `rows × targets` sane.
const MAX_TARGETS: usize = 1 << 16;

const F_LEAF: u32 = 1 << 31;
const F_MISSING_TRUE: u32 = 1 << 30;
const F_MULTI: u32 = 1 << 29;
const FEATURE: u32 = F_MULTI - 1;

/// A leaf weight's accumulator: f32 or f64.
trait Acc: Copy + PartialOrd + Default + std::ops::Add<Output = Self> {
    fn to_f64(self) -> f64;
}
impl Acc for f32 {
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}
impl Acc for f64 {
    fn to_f64(self) -> f64 {
        self
    }
}

trait Num: Copy + PartialOrd + std::fmt::Debug + Send + Sync + 'static {
    fn is_nan(self) -> bool;
    /// A set member or threshold in this type (set membership compares like thresholds).
    fn from_f64(v: f64) -> Self;
}
impl Num for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}
impl Num for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Regressor,
    Classifier {
        labels: Labels,
        binary_case: bool,
        all_positive: bool,
    },
}

/// The parsed ensemble.
#[derive(Debug)]
pub struct TreeEnsemble {
    nodes32: Option<Vec<Node<f32>>>,
    nodes64: Vec<Node<f64>>,
    /// Per node with mode Member: its set (index = flattened node index).
    members: HashMap<u32, Vec<f64>>,
    roots: Vec<u32>,
    /// Multi-weight leaf `i` owns `weights[leaf_start[i]..leaf_start[i + 1]]`.
    leaf_start: Vec<u32>,
    weights: Vec<(u32, f64)>,
    weights32: Vec<(u32, f32)>,
    /// Per flattened node: its comparison (read only when the modes differ).
    meta: Vec<Mode>,
    n_targets: usize,
    agg: Agg,
    post: Post,
    base: Vec<f64>,
    kind: Kind,
    /// Every branch has this mode (`BRANCH_LEQ` or `BRANCH_LT`): the walk is specialised.
    same_mode: Option<Mode>,
    n_features: usize,
}

struct RawNode {
    feature: i64,
    thr: f64,
    mode: Option<Mode>,
    t: (i64, bool),
    f: (i64, bool),
    missing_true: bool,
}

/// Every per-node attribute has as many entries as the first one.
fn same_lengths((first, n): (&str, usize), others: &[(&str, usize)]) -> Result<(), String> {
    match others.iter().find(|(_, len)| *len != n) {
        Some((name, len)) => Err(format!("{name} has {len} entries, {first} has {n}")),
        None => Ok(()),
    }
}

fn uidx(v: i64, what: &str) -> Result<u32, String> {
    u32::try_from(v)
        .ok()
        .filter(|&v| v < LEAF)
        .ok_or_else(|| format!("{what} {v} is out of range"))
}

impl TreeEnsemble {
    /// `TreeEnsembleClassifier` / `TreeEnsembleRegressor`, ml opsets 1 and 3.
    pub fn from_legacy(node: &NodeProto, classifier: bool) -> Result<TreeEnsemble, String> {
        let a = Attrs::new(node);
        let tree_ids = a.required_ints("nodes_treeids")?;
        let node_ids = a.ints("nodes_nodeids");
        let features = a.ints("nodes_featureids");
        let modes = a.strings("nodes_modes");
        let values = a.floats_or_tensor("nodes_values")?;
        let trues = a.ints("nodes_truenodeids");
        let falses = a.ints("nodes_falsenodeids");
        let missing = a.ints("nodes_missing_value_tracks_true");
        let n = tree_ids.len();
        same_lengths(
            ("nodes_treeids", n),
            &[
                ("nodes_nodeids", node_ids.len()),
                ("nodes_featureids", features.len()),
                ("nodes_modes", modes.len()),
                ("nodes_values", values.len()),
                ("nodes_truenodeids", trues.len()),
                ("nodes_falsenodeids", falses.len()),
            ],
        )?;
        if !missing.is_empty() && missing.len() != n {
            return Err(format!(
                "nodes_missing_value_tracks_true has {} entries for {n} nodes",
                missing.len()
            ));
        }
        let prefix = if classifier { "class" } else { "target" };
        let w_ids = a.ints(&format!("{prefix}_ids"));
        let w_trees = a.ints(&format!("{prefix}_treeids"));
        let w_nodes = a.ints(&format!("{prefix}_nodeids"));
        let w_vals = a.floats_or_tensor(&format!("{prefix}_weights"))?;
        if w_trees.len() != w_ids.len()
            || w_nodes.len() != w_ids.len()
            || w_vals.len() != w_ids.len()
        {
            return Err(format!("the {prefix}_* attributes differ in length"));
        }
        // Position of every (tree, node) and the leaf index of every leaf.
        let mut position = HashMap::with_capacity(n);
        for i in 0..n {
            if position.insert((tree_ids[i], node_ids[i]), i).is_some() {
                return Err(format!(
                    "node {} of tree {} is defined twice",
                    node_ids[i], tree_ids[i]
                ));
            }
        }
        let mut leaf_of_node: HashMap<usize, u32> = HashMap::new();
        let mut is_leaf = vec![false; n];
        for i in 0..n {
            is_leaf[i] = Mode::parse(&modes[i])?.is_none();
            if is_leaf[i] {
                let l = u32::try_from(leaf_of_node.len()).map_err(|_| "too many leaves")?;
                leaf_of_node.insert(i, l);
            }
        }
        let n_leaves = leaf_of_node.len();
        let mut leaf_weights: Vec<Vec<(u32, f64)>> = vec![Vec::new(); n_leaves];
        for k in 0..w_ids.len() {
            let &p = position.get(&(w_trees[k], w_nodes[k])).ok_or_else(|| {
                format!(
                    "a weight names node {} of tree {}, which does not exist",
                    w_nodes[k], w_trees[k]
                )
            })?;
            let &l = leaf_of_node.get(&p).ok_or_else(|| {
                format!(
                    "a weight names node {} of tree {}, which is not a leaf",
                    w_nodes[k], w_trees[k]
                )
            })?;
            leaf_weights[l as usize].push((uidx(w_ids[k], "class/target id")?, w_vals[k]));
        }
        let child = |tree: i64, id: i64| -> Result<(i64, bool), String> {
            let &p = position
                .get(&(tree, id))
                .ok_or_else(|| format!("tree {tree} points to node {id}, which does not exist"))?;
            Ok(match leaf_of_node.get(&p) {
                Some(&l) => (i64::from(l), true),
                None => (i64::try_from(p).unwrap_or(0), false),
            })
        };
        let mut raw = Vec::with_capacity(n);
        let mut roots = Vec::new();
        // A tree's root is its first listed node, and trees are summed in the order they first
        // appear, as onnxruntime does (float sums depend on the order).
        let mut seen_tree: HashMap<i64, ()> = HashMap::new();
        let mut root_nodes = Vec::new();
        for i in 0..n {
            if seen_tree.insert(tree_ids[i], ()).is_none() {
                root_nodes.push(i);
            }
            let mode = Mode::parse(&modes[i])?;
            raw.push(RawNode {
                feature: features[i],
                thr: values[i],
                mode,
                t: if mode.is_some() {
                    child(tree_ids[i], trues[i])?
                } else {
                    (0, true)
                },
                f: if mode.is_some() {
                    child(tree_ids[i], falses[i])?
                } else {
                    (0, true)
                },
                missing_true: missing.get(i).is_some_and(|&m| m != 0),
            });
        }
        for &i in &root_nodes {
            roots.push(match leaf_of_node.get(&i) {
                Some(&l) => (i64::from(l), true),
                None => (i64::try_from(i).unwrap_or(0), false),
            });
        }
        let (kind, n_targets) = if classifier {
            let labels = Labels::from_attrs(&a, "classlabels_int64s");
            if labels.len() < 2 {
                return Err(format!(
                    "a classifier needs at least 2 class labels, not {}",
                    labels.len()
                ));
            }
            let classes: std::collections::HashSet<i64> = w_ids.iter().copied().collect();
            let all_positive = w_vals.iter().all(|&w| w >= 0.0);
            let n = labels.len();
            (
                Kind::Classifier {
                    labels,
                    binary_case: n == 2 && classes.len() == 1,
                    all_positive,
                },
                n,
            )
        } else {
            (
                Kind::Regressor,
                usize::try_from(a.int("n_targets", 1)).map_err(|_| "negative n_targets")?,
            )
        };
        let agg = match a.string("aggregate_function", "SUM").as_str() {
            "SUM" => Agg::Sum,
            "AVERAGE" => Agg::Average,
            "MIN" => Agg::Min,
            "MAX" => Agg::Max,
            other => return Err(format!("unknown aggregate_function `{other}`")),
        };
        let post = Post::parse(&a.string("post_transform", "NONE"))?;
        let base = a.floats_or_tensor("base_values")?;
        Self::assemble(
            raw,
            roots,
            leaf_weights,
            HashMap::new(),
            n_targets,
            if classifier { Agg::Sum } else { agg },
            post,
            base,
            kind,
        )
    }

    /// `TreeEnsemble`, ml opset 5.
    pub fn from_v5(node: &NodeProto) -> Result<TreeEnsemble, String> {
        let a = Attrs::new(node);
        let features = a.required_ints("nodes_featureids")?;
        let n = features.len();
        let splits = a
            .tensor("nodes_splits")?
            .ok_or("nodes_splits is missing")?
            .as_f64()?
            .into_owned();
        let modes = match a.tensor("nodes_modes")? {
            Some(v) => v.as_i64()?.into_owned(),
            None => return Err("nodes_modes is missing".into()),
        };
        let trues = a.ints("nodes_truenodeids");
        let true_leaf = a.ints("nodes_trueleafs");
        let falses = a.ints("nodes_falsenodeids");
        let false_leaf = a.ints("nodes_falseleafs");
        let missing = a.ints("nodes_missing_value_tracks_true");
        same_lengths(
            ("nodes_featureids", n),
            &[
                ("nodes_splits", splits.len()),
                ("nodes_modes", modes.len()),
                ("nodes_truenodeids", trues.len()),
                ("nodes_trueleafs", true_leaf.len()),
                ("nodes_falsenodeids", falses.len()),
                ("nodes_falseleafs", false_leaf.len()),
            ],
        )?;
        let leaf_targets = a.ints("leaf_targetids");
        let leaf_w = a
            .tensor("leaf_weights")?
            .ok_or("leaf_weights is missing")?
            .as_f64()?
            .into_owned();
        if leaf_targets.len() != leaf_w.len() {
            return Err("leaf_targetids and leaf_weights differ in length".into());
        }
        let mut members_all = match a.tensor("membership_values")? {
            Some(v) => v.as_f64()?.into_owned(),
            None => Vec::new(),
        }
        .into_iter();
        let mut members = HashMap::new();
        let mut raw = Vec::with_capacity(n);
        for i in 0..n {
            let mode = Mode::from_code(modes[i])?;
            if mode == Mode::Member {
                let mut set = Vec::new();
                for v in members_all.by_ref() {
                    if v.is_nan() {
                        break;
                    }
                    set.push(v);
                }
                members.insert(u32::try_from(i).map_err(|_| "too many nodes")?, set);
            }
            raw.push(RawNode {
                feature: features[i],
                thr: splits[i],
                mode: Some(mode),
                t: (trues[i], true_leaf[i] != 0),
                f: (falses[i], false_leaf[i] != 0),
                missing_true: missing.get(i).is_some_and(|&m| m != 0),
            });
        }
        let leaf_weights = leaf_targets
            .iter()
            .zip(&leaf_w)
            .map(|(&t, &w)| Ok(vec![(uidx(t, "leaf target id")?, w)]))
            .collect::<Result<Vec<_>, String>>()?;
        // A root index past the branches is a leaf-only tree: onnx says roots index nodes, so a
        // single-leaf tree is written as a branch whose both sides are the same leaf.
        let roots = a
            .ints("tree_roots")
            .into_iter()
            .map(|r| (r, false))
            .collect();
        let agg = match a.int("aggregate_function", 1) {
            0 => Agg::Average,
            1 => Agg::Sum,
            2 => Agg::Min,
            3 => Agg::Max,
            other => return Err(format!("unknown aggregate_function {other}")),
        };
        let post = Post::from_code(a.int("post_transform", 0))?;
        let n_targets = usize::try_from(a.int("n_targets", 1)).map_err(|_| "negative n_targets")?;
        Self::assemble(
            raw,
            roots,
            leaf_weights,
            members,
            n_targets,
            agg,
            post,
            Vec::new(),
            Kind::Regressor,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        raw: Vec<RawNode>,
        roots: Vec<(i64, bool)>,
        leaf_weights: Vec<Vec<(u32, f64)>>,
        members: HashMap<u32, Vec<f64>>,
        n_targets: usize,
        agg: Agg,
        post: Post,
        base: Vec<f64>,
        kind: Kind,
    ) -> Result<TreeEnsemble, String> {
        if n_targets == 0 || n_targets > MAX_TARGETS {
            return Err(format!(
                "the ensemble has {n_targets} targets or classes (1 to {MAX_TARGETS} are supported)"
            ));
        }
        let n_nodes = raw.len();
        let n_leaves = leaf_weights.len();
        let link = |(i, leaf): (i64, bool)| -> Result<u32, String> {
            let v = uidx(i, if leaf { "leaf" } else { "node" })?;
            if leaf {
                if v as usize >= n_leaves {
                    return Err(format!("leaf {v} does not exist ({n_leaves} leaves)"));
                }
                Ok(v | LEAF)
            } else {
                if v as usize >= n_nodes {
                    return Err(format!("node {v} does not exist ({n_nodes} nodes)"));
                }
                Ok(v)
            }
        };
        let mut n_features = 0usize;
        for r in &raw {
            let feature = uidx(r.feature, "feature id")?;
            if feature > FEATURE {
                return Err(format!("feature id {feature} is out of range"));
            }
            if r.mode.is_some() {
                n_features = n_features.max(feature as usize + 1);
            }
        }
        let roots_in: Vec<u32> = roots.into_iter().map(link).collect::<Result<_, _>>()?;
        // Leaf weights: inline when a leaf has exactly one, else a range of `weights`.
        let mut leaf_start = vec![0u32];
        let mut weights = Vec::new();
        for lw in &leaf_weights {
            for &(t, _) in lw {
                if t as usize >= n_targets {
                    return Err(format!(
                        "a leaf writes to target/class {t}, the model has {n_targets}"
                    ));
                }
            }
        }
        // Flatten depth first: a branch, then its false subtree, then its true subtree. The
        // walk also rejects cycles, and a budget stops subtrees shared by many parents from
        // multiplying.
        let budget = 4 * (n_nodes + n_leaves) + 16;
        let mut nodes64: Vec<Node<f64>> = Vec::with_capacity(n_nodes + n_leaves);
        let mut meta: Vec<Mode> = Vec::with_capacity(n_nodes + n_leaves);
        let mut flat_members = HashMap::new();
        let mut multi_index: HashMap<u32, u32> = HashMap::new();
        let mut roots_out = Vec::with_capacity(roots_in.len());
        for &root in &roots_in {
            roots_out.push(u32::try_from(nodes64.len()).map_err(|_| "too many nodes")?);
            // (reference, depth, parent whose `t` to patch)
            let mut stack = vec![(root, 0usize, None::<usize>)];
            while let Some((reference, depth, patch)) = stack.pop() {
                if nodes64.len() >= budget || depth > n_nodes + 1 {
                    return Err("the trees have a cycle or too many shared subtrees".into());
                }
                let here = nodes64.len();
                let here32 = u32::try_from(here).map_err(|_| "too many nodes")?;
                if let Some(p) = patch {
                    nodes64[p].t = here32;
                }
                if reference & LEAF != 0 {
                    let l = (reference & !LEAF) as usize;
                    let lw = &leaf_weights[l];
                    if lw.len() == 1 {
                        nodes64.push(Node {
                            ff: F_LEAF,
                            thr: lw[0].1,
                            t: lw[0].0,
                        });
                    } else {
                        let idx = match multi_index.get(&(l as u32)) {
                            Some(&i) => i,
                            None => {
                                weights.extend(lw.iter().copied());
                                leaf_start.push(
                                    u32::try_from(weights.len()).map_err(|_| "too many weights")?,
                                );
                                let i = u32::try_from(leaf_start.len() - 2)
                                    .map_err(|_| "too many leaves")?;
                                multi_index.insert(l as u32, i);
                                i
                            }
                        };
                        nodes64.push(Node {
                            ff: F_LEAF | F_MULTI,
                            thr: 0.0,
                            t: idx,
                        });
                    }
                    meta.push(Mode::Leq);
                    continue;
                }
                let r = &raw[reference as usize];
                let Some(mode) = r.mode else {
                    return Err(format!("node {reference} is a leaf inside a branch path"));
                };
                let feature = uidx(r.feature, "feature id")?;
                let t = link(r.t)?;
                let f = link(r.f)?;
                nodes64.push(Node {
                    ff: feature | if r.missing_true { F_MISSING_TRUE } else { 0 },
                    thr: r.thr,
                    t: 0,
                });
                meta.push(mode);
                if let Some(set) = members.get(&reference) {
                    flat_members.insert(here32, set.clone());
                }
                stack.push((t, depth + 1, Some(here)));
                stack.push((f, depth + 1, None));
            }
        }
        let mut same_mode = None;
        let mut uniform = true;
        for (n, &mode) in nodes64.iter().zip(&meta) {
            if n.ff & F_LEAF != 0 {
                continue;
            }
            if !matches!(mode, Mode::Leq | Mode::Lt) {
                uniform = false;
                break;
            }
            match same_mode {
                None => same_mode = Some(mode),
                Some(m) if m != mode => {
                    uniform = false;
                    break;
                }
                Some(_) => {}
            }
        }
        let nodes32 = nodes64
            .iter()
            .all(|n| f64::from(n.thr as f32) == n.thr || n.thr.is_nan())
            .then(|| {
                nodes64
                    .iter()
                    .map(|n| Node {
                        ff: n.ff,
                        thr: n.thr as f32,
                        t: n.t,
                    })
                    .collect()
            });
        Ok(TreeEnsemble {
            nodes32,
            nodes64,
            members: flat_members,
            roots: roots_out,
            leaf_start,
            weights32: weights.iter().map(|&(t, w)| (t, w as f32)).collect(),
            weights,
            meta,
            n_targets,
            agg,
            post,
            base,
            kind,
            same_mode: if uniform { same_mode } else { None },
            n_features,
        })
    }

    /// The general comparison, for ensembles that mix modes.
    #[inline(always)]
    fn go<T: Num>(&self, n: &Node<T>, v: T, i: u32) -> bool {
        let hit = match self.meta[i as usize] {
            Mode::Leq => v <= n.thr,
            Mode::Lt => v < n.thr,
            Mode::Gte => v >= n.thr,
            Mode::Gt => v > n.thr,
            Mode::Eq => v == n.thr,
            Mode::Neq => v != n.thr,
            Mode::Member => self
                .members
                .get(&i)
                .is_some_and(|s| s.iter().any(|&m| T::from_f64(m) == v)),
        };
        hit || (n.ff & F_MISSING_TRUE != 0 && v.is_nan())
    }

    /// Scores every row: `scores[r * n_targets + t]` and whether each slot got a score.
    /// Sums are kept in `T`: f32 for float inputs, as onnxruntime does, f64 otherwise.
    fn accumulate<T: Num + Acc>(
        &self,
        nodes: &[Node<T>],
        x: &[T],
        c: usize,
        rows: usize,
        weights: &[(u32, T)],
    ) -> (Vec<f64>, Vec<bool>) {
        match self.same_mode {
            Some(Mode::Leq) => {
                self.rows(nodes, x, c, rows, weights, |i: usize, n: &Node<T>, v: T| {
                    let _ = i;
                    (v <= n.thr) | (n.ff & F_MISSING_TRUE != 0 && v.is_nan())
                })
            }
            Some(Mode::Lt) => {
                self.rows(nodes, x, c, rows, weights, |i: usize, n: &Node<T>, v: T| {
                    let _ = i;
                    (v < n.thr) | (n.ff & F_MISSING_TRUE != 0 && v.is_nan())
                })
            }
            _ => self.rows(nodes, x, c, rows, weights, |i: usize, n: &Node<T>, v: T| {
                self.go(n, v, i as u32)
            }),
        }
    }

    /// Rows in the outer loop, trees in the inner one.
    #[inline(always)]
    fn rows<T: Num + Acc>(
        &self,
        nodes: &[Node<T>],
        x: &[T],
        c: usize,
        rows: usize,
        weights: &[(u32, T)],
        go: impl Fn(usize, &Node<T>, T) -> bool,
    ) -> (Vec<f64>, Vec<bool>) {
        let k = self.n_targets;
        let mut scores = vec![T::default(); rows * k];
        let mut has = vec![false; rows * k];
        let sum_like = matches!(self.agg, Agg::Sum | Agg::Average);
        let min = self.agg == Agg::Min;
        for r in 0..rows {
            let xr = &x[r * c..(r + 1) * c];
            let sr = &mut scores[r * k..(r + 1) * k];
            let hr = &mut has[r * k..(r + 1) * k];
            let mut add = |t: u32, w: T| {
                let t = t as usize;
                if sum_like {
                    sr[t] = sr[t] + w;
                } else if !hr[t] || (min && w < sr[t]) || (!min && w > sr[t]) {
                    sr[t] = w;
                }
                hr[t] = true;
            };
            for &root in &self.roots {
                let mut i = root as usize;
                let mut n = &nodes[i];
                while n.ff & F_LEAF == 0 {
                    let v = xr[(n.ff & FEATURE) as usize];
                    i = if go(i, n, v) { n.t as usize } else { i + 1 };
                    n = &nodes[i];
                }
                if n.ff & F_MULTI == 0 {
                    add(n.t, n.thr);
                } else {
                    let l = n.t as usize;
                    for &(t, w) in
                        &weights[self.leaf_start[l] as usize..self.leaf_start[l + 1] as usize]
                    {
                        add(t, w);
                    }
                }
            }
        }
        (scores.into_iter().map(Acc::to_f64).collect(), has)
    }

    fn finish_regression(&self, scores: &mut [f64], has: &[bool], rows: usize) -> Vec<f32> {
        let k = self.n_targets;
        let trees = self.roots.len().max(1) as f64;
        let mut out = Vec::with_capacity(rows * k);
        if k == 1 {
            let origin = if self.base.len() == 1 {
                self.base[0]
            } else {
                0.0
            };
            for r in 0..rows {
                let s = match self.agg {
                    Agg::Sum => scores[r] + origin,
                    Agg::Average => scores[r] / trees + origin,
                    Agg::Min | Agg::Max => {
                        if has[r] {
                            scores[r] + origin
                        } else {
                            origin
                        }
                    }
                };
                out.push(if self.post == Post::Probit {
                    probit(s as f32)
                } else {
                    s as f32
                });
            }
            return out;
        }
        let use_base = self.base.len() == k;
        let mut row = vec![0.0f32; k];
        for r in 0..rows {
            for t in 0..k {
                let b = if use_base { self.base[t] } else { 0.0 };
                let s = scores[r * k + t];
                row[t] = match self.agg {
                    Agg::Sum => (s + b) as f32,
                    Agg::Average => (s / trees + b) as f32,
                    Agg::Min | Agg::Max => (b + if has[r * k + t] { s } else { 0.0 }) as f32,
                };
            }
            self.post.apply(&mut row);
            out.extend_from_slice(&row);
        }
        out
    }

    /// Classifier finish, as onnxruntime's TreeAggregatorClassifier: returns labels (class
    /// indices) and the score rows.
    fn finish_classification(
        &self,
        scores: &[f64],
        has: &[bool],
        rows: usize,
        binary_case: bool,
        all_positive: bool,
    ) -> (Vec<i64>, Vec<f32>) {
        let k = self.n_targets;
        let mut labels = Vec::with_capacity(rows);
        let mut out = Vec::with_capacity(rows * k.max(2));
        // Scratch rows, reused: no allocation per row.
        let mut s = vec![0.0f64; k];
        let mut h = vec![false; k];
        let mut row32 = vec![0.0f32; k];
        for r in 0..rows {
            s.copy_from_slice(&scores[r * k..(r + 1) * k]);
            h.copy_from_slice(&has[r * k..(r + 1) * k]);
            if k > 2 {
                for (j, &b) in self.base.iter().enumerate().take(k) {
                    if h[j] {
                        s[j] += b;
                    } else {
                        s[j] = b;
                        h[j] = true;
                    }
                }
                let mut best: Option<usize> = None;
                for j in 0..k {
                    if h[j] && best.is_none_or(|b| s[j] > s[b]) {
                        best = Some(j);
                    }
                }
                labels.push(i64::try_from(best.unwrap_or(0)).unwrap_or(0));
                for (o, &v) in row32.iter_mut().zip(&s) {
                    *o = v as f32;
                }
                self.post.apply(&mut row32);
                out.extend_from_slice(&row32);
                continue;
            }
            // Binary.
            let mut extra = -1;
            let mut len = 2;
            match self.base.len() {
                2 => {
                    if h[1] {
                        s[1] = self.base[1] + s[0];
                        s[0] = -s[1];
                    } else {
                        s[1] += self.base[1];
                        s[0] += self.base[0];
                    }
                }
                1 => {
                    s[0] += self.base[0];
                    if !h[1] {
                        len = 1;
                    }
                }
                _ => {
                    extra = 3;
                    if !h[1] {
                        len = 1;
                    }
                }
            }
            let pos = if len == 2 && h[1] {
                s[1]
            } else if h[0] {
                s[0]
            } else {
                0.0
            };
            let label = if binary_case {
                if all_positive {
                    if pos > 0.5 {
                        extra = 0;
                        1
                    } else {
                        extra = 1;
                        0
                    }
                } else if pos > 0.0 {
                    extra = 2;
                    1
                } else {
                    extra = 3;
                    0
                }
            } else {
                i64::from(pos > 0.0)
            };
            labels.push(label);
            if len == 2 {
                let mut row = [s[0] as f32, s[1] as f32];
                self.post.apply(&mut row);
                out.extend_from_slice(&row);
            } else {
                let v = s[0] as f32;
                let row = if self.post == Post::Probit {
                    [probit(v), 0.0]
                } else if self.post == Post::Logistic {
                    [logistic(-v), logistic(v)]
                } else {
                    match extra {
                        0 | 1 => [1.0 - v, v],
                        2 | 3 if self.post == Post::Logistic => [logistic(-v), logistic(v)],
                        2 | 3 => [-v, v],
                        _ => [v, 0.0],
                    }
                };
                out.extend_from_slice(&row);
            }
        }
        (labels, out)
    }

    fn run_on(&self, x: &Value) -> Result<Vec<Value>, String> {
        let (rows, c) = x.matrix_dims()?;
        if rows
            .checked_mul(self.n_targets)
            .is_none_or(|n| n > super::value::MAX_ELEMENTS)
        {
            return Err(format!(
                "{rows} rows × {} targets is too large an output",
                self.n_targets
            ));
        }
        if c < self.n_features {
            return Err(format!(
                "the trees read feature {} but the input has {c} columns",
                self.n_features - 1
            ));
        }
        let (mut scores, has) = match (x, &self.nodes32) {
            (Value::F32(a), Some(nodes)) => {
                self.accumulate(nodes, &a.data, c, rows, &self.weights32)
            }
            (Value::F64(a), _) => self.accumulate(&self.nodes64, &a.data, c, rows, &self.weights),
            (other, _) => {
                let data = other.as_f64()?;
                self.accumulate(&self.nodes64, &data, c, rows, &self.weights)
            }
        };
        match &self.kind {
            Kind::Regressor => {
                let out = self.finish_regression(&mut scores, &has, rows);
                Ok(vec![Value::F32(Arr::new(vec![rows, self.n_targets], out))])
            }
            Kind::Classifier {
                labels,
                binary_case,
                all_positive,
            } => {
                let (idx, out) =
                    self.finish_classification(&scores, &has, rows, *binary_case, *all_positive);
                let width = out.len() / rows.max(1);
                Ok(vec![
                    labels.pick(&idx)?,
                    Value::F32(Arr::new(
                        vec![rows, if rows == 0 { self.n_targets } else { width }],
                        out,
                    )),
                ])
            }
        }
    }
}

impl Op for TreeEnsemble {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        self.run_on(input(inputs, 0)?)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tract_onnx::pb::{AttributeProto, NodeProto};

    use super::*;

    /// One random tree in the opset 1 attribute form: (feature, threshold, mode, missing_true)
    /// per branch, leaves with one or two weights.
    #[derive(Debug, Clone)]
    enum T {
        Leaf(Vec<(u32, f64)>),
        Branch {
            feature: i64,
            thr: f64,
            mode: &'static str,
            missing: bool,
            t: Box<T>,
            f: Box<T>,
        },
    }

    fn tree(depth: u32, targets: u32) -> BoxedStrategy<T> {
        let leaf = prop::collection::vec((0..targets, -4.0f64..4.0), 1..3).prop_map(T::Leaf);
        if depth == 0 {
            return leaf.boxed();
        }
        let modes = prop::sample::select(vec![
            "BRANCH_LEQ",
            "BRANCH_LT",
            "BRANCH_GTE",
            "BRANCH_GT",
            "BRANCH_EQ",
            "BRANCH_NEQ",
        ]);
        prop_oneof![
            1 => leaf,
            3 => (0..4i64, -2.0f64..2.0, modes, any::<bool>(), tree(depth - 1, targets), tree(depth - 1, targets)).prop_map(
                |(feature, thr, mode, missing, t, f)| T::Branch { feature, thr: (thr * 4.0).round() / 4.0, mode, missing, t: Box::new(t), f: Box::new(f) }
            ),
        ]
        .boxed()
    }

    /// The straightforward reading of the attributes, for comparison.
    fn naive(t: &T, x: &[f64], out: &mut [f64]) {
        match t {
            T::Leaf(ws) => ws.iter().for_each(|&(k, w)| out[k as usize] += w),
            T::Branch {
                feature,
                thr,
                mode,
                missing,
                t,
                f,
            } => {
                let v = x[*feature as usize];
                let hit = match *mode {
                    "BRANCH_LEQ" => v <= *thr,
                    "BRANCH_LT" => v < *thr,
                    "BRANCH_GTE" => v >= *thr,
                    "BRANCH_GT" => v > *thr,
                    "BRANCH_EQ" => v == *thr,
                    _ => v != *thr,
                } || (*missing && v.is_nan());
                naive(if hit { t } else { f }, x, out);
            }
        }
    }

    #[derive(Default)]
    struct Attrs {
        tree: Vec<i64>,
        node: Vec<i64>,
        feature: Vec<i64>,
        value: Vec<f64>,
        mode: Vec<String>,
        t: Vec<i64>,
        f: Vec<i64>,
        missing: Vec<i64>,
        w_tree: Vec<i64>,
        w_node: Vec<i64>,
        w_target: Vec<i64>,
        w: Vec<f64>,
    }

    fn emit(t: &T, tree_id: i64, a: &mut Attrs) -> i64 {
        let id = a.tree.iter().filter(|tr| **tr == tree_id).count() as i64;
        a.tree.push(tree_id);
        a.node.push(id);
        let at = a.node.len() - 1;
        match t {
            T::Leaf(ws) => {
                a.feature.push(0);
                a.value.push(0.0);
                a.mode.push("LEAF".into());
                a.t.push(0);
                a.f.push(0);
                a.missing.push(0);
                for &(k, w) in ws {
                    a.w_tree.push(tree_id);
                    a.w_node.push(id);
                    a.w_target.push(i64::from(k));
                    a.w.push(w);
                }
            }
            T::Branch {
                feature,
                thr,
                mode,
                missing,
                t,
                f,
            } => {
                a.feature.push(*feature);
                a.value.push(*thr);
                a.mode.push((*mode).into());
                a.t.push(0);
                a.f.push(0);
                a.missing.push(i64::from(*missing));
                // The false subtree first: ids need not follow the walk order.
                let fid = emit(f, tree_id, a);
                let tid = emit(t, tree_id, a);
                a.t[at] = tid;
                a.f[at] = fid;
            }
        }
        id
    }

    fn node(trees: &[T], targets: u32, agg: &str, base: &[f64]) -> NodeProto {
        let mut a = Attrs::default();
        for (i, t) in trees.iter().enumerate() {
            emit(t, i as i64, &mut a);
        }
        let ints = |name: &str, v: Vec<i64>| AttributeProto {
            name: name.into(),
            ints: v,
            ..Default::default()
        };
        let doubles = |name: &str, v: Vec<f64>| AttributeProto {
            name: name.into(),
            t: Some(tract_onnx::pb::TensorProto {
                dims: vec![v.len() as i64],
                data_type: 11,
                double_data: v,
                ..Default::default()
            }),
            ..Default::default()
        };
        NodeProto {
            op_type: "TreeEnsembleRegressor".into(),
            domain: "ai.onnx.ml".into(),
            attribute: vec![
                ints("nodes_treeids", a.tree),
                ints("nodes_nodeids", a.node),
                ints("nodes_featureids", a.feature),
                doubles("nodes_values_as_tensor", a.value),
                AttributeProto {
                    name: "nodes_modes".into(),
                    strings: a.mode.into_iter().map(String::into_bytes).collect(),
                    ..Default::default()
                },
                ints("nodes_truenodeids", a.t),
                ints("nodes_falsenodeids", a.f),
                ints("nodes_missing_value_tracks_true", a.missing),
                ints("target_treeids", a.w_tree),
                ints("target_nodeids", a.w_node),
                ints("target_ids", a.w_target),
                doubles("target_weights_as_tensor", a.w),
                doubles("base_values_as_tensor", base.to_vec()),
                AttributeProto {
                    name: "n_targets".into(),
                    i: i64::from(targets),
                    ..Default::default()
                },
                AttributeProto {
                    name: "aggregate_function".into(),
                    s: agg.as_bytes().to_vec(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// The flattened, specialised walk gives exactly what reading the attributes naively
        /// gives, for any trees, comparison modes, missing-value rules and inputs (double
        /// inputs: sums in f64 and in the same tree order, so equality is exact).
        #[test]
        fn flattened_trees_agree_with_the_attributes(
            trees in prop::collection::vec(tree(4, 3), 1..5),
            rows in prop::collection::vec(prop::collection::vec(prop_oneof![4 => (-8i32..8).prop_map(|v| f64::from(v) / 4.0), 1 => Just(f64::NAN)], 4), 1..20),
            average in any::<bool>(),
        ) {
            let base = [0.5, -0.25, 0.0];
            let agg = if average { "AVERAGE" } else { "SUM" };
            let ensemble = TreeEnsemble::from_legacy(&node(&trees, 3, agg, &base), false).unwrap();
            let x: Vec<f64> = rows.iter().flatten().copied().collect();
            let got = ensemble.run_on(&Value::F64(Arr::new(vec![rows.len(), 4], x))).unwrap();
            let Value::F32(got) = &got[0] else { panic!("a regressor answers in float") };
            for (r, row) in rows.iter().enumerate() {
                let mut want = [0.0f64; 3];
                for t in &trees {
                    naive(t, row, &mut want);
                }
                for k in 0..3 {
                    let w = if average { want[k] / trees.len() as f64 + base[k] } else { want[k] + base[k] };
                    prop_assert_eq!(got.data[r * 3 + k], w as f32, "row {} target {}", r, k);
                }
            }
        }
    }
}
