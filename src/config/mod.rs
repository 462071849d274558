//! config: experiments as data. A TOML file deserializes into the raw structs
//! here (units in the key names, unknown keys rejected); [`RawConfig::check`]
//! validates every field and turns it into an [`ExperimentConfig`] of checked
//! parameters, the only thing the rest of the pipeline accepts. Errors name the
//! file, the field and the bad value.

mod builtin;
mod large;
mod raw;

pub use builtin::{builtin_names, builtin_text, read_raw, BUILTIN_CONFIGS};
pub use large::LargeConfig;
pub use raw::*;

use crate::embed::{EmbedError, EmbeddingKind, EmbeddingParams, PathsParams};
use crate::eval::{KnnParams, LinearParams};
use crate::network::{
    Distribution, EdgeClass, EdgeSpec, NodeParams, NodeParamsSpec, NodeSpec, Population,
    TwoPopulationSpec, WeightSpec,
};
use crate::sim::{RunLimits, RunParams, StdpParams};
use crate::stimulus::StimulusParams;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{spec}: no such config file, and not a built-in config name ({names})")]
    Unknown { spec: String, names: String },
    #[error("{path}: {field} = {value}: {why}")]
    Invalid {
        path: PathBuf,
        field: String,
        value: String,
        why: String,
    },
}

/// How the network is built.
#[derive(Clone, Debug, PartialEq)]
pub enum NetworkPlan {
    TwoPopulation(Box<TwoPopulationSpec>),
    EdgeList {
        nodes: Vec<NodeSpec>,
        edges: Vec<EdgeSpec>,
    },
}

/// How embeddings are evaluated: the kNN, the split protocol, the linear readouts.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalParams {
    pub knn: KnnParams,
    pub n_reference: Option<usize>,
    pub n_query: Option<usize>,
    pub repeats: usize,
    pub split_seed: u64,
    pub linear: Vec<LinearParams>,
}

/// Checked homeostasis parameters (`[homeostasis]`; experiment 2 only).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HomeostasisParams {
    kind: HomeostasisKind,
    rate: f64,
}

impl HomeostasisParams {
    pub fn kind(&self) -> HomeostasisKind {
        self.kind
    }
    /// eta: finite and > 0.
    pub fn rate(&self) -> f64 {
        self.rate
    }
}

/// A checked experiment: everything the runner needs. Only
/// [`RawConfig::check`] makes one, so its parts are always valid; they are
/// read through accessors, and changes go to the [`RawConfig`] before the check.
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentConfig {
    experiment: String,
    seed: u64,
    network: NetworkPlan,
    plastic_edges: Vec<EdgeClass>,
    run: RunParams,
    stimulus: StimulusParams,
    embedding: EmbeddingParams,
    evaluation: EvalParams,
    homeostasis: Option<HomeostasisParams>,
    hash: String,
    raw: RawConfig,
}

