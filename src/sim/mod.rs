//! sim: the event-driven engine, dynamics and plasticity (stage 4 of the pipeline).
//!
//! Time is continuous (`f64` milliseconds). A signal that node i emits at t
//! arrives at j at exactly `t + latency_ij`; nothing is rounded to a grid.
//!
//! **Dynamics.** An arrival at j while j is refractory (`t - last_activation <
//! R_j`) is *lost*: it neither adds to j's sum nor waits; it is counted. An
//! arrival at or after the end of the refractory period is integrated:
//! `u_j <- u_j * exp(-(t - t_last)/tau_s) + w_ij`. If `u_j >= theta_j` the node
//! activates at t: `u_j` resets to 0, j is refractory for R_j, and a signal
//! leaves on every out-edge. A stimulus activation (an [`ExternalActivation`])
//! forces an activation unless the node is refractory, in which case it is lost.
//!
//! **Order.** Events are processed in increasing (time, target node, edge id),
//! with stimulus activations after arrivals of the same (time, node). This is a
//! total order, so a run is a pure function of (network, weights, parameters,
//! stimulus).
//!
//! **STDP** (pair-based, all-to-all, with exponential traces; timing taken at the
//! target, i.e. at arrival times, so latencies matter). Each plastic edge keeps a
//! pre trace of its arrivals, each node a post trace of its activations. At an
//! arrival, `w -= A- * y_post(t)` (post before pre: depression) and the pre trace
//! steps by 1; at an activation, every incoming plastic edge gets
//! `w += A+ * x_pre(t)` (pre before post: potentiation; the causal arrival itself
//! has dt = 0 and gets the full A+) and the post trace steps by 1. Weights are
//! clipped to `[w_min, w_max]`; `w_min < 0` lets an edge change sign. The arrival
//! itself is weighted by the weight before its own update.
//!
//! *Lost arrivals and STDP:* by default a lost arrival still counts for STDP
//! timing (`lost_arrivals_count = true`). The refractory state is the target's
//! integration being blocked, but the signal did reach the synapse, and STDP is
//! a function of pre and post spike times at the synapse; the option exists so
//! the other reading can be measured.
//!
//! **Queue.** A ring of time buckets no wider than the smallest latency: a
//! bucket is sorted once when reached, and an activation's emissions always
//! fall in later buckets (if rounding puts one in the current bucket it is
//! inserted in order). Latencies beyond the ring's horizon go to an overflow
//! heap. The queue is an implementation detail: results are identical for any
//! bucket width.

use crate::network::{EdgeId, Network, NodeId};
use crate::record::{Activation, RecordSpec, Recording, RunTotals, WeightSnapshot};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use thiserror::Error;

/// One activation imposed from outside the network (a stimulus spike): node
/// `node` is driven to activate at `time_ms`, subject to its refractory period.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExternalActivation {
    pub node: u32,
    pub time_ms: f64,
}

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
}

const EXTERNAL: u32 = u32::MAX;
/// Widest bucket used, whatever the latencies (keeps the per-bucket sort short).
const MAX_BUCKET_WIDTH_MS: f64 = 0.05;
const MAX_RING: usize = 1 << 16;

#[inline(always)]
fn key(t: f64, target: u32, edge: u32) -> u128 {
    // t >= 0, so its bit pattern orders like its value.
    ((t.to_bits() as u128) << 64) | ((target as u128) << 32) | edge as u128
}

#[inline(always)]
fn key_time(k: u128) -> f64 {
    f64::from_bits((k >> 64) as u64)
}

/// Reusable engine scratch: event queue and per-node / per-edge dynamic state.
/// One per thread; `run` resets it, so runs never leak into each other.
#[derive(Debug, Default)]
pub struct Simulator {
    ring: Vec<Vec<u128>>,
    overflow: BinaryHeap<Reverse<u128>>,
    stimulus: Vec<u128>,
    potential: Vec<f64>,
    potential_time: Vec<f64>,
    last_activation: Vec<f64>,
    post_trace: Vec<f64>,
    post_trace_time: Vec<f64>,
    pre_trace: Vec<f64>,
    pre_trace_time: Vec<f64>,
    inv_summation_tau: Vec<f64>,
    /// Widest bucket of the event queue, ms (0 = the default).
    max_bucket_width_ms: f64,
}

struct Queue<'a> {
    ring: &'a mut [Vec<u128>],
    overflow: &'a mut BinaryHeap<Reverse<u128>>,
    mask: u64,
    inv_width: f64,
    pending: usize,
}

