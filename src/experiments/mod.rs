//! experiments: the source's three experiments as short recipes over the one
//! runner (`crate::pipeline`): each picks its images and config, calls the
//! runner, and adds only what is particular to it.
//!
//! - [`weights`]: experiment 3, weight-state trajectories (and its N sweep);
//! - [`paths`]: experiment 1, activation paths with no learning;
//! - [`stdp`]: experiment 2, STDP on digits 1 vs 5.
//!
//! Each writes `report.json`, `report.md` and its figures into
//! [`ExperimentOptions::out`], reports progress to an observer, and gives the
//! same report at any thread count. Configs come from the one registry of
//! built-in configs (`crate::config::BUILTIN_CONFIGS`) unless the options
//! carry another.

pub mod paths;
pub mod stdp;
pub mod weights;

#[cfg(test)]
mod tests;

pub use paths::reproduce_paths;
pub use stdp::{reproduce_stdp, weight_change, WeightChange};
pub use weights::{reproduce_weights, SWEEP_N};

use crate::config::{self, ConfigError, RawConfig};
use crate::pipeline::{DataSpec, PipelineError};
use std::path::PathBuf;
use thiserror::Error;

/// How to run an experiment.
#[derive(Clone, Debug, Default)]
pub struct ExperimentOptions {
    /// Smoke version: a few hundred images, small N; about a minute or two.
    pub quick: bool,
    /// Experiment 3 only: sweep N over [`SWEEP_N`].
    pub sweep: bool,
    /// Directory for report.json, report.md and figures (created if missing).
    pub out: PathBuf,
    /// Worker threads (default: rayon's default, all cores).
    pub threads: Option<usize>,
    /// The images (default: the built-in MNIST-10k, all of it, or the
    /// experiment's own count).
    pub data: DataSpec,
    /// Experiment 3 only: a held-out query set (IDX images, labels).
    pub query: Option<(PathBuf, PathBuf)>,
    /// Another raw config (and the path to name in messages) instead of the
    /// built-in one; checked by the experiment after its own overrides.
    pub config: Option<(RawConfig, PathBuf)>,
    /// Experiments 1 and 3: start their encodes afresh even if `out` holds
    /// a partial or different one.
    pub restart: bool,
    /// Experiment 3: linear readouts on the first this many splits only
    /// (default: [`weights::LINEAR_SPLITS`] for the full run, all for `quick`).
    pub linear_splits: Option<usize>,
    /// Experiment 3: the rate, latency and volley codes at every velocity of
    /// [`weights::VELOCITY_SWEEP`], with figures of accuracy against the
    /// median refraction ratio (one subdirectory per point).
    pub velocity_sweep: bool,
    /// Experiment 3: also encode and evaluate the network with its latencies
    /// shuffled within each edge class, into `out/shuffled_latencies/`, with
    /// rows `<view>_shuffled_latencies` in the report.
    pub shuffled_latencies: bool,
    /// Experiment 3: the same with every latency at its class mean
    /// (`out/mean_latencies/`, rows `<view>_mean_latencies`).
    pub mean_latencies: bool,
}

#[derive(Debug, Error)]
pub enum ExperimentError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config or the data do not fit the experiment.
    #[error("{0}")]
    Unsuitable(String),
}

macro_rules! via_pipeline {
    ($($t:ty),*) => {$(
        impl From<$t> for ExperimentError {
            fn from(e: $t) -> Self {
                ExperimentError::Pipeline(PipelineError::from(e))
            }
        }
    )*};
}
via_pipeline!(
    crate::dataset::DatasetError,
    crate::network::NetworkError,
    crate::sim::SimError,
    crate::eval::EvalError,
    crate::report::ReportError,
    crate::embed::EmbedError
);

/// The raw config of the options, or the built-in one named `name`.
pub(crate) fn raw_config(
    opts: &ExperimentOptions,
    name: &str,
) -> Result<(RawConfig, PathBuf), ExperimentError> {
    match &opts.config {
        Some(c) => Ok(c.clone()),
        None => Ok(config::read_raw(name)?),
    }
}

/// Refuses options that an experiment does not take.
pub(crate) fn refuse(opts: &ExperimentOptions, name: &str) -> Result<(), ExperimentError> {
    if opts.sweep {
        return Err(ExperimentError::Unsuitable(format!(
            "--sweep is for `reproduce weights` (experiment 3), not {name}"
        )));
    }
    if opts.query.is_some() {
        return Err(ExperimentError::Unsuitable("--query-images: the held-out protocol is offered by `reproduce weights`, `run` and `encode`".into()));
    }
    if opts.velocity_sweep {
        return Err(ExperimentError::Unsuitable(format!(
            "--velocity-sweep is for `reproduce weights` (experiment 3), not {name}"
        )));
    }
    if opts.shuffled_latencies || opts.mean_latencies {
        return Err(ExperimentError::Unsuitable(format!(
            "--shuffled-latencies / --mean-latencies are for `reproduce weights` (experiment 3), not {name}"
        )));
    }
    if opts.data.limit.is_some() {
        return Err(ExperimentError::Unsuitable(format!(
            "--limit: experiment {name} chooses its image counts (use --quick for the small version)"
        )));
    }
    Ok(())
}

/// The encode options of an experiment's store in `dir`.
pub(crate) fn encode_options(
    opts: &ExperimentOptions,
    dir: &std::path::Path,
) -> crate::pipeline::EncodeOptions {
    let mut o = crate::pipeline::EncodeOptions::new(dir);
    o.restart = opts.restart;
    o
}

pub(crate) fn create_out(out: &std::path::Path) -> Result<(), ExperimentError> {
    std::fs::create_dir_all(out).map_err(|source| {
        ExperimentError::Pipeline(PipelineError::Io {
            path: out.to_path_buf(),
            source,
        })
    })
}
