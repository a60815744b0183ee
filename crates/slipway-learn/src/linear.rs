//! Linear models fitted to convergence: ridge regression (closed form) and L2-regularised
//! logistic regression, binary or multinomial (L-BFGS).
//!
//! Objectives, with `n` training rows and the intercept never penalised:
//! - ridge: `1/(2n)·‖y − Xw − b‖² + l2/2·‖w‖²` (scikit-learn's `Ridge(alpha = n·l2)`);
//! - logistic: `mean cross-entropy + l2/2·‖W‖²` (scikit-learn's `LogisticRegression(C = 1/(n·l2))`).

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use slipway_core::Activation;

use crate::error::{LearnError, Result};
use rayon::prelude::*;

use crate::nn::{Dense, Network, activate};
use crate::optim::lbfgs;

/// Fits ridge regression. `l2 = 0` is ordinary least squares (with a tiny jitter when the
/// features are collinear, as one-hot columns are).
pub fn fit_ridge(x: ArrayView2<'_, f64>, y: ArrayView1<'_, f64>, l2: f64) -> Result<Network> {
    let n = x.nrows() as f64;
    let x_mean = x
        .mean_axis(Axis(0))
        .ok_or_else(|| LearnError::Param("no training rows".into()))?;
    let y_mean = y.mean().unwrap_or(0.0);
    let xc = &x - &x_mean;
    let yc = &y - y_mean;
    let mut a = xc.t().dot(&xc);
    let rhs = xc.t().dot(&yc);
    let d = a.nrows();
    for i in 0..d {
        a[[i, i]] += n * l2;
    }
    // Mean diagonal, floored at 1 so that constant (all-zero after centring) columns still get a
    // jitter and solve to zero weights.
    let scale = ((0..d).map(|i| a[[i, i]]).sum::<f64>() / d.max(1) as f64).max(1.0);
    let mut jitter = 0.0;
    let w = loop {
        let mut m = a.clone();
        for i in 0..d {
            m[[i, i]] += jitter;
        }
        if let Some(w) = cholesky_solve(m, &rhs) {
            break w;
        }
        jitter = if jitter == 0.0 {
            1e-10 * scale
        } else {
            jitter * 100.0
        };
        if jitter > scale {
            return Err(LearnError::Param(
                "the least-squares system is singular; try --l2 0.01".into(),
            ));
        }
    };
    let b = y_mean - x_mean.dot(&w);
    let w = w.insert_axis(Axis(1));
    Ok(Network {
        layers: vec![Dense {
            w,
            b: Array1::from_elem(1, b),
            activation: Activation::Identity,
        }],
    })
}

/// Solves `a · w = rhs` for symmetric positive-definite `a`; `None` when it is not.
fn cholesky_solve(mut a: Array2<f64>, rhs: &Array1<f64>) -> Option<Array1<f64>> {
    let d = a.nrows();
    for j in 0..d {
        let mut s = a[[j, j]];
        for k in 0..j {
            s -= a[[j, k]] * a[[j, k]];
        }
        if s <= 0.0 || !s.is_finite() {
            return None;
        }
        let l = s.sqrt();
        a[[j, j]] = l;
        for i in j + 1..d {
            let mut s = a[[i, j]];
            for k in 0..j {
                s -= a[[i, k]] * a[[j, k]];
            }
            a[[i, j]] = s / l;
        }
    }
    let mut z = rhs.clone();
    for i in 0..d {
        for k in 0..i {
            z[i] -= a[[i, k]] * z[k];
        }
        z[i] /= a[[i, i]];
    }
    for i in (0..d).rev() {
        for k in i + 1..d {
            z[i] -= a[[k, i]] * z[k];
        }
        z[i] /= a[[i, i]];
    }
    Some(z)
}

/// Result of a logistic fit.
#[derive(Debug, Clone)]
pub struct LogisticFit {
    pub network: Network,
    pub iterations: usize,
    pub converged: bool,
}

