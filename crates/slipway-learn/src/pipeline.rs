//! The feature pipeline: fitted on the training split, saved in the package, run in production.
//!
//! Numeric columns: median imputation, then standardisation. Categorical columns: most-frequent
//! imputation, then one-hot over the categories seen in training; a category never seen in
//! training encodes as all zeros and is counted, never an error.

use std::collections::HashMap;

use ndarray::{Array2, ArrayViewMut1};
use slipway_core::manifest::Profile;
use slipway_core::{FeatureKind, FeatureSpec};

use crate::data::{self, Column, Frame, MISSING_CODE};
use crate::error::{LearnError, Result};

/// Fits the pipeline on `rows` of the given columns. A column with no value in those rows
/// cannot be fitted (nothing to impute from) and is an error that names it.
pub fn fit(frame: &Frame, columns: &[usize], rows: &[usize]) -> Result<Vec<FeatureSpec>> {
    columns
        .iter()
        .map(|j| {
            let column = &frame.columns[*j];
            let name = frame.names[*j].clone();
            if rows.iter().all(|r| column.is_missing(*r)) {
                return Err(LearnError::Data {
                    path: frame.path.clone(),
                    line: None,
                    column: Some(name.clone()),
                    message: format!(
                        "the column has no value in the {} training rows; leave it out with --ignore {name}",
                        rows.len()
                    ),
                });
            }
            Ok(match column {
                Column::Numeric(values) => fit_numeric(name, values, rows),
                Column::Categorical { codes, levels } => fit_categorical(name, codes, levels, rows),
            })
        })
        .collect()
}

fn fit_numeric(name: String, values: &[f64], rows: &[usize]) -> FeatureSpec {
    let mut present: Vec<f64> = rows
        .iter()
        .map(|r| values[*r])
        .filter(|v| !v.is_nan())
        .collect();
    present.sort_unstable_by(f64::total_cmp);
    let median = quantile_sorted(&present, 0.5);
    let n = rows.len() as f64;
    let imputed = |r: &usize| {
        if values[*r].is_nan() {
            median
        } else {
            values[*r]
        }
    };
    let mean = rows.iter().map(imputed).sum::<f64>() / n;
    let var = rows
        .iter()
        .map(|r| (imputed(r) - mean).powi(2))
        .sum::<f64>()
        / n;
    let std = if var.sqrt() > 1e-12 * mean.abs().max(1.0) {
        var.sqrt()
    } else {
        1.0
    };
    let edges: Vec<f64> = (0..=10)
        .map(|i| quantile_sorted(&present, f64::from(i) / 10.0))
        .collect();
    let mut counts = [0usize; 10];
    for v in &present {
        let bin = edges[1..10].partition_point(|e| e <= v);
        counts[bin] += 1;
    }
    let shares = counts
        .iter()
        .map(|c| *c as f64 / present.len().max(1) as f64)
        .collect();
    let missing = (rows.len() - present.len()) as f64 / n;
    FeatureSpec {
        name,
        kind: FeatureKind::Numeric { median, mean, std },
        profile: Profile {
            missing,
            edges,
            shares,
        },
    }
}

/// Linear-interpolated quantile of sorted values (numpy's default); 0 for none.
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn fit_categorical(name: String, codes: &[u32], levels: &[String], rows: &[usize]) -> FeatureSpec {
    let mut counts = vec![0usize; levels.len()];
    let mut missing = 0usize;
    for r in rows {
        match codes[*r] {
            MISSING_CODE => missing += 1,
            c => counts[c as usize] += 1,
        }
    }
    let mut categories: Vec<(String, usize)> = levels
        .iter()
        .zip(&counts)
        .filter(|(_, c)| **c > 0)
        .map(|(l, c)| (l.clone(), *c))
        .collect();
    categories.sort_by(|a, b| a.0.cmp(&b.0));
    // Most frequent; ties go to the smallest category, as scikit-learn's SimpleImputer does.
    let most_frequent = categories
        .iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
        .map(|(l, _)| l.clone())
        .unwrap_or_default();
    let present = (rows.len() - missing).max(1) as f64;
    let shares = categories
        .iter()
        .map(|(_, c)| *c as f64 / present)
        .collect();
    FeatureSpec {
        name,
        kind: FeatureKind::Categorical {
            categories: categories.into_iter().map(|(l, _)| l).collect(),
            most_frequent,
        },
        profile: Profile {
            missing: missing as f64 / rows.len().max(1) as f64,
            edges: Vec::new(),
            shares,
        },
    }
}

