//! Report stage: the last stage of the pipeline
//! (`dataset -> stimulus -> network -> sim -> record -> embed -> eval -> report`).
//!
//! It receives finished numbers (accuracy tables from `eval`, timings, a network summary)
//! and embeddings, and turns them into artefacts a person reads: `report.json` (the
//! machine-readable record, schema in `docs/report-schema.md`), `report.md` (the same
//! numbers as tables, with the honest baselines in the same table as the results), and PNG
//! figures (PCA scatter, confusion heatmap, accuracy against time, weight histograms).
//! Nothing here runs a simulation, a classifier or a projection: the PCA scores that the
//! scatter figure draws come from [`crate::eval::pca`]. Plot text uses a vendored DejaVu
//! Sans font (`assets/fonts/`), so figures render identically on a machine with no system
//! fonts.
//!
//! Conventions: every accuracy in a [`Report`] is a fraction in `[0, 1]`; the Markdown and
//! the figures show percentages. Times are milliseconds of simulated time, durations of
//! computation are seconds of wall time.

mod markdown;
mod network;
mod plot;
mod run_export;

/// Temporary re-export: the PCA moved to `eval` (it is a computation, not rendering).
/// Callers should import it from `crate::eval`; this goes once they do.
pub use markdown::render_markdown;
pub use network::{
    export_network, export_network_npy, network_summary, quantiles, EdgeClassStats, ExportContext,
    EXPORT_FORMAT_VERSION,
};
pub use plot::{
    plot_accuracy_lines, plot_accuracy_vs_time, plot_confusion, plot_histograms, plot_pca_scatter,
    HistPanel, Series, XAxis,
};
pub use run_export::{export_run, RunExportInfo};

use crate::eval::{Classifier, Metric, Weighting};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Errors of the report stage. Every variant that touches a file names it.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("I/O error on {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot draw {}: {message}", path.display())]
    Plot { path: PathBuf, message: String },
    #[error("cannot serialise report for {}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The input data cannot be reported or plotted (empty, mismatched lengths, non-finite).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("cannot load the embedded plot font: {0}")]
    Font(String),
    /// A computation the report asked of `eval` failed (today: the PCA of a figure), so
    /// `?` on [`crate::eval::pca`] keeps working in functions that return `ReportError`.
    #[error(transparent)]
    Eval(#[from] crate::eval::EvalError),
}

/// Everything one experiment run reports. Serialised as `report.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub experiment: String,
    pub geodyn_version: String,
    pub config_hash: String,
    pub seed: u64,
    pub dataset: DatasetInfo,
    pub protocol: ProtocolInfo,
    pub results: Vec<ResultRow>,
    #[serde(default)]
    pub baselines: Vec<ResultRow>,
    #[serde(default)]
    pub timing: Timing,
    /// Free-form summary of the built network.
    #[serde(default)]
    pub network: Option<serde_json::Value>,
    /// Experiment-specific numbers (e.g. weight-change shares of experiment 2).
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub notes: Vec<String>,
    /// File names (relative to the report directory) of the figures to link from
    /// `report.md`, in display order.
    #[serde(default)]
    pub figures: Vec<String>,
}

