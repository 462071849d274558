//! Evaluation: classifiers and protocols that turn embeddings into accuracies.
//!
//! This module sits between `embed` and `report` in the pipeline
//! (`embeddings -> classifier/evaluation -> report`). It knows nothing of
//! networks or simulations: it receives an `n x d` matrix of embeddings (one row
//! per stimulus, f32), their labels, and a list of [`Split`]s, and returns an
//! [`Evaluation`] (mean/sd accuracy over repeats, per-class recall, confusion).
//! The same functions score the raw-pixel baseline and the no-dynamics control
//! ([`random_projection`]), so every number the project reports is measured
//! under one protocol.
//!
//! Two readouts are provided, both without gradient descent:
//! * exact kNN ([`evaluate_knn`]): one blocked sgemm Gram matrix shared by all
//!   splits, partial selection per query, and an f64 re-ranking of the few best
//!   candidates so ties and zero distances are decided exactly;
//! * one-vs-rest linear readouts ([`evaluate_linear`]): ridge (closed form, primal
//!   or dual) and a linear SVM (dual coordinate descent), with the regularisation
//!   chosen by cross-validation on the reference part of each split only.
//!
//! Beside them: the feature transforms applied before a readout ([`l2_normalize_rows`],
//! [`random_projection`], [`pixels_to_f32`]) and the seeded randomized [`pca`] that the
//! report's scatter figures draw.

mod features;
mod gram;
mod knn;
mod linear;
mod pca;
mod rng;
mod split;

#[cfg(test)]
mod tests;

use std::fmt;

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

pub use features::{
    l2_normalize_rows, pixels_to_f32, random_features, random_projection, rate_product,
    try_pixels_to_f32,
};
pub use knn::{
    evaluate_knn, evaluate_knn_detailed, evaluate_knn_gram, knn_timing_demo, KnnClassifier,
    KnnModel,
};
pub use linear::{
    evaluate_kernel, evaluate_linear, evaluate_linear_detailed, LinearModel, LinearSvm,
    RidgeClassifier, SplitOutcome, ViewGram,
};
// The evaluator picks the ridge's form by the same rule as the primal protocol.
pub(crate) use linear::RidgeForm;
pub use pca::{pca, pca_with_variance, Pca};
pub use split::{held_out_split, random_splits};

/// Distance between embeddings.
// The defaults (Euclidean, inverse distance, kNN) are the source's
// experiment-3 protocol; they fill an empty report's fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// sqrt(sum (a - b)^2)
    #[default]
    Euclidean,
    /// 1 - cos(a, b); a zero vector is at distance 1 from everything.
    Cosine,
}

/// How the k nearest neighbours vote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    /// One vote each; ties by the smaller summed distance, then the smaller class id.
    Majority,
    /// Vote 1/d (sklearn's `weights="distance"`); if any neighbour is at distance
    /// exactly 0, only the zero-distance neighbours vote, equally. Ties: smaller class id.
    #[default]
    InverseDistance,
}

/// Parameters of the kNN readout.
#[derive(Clone, Debug, PartialEq)]
pub struct KnnParams {
    pub k: usize,
    pub metric: Metric,
    pub weighting: Weighting,
}

/// Row indices of one repeat: the labelled reference set and the queries to classify.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub reference: Vec<usize>,
    pub query: Vec<usize>,
}

/// Result of a protocol (all repeats of all splits).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Evaluation {
    pub accuracy_mean: f64,
    /// Sample standard deviation over repeats (n - 1 denominator); 0 for one repeat.
    pub accuracy_sd: f64,
    /// One accuracy per split, in split order.
    pub accuracies: Vec<f64>,
    /// Per-class recall pooled over repeats (0 for a class with no query at all;
    /// its confusion row then sums to 0).
    pub per_class: Vec<f64>,
    /// `confusion[true][predicted]`, summed over repeats.
    pub confusion: Vec<Vec<u64>>,
}

/// Which linear readout. Serde names as in the config's `evaluation.linear` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinearKind {
    /// One-vs-rest ridge regression on +-1 targets, closed form, unpenalised intercept.
    Ridge,
    /// One-vs-rest L2-regularised squared-hinge SVM (liblinear's default), C = 1/lambda.
    Svm,
}

/// A readout, as named in reports (`ResultRow::classifier`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classifier {
    /// Exact kNN ([`evaluate_knn`]).
    #[default]
    Knn,
    /// One-vs-rest ridge ([`LinearKind::Ridge`]).
    Ridge,
    /// One-vs-rest linear SVM ([`LinearKind::Svm`]).
    LinearSvm,
}

impl From<LinearKind> for Classifier {
    fn from(kind: LinearKind) -> Self {
        match kind {
            LinearKind::Ridge => Classifier::Ridge,
            LinearKind::Svm => Classifier::LinearSvm,
        }
    }
}

// `name()` is the serde name (the tests check the two agree); `Display` prints it,
// so configs, reports and messages spell every choice one way.
impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Euclidean => "euclidean",
            Metric::Cosine => "cosine",
        }
    }
}

