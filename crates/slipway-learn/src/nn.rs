//! Dense layers: the one representation of every native model (linear and logistic models are
//! one layer, an MLP several), and the forward pass shared by training, evaluation and serving.

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis, Zip};
use slipway_core::Activation;
use slipway_core::manifest::LayerSpec;

/// `activation(x · w + b)`, `w` of shape `[inputs, units]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    pub w: Array2<f64>,
    pub b: Array1<f64>,
    pub activation: Activation,
}

/// A stack of dense layers.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub layers: Vec<Dense>,
}

impl Network {
    /// Runs the network on a batch of rows.
    pub fn forward(&self, x: ArrayView2<'_, f64>) -> Array2<f64> {
        let mut a = x.to_owned();
        for layer in &self.layers {
            let mut z = a.dot(&layer.w);
            z += &layer.b;
            activate(z.view_mut(), layer.activation);
            a = z;
        }
        a
    }

    /// The layer shapes and activations, for the manifest.
    pub fn specs(&self) -> Vec<LayerSpec> {
        self.layers
            .iter()
            .map(|l| LayerSpec {
                inputs: l.w.nrows(),
                units: l.w.ncols(),
                activation: l.activation,
            })
            .collect()
    }

    /// Number of trainable parameters.
    pub fn n_params(&self) -> usize {
        self.layers.iter().map(|l| l.w.len() + l.b.len()).sum()
    }
}

/// Numerically stable logistic function.
#[inline]
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Applies an activation in place, row-wise for softmax.
pub fn activate(mut z: ArrayViewMut2<'_, f64>, activation: Activation) {
    match activation {
        Activation::Identity => {}
        Activation::Relu => z.mapv_inplace(|v| v.max(0.0)),
        Activation::Tanh => z.mapv_inplace(f64::tanh),
        Activation::Sigmoid => z.mapv_inplace(sigmoid),
        Activation::Softmax => {
            for mut row in z.axis_iter_mut(Axis(0)) {
                let max = row.fold(f64::NEG_INFINITY, |m, v| m.max(*v));
                row.mapv_inplace(|v| (v - max).exp());
                let sum = row.sum();
                row.mapv_inplace(|v| v / sum);
            }
        }
    }
}

/// Multiplies `delta` in place by the activation's derivative, written in terms of the
/// activation's output `a`. Softmax is only used with cross-entropy, whose delta is taken
/// directly, so it is not handled here.
pub fn backprop_activation(
    mut delta: ArrayViewMut2<'_, f64>,
    a: ArrayView2<'_, f64>,
    activation: Activation,
) {
    match activation {
        Activation::Identity | Activation::Softmax => {}
        Activation::Relu => Zip::from(&mut delta).and(&a).for_each(|d, a| {
            if *a <= 0.0 {
                *d = 0.0;
            }
        }),
        Activation::Tanh => Zip::from(&mut delta)
            .and(&a)
            .for_each(|d, a| *d *= 1.0 - a * a),
        Activation::Sigmoid => Zip::from(&mut delta)
            .and(&a)
            .for_each(|d, a| *d *= a * (1.0 - a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn softmax_rows_sum_to_one_and_survive_large_inputs() {
        let mut z = array![[1000.0, 1000.0], [0.0, -1000.0]];
        activate(z.view_mut(), Activation::Softmax);
        assert_eq!(z.row(0).to_vec(), vec![0.5, 0.5]);
        assert!((z.row(1).sum() - 1.0).abs() < 1e-15);
        assert!(sigmoid(-1000.0) >= 0.0 && sigmoid(1000.0) <= 1.0);
    }

    #[test]
    fn forward_is_affine_then_activation() {
        let net = Network {
            layers: vec![Dense {
                w: array![[2.0], [-1.0]],
                b: array![0.5],
                activation: Activation::Identity,
            }],
        };
        let y = net.forward(array![[1.0, 1.0], [0.0, 2.0]].view());
        assert_eq!(y, array![[1.5], [-1.5]]);
        assert_eq!(net.n_params(), 3);
    }
}
