//! A frame split into features and a target, ready for training or evaluation.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use slipway_core::{FeatureKind, FeatureSpec};

use crate::data::{self, Column, ColumnKind, Frame, MISSING_CODE, ReadOptions};
use crate::error::{LearnError, Result};

/// What the target means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// Class labels (text, or numbers read as labels).
    Classes,
    /// Numbers to regress on.
    Values,
}

/// The target column, with rows whose target was missing already dropped.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// `codes[i]` indexes `classes`. For two classes the positive class is `classes[1]`.
    Classes {
        codes: Vec<u32>,
        classes: Vec<String>,
    },
    Values(Vec<f64>),
}

impl Target {
    /// Class codes, for stratified splits; `None` for regression.
    pub fn strata(&self) -> Option<&[u32]> {
        match self {
            Target::Classes { codes, .. } => Some(codes),
            Target::Values(_) => None,
        }
    }
}

/// Which columns to use and how to read them.
#[derive(Debug, Clone, Default)]
pub struct DatasetSpec {
    pub target: String,
    /// Use only these feature columns (default: every column but the target and `ignore`).
    pub features: Option<Vec<String>>,
    pub ignore: Vec<String>,
    /// Forced column kinds.
    pub kinds: HashMap<String, ColumnKind>,
    /// For binary classification: the class whose probability the model gives.
    pub positive_class: Option<String>,
    /// The field delimiter (default: sniffed from the header).
    pub delimiter: Option<u8>,
}

/// Features and target of one CSV file.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The file's columns; `feature_columns` index into it.
    pub frame: Frame,
    pub feature_columns: Vec<usize>,
    pub target_name: String,
    pub target: Target,
    /// Rows dropped because the target was missing.
    pub rows_dropped: usize,
}

impl Dataset {
    /// Number of rows with a target.
    pub fn n_rows(&self) -> usize {
        self.frame.n_rows
    }

    /// All row indices.
    pub fn rows(&self) -> Vec<usize> {
        (0..self.frame.n_rows).collect()
    }
}

/// Reads a CSV for training. `kind` says how to read the target; `None` infers it: a text target
/// is classes, a numeric target is values unless every value is 0 or 1.
pub fn load(path: &Path, spec: &DatasetSpec, kind: Option<TargetKind>) -> Result<Dataset> {
    let frame = data::read_csv(
        path,
        &ReadOptions {
            kinds: spec.kinds.clone(),
            delimiter: spec.delimiter,
        },
    )?;
    let target_idx = frame.require(&spec.target)?;
    let (frame, dropped) = drop_missing_target(frame, target_idx)?;
    let feature_columns = select_features(&frame, target_idx, spec)?;
    let kind = kind.unwrap_or_else(|| infer_kind(&frame.columns[target_idx]));
    let target = match kind {
        TargetKind::Values => regression_target(&frame, target_idx)?,
        TargetKind::Classes => {
            let (labels, codes) = labels_of(&frame.columns[target_idx]);
            let classes = order_classes(
                &frame,
                &spec.target,
                &labels,
                spec.positive_class.as_deref(),
            )?;
            let index: HashMap<&str, u32> = classes
                .iter()
                .enumerate()
                .map(|(i, c)| (c.as_str(), i as u32))
                .collect();
            let codes = codes
                .iter()
                .map(|c| index[labels[*c as usize].as_str()])
                .collect();
            Target::Classes { codes, classes }
        }
    };
    Ok(Dataset {
        frame,
        feature_columns,
        target_name: spec.target.clone(),
        target,
        rows_dropped: dropped,
    })
}

