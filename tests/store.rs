//! The store under faults and misuse: a stop (or a real process abort) after
//! every step of its commit protocol resumes to the bytes of an uninterrupted
//! encode, never to zeros; damaged chunks are redone; a second writer, a
//! changed input, a merge over the wrong directory and an evaluate of edited
//! files are refused with a message that names the file.

use geodyn::dataset::{write_idx_images, write_idx_labels, ImageSet};
use geodyn::pipeline::{
    encode, evaluate, merge_shards, read_manifest, DirLock, EncodeOptions, EvaluateOptions, Event,
    Manifest, Observer, PipelineError, Quiet,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

const BIN: &str = env!("CARGO_BIN_EXE_geodyn");

mod common;
use common::{reference, small_text, subset};

fn small_config(n_rec: usize, duration: f64) -> geodyn::config::ExperimentConfig {
    common::small_config(n_rec, duration, "")
}

fn opts(dir: &Path, chunk: usize) -> EncodeOptions {
    let mut o = EncodeOptions::new(dir);
    o.chunk = chunk;
    o
}

/// Every entry of a directory with a digest of its bytes (manifest.json
/// without the fields that time the run; the lock and folders by name).
fn files(dir: &Path) -> Vec<(String, u64)> {
    full_files(dir)
        .into_iter()
        .map(|(n, b)| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            b.hash(&mut h);
            (n, h.finish())
        })
        .collect()
}

fn full_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name == geodyn::pipeline::LOCK_FILE || p.is_dir() {
            v.push((name, Vec::new()));
            continue;
        }
        let bytes = if name == "manifest.json" {
            let mut m: Manifest = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            m.encode_s = 0.0;
            m.checksum.clear();
            serde_json::to_vec(&m).unwrap()
        } else {
            std::fs::read(&p).unwrap()
        };
        v.push((name, bytes));
    }
    v.sort();
    v
}

/// Stops at the `k`-th store step (1-based) that reaches the disk.
struct StopAtStep {
    k: usize,
    steps: AtomicUsize,
}

impl StopAtStep {
    fn new(k: usize) -> StopAtStep {
        StopAtStep {
            k,
            steps: AtomicUsize::new(0),
        }
    }
}

