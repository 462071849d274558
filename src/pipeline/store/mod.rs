//! The encode store: every image through the same initial network, in
//! parallel, into float32 `.npy` embeddings (one file per view), labels and a
//! manifest; resumable, shardable, mergeable, and unable to present a
//! half-written result as complete.
//!
//! Layout of an encode directory:
//! - `manifest.json`: the commit point. Its presence means complete; it
//!   records the size and CRC-32 of every file, the inputs' fingerprints, and
//!   a checksum of itself, and every reader checks all three;
//! - `labels.npy` (uint8), one `<view>.npy` (float32, rows x dim) per view;
//! - `.geodyn.lock`: the advisory lock a writer holds (see [`DirLock`]);
//! - while running, `partial/`: `job.json` (the job: config, inputs, rows),
//!   the staged `<view>.npy` files (preallocated, chunks written in place),
//!   one marker per committed chunk (its totals and each view's CRC-32 of its
//!   rows), and at the end `labels.npy` and `commit.json`.
//!
//! A chunk is committed by syncing its rows, then renaming its marker into
//! place. The whole encode is committed in three steps: the final manifest is
//! written as `partial/commit.json` (from then on the result is decided), the
//! staged files are renamed into the directory, and `partial/commit.json` is
//! renamed to `manifest.json`. A run interrupted anywhere resumes: before
//! `commit.json`, from the committed chunks (each checked against its CRC;
//! a chunk whose rows are missing or wrong is redone, never zero-filled);
//! after it, by finishing the renames, checking any file already renamed
//! against the CRC the commit recorded. The result is byte-identical to an
//! uninterrupted run's.

mod disk;
mod inputs;
mod merge;

pub use disk::{DirLock, FileSum, LOCK_FILE};
pub use inputs::InputFile;
pub use merge::merge_shards;

use super::encoder::{flatten_view, sum_totals, Encoder, RowResult};
use super::observer::{Event, Observer};
use super::{PipelineError, ViewInfo};
use crate::config::ExperimentConfig;
use crate::dataset::ImageSet;
use crate::network::NetworkControl;
use crate::record::RunTotals;
pub(crate) use disk::io;
use disk::{remove_if_exists, rename_synced, sync_dir, Crc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub(crate) use disk::{read_npy_checked, verify, verify_size};
pub(crate) use inputs::contents_changed as inputs_changed;

/// The version of this layout. Directories of another version are refused
/// (re-encode them), never half-understood.
pub const STORE_FORMAT: u32 = 2;

/// The version of what an encode computes from its config (the model's
/// semantics, not the file layout): bumped when the same config and seed
/// give other numbers, so that a store of the old model is never resumed or
/// reused by the new one as if it were the same job. 0: stores written
/// before the version was recorded; 2: plastic edges' initial weights
/// clipped to `[stdp.w_min, stdp.w_max]` at build time (dc1043b; 1 is the
/// model before it, never recorded).
pub const MODEL_VERSION: u32 = 2;

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// What an encode directory holds (`manifest.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// [`STORE_FORMAT`] (absent, i.e. 0, in directories written before it).
    #[serde(default)]
    pub store_format: u32,
    pub geodyn_version: String,
    /// [`MODEL_VERSION`]; absent (0) in stores written before it, and then
    /// left out of the file, so their checksums still hold.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub model_version: u32,
    pub experiment: String,
    pub config_hash: String,
    /// The config as checked (canonical TOML), so `evaluate` needs nothing else.
    pub config_toml: String,
    pub seed: u64,
    pub n_recurrent: usize,
    /// Absolute paths of the input files.
    pub images: String,
    pub labels: String,
    /// Rows 0..n_reference come from `images`; the rest from the query set.
    pub n_reference: usize,
    /// Indices into `images` of the reference rows, if not all of it.
    pub reference_subset: Option<Vec<usize>>,
    pub query_images: Option<String>,
    pub query_labels: Option<String>,
    pub n_query_set: Option<usize>,
    /// Fingerprints of the input files (path, size, time, content hash).
    #[serde(default)]
    pub inputs: Vec<InputFile>,
    /// Total rows over all shards, and this directory's part of them.
    pub n_rows_total: usize,
    pub shard: Option<(usize, usize)>,
    pub first_row: usize,
    pub n_rows: usize,
    pub chunk: usize,
    pub views: Vec<ViewInfo>,
    /// Size and CRC-32 of `labels.npy` and every view (empty in a job file).
    #[serde(default)]
    pub files: Vec<FileSum>,
    pub totals: RunTotals,
    /// Wall time of the simulation chunks (summed over sessions if resumed).
    pub encode_s: f64,
    pub threads: usize,
    pub network: serde_json::Value,
    /// The geometry control the network was derived with, if any
    /// ([`EncodeOptions::network_control`]); absent from the file when none,
    /// so manifests written before it keep their checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_control: Option<NetworkControl>,
    /// SHA-256 of this manifest with this field empty: a manifest edited by
    /// hand (its counts copied into a report, say) is refused.
    #[serde(default)]
    pub checksum: String,
}

