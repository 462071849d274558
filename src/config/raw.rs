//! The TOML shape of an experiment config, field for field. Units are in the
//! key names; unknown keys are errors; every section has documented defaults.

use crate::embed::{EmbeddingKind, Normalize, PathsMethod};
use crate::eval::{Metric, Weighting};
use crate::network::{EdgeClass, Population};
use crate::stimulus::TrainKind;
use serde::{Deserialize, Deserializer, Serialize};

/// A fixed-length number array that refuses a wrong length. serde's own
/// `[f64; N]` reads the first N elements and, with the toml crate, silently
/// drops the rest (`tortuosity = [1.0, 1.3, 2.0]` was accepted).
fn exact<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[f64; N], D::Error> {
    let v = Vec::<f64>::deserialize(d)?;
    let n = v.len();
    v.try_into().map_err(|_| {
        serde::de::Error::invalid_length(n, &format!("an array of exactly {N} numbers").as_str())
    })
}

/// [`exact`] for the optional 2 x 2 connection matrix.
fn exact_2x2<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[[f64; 2]; 2]>, D::Error> {
    let Some(rows) = Option::<Vec<Vec<f64>>>::deserialize(d)? else {
        return Ok(None);
    };
    let bad = |n: usize| serde::de::Error::invalid_length(n, &"a 2 x 2 matrix [[a, b], [c, d]]");
    let n_rows = rows.len();
    let rows: [Vec<f64>; 2] = rows.try_into().map_err(|_| bad(n_rows))?;
    let [a, b] = rows.map(|r| {
        let n = r.len();
        <[f64; 2]>::try_from(r).map_err(|_| n)
    });
    Ok(Some([a.map_err(bad)?, b.map_err(bad)?]))
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Name carried into reports.
    pub experiment: String,
    /// Seed of the network builder; per-image seeds derive from it.
    #[serde(default)]
    pub seed: u64,
    pub network: RawNetwork,
    #[serde(default)]
    pub stimulus: RawStimulus,
    #[serde(default)]
    pub simulation: RawSimulation,
    #[serde(default)]
    pub stdp: RawStdp,
    #[serde(default)]
    pub embedding: RawEmbedding,
    #[serde(default)]
    pub evaluation: RawEvaluation,
    /// Experiment 2 only: homeostasis while STDP learns (absent = off).
    /// Unset stays out of the canonical text, so configs without it keep
    /// their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homeostasis: Option<RawHomeostasis>,
}

/// What homeostasis adapts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HomeostasisKind {
    /// Intrinsic plasticity: each hidden node's threshold, between training
    /// images, towards the node's own pre-learning rate.
    #[default]
    Threshold,
}

/// `[homeostasis]`: see `crate::experiments::stdp` for the rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHomeostasis {
    #[serde(default)]
    pub kind: HomeostasisKind,
    /// eta, dimensionless: the log-threshold step per image for a rate one
    /// mean target rate away from the node's target.
    #[serde(default = "d_homeostasis_rate")]
    pub rate: f64,
}

impl Default for RawHomeostasis {
    fn default() -> Self {
        RawHomeostasis {
            kind: HomeostasisKind::Threshold,
            rate: d_homeostasis_rate(),
        }
    }
}