impl Queue<'_> {
    #[inline(always)]
    fn bucket_of(&self, t: f64) -> u64 {
        (t * self.inv_width) as u64
    }

    /// Schedules an arrival; `current`/`cursor` are the bucket being processed.
    #[inline(always)]
    fn push(&mut self, k: u128, bucket: u64, current: &mut Vec<u128>, cursor: usize) {
        let b = self.bucket_of(key_time(k));
        if b <= bucket {
            // Only reachable through rounding or sub-bucket latencies: keep order.
            let pos = cursor + current[cursor..].partition_point(|&x| x < k);
            current.insert(pos, k);
        } else if b - bucket <= self.mask {
            self.ring[(b & self.mask) as usize].push(k);
            self.pending += 1;
        } else {
            self.overflow.push(Reverse(k));
        }
    }
}

impl Simulator {
    pub fn new() -> Simulator {
        Simulator::default()
    }

    /// A simulator whose queue buckets are at most `width_ms` wide. Results do
    /// not depend on it (a test checks this); only speed does.
    pub fn with_bucket_width(width_ms: f64) -> Simulator {
        Simulator {
            max_bucket_width_ms: width_ms,
            ..Simulator::default()
        }
    }

    /// Runs one stimulus through `net`, starting from `weights` (one per edge,
    /// updated in place when STDP is on) and from rest (all potentials 0, no
    /// node refractory, traces empty).
    pub fn run(
        &mut self,
        net: &Network,
        weights: &mut [f32],
        params: &RunParams,
        stimulus: &[ExternalActivation],
        spec: &RecordSpec,
    ) -> Result<Recording, SimError> {
        let n = net.n_nodes();
        let m = net.n_edges();
        if weights.len() != m {
            return Err(SimError::WeightCount {
                got: weights.len(),
                expected: m,
            });
        }
        if !(params.duration_ms.is_finite() && params.duration_ms >= 0.0) {
            return Err(SimError::Duration(params.duration_ms));
        }
        if let Some(&e) = spec.snapshot_edges.iter().find(|&&e| e as usize >= m) {
            return Err(SimError::SnapshotEdge(e));
        }
        if let Some(b) = spec.activity_bin_ms {
            if !(b.is_finite() && b > 0.0) {
                return Err(SimError::ActivityBin(b));
            }
        }
        self.stimulus.clear();
        for (index, s) in stimulus.iter().enumerate() {
            if s.node as usize >= n {
                return Err(SimError::StimulusNode {
                    index,
                    node: s.node,
                    n_nodes: n,
                });
            }
            if !(s.time_ms.is_finite() && s.time_ms >= 0.0) {
                return Err(SimError::StimulusTime {
                    index,
                    time: s.time_ms,
                });
            }
            // `+ 0.0` turns -0.0 into 0.0 so the bit order holds.
            self.stimulus.push(key(s.time_ms + 0.0, s.node, EXTERNAL));
        }
        self.stimulus.sort_unstable();
        self.reset(net);

        // Bucket width: no wider than the smallest latency, so emissions land in
        // later buckets; the ring spans the largest latency where it can.
        let (mut lat_min, mut lat_max) = (f64::INFINITY, 0.0f64);
        for &l in &net.edge_latency_ms {
            lat_min = lat_min.min(l);
            lat_max = lat_max.max(l);
        }
        let max_width = if self.max_bucket_width_ms > 0.0 {
            self.max_bucket_width_ms
        } else {
            std::env::var("GEODYN_BUCKET_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(MAX_BUCKET_WIDTH_MS)
        };
        let width = lat_min.min(max_width).max(1e-9);
        let ring_len = ((lat_max / width).ceil() as usize + 2)
            .next_power_of_two()
            .min(MAX_RING);
        if self.ring.len() != ring_len {
            self.ring = (0..ring_len).map(|_| Vec::new()).collect();
        }
        for b in self.ring.iter_mut() {
            b.clear();
        }
        self.overflow.clear();

        let mut rec = Recording::default();
        if spec.node_counts {
            rec.activation_counts = vec![0; n];
            rec.lost_counts = vec![0; n];
        }
        let activity_bin = spec.activity_bin_ms;
        if let Some(bw) = activity_bin {
            rec.activity_bins = ((params.duration_ms / bw).ceil() as usize).max(1);
            rec.activity = vec![0; n * rec.activity_bins];
        }
        let mut snapshot_times: Vec<f64> = spec.weight_snapshots_ms.clone();
        snapshot_times.sort_by(f64::total_cmp);
        let mut next_snapshot = 0usize;
        let mut totals = RunTotals::default();

        let stdp = params.stdp;
        let (a_plus, a_minus, inv_tau_plus, inv_tau_minus, w_min, w_max, lost_count) = match stdp {
            Some(s) => (
                s.a_plus,
                s.a_minus,
                1.0 / s.tau_plus_ms,
                1.0 / s.tau_minus_ms,
                s.w_min,
                s.w_max,
                s.lost_arrivals_count,
            ),
            None => (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, false),
        };
        let stdp_on = stdp.is_some();

        let Simulator {
            ring,
            overflow,
            stimulus: stim,
            potential,
            potential_time,
            last_activation,
            post_trace,
            post_trace_time,
            pre_trace,
            pre_trace_time,
            inv_summation_tau,
            ..
        } = self;
        let mut queue = Queue {
            ring,
            overflow,
            mask: (ring_len - 1) as u64,
            inv_width: 1.0 / width,
            pending: 0,
        };
        let refractory = &net.refractory_period_ms;
        let threshold = &net.threshold;
        let plastic = &net.edge_plastic;
        let latency = &net.edge_latency_ms;
        let target_of = &net.edge_target;
        let out_offsets = &net.out_offsets;
        let in_offsets = &net.in_plastic_offsets;
        let in_edges = &net.in_plastic_edges;

        let last_bucket = queue.bucket_of(params.duration_ms);
        let mut stim_cursor = 0usize;
        let mut bucket: u64 = 0;
        let mut current: Vec<u128> = Vec::new();
        'buckets: while bucket <= last_bucket {
            let slot = (bucket & queue.mask) as usize;
            std::mem::swap(&mut current, &mut queue.ring[slot]);
            queue.pending -= current.len();
            while stim_cursor < stim.len() && queue.bucket_of(key_time(stim[stim_cursor])) <= bucket
            {
                current.push(stim[stim_cursor]);
                stim_cursor += 1;
            }
            while let Some(&Reverse(k)) = queue.overflow.peek() {
                if queue.bucket_of(key_time(k)) > bucket {
                    break;
                }
                current.push(k);
                queue.overflow.pop();
            }
            if current.is_empty() {
                std::mem::swap(&mut current, &mut queue.ring[slot]);
                if queue.pending == 0 {
                    // Nothing in flight: jump to the next stimulus or overflow event.
                    let next_stim = stim.get(stim_cursor).map(|&k| queue.bucket_of(key_time(k)));
                    let next_over = queue
                        .overflow
                        .peek()
                        .map(|&Reverse(k)| queue.bucket_of(key_time(k)));
                    match next_stim.into_iter().chain(next_over).min() {
                        Some(b) => bucket = b.max(bucket + 1),
                        None => break,
                    }
                } else {
                    bucket += 1;
                }
                continue;
            }
            current.sort_unstable();
            let mut cursor = 0usize;
            while cursor < current.len() {
                let k = current[cursor];
                cursor += 1;
                let t = key_time(k);
                if t > params.duration_ms {
                    current.clear();
                    break 'buckets;
                }
                while next_snapshot < snapshot_times.len() && snapshot_times[next_snapshot] < t {
                    rec.snapshots.push(WeightSnapshot {
                        time_ms: snapshot_times[next_snapshot],
                        weights: spec
                            .snapshot_edges
                            .iter()
                            .map(|&e| weights[e as usize])
                            .collect(),
                    });
                    next_snapshot += 1;
                }
                let j = (k >> 32) as u32 as usize;
                let edge = k as u32;
                let cause;
                if edge == EXTERNAL {
                    totals.external_activations += 1;
                    if t - last_activation[j] < refractory[j] {
                        totals.lost_external += 1;
                        continue;
                    }
                    cause = None;
                } else {
                    let e = edge as usize;
                    totals.arrivals += 1;
                    let is_plastic = stdp_on && plastic[e];
                    let refractory_now = t - last_activation[j] < refractory[j];
                    if refractory_now {
                        totals.lost_arrivals += 1;
                        if spec.node_counts {
                            rec.lost_counts[j] += 1;
                        }
                        if !(is_plastic && lost_count) {
                            continue;
                        }
                    }
                    let w = weights[e] as f64;
                    if is_plastic {
                        // Depression from earlier post activations; then the pre trace.
                        let y = post_trace[j] * ((post_trace_time[j] - t) * inv_tau_minus).exp();
                        if y > 0.0 {
                            weights[e] = (w - a_minus * y).clamp(w_min, w_max) as f32;
                            totals.stdp_updates += 1;
                        }
                        pre_trace[e] =
                            pre_trace[e] * ((pre_trace_time[e] - t) * inv_tau_plus).exp() + 1.0;
                        pre_trace_time[e] = t;
                    }
                    if refractory_now {
                        continue;
                    }
                    let u = potential[j];
                    let u = if u == 0.0 {
                        w
                    } else {
                        u * ((potential_time[j] - t) * inv_summation_tau[j]).exp() + w
                    };
                    potential_time[j] = t;
                    if u < threshold[j] {
                        potential[j] = u;
                        continue;
                    }
                    cause = Some(edge as EdgeId);
                }
                // Activation of j at t.
                potential[j] = 0.0;
                potential_time[j] = t;
                last_activation[j] = t;
                totals.activations += 1;
                if spec.node_counts {
                    rec.activation_counts[j] += 1;
                }
                if let Some(bw) = activity_bin {
                    let bin = ((t / bw) as usize).min(rec.activity_bins - 1);
                    rec.activity[j * rec.activity_bins + bin] += 1;
                }
                if spec.activations {
                    rec.activations.push(Activation {
                        node: j as NodeId,
                        time_ms: t,
                        causal_edge: cause,
                    });
                }
                if stdp_on {
                    for &pe in &in_edges[in_offsets[j] as usize..in_offsets[j + 1] as usize] {
                        let pe = pe as usize;
                        let x = pre_trace[pe];
                        if x > 0.0 {
                            let x = x * ((pre_trace_time[pe] - t) * inv_tau_plus).exp();
                            weights[pe] =
                                (weights[pe] as f64 + a_plus * x).clamp(w_min, w_max) as f32;
                            totals.stdp_updates += 1;
                        }
                    }
                    post_trace[j] =
                        post_trace[j] * ((post_trace_time[j] - t) * inv_tau_minus).exp() + 1.0;
                    post_trace_time[j] = t;
                }
                let out = out_offsets[j] as usize..out_offsets[j + 1] as usize;
                for e in out {
                    let ta = t + latency[e];
                    queue.push(
                        key(ta, target_of[e], e as u32),
                        bucket,
                        &mut current,
                        cursor,
                    );
                }
            }
            current.clear();
            bucket += 1;
        }
        // Put the (empty) buffer back so its capacity is reused next run.
        if let Some(slot) = queue.ring.iter_mut().find(|b| b.capacity() == 0) {
            std::mem::swap(slot, &mut current);
        }
        while next_snapshot < snapshot_times.len() {
            if snapshot_times[next_snapshot] <= params.duration_ms {
                rec.snapshots.push(WeightSnapshot {
                    time_ms: snapshot_times[next_snapshot],
                    weights: spec
                        .snapshot_edges
                        .iter()
                        .map(|&e| weights[e as usize])
                        .collect(),
                });
            }
            next_snapshot += 1;
        }
        rec.totals = totals;
        Ok(rec)
    }

