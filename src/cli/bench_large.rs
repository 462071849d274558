//! `geodyn bench large`: one large geometric network (10^5 nodes, about 10^7
//! edges by default) built from a config, then simulated under its
//! background drive at each thread count asked for, the same network cut
//! into as many parts as threads. It prints what a user sizing a run needs
//! (build time, bytes per edge, peak memory, arrivals per second by wall
//! time and CPU time) and a hash of every activation at each thread count:
//! equal hashes are the engine's promise that the thread count changes
//! nothing.

use super::output::{outln, Out};
use crate::config::LargeConfig;
use crate::cpu_time::process_cpu_s;
use crate::memory;
use crate::network::{build_geometric, Network};
use crate::record::{Activation, ExternalActivation, RecordSpec, RunTotals};
use crate::sim::{estimate_state_bytes, RunParams, Simulator, Workspace};
use crate::stimulus::background_drive;
use anyhow::{bail, Context, Result};
use std::time::Instant;

/// The process's peak resident memory so far (`VmHWM`), bytes; None where
/// `/proc` cannot say.
pub(super) fn peak_resident_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// The 64-bit FNV-1a hash of the bytes it is fed: the benchmarks' check
/// that two runs (thread counts, builds) computed the same bits.
pub struct Fnv1a(pub u64);

