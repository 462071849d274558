//! The encode store: every image through the same initial network, in
//! parallel, into float32 `.npy` embeddings (one file per view), labels and a
//! manifest; resumable, shardable, mergeable.
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

use super::encoder::{flatten_view, sum_totals, Encoder, RowResult};
use super::observer::{Event, Observer};
use super::{PipelineError, ViewInfo};
use crate::config::ExperimentConfig;
use crate::dataset::ImageSet;
use crate::record::RunTotals;
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
            && self.views == o.views
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
}

impl EncodeOptions {
    pub fn new(out: impl Into<PathBuf>) -> EncodeOptions {
        EncodeOptions {
            out: out.into(),
            chunk: 500,
            shard: None,
            restart: false,
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
    pub fn n_rows(&self) -> usize {
        self.reference.len() + self.query.map_or(0, |q| q.len())
    }
    /// Row `row`'s pixels: reference rows first, then query rows.
    pub fn image(&self, row: usize) -> &[u8] {
        if row < self.reference.len() {
            self.reference.image(row)
        } else {
            self.query
                .map_or(&[][..], |q| q.image(row - self.reference.len()))
        }
    }
    pub fn label(&self, row: usize) -> u8 {
        if row < self.reference.len() {
            self.reference.labels[row]
        } else {
            self.query
                .map_or(0, |q| q.labels[row - self.reference.len()])
        }
    }
}

/// A committed chunk: its run totals and wall time.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct ChunkMarker {
    totals: RunTotals,
    seconds: f64,
}

pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> PipelineError + '_ {
    move |source| PipelineError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `value` as JSON to `path` atomically: a temporary file, synced, then
/// renamed over `path`.
pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), PipelineError> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| PipelineError::Other(e.to_string()))?;
    crate::report::write_atomic(path, text.as_bytes()).map_err(io(path))
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

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, PipelineError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| PipelineError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Runs the encode job of `cfg` on `data`; returns the completed manifest.
/// Resumes a compatible partial run in `opts.out`; a complete one is returned
/// as it is.
pub fn encode(
    cfg: &ExperimentConfig,
    data: &EncodeData,
    opts: &EncodeOptions,
    observer: &dyn Observer,
) -> Result<Manifest, PipelineError> {
    let net = cfg.build_network()?;
    let encoder = Encoder::new(&net, cfg)?;
    encode_with(&encoder, cfg, data, opts, observer)
}

/// The rows `first_row..first_row + n_rows` of shard `shard` of `n_total` rows.
fn shard_rows(
    shard: Option<(usize, usize)>,
    n_total: usize,
) -> Result<(usize, usize), PipelineError> {
    match shard {
        Some((k, n)) => {
            if n == 0 || k >= n {
                return Err(PipelineError::Other(format!(
                    "--shard {k}/{n}: need 0 <= K < N"
                )));
            }
            let a = k * n_total / n;
            let b = (k + 1) * n_total / n;
            Ok((a, b - a))
        }
        None => Ok((0, n_total)),
    }
}

/// The manifest of a job before it runs (no totals yet).
fn job_manifest(
    encoder: &Encoder,
    cfg: &ExperimentConfig,
    data: &EncodeData,
    opts: &EncodeOptions,
) -> Result<Manifest, PipelineError> {
    let n_total = data.n_rows();
    let (first_row, n_rows) = shard_rows(opts.shard, n_total)?;
    let views = encoder
        .views()
        .iter()
        .map(|v| ViewInfo {
            name: v.name.clone(),
            dim: v.dim,
            time_ms: v.time_ms,
            file: format!("{}.npy", v.name),
        })
        .collect();
    Ok(Manifest {
        geodyn_version: env!("CARGO_PKG_VERSION").to_string(),
        experiment: cfg.experiment().to_string(),
        config_hash: cfg.hash().to_string(),
        config_toml: toml::to_string(cfg.raw()).map_err(|e| PipelineError::Other(e.to_string()))?,
        seed: cfg.seed(),
        n_recurrent: encoder.network().n_recurrent(),
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
        views,
        totals: RunTotals::default(),
        encode_s: 0.0,
        threads: rayon::current_num_threads(),
        network: crate::report::network_summary(encoder.network()),
    })
}

