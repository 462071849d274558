//! experiments: the source's experiments 1 (activation paths, no learning) and
//! 2 (STDP on classes 1 vs 5) end to end, as library calls the command line
//! wires to `geodyn reproduce paths|stdp [--quick] [--out DIR]`.
//!
//! Each experiment walks the whole pipeline
//! (`dataset -> stimulus -> network -> sim -> record -> embed -> eval -> report`)
//! and writes `report.json`, `report.md` and its figures into
//! [`ExperimentOptions::out`]. Images are simulated in parallel with rayon
//! (`map_init` with one [`Workspace`] per worker) and collected in input order,
//! so a report is the same at any thread count. Parameters come from the
//! shipped configs (`configs/paths.toml`, `configs/stdp.toml`, compiled in) or
//! from [`ExperimentOptions::config`].

pub mod paths;
pub mod stdp;

#[cfg(test)]
mod tests;

pub use paths::reproduce_paths;
pub use stdp::reproduce_stdp;

use crate::config::{self, ConfigError, ExperimentConfig};
use crate::dataset::{DatasetError, ImageSet};
use crate::eval::{EvalError, Evaluation, Split};
use crate::network::{Network, NetworkError};
use crate::record::{RecordSpec, Recording, RunTotals};
use crate::report::{ProtocolInfo, ReportError, ResultRow};
use crate::sim::{SimError, Simulator, Workspace};
use crate::stimulus;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The experiment-1 config shipped in `configs/paths.toml`.
pub const PATHS_CONFIG: &str = include_str!("../../configs/paths.toml");
/// The experiment-2 config shipped in `configs/stdp.toml`.
pub const STDP_CONFIG: &str = include_str!("../../configs/stdp.toml");

/// How to run an experiment.
#[derive(Clone, Debug, Default)]
pub struct ExperimentOptions {
    /// Smoke version: a few hundred images, under two minutes.
    pub quick: bool,
    /// Directory for report.json, report.md and figures (created if missing).
    pub out: PathBuf,
    /// Worker threads (default: rayon's default, all cores).
    pub threads: Option<usize>,
    /// IDX images and labels files (default: the built-in MNIST-10k).
    pub images: Option<(PathBuf, PathBuf)>,
    /// A checked config (default: the built-in one of the experiment).
    pub config: Option<ExperimentConfig>,
}

