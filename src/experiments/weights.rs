//! Experiment 3 of the source (the headline): weight-state trajectories.
//! Each digit drives the layered network of `configs/weights.toml` with STDP
//! on; the changes of the recurrent weights at each snapshot time are its
//! embedding, scored with the distance-weighted Euclidean kNN beside the
//! baselines. With `sweep`, the same for every N of [`SWEEP_N`], plus
//! figure 3 (accuracy against time, by N).

use super::{raw_config, ExperimentError, ExperimentOptions};
use crate::config::{LinearName, RawDistribution};
use crate::network::EdgeClass;
use crate::network::NetworkControl;
use crate::pipeline::{
    self, encode, evaluate, load_images, Baseline, Controls, DataSpec, EncodeData, EvaluateOptions,
    Observer,
};
use crate::report::{self, Report, Series};
use crate::stimulus::TrainKind;

/// Sizes of the experiment-3 sweep.
pub const SWEEP_N: [usize; 8] = [5, 10, 25, 50, 100, 200, 300, 400];
/// Images and recurrent size of the quick version.
pub const QUICK_IMAGES: usize = 500;
pub const QUICK_N: usize = 50;
/// Splits that the linear readouts of the full run use (of the config's 10):
/// the time budget of docs/experiments/weights.md ("Time"). The kNN uses all.
pub const LINEAR_SPLITS: usize = 3;

/// Conduction velocities (um/ms) of the timing-code sweep: with R = 5 ms
/// and the shipped geometry they put the median recurrent refraction ratio
/// from about 0.1 to 10 (Silva 2019 predicts signalling is best near 1).
pub const VELOCITY_SWEEP: [f64; 6] = [10.0, 20.0, 50.0, 100.0, 200.0, 1000.0];
/// The latency code's window when the config sets none: twice the shipped
/// summation time constant (10 ms), fixed before any run, not tuned.
pub const LATENCY_WINDOW_MS: f64 = 20.0;

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
    if opts.velocity_sweep {
        if opts.sweep || opts.shuffled_latencies || opts.mean_latencies {
            return Err(ExperimentError::Unsuitable(
                "--velocity-sweep runs alone: not with --sweep or the geometry controls".into(),
            ));
        }
        let mut raw = raw.clone();
        if opts.quick {
            raw.network.n_recurrent = QUICK_N;
        }
        return velocity_sweep(opts, &raw, &path, &encode_data, observer);
    }
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
        eo.controls = Controls::none();
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

/// One point of the velocity sweep: the code, the velocity, the median
/// refraction ratios of the two edge classes that reach recurrent nodes,
/// the run's dynamics and the final weight-change view's accuracies.
#[derive(Clone, Debug, serde::Serialize)]
struct SweepPoint {
    train: &'static str,
    velocity_um_per_ms: f64,
    median_refraction_ratio_recurrent: f64,
    median_refraction_ratio_input: f64,
    mean_recurrent_rate_hz: f64,
    lost_arrival_share: f64,
    /// (classifier, mean, sd) of the last weight snapshot's view.
    weights: Vec<(String, f64, f64)>,
    /// The same of the activity view.
    activity: Vec<(String, f64, f64)>,
}

fn train_name(t: TrainKind) -> &'static str {
    match t {
        TrainKind::Regular => "rate",
        TrainKind::Poisson => "rate_poisson",
        TrainKind::Latency => "latency",
        TrainKind::Volley => "volley",
    }
}

