//! One-vs-rest linear readouts: ridge (closed form) and a linear SVM (dual
//! coordinate descent). The regularisation strength is chosen by k-fold
//! cross-validation on the reference part of each split; the queries are only
//! ever seen by the final `predict`.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, ArrayView1, ArrayView2, ArrayViewMut2, CowArray, Ix2};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::gram::{gram_sym, Kernel};
use super::{
    summarize, validate_fit, validate_inputs, EvalError, Evaluation, LinearKind, LinearParams,
    Split,
};

/// Largest number of rows whose Gram matrix the dual ridge caches across splits.
const MAX_CACHED_ROWS: usize = 20_000;
/// Block size of the Cholesky factorisation (trailing updates go through dgemm).
const CHOL_BLOCK: usize = 128;

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

// ---------------------------------------------------------------- Cholesky

/// In-place blocked Cholesky of a symmetric positive definite n x n row-major
/// matrix (lower triangle read and overwritten with L). Panels are solved row
/// by row; the trailing update `A22 -= L21 L21^T` (lower part only) is dgemm.
pub(crate) fn cholesky(a: &mut [f64], n: usize) -> Result<(), EvalError> {
    for k0 in (0..n).step_by(CHOL_BLOCK) {
        let k1 = (k0 + CHOL_BLOCK).min(n);
        // Diagonal block, unblocked.
        for j in k0..k1 {
            let mut d = a[j * n + j];
            for t in k0..j {
                d -= a[j * n + t] * a[j * n + t];
            }
            if d.is_nan() || d <= 0.0 || d.is_infinite() {
                return Err(EvalError::NotPositiveDefinite(j));
            }
            let d = d.sqrt();
            a[j * n + j] = d;
            for i in j + 1..k1 {
                let mut v = a[i * n + j];
                for t in k0..j {
                    v -= a[i * n + t] * a[j * n + t];
                }
                a[i * n + j] = v / d;
            }
        }
        if k1 == n {
            break;
        }
        let (top, below) = a.split_at_mut(k1 * n);
        let l11 = &top[k0 * n..];
        // Panel: rows below solve x L11^T = a.
        below.par_chunks_mut(n).for_each(|row| {
            for j in k0..k1 {
                let mut v = row[j];
                for t in k0..j {
                    v -= row[t] * l11[(j - k0) * n + t];
                }
                row[j] = v / l11[(j - k0) * n + j];
            }
        });
        let nb = n - k1;
        let panel = Array2::from_shape_fn((nb, k1 - k0), |(i, t)| below[i * n + k0 + t]);
        below
            .par_chunks_mut(CHOL_BLOCK * n)
            .enumerate()
            .for_each(|(ci, chunk)| {
                let r0 = ci * CHOL_BLOCK;
                let h = chunk.len() / n;
                let mut out = ArrayViewMut2::from_shape((h, n), chunk).expect("chunk shape");
                let mut out = out.slice_mut(s![.., k1..k1 + r0 + h]);
                let p = panel.slice(s![r0..r0 + h, ..]);
                let q = panel.slice(s![..r0 + h, ..]);
                general_mat_mul(-1.0, &p, &q.t(), 1.0, &mut out);
            });
    }
    Ok(())
}

/// Solve `L L^T X = B` in place (`b` is n x m row-major).
pub(crate) fn cholesky_solve(l: &[f64], n: usize, b: &mut [f64], m: usize) {
    for i in 0..n {
        for t in 0..i {
            let f = l[i * n + t];
            if f != 0.0 {
                for c in 0..m {
                    b[i * m + c] -= f * b[t * m + c];
                }
            }
        }
        for c in 0..m {
            b[i * m + c] /= l[i * n + i];
        }
    }
    for i in (0..n).rev() {
        for c in 0..m {
            b[i * m + c] /= l[i * n + i];
        }
        for t in 0..i {
            let f = l[i * n + t];
            if f != 0.0 {
                for c in 0..m {
                    b[t * m + c] -= f * b[i * m + c];
                }
            }
        }
    }
}

