//! The commands that look at one network or time the engine: `simulate`,
//! `network`, `bench`.

use super::bench_large::Fnv1a;
use super::commands::{data_spec, load_config};
use super::output::{outln, Out};
use super::DataArgs;
use crate::cpu_time::thread_cpu_s;
use crate::pipeline::{self, Encoder, Scratch};
use crate::record::RecordSpec;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::Instant;

pub fn simulate(
    out: &mut Out,
    spec: &str,
    image: usize,
    n_rec: Option<usize>,
    path_events: usize,
    export_run: Option<&Path>,
    data: &DataArgs,
) -> Result<()> {
    let cfg = load_config(spec, n_rec)?;
    // The same images, in the same rows, as `encode` with these data options:
    // image I here runs the stimulus of row I there.
    let (set, _) = pipeline::load_images(&data_spec(data))?;
    if image >= set.len() {
        bail!("--image {image}: the dataset has {} images", set.len());
    }
    let t0 = Instant::now();
    let net = cfg.build_network()?;
    let build_s = t0.elapsed().as_secs_f64();
    let encoder = Encoder::new(&net, &cfg)?;
    encoder.check_images(&set, "images")?;
    let record = RecordSpec {
        activations: true,
        node_counts: true,
        ..Default::default()
    };
    let mut scratch = Scratch::default();
    let t1 = Instant::now();
    let rec = encoder.simulate(&mut scratch, set.image(image), image, &record)?;
    let sim_s = t1.elapsed().as_secs_f64();
    let weights = encoder.final_weights(&scratch);
    let tot = rec.totals;
    let n_in = net.n_input();
    let rec_acts: u64 = rec.activation_counts[n_in..]
        .iter()
        .map(|&c| c as u64)
        .sum();
    let rate =
        rec_acts as f64 / net.n_recurrent().max(1) as f64 / (cfg.run().duration_ms() / 1000.0);
    outln!(
        out,
        "config      {} ({}), hash {}",
        cfg.experiment(),
        spec,
        &cfg.hash()[..12]
    );
    outln!(
        out,
        "image       #{image}, label {}, from {}",
        set.labels[image],
        set.images_path.display()
    );
    outln!(
        out,
        "network     {} input + {} recurrent nodes, {} edges ({} plastic), built in {:.3} s",
        n_in,
        net.n_recurrent(),
        net.n_edges(),
        net.plastic_edges().len(),
        build_s
    );
    outln!(
        out,
        "stimulus    {} input activations requested over {} ms ({} lost to input refractoriness)",
        tot.external_activations,
        cfg.stimulus().duration_ms,
        tot.lost_external
    );
    outln!(out, "dynamics    {} arrivals, {} lost to refractoriness ({:.1}%), {} activations; recurrent mean rate {:.1} Hz", tot.arrivals, tot.lost_arrivals, 100.0 * tot.lost_arrivals as f64 / tot.arrivals.max(1) as f64, tot.activations, rate);
    if cfg.run().stdp().is_some() {
        let c = crate::experiments::weight_change(&net.plastic_edges(), &net.edge_weight, weights);
        outln!(
            out,
            "stdp        {} updates; plastic edges {:.1}% up, {:.1}% down, {:.1}% turned inhibitory, {:.1}% turned excitatory, {:.1}% unchanged",
            tot.stdp_updates,
            100.0 * c.up,
            100.0 * c.down,
            100.0 * c.turned_inhibitory,
            100.0 * c.turned_excitatory,
            100.0 * c.unchanged
        );
    }
    outln!(
        out,
        "timing      {:.2} ms simulated in {:.2} ms wall, {:.3e} arrivals/s (one thread)",
        cfg.run().duration_ms(),
        sim_s * 1e3,
        tot.arrivals as f64 / sim_s
    );
    if let Some(dir) = export_run {
        let info = crate::report::RunExportInfo {
            image,
            label: set.labels[image],
            images_file: set.images_path.display().to_string(),
            stimulus_seed: pipeline::row_seed(cfg.seed(), image),
            duration_ms: cfg.run().duration_ms(),
        };
        let stimulus = encoder.stimulus(set.image(image), image);
        crate::report::export_run(
            dir,
            &net,
            &export_context(&cfg)?,
            &stimulus,
            &rec,
            weights,
            &info,
        )
        .with_context(|| format!("{}: run export failed", dir.display()))?;
        outln!(
            out,
            "exported the run to {} (layout: {}/run.json)",
            dir.display(),
            dir.display()
        );
    }
    print_path(out, &net, &rec, path_events)
}