fn d_homeostasis_rate() -> f64 {
    0.1
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Builder {
    /// Input grid fully connected to N recurrent nodes; recurrent edges with
    /// probability `recurrent_connection_probability`.
    Layered,
    /// Two-block stochastic block model with a 2x2 directed probability matrix.
    Sbm,
    /// Explicit `[[network.nodes]]` and `[[network.edges]]`.
    EdgeList,
}

/// A number, or `{ min = .., max = .. }` for a uniform draw per node or edge.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawDistribution {
    Constant(f64),
    Uniform { min: f64, max: f64 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNodeParams {
    #[serde(default = "d_refractory")]
    pub refractory_period_ms: RawDistribution,
    #[serde(default = "d_threshold")]
    pub threshold: RawDistribution,
    #[serde(default = "d_tau_s")]
    pub summation_tau_ms: RawDistribution,
}

impl Default for RawNodeParams {
    fn default() -> Self {
        RawNodeParams {
            refractory_period_ms: d_refractory(),
            threshold: d_threshold(),
            summation_tau_ms: d_tau_s(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeights {
    #[serde(default = "d_exc_fraction")]
    pub excitatory_fraction: f64,
    /// Uniform range of excitatory weights.
    #[serde(default = "d_exc", deserialize_with = "exact")]
    pub excitatory: [f64; 2],
    /// Uniform range of inhibitory weights.
    #[serde(default = "d_inh", deserialize_with = "exact")]
    pub inhibitory: [f64; 2],
    /// Multiplies every drawn weight.
    #[serde(default = "one")]
    pub scale: f64,
    /// If set to N0, weights are further multiplied by sqrt(N0 / n_recurrent), so
    /// a node's recurrent drive stays comparable across network sizes.
    #[serde(default)]
    pub scale_reference_n: Option<f64>,
}

impl Default for RawWeights {
    fn default() -> Self {
        RawWeights {
            excitatory_fraction: d_exc_fraction(),
            excitatory: d_exc(),
            inhibitory: d_inh(),
            scale: 1.0,
            scale_reference_n: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    #[serde(deserialize_with = "exact")]
    pub position_um: [f64; 3],
    #[serde(default = "d_population")]
    pub population: Population,
    #[serde(default = "d_refractory_f")]
    pub refractory_period_ms: f64,
    #[serde(default = "one")]
    pub threshold: f64,
    #[serde(default = "d_tau_s_f")]
    pub summation_tau_ms: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEdge {
    pub source: u32,
    pub target: u32,
    /// Path length; default: the straight-line distance between the nodes.
    #[serde(default)]
    pub length_um: Option<f64>,
    pub velocity_um_per_ms: f64,
    pub weight: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub builder: Builder,
    #[serde(default = "d_rows")]
    pub input_rows: usize,
    #[serde(default = "d_rows")]
    pub input_cols: usize,
    #[serde(default = "d_pitch")]
    pub input_pitch_um: f64,
    #[serde(default = "d_n_rec")]
    pub n_recurrent: usize,
    #[serde(default = "d_box_min", deserialize_with = "exact")]
    pub recurrent_box_min_um: [f64; 3],
    #[serde(default = "d_box_max", deserialize_with = "exact")]
    pub recurrent_box_max_um: [f64; 3],
    /// Layered only: probability of each recurrent -> recurrent edge.
    #[serde(default)]
    pub recurrent_connection_probability: Option<f64>,
    /// SBM only: `[[input->input, input->recurrent], [recurrent->input, recurrent->recurrent]]`.
    #[serde(default, deserialize_with = "exact_2x2")]
    pub connection_probability: Option<[[f64; 2]; 2]>,
    /// Path length = straight distance x U(tortuosity[0], tortuosity[1]).
    #[serde(default = "d_tortuosity", deserialize_with = "exact")]
    pub tortuosity: [f64; 2],
    #[serde(default = "d_velocity")]
    pub velocity_um_per_ms: RawDistribution,
    #[serde(default)]
    pub input_nodes: RawNodeParams,
    #[serde(default)]
    pub recurrent_nodes: RawNodeParams,
    /// Weights of edges leaving input nodes.
    #[serde(default)]
    pub input_weights: RawWeights,
    /// Weights of edges leaving recurrent nodes.
    #[serde(default)]
    pub recurrent_weights: RawWeights,
    #[serde(default)]
    pub nodes: Vec<RawNode>,
    #[serde(default)]
    pub edges: Vec<RawEdge>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStimulus {
    /// A pixel drives its input node when pixel/255 exceeds this.
    #[serde(default = "d_intensity_threshold")]
    pub intensity_threshold: f64,
    /// Default: the simulation's duration.
    #[serde(default)]
    pub duration_ms: Option<f64>,
    /// Rate of a full-intensity pixel; rate = max_rate_hz * intensity.
    #[serde(default = "d_max_rate")]
    pub max_rate_hz: f64,
    #[serde(default)]
    pub train: TrainKind,
    /// `train = "latency"`: spike time of a pixel of intensity 0 (needed by
    /// that train only). Unset stays out of the canonical text (config hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_window_ms: Option<f64>,
}

impl Default for RawStimulus {
    fn default() -> Self {
        RawStimulus {
            intensity_threshold: d_intensity_threshold(),
            duration_ms: None,
            max_rate_hz: d_max_rate(),
            train: TrainKind::Regular,
            latency_window_ms: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSimulation {
    #[serde(default = "d_duration")]
    pub duration_ms: f64,
    /// Limits of one run (see `sim::RunLimits`; unset: its defaults). A run
    /// that passes one stops with an error naming the busiest node. Unset
    /// keys are not serialised, so configs without them keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_events_in_flight: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_activations: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_arrivals: Option<u64>,
}

impl Default for RawSimulation {
    fn default() -> Self {
        RawSimulation {
            duration_ms: d_duration(),
            max_events_in_flight: None,
            max_activations: None,
            max_arrivals: None,
        }
    }
}

/// An edge set named by the populations it joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeSet {
    None,
    /// Recurrent -> recurrent.
    Recurrent,
    /// Input -> recurrent.
    Input,
    /// Both of the above.
    InputAndRecurrent,
    /// Every edge.
    All,
}

impl EdgeSet {
    pub fn classes(self) -> Vec<EdgeClass> {
        match self {
            EdgeSet::None => vec![],
            EdgeSet::Recurrent => vec![EdgeClass::RecurrentToRecurrent],
            EdgeSet::Input => vec![EdgeClass::InputToRecurrent],
            EdgeSet::InputAndRecurrent => {
                vec![EdgeClass::InputToRecurrent, EdgeClass::RecurrentToRecurrent]
            }
            EdgeSet::All => vec![
                EdgeClass::InputToInput,
                EdgeClass::InputToRecurrent,
                EdgeClass::RecurrentToInput,
                EdgeClass::RecurrentToRecurrent,
            ],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStdp {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "d_plastic")]
    pub plastic_edges: EdgeSet,
    #[serde(default = "d_a_plus")]
    pub a_plus: f64,
    /// Magnitude of depression (a positive number).
    #[serde(default = "d_a_minus")]
    pub a_minus: f64,
    #[serde(default = "d_tau_stdp")]
    pub tau_plus_ms: f64,
    #[serde(default = "d_tau_stdp")]
    pub tau_minus_ms: f64,
    #[serde(default = "minus_one")]
    pub w_min: f64,
    #[serde(default = "one")]
    pub w_max: f64,
    /// Whether an arrival lost to refractoriness still counts for STDP.
    #[serde(default = "yes")]
    pub lost_arrivals_count: bool,
}

impl Default for RawStdp {
    fn default() -> Self {
        RawStdp {
            enabled: false,
            plastic_edges: d_plastic(),
            a_plus: d_a_plus(),
            a_minus: d_a_minus(),
            tau_plus_ms: d_tau_stdp(),
            tau_minus_ms: d_tau_stdp(),
            w_min: -1.0,
            w_max: 1.0,
            lost_arrivals_count: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmbedding {
    #[serde(default = "d_kind")]
    pub kind: EmbeddingKind,
    #[serde(default = "d_snaps")]
    pub snapshot_times_ms: Vec<f64>,
    /// Which weights' changes form the `weights` embedding.
    #[serde(default = "d_weight_edges")]
    pub weight_edges: EdgeSet,
    #[serde(default = "d_bin")]
    pub activity_bin_ms: f64,
    /// Also evaluate the trajectory: snapshots concatenated up to each time.
    #[serde(default)]
    pub trajectory: bool,
    #[serde(default = "d_normalize")]
    pub normalize: Normalize,
    #[serde(default = "d_paths_method")]
    pub paths_method: PathsMethod,
    #[serde(default = "d_paths_window")]
    pub paths_window_ms: f64,
    #[serde(default = "d_paths_dim")]
    pub paths_dim: usize,
}

impl Default for RawEmbedding {
    fn default() -> Self {
        RawEmbedding {
            kind: d_kind(),
            snapshot_times_ms: d_snaps(),
            weight_edges: d_weight_edges(),
            activity_bin_ms: d_bin(),
            trajectory: false,
            normalize: d_normalize(),
            paths_method: d_paths_method(),
            paths_window_ms: d_paths_window(),
            paths_dim: d_paths_dim(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinearName {
    Ridge,
    Svm,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvaluation {
    #[serde(default = "d_k")]
    pub k: usize,
    #[serde(default = "d_metric")]
    pub metric: Metric,
    #[serde(default = "d_weighting")]
    pub weighting: Weighting,
    /// Reference set size of a random split (default: 90% of the images).
    #[serde(default)]
    pub n_reference: Option<usize>,
    /// Query set size of a random split (default: 10% of the images).
    #[serde(default)]
    pub n_query: Option<usize>,
    #[serde(default = "d_repeats")]
    pub repeats: usize,
    #[serde(default)]
    pub split_seed: u64,
    /// Linear readouts evaluated beside the kNN (one-vs-rest).
    #[serde(default)]
    pub linear: Vec<LinearName>,
    /// Regularisation candidates, chosen by CV on each split's reference part
    /// (default: each readout's own small grid).
    #[serde(default)]
    pub lambdas: Option<Vec<f64>>,
    /// The ridge's own candidates (override `lambdas` for the ridge).
    // Unset keys stay out of the canonical text, so older configs keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ridge_lambdas: Option<Vec<f64>>,
    /// The SVM's own candidates, C = 1 / lambda (override `lambdas` for the SVM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub svm_lambdas: Option<Vec<f64>>,
    /// What a lambda is relative to: `absolute`, or `mean_square` (the mean
    /// squared norm of the centred training rows, so one grid fits every view).
    #[serde(default, skip_serializing_if = "is_absolute")]
    pub lambda_scale: crate::eval::LambdaScale,
    #[serde(default = "d_folds")]
    pub cv_folds: usize,
    /// Standardise features with the reference part's mean and sd.
    #[serde(default)]
    pub standardize: bool,
}

impl Default for RawEvaluation {
    fn default() -> Self {
        RawEvaluation {
            k: d_k(),
            metric: d_metric(),
            weighting: d_weighting(),
            n_reference: None,
            n_query: None,
            repeats: d_repeats(),
            split_seed: 0,
            linear: vec![],
            lambdas: None,
            ridge_lambdas: None,
            svm_lambdas: None,
            lambda_scale: crate::eval::LambdaScale::Absolute,
            cv_folds: d_folds(),
            standardize: false,
        }
    }
}

fn is_absolute(s: &crate::eval::LambdaScale) -> bool {
    *s == crate::eval::LambdaScale::Absolute
}

fn one() -> f64 {
    1.0
}
fn minus_one() -> f64 {
    -1.0
}
fn yes() -> bool {
    true
}
fn d_refractory() -> RawDistribution {
    RawDistribution::Constant(5.0)
}
fn d_refractory_f() -> f64 {
    5.0
}
fn d_threshold() -> RawDistribution {
    RawDistribution::Constant(1.0)
}
fn d_tau_s() -> RawDistribution {
    RawDistribution::Constant(10.0)
}
fn d_tau_s_f() -> f64 {
    10.0
}
fn d_exc_fraction() -> f64 {
    0.7
}
fn d_exc() -> [f64; 2] {
    [0.0, 1.0]
}
fn d_inh() -> [f64; 2] {
    [-7.0 / 3.0, 0.0]
}
fn d_population() -> Population {
    Population::Recurrent
}
fn d_rows() -> usize {
    28
}
fn d_pitch() -> f64 {
    20.0
}
fn d_n_rec() -> usize {
    200
}
fn d_box_min() -> [f64; 3] {
    [0.0, 0.0, 50.0]
}
fn d_box_max() -> [f64; 3] {
    [540.0, 540.0, 550.0]
}
fn d_tortuosity() -> [f64; 2] {
    [1.0, 1.3]
}
fn d_velocity() -> RawDistribution {
    RawDistribution::Constant(100.0)
}
fn d_intensity_threshold() -> f64 {
    0.1
}
fn d_max_rate() -> f64 {
    100.0
}
fn d_duration() -> f64 {
    600.0
}
fn d_plastic() -> EdgeSet {
    EdgeSet::Recurrent
}
fn d_a_plus() -> f64 {
    0.02
}
fn d_a_minus() -> f64 {
    0.04
}
fn d_tau_stdp() -> f64 {
    20.0
}
fn d_kind() -> EmbeddingKind {
    EmbeddingKind::Weights
}
fn d_snaps() -> Vec<f64> {
    vec![100.0, 200.0, 300.0, 400.0, 500.0, 600.0]
}
fn d_weight_edges() -> EdgeSet {
    EdgeSet::Recurrent
}
fn d_bin() -> f64 {
    100.0
}
fn d_normalize() -> Normalize {
    Normalize::None
}
fn d_paths_method() -> PathsMethod {
    PathsMethod::Both
}
fn d_paths_window() -> f64 {
    50.0
}
fn d_paths_dim() -> usize {
    4096
}
fn d_k() -> usize {
    5
}
fn d_metric() -> Metric {
    Metric::Euclidean
}
fn d_weighting() -> Weighting {
    Weighting::InverseDistance
}
fn d_repeats() -> usize {
    10
}
fn d_folds() -> usize {
    3
}
