//! Merging requests into one batch and splitting its answers back: requests merge when every
//! input's first dimension is the signature's variable batch dimension and the rest of their
//! shapes agree.

use slipway_core::{Signature, Tensor, TensorData};

use super::Job;

/// Rows and merge key of a request: mergeable when every input's first dimension is the
/// signature's variable batch dimension and all inputs agree on the row count.
pub(crate) fn batch_key(
    signature: &Signature,
    inputs: &[Tensor],
) -> (usize, Option<Vec<Vec<usize>>>) {
    let rows = inputs.first().and_then(|t| t.shape.first().copied());
    let Some(rows) = rows else {
        return (1, None);
    };
    let mut key = Vec::with_capacity(signature.inputs.len());
    for (i, spec) in signature.inputs.iter().enumerate() {
        let found = inputs.get(i).filter(|t| t.name == spec.name);
        let Some(t) = found.or_else(|| inputs.iter().find(|t| t.name == spec.name)) else {
            return (rows, None);
        };
        if spec.shape.first() != Some(&-1) || t.shape.first() != Some(&rows) {
            return (rows, None);
        }
        key.push(t.shape[1..].to_vec());
    }
    (rows, Some(key))
}

/// The batch's inputs, each the requests' rows one after another.
pub(super) fn merge(batch: &[Job]) -> Vec<Tensor> {
    batch[0]
        .inputs
        .iter()
        .enumerate()
        .map(|(i, first)| {
            let parts: Vec<&Tensor> = batch
                .iter()
                .filter_map(|j| {
                    let same = j.inputs.get(i).filter(|t| t.name == first.name);
                    same.or_else(|| j.inputs.iter().find(|t| t.name == first.name))
                })
                .collect();
            let rows: usize = parts.iter().map(|t| t.shape[0]).sum();
            let mut shape = first.shape.clone();
            shape[0] = rows;
            Tensor {
                name: first.name.clone(),
                shape,
                data: concat(&parts),
            }
        })
        .collect()
}

fn concat(parts: &[&Tensor]) -> TensorData {
    let total: usize = parts.iter().map(|t| t.data.len()).sum();
    macro_rules! join {
        ($variant:ident) => {{
            let mut out = Vec::with_capacity(total);
            for p in parts {
                if let TensorData::$variant(v) = &p.data {
                    out.extend_from_slice(v);
                }
            }
            TensorData::$variant(out)
        }};
    }
    match &parts[0].data {
        TensorData::Bool(_) => join!(Bool),
        TensorData::Int64(_) => join!(Int64),
        TensorData::Fp32(_) => join!(Fp32),
        TensorData::Fp64(_) => join!(Fp64),
        TensorData::Bytes(_) => join!(Bytes),
    }
}

/// Splits a batch's outputs back into each request's rows, or `None` when an output is not
/// one row per input row.
pub(super) fn split(outputs: Vec<Tensor>, sizes: &[usize]) -> Option<Vec<Vec<Tensor>>> {
    let total: usize = sizes.iter().sum();
    let mut per_job: Vec<Vec<Tensor>> = sizes.iter().map(|_| Vec::new()).collect();
    for t in outputs {
        if t.shape.first() != Some(&total) || total == 0 {
            return None;
        }
        let per_row = t.data.len() / total;
        if per_row * total != t.data.len() {
            return None;
        }
        let mut start = 0;
        for (k, &n) in sizes.iter().enumerate() {
            let range = start * per_row..(start + n) * per_row;
            start += n;
            let data = match &t.data {
                TensorData::Bool(v) => TensorData::Bool(v[range].to_vec()),
                TensorData::Int64(v) => TensorData::Int64(v[range].to_vec()),
                TensorData::Fp32(v) => TensorData::Fp32(v[range].to_vec()),
                TensorData::Fp64(v) => TensorData::Fp64(v[range].to_vec()),
                TensorData::Bytes(v) => TensorData::Bytes(v[range].to_vec()),
            };
            let mut shape = t.shape.clone();
            shape[0] = n;
            per_job[k].push(Tensor {
                name: t.name.clone(),
                shape,
                data,
            });
        }
    }
    Some(per_job)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::batch::Job;

    #[test]
    fn split_undoes_merge() {
        let t = |name: &str, rows: usize, base: f64| Tensor {
            name: name.into(),
            shape: vec![rows, 2],
            data: TensorData::Fp64((0..rows * 2).map(|i| base + i as f64).collect()),
        };
        let (tx, _rx) = tokio::sync::oneshot::channel();
        let (tx2, _rx2) = tokio::sync::oneshot::channel();
        let jobs = vec![
            Job {
                inputs: vec![t("x", 2, 0.0)],
                rows: 2,
                key: Some(vec![vec![2]]),
                enqueued: Instant::now(),
                reply: tx,
                _held: crate::batch::Held::nothing(),
            },
            Job {
                inputs: vec![t("x", 3, 100.0)],
                rows: 3,
                key: Some(vec![vec![2]]),
                enqueued: Instant::now(),
                reply: tx2,
                _held: crate::batch::Held::nothing(),
            },
        ];
        let merged = merge(&jobs);
        assert_eq!(merged[0].shape, vec![5, 2]);
        let parts = split(merged, &[2, 3]).unwrap();
        assert_eq!(parts[0][0], t("x", 2, 0.0));
        assert_eq!(parts[1][0], t("x", 3, 100.0));
        // An output that is not one row per input row cannot be split.
        let odd = vec![Tensor::vector("s", TensorData::Fp64(vec![1.0]))];
        assert!(split(odd, &[2, 3]).is_none());
    }
}
