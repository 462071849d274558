//! Evaluation of an encode directory: every view with the config's kNN (and
//! linear readouts where affordable), always beside the raw-pixel baseline and
//! a random projection of the pixels to the view's dimension, on the same
//! splits, with the same preprocessing. Writes `report.json`, `report.md` and
//! figures.

use super::{read_manifest, PipelineError};
use crate::config::{self, metric_name, weighting_name, ExperimentConfig, Normalize};
use crate::dataset::ImageSet;
use crate::eval::{
    evaluate_knn, evaluate_linear, held_out_split, pixels_to_f32, random_projection, random_splits,
    Evaluation, LinearKind, Split,
};
use crate::report::{self, DatasetInfo, ProtocolInfo, Report, ResultRow, Series, Timing};
use ndarray::{Array1, Array2, Axis};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct EvaluateOptions {
    /// Where to write the report (created if missing).
    pub out: PathBuf,
    pub figures: bool,
    /// Linear readouts are fitted only on views of at most this many dimensions
    /// (their cost grows with dim; larger views get kNN only, and the report says so).
    pub linear_max_dim: usize,
    pub progress: bool,
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
            linear_max_dim: 4096,
            progress: true,
            force_l2: false,
            knn_only: false,
            trajectory: false,
        }
    }
}

fn l2_normalize(x: &mut Array2<f32>) {
    for mut row in x.axis_iter_mut(Axis(0)) {
        let n = row
            .iter()
            .map(|v| (*v as f64) * (*v as f64))
            .sum::<f64>()
            .sqrt();
        if n > 0.0 {
            row.mapv_inplace(|v| (v as f64 / n) as f32);
        }
    }
}

fn linear_name(k: &LinearKind) -> &'static str {
    match k {
        LinearKind::Ridge => "ridge",
        LinearKind::Svm => "linear_svm",
    }
}

/// A report row from an evaluation.
pub fn result_row(
    embedding: &str,
    classifier: &str,
    n_rec: Option<usize>,
    time: Option<f64>,
    dim: usize,
    e: &Evaluation,
) -> ResultRow {
    ResultRow {
        embedding: embedding.to_string(),
        classifier: classifier.to_string(),
        n_recurrent: n_rec,
        time_ms: time,
        dim,
        accuracy_mean: e.accuracy_mean,
        accuracy_sd: e.accuracy_sd,
        per_class: e.per_class.clone(),
        confusion: e.confusion.clone(),
    }
}

struct Evaluator<'a> {
    cfg: &'a ExperimentConfig,
    labels: &'a [u8],
    n_classes: usize,
    splits: &'a [Split],
    linear_max_dim: usize,
    progress: bool,
    notes: Vec<String>,
}

impl Evaluator<'_> {
    /// The kNN readout of one matrix, as a report row (printed as it lands).
    fn knn(
        &self,
        x: &Array2<f32>,
        name: &str,
        n_rec: Option<usize>,
        time: Option<f64>,
    ) -> Result<ResultRow, PipelineError> {
        let t = Instant::now();
        let knn = evaluate_knn(
            x.view(),
            self.labels,
            self.n_classes,
            self.splits,
            &self.cfg.evaluation.knn,
        )?;
        if self.progress {
            eprintln!(
                "  {name:<28} knn    {:6.2}% +/- {:.2}  ({:.1} s)",
                100.0 * knn.accuracy_mean,
                100.0 * knn.accuracy_sd,
                t.elapsed().as_secs_f64()
            );
        }
        Ok(result_row(name, "knn", n_rec, time, x.ncols(), &knn))
    }

    /// kNN and (if small enough) linear readouts of one matrix.
    fn all(
        &mut self,
        x: &Array2<f32>,
        name: &str,
        n_rec: Option<usize>,
        time: Option<f64>,
    ) -> Result<Vec<ResultRow>, PipelineError> {
        let dim = x.ncols();
        let mut rows = vec![self.knn(x, name, n_rec, time)?];
        for lp in &self.cfg.evaluation.linear {
            if dim > self.linear_max_dim {
                let note = format!(
                    "{}: not fitted on `{name}` ({dim} dimensions > {}); kNN only",
                    linear_name(&lp.kind),
                    self.linear_max_dim
                );
                if !self.notes.contains(&note) {
                    self.notes.push(note);
                }
                continue;
            }
            let t = Instant::now();
            let e = evaluate_linear(x.view(), self.labels, self.n_classes, self.splits, lp)?;
            if self.progress {
                eprintln!(
                    "  {name:<28} {:<6} {:6.2}% +/- {:.2}  ({:.1} s)",
                    linear_name(&lp.kind),
                    100.0 * e.accuracy_mean,
                    100.0 * e.accuracy_sd,
                    t.elapsed().as_secs_f64()
                );
            }
            rows.push(result_row(
                name,
                linear_name(&lp.kind),
                n_rec,
                time,
                dim,
                &e,
            ));
        }
        Ok(rows)
    }
}

