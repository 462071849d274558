//! The subcommands, each a thin layer over library calls.

use super::{BenchWhat, Cli, Command, DataArgs};
use crate::config::{self, ExperimentConfig, RawConfig};
use crate::dataset::ImageSet;
use crate::network::EdgeClass;
use crate::record::RecordSpec;
use crate::sim::{Simulator, Workspace};
use crate::stimulus;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The configs shipped in `configs/`, compiled in so every command works from
/// any directory.
pub const BUILTIN_CONFIGS: &[(&str, &str)] = &[
    ("weights", include_str!("../../configs/weights.toml")),
    ("paths", include_str!("../../configs/paths.toml")),
    ("stdp", include_str!("../../configs/stdp.toml")),
];

/// Reads a config given as a path or a built-in name; returns the raw config
/// and the path used in messages.
pub fn raw_config(spec: &str) -> Result<(RawConfig, PathBuf)> {
    let path = Path::new(spec);
    if path.exists() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read config", path.display()))?;
        return Ok((config::parse(&text, path)?, path.to_path_buf()));
    }
    if let Some((name, text)) = BUILTIN_CONFIGS.iter().find(|(n, _)| *n == spec) {
        let p = PathBuf::from(format!("configs/{name}.toml (built-in)"));
        return Ok((config::parse(text, &p)?, p));
    }
    let names: Vec<&str> = BUILTIN_CONFIGS.iter().map(|(n, _)| *n).collect();
    bail!(
        "{spec}: no such config file, and not a built-in config name ({})",
        names.join(", ")
    )
}

/// Reads, overrides and checks a config.
pub fn load_config(spec: &str, n_recurrent: Option<usize>) -> Result<ExperimentConfig> {
    let (mut raw, path) = raw_config(spec)?;
    if let Some(n) = n_recurrent {
        raw.network.n_recurrent = n;
    }
    Ok(raw.check(&path)?)
}

pub fn load_data(d: &DataArgs) -> Result<ImageSet> {
    Ok(load_data_rows(d)?.0)
}

/// The dataset, and with `--limit` the indices of the images kept (a seeded
/// stratified draw, in file order).
pub fn load_data_rows(d: &DataArgs) -> Result<(ImageSet, Option<Vec<usize>>)> {
    let set = match (&d.images, &d.labels) {
        (Some(i), Some(l)) => ImageSet::load(i, l)?,
        _ => ImageSet::builtin()?,
    };
    Ok(match d.limit {
        Some(n) if n < set.len() => {
            let idx = crate::dataset::stratified_subset_indices(&set.labels, n, 0);
            (set.subset(&idx), Some(idx))
        }
        _ => (set, None),
    })
}

/// Entry point: parse-free, returns the process exit code's cause.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Simulate {
            config,
            image,
            n_recurrent,
            path_events,
            data,
        } => simulate(&config, image, n_recurrent, path_events, &data),
        Command::Network {
            config,
            n_recurrent,
            export,
        } => network(&config, n_recurrent, export.as_deref()),
        Command::Bench {
            what,
            n_recurrent,
            digits,
            n,
            dim,
        } => match what {
            BenchWhat::Engine => bench_engine(n_recurrent, digits),
            BenchWhat::Knn => bench_knn(n, dim),
        },
        Command::Encode(a) => pipeline::encode_cmd(&a).map(|_| ()),
        Command::Evaluate {
            dir,
            out,
            l2,
            knn_only,
            trajectory,
        } => pipeline::evaluate_cmd(&dir, out.as_deref(), l2, knn_only, trajectory),
        Command::Merge { shards, out } => {
            let m = crate::pipeline::merge_shards(&shards, &out)?;
            println!(
                "merged {} shards: {} rows in {}",
                shards.len(),
                m.n_rows,
                out.display()
            );
            Ok(())
        }
        Command::Run(a) => pipeline::run_cmd(&a),
        Command::Reproduce(a) => pipeline::reproduce_cmd(&a),
    }
}

mod pipeline {
    use super::*;
    use crate::cli::{EncodeArgs, ExperimentName, QueryArgs, ReproduceArgs};
    use crate::pipeline::{self as pl, EncodeData, EncodeOptions, EvaluateOptions};
    use crate::report::{self, Report, Series};

