//! The one evaluation: every view with the config's kNN and linear readouts,
//! always beside the baselines and controls, on the same splits, with the same
//! preprocessing. Each view's Gram matrix is computed once and shared by the
//! kNN, the ridge and the SVM across splits (the linear readouts in kernel
//! form, so their cost depends on the rows, not on the dimension; the ridge of
//! a view with fewer dimensions than CV training rows in primal form, the same
//! readout for less). [`Evaluator`] scores matrices; [`score_views`]
//! walks the views of a [`ViewSource`] (an encode directory, or matrices in
//! memory); [`evaluate`] is the whole of `geodyn evaluate DIR`.

use super::observer::{Event, Observer};
use super::{read_manifest, PipelineError, ViewInfo};
use crate::config::{self, EvalParams, ExperimentConfig, RawConfig};
use crate::dataset::ImageSet;
use crate::embed::Normalize;
use crate::eval::{
    evaluate_kernel, evaluate_knn, evaluate_knn_gram, evaluate_linear, held_out_split,
    l2_normalize_rows, pixels_to_f32, random_features, random_projection, random_splits,
    rate_product, Classifier, Evaluation, LinearKind, LinearParams, Metric, RidgeForm, Split,
    ViewGram,
};
use crate::report::{
    self, DatasetInfo, ProtocolInfo, ProtocolKind, Report, ResultRow, Series, Timing,
};
use ndarray::{Array1, Array2, Axis};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How `geodyn evaluate` runs.
#[derive(Clone, Debug)]
pub struct EvaluateOptions {
    /// Where to write the report (created if missing).
    pub out: PathBuf,
    pub figures: bool,
    /// The view whose PCA and confusion are drawn (default: the best kNN view).
    pub figure_view: Option<String>,
    /// Fit the linear readouts on the first this many splits only (default:
    /// all); the kNN always uses all. A time budget, recorded in the notes.
    pub linear_splits: Option<usize>,
    /// Which no-dynamics baselines and controls stand beside the views.
    pub controls: Controls,
    /// L2-normalise everything (embeddings and baselines) whatever the config says.
    pub force_l2: bool,
    /// Skip the config's linear readouts.
    pub knn_only: bool,
    /// Also evaluate the trajectories (snapshots up to t, concatenated).
    pub trajectory: bool,
}

impl EvaluateOptions {
    pub fn new(out: impl Into<PathBuf>) -> EvaluateOptions {
        EvaluateOptions {
            out: out.into(),
            figures: true,
            figure_view: None,
            linear_splits: None,
            controls: Controls::default(),
            force_l2: false,
            knn_only: false,
            trajectory: false,
        }
    }

    /// Applies the options that change the evaluation to the raw config, so
    /// the changed config passes the same checks as any other.
    fn apply(&self, raw: &mut RawConfig) {
        if self.force_l2 {
            raw.embedding.normalize = Normalize::L2;
        }
        if self.knn_only {
            raw.evaluation.linear.clear();
        }
        if self.trajectory {
            raw.embedding.trajectory = true;
        }
    }
}

/// Whether the ridge readout `lp` of a `dim`-column view is solved in primal
/// form: a `dim x dim` system per training set (fold statistics added and
/// subtracted) instead of the kernel form's `m x m` Cholesky. The same
/// readout in exact arithmetic (same folds, same relative lambdas, same
/// centring by the training rows' mean; `eval` tests the two against each
/// other), at a fraction of the cost when every CV training set has more rows
/// than the view has dimensions (pixels, activity, the smaller controls: at
/// 10,000 digits, 784 x 784 against 6,000 x 6,000). The SVM stays in kernel
/// form everywhere: its primal solver is another iteration and would not give
/// the same model.
fn primal_ridge_fits(lp: &LinearParams, dim: usize, splits: &[Split]) -> bool {
    let smallest_train = splits
        .iter()
        .map(|sp| sp.reference.len() - sp.reference.len().div_ceil(lp.cv_folds.max(1)))
        .min()
        .unwrap_or(0);
    lp.kind == LinearKind::Ridge
        && !lp.standardize
        && RidgeForm::for_shape(dim, smallest_train) == RidgeForm::Primal
}

/// A report row from an evaluation.
pub fn result_row(
    embedding: &str,
    classifier: Classifier,
    n_rec: Option<usize>,
    time: Option<f64>,
    dim: usize,
    e: &Evaluation,
) -> ResultRow {
    ResultRow {
        embedding: embedding.to_string(),
        classifier,
        n_recurrent: n_rec,
        time_ms: time,
        dim,
        accuracy_mean: e.accuracy_mean,
        accuracy_sd: e.accuracy_sd,
        per_class: e.per_class.clone(),
        confusion: e.confusion.clone(),
        accuracies: e.accuracies.clone(),
    }
}