/// What an export records of the config.
fn export_context(cfg: &crate::config::ExperimentConfig) -> Result<crate::report::ExportContext> {
    Ok(crate::report::ExportContext {
        experiment: cfg.experiment().to_string(),
        seed: cfg.seed(),
        config_hash: cfg.hash().to_string(),
        config: serde_json::to_value(cfg.raw()).context("the config as JSON")?,
    })
}

/// The first `events` recurrent activations with their causal edges.
fn print_path(
    out: &mut Out,
    net: &crate::network::Network,
    rec: &crate::record::Recording,
    path_events: usize,
) -> Result<()> {
    let n_in = net.n_input();
    outln!(out, "activation path (first {path_events} recurrent events: time ms, node <- causal edge from node):");
    for a in rec
        .activations
        .iter()
        .filter(|a| a.node as usize >= n_in)
        .take(path_events)
    {
        match a.causal_edge {
            Some(e) => outln!(
                out,
                "  {:9.4}  node {:4} <- edge {:6} from node {:4} (latency {:.4} ms)",
                a.time_ms,
                a.node,
                e,
                net.edge_source[e as usize],
                net.edge_latency_ms[e as usize]
            ),
            None => outln!(out, "  {:9.4}  node {:4} <- stimulus", a.time_ms, a.node),
        }
    }
    Ok(())
}