/// Experiment 3 under three stimulus codes (the config's rate code, the
/// latency code and the volley) at every velocity of [`VELOCITY_SWEEP`]
/// (issue 13 part 3): each point is encoded into `out/<code>_v<velocity>/`
/// with only the final weight snapshot (the view the experiment reports
/// first) and scored with the kNN and ridge on the same splits; the
/// no-dynamics baselines are scored once (they do not depend on the
/// network). Figures: accuracy against the median recurrent refraction
/// ratio, one line per code, beside raw pixels, for each readout.
fn velocity_sweep(
    opts: &ExperimentOptions,
    raw: &crate::config::RawConfig,
    path: &std::path::Path,
    data: &EncodeData,
    observer: &dyn Observer,
) -> Result<Report, ExperimentError> {
    let rate = match raw.stimulus.train {
        t @ (TrainKind::Regular | TrainKind::Poisson) => t,
        _ => TrainKind::Regular,
    };
    let mut combined: Option<Report> = None;
    let mut points = Vec::new();
    for train in [rate, TrainKind::Latency, TrainKind::Volley] {
        for v in VELOCITY_SWEEP {
            let mut raw = raw.clone();
            raw.network.velocity_um_per_ms = RawDistribution::Constant(v);
            raw.stimulus.train = train;
            if train == TrainKind::Latency && raw.stimulus.latency_window_ms.is_none() {
                raw.stimulus.latency_window_ms = Some(LATENCY_WINDOW_MS);
            }
            raw.embedding.snapshot_times_ms = vec![raw.simulation.duration_ms];
            raw.evaluation.linear = vec![LinearName::Ridge];
            let cfg = raw.check(path)?;
            let label = format!("{}_v{v}", train_name(train));
            observer.observe(pipeline::Event::Info(format!(
                "velocity sweep: {} code, {v} um/ms ({} of {})",
                train_name(train),
                points.len() + 1,
                3 * VELOCITY_SWEEP.len()
            )));
            let dir = opts.out.join(&label);
            encode(&cfg, data, &super::encode_options(opts, &dir), observer)?;
            let mut eo = EvaluateOptions::new(&dir);
            eo.figures = false;
            eo.linear_splits = opts
                .linear_splits
                .or((!opts.quick).then_some(LINEAR_SPLITS));
            eo.controls = if combined.is_none() {
                Controls::nonlinear()
            } else {
                Controls::none()
            };
            let rep = evaluate(&dir, &eo, observer)?;
            // The geometry table once per point (it walks every edge).
            let table = report::EdgeClassStats::table(&cfg.build_network()?);
            let median = |class| {
                table
                    .iter()
                    .find(|r| r.class == class)
                    .map_or(f64::NAN, |r| r.refraction_ratio_quantiles[2])
            };
            let acc = |prefix: &str| -> Vec<(String, f64, f64)> {
                rep.results
                    .iter()
                    .filter(|r| r.embedding.starts_with(prefix))
                    .map(|r| {
                        (
                            r.classifier.name().to_string(),
                            r.accuracy_mean,
                            r.accuracy_sd,
                        )
                    })
                    .collect()
            };
            let extra = |k: &str| {
                rep.extra
                    .get(k)
                    .and_then(|x| x.as_f64())
                    .unwrap_or(f64::NAN)
            };
            points.push(SweepPoint {
                train: train_name(train),
                velocity_um_per_ms: v,
                median_refraction_ratio_recurrent: median(EdgeClass::RecurrentToRecurrent),
                median_refraction_ratio_input: median(EdgeClass::InputToRecurrent),
                mean_recurrent_rate_hz: extra("mean_recurrent_rate_hz"),
                lost_arrival_share: extra("lost_arrival_share"),
                weights: acc("weights_t"),
                activity: acc("activity"),
            });
            let mut rows = rep.results.clone();
            for r in rows.iter_mut() {
                r.embedding = format!("{}_{label}", r.embedding);
            }
            combined = Some(match combined {
                None => Report {
                    results: rows,
                    ..rep
                },
                Some(mut c) => {
                    c.results.extend(rows);
                    c.timing.encode_s += rep.timing.encode_s;
                    c.timing.evaluate_s += rep.timing.evaluate_s;
                    c
                }
            });
        }
    }
    let Some(mut rep) = combined else {
        return Err(ExperimentError::Unsuitable("no sweep point ran".into()));
    };
    sweep_summary(&mut rep, &points, opts)?;
    Ok(rep)
}

/// The velocity sweep's figures, table (as notes) and `extra.velocity_sweep`.
fn sweep_summary(
    rep: &mut Report,
    points: &[SweepPoint],
    opts: &ExperimentOptions,
) -> Result<(), ExperimentError> {
    rep.figures.clear();
    for classifier in ["knn", "ridge"] {
        let series: Vec<Series> = ["rate", "rate_poisson", "latency", "volley"]
            .iter()
            .map(|&code| Series {
                label: format!("{code} code, Δw at the end ({classifier})"),
                points: points
                    .iter()
                    .filter(|p| p.train == code)
                    .filter(|p| p.median_refraction_ratio_recurrent > 0.0)
                    .filter_map(|p| {
                        let (_, m, sd) = p.weights.iter().find(|w| w.0 == classifier)?;
                        Some((p.median_refraction_ratio_recurrent.log10(), *m, *sd))
                    })
                    .collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        if series.is_empty() {
            continue;
        }
        let base: Vec<(String, f64)> = rep
            .baselines
            .iter()
            .filter(|r| r.classifier.name() == classifier)
            .filter(|r| {
                r.embedding == Baseline::RawPixels.name()
                    || r.embedding.starts_with("random_features")
            })
            .map(|r| (format!("{} ({classifier})", r.embedding), r.accuracy_mean))
            .collect();
        let file = format!("velocity_sweep_{classifier}.png");
        report::plot_accuracy_lines(
            &opts.out.join(&file),
            &series,
            &base,
            &format!("Experiment 3 by stimulus code: {classifier} accuracy against the median refraction ratio"),
            &report::XAxis {
                desc: "median refraction ratio R / latency, recurrent edges (log scale; velocity 10-1000 um/ms)".into(),
                log10: true,
            },
        )?;
        rep.figures.push(file);
    }
    let pct = |v: &[(String, f64, f64)], c: &str| {
        v.iter()
            .find(|x| x.0 == c)
            .map_or("-".to_string(), |x| format!("{:.2}", 100.0 * x.1))
    };
    rep.notes.push(
        "Velocity sweep (code, velocity um/ms: median refraction ratio recurrent / input->recurrent; recurrent rate; lost arrivals; Δw kNN / ridge; activity kNN / ridge, %):".into(),
    );
    for p in points {
        rep.notes.push(format!(
            "{} code, v = {}: RR {:.3} / {:.3}; {:.2} Hz; lost {:.1}%; Δw {} / {}; activity {} / {}",
            p.train,
            p.velocity_um_per_ms,
            p.median_refraction_ratio_recurrent,
            p.median_refraction_ratio_input,
            p.mean_recurrent_rate_hz,
            100.0 * p.lost_arrival_share,
            pct(&p.weights, "knn"),
            pct(&p.weights, "ridge"),
            pct(&p.activity, "knn"),
            pct(&p.activity, "ridge"),
        ));
    }
    rep.notes.push(format!(
        "Each point in <code>_v<velocity>/ (its own report); rows `<view>_<code>_v<velocity>`; the latency code's window is the config's latency_window_ms or {LATENCY_WINDOW_MS} ms; baselines scored once, on the first point's splits (the same splits at every point)."
    ));
    rep.extra.insert(
        "velocity_sweep".into(),
        serde_json::to_value(points).unwrap_or_default(),
    );
    rep.network = None;
    report::write_report(&opts.out, rep)?;
    Ok(())
}