/// Which rows are reference and which are queries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Protocol {
    /// `repeats` random splits of all rows (sizes from the config when they
    /// fit the data, else 90% / 10%).
    RandomSplit,
    /// Rows `0..n_reference` are the reference, the next `n_query` the queries.
    HeldOut { n_reference: usize, n_query: usize },
}

/// The names of the baselines, in one place: raw pixels; a seeded Gaussian
/// random projection of the pixels to a view's dimension (linear); random
/// ReLU features of the pixels at a view's dimension (the extreme learning
/// machine: nonlinear, no dynamics); and the rate-product control (pairwise
/// products of N random ReLU features, the spike-free model of Δw).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    RawPixels,
    RandomProjection { dim: usize },
    RandomFeatures { dim: usize },
    RateProduct { nodes: usize },
}

impl Baseline {
    /// The name in reports (`raw_pixels`, `random_projection_{dim}`,
    /// `random_features_{dim}`, `rate_product_{dim}` with dim = N (N - 1)).
    pub fn name(self) -> String {
        match self {
            Baseline::RawPixels => "raw_pixels".into(),
            Baseline::RandomProjection { dim } => format!("random_projection_{dim}"),
            Baseline::RandomFeatures { dim } => format!("random_features_{dim}"),
            Baseline::RateProduct { nodes } => {
                format!("rate_product_{}", nodes * nodes.saturating_sub(1))
            }
        }
    }
}

/// Which baselines stand beside the views (raw pixels always).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Controls {
    /// A random projection of the pixels to each view dimension.
    pub random_projection: bool,
    /// Random ReLU features of the pixels at each view dimension.
    pub random_features: bool,
    /// The rate-product control at the recurrent size N (when there is one).
    pub rate_product: bool,
}

impl Default for Controls {
    /// The linear control only, as every experiment had before the nonlinear ones.
    fn default() -> Self {
        Controls {
            random_projection: true,
            random_features: false,
            rate_product: false,
        }
    }
}

impl Controls {
    /// Raw pixels only (a control network's rows, or a sweep point after the
    /// first: their baselines are the ones already scored).
    pub fn none() -> Self {
        Controls {
            random_projection: false,
            random_features: false,
            rate_product: false,
        }
    }

    /// Raw pixels beside the nonlinear no-dynamics controls (experiment 3).
    pub fn nonlinear() -> Self {
        Controls {
            random_projection: false,
            random_features: true,
            rate_product: true,
        }
    }
}

/// Seed of the random-projection baseline, from the config seed.
fn projection_seed(seed: u64) -> u64 {
    seed ^ 0x5EED
}

/// Seed of the random-feature baseline, from the config seed.
fn features_seed(seed: u64) -> u64 {
    seed ^ 0xE1E1
}

/// Seed of the rate-product control's random features, from the config seed
/// (not the random-feature baseline's: the two controls are independent draws).
fn rate_product_seed(seed: u64) -> u64 {
    seed ^ 0x4A7E
}

/// The reference and query sizes of [`Protocol::RandomSplit`] on `n` rows:
/// the config's when they fit, else 90% / 10%, with a note saying so.
fn random_split_sizes(params: &EvalParams, n: usize) -> ((usize, usize), Option<String>) {
    match (params.n_reference, params.n_query) {
        (Some(r), Some(q)) if r.checked_add(q).is_some_and(|t| t <= n) => ((r, q), None),
        (r, q) => {
            let q_default = (n / 10).max(1);
            let sizes = (n.saturating_sub(q_default), q_default);
            let note = (r.is_some() || q.is_some()).then(|| {
                format!(
                    "The config's split sizes ({r:?} reference, {q:?} queries) do not fit {n} rows: {} / {} used.",
                    sizes.0, sizes.1
                )
            });
            (sizes, note)
        }
    }
}

/// Checks, before any encoding, that `protocol` on `n_rows` rows gives
/// splits the readouts of `params` can score: a non-empty reference and
/// query part, k neighbours at most the reference size, and the linear
/// readouts' folds within it. The same rules the evaluation applies after
/// the encode, so a run that would fail there fails here, at no cost.
/// Returns the note about adjusted split sizes, if any.
pub fn check_feasible(
    params: &EvalParams,
    protocol: Protocol,
    n_rows: usize,
) -> Result<Option<String>, PipelineError> {
    let ((n_reference, n_query), note) = match protocol {
        Protocol::HeldOut {
            n_reference,
            n_query,
        } => ((n_reference, n_query), None),
        Protocol::RandomSplit => random_split_sizes(params, n_rows),
    };
    let bad = |why: String| {
        PipelineError::Other(format!(
            "{n_rows} rows split into {n_reference} reference / {n_query} queries: {why}"
        ))
    };
    if n_reference == 0 || n_query == 0 {
        return Err(bad("both parts need at least one row".into()));
    }
    if params.knn.k > n_reference {
        return Err(bad(format!(
            "kNN with k = {} needs at least k reference rows",
            params.knn.k
        )));
    }
    for lp in &params.linear {
        if lp.lambdas.len() > 1 && (lp.cv_folds < 2 || lp.cv_folds > n_reference) {
            return Err(bad(format!(
                "the {:?} readout's {} cross-validation folds need 2 <= folds <= reference rows",
                lp.kind, lp.cv_folds
            )));
        }
    }
    Ok(note)
}

