//! Experiment 2 of the source: STDP changes the embedding (digits 1 vs 5).
//!
//! 1. *Learning.* A seeded random sequence of `n_train` images of classes 1
//!    and 5 drives the SBM of `configs/stdp.toml` one after another with STDP
//!    on; the weights carry over from image to image. The plastic edges'
//!    weights before and after are compared (shares up / down / changed sign /
//!    unchanged; figure 2: histograms of before, after and the change).
//! 2. *Embedding.* Further class-1 and class-5 images (disjoint from the
//!    training sequence by construction: one shuffled pool is cut in two) are
//!    run on the original network and on the learned one, both frozen (STDP
//!    off), and embedded by activation paths exactly as in experiment 1.
//! 3. *Classification.* Cosine kNN and the linear SVM (regularisation chosen
//!    by CV on each split's reference part only) under repeated random splits
//!    of the embedded images; raw pixels under the same splits as the baseline.
//!
//! Labels are re-indexed for the classifiers: 0 = digit 1, 1 = digit 5.
//!
//! # Homeostasis (optional, `[homeostasis]` in the config)
//!
//! STDP with these amplitudes lowers the hidden rate (10.5 -> 0.9 Hz on the
//! full run), and a poorer path follows. With `[homeostasis] kind =
//! "threshold"` the learning phase also adapts each hidden node's threshold
//! (intrinsic plasticity in the spirit of Turrigiano's homeostatic
//! plasticity: a node that fires above its set point becomes less
//! excitable, one below it more), so the rate stays near its pre-STDP level:
//!
//! 1. *Targets.* The training sequence is run once on the original network,
//!    frozen (STDP off). Node j's target r*_j is its rate over it (Hz,
//!    activations / (n_train x duration)): per node, so each node keeps its
//!    own selectivity. rbar = the mean of r*_j over the hidden nodes (must
//!    be > 0).
//! 2. *Rule.* After training image n, with r_j node j's rate over that image
//!    (Hz), every hidden node's threshold becomes
//!    `theta_j <- theta_j * exp(eta * (r_j - r*_j) / rbar)`, eta =
//!    `homeostasis.rate` (dimensionless: the step is relative to rbar). Input
//!    nodes keep theirs. The thresholds are constant within an image and
//!    change only between images, so each image's run is the exact engine's,
//!    unchanged; a multiplicative step keeps theta > 0.
//! 3. The learned network with homeostasis (learned weights and adapted
//!    thresholds) is embedded beside the original and the learned one
//!    without homeostasis (rows `_original`, `_learned`,
//!    `_learned_homeostasis`, one report, the same splits).

use super::{create_out, raw_config, refuse, ExperimentError, ExperimentOptions};
use crate::config::{ExperimentConfig, HomeostasisParams};
use crate::dataset::ImageSet;
use crate::eval::pixels_to_f32;
use crate::network::{Network, Population};
use crate::pipeline::{
    self, dynamics_summary, load_images, score_views, stack_view, sum_totals, DataSpec, Encoder,
    Evaluator, Event, MemoryViews, Observer, Protocol, Scratch, ViewInfo,
};
use crate::record::{RecordSpec, RunTotals};
use crate::report::{plot_histograms, write_report, DatasetInfo, HistPanel, Report, Timing};
use crate::sim::RunParams;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::time::Instant;

/// The two digit classes of the experiment.
pub const CLASSES: [u8; 2] = [1, 5];
/// Training sequence length (full, quick).
pub const TRAIN_IMAGES: (usize, usize) = (1000, 120);
/// Images embedded after learning (full: at most this many; quick).
pub const EMBED_IMAGES: (usize, usize) = (2000, 300);
/// The training rate is reported over this many last images of the
/// sequence (all of them if fewer): where learning has had its effect.
pub const LAST_IMAGES: usize = 100;

/// Runs experiment 2 and writes its report into `opts.out`.
pub fn reproduce_stdp(
    opts: &ExperimentOptions,
    observer: &dyn Observer,
) -> Result<Report, ExperimentError> {
    pipeline::with_threads(opts.threads, || run(opts, observer))
}