/// A categorical column with at least this many categories, more than half as many as the
/// training rows, is near-unique (an identifier or a free-text field).
pub const NEAR_UNIQUE_CATEGORIES: usize = 20;
/// A category longer than this is worth a warning: every category is stored in the package.
pub const LONG_CATEGORY_BYTES: usize = 1024;
/// All of one column's categories together past this size are worth a warning.
pub const LARGE_CATEGORIES_BYTES: usize = 1 << 20;

/// What about the fitted features a user should hear: near-unique categorical columns (one
/// feature per value, nothing that generalises) and categories that bloat the package.
/// `train_rows` is the size of the training split.
pub fn feature_warnings(features: &[FeatureSpec], train_rows: u64) -> Vec<String> {
    let mut out = Vec::new();
    for f in features {
        let FeatureKind::Categorical { categories, .. } = &f.kind else {
            continue;
        };
        let n = categories.len();
        if n >= NEAR_UNIQUE_CATEGORIES && n as u64 * 2 > train_rows {
            out.push(format!(
                "column `{}` has {n} distinct values in {train_rows} training rows: it looks like an identifier or free text, and one-hot encodes into {n} features that do not generalise; leave it out with --ignore {}, or give it fewer values",
                f.name, f.name
            ));
        }
        let longest = categories.iter().map(String::len).max().unwrap_or(0);
        let total: usize = categories.iter().map(String::len).sum();
        if longest > LONG_CATEGORY_BYTES || total > LARGE_CATEGORIES_BYTES {
            out.push(format!(
                "column `{}` has categories of {} in all (the longest {}), every one stored in the package; is it text rather than a category? --ignore {} leaves it out",
                f.name,
                bytes(total),
                bytes(longest),
                f.name
            ));
        }
    }
    out
}

fn bytes(n: usize) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

/// Total encoded width of the features.
pub fn width(features: &[FeatureSpec]) -> usize {
    features.iter().map(|f| f.kind.width()).sum()
}

/// Names of the encoded inputs (`age`, `housing=own`, …), in matrix column order.
pub fn encoded_names(features: &[FeatureSpec]) -> Vec<String> {
    let mut out = Vec::new();
    for f in features {
        match &f.kind {
            FeatureKind::Numeric { .. } => out.push(f.name.clone()),
            FeatureKind::Categorical { categories, .. } => {
                out.extend(categories.iter().map(|c| format!("{}={c}", f.name)));
            }
        }
    }
    out
}

/// Encodes `rows` of a frame into the model's input matrix. Returns the matrix and the number of
/// cells whose category was not seen in training.
pub fn transform(
    features: &[FeatureSpec],
    frame: &Frame,
    rows: &[usize],
) -> Result<(Array2<f64>, u64)> {
    let mut x = Array2::zeros((rows.len(), width(features)));
    let mut offset = 0;
    let mut unseen = 0u64;
    for f in features {
        let j = frame.require(&f.name)?;
        match (&f.kind, &frame.columns[j]) {
            (FeatureKind::Numeric { median, mean, std }, Column::Numeric(values)) => {
                for (i, r) in rows.iter().enumerate() {
                    let v = if values[*r].is_nan() {
                        *median
                    } else {
                        values[*r]
                    };
                    x[[i, offset]] = (v - mean) / std;
                }
            }
            (
                FeatureKind::Categorical {
                    categories,
                    most_frequent,
                },
                Column::Categorical { codes, levels },
            ) => {
                let position: HashMap<&str, usize> = categories
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.as_str(), i))
                    .collect();
                let level_to_cat: Vec<Option<usize>> = levels
                    .iter()
                    .map(|l| position.get(l.as_str()).copied())
                    .collect();
                let fill = position.get(most_frequent.as_str()).copied();
                for (i, r) in rows.iter().enumerate() {
                    let cat = match codes[*r] {
                        MISSING_CODE => fill,
                        c => {
                            let cat = level_to_cat[c as usize];
                            unseen += u64::from(cat.is_none());
                            cat
                        }
                    };
                    if let Some(c) = cat {
                        x[[i, offset + c]] = 1.0;
                    }
                }
            }
            (FeatureKind::Numeric { .. }, Column::Categorical { .. })
            | (FeatureKind::Categorical { .. }, Column::Numeric(_)) => {
                return Err(LearnError::Data {
                    path: frame.path.clone(),
                    line: None,
                    column: Some(f.name.clone()),
                    message: "the column's type differs from the one the model was trained on"
                        .into(),
                });
            }
        }
        offset += f.kind.width();
    }
    Ok((x, unseen))
}