/// Reads a labelled CSV to evaluate a package on: the package's features (kinds forced to what
/// was trained) and its target mapped onto the package's classes.
pub fn load_for_model(
    path: &Path,
    features: &[FeatureSpec],
    target_name: &str,
    classes: &[String],
    delimiter: Option<u8>,
) -> Result<Dataset> {
    let frame = read_for_features(path, features, Some(target_name), delimiter)?;
    let target_idx = frame.require(target_name)?;
    let (frame, dropped) = drop_missing_target(frame, target_idx)?;
    let feature_columns = features
        .iter()
        .map(|f| frame.require(&f.name))
        .collect::<Result<Vec<_>>>()?;
    let target_values = if classes.is_empty() {
        regression_target(&frame, target_idx)?
    } else {
        let index: HashMap<&str, u32> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i as u32))
            .collect();
        let (labels, codes) = labels_of(&frame.columns[target_idx]);
        let mut out = Vec::with_capacity(codes.len());
        for (row, code) in codes.iter().enumerate() {
            let label = &labels[*code as usize];
            match index.get(label.as_str()) {
                Some(c) => out.push(*c),
                None => {
                    return Err(LearnError::Data {
                        path: path.to_path_buf(),
                        line: frame.lines.get(row).copied(),
                        column: Some(target_name.to_string()),
                        message: format!(
                            "label `{label}` is not one of the model's classes ({})",
                            classes.join(", ")
                        ),
                    });
                }
            }
        }
        Target::Classes {
            codes: out,
            classes: classes.to_vec(),
        }
    };
    Ok(Dataset {
        frame,
        feature_columns,
        target_name: target_name.to_string(),
        target: target_values,
        rows_dropped: dropped,
    })
}

/// Reads a CSV with the kinds of `features` forced (and the target, if any, left to inference).
pub fn read_for_features(
    path: &Path,
    features: &[FeatureSpec],
    target: Option<&str>,
    delimiter: Option<u8>,
) -> Result<Frame> {
    let header = data::csv_reader(path, delimiter)?.1;
    let mut kinds = HashMap::new();
    for f in features {
        if !header.contains(&f.name) {
            return Err(LearnError::data(
                path,
                format!(
                    "the model needs a column named `{}`, which this file lacks; its columns are: {}",
                    f.name,
                    header.join(", ")
                ),
            ));
        }
        let kind = match f.kind {
            FeatureKind::Numeric { .. } => ColumnKind::Numeric,
            FeatureKind::Categorical { .. } => ColumnKind::Categorical,
        };
        kinds.insert(f.name.clone(), kind);
    }
    if let Some(t) = target
        && !header.iter().any(|h| h == t)
    {
        return Err(LearnError::data(
            path,
            format!(
                "no target column named `{t}` to evaluate against; the columns are: {}",
                header.join(", ")
            ),
        ));
    }
    data::read_csv(path, &ReadOptions { kinds, delimiter })
}

fn drop_missing_target(mut frame: Frame, target_idx: usize) -> Result<(Frame, usize)> {
    let keep: Vec<bool> = (0..frame.n_rows)
        .map(|i| !frame.columns[target_idx].is_missing(i))
        .collect();
    let dropped = keep.iter().filter(|k| !**k).count();
    if dropped == frame.n_rows {
        return Err(LearnError::Data {
            path: frame.path.clone(),
            line: None,
            column: Some(frame.names[target_idx].clone()),
            message: "the target is missing in every row".into(),
        });
    }
    if dropped > 0 {
        frame.retain_rows(&keep);
    }
    Ok((frame, dropped))
}

fn select_features(frame: &Frame, target_idx: usize, spec: &DatasetSpec) -> Result<Vec<usize>> {
    for name in &spec.ignore {
        frame.require(name)?;
    }
    let columns: Vec<usize> = match &spec.features {
        Some(names) => names
            .iter()
            .map(|n| frame.require(n))
            .collect::<Result<_>>()?,
        None => (0..frame.names.len())
            .filter(|j| *j != target_idx && !spec.ignore.contains(&frame.names[*j]))
            .collect(),
    };
    if let Some(j) = columns
        .iter()
        .enumerate()
        .find_map(|(i, c)| columns[..i].contains(c).then_some(*c))
    {
        return Err(LearnError::Param(format!(
            "--features names `{}` twice",
            frame.names[j]
        )));
    }
    if columns.contains(&target_idx) {
        return Err(LearnError::Param(format!(
            "the target `{}` cannot also be a feature",
            spec.target
        )));
    }
    if columns.is_empty() {
        return Err(LearnError::data(
            &frame.path,
            "no feature column is left to train on",
        ));
    }
    for j in &columns {
        if (0..frame.n_rows).all(|i| frame.columns[*j].is_missing(i)) {
            return Err(LearnError::Data {
                path: frame.path.clone(),
                line: None,
                column: Some(frame.names[*j].clone()),
                message: format!(
                    "the column has no value in any row; leave it out with --ignore {}",
                    frame.names[*j]
                ),
            });
        }
    }
    Ok(columns)
}

