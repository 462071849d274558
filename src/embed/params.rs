//! The embedding stage's own parameters: which views to produce and how.
//! Built once through checking constructors (the config stage calls them), so
//! an [`EmbeddingParams`] in hand is always valid: snapshot times positive,
//! finite, sorted and distinct; bin and window widths positive.

use crate::network::EdgeClass;
use serde::{Deserialize, Serialize};

/// Which embedding a config asks for (the `activity` view comes with every one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingKind {
    /// Change of the chosen weights since t = 0, at each snapshot time.
    Weights,
    /// Per-node activation counts in time bins (the no-plasticity control).
    Activity,
    /// The activation-path embedding.
    Paths,
}

/// Preprocessing of every vector (views and baselines alike) before a readout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    None,
    L2,
}

/// How an activation path becomes a fixed-length vector (see [`super::paths`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathsMethod {
    /// Counts of causal edges traversed per time window, randomly projected.
    CausalEdges,
    /// Per-node first-activation latency and activation-time histograms.
    NodeTiming,
    /// Both, concatenated.
    Both,
}

impl PathsMethod {
    pub const ALL: [PathsMethod; 3] = [
        PathsMethod::CausalEdges,
        PathsMethod::NodeTiming,
        PathsMethod::Both,
    ];

    /// The name used in configs, view names and reports.
    pub fn name(self) -> &'static str {
        match self {
            PathsMethod::CausalEdges => "causal_edges",
            PathsMethod::NodeTiming => "node_timing",
            PathsMethod::Both => "both",
        }
    }
}

impl std::fmt::Display for PathsMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A bad embedding parameter: which one, its value, and why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("embedding.{field} = {value}: {why}")]
pub struct EmbedError {
    /// The parameter's name as in the config's `[embedding]` section.
    pub field: &'static str,
    pub value: String,
    pub why: String,
}

fn bad(field: &'static str, value: impl std::fmt::Display, why: impl Into<String>) -> EmbedError {
    EmbedError {
        field,
        value: value.to_string(),
        why: why.into(),
    }
}

fn positive(field: &'static str, v: f64) -> Result<f64, EmbedError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(bad(field, v, "must be a finite number > 0"))
    }
}

/// Parameters of the activation-path embedding.
#[derive(Clone, Debug, PartialEq)]
pub struct PathsParams {
    method: PathsMethod,
    window_ms: f64,
    dim: usize,
}

impl PathsParams {
    /// `window_ms`: width of the time windows; `dim`: columns of the hashed
    /// causal-edge block.
    pub fn new(method: PathsMethod, window_ms: f64, dim: usize) -> Result<PathsParams, EmbedError> {
        if dim == 0 {
            return Err(bad("paths_dim", 0, "must be >= 1"));
        }
        Ok(PathsParams {
            method,
            window_ms: positive("paths_window_ms", window_ms)?,
            dim,
        })
    }
    pub fn method(&self) -> PathsMethod {
        self.method
    }
    pub fn window_ms(&self) -> f64 {
        self.window_ms
    }
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// The same parameters with another method.
    pub fn with_method(&self, method: PathsMethod) -> PathsParams {
        PathsParams {
            method,
            ..self.clone()
        }
    }
}

/// Which views an [`super::Embedder`] produces, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingParams {
    kind: EmbeddingKind,
    snapshot_times_ms: Vec<f64>,
    weight_edges: Vec<EdgeClass>,
    activity_bin_ms: f64,
    trajectory: bool,
    normalize: Normalize,
    paths: PathsParams,
    compare_paths_methods: bool,
}

impl EmbeddingParams {
    /// Snapshot times are sorted and deduplicated here; each must be finite
    /// and > 0 (whether they lie within the run is checked against the run's
    /// length by [`super::Embedder::new`]).
    pub fn new(
        kind: EmbeddingKind,
        snapshot_times_ms: &[f64],
        weight_edges: Vec<EdgeClass>,
        activity_bin_ms: f64,
        paths: PathsParams,
    ) -> Result<EmbeddingParams, EmbedError> {
        let mut snaps = snapshot_times_ms.to_vec();
        for &t in &snaps {
            positive("snapshot_times_ms", t)?;
        }
        snaps.sort_by(f64::total_cmp);
        snaps.dedup();
        if kind == EmbeddingKind::Weights && snaps.is_empty() {
            return Err(bad(
                "snapshot_times_ms",
                "[]",
                "the weights embedding needs at least one snapshot time",
            ));
        }
        Ok(EmbeddingParams {
            kind,
            snapshot_times_ms: snaps,
            weight_edges,
            activity_bin_ms: positive("activity_bin_ms", activity_bin_ms)?,
            trajectory: false,
            normalize: Normalize::None,
            paths,
            compare_paths_methods: false,
        })
    }

