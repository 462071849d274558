//! What an encode read: each input file's absolute path, size, modification
//! time and a hash of the contents that were encoded, recorded in the job so
//! that a resume (or an `evaluate`) against changed inputs is refused instead
//! of mixing rows of two datasets.

use super::super::PipelineError;
use super::disk::io;
use crate::dataset::ImageSet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// One input file of an encode.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InputFile {
    /// `images`, `labels`, `query_images` or `query_labels`.
    pub role: String,
    /// Absolute, symlinks resolved.
    pub path: String,
    pub bytes: u64,
    /// Seconds since the Unix epoch (informative: a copy or `touch` changes it
    /// without changing what is encoded, so it is not compared).
    pub modified_unix_s: Option<f64>,
    /// SHA-256 of the decoded contents that were encoded: the dimensions and
    /// pixels of the rows used (the `--limit` subset, if any), or their
    /// labels. Decoded, so recompressing a file changes nothing; of the rows
    /// used, so it is exactly what a resume must match.
    pub content_sha256: String,
}

/// The absolute path of `path` as text, or an error: manifests are JSON
/// text, and a path they cannot hold exactly is refused up front.
pub fn absolute_utf8(path: &Path) -> Result<String, PipelineError> {
    let abs = std::fs::canonicalize(path).map_err(io(path))?;
    abs.to_str().map(str::to_string).ok_or_else(|| {
        PipelineError::Other(format!(
            "{}: the path is not valid UTF-8; geodyn records input paths in manifest.json (JSON text) and cannot record this one exactly: rename it or link to it under a UTF-8 name",
            abs.display()
        ))
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash of the images of `set` (dimensions, then pixels).
pub fn images_sha256(set: &ImageSet) -> String {
    let mut h = Sha256::new();
    for d in [set.len(), set.rows, set.cols] {
        h.update((d as u64).to_le_bytes());
    }
    h.update(&set.pixels);
    hex(&h.finalize())
}

/// The hash of the labels of `set`.
pub fn labels_sha256(set: &ImageSet) -> String {
    let mut h = Sha256::new();
    h.update((set.labels.len() as u64).to_le_bytes());
    h.update(&set.labels);
    hex(&h.finalize())
}

fn input_file(role: &str, path: &Path, content_sha256: String) -> Result<InputFile, PipelineError> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    let modified_unix_s = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64());
    Ok(InputFile {
        role: role.to_string(),
        path: absolute_utf8(path)?,
        bytes: meta.len(),
        modified_unix_s,
        content_sha256,
    })
}

/// Each input file of a reference set (and a query set) with its role and
/// the hash of the contents used from it.
fn contents<'a>(
    reference: &'a ImageSet,
    query: Option<&'a ImageSet>,
) -> Vec<(&'static str, &'a Path, String)> {
    let mut files = vec![
        (
            "images",
            reference.images_path.as_path(),
            images_sha256(reference),
        ),
        (
            "labels",
            reference.labels_path.as_path(),
            labels_sha256(reference),
        ),
    ];
    if let Some(q) = query {
        files.push(("query_images", q.images_path.as_path(), images_sha256(q)));
        files.push(("query_labels", q.labels_path.as_path(), labels_sha256(q)));
    }
    files
}

/// The fingerprints of a reference set (and a query set).
pub fn fingerprint(
    reference: &ImageSet,
    query: Option<&ImageSet>,
) -> Result<Vec<InputFile>, PipelineError> {
    contents(reference, query)
        .into_iter()
        .map(|(role, path, hash)| input_file(role, path, hash))
        .collect()
}

/// Why recorded inputs do not describe these sets (loaded again from the
/// recorded paths), if they do not: a different set of files, or contents
/// that hash differently.
pub fn contents_changed(
    recorded: &[InputFile],
    reference: &ImageSet,
    query: Option<&ImageSet>,
) -> Option<String> {
    let now = contents(reference, query);
    if recorded.len() != now.len() {
        return Some(count_differs(recorded.len(), now.len()));
    }
    recorded
        .iter()
        .zip(now)
        .find_map(|(rec, (role, path, hash))| {
            if rec.role != role {
                Some(format!(
                    "its {} were {}, now {}",
                    rec.role,
                    rec.path,
                    path.display()
                ))
            } else {
                hash_differs(rec, &hash)
            }
        })
}

fn count_differs(then: usize, now: usize) -> String {
    format!("the job read {then} input files, this run {now}")
}

/// The message for a recorded input whose contents now hash to `now`.
fn hash_differs(rec: &InputFile, now: &str) -> Option<String> {
    (rec.content_sha256 != now).then(|| {
        format!(
            "{}: the file changed since the job began (its {} now hash to {}, recorded {})",
            rec.path,
            if rec.role.ends_with("labels") {
                "labels"
            } else {
                "encoded images"
            },
            &now[..12.min(now.len())],
            &rec.content_sha256[..12.min(rec.content_sha256.len())]
        )
    })
}

/// Why the inputs `now` are not the inputs `then` of a job, if they are not.
pub fn changed(then: &[InputFile], now: &[InputFile]) -> Option<String> {
    if then.len() != now.len() {
        return Some(count_differs(then.len(), now.len()));
    }
    then.iter().zip(now).find_map(|(a, b)| {
        if a.role != b.role || a.path != b.path {
            Some(format!("its {} were {}, now {}", a.role, a.path, b.path))
        } else {
            hash_differs(a, &b.content_sha256)
        }
    })
}