/// Shares of plastic edges by how their weight changed from `before` to `after`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct WeightChange {
    pub plastic_edges: usize,
    /// Same sign (or zero before), weight higher.
    pub up: f64,
    /// Same sign (or zero after), weight lower.
    pub down: f64,
    /// Was excitatory (> 0), now inhibitory (< 0).
    pub turned_inhibitory: f64,
    /// Was inhibitory (< 0), now excitatory (> 0).
    pub turned_excitatory: f64,
    /// Bit-for-bit equal.
    pub unchanged: f64,
    pub mean_change: f64,
    pub mean_abs_change: f64,
}

/// Classifies each plastic edge in exactly one of up / down / turned
/// inhibitory / turned excitatory / unchanged (the shares sum to 1).
pub fn weight_change(edges: &[u32], before: &[f32], after: &[f32]) -> WeightChange {
    let mut c = WeightChange {
        plastic_edges: edges.len(),
        ..Default::default()
    };
    if edges.is_empty() {
        return c;
    }
    let (mut s, mut sa) = (0f64, 0f64);
    for &e in edges {
        let (a, b) = (before[e as usize], after[e as usize]);
        let d = b as f64 - a as f64;
        s += d;
        sa += d.abs();
        if a > 0.0 && b < 0.0 {
            c.turned_inhibitory += 1.0;
        } else if a < 0.0 && b > 0.0 {
            c.turned_excitatory += 1.0;
        } else if b > a {
            c.up += 1.0;
        } else if b < a {
            c.down += 1.0;
        } else {
            c.unchanged += 1.0;
        }
    }
    let n = edges.len() as f64;
    for v in [
        &mut c.up,
        &mut c.down,
        &mut c.turned_inhibitory,
        &mut c.turned_excitatory,
        &mut c.unchanged,
    ] {
        *v /= n;
    }
    c.mean_change = s / n;
    c.mean_abs_change = sa / n;
    c
}

/// The training sequence and the images embedded after learning (disjoint:
/// one seeded shuffle of the class-1 and class-5 images, cut in two).
fn pick_images(
    set: &ImageSet,
    cfg: &ExperimentConfig,
    quick: bool,
) -> Result<(Vec<usize>, Vec<usize>), ExperimentError> {
    let mut pool: Vec<usize> = (0..set.len())
        .filter(|&i| CLASSES.contains(&set.labels[i]))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed() ^ 0x5354_4450); // "STDP"
    pool.shuffle(&mut rng);
    let (n_train, n_embed_max) = if quick {
        (TRAIN_IMAGES.1, EMBED_IMAGES.1)
    } else {
        (TRAIN_IMAGES.0, EMBED_IMAGES.0)
    };
    if pool.len() < n_train + 20 {
        return Err(ExperimentError::Unsuitable(format!(
            "experiment 2 needs more than {} images of classes 1 and 5; the data hold {}",
            n_train + 20,
            pool.len()
        )));
    }
    let n_embed = (pool.len() - n_train).min(n_embed_max);
    Ok((
        pool[..n_train].to_vec(),
        pool[n_train..n_train + n_embed].to_vec(),
    ))
}

/// Intrinsic-plasticity homeostasis (see the module doc): per hidden node
/// its target rate, and the rule's step.
#[derive(Clone, Debug, PartialEq)]
pub struct Homeostasis {
    eta: f64,
    /// The hidden (recurrent) nodes, by node index.
    hidden: Vec<usize>,
    /// Per hidden node (same order): its target rate r*_j, Hz.
    target_hz: Vec<f64>,
    /// rbar: the mean of `target_hz` (> 0).
    mean_target_hz: f64,
}