impl Weighting {
    pub fn name(self) -> &'static str {
        match self {
            Weighting::Majority => "majority",
            Weighting::InverseDistance => "inverse_distance",
        }
    }
}

impl LinearKind {
    pub fn name(self) -> &'static str {
        match self {
            LinearKind::Ridge => "ridge",
            LinearKind::Svm => "svm",
        }
    }
}

impl Classifier {
    pub fn name(self) -> &'static str {
        match self {
            Classifier::Knn => "knn",
            Classifier::Ridge => "ridge",
            Classifier::LinearSvm => "linear_svm",
        }
    }
}

macro_rules! display_by_name {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    )*};
}
display_by_name!(Metric, Weighting, LinearKind, Classifier, LambdaScale);

/// Parameters of the linear readout.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearParams {
    pub kind: LinearKind,
    /// Candidate regularisation strengths (ridge lambda; SVM C = 1/lambda).
    pub lambdas: Vec<f64>,
    /// Folds of the reference part used to choose lambda (ignored if one lambda).
    pub cv_folds: usize,
    /// Standardise features with mean/sd of the reference part only.
    pub standardize: bool,
    /// What a lambda is relative to.
    pub lambda_scale: LambdaScale,
}

/// How the candidate lambdas are scaled. Serde names as in the config's
/// `evaluation.lambda_scale`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LambdaScale {
    /// As given.
    #[default]
    Absolute,
    /// Times the mean squared norm of the centred training rows, so that one
    /// grid means the same for views of any scale (kernel readouts only).
    MeanSquare,
}

impl LambdaScale {
    pub fn name(self) -> &'static str {
        match self {
            LambdaScale::Absolute => "absolute",
            LambdaScale::MeanSquare => "mean_square",
        }
    }
}

impl LinearParams {
    /// Ridge with a small default grid (5 values), 3-fold CV, no standardisation.
    pub fn ridge() -> Self {
        LinearParams {
            kind: LinearKind::Ridge,
            lambdas: vec![0.1, 1.0, 10.0, 100.0, 1000.0],
            cv_folds: 3,
            standardize: false,
            lambda_scale: LambdaScale::Absolute,
        }
    }
    /// Linear SVM with a small default grid (C = 1, 0.1, 0.01, 0.001), 3-fold CV.
    pub fn svm() -> Self {
        LinearParams {
            kind: LinearKind::Svm,
            lambdas: vec![1.0, 10.0, 100.0, 1000.0],
            cv_folds: 3,
            standardize: false,
            lambda_scale: LambdaScale::Absolute,
        }
    }
}

/// Errors of the evaluation stage; each message names the offending value.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("k = 0: kNN needs at least one neighbour")]
    ZeroK,
    #[error("k = {k} > reference size {n_reference} (split {split})")]
    KTooLarge {
        k: usize,
        n_reference: usize,
        split: usize,
    },
    #[error("labels length {labels} does not match the {rows} rows of the embedding")]
    LabelsLength { labels: usize, rows: usize },
    #[error("label {label} of row {row} is not below n_classes = {n_classes}")]
    LabelOutOfRange {
        row: usize,
        label: u8,
        n_classes: usize,
    },
    #[error("n_classes = {0}: must be between 1 and 256")]
    BadClassCount(usize),
    #[error("non-finite value ({value}) in embedding row {row}, column {col}")]
    NonFinite { row: usize, col: usize, value: f32 },
    #[error("embedding has {0} columns: need at least one")]
    NoColumns(usize),
    #[error("no splits given")]
    NoSplits,
    #[error("split {split} has an empty {part} set")]
    EmptySplitPart { split: usize, part: &'static str },
    #[error("split {split}: row index {index} out of range for {n} rows")]
    IndexOutOfRange {
        split: usize,
        index: usize,
        n: usize,
    },
    #[error("split {split}: row {index} appears twice (reference and query must be disjoint and without repeats)")]
    DuplicateIndex { split: usize, index: usize },
    #[error(
        "n_query = {n_query} + n_reference = {n_reference} exceeds n = {n}, or one of them is 0"
    )]
    BadSplitSizes {
        n: usize,
        n_reference: usize,
        n_query: usize,
    },
    #[error("repeats = 0: need at least one split")]
    ZeroRepeats,
    #[error("no regularisation candidates (lambdas is empty)")]
    NoLambdas,
    #[error("lambda = {0}: must be finite and > 0")]
    BadLambda(f64),
    #[error("cv_folds = {folds}: need 2 <= folds <= reference size {n_reference} to choose among several lambdas (split {split})")]
    BadFolds {
        folds: usize,
        n_reference: usize,
        split: usize,
    },
    #[error("pixel buffer has {len} bytes, expected n * d = {n} * {d}")]
    PixelLength { len: usize, n: usize, d: usize },
    #[error("query has {got} columns but the model was fitted on {expected}")]
    ColumnMismatch { expected: usize, got: usize },
    #[error(
        "lambda_scale = {0}: only the kernel-form readouts (evaluate_kernel) can scale lambdas"
    )]
    ScaleNeedsKernel(LambdaScale),
    #[error("standardize = true: the kernel-form readouts see centred rows only (per-feature scaling needs the rows, not their Gram matrix)")]
    StandardizeInKernel,
    #[error("Gram matrix of shape {rows} x {cols}: must be square")]
    GramShape { rows: usize, cols: usize },
    #[error("linear system not positive definite at pivot {0} (increase lambda)")]
    NotPositiveDefinite(usize),
    #[error("PCA needs at least 2 rows and 1 column, got {rows} × {cols}")]
    PcaTooSmall { rows: usize, cols: usize },
    #[error("PCA of {rows} × {cols} data cannot have {n_components} components (1..={max})", max = .rows.min(.cols))]
    PcaComponents {
        n_components: usize,
        rows: usize,
        cols: usize,
    },
}