/// What to do in the output directory.
enum Start {
    /// A complete encode of this job is there.
    Done(Box<Manifest>),
    /// Start the run, or resume the partial one.
    Run,
}

/// Checks what `opts.out` holds against `job`.
fn prepare_dir(job: &Manifest, opts: &EncodeOptions) -> Result<Start, PipelineError> {
    let out = &opts.out;
    std::fs::create_dir_all(out).map_err(io(out))?;
    let partial = out.join("partial");
    if out.join("manifest.json").exists() {
        let done = read_manifest(out)?;
        if done.same_job(job) && !opts.restart {
            return Ok(Start::Done(Box::new(done)));
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
    let job_path = partial.join("job.json");
    let mut resuming = false;
    if job_path.exists() && !opts.restart {
        let prev: Manifest = read_json(&job_path)?;
        if !prev.same_job(job) {
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
        write_json_atomic(&job_path, job)?;
    }
    for v in &job.views {
        let p = out.join(format!("{}.partial", v.file));
        super::npy::preallocate(&p, job.n_rows, v.dim, resuming).map_err(io(&p))?;
    }
    Ok(Start::Run)
}

/// Writes one chunk's rows (local rows `a..`) into the partial view files.
fn write_chunk(
    job: &Manifest,
    out: &Path,
    a: usize,
    results: &[RowResult],
) -> Result<(), PipelineError> {
    for (vi, v) in job.views.iter().enumerate() {
        let block = flatten_view(results, vi, &v.name, v.dim)?;
        let p = out.join(format!("{}.partial", v.file));
        super::npy::write_rows(&p, job.n_rows, v.dim, a, &block).map_err(io(&p))?;
    }
    Ok(())
}

/// Runs the encode job with a prepared encoder (its network, run parameters
/// and initial weights) and writes it to `opts.out`.
pub fn encode_with(
    encoder: &Encoder,
    cfg: &ExperimentConfig,
    data: &EncodeData,
    opts: &EncodeOptions,
    observer: &dyn Observer,
) -> Result<Manifest, PipelineError> {
    for (set, what) in [
        (Some(data.reference), "images"),
        (data.query, "query images"),
    ] {
        if let Some(set) = set {
            encoder.check_images(set, what)?;
        }
    }
    if opts.chunk == 0 {
        return Err(PipelineError::Other("--chunk must be >= 1".into()));
    }
    let mut manifest = job_manifest(encoder, cfg, data, opts)?;
    if let Start::Done(m) = prepare_dir(&manifest, opts)? {
        return Ok(*m);
    }
    let (out, partial) = (&opts.out, opts.out.join("partial"));
    let (first_row, n_rows) = (manifest.first_row, manifest.n_rows);
    let n_chunks = n_rows.div_ceil(opts.chunk);
    observer.observe(Event::Started {
        task: format!("encode {}", cfg.experiment()),
        total: n_rows,
    });
    let mut totals = RunTotals::default();
    let mut encode_s = 0.0;
    let mut new_chunks = 0usize;
    for c in 0..n_chunks {
        let marker = partial.join(format!("chunk_{c:06}.json"));
        let a = c * opts.chunk;
        let b = ((c + 1) * opts.chunk).min(n_rows);
        if marker.exists() {
            let m: ChunkMarker = read_json(&marker)?;
            totals += m.totals;
            encode_s += m.seconds;
            observer.observe(Event::Advanced { n: b - a });
            continue;
        }
        if observer.should_stop() {
            observer.observe(Event::Finished);
            return Err(PipelineError::Interrupted(new_chunks));
        }
        let tc = Instant::now();
        let image = |row: usize| data.image(row);
        let results = encoder.encode_rows(first_row + a..first_row + b, &image, observer)?;
        let chunk_totals = sum_totals(&results);
        write_chunk(&manifest, out, a, &results)?;
        let seconds = tc.elapsed().as_secs_f64();
        write_json_atomic(
            &marker,
            &ChunkMarker {
                totals: chunk_totals,
                seconds,
            },
        )?;
        observer.observe(Event::ChunkCommitted {
            chunk: c,
            n_chunks,
            chunk_rows: b - a,
            rows_done: b,
            rows_total: n_rows,
            seconds,
        });
        totals += chunk_totals;
        encode_s += seconds;
        new_chunks += 1;
    }
    observer.observe(Event::Finished);
    finish(&mut manifest, data, out, totals, encode_s)?;
    Ok(manifest)
}

/// Labels, the views renamed into place, then the manifest (last: its
/// presence means complete), then the partial directory removed.
fn finish(
    manifest: &mut Manifest,
    data: &EncodeData,
    out: &Path,
    totals: RunTotals,
    encode_s: f64,
) -> Result<(), PipelineError> {
    let rows = manifest.first_row..manifest.first_row + manifest.n_rows;
    commit_views(out, rows.map(|r| data.label(r)).collect(), &manifest.views)?;
    manifest.totals = totals;
    // Wall time of the chunks themselves, summed over sessions if resumed.
    manifest.encode_s = encode_s;
    write_json_atomic(&out.join("manifest.json"), manifest)?;
    let partial = out.join("partial");
    std::fs::remove_dir_all(&partial).map_err(io(&partial))
}

/// Writes the labels and renames every `<view>.npy.partial` into place
/// (the manifest, which marks the directory complete, comes after).
fn commit_views(out: &Path, labels: Vec<u8>, views: &[ViewInfo]) -> Result<(), PipelineError> {
    let lp = out.join("labels.npy");
    ndarray_npy::write_npy(&lp, &ndarray::Array1::from(labels))
        .map_err(|e| PipelineError::Other(format!("{}: {e}", lp.display())))?;
    for v in views {
        let p = out.join(format!("{}.partial", v.file));
        std::fs::rename(&p, out.join(&v.file)).map_err(io(&p))?;
    }
    Ok(())
}

/// Checks that `parts` (in shard order) are the shards of one job, in order
/// and complete.
fn check_shards(
    dirs: &[PathBuf],
    parts: &[Manifest],
    order: &[usize],
) -> Result<(), PipelineError> {
    let first = &parts[order[0]];
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
    Ok(())
}

/// Merges the shard directories of one encode job (`--shard K/N` for every K)
/// into `out`: views and labels concatenated in shard order, totals and times
/// summed. The result is the same as an unsharded encode's, byte for byte in
/// its `.npy` files. The manifest is written last.
pub fn merge_shards(dirs: &[PathBuf], out: &Path) -> Result<Manifest, PipelineError> {
    if dirs.is_empty() {
        return Err(PipelineError::Other(
            "merge: no shard directories given".into(),
        ));
    }
    let parts: Vec<Manifest> = dirs
        .iter()
        .map(|d| read_manifest(d))
        .collect::<Result<_, _>>()?;
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| parts[i].shard.map_or(0, |s| s.0));
    check_shards(dirs, &parts, &order)?;
    let first = parts[order[0]].clone();
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
    commit_views(out, labels, &first.views)?;
    let mut merged = first;
    merged.shard = None;
    merged.first_row = 0;
    merged.n_rows = merged.n_rows_total;
    merged.totals = RunTotals::default();
    merged.encode_s = 0.0;
    for m in &parts {
        merged.totals += m.totals;
        merged.encode_s += m.encode_s;
    }
    write_json_atomic(&out.join("manifest.json"), &merged)?;
    Ok(merged)
}
