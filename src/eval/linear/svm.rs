//! One-vs-rest linear SVM: L2-regularised squared hinge with the bias as a
//! constant feature (liblinear `-s 1 -B 1`), solved by dual coordinate descent
//! (Hsieh et al. 2008) over a seeded permutation per epoch. Classes are fitted
//! in parallel, each with its own RNG stream, so results do not depend on the
//! number of threads.

use ndarray::{Array2, ArrayView2};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::linalg::dot32;
use super::{check_fit_input, standardized, LinearModel};
use crate::eval::EvalError;

/// Epoch cap of the default solver (the protocol uses the defaults).
const SVM_MAX_EPOCHS: usize = 30;
/// Stopping tolerance of the default solver (liblinear's 0.1).
const SVM_TOL: f64 = 0.1;

/// linfa-style linear SVM: one-vs-rest, L2-regularised squared hinge, bias as
/// a constant feature 1 (liblinear `-s 1 -B 1`), solved by dual coordinate
/// descent (Hsieh et al. 2008) over a seeded permutation per epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearSvm {
    pub c: f64,
    pub standardize: bool,
    pub max_epochs: usize,
    /// Stop when max - min of the projected gradient over an epoch is below this.
    pub tol: f64,
    pub seed: u64,
}

impl Default for LinearSvm {
    fn default() -> Self {
        LinearSvm {
            c: 1.0,
            standardize: false,
            max_epochs: SVM_MAX_EPOCHS,
            tol: SVM_TOL,
            seed: 0,
        }
    }
}

impl LinearSvm {
    pub fn fit(
        &self,
        x: ArrayView2<f32>,
        y: &[u8],
        n_classes: usize,
    ) -> Result<LinearModel, EvalError> {
        check_fit_input(x, y, n_classes, &[1.0 / self.c])?;
        let (z, mean, scale) = standardized(x, self.standardize);
        let rows: Vec<usize> = (0..x.nrows()).collect();
        let (w, b) = svm_fit(z.view(), &rows, y, n_classes, self);
        Ok(LinearModel { w, b, mean, scale })
    }
}

/// Fit every class of `rows` (labels `y`) with the solver settings of `p`
/// (`p.standardize` is ignored: `x` is already the feature matrix to use).
pub(crate) fn svm_fit(
    x: ArrayView2<f32>,
    rows: &[usize],
    y: &[u8],
    n_classes: usize,
    p: &LinearSvm,
) -> (Array2<f64>, Vec<f64>) {
    let d = x.ncols();
    let x = x.as_standard_layout();
    let xr: Vec<&[f32]> = rows
        .iter()
        .map(|&r| x.row(r).to_slice().expect("standard layout"))
        .collect();
    // Diagonal of the kernel with the bias feature: |x_i|^2 + 1.
    let qd: Vec<f64> = xr.iter().map(|r| dot32(r, r) as f64 + 1.0).collect();
    let per_class: Vec<(Vec<f32>, f32)> = (0..n_classes)
        .into_par_iter()
        .map(|cls| fit_one_class(&xr, &qd, y, cls, d, p))
        .collect();
    let mut w = Array2::<f64>::zeros((d, n_classes));
    let mut b = vec![0f64; n_classes];
    for (cls, (wc, bc)) in per_class.into_iter().enumerate() {
        for j in 0..d {
            w[[j, cls]] = wc[j] as f64;
        }
        b[cls] = bc as f64;
    }
    (w, b)
}

/// Dual coordinate descent for class `cls` against the rest over the rows `xr`
/// (`d` columns each): (w, b) in f32.
fn fit_one_class(
    xr: &[&[f32]],
    qd: &[f64],
    y: &[u8],
    cls: usize,
    d: usize,
    p: &LinearSvm,
) -> (Vec<f32>, f32) {
    let diag = 0.5 / p.c; // squared hinge: D_ii = 1 / (2C), no upper bound
    let yy: Vec<f32> = y
        .iter()
        .map(|&l| if l as usize == cls { 1.0 } else { -1.0 })
        .collect();
    let mut alpha = vec![0f64; xr.len()];
    let mut w = vec![0f32; d];
    let mut b = 0f32;
    let mut order: Vec<usize> = (0..xr.len()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    rng.set_stream(cls as u64);
    for _ in 0..p.max_epochs {
        order.shuffle(&mut rng);
        let (mut pmax, mut pmin) = (f64::NEG_INFINITY, f64::INFINITY);
        for &i in &order {
            let g = yy[i] as f64 * (dot32(&w, xr[i]) + b) as f64 - 1.0 + diag * alpha[i];
            let pg = if alpha[i] == 0.0 { g.min(0.0) } else { g };
            pmax = pmax.max(pg);
            pmin = pmin.min(pg);
            if pg != 0.0 {
                let old = alpha[i];
                alpha[i] = (old - g / (qd[i] + diag)).max(0.0);
                let delta = ((alpha[i] - old) * yy[i] as f64) as f32;
                if delta != 0.0 {
                    w.iter_mut()
                        .zip(xr[i])
                        .for_each(|(wv, &xv)| *wv += delta * xv);
                    b += delta;
                }
            }
        }
        if pmax - pmin < p.tol {
            break;
        }
    }
    (w, b)
}
