//! Seeded network builders. One builder covers both shapes the experiments use:
//! two populations (an input grid and a box of recurrent nodes) joined with a
//! 2x2 directed connection-probability matrix. The *layered* network is the case
//! p = [[0, 1], [0, p_rr]]; the two-block SBM is the general matrix.

use super::{EdgeSpec, Network, NetworkError, NodeParams, NodeSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The two populations: 0 = input layer (driven by the stimulus), 1 = recurrent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Population {
    Input = 0,
    Recurrent = 1,
}

/// A scalar parameter drawn per node or per edge.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distribution {
    Constant(f64),
    Uniform { min: f64, max: f64 },
}

impl Distribution {
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        match *self {
            Distribution::Constant(v) => v,
            // Draw even when min == max so the stream does not depend on the value.
            Distribution::Uniform { min, max } => min + (max - min) * rng.gen::<f64>(),
        }
    }
    pub fn min(&self) -> f64 {
        match *self {
            Distribution::Constant(v) => v,
            Distribution::Uniform { min, .. } => min,
        }
    }
    pub fn max(&self) -> f64 {
        match *self {
            Distribution::Constant(v) => v,
            Distribution::Uniform { max, .. } => max,
        }
    }
}

/// Node parameter distributions of one population.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NodeParamsSpec {
    pub refractory_period_ms: Distribution,
    pub threshold: Distribution,
    pub summation_tau_ms: Distribution,
}

/// Weights of the edges leaving one population: a fraction excitatory drawn
/// from U(excitatory), the rest inhibitory from U(inhibitory), all times `scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeightSpec {
    pub excitatory_fraction: f64,
    pub excitatory: (f64, f64),
    pub inhibitory: (f64, f64),
    pub scale: f64,
}

impl WeightSpec {
    fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        let u: f64 = rng.gen();
        let v: f64 = rng.gen();
        let (lo, hi) = if u < self.excitatory_fraction {
            self.excitatory
        } else {
            self.inhibitory
        };
        self.scale * (lo + (hi - lo) * v)
    }
}

/// Everything the two-population builder needs (already validated by config).
#[derive(Clone, Debug, PartialEq)]
pub struct TwoPopulationSpec {
    pub input_rows: usize,
    pub input_cols: usize,
    pub input_pitch_um: f64,
    pub n_recurrent: usize,
    pub recurrent_box_min_um: [f64; 3],
    pub recurrent_box_max_um: [f64; 3],
    /// `connection_probability[source population][target population]`.
    pub connection_probability: [[f64; 2]; 2],
    pub tortuosity_min: f64,
    pub tortuosity_max: f64,
    pub velocity_um_per_ms: Distribution,
    pub input_nodes: NodeParamsSpec,
    pub recurrent_nodes: NodeParamsSpec,
    pub input_weights: WeightSpec,
    pub recurrent_weights: WeightSpec,
}

fn draw_params(spec: &NodeParamsSpec, rng: &mut ChaCha8Rng) -> NodeParams {
    NodeParams {
        refractory_period_ms: spec.refractory_period_ms.sample(rng),
        threshold: spec.threshold.sample(rng),
        summation_tau_ms: spec.summation_tau_ms.sample(rng),
    }
}

/// Builds the network. The draw order is fixed (recurrent positions, node
/// parameters in node order, then edges by source then target), so a network
/// is a pure function of (spec, seed). Input nodes are 0..rows*cols in
/// row-major pixel order on a grid in the z = 0 plane centred on the box's x-y
/// centre; recurrent nodes follow.
pub fn build_two_population(spec: &TwoPopulationSpec, seed: u64) -> Result<Network, NetworkError> {
    let edge_bound = check_size(spec)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let nodes = place_nodes(spec, &mut rng);
    let edges = draw_edges(spec, &nodes, &mut rng, edge_bound)?;
    Network::from_edges(&nodes, &edges)
}

/// Bytes per edge while a network is built: the drawn edge list, the sort
/// order of `from_edges`, and the network's own per-edge arrays (source,
/// target, length, velocity, latency, weight, plastic flag, class).
const BUILD_BYTES_PER_EDGE: u64 = (std::mem::size_of::<EdgeSpec>()
    + std::mem::size_of::<usize>()
    + 4
    + 4
    + 8
    + 8
    + 8
    + 4
    + 1
    + 1) as u64;
/// Bytes per node while a network is built (spec, then the network's arrays).
const BUILD_BYTES_PER_NODE: u64 =
    (std::mem::size_of::<NodeSpec>() + 24 + 1 + 8 + 8 + 8 + 4 + 4 + 4) as u64;