/// Scores matrices under one protocol: the same splits, labels, readouts
/// and preprocessing for every view and baseline.
pub struct Evaluator<'a> {
    params: &'a EvalParams,
    labels: &'a [u8],
    n_classes: usize,
    splits: Vec<Split>,
    protocol: ProtocolInfo,
    normalize: bool,
    linear_splits: usize,
    observer: &'a dyn Observer,
    notes: Vec<String>,
    progress: Progress,
}

/// Where an evaluation stands, for the progress lines: matrices scored of
/// those announced, and the time so far.
struct Progress {
    start: Instant,
    total: usize,
    done: usize,
}

impl Progress {
    /// "[i/n] ..., ETA s" from the mean time per matrix so far.
    fn line(&self, what: &str) -> String {
        let elapsed = self.start.elapsed().as_secs_f64();
        let at = format!("[{}/{}]", self.done + 1, self.total.max(self.done + 1));
        if self.done == 0 || self.total <= self.done {
            return format!("{at} {what}; {elapsed:.0} s so far");
        }
        let eta = elapsed / self.done as f64 * (self.total - self.done) as f64;
        format!("{at} {what}; {elapsed:.0} s so far, ETA {eta:.0} s")
    }
}

impl<'a> Evaluator<'a> {
    pub fn new(
        params: &'a EvalParams,
        labels: &'a [u8],
        protocol: Protocol,
        normalize: Normalize,
        observer: &'a dyn Observer,
    ) -> Result<Evaluator<'a>, PipelineError> {
        let n = labels.len();
        let mut notes = Vec::new();
        let mut present = [false; 256];
        for &l in labels {
            present[l as usize] = true;
        }
        let classes: Vec<usize> = (0..256).filter(|&c| present[c]).collect();
        if classes.len() < 2 {
            let warning = format!(
                "Warning: the labels hold {} class{} ({classes:?}): every readout scores 100%, so these accuracies say nothing.",
                classes.len(),
                if classes.len() == 1 { "" } else { "es" }
            );
            observer.observe(Event::Info(warning.clone()));
            notes.push(warning);
        }
        let (kind, splits) = match protocol {
            Protocol::HeldOut {
                n_reference,
                n_query,
            } => (
                ProtocolKind::HeldOut,
                vec![held_out_split(n_reference, n_query)],
            ),
            Protocol::RandomSplit => {
                let ((n_ref, n_q), note) = random_split_sizes(params, n);
                notes.extend(note);
                let s = random_splits(n, n_ref, n_q, params.repeats, params.split_seed)?;
                (ProtocolKind::RandomSplit, s)
            }
        };
        let protocol = ProtocolInfo {
            kind,
            n_reference: splits.first().map_or(0, |s| s.reference.len()),
            n_query: splits.first().map_or(0, |s| s.query.len()),
            repeats: splits.len(),
            k: params.knn.k,
            metric: params.knn.metric,
            weighting: params.knn.weighting,
            split_seed: params.split_seed,
        };
        Ok(Evaluator {
            params,
            labels,
            n_classes: labels.iter().copied().max().map_or(0, |m| m as usize + 1),
            splits,
            protocol,
            normalize: normalize == Normalize::L2,
            linear_splits: usize::MAX,
            observer,
            notes,
            progress: Progress {
                start: Instant::now(),
                total: 0,
                done: 0,
            },
        })
    }

    /// Fit the linear readouts on the first `k` splits only (at least one).
    pub fn with_linear_splits(mut self, k: Option<usize>) -> Evaluator<'a> {
        self.linear_splits = k.unwrap_or(usize::MAX).max(1);
        if self.linear_splits < self.splits.len() && !self.params.linear.is_empty() {
            self.notes.push(format!(
                "Linear readouts on the first {} of the {} splits (a time budget); kNN on all. Paired differences pair rows on the same splits.",
                self.linear_splits,
                self.splits.len()
            ));
        }
        self
    }

    /// Announce `n` more matrices to score (for the progress lines' ETA).
    pub fn expect(&mut self, n: usize) {
        self.progress.total += n;
    }

    pub fn protocol(&self) -> &ProtocolInfo {
        &self.protocol
    }

    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The preprocessing every matrix gets before a readout.
    pub fn prepare(&self, x: &mut Array2<f32>) {
        if self.normalize {
            l2_normalize_rows(x);
        }
    }

    fn check_rows(&self, x: &Array2<f32>, name: &str) -> Result<(), PipelineError> {
        if x.nrows() != self.labels.len() {
            return Err(PipelineError::Shape(format!(
                "{name}: {} rows for {} labels",
                x.nrows(),
                self.labels.len()
            )));
        }
        Ok(())
    }

    fn scored(&self, row: ResultRow, t: Instant) -> ResultRow {
        self.observer.observe(Event::Scored {
            row: Box::new(row.clone()),
            seconds: t.elapsed().as_secs_f64(),
        });
        row
    }

    /// The kNN readout of a prepared matrix, as a report row.
    pub fn knn(
        &self,
        x: &Array2<f32>,
        name: &str,
        n_rec: Option<usize>,
        time: Option<f64>,
    ) -> Result<ResultRow, PipelineError> {
        self.check_rows(x, name)?;
        let t = Instant::now();
        let e = evaluate_knn(
            x.view(),
            self.labels,
            self.n_classes,
            &self.splits,
            &self.params.knn,
        )?;
        Ok(self.scored(
            result_row(name, Classifier::Knn, n_rec, time, x.ncols(), &e),
            t,
        ))
    }

    /// kNN and the linear readouts of a prepared matrix, all from one Gram
    /// matrix of its rows (computed here, once).
    pub fn score(
        &mut self,
        x: &Array2<f32>,
        name: &str,
        n_rec: Option<usize>,
        time: Option<f64>,
    ) -> Result<Vec<ResultRow>, PipelineError> {
        self.check_rows(x, name)?;
        let dim = x.ncols();
        let info = |ev: &Self, what: &str| {
            ev.observer.observe(Event::Info(
                ev.progress.line(&format!("{name} ({dim} dims): {what}")),
            ))
        };
        let shared = !self.params.linear.is_empty() || self.params.knn.metric == Metric::Euclidean;
        let gram = if shared {
            crate::memory::check(
                || {
                    format!(
                        "the Gram matrix and linear readouts of `{name}` ({} rows)",
                        x.nrows()
                    )
                },
                self.gram_bytes(dim),
            )?;
            info(self, "Gram matrix");
            Some(ViewGram::of_rows(x.view()))
        } else {
            None
        };
        info(self, "kNN");
        let t = Instant::now();
        let e = match &gram {
            Some(g) => {
                evaluate_knn_gram(
                    x.view(),
                    g,
                    self.labels,
                    self.n_classes,
                    &self.splits,
                    &self.params.knn,
                )?
                .0
            }
            None => evaluate_knn(
                x.view(),
                self.labels,
                self.n_classes,
                &self.splits,
                &self.params.knn,
            )?,
        };
        let knn_row = result_row(name, Classifier::Knn, n_rec, time, dim, &e);
        let mut rows = vec![self.scored(knn_row, t)];
        let n_lin = self.linear_splits.min(self.splits.len());
        let splits = &self.splits[..n_lin];
        for lp in &self.params.linear {
            let Some(g) = &gram else { continue };
            let primal = primal_ridge_fits(lp, dim, splits);
            info(
                self,
                &format!(
                    "{} ({} form, {n_lin} splits)",
                    Classifier::from(lp.kind),
                    if primal { "primal" } else { "kernel" }
                ),
            );
            let t = Instant::now();
            let e = if primal {
                evaluate_linear(x.view(), self.labels, self.n_classes, splits, lp)?
            } else {
                evaluate_kernel(g, self.labels, self.n_classes, splits, lp)?.0
            };
            let row = result_row(name, Classifier::from(lp.kind), n_rec, time, dim, &e);
            rows.push(self.scored(row, t));
        }
        self.progress.done += 1;
        Ok(rows)
    }

    /// Memory the shared Gram matrix of a `dim`-column view and its readouts
    /// take at most: the n x n f32 Gram matrix, the centred copy of the rows it
    /// is computed from, and per CV fold (folds run in parallel) the f64
    /// centred training block with its factorised copy (16 bytes a cell).
    fn gram_bytes(&self, dim: usize) -> u64 {
        let n = self.labels.len() as u64;
        let m = self
            .splits
            .iter()
            .map(|s| s.reference.len())
            .max()
            .unwrap_or(0) as u64;
        let folds = if self.params.linear.is_empty() {
            0
        } else {
            self.params
                .linear
                .iter()
                .map(|l| l.cv_folds)
                .max()
                .unwrap_or(1)
                .max(1) as u64
        };
        let cells = |a: u64, b: u64| a.saturating_mul(b);
        cells(n, n)
            .saturating_add(cells(n, dim as u64))
            .saturating_mul(4)
            .saturating_add(cells(folds, cells(m, m)).saturating_mul(16))
    }

    /// How many matrices [`Evaluator::baselines`] scores for these arguments.
    pub fn n_baselines(controls: Controls, dims: &[usize], n_rec: Option<usize>) -> usize {
        let mut d = dims.to_vec();
        d.sort_unstable();
        d.dedup();
        1 + d.len() * (controls.random_projection as usize + controls.random_features as usize)
            + (controls.rate_product && n_rec.is_some_and(|n| n >= 2)) as usize
    }

    /// The baselines beside views of dimensions `dims`: raw pixels, and, as
    /// `controls` asks, at each distinct dimension a random projection and
    /// random ReLU features of the pixels, and the rate-product control of
    /// `n_rec` nodes (all seeded from `seed`). Every control is computed from
    /// the pixels as the readouts see them (prepared), and its output is
    /// prepared again like a view, so all rows get the same preprocessing.
    pub fn baselines(
        &mut self,
        pixels: &Array2<f32>,
        dims: &[usize],
        n_rec: Option<usize>,
        controls: Controls,
        seed: u64,
    ) -> Result<Vec<ResultRow>, PipelineError> {
        let mut raw = pixels.clone();
        self.prepare(&mut raw);
        let mut rows = self.score(&raw, &Baseline::RawPixels.name(), None, None)?;
        let mut dims = dims.to_vec();
        dims.sort_unstable();
        dims.dedup();
        for &dim in &dims {
            if controls.random_projection {
                let mut rp = random_projection(raw.view(), dim, projection_seed(seed));
                self.prepare(&mut rp);
                let name = Baseline::RandomProjection { dim }.name();
                rows.extend(self.score(&rp, &name, None, None)?);
            }
            if controls.random_features {
                let mut rf = random_features(raw.view(), dim, features_seed(seed));
                self.prepare(&mut rf);
                let name = Baseline::RandomFeatures { dim }.name();
                rows.extend(self.score(&rf, &name, None, None)?);
            }
        }
        if let Some(nodes) = n_rec.filter(|&n| controls.rate_product && n >= 2) {
            let mut rp = rate_product(raw.view(), nodes, rate_product_seed(seed));
            self.prepare(&mut rp);
            let name = Baseline::RateProduct { nodes }.name();
            rows.extend(self.score(&rp, &name, None, None)?);
        }
        Ok(rows)
    }

    pub fn into_notes(self) -> Vec<String> {
        self.notes
    }

    /// Puts an evaluation's outcome into `rep`: the scored rows, the
    /// baselines, the time since `started`, and this evaluator's notes, with
    /// the note that everything was L2-normalised when it was. What `geodyn
    /// evaluate` and the Python `evaluate` both report.
    pub fn fill_report(
        self,
        rep: &mut Report,
        rows: Vec<ResultRow>,
        baselines: Vec<ResultRow>,
        started: Instant,
    ) {
        rep.results = rows;
        rep.baselines = baselines;
        rep.timing.evaluate_s = started.elapsed().as_secs_f64();
        let l2 = self.normalize;
        rep.notes = self.into_notes();
        if l2 {
            rep.notes.push(
                "All vectors, baselines included, are L2-normalised before classification.".into(),
            );
        }
    }
}