/// Accuracy bookkeeping shared by the kNN and linear protocols.
/// `preds[s][i]` is the prediction for `splits[s].query[i]`.
pub(crate) fn summarize(
    labels: &[u8],
    n_classes: usize,
    splits: &[Split],
    preds: &[Vec<u8>],
) -> Evaluation {
    let mut confusion = vec![vec![0u64; n_classes]; n_classes];
    let mut accuracies = Vec::with_capacity(splits.len());
    for (split, p) in splits.iter().zip(preds) {
        let mut correct = 0usize;
        for (&q, &pred) in split.query.iter().zip(p) {
            let t = labels[q] as usize;
            confusion[t][pred as usize] += 1;
            correct += (t == pred as usize) as usize;
        }
        accuracies.push(correct as f64 / split.query.len() as f64);
    }
    let m = accuracies.len() as f64;
    let accuracy_mean = accuracies.iter().sum::<f64>() / m;
    let accuracy_sd = if accuracies.len() > 1 {
        (accuracies
            .iter()
            .map(|a| (a - accuracy_mean).powi(2))
            .sum::<f64>()
            / (m - 1.0))
            .sqrt()
    } else {
        0.0
    };
    let per_class = confusion
        .iter()
        .enumerate()
        .map(|(c, row)| {
            let tot: u64 = row.iter().sum();
            if tot == 0 {
                0.0
            } else {
                row[c] as f64 / tot as f64
            }
        })
        .collect();
    Evaluation {
        accuracy_mean,
        accuracy_sd,
        accuracies,
        per_class,
        confusion,
    }
}

/// Checks for a `fit` on all rows of `x` (no split): shapes, labels, finiteness.
pub(crate) fn validate_fit(
    x: ArrayView2<f32>,
    labels: &[u8],
    n_classes: usize,
) -> Result<(), EvalError> {
    if x.nrows() == 0 {
        return Err(EvalError::EmptySplitPart {
            split: 0,
            part: "reference",
        });
    }
    // Row 0 stands in as the query the shared checks expect.
    let split = Split {
        reference: if x.nrows() == 1 {
            vec![0]
        } else {
            (1..x.nrows()).collect()
        },
        query: vec![0],
    };
    match validate_inputs(x, labels, n_classes, &[split]) {
        Err(EvalError::DuplicateIndex { .. }) => Ok(()),
        r => r,
    }
}

/// Checks shared by every protocol: shapes, labels, split indices, finiteness
/// of every row any split touches.
pub(crate) fn validate_inputs(
    x: ArrayView2<f32>,
    labels: &[u8],
    n_classes: usize,
    splits: &[Split],
) -> Result<(), EvalError> {
    let n = x.nrows();
    if labels.len() != n {
        return Err(EvalError::LabelsLength {
            labels: labels.len(),
            rows: n,
        });
    }
    if n_classes == 0 || n_classes > 256 {
        return Err(EvalError::BadClassCount(n_classes));
    }
    if x.ncols() == 0 {
        return Err(EvalError::NoColumns(0));
    }
    if splits.is_empty() {
        return Err(EvalError::NoSplits);
    }
    let mut used = vec![false; n];
    let mut seen = vec![usize::MAX; n];
    for (s, split) in splits.iter().enumerate() {
        for (part, idx) in [("reference", &split.reference), ("query", &split.query)] {
            if idx.is_empty() {
                return Err(EvalError::EmptySplitPart { split: s, part });
            }
            for &i in idx.iter() {
                if i >= n {
                    return Err(EvalError::IndexOutOfRange {
                        split: s,
                        index: i,
                        n,
                    });
                }
                if seen[i] == s {
                    return Err(EvalError::DuplicateIndex { split: s, index: i });
                }
                seen[i] = s;
                used[i] = true;
            }
        }
    }
    for (row, &u) in used.iter().enumerate() {
        if !u {
            continue;
        }
        let l = labels[row];
        if l as usize >= n_classes {
            return Err(EvalError::LabelOutOfRange {
                row,
                label: l,
                n_classes,
            });
        }
        if let Some((col, &value)) = x.row(row).iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(EvalError::NonFinite { row, col, value });
        }
    }
    Ok(())
}