impl ExperimentConfig {
    /// The name carried into reports.
    pub fn experiment(&self) -> &str {
        &self.experiment
    }
    /// Seed of the network builder; per-row stimulus seeds derive from it.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    pub fn network(&self) -> &NetworkPlan {
        &self.network
    }
    pub fn plastic_edges(&self) -> &[EdgeClass] {
        &self.plastic_edges
    }
    pub fn run(&self) -> &RunParams {
        &self.run
    }
    pub fn stimulus(&self) -> &StimulusParams {
        &self.stimulus
    }
    pub fn embedding(&self) -> &EmbeddingParams {
        &self.embedding
    }
    pub fn evaluation(&self) -> &EvalParams {
        &self.evaluation
    }
    /// `[homeostasis]`, if the config sets it (only experiment 2 uses it).
    pub fn homeostasis(&self) -> Option<&HomeostasisParams> {
        self.homeostasis.as_ref()
    }
    /// Refuses a config that sets `[homeostasis]` for a use that would
    /// ignore it (`user` names that use; `path` the file): homeostasis runs
    /// only in experiment 2's learning phase, and a silently ignored section
    /// would make a report claim what was not run.
    pub fn refuse_homeostasis(&self, path: &Path, user: &str) -> Result<(), ConfigError> {
        match self.homeostasis {
            None => Ok(()),
            Some(_) => Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                field: "homeostasis".into(),
                value: "(set)".into(),
                why: format!(
                    "only experiment 2 (`geodyn reproduce stdp`) uses it; {user} would ignore it: \
                     remove the [homeostasis] section"
                ),
            }),
        }
    }
    /// SHA-256 of the canonical TOML of the checked raw config.
    pub fn hash(&self) -> &str {
        &self.hash
    }
    /// The raw config this was checked from (overrides included).
    pub fn raw(&self) -> &RawConfig {
        &self.raw
    }
    /// The embedding parameters with every paths method produced (the
    /// config's own first); used by experiment 1 and 2 to compare methods on
    /// the same runs. Not part of the config text, so the hash is unchanged.
    pub fn with_all_paths_methods(mut self) -> ExperimentConfig {
        self.embedding = self.embedding.with_all_paths_methods(true);
        self
    }
    pub fn n_recurrent(&self) -> usize {
        match &self.network {
            NetworkPlan::TwoPopulation(s) => s.n_recurrent,
            NetworkPlan::EdgeList { nodes, .. } => nodes
                .iter()
                .filter(|n| n.population == Population::Recurrent)
                .count(),
        }
    }
    /// Builds the network with the config's seed and plastic edge classes;
    /// with STDP on, the plastic edges' initial weights are clipped to
    /// `[stdp.w_min, stdp.w_max]`, the range the rule keeps them in
    /// ([`crate::network::Network::clip_plastic_weights`]).
    pub fn build_network(&self) -> Result<crate::network::Network, crate::network::NetworkError> {
        let mut net = self.network.build(self.seed, &self.plastic_edges)?;
        if let Some(p) = self.run.stdp() {
            net.clip_plastic_weights(p.w_min(), p.w_max());
        }
        Ok(net)
    }
}

/// Reads and checks a config file.
pub fn load(path: &Path) -> Result<ExperimentConfig, ConfigError> {
    parse(&read_text(path)?, path)?.check(path)
}

/// The text of the config file at `path`; an error names the file.
pub(crate) fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses TOML text into the raw config (`path` is only for messages).
pub fn parse(text: &str, path: &Path) -> Result<RawConfig, ConfigError> {
    parse_toml(text, path)
}

/// Parses TOML text into any config table; a syntax error, an unknown key
/// or a missing one names the file.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// Why a node on a cycle of edges needs a refractory period R > 0. With R = 0
/// an arrival at the instant of a node's activation is integrated, so a node
/// can activate any number of times at one instant, and every activation
/// emits on all out-edges: around a cycle of excitatory edges the activity
/// grows geometrically with nothing to bound it. Any R > 0 bounds a node to
/// at most one activation per R (times are f64, so an arrival at the same
/// instant is always refractory); what is left, a finite but very high rate,
/// is bounded by the engine's run limits. A node on no cycle cannot be
/// re-excited by its own activity (its activations are bounded by its
/// arrivals), so R = 0 stays allowed there, e.g. for feed-forward input nodes.
const ZERO_REFRACTORY: &str = "a node on a cycle of edges needs a refractory period > 0: \
     with R = 0 it can activate again at the same instant, so activity around the cycle \
     grows without bound; R > 0 caps each node at 1/R activations per ms";

/// Whether population `x` of a two-population network can lie on a directed
/// cycle: edges within it (and two nodes to join), or edges both ways
/// between it and the other population (both non-empty).
fn population_on_cycle(p: &[[f64; 2]; 2], sizes: [usize; 2], x: usize) -> bool {
    let y = 1 - x;
    (p[x][x] > 0.0 && sizes[x] >= 2)
        || (p[x][y] > 0.0 && p[y][x] > 0.0 && sizes[x] >= 1 && sizes[y] >= 1)
}

