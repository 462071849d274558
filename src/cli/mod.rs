//! cli: the `geodyn` command line. Arguments are parsed and validated first
//! (clap), then the library objects are built; `main` only maps the result to
//! an exit code. This is the only module that uses `anyhow`.

mod bench_large;
mod commands;
mod inspect;
mod output;
mod progress;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

pub use commands::run;
pub use output::failure;

#[derive(Debug, Parser)]
#[command(
    name = "geodyn",
    version,
    about = "Exact event-driven simulation of geometric dynamic networks, and classification from their dynamics without gradient descent.",
    long_about = "Exact event-driven simulation of geometric dynamic networks (edge lengths, conduction \
velocities, refractory states, STDP), and classification of datasets from the dynamics with a plain kNN \
or linear readout, always beside raw-pixel baselines.\n\n\
Experiments are TOML configs. CONFIG is a file path or the name of a built-in config: \
weights (experiment 3), paths (experiment 1), stdp (experiment 2). Data default to the built-in \
10,000 MNIST digits.\n\n\
Start with:\n  geodyn reproduce weights --quick     (a two-minute smoke run)\n  geodyn simulate                      (one digit through the experiment-3 network)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The dataset to use (default: the built-in MNIST-10k).
#[derive(Debug, Clone, Args, Default)]
pub struct DataArgs {
    /// IDX images file (gzip or raw); needs --labels.
    #[arg(long, requires = "labels")]
    pub images: Option<PathBuf>,
    /// IDX labels file; needs --images.
    #[arg(long, requires = "images")]
    pub labels: Option<PathBuf>,
    /// Use N images: a seeded draw with an equal share of each class (the
    /// same N images in every command), kept in file order.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// A held-out query set (reference = the main dataset).
#[derive(Debug, Clone, Args, Default)]
pub struct QueryArgs {
    /// IDX images of a held-out query set, classified against the main set as reference.
    #[arg(long, requires = "query_labels")]
    pub query_images: Option<PathBuf>,
    #[arg(long, requires = "query_images")]
    pub query_labels: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one image through a network and print its activity, timing and the
    /// start of its activation path (a demo of the engine).
    Simulate {
        /// Config file or built-in name.
        #[arg(default_value = "weights")]
        config: String,
        /// Index of the image in the dataset.
        #[arg(long, default_value_t = 0)]
        image: usize,
        /// Override the number of recurrent nodes.
        #[arg(long)]
        n_recurrent: Option<usize>,
        /// Print this many activation-path events.
        #[arg(long, default_value_t = 12)]
        path_events: usize,
        /// Also write the run for another simulator to rebuild and compare:
        /// the network, the input trains, every activation with its causal
        /// edge, per-node counts, the final weights (`.npy`, with `run.json`).
        #[arg(long, value_name = "DIR")]
        export_run: Option<PathBuf>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Build a config's network and report its geometry: latency and
    /// refraction-ratio (R_target / latency) distributions; optionally export it
    /// as .npy arrays.
    Network {
        #[arg(default_value = "weights")]
        config: String,
        #[arg(long)]
        n_recurrent: Option<usize>,
        /// Write the network as .npy arrays (with a README of the layout) to DIR.
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
    },
    /// Encode a dataset: run every image through the network (in parallel) and
    /// write the embeddings as float32 .npy, with labels and a JSON manifest.
    /// Interrupted runs resume from the last committed chunk.
    Encode(EncodeArgs),
    /// Evaluate embeddings (from `encode`) with kNN and linear readouts, beside
    /// raw-pixel and random-projection baselines; writes a report.
    Evaluate {
        /// Directory written by `geodyn encode`.
        dir: PathBuf,
        /// Where to write report.json, report.md and figures (default: DIR).
        #[arg(long)]
        out: Option<PathBuf>,
        /// L2-normalise every vector, embeddings and baselines alike, before
        /// classification (overrides the config's embedding.normalize).
        #[arg(long)]
        l2: bool,
        /// Skip the linear readouts (kNN only).
        #[arg(long)]
        knn_only: bool,
        /// Fit the linear readouts on the first K splits only (a time budget;
        /// the kNN uses every split).
        #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
        linear_splits: Option<u64>,
        /// Also evaluate the weight trajectory: all snapshots up to each time,
        /// concatenated (kNN only; memory grows with the number of snapshots).
        #[arg(long)]
        trajectory: bool,
    },
    /// Merge the directories of a sharded encode (`--shard K/N` for every K)
    /// into one, ready for `evaluate`.
    Merge {
        /// The shard directories, in any order.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Encode + evaluate + report for one config.
    Run(EncodeArgs),
    /// Reproduce an experiment of the source: weights (3), paths (1) or stdp (2).
    Reproduce(ReproduceArgs),
    /// Speed benchmarks: the engine on the experiment-3 network, or the kNN protocol.
    Bench {
        #[arg(value_enum, default_value = "engine")]
        what: BenchWhat,
        /// Engine: recurrent nodes; several (`200,400,1000`) for one block each.
        #[arg(long, value_delimiter = ',', default_value = "200")]
        n_recurrent: Vec<usize>,
        /// Engine: number of digits to simulate.
        #[arg(long, default_value_t = 50)]
        digits: usize,
        /// Engine: record what experiment 3 records (the weight snapshots and
        /// the activity bins), as an encode does; without it only totals.
        #[arg(long)]
        record: bool,
        /// kNN: number of vectors and their dimension.
        #[arg(long, default_value_t = 10_000)]
        n: usize,
        #[arg(long, default_value_t = 39_800)]
        dim: usize,
        /// Large: the large-network config, a file or `large` (the shipped
        /// configs/large.toml).
        #[arg(long, default_value = "large")]
        config: String,
        /// Large: thread counts to run at, each with the network in as many parts.
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        threads: Vec<usize>,
        /// Large: another node count at the config's density (the box scaled).
        #[arg(long)]
        n_nodes: Option<usize>,
        /// Large: end with one JSON line of the figures.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchWhat {
    Engine,
    Knn,
    /// A 10^5-node geometric network under background drive, at 1 and 2 threads.
    Large,
}

#[derive(Debug, Clone, Args)]
pub struct EncodeArgs {
    /// Config file or built-in name.
    pub config: String,
    /// Output directory.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub query: QueryArgs,
    /// Override the number of recurrent nodes.
    #[arg(long)]
    pub n_recurrent: Option<usize>,
    /// Encode only part K of N disjoint parts (e.g. 3/8), for job arrays.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Images per committed chunk.
    #[arg(long, default_value_t = 500)]
    pub chunk: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Start afresh even if OUT holds a compatible partial run.
    #[arg(long)]
    pub restart: bool,
    #[command(flatten)]
    pub control: ControlArgs,
}

/// The geometry controls (issue 13): the config's network with its delays
/// taken out of their geometric places.
#[derive(Debug, Clone, Args, Default)]
pub struct ControlArgs {
    /// Geometry control: the latencies permuted among the edges of each edge
    /// class (a permutation seeded from the config seed; weights, plasticity
    /// and everything else as built).
    #[arg(long)]
    pub shuffled_latencies: bool,
    /// Geometry control: every edge's latency set to the mean latency of its
    /// edge class.
    #[arg(long)]
    pub mean_latencies: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ReproduceArgs {
    #[arg(value_enum)]
    pub experiment: ExperimentName,
    /// Smoke version: a few hundred images, small N; finishes in about two minutes.
    #[arg(long)]
    pub quick: bool,
    /// Experiment 3: sweep N over 5, 10, 25, 50, 100, 200, 300, 400.
    #[arg(long)]
    pub sweep: bool,
    /// Experiment 3: the rate, latency and volley codes at velocities 10, 20,
    /// 50, 100, 200 and 1000 um/ms, with figures of accuracy against the
    /// median refraction ratio (one subdirectory per point).
    #[arg(long, conflicts_with = "sweep")]
    pub velocity_sweep: bool,
    /// Output directory (default: runs/<experiment>[-quick]).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub query: QueryArgs,
    #[arg(long)]
    pub threads: Option<usize>,
    /// Use this config instead of the built-in one.
    #[arg(long)]
    pub config: Option<String>,
    /// Start the encode afresh even if OUT holds a partial or different one.
    #[arg(long)]
    pub restart: bool,
    /// Experiment 3: fit the linear readouts on the first K splits only
    /// (default: the experiment's budget; the kNN uses every split).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    pub linear_splits: Option<u64>,
    /// Experiment 3: also encode and evaluate the geometry controls asked
    /// for, each in OUT/<control>/, with rows `<view>_<control>` in the report.
    #[command(flatten)]
    pub control: ControlArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExperimentName {
    Weights,
    Paths,
    Stdp,
}
