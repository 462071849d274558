//! What several integration tests build the same way: the experiment-3
//! config made small, and a seeded class-balanced subset of the built-in
//! digits. (Each test crate uses part of it.)
#![allow(dead_code)]

use geodyn::config::{self, ExperimentConfig};
use geodyn::dataset::{stratified_subset_indices, ImageSet};
use geodyn::pipeline::EncodeData;
use std::path::Path;

const BASE: &str = include_str!("../../configs/weights.toml");

/// The text of the experiment-3 config, made small: N recurrent nodes, a
/// short run, snapshots at half and full time, no linear readout.
pub fn small_text(n_rec: usize, duration: f64) -> String {
    BASE.replace("n_recurrent = 200", &format!("n_recurrent = {n_rec}"))
        .replace("duration_ms = 600.0", &format!("duration_ms = {duration}"))
        .replace(
            "snapshot_times_ms = [100.0, 200.0, 300.0, 400.0, 500.0, 600.0]",
            &format!("snapshot_times_ms = [{}, {duration}]", duration / 2.0),
        )
        .replace("linear = [\"svm\"]", "linear = []")
}

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
