//! The one encode loop: image -> stimulus -> simulation -> embedding, for one
//! row or a range of rows in parallel. Every command that runs an image
//! (`encode`, `run`, the experiments, `simulate --image`, `bench engine`)
//! derives the row's stimulus seed with [`row_seed`] and builds its stimulus
//! through [`Encoder::stimulus`], so each shows the same train for the same
//! row.

use super::observer::{Event, Observer};
use super::PipelineError;
use crate::config::{ExperimentConfig, NetworkPlan};
use crate::dataset::ImageSet;
use crate::embed::{Embedder, View};
use crate::network::Network;
use crate::record::{ExternalActivation, RecordSpec, Recording, RunTotals};
use crate::sim::{RunParams, Simulator, Workspace};
use crate::stimulus::{self, StimulusParams};
use rayon::prelude::*;

/// Seed of row `row`'s stimulus (Poisson trains): a pure function of the
/// config seed and the row, so shards, resumes and every command draw the
/// same train for a row. SplitMix64 of the pair: row 0 does not reuse the
/// network's seed.
pub fn row_seed(seed: u64, row: usize) -> u64 {
    let mut z = seed ^ (row as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One row's vectors (one per view, in view order) and its run totals.
pub type RowResult = (Vec<Vec<f32>>, RunTotals);

/// Per-worker scratch: the engine's workspace and a weight buffer.
#[derive(Debug, Default)]
pub struct Scratch {
    workspace: Workspace,
    weights: Vec<f32>,
}

impl Scratch {
    /// The engine's workspace (for runs driven by hand, e.g. a learning sequence).
    pub fn workspace(&mut self) -> &mut Workspace {
        &mut self.workspace
    }
}

/// A network, its simulator, the stimulus rule and the embedder, ready to
/// encode images. Every run starts from the same initial weights.
pub struct Encoder<'a> {
    net: &'a Network,
    sim: Simulator<'a>,
    embedder: Embedder,
    stimulus: StimulusParams,
    /// Refractory period of each input node (caps its stimulus rate).
    input_refractory_ms: Vec<f64>,
    /// The input grid (rows, cols) when the config lays the inputs out as one.
    input_grid: Option<(usize, usize)>,
    seed: u64,
    initial_weights: Vec<f32>,
}

impl<'a> Encoder<'a> {
    /// The encoder of `cfg` on `net` (built from `cfg`), with the config's
    /// run parameters and embedding.
    pub fn new(net: &'a Network, cfg: &ExperimentConfig) -> Result<Encoder<'a>, PipelineError> {
        Encoder::with_run(net, cfg, cfg.run())
    }

    /// As [`Encoder::new`] with other run parameters (e.g. STDP off, to run a
    /// learned network frozen).
    pub fn with_run(
        net: &'a Network,
        cfg: &ExperimentConfig,
        run: &RunParams,
    ) -> Result<Encoder<'a>, PipelineError> {
        // Why here: every command that encodes builds its Encoder before any
        // work, and a network without recurrent nodes has no dynamics to
        // embed (it used to write a "complete" encode of empty vectors).
        if net.n_recurrent() == 0 {
            return Err(PipelineError::Shape(
                "the network has no recurrent nodes (n_recurrent = 0): nothing to encode".into(),
            ));
        }
        let sim = Simulator::new(net, run)?;
        let embedder = Embedder::new(net, cfg.embedding(), cfg.run().duration_ms(), cfg.seed())?;
        // Pixel i drives node i (the input nodes come first): its train is
        // capped by the R the engine applies to node i.
        let input_refractory_ms = net.refractory_period_ms[..net.n_input()].to_vec();
        Ok(Encoder {
            net,
            sim,
            embedder,
            stimulus: cfg.stimulus().clone(),
            input_refractory_ms,
            input_grid: match cfg.network() {
                NetworkPlan::TwoPopulation(spec) => Some((spec.input_rows, spec.input_cols)),
                NetworkPlan::EdgeList { .. } => None,
            },
            seed: cfg.seed(),
            initial_weights: net.edge_weight.clone(),
        })
    }

    /// Runs start from `weights` instead of the network's (e.g. after
    /// learning); weight-change views are measured from them.
    pub fn with_initial_weights(mut self, weights: Vec<f32>) -> Result<Encoder<'a>, PipelineError> {
        if weights.len() != self.net.n_edges() {
            return Err(PipelineError::Shape(format!(
                "{} initial weights for a network of {} edges",
                weights.len(),
                self.net.n_edges()
            )));
        }
        self.initial_weights = weights;
        Ok(self)
    }

    pub fn network(&self) -> &'a Network {
        self.net
    }
    pub fn simulator(&self) -> &Simulator<'a> {
        &self.sim
    }
    /// Sets the per-node thresholds of the runs that follow (see
    /// [`Simulator::set_thresholds`]); the views do not read thresholds.
    pub fn set_thresholds(&mut self, threshold: &[f64]) -> Result<(), PipelineError> {
        Ok(self.sim.set_thresholds(threshold)?)
    }
    /// As [`Encoder::set_thresholds`], by value (e.g. a network whose
    /// thresholds were adapted while learning, run frozen).
    pub fn with_thresholds(mut self, threshold: &[f64]) -> Result<Encoder<'a>, PipelineError> {
        self.set_thresholds(threshold)?;
        Ok(self)
    }
    /// What a run must record for the views (what `encode_row` records).
    pub fn record_spec(&self) -> &RecordSpec {
        self.embedder.record_spec()
    }
    pub fn views(&self) -> &[View] {
        self.embedder.views()
    }
    pub fn initial_weights(&self) -> &[f32] {
        &self.initial_weights
    }

    /// Refuses an image set whose images do not have one pixel per input
    /// node, or, on an input grid, not the grid's shape (a 14 x 56 image has
    /// the 784 pixels of a 28 x 28 grid but would land scrambled on it).
    pub fn check_images(&self, set: &ImageSet, what: &str) -> Result<(), PipelineError> {
        let n_input = self.input_refractory_ms.len();
        if let Some((rows, cols)) = self.input_grid {
            if (set.rows, set.cols) != (rows, cols) {
                return Err(PipelineError::Shape(format!(
                    "{}: {what} are {} x {} pixels, but the network's input grid is {rows} x {cols}",
                    set.images_path.display(),
                    set.rows,
                    set.cols,
                )));
            }
        }
        if set.pixels_per_image() != n_input {
            return Err(PipelineError::Shape(format!(
                "{}: {what} have {} x {} = {} pixels, but the network has {} input nodes",
                set.images_path.display(),
                set.rows,
                set.cols,
                set.pixels_per_image(),
                n_input
            )));
        }
        Ok(())
    }

    /// The input activations of `pixels` as row `row`.
    pub fn stimulus(&self, pixels: &[u8], row: usize) -> Vec<ExternalActivation> {
        stimulus::encode_image(
            pixels,
            &self.stimulus,
            &self.input_refractory_ms,
            row_seed(self.seed, row),
        )
    }

    /// Refuses a stimulus too big for memory before it is drawn: its size
    /// follows from the run length and the rates (a 1e9 ms run asked for
    /// 194 GB, and took 46 s counting the trains first). The bound is cheap:
    /// every lit pixel at its rate for the whole duration, plus one spike
    /// and, for Poisson trains, six standard deviations.
    fn check_stimulus_size(&self, pixels: &[u8]) -> Result<(), PipelineError> {
        // Below this, skip the look at free memory (one file read per row).
        const SMALL_BYTES: u64 = 64 << 20;
        let p = &self.stimulus;
        let expected: f64 = pixels
            .iter()
            .map(|&px| p.duration_ms * p.max_rate_hz / 1000.0 * f64::from(px) / 255.0)
            .map(|m| m + 6.0 * m.sqrt() + 1.0)
            .sum();
        // Each activation is held twice: the train, and the engine's queue
        // of it (a 16-byte key).
        let per_spike = (std::mem::size_of::<ExternalActivation>() + 16) as f64;
        let bytes = (expected * per_spike).min(u64::MAX as f64) as u64;
        if bytes > SMALL_BYTES {
            crate::memory::check(
                || {
                    format!(
                        "stimulus: up to {expected:.3e} input activations over {} ms at up to \
                         {} Hz",
                        p.duration_ms, p.max_rate_hz
                    )
                },
                bytes,
            )?;
        }
        Ok(())
    }

    /// Simulates `pixels` as row `row`, recording `spec`; returns the
    /// recording and the weights at the end of the run.
    pub fn simulate(
        &self,
        scratch: &mut Scratch,
        pixels: &[u8],
        row: usize,
        spec: &RecordSpec,
    ) -> Result<Recording, PipelineError> {
        self.check_stimulus_size(pixels)?;
        let stim = self.stimulus(pixels, row);
        scratch.weights.clear();
        scratch.weights.extend_from_slice(&self.initial_weights);
        Ok(self
            .sim
            .run(&mut scratch.workspace, &mut scratch.weights, &stim, spec)?)
    }

    /// The weights at the end of the last [`Encoder::simulate`] on `scratch`.
    pub fn final_weights<'s>(&self, scratch: &'s Scratch) -> &'s [f32] {
        &scratch.weights
    }

    /// Encodes `pixels` as row `row`: one vector per view.
    pub fn encode_row(
        &self,
        scratch: &mut Scratch,
        pixels: &[u8],
        row: usize,
    ) -> Result<RowResult, PipelineError> {
        let rec = self.simulate(scratch, pixels, row, self.embedder.record_spec())?;
        let mut vecs = vec![Vec::new(); self.views().len()];
        self.embedder
            .embed(self.net, &self.initial_weights, &rec, &mut vecs)?;
        Ok((vecs, rec.totals))
    }

    /// Encodes rows `rows` in parallel (`image(row)` gives a row's pixels);
    /// the results are in row order whatever the thread count. Reports one
    /// [`Event::Advanced`] per row.
    pub fn encode_rows<'i>(
        &self,
        rows: std::ops::Range<usize>,
        image: &(dyn Fn(usize) -> &'i [u8] + Sync),
        observer: &dyn Observer,
    ) -> Result<Vec<RowResult>, PipelineError> {
        self.check_rows_size(rows.len())?;
        rows.into_par_iter()
            .map_init(Scratch::default, |scratch, row| {
                let r = self.encode_row(scratch, image(row), row);
                observer.observe(Event::Advanced { n: 1 });
                r
            })
            .collect()
    }
}