    fn parse_shard(s: &str) -> Result<(usize, usize)> {
        let (k, n) = s
            .split_once('/')
            .with_context(|| format!("--shard {s}: expected K/N, e.g. 0/4"))?;
        let k: usize = k
            .trim()
            .parse()
            .with_context(|| format!("--shard {s}: K is not a number"))?;
        let n: usize = n
            .trim()
            .parse()
            .with_context(|| format!("--shard {s}: N is not a number"))?;
        if n == 0 || k >= n {
            bail!("--shard {s}: need 0 <= K < N");
        }
        Ok((k, n))
    }

    fn load_query(q: &QueryArgs) -> Result<Option<ImageSet>> {
        Ok(match (&q.query_images, &q.query_labels) {
            (Some(i), Some(l)) => Some(ImageSet::load(i, l)?),
            _ => None,
        })
    }

    fn with_threads<T: Send>(
        threads: Option<usize>,
        f: impl FnOnce() -> Result<T> + Send,
    ) -> Result<T> {
        match threads {
            Some(t) => rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .context("cannot start the thread pool")?
                .install(f),
            None => f(),
        }
    }

    fn encode_with(
        cfg: &ExperimentConfig,
        set: &ImageSet,
        rows: Option<&[usize]>,
        query: Option<&ImageSet>,
        opts: &EncodeOptions,
    ) -> Result<pl::Manifest> {
        eprintln!(
            "encode: {} (N = {}), {} images{} -> {}",
            cfg.experiment,
            cfg.n_recurrent(),
            set.len(),
            query
                .map(|q| format!(" + {} held-out queries", q.len()))
                .unwrap_or_default(),
            opts.out.display()
        );
        let data = EncodeData {
            reference: set,
            reference_rows: rows,
            query,
        };
        let m = pl::encode(cfg, &data, opts)?;
        eprintln!(
            "encode: done, {} rows in {:.1} s ({:.3e} arrivals/s over {} threads)",
            m.n_rows,
            m.encode_s,
            m.totals.arrivals as f64 / m.encode_s.max(1e-9),
            m.threads
        );
        Ok(m)
    }

    pub fn encode_cmd(a: &EncodeArgs) -> Result<pl::Manifest> {
        let cfg = load_config(&a.config, a.n_recurrent)?;
        let (set, rows) = load_data_rows(&a.data)?;
        let query = load_query(&a.query)?;
        let mut opts = EncodeOptions::new(&a.out);
        opts.chunk = a.chunk;
        opts.restart = a.restart;
        opts.shard = a.shard.as_deref().map(parse_shard).transpose()?;
        with_threads(a.threads, || {
            encode_with(&cfg, &set, rows.as_deref(), query.as_ref(), &opts)
        })
    }

    fn print_summary(rep: &Report, out: &Path) {
        println!("{}", report::render_markdown(rep));
        println!("report: {}", out.join("report.md").display());
    }

    pub fn evaluate_cmd(
        dir: &Path,
        out: Option<&Path>,
        l2: bool,
        knn_only: bool,
        trajectory: bool,
    ) -> Result<()> {
        let out = out.unwrap_or(dir);
        let mut opts = EvaluateOptions::new(out);
        opts.force_l2 = l2;
        opts.knn_only = knn_only;
        opts.trajectory = trajectory;
        let rep = pl::evaluate(dir, &opts)?;
        print_summary(&rep, out);
        Ok(())
    }

    pub fn run_cmd(a: &EncodeArgs) -> Result<()> {
        if a.shard.is_some() {
            bail!("run: --shard is for `geodyn encode`; merge shards before evaluating");
        }
        let m = encode_cmd(a)?;
        let _ = m;
        with_threads(a.threads, || {
            let rep = pl::evaluate(&a.out, &EvaluateOptions::new(&a.out))?;
            print_summary(&rep, &a.out);
            Ok(())
        })
    }

    /// Sizes of the experiment-3 sweep.
    pub const SWEEP_N: [usize; 8] = [5, 10, 25, 50, 100, 200, 300, 400];

    pub fn reproduce_cmd(a: &ReproduceArgs) -> Result<()> {
        match a.experiment {
            ExperimentName::Weights => with_threads(a.threads, || reproduce_weights(a)),
            ExperimentName::Paths | ExperimentName::Stdp => super::reproduce_other(a),
        }
    }

