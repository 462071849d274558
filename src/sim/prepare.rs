//! Preparing a network for runs: the per-edge tables computed once per
//! (network, parameters) and shared by every run and thread.

use super::events::{epoch_geometry, OutEdge, OutPlastic, NOT_PLASTIC};
use super::params::{RunParams, SimError};
use crate::network::{EdgeId, Network, NodeId};

/// Largest latency/tau for which per-edge factors exp(latency/tau) are tabled.
const MAX_TABLED_EXPONENT: f64 = 200.0;

/// A network prepared for simulation with given run parameters: the per-edge
/// factor tables, the plastic-edge index and the queue geometry. Immutable and
/// shareable across threads; each thread brings its own [`super::Workspace`].
///
/// The targets are cut into [`Part`]s, contiguous ranges of nodes with about
/// equal numbers of in-edges, each with the out-edge table of the edges into
/// it. Within an epoch the targets are independent (nothing emitted in an
/// epoch arrives in it), so the parts of one run are processed in parallel,
/// and they meet only at the end of each epoch, where every part queues the
/// epoch's activations on its own out-edges. A run's result does not depend
/// on the number of parts (see `run`); one part is the plain engine.
#[derive(Debug)]
pub struct Simulator<'a> {
    pub(super) net: &'a Network,
    pub(super) params: RunParams,
    /// Per edge: its index into its part's compact plastic arrays (CSC order
    /// by target), or NOT_PLASTIC.
    pub(super) plastic_index: Vec<u32>,
    pub(super) parts: Vec<Part>,
    pub(super) inv_tau_s: Vec<f64>,
    /// Per node: the threshold every run starts with, copied from the
    /// network at construction. The simulator's own copy, so thresholds can
    /// change between runs ([`Simulator::set_thresholds`], e.g. homeostasis
    /// between training images) without rebuilding the tables or touching
    /// the network; within a run they are constant.
    pub(super) threshold: Vec<f64>,
    /// Uniform summation tau over all targets of edges (enables the tables).
    pub(super) tables: bool,
    pub(super) inv_tau_s_uniform: f64,
    pub(super) inv_tau_plus: f64,
    pub(super) inv_tau_minus: f64,
    pub(super) epoch_ms: f64,
    /// 1 / epoch_ms: the one product that assigns a time to its epoch.
    pub(super) inv_epoch: f64,
    pub(super) ring_len: usize,
    pub(super) max_inv_tau: f64,
}

/// The targets `lo..hi` and what processing their events reads: the edges
/// into them, as each source's out-edges in latency order, and their plastic
/// in-edges.
#[derive(Debug)]
pub(super) struct Part {
    pub(super) lo: u32,
    pub(super) hi: u32,
    /// Source i's edges into this part are `out_edges[out_offsets[i]..
    /// out_offsets[i + 1]]`, sorted by (latency, edge id), with what emission
    /// writes into an event.
    pub(super) out_offsets: Vec<u32>,
    pub(super) out_edges: Vec<OutEdge>,
    /// What STDP adds to each entry of `out_edges`; empty with STDP off or
    /// no plastic edge into the part, so such a part's emissions read 24
    /// bytes per edge.
    pub(super) out_plastic: Vec<OutPlastic>,
    /// Edge id of each of this part's compact plastic indices.
    pub(super) plastic_edge: Vec<EdgeId>,
    /// Per target node j of this part: its incoming plastic edges are
    /// plastic indices `in_offsets[j - lo]..in_offsets[j - lo + 1]`.
    pub(super) in_offsets: Vec<u32>,
    /// Whether writing an arrival prefetches the target's state and the
    /// plastic edge's: only when the run state that arrivals read (every
    /// node's record, this part's plastic records) is larger than
    /// `PREFETCH_STATE_BYTES`. Below that it stays cached between
    /// arrivals, and the hints only cost instructions (N = 200: about 5%
    /// of the time; N = 400 and up: the hints save a third).
    pub(super) prefetch_state: bool,
    /// Per source node: whether any of its edges into this part is plastic
    /// (all false without STDP).
    pub(super) plastic_source: Vec<bool>,
}

/// The run state size above which arrivals prefetch it: the second-level
/// cache of the machines measured (1 MiB per core).
const PREFETCH_STATE_BYTES: usize = 1 << 20;