impl Fnv1a {
    pub fn new() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    pub fn eat(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// FNV-1a over every activation's node, time bits and causal edge, in the
/// recorded order: any difference in what fired, when, or why changes it.
pub fn activation_hash(activations: &[Activation]) -> u64 {
    let mut h = Fnv1a::new();
    for a in activations {
        h.eat(&a.node.to_le_bytes());
        h.eat(&a.time_ms.to_bits().to_le_bytes());
        h.eat(&a.causal_edge.map_or(u32::MAX, |e| e).to_le_bytes());
    }
    h.0
}

/// One timed run at one thread count.
pub struct LargeRun {
    pub threads: usize,
    pub parts: usize,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub totals: RunTotals,
    pub hash: u64,
}

/// Runs `stimulus` on `net` with `threads` threads (a rayon pool of that
/// size) and the network cut into as many parts, recording every activation.
pub fn run_large(
    net: &Network,
    params: &RunParams,
    stimulus: &[ExternalActivation],
    threads: usize,
) -> Result<LargeRun> {
    if threads == 0 {
        bail!("--threads 0: need at least one thread");
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("cannot start the thread pool")?;
    let sim = Simulator::with_parts(net, params, threads)?;
    let spec = RecordSpec {
        activations: true,
        ..Default::default()
    };
    let mut ws = Workspace::default();
    let mut weights = net.edge_weight().to_vec();
    let (t0, c0) = (Instant::now(), process_cpu_s());
    let rec = pool.install(|| sim.run(&mut ws, &mut weights, stimulus, &spec))?;
    let (wall_s, cpu_s) = (t0.elapsed().as_secs_f64(), process_cpu_s() - c0);
    Ok(LargeRun {
        threads,
        parts: sim.n_parts(),
        wall_s,
        cpu_s,
        totals: rec.totals,
        hash: activation_hash(&rec.activations),
    })
}

/// The bytes a network of `n_nodes` nodes and about `n_edges` edges needs,
/// built and prepared for `max_threads` parts (no STDP): checked against
/// what the machine has before anything is built.
pub fn check_large_fits(n_nodes: usize, n_edges: usize, max_threads: usize) -> Result<u64> {
    let needed = Network::estimate_bytes(n_nodes, n_edges) as u64
        + estimate_state_bytes(n_nodes, n_edges, 0, max_threads) as u64;
    memory::check(
        || format!("a network of {n_nodes} nodes and about {n_edges} edges"),
        needed,
    )?;
    Ok(needed)
}

/// The benchmark's lines, and with `json` a last line holding its figures.
#[allow(clippy::too_many_arguments)]
pub fn print_large(
    out: &mut Out,
    net: &Network,
    build_wall_s: f64,
    build_cpu_s: f64,
    estimate_bytes: u64,
    duration_ms: f64,
    n_stimulus: usize,
    runs: &[LargeRun],
    json: bool,
) -> Result<()> {
    let m = net.n_edges();
    let sim_bytes = estimate_state_bytes(
        net.n_nodes(),
        m,
        0,
        runs.iter().map(|r| r.parts).max().unwrap_or(1),
    );
    let bytes = net.memory_bytes() + sim_bytes;
    let per_edge = bytes as f64 / m.max(1) as f64;
    let peak = peak_resident_bytes();
    outln!(
        out,
        "large network: {} nodes, {} edges ({:.1} per node), {} background activations over {} ms",
        net.n_nodes(),
        m,
        m as f64 / net.n_nodes().max(1) as f64,
        n_stimulus,
        duration_ms
    );
    outln!(
        out,
        "  built in {build_wall_s:.2} s wall ({build_cpu_s:.2} s CPU); estimated beforehand {}",
        memory::human(estimate_bytes)
    );
    outln!(
        out,
        "  bytes per edge {per_edge:.1} (network {:.1}, simulator {:.1}); peak resident {}",
        net.memory_bytes() as f64 / m.max(1) as f64,
        sim_bytes as f64 / m.max(1) as f64,
        peak.map_or("unknown".to_string(), memory::human)
    );
    for r in runs {
        let a = r.totals.arrivals as f64;
        outln!(
            out,
            "  {} thread(s), {} part(s): {:.3e} arrivals/s wall ({:.3e} per CPU s), {:.2} s wall, {:.2} s CPU; {} arrivals ({} lost), {} activations; hash {:016x}",
            r.threads,
            r.parts,
            a / r.wall_s.max(1e-12),
            a / r.cpu_s.max(1e-12),
            r.wall_s,
            r.cpu_s,
            r.totals.arrivals,
            r.totals.lost_arrivals,
            r.totals.activations,
            r.hash
        );
    }
    if let (Some(first), Some(last)) = (runs.first(), runs.last()) {
        if runs.len() > 1 {
            outln!(
                out,
                "  speed-up {} -> {} threads: {:.2}x (wall)",
                first.threads,
                last.threads,
                first.wall_s / last.wall_s.max(1e-12)
            );
        }
    }
    let same = runs.windows(2).all(|w| w[0].hash == w[1].hash);
    if !same {
        bail!("the activations differ between thread counts (hashes above): an engine bug, please report it");
    }
    if json {
        let threads: Vec<String> = runs
            .iter()
            .map(|r| {
                format!(
                    "\"{}\": {{\"arrivals_per_s\": {:.6e}, \"arrivals_per_cpu_s\": {:.6e}, \"wall_s\": {:.4}, \"cpu_s\": {:.4}, \"arrivals\": {}, \"activations\": {}, \"hash\": \"{:016x}\"}}",
                    r.threads,
                    r.totals.arrivals as f64 / r.wall_s.max(1e-12),
                    r.totals.arrivals as f64 / r.cpu_s.max(1e-12),
                    r.wall_s,
                    r.cpu_s,
                    r.totals.arrivals,
                    r.totals.activations,
                    r.hash
                )
            })
            .collect();
        outln!(
            out,
            "{{\"nodes\": {}, \"edges\": {}, \"build_s\": {:.4}, \"build_cpu_s\": {:.4}, \"bytes_per_edge\": {:.2}, \"peak_mb\": {}, \"threads\": {{{}}}}}",
            net.n_nodes(),
            m,
            build_wall_s,
            build_cpu_s,
            per_edge,
            peak.map_or("null".to_string(), |b| format!("{:.1}", b as f64 / 1e6)),
            threads.join(", ")
        );
    }
    Ok(())
}

/// The shipped large-network config, for `--config large`.
const LARGE_TOML: &str = include_str!("../../configs/large.toml");

/// `geodyn bench large`: see the module doc.
pub fn bench_large(
    out: &mut Out,
    config: &str,
    threads: &[usize],
    n_nodes: Option<usize>,
    json: bool,
) -> Result<()> {
    let path = std::path::Path::new(config);
    let mut cfg = if path.exists() {
        LargeConfig::load(path)?
    } else if config == "large" {
        LargeConfig::parse(
            LARGE_TOML,
            std::path::Path::new("configs/large.toml (built-in)"),
        )?
    } else {
        bail!("--config {config}: no such file, and not the built-in name `large`");
    };
    if let Some(n) = n_nodes {
        if n == 0 {
            bail!("--n-nodes 0: need at least one node");
        }
        // The same density: every side scaled by the cube root of the ratio.
        let scale = (n as f64 / cfg.network.n_nodes as f64).cbrt();
        cfg.network.size_um = cfg.network.size_um.map(|s| s * scale);
        cfg.network.n_nodes = n;
    }
    if threads.is_empty() || threads.contains(&0) {
        bail!("--threads: need one or more counts, each at least 1");
    }
    let spec = &cfg.network;
    let expected = spec.expected_edges()?;
    let max_threads = threads.iter().copied().max().unwrap_or(1);
    let needed = check_large_fits(spec.n_nodes, expected, max_threads)?;
    eprintln!(
        "building {} nodes, about {expected} edges (estimated {})",
        spec.n_nodes,
        memory::human(needed)
    );
    let (t0, c0) = (Instant::now(), process_cpu_s());
    let net = build_geometric(spec)?;
    let (build_wall_s, build_cpu_s) = (t0.elapsed().as_secs_f64(), process_cpu_s() - c0);
    let stimulus = background_drive(&cfg.background, net.n_nodes());
    let mut runs = Vec::new();
    for &k in threads {
        eprintln!("simulating {} ms at {k} thread(s)", cfg.run.duration_ms());
        runs.push(run_large(&net, &cfg.run, &stimulus, k)?);
    }
    print_large(
        out,
        &net,
        build_wall_s,
        build_cpu_s,
        needed,
        cfg.run.duration_ms(),
        stimulus.len(),
        &runs,
        json,
    )
}
