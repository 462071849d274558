//! Linear readouts in kernel form: one-vs-rest ridge and linear SVM computed
//! from the n x n Gram matrix of a view, so their cost grows with the number
//! of rows and not with the dimension (a 39,800-dim weight-change view costs
//! what a 784-dim pixel view costs once its Gram matrix is there).
//!
//! What each readout sees: the rows as the evaluation prepared them (the
//! config's normalisation, the same for views and baselines), **centred by
//! the mean of the training rows** (computed from the Gram matrix: `Kc = K -
//! r 1^T - 1 r^T + s`, in f64), nothing else. Ridge: +-1 targets, unpenalised
//! intercept. SVM: squared hinge with the bias as a constant feature 1
//! (liblinear `-s 1 -B 1`) on the centred rows. Both take lambda either as
//! given or relative to the mean squared norm of the centred training rows
//! ([`LambdaScale`]), so one grid means the same for views of any scale.
//!
//! The Gram matrix ([`ViewGram`]) is computed once per view from rows centred
//! by the mean of *all* rows. The training-set centring above removes any such
//! shift exactly, so this changes no result in exact arithmetic; it is there
//! because an f32 Gram of uncentred, nearly parallel rows (random ReLU
//! features: mean cosine 0.95) loses the small differences the readouts need to
//! rounding. Query rows enter only through that mean (features, never labels)
//! and through their own scores.

use ndarray::{Array2, ArrayView2};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::check_lambdas;
use super::cv::{check_folds, SplitOutcome};
use super::linalg::{cholesky, cholesky_solve};
use crate::eval::gram::{gram_sym, Kernel};
use crate::eval::{
    summarize, validate_inputs, EvalError, Evaluation, LambdaScale, LinearKind, LinearParams, Split,
};

/// Epoch cap of the kernel SVM (each epoch is one pass over the training rows).
pub(crate) const KSVM_MAX_EPOCHS: usize = 40;
/// Stopping tolerance of the kernel SVM: max - min of the projected gradient
/// over an epoch (liblinear's 0.1).
pub(crate) const KSVM_TOL: f64 = 0.1;

/// The Gram matrix of every row of a view, rows centred by their overall mean
/// first (see the module doc for why). Shared by the ridge and the SVM across
/// all splits and folds: each reads the entries of its rows only.
#[derive(Clone, Debug)]
pub struct ViewGram {
    n: usize,
    /// n x n row-major.
    g: Vec<f32>,
}

impl ViewGram {
    /// Gram matrix of the rows of `x` after subtracting the column means
    /// (accumulated in f64). f32 sgemm on the centred rows.
    pub fn of_rows(x: ArrayView2<f32>) -> ViewGram {
        let (n, d) = x.dim();
        let mut mean = vec![0f64; d];
        for row in x.rows() {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
        let x = x.as_standard_layout();
        let mut xc = vec![0f32; n * d];
        xc.par_chunks_mut(d.max(1))
            .zip(x.as_slice().expect("standard layout").par_chunks(d.max(1)))
            .for_each(|(out, row)| {
                out.iter_mut()
                    .zip(row)
                    .zip(&mean)
                    .for_each(|((o, &v), &m)| *o = (v as f64 - m) as f32)
            });
        let xc = Array2::from_shape_vec((n, d), xc).expect("centred shape");
        let rows: Vec<usize> = (0..n).collect();
        ViewGram {
            n,
            g: gram_sym(xc.view(), &rows, Kernel::Auto),
        }
    }

    /// A Gram matrix computed otherwise (n x n row-major, symmetric).
    pub fn from_matrix(g: Array2<f64>) -> Result<ViewGram, EvalError> {
        let (n, m) = g.dim();
        if n != m {
            return Err(EvalError::GramShape { rows: n, cols: m });
        }
        Ok(ViewGram {
            n,
            g: g.iter().map(|&v| v as f32).collect(),
        })
    }

    pub fn n(&self) -> usize {
        self.n
    }

    /// The n x n entries, row-major.
    pub fn entries(&self) -> &[f32] {
        &self.g
    }

    fn at(&self, i: usize, j: usize) -> f64 {
        self.g[i * self.n + j] as f64
    }
}

/// One training set of the Gram matrix with its centring: row means `r` of the
/// training block and their mean `s`.
pub(crate) struct TrainBlock<'a> {
    gram: &'a ViewGram,
    rows: Vec<usize>,
    r: Vec<f64>,
    s: f64,
}