/// Fits logistic regression. `y` holds class codes; with two classes the model is one sigmoid
/// unit giving the probability of class 1, with more a softmax over all classes.
pub fn fit_logistic(
    x: ArrayView2<'_, f64>,
    y: &[u32],
    n_classes: usize,
    l2: f64,
    max_iter: usize,
) -> Result<LogisticFit> {
    let (n, d) = x.dim();
    if n == 0 {
        return Err(LearnError::Param("no training rows".into()));
    }
    let k = if n_classes == 2 { 1 } else { n_classes };
    let activation = if k == 1 {
        Activation::Sigmoid
    } else {
        Activation::Softmax
    };
    let nf = n as f64;
    let m = if k == 1 {
        // Binary: one pass over the rows per evaluation, matrix-vector work only.
        let t: Vec<f64> = y.iter().map(|c| f64::from(*c)).collect();
        let xs = x.as_standard_layout();
        let rows = xs.as_slice().expect("standard layout");
        let objective = |theta: &[f64], grad: &mut [f64]| -> f64 {
            let (w, b) = (&theta[..d], theta[d]);
            let (gw, gb) = grad.split_at_mut(d);
            // Fixed chunks, evaluated in parallel and summed in order: the same result, bit for
            // bit, whatever the number of threads.
            let partials: Vec<(f64, f64, Vec<f64>)> = rows
                .par_chunks(CHUNK_ROWS * d.max(1))
                .zip(t.par_chunks(CHUNK_ROWS))
                .map(|(chunk, ts)| logistic_chunk(chunk, ts, w, b))
                .collect();
            gw.fill(0.0);
            let (mut loss, mut g_bias) = (0.0, 0.0);
            for (l, gb_part, gw_part) in &partials {
                loss += l;
                g_bias += gb_part;
                for (g, p) in gw.iter_mut().zip(gw_part) {
                    *g += p;
                }
            }
            let mut penalty = 0.0;
            for (g, wv) in gw.iter_mut().zip(w.iter()) {
                *g = *g / nf + l2 * wv;
                penalty += wv * wv;
            }
            gb[0] = g_bias / nf;
            loss / nf + 0.5 * l2 * penalty
        };
        lbfgs(objective, vec![0.0; d + 1], max_iter, GTOL)
    } else {
        let targets = targets_matrix(y, k);
        let objective = |theta: &[f64], grad: &mut [f64]| -> f64 {
            let w = ArrayView2::from_shape((d, k), &theta[..d * k]).expect("shape matches length");
            let b = ArrayView1::from_shape(k, &theta[d * k..]).expect("shape matches length");
            let mut p = x.dot(&w);
            p += &b;
            let mut loss = 0.0;
            for (row, t) in p.rows().into_iter().zip(targets.rows()) {
                let max = row.fold(f64::NEG_INFINITY, |m, v| m.max(*v));
                let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                loss += lse - row.dot(&t);
            }
            activate(p.view_mut(), activation);
            let err = (p - &targets) / nf;
            let gw = x.t().dot(&err);
            let gb = err.sum_axis(Axis(0));
            let mut penalty = 0.0;
            for ((g, gv), wv) in grad[..d * k].iter_mut().zip(gw.iter()).zip(w.iter()) {
                *g = gv + l2 * wv;
                penalty += wv * wv;
            }
            for (g, v) in grad[d * k..].iter_mut().zip(gb.iter()) {
                *g = *v;
            }
            loss / nf + 0.5 * l2 * penalty
        };
        lbfgs(objective, vec![0.0; (d + 1) * k], max_iter, GTOL)
    };
    let w = Array2::from_shape_vec((d, k), m.x[..d * k].to_vec()).expect("shape matches length");
    let b = Array1::from_vec(m.x[d * k..].to_vec());
    Ok(LogisticFit {
        network: Network {
            layers: vec![Dense { w, b, activation }],
        },
        iterations: m.iterations,
        converged: m.converged,
    })
}

/// Rows per parallel chunk of the binary logistic objective.
const CHUNK_ROWS: usize = 16_384;

