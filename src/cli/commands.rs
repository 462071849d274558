//! The subcommands, each a thin layer over library calls.

use super::{BenchWhat, Cli, Command, DataArgs};
use crate::config::{self, ExperimentConfig, RawConfig};
use crate::dataset::ImageSet;
use crate::network::{EdgeClass, Network};
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
    let set = match (&d.images, &d.labels) {
        (Some(i), Some(l)) => ImageSet::load(i, l)?,
        _ => ImageSet::builtin()?,
    };
    Ok(match d.limit {
        Some(n) if n < set.len() => {
            let idx = crate::dataset::stratified_subset_indices(&set.labels, n, 0);
            set.subset(&idx)
        }
        _ => set,
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
        Command::Encode(a) => crate::cli::commands::pipeline::encode_cmd(&a).map(|_| ()),
        Command::Evaluate { dir, out } => pipeline::evaluate_cmd(&dir, out.as_deref()),
        Command::Run(a) => pipeline::run_cmd(&a),
        Command::Reproduce(a) => pipeline::reproduce_cmd(&a),
    }
}

mod pipeline {
    use super::*;
    pub fn encode_cmd(_a: &super::super::EncodeArgs) -> Result<()> {
        bail!("encode: not yet wired")
    }
    pub fn evaluate_cmd(_d: &Path, _o: Option<&Path>) -> Result<()> {
        bail!("evaluate: not yet wired")
    }
    pub fn run_cmd(_a: &super::super::EncodeArgs) -> Result<()> {
        bail!("run: not yet wired")
    }
    pub fn reproduce_cmd(_a: &super::super::ReproduceArgs) -> Result<()> {
        bail!("reproduce: not yet wired")
    }
}

fn simulate(spec: &str, image: usize, n_rec: Option<usize>, path_events: usize, data: &DataArgs) -> Result<()> {
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
    let rec = Simulator::new(&net, &cfg.run)?.run(&mut Workspace::default(), &mut weights, &stim, &record)?;
    let sim_s = t1.elapsed().as_secs_f64();
    let tot = rec.totals;
    let n_in = net.n_input();
    let rec_acts: u64 = rec.activation_counts[n_in..].iter().map(|&c| c as u64).sum();
    let rate = rec_acts as f64 / net.n_recurrent().max(1) as f64 / (cfg.run.duration_ms / 1000.0);
    println!("config      {} ({}), hash {}", cfg.experiment, spec, &cfg.hash[..12]);
    println!("image       #{image}, label {}, from {}", set.labels[image], set.images_path.display());
    println!("network     {} input + {} recurrent nodes, {} edges ({} plastic), built in {:.3} s", n_in, net.n_recurrent(), net.n_edges(), net.plastic_edges().len(), build_s);
    println!("stimulus    {} input activations requested over {} ms ({} lost to input refractoriness)", tot.external_activations, cfg.stimulus.duration_ms, tot.lost_external);
    println!("dynamics    {} arrivals, {} lost to refractoriness ({:.1}%), {} activations; recurrent mean rate {:.1} Hz", tot.arrivals, tot.lost_arrivals, 100.0 * tot.lost_arrivals as f64 / tot.arrivals.max(1) as f64, tot.activations, rate);
    if cfg.run.stdp.is_some() {
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
        println!("stdp        {} updates; plastic edges {:.1}% up, {:.1}% down, {:.1}% changed sign", tot.stdp_updates, 100.0 * up as f64 / n, 100.0 * down as f64 / n, 100.0 * flip as f64 / n);
    }
    println!("timing      {:.2} ms simulated in {:.2} ms wall, {:.3e} arrivals/s (one thread)", cfg.run.duration_ms, sim_s * 1e3, tot.arrivals as f64 / sim_s);
    println!("activation path (first {path_events} recurrent events: time ms, node <- causal edge from node):");
    for a in rec.activations.iter().filter(|a| a.node as usize >= n_in).take(path_events) {
        match a.causal_edge {
            Some(e) => println!("  {:9.4}  node {:4} <- edge {:6} from node {:4} (latency {:.4} ms)", a.time_ms, a.node, e, net.edge_source[e as usize], net.edge_latency_ms[e as usize]),
            None => println!("  {:9.4}  node {:4} <- stimulus", a.time_ms, a.node),
        }
    }
    Ok(())
}


/// Quantiles of a sample (sorted copy).
fn quantiles(v: &[f64], qs: &[f64]) -> Vec<f64> {
    let mut s: Vec<f64> = v.to_vec();
    s.sort_by(f64::total_cmp);
    qs.iter()
        .map(|q| {
            if s.is_empty() {
                f64::NAN
            } else {
                s[((q * (s.len() - 1) as f64).round() as usize).min(s.len() - 1)]
            }
        })
        .collect()
}

