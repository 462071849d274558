//! Merging the shards of one encode job (`--shard K/N` for every K) into one
//! directory, through the same staged commit as an encode.

use super::disk::{self, io, Crc, CrcReader, DirLock, FileSum};
use super::{commit, durable, read_checked, read_manifest, write_json_atomic, Manifest};
use crate::pipeline::observer::Observer;
use crate::pipeline::PipelineError;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

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
        let why = probe.job_difference(m);
        if why.is_some() || m.shard != Some((k, n_shards)) || m.first_row != next_row {
            return Err(PipelineError::Other(format!(
                "{}: not shard {k}/{n_shards} of the same encode job as {}{}",
                dirs[i].display(),
                dirs[order[0]].display(),
                why.map(|w| format!(" ({w})")).unwrap_or_default()
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

/// The merged job: the shards' common manifest, unsharded, with totals and
/// times summed (files not yet known).
fn merged_job(parts: &[Manifest], order: &[usize]) -> Result<Manifest, PipelineError> {
    let mut merged = parts[order[0]].clone();
    merged.shard = None;
    merged.first_row = 0;
    merged.n_rows = merged.n_rows_total;
    merged.files.clear();
    merged.totals = parts.iter().map(|m| m.totals).sum();
    merged.encode_s = parts.iter().map(|m| m.encode_s).sum();
    merged.seal()?;
    Ok(merged)
}

/// `out`'s entries other than the lock file and `partial/`.
fn other_entries(out: &Path) -> Result<Vec<String>, PipelineError> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(out).map_err(io(out))? {
        let name = e
            .map_err(io(out))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name != disk::LOCK_FILE && name != "partial" {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Copies the body of shard file `src` (checked against its manifest's size
/// and CRC, and its header against its shape) onto `dst`, which `crc` covers.
fn append_body(
    src: &Path,
    sum: &FileSum,
    header: &[u8],
    dst: &mut impl Write,
    crc: &mut Crc,
    staged: &Path,
) -> Result<(), PipelineError> {
    let f = std::fs::File::open(src).map_err(io(src))?;
    let mut r = CrcReader::new(std::io::BufReader::with_capacity(1 << 20, f));
    let mut head = vec![0u8; header.len()];
    r.read_exact(&mut head).map_err(io(src))?;
    if head != header {
        return Err(PipelineError::Corrupt {
            path: src.to_path_buf(),
            message: "its .npy header does not match the shape its manifest records".into(),
        });
    }
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).map_err(io(src))?;
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n]).map_err(io(staged))?;
        crc.update(&buf[..n]);
    }
    let (got, len) = r.finish().map_err(io(src))?;
    if got != sum.crc32 || len != sum.bytes {
        return Err(PipelineError::Corrupt {
            path: src.to_path_buf(),
            message: format!(
                "{len} bytes with CRC-32 {got:08x}, but its manifest records {} bytes, {:08x}: the file changed or is damaged",
                sum.bytes, sum.crc32
            ),
        });
    }
    Ok(())
}

/// Merges the shard directories of one encode job into `out`: views and
/// labels concatenated in shard order (each shard file checked against its
/// manifest), totals and times summed. The result is the same as an
/// unsharded encode's, byte for byte in its `.npy` files. `out` must be
/// empty, or hold this same merge (complete: checked and returned; or
/// interrupted: finished); it may not be one of the shards.
pub fn merge_shards(
    dirs: &[PathBuf],
    out: &Path,
    observer: &dyn Observer,
) -> Result<Manifest, PipelineError> {
    if dirs.is_empty() {
        return Err(PipelineError::Other(
            "merge: no shard directories given".into(),
        ));
    }
    if let Ok(o) = std::fs::canonicalize(out) {
        for d in dirs {
            if std::fs::canonicalize(d).is_ok_and(|d| d == o) {
                return Err(PipelineError::Other(format!(
                    "merge: --out {} is one of the shards; merging into it would destroy it",
                    out.display()
                )));
            }
        }
    }
    let parts: Vec<Manifest> = dirs
        .iter()
        .map(|d| read_manifest(d))
        .collect::<Result<_, _>>()?;
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| parts[i].shard.map_or(0, |s| s.0));
    check_shards(dirs, &parts, &order)?;
    let job = merged_job(&parts, &order)?;
    let _lock = DirLock::acquire(out)?;
    if out.join("manifest.json").exists() {
        let done = read_manifest(out)?;
        if let Some(why) = job.job_difference(&done) {
            return Err(PipelineError::Other(format!(
                "{}: holds a complete encode of another job ({why}); merge into an empty directory",
                out.display()
            )));
        }
        for f in &done.files {
            disk::verify(out, f)?;
        }
        return Ok(done);
    }
    let partial = out.join("partial");
    let commit_path = partial.join("commit.json");
    if commit_path.exists() {
        let decided = read_checked(&commit_path, true)?;
        if job.job_difference(&decided).is_none() {
            commit(out, &decided, observer, 0)?;
            return Ok(decided);
        }
    }
    let others = other_entries(out)?;
    let ours = partial.join("job.json").exists()
        && read_checked(&partial.join("job.json"), false)
            .is_ok_and(|prev| job.job_difference(&prev).is_none());
    if !others.is_empty() || (partial.exists() && !ours) {
        return Err(PipelineError::Other(format!(
            "{}: not empty (holds {}); merge writes into an empty directory (or finishes its own interrupted merge there)",
            out.display(),
            if others.is_empty() {
                "another job's partial/".to_string()
            } else {
                others.join(", ")
            }
        )));
    }
    // An interrupted merge of this job is simply redone: its inputs are all
    // complete, so nothing is lost.
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
    }
    std::fs::create_dir_all(&partial).map_err(io(&partial))?;
    write_json_atomic(&partial.join("job.json"), &job)?;
    let mut files = Vec::new();
    for v in &job.views {
        let staged = partial.join(&v.file);
        let mut f = std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&staged).map_err(io(&staged))?,
        );
        let header = crate::pipeline::npy::header_f32(job.n_rows, v.dim);
        f.write_all(&header).map_err(io(&staged))?;
        let mut crc = Crc::of(&header);
        for &i in &order {
            let src = dirs[i].join(&v.file);
            let h = crate::pipeline::npy::header_f32(parts[i].n_rows, v.dim);
            append_body(
                &src,
                parts[i].file_sum(&v.file)?,
                &h,
                &mut f,
                &mut crc,
                &staged,
            )?;
        }
        f.into_inner()
            .map_err(|e| io(&staged)(e.into_error()))?
            .sync_all()
            .map_err(io(&staged))?;
        files.push(FileSum {
            file: v.file.clone(),
            bytes: crc.len(),
            crc32: crc.value(),
        });
        durable(observer, format!("{} staged", v.file), 0)?;
    }
    let mut labels = Vec::with_capacity(job.n_rows);
    for &i in &order {
        let l: ndarray::Array1<u8> =
            disk::read_npy_checked(&dirs[i], parts[i].file_sum("labels.npy")?)?;
        if l.len() != parts[i].n_rows {
            return Err(PipelineError::Corrupt {
                path: dirs[i].join("labels.npy"),
                message: format!("{} labels for {} rows", l.len(), parts[i].n_rows),
            });
        }
        labels.extend(l.iter().copied());
    }
    files.push(super::stage_labels(
        &partial,
        &ndarray::Array1::from(labels),
    )?);
    let mut merged = job;
    merged.files = files;
    merged.seal()?;
    write_json_atomic(&commit_path, &merged)?;
    durable(observer, "commit written".into(), 0)?;
    commit(out, &merged, observer, 0)?;
    Ok(merged)
}