/// Per node: whether it survives repeatedly removing nodes with no incoming
/// or no outgoing edge among those left. Every node on a directed cycle
/// survives (and so does a node on a path from one cycle to another); a node
/// that does not survive has activity bounded by its arrivals.
fn on_or_between_cycles(n: usize, edges: &[EdgeSpec]) -> Vec<bool> {
    let mut out_adj = vec![Vec::new(); n];
    let mut in_adj = vec![Vec::new(); n];
    let (mut in_deg, mut out_deg) = (vec![0usize; n], vec![0usize; n]);
    for e in edges {
        let (s, t) = (e.source as usize, e.target as usize);
        out_adj[s].push(t);
        in_adj[t].push(s);
        out_deg[s] += 1;
        in_deg[t] += 1;
    }
    let mut alive = vec![true; n];
    let mut stack: Vec<usize> = (0..n)
        .filter(|&i| in_deg[i] == 0 || out_deg[i] == 0)
        .collect();
    while let Some(i) = stack.pop() {
        if !alive[i] {
            continue;
        }
        alive[i] = false;
        for &t in &out_adj[i] {
            in_deg[t] -= 1;
            if alive[t] && in_deg[t] == 0 {
                stack.push(t);
            }
        }
        for &s in &in_adj[i] {
            out_deg[s] -= 1;
            if alive[s] && out_deg[s] == 0 {
                stack.push(s);
            }
        }
    }
    alive
}

/// A float's `Display` never uses an exponent: a typo such as `-1e300`
/// printed 300 digits. A value text that is a number too long to be an
/// integer of ours (over 20 digits, or a decimal over 16 characters) is
/// rewritten in the shortest exact scientific form (`-1e300`, `1.5e-30`);
/// anything else is kept as given.
fn short_number(text: String) -> String {
    let long = text.len() > 20 || (text.contains('.') && text.len() > 16);
    match text.parse::<f64>() {
        Ok(v) if long && v.is_finite() => format!("{v:e}"),
        _ => text,
    }
}

struct Checker<'a> {
    path: &'a Path,
}

