//! The linear protocol. For every split: build its features (standardised with
//! reference statistics only), choose lambda by round-robin k-fold CV on the
//! reference part, refit on the whole reference part with that lambda, and
//! predict the queries. Query rows are read only by that last prediction.

use ndarray::{Array2, ArrayView2, CowArray, Ix2};
use rayon::prelude::*;

use super::kernel::effective;
use super::ridge::{gram_f64, ridge_dual, PrimalStats, RidgeForm};
use super::svm::{svm_fit, LinearSvm};
use super::{check_lambdas, column_stats, LinearModel};
use crate::eval::gram::{gram_sym, Kernel};
use crate::eval::{
    summarize, validate_inputs, EvalError, Evaluation, LambdaScale, LinearKind, LinearParams, Split,
};

/// Largest number of rows whose Gram matrix the dual ridge caches across splits.
const MAX_CACHED_ROWS: usize = 20_000;

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

/// [`evaluate_linear_detailed`] with the ridge's closed form forced (tests compare
/// the two forms); `None` picks the cheaper one per split.
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
    check_folds(params, splits)?;
    let x = x.as_standard_layout();
    let x = x.view();
    let form_of = |sp: &Split| {
        force_form.unwrap_or_else(|| RidgeForm::for_shape(x.ncols(), sp.reference.len()))
    };
    // A relative lambda needs the training rows' mean square: the primal ridge
    // has it in its statistics; the primal SVM and this dual ridge (uncentred
    // Gram) do not, and the kernel form (evaluate_kernel) does.
    let scalable = params.kind == LinearKind::Ridge
        && splits.iter().all(|sp| form_of(sp) == RidgeForm::Primal);
    if params.lambda_scale != LambdaScale::Absolute && !scalable {
        return Err(EvalError::ScaleNeedsKernel(params.lambda_scale));
    }
    // The dual ridge on unstandardised rows shares one Gram matrix across splits.
    let shared = (params.kind == LinearKind::Ridge
        && !params.standardize
        && splits.iter().any(|sp| form_of(sp) == RidgeForm::Dual))
    .then(|| SharedGram::build(x, splits))
    .flatten();
    let outcomes = splits
        .iter()
        .map(|sp| {
            evaluate_split(
                x,
                labels,
                n_classes,
                sp,
                params,
                form_of(sp),
                shared.as_ref(),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let preds: Vec<Vec<u8>> = outcomes.iter().map(|o| o.predictions.clone()).collect();
    Ok((summarize(labels, n_classes, splits, &preds), outcomes))
}

/// Choosing among several lambdas needs 2 <= folds <= reference size in every split.
pub(crate) fn check_folds(params: &LinearParams, splits: &[Split]) -> Result<(), EvalError> {
    if params.lambdas.len() <= 1 {
        return Ok(());
    }
    for (s, sp) in splits.iter().enumerate() {
        if params.cv_folds < 2 || params.cv_folds > sp.reference.len() {
            return Err(EvalError::BadFolds {
                folds: params.cv_folds,
                n_reference: sp.reference.len(),
                split: s,
            });
        }
    }
    Ok(())
}

/// CV, refit and prediction for one split.
fn evaluate_split(
    x: ArrayView2<f32>,
    labels: &[u8],
    n_classes: usize,
    sp: &Split,
    params: &LinearParams,
    form: RidgeForm,
    shared: Option<&SharedGram>,
) -> Result<SplitOutcome, EvalError> {
    let features = SplitFeatures::new(x, sp, params.standardize);
    let y_ref: Vec<u8> = sp.reference.iter().map(|&r| labels[r]).collect();
    let reference = Reference {
        z: features.z.view(),
        rows: &features.ref_rows,
        y: &y_ref,
        n_classes,
        n_folds: params.cv_folds.max(1),
    };
    let solver = Solver::new(&reference, params.kind, form, params.lambda_scale, shared);
    let (chosen_lambda, cv_accuracy) = choose_lambda(&reference, &solver, &params.lambdas)?;
    let model = solver
        .fit(&reference, None, &[chosen_lambda])?
        .pop()
        .expect("one model per lambda");
    Ok(SplitOutcome {
        predictions: model.predict_rows(reference.z, &features.query_rows),
        chosen_lambda,
        cv_accuracy,
    })
}

/// Gram matrix of the union of every split's reference rows, computed once.
/// Only reference x reference entries are ever read from it.
struct SharedGram {
    /// Position of each row of `x` in the union (usize::MAX if not in it).
    pos: Vec<usize>,
    /// Size of the union.
    m: usize,
    /// m x m, row-major.
    g: Vec<f32>,
}

impl SharedGram {
    /// `None` when the union is larger than [`MAX_CACHED_ROWS`].
    fn build(x: ArrayView2<f32>, splits: &[Split]) -> Option<SharedGram> {
        let mut used = vec![false; x.nrows()];
        splits
            .iter()
            .for_each(|sp| sp.reference.iter().for_each(|&r| used[r] = true));
        let union: Vec<usize> = (0..x.nrows()).filter(|&i| used[i]).collect();
        if union.len() > MAX_CACHED_ROWS {
            return None;
        }
        let mut pos = vec![usize::MAX; x.nrows()];
        union.iter().enumerate().for_each(|(p, &r)| pos[r] = p);
        Some(SharedGram {
            pos,
            m: union.len(),
            g: gram_sym(x, &union, Kernel::Auto),
        })
    }

    /// The f64 Gram matrix of `rows` (row ids of `x`, all in the union).
    fn sub_gram(&self, rows: &[usize]) -> Vec<f64> {
        let n = rows.len();
        let mut k = vec![0f64; n * n];
        for (i, &a) in rows.iter().enumerate() {
            let base = self.pos[a] * self.m;
            for (j, &b) in rows.iter().enumerate() {
                k[i * n + j] = self.g[base + self.pos[b]] as f64;
            }
        }
        k
    }
}

/// The feature matrix of one split and where its reference and query rows are in it.
struct SplitFeatures<'a> {
    /// `x` itself, or (standardised) its reference rows followed by its query rows.
    z: CowArray<'a, f32, Ix2>,
    ref_rows: Vec<usize>,
    query_rows: Vec<usize>,
}

impl<'a> SplitFeatures<'a> {
    /// Standardisation uses the mean and sd of the reference rows only.
    fn new(x: ArrayView2<'a, f32>, sp: &Split, standardize: bool) -> Self {
        if !standardize {
            return SplitFeatures {
                z: CowArray::from(x),
                ref_rows: sp.reference.clone(),
                query_rows: sp.query.clone(),
            };
        }
        let (mean, scale) = column_stats(x, &sp.reference);
        let all: Vec<usize> = sp.reference.iter().chain(&sp.query).copied().collect();
        let z = Array2::from_shape_fn((all.len(), x.ncols()), |(i, j)| {
            ((x[[all[i], j]] as f64 - mean[j]) / scale[j]) as f32
        });
        let nr = sp.reference.len();
        SplitFeatures {
            z: CowArray::from(z),
            ref_rows: (0..nr).collect(),
            query_rows: (nr..all.len()).collect(),
        }
    }
}

/// One split's reference part as the CV sees it. Folds are round robin over
/// reference positions (random splits are already shuffled): position `p` is in
/// fold `p % n_folds`.
struct Reference<'a> {
    z: ArrayView2<'a, f32>,
    /// Rows of `z` holding the reference part, in split order.
    rows: &'a [usize],
    /// Their labels.
    y: &'a [u8],
    n_classes: usize,
    n_folds: usize,
}