impl Homeostasis {
    /// The rule with step `eta` (finite, > 0) and per-node targets
    /// `target_hz` of the hidden nodes `hidden`. Refused when the targets'
    /// mean is 0: the step is relative to it (and a network whose hidden
    /// nodes never fire has no level to keep).
    pub fn new(
        eta: f64,
        hidden: Vec<usize>,
        target_hz: Vec<f64>,
    ) -> Result<Homeostasis, ExperimentError> {
        if !(eta.is_finite() && eta > 0.0) {
            return Err(ExperimentError::Unsuitable(format!(
                "homeostasis.rate = {eta}: must be a finite number > 0"
            )));
        }
        if hidden.len() != target_hz.len() || hidden.is_empty() {
            return Err(ExperimentError::Unsuitable(format!(
                "homeostasis: {} target rates for {} hidden nodes (need one each, at least one)",
                target_hz.len(),
                hidden.len()
            )));
        }
        let mean_target_hz = target_hz.iter().sum::<f64>() / target_hz.len() as f64;
        if !(mean_target_hz.is_finite() && mean_target_hz > 0.0) {
            return Err(ExperimentError::Unsuitable(format!(
                "homeostasis: the hidden nodes' mean rate on the training sequence before \
                 learning is {mean_target_hz} Hz; the rule keeps each node near its own \
                 pre-learning rate with steps relative to that mean, so it needs a network \
                 whose hidden nodes fire (lower the thresholds or raise the weights)"
            )));
        }
        Ok(Homeostasis {
            eta,
            hidden,
            target_hz,
            mean_target_hz,
        })
    }

    /// The targets of a frozen run of the training sequence: per hidden node
    /// of `net`, its activation count over `counts` (per node, summed over
    /// `images` images of `duration_ms`) as a rate.
    pub fn from_counts(
        eta: f64,
        net: &Network,
        counts: &[u64],
        images: usize,
        duration_ms: f64,
    ) -> Result<Homeostasis, ExperimentError> {
        let hidden: Vec<usize> = (0..net.n_nodes())
            .filter(|&j| net.population()[j] == Population::Recurrent)
            .collect();
        let per_s = 1000.0 / (images.max(1) as f64 * duration_ms);
        let target_hz = hidden.iter().map(|&j| counts[j] as f64 * per_s).collect();
        Homeostasis::new(eta, hidden, target_hz)
    }

    pub fn eta(&self) -> f64 {
        self.eta
    }
    pub fn hidden(&self) -> &[usize] {
        &self.hidden
    }
    pub fn target_hz(&self) -> &[f64] {
        &self.target_hz
    }
    pub fn mean_target_hz(&self) -> f64 {
        self.mean_target_hz
    }

    /// One step of the rule after an image of `duration_ms` in which node j
    /// activated `counts[j]` times: theta_j <- theta_j * exp(eta * (r_j -
    /// r*_j) / rbar) for every hidden node; the others are left as they are.
    pub fn step(&self, theta: &mut [f64], counts: &[u32], duration_ms: f64) {
        let per_s = 1000.0 / duration_ms;
        for (&j, &target) in self.hidden.iter().zip(&self.target_hz) {
            let rate = f64::from(counts[j]) * per_s;
            theta[j] *= (self.eta * (rate - target) / self.mean_target_hz).exp();
        }
    }
}

/// Per node, its activations over the training sequence on the network of
/// `encoder` as it is (frozen: the encoder must run without STDP), and the
/// runs' totals. Images run in parallel; the sums are of integers, so the
/// result does not depend on the thread count.
pub fn frozen_counts(
    encoder: &Encoder,
    set: &ImageSet,
    train: &[usize],
    observer: &dyn Observer,
) -> Result<(Vec<u64>, RunTotals), ExperimentError> {
    if encoder.simulator().params().stdp().is_some() {
        return Err(ExperimentError::Unsuitable(
            "the target rates are measured on the original network, frozen: run it with STDP off"
                .into(),
        ));
    }
    let n = encoder.network().n_nodes();
    let spec = RecordSpec {
        node_counts: true,
        ..Default::default()
    };
    observer.observe(Event::Started {
        task: "target rates (original network, frozen)".into(),
        total: train.len(),
    });
    let per_image = train
        .par_iter()
        .enumerate()
        .map_init(Scratch::default, |scratch, (row, &i)| {
            let rec = encoder.simulate(scratch, set.image(i), row, &spec)?;
            observer.observe(Event::Advanced { n: 1 });
            Ok((rec.activation_counts, rec.totals))
        })
        .collect::<Result<Vec<_>, ExperimentError>>()?;
    observer.observe(Event::Finished);
    let mut counts = vec![0u64; n];
    let mut totals = RunTotals::default();
    for (c, t) in per_image {
        for (sum, &k) in counts.iter_mut().zip(&c) {
            *sum += u64::from(k);
        }
        totals += t;
    }
    Ok((counts, totals))
}

