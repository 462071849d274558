//! Experiment 3 of the source (the headline): weight-state trajectories.
//! Each digit drives the layered network of `configs/weights.toml` with STDP
//! on; the changes of the recurrent weights at each snapshot time are its
//! embedding, scored with the distance-weighted Euclidean kNN beside the
//! baselines. With `sweep`, the same for every N of [`SWEEP_N`], plus
//! figure 3 (accuracy against time, by N).

use super::{raw_config, ExperimentError, ExperimentOptions};
use crate::network::NetworkControl;
use crate::pipeline::{
    self, encode, evaluate, load_images, Baseline, Controls, DataSpec, EncodeData, EvaluateOptions,
    Observer,
};
use crate::report::{self, Report, Series};

/// Sizes of the experiment-3 sweep.
pub const SWEEP_N: [usize; 8] = [5, 10, 25, 50, 100, 200, 300, 400];
/// Images and recurrent size of the quick version.
pub const QUICK_IMAGES: usize = 500;
pub const QUICK_N: usize = 50;
/// Splits that the linear readouts of the full run use (of the config's 10):
/// the time budget of docs/experiments/weights.md ("Time"). The kNN uses all.
pub const LINEAR_SPLITS: usize = 3;

/// Runs experiment 3 (or its sweep) and writes the report into `opts.out`.
pub fn reproduce_weights(
    opts: &ExperimentOptions,
    observer: &dyn Observer,
) -> Result<Report, ExperimentError> {
    pipeline::with_threads(opts.threads, || run(opts, observer))
}

fn run(opts: &ExperimentOptions, observer: &dyn Observer) -> Result<Report, ExperimentError> {
    let (raw, path) = raw_config(opts, "weights")?;
    let data = DataSpec {
        limit: opts.data.limit.or(opts.quick.then_some(QUICK_IMAGES)),
        ..opts.data.clone()
    };
    let (set, rows) = load_images(&data)?;
    let query = match &opts.query {
        Some((i, l)) => Some(pipeline::load_query(i, l, &set)?),
        None => None,
    };
    let encode_data = EncodeData {
        reference: &set,
        reference_rows: rows.as_deref(),
        query: query.as_ref(),
    };
    let sizes: Vec<Option<usize>> = if opts.sweep {
        SWEEP_N.iter().map(|&n| Some(n)).collect()
    } else if opts.quick {
        vec![Some(QUICK_N)]
    } else {
        vec![None]
    };
    let mut combined: Option<Report> = None;
    let mut series = Vec::new();
    for n_rec in sizes {
        let mut raw = raw.clone();
        if let Some(n) = n_rec {
            raw.network.n_recurrent = n;
        }
        let cfg = raw.check(&path)?;
        cfg.refuse_homeostasis(&path, "experiment 3 (weights)")?;
        let dir = if opts.sweep {
            opts.out.join(format!("n{}", cfg.n_recurrent()))
        } else {
            opts.out.clone()
        };
        if let Some(note) = pipeline::check_feasible_for(&cfg, &encode_data)? {
            observer.observe(pipeline::Event::Info(format!("note: {note}")));
        }
        encode(
            &cfg,
            &encode_data,
            &super::encode_options(opts, &dir),
            observer,
        )?;
        let mut eval_opts = EvaluateOptions::new(&dir);
        // Beside every view: raw pixels, random ReLU features of the pixels at
        // the view's dimension, and the rate-product control.
        eval_opts.controls = Controls::nonlinear();
        eval_opts.linear_splits = opts
            .linear_splits
            .or((!opts.quick).then_some(LINEAR_SPLITS));
        let mut rep = evaluate(&dir, &eval_opts, observer)?;
        let series_rows = rep.results.clone();
        network_controls(
            opts,
            &cfg,
            &encode_data,
            &dir,
            &eval_opts,
            &mut rep,
            observer,
        )?;
        series.push(Series {
            label: format!("N = {}", cfg.n_recurrent()),
            points: series_rows
                .iter()
                .filter(|r| r.classifier == crate::eval::Classifier::Knn)
                .filter_map(|r| r.time_ms.map(|t| (t, r.accuracy_mean, r.accuracy_sd)))
                .collect(),
        });
        combined = Some(match combined {
            None => rep,
            Some(mut c) => {
                c.results.extend(rep.results);
                c.timing.encode_s += rep.timing.encode_s;
                c.timing.evaluate_s += rep.timing.evaluate_s;
                c
            }
        });
    }
    let Some(mut rep) = combined else {
        return Err(ExperimentError::Unsuitable("no network size to run".into()));
    };
    if opts.sweep {
        sweep_figure(&mut rep, &series, opts)?;
    }
    Ok(rep)
}