impl Checker<'_> {
    fn bad(&self, field: &str, value: impl std::fmt::Display, why: &str) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            field: field.to_string(),
            value: short_number(value.to_string()),
            why: why.to_string(),
        }
    }
    fn positive(&self, field: &str, v: f64) -> Result<f64, ConfigError> {
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            Err(self.bad(field, v, "must be a finite number > 0"))
        }
    }
    fn non_negative(&self, field: &str, v: f64) -> Result<f64, ConfigError> {
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(self.bad(field, v, "must be a finite number >= 0"))
        }
    }
    fn finite(&self, field: &str, v: f64) -> Result<f64, ConfigError> {
        if v.is_finite() {
            Ok(v)
        } else {
            Err(self.bad(field, v, "must be finite"))
        }
    }
    fn probability(&self, field: &str, v: f64) -> Result<f64, ConfigError> {
        if (0.0..=1.0).contains(&v) {
            Ok(v)
        } else {
            Err(self.bad(field, v, "a probability must lie in [0, 1]"))
        }
    }
    fn range(&self, field: &str, r: [f64; 2]) -> Result<(f64, f64), ConfigError> {
        self.finite(field, r[0])?;
        self.finite(field, r[1])?;
        if r[0] > r[1] {
            return Err(self.bad(field, format!("{r:?}"), "min > max"));
        }
        Ok((r[0], r[1]))
    }
    /// A distribution whose every value must satisfy `ok`.
    fn dist(
        &self,
        field: &str,
        d: &RawDistribution,
        ok: fn(f64) -> bool,
        why: &str,
    ) -> Result<Distribution, ConfigError> {
        let out = match *d {
            RawDistribution::Constant(v) => Distribution::Constant(v),
            RawDistribution::Uniform { min, max } => {
                if min > max {
                    return Err(self.bad(
                        field,
                        format!("{{ min = {min:?}, max = {max:?} }}"),
                        "min > max",
                    ));
                }
                Distribution::Uniform { min, max }
            }
        };
        for v in [out.min(), out.max()] {
            if !ok(v) {
                return Err(self.bad(field, v, why));
            }
        }
        Ok(out)
    }
    fn node_params(&self, prefix: &str, n: &RawNodeParams) -> Result<NodeParamsSpec, ConfigError> {
        Ok(NodeParamsSpec {
            refractory_period_ms: self.dist(
                &format!("{prefix}.refractory_period_ms"),
                &n.refractory_period_ms,
                |v| v.is_finite() && v >= 0.0,
                "must be finite and >= 0",
            )?,
            threshold: self.dist(
                &format!("{prefix}.threshold"),
                &n.threshold,
                |v| v.is_finite() && v > 0.0,
                "a threshold must be > 0",
            )?,
            summation_tau_ms: self.dist(
                &format!("{prefix}.summation_tau_ms"),
                &n.summation_tau_ms,
                |v| v.is_finite() && v > 0.0,
                "a decay time constant must be > 0",
            )?,
        })
    }
    fn weights(
        &self,
        prefix: &str,
        w: &RawWeights,
        n_recurrent: usize,
    ) -> Result<WeightSpec, ConfigError> {
        let excitatory = self.range(&format!("{prefix}.excitatory"), w.excitatory)?;
        let inhibitory = self.range(&format!("{prefix}.inhibitory"), w.inhibitory)?;
        if excitatory.0 < 0.0 {
            return Err(self.bad(
                &format!("{prefix}.excitatory"),
                format!("{:?}", w.excitatory),
                "excitatory weights must be >= 0",
            ));
        }
        if inhibitory.1 > 0.0 {
            return Err(self.bad(
                &format!("{prefix}.inhibitory"),
                format!("{:?}", w.inhibitory),
                "inhibitory weights must be <= 0",
            ));
        }
        Ok(WeightSpec {
            excitatory_fraction: self.probability(
                &format!("{prefix}.excitatory_fraction"),
                w.excitatory_fraction,
            )?,
            excitatory,
            inhibitory,
            scale: self.finite(&format!("{prefix}.scale"), w.scale)?
                * match w.scale_reference_n {
                    Some(n0) => (self.positive(&format!("{prefix}.scale_reference_n"), n0)?
                        / n_recurrent.max(1) as f64)
                        .sqrt(),
                    None => 1.0,
                },
        })
    }
}

impl RawConfig {
    /// Validates every field; `path` names the file in messages. Command-line
    /// overrides are applied to the raw config *before* this, so whatever
    /// reaches the pipeline has passed the same checks.
    pub fn check(self, path: &Path) -> Result<ExperimentConfig, ConfigError> {
        let c = Checker { path };
        let network = c.network(&self.network)?;
        let (plastic_edges, stdp) = c.stdp(&self.stdp)?;
        let duration = c.positive("simulation.duration_ms", self.simulation.duration_ms)?;
        let stimulus = c.stimulus(&self.stimulus, duration)?;
        let embedding = c.embedding(&self, &plastic_edges, duration)?;
        let evaluation = c.evaluation(&self.evaluation)?;
        let homeostasis = c.homeostasis(self.homeostasis.as_ref(), &self.stdp)?;
        let canonical = toml::to_string(&self)
            .map_err(|e| c.bad("(config)", "", &format!("cannot re-serialise: {e}")))?;
        let hash = format!("{:x}", Sha256::digest(canonical.as_bytes()));
        Ok(ExperimentConfig {
            experiment: self.experiment.clone(),
            seed: self.seed,
            network,
            plastic_edges,
            run: c.run(&self.simulation, duration, stdp)?,
            stimulus,
            embedding,
            evaluation,
            homeostasis,
            hash,
            raw: self,
        })
    }
}