/// What a learning sequence ends with.
#[derive(Clone, Debug, PartialEq)]
pub struct Learned {
    /// The weights after the last image.
    pub weights: Vec<f32>,
    /// Per node, the thresholds after the last image (the network's own
    /// without homeostasis).
    pub thresholds: Vec<f64>,
    /// Totals of the whole sequence, and of its last [`LAST_IMAGES`] images.
    pub totals: RunTotals,
    pub last_totals: RunTotals,
    pub last_images: usize,
}

/// Presents the training images in sequence with STDP on, the weights
/// carried over from image to image; with `homeostasis`, the hidden nodes'
/// thresholds are adapted after each image ([`Homeostasis::step`]) and carried
/// over too. Image `i` of the sequence is row `i` of the training run (its
/// stimulus seed). One image after another, on the calling thread: the
/// result does not depend on the thread count.
pub fn learn(
    encoder: &mut Encoder,
    set: &ImageSet,
    train: &[usize],
    homeostasis: Option<&Homeostasis>,
    observer: &dyn Observer,
) -> Result<Learned, ExperimentError> {
    let mut w = encoder.initial_weights().to_vec();
    let mut theta = encoder.simulator().thresholds().to_vec();
    let duration = encoder.simulator().params().duration_ms();
    let mut scratch = Scratch::default();
    let (mut totals, mut last_totals) = (RunTotals::default(), RunTotals::default());
    let last_images = LAST_IMAGES.min(train.len());
    let first_last = train.len() - last_images;
    // Per-node counts only where the rule reads them (recording does not
    // change a run).
    let spec = RecordSpec {
        node_counts: homeostasis.is_some(),
        ..Default::default()
    };
    observer.observe(Event::Started {
        task: if homeostasis.is_some() {
            "learning (STDP on, homeostasis on)".into()
        } else {
            "learning (STDP on)".into()
        },
        total: train.len(),
    });
    for (row, &i) in train.iter().enumerate() {
        let stim = encoder.stimulus(set.image(i), row);
        let rec = encoder
            .simulator()
            .run(scratch.workspace(), &mut w, &stim, &spec)?;
        totals += rec.totals;
        if row >= first_last {
            last_totals += rec.totals;
        }
        if let Some(h) = homeostasis {
            // Between images: the next run starts with the new thresholds.
            h.step(&mut theta, &rec.activation_counts, duration);
            encoder.set_thresholds(&theta)?;
        }
        observer.observe(Event::Advanced { n: 1 });
    }
    observer.observe(Event::Finished);
    Ok(Learned {
        weights: w,
        thresholds: theta,
        totals,
        last_totals,
        last_images,
    })
}

/// Figure 2: the plastic weights before, after, and their change.
fn weight_figure(
    opts: &ExperimentOptions,
    plastic: &[u32],
    w0: &[f32],
    w: &[f32],
    change: &WeightChange,
    n_train: usize,
) -> Result<&'static str, ExperimentError> {
    let before: Vec<f32> = plastic.iter().map(|&e| w0[e as usize]).collect();
    let after: Vec<f32> = plastic.iter().map(|&e| w[e as usize]).collect();
    let delta: Vec<f32> = before.iter().zip(&after).map(|(a, b)| b - a).collect();
    let fig2 = "fig2_stdp_weights.png";
    let panel = |title: String, values| HistPanel {
        title,
        values,
        bins: 60,
    };
    plot_histograms(
        &opts.out.join(fig2),
        &[
            panel("plastic weights before".into(), before),
            panel(format!("after {n_train} images (STDP)"), after),
            panel("change (after - before)".into(), delta),
        ],
        &format!(
            "Figure 2: {} plastic edges; up {:.1}%, down {:.1}%, turned inhibitory {:.1}%, unchanged {:.1}%",
            plastic.len(),
            100.0 * change.up,
            100.0 * change.down,
            100.0 * change.turned_inhibitory,
            100.0 * change.unchanged
        ),
    )?;
    Ok(fig2)
}

