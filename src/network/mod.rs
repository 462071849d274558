//! network: the geometry of a geometric dynamic network (stage 3 of the pipeline).
//!
//! A [`Network`] is plain data: node positions and per-node parameters, and
//! directed edges stored as flat arrays in CSR order by source (the layout the
//! simulator's emission loop walks). Each edge carries its path length, its
//! conduction velocity and the latency `length / velocity` computed once in
//! `f64`, so an arrival time is `t + latency` with no rounding to a time grid.
//!
//! Networks are built from an explicit edge list ([`Network::from_edges`]) or by
//! the seeded builders in [`builders`] (two-population layered / SBM) and
//! [`build_geometric`] (distance-dependent wiring at 10^5 nodes and more).
//! [`controls`] derives the geometry controls (latencies shuffled within each
//! edge class, or set to the class mean) from a built network.

mod builders;
mod controls;
mod geometric;

pub use builders::{
    build_two_population, Distribution, NodeParamsSpec, Population, TwoPopulationSpec, WeightSpec,
};
pub use controls::NetworkControl;
pub use geometric::{build_geometric, GeometricSpec, Kernel};

use thiserror::Error;

/// Index of a node.
pub type NodeId = u32;
/// Index of an edge in CSR (by source) order.
pub type EdgeId = u32;

/// Which two populations an edge joins. Population 0 is the input layer,
/// population 1 the recurrent (hidden) layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeClass {
    InputToInput = 0,
    InputToRecurrent = 1,
    RecurrentToInput = 2,
    RecurrentToRecurrent = 3,
}

impl EdgeClass {
    pub fn between(source: Population, target: Population) -> EdgeClass {
        match (source, target) {
            (Population::Input, Population::Input) => EdgeClass::InputToInput,
            (Population::Input, Population::Recurrent) => EdgeClass::InputToRecurrent,
            (Population::Recurrent, Population::Input) => EdgeClass::RecurrentToInput,
            (Population::Recurrent, Population::Recurrent) => EdgeClass::RecurrentToRecurrent,
        }
    }
}

/// Per-node parameters, as built.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NodeParams {
    pub refractory_period_ms: f64,
    pub threshold: f64,
    pub summation_tau_ms: f64,
}

/// A node as given to [`Network::from_edges`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NodeSpec {
    pub position_um: [f64; 3],
    pub population: Population,
    pub params: NodeParams,
}

/// An edge as given to [`Network::from_edges`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EdgeSpec {
    pub source: NodeId,
    pub target: NodeId,
    pub length_um: f64,
    pub velocity_um_per_ms: f64,
    pub weight: f64,
    pub plastic: bool,
}

#[derive(Debug, Error, PartialEq)]
pub enum NetworkError {
    #[error("edge {index}: {field} = {value} is invalid: {why}")]
    BadEdge {
        index: usize,
        field: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("node {index}: {field} = {value} is invalid: {why}")]
    BadNode {
        index: usize,
        field: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("{field} = {value} is invalid: {why}")]
    BadSpec {
        field: String,
        value: String,
        why: String,
    },
    #[error("network: {0}")]
    Other(String),
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
}