impl Part {
    /// Whether node j is one of this part's targets.
    pub(super) fn owns(&self, j: u32) -> bool {
        (self.lo..self.hi).contains(&j)
    }
}

/// Cuts the nodes into `parts` contiguous ranges with about equal numbers of
/// in-edges (the work of a part is its arrivals), as `parts + 1` bounds.
/// Fewer ranges when there are fewer nodes; at least one.
fn part_bounds(net: &Network, parts: usize) -> Vec<u32> {
    let n = net.n_nodes();
    let parts = parts.clamp(1, n.max(1));
    let mut in_degree = vec![0u64; n];
    for &t in &net.edge_target {
        in_degree[t as usize] += 1;
    }
    // Each node weighs its in-degree plus one, so nodes without in-edges
    // (inputs) still spread.
    let total: u64 = in_degree.iter().map(|d| d + 1).sum();
    let mut bounds = vec![0u32];
    let mut acc = 0u64;
    for (j, d) in in_degree.iter().enumerate() {
        acc += d + 1;
        let k = bounds.len() as u64;
        if (k as usize) < parts && acc * parts as u64 >= k * total {
            bounds.push(j as u32 + 1);
        }
    }
    bounds.push(n as u32);
    bounds.dedup();
    if bounds.len() == 1 {
        bounds.push(n as u32);
    }
    bounds
}

/// The per-edge factors exp(latency / tau) of an out-edge (zeros without
/// the tables), each the same product as before the parts existed.
struct Factors {
    on: bool,
    inv_tau_s: f64,
    inv_tau_plus: f64,
    inv_tau_minus: f64,
}

/// One part: its plastic in-edges in CSC order by target (so potentiation
/// walks memory in order; none with STDP off), numbering them in
/// `plastic_index`, and its out-edge table.
fn build_part(
    net: &Network,
    lo: u32,
    hi: u32,
    stdp_on: bool,
    factors: &Factors,
    plastic_index: &mut [u32],
) -> Part {
    // Sized exactly before filling: at 10^7 edges a doubling Vec would hold
    // up to twice the table (and the memory estimate counts it exactly).
    let part_plastic = if stdp_on {
        (net.in_plastic_offsets[hi as usize] - net.in_plastic_offsets[lo as usize]) as usize
    } else {
        0
    };
    let part_edges = net
        .edge_target
        .iter()
        .filter(|&&t| (lo..hi).contains(&t))
        .count();
    let mut plastic_edge = Vec::with_capacity(part_plastic);
    let mut in_offsets = vec![0u32; (hi - lo) as usize + 1];
    if stdp_on {
        for j in lo..hi {
            let j = j as usize;
            for &e in &net.in_plastic_edges
                [net.in_plastic_offsets[j] as usize..net.in_plastic_offsets[j + 1] as usize]
            {
                plastic_index[e as usize] = plastic_edge.len() as u32;
                plastic_edge.push(e);
            }
            in_offsets[j + 1 - lo as usize] = plastic_edge.len() as u32;
        }
    }
    let f = |on: bool, latency: f64, inv_tau: f64| {
        if on {
            (latency * inv_tau).exp()
        } else {
            0.0
        }
    };
    let n = net.n_nodes();
    let mut out_offsets = Vec::with_capacity(n + 1);
    out_offsets.push(0u32);
    let mut out_edges = Vec::with_capacity(part_edges);
    let with_plastic = !plastic_edge.is_empty();
    let mut out_plastic = Vec::with_capacity(if with_plastic { part_edges } else { 0 });
    for i in 0..n {
        let start = out_edges.len();
        let range = net.out_offsets[i] as usize..net.out_offsets[i + 1] as usize;
        let edges = range.clone().zip(&net.edge_target[range.clone()]);
        for (e, &target) in edges {
            if !(lo..hi).contains(&target) {
                continue;
            }
            let latency = net.edge_latency_ms[e];
            out_edges.push(OutEdge {
                latency,
                f_s: f(factors.on, latency, factors.inv_tau_s),
                edge: e as u32,
                target,
            });
        }
        // By (latency, edge id): an emission's arrivals come out in time
        // order, ties by edge id (the event order's next key).
        out_edges[start..]
            .sort_unstable_by(|a, b| a.latency.total_cmp(&b.latency).then(a.edge.cmp(&b.edge)));
        if with_plastic {
            out_plastic.extend(out_edges[start..].iter().map(|oe| {
                let pi = plastic_index[oe.edge as usize];
                let on = factors.on && pi != NOT_PLASTIC;
                OutPlastic {
                    f_plus: f(on, oe.latency, factors.inv_tau_plus),
                    f_minus: f(on, oe.latency, factors.inv_tau_minus),
                    plastic: pi,
                }
            }));
        }
        out_offsets.push(out_edges.len() as u32);
    }
    let plastic_source = (0..n)
        .map(|i| {
            let range = out_offsets[i] as usize..out_offsets[i + 1] as usize;
            with_plastic && out_plastic[range].iter().any(|p| p.plastic != NOT_PLASTIC)
        })
        .collect();
    let state_bytes = n * std::mem::size_of::<super::dynamics::NodeHot>()
        + plastic_edge.len() * std::mem::size_of::<super::dynamics::PlasticHot>();
    Part {
        prefetch_state: state_bytes > PREFETCH_STATE_BYTES,
        plastic_source,
        lo,
        hi,
        out_offsets,
        out_edges,
        out_plastic,
        plastic_edge,
        in_offsets,
    }
}

