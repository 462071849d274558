//! The subcommands, each a thin layer over library calls: parse, build,
//! call the runner, print.

use super::progress::Progress;
use super::{Cli, Command, DataArgs, EncodeArgs, ExperimentName, QueryArgs, ReproduceArgs};
use crate::config::{self, ExperimentConfig};
use crate::dataset::ImageSet;
use crate::experiments::{self, ExperimentOptions};
use crate::pipeline::{self, DataSpec, EncodeData, EncodeOptions, EvaluateOptions, Manifest};
use crate::report::{self, Report};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Reads a config (path or built-in name), applies the command-line
/// overrides to the raw config, then checks it.
pub fn load_config(spec: &str, n_recurrent: Option<usize>) -> Result<ExperimentConfig> {
    let (mut raw, path) = config::read_raw(spec)?;
    if let Some(n) = n_recurrent {
        raw.network.n_recurrent = n;
    }
    Ok(raw.check(&path)?)
}

pub fn data_spec(d: &DataArgs) -> DataSpec {
    DataSpec {
        files: d.images.clone().zip(d.labels.clone()),
        limit: d.limit,
    }
}

fn query_files(q: &QueryArgs) -> Option<(PathBuf, PathBuf)> {
    q.query_images.clone().zip(q.query_labels.clone())
}

/// Entry point: returns the process exit code's cause.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Simulate {
            config,
            image,
            n_recurrent,
            path_events,
            data,
        } => super::inspect::simulate(&config, image, n_recurrent, path_events, &data),
        Command::Network {
            config,
            n_recurrent,
            export,
        } => super::inspect::network(&config, n_recurrent, export.as_deref()),
        Command::Bench {
            what,
            n_recurrent,
            digits,
            n,
            dim,
        } => match what {
            super::BenchWhat::Engine => super::inspect::bench_engine(n_recurrent, digits),
            super::BenchWhat::Knn => super::inspect::bench_knn(n, dim),
        },
        Command::Encode(a) => encode_cmd(&a).map(|_| ()),
        Command::Evaluate {
            dir,
            out,
            l2,
            knn_only,
            trajectory,
        } => {
            let out = out.unwrap_or_else(|| dir.clone());
            let mut opts = EvaluateOptions::new(&out);
            opts.force_l2 = l2;
            opts.knn_only = knn_only;
            opts.trajectory = trajectory;
            let rep = pipeline::evaluate(&dir, &opts, &Progress::new())?;
            print_summary(&rep, &out);
            Ok(())
        }
        Command::Merge { shards, out } => {
            let m = pipeline::merge_shards(&shards, &out, &Progress::new())?;
            println!(
                "merged {} shards: {} rows in {}",
                shards.len(),
                m.n_rows,
                out.display()
            );
            Ok(())
        }
        Command::Run(a) => run_cmd(&a),
        Command::Reproduce(a) => reproduce_cmd(&a),
    }
}

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

fn encode_cmd(a: &EncodeArgs) -> Result<Manifest> {
    let cfg = load_config(&a.config, a.n_recurrent)?;
    let (set, rows) = pipeline::load_images(&data_spec(&a.data))?;
    let query = match query_files(&a.query) {
        Some((i, l)) => Some(ImageSet::load(&i, &l)?),
        None => None,
    };
    let mut opts = EncodeOptions::new(&a.out);
    opts.chunk = a.chunk;
    opts.restart = a.restart;
    opts.shard = a.shard.as_deref().map(parse_shard).transpose()?;
    eprintln!(
        "encode: {} (N = {}), {} images{} -> {}",
        cfg.experiment(),
        cfg.n_recurrent(),
        set.len(),
        query
            .as_ref()
            .map(|q| format!(" + {} held-out queries", q.len()))
            .unwrap_or_default(),
        opts.out.display()
    );
    let data = EncodeData {
        reference: &set,
        reference_rows: rows.as_deref(),
        query: query.as_ref(),
    };
    let m = pipeline::with_threads(a.threads, || {
        pipeline::encode(&cfg, &data, &opts, &Progress::new())
    })?;
    eprintln!(
        "encode: done, {} rows in {:.1} s ({:.3e} arrivals/s over {} threads)",
        m.n_rows,
        m.encode_s,
        m.totals.arrivals as f64 / m.encode_s.max(1e-9),
        m.threads
    );
    Ok(m)
}

fn print_summary(rep: &Report, out: &Path) {
    println!("{}", report::render_markdown(rep));
    println!("report: {}", out.join("report.md").display());
}

fn run_cmd(a: &EncodeArgs) -> Result<()> {
    if a.shard.is_some() {
        bail!("run: --shard is for `geodyn encode`; merge shards before evaluating");
    }
    encode_cmd(a)?;
    let rep = pipeline::with_threads(a.threads, || {
        pipeline::evaluate(&a.out, &EvaluateOptions::new(&a.out), &Progress::new())
    })?;
    print_summary(&rep, &a.out);
    Ok(())
}

fn reproduce_cmd(a: &ReproduceArgs) -> Result<()> {
    let name = match a.experiment {
        ExperimentName::Weights if a.sweep => "weights-sweep",
        ExperimentName::Weights => "weights",
        ExperimentName::Paths => "paths",
        ExperimentName::Stdp => "stdp",
    };
    let dir = if a.quick {
        format!("{}-quick", name.trim_end_matches("-sweep"))
    } else {
        name.to_string()
    };
    let opts = ExperimentOptions {
        quick: a.quick,
        sweep: a.sweep,
        out: a
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(dir)),
        threads: a.threads,
        data: data_spec(&a.data),
        query: query_files(&a.query),
        config: a.config.as_deref().map(config::read_raw).transpose()?,
        restart: a.restart,
    };
    let observer = Progress::new();
    let rep = match a.experiment {
        ExperimentName::Weights => experiments::reproduce_weights(&opts, &observer)?,
        ExperimentName::Paths => experiments::reproduce_paths(&opts, &observer)?,
        ExperimentName::Stdp => experiments::reproduce_stdp(&opts, &observer)?,
    };
    print_summary(&rep, &opts.out);
    Ok(())
}