/// The pipeline compiled for encoding raw CSV fields one row at a time (batch scoring, serving).
#[derive(Debug, Clone)]
pub struct RowEncoder {
    steps: Vec<Step>,
    width: usize,
}

#[derive(Debug, Clone)]
enum Step {
    Numeric {
        median: f64,
        mean: f64,
        inv_std: f64,
        offset: usize,
    },
    Categorical {
        lookup: HashMap<Box<[u8]>, usize>,
        fill: Option<usize>,
        offset: usize,
    },
}

/// Why a raw field could not be encoded.
#[derive(Debug, Clone, PartialEq)]
pub enum EncodeError {
    /// Feature `index` held a value that is not a number.
    NotNumeric { index: usize },
}

impl RowEncoder {
    /// Compiles fitted features.
    pub fn new(features: &[FeatureSpec]) -> Self {
        let mut offset = 0;
        let steps = features
            .iter()
            .map(|f| {
                let step = match &f.kind {
                    FeatureKind::Numeric { median, mean, std } => Step::Numeric {
                        median: *median,
                        mean: *mean,
                        inv_std: 1.0 / std,
                        offset,
                    },
                    FeatureKind::Categorical {
                        categories,
                        most_frequent,
                    } => {
                        let lookup: HashMap<Box<[u8]>, usize> = categories
                            .iter()
                            .enumerate()
                            .map(|(i, c)| (c.as_bytes().into(), i))
                            .collect();
                        let fill = lookup.get(most_frequent.as_bytes()).copied();
                        Step::Categorical {
                            lookup,
                            fill,
                            offset,
                        }
                    }
                };
                offset += f.kind.width();
                step
            })
            .collect();
        RowEncoder {
            steps,
            width: offset,
        }
    }

    /// Encoded width.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Encodes one row's raw CSV fields (one per feature, in feature order) into `out`, which
    /// must be zeroed and `width()` long. Returns the number of unseen categories.
    pub fn encode<'a>(
        &self,
        fields: impl Iterator<Item = &'a [u8]>,
        out: ArrayViewMut1<'_, f64>,
    ) -> std::result::Result<u32, EncodeError> {
        let fields = fields.map(|f| {
            if data::is_missing(f) {
                Field::Missing
            } else {
                Field::Text(f)
            }
        });
        self.encode_fields(fields, out)
    }

    /// Encodes one row of typed values (one per feature, in feature order) into `out`, which
    /// must be zeroed and `width()` long. A number for a categorical feature is looked up by its
    /// canonical text (`1.0` → `1`); text for a numeric feature is parsed. Returns the number of
    /// unseen categories.
    pub fn encode_fields<'a>(
        &self,
        fields: impl Iterator<Item = Field<'a>>,
        mut out: ArrayViewMut1<'_, f64>,
    ) -> std::result::Result<u32, EncodeError> {
        let mut unseen = 0;
        for (index, (step, field)) in self.steps.iter().zip(fields).enumerate() {
            match step {
                Step::Numeric {
                    median,
                    mean,
                    inv_std,
                    offset,
                } => {
                    let v = match field {
                        Field::Missing => *median,
                        Field::Number(v) if v.is_nan() => *median,
                        Field::Number(v) if v.is_finite() => v,
                        Field::Number(_) => return Err(EncodeError::NotNumeric { index }),
                        Field::Text(t) => {
                            data::parse_number(t).ok_or(EncodeError::NotNumeric { index })?
                        }
                    };
                    out[*offset] = (v - mean) * inv_std;
                }
                Step::Categorical {
                    lookup,
                    fill,
                    offset,
                } => {
                    let found = |text: &[u8]| lookup.get(text.trim_ascii()).copied();
                    let cat = match field {
                        Field::Missing => *fill,
                        Field::Number(v) if v.is_nan() => *fill,
                        Field::Number(v) => {
                            let cat = found(data::canonical_label(&v.to_string()).as_bytes());
                            unseen += u32::from(cat.is_none());
                            cat
                        }
                        Field::Text(t) => {
                            let cat = found(t);
                            unseen += u32::from(cat.is_none());
                            cat
                        }
                    };
                    if let Some(c) = cat {
                        out[*offset + c] = 1.0;
                    }
                }
            }
        }
        Ok(unseen)
    }
}