/// The embedded images run on the network with the given weights and
/// thresholds, frozen: every view as a matrix.
fn embed_frozen(
    net: &Network,
    cfg: &ExperimentConfig,
    (weights, thresholds): (Vec<f32>, Vec<f64>),
    set: &ImageSet,
    idx: &[usize],
    what: &str,
    observer: &dyn Observer,
) -> Result<(MemoryViews, RunTotals), ExperimentError> {
    let frozen = RunParams::new(cfg.run().duration_ms(), None)?;
    let encoder = Encoder::with_run(net, cfg, &frozen)?
        .with_initial_weights(weights)?
        .with_thresholds(&thresholds)?;
    observer.observe(Event::Started {
        task: format!("embedding ({what})"),
        total: idx.len(),
    });
    let image = |row: usize| set.image(idx[row]);
    let rows = encoder.encode_rows(0..idx.len(), &image, observer)?;
    observer.observe(Event::Finished);
    let mut views = MemoryViews {
        views: Vec::new(),
        matrices: Vec::new(),
    };
    for (vi, v) in encoder.views().iter().enumerate() {
        views.matrices.push(stack_view(&rows, vi, v.dim)?);
        views.views.push(ViewInfo {
            name: v.name.clone(),
            dim: v.dim,
            time_ms: v.time_ms,
            file: String::new(),
        });
    }
    Ok((views, sum_totals(&rows)))
}

/// The learning run with homeostasis and what it was measured against.
struct HomeoRun {
    rule: Homeostasis,
    /// Totals of the frozen run that gave the targets.
    target_totals: RunTotals,
    learned: Learned,
    change: WeightChange,
}

/// Targets from a frozen run of the training sequence on the original
/// network, then the sequence again with STDP and the rule, from the
/// original weights and thresholds.
fn learn_with_homeostasis(
    net: &Network,
    cfg: &ExperimentConfig,
    p: &HomeostasisParams,
    set: &ImageSet,
    train: &[usize],
    observer: &dyn Observer,
) -> Result<HomeoRun, ExperimentError> {
    let duration = cfg.run().duration_ms();
    let frozen = Encoder::with_run(net, cfg, &RunParams::new(duration, None)?)?;
    let (counts, target_totals) = frozen_counts(&frozen, set, train, observer)?;
    let rule = Homeostasis::from_counts(p.rate(), net, &counts, train.len(), duration)?;
    let mut learner = Encoder::new(net, cfg)?;
    let learned = learn(&mut learner, set, train, Some(&rule), observer)?;
    let change = weight_change(&net.plastic_edges(), &net.edge_weight, &learned.weights);
    Ok(HomeoRun {
        rule,
        target_totals,
        learned,
        change,
    })
}

