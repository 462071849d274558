//! Preparing a network for runs: the per-edge tables computed once per
//! (network, parameters) and shared by every run and thread.

use super::events::{epoch_geometry, OutEdge, NOT_PLASTIC};
use super::params::{RunParams, SimError};
use crate::network::{EdgeId, Network};

/// Largest latency/tau for which per-edge factors exp(latency/tau) are tabled.
const MAX_TABLED_EXPONENT: f64 = 200.0;

/// A network prepared for simulation with given run parameters: the per-edge
/// factor tables, the plastic-edge index and the queue geometry. Immutable and
/// shareable across threads; each thread brings its own [`super::Workspace`].
#[derive(Debug)]
pub struct Simulator<'a> {
    pub(super) net: &'a Network,
    pub(super) params: RunParams,
    /// Per edge: its index into the compact plastic arrays (CSC order by
    /// target), or NOT_PLASTIC.
    pub(super) plastic_index: Vec<u32>,
    /// Edge id of each compact plastic index.
    pub(super) plastic_edge: Vec<EdgeId>,
    /// Per target node: its incoming plastic edges are plastic_index range
    /// `in_offsets[j]..in_offsets[j+1]`.
    pub(super) in_offsets: Vec<u32>,
    pub(super) inv_tau_s: Vec<f64>,
    /// Uniform summation tau over all targets of edges (enables the tables).
    pub(super) tables: bool,
    pub(super) inv_tau_s_uniform: f64,
    pub(super) inv_tau_plus: f64,
    pub(super) inv_tau_minus: f64,
    /// Each node's out-edges (its `Network::out_offsets` range) in latency
    /// order, with what emission writes into an event.
    pub(super) out_edges: Vec<OutEdge>,
    pub(super) epoch_ms: f64,
    /// 1 / epoch_ms: the one product that assigns a time to its epoch.
    pub(super) inv_epoch: f64,
    pub(super) ring_len: usize,
    pub(super) max_inv_tau: f64,
}

/// The compact plastic arrays: per edge its plastic index (or NOT_PLASTIC),
/// per plastic index its edge, per target its range of plastic indices.
struct PlasticLayout {
    index: Vec<u32>,
    edge: Vec<EdgeId>,
    in_offsets: Vec<u32>,
}

/// Builds the compact plastic arrays in CSC order by target, so potentiation
/// walks memory in order. With STDP off no edge is plastic.
fn plastic_layout(net: &Network, stdp_on: bool) -> PlasticLayout {
    let n = net.n_nodes();
    let mut index = vec![NOT_PLASTIC; net.n_edges()];
    let mut edge = Vec::new();
    let mut in_offsets = vec![0u32; n + 1];
    if stdp_on {
        for j in 0..n {
            for &e in &net.in_plastic_edges
                [net.in_plastic_offsets[j] as usize..net.in_plastic_offsets[j + 1] as usize]
            {
                index[e as usize] = edge.len() as u32;
                edge.push(e);
            }
            in_offsets[j + 1] = edge.len() as u32;
        }
    }
    PlasticLayout {
        index,
        edge,
        in_offsets,
    }
}

/// Every node's out-edges sorted by (latency, edge id) within its CSR range,
/// so an emission's arrivals are in time order (ties by edge id, which is
/// the event order's next key), with the edge's factor tables (empty
/// tables: zeros, unused).
fn out_edge_table(
    net: &Network,
    plastic_index: &[u32],
    f_s: &[f64],
    f_plus: &[f64],
    f_minus: &[f64],
) -> Vec<OutEdge> {
    let mut out: Vec<OutEdge> = (0..net.n_edges())
        .map(|e| {
            let pi = plastic_index[e];
            let per_plastic = |f: &[f64]| f.get(pi as usize).copied().unwrap_or(0.0);
            OutEdge {
                latency: net.edge_latency_ms[e],
                edge: e as u32,
                target: net.edge_target[e],
                plastic: pi,
                f_s: f_s.get(e).copied().unwrap_or(0.0),
                f_plus: per_plastic(f_plus),
                f_minus: per_plastic(f_minus),
            }
        })
        .collect();
    for i in 0..net.n_nodes() {
        let (lo, hi) = (net.out_offsets[i] as usize, net.out_offsets[i + 1] as usize);
        out[lo..hi]
            .sort_unstable_by(|a, b| a.latency.total_cmp(&b.latency).then(a.edge.cmp(&b.edge)));
    }
    out
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

/// exp(latency / tau) per edge for tau_s, and per plastic edge for tau_plus
/// and tau_minus.
fn factor_tables(
    net: &Network,
    plastic_edge: &[EdgeId],
    inv_tau_s: f64,
    inv_tau_plus: f64,
    inv_tau_minus: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let per_plastic = |inv_tau: f64| -> Vec<f64> {
        plastic_edge
            .iter()
            .map(|&e| (net.edge_latency_ms[e as usize] * inv_tau).exp())
            .collect()
    };
    (
        net.edge_latency_ms
            .iter()
            .map(|l| (l * inv_tau_s).exp())
            .collect(),
        per_plastic(inv_tau_plus),
        per_plastic(inv_tau_minus),
    )
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
        // The parameters were checked when made (RunParams::new, StdpParams::new).
        let (inv_tau_plus, inv_tau_minus) = match params.stdp() {
            Some(s) => (1.0 / s.tau_plus_ms(), 1.0 / s.tau_minus_ms()),
            None => (0.0, 0.0),
        };
        let plastic = plastic_layout(net, params.stdp().is_some());
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
        let (f_s, f_plus, f_minus) = if tables {
            factor_tables(
                net,
                &plastic.edge,
                inv_tau_s_uniform,
                inv_tau_plus,
                inv_tau_minus,
            )
        } else {
            (Vec::new(), Vec::new(), Vec::new())
        };
        let (epoch_ms, ring_len) = epoch_geometry(net.n_edges() > 0, lat_min, lat_max, max_inv_tau);
        if params.duration_ms() / epoch_ms > 1e9 {
            return Err(SimError::TooLong {
                duration: params.duration_ms(),
                epoch: epoch_ms,
                latency: lat_min,
                tau: 1.0 / max_inv_tau,
            });
        }
        let out_edges = out_edge_table(net, &plastic.index, &f_s, &f_plus, &f_minus);
        Ok(Simulator {
            net,
            params: params.clone(),
            plastic_index: plastic.index,
            plastic_edge: plastic.edge,
            in_offsets: plastic.in_offsets,
            inv_tau_s,
            tables,
            inv_tau_s_uniform,
            inv_tau_plus,
            inv_tau_minus,
            out_edges,
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

    /// Bytes of the prepared tables plus one workspace's dynamic state.
    pub fn state_bytes(&self) -> usize {
        let n = self.net.n_nodes();
        let m = self.net.n_edges();
        let p = self.plastic_edge.len();
        // Per edge: the out-edge table and the plastic index; per plastic
        // edge: its id and its run state; per node: its run record and
        // activation count (the epoch buffers are not counted).
        m * (std::mem::size_of::<OutEdge>() + 4)
            + p * (4 + std::mem::size_of::<super::dynamics::PlasticHot>())
            + n * (std::mem::size_of::<super::dynamics::NodeHot>() + 8)
    }
}