/// Embedding matrices to evaluate, one per view, loaded one at a time.
pub trait ViewSource {
    fn views(&self) -> &[ViewInfo];
    /// View `i`, `n x dim`, as encoded (not yet prepared).
    fn load(&self, i: usize) -> Result<Cow<'_, Array2<f32>>, PipelineError>;
}

/// The views of a complete encode directory, each checked against its
/// manifest (size, CRC-32, shape) as it is read.
pub struct DirViews {
    dir: PathBuf,
    manifest: super::Manifest,
}

impl DirViews {
    pub fn new(dir: &Path, manifest: &super::Manifest) -> DirViews {
        DirViews {
            dir: dir.to_path_buf(),
            manifest: manifest.clone(),
        }
    }
}

impl ViewSource for DirViews {
    fn views(&self) -> &[ViewInfo] {
        &self.manifest.views
    }
    fn load(&self, i: usize) -> Result<Cow<'_, Array2<f32>>, PipelineError> {
        let v = &self.manifest.views[i];
        let x: Array2<f32> =
            super::store::read_npy_checked(&self.dir, self.manifest.file_sum(&v.file)?)?;
        if x.dim() != (self.manifest.n_rows, v.dim) {
            return Err(PipelineError::Corrupt {
                path: self.dir.join(&v.file),
                message: format!(
                    "shape {:?}; the manifest says ({}, {})",
                    x.dim(),
                    self.manifest.n_rows,
                    v.dim
                ),
            });
        }
        Ok(Cow::Owned(x))
    }
}

