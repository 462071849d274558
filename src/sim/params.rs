//! The engine's parameters and errors: what a run is asked to do, and every way
//! a run can refuse.

use crate::network::EdgeId;
use thiserror::Error;

/// Pair-based STDP parameters (validated by `config`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StdpParams {
    /// Potentiation amplitude (pre arrival before post activation).
    pub a_plus: f64,
    /// Depression amplitude, a positive number (pre arrival after post activation).
    pub a_minus: f64,
    pub tau_plus_ms: f64,
    pub tau_minus_ms: f64,
    pub w_min: f64,
    pub w_max: f64,
    /// Whether an arrival lost to refractoriness still counts for STDP timing.
    pub lost_arrivals_count: bool,
}

/// Parameters of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunParams {
    /// Events with time > duration are not processed.
    pub duration_ms: f64,
    /// `None`: no plasticity. Which edges are plastic is the network's
    /// `edge_plastic`.
    pub stdp: Option<StdpParams>,
}

#[derive(Debug, Error, PartialEq)]
pub enum SimError {
    #[error("weights: {got} values for a network of {expected} edges")]
    WeightCount { got: usize, expected: usize },
    #[error(
        "stimulus activation {index}: node {node} does not exist (network has {n_nodes} nodes)"
    )]
    StimulusNode {
        index: usize,
        node: u32,
        n_nodes: usize,
    },
    #[error("stimulus activation {index}: time_ms = {time} must be finite and >= 0")]
    StimulusTime { index: usize, time: f64 },
    #[error("duration_ms = {0} must be finite and >= 0")]
    Duration(f64),
    #[error("snapshot edge {0} does not exist")]
    SnapshotEdge(EdgeId),
    #[error("activity_bin_ms = {0} must be finite and > 0")]
    ActivityBin(f64),
    #[error("stdp: {0}")]
    Stdp(String),
    #[error(
        "duration_ms = {duration} is more than 1e9 times the smallest latency ({latency} ms): \
         event times could no longer be told apart from epoch boundaries"
    )]
    TooLong { duration: f64, latency: f64 },
}