    fn reproduce_weights(a: &ReproduceArgs) -> Result<()> {
        let spec = a.config.clone().unwrap_or_else(|| "weights".to_string());
        let mut data = a.data.clone();
        if a.quick && data.limit.is_none() {
            data.limit = Some(QUICK_IMAGES);
        }
        let (set, rows) = load_data_rows(&data)?;
        let query = load_query(&a.query)?;
        let name = if a.quick {
            "weights-quick"
        } else if a.sweep {
            "weights-sweep"
        } else {
            "weights"
        };
        let out = a
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(name));
        let sizes: Vec<Option<usize>> = if a.sweep {
            SWEEP_N.iter().map(|&n| Some(n)).collect()
        } else if a.quick {
            vec![Some(QUICK_N)]
        } else {
            vec![None]
        };
        let mut combined: Option<Report> = None;
        let mut series = Vec::new();
        for n_rec in sizes {
            let cfg = load_config(&spec, n_rec)?;
            let dir = if a.sweep {
                out.join(format!("n{}", cfg.n_recurrent()))
            } else {
                out.clone()
            };
            let mut opts = EncodeOptions::new(&dir);
            opts.chunk = 500;
            encode_with(&cfg, &set, rows.as_deref(), query.as_ref(), &opts)?;
            let mut eo = EvaluateOptions::new(&dir);
            eo.figures = true;
            let rep = pl::evaluate(&dir, &eo)?;
            let pts: Vec<(f64, f64, f64)> = rep
                .results
                .iter()
                .filter(|r| r.classifier == "knn" && r.time_ms.is_some())
                .map(|r| (r.time_ms.unwrap_or(0.0), r.accuracy_mean, r.accuracy_sd))
                .collect();
            series.push(Series {
                label: format!("N = {}", cfg.n_recurrent()),
                points: pts,
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
            bail!("no network size to run")
        };
        if a.sweep {
            let base: Vec<(String, f64)> = rep
                .baselines
                .iter()
                .filter(|r| r.classifier == "knn" && r.embedding == "raw_pixels")
                .map(|r| ("raw pixels (knn)".to_string(), r.accuracy_mean))
                .collect();
            report::plot_accuracy_vs_time(
                &out.join("figure3_accuracy_vs_time.png"),
                &series,
                &base,
                "Experiment 3: kNN accuracy of weight changes against time, by N",
            )?;
            rep.figures = vec!["figure3_accuracy_vs_time.png".to_string()];
            rep.notes.push(
                "Sweep: per-N reports (with their own baselines and figures) are in n<N>/.".into(),
            );
            rep.network = None;
            report::write_report(&out, &rep)?;
        }
        print_summary(&rep, &out);
        Ok(())
    }

    /// Images and recurrent size of `--quick` runs.
    pub const QUICK_IMAGES: usize = 500;
    pub const QUICK_N: usize = 50;
}

/// Experiments 1 (paths) and 2 (stdp), which have their own runners.
fn reproduce_other(a: &super::ReproduceArgs) -> Result<()> {
    use super::ExperimentName;
    use crate::experiments::{reproduce_paths, reproduce_stdp, ExperimentOptions};
    if a.sweep {
        bail!("--sweep is for `reproduce weights` (experiment 3)");
    }
    if a.query.query_images.is_some() {
        bail!("--query-images: the held-out protocol is offered by `reproduce weights`, `run` and `encode`");
    }
    if a.data.limit.is_some() {
        bail!("--limit: experiments 1 and 2 choose their image counts (use --quick for the small version)");
    }
    let name = match a.experiment {
        ExperimentName::Paths => "paths",
        ExperimentName::Stdp => "stdp",
        ExperimentName::Weights => "weights",
    };
    let config = match &a.config {
        Some(c) => Some(load_config(c, None)?),
        None => None,
    };
    let dir = if a.quick {
        format!("{name}-quick")
    } else {
        name.to_string()
    };
    let opts = ExperimentOptions {
        quick: a.quick,
        out: a
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(dir)),
        threads: a.threads,
        images: match (&a.data.images, &a.data.labels) {
            (Some(i), Some(l)) => Some((i.clone(), l.clone())),
            _ => None,
        },
        config,
    };
    let rep = match a.experiment {
        ExperimentName::Paths => reproduce_paths(&opts)?,
        _ => reproduce_stdp(&opts)?,
    };
    println!("{}", crate::report::render_markdown(&rep));
    println!("report: {}", opts.out.join("report.md").display());
    Ok(())
}

