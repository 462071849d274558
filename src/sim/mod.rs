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
//! **Order.** The result is that of processing events in increasing (time,
//! target node, edge id), with stimulus activations after arrivals of the same
//! (time, node): a total order, so a run is a pure function of (network,
//! weights, parameters, stimulus), whatever the thread count.
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
//! timing (`lost_arrivals_count = true`). Refractoriness blocks the target's
//! integration, but the signal did reach the synapse, and STDP is a function of
//! pre and post spike times at the synapse; the option exists so the other
//! reading can be measured.
//!
//! **How it is fast.** (1) *Epochs.* Time is cut into epochs no longer than the
//! smallest latency, so nothing emitted in an epoch arrives in the same epoch:
//! within an epoch the targets are independent, and each target's few arrivals
//! are sorted on their own (a counting sort by target, then a short sort by
//! (time, edge)). This gives exactly the result of the global order above.
//! (2) *No exponential per arrival.* Decaying quantities (potential, traces) are
//! stored scaled by `exp((t - origin)/tau)`; the factor of an arrival is the
//! product of its emission's factor (one `exp` per activation) and its edge's
//! `exp(latency/tau)` (computed once per network). This is the same arithmetic
//! rearranged, not an approximation; it differs from the direct formula only by
//! floating-point rounding (a test checks the two agree). The origin moves
//! forward before the factors could overflow, and networks whose
//! latency/tau ratios are too large for the tables use `exp` per arrival.

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
    #[error("stdp: {0}")]
    Stdp(String),
    #[error(
        "duration_ms = {duration} is more than 1e9 times the smallest latency ({latency} ms): \
         event times could no longer be told apart from epoch boundaries"
    )]
    TooLong { duration: f64, latency: f64 },
}

const EXTERNAL: u32 = u32::MAX;
const NOT_PLASTIC: u32 = u32::MAX;
/// Longest epoch, ms (keeps each target's per-epoch sort short).
const MAX_EPOCH_MS: f64 = 1.0;
const MAX_RING: usize = 1 << 16;
/// Largest exponent a stored factor may reach before the origin moves.
const REBASE_EXPONENT: f64 = 200.0;
/// Largest latency/tau for which per-edge factors exp(latency/tau) are tabled.
const MAX_TABLED_EXPONENT: f64 = 200.0;

/// An event: (time, edge, emission) packed so that integer order is
/// (time, edge, emission). For a stimulus event, edge = EXTERNAL and the low
/// word holds the node.
#[inline(always)]
fn key(t: f64, edge: u32, low: u32) -> u128 {
    // t >= 0, so its bit pattern orders like its value.
    ((t.to_bits() as u128) << 64) | ((edge as u128) << 32) | low as u128
}

#[inline(always)]
fn key_time(k: u128) -> f64 {
    f64::from_bits((k >> 64) as u64)
}

/// A queued event: its order key (time bits, then edge << 32 | emission), plus
/// the target node and plastic index, written at emission where the edge arrays
/// are read in order, so grouping and processing need no random edge lookup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Ev {
    time: u64,
    low: u64,
    target: u32,
    plastic: u32,
}

impl Ev {
    #[inline(always)]
    fn new(k: u128, target: u32, plastic: u32) -> Ev {
        Ev {
            time: (k >> 64) as u64,
            low: k as u64,
            target,
            plastic,
        }
    }
    #[inline(always)]
    fn t(&self) -> f64 {
        f64::from_bits(self.time)
    }
    #[inline(always)]
    fn less(&self, o: &Ev) -> bool {
        (self.time, self.low) < (o.time, o.low)
    }
}

impl Ord for Ev {
    fn cmp(&self, o: &Ev) -> std::cmp::Ordering {
        (self.time, self.low).cmp(&(o.time, o.low))
    }
}