/// A built network: nodes and CSR edges, all flat arrays. The fields are
/// crate-visible so the engine reads them directly; outside the crate they are
/// read through the accessors of the same names and changed only through
/// [`Network::set_plastic_classes`], so the derived arrays (latency, CSR
/// offsets, plastic index) always agree with the rest.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    pub(crate) position_um: Vec<[f64; 3]>,
    pub(crate) population: Vec<Population>,
    pub(crate) refractory_period_ms: Vec<f64>,
    pub(crate) threshold: Vec<f64>,
    pub(crate) summation_tau_ms: Vec<f64>,
    /// `out_offsets[i]..out_offsets[i+1]` are node i's out-edges.
    pub(crate) out_offsets: Vec<u32>,
    pub(crate) edge_source: Vec<NodeId>,
    pub(crate) edge_target: Vec<NodeId>,
    pub(crate) edge_length_um: Vec<f64>,
    pub(crate) edge_velocity_um_per_ms: Vec<f64>,
    pub(crate) edge_latency_ms: Vec<f64>,
    /// Initial weight (the simulator copies these into its own state).
    pub(crate) edge_weight: Vec<f32>,
    pub(crate) edge_plastic: Vec<bool>,
    pub(crate) edge_class: Vec<EdgeClass>,
    /// Incoming plastic edges per target (CSC of the plastic subset), for
    /// potentiation at a post activation.
    pub(crate) in_plastic_offsets: Vec<u32>,
    pub(crate) in_plastic_edges: Vec<EdgeId>,
}