    /// Refuses snapshot times after the end of a run of `duration_ms` (a
    /// snapshot there would never be taken).
    pub fn check_run_length(&self, duration_ms: f64) -> Result<(), EmbedError> {
        match self.snapshot_times_ms.iter().find(|&&t| t > duration_ms) {
            Some(&t) => Err(bad(
                "snapshot_times_ms",
                t,
                format!("is after the end of the run (simulation.duration_ms = {duration_ms})"),
            )),
            None => Ok(()),
        }
    }

    /// Also evaluate the trajectories (snapshots up to t, concatenated).
    pub fn with_trajectory(mut self, on: bool) -> EmbeddingParams {
        self.trajectory = on;
        self
    }

    pub fn with_normalize(mut self, n: Normalize) -> EmbeddingParams {
        self.normalize = n;
        self
    }

    /// With the paths embedding: also produce the other [`PathsMethod`]s
    /// from the same runs (the config's own method stays the first view), so
    /// a report compares the methods on identical dynamics.
    pub fn with_all_paths_methods(mut self, on: bool) -> EmbeddingParams {
        self.compare_paths_methods = on;
        self
    }

    pub fn kind(&self) -> EmbeddingKind {
        self.kind
    }
    pub fn snapshot_times_ms(&self) -> &[f64] {
        &self.snapshot_times_ms
    }
    pub fn weight_edges(&self) -> &[EdgeClass] {
        &self.weight_edges
    }
    pub fn activity_bin_ms(&self) -> f64 {
        self.activity_bin_ms
    }
    pub fn trajectory(&self) -> bool {
        self.trajectory
    }
    pub fn normalize(&self) -> Normalize {
        self.normalize
    }
    pub fn paths(&self) -> &PathsParams {
        &self.paths
    }
    /// The paths methods to produce, the config's own first.
    pub fn paths_methods(&self) -> Vec<PathsMethod> {
        let primary = self.paths.method;
        let mut m = vec![primary];
        if self.compare_paths_methods {
            m.extend(PathsMethod::ALL.iter().copied().filter(|&x| x != primary));
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> PathsParams {
        PathsParams::new(PathsMethod::Both, 100.0, 64).unwrap()
    }

    #[test]
    fn snapshot_times_are_sorted_and_checked() {
        let p = EmbeddingParams::new(
            EmbeddingKind::Weights,
            &[300.0, 100.0, 300.0],
            vec![],
            100.0,
            paths(),
        )
        .unwrap();
        assert_eq!(p.snapshot_times_ms(), [100.0, 300.0]);
        for bad_t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = EmbeddingParams::new(EmbeddingKind::Weights, &[bad_t], vec![], 100.0, paths())
                .unwrap_err();
            assert_eq!(e.field, "snapshot_times_ms");
        }
        let e =
            EmbeddingParams::new(EmbeddingKind::Weights, &[], vec![], 100.0, paths()).unwrap_err();
        assert!(e.to_string().contains("at least one snapshot"), "{e}");
        let e =
            EmbeddingParams::new(EmbeddingKind::Activity, &[], vec![], 0.0, paths()).unwrap_err();
        assert_eq!(e.field, "activity_bin_ms");
    }

    #[test]
    fn paths_params_are_checked_and_methods_listed_primary_first() {
        assert_eq!(
            PathsParams::new(PathsMethod::Both, 10.0, 0)
                .unwrap_err()
                .field,
            "paths_dim"
        );
        assert_eq!(
            PathsParams::new(PathsMethod::Both, -1.0, 8)
                .unwrap_err()
                .field,
            "paths_window_ms"
        );
        let p = EmbeddingParams::new(EmbeddingKind::Paths, &[], vec![], 100.0, paths()).unwrap();
        assert_eq!(p.paths_methods(), [PathsMethod::Both]);
        let p = p.with_all_paths_methods(true);
        assert_eq!(
            p.paths_methods(),
            [
                PathsMethod::Both,
                PathsMethod::CausalEdges,
                PathsMethod::NodeTiming
            ]
        );
    }
}
