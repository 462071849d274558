//! pipeline: the one generic runner that strings the stages together for a
//! config and a dataset. It owns
//! - the encode loop ([`Encoder`]: image -> stimulus -> simulation ->
//!   embedding, one row or many in parallel, with the one per-row seed
//!   derivation [`row_seed`]);
//! - the store ([`encode`], [`merge_shards`], [`read_manifest`]: chunked,
//!   resumable, shardable `.npy` directories with a manifest);
//! - the evaluation ([`Evaluator`], [`score_views`], [`evaluate`]: every view
//!   beside the baselines, named in one place by [`Baseline`]).
//!
//! Experiments are recipes over these (`crate::experiments`). The library
//! prints nothing: progress goes to an [`Observer`].

mod data;
mod encoder;
mod evaluate;
pub mod npy;
mod observer;
mod store;

pub use data::{load_images, load_query, DataSpec, LIMIT_SEED};
pub use encoder::{row_seed, stack_view, sum_totals, Encoder, RowResult, Scratch};
pub use evaluate::{
    check_feasible, dynamics_summary, evaluate, result_row, score_views, Baseline, Controls,
    DirViews, EvaluateOptions, Evaluator, Figures, MemoryViews, Protocol, ScoredViews, ViewSource,
};
pub use observer::{Collect, Event, Observer, Quiet};
pub use store::{
    encode, encode_with, merge_shards, read_manifest, DirLock, EncodeData, EncodeOptions, FileSum,
    InputFile, Manifest, LOCK_FILE, MODEL_VERSION, STORE_FORMAT,
};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use thiserror::Error;

/// One embedding file of an encode directory.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ViewInfo {
    pub name: String,
    pub dim: usize,
    pub time_ms: Option<f64>,
    pub file: String,
}

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error("{path}: I/O error")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: corrupt: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{0}: no manifest.json: the encode there is missing or incomplete (rerun `geodyn encode` to resume it)")]
    Incomplete(PathBuf),
    #[error("{} is being written by another geodyn process ({holder}); wait for it to finish, or choose another --out", dir.display())]
    Locked { dir: PathBuf, holder: String },
    #[error("stopped after committing {0} new chunks (resume by running again)")]
    Interrupted(usize),
    #[error("{0}")]
    Shape(String),
    #[error("cannot start a pool of {threads} threads: {message}")]
    Threads { threads: usize, message: String },
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
    #[error(transparent)]
    Sim(#[from] crate::sim::SimError),
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Embed(#[from] crate::embed::EmbedError),
    #[error(transparent)]
    Dataset(#[from] crate::dataset::DatasetError),
    #[error(transparent)]
    Eval(#[from] crate::eval::EvalError),
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    #[error("{0}")]
    Other(String),
}

/// The most worker threads [`with_threads`] starts: four per core (at least
/// 64). More gain nothing for this CPU-bound work, and a typo such as
/// `--threads 100000` would otherwise exhaust memory or the process limit.
pub fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (4 * cores).max(64)
}

/// Whether the evaluation of `cfg` can score an encode of `data` (see
/// [`check_feasible`]); for commands that encode and then evaluate, so that
/// a protocol that cannot work fails before the encode, not after it.
pub fn check_feasible_for(
    cfg: &crate::config::ExperimentConfig,
    data: &EncodeData,
) -> Result<Option<String>, PipelineError> {
    let protocol = match data.query {
        Some(q) => Protocol::HeldOut {
            n_reference: data.reference.len(),
            n_query: q.len(),
        },
        None => Protocol::RandomSplit,
    };
    check_feasible(cfg.evaluation(), protocol, data.n_rows())
}

/// Runs `f` on a pool of `threads` workers (`None`: rayon's global pool, all
/// cores; `Some(0)` too, as in rayon). Results never depend on the thread
/// count. Refuses more than [`max_threads`] before starting any thread.
pub fn with_threads<T: Send, E: From<PipelineError> + Send>(
    threads: Option<usize>,
    f: impl FnOnce() -> Result<T, E> + Send,
) -> Result<T, E> {
    if let Some(t) = threads {
        if t > max_threads() {
            return Err(E::from(PipelineError::Threads {
                threads: t,
                message: format!(
                    "at most {} worker threads (four per core) are started",
                    max_threads()
                ),
            }));
        }
    }
    match threads {
        None => f(),
        Some(t) => rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .map_err(|e| {
                E::from(PipelineError::Threads {
                    threads: t,
                    message: e.to_string(),
                })
            })?
            .install(f),
    }
}

#[cfg(test)]
mod tests;
