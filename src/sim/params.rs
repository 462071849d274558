//! The engine's parameters and errors: what a run is asked to do, and every way
//! a run can refuse.

use crate::memory::MemoryError;
use crate::network::{EdgeId, NodeId};
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

/// Bounds on the work and memory of one run. A network whose excitation is
/// not balanced can fire ever faster (each activation emits on every out-edge,
/// and a refractory period only caps a node's rate at 1/R): without a bound
/// such a run grows its queue until memory runs out, or never ends. A run that
/// passes a limit stops with [`SimError::Runaway`], naming the busiest node.
///
/// The defaults are far above what a balanced network needs (the shipped
/// configs, N = 400 included, stay under about 1e5 events in flight, 2e4
/// activations and 5e6 arrivals per 600 ms run), keep the event buffers of
/// one run under about 1 GiB (an epoch's events, at most all those in flight,
/// take 48 bytes each while sorted: 16.8M of them are 800 MB) and stop a runaway run within tens of seconds (the engine does about
/// 1e7 arrivals per second on a runaway network). The activation and arrival
/// limits are rates, so that a long healthy run is not mistaken for a runaway:
/// 2.5e7 activations and 2.5e8 arrivals per simulated second, and at least
/// that much for runs shorter than a second ([`RunLimits::for_duration`]).
/// The limit on events in flight bounds memory, so it does not grow with the
/// run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunLimits {
    /// Signals emitted and not yet arrived, at any moment (an epoch's share
    /// of them is buffered, 48 bytes each).
    pub max_events_in_flight: u64,
    /// Activations in one run, stimulus-driven ones included.
    pub max_activations: u64,
    /// Arrivals in one run, lost ones included.
    pub max_arrivals: u64,
}

impl Default for RunLimits {
    /// The limits of a run of at most one second.
    fn default() -> Self {
        RunLimits {
            max_events_in_flight: 1 << 24,
            max_activations: 25_000_000,
            max_arrivals: 250_000_000,
        }
    }
}

impl RunLimits {
    /// The default limits of a run of `duration_ms`: the defaults per
    /// simulated second, at least one second's worth.
    pub fn for_duration(duration_ms: f64) -> RunLimits {
        let d = RunLimits::default();
        let seconds = if duration_ms.is_finite() {
            (duration_ms / 1000.0).max(1.0)
        } else {
            1.0
        };
        // f64 -> u64 saturates, so absurd durations cannot wrap.
        let scale = |per_second: u64| (per_second as f64 * seconds) as u64;
        RunLimits {
            max_events_in_flight: d.max_events_in_flight,
            max_activations: scale(d.max_activations),
            max_arrivals: scale(d.max_arrivals),
        }
    }
}

/// Parameters of one run, checked: made only by [`RunParams::new`].
#[derive(Clone, Debug, PartialEq)]
pub struct RunParams {
    duration_ms: f64,
    stdp: Option<StdpParams>,
    limits: RunLimits,
}

impl RunParams {
    /// `duration_ms` must be finite and >= 0; `stdp` is already checked. The
    /// limits are the defaults for the duration ([`RunLimits::for_duration`];
    /// [`RunParams::with_limits`] changes them).
    pub fn new(duration_ms: f64, stdp: Option<StdpParams>) -> Result<RunParams, SimError> {
        Ok(RunParams {
            duration_ms: non_negative("duration_ms", duration_ms)?,
            stdp,
            limits: RunLimits::for_duration(duration_ms),
        })
    }

    /// These parameters with other limits; each must be >= 1 (a limit of 0
    /// would refuse every run).
    pub fn with_limits(mut self, limits: RunLimits) -> Result<RunParams, SimError> {
        for (name, v) in [
            ("max_events_in_flight", limits.max_events_in_flight),
            ("max_activations", limits.max_activations),
            ("max_arrivals", limits.max_arrivals),
        ] {
            check(v >= 1, name, v as f64, "must be >= 1")?;
        }
        self.limits = limits;
        Ok(self)
    }

    #[inline]
    pub fn limits(&self) -> &RunLimits {
        &self.limits
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
    #[error("thresholds: {got} values for a network of {expected} nodes")]
    ThresholdCount { got: usize, expected: usize },
    #[error("threshold of node {node} = {value}: a threshold must be finite and > 0")]
    Threshold { node: NodeId, value: f64 },
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
    /// The run would need more than 1e9 epochs. An epoch is shorter than the
    /// smallest latency (`latency`) and, so that decay factors stay within
    /// `f64`, at most 200 times the smallest time constant (`tau`).
    #[error(
        "duration_ms = {duration} needs more than 1e9 epochs of {epoch} ms (an epoch is shorter \
         than the smallest latency, {latency} ms, and at most 200 x the smallest time constant, \
         {tau} ms): event times could no longer be told apart from epoch boundaries"
    )]
    TooLong {
        duration: f64,
        epoch: f64,
        latency: f64,
        tau: f64,
    },
    /// A run passed one of its [`RunLimits`]; `node` is the node with the
    /// most activations so far.
    #[error(
        "run stopped at t = {time_ms:.3} ms: {count} {what} passed the limit of {limit} \
         ({key}); node {node} is the busiest, with {node_activations} activations \
         ({rate_hz:.0} Hz; its refractory period {node_refractory_ms} ms allows up to \
         {max_rate_hz}). A rate far above normal means the activity is running away: \
         balance excitation (weights, thresholds, refractory periods). A run that is \
         just long or large needs a higher simulation.{key}"
    )]
    Runaway {
        what: &'static str,
        key: &'static str,
        count: u64,
        limit: u64,
        time_ms: f64,
        node: NodeId,
        node_activations: u64,
        rate_hz: f64,
        node_refractory_ms: f64,
        max_rate_hz: String,
    },
    /// A plastic weight that is not a finite number after a run: refused so
    /// it is never written.
    #[error(
        "edge {edge} (node {source_node} -> node {target}): STDP made its weight {value} \
         by t = {duration_ms} ms; a weight must stay finite"
    )]
    NonFiniteWeight {
        edge: EdgeId,
        source_node: NodeId,
        target: NodeId,
        value: f32,
        duration_ms: f64,
    },
    #[error(transparent)]
    Memory(#[from] MemoryError),
}
