//! Encoding: every image through the same initial network, in parallel, into
//! float32 `.npy` embeddings (one file per view), labels and a manifest.
//!
//! Layout of an encode directory:
//! - `manifest.json`: written last, so its presence means the encode is complete;
//! - `labels.npy` (uint8), one `<view>.npy` (float32, rows x dim) per view;
//! - while running: `<view>.npy.partial` (preallocated, chunks written in place)
//!   and `partial/` (the run's identity and one marker per committed chunk).
//!
//! A chunk is committed by syncing its rows and then renaming its marker into
//! place, so an interrupted run resumes after the last committed chunk and the
//! result is byte-identical to an uninterrupted run. Nothing named `.npy`
//! exists before the whole encode is done.

use super::{PipelineError, ViewInfo};
use crate::config::ExperimentConfig;
use crate::dataset::ImageSet;
use crate::embed::Embedder;
use crate::record::RunTotals;
use crate::sim::{Simulator, Workspace};
use crate::stimulus;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What an encode directory holds (`manifest.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub geodyn_version: String,
    pub experiment: String,
    pub config_hash: String,
    /// The config as checked (canonical TOML), so `evaluate` needs nothing else.
    pub config_toml: String,
    pub seed: u64,
    pub n_recurrent: usize,
    pub images: String,
    pub labels: String,
    /// Rows 0..n_reference come from `images`; the rest from the query set.
    pub n_reference: usize,
    /// Indices into `images` of the reference rows, if not all of it.
    pub reference_subset: Option<Vec<usize>>,
    pub query_images: Option<String>,
    pub query_labels: Option<String>,
    pub n_query_set: Option<usize>,
    /// Total rows over all shards, and this directory's part of them.
    pub n_rows_total: usize,
    pub shard: Option<(usize, usize)>,
    pub first_row: usize,
    pub n_rows: usize,
    pub chunk: usize,
    pub views: Vec<ViewInfo>,
    pub totals: RunTotals,
    /// Wall time of the simulation chunks (summed over sessions if resumed).
    pub encode_s: f64,
    pub threads: usize,
    pub network: serde_json::Value,
}

impl Manifest {
    /// Whether two manifests describe the same encode job (ignoring results).
    fn same_job(&self, o: &Manifest) -> bool {
        self.config_hash == o.config_hash
            && self.images == o.images
            && self.labels == o.labels
            && self.query_images == o.query_images
            && self.reference_subset == o.reference_subset
            && self.n_rows_total == o.n_rows_total
            && self.shard == o.shard
            && self.chunk == o.chunk
            && self.geodyn_version == o.geodyn_version
    }
}

#[derive(Clone, Debug)]
pub struct EncodeOptions {
    pub out: PathBuf,
    pub chunk: usize,
    /// (k, n): encode part k (0-based) of n disjoint parts.
    pub shard: Option<(usize, usize)>,
    pub restart: bool,
    pub progress: bool,
    /// Test hook: stop (with an error) after committing this many new chunks.
    pub stop_after_chunks: Option<usize>,
}

impl EncodeOptions {
    pub fn new(out: impl Into<PathBuf>) -> EncodeOptions {
        EncodeOptions {
            out: out.into(),
            chunk: 500,
            shard: None,
            restart: false,
            progress: true,
            stop_after_chunks: None,
        }
    }
}

/// The images to encode: a reference set and optionally a held-out query set.
pub struct EncodeData<'a> {
    pub reference: &'a ImageSet,
    /// If `reference` is a subset of its files, the indices it holds (recorded
    /// in the manifest so the baselines use exactly these images).
    pub reference_rows: Option<&'a [usize]>,
    pub query: Option<&'a ImageSet>,
}

impl EncodeData<'_> {
    fn n_rows(&self) -> usize {
        self.reference.len() + self.query.map_or(0, |q| q.len())
    }
    fn image(&self, row: usize) -> &[u8] {
        if row < self.reference.len() {
            self.reference.image(row)
        } else {
            self.query
                .map_or(&[][..], |q| q.image(row - self.reference.len()))
        }
    }
    fn label(&self, row: usize) -> u8 {
        if row < self.reference.len() {
            self.reference.labels[row]
        } else {
            self.query
                .map_or(0, |q| q.labels[row - self.reference.len()])
        }
    }
}

/// One row's views and run totals.
type RowResult = (Vec<Vec<f32>>, RunTotals);

/// A committed chunk: its run totals and wall time.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct ChunkMarker {
    totals: RunTotals,
    seconds: f64,
}

/// Seed of row `row`'s stimulus (Poisson trains): a pure function of the
/// config seed and the row, so shards and resumes draw the same trains.
pub fn stimulus_seed(seed: u64, row: usize) -> u64 {
    let mut z = seed ^ (row as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> PipelineError + '_ {
    move |source| PipelineError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), PipelineError> {
    let tmp = path.with_extension("json.tmp");
    let text =
        serde_json::to_string_pretty(value).map_err(|e| PipelineError::Other(e.to_string()))?;
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

pub fn read_manifest(dir: &Path) -> Result<Manifest, PipelineError> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            PipelineError::Incomplete(dir.to_path_buf())
        } else {
            PipelineError::Io {
                path: path.clone(),
                source,
            }
        }
    })?;
    serde_json::from_str(&text).map_err(|e| PipelineError::Corrupt {
        path,
        message: e.to_string(),
    })
}

/// Runs the encode job; returns the completed manifest. Resumes a compatible
/// partial run in `opts.out`; a complete one is returned as it is.
pub fn encode(
    cfg: &ExperimentConfig,
    data: &EncodeData,
    opts: &EncodeOptions,
) -> Result<Manifest, PipelineError> {
    let net = cfg.network.build(cfg.seed, &cfg.plastic_edges)?;
    let n_input = net.n_input();
    for (set, what) in [
        (Some(data.reference), "images"),
        (data.query, "query images"),
    ] {
        if let Some(set) = set {
            if set.pixels_per_image() != n_input {
                return Err(PipelineError::Shape(format!(
                    "{}: {what} have {} x {} = {} pixels, but the network has {} input nodes",
                    set.images_path.display(),
                    set.rows,
                    set.cols,
                    set.pixels_per_image(),
                    n_input
                )));
            }
        }
    }
    let sim = Simulator::new(&net, &cfg.run)?;
    let embedder = Embedder::new(&net, &cfg.embedding, cfg.run.duration_ms(), cfg.seed);
    let n_total = data.n_rows();
    let (first_row, n_rows) = match opts.shard {
        Some((k, n)) => {
            if n == 0 || k >= n {
                return Err(PipelineError::Other(format!(
                    "--shard {}/{}: need 0 <= K < N",
                    k, n
                )));
            }
            let a = k * n_total / n;
            let b = (k + 1) * n_total / n;
            (a, b - a)
        }
        None => (0, n_total),
    };
    if opts.chunk == 0 {
        return Err(PipelineError::Other("--chunk must be >= 1".into()));
    }
    let views: Vec<ViewInfo> = embedder
        .views()
        .iter()
        .map(|v| ViewInfo {
            name: v.name.clone(),
            dim: v.dim,
            time_ms: v.time_ms,
            file: format!("{}.npy", v.name),
        })
        .collect();
    let mut manifest = Manifest {
        geodyn_version: env!("CARGO_PKG_VERSION").to_string(),
        experiment: cfg.experiment.clone(),
        config_hash: cfg.hash.clone(),
        config_toml: toml::to_string(&cfg.raw).map_err(|e| PipelineError::Other(e.to_string()))?,
        seed: cfg.seed,
        n_recurrent: net.n_recurrent(),
        images: data.reference.images_path.display().to_string(),
        labels: data.reference.labels_path.display().to_string(),
        n_reference: data.reference.len(),
        reference_subset: data.reference_rows.map(|r| r.to_vec()),
        query_images: data.query.map(|q| q.images_path.display().to_string()),
        query_labels: data.query.map(|q| q.labels_path.display().to_string()),
        n_query_set: data.query.map(|q| q.len()),
        n_rows_total: n_total,
        shard: opts.shard,
        first_row,
        n_rows,
        chunk: opts.chunk,
        views: views.clone(),
        totals: RunTotals::default(),
        encode_s: 0.0,
        threads: rayon::current_num_threads(),
        network: crate::report::network_summary(&net),
    };

    let out = &opts.out;
    std::fs::create_dir_all(out).map_err(io(out))?;
    let partial = out.join("partial");
    if out.join("manifest.json").exists() {
        let done = read_manifest(out)?;
        if done.same_job(&manifest) && !opts.restart {
            return Ok(done);
        }
        if !opts.restart {
            return Err(PipelineError::Other(format!(
                "{}: holds a complete encode of a different job (config {}); pass --restart to replace it or choose another --out",
                out.display(),
                &done.config_hash[..12.min(done.config_hash.len())]
            )));
        }
        std::fs::remove_file(out.join("manifest.json")).map_err(io(out))?;
    }
    let progress_path = partial.join("job.json");
    let mut resuming = false;
    if progress_path.exists() && !opts.restart {
        let text = std::fs::read_to_string(&progress_path).map_err(io(&progress_path))?;
        let prev: Manifest = serde_json::from_str(&text).map_err(|e| PipelineError::Corrupt {
            path: progress_path.clone(),
            message: e.to_string(),
        })?;
        if !prev.same_job(&manifest) {
            return Err(PipelineError::Other(format!(
                "{}: holds a partial encode of a different job; pass --restart to discard it or choose another --out",
                out.display()
            )));
        }
        resuming = true;
    } else if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
    }
    std::fs::create_dir_all(&partial).map_err(io(&partial))?;
    if !resuming {
        write_json_atomic(&progress_path, &manifest)?;
    }
    for v in &views {
        let p = out.join(format!("{}.partial", v.file));
        super::npy::preallocate(&p, n_rows, v.dim, resuming).map_err(io(&p))?;
    }

    let n_chunks = n_rows.div_ceil(opts.chunk);
    let bar = if opts.progress {
        let b = ProgressBar::new(n_rows as u64);
        b.set_style(
            ProgressStyle::with_template(
                "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} images ({per_sec}, ETA {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.set_message(format!("encode {}", cfg.experiment));
        b
    } else {
        ProgressBar::hidden()
    };
    let mut totals = RunTotals::default();
    let mut encode_s = 0.0;
    let mut new_chunks = 0usize;
    for c in 0..n_chunks {
        let marker = partial.join(format!("chunk_{c:06}.json"));
        let a = c * opts.chunk;
        let b = ((c + 1) * opts.chunk).min(n_rows);
        if marker.exists() {
            let text = std::fs::read_to_string(&marker).map_err(io(&marker))?;
            let m: ChunkMarker =
                serde_json::from_str(&text).map_err(|e| PipelineError::Corrupt {
                    path: marker.clone(),
                    message: e.to_string(),
                })?;
            totals += m.totals;
            encode_s += m.seconds;
            bar.inc((b - a) as u64);
            continue;
        }
        if opts.stop_after_chunks == Some(new_chunks) {
            bar.abandon();
            return Err(PipelineError::Interrupted(new_chunks));
        }
        let tc = Instant::now();
        let results: Result<Vec<RowResult>, PipelineError> = (a..b)
            .into_par_iter()
            .map_init(Workspace::default, |ws, local| {
                let row = first_row + local;
                let stim = stimulus::encode_image(
                    data.image(row),
                    &cfg.stimulus,
                    stimulus_seed(cfg.seed, row),
                );
                let mut w = net.edge_weight.clone();
                let rec = sim.run(ws, &mut w, &stim, embedder.record_spec())?;
                let mut vecs = vec![Vec::new(); views.len()];
                embedder.embed(&net, &net.edge_weight, &rec, &mut vecs);
                bar.inc(1);
                Ok((vecs, rec.totals))
            })
            .collect();
        let results = results?;
        let mut chunk_totals = RunTotals::default();
        for (_, t) in &results {
            chunk_totals += *t;
        }
        for (vi, v) in views.iter().enumerate() {
            let mut block = Vec::with_capacity((b - a) * v.dim);
            for (vecs, _) in &results {
                if vecs[vi].len() != v.dim {
                    return Err(PipelineError::Other(format!(
                        "view {}: embedding of length {} (expected {})",
                        v.name,
                        vecs[vi].len(),
                        v.dim
                    )));
                }
                block.extend_from_slice(&vecs[vi]);
            }
            let p = out.join(format!("{}.partial", v.file));
            super::npy::write_rows(&p, n_rows, v.dim, a, &block).map_err(io(&p))?;
        }
        let seconds = tc.elapsed().as_secs_f64();
        if opts.progress && bar.is_hidden() {
            // No terminal (a log, a job array): one line per committed chunk.
            let done = b;
            let rate = (b - a) as f64 / seconds.max(1e-9);
            eprintln!(
                "encode: chunk {}/{} committed, {done}/{n_rows} images, {rate:.1} images/s, ETA {:.0} s",
                c + 1,
                n_chunks,
                (n_rows - done) as f64 / rate
            );
        }
        write_json_atomic(
            &marker,
            &ChunkMarker {
                totals: chunk_totals,
                seconds,
            },
        )?;
        totals += chunk_totals;
        encode_s += seconds;
        new_chunks += 1;
    }
    bar.finish_and_clear();

    let labels: Vec<u8> = (first_row..first_row + n_rows)
        .map(|r| data.label(r))
        .collect();
    let lp = out.join("labels.npy");
    ndarray_npy::write_npy(&lp, &ndarray::Array1::from(labels))
        .map_err(|e| PipelineError::Other(format!("{}: {e}", lp.display())))?;
    for v in &views {
        let p = out.join(format!("{}.partial", v.file));
        std::fs::rename(&p, out.join(&v.file)).map_err(io(&p))?;
    }
    manifest.totals = totals;
    // Wall time of the chunks themselves, summed over sessions if resumed.
    manifest.encode_s = encode_s;
    write_json_atomic(&out.join("manifest.json"), &manifest)?;
    std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
    Ok(manifest)
}

/// Merges the shard directories of one encode job (`--shard K/N` for every K)
/// into `out`: views and labels concatenated in shard order, totals and times
/// summed. The result is the same as an unsharded encode's, byte for byte in
/// its `.npy` files. The manifest is written last.
pub fn merge_shards(dirs: &[PathBuf], out: &Path) -> Result<Manifest, PipelineError> {
    let mut parts: Vec<Manifest> = dirs
        .iter()
        .map(|d| read_manifest(d))
        .collect::<Result<_, _>>()?;
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| parts[i].shard.map_or(0, |s| s.0));
    let first = parts[order[0]].clone();
    let Some((_, n_shards)) = first.shard else {
        return Err(PipelineError::Other(format!(
            "{}: is not a shard",
            dirs[order[0]].display()
        )));
    };
    if parts.len() != n_shards {
        return Err(PipelineError::Other(format!(
            "merge: {} directories given for {n_shards} shards",
            parts.len()
        )));
    }
    let mut next_row = 0;
    for (k, &i) in order.iter().enumerate() {
        let m = &parts[i];
        let mut probe = first.clone();
        probe.shard = m.shard;
        if !probe.same_job(m) || m.shard != Some((k, n_shards)) || m.first_row != next_row {
            return Err(PipelineError::Other(format!(
                "{}: not shard {k}/{n_shards} of the same encode job as {}",
                dirs[i].display(),
                dirs[order[0]].display()
            )));
        }
        next_row += m.n_rows;
    }
    if next_row != first.n_rows_total {
        return Err(PipelineError::Other(format!(
            "merge: the shards cover {next_row} of {} rows",
            first.n_rows_total
        )));
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    for v in &first.views {
        let tmp = out.join(format!("{}.partial", v.file));
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        use std::io::Write;
        f.write_all(&super::npy::header_f32(first.n_rows_total, v.dim))
            .map_err(io(&tmp))?;
        for &i in &order {
            let src = dirs[i].join(&v.file);
            let bytes = std::fs::read(&src).map_err(io(&src))?;
            let h = super::npy::header_f32(parts[i].n_rows, v.dim).len();
            if bytes.len() != h + parts[i].n_rows * v.dim * 4 {
                return Err(PipelineError::Corrupt {
                    path: src,
                    message: "size does not match its manifest".into(),
                });
            }
            f.write_all(&bytes[h..]).map_err(io(&tmp))?;
        }
        f.sync_all().map_err(io(&tmp))?;
    }
    let mut labels = Vec::with_capacity(first.n_rows_total);
    for &i in &order {
        let p = dirs[i].join("labels.npy");
        let l: ndarray::Array1<u8> =
            ndarray_npy::read_npy(&p).map_err(|e| PipelineError::Corrupt {
                path: p.clone(),
                message: e.to_string(),
            })?;
        labels.extend(l.iter().copied());
    }
    let lp = out.join("labels.npy");
    ndarray_npy::write_npy(&lp, &ndarray::Array1::from(labels))
        .map_err(|e| PipelineError::Other(format!("{}: {e}", lp.display())))?;
    for v in &first.views {
        let tmp = out.join(format!("{}.partial", v.file));
        std::fs::rename(&tmp, out.join(&v.file)).map_err(io(&tmp))?;
    }
    let mut merged = first;
    merged.shard = None;
    merged.first_row = 0;
    merged.n_rows = merged.n_rows_total;
    merged.totals = RunTotals::default();
    merged.encode_s = 0.0;
    for m in parts.iter_mut() {
        merged.totals += m.totals;
        merged.encode_s += m.encode_s;
    }
    write_json_atomic(&out.join("manifest.json"), &merged)?;
    Ok(merged)
}