/// The geometry controls that `opts` asks for (issue 13 part 2), each
/// encoded from the same rows into `dir/<control>/` and evaluated on the same
/// splits with the same readouts (same config, seed and rows); their rows join
/// `rep` as `<view>_<control>` and the report in `dir` is written again. No
/// baselines are scored for them: they are the ones `rep` already has.
fn network_controls(
    opts: &ExperimentOptions,
    cfg: &crate::config::ExperimentConfig,
    data: &EncodeData,
    dir: &std::path::Path,
    eval_opts: &EvaluateOptions,
    rep: &mut Report,
    observer: &dyn Observer,
) -> Result<(), ExperimentError> {
    let mut controls = Vec::new();
    if opts.shuffled_latencies {
        controls.push(NetworkControl::shuffled_for(cfg.seed()));
    }
    if opts.mean_latencies {
        controls.push(NetworkControl::MeanLatencies);
    }
    if controls.is_empty() {
        return Ok(());
    }
    for control in controls {
        let name = control.name();
        let cdir = dir.join(name);
        let mut enc = super::encode_options(opts, &cdir);
        enc.network_control = Some(control);
        encode(cfg, data, &enc, observer)?;
        let mut eo = eval_opts.clone();
        eo.out = cdir.clone();
        eo.figures = false;
        eo.controls = Controls {
            random_projection: false,
            random_features: false,
            rate_product: false,
        };
        let crep = evaluate(&cdir, &eo, observer)?;
        rep.results.extend(crep.results.into_iter().map(|mut r| {
            r.embedding = format!("{}_{name}", r.embedding);
            r
        }));
        rep.timing.encode_s += crep.timing.encode_s;
        rep.timing.evaluate_s += crep.timing.evaluate_s;
        rep.notes.push(format!(
            "Rows `<view>_{name}`: the same network with {}; encoded in {name}/ from the same rows, scored on the same splits with the same readouts.",
            match control {
                NetworkControl::ShuffledLatencies { .. } =>
                    "its latencies permuted among the edges of each edge class (seeded)",
                NetworkControl::MeanLatencies => "every latency at its edge class's mean",
            }
        ));
    }
    report::write_report(dir, rep)?;
    Ok(())
}

/// Figure 3 and the combined report of a sweep.
fn sweep_figure(
    rep: &mut Report,
    series: &[Series],
    opts: &ExperimentOptions,
) -> Result<(), ExperimentError> {
    let raw_pixels = Baseline::RawPixels.name();
    let base: Vec<(String, f64)> = rep
        .baselines
        .iter()
        .filter(|r| r.classifier == crate::eval::Classifier::Knn && r.embedding == raw_pixels)
        .map(|r| ("raw pixels (knn)".to_string(), r.accuracy_mean))
        .collect();
    report::plot_accuracy_vs_time(
        &opts.out.join("figure3_accuracy_vs_time.png"),
        series,
        &base,
        "Experiment 3: kNN accuracy of weight changes against time, by N",
    )?;
    rep.figures = vec!["figure3_accuracy_vs_time.png".to_string()];
    rep.notes
        .push("Sweep: per-N reports (with their own baselines and figures) are in n<N>/.".into());
    rep.network = None;
    report::write_report(&opts.out, rep)?;
    Ok(())
}