fn run(opts: &ExperimentOptions, observer: &dyn Observer) -> Result<Report, ExperimentError> {
    let t_start = Instant::now();
    refuse(opts, "2 (stdp)")?;
    let (raw, path) = raw_config(opts, "stdp")?;
    let cfg = raw.check(&path)?.with_all_paths_methods();
    if cfg.run().stdp().is_none() || cfg.plastic_edges().is_empty() {
        return Err(ExperimentError::Unsuitable(
            "experiment 2 (stdp) needs plasticity: set stdp.enabled = true and stdp.plastic_edges"
                .into(),
        ));
    }
    let (set, _) = load_images(&DataSpec {
        limit: None,
        ..opts.data.clone()
    })?;
    let (train_idx, embed_idx) = pick_images(&set, &cfg, opts.quick)?;
    let (n_train, n_embed) = (train_idx.len(), embed_idx.len());
    let labels: Vec<u8> = embed_idx
        .iter()
        .map(|&i| u8::from(set.labels[i] == CLASSES[1]))
        .collect();
    create_out(&opts.out)?;
    let net = cfg.build_network()?;
    let mut learner = Encoder::new(&net, &cfg)?;
    learner.check_images(&set, "images")?;
    let duration = cfg.run().duration_ms();
    let plastic = net.plastic_edges();
    observer.observe(Event::Info(format!(
        "experiment 2 (stdp): {n_train} training images in sequence, then {n_embed} embedded {} times; {} edges ({} plastic), {duration} ms per image{}",
        if cfg.homeostasis().is_some() { 3 } else { 2 },
        net.n_edges(),
        plastic.len(),
        if cfg.homeostasis().is_some() { "; homeostasis on (a second learning run)" } else { "" }
    )));

    // 1. Learning: one sequence, weights carried over.
    let t_train = Instant::now();
    let learned = learn(&mut learner, &set, &train_idx, None, observer)?;
    // With homeostasis: the targets from a frozen run of the same sequence
    // on the original network, then the same sequence again, learning with
    // the rule, from the same start.
    let homeo = match cfg.homeostasis() {
        Some(p) => Some(learn_with_homeostasis(
            &net, &cfg, p, &set, &train_idx, observer,
        )?),
        None => None,
    };
    let train_s = t_train.elapsed().as_secs_f64();
    let w0 = net.edge_weight.clone();
    let change = weight_change(&plastic, &w0, &learned.weights);
    let fig2 = weight_figure(opts, &plastic, &w0, &learned.weights, &change, n_train)?;

    // 2. Embedding with the original and the learned weights (and
    // thresholds, with homeostasis), all frozen.
    let t_enc = Instant::now();
    let mut nets: Vec<(&'static str, Vec<f32>, Vec<f64>)> = vec![
        ("original", w0, net.threshold.clone()),
        (
            "learned",
            learned.weights.clone(),
            learned.thresholds.clone(),
        ),
    ];
    if let Some(h) = &homeo {
        nets.push((
            "learned_homeostasis",
            h.learned.weights.clone(),
            h.learned.thresholds.clone(),
        ));
    }
    let mut embedded = Vec::new();
    for (name, weights, thresholds) in nets {
        let (views, totals) = embed_frozen(
            &net,
            &cfg,
            (weights, thresholds),
            &set,
            &embed_idx,
            name,
            observer,
        )?;
        embedded.push((name, views, totals));
    }
    let encode_s = t_enc.elapsed().as_secs_f64();

    // 3. Classification: every view of both networks and the baselines on
    // the same splits. Linear readouts on every view, however wide: the
    // source's SVM comparison is on these.
    let t_eval = Instant::now();
    let mut ev = Evaluator::new(
        cfg.evaluation(),
        &labels,
        Protocol::RandomSplit,
        cfg.embedding().normalize(),
        observer,
    )?;
    let n_rec = Some(net.n_recurrent());
    let mut report = Report::new(cfg.experiment());
    for (name, views, _) in &embedded {
        let scored = score_views(&mut ev, views, &format!("_{name}"), n_rec, false)?;
        report.results.extend(scored.rows);
    }
    let mut pixels = Vec::with_capacity(n_embed * set.pixels_per_image());
    for &i in &embed_idx {
        pixels.extend_from_slice(set.image(i));
    }
    let px = pixels_to_f32(&pixels, n_embed, set.pixels_per_image());
    let dims: Vec<usize> = embedded[0].1.views.iter().map(|v| v.dim).collect();
    let controls = crate::pipeline::Controls::default();
    report.baselines = ev.baselines(&px, &dims, n_rec, controls, cfg.seed())?;
    let evaluate_s = t_eval.elapsed().as_secs_f64();

    let facts = RunFacts {
        cfg: &cfg,
        net: &net,
        set: &set,
        labels: &labels,
        n_train,
        train_s,
        learned: &learned,
        homeo: homeo.as_ref(),
        encode_s,
        evaluate_s,
        change: &change,
        embedded: embedded.iter().map(|(n, _, t)| (*n, *t)).collect(),
        quick: opts.quick,
    };
    report.protocol = ev.protocol().clone();
    report.notes = ev.into_notes();
    facts.fill(&mut report);
    report.figures = vec![fig2.into()];
    report
        .extra
        .insert("wall_s".into(), t_start.elapsed().as_secs_f64().into());
    write_report(&opts.out, &report)?;
    Ok(report)
}

