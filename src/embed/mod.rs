//! embed: turns what a run recorded into fixed-length vectors (stage 6 of the
//! pipeline: recording -> embedding -> classifier).
//!
//! An [`Embedder`] is built once per network and [`EmbeddingParams`]. It says
//! what the engine must record ([`Embedder::record_spec`]) and produces one
//! vector per *view* for each run:
//! - `weights`: for each snapshot time t, a view `weights_t{t}` holding the
//!   change `w(t) - w(0)` of the chosen plastic edges (e.g. recurrent ->
//!   recurrent), in CSR edge order;
//! - `activity`: per recurrent node, activation counts in time bins of
//!   `activity_bin_ms` (node-major), always produced beside the others as the
//!   no-plasticity-readout control of the same runs;
//! - `paths_{method}`: the activation-path embedding ([`paths`]), one view per
//!   method asked for.

mod params;
pub mod paths;

pub use params::{EmbedError, EmbeddingKind, EmbeddingParams, Normalize, PathsMethod, PathsParams};

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

/// Where a view's numbers come from in a recording.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// Weight snapshot number `i` (in the record spec's order).
    Snapshot(usize),
    Activity,
    /// Paths embedder number `i`.
    Paths(usize),
}

#[derive(Debug)]
pub struct Embedder {
    views: Vec<View>,
    sources: Vec<Source>,
    spec: RecordSpec,
    weight_edges: Vec<EdgeId>,
    recurrent_nodes: Vec<usize>,
    bins: usize,
    paths: Vec<paths::PathsEmbedder>,
}

impl Embedder {
    /// The views of `params` for runs of `duration_ms` on `net`; `seed` seeds
    /// the paths embedding's feature hash. Refuses snapshot times after the
    /// end of the run.
    pub fn new(
        net: &Network,
        params: &EmbeddingParams,
        duration_ms: f64,
        seed: u64,
    ) -> Result<Embedder, EmbedError> {
        params.check_run_length(duration_ms)?;
        let recurrent_nodes: Vec<usize> = (0..net.n_nodes())
            .filter(|&i| net.population[i] == Population::Recurrent)
            .collect();
        let bins = ((duration_ms / params.activity_bin_ms()).ceil() as usize).max(1);
        let mut e = Embedder {
            views: Vec::new(),
            sources: Vec::new(),
            spec: RecordSpec {
                activity_bin_ms: Some(params.activity_bin_ms()),
                ..Default::default()
            },
            weight_edges: Vec::new(),
            recurrent_nodes,
            bins,
            paths: Vec::new(),
        };
        match params.kind() {
            EmbeddingKind::Weights => {
                e.weight_edges = net
                    .edges_of_classes(params.weight_edges())
                    .into_iter()
                    .filter(|&edge| net.edge_plastic[edge as usize])
                    .collect();
                for (i, &t) in params.snapshot_times_ms().iter().enumerate() {
                    e.push(
                        format!("weights_t{}", fmt_ms(t)),
                        e.weight_edges.len(),
                        Some(t),
                        EmbeddingKind::Weights,
                        Source::Snapshot(i),
                    );
                }
                e.spec.weight_snapshots_ms = params.snapshot_times_ms().to_vec();
                e.spec.snapshot_edges = e.weight_edges.clone();
            }
            EmbeddingKind::Paths => {
                for m in params.paths_methods() {
                    let p = paths::PathsEmbedder::new(
                        net,
                        &params.paths().with_method(m),
                        duration_ms,
                        seed,
                    );
                    let (name, dim) = (format!("paths_{}", m.name()), p.dim());
                    e.push(
                        name,
                        dim,
                        None,
                        EmbeddingKind::Paths,
                        Source::Paths(e.paths.len()),
                    );
                    e.paths.push(p);
                }
                e.spec.activations = true;
            }
            EmbeddingKind::Activity => {}
        }
        let dim = e.recurrent_nodes.len() * bins;
        e.push(
            "activity".into(),
            dim,
            None,
            EmbeddingKind::Activity,
            Source::Activity,
        );
        Ok(e)
    }

    fn push(
        &mut self,
        name: String,
        dim: usize,
        time_ms: Option<f64>,
        kind: EmbeddingKind,
        s: Source,
    ) {
        self.views.push(View {
            name,
            dim,
            time_ms,
            kind,
        });
        self.sources.push(s);
    }

    /// What the engine must record for these views (nothing more).
    pub fn record_spec(&self) -> &RecordSpec {
        &self.spec
    }

    pub fn views(&self) -> &[View] {
        &self.views
    }

    /// Writes each view's vector into `out[view]` (resized to the view's
    /// dim). `rec` must come from a run recorded with [`Self::record_spec`];
    /// a recording that lacks what a view needs is an error, not a panic.
    pub fn embed(
        &self,
        net: &Network,
        initial_weights: &[f32],
        rec: &Recording,
        out: &mut [Vec<f32>],
    ) -> Result<(), EmbedError> {
        for ((view, source), o) in self.views.iter().zip(&self.sources).zip(out.iter_mut()) {
            o.clear();
            match *source {
                Source::Snapshot(i) => {
                    let snap = rec
                        .snapshots
                        .get(i)
                        .filter(|s| s.weights.len() == self.weight_edges.len());
                    let Some(snap) = snap else {
                        return Err(EmbedError {
                            field: "snapshot_times_ms",
                            value: format!("{:?}", view.time_ms),
                            why: format!(
                                "view {}: the recording has {} snapshots, not the ones asked for (record with Embedder::record_spec)",
                                view.name,
                                rec.snapshots.len()
                            ),
                        });
                    };
                    o.extend(
                        snap.weights
                            .iter()
                            .zip(&self.weight_edges)
                            .map(|(w, &e)| w - initial_weights[e as usize]),
                    );
                }
                Source::Activity => {
                    let per_node = rec.activity_bins;
                    if rec.activity.len() < net.n_nodes() * per_node || per_node < self.bins {
                        return Err(EmbedError {
                            field: "activity_bin_ms",
                            value: format!("{:?}", self.spec.activity_bin_ms),
                            why: "the recording holds no binned activity of this width (record with Embedder::record_spec)".into(),
                        });
                    }
                    for &j in &self.recurrent_nodes {
                        let row = &rec.activity[j * per_node..(j + 1) * per_node];
                        o.extend(row.iter().take(self.bins).map(|&c| c as f32));
                    }
                }
                Source::Paths(i) => o.extend(self.paths[i].embed(net, rec)),
            }
        }
        Ok(())
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

#[cfg(test)]
mod tests;