/// Views held in memory.
pub struct MemoryViews {
    pub views: Vec<ViewInfo>,
    pub matrices: Vec<Array2<f32>>,
}

impl ViewSource for MemoryViews {
    fn views(&self) -> &[ViewInfo] {
        &self.views
    }
    fn load(&self, i: usize) -> Result<Cow<'_, Array2<f32>>, PipelineError> {
        Ok(Cow::Borrowed(&self.matrices[i]))
    }
}

/// The rows of [`score_views`] and the index of the view with the best kNN.
#[derive(Clone, Debug)]
pub struct ScoredViews {
    pub rows: Vec<ResultRow>,
    pub best: Option<usize>,
}

/// Scores every view of `source` (named with `suffix` appended); with
/// `trajectory`, also the snapshots up to each time concatenated (kNN only;
/// each snapshot prepared on its own, so every snapshot weighs the same).
pub fn score_views(
    ev: &mut Evaluator,
    source: &dyn ViewSource,
    suffix: &str,
    n_rec: Option<usize>,
    trajectory: bool,
) -> Result<ScoredViews, PipelineError> {
    let mut rows = Vec::new();
    let mut best: Option<(f64, usize)> = None;
    let mut joined: Option<(Array2<f32>, usize)> = None;
    for (vi, v) in source.views().iter().enumerate() {
        let mut x = source.load(vi)?.into_owned();
        ev.prepare(&mut x);
        let name = format!("{}{suffix}", v.name);
        let scored = ev.score(&x, &name, n_rec, v.time_ms)?;
        let acc = scored[0].accuracy_mean;
        if best.is_none_or(|(a, _)| acc > a) {
            best = Some((acc, vi));
        }
        rows.extend(scored);
        let Some(t) = v.time_ms.filter(|_| trajectory) else {
            continue;
        };
        let (m, parts) = match joined.take() {
            None => (x, 1),
            Some((j, p)) => (
                ndarray::concatenate(Axis(1), &[j.view(), x.view()])
                    .map_err(|e| PipelineError::Shape(e.to_string()))?,
                p + 1,
            ),
        };
        if parts >= 2 {
            let name = format!("trajectory_t{}{suffix}", crate::embed::fmt_ms(t));
            rows.push(ev.knn(&m, &name, n_rec, Some(t))?);
        }
        joined = Some((m, parts));
    }
    Ok(ScoredViews {
        rows,
        best: best.map(|(_, i)| i),
    })
}