/// Straight-line distance between two positions (um).
pub fn distance_um(a: [f64; 3], b: [f64; 3]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

fn check_positive(v: f64) -> bool {
    v.is_finite() && v > 0.0
}

/// Every node parameter in range and every position finite.
fn check_nodes(nodes: &[NodeSpec]) -> Result<(), NetworkError> {
    for (i, node) in nodes.iter().enumerate() {
        let p = &node.params;
        let bad = |field, value: f64, why| NetworkError::BadNode {
            index: i,
            field,
            value: value.to_string(),
            why,
        };
        if !(p.refractory_period_ms.is_finite() && p.refractory_period_ms >= 0.0) {
            return Err(bad(
                "refractory_period_ms",
                p.refractory_period_ms,
                "must be finite and >= 0",
            ));
        }
        if !check_positive(p.threshold) {
            return Err(bad("threshold", p.threshold, "must be finite and > 0"));
        }
        if !check_positive(p.summation_tau_ms) {
            return Err(bad(
                "summation_tau_ms",
                p.summation_tau_ms,
                "must be finite and > 0",
            ));
        }
        if node.position_um.iter().any(|c| !c.is_finite()) {
            return Err(NetworkError::BadNode {
                index: i,
                field: "position_um",
                value: format!("{:?}", node.position_um),
                why: "must be finite",
            });
        }
    }
    Ok(())
}

/// Every edge between existing nodes, with a positive length and velocity
/// and a finite weight.
fn check_edges(n: usize, edges: &[EdgeSpec]) -> Result<(), NetworkError> {
    for (i, e) in edges.iter().enumerate() {
        let bad = |field, value: String, why| NetworkError::BadEdge {
            index: i,
            field,
            value,
            why,
        };
        if e.source as usize >= n {
            return Err(bad("source", e.source.to_string(), "no such node"));
        }
        if e.target as usize >= n {
            return Err(bad("target", e.target.to_string(), "no such node"));
        }
        if !check_positive(e.length_um) {
            return Err(bad(
                "length_um",
                e.length_um.to_string(),
                "must be finite and > 0",
            ));
        }
        if !check_positive(e.velocity_um_per_ms) {
            return Err(bad(
                "velocity_um_per_ms",
                e.velocity_um_per_ms.to_string(),
                "must be finite and > 0",
            ));
        }
        if !e.weight.is_finite() {
            return Err(bad("weight", e.weight.to_string(), "must be finite"));
        }
    }
    Ok(())
}

impl Network {
    /// Builds a network from explicit nodes and edges. Edges are reordered into
    /// CSR order by (source, target, input order); the returned network's edge
    /// ids refer to that order.
    pub fn from_edges(nodes: &[NodeSpec], edges: &[EdgeSpec]) -> Result<Network, NetworkError> {
        let n = nodes.len();
        if n > u32::MAX as usize - 1 || edges.len() > u32::MAX as usize - 1 {
            return Err(NetworkError::Other(
                "too many nodes or edges for u32 ids".into(),
            ));
        }
        check_nodes(nodes)?;
        check_edges(n, edges)?;
        let mut order: Vec<usize> = (0..edges.len()).collect();
        // Stable: ties keep input order, so edge ids are a pure function of the input.
        order.sort_by_key(|&i| (edges[i].source, edges[i].target));
        let m = edges.len();
        let mut net = Network {
            position_um: nodes.iter().map(|s| s.position_um).collect(),
            population: nodes.iter().map(|s| s.population).collect(),
            refractory_period_ms: nodes
                .iter()
                .map(|s| s.params.refractory_period_ms)
                .collect(),
            threshold: nodes.iter().map(|s| s.params.threshold).collect(),
            summation_tau_ms: nodes.iter().map(|s| s.params.summation_tau_ms).collect(),
            out_offsets: vec![0; n + 1],
            edge_source: Vec::with_capacity(m),
            edge_target: Vec::with_capacity(m),
            edge_length_um: Vec::with_capacity(m),
            edge_velocity_um_per_ms: Vec::with_capacity(m),
            edge_latency_ms: Vec::with_capacity(m),
            edge_weight: Vec::with_capacity(m),
            edge_plastic: Vec::with_capacity(m),
            edge_class: Vec::with_capacity(m),
            in_plastic_offsets: Vec::new(),
            in_plastic_edges: Vec::new(),
        };
        for &i in &order {
            let e = &edges[i];
            net.out_offsets[e.source as usize + 1] += 1;
            net.edge_source.push(e.source);
            net.edge_target.push(e.target);
            net.edge_length_um.push(e.length_um);
            net.edge_velocity_um_per_ms.push(e.velocity_um_per_ms);
            net.edge_latency_ms.push(e.length_um / e.velocity_um_per_ms);
            net.edge_weight.push(e.weight as f32);
            net.edge_plastic.push(e.plastic);
            net.edge_class.push(EdgeClass::between(
                nodes[e.source as usize].population,
                nodes[e.target as usize].population,
            ));
        }
        for i in 0..n {
            net.out_offsets[i + 1] += net.out_offsets[i];
        }
        net.rebuild_plastic_index();
        Ok(net)
    }

    /// Builds a network straight from CSR arrays (edges of source i at
    /// `out_offsets[i]..out_offsets[i + 1]`, sorted by target), every node
    /// with the same parameters and no edge plastic: for builders of large
    /// networks, which would otherwise hold a second copy as `EdgeSpec`s.
    /// Latency is `length / velocity + synaptic_delay_ms`, once, in f64.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_csr(
        position_um: Vec<[f64; 3]>,
        population: Vec<Population>,
        params: NodeParams,
        out_offsets: Vec<u32>,
        edge_target: Vec<NodeId>,
        edge_length_um: Vec<f64>,
        edge_velocity_um_per_ms: Vec<f64>,
        edge_weight: Vec<f32>,
        synaptic_delay_ms: f64,
    ) -> Result<Network, NetworkError> {
        let n = position_um.len();
        let m = edge_target.len();
        let consistent = population.len() == n
            && out_offsets.len() == n + 1
            && out_offsets.last().map(|&o| o as usize) == Some(m)
            && edge_length_um.len() == m
            && edge_velocity_um_per_ms.len() == m
            && edge_weight.len() == m;
        if !consistent {
            return Err(NetworkError::Other(
                "CSR arrays of different lengths".into(),
            ));
        }
        let spec = NodeSpec {
            position_um: [0.0; 3],
            population: Population::Recurrent,
            params,
        };
        check_nodes(&[spec])?;
        let mut edge_source = Vec::with_capacity(m);
        for i in 0..n {
            edge_source.extend(std::iter::repeat_n(
                i as NodeId,
                (out_offsets[i + 1] - out_offsets[i]) as usize,
            ));
        }
        let edge_latency_ms = edge_length_um
            .iter()
            .zip(&edge_velocity_um_per_ms)
            .map(|(l, v)| l / v + synaptic_delay_ms)
            .collect();
        let edge_class = edge_source
            .iter()
            .zip(&edge_target)
            .map(|(&s, &t)| EdgeClass::between(population[s as usize], population[t as usize]))
            .collect();
        let mut net = Network {
            position_um,
            population,
            refractory_period_ms: vec![params.refractory_period_ms; n],
            threshold: vec![params.threshold; n],
            summation_tau_ms: vec![params.summation_tau_ms; n],
            out_offsets,
            edge_source,
            edge_target,
            edge_length_um,
            edge_velocity_um_per_ms,
            edge_latency_ms,
            edge_weight,
            edge_plastic: vec![false; m],
            edge_class,
            in_plastic_offsets: Vec::new(),
            in_plastic_edges: Vec::new(),
        };
        net.rebuild_plastic_index();
        Ok(net)
    }

    /// What [`Network::memory_bytes`] will be for `n_nodes` nodes and
    /// `n_edges` edges, none plastic: known before building, so a network
    /// that would not fit is refused first.
    pub fn estimate_bytes(n_nodes: usize, n_edges: usize) -> usize {
        Network::bytes_of(n_nodes, n_edges, 0)
    }

    fn bytes_of(n: usize, m: usize, plastic: usize) -> usize {
        use std::mem::size_of;
        // Per node: position, population, three parameters; the two offset
        // arrays; per edge: source, target, length, velocity, latency,
        // weight, plastic flag, class; the plastic in-edge index.
        n * (size_of::<[f64; 3]>() + size_of::<Population>() + 8 * 3)
            + (n + 1) * 4 * 2
            + m * (4 + 4 + 8 + 8 + 8 + 4 + size_of::<bool>() + size_of::<EdgeClass>())
            + plastic * 4
    }

    /// Recomputes the incoming-plastic-edge index after `edge_plastic` changes.
    pub(crate) fn rebuild_plastic_index(&mut self) {
        let n = self.n_nodes();
        let mut offsets = vec![0u32; n + 1];
        for (e, &p) in self.edge_plastic.iter().enumerate() {
            if p {
                offsets[self.edge_target[e] as usize + 1] += 1;
            }
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut edges = vec![0 as EdgeId; offsets[n] as usize];
        for (e, &p) in self.edge_plastic.iter().enumerate() {
            if p {
                let t = self.edge_target[e] as usize;
                edges[fill[t] as usize] = e as EdgeId;
                fill[t] += 1;
            }
        }
        self.in_plastic_offsets = offsets;
        self.in_plastic_edges = edges;
    }

    /// Marks as plastic exactly the edges whose class is in `classes`.
    pub fn set_plastic_classes(&mut self, classes: &[EdgeClass]) {
        for e in 0..self.n_edges() {
            self.edge_plastic[e] = classes.contains(&self.edge_class[e]);
        }
        self.rebuild_plastic_index();
    }

    /// Clips the initial weight of every plastic edge to `[w_min, w_max]` (in
    /// f64, then stored as f32, as the STDP update does) and returns how many
    /// changed. STDP keeps a plastic weight in that range once it has updated
    /// it; clipping at build time makes the initial state one the rule can
    /// reach, instead of a weight outside it that its first update of either
    /// sign snaps to the bound (`docs/experiments/weights.md`).
    pub fn clip_plastic_weights(&mut self, w_min: f64, w_max: f64) -> usize {
        let mut changed = 0;
        for (w, &p) in self.edge_weight.iter_mut().zip(&self.edge_plastic) {
            if p {
                let c = (*w as f64).clamp(w_min, w_max) as f32;
                if c != *w {
                    *w = c;
                    changed += 1;
                }
            }
        }
        changed
    }

    /// Position of each node (um).
    pub fn position_um(&self) -> &[[f64; 3]] {
        &self.position_um
    }
    /// Population of each node.
    pub fn population(&self) -> &[Population] {
        &self.population
    }
    /// Refractory period R of each node (ms).
    pub fn refractory_period_ms(&self) -> &[f64] {
        &self.refractory_period_ms
    }
    /// Activation threshold of each node.
    pub fn threshold(&self) -> &[f64] {
        &self.threshold
    }
    /// Decay time constant of summation of each node (ms).
    pub fn summation_tau_ms(&self) -> &[f64] {
        &self.summation_tau_ms
    }
    /// The parameters of one node, as given to the builder.
    pub fn node_params(&self, node: NodeId) -> NodeParams {
        let i = node as usize;
        NodeParams {
            refractory_period_ms: self.refractory_period_ms[i],
            threshold: self.threshold[i],
            summation_tau_ms: self.summation_tau_ms[i],
        }
    }
    /// CSR offsets: node i's out-edges are `out_offsets[i]..out_offsets[i+1]`.
    pub fn out_offsets(&self) -> &[u32] {
        &self.out_offsets
    }
    /// Source node of each edge.
    pub fn edge_source(&self) -> &[NodeId] {
        &self.edge_source
    }
    /// Target node of each edge.
    pub fn edge_target(&self) -> &[NodeId] {
        &self.edge_target
    }
    /// Path length of each edge (um).
    pub fn edge_length_um(&self) -> &[f64] {
        &self.edge_length_um
    }
    /// Conduction velocity of each edge (um/ms).
    pub fn edge_velocity_um_per_ms(&self) -> &[f64] {
        &self.edge_velocity_um_per_ms
    }
    /// Latency of each edge, `length / velocity` (ms).
    pub fn edge_latency_ms(&self) -> &[f64] {
        &self.edge_latency_ms
    }
    /// Initial weight of each edge (runs start from a copy of these).
    pub fn edge_weight(&self) -> &[f32] {
        &self.edge_weight
    }
    /// Whether STDP may change each edge.
    pub fn edge_plastic(&self) -> &[bool] {
        &self.edge_plastic
    }
    /// Class of each edge.
    pub fn edge_class(&self) -> &[EdgeClass] {
        &self.edge_class
    }
    /// The plastic edges into `node`, in CSR order.
    pub fn in_plastic_edges(&self, node: NodeId) -> &[EdgeId] {
        let i = node as usize;
        &self.in_plastic_edges
            [self.in_plastic_offsets[i] as usize..self.in_plastic_offsets[i + 1] as usize]
    }

    pub fn n_nodes(&self) -> usize {
        self.position_um.len()
    }
    pub fn n_edges(&self) -> usize {
        self.edge_target.len()
    }
    pub fn n_input(&self) -> usize {
        self.population
            .iter()
            .filter(|p| **p == Population::Input)
            .count()
    }
    pub fn n_recurrent(&self) -> usize {
        self.n_nodes() - self.n_input()
    }
    pub fn out_edges(&self, node: NodeId) -> std::ops::Range<usize> {
        self.out_offsets[node as usize] as usize..self.out_offsets[node as usize + 1] as usize
    }
    /// Edge ids of the given classes, in CSR order.
    pub fn edges_of_classes(&self, classes: &[EdgeClass]) -> Vec<EdgeId> {
        (0..self.n_edges())
            .filter(|&e| classes.contains(&self.edge_class[e]))
            .map(|e| e as EdgeId)
            .collect()
    }
    /// Ids of the plastic edges, in CSR order.
    pub fn plastic_edges(&self) -> Vec<EdgeId> {
        (0..self.n_edges())
            .filter(|&e| self.edge_plastic[e])
            .map(|e| e as EdgeId)
            .collect()
    }
    /// Refraction ratio of each edge: R_target / latency (Silva 2019: signalling
    /// is efficient near or below 1).
    pub fn refraction_ratio(&self) -> Vec<f64> {
        (0..self.n_edges())
            .map(|e| {
                self.refractory_period_ms[self.edge_target[e] as usize] / self.edge_latency_ms[e]
            })
            .collect()
    }
    /// Bytes held by the network's arrays (what a simulation reads).
    pub fn memory_bytes(&self) -> usize {
        Network::bytes_of(self.n_nodes(), self.n_edges(), self.in_plastic_edges.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(pop: Population) -> NodeSpec {
        NodeSpec {
            position_um: [0.0; 3],
            population: pop,
            params: NodeParams {
                refractory_period_ms: 1.0,
                threshold: 1.0,
                summation_tau_ms: 10.0,
            },
        }
    }

    fn edge(s: u32, t: u32) -> EdgeSpec {
        EdgeSpec {
            source: s,
            target: t,
            length_um: 100.0,
            velocity_um_per_ms: 50.0,
            weight: 0.5,
            plastic: true,
        }
    }

    #[test]
    fn csr_order_and_latency() {
        let nodes = vec![
            node(Population::Input),
            node(Population::Recurrent),
            node(Population::Recurrent),
        ];
        let net = Network::from_edges(&nodes, &[edge(2, 1), edge(0, 2), edge(0, 1)]).unwrap();
        assert_eq!(net.out_offsets, vec![0, 2, 2, 3]);
        assert_eq!(net.edge_target, vec![1, 2, 1]);
        assert_eq!(net.edge_latency_ms[0], 2.0);
        assert_eq!(net.edge_class[2], EdgeClass::RecurrentToRecurrent);
        assert_eq!(net.in_plastic_offsets, vec![0, 0, 2, 3]);
        assert_eq!(net.refraction_ratio()[0], 0.5);
    }

    #[test]
    fn bad_edges_are_named() {
        let nodes = vec![node(Population::Input), node(Population::Recurrent)];
        let mut e = edge(0, 1);
        e.velocity_um_per_ms = -3.0;
        let err = Network::from_edges(&nodes, &[edge(0, 1), e]).unwrap_err();
        assert!(
            err.to_string().contains("edge 1: velocity_um_per_ms = -3"),
            "{err}"
        );
        let err = Network::from_edges(&nodes, &[edge(0, 5)]).unwrap_err();
        assert!(err.to_string().contains("target = 5"), "{err}");
        let mut e = edge(0, 1);
        e.length_um = 0.0;
        assert!(Network::from_edges(&nodes, &[e]).is_err());
        let mut bad = node(Population::Recurrent);
        bad.params.threshold = 0.0;
        let err = Network::from_edges(&[bad], &[]).unwrap_err();
        assert!(err.to_string().contains("threshold"), "{err}");
    }

    #[test]
    fn clip_touches_only_plastic_edges_outside_the_range() {
        let nodes = vec![
            node(Population::Input),
            node(Population::Recurrent),
            node(Population::Recurrent),
        ];
        let mut edges = vec![edge(0, 1), edge(1, 2), edge(2, 1), edge(0, 2)];
        for (e, w) in edges.iter_mut().zip([-3.0f64, -1.5, 2.0, 0.25]) {
            e.weight = w;
        }
        // edge(0, 1) and edge(0, 2) are input -> recurrent: not plastic below.
        let mut net = Network::from_edges(&nodes, &edges).unwrap();
        net.set_plastic_classes(&[EdgeClass::RecurrentToRecurrent]);
        let before = net.edge_weight.clone();
        assert_eq!(net.clip_plastic_weights(-1.0, 1.0), 2);
        for ((&w, &b), &p) in net.edge_weight.iter().zip(&before).zip(&net.edge_plastic) {
            assert_eq!(w, if p { b.clamp(-1.0, 1.0) } else { b });
        }
        assert!(
            net.edge_weight.contains(&-3.0),
            "a non-plastic weight was clipped"
        );
        assert_eq!(net.clip_plastic_weights(-1.0, 1.0), 0);
    }
}
