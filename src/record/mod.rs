//! record: what a simulation run writes down (stage 5 of the pipeline).
//!
//! A [`RecordSpec`] says what to keep; the engine fills a [`Recording`]. What is
//! not asked for is not collected: the activation list, the per-node counts, the
//! binned activity and the weight snapshots each cost nothing when off. The run
//! totals are always kept (a handful of counters).

use crate::network::{EdgeId, NodeId};

/// What to record during a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordSpec {
    /// Keep every activation event with its causal edge (the activation path).
    pub activations: bool,
    /// Keep per-node counts of activations and of lost arrivals.
    pub node_counts: bool,
    /// Bin width for per-node activation counts in time bins over the run
    /// (the `activity` embedding); `None` = off.
    pub activity_bin_ms: Option<f64>,
    /// Times at which to copy the weights of `snapshot_edges`. A snapshot at T
    /// holds the weights after every event with time <= T.
    pub weight_snapshots_ms: Vec<f64>,
    pub snapshot_edges: Vec<EdgeId>,
}

/// One activation event. `causal_edge` is the arrival that pushed the node over
/// threshold, or `None` for an activation imposed by the stimulus.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Activation {
    pub node: NodeId,
    pub time_ms: f64,
    pub causal_edge: Option<EdgeId>,
}

/// One activation imposed from outside the network (a stimulus spike): node
/// `node` is driven to activate at `time_ms`, subject to its refractory period.
/// The stimulus stage produces these and the engine consumes them; it lives
/// here, beside [`Activation`], so neither stage has to import the other.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExternalActivation {
    pub node: NodeId,
    pub time_ms: f64,
}

/// Weights of the recorded edge set at one time.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightSnapshot {
    pub time_ms: f64,
    pub weights: Vec<f32>,
}

/// Whole-run counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunTotals {
    /// Arrivals that reached their target within the run (lost ones included).
    pub arrivals: u64,
    /// Arrivals lost because the target was refractory.
    pub lost_arrivals: u64,
    /// Activations of any node (stimulus-driven ones included).
    pub activations: u64,
    /// Stimulus activations requested, and those lost to the input node's own
    /// refractory period.
    pub external_activations: u64,
    pub lost_external: u64,
    /// Individual STDP weight updates (one per potentiation or depression).
    pub stdp_updates: u64,
}

impl std::ops::AddAssign for RunTotals {
    fn add_assign(&mut self, o: RunTotals) {
        self.arrivals += o.arrivals;
        self.lost_arrivals += o.lost_arrivals;
        self.activations += o.activations;
        self.external_activations += o.external_activations;
        self.lost_external += o.lost_external;
        self.stdp_updates += o.stdp_updates;
    }
}

impl std::iter::Sum for RunTotals {
    fn sum<I: Iterator<Item = RunTotals>>(iter: I) -> RunTotals {
        iter.fold(RunTotals::default(), |mut t, o| {
            t += o;
            t
        })
    }
}

/// What a run recorded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recording {
    /// Time-ordered activation events (empty unless asked for).
    pub activations: Vec<Activation>,
    /// Per-node activation counts (empty unless `node_counts`).
    pub activation_counts: Vec<u32>,
    /// Per-node lost-arrival counts (empty unless `node_counts`).
    pub lost_counts: Vec<u32>,
    /// Row-major `n_nodes x n_bins` activation counts (empty unless asked for).
    pub activity: Vec<u32>,
    pub activity_bins: usize,
    pub snapshots: Vec<WeightSnapshot>,
    pub totals: RunTotals,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_field_by_field() {
        let a = RunTotals {
            arrivals: 10,
            lost_arrivals: 2,
            activations: 5,
            external_activations: 4,
            lost_external: 1,
            stdp_updates: 7,
        };
        let mut b = RunTotals {
            arrivals: 1,
            lost_arrivals: 1,
            activations: 1,
            external_activations: 1,
            lost_external: 1,
            stdp_updates: 1,
        };
        b += a;
        assert_eq!(
            b,
            RunTotals {
                arrivals: 11,
                lost_arrivals: 3,
                activations: 6,
                external_activations: 5,
                lost_external: 2,
                stdp_updates: 8,
            }
        );
    }

    #[test]
    fn totals_round_trip_through_json() {
        let t = RunTotals {
            arrivals: u64::MAX,
            stdp_updates: 3,
            ..Default::default()
        };
        let back: RunTotals = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }

    /// Input 0 -> recurrent 1, driven five times: what a run keeps is what
    /// its spec asks for, and nothing else.
    fn run(spec: &RecordSpec) -> Recording {
        use crate::network::{EdgeSpec, Network, NodeParams, NodeSpec, Population};
        let p = NodeParams {
            refractory_period_ms: 1.0,
            threshold: 1.0,
            summation_tau_ms: 10.0,
        };
        let node = |x: f64, population| NodeSpec {
            position_um: [x, 0.0, 1.0],
            population,
            params: p,
        };
        let net = Network::from_edges(
            &[
                node(0.0, Population::Input),
                node(10.0, Population::Recurrent),
            ],
            &[EdgeSpec {
                source: 0,
                target: 1,
                length_um: 10.0,
                velocity_um_per_ms: 10.0,
                weight: 2.0,
                plastic: false,
            }],
        )
        .unwrap();
        let stim: Vec<ExternalActivation> = (0..5)
            .map(|k| ExternalActivation {
                node: 0,
                time_ms: 2.0 + 3.0 * k as f64,
            })
            .collect();
        let params = crate::sim::RunParams::new(20.0, None).unwrap();
        crate::sim::simulate(&net, &params, &stim, spec).unwrap().0
    }

    #[test]
    fn a_run_keeps_only_what_its_spec_asks_for() {
        let none = run(&RecordSpec::default());
        // Five stimulus activations, five arrivals, five network activations.
        assert_eq!(none.totals.activations, 10);
        assert!(none.activations.is_empty() && none.activation_counts.is_empty());
        assert!(none.lost_counts.is_empty() && none.activity.is_empty());
        assert!(none.snapshots.is_empty());

        let all = run(&RecordSpec {
            activations: true,
            node_counts: true,
            activity_bin_ms: Some(10.0),
            ..Default::default()
        });
        assert_eq!(all.totals, none.totals, "recording does not change the run");
        assert_eq!(all.activations.len(), 10);
        assert_eq!(all.activation_counts, [5, 5]);
        assert_eq!(all.activity_bins, 2);
        assert_eq!(all.activity.iter().sum::<u32>(), 10);
        assert!(all.snapshots.is_empty(), "no snapshot asked for");
    }
}