impl Observer for StopAtStep {
    fn observe(&self, event: Event) {
        if let Event::Durable { .. } = event {
            self.steps.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn should_stop(&self) -> bool {
        self.steps.load(Ordering::SeqCst) >= self.k
    }
}

/// Counts the store steps of a run.
#[derive(Default)]
struct CountSteps(AtomicUsize);

impl Observer for CountSteps {
    fn observe(&self, event: Event) {
        if let Event::Durable { .. } = event {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// What an interrupted directory may look like: complete and checked, or
/// plainly incomplete. Never complete with the wrong bytes.
fn assert_honest(dir: &Path, whole: &[(String, u64)]) {
    if dir.join("manifest.json").exists() {
        let m = read_manifest(dir).expect("a manifest that is there must check");
        for f in &m.files {
            let got = files(dir).into_iter().find(|(n, _)| n == &f.file).unwrap();
            let want = whole.iter().find(|(n, _)| n == &f.file).unwrap();
            assert_eq!(&got, want, "{} is complete but wrong", f.file);
        }
    } else {
        match read_manifest(dir) {
            Err(PipelineError::Incomplete(_)) => {}
            other => panic!("expected incomplete, got {other:?}"),
        }
        // Nothing named .npy at the top before the manifest's commit... except
        // the staged files already renamed into place, which only a commit
        // recorded in partial/commit.json allows.
        if !dir.join("partial/commit.json").exists() {
            for (name, _) in files(dir) {
                assert!(!name.ends_with(".npy"), "{name} before the commit");
            }
        }
    }
}

#[test]
fn a_stop_after_every_store_step_resumes_to_the_same_bytes() {
    let cfg = small_config(6, 60.0);
    let (set, rows) = subset(30, 4);
    let data = reference(&set, Some(&rows));
    let tmp = tempfile::tempdir().unwrap();
    let whole_dir = tmp.path().join("whole");
    let count = CountSteps::default();
    encode(&cfg, &data, &opts(&whole_dir, 12), &count).unwrap();
    let whole = files(&whole_dir);
    let n_steps = count.0.load(Ordering::SeqCst);
    // 3 chunks x (rows, marker), labels, commit, 4 files into place, manifest.
    assert_eq!(n_steps, 3 * 2 + 2 + 4 + 1);
    let mut faults = 0;
    for k in 1..=n_steps {
        let dir = tmp.path().join(format!("cut{k}"));
        match encode(&cfg, &data, &opts(&dir, 12), &StopAtStep::new(k)) {
            Err(PipelineError::Interrupted(_)) => {}
            other => panic!("step {k}: expected a stop, got {other:?}"),
        }
        faults += 1;
        assert_honest(&dir, &whole);
        // A second fault during the resume, one step in, then the rest.
        if k < n_steps {
            let _ = encode(&cfg, &data, &opts(&dir, 12), &StopAtStep::new(1));
            faults += 1;
            assert_honest(&dir, &whole);
        }
        let m = encode(&cfg, &data, &opts(&dir, 12), &Quiet).unwrap();
        assert_eq!(files(&dir), whole, "after a stop at step {k}");
        assert!(!dir.join("partial").exists());
        assert_eq!(m.n_rows, 30);
    }
    assert_eq!(faults, 2 * n_steps - 1);
}

#[test]
fn damaged_or_missing_staged_rows_are_redone_not_zero_filled() {
    let cfg = small_config(6, 60.0);
    let (set, rows) = subset(30, 5);
    let data = reference(&set, Some(&rows));
    let tmp = tempfile::tempdir().unwrap();
    let whole_dir = tmp.path().join("whole");
    encode(&cfg, &data, &opts(&whole_dir, 12), &Quiet).unwrap();
    let whole = files(&whole_dir);
    // After chunk 2's marker (step 4), damage chunk 0's rows in one view.
    let dir = tmp.path().join("damaged");
    let _ = encode(&cfg, &data, &opts(&dir, 12), &StopAtStep::new(4));
    let staged = dir.join("partial/activity.npy");
    let mut bytes = std::fs::read(&staged).unwrap();
    let n = bytes.len();
    bytes[n / 8..n / 4].fill(0);
    std::fs::write(&staged, &bytes).unwrap();
    let log = geodyn::pipeline::Collect::new();
    encode(&cfg, &data, &opts(&dir, 12), &log).unwrap();
    assert_eq!(files(&dir), whole);
    assert!(log
        .events()
        .iter()
        .any(|e| matches!(e, Event::Info(l) if l.contains("redoing"))));
    // A staged view deleted outright: every chunk is redone.
    let dir = tmp.path().join("deleted");
    let _ = encode(&cfg, &data, &opts(&dir, 12), &StopAtStep::new(4));
    std::fs::remove_file(dir.join("partial/weights_t60.npy")).unwrap();
    encode(&cfg, &data, &opts(&dir, 12), &Quiet).unwrap();
    assert_eq!(files(&dir), whole);
}

/// The CLI encode of the tests' small config, aborted (SIGABRT: no cleanup,
/// like `kill -9`) after store step `abort_at`, if given.
fn cli_encode(
    cfg: &Path,
    out: &Path,
    abort_at: Option<usize>,
    extra: &[&str],
) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.args([
        "encode",
        cfg.to_str().unwrap(),
        "--limit",
        "40",
        "--chunk",
        "16",
        "--threads",
        "1",
        "--out",
    ])
    .arg(out)
    .args(extra);
    if let Some(k) = abort_at {
        c.env("GEODYN_FAULT_ABORT_AT", k.to_string());
    }
    c.output().unwrap()
}

#[test]
fn a_process_killed_after_every_store_step_resumes_to_the_same_bytes() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("small.toml");
    std::fs::write(&cfg, small_text(6, 60.0)).unwrap();
    let whole_dir = tmp.path().join("whole");
    let o = cli_encode(&cfg, &whole_dir, None, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let whole = files(&whole_dir);
    // 3 chunks x 2, labels, commit, 4 files, manifest.
    let n_steps = 13;
    for k in 1..=n_steps {
        let dir = tmp.path().join(format!("k{k}"));
        let o = cli_encode(&cfg, &dir, Some(k), &[]);
        assert_eq!(
            o.status.signal(),
            Some(libc_sigabrt()),
            "step {k}: {:?}",
            o.status
        );
        assert_honest(&dir, &whole);
        let o = cli_encode(&cfg, &dir, None, &[]);
        assert!(
            o.status.success(),
            "step {k}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(files(&dir), whole, "after a kill at step {k}");
    }
    // One step past the last: the run is not killed.
    let o = cli_encode(&cfg, &tmp.path().join("past"), Some(n_steps + 1), &[]);
    assert!(o.status.success());
}

fn libc_sigabrt() -> i32 {
    6
}

#[test]
fn a_second_writer_is_refused_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("busy");
    let held = DirLock::acquire(&dir).unwrap();
    let cfg = small_config(6, 60.0);
    let (set, rows) = subset(20, 6);
    let data = reference(&set, Some(&rows));
    let pid = std::process::id().to_string();
    let err = encode(&cfg, &data, &opts(&dir, 10), &Quiet).unwrap_err();
    assert!(matches!(err, PipelineError::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "being written by another geodyn process (pid {pid})"
        )),
        "{err}"
    );
    // --restart cannot take it over either, and nothing was written.
    let mut o = opts(&dir, 10);
    o.restart = true;
    assert!(matches!(
        encode(&cfg, &data, &o, &Quiet),
        Err(PipelineError::Locked { .. })
    ));
    // Another process is refused too (flock is per open file, so it also
    // holds between processes), with the same message.
    let cfg_path = tmp.path().join("small.toml");
    std::fs::write(&cfg_path, small_text(6, 60.0)).unwrap();
    let out = cli_encode(&cfg_path, &dir, None, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is being written by another geodyn process"),
        "{stderr}"
    );
    assert!(!dir.join("partial").exists() && !dir.join("manifest.json").exists());
    drop(held);
    encode(&cfg, &data, &opts(&dir, 10), &Quiet).unwrap();
}

fn write_set(dir: &Path, set: &ImageSet) -> (PathBuf, PathBuf) {
    let (i, l) = (dir.join("img.idx"), dir.join("lab.idx"));
    write_idx_images(&i, set.rows, set.cols, &set.pixels, false).unwrap();
    write_idx_labels(&l, &set.labels, false).unwrap();
    (i, l)
}

#[test]
fn a_changed_input_is_refused_on_resume_and_on_evaluate() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _) = subset(30, 7);
    let (b, _) = subset(30, 8);
    let (ip, lp) = write_set(tmp.path(), &a);
    let cfg = small_config(6, 60.0);
    let dir = tmp.path().join("enc");
    let set = ImageSet::load(&ip, &lp).unwrap();
    let data = reference(&set, None);
    let _ = encode(&cfg, &data, &opts(&dir, 12), &StopAtStep::new(2));
    // Same paths, new contents between the kill and the resume.
    write_set(tmp.path(), &b);
    let changed = ImageSet::load(&ip, &lp).unwrap();
    let data2 = reference(&changed, None);
    let err = encode(&cfg, &data2, &opts(&dir, 12), &Quiet)
        .unwrap_err()
        .to_string();
    let abs = std::fs::canonicalize(&ip).unwrap();
    assert!(
        err.contains(&abs.display().to_string()) && err.contains("changed"),
        "{err}"
    );
    // Back to the original: resumes and completes.
    write_set(tmp.path(), &a);
    let m = encode(&cfg, &data, &opts(&dir, 12), &Quiet).unwrap();
    // Paths are absolute, so evaluate works from anywhere.
    assert!(Path::new(&m.images).is_absolute());
    // Evaluate refuses baselines from files that changed since the encode.
    write_set(tmp.path(), &b);
    let err = evaluate(&dir, &EvaluateOptions::new(tmp.path().join("r")), &Quiet)
        .unwrap_err()
        .to_string();
    assert!(err.contains("changed"), "{err}");
}

#[test]
fn restart_removes_the_old_jobs_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("enc");
    let (set, rows) = subset(20, 9);
    let data = reference(&set, Some(&rows));
    encode(&small_config(6, 60.0), &data, &opts(&dir, 10), &Quiet).unwrap();
    assert!(dir.join("weights_t30.npy").exists());
    let other = small_config(6, 40.0);
    let err = encode(&other, &data, &opts(&dir, 10), &Quiet)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--restart") && err.contains("config"), "{err}");
    let mut o = opts(&dir, 10);
    o.restart = true;
    encode(&other, &data, &o, &Quiet).unwrap();
    assert!(!dir.join("weights_t30.npy").exists() && !dir.join("weights_t60.npy").exists());
    assert!(dir.join("weights_t20.npy").exists() && dir.join("weights_t40.npy").exists());
}