fn simulate(
    spec: &str,
    image: usize,
    n_rec: Option<usize>,
    path_events: usize,
    data: &DataArgs,
) -> Result<()> {
    let cfg = load_config(spec, n_rec)?;
    let set = load_data(data)?;
    if image >= set.len() {
        bail!("--image {image}: the dataset has {} images", set.len());
    }
    let t0 = Instant::now();
    let net = cfg.network.build(cfg.seed, &cfg.plastic_edges)?;
    let build_s = t0.elapsed().as_secs_f64();
    let stim = stimulus::encode_image(set.image(image), &cfg.stimulus, cfg.seed ^ image as u64);
    let record = RecordSpec {
        activations: true,
        node_counts: true,
        activity_bin_ms: None,
        weight_snapshots_ms: vec![],
        snapshot_edges: vec![],
    };
    let mut weights = net.edge_weight.clone();
    let t1 = Instant::now();
    let rec = Simulator::new(&net, &cfg.run)?.run(
        &mut Workspace::default(),
        &mut weights,
        &stim,
        &record,
    )?;
    let sim_s = t1.elapsed().as_secs_f64();
    let tot = rec.totals;
    let n_in = net.n_input();
    let rec_acts: u64 = rec.activation_counts[n_in..]
        .iter()
        .map(|&c| c as u64)
        .sum();
    let rate = rec_acts as f64 / net.n_recurrent().max(1) as f64 / (cfg.run.duration_ms() / 1000.0);
    println!(
        "config      {} ({}), hash {}",
        cfg.experiment,
        spec,
        &cfg.hash[..12]
    );
    println!(
        "image       #{image}, label {}, from {}",
        set.labels[image],
        set.images_path.display()
    );
    println!(
        "network     {} input + {} recurrent nodes, {} edges ({} plastic), built in {:.3} s",
        n_in,
        net.n_recurrent(),
        net.n_edges(),
        net.plastic_edges().len(),
        build_s
    );
    println!(
        "stimulus    {} input activations requested over {} ms ({} lost to input refractoriness)",
        tot.external_activations, cfg.stimulus.duration_ms, tot.lost_external
    );
    println!("dynamics    {} arrivals, {} lost to refractoriness ({:.1}%), {} activations; recurrent mean rate {:.1} Hz", tot.arrivals, tot.lost_arrivals, 100.0 * tot.lost_arrivals as f64 / tot.arrivals.max(1) as f64, tot.activations, rate);
    if cfg.run.stdp().is_some() {
        let plastic = net.plastic_edges();
        let (mut up, mut down, mut flip) = (0, 0, 0);
        for &e in &plastic {
            let (a, b) = (net.edge_weight[e as usize], weights[e as usize]);
            if b > a {
                up += 1;
            } else if b < a {
                down += 1;
            }
            if (a > 0.0) != (b > 0.0) {
                flip += 1;
            }
        }
        let n = plastic.len().max(1) as f64;
        println!(
            "stdp        {} updates; plastic edges {:.1}% up, {:.1}% down, {:.1}% changed sign",
            tot.stdp_updates,
            100.0 * up as f64 / n,
            100.0 * down as f64 / n,
            100.0 * flip as f64 / n
        );
    }
    println!(
        "timing      {:.2} ms simulated in {:.2} ms wall, {:.3e} arrivals/s (one thread)",
        cfg.run.duration_ms(),
        sim_s * 1e3,
        tot.arrivals as f64 / sim_s
    );
    println!("activation path (first {path_events} recurrent events: time ms, node <- causal edge from node):");
    for a in rec
        .activations
        .iter()
        .filter(|a| a.node as usize >= n_in)
        .take(path_events)
    {
        match a.causal_edge {
            Some(e) => println!(
                "  {:9.4}  node {:4} <- edge {:6} from node {:4} (latency {:.4} ms)",
                a.time_ms, a.node, e, net.edge_source[e as usize], net.edge_latency_ms[e as usize]
            ),
            None => println!("  {:9.4}  node {:4} <- stimulus", a.time_ms, a.node),
        }
    }
    Ok(())
}

