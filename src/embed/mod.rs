//! embed: turns what a run recorded into fixed-length vectors (stage 6 of the
//! pipeline: recording -> embedding -> classifier).
//!
//! An [`Embedder`] is built once per network and embedding config. It says what
//! the engine must record ([`Embedder::record_spec`]) and produces one vector
//! per *view* for each run:
//! - `weights`: for each snapshot time t, a view `weights_t{t}` holding the
//!   change `w(t) - w(0)` of the chosen plastic edges (e.g. recurrent ->
//!   recurrent), in CSR edge order;
//! - `activity`: per recurrent node, activation counts in time bins of
//!   `activity_bin_ms` (node-major), always produced beside the others as the
//!   no-plasticity-readout control of the same runs;
//! - `paths`: the activation-path embedding ([`paths`]).

pub mod paths;

use crate::config::{EmbeddingKind, EmbeddingParams};
use crate::network::{EdgeId, Network, Population};
use crate::record::{RecordSpec, Recording};

/// One embedding view: a name (used for file names and reports), its
/// dimension, and the snapshot time it belongs to, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    pub name: String,
    pub dim: usize,
    pub time_ms: Option<f64>,
    pub kind: EmbeddingKind,
}

#[derive(Debug)]
pub struct Embedder {
    views: Vec<View>,
    spec: RecordSpec,
    weight_edges: Vec<EdgeId>,
    recurrent_nodes: Vec<usize>,
    bins: usize,
    paths: Option<paths::PathsEmbedder>,
}

impl Embedder {
    pub fn new(net: &Network, params: &EmbeddingParams, duration_ms: f64, seed: u64) -> Embedder {
        let recurrent_nodes: Vec<usize> = (0..net.n_nodes())
            .filter(|&i| net.population[i] == Population::Recurrent)
            .collect();
        let bins = ((duration_ms / params.activity_bin_ms).ceil() as usize).max(1);
        let mut views = Vec::new();
        let mut spec = RecordSpec {
            activity_bin_ms: Some(params.activity_bin_ms),
            ..Default::default()
        };
        let mut weight_edges = Vec::new();
        let mut paths = None;
        match params.kind {
            EmbeddingKind::Weights => {
                weight_edges = net
                    .edges_of_classes(&params.weight_edges)
                    .into_iter()
                    .filter(|&e| net.edge_plastic[e as usize])
                    .collect();
                for &t in &params.snapshot_times_ms {
                    views.push(View {
                        name: format!("weights_t{}", fmt_ms(t)),
                        dim: weight_edges.len(),
                        time_ms: Some(t),
                        kind: EmbeddingKind::Weights,
                    });
                }
                spec.weight_snapshots_ms = params.snapshot_times_ms.clone();
                spec.snapshot_edges = weight_edges.clone();
            }
            EmbeddingKind::Paths => {
                let p = paths::PathsEmbedder::new(net, &params.paths, duration_ms, seed);
                views.push(View {
                    name: format!("paths_{}", p.method_name()),
                    dim: p.dim(),
                    time_ms: None,
                    kind: EmbeddingKind::Paths,
                });
                spec.activations = true;
                paths = Some(p);
            }
            EmbeddingKind::Activity => {}
        }
        views.push(View {
            name: "activity".into(),
            dim: recurrent_nodes.len() * bins,
            time_ms: None,
            kind: EmbeddingKind::Activity,
        });
        Embedder {
            views,
            spec,
            weight_edges,
            recurrent_nodes,
            bins,
            paths,
        }
    }

    /// What the engine must record for these views (nothing more).
    pub fn record_spec(&self) -> &RecordSpec {
        &self.spec
    }

    pub fn views(&self) -> &[View] {
        &self.views
    }

    /// Writes each view's vector into `out[view]` (resized to the view's dim).
    pub fn embed(
        &self,
        net: &Network,
        initial_weights: &[f32],
        rec: &Recording,
        out: &mut [Vec<f32>],
    ) {
        for (v, (view, o)) in self.views.iter().zip(out.iter_mut()).enumerate() {
            o.clear();
            match view.kind {
                EmbeddingKind::Weights => {
                    let snap = &rec.snapshots[v];
                    o.extend(
                        snap.weights
                            .iter()
                            .zip(&self.weight_edges)
                            .map(|(w, &e)| w - initial_weights[e as usize]),
                    );
                }
                EmbeddingKind::Activity => {
                    for &j in &self.recurrent_nodes {
                        let row = &rec.activity[j * rec.activity_bins..(j + 1) * rec.activity_bins];
                        o.extend(row.iter().take(self.bins).map(|&c| c as f32));
                    }
                }
                EmbeddingKind::Paths => {
                    if let Some(p) = &self.paths {
                        o.extend(p.embed(net, rec));
                    }
                }
            }
        }
    }
}

/// A time in ms as it appears in view names (`100`, `12.5`).
pub fn fmt_ms(t: f64) -> String {
    if t.fract() == 0.0 {
        format!("{}", t as i64)
    } else {
        format!("{t}")
    }
}