/// The figures of an evaluation: accuracy against snapshot time (when there
/// are at least two timed views), and the confusion and PCA of one view.
pub struct Figures<'a> {
    pub out: &'a Path,
    pub title: &'a str,
    pub n_recurrent: usize,
    pub seed: u64,
}

impl Figures<'_> {
    /// Accuracy against time of the timed rows, beside the untimed kNN rows.
    pub fn accuracy_vs_time(
        &self,
        results: &[ResultRow],
        baselines: &[ResultRow],
    ) -> Result<Option<String>, PipelineError> {
        let timed: Vec<&ResultRow> = results.iter().filter(|r| r.time_ms.is_some()).collect();
        if timed.len() < 2 {
            return Ok(None);
        }
        let mut series = Vec::new();
        for clf in [Classifier::Knn, Classifier::LinearSvm, Classifier::Ridge] {
            let pts: Vec<(f64, f64, f64)> = timed
                .iter()
                .filter(|r| r.classifier == clf)
                .map(|r| (r.time_ms.unwrap_or(0.0), r.accuracy_mean, r.accuracy_sd))
                .collect();
            if pts.len() >= 2 {
                series.push(Series {
                    label: format!("weights N={} ({clf})", self.n_recurrent),
                    points: pts,
                });
            }
        }
        let base: Vec<(String, f64)> = baselines
            .iter()
            .chain(results.iter().filter(|r| r.time_ms.is_none()))
            .filter(|r| r.classifier == Classifier::Knn)
            .map(|r| (format!("{} (knn)", r.embedding), r.accuracy_mean))
            .collect();
        let file = "accuracy_vs_time.png";
        report::plot_accuracy_vs_time(
            &self.out.join(file),
            &series,
            &base,
            &format!("{}: accuracy against snapshot time", self.title),
        )?;
        Ok(Some(file.into()))
    }

    /// The confusion (of its kNN row) and PCA scatter of one prepared view.
    pub fn view(
        &self,
        name: &str,
        x: &Array2<f32>,
        labels: &[u8],
        results: &[ResultRow],
    ) -> Result<Vec<String>, PipelineError> {
        let mut files = Vec::new();
        if let Some(r) = results
            .iter()
            .find(|r| r.embedding == name && r.classifier == Classifier::Knn)
        {
            report::plot_confusion(
                &self.out.join("confusion.png"),
                &r.confusion,
                &format!("{name} (knn), confusion"),
            )?;
            files.push("confusion.png".to_string());
        }
        if x.ncols() >= 3 {
            let scores = crate::eval::pca(x.view(), 3, self.seed)?;
            report::plot_pca_scatter(
                &self.out.join("pca.png"),
                scores.view(),
                labels,
                &format!("{}: PCA of `{name}`", self.title),
            )?;
            files.push("pca.png".to_string());
        }
        Ok(files)
    }
}