impl<'a> TrainBlock<'a> {
    pub(crate) fn new(gram: &'a ViewGram, rows: Vec<usize>) -> TrainBlock<'a> {
        let m = rows.len() as f64;
        let r: Vec<f64> = rows
            .par_iter()
            .map(|&a| rows.iter().map(|&b| gram.at(a, b)).sum::<f64>() / m)
            .collect();
        let s = r.iter().sum::<f64>() / m;
        TrainBlock { gram, rows, r, s }
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// The centred training Gram matrix, m x m row-major, f64.
    pub(crate) fn centred(&self) -> Vec<f64> {
        let m = self.rows.len();
        let mut k = vec![0f64; m * m];
        k.par_chunks_mut(m).enumerate().for_each(|(i, out)| {
            let a = self.rows[i];
            for (j, o) in out.iter_mut().enumerate() {
                *o = self.gram.at(a, self.rows[j]) - self.r[i] - self.r[j] + self.s;
            }
        });
        k
    }

    /// Mean squared norm of the centred training rows (the trace of the
    /// centred Gram over m): the scale of a relative lambda.
    pub(crate) fn mean_square(&self) -> f64 {
        let m = self.rows.len();
        (0..m)
            .map(|i| self.gram.at(self.rows[i], self.rows[i]) - 2.0 * self.r[i] + self.s)
            .sum::<f64>()
            / m as f64
    }

    /// Centred products of `queries` (rows of the Gram) with the training rows,
    /// |queries| x m row-major: `K_qi - mean_j K_qj - r_i + s`.
    pub(crate) fn cross(&self, queries: &[usize]) -> Vec<f64> {
        let m = self.rows.len();
        let mut out = vec![0f64; queries.len() * m];
        out.par_chunks_mut(m).enumerate().for_each(|(t, o)| {
            let q = queries[t];
            let mut rq = 0f64;
            for (j, v) in o.iter_mut().enumerate() {
                *v = self.gram.at(q, self.rows[j]);
                rq += *v;
            }
            rq /= m as f64;
            for (j, v) in o.iter_mut().enumerate() {
                *v += self.s - rq - self.r[j];
            }
        });
        out
    }
}

/// The effective regularisation strengths of `lambdas` on a training set whose
/// centred rows have mean squared norm `mean_square` (kernel and primal forms
/// alike).
pub(crate) fn effective(lambdas: &[f64], scale: LambdaScale, mean_square: f64) -> Vec<f64> {
    let f = match scale {
        LambdaScale::Absolute => 1.0,
        // A zero-variance block would make every lambda 0: keep them as given.
        LambdaScale::MeanSquare => Some(mean_square).filter(|v| *v > 0.0).unwrap_or(1.0),
    };
    lambdas.iter().map(|l| l * f).collect()
}

/// A fitted kernel-form model: `score_c(q) = sum_i coef[i][c] * k(q, i) + b[c]`
/// with `k` the centred products (plus 1 for the SVM's bias feature).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DualModel {
    /// m x c row-major.
    pub(crate) coef: Vec<f64>,
    pub(crate) b: Vec<f64>,
    /// Added to every centred product (1 for the SVM's constant feature).
    pub(crate) offset: f64,
}

impl DualModel {
    /// Class scores of every row of `cross` (|q| x m), argmax (ties: smaller id).
    pub(crate) fn predict(&self, cross: &[f64], m: usize) -> Vec<u8> {
        let c = self.b.len();
        cross
            .par_chunks(m)
            .map(|kq| {
                let mut s = self.b.clone();
                for (i, &k) in kq.iter().enumerate() {
                    let k = k + self.offset;
                    let a = &self.coef[i * c..(i + 1) * c];
                    s.iter_mut().zip(a).for_each(|(v, &ai)| *v += k * ai);
                }
                let mut best = 0;
                for (cls, &v) in s.iter().enumerate() {
                    if v > s[best] {
                        best = cls;
                    }
                }
                best as u8
            })
            .collect()
    }

