//! pipeline: the generic runner that strings the stages together for a config
//! and a dataset: encode (dataset -> stimulus -> simulation -> embedding ->
//! `.npy`) and evaluate (embeddings -> classifiers beside baselines -> report).
//! Experiments are configs; nothing here is specific to one of them.

mod encode;
mod evaluate;
pub mod npy;

pub use encode::{
    encode, merge_shards, read_manifest, stimulus_seed, EncodeData, EncodeOptions, Manifest,
};
pub use evaluate::{evaluate, result_row, EvaluateOptions};

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
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: corrupt: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{0}: no manifest.json: the encode there is missing or incomplete (rerun `geodyn encode` to resume it)")]
    Incomplete(PathBuf),
    #[error("stopped after committing {0} new chunks (resume by running again)")]
    Interrupted(usize),
    #[error("{0}")]
    Shape(String),
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
    #[error(transparent)]
    Sim(#[from] crate::sim::SimError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Dataset(#[from] crate::dataset::DatasetError),
    #[error(transparent)]
    Eval(#[from] crate::eval::EvalError),
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    #[error("{0}")]
    Other(String),
}