impl Report {
    /// A report with this crate's version filled in and everything else empty/default.
    pub fn new(experiment: impl Into<String>) -> Self {
        Report {
            experiment: experiment.into(),
            geodyn_version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DatasetInfo {
    pub images: String,
    pub labels: String,
    /// Number of images used from `images`.
    pub n: usize,
    #[serde(default)]
    pub query_images: Option<String>,
    #[serde(default)]
    pub query_labels: Option<String>,
    #[serde(default)]
    pub n_query_set: Option<usize>,
    /// Images per class among the `n` used, indexed by label.
    #[serde(default)]
    pub class_counts: Vec<usize>,
}

/// How reference and query rows were chosen.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolKind {
    /// Repeated random splits of all rows.
    #[default]
    RandomSplit,
    /// A fixed reference set and a separate query set.
    HeldOut,
}

impl ProtocolKind {
    /// The name in `report.json` and `report.md`.
    pub fn name(self) -> &'static str {
        match self {
            ProtocolKind::RandomSplit => "random_split",
            ProtocolKind::HeldOut => "held_out",
        }
    }
}

impl std::fmt::Display for ProtocolKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ProtocolInfo {
    pub kind: ProtocolKind,
    pub n_reference: usize,
    pub n_query: usize,
    pub repeats: usize,
    pub k: usize,
    pub metric: Metric,
    pub weighting: Weighting,
    #[serde(default)]
    pub split_seed: u64,
}

/// One accuracy measurement: an embedding, a classifier, and the protocol's outcome.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ResultRow {
    pub embedding: String,
    /// `"knn"`, `"linear_svm"` or `"ridge"`.
    pub classifier: Classifier,
    /// Size of the recurrent layer, where the embedding comes from a network.
    #[serde(default)]
    pub n_recurrent: Option<usize>,
    /// Simulated time (ms) at which the embedding was read out.
    #[serde(default)]
    pub time_ms: Option<f64>,
    pub dim: usize,
    /// Mean accuracy over repeats, a fraction in [0, 1].
    pub accuracy_mean: f64,
    /// Standard deviation of the accuracy over repeats, a fraction.
    #[serde(default)]
    pub accuracy_sd: f64,
    /// Accuracy per true class (fraction), indexed by label.
    #[serde(default)]
    pub per_class: Vec<f64>,
    /// Summed over repeats: `confusion[true][predicted]`.
    #[serde(default)]
    pub confusion: Vec<Vec<u64>>,
    /// Accuracy of each split, in split order (fractions): rows scored on the
    /// same splits pair up, for paired differences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accuracies: Vec<f64>,
}

/// A paired comparison of two rows scored on the same splits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Paired {
    /// Mean of the per-split differences `a - b` (fractions).
    pub mean: f64,
    /// Its standard error: sample sd of the differences / sqrt(splits) (0 for one split).
    pub se: f64,
    pub splits: usize,
}

/// `a - b` split by split, when both rows carry per-split accuracies of the
/// same number of splits (rows of one evaluation share their splits in order).
pub fn paired_difference(a: &ResultRow, b: &ResultRow) -> Option<Paired> {
    let k = a.accuracies.len();
    if k == 0 || b.accuracies.len() != k {
        return None;
    }
    let d: Vec<f64> = a
        .accuracies
        .iter()
        .zip(&b.accuracies)
        .map(|(x, y)| x - y)
        .collect();
    let mean = d.iter().sum::<f64>() / k as f64;
    let se = if k > 1 {
        let var = d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1) as f64;
        (var / k as f64).sqrt()
    } else {
        0.0
    };
    Some(Paired {
        mean,
        se,
        splits: k,
    })
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Timing {
    /// Wall seconds spent simulating and embedding.
    pub encode_s: f64,
    /// Wall seconds spent in classifiers and protocols.
    pub evaluate_s: f64,
    #[serde(default)]
    pub arrivals_per_s: Option<f64>,
    #[serde(default)]
    pub total_arrivals: Option<u64>,
    #[serde(default)]
    pub images_encoded: usize,
}

/// Writes `report.json` and `report.md` into `out_dir` (which must exist). Each file is
/// written to a temporary file in the same directory and renamed into place, so a reader
/// never sees a half-written report and a crash leaves the previous one intact.
pub fn write_report(out_dir: &Path, report: &Report) -> Result<(), ReportError> {
    let json_path = out_dir.join("report.json");
    validate(report)?;
    let json = serde_json::to_string_pretty(report).map_err(|source| ReportError::Json {
        path: json_path.clone(),
        source,
    })?;
    write_atomic_report(&json_path, format!("{json}\n").as_bytes())?;
    write_atomic_report(
        &out_dir.join("report.md"),
        render_markdown(report).as_bytes(),
    )
}