fn infer_kind(column: &Column) -> TargetKind {
    match column {
        Column::Categorical { .. } => TargetKind::Classes,
        Column::Numeric(v) if v.iter().all(|x| *x == 0.0 || *x == 1.0) => TargetKind::Classes,
        Column::Numeric(_) => TargetKind::Values,
    }
}

fn regression_target(frame: &Frame, target_idx: usize) -> Result<Target> {
    match &frame.columns[target_idx] {
        Column::Numeric(v) => Ok(Target::Values(v.clone())),
        Column::Categorical { codes, levels } => {
            let column = Some(frame.names[target_idx].clone());
            match codes
                .iter()
                .enumerate()
                .find(|(_, c)| data::parse_number(levels[**c as usize].as_bytes()).is_none())
            {
                Some((row, code)) => Err(LearnError::Data {
                    path: frame.path.clone(),
                    line: frame.lines.get(row).copied(),
                    column,
                    message: format!(
                        "the target must be numeric for regression, but holds `{}`; for classes use --model logistic or mlp",
                        levels[*code as usize]
                    ),
                }),
                None => Err(LearnError::Data {
                    path: frame.path.clone(),
                    line: None,
                    column,
                    message: "the target holds numbers but was declared --categorical; regression needs it numeric".into(),
                }),
            }
        }
    }
}

/// The labels of a target column (canonical text) and each row's index into them.
fn labels_of(column: &Column) -> (Vec<String>, Vec<u32>) {
    match column {
        Column::Categorical { codes, levels } => {
            let labels: Vec<String> = levels.iter().map(|l| data::canonical_label(l)).collect();
            // Distinct raw levels may share a canonical label ("1" and "1.0").
            let mut unique: Vec<String> = Vec::new();
            let mut remap = Vec::with_capacity(labels.len());
            for l in &labels {
                let idx = unique.iter().position(|u| u == l).unwrap_or_else(|| {
                    unique.push(l.clone());
                    unique.len() - 1
                });
                remap.push(idx as u32);
            }
            let codes = codes
                .iter()
                .map(|c| {
                    if *c == MISSING_CODE {
                        0
                    } else {
                        remap[*c as usize]
                    }
                })
                .collect();
            (unique, codes)
        }
        Column::Numeric(v) => {
            let mut unique: Vec<String> = Vec::new();
            let mut index: HashMap<String, u32> = HashMap::new();
            let codes = v
                .iter()
                .map(|x| {
                    let label = data::canonical_label(&x.to_string());
                    *index.entry(label.clone()).or_insert_with(|| {
                        unique.push(label);
                        unique.len() as u32 - 1
                    })
                })
                .collect();
            (unique, codes)
        }
    }
}