/// Evaluates the encode in `dir` and writes the report into `opts.out`.
pub fn evaluate(dir: &Path, opts: &EvaluateOptions) -> Result<Report, PipelineError> {
    let t0 = Instant::now();
    let manifest = read_manifest(dir)?;
    if manifest.shard.is_some() {
        return Err(PipelineError::Other(format!(
            "{}: is one shard of an encode; merge the shards before evaluating",
            dir.display()
        )));
    }
    let mpath = dir.join("manifest.json");
    let mut cfg = config::parse(&manifest.config_toml, &mpath)?.check(&mpath)?;
    if opts.force_l2 {
        cfg.embedding.normalize = Normalize::L2;
    }
    if opts.knn_only {
        cfg.evaluation.linear.clear();
    }
    if opts.trajectory {
        cfg.embedding.trajectory = true;
    }
    let lp = dir.join("labels.npy");
    let labels: Array1<u8> = ndarray_npy::read_npy(&lp).map_err(|e| PipelineError::Corrupt {
        path: lp.clone(),
        message: e.to_string(),
    })?;
    let labels = labels.to_vec();
    let n = labels.len();
    let n_classes = labels.iter().copied().max().map_or(0, |m| m as usize + 1);

    // The baselines need the pixels of exactly the encoded rows.
    let mut reference = ImageSet::load(Path::new(&manifest.images), Path::new(&manifest.labels))?;
    if let Some(rows) = &manifest.reference_subset {
        if rows.iter().any(|&r| r >= reference.len()) {
            return Err(PipelineError::Other(format!(
                "{}: the recorded subset indexes past the file's {} images",
                manifest.images,
                reference.len()
            )));
        }
        reference = reference.subset(rows);
    }
    let query = match (&manifest.query_images, &manifest.query_labels) {
        (Some(i), Some(l)) => Some(ImageSet::load(Path::new(i), Path::new(l))?),
        _ => None,
    };
    let mut pixel_labels = reference.labels.clone();
    let mut pixels = reference.pixels.clone();
    if let Some(q) = &query {
        pixel_labels.extend_from_slice(&q.labels);
        pixels.extend_from_slice(&q.pixels);
    }
    if pixel_labels != labels {
        return Err(PipelineError::Other(format!(
            "{}: the dataset's labels differ from the encoded ones ({}): the files changed since the encode",
            manifest.images,
            lp.display()
        )));
    }
    let d_pix = reference.pixels_per_image();
    let mut raw = pixels_to_f32(&pixels, n, d_pix);
    let normalize = cfg.embedding.normalize == Normalize::L2;
    if normalize {
        l2_normalize(&mut raw);
    }

    let ev = &cfg.evaluation;
    let (kind, splits, n_ref, n_q) = match manifest.n_query_set {
        Some(nq) => (
            "held_out",
            vec![held_out_split(manifest.n_reference, nq)],
            manifest.n_reference,
            nq,
        ),
        None => {
            let n_q = ev.n_query.unwrap_or((n / 10).max(1));
            let n_ref = ev.n_reference.unwrap_or(n.saturating_sub(n_q));
            (
                "random_split",
                random_splits(n, n_ref, n_q, ev.repeats, ev.split_seed)?,
                n_ref,
                n_q,
            )
        }
    };
    let mut evaluator = Evaluator {
        cfg: &cfg,
        labels: &labels,
        n_classes,
        splits: &splits,
        linear_max_dim: opts.linear_max_dim,
        progress: opts.progress,
        notes: Vec::new(),
    };
    let n_rec = Some(manifest.n_recurrent);
    if opts.progress {
        eprintln!(
            "evaluate {} ({} rows, {} splits of {} reference / {} queries)",
            dir.display(),
            n,
            splits.len(),
            n_ref,
            n_q
        );
    }
    let mut results = Vec::new();
    let mut best: Option<(f64, usize)> = None;
    // Trajectory: the snapshots up to t, concatenated (each already normalised
    // on its own if asked, so every snapshot weighs the same).
    let mut trajectory: Option<(Array2<f32>, usize)> = None;
    for (vi, v) in manifest.views.iter().enumerate() {
        let p = dir.join(&v.file);
        let mut x: Array2<f32> = ndarray_npy::read_npy(&p).map_err(|e| PipelineError::Corrupt {
            path: p.clone(),
            message: e.to_string(),
        })?;
        if x.nrows() != n {
            return Err(PipelineError::Corrupt {
                path: p,
                message: format!("{} rows for {} labels", x.nrows(), n),
            });
        }
        if normalize {
            l2_normalize(&mut x);
        }
        let rows = evaluator.all(&x, &v.name, n_rec, v.time_ms)?;
        let acc = rows[0].accuracy_mean;
        if best.is_none_or(|(a, _)| acc > a) {
            best = Some((acc, vi));
        }
        results.extend(rows);
        if cfg.embedding.trajectory && v.time_ms.is_some() {
            let (joined, parts) = match trajectory.take() {
                None => (x, 1),
                Some((t, p)) => (
                    ndarray::concatenate(Axis(1), &[t.view(), x.view()])
                        .map_err(|e| PipelineError::Shape(e.to_string()))?,
                    p + 1,
                ),
            };
            if parts >= 2 {
                let name = format!(
                    "trajectory_t{}",
                    crate::embed::fmt_ms(v.time_ms.unwrap_or(0.0))
                );
                results.push(evaluator.knn(&joined, &name, n_rec, v.time_ms)?);
            }
            trajectory = Some((joined, parts));
        }
    }
    drop(trajectory);

    let mut baselines = evaluator.all(&raw, "raw_pixels", None, None)?;
    let mut dims: Vec<usize> = manifest.views.iter().map(|v| v.dim).collect();
    dims.sort_unstable();
    dims.dedup();
    for d in dims {
        let rp = random_projection(raw.view(), d, cfg.seed ^ 0x5EED);
        let mut b = evaluator.all(&rp, &format!("random_projection_{d}"), None, None)?;
        baselines.append(&mut b);
    }

    std::fs::create_dir_all(&opts.out).map_err(|source| PipelineError::Io {
        path: opts.out.clone(),
        source,
    })?;
    let mut figures = Vec::new();
    if opts.figures {
        let timed: Vec<&ResultRow> = results.iter().filter(|r| r.time_ms.is_some()).collect();
        if timed.len() >= 2 {
            let mut series = Vec::new();
            for clf in ["knn", "linear_svm", "ridge"] {
                let pts: Vec<(f64, f64, f64)> = timed
                    .iter()
                    .filter(|r| r.classifier == clf)
                    .map(|r| (r.time_ms.unwrap_or(0.0), r.accuracy_mean, r.accuracy_sd))
                    .collect();
                if pts.len() >= 2 {
                    series.push(Series {
                        label: format!("weights N={} ({clf})", manifest.n_recurrent),
                        points: pts,
                    });
                }
            }
            let base: Vec<(String, f64)> = baselines
                .iter()
                .chain(results.iter().filter(|r| r.time_ms.is_none()))
                .filter(|r| r.classifier == "knn")
                .map(|r| (format!("{} (knn)", r.embedding), r.accuracy_mean))
                .collect();
            report::plot_accuracy_vs_time(
                &opts.out.join("accuracy_vs_time.png"),
                &series,
                &base,
                &format!("{}: accuracy against snapshot time", cfg.experiment),
            )?;
            figures.push("accuracy_vs_time.png".to_string());
        }
        if let Some((_, vi)) = best {
            let v = &manifest.views[vi];
            let best_row = results
                .iter()
                .find(|r| r.embedding == v.name && r.classifier == "knn");
            if let Some(r) = best_row {
                report::plot_confusion(
                    &opts.out.join("confusion.png"),
                    &r.confusion,
                    &format!("{} (knn), confusion", v.name),
                )?;
                figures.push("confusion.png".to_string());
            }
            let p = dir.join(&v.file);
            let mut x: Array2<f32> =
                ndarray_npy::read_npy(&p).map_err(|e| PipelineError::Corrupt {
                    path: p.clone(),
                    message: e.to_string(),
                })?;
            if normalize {
                l2_normalize(&mut x);
            }
            if x.ncols() >= 3 {
                let scores = report::pca(x.view(), 3, cfg.seed)?;
                report::plot_pca_scatter(
                    &opts.out.join("pca.png"),
                    scores.view(),
                    &labels,
                    &format!("{}: PCA of `{}`", cfg.experiment, v.name),
                )?;
                figures.push("pca.png".to_string());
            }
        }
    }

    let totals = manifest.totals;
    let mut rep = Report::new(cfg.experiment.clone());
    rep.config_hash = manifest.config_hash.clone();
    rep.seed = manifest.seed;
    rep.dataset = DatasetInfo {
        images: manifest.images.clone(),
        labels: manifest.labels.clone(),
        n: manifest.n_reference,
        query_images: manifest.query_images.clone(),
        query_labels: manifest.query_labels.clone(),
        n_query_set: manifest.n_query_set,
        class_counts: reference.class_counts(),
    };
    rep.protocol = ProtocolInfo {
        kind: kind.to_string(),
        n_reference: n_ref,
        n_query: n_q,
        repeats: splits.len(),
        k: ev.knn.k,
        metric: metric_name(ev.knn.metric).to_string(),
        weighting: weighting_name(ev.knn.weighting).to_string(),
        split_seed: ev.split_seed,
    };
    rep.results = results;
    rep.baselines = baselines;
    rep.timing = Timing {
        encode_s: manifest.encode_s,
        evaluate_s: t0.elapsed().as_secs_f64(),
        arrivals_per_s: (manifest.encode_s > 0.0)
            .then(|| totals.arrivals as f64 / manifest.encode_s),
        total_arrivals: Some(totals.arrivals),
        images_encoded: manifest.n_rows,
    };
    rep.network = Some(manifest.network.clone());
    rep.extra.insert(
        "run_totals".into(),
        serde_json::to_value(totals).unwrap_or_default(),
    );
    rep.extra
        .insert("encode_threads".into(), manifest.threads.into());
    rep.extra.insert(
        "mean_recurrent_rate_hz".into(),
        (totals
            .activations
            .saturating_sub(totals.external_activations - totals.lost_external) as f64
            / (manifest.n_rows.max(1) * manifest.n_recurrent.max(1)) as f64
            / (cfg.run.duration_ms() / 1000.0))
            .into(),
    );
    rep.extra.insert(
        "lost_arrival_share".into(),
        (totals.lost_arrivals as f64 / totals.arrivals.max(1) as f64).into(),
    );
    rep.notes = evaluator.notes;
    if normalize {
        rep.notes.push(
            "All vectors, baselines included, are L2-normalised before classification.".into(),
        );
    }
    rep.notes.push(format!(
        "Encode: {} threads; arrivals per second counts all threads.",
        manifest.threads
    ));
    rep.figures = figures;
    report::write_report(&opts.out, &rep)?;
    Ok(rep)
}