pub fn network_summary(net: &Network) -> serde_json::Value {
    let lat = &net.edge_latency_ms;
    let rr = net.refraction_ratio();
    let classes = [
        EdgeClass::InputToRecurrent,
        EdgeClass::RecurrentToRecurrent,
        EdgeClass::InputToInput,
        EdgeClass::RecurrentToInput,
    ];
    let mut by_class = serde_json::Map::new();
    let qs = [0.0, 0.1, 0.5, 0.9, 1.0];
    for c in classes {
        let idx: Vec<usize> = (0..net.n_edges()).filter(|&e| net.edge_class[e] == c).collect();
        if idx.is_empty() {
            continue;
        }
        let l: Vec<f64> = idx.iter().map(|&e| lat[e]).collect();
        let r: Vec<f64> = idx.iter().map(|&e| rr[e]).collect();
        let below = r.iter().filter(|&&x| x <= 1.0).count() as f64 / r.len() as f64;
        by_class.insert(
            format!("{c:?}"),
            serde_json::json!({
                "edges": idx.len(),
                "latency_ms_quantiles_0_10_50_90_100": quantiles(&l, &qs),
                "refraction_ratio_quantiles_0_10_50_90_100": quantiles(&r, &qs),
                "share_refraction_ratio_at_most_1": below,
                "excitatory_share": idx.iter().filter(|&&e| net.edge_weight[e] > 0.0).count() as f64 / idx.len() as f64,
                "plastic": idx.iter().filter(|&&e| net.edge_plastic[e]).count(),
            }),
        );
    }
    serde_json::json!({
        "nodes": net.n_nodes(),
        "input_nodes": net.n_input(),
        "recurrent_nodes": net.n_recurrent(),
        "edges": net.n_edges(),
        "by_class": by_class,
        "network_bytes": net.memory_bytes(),
        "simulation_state_bytes": Simulator::new(net, &crate::sim::RunParams { duration_ms: 0.0, stdp: None }).map(|s| s.state_bytes()).unwrap_or(0),
    })
}

fn network(spec: &str, n_rec: Option<usize>, export: Option<&Path>) -> Result<()> {
    let cfg = load_config(spec, n_rec)?;
    let net = cfg.network.build(cfg.seed, &cfg.plastic_edges)?;
    println!("{} input + {} recurrent nodes, {} edges ({} plastic)", net.n_input(), net.n_recurrent(), net.n_edges(), net.plastic_edges().len());
    println!("memory: network arrays {:.1} MB, simulation tables and state {:.1} MB", net.memory_bytes() as f64 / 1e6, Simulator::new(&net, &cfg.run)?.state_bytes() as f64 / 1e6);
    let rr = net.refraction_ratio();
    let qs = [0.0, 0.1, 0.5, 0.9, 1.0];
    println!("\nlatency and refraction ratio R_target / latency (Silva 2019: efficient signalling near or below 1)");
    println!("{:<22} {:>8}  {:>44}  {:>44}  {:>7}", "edge class", "edges", "latency ms: min / p10 / median / p90 / max", "refraction ratio: min / p10 / median / p90 / max", "<= 1");
    for c in [EdgeClass::InputToRecurrent, EdgeClass::RecurrentToRecurrent, EdgeClass::InputToInput, EdgeClass::RecurrentToInput] {
        let idx: Vec<usize> = (0..net.n_edges()).filter(|&e| net.edge_class[e] == c).collect();
        if idx.is_empty() {
            continue;
        }
        let l = quantiles(&idx.iter().map(|&e| net.edge_latency_ms[e]).collect::<Vec<_>>(), &qs);
        let r: Vec<f64> = idx.iter().map(|&e| rr[e]).collect();
        let rq = quantiles(&r, &qs);
        let below = r.iter().filter(|&&x| x <= 1.0).count() as f64 / r.len() as f64;
        let fmt = |v: &[f64]| v.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(" / ");
        println!("{:<22} {:>8}  {:>44}  {:>44}  {:>6.1}%", format!("{c:?}"), idx.len(), fmt(&l), fmt(&rq), 100.0 * below);
    }
    if let Some(dir) = export {
        crate::network::export::export_npy(&net, dir)
            .with_context(|| format!("{}: network export failed", dir.display()))?;
        println!("\nexported to {} (layout: {}/README.md)", dir.display(), dir.display());
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
    println!("engine benchmark: experiment-3 network, {} inputs -> {} recurrent (all-to-all), STDP on recurrent edges, {} ms per digit, {} real digits, one thread", net.n_input(), net.n_recurrent(), cfg.run.duration_ms, stimuli.len());
    println!("  edges {}, network arrays {:.1} MB, simulation tables + state {:.1} MB (prepared once in {:.1} ms)", net.n_edges(), net.memory_bytes() as f64 / 1e6, sim.state_bytes() as f64 / 1e6, prep_s * 1e3);
    println!("  arrivals per digit   {:.3e}", arrivals as f64 / stimuli.len() as f64);
    println!("  activations per digit {:.0}", activations as f64 / stimuli.len() as f64);
    println!("  ms per digit         {:.2}", 1e3 * secs / stimuli.len() as f64);
    println!("  arrivals per second  {:.3e}", arrivals as f64 / secs);
    println!("  (peer: Brian2 cpp_standalone, 0.1 ms grid, about 25 ms per digit and 6.7e7 arrivals/s on this network)");
    Ok(())
}

fn bench_knn(n: usize, dim: usize) -> Result<()> {
    let _ = (n, dim);
    bail!("bench knn: not yet wired")
}