impl Reference<'_> {
    /// Positions in fold `f`.
    fn fold(&self, f: usize) -> Vec<usize> {
        (0..self.rows.len())
            .filter(|p| p % self.n_folds == f)
            .collect()
    }
    /// Training positions: all folds but `fold`, or every position for `None`.
    fn train(&self, fold: Option<usize>) -> Vec<usize> {
        match fold {
            Some(f) => (0..self.rows.len())
                .filter(|p| p % self.n_folds != f)
                .collect(),
            None => (0..self.rows.len()).collect(),
        }
    }
    fn rows_at(&self, positions: &[usize]) -> Vec<usize> {
        positions.iter().map(|&p| self.rows[p]).collect()
    }
    fn labels_at(&self, positions: &[usize]) -> Vec<u8> {
        positions.iter().map(|&p| self.y[p]).collect()
    }
}

/// How one split's models are fitted, with what it precomputes once for all folds.
enum Solver<'a> {
    /// Sufficient statistics per fold and in total; a training set's are total - fold.
    RidgePrimal {
        parts: Vec<PrimalStats>,
        // Boxed: the statistics are large beside the other variants.
        total: Box<PrimalStats>,
        scale: LambdaScale,
    },
    /// Gram matrices of training sets, cut from the shared cache when there is one.
    RidgeDual { shared: Option<&'a SharedGram> },
    /// The default solver settings with C = 1 / lambda.
    Svm,
}