    /// Primal weights `X_c^T coef` of the training rows `xc` (already centred
    /// the way the model saw them): for checks against primal solvers.
    #[cfg(test)]
    pub(crate) fn weights(&self, xc: ArrayView2<f64>) -> Array2<f64> {
        let c = self.b.len();
        let coef = Array2::from_shape_vec((xc.nrows(), c), self.coef.clone()).expect("shape");
        xc.t().dot(&coef)
    }
}

/// Row-major m x c targets: +1 for the row's class, -1 elsewhere.
fn targets(y: &[u8], c: usize) -> Vec<f64> {
    let mut t = vec![-1.0; y.len() * c];
    for (i, &l) in y.iter().enumerate() {
        t[i * c + l as usize] = 1.0;
    }
    t
}

/// Kernel ridge on a centred training Gram `kc` (m x m), one model per
/// effective lambda: `(Kc + lambda I) A = Y - ybar`, intercept `ybar` (exactly
/// the primal ridge with an unpenalised intercept on the centred rows).
pub(crate) fn ridge_fit(
    kc: &[f64],
    m: usize,
    y: &[u8],
    n_classes: usize,
    lambdas: &[f64],
) -> Result<Vec<DualModel>, EvalError> {
    let c = n_classes;
    let t = targets(y, c);
    let mut ybar = vec![0f64; c];
    for i in 0..m {
        for q in 0..c {
            ybar[q] += t[i * c + q] / m as f64;
        }
    }
    let yc: Vec<f64> = (0..m * c).map(|i| t[i] - ybar[i % c]).collect();
    // One factor buffer for all the lambdas: at m = 6,000 it is 288 MB, and
    // allocating it afresh per lambda costs page faults on every first touch.
    let mut a = vec![0f64; m * m];
    lambdas
        .iter()
        .map(|&l| {
            a.copy_from_slice(kc);
            for i in 0..m {
                a[i * m + i] += l;
            }
            cholesky(&mut a, m)?;
            let mut coef = yc.clone();
            cholesky_solve(&a, m, &mut coef, c);
            Ok(DualModel {
                coef,
                b: ybar.clone(),
                offset: 0.0,
            })
        })
        .collect()
}

/// Solver settings of the kernel SVM.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct KsvmSettings {
    pub(crate) max_epochs: usize,
    pub(crate) tol: f64,
    pub(crate) seed: u64,
}

impl Default for KsvmSettings {
    fn default() -> Self {
        KsvmSettings {
            max_epochs: KSVM_MAX_EPOCHS,
            tol: KSVM_TOL,
            seed: 0,
        }
    }
}