/// Checks, before anything is drawn, that the network can be built: its edges
/// fit in u32 ids and its nodes and edges (an upper bound on their number:
/// the expected count plus six standard deviations) fit in memory. Returns
/// that bound, to reserve the edge list once.
fn check_size(spec: &TwoPopulationSpec) -> Result<u64, NetworkError> {
    let sizes = [
        (spec.input_rows as f64) * (spec.input_cols as f64),
        spec.n_recurrent as f64,
    ];
    let (mut mean, mut var) = (0.0f64, 0.0f64);
    for a in 0..2 {
        for b in 0..2 {
            let p = spec.connection_probability[a][b];
            // Ordered pairs of distinct nodes.
            let pairs = if a == b {
                sizes[a] * (sizes[a] - 1.0).max(0.0)
            } else {
                sizes[a] * sizes[b]
            };
            mean += pairs * p;
            var += pairs * p * (1.0 - p);
        }
    }
    let n_nodes = sizes[0] + sizes[1];
    let bound = (mean + 6.0 * var.sqrt()).ceil();
    if n_nodes >= u32::MAX as f64 || mean >= u32::MAX as f64 {
        return Err(NetworkError::Other(format!(
            "{n_nodes} nodes with about {mean:.3e} edges: node and edge ids are u32, so a \
             network holds at most {} of each",
            u32::MAX - 1
        )));
    }
    let bound = bound.min(u32::MAX as f64) as u64;
    let needed = bound
        .saturating_mul(BUILD_BYTES_PER_EDGE)
        .saturating_add((n_nodes as u64).saturating_mul(BUILD_BYTES_PER_NODE));
    crate::memory::check(
        || {
            format!(
                "network of {n_nodes} nodes and about {mean:.3e} edges ({BUILD_BYTES_PER_EDGE} \
                 bytes per edge while built)"
            )
        },
        needed,
    )?;
    Ok(bound)
}

/// The input grid (centred over the recurrent box, at z = 0), the recurrent
/// nodes uniform in their box, then every node's parameters.
fn place_nodes(spec: &TwoPopulationSpec, rng: &mut ChaCha8Rng) -> Vec<NodeSpec> {
    let n_in = spec.input_rows * spec.input_cols;
    let n = n_in + spec.n_recurrent;
    let cx = 0.5 * (spec.recurrent_box_min_um[0] + spec.recurrent_box_max_um[0]);
    let cy = 0.5 * (spec.recurrent_box_min_um[1] + spec.recurrent_box_max_um[1]);
    let x0 = cx - 0.5 * spec.input_pitch_um * (spec.input_cols as f64 - 1.0);
    let y0 = cy - 0.5 * spec.input_pitch_um * (spec.input_rows as f64 - 1.0);
    let mut nodes = Vec::with_capacity(n);
    for r in 0..spec.input_rows {
        for c in 0..spec.input_cols {
            nodes.push(NodeSpec {
                position_um: [
                    x0 + c as f64 * spec.input_pitch_um,
                    y0 + r as f64 * spec.input_pitch_um,
                    0.0,
                ],
                population: Population::Input,
                params: NodeParams {
                    refractory_period_ms: 0.0,
                    threshold: 1.0,
                    summation_tau_ms: 1.0,
                },
            });
        }
    }
    for _ in 0..spec.n_recurrent {
        let mut p = [0.0; 3];
        for (k, pk) in p.iter_mut().enumerate() {
            let (lo, hi) = (spec.recurrent_box_min_um[k], spec.recurrent_box_max_um[k]);
            *pk = lo + (hi - lo) * rng.gen::<f64>();
        }
        nodes.push(NodeSpec {
            position_um: p,
            population: Population::Recurrent,
            params: NodeParams {
                refractory_period_ms: 0.0,
                threshold: 1.0,
                summation_tau_ms: 1.0,
            },
        });
    }
    for node in nodes.iter_mut() {
        node.params = match node.population {
            Population::Input => draw_params(&spec.input_nodes, rng),
            Population::Recurrent => draw_params(&spec.recurrent_nodes, rng),
        };
    }
    nodes
}