/// Loss, bias gradient and weight gradient (sums, not means) of logistic loss over some rows.
fn logistic_chunk(rows: &[f64], t: &[f64], w: &[f64], b: f64) -> (f64, f64, Vec<f64>) {
    let d = w.len();
    let mut gw = vec![0.0; d];
    let (mut loss, mut g_bias) = (0.0, 0.0);
    for (row, ti) in rows.chunks_exact(d.max(1)).zip(t) {
        let z = dot(row, w) + b;
        // log(1 + e^z) - t z and the sigmoid, stably, from one exponential.
        let e = (-z.abs()).exp();
        loss += z.max(0.0) + e.ln_1p() - ti * z;
        let p = if z >= 0.0 {
            1.0 / (1.0 + e)
        } else {
            e / (1.0 + e)
        };
        let err = p - ti;
        for (g, xv) in gw.iter_mut().zip(row) {
            *g += err * xv;
        }
        g_bias += err;
    }
    (loss, g_bias, gw)
}

/// Largest gradient component (of the mean loss) at which L-BFGS stops: scikit-learn's `tol`.
const GTOL: f64 = 1e-4;

/// Dot product with four independent accumulators, so that it vectorises.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let (a4, a_rest) = a.split_at(a.len() / 4 * 4);
    let (b4, b_rest) = b.split_at(a4.len());
    for (x, y) in a4.chunks_exact(4).zip(b4.chunks_exact(4)) {
        for i in 0..4 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f64 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Class codes as a `[n, k]` target matrix: one column of 0/1 for `k = 1`, one-hot otherwise.
pub fn targets_matrix(y: &[u32], k: usize) -> Array2<f64> {
    let mut t = Array2::zeros((y.len(), k));
    for (i, c) in y.iter().enumerate() {
        if k == 1 {
            t[[i, 0]] = f64::from(*c);
        } else {
            t[[i, *c as usize]] = 1.0;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn ridge_recovers_an_exact_line() {
        let x = array![[1.0, 0.0], [2.0, 1.0], [3.0, 0.0], [4.0, 1.0], [5.0, 3.0]];
        let y = x.column(0).mapv(|v| 2.0 * v) - x.column(1).mapv(|v| 3.0 * v) + 1.0;
        let net = fit_ridge(x.view(), y.view(), 0.0).unwrap();
        let l = &net.layers[0];
        assert!(
            (l.w[[0, 0]] - 2.0).abs() < 1e-9 && (l.w[[1, 0]] + 3.0).abs() < 1e-9,
            "{:?}",
            l.w
        );
        assert!((l.b[0] - 1.0).abs() < 1e-9);
        // Constant columns solve to zero weights and the mean as intercept.
        let constant = fit_ridge(
            array![[1.0], [1.0], [1.0]].view(),
            array![1.0, 2.0, 6.0].view(),
            0.0,
        )
        .unwrap();
        assert_eq!(constant.layers[0].w[[0, 0]], 0.0);
        assert!((constant.layers[0].b[0] - 3.0).abs() < 1e-12);
        // Collinear columns still solve.
        let xc = array![[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]];
        assert!(fit_ridge(xc.view(), array![1.0, 2.0, 3.0].view(), 0.0).is_ok());
    }

    #[test]
    fn logistic_gradient_is_zero_at_the_optimum_and_separates() {
        let x = array![[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]];
        let y = [0, 0, 1, 0, 1, 1];
        let fit = fit_logistic(x.view(), &y, 2, 0.01, 500).unwrap();
        assert!(fit.converged);
        let p = fit.network.forward(x.view());
        assert!(p[[0, 0]] < 0.5 && p[[5, 0]] > 0.5);
        let multi = fit_logistic(x.view(), &[0, 0, 1, 1, 2, 2], 3, 0.01, 500).unwrap();
        let p = multi.network.forward(x.view());
        assert_eq!(p.ncols(), 3);
        assert!(p[[0, 0]] > p[[0, 2]] && p[[5, 2]] > p[[5, 0]]);
    }

    #[test]
    fn parallel_logistic_fit_is_the_same_on_any_number_of_threads() {
        let n = 3 * CHUNK_ROWS + 17;
        let x = Array2::from_shape_fn((n, 3), |(i, j)| ((i * 7 + j * 13) % 29) as f64 / 29.0 - 0.5);
        let y: Vec<u32> = (0..n)
            .map(|i| u32::from((i * 31) % 97 < 40 + (i % 3) * 10))
            .collect();
        let fit_on = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| fit_logistic(x.view(), &y, 2, 1e-3, 200).unwrap().network)
        };
        assert_eq!(fit_on(1), fit_on(2));
        assert_eq!(fit_on(2), fit_on(3));
    }
}