/// One-vs-rest L2-regularised squared-hinge SVM by dual coordinate descent
/// (Hsieh et al. 2008) on the kernel `Kc + 1` (centred rows plus a constant
/// bias feature), one model per effective lambda (C = 1 / lambda). The
/// lambdas are solved from the largest to the smallest, each warm-started from
/// the previous solution (alpha >= 0 stays feasible when C changes), which is
/// the cheap way through a grid. All classes share one seeded permutation per
/// epoch, so one pass over a Gram row serves the ten classes and the result
/// does not depend on the number of threads.
pub(crate) fn svm_fit(
    kc: &[f64],
    m: usize,
    y: &[u8],
    n_classes: usize,
    lambdas: &[f64],
    settings: KsvmSettings,
) -> Vec<DualModel> {
    let c = n_classes;
    // f32 kernel with the bias feature: the inner loop is memory bound.
    let k: Vec<f32> = kc.iter().map(|&v| (v + 1.0) as f32).collect();
    let qd: Vec<f64> = (0..m).map(|i| kc[i * m + i] + 1.0).collect();
    let sign = |i: usize, cls: usize| if y[i] as usize == cls { 1.0 } else { -1.0 };
    // alpha[cls][i]; u[cls][j] = sum_i alpha[cls][i] y_i k(i, j).
    let mut alpha = vec![vec![0f64; m]; c];
    let mut u = vec![vec![0f64; m]; c];
    let mut order: Vec<usize> = (0..m).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    let mut order_idx: Vec<usize> = (0..lambdas.len()).collect();
    // Largest lambda (smallest C) first: its solution is the sparsest start.
    order_idx.sort_by(|&a, &b| lambdas[b].total_cmp(&lambdas[a]));
    let mut models: Vec<Option<DualModel>> = vec![None; lambdas.len()];
    for li in order_idx {
        let diag = 0.5 * lambdas[li]; // D_ii = 1 / (2C)
        for _ in 0..settings.max_epochs {
            order.shuffle(&mut rng);
            let mut range = vec![(f64::NEG_INFINITY, f64::INFINITY); c];
            for &i in &order {
                let row = &k[i * m..(i + 1) * m];
                for cls in 0..c {
                    let yi = sign(i, cls);
                    let a = alpha[cls][i];
                    let g = yi * u[cls][i] - 1.0 + diag * a;
                    let pg = if a == 0.0 { g.min(0.0) } else { g };
                    let (hi, lo) = &mut range[cls];
                    *hi = hi.max(pg);
                    *lo = lo.min(pg);
                    if pg == 0.0 {
                        continue;
                    }
                    let new = (a - g / (qd[i] + diag)).max(0.0);
                    let delta = (new - a) * yi;
                    if delta != 0.0 {
                        alpha[cls][i] = new;
                        u[cls]
                            .iter_mut()
                            .zip(row)
                            .for_each(|(uj, &kij)| *uj += delta * kij as f64);
                    }
                }
            }
            if range.iter().all(|(hi, lo)| hi - lo < settings.tol) {
                break;
            }
        }
        let mut coef = vec![0f64; m * c];
        for i in 0..m {
            for cls in 0..c {
                coef[i * c + cls] = alpha[cls][i] * sign(i, cls);
            }
        }
        models[li] = Some(DualModel {
            coef,
            b: vec![0.0; c],
            offset: 1.0,
        });
    }
    models.into_iter().flatten().collect()
}