/// Each ordered pair of distinct nodes is joined with its populations'
/// probability; length = straight distance x tortuosity.
fn draw_edges(
    spec: &TwoPopulationSpec,
    nodes: &[NodeSpec],
    rng: &mut ChaCha8Rng,
    edge_bound: u64,
) -> Result<Vec<EdgeSpec>, NetworkError> {
    let n = nodes.len();
    let mut edges = Vec::new();
    // Reserved once (the bound passed the memory check), so the list does
    // not double past it; an allocation the system still refuses is an error.
    crate::memory::try_reserve(&mut edges, edge_bound as usize, || {
        format!("edge list of {edge_bound} edges")
    })?;
    for s in 0..n {
        let ps = nodes[s].population;
        for t in 0..n {
            if s == t {
                continue;
            }
            let pt = nodes[t].population;
            let p = spec.connection_probability[ps as usize][pt as usize];
            if p <= 0.0 || (p < 1.0 && rng.gen::<f64>() >= p) {
                continue;
            }
            let a = nodes[s].position_um;
            let b = nodes[t].position_um;
            let straight = super::distance_um(a, b);
            let tort = spec.tortuosity_min
                + (spec.tortuosity_max - spec.tortuosity_min) * rng.gen::<f64>();
            let velocity = spec.velocity_um_per_ms.sample(rng);
            let weight = match ps {
                Population::Input => spec.input_weights.sample(rng),
                Population::Recurrent => spec.recurrent_weights.sample(rng),
            };
            if straight <= 0.0 {
                return Err(NetworkError::Other(format!(
                    "nodes {s} and {t} coincide at {a:?}: an edge needs a positive length \
                     (move the recurrent box away from the input plane z = 0)"
                )));
            }
            edges.push(EdgeSpec {
                source: s as u32,
                target: t as u32,
                length_um: straight * tort,
                velocity_um_per_ms: velocity,
                weight,
                plastic: false,
            });
        }
    }
    Ok(edges)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn small_spec(n_rec: usize, p: [[f64; 2]; 2]) -> TwoPopulationSpec {
        let np = NodeParamsSpec {
            refractory_period_ms: Distribution::Constant(2.0),
            threshold: Distribution::Uniform { min: 1.0, max: 2.0 },
            summation_tau_ms: Distribution::Constant(10.0),
        };
        let w = WeightSpec {
            excitatory_fraction: 0.7,
            excitatory: (0.0, 1.0),
            inhibitory: (-1.0, 0.0),
            scale: 1.0,
        };
        TwoPopulationSpec {
            input_rows: 4,
            input_cols: 5,
            input_pitch_um: 20.0,
            n_recurrent: n_rec,
            recurrent_box_min_um: [0.0, 0.0, 50.0],
            recurrent_box_max_um: [100.0, 100.0, 150.0],
            connection_probability: p,
            tortuosity_min: 1.0,
            tortuosity_max: 1.3,
            velocity_um_per_ms: Distribution::Uniform {
                min: 50.0,
                max: 150.0,
            },
            input_nodes: np,
            recurrent_nodes: np,
            input_weights: w,
            recurrent_weights: w,
        }
    }

    #[test]
    fn layered_shape_and_determinism() {
        let spec = small_spec(30, [[0.0, 1.0], [0.0, 1.0]]);
        let a = build_two_population(&spec, 7).unwrap();
        let b = build_two_population(&spec, 7).unwrap();
        let c = build_two_population(&spec, 8).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.edge_weight, c.edge_weight);
        assert_eq!(a.n_edges(), 20 * 30 + 30 * 29);
        // Path length is at least the straight distance, at most 1.3 times it.
        for e in 0..a.n_edges() {
            let (s, t) = (a.edge_source[e] as usize, a.edge_target[e] as usize);
            let d: f64 = (0..3)
                .map(|k| (a.position_um[s][k] - a.position_um[t][k]).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(a.edge_length_um[e] >= d && a.edge_length_um[e] <= 1.3 * d + 1e-9);
            assert_eq!(
                a.edge_latency_ms[e],
                a.edge_length_um[e] / a.edge_velocity_um_per_ms[e]
            );
        }
        let exc = a.edge_weight.iter().filter(|w| **w > 0.0).count() as f64 / a.n_edges() as f64;
        assert!((exc - 0.7).abs() < 0.05, "excitatory share {exc}");
    }

    #[test]
    fn sbm_density_matches_probability() {
        // 20 inputs, 300 recurrent; p_in->rec = 0.2, p_rec->rec = 0.05, p_rec->in = 0.1.
        let p = [[0.0, 0.2], [0.1, 0.05]];
        let net = build_two_population(&small_spec(300, p), 3).unwrap();
        let count = |class| net.edge_class.iter().filter(|c| **c == class).count() as f64;
        for (class, prob, pairs) in [
            (
                super::super::EdgeClass::InputToRecurrent,
                0.2f64,
                20.0f64 * 300.0,
            ),
            (
                super::super::EdgeClass::RecurrentToRecurrent,
                0.05,
                300.0 * 299.0,
            ),
            (super::super::EdgeClass::RecurrentToInput, 0.1, 300.0 * 20.0),
        ] {
            let se = (pairs * prob * (1.0 - prob)).sqrt();
            let got = count(class);
            assert!(
                (got - pairs * prob).abs() < 4.0 * se,
                "{class:?}: {got} edges, expected {} +/- {se}",
                pairs * prob
            );
        }
        assert_eq!(count(super::super::EdgeClass::InputToInput), 0.0);
    }
}