impl<'a> Solver<'a> {
    fn new(
        r: &Reference,
        kind: LinearKind,
        form: RidgeForm,
        scale: LambdaScale,
        shared: Option<&'a SharedGram>,
    ) -> Self {
        match (kind, form) {
            (LinearKind::Svm, _) => Solver::Svm,
            (LinearKind::Ridge, RidgeForm::Dual) => Solver::RidgeDual { shared },
            (LinearKind::Ridge, RidgeForm::Primal) => {
                let parts: Vec<PrimalStats> = (0..r.n_folds)
                    .into_par_iter()
                    .map(|f| {
                        let fold = r.fold(f);
                        PrimalStats::new(r.z, &r.rows_at(&fold), &r.labels_at(&fold), r.n_classes)
                    })
                    .collect();
                // Summed in fold order, so the total is the same whatever the threads.
                let total = Box::new(parts[1..].iter().fold(parts[0].clone(), |a, b| a.plus(b)));
                Solver::RidgePrimal {
                    parts,
                    total,
                    scale,
                }
            }
        }
    }

    /// One model per lambda, trained on all folds but `fold` (`None`: on the whole
    /// reference part).
    fn fit(
        &self,
        r: &Reference,
        fold: Option<usize>,
        lambdas: &[f64],
    ) -> Result<Vec<LinearModel>, EvalError> {
        let train = r.train(fold);
        match self {
            Solver::RidgePrimal {
                parts,
                total,
                scale,
            } => {
                let st = match fold {
                    Some(f) => total.minus(&parts[f]),
                    None => total.as_ref().clone(),
                };
                effective(lambdas, *scale, st.mean_square())
                    .iter()
                    .map(|&l| st.solve(l).map(LinearModel::unstandardized))
                    .collect()
            }
            Solver::RidgeDual { shared } => {
                let (rows, y) = (r.rows_at(&train), r.labels_at(&train));
                let k = match shared {
                    Some(g) => g.sub_gram(&rows),
                    None => gram_f64(r.z, &rows),
                };
                lambdas
                    .iter()
                    .map(|&l| {
                        ridge_dual(r.z, &rows, &y, r.n_classes, &k, l)
                            .map(LinearModel::unstandardized)
                    })
                    .collect()
            }
            Solver::Svm => {
                let (rows, y) = (r.rows_at(&train), r.labels_at(&train));
                Ok(lambdas
                    .par_iter()
                    .map(|&l| {
                        let p = LinearSvm {
                            c: 1.0 / l,
                            ..LinearSvm::default()
                        };
                        LinearModel::unstandardized(svm_fit(r.z, &rows, &y, r.n_classes, &p))
                    })
                    .collect())
            }
        }
    }
}

/// The lambda with the best mean CV accuracy, and the accuracy of every candidate
/// (no CV, and an empty record, when there is only one candidate).
fn choose_lambda(
    r: &Reference,
    solver: &Solver,
    lambdas: &[f64],
) -> Result<(f64, Vec<f64>), EvalError> {
    if let [only] = lambdas {
        return Ok((*only, vec![]));
    }
    let per_fold: Vec<Vec<f64>> = (0..r.n_folds)
        .into_par_iter()
        .map(|f| fold_accuracies(r, solver, f, lambdas))
        .collect::<Result<_, EvalError>>()?;
    let cv: Vec<f64> = (0..lambdas.len())
        .map(|l| per_fold.iter().map(|a| a[l]).sum::<f64>() / r.n_folds as f64)
        .collect();
    Ok((lambdas[first_best(&cv)], cv))
}

/// Validation accuracy on fold `f` of each lambda's model trained on the other folds.
fn fold_accuracies(
    r: &Reference,
    solver: &Solver,
    f: usize,
    lambdas: &[f64],
) -> Result<Vec<f64>, EvalError> {
    let val = r.fold(f);
    let val_rows = r.rows_at(&val);
    let models = solver.fit(r, Some(f), lambdas)?;
    Ok(models
        .iter()
        .map(|m| {
            let pr = m.predict_rows(r.z, &val_rows);
            let ok = pr.iter().zip(&val).filter(|(p, &v)| **p == r.y[v]).count();
            ok as f64 / val.len() as f64
        })
        .collect())
}

/// Index of the largest value; ties go to the first candidate listed.
fn first_best(cv: &[f64]) -> usize {
    let mut best = 0;
    for l in 1..cv.len() {
        if cv[l] > cv[best] {
            best = l;
        }
    }
    best
}
