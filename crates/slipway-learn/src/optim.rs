//! L-BFGS with a backtracking Armijo line search, for the convex fits (logistic regression).

/// Outcome of a minimisation.
#[derive(Debug, Clone)]
pub struct Minimum {
    pub x: Vec<f64>,
    pub value: f64,
    pub iterations: usize,
    pub converged: bool,
}

/// Minimises `f`, which returns the objective at `x` and writes its gradient into the second
/// argument. Stops when the largest gradient component is below `gtol`, when the objective no
/// longer moves, or after `max_iter` iterations.
pub fn lbfgs(
    mut f: impl FnMut(&[f64], &mut [f64]) -> f64,
    x0: Vec<f64>,
    max_iter: usize,
    gtol: f64,
) -> Minimum {
    const MEMORY: usize = 10;
    let n = x0.len();
    let mut x = x0;
    let mut g = vec![0.0; n];
    let mut value = f(&x, &mut g);
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut rho: Vec<f64> = Vec::new();
    let mut x_new = vec![0.0; n];
    let mut g_new = vec![0.0; n];
    let norm_inf = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    for iter in 0..max_iter {
        if norm_inf(&g) < gtol {
            return Minimum {
                x,
                value,
                iterations: iter,
                converged: true,
            };
        }
        // Two-loop recursion: d = -H g.
        let mut q = g.clone();
        let mut alpha = vec![0.0; s_hist.len()];
        for i in (0..s_hist.len()).rev() {
            alpha[i] = rho[i] * dot(&s_hist[i], &q);
            for (qj, yj) in q.iter_mut().zip(&y_hist[i]) {
                *qj -= alpha[i] * yj;
            }
        }
        let gamma = match (s_hist.last(), y_hist.last()) {
            (Some(s), Some(y)) => dot(s, y) / dot(y, y),
            _ => 1.0 / norm_inf(&g).max(1.0),
        };
        for qj in &mut q {
            *qj *= gamma;
        }
        for i in 0..s_hist.len() {
            let beta = rho[i] * dot(&y_hist[i], &q);
            for (qj, sj) in q.iter_mut().zip(&s_hist[i]) {
                *qj += sj * (alpha[i] - beta);
            }
        }
        let mut d: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&g, &d);
        if slope >= 0.0 {
            // Not a descent direction (numerical trouble): restart from steepest descent.
            s_hist.clear();
            y_hist.clear();
            rho.clear();
            d = g.iter().map(|v| -v / norm_inf(&g).max(1.0)).collect();
            slope = dot(&g, &d);
        }
        let mut step = 1.0;
        let mut accepted = false;
        for _ in 0..50 {
            for j in 0..n {
                x_new[j] = x[j] + step * d[j];
            }
            let v = f(&x_new, &mut g_new);
            if v.is_finite() && v <= value + 1e-4 * step * slope {
                let s: Vec<f64> = (0..n).map(|j| x_new[j] - x[j]).collect();
                let y: Vec<f64> = (0..n).map(|j| g_new[j] - g[j]).collect();
                let sy = dot(&s, &y);
                if sy > 1e-12 {
                    if s_hist.len() == MEMORY {
                        s_hist.remove(0);
                        y_hist.remove(0);
                        rho.remove(0);
                    }
                    s_hist.push(s);
                    y_hist.push(y);
                    rho.push(1.0 / sy);
                }
                // As scipy's L-BFGS-B (factr = 1e7): stop when the relative decrease is within 1e7 ulps.
                let moved = (value - v) <= 1e7 * f64::EPSILON * value.abs().max(v.abs()).max(1.0);
                std::mem::swap(&mut x, &mut x_new);
                std::mem::swap(&mut g, &mut g_new);
                value = v;
                accepted = true;
                if moved {
                    return Minimum {
                        x,
                        value,
                        iterations: iter + 1,
                        converged: true,
                    };
                }
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            return Minimum {
                x,
                value,
                iterations: iter + 1,
                converged: norm_inf(&g) < gtol.sqrt(),
            };
        }
    }
    let converged = norm_inf(&g) < gtol;
    Minimum {
        x,
        value,
        iterations: max_iter,
        converged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimises_the_rosenbrock_function() {
        let m = lbfgs(
            |x, g| {
                let (a, b) = (x[0], x[1]);
                g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
                g[1] = 200.0 * (b - a * a);
                (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
            },
            vec![-1.2, 1.0],
            1000,
            1e-8,
        );
        assert!(m.converged);
        assert!(
            (m.x[0] - 1.0).abs() < 1e-5 && (m.x[1] - 1.0).abs() < 1e-5,
            "{:?}",
            m.x
        );
    }
}