/// One raw value for [`RowEncoder::encode_fields`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field<'a> {
    Missing,
    Number(f64),
    Text(&'a [u8]),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ReadOptions, read_csv};

    #[test]
    fn fit_on_train_rows_only_and_encode_unseen_as_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.csv");
        std::fs::write(&path, "n,c\n1,a\n3,b\nNA,a\n,\n100,z\n").unwrap();
        let frame = read_csv(&path, &ReadOptions::default()).unwrap();
        let train = [0, 1, 2, 3];
        let features = fit(&frame, &[0, 1], &train).unwrap();
        let FeatureKind::Numeric { median, mean, std } = features[0].kind else {
            panic!()
        };
        assert_eq!(median, 2.0);
        assert_eq!(mean, 2.0);
        assert!((std - (0.5f64).sqrt()).abs() < 1e-12);
        let FeatureKind::Categorical {
            categories,
            most_frequent,
        } = &features[1].kind
        else {
            panic!()
        };
        assert_eq!(categories, &["a", "b"]);
        assert_eq!(most_frequent, "a");
        assert_eq!(encoded_names(&features), ["n", "c=a", "c=b"]);

        let (x, unseen) = transform(&features, &frame, &[3, 4]).unwrap();
        assert_eq!(unseen, 1);
        assert_eq!(x.row(0).to_vec(), vec![0.0, 1.0, 0.0]);
        assert_eq!(x[[1, 1]] + x[[1, 2]], 0.0);

        let enc = RowEncoder::new(&features);
        let mut row = ndarray::Array1::zeros(enc.width());
        let fields: [&[u8]; 2] = [b"3", b"b"];
        assert_eq!(enc.encode(fields.into_iter(), row.view_mut()), Ok(0));
        let (xt, _) = transform(&features, &frame, &[1]).unwrap();
        assert_eq!(row.to_vec(), xt.row(0).to_vec());
        let mut row = ndarray::Array1::zeros(enc.width());
        let fields: [&[u8]; 2] = [b"x", b"b"];
        assert_eq!(
            enc.encode(fields.into_iter(), row.view_mut()),
            Err(EncodeError::NotNumeric { index: 0 })
        );
    }

    #[test]
    fn a_column_empty_in_the_training_rows_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.csv");
        std::fs::write(&path, "a,z\n1,\n2,\n3,7\n").unwrap();
        let frame = read_csv(&path, &ReadOptions::default()).unwrap();
        let err = fit(&frame, &[0, 1], &[0, 1]).unwrap_err().to_string();
        assert!(
            err.contains("column `z`: the column has no value in the 2 training rows"),
            "{err}"
        );
        assert!(fit(&frame, &[0, 1], &[0, 2]).is_ok());
    }

    #[test]
    fn profiles_sum_to_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.csv");
        let mut text = String::from("n,c\n");
        for i in 0..100 {
            text.push_str(&format!("{i},{}\n", ["x", "y", "z"][i % 3]));
        }
        std::fs::write(&path, text).unwrap();
        let frame = read_csv(&path, &ReadOptions::default()).unwrap();
        let rows: Vec<usize> = (0..100).collect();
        for f in fit(&frame, &[0, 1], &rows).unwrap() {
            let total: f64 = f.profile.shares.iter().sum();
            assert!((total - 1.0).abs() < 1e-12, "{}: {total}", f.name);
        }
    }
}