#[derive(Debug, Error)]
pub enum ExperimentError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("simulation: {0}")]
    Sim(#[from] SimError),
    #[error("evaluation: {0}")]
    Eval(#[from] EvalError),
    #[error("report: {0}")]
    Report(#[from] ReportError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build a pool of {threads} threads: {message}")]
    Threads { threads: usize, message: String },
    /// The config or the data do not fit the experiment.
    #[error("{0}")]
    Unsuitable(String),
}

/// Parses and checks a built-in config text.
pub fn builtin_config(name: &str) -> Result<ExperimentConfig, ExperimentError> {
    let text = match name {
        "paths" => PATHS_CONFIG,
        "stdp" => STDP_CONFIG,
        other => {
            return Err(ExperimentError::Unsuitable(format!(
                "no built-in experiment config named {other:?} (paths, stdp)"
            )))
        }
    };
    let path = PathBuf::from(format!("configs/{name}.toml (built-in)"));
    Ok(config::parse(text, &path)?.check(&path)?)
}

pub(crate) fn resolve_config(
    opts: &ExperimentOptions,
    name: &str,
) -> Result<ExperimentConfig, ExperimentError> {
    match &opts.config {
        Some(c) => Ok(c.clone()),
        None => builtin_config(name),
    }
}

pub(crate) fn load_images(opts: &ExperimentOptions) -> Result<ImageSet, ExperimentError> {
    Ok(match &opts.images {
        Some((i, l)) => ImageSet::load(i, l)?,
        None => ImageSet::builtin()?,
    })
}

pub(crate) fn create_out(out: &Path) -> Result<(), ExperimentError> {
    std::fs::create_dir_all(out).map_err(|source| ExperimentError::Io {
        path: out.to_path_buf(),
        source,
    })
}

/// Runs `f` on a pool of `threads` workers (or on the global pool).
pub(crate) fn with_threads<T: Send>(
    threads: Option<usize>,
    f: impl FnOnce() -> Result<T, ExperimentError> + Send,
) -> Result<T, ExperimentError> {
    match threads {
        None => f(),
        Some(t) => rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .map_err(|e| ExperimentError::Threads {
                threads: t,
                message: e.to_string(),
            })?
            .install(f),
    }
}

pub(crate) fn progress(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>24} [{bar:40}] {pos}/{len} ({elapsed}, eta {eta})")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}

/// Simulates image `set.image(i)` for every `i` in `indices`, from `weights`
/// (not changed: each run starts from a copy), and maps each recording with
/// `embed`. Parallel over images; the output is in `indices` order.
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_images<T: Send>(
    sim: &Simulator,
    weights: &[f32],
    cfg: &ExperimentConfig,
    set: &ImageSet,
    indices: &[usize],
    spec: &RecordSpec,
    what: &str,
    embed: impl Fn(&Recording) -> T + Sync,
) -> Result<(Vec<T>, RunTotals), ExperimentError> {
    let pb = progress(indices.len(), what);
    let out: Result<Vec<(T, RunTotals)>, SimError> = indices
        .par_iter()
        .map_init(
            || (Workspace::default(), weights.to_vec()),
            |(ws, w), &i| {
                w.copy_from_slice(weights);
                let stim = stimulus::encode_image(set.image(i), &cfg.stimulus, cfg.seed ^ i as u64);
                let rec = sim.run(ws, w, &stim, spec)?;
                pb.inc(1);
                Ok((embed(&rec), rec.totals))
            },
        )
        .collect();
    pb.finish_and_clear();
    let mut totals = RunTotals::default();
    let mut vecs = Vec::with_capacity(indices.len());
    for (v, t) in out? {
        totals += t;
        vecs.push(v);
    }
    Ok((vecs, totals))
}

/// Stacks equal-length rows into an `n x d` matrix.
pub(crate) fn stack(rows: &[Vec<f32>]) -> Result<ndarray::Array2<f32>, ExperimentError> {
    let d = rows.first().map_or(0, |r| r.len());
    let mut flat = Vec::with_capacity(rows.len() * d);
    for r in rows {
        if r.len() != d {
            return Err(ExperimentError::Unsuitable(format!(
                "embedding rows of unequal length ({} and {d})",
                r.len()
            )));
        }
        flat.extend_from_slice(r);
    }
    ndarray::Array2::from_shape_vec((rows.len(), d), flat)
        .map_err(|e| ExperimentError::Unsuitable(e.to_string()))
}

pub(crate) fn row(
    embedding: &str,
    classifier: &str,
    n_recurrent: Option<usize>,
    dim: usize,
    e: &Evaluation,
) -> ResultRow {
    crate::pipeline::result_row(embedding, classifier, n_recurrent, None, dim, e)
}

pub(crate) fn protocol(cfg: &ExperimentConfig, splits: &[Split]) -> ProtocolInfo {
    ProtocolInfo {
        kind: "random_split".into(),
        n_reference: splits.first().map_or(0, |s| s.reference.len()),
        n_query: splits.first().map_or(0, |s| s.query.len()),
        repeats: splits.len(),
        k: cfg.evaluation.knn.k,
        metric: config::metric_name(cfg.evaluation.knn.metric).into(),
        weighting: config::weighting_name(cfg.evaluation.knn.weighting).into(),
        split_seed: cfg.evaluation.split_seed,
    }
}

/// Reference/query sizes: the config's, when the data hold that many images,
/// else 90% / 10% of `n`.
pub(crate) fn split_sizes(cfg: &ExperimentConfig, n: usize) -> (usize, usize) {
    match (cfg.evaluation.n_reference, cfg.evaluation.n_query) {
        (Some(r), Some(q)) if r + q <= n => (r, q),
        _ => {
            let q = (n / 10).max(1);
            (n - q, q)
        }
    }
}

/// Summary of the dynamics of a set of runs, for the report.
pub(crate) fn dynamics_summary(
    t: &RunTotals,
    images: usize,
    net: &Network,
    duration_ms: f64,
) -> serde_json::Value {
    let n = images.max(1) as f64;
    let rec_rate = (t
        .activations
        .saturating_sub(t.external_activations - t.lost_external)) as f64
        / n
        / net.n_recurrent().max(1) as f64
        / (duration_ms / 1000.0);
    serde_json::json!({
        "images": images,
        "arrivals_per_image": t.arrivals as f64 / n,
        "lost_arrival_share": t.lost_arrivals as f64 / t.arrivals.max(1) as f64,
        "activations_per_image": t.activations as f64 / n,
        "stimulus_activations_per_image": (t.external_activations - t.lost_external) as f64 / n,
        "network_driven_rate_hz_per_recurrent_node": rec_rate,
    })
}

/// The paths embedders of a config: its own method first, then the others, so
/// every report compares at least two methods on the same runs.
pub(crate) fn paths_embedders(
    net: &Network,
    cfg: &ExperimentConfig,
    duration_ms: f64,
) -> (
    Vec<crate::config::PathsMethod>,
    Vec<crate::embed::paths::PathsEmbedder>,
) {
    use crate::config::{PathsMethod, PathsParams};
    use crate::embed::paths::PathsEmbedder;
    let primary = cfg.embedding.paths.method;
    let mut methods = vec![primary];
    for m in [
        PathsMethod::CausalEdges,
        PathsMethod::NodeTiming,
        PathsMethod::Both,
    ] {
        if m != primary {
            methods.push(m);
        }
    }
    let embedders = methods
        .iter()
        .map(|&method| {
            let p = PathsParams {
                method,
                ..cfg.embedding.paths.clone()
            };
            PathsEmbedder::new(net, &p, duration_ms, cfg.seed)
        })
        .collect();
    (methods, embedders)
}