/// Dynamics of a set of runs, for a report's `extra`.
pub fn dynamics_summary(
    t: &crate::record::RunTotals,
    images: usize,
    n_recurrent: usize,
    duration_ms: f64,
) -> serde_json::Value {
    let n = images.max(1) as f64;
    let stimulus = t.external_activations - t.lost_external;
    let rec_rate = t.activations.saturating_sub(stimulus) as f64
        / n
        / n_recurrent.max(1) as f64
        / (duration_ms / 1000.0);
    serde_json::json!({
        "images": images,
        "arrivals_per_image": t.arrivals as f64 / n,
        "lost_arrival_share": t.lost_arrivals as f64 / t.arrivals.max(1) as f64,
        "activations_per_image": t.activations as f64 / n,
        "stimulus_activations_per_image": stimulus as f64 / n,
        "network_driven_rate_hz_per_recurrent_node": rec_rate,
    })
}

/// The pixels of exactly the encoded rows (reference subset, then queries),
/// checked against the encoded labels.
fn encoded_pixels(
    dir: &Path,
    m: &super::Manifest,
    labels: &[u8],
) -> Result<(Array2<f32>, ImageSet), PipelineError> {
    let mut reference = ImageSet::load(Path::new(&m.images), Path::new(&m.labels))?;
    if let Some(rows) = &m.reference_subset {
        if rows.iter().any(|&r| r >= reference.len()) {
            return Err(PipelineError::Other(format!(
                "{}: the recorded subset indexes past the file's {} images",
                m.images,
                reference.len()
            )));
        }
        reference = reference.subset(rows);
    }
    let query = match (&m.query_images, &m.query_labels) {
        (Some(i), Some(l)) => Some(ImageSet::load(Path::new(i), Path::new(l))?),
        _ => None,
    };
    // The baselines must see exactly the encoded images.
    if let Some(why) = super::store::inputs_changed(&m.inputs, &reference, query.as_ref()) {
        return Err(PipelineError::Other(format!(
            "{}: cannot compute the baselines: {why}",
            dir.display()
        )));
    }
    let mut pixel_labels = reference.labels.clone();
    let mut pixels = reference.pixels.clone();
    if let Some(q) = &query {
        pixel_labels.extend_from_slice(&q.labels);
        pixels.extend_from_slice(&q.pixels);
    }
    if pixel_labels != labels {
        return Err(PipelineError::Other(format!(
            "{}: the dataset's labels differ from the encoded ones ({}): the files changed since the encode",
            m.images,
            dir.join("labels.npy").display()
        )));
    }
    let d = reference.pixels_per_image();
    Ok((pixels_to_f32(&pixels, labels.len(), d), reference))
}

