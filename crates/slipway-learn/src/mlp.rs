//! Multi-layer perceptron training: mini-batch back-propagation with SGD (momentum) or Adam,
//! L2 weight decay, and early stopping on validation loss.
//!
//! Buffers are allocated once per fit; a seed fixes initialisation and shuffling, so the same
//! seed, data and parameters give bit-for-bit the same weights on one machine.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView2, Axis, Zip, s};
use serde::Serialize;
use slipway_core::Activation;

use crate::error::{LearnError, Result};
use crate::nn::{Dense, Network, activate, backprop_activation};
use crate::rng::Rng;

/// Loss functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// Binary (sigmoid output) or categorical (softmax output) cross-entropy.
    CrossEntropy,
    /// Mean squared error, `mean((p − y)²)`.
    Mse,
}

/// Optimisers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// Stochastic gradient descent with (heavy-ball) momentum.
    Sgd,
    /// Adam (Kingma & Ba), β₁ = 0.9, β₂ = 0.999, ε = 1e-8.
    Adam,
}

/// Everything that shapes an MLP fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MlpParams {
    /// Hidden layer sizes; empty for a single dense layer.
    pub hidden: Vec<usize>,
    pub activation: Activation,
    pub output_activation: Activation,
    pub loss: Loss,
    pub optimizer: Optimizer,
    pub lr: f64,
    pub momentum: f64,
    pub batch_size: usize,
    pub epochs: usize,
    /// Weight decay: adds `l2/2·‖W‖²` to the loss (biases are not decayed).
    pub l2: f64,
    /// Stop after this many epochs without improvement of the monitored loss (0: never).
    pub patience: usize,
    /// Smallest decrease of the monitored loss that counts as an improvement.
    pub min_delta: f64,
    pub seed: u64,
}

impl MlpParams {
    /// Checks ranges and combinations.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(LearnError::Param(m.to_string()));
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("--lr must be a positive number");
        }
        if self.batch_size == 0 {
            return bad("--batch-size must be at least 1");
        }
        if self.epochs == 0 {
            return bad("--epochs must be at least 1");
        }
        if !(self.l2 >= 0.0 && self.l2.is_finite()) {
            return bad("--l2 must be zero or positive");
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad("--momentum must be in [0, 1)");
        }
        if self.hidden.contains(&0) {
            return bad("--hidden layer sizes must be at least 1");
        }
        if self.activation == Activation::Softmax {
            return bad(
                "softmax is an output activation; use relu, tanh or sigmoid for hidden layers",
            );
        }
        match (self.loss, self.output_activation) {
            (Loss::CrossEntropy, Activation::Sigmoid | Activation::Softmax) => Ok(()),
            (Loss::CrossEntropy, other) => Err(LearnError::Param(format!(
                "cross-entropy needs a sigmoid or softmax output, not {other}; use --loss mse"
            ))),
            (Loss::Mse, Activation::Softmax) => {
                bad("softmax outputs train with cross-entropy; use --loss cross-entropy")
            }
            (
                Loss::Mse,
                Activation::Identity | Activation::Relu | Activation::Tanh | Activation::Sigmoid,
            ) => Ok(()),
        }
    }
}

/// One epoch's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    pub epochs: usize,
    pub train_loss: f64,
    pub val_loss: Option<f64>,
}

/// The trained network and how training went.
#[derive(Debug, Clone)]
pub struct MlpFit {
    pub network: Network,
    pub history: Vec<EpochReport>,
    /// The epoch whose weights were kept (1-based).
    pub best_epoch: usize,
    pub stopped_early: bool,
}

/// Per-layer training state.
struct Layer {
    w: Array2<f64>,
    b: Array1<f64>,
    gw: Array2<f64>,
    gb: Array1<f64>,
    mw: Array2<f64>,
    mb: Array1<f64>,
    vw: Array2<f64>,
    vb: Array1<f64>,
    activation: Activation,
}

