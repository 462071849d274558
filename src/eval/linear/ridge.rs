//! One-vs-rest ridge regression on +-1 targets with an unpenalised intercept,
//! in closed form: primal (`d x d` system, from sufficient statistics that CV
//! folds can add and subtract) or dual (`m x m` kernel system, from a Gram
//! matrix that the protocol may share across splits).

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use super::linalg::{cholesky, cholesky_solve};
use super::{check_fit_input, standardized, LinearModel};
use crate::eval::gram::{gram_sym, Kernel};
use crate::eval::EvalError;

/// Rows per parallel chunk of the dual weight accumulation `W = Xc^T alpha`.
const DUAL_ROW_CHUNK: usize = 256;

/// Which closed form the ridge uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RidgeForm {
    /// d <= n: (Xc^T Xc + lambda I) W = Xc^T Yc
    Primal,
    /// d > n: (Kc + lambda I) alpha = Yc, W = Xc^T alpha
    Dual,
}

impl RidgeForm {
    /// The cheaper form for `d` columns and `n` training rows.
    pub(crate) fn for_shape(d: usize, n: usize) -> RidgeForm {
        if d > n {
            RidgeForm::Dual
        } else {
            RidgeForm::Primal
        }
    }
}

/// linfa-style ridge classifier (one-vs-rest, +-1 targets, unpenalised intercept).
#[derive(Clone, Debug, PartialEq)]
pub struct RidgeClassifier {
    pub lambda: f64,
    pub standardize: bool,
}

impl RidgeClassifier {
    pub fn fit(
        &self,
        x: ArrayView2<f32>,
        y: &[u8],
        n_classes: usize,
    ) -> Result<LinearModel, EvalError> {
        check_fit_input(x, y, n_classes, &[self.lambda])?;
        let (z, mean, scale) = standardized(x, self.standardize);
        let z = z.view();
        let rows: Vec<usize> = (0..x.nrows()).collect();
        let (w, b) = match RidgeForm::for_shape(x.ncols(), x.nrows()) {
            RidgeForm::Primal => PrimalStats::new(z, &rows, y, n_classes).solve(self.lambda)?,
            RidgeForm::Dual => {
                let k = gram_f64(z, &rows);
                ridge_dual(z, &rows, y, n_classes, &k, self.lambda)?
            }
        };
        Ok(LinearModel { w, b, mean, scale })
    }
}

/// Uncentred Gram matrix of `rows`, widened to f64 for the dual solve.
pub(crate) fn gram_f64(x: ArrayView2<f32>, rows: &[usize]) -> Vec<f64> {
    gram_sym(x, rows, Kernel::Auto)
        .into_iter()
        .map(f64::from)
        .collect()
}

/// Row-major n x n_classes targets: +1 for the row's class, -1 elsewhere.
fn targets(y: &[u8], n_classes: usize) -> Vec<f64> {
    let mut t = vec![-1.0; y.len() * n_classes];
    for (i, &c) in y.iter().enumerate() {
        t[i * n_classes + c as usize] = 1.0;
    }
    t
}

/// Uncentred sufficient statistics of a row set for the primal ridge.
#[derive(Clone)]
pub(crate) struct PrimalStats {
    xtx: Array2<f64>,
    xty: Array2<f64>,
    sx: Vec<f64>,
    sy: Vec<f64>,
    n: f64,
}

impl PrimalStats {
    pub(crate) fn new(x: ArrayView2<f32>, rows: &[usize], y: &[u8], n_classes: usize) -> Self {
        let d = x.ncols();
        let xs = Array2::from_shape_fn((rows.len(), d), |(i, j)| x[[rows[i], j]] as f64);
        let ys = Array2::from_shape_vec((rows.len(), n_classes), targets(y, n_classes))
            .expect("target shape");
        PrimalStats {
            xtx: xs.t().dot(&xs),
            xty: xs.t().dot(&ys),
            sx: xs.sum_axis(Axis(0)).to_vec(),
            sy: ys.sum_axis(Axis(0)).to_vec(),
            n: rows.len() as f64,
        }
    }
    pub(crate) fn plus(&self, o: &PrimalStats) -> PrimalStats {
        PrimalStats {
            xtx: &self.xtx + &o.xtx,
            xty: &self.xty + &o.xty,
            sx: self.sx.iter().zip(&o.sx).map(|(a, b)| a + b).collect(),
            sy: self.sy.iter().zip(&o.sy).map(|(a, b)| a + b).collect(),
            n: self.n + o.n,
        }
    }
    pub(crate) fn minus(&self, o: &PrimalStats) -> PrimalStats {
        PrimalStats {
            xtx: &self.xtx - &o.xtx,
            xty: &self.xty - &o.xty,
            sx: self.sx.iter().zip(&o.sx).map(|(a, b)| a - b).collect(),
            sy: self.sy.iter().zip(&o.sy).map(|(a, b)| a - b).collect(),
            n: self.n - o.n,
        }
    }
    /// Mean squared norm of the centred rows, `(tr(X^T X) - n |mu|^2) / n`:
    /// the scale of a relative lambda, the kernel form's
    /// [`TrainBlock::mean_square`](super::kernel::TrainBlock::mean_square) from
    /// the same rows.
    pub(crate) fn mean_square(&self) -> f64 {
        let d = self.sx.len();
        (0..d)
            .map(|i| self.xtx[[i, i]] - self.sx[i] * self.sx[i] / self.n)
            .sum::<f64>()
            / self.n
    }