impl Manifest {
    /// Why `o` is not the same encode job as `self` (ignoring results), if
    /// it is not: the first difference, in words.
    pub fn job_difference(&self, o: &Manifest) -> Option<String> {
        let differs = |what: &str| Some(format!("its {what} differs"));
        if self.store_format != o.store_format {
            return Some(format!(
                "it was written in store format {} (this geodyn writes {})",
                o.store_format, self.store_format
            ));
        }
        if self.geodyn_version != o.geodyn_version {
            return Some(format!(
                "it was written by geodyn {} (this is {})",
                o.geodyn_version, self.geodyn_version
            ));
        }
        if self.model_version != o.model_version {
            let what = if o.model_version == 0 {
                "an unrecorded model version (written before versions were recorded)".to_string()
            } else {
                format!("model version {}", o.model_version)
            };
            return Some(format!(
                "it was computed by {what}; this geodyn computes model version {}, whose numbers differ for the same config",
                self.model_version
            ));
        }
        if self.config_hash != o.config_hash {
            return Some(format!(
                "its config differs (hash {} here, {} there)",
                short(&self.config_hash),
                short(&o.config_hash)
            ));
        }
        if let Some(why) = inputs::changed(&o.inputs, &self.inputs) {
            return Some(why);
        }
        if self.reference_subset != o.reference_subset {
            return differs("image subset (--limit)");
        }
        if self.n_rows_total != o.n_rows_total || self.shard != o.shard {
            return differs("row range (--shard)");
        }
        if self.chunk != o.chunk {
            return Some(format!(
                "its --chunk is {} (this run: {})",
                o.chunk, self.chunk
            ));
        }
        if self.views != o.views {
            return differs("list of views");
        }
        if self.network_control != o.network_control {
            return differs("network control (--shuffled-latencies / --mean-latencies)");
        }
        None
    }