/// Trains an MLP on `x` (`[n, d]`) against targets `y` (`[n, k]`: 0/1, one-hot or values).
pub fn train(
    x: ArrayView2<'_, f64>,
    y: ArrayView2<'_, f64>,
    validation: Option<(ArrayView2<'_, f64>, ArrayView2<'_, f64>)>,
    p: &MlpParams,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<MlpFit> {
    p.validate()?;
    let (n, d) = x.dim();
    let k = y.ncols();
    if n == 0 {
        return Err(LearnError::Param("no training rows".into()));
    }
    let mut rng = Rng::new(p.seed);
    let mut sizes = vec![d];
    sizes.extend(&p.hidden);
    sizes.push(k);
    let mut layers: Vec<Layer> = sizes
        .windows(2)
        .enumerate()
        .map(|(i, io)| {
            let activation = if i + 2 == sizes.len() {
                p.output_activation
            } else {
                p.activation
            };
            // Glorot/Xavier uniform for weights and biases, as scikit-learn initialises its MLPs
            // (the factor follows the hidden activation: 2 for sigmoid, 6 otherwise).
            let factor = if p.activation == Activation::Sigmoid {
                2.0
            } else {
                6.0
            };
            let bound = (factor / (io[0] + io[1]) as f64).sqrt();
            let w = Array2::from_shape_simple_fn((io[0], io[1]), || {
                (2.0 * rng.next_f64() - 1.0) * bound
            });
            let b = Array1::from_shape_simple_fn(io[1], || (2.0 * rng.next_f64() - 1.0) * bound);
            let zeros2 = || Array2::zeros((io[0], io[1]));
            let zeros1 = || Array1::zeros(io[1]);
            Layer {
                w,
                b,
                gw: zeros2(),
                gb: zeros1(),
                mw: zeros2(),
                mb: zeros1(),
                vw: zeros2(),
                vb: zeros1(),
                activation,
            }
        })
        .collect();

    let batch = p.batch_size.min(n);
    // Activations per layer (index 0 is the input batch) and deltas per layer.
    let mut acts: Vec<Array2<f64>> = sizes.iter().map(|s| Array2::zeros((batch, *s))).collect();
    let mut deltas: Vec<Array2<f64>> = sizes[1..]
        .iter()
        .map(|s| Array2::zeros((batch, *s)))
        .collect();
    let mut yb = Array2::zeros((batch, k));
    let mut order: Vec<usize> = (0..n).collect();
    let mut history = Vec::with_capacity(p.epochs.min(1024));
    let mut best = (f64::INFINITY, 0usize, snapshot(&layers));
    let mut wait = 0;
    let mut step = 0u64;
    let mut stopped_early = false;

    for epoch in 1..=p.epochs {
        rng.shuffle(&mut order);
        let mut loss_sum = 0.0;
        for chunk in order.chunks(batch) {
            let bs = chunk.len();
            for (i, r) in chunk.iter().enumerate() {
                acts[0].row_mut(i).assign(&x.row(*r));
                yb.row_mut(i).assign(&y.row(*r));
            }
            // Forward.
            for l in 0..layers.len() {
                let (prev, next) = acts.split_at_mut(l + 1);
                let a_prev = prev[l].slice(s![..bs, ..]);
                let mut z = next[0].slice_mut(s![..bs, ..]);
                general_mat_mul(1.0, &a_prev, &layers[l].w, 0.0, &mut z);
                z += &layers[l].b;
                activate(z, layers[l].activation);
            }
            let last = layers.len();
            let out = acts[last].slice(s![..bs, ..]);
            let yv = yb.slice(s![..bs, ..]);
            loss_sum += batch_loss(out, yv, p.loss, layers[last - 1].activation) * bs as f64;
            // Output delta: dLoss/dZ averaged over the batch.
            {
                let mut delta = deltas[last - 1].slice_mut(s![..bs, ..]);
                let scale = match p.loss {
                    Loss::CrossEntropy => 1.0,
                    Loss::Mse => 2.0 / k as f64,
                } / bs as f64;
                Zip::from(&mut delta)
                    .and(&out)
                    .and(&yv)
                    .for_each(|dl, o, t| *dl = (o - t) * scale);
                if p.loss == Loss::Mse {
                    backprop_activation(delta, out, layers[last - 1].activation);
                }
            }
            // Backward.
            for l in (0..layers.len()).rev() {
                let a_prev = acts[l].slice(s![..bs, ..]);
                let layer = &mut layers[l];
                {
                    let delta = deltas[l].slice(s![..bs, ..]);
                    general_mat_mul(1.0, &a_prev.t(), &delta, 0.0, &mut layer.gw);
                    layer.gb.assign(&delta.sum_axis(Axis(0)));
                }
                if p.l2 > 0.0 {
                    layer.gw.scaled_add(p.l2, &layer.w);
                }
                if l > 0 {
                    let (lower, upper) = deltas.split_at_mut(l);
                    let mut below = lower[l - 1].slice_mut(s![..bs, ..]);
                    general_mat_mul(
                        1.0,
                        &upper[0].slice(s![..bs, ..]),
                        &layer.w.t(),
                        0.0,
                        &mut below,
                    );
                    backprop_activation(
                        below,
                        acts[l].slice(s![..bs, ..]),
                        layers[l - 1].activation,
                    );
                }
            }
            step += 1;
            update(&mut layers, p, step);
        }
        let train_loss = loss_sum / n as f64;
        let val_loss = validation.map(|(vx, vy)| {
            let out = forward(&layers, vx);
            batch_loss(out.view(), vy, p.loss, p.output_activation)
        });
        let report = EpochReport {
            epoch,
            epochs: p.epochs,
            train_loss,
            val_loss,
        };
        on_epoch(&report);
        history.push(report);
        if !train_loss.is_finite() {
            return Err(LearnError::Param(format!(
                "training diverged at epoch {epoch} (loss is {train_loss}); lower --lr"
            )));
        }
        let monitored = val_loss.unwrap_or(train_loss);
        if monitored < best.0 - p.min_delta {
            best = (
                monitored,
                epoch,
                if validation.is_some() {
                    snapshot(&layers)
                } else {
                    Vec::new()
                },
            );
            wait = 0;
        } else {
            wait += 1;
            if p.patience > 0 && wait >= p.patience {
                stopped_early = true;
                break;
            }
        }
    }
    // With early stopping on, keep the best validation epoch; with it off (patience 0), the
    // weights of the last epoch, as asked.
    let keep_best = p.patience > 0 && validation.is_some() && !best.2.is_empty();
    let best_epoch = if keep_best { best.1 } else { history.len() };
    let network = Network {
        layers: if keep_best { best.2 } else { snapshot(&layers) },
    };
    Ok(MlpFit {
        network,
        history,
        best_epoch,
        stopped_early,
    })
}

fn snapshot(layers: &[Layer]) -> Vec<Dense> {
    layers
        .iter()
        .map(|l| Dense {
            w: l.w.clone(),
            b: l.b.clone(),
            activation: l.activation,
        })
        .collect()
}

fn forward(layers: &[Layer], x: ArrayView2<'_, f64>) -> Array2<f64> {
    Network {
        layers: snapshot(layers),
    }
    .forward(x)
}

/// Mean loss of outputs against targets.
pub fn batch_loss(
    out: ArrayView2<'_, f64>,
    y: ArrayView2<'_, f64>,
    loss: Loss,
    output: Activation,
) -> f64 {
    const EPS: f64 = 1e-15;
    let n = out.nrows().max(1) as f64;
    let total: f64 = match (loss, output) {
        (Loss::Mse, _) => {
            Zip::from(&out)
                .and(&y)
                .fold(0.0, |acc, o, t| acc + (o - t) * (o - t))
                / out.ncols().max(1) as f64
        }
        (Loss::CrossEntropy, Activation::Softmax) => Zip::from(&out)
            .and(&y)
            .fold(0.0, |acc, o, t| acc - t * o.clamp(EPS, 1.0).ln()),
        (
            Loss::CrossEntropy,
            Activation::Sigmoid | Activation::Identity | Activation::Relu | Activation::Tanh,
        ) => Zip::from(&out).and(&y).fold(0.0, |acc, o, t| {
            let o = o.clamp(EPS, 1.0 - EPS);
            acc - (t * o.ln() + (1.0 - t) * (1.0 - o).ln())
        }),
    };
    total / n
}

fn update(layers: &mut [Layer], p: &MlpParams, step: u64) {
    match p.optimizer {
        Optimizer::Sgd => {
            for l in layers {
                // v = μv − lr·g; w += v
                Zip::from(&mut l.mw)
                    .and(&l.gw)
                    .for_each(|v, g| *v = p.momentum * *v - p.lr * g);
                Zip::from(&mut l.mb)
                    .and(&l.gb)
                    .for_each(|v, g| *v = p.momentum * *v - p.lr * g);
                l.w += &l.mw;
                l.b += &l.mb;
            }
        }
        Optimizer::Adam => {
            const B1: f64 = 0.9;
            const B2: f64 = 0.999;
            const EPS: f64 = 1e-8;
            let t = i32::try_from(step).unwrap_or(i32::MAX);
            let lr_t = p.lr * (1.0 - B2.powi(t)).sqrt() / (1.0 - B1.powi(t));
            for l in layers {
                Zip::from(&mut l.w)
                    .and(&mut l.mw)
                    .and(&mut l.vw)
                    .and(&l.gw)
                    .for_each(|w, m, v, g| {
                        *m = B1 * *m + (1.0 - B1) * g;
                        *v = B2 * *v + (1.0 - B2) * g * g;
                        *w -= lr_t * *m / (v.sqrt() + EPS);
                    });
                Zip::from(&mut l.b)
                    .and(&mut l.mb)
                    .and(&mut l.vb)
                    .and(&l.gb)
                    .for_each(|w, m, v, g| {
                        *m = B1 * *m + (1.0 - B1) * g;
                        *v = B2 * *v + (1.0 - B2) * g * g;
                        *w -= lr_t * *m / (v.sqrt() + EPS);
                    });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn params() -> MlpParams {
        MlpParams {
            hidden: vec![8],
            activation: Activation::Tanh,
            output_activation: Activation::Sigmoid,
            loss: Loss::CrossEntropy,
            optimizer: Optimizer::Adam,
            lr: 0.05,
            momentum: 0.9,
            batch_size: 4,
            epochs: 300,
            l2: 0.0,
            patience: 0,
            min_delta: 1e-4,
            seed: 3,
        }
    }

    #[test]
    fn learns_xor_and_is_reproducible() {
        let x = array![[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
        let y = array![[0.0], [1.0], [1.0], [0.0]];
        let fit = train(x.view(), y.view(), None, &params(), &mut |_| {}).unwrap();
        let p = fit.network.forward(x.view());
        for (pi, yi) in p.iter().zip(y.iter()) {
            assert!((pi - yi).abs() < 0.2, "{p:?}");
        }
        let again = train(x.view(), y.view(), None, &params(), &mut |_| {}).unwrap();
        assert_eq!(fit.network, again.network);
        let mut other = params();
        other.seed = 4;
        let third = train(x.view(), y.view(), None, &other, &mut |_| {}).unwrap();
        assert_ne!(fit.network, third.network);
    }

    /// Compares back-propagated gradients with finite differences of the loss.
    #[test]
    fn gradients_match_finite_differences() {
        for (act, out, loss, y) in [
            (
                Activation::Relu,
                Activation::Sigmoid,
                Loss::CrossEntropy,
                array![[1.0], [0.0], [1.0]],
            ),
            (
                Activation::Tanh,
                Activation::Identity,
                Loss::Mse,
                array![[0.3], [-1.0], [2.0]],
            ),
            (
                Activation::Sigmoid,
                Activation::Softmax,
                Loss::CrossEntropy,
                array![[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]],
            ),
        ] {
            let x = array![[0.5, -1.0, 2.0], [1.5, 0.2, -0.3], [-0.7, 0.9, 0.1]];
            let mut p = params();
            p.activation = act;
            p.output_activation = out;
            p.loss = loss;
            p.hidden = vec![4];
            p.epochs = 1;
            p.batch_size = 3;
            p.optimizer = Optimizer::Sgd;
            p.momentum = 0.0;
            p.l2 = 0.1;
            // One SGD step with a tiny learning rate: (w0 - w1)/lr is the gradient at w0.
            p.lr = 1e-9;
            let mut p0 = p.clone();
            p0.lr = f64::MIN_POSITIVE; // effectively no step: the initial weights
            let w0 = train(x.view(), y.view(), None, &p0, &mut |_| {})
                .unwrap()
                .network;
            let w1 = train(x.view(), y.view(), None, &p, &mut |_| {})
                .unwrap()
                .network;
            let objective = |net: &Network| {
                let o = net.forward(x.view());
                let penalty: f64 = net
                    .layers
                    .iter()
                    .map(|l| l.w.iter().map(|v| v * v).sum::<f64>())
                    .sum();
                batch_loss(o.view(), y.view(), loss, out) + 0.5 * p.l2 * penalty
            };
            let h = 1e-6;
            for (li, layer) in w0.layers.iter().enumerate() {
                for idx in [[0, 0], [1, 0], [layer.w.nrows() - 1, layer.w.ncols() - 1]] {
                    let analytic = (layer.w[idx] - w1.layers[li].w[idx]) / p.lr;
                    let mut plus = w0.clone();
                    plus.layers[li].w[idx] += h;
                    let mut minus = w0.clone();
                    minus.layers[li].w[idx] -= h;
                    let numeric = (objective(&plus) - objective(&minus)) / (2.0 * h);
                    assert!(
                        (analytic - numeric).abs() < 1e-4 * (1.0 + numeric.abs()),
                        "{act:?}/{out:?}: layer {li} {idx:?}: {analytic} vs {numeric}"
                    );
                }
            }
        }
    }

    /// A linear model trained on `y = 2x`, validated on `y = 2x + 5`, which it cannot fit: the
    /// validation loss soon stops improving. Returns the fit and its validation loss.
    fn fit_with_unfittable_validation(patience: usize, epochs: usize) -> (MlpFit, f64) {
        let x = Array2::from_shape_fn((40, 1), |(i, _)| i as f64 / 40.0);
        let y = x.mapv(|v| 2.0 * v);
        let vx = x.slice(s![..10, ..]).to_owned();
        let vy = vx.mapv(|v| 2.0 * v + 5.0);
        let mut p = params();
        p.hidden = vec![];
        p.output_activation = Activation::Identity;
        p.loss = Loss::Mse;
        p.patience = patience;
        p.epochs = epochs;
        let validation = Some((vx.view(), vy.view()));
        let fit = train(x.view(), y.view(), validation, &p, &mut |_| {}).unwrap();
        let out = fit.network.forward(vx.view());
        let loss = batch_loss(out.view(), vy.view(), Loss::Mse, Activation::Identity);
        (fit, loss)
    }

    #[test]
    fn early_stopping_restores_the_best_epoch() {
        let (fit, kept_loss) = fit_with_unfittable_validation(3, 500);
        assert!(fit.stopped_early);
        assert_eq!(fit.history.len(), fit.best_epoch + 3);
        let best_val = fit.history[fit.best_epoch - 1].val_loss.unwrap();
        assert!((kept_loss - best_val).abs() < 1e-12);
    }

    #[test]
    fn without_early_stopping_the_last_epoch_is_kept() {
        let (fit, kept_loss) = fit_with_unfittable_validation(0, 30);
        assert_eq!(fit.history.len(), 30);
        assert_eq!(fit.best_epoch, 30);
        let last = fit.history.last().unwrap().val_loss.unwrap();
        assert!((kept_loss - last).abs() < 1e-12);
    }

    #[test]
    fn bad_combinations_are_refused() {
        let mut p = params();
        p.output_activation = Activation::Identity;
        assert!(
            p.validate()
                .unwrap_err()
                .to_string()
                .contains("cross-entropy needs")
        );
        p = params();
        p.lr = 0.0;
        assert!(p.validate().is_err());
    }
}
