//! The engine's parameters and errors: what a run is asked to do, and every way
//! a run can refuse.

use crate::network::EdgeId;
use thiserror::Error;

/// Pair-based STDP parameters, checked: the only way to make one is
/// [`StdpParams::new`], so the engine never re-validates them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StdpParams {
    a_plus: f64,
    a_minus: f64,
    tau_plus_ms: f64,
    tau_minus_ms: f64,
    w_min: f64,
    w_max: f64,
    lost_arrivals_count: bool,
}

/// `Err` naming `name` and `value` unless `ok`.
fn check(ok: bool, name: &'static str, value: f64, why: &str) -> Result<f64, SimError> {
    if ok {
        Ok(value)
    } else {
        Err(SimError::Param {
            name,
            value,
            why: why.to_string(),
        })
    }
}

fn non_negative(name: &'static str, v: f64) -> Result<f64, SimError> {
    check(
        v.is_finite() && v >= 0.0,
        name,
        v,
        "must be finite and >= 0",
    )
}

fn positive(name: &'static str, v: f64) -> Result<f64, SimError> {
    check(v.is_finite() && v > 0.0, name, v, "must be finite and > 0")
}

impl StdpParams {
    /// Checks and builds the parameters: amplitudes finite and >= 0, time
    /// constants finite and > 0, `w_min <= w_max` both finite. The error
    /// names the first bad parameter and its value.
    pub fn new(
        a_plus: f64,
        a_minus: f64,
        tau_plus_ms: f64,
        tau_minus_ms: f64,
        w_min: f64,
        w_max: f64,
        lost_arrivals_count: bool,
    ) -> Result<StdpParams, SimError> {
        let p = StdpParams {
            a_plus: non_negative("a_plus", a_plus)?,
            a_minus: non_negative("a_minus", a_minus)?,
            tau_plus_ms: positive("tau_plus_ms", tau_plus_ms)?,
            tau_minus_ms: positive("tau_minus_ms", tau_minus_ms)?,
            w_min: check(w_min.is_finite(), "w_min", w_min, "must be finite")?,
            w_max: check(w_max.is_finite(), "w_max", w_max, "must be finite")?,
            lost_arrivals_count,
        };
        check(
            w_min <= w_max,
            "w_min",
            w_min,
            &format!("must be <= w_max = {w_max}"),
        )?;
        Ok(p)
    }

    /// What the engine uses when plasticity is off: no amplitude, an empty
    /// weight range (never read), time constants 1 so every factor is finite.
    pub(super) const OFF: StdpParams = StdpParams {
        a_plus: 0.0,
        a_minus: 0.0,
        tau_plus_ms: 1.0,
        tau_minus_ms: 1.0,
        w_min: 0.0,
        w_max: 0.0,
        lost_arrivals_count: false,
    };

    /// Potentiation amplitude (pre arrival before post activation).
    #[inline]
    pub fn a_plus(&self) -> f64 {
        self.a_plus
    }
    /// Depression amplitude, >= 0 (pre arrival after post activation).
    #[inline]
    pub fn a_minus(&self) -> f64 {
        self.a_minus
    }
    #[inline]
    pub fn tau_plus_ms(&self) -> f64 {
        self.tau_plus_ms
    }
    #[inline]
    pub fn tau_minus_ms(&self) -> f64 {
        self.tau_minus_ms
    }
    /// Lower clip of a plastic weight (< 0 lets an edge change sign).
    #[inline]
    pub fn w_min(&self) -> f64 {
        self.w_min
    }
    #[inline]
    pub fn w_max(&self) -> f64 {
        self.w_max
    }
    /// Whether an arrival lost to refractoriness still counts for STDP timing.
    #[inline]
    pub fn lost_arrivals_count(&self) -> bool {
        self.lost_arrivals_count
    }
}

/// Parameters of one run, checked: made only by [`RunParams::new`].
#[derive(Clone, Debug, PartialEq)]
pub struct RunParams {
    duration_ms: f64,
    stdp: Option<StdpParams>,
}

impl RunParams {
    /// `duration_ms` must be finite and >= 0; `stdp` is already checked.
    pub fn new(duration_ms: f64, stdp: Option<StdpParams>) -> Result<RunParams, SimError> {
        Ok(RunParams {
            duration_ms: non_negative("duration_ms", duration_ms)?,
            stdp,
        })
    }

    /// Events with time > duration are not processed.
    #[inline]
    pub fn duration_ms(&self) -> f64 {
        self.duration_ms
    }

    /// `None`: no plasticity. Which edges are plastic is the network's
    /// `edge_plastic`.
    #[inline]
    pub fn stdp(&self) -> Option<&StdpParams> {
        self.stdp.as_ref()
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum SimError {
    /// A run or STDP parameter out of range; `name` is the constructor's
    /// argument name, so a caller can report it under its own field name.
    #[error("{name} = {value}: {why}")]
    Param {
        name: &'static str,
        value: f64,
        why: String,
    },
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
    #[error("snapshot edge {0} does not exist")]
    SnapshotEdge(EdgeId),
    #[error("activity_bin_ms = {0} must be finite and > 0")]
    ActivityBin(f64),
    #[error(
        "duration_ms = {duration} is more than 1e9 times the smallest latency ({latency} ms): \
         event times could no longer be told apart from epoch boundaries"
    )]
    TooLong { duration: f64, latency: f64 },
}