fn network(spec: &str, n_rec: Option<usize>, export: Option<&Path>) -> Result<()> {
    let cfg = load_config(spec, n_rec)?;
    let net = cfg.network.build(cfg.seed, &cfg.plastic_edges)?;
    println!(
        "{} input + {} recurrent nodes, {} edges ({} plastic)",
        net.n_input(),
        net.n_recurrent(),
        net.n_edges(),
        net.plastic_edges().len()
    );
    println!(
        "memory: network arrays {:.1} MB, simulation tables and state {:.1} MB",
        net.memory_bytes() as f64 / 1e6,
        Simulator::new(&net, &cfg.run)?.state_bytes() as f64 / 1e6
    );
    let rr = net.refraction_ratio();
    let qs = [0.0, 0.1, 0.5, 0.9, 1.0];
    println!("\nlatency and refraction ratio R_target / latency (Silva 2019: efficient signalling near or below 1)");
    println!(
        "{:<22} {:>8}  {:>44}  {:>44}  {:>7}",
        "edge class",
        "edges",
        "latency ms: min / p10 / median / p90 / max",
        "refraction ratio: min / p10 / median / p90 / max",
        "<= 1"
    );
    for c in [
        EdgeClass::InputToRecurrent,
        EdgeClass::RecurrentToRecurrent,
        EdgeClass::InputToInput,
        EdgeClass::RecurrentToInput,
    ] {
        let idx: Vec<usize> = (0..net.n_edges())
            .filter(|&e| net.edge_class[e] == c)
            .collect();
        if idx.is_empty() {
            continue;
        }
        let l = crate::report::quantiles(
            &idx.iter()
                .map(|&e| net.edge_latency_ms[e])
                .collect::<Vec<_>>(),
            &qs,
        );
        let r: Vec<f64> = idx.iter().map(|&e| rr[e]).collect();
        let rq = crate::report::quantiles(&r, &qs);
        let below = r.iter().filter(|&&x| x <= 1.0).count() as f64 / r.len() as f64;
        let fmt = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.3}"))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        println!(
            "{:<22} {:>8}  {:>44}  {:>44}  {:>6.1}%",
            format!("{c:?}"),
            idx.len(),
            fmt(&l),
            fmt(&rq),
            100.0 * below
        );
    }
    if let Some(dir) = export {
        crate::report::export_network_npy(&net, dir)
            .with_context(|| format!("{}: network export failed", dir.display()))?;
        println!(
            "\nexported to {} (layout: {}/README.md)",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

fn bench_engine(n_rec: usize, digits: usize) -> Result<()> {
    let cfg = load_config("weights", Some(n_rec))?;
    let set = ImageSet::builtin()?;
    let net = cfg.network.build(cfg.seed, &cfg.plastic_edges)?;
    let idx = crate::dataset::stratified_subset_indices(&set.labels, digits.min(set.len()), 1);
    let stimuli: Vec<_> = idx
        .iter()
        .map(|&i| stimulus::encode_image(set.image(i), &cfg.stimulus, i as u64))
        .collect();
    let spec = RecordSpec::default();
    let t_prep = Instant::now();
    let sim = Simulator::new(&net, &cfg.run)?;
    let prep_s = t_prep.elapsed().as_secs_f64();
    let mut ws = Workspace::default();
    // Warm-up run (allocations, caches).
    let mut w = net.edge_weight.clone();
    sim.run(&mut ws, &mut w, &stimuli[0], &spec)?;
    let mut arrivals = 0u64;
    let mut activations = 0u64;
    let t0 = Instant::now();
    for s in &stimuli {
        w.copy_from_slice(&net.edge_weight);
        let rec = sim.run(&mut ws, &mut w, s, &spec)?;
        arrivals += rec.totals.arrivals;
        activations += rec.totals.activations;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!("engine benchmark: experiment-3 network, {} inputs -> {} recurrent (all-to-all), STDP on recurrent edges, {} ms per digit, {} real digits, one thread", net.n_input(), net.n_recurrent(), cfg.run.duration_ms(), stimuli.len());
    println!("  edges {}, network arrays {:.1} MB, simulation tables + state {:.1} MB (prepared once in {:.1} ms)", net.n_edges(), net.memory_bytes() as f64 / 1e6, sim.state_bytes() as f64 / 1e6, prep_s * 1e3);
    println!(
        "  arrivals per digit   {:.3e}",
        arrivals as f64 / stimuli.len() as f64
    );
    println!(
        "  activations per digit {:.0}",
        activations as f64 / stimuli.len() as f64
    );
    println!(
        "  ms per digit         {:.2}",
        1e3 * secs / stimuli.len() as f64
    );
    println!("  arrivals per second  {:.3e}", arrivals as f64 / secs);
    println!("  (peer: Brian2 cpp_standalone, 0.1 ms grid, about 25 ms per digit and 6.7e7 arrivals/s on this network)");
    Ok(())
}

fn bench_knn(n: usize, dim: usize) -> Result<()> {
    println!("kNN benchmark: {n} seeded vectors of {dim} dimensions (half zeros), 10 random splits of 90%/10%, k = 5, distance-weighted Euclidean, exact");
    let secs = crate::eval::knn_timing_demo(n, dim);
    println!(
        "  full protocol: {secs:.1} s on {} threads",
        rayon::current_num_threads()
    );
    Ok(())
}