impl Encoder<'_> {
    /// Refuses a block of `n_rows` rows whose vectors do not fit in memory:
    /// each row holds every view (`dim` floats each, set by the config: an
    /// activity view is nodes x bins), and a view is copied once more when
    /// written. A 1e7 ms run with 100 ms bins made 394 MB per row.
    fn check_rows_size(&self, n_rows: usize) -> Result<(), PipelineError> {
        let dims: u64 = self.views().iter().map(|v| v.dim as u64).sum();
        let widest = self.views().iter().map(|v| v.dim as u64).max().unwrap_or(0);
        let floats = (n_rows as u64)
            .saturating_mul(dims)
            .saturating_add((n_rows as u64).saturating_mul(widest));
        crate::memory::check(
            || {
                format!(
                    "embeddings of {n_rows} rows with {} views of {dims} numbers in all",
                    self.views().len()
                )
            },
            crate::memory::bytes_of::<f32>(floats),
        )?;
        Ok(())
    }
}

/// The rows' vectors of view `view` (named `name`), end to end, each checked
/// to hold `dim` numbers.
pub(crate) fn flatten_view(
    rows: &[RowResult],
    view: usize,
    name: &str,
    dim: usize,
) -> Result<Vec<f32>, PipelineError> {
    let mut flat = Vec::new();
    // rows x dim follows from the config: an error, not an abort, if refused.
    crate::memory::try_reserve(&mut flat, rows.len().saturating_mul(dim), || {
        format!("view {name}: {} rows of {dim} numbers", rows.len())
    })?;
    for (vecs, _) in rows {
        let v = &vecs[view];
        if v.len() != dim {
            return Err(PipelineError::Shape(format!(
                "view {name}: embedding of length {} (expected {dim})",
                v.len()
            )));
        }
        flat.extend_from_slice(v);
    }
    Ok(flat)
}

/// Stacks the rows' vectors of view `view` into an `n x dim` matrix.
pub fn stack_view(
    rows: &[RowResult],
    view: usize,
    dim: usize,
) -> Result<ndarray::Array2<f32>, PipelineError> {
    let flat = flatten_view(rows, view, &view.to_string(), dim)?;
    ndarray::Array2::from_shape_vec((rows.len(), dim), flat)
        .map_err(|e| PipelineError::Shape(e.to_string()))
}

/// The run totals of `rows`, summed.
pub fn sum_totals(rows: &[RowResult]) -> RunTotals {
    rows.iter().map(|(_, r)| *r).sum()
}