/// [`evaluate_kernel`] for one split: lambda by round-robin k-fold CV on the
/// reference part (position `p` in fold `p % folds`, as the primal protocol),
/// refit on the whole reference part, predict the queries. The queries' labels
/// are never read; their rows enter only the final prediction.
fn kernel_split(
    gram: &ViewGram,
    labels: &[u8],
    n_classes: usize,
    sp: &Split,
    params: &LinearParams,
    settings: KsvmSettings,
) -> Result<SplitOutcome, EvalError> {
    let fit = |block: &TrainBlock, y: &[u8], lambdas: &[f64]| {
        let eff = effective(lambdas, params.lambda_scale, block.mean_square());
        let kc = block.centred();
        match params.kind {
            LinearKind::Ridge => ridge_fit(&kc, block.len(), y, n_classes, &eff),
            LinearKind::Svm => Ok(svm_fit(&kc, block.len(), y, n_classes, &eff, settings)),
        }
    };
    let lambdas = &params.lambdas;
    let (chosen_lambda, cv_accuracy) = if let [only] = lambdas.as_slice() {
        (*only, vec![])
    } else {
        let folds = params.cv_folds;
        let per_fold: Vec<Vec<f64>> = (0..folds)
            .into_par_iter()
            .map(|f| {
                let (mut train, mut val) = (Vec::new(), Vec::new());
                for (p, &r) in sp.reference.iter().enumerate() {
                    if p % folds == f { &mut val } else { &mut train }.push(r);
                }
                let y: Vec<u8> = train.iter().map(|&r| labels[r]).collect();
                let block = TrainBlock::new(gram, train);
                let models = fit(&block, &y, lambdas)?;
                let cross = block.cross(&val);
                Ok(models
                    .iter()
                    .map(|mdl| {
                        let pred = mdl.predict(&cross, block.len());
                        let ok = pred.iter().zip(&val).filter(|(p, &v)| **p == labels[v]);
                        ok.count() as f64 / val.len() as f64
                    })
                    .collect())
            })
            .collect::<Result<_, EvalError>>()?;
        let cv: Vec<f64> = (0..lambdas.len())
            .map(|l| per_fold.iter().map(|a| a[l]).sum::<f64>() / folds as f64)
            .collect();
        // Ties go to the first candidate listed.
        let mut best = 0;
        for l in 1..cv.len() {
            if cv[l] > cv[best] {
                best = l;
            }
        }
        (lambdas[best], cv)
    };
    let y: Vec<u8> = sp.reference.iter().map(|&r| labels[r]).collect();
    let block = TrainBlock::new(gram, sp.reference.clone());
    let model = fit(&block, &y, &[chosen_lambda])?
        .pop()
        .expect("one model per lambda");
    let cross = block.cross(&sp.query);
    Ok(SplitOutcome {
        predictions: model.predict(&cross, block.len()),
        chosen_lambda,
        cv_accuracy,
    })
}

/// One-vs-rest ridge or linear SVM in kernel form over every split, from the
/// Gram matrix of all rows (see the module doc for what the readouts see);
/// lambda chosen by CV on each split's reference part.
pub fn evaluate_kernel(
    gram: &ViewGram,
    labels: &[u8],
    n_classes: usize,
    splits: &[Split],
    params: &LinearParams,
) -> Result<(Evaluation, Vec<SplitOutcome>), EvalError> {
    evaluate_kernel_with(
        gram,
        labels,
        n_classes,
        splits,
        params,
        KsvmSettings::default(),
    )
}

fn evaluate_kernel_with(
    gram: &ViewGram,
    labels: &[u8],
    n_classes: usize,
    splits: &[Split],
    params: &LinearParams,
    settings: KsvmSettings,
) -> Result<(Evaluation, Vec<SplitOutcome>), EvalError> {
    if labels.len() != gram.n() {
        return Err(EvalError::LabelsLength {
            labels: labels.len(),
            rows: gram.n(),
        });
    }
    // The row checks of every protocol, on a stand-in one-column view: the
    // Gram matrix holds no rows to check for finiteness, only its entries.
    if let Some((i, v)) = gram.g.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(EvalError::NonFinite {
            row: i / gram.n(),
            col: i % gram.n(),
            value: *v,
        });
    }
    if params.standardize {
        return Err(EvalError::StandardizeInKernel);
    }
    let stand_in = Array2::<f32>::zeros((gram.n(), 1));
    validate_inputs(stand_in.view(), labels, n_classes, splits)?;
    check_lambdas(&params.lambdas)?;
    check_folds(params, splits)?;
    let outcomes = splits
        .iter()
        .map(|sp| kernel_split(gram, labels, n_classes, sp, params, settings))
        .collect::<Result<Vec<_>, _>>()?;
    let preds: Vec<Vec<u8>> = outcomes.iter().map(|o| o.predictions.clone()).collect();
    Ok((summarize(labels, n_classes, splits, &preds), outcomes))
}
