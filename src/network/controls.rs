//! Controls of the geometry (issue 13 part 2): the same network with its
//! latencies taken out of their geometric places, to ask whether an
//! embedding's accuracy comes from *where* the delays are or only from the
//! delays being there at all.
//!
//! - [`Network::with_shuffled_latencies`]: the latencies permuted across the
//!   edges of each [`EdgeClass`] (a seeded permutation). The multiset of
//!   latencies, hence every latency statistic and every refraction-ratio
//!   statistic of a class whose targets share one R, is exactly the built
//!   network's; only which edge has which delay changes.
//! - [`Network::with_mean_latencies`]: every edge of a class gets the class's
//!   mean latency: no spread of delays at all.
//!
//! Everything else (nodes, positions, edges and their CSR order, weights,
//! plasticity, classes) is untouched, so a run on the control differs from a
//! run on the built network only through the delays.

use super::{EdgeClass, Network};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The classes, in the fixed order the shuffle visits them (so the
/// permutation is a pure function of the seed and the network).
const CLASSES: [EdgeClass; 4] = [
    EdgeClass::InputToInput,
    EdgeClass::InputToRecurrent,
    EdgeClass::RecurrentToInput,
    EdgeClass::RecurrentToRecurrent,
];

/// A control network derived from a built one, as an encode records it
/// (`network_control` in the manifest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NetworkControl {
    /// [`Network::with_shuffled_latencies`] with this seed.
    ShuffledLatencies { seed: u64 },
    /// [`Network::with_mean_latencies`].
    MeanLatencies,
}

impl NetworkControl {
    /// The shuffle of an experiment whose config seed is `config_seed`: its
    /// own stream (not the builder's, which drew the geometry from the
    /// config seed itself), fixed by the config.
    pub fn shuffled_for(config_seed: u64) -> NetworkControl {
        NetworkControl::ShuffledLatencies {
            seed: config_seed ^ 0x5348_5546, // "SHUF"
        }
    }

    /// The name of the control in directories and report rows
    /// (`shuffled_latencies`, `mean_latencies`).
    pub fn name(self) -> &'static str {
        match self {
            NetworkControl::ShuffledLatencies { .. } => "shuffled_latencies",
            NetworkControl::MeanLatencies => "mean_latencies",
        }
    }

    /// Whether a report row's embedding name is a control's
    /// (`<view>_shuffled_latencies` or `<view>_mean_latencies`).
    pub fn is_control_row(embedding: &str) -> bool {
        Self::built_view(embedding).is_some()
    }

    /// The built network's view of a control row (`weights_t600` of
    /// `weights_t600_mean_latencies`); None for a row that is not a control's.
    pub fn built_view(embedding: &str) -> Option<&str> {
        ["_shuffled_latencies", "_mean_latencies"]
            .iter()
            .find_map(|suffix| embedding.strip_suffix(suffix))
    }

    /// The control network of `net`.
    pub fn apply(self, net: &Network) -> Network {
        match self {
            NetworkControl::ShuffledLatencies { seed } => net.with_shuffled_latencies(seed),
            NetworkControl::MeanLatencies => net.with_mean_latencies(),
        }
    }
}

impl Network {
    /// The same network with the latencies permuted among the edges of each
    /// edge class, by a seeded uniform permutation (one ChaCha8 stream,
    /// classes in [`EdgeClass`] order).
    ///
    /// Why within a class: the input -> recurrent and recurrent -> recurrent
    /// edges of a layered network have different geometries (a layer gap
    /// against distances inside a layer), so a shuffle across classes would
    /// also change the mean delay of each pathway; within a class it changes
    /// only which edge has which delay.
    ///
    /// An edge takes its partner's path length and velocity together with its
    /// latency, so `latency == length / velocity` still holds bit for bit (as
    /// [`Network::from_edges`] computes it; an exported control network
    /// rebuilds to the same latencies) and the multiset of latencies of each
    /// class is exactly the built one. The price: a path length no longer
    /// matches the distance between its edge's endpoints, which is the point
    /// of the control.
    pub fn with_shuffled_latencies(&self, seed: u64) -> Network {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = self.clone();
        for class in CLASSES {
            let edges = self.edges_of_classes(&[class]);
            let mut from = edges.clone();
            from.shuffle(&mut rng);
            for (&to, &src) in edges.iter().zip(&from) {
                let (to, src) = (to as usize, src as usize);
                out.edge_length_um[to] = self.edge_length_um[src];
                out.edge_velocity_um_per_ms[to] = self.edge_velocity_um_per_ms[src];
                out.edge_latency_ms[to] = self.edge_latency_ms[src];
            }
        }
        out
    }