impl Checker<'_> {
    /// The run parameters: duration, STDP and the limits (unset: defaults).
    fn run(
        &self,
        sim: &RawSimulation,
        duration: f64,
        stdp: Option<StdpParams>,
    ) -> Result<RunParams, ConfigError> {
        let sim_field = |e: crate::sim::SimError, field: &str, value: f64| match e {
            crate::sim::SimError::Param { name, value, why } => {
                self.bad(&format!("simulation.{name}"), value, &why)
            }
            other => self.bad(field, value, &other.to_string()),
        };
        let d = RunLimits::for_duration(duration);
        let limits = RunLimits {
            max_events_in_flight: sim.max_events_in_flight.unwrap_or(d.max_events_in_flight),
            max_activations: sim.max_activations.unwrap_or(d.max_activations),
            max_arrivals: sim.max_arrivals.unwrap_or(d.max_arrivals),
        };
        RunParams::new(duration, stdp)
            .map_err(|e| sim_field(e, "simulation.duration_ms", duration))?
            .with_limits(limits)
            .map_err(|e| sim_field(e, "simulation", 0.0))
    }

    fn network(&self, net: &RawNetwork) -> Result<NetworkPlan, ConfigError> {
        match net.builder {
            Builder::Layered | Builder::Sbm => self.two_population(net),
            Builder::EdgeList => self.edge_list(net),
        }
    }

    /// The 2x2 connection probabilities of the layered or SBM builder.
    fn connection_probability(&self, net: &RawNetwork) -> Result<[[f64; 2]; 2], ConfigError> {
        let c = self;
        if net.builder == Builder::Layered {
            if net.connection_probability.is_some() {
                return Err(c.bad("network.connection_probability", "(set)", "is for builder = \"sbm\"; the layered builder uses recurrent_connection_probability"));
            }
            let p_rr = c.probability(
                "network.recurrent_connection_probability",
                net.recurrent_connection_probability.unwrap_or(0.0),
            )?;
            return Ok([[0.0, 1.0], [0.0, p_rr]]);
        }
        if net.recurrent_connection_probability.is_some() {
            return Err(c.bad(
                "network.recurrent_connection_probability",
                "(set)",
                "is for builder = \"layered\"; the SBM uses connection_probability",
            ));
        }
        let p = net.connection_probability.ok_or_else(|| {
            c.bad(
                "network.connection_probability",
                "(missing)",
                "the SBM builder needs a 2x2 matrix [[in->in, in->rec], [rec->in, rec->rec]]",
            )
        })?;
        for (a, row) in p.iter().enumerate() {
            for (b, &v) in row.iter().enumerate() {
                c.probability(&format!("network.connection_probability[{a}][{b}]"), v)?;
            }
        }
        Ok(p)
    }

    fn two_population(&self, net: &RawNetwork) -> Result<NetworkPlan, ConfigError> {
        let c = self;
        let p = c.connection_probability(net)?;
        if net.input_rows == 0 || net.input_cols == 0 {
            return Err(c.bad(
                "network.input_rows/input_cols",
                format!("{} x {}", net.input_rows, net.input_cols),
                "the input grid needs at least one node",
            ));
        }
        let tort = c.range("network.tortuosity", net.tortuosity)?;
        if tort.0 < 1.0 {
            return Err(c.bad(
                "network.tortuosity",
                format!("{:?}", net.tortuosity),
                "a path is never shorter than the straight line: tortuosity must be >= 1",
            ));
        }
        for k in 0..3 {
            c.finite("network.recurrent_box_min_um", net.recurrent_box_min_um[k])?;
            c.finite("network.recurrent_box_max_um", net.recurrent_box_max_um[k])?;
            if net.recurrent_box_min_um[k] > net.recurrent_box_max_um[k] {
                return Err(c.bad(
                    "network.recurrent_box_min_um",
                    format!("{:?}", net.recurrent_box_min_um),
                    "exceeds recurrent_box_max_um",
                ));
            }
        }
        if net.recurrent_box_min_um[2] <= 0.0 {
            return Err(c.bad("network.recurrent_box_min_um", format!("{:?}", net.recurrent_box_min_um), "the input grid lies in z = 0: the recurrent box must start at z > 0 so every edge has a positive length"));
        }
        let velocity = c.dist(
            "network.velocity_um_per_ms",
            &net.velocity_um_per_ms,
            |v| v.is_finite() && v > 0.0,
            "a conduction velocity must be > 0",
        )?;
        let input_nodes = c.node_params("network.input_nodes", &net.input_nodes)?;
        let recurrent_nodes = c.node_params("network.recurrent_nodes", &net.recurrent_nodes)?;
        let sizes = [
            net.input_rows.saturating_mul(net.input_cols),
            net.n_recurrent,
        ];
        for (x, name, params) in [
            (0, "network.input_nodes", &input_nodes),
            (1, "network.recurrent_nodes", &recurrent_nodes),
        ] {
            let r = params.refractory_period_ms.min();
            if r <= 0.0 && population_on_cycle(&p, sizes, x) {
                return Err(c.bad(
                    &format!("{name}.refractory_period_ms"),
                    r,
                    &format!(
                        "{ZERO_REFRACTORY} (these nodes lie on cycles: see network.{})",
                        if net.builder == Builder::Layered {
                            "recurrent_connection_probability"
                        } else {
                            "connection_probability"
                        }
                    ),
                ));
            }
        }
        Ok(NetworkPlan::TwoPopulation(Box::new(TwoPopulationSpec {
            input_rows: net.input_rows,
            input_cols: net.input_cols,
            input_pitch_um: c.positive("network.input_pitch_um", net.input_pitch_um)?,
            n_recurrent: net.n_recurrent,
            recurrent_box_min_um: net.recurrent_box_min_um,
            recurrent_box_max_um: net.recurrent_box_max_um,
            connection_probability: p,
            tortuosity_min: tort.0,
            tortuosity_max: tort.1,
            velocity_um_per_ms: velocity,
            input_nodes,
            recurrent_nodes,
            input_weights: c.weights(
                "network.input_weights",
                &net.input_weights,
                net.n_recurrent,
            )?,
            recurrent_weights: c.weights(
                "network.recurrent_weights",
                &net.recurrent_weights,
                net.n_recurrent,
            )?,
        })))
    }

    fn edge_list(&self, net: &RawNetwork) -> Result<NetworkPlan, ConfigError> {
        let c = self;
        let mut nodes = Vec::new();
        for (i, n) in net.nodes.iter().enumerate() {
            let f = |k: &str| format!("network.nodes[{i}].{k}");
            nodes.push(NodeSpec {
                position_um: n.position_um,
                population: n.population,
                params: NodeParams {
                    refractory_period_ms: c
                        .non_negative(&f("refractory_period_ms"), n.refractory_period_ms)?,
                    threshold: c.positive(&f("threshold"), n.threshold)?,
                    summation_tau_ms: c.positive(&f("summation_tau_ms"), n.summation_tau_ms)?,
                },
            });
        }
        let mut edges = Vec::new();
        for (i, e) in net.edges.iter().enumerate() {
            let f = |k: &str| format!("network.edges[{i}].{k}");
            for (k, v) in [("source", e.source), ("target", e.target)] {
                if v as usize >= nodes.len() {
                    return Err(c.bad(&f(k), v, &format!("there are {} nodes", nodes.len())));
                }
            }
            let length = match e.length_um {
                Some(l) => c.positive(&f("length_um"), l)?,
                None => {
                    let (a, b) = (
                        nodes[e.source as usize].position_um,
                        nodes[e.target as usize].position_um,
                    );
                    let d = crate::network::distance_um(a, b);
                    c.positive(&format!("{} (from positions)", f("length_um")), d)?
                }
            };
            edges.push(EdgeSpec {
                source: e.source,
                target: e.target,
                length_um: length,
                velocity_um_per_ms: c.positive(&f("velocity_um_per_ms"), e.velocity_um_per_ms)?,
                weight: c.finite(&f("weight"), e.weight)?,
                plastic: false,
            });
        }
        let looped = on_or_between_cycles(nodes.len(), &edges);
        if let Some(i) =
            (0..nodes.len()).find(|&i| looped[i] && nodes[i].params.refractory_period_ms <= 0.0)
        {
            return Err(c.bad(
                &format!("network.nodes[{i}].refractory_period_ms"),
                nodes[i].params.refractory_period_ms,
                &format!(
                    "{ZERO_REFRACTORY} (node {i} lies on a cycle of edges, or between cycles)"
                ),
            ));
        }
        Ok(NetworkPlan::EdgeList { nodes, edges })
    }

    /// `[homeostasis]`, checked: it acts while STDP learns, so it needs STDP.
    fn homeostasis(
        &self,
        h: Option<&RawHomeostasis>,
        stdp: &RawStdp,
    ) -> Result<Option<HomeostasisParams>, ConfigError> {
        let Some(h) = h else {
            return Ok(None);
        };
        let rate = self.positive("homeostasis.rate", h.rate)?;
        if !stdp.enabled {
            return Err(self.bad(
                "homeostasis",
                "(set)",
                "homeostasis acts while STDP learns: set stdp.enabled = true, or remove the section",
            ));
        }
        Ok(Some(HomeostasisParams { kind: h.kind, rate }))
    }

    /// The plastic edge classes and the STDP parameters (none when off).
    fn stdp(&self, s: &RawStdp) -> Result<(Vec<EdgeClass>, Option<StdpParams>), ConfigError> {
        let c = self;
        if !s.enabled {
            return Ok((Vec::new(), None));
        }
        if s.w_min > s.w_max {
            return Err(c.bad(
                "stdp.w_min",
                s.w_min,
                &format!("w_min > w_max = {}", s.w_max),
            ));
        }
        let stdp = StdpParams::new(
            c.non_negative("stdp.a_plus", s.a_plus)?,
            c.non_negative("stdp.a_minus", s.a_minus)?,
            c.positive("stdp.tau_plus_ms", s.tau_plus_ms)?,
            c.positive("stdp.tau_minus_ms", s.tau_minus_ms)?,
            c.finite("stdp.w_min", s.w_min)?,
            c.finite("stdp.w_max", s.w_max)?,
            s.lost_arrivals_count,
        )
        // The engine's own check, reported under the config's key.
        .map_err(|e| match e {
            crate::sim::SimError::Param { name, value, why } => {
                c.bad(&format!("stdp.{name}"), value, &why)
            }
            other => c.bad("stdp", "", &other.to_string()),
        })?;
        Ok((s.plastic_edges.classes(), Some(stdp)))
    }

    fn stimulus(&self, st: &RawStimulus, duration: f64) -> Result<StimulusParams, ConfigError> {
        let c = self;
        // The input nodes' refractory periods cap the rate; the stimulus
        // takes them from the network it drives, not from here.
        Ok(StimulusParams {
            intensity_threshold: c
                .probability("stimulus.intensity_threshold", st.intensity_threshold)?,
            duration_ms: c.positive("stimulus.duration_ms", st.duration_ms.unwrap_or(duration))?,
            max_rate_hz: c.positive("stimulus.max_rate_hz", st.max_rate_hz)?,
            train: st.train,
            latency_window_ms: match (st.train, st.latency_window_ms) {
                (crate::stimulus::TrainKind::Latency, Some(w)) => {
                    c.positive("stimulus.latency_window_ms", w)?
                }
                (crate::stimulus::TrainKind::Latency, None) => return Err(c.bad(
                    "stimulus.latency_window_ms",
                    "(missing)",
                    "train = \"latency\" needs it: the spike time of a pixel of intensity 0, in ms",
                )),
                (_, Some(w)) => c.positive("stimulus.latency_window_ms", w)?,
                (_, None) => 0.0,
            },
        })
    }

    fn embedding(
        &self,
        raw: &RawConfig,
        plastic_edges: &[EdgeClass],
        duration: f64,
    ) -> Result<EmbeddingParams, ConfigError> {
        let c = self;
        let em = &raw.embedding;
        let field = |e: EmbedError| ConfigError::Invalid {
            path: c.path.to_path_buf(),
            field: format!("embedding.{}", e.field),
            value: e.value,
            why: e.why,
        };
        let weight_edges = em.weight_edges.classes();
        let paths =
            PathsParams::new(em.paths_method, em.paths_window_ms, em.paths_dim).map_err(field)?;
        let params = EmbeddingParams::new(
            em.kind,
            &em.snapshot_times_ms,
            weight_edges.clone(),
            em.activity_bin_ms,
            paths,
        )
        .map_err(field)?
        .with_trajectory(em.trajectory)
        .with_normalize(em.normalize);
        params.check_run_length(duration).map_err(field)?;
        if em.kind == EmbeddingKind::Weights && !raw.stdp.enabled {
            return Err(c.bad("embedding.kind", "\"weights\"", "weight changes need plasticity: set stdp.enabled = true (or use kind = \"activity\")"));
        }
        if em.kind == EmbeddingKind::Weights
            && !weight_edges.iter().any(|e| plastic_edges.contains(e))
        {
            return Err(c.bad(
                "embedding.weight_edges",
                format!("{:?}", em.weight_edges),
                "none of these edges is plastic (stdp.plastic_edges)",
            ));
        }
        Ok(params)
    }

    fn evaluation(&self, ev: &RawEvaluation) -> Result<EvalParams, ConfigError> {
        let c = self;
        if ev.k == 0 {
            return Err(c.bad("evaluation.k", 0, "k must be >= 1"));
        }
        if ev.repeats == 0 {
            return Err(c.bad("evaluation.repeats", 0, "must be >= 1"));
        }
        let mut linear = Vec::new();
        for kind in &ev.linear {
            let mut p = match kind {
                LinearName::Ridge => LinearParams::ridge(),
                LinearName::Svm => LinearParams::svm(),
            };
            let own = match kind {
                LinearName::Ridge => ("evaluation.ridge_lambdas", &ev.ridge_lambdas),
                LinearName::Svm => ("evaluation.svm_lambdas", &ev.svm_lambdas),
            };
            let given = match own {
                (field, Some(l)) => Some((field, l)),
                (_, None) => ev.lambdas.as_ref().map(|l| ("evaluation.lambdas", l)),
            };
            if let Some((field, l)) = given {
                if l.is_empty() {
                    return Err(c.bad(
                        field,
                        "[]",
                        "a linear readout needs at least one regularisation strength",
                    ));
                }
                for &v in l {
                    c.positive(field, v)?;
                }
                p.lambdas = l.clone();
            }
            p.lambda_scale = ev.lambda_scale;
            if ev.cv_folds < 2 {
                return Err(c.bad(
                    "evaluation.cv_folds",
                    ev.cv_folds,
                    "cross-validation needs at least 2 folds",
                ));
            }
            p.cv_folds = ev.cv_folds;
            p.standardize = ev.standardize;
            linear.push(p);
        }
        Ok(EvalParams {
            knn: KnnParams {
                k: ev.k,
                metric: ev.metric,
                weighting: ev.weighting,
            },
            n_reference: ev.n_reference,
            n_query: ev.n_query,
            repeats: ev.repeats,
            split_seed: ev.split_seed,
            linear,
        })
    }
}

#[cfg(test)]
mod tests;

impl NetworkPlan {
    /// Builds the network with `seed` and marks `plastic` edge classes plastic.
    pub fn build(
        &self,
        seed: u64,
        plastic: &[EdgeClass],
    ) -> Result<crate::network::Network, crate::network::NetworkError> {
        let mut net = match self {
            NetworkPlan::TwoPopulation(spec) => crate::network::build_two_population(spec, seed)?,
            NetworkPlan::EdgeList { nodes, edges } => {
                crate::network::Network::from_edges(nodes, edges)?
            }
        };
        net.set_plastic_classes(plastic);
        Ok(net)
    }
}