    fn reset(&mut self, net: &Network) {
        let n = net.n_nodes();
        let m = net.n_edges();
        fn fill(v: &mut Vec<f64>, len: usize, x: f64) {
            v.clear();
            v.resize(len, x);
        }
        fill(&mut self.potential, n, 0.0);
        fill(&mut self.potential_time, n, 0.0);
        fill(&mut self.last_activation, n, f64::NEG_INFINITY);
        fill(&mut self.post_trace, n, 0.0);
        fill(&mut self.post_trace_time, n, 0.0);
        fill(&mut self.pre_trace, m, 0.0);
        fill(&mut self.pre_trace_time, m, 0.0);
        self.inv_summation_tau.clear();
        self.inv_summation_tau
            .extend(net.summation_tau_ms.iter().map(|t| 1.0 / t));
    }

    /// Bytes of per-run dynamic state for `net` (node and edge state, weights).
    pub fn state_bytes(net: &Network) -> usize {
        net.n_nodes() * 8 * 6 + net.n_edges() * (8 * 2 + 4)
    }
}

/// Runs one stimulus from the network's initial weights; returns the recording
/// and the final weights.
pub fn simulate(
    net: &Network,
    params: &RunParams,
    stimulus: &[ExternalActivation],
    spec: &RecordSpec,
) -> Result<(Recording, Vec<f32>), SimError> {
    let mut weights = net.edge_weight.clone();
    let rec = Simulator::new().run(net, &mut weights, params, stimulus, spec)?;
    Ok((rec, weights))
}

#[cfg(test)]
mod tests;
