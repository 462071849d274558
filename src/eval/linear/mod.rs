//! One-vs-rest linear readouts: ridge (closed form, [`ridge`]) and a linear SVM
//! (dual coordinate descent, [`svm`]), over the dense solvers of [`linalg`]. The
//! protocol ([`cv`]) chooses the regularisation strength by k-fold
//! cross-validation on the reference part of each split; the queries are only
//! ever seen by the final `predict`. This file holds what the readouts share:
//! the fitted model, the standardisation and the parameter checks.

mod cv;
mod kernel;
mod linalg;
mod ridge;
mod svm;

use ndarray::{Array2, ArrayView1, ArrayView2, CowArray, Ix2};
use rayon::prelude::*;

use super::{validate_fit, EvalError};

pub use cv::{evaluate_linear, evaluate_linear_detailed, SplitOutcome};
pub use kernel::{evaluate_kernel, ViewGram};
#[cfg(test)]
pub(crate) use kernel::{ridge_fit, svm_fit as kernel_svm_fit, KsvmSettings, TrainBlock};
pub use ridge::RidgeClassifier;
// The tests force the ridge's closed form to compare primal and dual.
#[cfg(test)]
pub(crate) use cv::evaluate_linear_with;
// The tests force the form; the evaluator picks it by the same rule.
pub(crate) use ridge::RidgeForm;
pub use svm::LinearSvm;

/// A fitted one-vs-rest linear model: `score_c(x) = ((x - mean) / scale) . w[:, c] + b[c]`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearModel {
    /// d x n_classes
    pub w: Array2<f64>,
    pub b: Vec<f64>,
    /// Standardisation (empty when not standardised).
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
}

impl LinearModel {
    /// A model on features that are already standardised (or need none).
    fn unstandardized((w, b): (Array2<f64>, Vec<f64>)) -> Self {
        LinearModel {
            w,
            b,
            mean: vec![],
            scale: vec![],
        }
    }
    fn scores_row(&self, x: ArrayView1<f32>) -> Vec<f64> {
        let c = self.b.len();
        let mut s = self.b.clone();
        for (j, &v) in x.iter().enumerate() {
            let z = if self.mean.is_empty() {
                v as f64
            } else {
                (v as f64 - self.mean[j]) / self.scale[j]
            };
            if z != 0.0 {
                let wr = self.w.row(j);
                for k in 0..c {
                    s[k] += z * wr[k];
                }
            }
        }
        s
    }
    fn predict_rows(&self, x: ArrayView2<f32>, rows: &[usize]) -> Vec<u8> {
        rows.par_iter()
            .map(|&r| argmax(&self.scores_row(x.row(r))))
            .collect()
    }
    /// Class with the highest score (ties: smaller class id).
    pub fn predict(&self, x: ArrayView2<f32>) -> Result<Vec<u8>, EvalError> {
        if x.ncols() != self.w.nrows() {
            return Err(EvalError::ColumnMismatch {
                expected: self.w.nrows(),
                got: x.ncols(),
            });
        }
        let rows: Vec<usize> = (0..x.nrows()).collect();
        Ok(self.predict_rows(x, &rows))
    }
}

fn argmax(s: &[f64]) -> u8 {
    let mut best = 0;
    for (c, &v) in s.iter().enumerate() {
        if v > s[best] {
            best = c;
        }
    }
    best as u8
}

fn check_lambdas(lambdas: &[f64]) -> Result<(), EvalError> {
    if lambdas.is_empty() {
        return Err(EvalError::NoLambdas);
    }
    if let Some(&l) = lambdas.iter().find(|l| !(l.is_finite() && **l > 0.0)) {
        return Err(EvalError::BadLambda(l));
    }
    Ok(())
}

fn check_fit_input(
    x: ArrayView2<f32>,
    y: &[u8],
    n_classes: usize,
    lambdas: &[f64],
) -> Result<(), EvalError> {
    check_lambdas(lambdas)?;
    validate_fit(x, y, n_classes)
}

/// Standardise (mean/sd of all rows of `x`), or borrow `x` unchanged.
fn standardized(x: ArrayView2<'_, f32>, yes: bool) -> (CowArray<'_, f32, Ix2>, Vec<f64>, Vec<f64>) {
    if !yes {
        return (CowArray::from(x), vec![], vec![]);
    }
    let rows: Vec<usize> = (0..x.nrows()).collect();
    let (mean, scale) = column_stats(x, &rows);
    let z = Array2::from_shape_fn(x.dim(), |(i, j)| {
        ((x[[i, j]] as f64 - mean[j]) / scale[j]) as f32
    });
    (CowArray::from(z), mean, scale)
}

/// Mean and sd (population; sd 0 -> 1 so constant features stay 0) over `rows`.
fn column_stats(x: ArrayView2<f32>, rows: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let d = x.ncols();
    let n = rows.len() as f64;
    let mut mean = vec![0f64; d];
    let mut sq = vec![0f64; d];
    for &r in rows {
        for (j, &v) in x.row(r).iter().enumerate() {
            mean[j] += v as f64;
            sq[j] += v as f64 * v as f64;
        }
    }
    let scale = (0..d)
        .map(|j| {
            mean[j] /= n;
            let var = (sq[j] / n - mean[j] * mean[j]).max(0.0);
            if var > 0.0 {
                var.sqrt()
            } else {
                1.0
            }
        })
        .collect();
    (mean, scale)
}