pub fn network(
    out: &mut Out,
    spec: &str,
    n_rec: Option<usize>,
    export: Option<&Path>,
) -> Result<()> {
    let cfg = load_config(spec, n_rec)?;
    let net = cfg.build_network()?;
    outln!(
        out,
        "{} input + {} recurrent nodes, {} edges ({} plastic)",
        net.n_input(),
        net.n_recurrent(),
        net.n_edges(),
        net.plastic_edges().len()
    );
    outln!(
        out,
        "memory: network arrays {:.1} MB, simulation tables and state {:.1} MB",
        net.memory_bytes() as f64 / 1e6,
        crate::sim::Simulator::new(&net, cfg.run())?.state_bytes() as f64 / 1e6
    );
    outln!(out, "\nlatency and refraction ratio R_target / latency (Silva 2019: efficient signalling near or below 1)");
    outln!(
        out,
        "{:<22} {:>8}  {:>44}  {:>44}  {:>7}",
        "edge class",
        "edges",
        "latency ms: min / p10 / median / p90 / max",
        "refraction ratio: min / p10 / median / p90 / max",
        "<= 1"
    );
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    for row in crate::report::EdgeClassStats::table(&net) {
        outln!(
            out,
            "{:<22} {:>8}  {:>44}  {:>44}  {:>6.1}%",
            format!("{:?}", row.class),
            row.edges,
            fmt(&row.latency_ms_quantiles),
            fmt(&row.refraction_ratio_quantiles),
            100.0 * row.share_refraction_ratio_at_most_1
        );
    }
    if let Some(dir) = export {
        crate::report::export_network(&net, dir, Some(&export_context(&cfg)?))
            .with_context(|| format!("{}: network export failed", dir.display()))?;
        outln!(
            out,
            "\nexported to {} (layout: {}/README.md)",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

pub fn bench_engine(out: &mut Out, n_rec: usize, digits: usize, record: bool) -> Result<()> {
    if digits == 0 {
        bail!("--digits 0: the benchmark needs at least one digit");
    }
    let cfg = load_config("weights", Some(n_rec))?;
    // The digits of `--limit DIGITS`, as rows 0.. of that encode.
    let (set, _) = pipeline::load_images(&pipeline::DataSpec {
        files: None,
        limit: Some(digits),
    })?;
    let net = cfg.build_network()?;
    let t_prep = Instant::now();
    let encoder = Encoder::new(&net, &cfg)?;
    let prep_s = t_prep.elapsed().as_secs_f64();
    encoder.check_images(&set, "images")?;
    let stimuli: Vec<_> = (0..set.len())
        .map(|row| encoder.stimulus(set.image(row), row))
        .collect();
    let totals_only = RecordSpec::default();
    let spec = if record {
        encoder.record_spec()
    } else {
        &totals_only
    };
    let sim = encoder.simulator();
    let mut ws = Scratch::default();
    // Warm-up run (allocations, caches).
    let mut w = net.edge_weight.clone();
    sim.run(ws.workspace(), &mut w, &stimuli[0], spec)?;
    let mut arrivals = 0u64;
    let mut activations = 0u64;
    let (mut wall, mut cpu) = (0.0, 0.0);
    let mut digest = Fnv1a::new();
    for s in &stimuli {
        w.copy_from_slice(&net.edge_weight);
        let (t0, c0) = (Instant::now(), thread_cpu_s());
        let rec = sim.run(ws.workspace(), &mut w, s, spec)?;
        (wall, cpu) = (wall + t0.elapsed().as_secs_f64(), cpu + thread_cpu_s() - c0);
        arrivals += rec.totals.arrivals;
        activations += rec.totals.activations;
        // Outside the timed part: what the run computed, so two builds of
        // the engine can be checked bit for bit on the same digits.
        let t = &rec.totals;
        for x in [t.arrivals, t.lost_arrivals, t.activations, t.stdp_updates] {
            digest.eat(&x.to_le_bytes());
        }
        for &x in &w {
            digest.eat(&x.to_bits().to_le_bytes());
        }
    }
    let per_digit = |x: f64| x / stimuli.len() as f64;
    outln!(out, "engine benchmark: experiment-3 network, {} inputs -> {} recurrent (all-to-all), STDP on recurrent edges, {} ms per digit, {} real digits, one thread, recording {}", net.n_input(), net.n_recurrent(), cfg.run().duration_ms(), stimuli.len(), if record { "as an encode (snapshots, activity)" } else { "totals only" });
    outln!(out, "  edges {}, network arrays {:.1} MB, simulation tables + state {:.1} MB (prepared once in {:.1} ms)", net.n_edges(), net.memory_bytes() as f64 / 1e6, sim.state_bytes() as f64 / 1e6, prep_s * 1e3);
    outln!(
        out,
        "  arrivals per digit    {:.3e}",
        per_digit(arrivals as f64)
    );
    outln!(
        out,
        "  activations per digit {:.0}",
        per_digit(activations as f64)
    );
    outln!(
        out,
        "  ms per digit          {:.2} CPU ({:.2} wall)",
        1e3 * per_digit(cpu),
        1e3 * per_digit(wall)
    );
    outln!(
        out,
        "  ns per arrival        {:.1} CPU",
        1e9 * cpu / arrivals.max(1) as f64
    );
    outln!(
        out,
        "  arrivals per second   {:.3e} CPU ({:.3e} wall)",
        arrivals as f64 / cpu.max(1e-12),
        arrivals as f64 / wall.max(1e-12)
    );
    outln!(
        out,
        "  result digest         {:016x} (FNV-1a of each digit's totals and final weights)",
        digest.0
    );
    Ok(())
}

pub fn bench_knn(out: &mut Out, n: usize, dim: usize) -> Result<()> {
    // Why: the demo needs 20 vectors for its 10% query part and k = 5; it
    // would otherwise time a larger problem than the one announced.
    if n < 20 || dim == 0 {
        bail!("--n {n} --dim {dim}: the kNN benchmark needs --n >= 20 and --dim >= 1");
    }
    outln!(out, "kNN benchmark: {n} seeded vectors of {dim} dimensions (half zeros), 10 random splits of 90%/10%, k = 5, distance-weighted Euclidean, exact");
    let secs = crate::eval::knn_timing_demo(n, dim);
    outln!(
        out,
        "  full protocol: {secs:.1} s on {} threads",
        rayon::current_num_threads()
    );
    Ok(())
}