/// Sorted classes; for two, the positive class last.
fn order_classes(
    frame: &Frame,
    target: &str,
    labels: &[String],
    positive: Option<&str>,
) -> Result<Vec<String>> {
    let set: BTreeSet<&str> = labels.iter().map(String::as_str).collect();
    let mut classes: Vec<String> = set.iter().map(|s| s.to_string()).collect();
    // Numeric labels sort as numbers (5 before 10), as scikit-learn sorts them.
    let numbers: Option<Vec<f64>> = classes.iter().map(|c| c.parse::<f64>().ok()).collect();
    if let Some(numbers) = numbers {
        let mut pairs: Vec<(f64, String)> = numbers.into_iter().zip(classes).collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        classes = pairs.into_iter().map(|(_, c)| c).collect();
    }
    if classes.len() < 2 {
        return Err(LearnError::Data {
            path: frame.path.clone(),
            line: None,
            column: Some(target.to_string()),
            message: format!(
                "the target has a single class `{}` in all {} rows; a classifier needs two or more",
                classes.first().map_or("", String::as_str),
                frame.n_rows
            ),
        });
    }
    if let Some(p) = positive {
        let p = data::canonical_label(p);
        if !classes.contains(&p) {
            return Err(LearnError::Param(format!(
                "--positive-class `{p}` is not a class of `{target}` (classes: {})",
                classes.join(", ")
            )));
        }
        if classes.len() != 2 {
            return Err(LearnError::Param(format!(
                "--positive-class applies to two classes, and `{target}` has {}",
                classes.len()
            )));
        }
        classes.retain(|c| *c != p);
        classes.push(p);
    } else if classes.len() == 2 {
        let conventional = [
            "1",
            "true",
            "yes",
            "y",
            "positive",
            "pos",
            "bad",
            "default",
            "fraud",
            "malignant",
        ];
        // The first name of the list that is a class wins; else the second class in order.
        let pos = conventional
            .iter()
            .find_map(|name| classes.iter().position(|c| c.to_lowercase() == *name))
            .unwrap_or(1);
        let p = classes.remove(pos);
        classes.push(p);
    }
    Ok(classes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn spec(target: &str) -> DatasetSpec {
        DatasetSpec {
            target: target.into(),
            ..DatasetSpec::default()
        }
    }

    #[test]
    fn rows_without_target_are_dropped_and_counted() {
        let (_d, path) = write("x,y\n1,2.5\n2,\n3,NA\n4,1.5\n");
        let ds = load(&path, &spec("y"), None).unwrap();
        assert_eq!(ds.rows_dropped, 2);
        assert_eq!(ds.target, Target::Values(vec![2.5, 1.5]));
        assert_eq!(ds.feature_columns, vec![0]);
    }

    #[test]
    fn binary_classes_put_the_positive_class_last() {
        let (_d, path) = write("x,y\n1,good\n2,bad\n3,good\n");
        let ds = load(&path, &spec("y"), None).unwrap();
        let Target::Classes { classes, codes } = &ds.target else {
            panic!()
        };
        assert_eq!(classes, &["good", "bad"]);
        assert_eq!(codes, &[0, 1, 0]);
        let mut s = spec("y");
        s.positive_class = Some("good".into());
        let ds = load(&path, &s, None).unwrap();
        let Target::Classes { classes, .. } = &ds.target else {
            panic!()
        };
        assert_eq!(classes, &["bad", "good"]);
        s.positive_class = Some("ugly".into());
        assert!(
            load(&path, &s, None)
                .unwrap_err()
                .to_string()
                .contains("not a class")
        );
    }

    #[test]
    fn bad_targets_are_named() {
        let (_d, path) = write("x,y\n1,good\n2,good\n");
        let err = load(&path, &spec("y"), None).unwrap_err().to_string();
        assert!(
            err.contains("column `y`: the target has a single class `good`"),
            "{err}"
        );
        let err = load(&path, &spec("z"), None).unwrap_err().to_string();
        assert!(err.contains("no column named `z`"), "{err}");
        let (_d, path) = write("x,y\n1,3.5\n2,bad\n");
        let err = load(&path, &spec("y"), Some(TargetKind::Values))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":3: column `y`: the target must be numeric"),
            "{err}"
        );
        let (_d, path) = write("x,z,y\n1,,3.5\n2,,4\n");
        let err = load(&path, &spec("y"), None).unwrap_err().to_string();
        assert!(
            err.contains("column `z`: the column has no value in any row"),
            "{err}"
        );
        let (_d, path) = write("x,y\n1,\n2,\n");
        let err = load(&path, &spec("y"), None).unwrap_err().to_string();
        assert!(err.contains("the target is missing in every row"), "{err}");
    }

    #[test]
    fn default_positive_class_follows_the_documented_order() {
        let (_d, path) = write("x,y\n1,10\n2,5\n3,5\n");
        let ds = load(&path, &spec("y"), Some(TargetKind::Classes)).unwrap();
        let Target::Classes { classes, .. } = &ds.target else {
            panic!()
        };
        assert_eq!(
            classes,
            &["5", "10"],
            "numbers sort as numbers; the second is positive"
        );
        let (_d, path) = write("x,y\nx,yes\ny,bad\n");
        let ds = load(&path, &spec("y"), None).unwrap();
        let Target::Classes { classes, .. } = &ds.target else {
            panic!()
        };
        assert_eq!(
            classes,
            &["bad", "yes"],
            "`yes` comes before `bad` in the list"
        );
        let (_d, path) = write("x,y\n1,a\n2,b\n3,c\n");
        let mut s = spec("y");
        s.positive_class = Some("a".into());
        assert!(
            load(&path, &s, None)
                .unwrap_err()
                .to_string()
                .contains("applies to two classes")
        );
    }

    #[test]
    fn numeric_zero_one_target_is_binary() {
        let (_d, path) = write("x,y\n1,0\n2,1.0\n3,1\n");
        let ds = load(&path, &spec("y"), None).unwrap();
        let Target::Classes { classes, codes } = &ds.target else {
            panic!()
        };
        assert_eq!(classes, &["0", "1"]);
        assert_eq!(codes, &[0, 1, 1]);
    }
}