impl PartialOrd for Ev {
    fn partial_cmp(&self, o: &Ev) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// Insertion sort (the groups are short: a target's arrivals in one epoch).
#[inline(always)]
fn insertion_sort(v: &mut [Ev]) {
    for i in 1..v.len() {
        let x = v[i];
        let mut j = i;
        while j > 0 && x.less(&v[j - 1]) {
            v[j] = v[j - 1];
            j -= 1;
        }
        v[j] = x;
    }
}

/// A network prepared for simulation with given run parameters: the per-edge
/// factor tables, the plastic-edge index and the queue geometry. Immutable and
/// shareable across threads; each thread brings its own [`Workspace`].
#[derive(Debug)]
pub struct Simulator<'a> {
    net: &'a Network,
    params: RunParams,
    /// Index into the compact plastic arrays (CSC order by target), or NOT_PLASTIC.
    plastic_index: Vec<u32>,
    /// Edge id of each compact plastic index.
    plastic_edge: Vec<EdgeId>,
    /// Per target node: its incoming plastic edges are plastic_index range
    /// `in_offsets[j]..in_offsets[j+1]`.
    in_offsets: Vec<u32>,
    inv_tau_s: Vec<f64>,
    /// Uniform summation tau over all targets of edges (enables the tables).
    tables: bool,
    inv_tau_s_uniform: f64,
    inv_tau_plus: f64,
    inv_tau_minus: f64,
    /// exp(latency_e / tau_s(target)) per edge (tables only).
    f_s: Vec<f64>,
    /// exp(latency_e / tau_plus), exp(latency_e / tau_minus) per plastic index.
    f_plus: Vec<f64>,
    f_minus: Vec<f64>,
    epoch_ms: f64,
    ring_len: usize,
    max_inv_tau: f64,
}

/// Per-thread scratch of the engine: event queue and dynamic state. Reused
/// across runs (each run resets it), so a thread allocates once.
#[derive(Debug, Default)]
pub struct Workspace {
    ring: Vec<Vec<Ev>>,
    overflow: BinaryHeap<Reverse<Ev>>,
    stimulus: Vec<u128>,
    current: Vec<Ev>,
    grouped: Vec<Ev>,
    group_count: Vec<u32>,
    touched: Vec<u32>,
    group_start: Vec<u32>,
    /// Per group: the next event to process (phases stop at snapshot times).
    group_cursor: Vec<u32>,
    epoch_activations: Vec<Activation>,
    /// Scaled potential: u_j(t) = potential[j] * exp(-(t - origin)/tau_s).
    potential: Vec<f64>,
    last_activation: Vec<f64>,
    /// Scaled post trace: y_j(t) = post_trace[j] * exp(-(t - origin)/tau_minus).
    post_trace: Vec<f64>,
    /// Scaled pre trace per plastic index.
    pre_trace: Vec<f64>,
    /// Per emission (activation of this run): exp((t - origin)/tau) for tau_s,
    /// tau_plus, tau_minus.
    emission_factor: Vec<[f64; 3]>,
}

impl<'a> Simulator<'a> {
    /// Prepares `net` for runs with `params` (computes the factor tables once).
    pub fn new(net: &'a Network, params: &RunParams) -> Result<Simulator<'a>, SimError> {
        Simulator::build(net, params, true)
    }

    /// As [`Simulator::new`], but computing every decay with `exp` per arrival
    /// (the direct formula); for testing the tables against it.
    pub fn new_without_tables(
        net: &'a Network,
        params: &RunParams,
    ) -> Result<Simulator<'a>, SimError> {
        Simulator::build(net, params, false)
    }

