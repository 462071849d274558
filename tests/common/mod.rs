//! What several integration tests build the same way: the experiment-3
//! config made small, and a seeded class-balanced subset of the built-in
//! digits. (Each test crate uses part of it.)
#![allow(dead_code)]

use geodyn::config::{self, ExperimentConfig};
use geodyn::dataset::{stratified_subset_indices, ImageSet};
use geodyn::pipeline::EncodeData;
use std::path::Path;

const BASE: &str = include_str!("../../configs/weights.toml");

/// Runs the `geodyn` binary with `args`: (success, stdout, stderr).
pub fn geodyn(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_geodyn"))
        .args(args)
        .output()
        .expect("run geodyn");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The JSON file at `path` (a manifest, a report, an export's meta).
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The text of the experiment-3 config, made small: N recurrent nodes, a
/// short run, snapshots at half and full time, no linear readout.
pub fn small_text(n_rec: usize, duration: f64) -> String {
    // A replace that stopped matching would silently put the readouts back.
    assert!(
        BASE.contains(LINEAR),
        "configs/weights.toml changed its `linear` line"
    );
    BASE.replace("n_recurrent = 200", &format!("n_recurrent = {n_rec}"))
        .replace("duration_ms = 600.0", &format!("duration_ms = {duration}"))
        .replace(
            "snapshot_times_ms = [100.0, 200.0, 300.0, 400.0, 500.0, 600.0]",
            &format!("snapshot_times_ms = [{}, {duration}]", duration / 2.0),
        )
        .replace(LINEAR, "linear = []")
}

/// The linear-readout line of configs/weights.toml, which [`small_text`] removes.
const LINEAR: &str = "linear = [\"ridge\", \"svm\"]";

/// [`small_text`] with `extra` appended, checked.
pub fn small_config(n_rec: usize, duration: f64, extra: &str) -> ExperimentConfig {
    let text = small_text(n_rec, duration) + extra;
    config::parse(&text, Path::new("test.toml"))
        .and_then(|r| r.check(Path::new("test.toml")))
        .expect("test config")
}

/// `n` built-in digits, drawn class-balanced with `seed`, and their indices.
pub fn subset(n: usize, seed: u64) -> (ImageSet, Vec<usize>) {
    let all = ImageSet::builtin().expect("built-in data");
    let idx = stratified_subset_indices(&all.labels, n, seed);
    (all.subset(&idx), idx)
}

/// A reference set (a subset of its files at `rows`, if given), no queries.
pub fn reference<'a>(set: &'a ImageSet, rows: Option<&'a [usize]>) -> EncodeData<'a> {
    EncodeData {
        reference: set,
        reference_rows: rows,
        query: None,
    }
}

/// Runs `cmd` with stderr going to `stderr_to` (else to a temporary file
/// that is read back, so a chatty child cannot block on a full pipe); kills
/// it and panics if it runs past `limit` (a hang fails the test instead of
/// hanging CI). Returns the exit code and what it wrote to stderr.
pub fn run_limited(
    mut cmd: std::process::Command,
    stderr_to: Option<&Path>,
    limit: std::time::Duration,
    what: &str,
) -> (Option<i32>, String) {
    use std::process::Stdio;
    let err_file = tempfile::NamedTempFile::new().expect("stderr file");
    let stderr = match stderr_to {
        Some(p) => Stdio::from(
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .expect("stderr target"),
        ),
        None => Stdio::from(err_file.reopen().expect("stderr file")),
    };
    let mut child = cmd.stderr(stderr).spawn().expect("spawn");
    let t = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still running after {limit:?}: it hangs");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let err = std::fs::read_to_string(err_file.path()).unwrap_or_default();
    (status.code(), err)
}