/// What a run of experiment 2 measured, for its report.
struct RunFacts<'a> {
    cfg: &'a ExperimentConfig,
    net: &'a Network,
    set: &'a ImageSet,
    labels: &'a [u8],
    n_train: usize,
    train_s: f64,
    learned: &'a Learned,
    homeo: Option<&'a HomeoRun>,
    encode_s: f64,
    evaluate_s: f64,
    change: &'a WeightChange,
    /// Run totals of the embedding runs, by network.
    embedded: Vec<(&'static str, RunTotals)>,
    quick: bool,
}

impl RunFacts<'_> {
    /// The rule, its targets and what it did to the thresholds.
    fn homeostasis_summary(&self, h: &HomeoRun) -> serde_json::Value {
        let ratios: Vec<f64> = h
            .rule
            .hidden()
            .iter()
            .map(|&j| h.learned.thresholds[j] / self.net.threshold[j])
            .collect();
        let n = ratios.len().max(1) as f64;
        let fold = |f: fn(f64, f64) -> f64, init| ratios.iter().copied().fold(init, f);
        let targets = h.rule.target_hz();
        serde_json::json!({
            "kind": "threshold",
            "rule": "theta_j <- theta_j * exp(eta * (r_j - r*_j) / rbar) after each training image, hidden nodes only",
            "eta": h.rule.eta(),
            "hidden_nodes": targets.len(),
            "mean_target_hz": h.rule.mean_target_hz(),
            "silent_hidden_nodes_before_learning": targets.iter().filter(|&&r| r == 0.0).count(),
            // A node whose drive STDP removed stays below its target at any
            // threshold, and the rule lowers its threshold every image:
            // these are the nodes the rule could not bring back.
            "hidden_nodes_threshold_below_0.001_of_start": ratios.iter().filter(|&&r| r < 1e-3).count(),
            "threshold_ratio_after_learning": {
                "mean": ratios.iter().sum::<f64>() / n,
                "min": fold(f64::min, f64::INFINITY),
                "max": fold(f64::max, 0.0),
            },
        })
    }

    fn fill(&self, report: &mut Report) {
        let n_embed = self.labels.len();
        let duration = self.cfg.run().duration_ms();
        report.config_hash = self.cfg.hash().to_string();
        report.seed = self.cfg.seed();
        report.dataset = DatasetInfo {
            images: self.set.images_path.display().to_string(),
            labels: self.set.labels_path.display().to_string(),
            n: n_embed,
            class_counts: {
                let mut c = vec![0; 2];
                self.labels.iter().for_each(|&l| c[l as usize] += 1);
                c
            },
            ..Default::default()
        };
        let enc_totals: RunTotals = self.embedded.iter().map(|e| e.1).sum();
        // Every run of the training sequence: the learning run, and with
        // homeostasis the frozen target run and the second learning run.
        let mut train_totals = self.learned.totals;
        let mut train_runs = 1;
        if let Some(h) = self.homeo {
            train_totals += h.target_totals;
            train_totals += h.learned.totals;
            train_runs += 2;
        }
        report.timing = Timing {
            encode_s: self.train_s + self.encode_s,
            evaluate_s: self.evaluate_s,
            arrivals_per_s: Some(
                (train_totals.arrivals + enc_totals.arrivals) as f64
                    / (self.train_s + self.encode_s).max(1e-9),
            ),
            total_arrivals: Some(train_totals.arrivals + enc_totals.arrivals),
            images_encoded: train_runs * self.n_train + self.embedded.len() * n_embed,
        };
        report.network = Some(crate::report::network_summary(self.net));
        let x = &mut report.extra;
        x.insert("quick".into(), self.quick.into());
        x.insert(
            "classes".into(),
            serde_json::json!({"0": CLASSES[0], "1": CLASSES[1]}),
        );
        x.insert("n_train".into(), self.n_train.into());
        x.insert("n_embedded".into(), n_embed.into());
        x.insert(
            "primary_method".into(),
            self.cfg.embedding().paths().method().name().into(),
        );
        x.insert("duration_ms".into(), duration.into());
        x.insert(
            "weight_change".into(),
            serde_json::to_value(self.change).unwrap_or_default(),
        );
        x.insert("train_s".into(), self.train_s.into());
        let n_r = self.net.n_recurrent();
        x.insert(
            "training_dynamics".into(),
            dynamics_summary(&self.learned.totals, self.n_train, n_r, duration),
        );
        for (name, t) in &self.embedded {
            x.insert(
                format!("dynamics_{name}"),
                dynamics_summary(t, n_embed, n_r, duration),
            );
        }
        // The hidden layer's network-driven rate (Hz per hidden node) at
        // each stage, side by side: what homeostasis is meant to hold.
        let rate = |t: &RunTotals, images: usize| {
            dynamics_summary(t, images, n_r, duration)["network_driven_rate_hz_per_recurrent_node"]
                .clone()
        };
        let mut rates = serde_json::Map::new();
        let last = format!("last_{}_training_images", self.learned.last_images);
        rates.insert(
            format!("{last}_stdp"),
            rate(&self.learned.last_totals, self.learned.last_images),
        );
        if let Some(h) = self.homeo {
            rates.insert(
                "before_learning".into(),
                rate(&h.target_totals, self.n_train),
            );
            rates.insert(
                format!("{last}_stdp_homeostasis"),
                rate(&h.learned.last_totals, h.learned.last_images),
            );
        }
        for (name, t) in &self.embedded {
            rates.insert(format!("embedding_{name}"), rate(t, n_embed));
        }
        x.insert("hidden_rate_hz".into(), rates.into());
        if let Some(h) = self.homeo {
            x.insert("homeostasis".into(), self.homeostasis_summary(h));
            x.insert(
                "training_dynamics_homeostasis".into(),
                dynamics_summary(&h.learned.totals, self.n_train, n_r, duration),
            );
            x.insert(
                "weight_change_homeostasis".into(),
                serde_json::to_value(&h.change).unwrap_or_default(),
            );
        }
        x.insert(
        "source_reported".into(),
        serde_json::json!({
            "edges_up": 0.29, "edges_down": 0.40, "edges_turned_inhibitory": 0.20, "edges_unchanged": 0.11,
            "knn_without_stdp": 0.61, "knn_with_stdp": 0.82, "svm_without_stdp": 0.911, "svm_with_stdp": 0.976
        }),
    );
        report.notes.extend([
        "Source (experiment 2): edges 29% up, 40% down, 20% turned inhibitory, 11% unchanged; kNN 61% -> 82% and SVM 91.1% -> 97.6% without -> with STDP.".to_string(),
        "Class index 0 = digit 1, 1 = digit 5. Embedded images are disjoint from the training sequence (one shuffled pool cut in two).".into(),
        "`_original` rows: the network before learning; `_learned`: after learning; both frozen (STDP off) while embedding.".into(),
        "Weight-change shares are exclusive: a sign change is counted as such, not also as up/down.".into(),
    ]);
        if self.homeo.is_some() {
            report.notes.push(
                "`_learned_homeostasis` rows: learned with STDP and intrinsic-plasticity homeostasis (per hidden node, theta_j <- theta_j * exp(eta * (r_j - r*_j) / rbar) after each training image; r*_j its rate on the training sequence before learning, frozen), embedded frozen with the learned weights and adapted thresholds; `_learned` rows: the same sequence without homeostasis.".into(),
            );
        }
    }
}