/// Evaluates the encode in `dir` and writes the report into `opts.out`.
pub fn evaluate(
    dir: &Path,
    opts: &EvaluateOptions,
    observer: &dyn Observer,
) -> Result<Report, PipelineError> {
    let t0 = Instant::now();
    // Held while reading, so no encode can --restart the directory meanwhile.
    let _lock = super::DirLock::shared(dir)?;
    let manifest = read_manifest(dir)?;
    if manifest.shard.is_some() {
        return Err(PipelineError::Other(format!(
            "{}: is one shard of an encode; merge the shards before evaluating",
            dir.display()
        )));
    }
    let mpath = dir.join("manifest.json");
    let mut raw = config::parse(&manifest.config_toml, &mpath)?;
    opts.apply(&mut raw);
    let cfg = raw.check(&mpath)?;
    cfg.refuse_homeostasis(&mpath, "evaluate")?;
    let labels: Array1<u8> = super::store::read_npy_checked(dir, manifest.file_sum("labels.npy")?)?;
    if labels.len() != manifest.n_rows {
        return Err(PipelineError::Corrupt {
            path: dir.join("labels.npy"),
            message: format!("{} labels for {} rows", labels.len(), manifest.n_rows),
        });
    }
    let labels = labels.to_vec();
    for v in &manifest.views {
        super::store::verify_size(dir, manifest.file_sum(&v.file)?)?;
    }
    let (pixels, reference) = encoded_pixels(dir, &manifest, &labels)?;
    let protocol = match manifest.n_query_set {
        Some(nq) => Protocol::HeldOut {
            n_reference: manifest.n_reference,
            n_query: nq,
        },
        None => Protocol::RandomSplit,
    };
    let normalize = cfg.embedding().normalize();
    let mut ev = Evaluator::new(cfg.evaluation(), &labels, protocol, normalize, observer)?
        .with_linear_splits(opts.linear_splits);
    let dims: Vec<usize> = manifest.views.iter().map(|v| v.dim).collect();
    let n_rec = Some(manifest.n_recurrent);
    ev.expect(manifest.views.len() + Evaluator::n_baselines(opts.controls, &dims, n_rec));
    observer.observe(Event::Info(format!(
        "evaluate {} ({} rows, {} splits of {} reference / {} queries)",
        dir.display(),
        labels.len(),
        ev.protocol().repeats,
        ev.protocol().n_reference,
        ev.protocol().n_query
    )));
    let source = DirViews::new(dir, &manifest);
    let scored = score_views(&mut ev, &source, "", n_rec, cfg.embedding().trajectory())?;
    let baselines = ev.baselines(&pixels, &dims, n_rec, opts.controls, cfg.seed())?;
    std::fs::create_dir_all(&opts.out).map_err(super::store::io(&opts.out))?;
    let mut figures = Vec::new();
    if opts.figures {
        let fig = Figures {
            out: &opts.out,
            title: cfg.experiment(),
            n_recurrent: manifest.n_recurrent,
            seed: cfg.seed(),
        };
        figures.extend(fig.accuracy_vs_time(&scored.rows, &baselines)?);
        let shown = match &opts.figure_view {
            Some(name) => manifest.views.iter().position(|v| &v.name == name),
            None => scored.best,
        };
        if let Some(vi) = shown {
            let mut x = source.load(vi)?.into_owned();
            ev.prepare(&mut x);
            figures.extend(fig.view(&manifest.views[vi].name, &x, &labels, &scored.rows)?);
        }
    }
    let mut rep = dir_report(&cfg, &manifest, &reference, ev.protocol().clone());
    ev.fill_report(&mut rep, scored.rows, baselines, t0);
    rep.notes.push(format!(
        "Encode: {} threads; arrivals per second counts all threads.",
        manifest.threads
    ));
    rep.figures = figures;
    report::write_report(&opts.out, &rep)?;
    Ok(rep)
}

/// The report of an encode directory, without results.
fn dir_report(
    cfg: &ExperimentConfig,
    m: &super::Manifest,
    reference: &ImageSet,
    protocol: ProtocolInfo,
) -> Report {
    let totals = m.totals;
    let mut rep = Report::new(cfg.experiment());
    rep.config_hash = m.config_hash.clone();
    rep.seed = m.seed;
    rep.dataset = DatasetInfo {
        images: m.images.clone(),
        labels: m.labels.clone(),
        n: m.n_reference,
        query_images: m.query_images.clone(),
        query_labels: m.query_labels.clone(),
        n_query_set: m.n_query_set,
        class_counts: reference.class_counts(),
    };
    rep.protocol = protocol;
    rep.timing = Timing {
        encode_s: m.encode_s,
        evaluate_s: 0.0,
        arrivals_per_s: (m.encode_s > 0.0).then(|| totals.arrivals as f64 / m.encode_s),
        total_arrivals: Some(totals.arrivals),
        images_encoded: m.n_rows,
    };
    rep.network = Some(m.network.clone());
    let duration = cfg.run().duration_ms();
    let dynamics = dynamics_summary(&totals, m.n_rows, m.n_recurrent, duration);
    let x = &mut rep.extra;
    x.insert(
        "run_totals".into(),
        serde_json::to_value(totals).unwrap_or_default(),
    );
    x.insert("encode_threads".into(), m.threads.into());
    x.insert(
        "mean_recurrent_rate_hz".into(),
        dynamics["network_driven_rate_hz_per_recurrent_node"].clone(),
    );
    x.insert(
        "lost_arrival_share".into(),
        dynamics["lost_arrival_share"].clone(),
    );
    x.insert("dynamics".into(), dynamics);
    rep
}