/// Whether the targets of all edges share one 1/tau_s, and that value (0.0
/// when there are no edges); the tau_s factor tables need it uniform.
fn uniform_inv_tau(net: &Network, inv_tau_s: &[f64]) -> (bool, f64) {
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
    (uniform, target_tau.unwrap_or(0.0))
}

impl<'a> Simulator<'a> {
    /// Prepares `net` for runs with `params` (computes the factor tables once).
    pub fn new(net: &'a Network, params: &RunParams) -> Result<Simulator<'a>, SimError> {
        Simulator::build(net, params, true, 1)
    }

    /// As [`Simulator::new`], with the targets cut into `parts` parts that
    /// each run processes in parallel (on the current rayon pool): for one
    /// large network on several threads. The result is the same, bit for
    /// bit, for any number of parts; more parts than nodes are fewer parts.
    pub fn with_parts(
        net: &'a Network,
        params: &RunParams,
        parts: usize,
    ) -> Result<Simulator<'a>, SimError> {
        Simulator::build(net, params, true, parts)
    }

    /// As [`Simulator::new`], but computing every decay with `exp` per arrival
    /// (the direct formula); for testing the tables against it.
    pub fn new_without_tables(
        net: &'a Network,
        params: &RunParams,
    ) -> Result<Simulator<'a>, SimError> {
        Simulator::build(net, params, false, 1)
    }

    #[cfg(test)]
    pub(super) fn with_parts_without_tables(
        net: &'a Network,
        params: &RunParams,
        parts: usize,
    ) -> Result<Simulator<'a>, SimError> {
        Simulator::build(net, params, false, parts)
    }

    fn build(
        net: &'a Network,
        params: &RunParams,
        allow_tables: bool,
        parts: usize,
    ) -> Result<Simulator<'a>, SimError> {
        // The parameters were checked when made (RunParams::new, StdpParams::new).
        let (inv_tau_plus, inv_tau_minus) = match params.stdp() {
            Some(s) => (1.0 / s.tau_plus_ms(), 1.0 / s.tau_minus_ms()),
            None => (0.0, 0.0),
        };
        let inv_tau_s: Vec<f64> = net.summation_tau_ms.iter().map(|t| 1.0 / t).collect();
        let (uniform, inv_tau_s_uniform) = uniform_inv_tau(net, &inv_tau_s);
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
        let (epoch_ms, ring_len) = epoch_geometry(net.n_edges() > 0, lat_min, lat_max, max_inv_tau);
        if params.duration_ms() / epoch_ms > 1e9 {
            return Err(SimError::TooLong {
                duration: params.duration_ms(),
                epoch: epoch_ms,
                latency: lat_min,
                tau: 1.0 / max_inv_tau,
            });
        }
        let factors = Factors {
            on: tables,
            inv_tau_s: inv_tau_s_uniform,
            inv_tau_plus,
            inv_tau_minus,
        };
        let mut plastic_index = vec![NOT_PLASTIC; net.n_edges()];
        let bounds = part_bounds(net, parts);
        let mut parts = bounds
            .windows(2)
            .map(|b| {
                build_part(
                    net,
                    b[0],
                    b[1],
                    params.stdp().is_some(),
                    &factors,
                    &mut plastic_index,
                )
            })
            .collect::<Vec<Part>>();
        // The tests' networks are all small: there a network in several
        // parts prefetches and one in one part does not, so both loops
        // run and are held to each other and to the reference.
        if cfg!(test) {
            let split = parts.len() > 1;
            for p in parts.iter_mut() {
                p.prefetch_state = split;
            }
        }
        // Kept only where there is a plastic edge to look up (snapshots read
        // it); without one, 4 bytes per edge saved.
        if parts.iter().all(|p| p.plastic_edge.is_empty()) {
            plastic_index = Vec::new();
        }
        Ok(Simulator {
            net,
            params: params.clone(),
            plastic_index,
            parts,
            inv_tau_s,
            threshold: net.threshold.clone(),
            tables,
            inv_tau_s_uniform,
            inv_tau_plus,
            inv_tau_minus,
            epoch_ms,
            inv_epoch: 1.0 / epoch_ms,
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

    /// The per-node thresholds the next run starts with (the network's
    /// unless [`Simulator::set_thresholds`] changed them).
    pub fn thresholds(&self) -> &[f64] {
        &self.threshold
    }

    /// Replaces the per-node thresholds for the runs that follow. Thresholds
    /// are read only when a run resets its state, so a change never reaches
    /// a run in progress. One value per node, each finite and > 0 (the
    /// network's own rule); on an error nothing changes.
    pub fn set_thresholds(&mut self, threshold: &[f64]) -> Result<(), SimError> {
        if threshold.len() != self.net.n_nodes() {
            return Err(SimError::ThresholdCount {
                got: threshold.len(),
                expected: self.net.n_nodes(),
            });
        }
        if let Some(j) = threshold.iter().position(|&h| !(h.is_finite() && h > 0.0)) {
            return Err(SimError::Threshold {
                node: j as NodeId,
                value: threshold[j],
            });
        }
        self.threshold.copy_from_slice(threshold);
        Ok(())
    }

    /// How many parts the targets are cut into (see [`Simulator::with_parts`]).
    pub fn n_parts(&self) -> usize {
        self.parts.len()
    }

    /// The part whose targets include node j.
    pub(super) fn part_of(&self, j: u32) -> usize {
        self.parts.partition_point(|p| p.hi <= j)
    }

    /// Bytes of the prepared tables plus one workspace's dynamic state.
    pub fn state_bytes(&self) -> usize {
        let p: usize = self.parts.iter().map(|p| p.plastic_edge.len()).sum();
        estimate_state_bytes(self.net.n_nodes(), self.net.n_edges(), p, self.parts.len())
    }
}

/// What [`Simulator::state_bytes`] will be for a network of `n_nodes` nodes
/// and `n_edges` edges, `n_plastic` of them plastic under the run's STDP,
/// cut into `n_parts` parts: known before the network is built, so a run
/// that would not fit is refused first. The event buffers are not counted
/// (they grow with the activity, bounded by `RunLimits`).
pub fn estimate_state_bytes(
    n_nodes: usize,
    n_edges: usize,
    n_plastic: usize,
    n_parts: usize,
) -> usize {
    use std::mem::size_of;
    let (n, m, p) = (n_nodes, n_edges, n_plastic);
    let parts = n_parts.clamp(1, n.max(1));
    // Per edge: the out-edge table (and, with any plastic edge, the plastic
    // index and what STDP adds beside the table); per plastic edge: its
    // id and its run state; per node and part: the part's out-edge offsets,
    // its run state and activation record (a part keeps them for every
    // node) and whether its edges into the part include a plastic one; per
    // node once: 1/tau_s, the threshold and the plastic offsets.
    let beside = if p > 0 {
        4 + size_of::<OutPlastic>()
    } else {
        0
    };
    m * (size_of::<OutEdge>() + beside)
        + p * (4 + size_of::<super::dynamics::PlasticHot>())
        + parts * n * (4 + size_of::<super::dynamics::NodeHot>() + 8 + size_of::<bool>())
        + n * (4 + 8 + 8)
}