    fn digest(&self) -> Result<String, PipelineError> {
        let mut unsealed = self.clone();
        unsealed.checksum.clear();
        let text =
            serde_json::to_string(&unsealed).map_err(|e| PipelineError::Other(e.to_string()))?;
        Ok(Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }

    /// Records the checksum of the manifest as it now is.
    fn seal(&mut self) -> Result<(), PipelineError> {
        self.checksum = self.digest()?;
        Ok(())
    }

    /// The recorded size and CRC of `file`.
    pub fn file_sum(&self, file: &str) -> Result<&FileSum, PipelineError> {
        self.files
            .iter()
            .find(|f| f.file == file)
            .ok_or_else(|| PipelineError::Other(format!("manifest.json records no {file}")))
    }

    /// Checks what a manifest says against itself: its seal, its format, and
    /// that every file it lists has the size its shape implies.
    fn check(&self, path: &Path, sealed: bool) -> Result<(), PipelineError> {
        let corrupt = |message: String| PipelineError::Corrupt {
            path: path.to_path_buf(),
            message,
        };
        if self.store_format != STORE_FORMAT {
            return Err(corrupt(format!(
                "store format {} (this geodyn reads {STORE_FORMAT}): written by another version of geodyn; encode again (with --restart)",
                self.store_format
            )));
        }
        if self.checksum != self.digest()? {
            return Err(corrupt(
                "its checksum does not match its contents: it was edited or damaged after the encode, so its counts cannot be trusted (encode again with --restart)".into(),
            ));
        }
        if !sealed {
            return Ok(());
        }
        let labels_bytes = (super::npy::header_u8(self.n_rows).len() + self.n_rows) as u64;
        let mut want = vec![("labels.npy".to_string(), labels_bytes)];
        for v in &self.views {
            let bytes = super::npy::header_f32(self.n_rows, v.dim).len() as u64
                + (self.n_rows * v.dim * 4) as u64;
            want.push((v.file.clone(), bytes));
        }
        for (file, bytes) in want {
            let sum = self.file_sum(&file)?;
            if sum.bytes != bytes {
                return Err(corrupt(format!(
                    "{file}: records {} bytes, but {} rows need {bytes}",
                    sum.bytes, self.n_rows
                )));
            }
        }
        Ok(())
    }
}

fn short(hash: &str) -> &str {
    &hash[..12.min(hash.len())]
}

#[derive(Clone, Debug)]
pub struct EncodeOptions {
    pub out: PathBuf,
    pub chunk: usize,
    /// (k, n): encode part k (0-based) of n disjoint parts.
    pub shard: Option<(usize, usize)>,
    pub restart: bool,
    /// Encode with this control of the config's network (latencies shuffled
    /// or set to their class means) instead of the network itself.
    pub network_control: Option<NetworkControl>,
}

impl EncodeOptions {
    pub fn new(out: impl Into<PathBuf>) -> EncodeOptions {
        EncodeOptions {
            out: out.into(),
            chunk: 500,
            shard: None,
            restart: false,
            network_control: None,
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

/// A committed chunk: its run totals, wall time, and the CRC-32 of its rows
/// in each view's file (in the order of the job's views).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ChunkMarker {
    totals: RunTotals,
    seconds: f64,
    crc32: Vec<u32>,
}

/// Writes `value` as JSON to `path` atomically: a temporary file, synced, then
/// renamed over `path`, then the directory synced.
pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), PipelineError> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| PipelineError::Other(e.to_string()))?;
    crate::report::write_atomic(path, text.as_bytes()).map_err(io(path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, PipelineError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| PipelineError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Reads and checks a manifest file (`sealed`: a complete one, whose files
/// must be listed).
fn read_checked(path: &Path, sealed: bool) -> Result<Manifest, PipelineError> {
    let m: Manifest = read_json(path)?;
    m.check(path, sealed)?;
    Ok(m)
}

/// Reads the manifest of a complete directory, checking its format, its
/// checksum and that it lists every file with a size that fits its shape.
/// (The files' CRCs are checked as they are read: [`read_npy_checked`].)
pub fn read_manifest(dir: &Path) -> Result<Manifest, PipelineError> {
    let path = dir.join("manifest.json");
    if !path.exists() {
        return Err(PipelineError::Incomplete(dir.to_path_buf()));
    }
    read_checked(&path, true)
}

/// Runs the encode job of `cfg` on `data`; returns the completed manifest.
/// Resumes a compatible partial run in `opts.out`; a complete one is checked
/// and returned as it is.
pub fn encode(
    cfg: &ExperimentConfig,
    data: &EncodeData,
    opts: &EncodeOptions,
    observer: &dyn Observer,
) -> Result<Manifest, PipelineError> {
    let mut net = cfg.build_network()?;
    if let Some(control) = opts.network_control {
        net = control.apply(&net);
    }
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

/// The manifest of a job before it runs (no totals or files yet).
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
    let inputs = inputs::fingerprint(data.reference, data.query)?;
    let path_of = |role: &str| {
        inputs
            .iter()
            .find(|f| f.role == role)
            .map(|f| f.path.clone())
    };
    let mut m = Manifest {
        store_format: STORE_FORMAT,
        geodyn_version: env!("CARGO_PKG_VERSION").to_string(),
        model_version: MODEL_VERSION,
        experiment: cfg.experiment().to_string(),
        config_hash: cfg.hash().to_string(),
        config_toml: toml::to_string(cfg.raw()).map_err(|e| PipelineError::Other(e.to_string()))?,
        seed: cfg.seed(),
        n_recurrent: encoder.network().n_recurrent(),
        images: path_of("images").unwrap_or_default(),
        labels: path_of("labels").unwrap_or_default(),
        n_reference: data.reference.len(),
        reference_subset: data.reference_rows.map(|r| r.to_vec()),
        query_images: path_of("query_images"),
        query_labels: path_of("query_labels"),
        n_query_set: data.query.map(|q| q.len()),
        inputs,
        n_rows_total: n_total,
        shard: opts.shard,
        first_row,
        n_rows,
        chunk: opts.chunk,
        views,
        files: Vec::new(),
        totals: RunTotals::default(),
        encode_s: 0.0,
        threads: rayon::current_num_threads(),
        network: crate::report::network_summary(encoder.network()),
        network_control: opts.network_control,
        checksum: String::new(),
    };
    m.seal()?;
    Ok(m)
}

/// Tells the observer that a store step is on disk, then honours a stop: the
/// state on disk is one a later run resumes from.
fn durable(observer: &dyn Observer, step: String, new_chunks: usize) -> Result<(), PipelineError> {
    observer.observe(Event::Durable { step });
    if observer.should_stop() {
        return Err(PipelineError::Interrupted(new_chunks));
    }
    Ok(())
}

/// What to do in the output directory.
enum Start {
    /// A complete encode of this job is there.
    Done(Box<Manifest>),
    /// The job was decided but its files not all renamed into place.
    Commit(Box<Manifest>),
    /// Run the chunks without a marker (`done[c]`: chunk `c`'s, if committed).
    Run(Vec<Option<ChunkMarker>>),
}

/// Removes what a previous job left in `out` (for `--restart`): its manifest
/// first (so the directory stops claiming to be complete), then the files it
/// lists, then everything in `partial/`.
fn clear_dir(out: &Path, job: &Manifest) -> Result<(), PipelineError> {
    let manifest = out.join("manifest.json");
    let mut files: Vec<String> = job.views.iter().map(|v| v.file.clone()).collect();
    files.push("labels.npy".into());
    if manifest.exists() {
        // Read loosely: a damaged or older manifest still names its files.
        if let Ok(v) = read_json::<serde_json::Value>(&manifest) {
            if let Some(views) = v.get("views").and_then(|v| v.as_array()) {
                for f in views.iter().filter_map(|v| v.get("file")?.as_str()) {
                    // Only plain names inside `out`, whatever the file says.
                    if Path::new(f).file_name().is_some_and(|n| n == f) {
                        files.push(f.to_string());
                    }
                }
            }
        }
        std::fs::remove_file(&manifest).map_err(io(&manifest))?;
        sync_dir(out)?;
    }
    for f in files {
        remove_if_exists(&out.join(&f))?;
        // The layout of store format 1 staged views beside the final ones.
        remove_if_exists(&out.join(format!("{f}.partial")))?;
    }
    let partial = out.join("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
    }
    sync_dir(out)
}

/// Checks what `opts.out` holds against `job` and prepares it.
fn prepare_dir(
    job: &Manifest,
    opts: &EncodeOptions,
    observer: &dyn Observer,
) -> Result<Start, PipelineError> {
    let out = &opts.out;
    let partial = out.join("partial");
    let refuse = |what: &str, why: String| {
        PipelineError::Other(format!(
            "{}: holds {what} of another job ({why}); pass --restart to replace it, or choose another --out",
            out.display()
        ))
    };
    if opts.restart {
        clear_dir(out, job)?;
    }
    if out.join("manifest.json").exists() {
        let done = read_manifest(out)?;
        if let Some(why) = job.job_difference(&done) {
            return Err(refuse("a complete encode", why));
        }
        for f in &done.files {
            verify(out, f)?;
        }
        // A run stopped after its manifest's rename leaves this behind.
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
        }
        return Ok(Start::Done(Box::new(done)));
    }
    let commit = partial.join("commit.json");
    if commit.exists() {
        let decided = read_checked(&commit, true)?;
        if let Some(why) = job.job_difference(&decided) {
            return Err(refuse("a partial encode", why));
        }
        return Ok(Start::Commit(Box::new(decided)));
    }
    let job_path = partial.join("job.json");
    if job_path.exists() {
        let prev = read_checked(&job_path, false)?;
        if let Some(why) = job.job_difference(&prev) {
            return Err(refuse("a partial encode", why));
        }
        return resume_chunks(job, out, observer).map(Start::Run);
    }
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
    }
    std::fs::create_dir_all(&partial).map_err(io(&partial))?;
    write_json_atomic(&job_path, job)?;
    for v in &job.views {
        let p = partial.join(&v.file);
        super::npy::preallocate(&p, job.n_rows, v.dim).map_err(io(&p))?;
    }
    sync_dir(&partial)?;
    let n_chunks = job.n_rows.div_ceil(job.chunk);
    Ok(Start::Run(vec![None; n_chunks]))
}

/// The committed chunks of a partial encode whose rows are on disk as their
/// markers say; chunks whose rows are missing or damaged are redone (their
/// markers removed), and a staged view file that is gone or of the wrong size
/// means every chunk is redone.
fn resume_chunks(
    job: &Manifest,
    out: &Path,
    observer: &dyn Observer,
) -> Result<Vec<Option<ChunkMarker>>, PipelineError> {
    let partial = out.join("partial");
    let n_chunks = job.n_rows.div_ceil(job.chunk);
    let marker_path = |c: usize| partial.join(format!("chunk_{c:06}.json"));
    let mut done: Vec<Option<ChunkMarker>> = Vec::with_capacity(n_chunks);
    for c in 0..n_chunks {
        let p = marker_path(c);
        done.push(if p.exists() {
            Some(read_json(&p)?)
        } else {
            None
        });
    }
    // The chunk CRCs cover rows only: the size and the header are checked here.
    let staged_ok = job.views.iter().all(|v| {
        let header = super::npy::header_f32(job.n_rows, v.dim);
        let want = (header.len() + job.n_rows * v.dim * 4) as u64;
        let p = partial.join(&v.file);
        std::fs::metadata(&p).is_ok_and(|m| m.len() == want)
            && disk::crc_of_range(&p, 0, header.len() as u64)
                .is_ok_and(|c| c == crc32fast::hash(&header))
    });
    if !staged_ok {
        if done.iter().any(Option::is_some) {
            observer.observe(Event::Info(format!(
                "{}: a staged view file is missing, or its size or header is wrong; redoing every chunk",
                partial.display()
            )));
        }
        for (c, d) in done.iter_mut().enumerate() {
            if d.take().is_some() {
                std::fs::remove_file(marker_path(c)).map_err(io(&marker_path(c)))?;
            }
        }
        for v in &job.views {
            let p = partial.join(&v.file);
            super::npy::preallocate(&p, job.n_rows, v.dim).map_err(io(&p))?;
        }
        sync_dir(&partial)?;
        return Ok(done);
    }
    for (c, slot) in done.iter_mut().enumerate() {
        let Some(m) = slot else { continue };
        let (a, b) = (c * job.chunk, ((c + 1) * job.chunk).min(job.n_rows));
        let mut intact = m.crc32.len() == job.views.len();
        for (vi, v) in job.views.iter().enumerate() {
            if !intact {
                break;
            }
            let p = partial.join(&v.file);
            let h = super::npy::header_f32(job.n_rows, v.dim).len();
            let crc =
                disk::crc_of_range(&p, (h + a * v.dim * 4) as u64, ((b - a) * v.dim * 4) as u64)?;
            intact = crc == m.crc32[vi];
        }
        if !intact {
            observer.observe(Event::Info(format!(
                "{}: chunk {c}'s rows do not match its marker; redoing it",
                partial.display()
            )));
            std::fs::remove_file(marker_path(c)).map_err(io(&marker_path(c)))?;
            *slot = None;
        }
    }
    Ok(done)
}

/// Writes one chunk's rows (local rows `a..`) into the staged view files;
/// returns each view's CRC-32 of them.
fn write_chunk(
    job: &Manifest,
    out: &Path,
    a: usize,
    results: &[RowResult],
) -> Result<Vec<u32>, PipelineError> {
    let mut crcs = Vec::with_capacity(job.views.len());
    for (vi, v) in job.views.iter().enumerate() {
        let block = flatten_view(results, vi, &v.name, v.dim)?;
        let bytes: Vec<u8> = block.iter().flat_map(|x| x.to_le_bytes()).collect();
        crcs.push(crc32fast::hash(&bytes));
        let p = out.join("partial").join(&v.file);
        super::npy::write_rows(&p, job.n_rows, v.dim, a, &bytes).map_err(io(&p))?;
    }
    Ok(crcs)
}

/// Runs the encode job with a prepared encoder (its network, run parameters
/// and initial weights) and writes it to `opts.out`. `opts.network_control`
/// is recorded, not applied: the encoder's network must already be that
/// control of the config's network (as [`encode`] builds it).
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
    let job = job_manifest(encoder, cfg, data, opts)?;
    let _lock = DirLock::acquire(&opts.out)?;
    let mut done = match prepare_dir(&job, opts, observer)? {
        Start::Done(m) => return Ok(*m),
        Start::Commit(m) => {
            commit(&opts.out, &m, observer, 0)?;
            return Ok(*m);
        }
        Start::Run(done) => done,
    };
    let (out, partial) = (&opts.out, opts.out.join("partial"));
    let (first_row, n_rows) = (job.first_row, job.n_rows);
    let n_chunks = done.len();
    observer.observe(Event::Started {
        task: format!("encode {}", cfg.experiment()),
        total: n_rows,
    });
    let mut new_chunks = 0usize;
    for (c, slot) in done.iter_mut().enumerate() {
        let marker = partial.join(format!("chunk_{c:06}.json"));
        let a = c * opts.chunk;
        let b = ((c + 1) * opts.chunk).min(n_rows);
        if slot.is_some() {
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
        let crc32 = write_chunk(&job, out, a, &results)?;
        durable(observer, format!("chunk {c} rows"), new_chunks)?;
        let m = ChunkMarker {
            totals: sum_totals(&results),
            seconds: tc.elapsed().as_secs_f64(),
            crc32,
        };
        write_json_atomic(&marker, &m)?;
        new_chunks += 1;
        observer.observe(Event::ChunkCommitted {
            chunk: c,
            n_chunks,
            chunk_rows: b - a,
            rows_done: b,
            rows_total: n_rows,
            seconds: m.seconds,
        });
        *slot = Some(m);
        durable(observer, format!("chunk {c} marker"), new_chunks)?;
    }
    observer.observe(Event::Finished);
    let markers: Vec<ChunkMarker> = done.into_iter().flatten().collect();
    if markers.len() != n_chunks {
        return Err(PipelineError::Other(
            "internal: an encode finished with uncommitted chunks".into(),
        ));
    }
    let manifest = decide(job, data, out, &markers, observer, new_chunks)?;
    commit(out, &manifest, observer, new_chunks)?;
    Ok(manifest)
}

/// Stages the labels and writes the final manifest as `partial/commit.json`:
/// from here on the result is decided, and a resume only finishes the renames.
fn decide(
    mut manifest: Manifest,
    data: &EncodeData,
    out: &Path,
    markers: &[ChunkMarker],
    observer: &dyn Observer,
    new_chunks: usize,
) -> Result<Manifest, PipelineError> {
    let partial = out.join("partial");
    let rows = manifest.first_row..manifest.first_row + manifest.n_rows;
    let labels = ndarray::Array1::from(rows.map(|r| data.label(r)).collect::<Vec<u8>>());
    let labels_sum = stage_labels(&partial, &labels)?;
    durable(observer, "labels staged".into(), new_chunks)?;
    let mut files = Vec::new();
    for (vi, v) in manifest.views.iter().enumerate() {
        let mut crc = Crc::of(&super::npy::header_f32(manifest.n_rows, v.dim));
        for (c, m) in markers.iter().enumerate() {
            let a = c * manifest.chunk;
            let b = ((c + 1) * manifest.chunk).min(manifest.n_rows);
            crc.join(&Crc::from_parts(m.crc32[vi], ((b - a) * v.dim * 4) as u64));
        }
        files.push(FileSum {
            file: v.file.clone(),
            bytes: crc.len(),
            crc32: crc.value(),
        });
    }
    files.push(labels_sum);
    manifest.files = files;
    manifest.totals = markers.iter().map(|m| m.totals).sum();
    // Wall time of the chunks themselves, summed over sessions if resumed.
    manifest.encode_s = markers.iter().map(|m| m.seconds).sum();
    manifest.seal()?;
    write_json_atomic(&partial.join("commit.json"), &manifest)?;
    durable(observer, "commit written".into(), new_chunks)?;
    Ok(manifest)
}

/// Writes `labels` as `dir/labels.npy`, synced; returns its size and CRC.
fn stage_labels(dir: &Path, labels: &ndarray::Array1<u8>) -> Result<FileSum, PipelineError> {
    let mut bytes = super::npy::header_u8(labels.len());
    bytes.extend(labels.iter());
    let p = dir.join("labels.npy");
    disk::write_synced(&p, &bytes)?;
    Ok(FileSum {
        file: "labels.npy".into(),
        bytes: bytes.len() as u64,
        crc32: crc32fast::hash(&bytes),
    })
}

/// Moves the staged files of a decided job into `out` (a file already moved
/// by an interrupted run is checked against the CRC the commit recorded),
/// then publishes `manifest.json`, then removes `partial/`.
fn commit(
    out: &Path,
    manifest: &Manifest,
    observer: &dyn Observer,
    new_chunks: usize,
) -> Result<(), PipelineError> {
    let partial = out.join("partial");
    for f in &manifest.files {
        let (staged, placed) = (partial.join(&f.file), out.join(&f.file));
        if staged.exists() {
            rename_synced(&staged, &placed)?;
            durable(observer, format!("{} in place", f.file), new_chunks)?;
        } else {
            verify(out, f).map_err(|e| {
                PipelineError::Other(format!(
                    "{e}; the staged copy is gone too, so this encode cannot be completed: pass --restart to redo it"
                ))
            })?;
        }
    }
    rename_synced(&partial.join("commit.json"), &out.join("manifest.json"))?;
    durable(observer, "manifest in place".into(), new_chunks)?;
    std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
    sync_dir(out)
}