    /// The same network with every edge's latency set to the mean latency of
    /// its edge class (summed in CSR order, in f64).
    ///
    /// Lengths are kept (the geometry is still the built one) and each
    /// velocity becomes `length / mean`, the velocity that gives the mean
    /// delay over that path; the latency the engine uses is the mean itself,
    /// exactly, so `length / velocity` may differ from it by one rounding.
    pub fn with_mean_latencies(&self) -> Network {
        let mut out = self.clone();
        for class in CLASSES {
            let edges = self.edges_of_classes(&[class]);
            if edges.is_empty() {
                continue;
            }
            let sum: f64 = edges
                .iter()
                .map(|&e| self.edge_latency_ms[e as usize])
                .sum();
            let mean = sum / edges.len() as f64;
            for &e in &edges {
                let e = e as usize;
                out.edge_latency_ms[e] = mean;
                out.edge_velocity_um_per_ms[e] = self.edge_length_um[e] / mean;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{EdgeSpec, NodeParams, NodeSpec, Population};

    /// Two inputs, three recurrent nodes, every edge but self-loops, each
    /// with its own length and velocity (so every latency is distinct).
    fn net() -> Network {
        let pops = [
            Population::Input,
            Population::Input,
            Population::Recurrent,
            Population::Recurrent,
            Population::Recurrent,
        ];
        let nodes: Vec<NodeSpec> = pops
            .iter()
            .enumerate()
            .map(|(i, &population)| NodeSpec {
                position_um: [i as f64 * 10.0, 0.0, 0.0],
                population,
                params: NodeParams {
                    refractory_period_ms: 1.0 + i as f64,
                    threshold: 1.0,
                    summation_tau_ms: 10.0,
                },
            })
            .collect();
        let mut edges = Vec::new();
        for s in 0..5u32 {
            for t in 0..5u32 {
                if s != t {
                    let k = f64::from(s * 5 + t);
                    edges.push(EdgeSpec {
                        source: s,
                        target: t,
                        length_um: 50.0 + 7.3 * k,
                        velocity_um_per_ms: 20.0 + 1.1 * k,
                        weight: 0.01 * k - 0.1,
                        plastic: pops[s as usize] == Population::Recurrent,
                    });
                }
            }
        }
        Network::from_edges(&nodes, &edges).unwrap()
    }

    fn class_latencies(net: &Network, class: EdgeClass) -> Vec<u64> {
        let mut v: Vec<u64> = net
            .edges_of_classes(&[class])
            .iter()
            .map(|&e| net.edge_latency_ms[e as usize].to_bits())
            .collect();
        v.sort_unstable();
        v
    }

    /// Everything but the latency, velocity and length arrays.
    fn assert_same_but_delays(a: &Network, b: &Network) {
        let mut b = b.clone();
        b.edge_latency_ms.clone_from(&a.edge_latency_ms);
        b.edge_velocity_um_per_ms
            .clone_from(&a.edge_velocity_um_per_ms);
        b.edge_length_um.clone_from(&a.edge_length_um);
        assert_eq!(*a, b);
    }

    #[test]
    fn shuffle_keeps_each_class_latency_multiset_bit_for_bit() {
        let net = net();
        let shuffled = net.with_shuffled_latencies(7);
        assert_ne!(
            shuffled.edge_latency_ms, net.edge_latency_ms,
            "nothing moved"
        );
        for class in CLASSES {
            assert_eq!(
                class_latencies(&shuffled, class),
                class_latencies(&net, class),
                "{class:?}"
            );
        }
        for e in 0..net.n_edges() {
            assert_eq!(
                shuffled.edge_latency_ms[e],
                shuffled.edge_length_um[e] / shuffled.edge_velocity_um_per_ms[e],
                "edge {e}: latency is not length / velocity"
            );
        }
        assert_same_but_delays(&net, &shuffled);
    }

    #[test]
    fn shuffle_is_a_function_of_the_seed() {
        let net = net();
        assert_eq!(
            net.with_shuffled_latencies(3),
            net.with_shuffled_latencies(3)
        );
        assert_ne!(
            net.with_shuffled_latencies(3).edge_latency_ms,
            net.with_shuffled_latencies(4).edge_latency_ms
        );
        let control = NetworkControl::shuffled_for(1);
        assert_eq!(control.apply(&net), control.apply(&net));
        assert_eq!(control.name(), "shuffled_latencies");
    }

    #[test]
    fn mean_sets_every_edge_to_its_class_mean() {
        let net = net();
        let mean = net.with_mean_latencies();
        for class in CLASSES {
            let edges = net.edges_of_classes(&[class]);
            let want: f64 = edges
                .iter()
                .map(|&e| net.edge_latency_ms[e as usize])
                .sum::<f64>()
                / edges.len() as f64;
            for &e in &edges {
                let e = e as usize;
                assert_eq!(mean.edge_latency_ms[e], want, "{class:?} edge {e}");
                assert_eq!(mean.edge_length_um[e], net.edge_length_um[e]);
                let back = mean.edge_length_um[e] / mean.edge_velocity_um_per_ms[e];
                assert!(
                    (back - want).abs() <= 1e-12 * want,
                    "edge {e}: {back} vs {want}"
                );
            }
        }
        assert_same_but_delays(&net, &mean);
        assert_eq!(NetworkControl::MeanLatencies.apply(&net), mean);
    }

    #[test]
    fn control_records_as_tagged_json() {
        let c = NetworkControl::ShuffledLatencies { seed: 5 };
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(text, r#"{"kind":"shuffled_latencies","seed":5}"#);
        assert_eq!(serde_json::from_str::<NetworkControl>(&text).unwrap(), c);
    }
}
