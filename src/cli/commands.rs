//! The subcommands, each a thin layer over library calls: parse, build,
//! call the runner, print.

use super::output::{noteln, outln, Out};
use super::progress::Progress;
use super::{Cli, Command, DataArgs, EncodeArgs, ExperimentName, QueryArgs, ReproduceArgs};
use crate::config::{self, ExperimentConfig};
use crate::experiments::{self, ExperimentOptions};
use crate::network::NetworkControl;
use crate::pipeline::{
    self, DataSpec, EncodeData, EncodeOptions, EvaluateOptions, Manifest, Protocol,
};
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
    let cfg = raw.check(&path)?;
    // Only `reproduce stdp` (which does not come through here) runs it.
    cfg.refuse_homeostasis(&path, "this command")?;
    Ok(cfg)
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
    let mut out = Out::new();
    dispatch(cli, &mut out)?;
    out.flush()?;
    Ok(())
}

fn dispatch(cli: Cli, out: &mut Out) -> Result<()> {
    match cli.command {
        Command::Simulate {
            config,
            image,
            n_recurrent,
            path_events,
            export_run,
            data,
        } => super::inspect::simulate(
            out,
            &config,
            image,
            n_recurrent,
            path_events,
            export_run.as_deref(),
            &data,
        ),
        Command::Network {
            config,
            n_recurrent,
            export,
        } => super::inspect::network(out, &config, n_recurrent, export.as_deref()),
        Command::Bench {
            what,
            n_recurrent,
            digits,
            record,
            n,
            dim,
            config,
            threads,
            n_nodes,
            json,
        } => match what {
            super::BenchWhat::Engine => {
                for n_rec in n_recurrent {
                    super::inspect::bench_engine(out, n_rec, digits, record)?;
                }
                Ok(())
            }
            super::BenchWhat::Knn => super::inspect::bench_knn(out, n, dim),
            super::BenchWhat::Large => {
                super::bench_large::bench_large(out, &config, &threads, n_nodes, json)
            }
        },
        Command::Encode(a) => encode_cmd(&a, false).map(|_| ()),
        Command::Evaluate {
            dir,
            out: out_dir,
            l2,
            knn_only,
            linear_splits,
            trajectory,
        } => {
            let dir_out = out_dir.unwrap_or_else(|| dir.clone());
            let mut opts = EvaluateOptions::new(&dir_out);
            opts.force_l2 = l2;
            opts.knn_only = knn_only;
            opts.linear_splits = linear_splits.map(|k| k as usize);
            opts.trajectory = trajectory;
            let rep = pipeline::evaluate(&dir, &opts, &Progress::new())?;
            print_summary(out, &rep, &dir_out)
        }
        Command::Merge {
            shards,
            out: merged,
        } => {
            let m = pipeline::merge_shards(&shards, &merged, &Progress::new())?;
            outln!(
                out,
                "merged {} shards: {} rows in {}",
                shards.len(),
                m.n_rows,
                merged.display()
            );
            Ok(())
        }
        Command::Run(a) => run_cmd(out, &a),
        Command::Reproduce(a) => reproduce_cmd(out, &a),
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

/// Loads and checks what an encode needs; `evaluate_after` (for `run`)
/// also checks, before any encoding, that the evaluation's splits will fit
/// the data.
fn encode_cmd(a: &EncodeArgs, evaluate_after: bool) -> Result<Manifest> {
    let cfg = load_config(&a.config, a.n_recurrent)?;
    let (set, rows) = pipeline::load_images(&data_spec(&a.data))?;
    let query = match query_files(&a.query) {
        Some((i, l)) => Some(pipeline::load_query(&i, &l, &set)?),
        None => None,
    };
    if evaluate_after {
        let protocol = match &query {
            Some(q) => Protocol::HeldOut {
                n_reference: set.len(),
                n_query: q.len(),
            },
            None => Protocol::RandomSplit,
        };
        let n_rows = set.len() + query.as_ref().map_or(0, |q| q.len());
        if let Some(note) = pipeline::check_feasible(cfg.evaluation(), protocol, n_rows)? {
            noteln!("note: {note}");
        }
    }
    let mut opts = EncodeOptions::new(&a.out);
    opts.chunk = a.chunk;
    opts.restart = a.restart;
    opts.shard = a.shard.as_deref().map(parse_shard).transpose()?;
    opts.network_control = match (a.control.shuffled_latencies, a.control.mean_latencies) {
        (true, true) => {
            bail!("encode: --shuffled-latencies and --mean-latencies are two encodes; ask for one (reproduce weights runs both)")
        }
        (true, false) => Some(NetworkControl::shuffled_for(cfg.seed())),
        (false, true) => Some(NetworkControl::MeanLatencies),
        (false, false) => None,
    };
    noteln!(
        "encode: {}{} (N = {}), {} images{} -> {}",
        cfg.experiment(),
        opts.network_control
            .map(|c| format!(", control {}", c.name()))
            .unwrap_or_default(),
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
    noteln!(
        "encode: done, {} rows in {:.1} s ({:.3e} arrivals/s over {} threads)",
        m.n_rows,
        m.encode_s,
        m.totals.arrivals as f64 / m.encode_s.max(1e-9),
        m.threads
    );
    Ok(m)
}

fn print_summary(out: &mut Out, rep: &Report, dir: &Path) -> Result<()> {
    outln!(out, "{}", report::render_markdown(rep));
    outln!(out, "report: {}", dir.join("report.md").display());
    Ok(())
}

fn run_cmd(out: &mut Out, a: &EncodeArgs) -> Result<()> {
    if a.shard.is_some() {
        bail!("run: --shard is for `geodyn encode`; merge shards before evaluating");
    }
    encode_cmd(a, true)?;
    let rep = pipeline::with_threads(a.threads, || {
        pipeline::evaluate(&a.out, &EvaluateOptions::new(&a.out), &Progress::new())
    })?;
    print_summary(out, &rep, &a.out)
}

fn reproduce_cmd(out: &mut Out, a: &ReproduceArgs) -> Result<()> {
    let name = match a.experiment {
        ExperimentName::Weights if a.sweep => "weights-sweep",
        ExperimentName::Weights if a.velocity_sweep => "weights-velocity-sweep",
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
        velocity_sweep: a.velocity_sweep,
        out: a
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(dir)),
        threads: a.threads,
        data: data_spec(&a.data),
        query: query_files(&a.query),
        config: a.config.as_deref().map(config::read_raw).transpose()?,
        restart: a.restart,
        linear_splits: a.linear_splits.map(|k| k as usize),
        shuffled_latencies: a.control.shuffled_latencies,
        mean_latencies: a.control.mean_latencies,
    };
    let observer = Progress::new();
    let rep = match a.experiment {
        ExperimentName::Weights => experiments::reproduce_weights(&opts, &observer)?,
        ExperimentName::Paths => experiments::reproduce_paths(&opts, &observer)?,
        ExperimentName::Stdp => experiments::reproduce_stdp(&opts, &observer)?,
    };
    print_summary(out, &rep, &opts.out)
}