    fn build(
        net: &'a Network,
        params: &RunParams,
        allow_tables: bool,
    ) -> Result<Simulator<'a>, SimError> {
        if !(params.duration_ms.is_finite() && params.duration_ms >= 0.0) {
            return Err(SimError::Duration(params.duration_ms));
        }
        let n = net.n_nodes();
        let m = net.n_edges();
        let stdp_on = params.stdp.is_some();
        let (inv_tau_plus, inv_tau_minus) = match params.stdp {
            Some(s) => {
                if !(s.tau_plus_ms > 0.0 && s.tau_minus_ms > 0.0) {
                    return Err(SimError::Stdp(
                        "tau_plus_ms and tau_minus_ms must be > 0".into(),
                    ));
                }
                if s.w_min > s.w_max || !s.w_min.is_finite() || !s.w_max.is_finite() {
                    return Err(SimError::Stdp(format!(
                        "w_min = {} must be <= w_max = {}",
                        s.w_min, s.w_max
                    )));
                }
                (1.0 / s.tau_plus_ms, 1.0 / s.tau_minus_ms)
            }
            None => (0.0, 0.0),
        };
        // Compact plastic arrays in CSC order by target, so potentiation walks
        // memory in order.
        let mut plastic_index = vec![NOT_PLASTIC; m];
        let mut plastic_edge = Vec::new();
        let mut in_offsets = vec![0u32; n + 1];
        if stdp_on {
            for j in 0..n {
                for &e in &net.in_plastic_edges
                    [net.in_plastic_offsets[j] as usize..net.in_plastic_offsets[j + 1] as usize]
                {
                    plastic_index[e as usize] = plastic_edge.len() as u32;
                    plastic_edge.push(e);
                }
                in_offsets[j + 1] = plastic_edge.len() as u32;
            }
        }
        let inv_tau_s: Vec<f64> = net.summation_tau_ms.iter().map(|t| 1.0 / t).collect();
        let mut target_tau: Option<f64> = None;
        let mut uniform = true;
        for &t in &net.edge_target {
            let v = inv_tau_s[t as usize];
            match target_tau {
                None => target_tau = Some(v),
                Some(u) if u != v => {
                    uniform = false;
                    break;
                }
                _ => {}
            }
        }
        let inv_tau_s_uniform = target_tau.unwrap_or(0.0);
        let (mut lat_min, mut lat_max) = (f64::INFINITY, 0.0f64);
        for &l in &net.edge_latency_ms {
            lat_min = lat_min.min(l);
            lat_max = lat_max.max(l);
        }
        let max_inv_tau = inv_tau_s
            .iter()
            .copied()
            .fold(inv_tau_plus.max(inv_tau_minus), f64::max);
        let tables = allow_tables && uniform && lat_max * max_inv_tau <= MAX_TABLED_EXPONENT;
        let (f_s, f_plus, f_minus) = if tables {
            (
                net.edge_latency_ms
                    .iter()
                    .map(|l| (l * inv_tau_s_uniform).exp())
                    .collect(),
                plastic_edge
                    .iter()
                    .map(|&e| (net.edge_latency_ms[e as usize] * inv_tau_plus).exp())
                    .collect(),
                plastic_edge
                    .iter()
                    .map(|&e| (net.edge_latency_ms[e as usize] * inv_tau_minus).exp())
                    .collect(),
            )
        } else {
            (Vec::new(), Vec::new(), Vec::new())
        };
        // Epochs strictly shorter than the smallest latency (the margin keeps
        // floor(t / epoch) from rounding an emission into its own epoch).
        let epoch_ms = if m == 0 {
            MAX_EPOCH_MS
        } else {
            (lat_min * (1.0 - 1e-6)).min(MAX_EPOCH_MS)
        };
        if params.duration_ms / epoch_ms > 1e9 {
            return Err(SimError::TooLong {
                duration: params.duration_ms,
                latency: lat_min,
            });
        }
        let ring_len = ((lat_max / epoch_ms).ceil() as usize + 2)
            .next_power_of_two()
            .min(MAX_RING);
        Ok(Simulator {
            net,
            params: params.clone(),
            plastic_index,
            plastic_edge,
            in_offsets,
            inv_tau_s,
            tables,
            inv_tau_s_uniform,
            inv_tau_plus,
            inv_tau_minus,
            f_s,
            f_plus,
            f_minus,
            epoch_ms,
            ring_len,
            max_inv_tau,
        })
    }

    pub fn network(&self) -> &Network {
        self.net
    }

    pub fn params(&self) -> &RunParams {
        &self.params
    }

    /// Bytes of the prepared tables plus one workspace's dynamic state.
    pub fn state_bytes(&self) -> usize {
        let n = self.net.n_nodes();
        let m = self.net.n_edges();
        let p = self.plastic_edge.len();
        m * (4 + 4 + if self.tables { 8 } else { 0 })
            + p * (4 + 8 + if self.tables { 16 } else { 0 })
            + n * (8 * 4 + 4)
    }

    /// Runs one stimulus, starting from `weights` (one per edge, updated in
    /// place when STDP is on) and from rest (potentials 0, no node refractory,
    /// traces empty).
    pub fn run(
        &self,
        ws: &mut Workspace,
        weights: &mut [f32],
        stimulus: &[ExternalActivation],
        spec: &RecordSpec,
    ) -> Result<Recording, SimError> {
        let net = self.net;
        let n = net.n_nodes();
        let m = net.n_edges();
        let duration = self.params.duration_ms;
        if weights.len() != m {
            return Err(SimError::WeightCount {
                got: weights.len(),
                expected: m,
            });
        }
        if let Some(&e) = spec.snapshot_edges.iter().find(|&&e| e as usize >= m) {
            return Err(SimError::SnapshotEdge(e));
        }
        if let Some(b) = spec.activity_bin_ms {
            if !(b.is_finite() && b > 0.0) {
                return Err(SimError::ActivityBin(b));
            }
        }
        ws.stimulus.clear();
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
            ws.stimulus.push(key(s.time_ms + 0.0, EXTERNAL, s.node));
        }
        ws.stimulus.sort_unstable();
        self.reset(ws);

        let mut rec = Recording::default();
        if spec.node_counts {
            rec.activation_counts = vec![0; n];
            rec.lost_counts = vec![0; n];
        }
        if let Some(bw) = spec.activity_bin_ms {
            rec.activity_bins = ((duration / bw).ceil() as usize).max(1);
            rec.activity = vec![0; n * rec.activity_bins];
        }
        let mut snapshot_times: Vec<f64> = spec.weight_snapshots_ms.clone();
        snapshot_times.sort_by(f64::total_cmp);
        snapshot_times.retain(|&t| t <= duration);
        let mut next_snapshot = 0usize;

        let mask = (self.ring_len - 1) as u64;
        let inv_epoch = 1.0 / self.epoch_ms;
        let epoch_of = |t: f64| (t * inv_epoch) as u64;
        let last_epoch = epoch_of(duration);
        let mut ctx = Ctx {
            sim: self,
            weights,
            spec,
            rec: &mut rec,
            totals: RunTotals::default(),
            origin: 0.0,
            stdp: self.params.stdp.unwrap_or(StdpParams {
                a_plus: 0.0,
                a_minus: 0.0,
                tau_plus_ms: 1.0,
                tau_minus_ms: 1.0,
                w_min: 0.0,
                w_max: 0.0,
                lost_arrivals_count: false,
            }),
            lost_count_stdp: self.params.stdp.is_some_and(|p| p.lost_arrivals_count),
        };
        let mut stim_cursor = 0usize;
        let mut pending = 0usize;
        let mut epoch: u64 = 0;
        while epoch <= last_epoch {
            let slot = (epoch & mask) as usize;
            std::mem::swap(&mut ws.current, &mut ws.ring[slot]);
            pending -= ws.current.len();
            while stim_cursor < ws.stimulus.len()
                && epoch_of(key_time(ws.stimulus[stim_cursor])) <= epoch
            {
                let k = ws.stimulus[stim_cursor];
                ws.current.push(Ev::new(k, k as u32, NOT_PLASTIC));
                stim_cursor += 1;
            }
            while let Some(&Reverse(k)) = ws.overflow.peek() {
                if epoch_of(k.t()) > epoch {
                    break;
                }
                ws.current.push(k);
                ws.overflow.pop();
            }
            if ws.current.is_empty() {
                std::mem::swap(&mut ws.current, &mut ws.ring[slot]);
                if pending == 0 {
                    // Nothing in flight: jump to the next stimulus or overflow event.
                    let next_stim = ws.stimulus.get(stim_cursor).map(|&k| epoch_of(key_time(k)));
                    let next_over = ws.overflow.peek().map(|&Reverse(k)| epoch_of(k.t()));
                    match next_stim.into_iter().chain(next_over).min() {
                        Some(b) => epoch = b.max(epoch + 1),
                        None => break,
                    }
                } else {
                    epoch += 1;
                }
                continue;
            }
            let epoch_start = epoch as f64 * self.epoch_ms;
            if (epoch_start - ctx.origin) * self.max_inv_tau > REBASE_EXPONENT {
                ctx.rebase(ws, epoch_start);
            }
            self.group_by_target(ws);
            // Phases split the epoch at snapshot times (and at the end of the
            // run): every target is processed up to a limit before any goes past it.
            let epoch_end = (epoch + 1) as f64 * self.epoch_ms;
            loop {
                let snap = snapshot_times
                    .get(next_snapshot)
                    .copied()
                    .filter(|&t| t < epoch_end);
                let limit = snap.unwrap_or(f64::INFINITY).min(duration);
                match (self.params.stdp.is_some(), self.tables) {
                    (true, true) => ctx.phase::<true, true>(ws, limit, epoch, mask, &mut pending),
                    (true, false) => ctx.phase::<true, false>(ws, limit, epoch, mask, &mut pending),
                    (false, true) => ctx.phase::<false, true>(ws, limit, epoch, mask, &mut pending),
                    (false, false) => {
                        ctx.phase::<false, false>(ws, limit, epoch, mask, &mut pending)
                    }
                }
                match snap {
                    Some(t) if t <= duration => {
                        ctx.flush_activations(ws);
                        ctx.rec.snapshots.push(snapshot(spec, ctx.weights, t));
                        next_snapshot += 1;
                    }
                    _ => break,
                }
            }
            ctx.flush_activations(ws);
            ws.current.clear();
            epoch += 1;
        }
        while next_snapshot < snapshot_times.len() {
            ctx.rec
                .snapshots
                .push(snapshot(spec, ctx.weights, snapshot_times[next_snapshot]));
            next_snapshot += 1;
        }
        let totals = ctx.totals;
        rec.totals = totals;
        Ok(rec)
    }

    /// Counting sort of the epoch's events by target, then a short sort of
    /// each target's events by (time, edge). The order of the targets is that
    /// of their first event (it does not matter: targets are independent
    /// within an epoch, and activations are re-sorted at flush).
    fn group_by_target(&self, ws: &mut Workspace) {
        let len = ws.current.len();
        ws.touched.clear();
        ws.touched.resize(len, 0);
        let mut nt = 0usize;
        {
            let touched = &mut ws.touched[..len];
            let count = &mut ws.group_count[..];
            for ev in &ws.current {
                let j = ev.target as usize;
                let c = count[j];
                // Branch-free: the slot is kept only for a first event.
                touched[nt] = j as u32;
                nt += (c == 0) as usize;
                count[j] = c + 1;
            }
        }
        ws.touched.truncate(nt);

        ws.group_start.clear();
        ws.group_cursor.clear();
        let mut offset = 0u32;
        for &j in &ws.touched {
            ws.group_start.push(offset);
            ws.group_cursor.push(offset);
            let c = ws.group_count[j as usize];
            // Reuse the count as the fill cursor.
            ws.group_count[j as usize] = offset;
            offset += c;
        }
        if ws.grouped.len() < len {
            ws.grouped.resize(len, Ev::default());
        }
        {
            let grouped = &mut ws.grouped[..len];
            let count = &mut ws.group_count[..];
            for ev in &ws.current {
                let j = ev.target as usize;
                let c = count[j];
                grouped[c as usize] = *ev;
                count[j] = c + 1;
            }
        }
        for gi in 0..ws.touched.len() {
            ws.group_count[ws.touched[gi] as usize] = 0;
            let end = if gi + 1 < ws.touched.len() {
                ws.group_start[gi + 1] as usize
            } else {
                len
            };
            insertion_sort(&mut ws.grouped[ws.group_start[gi] as usize..end]);
        }
    }

    fn reset(&self, ws: &mut Workspace) {
        let n = self.net.n_nodes();
        fn fill<T: Clone>(v: &mut Vec<T>, len: usize, x: T) {
            v.clear();
            v.resize(len, x);
        }
        fill(&mut ws.potential, n, 0.0);
        fill(&mut ws.last_activation, n, f64::NEG_INFINITY);
        fill(&mut ws.post_trace, n, 0.0);
        fill(&mut ws.pre_trace, self.plastic_edge.len(), 0.0);
        fill(&mut ws.group_count, n, 0);
        ws.emission_factor.clear();
        if ws.ring.len() != self.ring_len {
            ws.ring = (0..self.ring_len).map(|_| Vec::new()).collect();
        }
        for b in ws.ring.iter_mut() {
            b.clear();
        }
        ws.overflow.clear();
        ws.current.clear();
        ws.epoch_activations.clear();
    }
}

