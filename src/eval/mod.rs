//! eval (temporary stub of the contract; replaced by the eval module)
use serde::{Deserialize, Serialize};
/// Distance between embeddings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// sqrt(sum (a - b)^2)
    Euclidean,
    /// 1 - cos(a, b); a zero vector is at distance 1 from everything.
    Cosine,
}

/// How the k nearest neighbours vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    /// One vote each; ties by the smaller summed distance, then the smaller class id.
    Majority,
    /// Vote 1/d (sklearn's `weights="distance"`); if any neighbour is at distance
    /// exactly 0, only the zero-distance neighbours vote, equally. Ties: smaller class id.
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

/// Which linear readout.
#[derive(Clone, Debug, PartialEq)]
pub enum LinearKind {
    /// One-vs-rest ridge regression on +-1 targets, closed form, unpenalised intercept.
    Ridge,
    /// One-vs-rest L2-regularised squared-hinge SVM (liblinear's default), C = 1/lambda.
    Svm,
}

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
}

impl LinearParams {
    /// Ridge with a small default grid (5 values), 3-fold CV, no standardisation.
    pub fn ridge() -> Self {
        LinearParams {
            kind: LinearKind::Ridge,
            lambdas: vec![0.1, 1.0, 10.0, 100.0, 1000.0],
            cv_folds: 3,
            standardize: false,
        }
    }
    /// Linear SVM with a small default grid (C = 10, 1, 0.1, 0.01), 3-fold CV.
    pub fn svm() -> Self {
        LinearParams {
            kind: LinearKind::Svm,
            lambdas: vec![0.1, 1.0, 10.0, 100.0],
            cv_folds: 3,
            standardize: false,
        }
    }
}