// ---------------------------------------------------------------- ridge

/// Which closed form the ridge uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RidgeForm {
    /// d <= n: (Xc^T Xc + lambda I) W = Xc^T Yc
    Primal,
    /// d > n: (Kc + lambda I) alpha = Yc, W = Xc^T alpha
    Dual,
}

fn targets(y: &[u8], n_classes: usize) -> Vec<f64> {
    let mut t = vec![-1.0; y.len() * n_classes];
    for (i, &c) in y.iter().enumerate() {
        t[i * n_classes + c as usize] = 1.0;
    }
    t
}

/// Uncentred sufficient statistics of a row set for the primal ridge.
#[derive(Clone)]
struct PrimalStats {
    xtx: Array2<f64>,
    xty: Array2<f64>,
    sx: Vec<f64>,
    sy: Vec<f64>,
    n: f64,
}

impl PrimalStats {
    fn new(x: ArrayView2<f32>, rows: &[usize], y: &[u8], n_classes: usize) -> Self {
        let d = x.ncols();
        let xs = Array2::from_shape_fn((rows.len(), d), |(i, j)| x[[rows[i], j]] as f64);
        let ys = Array2::from_shape_vec((rows.len(), n_classes), targets(y, n_classes))
            .expect("target shape");
        PrimalStats {
            xtx: xs.t().dot(&xs),
            xty: xs.t().dot(&ys),
            sx: xs.sum_axis(ndarray::Axis(0)).to_vec(),
            sy: ys.sum_axis(ndarray::Axis(0)).to_vec(),
            n: rows.len() as f64,
        }
    }
    fn plus(&self, o: &PrimalStats) -> PrimalStats {
        PrimalStats {
            xtx: &self.xtx + &o.xtx,
            xty: &self.xty + &o.xty,
            sx: self.sx.iter().zip(&o.sx).map(|(a, b)| a + b).collect(),
            sy: self.sy.iter().zip(&o.sy).map(|(a, b)| a + b).collect(),
            n: self.n + o.n,
        }
    }
    fn minus(&self, o: &PrimalStats) -> PrimalStats {
        PrimalStats {
            xtx: &self.xtx - &o.xtx,
            xty: &self.xty - &o.xty,
            sx: self.sx.iter().zip(&o.sx).map(|(a, b)| a - b).collect(),
            sy: self.sy.iter().zip(&o.sy).map(|(a, b)| a - b).collect(),
            n: self.n - o.n,
        }
    }
    fn solve(&self, lambda: f64) -> Result<(Array2<f64>, Vec<f64>), EvalError> {
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

/// Dual ridge on the training rows, given their (uncentred) Gram matrix.
fn ridge_dual(
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
    // Centre the kernel: Kc = K - r 1^T - 1 r^T + s (the Gram of centred rows).
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
    // W = Xc^T alpha, accumulated in parallel over row chunks.
    let w = rows
        .par_chunks(256)
        .enumerate()
        .map(|(ci, chunk)| {
            let mut w = vec![0f64; d * c];
            for (t, &r) in chunk.iter().enumerate() {
                let a = &alpha[(ci * 256 + t) * c..(ci * 256 + t + 1) * c];
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
    let mut w = Array2::from_shape_vec((d, c), w).expect("w shape");
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
        let rows: Vec<usize> = (0..x.nrows()).collect();
        let form = if x.ncols() > x.nrows() {
            RidgeForm::Dual
        } else {
            RidgeForm::Primal
        };
        let (w, b) = ridge_fit(z.view(), &rows, y, n_classes, self.lambda, form, None)?;
        Ok(LinearModel { w, b, mean, scale })
    }
}

fn ridge_fit(
    x: ArrayView2<f32>,
    rows: &[usize],
    y: &[u8],
    n_classes: usize,
    lambda: f64,
    form: RidgeForm,
    gram: Option<&[f64]>,
) -> Result<(Array2<f64>, Vec<f64>), EvalError> {
    match form {
        RidgeForm::Primal => PrimalStats::new(x, rows, y, n_classes).solve(lambda),
        RidgeForm::Dual => {
            let owned;
            let k = match gram {
                Some(k) => k,
                None => {
                    owned = gram_sym(x, rows, Kernel::Auto)
                        .into_iter()
                        .map(f64::from)
                        .collect::<Vec<_>>();
                    &owned
                }
            };
            ridge_dual(x, rows, y, n_classes, k, lambda)
        }
    }
}

// ---------------------------------------------------------------- SVM

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

const SVM_MAX_EPOCHS: usize = 30;
const SVM_TOL: f64 = 0.1;

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
        let (w, b) = svm_fit(
            z.view(),
            &rows,
            y,
            n_classes,
            self.c,
            self.max_epochs,
            self.tol,
            self.seed,
        );
        Ok(LinearModel { w, b, mean, scale })
    }
}

fn dot32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (u, v) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += u[l] * v[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (u, v) in ra.iter().zip(rb) {
        s += u * v;
    }
    s
}

#[allow(clippy::too_many_arguments)]
fn svm_fit(
    x: ArrayView2<f32>,
    rows: &[usize],
    y: &[u8],
    n_classes: usize,
    c: f64,
    max_epochs: usize,
    tol: f64,
    seed: u64,
) -> (Array2<f64>, Vec<f64>) {
    let d = x.ncols();
    let x = x.as_standard_layout();
    let xr: Vec<&[f32]> = rows
        .iter()
        .map(|&r| x.row(r).to_slice().expect("standard layout"))
        .collect();
    let qd: Vec<f64> = xr.iter().map(|r| dot32(r, r) as f64 + 1.0).collect();
    let per_class: Vec<(Vec<f32>, f32)> = (0..n_classes)
        .into_par_iter()
        .map(|cls| {
            let diag = 0.5 / c; // squared hinge: D_ii = 1 / (2C), no upper bound
            let yy: Vec<f32> = y
                .iter()
                .map(|&l| if l as usize == cls { 1.0 } else { -1.0 })
                .collect();
            let mut alpha = vec![0f64; rows.len()];
            let mut w = vec![0f32; d];
            let mut b = 0f32;
            let mut order: Vec<usize> = (0..rows.len()).collect();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(cls as u64);
            for _ in 0..max_epochs {
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
                if pmax - pmin < tol {
                    break;
                }
            }
            (w, b)
        })
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

// ---------------------------------------------------------------- protocol

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

/// What happened in one split of [`evaluate_linear_detailed`].
#[derive(Clone, Debug, PartialEq)]
pub struct SplitOutcome {
    /// Predictions for `split.query`, in order.
    pub predictions: Vec<u8>,
    /// The lambda chosen by cross-validation on the reference part.
    pub chosen_lambda: f64,
    /// Mean CV accuracy per candidate lambda (empty when only one candidate).
    pub cv_accuracy: Vec<f64>,
}

/// One-vs-rest linear readout over every split, lambda chosen by CV on the reference part.
pub fn evaluate_linear(
    x: ArrayView2<f32>,
    labels: &[u8],
    n_classes: usize,
    splits: &[Split],
    params: &LinearParams,
) -> Result<Evaluation, EvalError> {
    Ok(evaluate_linear_detailed(x, labels, n_classes, splits, params)?.0)
}

/// [`evaluate_linear`] plus, per split, the predictions and the CV record.
pub fn evaluate_linear_detailed(
    x: ArrayView2<f32>,
    labels: &[u8],
    n_classes: usize,
    splits: &[Split],
    params: &LinearParams,
) -> Result<(Evaluation, Vec<SplitOutcome>), EvalError> {
    evaluate_linear_with(x, labels, n_classes, splits, params, None)
}

pub(crate) fn evaluate_linear_with(
    x: ArrayView2<f32>,
    labels: &[u8],
    n_classes: usize,
    splits: &[Split],
    params: &LinearParams,
    force_form: Option<RidgeForm>,
) -> Result<(Evaluation, Vec<SplitOutcome>), EvalError> {
    validate_inputs(x, labels, n_classes, splits)?;
    check_lambdas(&params.lambdas)?;
    for (s, sp) in splits.iter().enumerate() {
        if params.lambdas.len() > 1 && (params.cv_folds < 2 || params.cv_folds > sp.reference.len())
        {
            return Err(EvalError::BadFolds {
                folds: params.cv_folds,
                n_reference: sp.reference.len(),
                split: s,
            });
        }
    }
    let x = x.as_standard_layout();
    let x = x.view();
    // The dual ridge on unstandardised rows shares one Gram matrix across splits;
    // only reference x reference entries of it are ever read.
    let needs_dual = |sp: &Split| match force_form {
        Some(f) => f == RidgeForm::Dual,
        None => x.ncols() > sp.reference.len(),
    };
    let shared =
        (params.kind == LinearKind::Ridge && !params.standardize && splits.iter().any(needs_dual))
            .then(|| {
                let mut used = vec![false; x.nrows()];
                splits
                    .iter()
                    .for_each(|sp| sp.reference.iter().for_each(|&r| used[r] = true));
                let union: Vec<usize> = (0..x.nrows()).filter(|&i| used[i]).collect();
                (union.len() <= MAX_CACHED_ROWS).then(|| {
                    let mut pos = vec![usize::MAX; x.nrows()];
                    union.iter().enumerate().for_each(|(p, &r)| pos[r] = p);
                    (pos, union.len(), gram_sym(x, &union, Kernel::Auto))
                })
            })
            .flatten();

    let mut outcomes = Vec::with_capacity(splits.len());
    for sp in splits {
        let form = if needs_dual(sp) {
            RidgeForm::Dual
        } else {
            RidgeForm::Primal
        };
        // Features of this split: standardised with reference statistics only.
        let (z, ref_rows, query_rows) = if params.standardize {
            let (mean, scale) = column_stats(x, &sp.reference);
            let all: Vec<usize> = sp.reference.iter().chain(&sp.query).copied().collect();
            let z = Array2::from_shape_fn((all.len(), x.ncols()), |(i, j)| {
                ((x[[all[i], j]] as f64 - mean[j]) / scale[j]) as f32
            });
            let nr = sp.reference.len();
            (
                CowArray::from(z),
                (0..nr).collect::<Vec<_>>(),
                (nr..all.len()).collect::<Vec<_>>(),
            )
        } else {
            (CowArray::from(x), sp.reference.clone(), sp.query.clone())
        };
        let z = z.view();
        // Gram of an arbitrary subset of reference rows (positions into ref_rows), f64.
        let gram_of = |sub: &[usize]| -> Vec<f64> {
            match &shared {
                Some((pos, m, g)) => {
                    let mut k = vec![0f64; sub.len() * sub.len()];
                    for (i, &a) in sub.iter().enumerate() {
                        let base = pos[ref_rows[a]] * m;
                        for (j, &b) in sub.iter().enumerate() {
                            k[i * sub.len() + j] = g[base + pos[ref_rows[b]]] as f64;
                        }
                    }
                    k
                }
                None => {
                    let rows: Vec<usize> = sub.iter().map(|&a| ref_rows[a]).collect();
                    gram_sym(z, &rows, Kernel::Auto)
                        .into_iter()
                        .map(f64::from)
                        .collect()
                }
            }
        };
        let y_ref: Vec<u8> = sp.reference.iter().map(|&r| labels[r]).collect();
        let nf = params.cv_folds.max(1);
        let nr = ref_rows.len();
        let fold_train = |f: usize| -> Vec<usize> { (0..nr).filter(|p| p % nf != f).collect() };
        // Primal ridge: statistics of each fold once; a training set's are total - fold.
        let primal_parts =
            (params.kind == LinearKind::Ridge && form == RidgeForm::Primal).then(|| {
                let parts: Vec<PrimalStats> = (0..nf)
                    .into_par_iter()
                    .map(|f| {
                        let rows: Vec<usize> = (0..nr)
                            .filter(|p| p % nf == f)
                            .map(|p| ref_rows[p])
                            .collect();
                        let y: Vec<u8> =
                            (0..nr).filter(|p| p % nf == f).map(|p| y_ref[p]).collect();
                        PrimalStats::new(z, &rows, &y, n_classes)
                    })
                    .collect();
                let total = parts[1..].iter().fold(parts[0].clone(), |a, b| a.plus(b));
                (parts, total)
            });
        // `fold`: Some(f) trains on all folds but f; None on the whole reference.
        let fit = |fold: Option<usize>, lambdas: &[f64]| -> Result<Vec<LinearModel>, EvalError> {
            let train: Vec<usize> = match fold {
                Some(f) => fold_train(f),
                None => (0..nr).collect(),
            };
            let train = &train[..];
            let rows: Vec<usize> = train.iter().map(|&p| ref_rows[p]).collect();
            let y: Vec<u8> = train.iter().map(|&p| y_ref[p]).collect();
            let wrap = |(w, b): (Array2<f64>, Vec<f64>)| LinearModel {
                w,
                b,
                mean: vec![],
                scale: vec![],
            };
            match params.kind {
                LinearKind::Ridge if form == RidgeForm::Dual => {
                    let k = gram_of(train);
                    lambdas
                        .iter()
                        .map(|&l| ridge_dual(z, &rows, &y, n_classes, &k, l).map(wrap))
                        .collect()
                }
                LinearKind::Ridge => {
                    let (parts, total) = primal_parts.as_ref().expect("primal stats computed");
                    let st = match fold {
                        Some(f) => total.minus(&parts[f]),
                        None => total.clone(),
                    };
                    lambdas.iter().map(|&l| st.solve(l).map(wrap)).collect()
                }
                LinearKind::Svm => Ok(lambdas
                    .par_iter()
                    .map(|&l| {
                        wrap(svm_fit(
                            z,
                            &rows,
                            &y,
                            n_classes,
                            1.0 / l,
                            SVM_MAX_EPOCHS,
                            SVM_TOL,
                            0,
                        ))
                    })
                    .collect()),
            }
        };
        let (chosen_lambda, cv_accuracy) = if params.lambdas.len() == 1 {
            (params.lambdas[0], vec![])
        } else {
            // Round-robin folds over reference positions (random splits are already shuffled).
            let per_fold: Vec<Vec<f64>> = (0..nf)
                .into_par_iter()
                .map(|f| {
                    let val: Vec<usize> = (0..nr).filter(|p| p % nf == f).collect();
                    let val_rows: Vec<usize> = val.iter().map(|&p| ref_rows[p]).collect();
                    let models = fit(Some(f), &params.lambdas)?;
                    Ok(models
                        .iter()
                        .map(|m| {
                            let pr = m.predict_rows(z, &val_rows);
                            let ok = pr
                                .iter()
                                .zip(&val)
                                .filter(|(p, &v)| **p == y_ref[v])
                                .count();
                            ok as f64 / val.len() as f64
                        })
                        .collect())
                })
                .collect::<Result<_, EvalError>>()?;
            let cv: Vec<f64> = (0..params.lambdas.len())
                .map(|l| per_fold.iter().map(|a| a[l]).sum::<f64>() / nf as f64)
                .collect();
            // Best mean CV accuracy; ties: the first candidate listed.
            let mut best = 0;
            for l in 1..cv.len() {
                if cv[l] > cv[best] {
                    best = l;
                }
            }
            (params.lambdas[best], cv)
        };
        let model = fit(None, &[chosen_lambda])?.remove(0);
        outcomes.push(SplitOutcome {
            predictions: model.predict_rows(z, &query_rows),
            chosen_lambda,
            cv_accuracy,
        });
    }
    let preds: Vec<Vec<u8>> = outcomes.iter().map(|o| o.predictions.clone()).collect();
    Ok((summarize(labels, n_classes, splits, &preds), outcomes))
}