/// The weights of the recorded edge set at `time_ms`.
fn snapshot(spec: &RecordSpec, weights: &[f32], time_ms: f64) -> WeightSnapshot {
    WeightSnapshot {
        time_ms,
        weights: spec
            .snapshot_edges
            .iter()
            .map(|&e| weights[e as usize])
            .collect(),
    }
}

/// The mutable context of one run.
struct Ctx<'s, 'a, 'w> {
    sim: &'s Simulator<'a>,
    weights: &'w mut [f32],
    spec: &'w RecordSpec,
    rec: &'w mut Recording,
    totals: RunTotals,
    origin: f64,
    /// The STDP parameters (zeros when off), and whether a lost arrival counts.
    stdp: StdpParams,
    lost_count_stdp: bool,
}

impl Ctx<'_, '_, '_> {
    /// Moves the origin of the scaled quantities to `new_origin`.
    fn rebase(&mut self, ws: &mut Workspace, new_origin: f64) {
        let s = self.sim;
        let shift = new_origin - self.origin;
        for (j, u) in ws.potential.iter_mut().enumerate() {
            *u *= (-shift * s.inv_tau_s[j]).exp();
        }
        let dp = (-shift * s.inv_tau_plus).exp();
        let dm = (-shift * s.inv_tau_minus).exp();
        let ds = (-shift * s.inv_tau_s_uniform).exp();
        for y in ws.post_trace.iter_mut() {
            *y *= dm;
        }
        for x in ws.pre_trace.iter_mut() {
            *x *= dp;
        }
        for f in ws.emission_factor.iter_mut() {
            f[0] *= ds;
            f[1] *= dp;
            f[2] *= dm;
        }
        self.origin = new_origin;
    }

    /// Appends the epoch's activations in (time, node) order.
    fn flush_activations(&mut self, ws: &mut Workspace) {
        if !ws.epoch_activations.is_empty() {
            ws.epoch_activations
                .sort_unstable_by(|a, b| a.time_ms.total_cmp(&b.time_ms).then(a.node.cmp(&b.node)));
            self.rec.activations.append(&mut ws.epoch_activations);
        }
    }

    /// Processes, target by target, every grouped event with time <= limit.
    #[inline(never)]
    fn phase<const STDP: bool, const TABLES: bool>(
        &mut self,
        ws: &mut Workspace,
        limit: f64,
        epoch: u64,
        mask: u64,
        pending: &mut usize,
    ) {
        let len = ws.current.len();
        for gi in 0..ws.touched.len() {
            let j = ws.touched[gi] as usize;
            let end = if gi + 1 < ws.touched.len() {
                ws.group_start[gi + 1] as usize
            } else {
                len
            };
            // The group ends where the next one starts (group_start is never
            // advanced; the cursor is, so a later phase resumes at it).
            let mut c = ws.group_cursor[gi] as usize;
            while c < end {
                let k = ws.grouped[c];
                if k.t() > limit {
                    break;
                }
                c += 1;
                self.process::<STDP, TABLES>(ws, j, k, epoch, mask, pending);
            }
            ws.group_cursor[gi] = c as u32;
        }
    }

    /// Processes one event at target j.
    #[inline(always)]
    fn process<const STDP: bool, const TABLES: bool>(
        &mut self,
        ws: &mut Workspace,
        j: usize,
        k: Ev,
        epoch: u64,
        mask: u64,
        pending: &mut usize,
    ) {
        let s = self.sim;
        let net = s.net;
        let t = k.t();
        let edge = (k.low >> 32) as u32;
        let emission = k.low as u32 as usize;
        let refractory = t - ws.last_activation[j] < net.refractory_period_ms[j];
        let cause;
        if edge == EXTERNAL {
            self.totals.external_activations += 1;
            if refractory {
                self.totals.lost_external += 1;
                return;
            }
            cause = None;
        } else {
            let e = edge as usize;
            self.totals.arrivals += 1;
            let pi = k.plastic;
            if refractory {
                self.totals.lost_arrivals += 1;
                if self.spec.node_counts {
                    self.rec.lost_counts[j] += 1;
                }
                if !STDP || pi == NOT_PLASTIC || !self.lost_count_stdp {
                    return;
                }
            }
            let w = self.weights[e] as f64;
            if STDP && pi != NOT_PLASTIC {
                // Depression from earlier post activations; then the pre trace.
                let p = self.stdp;
                let pi = pi as usize;
                let (g_plus, g_minus) = if TABLES {
                    let f = ws.emission_factor[emission];
                    (f[1] * s.f_plus[pi], f[2] * s.f_minus[pi])
                } else {
                    (
                        ((t - self.origin) * s.inv_tau_plus).exp(),
                        ((t - self.origin) * s.inv_tau_minus).exp(),
                    )
                };
                let y = ws.post_trace[j] / g_minus;
                if y > 0.0 {
                    self.weights[e] = (w - p.a_minus * y).clamp(p.w_min, p.w_max) as f32;
                    self.totals.stdp_updates += 1;
                }
                ws.pre_trace[pi] += g_plus;
            }
            if refractory {
                return;
            }
            let g = if TABLES {
                ws.emission_factor[emission][0] * s.f_s[e]
            } else {
                ((t - self.origin) * s.inv_tau_s[j]).exp()
            };
            let u = ws.potential[j] + w * g;
            if u < net.threshold[j] * g {
                ws.potential[j] = u;
                return;
            }
            cause = Some(edge as EdgeId);
        }
        self.activate::<STDP, TABLES>(ws, j, t, cause, epoch, mask, pending);
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn activate<const STDP: bool, const TABLES: bool>(
        &mut self,
        ws: &mut Workspace,
        j: usize,
        t: f64,
        cause: Option<EdgeId>,
        epoch: u64,
        mask: u64,
        pending: &mut usize,
    ) {
        let s = self.sim;
        let net = s.net;
        ws.potential[j] = 0.0;
        ws.last_activation[j] = t;
        self.totals.activations += 1;
        if self.spec.node_counts {
            self.rec.activation_counts[j] += 1;
        }
        if let Some(bw) = self.spec.activity_bin_ms {
            let bins = self.rec.activity_bins;
            let bin = ((t / bw) as usize).min(bins - 1);
            self.rec.activity[j * bins + bin] += 1;
        }
        if self.spec.activations {
            ws.epoch_activations.push(Activation {
                node: j as NodeId,
                time_ms: t,
                causal_edge: cause,
            });
        }
        let rel = t - self.origin;
        if STDP {
            let p = self.stdp;
            // Potentiation: x_e(t) = pre_trace * exp(-(t - origin)/tau_plus).
            let h = (-rel * s.inv_tau_plus).exp();
            for pi in s.in_offsets[j] as usize..s.in_offsets[j + 1] as usize {
                let x = ws.pre_trace[pi];
                if x > 0.0 {
                    let e = s.plastic_edge[pi] as usize;
                    self.weights[e] =
                        (self.weights[e] as f64 + p.a_plus * x * h).clamp(p.w_min, p.w_max) as f32;
                    self.totals.stdp_updates += 1;
                }
            }
            ws.post_trace[j] += (rel * s.inv_tau_minus).exp();
        }
        let (lo, hi) = (net.out_offsets[j] as usize, net.out_offsets[j + 1] as usize);
        if lo == hi {
            return;
        }
        let emission = ws.emission_factor.len() as u32 as u64;
        if TABLES {
            ws.emission_factor.push([
                (rel * s.inv_tau_s_uniform).exp(),
                if STDP {
                    (rel * s.inv_tau_plus).exp()
                } else {
                    0.0
                },
                if STDP {
                    (rel * s.inv_tau_minus).exp()
                } else {
                    0.0
                },
            ]);
        }
        let inv_epoch = 1.0 / s.epoch_ms;
        let latency = &net.edge_latency_ms[lo..hi];
        let target = &net.edge_target[lo..hi];
        let plastic = &s.plastic_index[lo..hi];
        let mut overflowed = 0usize;
        for i in 0..latency.len() {
            let ta = t + latency[i];
            let b = (ta * inv_epoch) as u64;
            debug_assert!(b > epoch, "emission fell in its own epoch");
            let ev = Ev {
                time: ta.to_bits(),
                low: (((lo + i) as u64) << 32) | emission,
                target: target[i],
                plastic: plastic[i],
            };
            if b - epoch <= mask {
                ws.ring[(b & mask) as usize].push(ev);
            } else {
                ws.overflow.push(Reverse(ev));
                overflowed += 1;
            }
        }
        *pending += latency.len() - overflowed;
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
    let sim = Simulator::new(net, params)?;
    let rec = sim.run(&mut Workspace::default(), &mut weights, stimulus, spec)?;
    Ok((rec, weights))
}

#[cfg(test)]
mod tests;