#[test]
fn merge_refuses_what_it_should_check() {
    let cfg = small_config(6, 60.0);
    let (set, rows) = subset(24, 10);
    let data = reference(&set, Some(&rows));
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    encode(&cfg, &data, &opts(&whole, 8), &Quiet).unwrap();
    let mut dirs = Vec::new();
    for k in 0..2 {
        let d = tmp.path().join(format!("s{k}"));
        let mut o = opts(&d, 8);
        o.shard = Some((k, 2));
        encode(&cfg, &data, &o, &Quiet).unwrap();
        dirs.push(d);
    }
    let s0 = files(&dirs[0]);
    // --out equal to a shard: refused, and the shard is untouched.
    let err = merge_shards(&dirs, &dirs[0], &Quiet)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is one of the shards"), "{err}");
    assert_eq!(files(&dirs[0]), s0);
    // --out holding another job's complete encode: refused, untouched.
    let other = tmp.path().join("other");
    encode(&small_config(5, 60.0), &data, &opts(&other, 8), &Quiet).unwrap();
    let before = files(&other);
    let err = merge_shards(&dirs, &other, &Quiet).unwrap_err().to_string();
    assert!(err.contains("another job"), "{err}");
    assert_eq!(files(&other), before);
    // A stray file in --out: refused.
    let stray = tmp.path().join("stray");
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::write(stray.join("activity.npy"), b"old").unwrap();
    assert!(merge_shards(&dirs, &stray, &Quiet)
        .unwrap_err()
        .to_string()
        .contains("not empty"));
    // A shard holding the other shard's labels: refused, naming the file.
    let swapped = tmp.path().join("swapped");
    copy_dir(&dirs[1], &swapped);
    std::fs::copy(dirs[0].join("labels.npy"), swapped.join("labels.npy")).unwrap();
    let err = merge_shards(
        &[dirs[0].clone(), swapped.clone()],
        &tmp.path().join("m1"),
        &Quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("labels.npy"), "{err}");
    // The good merge equals the whole encode, and rerunning it is a no-op.
    let merged = tmp.path().join("merged");
    merge_shards(&dirs, &merged, &Quiet).unwrap();
    merge_shards(&dirs, &merged, &Quiet).unwrap();
    assert_eq!(files(&merged), files(&whole));
    // An interrupted merge finishes on the next call.
    for k in 1..=6 {
        let m = tmp.path().join(format!("mk{k}"));
        let _ = merge_shards(&dirs, &m, &StopAtStep::new(k));
        merge_shards(&dirs, &m, &Quiet).unwrap();
        assert_eq!(files(&m), files(&whole), "merge stopped at step {k}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn evaluate_checks_every_file_against_the_manifest() {
    let cfg = small_config(6, 60.0);
    let (set, rows) = subset(40, 11);
    let data = reference(&set, Some(&rows));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("enc");
    encode(&cfg, &data, &opts(&dir, 20), &Quiet).unwrap();
    let eval = |d: &Path| evaluate(d, &EvaluateOptions::new(tmp.path().join("r")), &Quiet);
    eval(&dir).unwrap();
    // A view replaced by an array of another shape under its name.
    let d = tmp.path().join("swapped");
    copy_dir(&dir, &d);
    std::fs::copy(d.join("activity.npy"), d.join("weights_t60.npy")).unwrap();
    let err = eval(&d).unwrap_err().to_string();
    assert!(err.contains("weights_t60.npy"), "{err}");
    // The same shape with other values: the CRC tells.
    let d = tmp.path().join("edited");
    copy_dir(&dir, &d);
    std::fs::copy(d.join("weights_t30.npy"), d.join("weights_t60.npy")).unwrap();
    let err = eval(&d).unwrap_err().to_string();
    assert!(
        err.contains("weights_t60.npy") && err.contains("CRC"),
        "{err}"
    );
    // Hand-edited counts in the manifest.
    let d = tmp.path().join("counts");
    copy_dir(&dir, &d);
    let text = std::fs::read_to_string(d.join("manifest.json")).unwrap();
    let edited = text.replacen("\"arrivals\": ", "\"arrivals\": 9", 1);
    assert_ne!(text, edited);
    std::fs::write(d.join("manifest.json"), edited).unwrap();
    let err = eval(&d).unwrap_err().to_string();
    assert!(
        err.contains("manifest.json") && err.contains("checksum"),
        "{err}"
    );
    // A directory of an older store format.
    let d = tmp.path().join("old");
    copy_dir(&dir, &d);
    let text = std::fs::read_to_string(d.join("manifest.json")).unwrap();
    std::fs::write(
        d.join("manifest.json"),
        text.replace("\"store_format\": 2", "\"store_format\": 1"),
    )
    .unwrap();
    assert!(eval(&d).unwrap_err().to_string().contains("store format 1"));
}

#[test]
fn a_single_class_is_reported_with_a_warning() {
    let all = ImageSet::builtin().unwrap();
    let ones: Vec<usize> = (0..all.len())
        .filter(|&i| all.labels[i] == 0)
        .take(30)
        .collect();
    let set = all.subset(&ones);
    let tmp = tempfile::tempdir().unwrap();
    let (ip, lp) = write_set(tmp.path(), &set);
    let set = ImageSet::load(&ip, &lp).unwrap();
    let data = reference(&set, None);
    let dir = tmp.path().join("enc");
    encode(&small_config(6, 60.0), &data, &opts(&dir, 30), &Quiet).unwrap();
    let rep = evaluate(&dir, &EvaluateOptions::new(tmp.path().join("r")), &Quiet).unwrap();
    assert!(
        rep.notes
            .iter()
            .any(|n| n.contains("1 class") && n.contains("say nothing")),
        "{:?}",
        rep.notes
    );
}

#[test]
fn a_non_utf8_input_path_is_refused_up_front() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let odd = tmp.path().join(std::ffi::OsStr::from_bytes(b"digits-\xff"));
    std::fs::create_dir_all(&odd).unwrap();
    let (set, _) = subset(20, 12);
    let (ip, lp) = write_set(&odd, &set);
    let set = ImageSet::load(&ip, &lp).unwrap();
    let data = reference(&set, None);
    let dir = tmp.path().join("enc");
    let err = encode(&small_config(6, 60.0), &data, &opts(&dir, 10), &Quiet)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not valid UTF-8"), "{err}");
    assert!(!dir.exists(), "refused before anything was written");
}

/// A store written before model versions were recorded (a manifest with no
/// `model_version`, sealed as such) still evaluates, since its files are
/// what they are, but an encode does not take it over as its own job: the
/// same config gives other numbers under another model.
#[test]
fn a_store_of_an_unrecorded_model_version_is_not_resumed() {
    use sha2::Digest;
    let cfg = small_config(6, 60.0);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("enc");
    let (set, rows) = subset(20, 9);
    let data = reference(&set, Some(&rows));
    encode(&cfg, &data, &opts(&dir, 10), &Quiet).unwrap();
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&format!(
        "\"model_version\": {}",
        geodyn::pipeline::MODEL_VERSION
    )));
    // The manifest as an older geodyn wrote it: no field, its own seal.
    let mut m: Manifest = serde_json::from_str(&text).unwrap();
    m.model_version = 0;
    m.checksum.clear();
    let unsealed = serde_json::to_string(&m).unwrap();
    assert!(!unsealed.contains("model_version"));
    m.checksum = sha2::Sha256::digest(unsealed.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    evaluate(&dir, &EvaluateOptions::new(tmp.path().join("r")), &Quiet).unwrap();
    let err = encode(&cfg, &data, &opts(&dir, 10), &Quiet)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model version") && err.contains("--restart"),
        "{err}"
    );
    let mut o = opts(&dir, 10);
    o.restart = true;
    encode(&cfg, &data, &o, &Quiet).unwrap();
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("\"model_version\""));
}