    /// Centre the statistics, add `lambda` to the diagonal and solve for (W, b).
    pub(crate) fn solve(&self, lambda: f64) -> Result<(Array2<f64>, Vec<f64>), EvalError> {
        let d = self.sx.len();
        let c = self.sy.len();
        let mu: Vec<f64> = self.sx.iter().map(|v| v / self.n).collect();
        let ybar: Vec<f64> = self.sy.iter().map(|v| v / self.n).collect();
        let mut a = vec![0f64; d * d];
        for i in 0..d {
            for j in 0..=i {
                a[i * d + j] = self.xtx[[i, j]] - self.n * mu[i] * mu[j];
            }
            a[i * d + i] += lambda;
        }
        let mut b = vec![0f64; d * c];
        for i in 0..d {
            for k in 0..c {
                b[i * c + k] = self.xty[[i, k]] - self.sx[i] * ybar[k];
            }
        }
        cholesky(&mut a, d)?;
        cholesky_solve(&a, d, &mut b, c);
        let w = Array2::from_shape_vec((d, c), b).expect("w shape");
        let bias = (0..c)
            .map(|k| ybar[k] - (0..d).map(|i| mu[i] * w[[i, k]]).sum::<f64>())
            .collect();
        Ok((w, bias))
    }
}

/// Dual ridge on the training rows, given their (uncentred) Gram matrix `k`.
pub(crate) fn ridge_dual(
    x: ArrayView2<f32>,
    rows: &[usize],
    y: &[u8],
    n_classes: usize,
    k: &[f64],
    lambda: f64,
) -> Result<(Array2<f64>, Vec<f64>), EvalError> {
    let m = rows.len();
    let c = n_classes;
    let d = x.ncols();
    let mut a = centred_kernel(k, m, lambda);
    let t = targets(y, c);
    let mut ybar = vec![0f64; c];
    for i in 0..m {
        for q in 0..c {
            ybar[q] += t[i * c + q] / m as f64;
        }
    }
    let mut alpha: Vec<f64> = (0..m * c).map(|i| t[i] - ybar[i % c]).collect();
    cholesky(&mut a, m)?;
    cholesky_solve(&a, m, &mut alpha, c);
    let mut w = dual_weights(x, rows, &alpha, c);
    let mut mu = vec![0f64; d];
    for &r in rows {
        for (j, &v) in x.row(r).iter().enumerate() {
            mu[j] += v as f64 / m as f64;
        }
    }
    // Subtract mu * sum(alpha) (zero in exact arithmetic; kept for rounding).
    for q in 0..c {
        let sa: f64 = (0..m).map(|i| alpha[i * c + q]).sum();
        for j in 0..d {
            w[[j, q]] -= mu[j] * sa;
        }
    }
    let b = (0..c)
        .map(|q| ybar[q] - (0..d).map(|j| mu[j] * w[[j, q]]).sum::<f64>())
        .collect();
    Ok((w, b))
}

/// Lower triangle of `Kc + lambda I`, with `Kc = K - r 1^T - 1 r^T + s` the Gram
/// matrix of the centred rows (r: row means of K, s: their mean).
fn centred_kernel(k: &[f64], m: usize, lambda: f64) -> Vec<f64> {
    let r: Vec<f64> = (0..m)
        .map(|i| k[i * m..(i + 1) * m].iter().sum::<f64>() / m as f64)
        .collect();
    let sbar = r.iter().sum::<f64>() / m as f64;
    let mut a = vec![0f64; m * m];
    a.par_chunks_mut(m).enumerate().for_each(|(i, row)| {
        for j in 0..=i {
            row[j] = k[i * m + j] - r[i] - r[j] + sbar;
        }
        row[i] += lambda;
    });
    a
}

/// `X^T alpha` (d x c) over the training rows, accumulated in parallel over
/// fixed row chunks whose partial sums are then added up.
fn dual_weights(x: ArrayView2<f32>, rows: &[usize], alpha: &[f64], c: usize) -> Array2<f64> {
    let d = x.ncols();
    let w = rows
        .par_chunks(DUAL_ROW_CHUNK)
        .enumerate()
        .map(|(ci, chunk)| {
            let mut w = vec![0f64; d * c];
            for (t, &r) in chunk.iter().enumerate() {
                let i = ci * DUAL_ROW_CHUNK + t;
                let a = &alpha[i * c..(i + 1) * c];
                for (j, &v) in x.row(r).iter().enumerate() {
                    if v != 0.0 {
                        for q in 0..c {
                            w[j * c + q] += v as f64 * a[q];
                        }
                    }
                }
            }
            w
        })
        .reduce(
            || vec![0f64; d * c],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(u, v)| *u += v);
                a
            },
        );
    Array2::from_shape_vec((d, c), w).expect("w shape")
}