/// serde_json writes NaN/inf as `null`, which then fails to load as `f64`: reject them
/// here, together with accuracies outside [0, 1], so every report on disk loads again.
fn validate(report: &Report) -> Result<(), ReportError> {
    let fraction = |what: &str, v: f64| {
        if v.is_finite() && (0.0..=1.0).contains(&v) {
            Ok(())
        } else {
            Err(ReportError::InvalidInput(format!(
                "{what} = {v} is not a fraction in [0, 1]"
            )))
        }
    };
    for (kind, rows) in [
        ("results", &report.results),
        ("baselines", &report.baselines),
    ] {
        for (i, row) in rows.iter().enumerate() {
            let at = format!("{kind}[{i}] ({})", row.embedding);
            fraction(&format!("{at}.accuracy_mean"), row.accuracy_mean)?;
            fraction(&format!("{at}.accuracy_sd"), row.accuracy_sd)?;
            for (c, &v) in row.per_class.iter().enumerate() {
                fraction(&format!("{at}.per_class[{c}]"), v)?;
            }
            for (k, &v) in row.accuracies.iter().enumerate() {
                fraction(&format!("{at}.accuracies[{k}]"), v)?;
            }
            if let Some(t) = row.time_ms.filter(|t| !t.is_finite()) {
                return Err(ReportError::InvalidInput(format!("{at}.time_ms = {t}")));
            }
        }
    }
    let t = &report.timing;
    for (what, v) in [
        ("timing.encode_s", t.encode_s),
        ("timing.evaluate_s", t.evaluate_s),
        ("timing.arrivals_per_s", t.arrivals_per_s.unwrap_or(0.0)),
    ] {
        if !v.is_finite() {
            return Err(ReportError::InvalidInput(format!("{what} = {v}")));
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` via a uniquely named temporary sibling, synced,
/// and a rename: a reader never sees a half-written file. The one atomic
/// write of the crate (reports, manifests, chunk markers).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path
        .file_name()
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} has no file name", path.display()),
            )
        })?
        .to_string_lossy();
    // Unique per process and call, so concurrent writers in one directory don't collide.
    let tmp = path.with_file_name(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_atomic_report(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    write_atomic(path, bytes).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_report() -> Report {
        let mut confusion = vec![vec![0u64; 10]; 10];
        for (i, row) in confusion.iter_mut().enumerate() {
            row[i] = 90 + i as u64;
            row[(i + 3) % 10] = 10 - i as u64 / 2;
        }
        let per_class: Vec<f64> = confusion
            .iter()
            .enumerate()
            .map(|(i, r)| r[i] as f64 / r.iter().sum::<u64>() as f64)
            .collect();
        let mut extra = serde_json::Map::new();
        extra.insert("share_higher".into(), serde_json::json!(0.29));
        Report {
            experiment: "weight_trajectories".into(),
            geodyn_version: env!("CARGO_PKG_VERSION").into(),
            config_hash: "abc123".into(),
            seed: 42,
            dataset: DatasetInfo {
                images: "data/mnist-10k/train-images-idx3-ubyte".into(),
                labels: "data/mnist-10k/train-labels-idx1-ubyte".into(),
                n: 10_000,
                class_counts: vec![1000; 10],
                ..Default::default()
            },
            protocol: ProtocolInfo {
                kind: ProtocolKind::RandomSplit,
                n_reference: 9000,
                n_query: 1000,
                repeats: 10,
                k: 5,
                metric: Metric::Euclidean,
                weighting: Weighting::InverseDistance,
                split_seed: 7,
            },
            results: vec![
                ResultRow {
                    embedding: "recurrent_weights".into(),
                    classifier: Classifier::Knn,
                    n_recurrent: Some(200),
                    time_ms: Some(300.0),
                    dim: 39_800,
                    accuracy_mean: 0.9649,
                    accuracy_sd: 0.0041,
                    per_class: per_class.clone(),
                    confusion: confusion.clone(),
                    accuracies: vec![0.96, 0.9698],
                },
                ResultRow {
                    embedding: "recurrent_weights".into(),
                    classifier: Classifier::Knn,
                    n_recurrent: Some(5),
                    time_ms: Some(300.0),
                    dim: 3_935,
                    accuracy_mean: 0.7166,
                    accuracy_sd: 0.012,
                    ..Default::default()
                },
            ],
            baselines: vec![ResultRow {
                embedding: "raw_pixels".into(),
                classifier: Classifier::Knn,
                dim: 784,
                accuracy_mean: 0.95,
                accuracy_sd: 0.005,
                per_class: per_class.iter().map(|p| p * 0.98).collect(),
                confusion,
                ..Default::default()
            }],
            timing: Timing {
                encode_s: 123.4,
                evaluate_s: 5.6,
                arrivals_per_s: Some(2.5e7),
                total_arrivals: Some(3_085_000_000),
                images_encoded: 10_000,
            },
            network: Some(serde_json::json!({"n_input": 784, "n_recurrent": 200})),
            extra,
            notes: vec!["a note".into()],
            figures: vec!["accuracy_vs_time.png".into()],
        }
    }

    #[test]
    fn json_round_trip() {
        let r = sample_report();
        let s = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&s).unwrap();
        assert_eq!(r, back);
    }

    #[test]
    fn old_report_without_optional_fields_loads() {
        let s = r#"{"experiment":"e","geodyn_version":"0.0.1","config_hash":"h","seed":1,
            "dataset":{"images":"i","labels":"l","n":3},
            "protocol":{"kind":"held_out","n_reference":2,"n_query":1,"repeats":1,"k":1,
                        "metric":"cosine","weighting":"majority"},
            "results":[{"embedding":"e","classifier":"knn","dim":4,"accuracy_mean":0.5}]}"#;
        let r: Report = serde_json::from_str(s).unwrap();
        assert!(r.baselines.is_empty() && r.figures.is_empty() && r.network.is_none());
        assert_eq!(r.results[0].accuracy_sd, 0.0);
    }

    #[test]
    fn write_report_writes_both_files_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let r = sample_report();
        write_report(dir.path(), &r).unwrap();
        // Twice: the rename must replace an existing report.
        write_report(dir.path(), &r).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["report.json", "report.md"]);
        let back: Report =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
                .unwrap();
        // GEODYN_REPORT_FIGURES=dir also keeps a copy to look at (as the plot tests do).
        if let Some(keep) = std::env::var_os("GEODYN_REPORT_FIGURES") {
            std::fs::create_dir_all(&keep).unwrap();
            write_report(Path::new(&keep), &r).unwrap();
        }
        assert_eq!(back, r);
        let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        assert_eq!(md, render_markdown(&r));
    }

    #[test]
    fn write_report_into_missing_dir_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no/such/dir");
        let err = write_report(&missing, &sample_report()).unwrap_err();
        assert!(matches!(err, ReportError::Io { .. }));
        assert!(err.to_string().contains("no/such/dir"), "{err}");
    }

    #[test]
    fn write_report_rejects_nan_and_percentages() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = sample_report();
        r.results[0].accuracy_mean = f64::NAN;
        assert!(matches!(
            write_report(dir.path(), &r),
            Err(ReportError::InvalidInput(_))
        ));
        r.results[0].accuracy_mean = 96.49; // a percentage where a fraction belongs
        let err = write_report(dir.path(), &r).unwrap_err();
        assert!(err.to_string().contains("results[0]"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

#[cfg(test)]
mod paired_tests {
    use super::*;

    fn row(acc: &[f64]) -> ResultRow {
        ResultRow {
            accuracies: acc.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn paired_difference_by_hand() {
        let p = paired_difference(&row(&[0.9, 0.8, 0.7]), &row(&[0.8, 0.8, 0.8])).unwrap();
        assert!(p.mean.abs() < 1e-15);
        assert!((p.se - 0.1 / 3f64.sqrt()).abs() < 1e-12, "{}", p.se);
        assert_eq!(p.splits, 3);
        let one = paired_difference(&row(&[0.9]), &row(&[0.85])).unwrap();
        assert!((one.mean - 0.05).abs() < 1e-12 && one.se == 0.0);
        assert_eq!(paired_difference(&row(&[0.9, 0.8]), &row(&[0.8])), None);
        assert_eq!(paired_difference(&row(&[]), &row(&[])), None);
    }
}
